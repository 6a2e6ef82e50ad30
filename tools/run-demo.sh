#!/usr/bin/env bash
# The main job: builds duet, makes a lab CA and node certificates with duet-certs (in
# build/certs), starts a worker and a gateway on loopback (mutual TLS between them), and
# opens `duet chat` — or, when not on a terminal, asks one question and prints the answer.
#
# The model: $DUET_MODEL when set; else stories260K.gguf from the shared models folder
# ($DUET_SHARED_MODELS, default ../shared/models) when it is there; else a small synthetic
# model written by duet-mkmodel with its built-in vocabulary, whose answers are gibberish.
# Conversations are kept in $build/sessions.db. Ports: worker 7700, gateway 8080
# (DUET_WORKER_PORT, DUET_HTTP_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${DUET_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
tools="$build/tools"

certs="$build/certs"
if [ ! -f "$certs/ca.crt" ]; then
  "$tools/duet-certs" init "$certs"
fi
for node in worker-1 gateway-1; do
  [ -f "$certs/$node.crt" ] || "$tools/duet-certs" issue "$certs" "$node"
done

shared=${DUET_SHARED_MODELS:-../shared/models}
model=${DUET_MODEL:-}
if [ -z "$model" ] && [ -f "$shared/stories260K.gguf" ]; then
  model="$shared/stories260K.gguf"
fi
if [ -z "$model" ]; then
  # nothing downloaded: a small model with duet's built-in vocabulary and random weights
  model="$build/demo-model.gguf"
  if [ ! -f "$model" ]; then
    "$tools/duet-mkmodel" --out "$model" --dim 256 --ffn 512 --layers 2 --heads 4 \
      --kv-heads 2 --type q8_0 --quiet
  fi
  cat <<EOF
note: no model is configured and none was found in $shared, so this runs a small
synthetic model written by duet-mkmodel (random weights): its answers are gibberish until
a real GGUF is configured. To use one, download a llama-, qwen2- or qwen3-family GGUF
(Q4_0, Q4_K, Q8_0, ...) and run
    DUET_MODEL=/path/to/model.gguf $0
(for the daemon on its own: the model.path key of conf/worker.yaml, or duet-worker -m).
EOF
fi

wport=${DUET_WORKER_PORT:-7700}
hport=${DUET_HTTP_PORT:-8080}
key=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
logs="$build/demo-logs"
mkdir -p "$logs"

# a port taken by something else would make the readiness check below talk to it
for port in "$wport" "$hport"; do
  if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
    exec 3<&-
    echo "port $port on 127.0.0.1 is in use (another duet?): pick free ones with" \
      "DUET_WORKER_PORT and DUET_HTTP_PORT" >&2
    exit 1
  fi
done

"$tools/duet-worker" -m "$model" --listen "tls+tcp://127.0.0.1:$wport" \
  --certs "$certs" --name worker-1 2>"$logs/worker.log" &
worker=$!
"$tools/duet-gateway" --http "127.0.0.1:$hport" --worker "tls+tcp://127.0.0.1:$wport" \
  --worker-name worker-1 --certs "$certs" --name gateway-1 --api-key "$key:me" \
  --db "$build/sessions.db" \
  2>"$logs/gateway.log" &
gateway=$!
trap 'kill "$gateway" "$worker" 2>/dev/null; wait "$gateway" "$worker" 2>/dev/null || true' EXIT

# the gateway answers once it has seen the worker ready
for _ in $(seq 1 300); do
  kill -0 "$worker" 2>/dev/null || { echo "the worker stopped:" >&2; cat "$logs/worker.log" >&2; exit 1; }
  kill -0 "$gateway" 2>/dev/null || { echo "the gateway stopped:" >&2; cat "$logs/gateway.log" >&2; exit 1; }
  if { exec 3<>"/dev/tcp/127.0.0.1/$hport"; } 2>/dev/null; then
    printf 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
    if grep -q '"state":"ready"' <&3; then
      exec 3<&-
      break
    fi
    exec 3<&-
  fi
  sleep 0.1
done

echo "worker: $model on tls+tcp://127.0.0.1:$wport; gateway: http://127.0.0.1:$hport" \
  "(API key $key; logs in $logs)"
export DUET_GATEWAY="http://127.0.0.1:$hport" DUET_API_KEY="$key"
if [ -t 0 ] && [ -t 1 ]; then
  "$tools/duet" chat
else
  "$tools/duet" -n 48 ask "${1:-Once upon a time, there was a little dog.}"
fi

#!/usr/bin/env bash
# The main job, for now: builds duet, makes a lab CA and two node certificates with
# duet-certs (in build/certs), starts an RPC server with conf/worker.yaml and calls it
# with conf/gateway.yaml over mutual TLS on loopback. Later this starts a worker, a
# gateway and a chat.
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

"$tools/duet-rpc-demo" serve -c conf/worker.yaml --certs "$certs" --name worker-1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

# the server needs a moment to listen; the client retries within its connect timeout
for _ in $(seq 1 50); do
  if "$tools/duet-rpc-demo" call -c conf/gateway.yaml --certs "$certs" --name gateway-1 \
       "${1:-hello from the gateway side}" 2>/tmp/duet-demo-call.$$; then
    rm -f /tmp/duet-demo-call.$$
    exit 0
  fi
  kill -0 "$server" 2>/dev/null || { echo "the server stopped" >&2; exit 1; }
  sleep 0.1
done
cat /tmp/duet-demo-call.$$ >&2
rm -f /tmp/duet-demo-call.$$
exit 1

#!/usr/bin/env bash
# Installs the Debian 12 packages duet needs to build and test, skipping what is present.
# Safe to run again: it does nothing when everything is installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  protobuf-c-compiler libprotobuf-c-dev
  libnng-dev libmbedtls-dev
  libyaml-dev libzstd-dev
  libcriterion-dev
  libjansson-dev libsqlite3-dev libedit-dev
  libpcre2-dev libcurl4-openssl-dev
  curl iproute2
  chromium chromium-driver
)

# Node.js and npm run the tests' OpenAI and browser clients; a machine that already has
# them (from any source) keeps its own.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

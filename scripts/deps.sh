#!/usr/bin/env bash
# Installs the Debian packages infergate needs, and only those missing.
# Usage: scripts/deps.sh [bench]   ("bench" adds wrk)
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libuv1-dev libssl-dev libjansson-dev libyaml-dev
      libcmocka-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
      python3-pytest python3-requests python3-aiohttp python3-yaml python3-grpcio python3-protobuf curl)
# nginx, HAProxy and Chromium: the demo compares against the first two and the tests render its
# HTML report in the third; wrk is only for bench/proxy-overhead.sh.
pkgs+=(nginx-light haproxy chromium)
if [ "${1:-}" = bench ]; then pkgs+=(wrk); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The official OpenAI Node.js client, for tests/integration/test_openai_client.py (npm registry).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
node_dir="$(dirname "$0")/../tests/integration/openai_node"
if [ ! -d "$node_dir/node_modules/openai" ]; then
  echo "==> npm ci (tests/integration/openai_node)"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

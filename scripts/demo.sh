#!/usr/bin/env bash
# The main job: `infergate demo` (simulated vLLM pods, each target in front of fresh pods in turn, the
# same seeded load, a side-by-side table and an HTML report). Every option goes to the command:
#   scripts/demo.sh [--quick|--full] [--pods N] [--workload W] [--report PATH] [--json PATH] ...
# See `infergate demo --help`. INFERGATE_BIN selects the binary (default build/infergate).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${INFERGATE_BIN:-build/infergate}"
if [ ! -x "$BIN" ]; then
  echo "infergate is not built at $BIN: run 'make build' (or make demo) first" >&2
  exit 1
fi
exec "$BIN" demo "$@"

#!/usr/bin/env bash
# Builds and runs the tests. Usage: scripts/test.sh [all|unit|integration|sanitize|fuzz]
#   all:        deps, release build + unit + integration, ASan/UBSan build + unit + integration, fuzz smoke
#   FUZZ_SECONDS (default 10) bounds each fuzzer in the smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
jobs="$(nproc)"
PY=/usr/bin/python3

build() { # dir, extra cmake args...
  local dir="$1"; shift
  cmake -S . -B "$dir" "$@" >/dev/null
  local log="$dir/build.log"
  if ! cmake --build "$dir" -j "$jobs" >"$log" 2>&1; then
    grep -Ev '^\[ *[0-9]+%\]|make\[[0-9]+\]: (Entering|Leaving)' "$log" | tail -60
    echo "build failed in $dir" >&2
    return 1
  fi
  grep -E 'warning:' "$log" | head -20 || true
}

unit() { # dir
  echo "==> unit tests ($1)"
  ctest --test-dir "$1" --output-on-failure -j "$jobs" --timeout 120
}

integration() { # dir
  echo "==> integration tests ($1)"
  INFERGATE_BIN="$PWD/$1/infergate" timeout 900 $PY -m pytest -q -x -p no:cacheprovider tests/integration
}

fuzz() {
  local secs="${FUZZ_SECONDS:-10}"
  echo "==> fuzz smoke (${secs}s per fuzzer)"
  CC=clang build build-fuzz -DIG_FUZZ=ON -DIG_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  local n=0
  for f in build-fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    local name corpus
    name="$(basename "$f")"
    corpus="tests/fuzz/corpus/${name#fuzz_}"
    mkdir -p "build-fuzz/corpus-$name"
    echo "--- $name"
    "$f" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
      "build-fuzz/corpus-$name" $( [ -d "$corpus" ] && echo "$corpus" ) 2>&1 | tail -2
    n=$((n + 1))
  done
  echo "fuzzers run: $n"
}

bash scripts/deps.sh
case "$what" in
  unit) build build -DCMAKE_BUILD_TYPE=RelWithDebInfo; unit build ;;
  integration) build build -DCMAKE_BUILD_TYPE=RelWithDebInfo; integration build ;;
  sanitize)
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DIG_ASAN=ON -DIG_UBSAN=ON
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    unit build-asan; INFERGATE_SANITIZED=1 integration build-asan ;;
  fuzz) fuzz ;;
  all)
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    unit build
    integration build
    "$0" sanitize
    "$0" fuzz
    echo "==> all tests passed" ;;
  *) echo "usage: $0 [all|unit|integration|sanitize|fuzz]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Scrape cost: the gateway's own CPU while idle in front of 100 simulated pods, scraping each one every
# 50 ms (an inference pool, `scrape_interval: 50ms`), against the same gateway with a plain backend of
# the same 100 endpoints (no scraping) as the baseline. CPU = utime + stime from /proc/PID/stat over
# the window, as % of one core, split into user and system (kernel: the socket reads and writes) time.
# Both runs use the same sim pods, one after the other. On a busy machine run it 2-3 times: the spread
# between runs is larger than one tick (0.1% of a core over 10 s).
# Usage: bench/scrape-cost.sh [--pods N] [--seconds S] [--interval DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=100 SECONDS_IDLE=10 INTERVAL=50ms
while [ $# -gt 0 ]; do
  case "$1" in
    --pods) PODS="$2"; shift 2 ;;
    --seconds) SECONDS_IDLE="$2"; shift 2 ;;
    --interval) INTERVAL="$2"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
. bench/lib.sh

TCK=$(getconf CLK_TCK)
# utime and stime (clock ticks) of a process: fields 14 and 15, counted after the ")" ending comm
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"; }
# sum of infergate_pool_scrapes_total{...,result="success"} on the admin /metrics
scrapes_ok() {
  curl -s "http://127.0.0.1:$1/metrics" |
    awk '/^infergate_pool_scrapes_total\{/ && /result="success"/ {s += $NF} END {printf "%d", s}'
}

ig_start_sims scrape "$PODS" --model m
EPS="[${SIM_EPS//,/, }]"

# measure LABEL KIND: starts a gateway (KIND pool or backend), lets it settle for 2 s, then samples its
# CPU over the idle window. Prints "LABEL cpu_pct scrapes_per_s user_pct sys_pct".
measure() {
  local label="$1" kind="$2" base listen admin cfg pid u0 k0 u1 k1 s0 s1 pct rate upct kpct
  base="$(ig_free_ports 2)"
  listen=$base admin=$((base + 1))
  cfg="$ig_work/$label.yaml"
  if [ "$kind" = pool ]; then
    cat >"$cfg" <<EOF
listeners:
  - name: web
    address: 127.0.0.1:$listen
admin:
  address: 127.0.0.1:$admin
pools:
  - name: p
    endpoints: $EPS
    scrape_interval: $INTERVAL
models:
  - name: m
    pool: p
routes:
  - name: all
    backend: p
EOF
  else
    cat >"$cfg" <<EOF
listeners:
  - name: web
    address: 127.0.0.1:$listen
admin:
  address: 127.0.0.1:$admin
backends:
  - name: p
    endpoints: $EPS
routes:
  - name: all
    backend: p
EOF
  fi
  "$BIN" serve -c "$cfg" 2>"$ig_work/$label.log" &
  pid=$!
  pids+=("$pid")
  ig_wait_port "$listen"
  ig_wait_port "$admin"
  sleep 2 # first scrapes, connections established
  s0=$(scrapes_ok "$admin")
  read -r u0 k0 < <(cpu_ticks "$pid")
  sleep "$SECONDS_IDLE"
  read -r u1 k1 < <(cpu_ticks "$pid")
  s1=$(scrapes_ok "$admin")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pct=$(awk -v a="$((u0 + k0))" -v b="$((u1 + k1))" -v t="$TCK" -v s="$SECONDS_IDLE" 'BEGIN {printf "%.2f", (b - a) / t / s * 100}')
  upct=$(awk -v a="$u0" -v b="$u1" -v t="$TCK" -v s="$SECONDS_IDLE" 'BEGIN {printf "%.2f", (b - a) / t / s * 100}')
  kpct=$(awk -v a="$k0" -v b="$k1" -v t="$TCK" -v s="$SECONDS_IDLE" 'BEGIN {printf "%.2f", (b - a) / t / s * 100}')
  rate=$(awk -v a="$s0" -v b="$s1" -v s="$SECONDS_IDLE" 'BEGIN {printf "%.0f", (b - a) / s}')
  echo "$label $pct $rate $upct $kpct"
}

read -r _ base_pct base_rate base_u base_k < <(measure baseline backend)
read -r _ pool_pct pool_rate pool_u pool_k < <(measure pool pool)

echo "Scrape cost: $PODS pods, scrape_interval $INTERVAL, ${SECONDS_IDLE} s idle window, $(nproc) cores"
echo
echo "| gateway | CPU (% of one core) | user | system | successful scrapes/s | extra CPU per scrape (us) |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| plain backend, $PODS endpoints (baseline) | $base_pct | $base_u | $base_k | $base_rate | - |"
per=$(awk -v p="$pool_pct" -v b="$base_pct" -v r="$pool_rate" \
  'BEGIN { if (r > 0) printf "%.1f", (p - b) / 100 / r * 1e6; else print "-" }')
echo "| inference pool, $PODS endpoints, scraped | $pool_pct | $pool_u | $pool_k | $pool_rate | $per |"
echo
awk -v p="$pool_pct" -v b="$base_pct" 'BEGIN {printf "scraping adds %.2f percentage points of one core\n", p - b}'

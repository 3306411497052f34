#!/usr/bin/env bash
# Soak: mixed streaming load (infergate bench, sharegpt workload, open loop) through the gateway to an
# inference pool of simulated pods, one pod killed and restarted every 30 s (round robin over the pods).
# Reports requests sent/completed/failed (by status code and error message) and the gateway's RSS
# (VmRSS from /proc/PID/status, sampled every 10 s): first, last, max.
# Usage: bench/soak.sh [--minutes N (10)] [--pods N (3)] [--rate R (20)] [--restart-every S (30)]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=10 PODS=3 RATE=20 EVERY=30
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --pods) PODS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --restart-every) EVERY="$2"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
. bench/lib.sh
DURATION=$((MINUTES * 60))

# one sim process per pod, so that one pod can be killed and restarted alone
SIM_ARGS=(--model llama3 --profile llama3-8b-h100 --max-num-seqs 32 --seed 3)
BASE="$(ig_free_ports "$PODS")"
sim_pid=()
start_pod() { # index
  local i="$1"
  "$BIN" sim --pods 1 --base-port $((BASE + i)) "${SIM_ARGS[@]}" 2>>"$ig_work/sim-$i.log" &
  sim_pid[$i]=$!
  pids+=($!)
}
eps=""
for ((i = 0; i < PODS; i++)); do
  start_pod "$i"
  eps+="${eps:+, }127.0.0.1:$((BASE + i))"
done
for ((i = 0; i < PODS; i++)); do ig_wait_port $((BASE + i)); done

GW_PORT="$(ig_free_ports 1)"
ADMIN_PORT="$(ig_free_ports 1)"
cat >"$ig_work/gateway.yaml" <<EOF
listeners:
  - name: web
    address: 127.0.0.1:$GW_PORT
admin:
  address: 127.0.0.1:$ADMIN_PORT
pools:
  - name: llama
    endpoints: [$eps]
    connect_timeout: 500ms
routes:
  - name: openai
    backend: llama
EOF
"$BIN" serve -c "$ig_work/gateway.yaml" 2>"$ig_work/gateway.log" &
GW_PID=$!
pids+=($GW_PID)
ig_wait_port "$GW_PORT"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$GW_PID/status" 2>/dev/null || echo 0; }

echo "soak: ${MINUTES} min, $PODS pods, $RATE req/s streamed (sharegpt), a pod restarted every ${EVERY}s"
"$BIN" bench --url "http://127.0.0.1:$GW_PORT" --model llama3 --workload sharegpt --stream \
  --rate "$RATE" --duration "$DURATION" --requests 100000000 --input-mean 200 --output-mean 100 \
  --timeout 60 --json "$ig_work/bench.json" --label soak >"$ig_work/bench.out" 2>&1 &
BENCH_PID=$!

rss=()
restarts=0
next_pod=0
t=0
rss+=("$(rss_kb)")
while kill -0 "$BENCH_PID" 2>/dev/null; do
  sleep 1
  t=$((t + 1))
  if ((t % 10 == 0)); then rss+=("$(rss_kb)"); fi
  if ((t % EVERY == 0 && t < DURATION)); then
    i=$next_pod
    next_pod=$(((next_pod + 1) % PODS))
    kill "${sim_pid[$i]}" 2>/dev/null || true
    wait "${sim_pid[$i]}" 2>/dev/null || true
    sleep 1
    start_pod "$i"
    restarts=$((restarts + 1))
  fi
  if ((t > DURATION + 120)); then
    echo "bench did not finish in time" >&2
    kill "$BENCH_PID" 2>/dev/null || true
    break
  fi
done
wait "$BENCH_PID" || true
rss+=("$(rss_kb)")
alive=yes
kill -0 "$GW_PID" 2>/dev/null || alive=no

$PY - "$ig_work/bench.json" "$restarts" "$alive" "${rss[@]}" <<'PYEOF'
import json, sys
path, restarts, alive, rss = sys.argv[1], int(sys.argv[2]), sys.argv[3], [int(x) for x in sys.argv[4:]]
s = json.load(open(path))["summary"]
print(f"pod restarts: {restarts}; gateway alive at the end: {alive}")
print(f"requests sent {s['requests_sent']}, completed {s['completed']}, failed {s['failed']}, shed {s['shed']}")
codes = {k: v for k, v in sorted(s.get("status_counts", {}).items())}
print("by status:", ", ".join(f"{k}: {v}" for k, v in codes.items()) or "-")
errs = sorted(s.get("errors", {}).items(), key=lambda kv: -kv[1])
for msg, n in errs[:10]:
    print(f"  failed: {n} x {msg}")
print(f"TTFT p50 {s['ttft_ms']['p50']:.1f} ms, E2E p90 {s['e2e_ms']['p90']:.1f} ms, "
      f"{s['request_throughput']:.1f} req/s")
mb = lambda kb: kb / 1024
print(f"gateway RSS (every 10 s, {len(rss)} samples): first {mb(rss[0]):.1f} MiB, last {mb(rss[-1]):.1f} MiB, "
      f"max {mb(max(rss)):.1f} MiB")
PYEOF

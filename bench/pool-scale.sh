#!/usr/bin/env bash
# Gateway at a large pool: `infergate serve` in front of PODS `infergate sim` pods (one sim process,
# time-scaled so that answers are quick and the gateway's own work shows), driven by `infergate bench`
# (closed loop, CONC requests in flight, short prompts and answers). Two gateways run in the same
# invocation: the `default` scheduler profile and `round-robin` (the baseline: no scoring, but the
# same proxy path, scraping and per-decision refresh of the pool's pod states). Reported per profile:
# requests/s, end-to-end p50 / p99 as the client sees them, and the gateway's own mean of
# inference_extension_scheduler_e2e_duration_seconds (pod states, admission, pick), then the ratios.
#
# usage: bench/pool-scale.sh    env: INFERGATE_BIN (default build/infergate), PODS (default 1000),
#                               SCRAPE (default 1s), CONC (default 16), REQS (default 4000),
#                               TIME_SCALE (default 100), ROUNDS (default 2: default, round-robin, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
PODS=${PODS:-1000}
SCRAPE=${SCRAPE:-1s}
CONC=${CONC:-16}
REQS=${REQS:-4000}
TIME_SCALE=${TIME_SCALE:-100}
ROUNDS=${ROUNDS:-2}

ig_start_sims scale "$PODS" --model llama3 --time-scale "$TIME_SCALE"
ports="$(ig_free_ports 4)"
declare -A port admin
i=0
for prof in default round-robin; do
  port[$prof]=$((ports + 2 * i))
  admin[$prof]=$((ports + 2 * i + 1))
  "$BIN" serve --listen "127.0.0.1:${port[$prof]}" --admin "127.0.0.1:${admin[$prof]}" --pool "$SIM_EPS" \
    --model llama3 --profile "$prof" --scrape-interval "$SCRAPE" --log-level warn \
    >"$ig_work/gw-$prof.log" 2>&1 & pids+=($!)
  ig_wait_port "${port[$prof]}"
  i=$((i + 1))
done
sleep 3 # a first scrape of every pod by both gateways
echo "$PODS sim pods (time scale $TIME_SCALE), scraped every $SCRAPE by each gateway; $(nproc) cores," \
  "load $(cut -d' ' -f1-3 /proc/loadavg); closed loop, $CONC in flight, $REQS requests per run, $ROUNDS rounds"
for ((r = 0; r < ROUNDS; r++)); do
  for prof in default round-robin; do
    "$BIN" bench --url "http://127.0.0.1:${port[$prof]}" --model llama3 --workload fixed --input-mean 64 \
      --output-mean 4 --no-stream --concurrency "$CONC" --requests "$REQS" --timeout 30 --seed "$((r + 1))" \
      --label "$prof" --json "$ig_work/$prof-$r.json" --no-progress >/dev/null
  done
done
for prof in default round-robin; do
  read -r mean _ <<<"$(ig_sched_e2e_mean "${admin[$prof]}")"
  $PY - "$ig_work" "$prof" "$mean" <<'PYEOF'
import glob, json, sys
work, prof, e2e = sys.argv[1], sys.argv[2], float(sys.argv[3])
rps, p50, p99, ok, err = [], [], [], 0, 0
for f in sorted(glob.glob(f"{work}/{prof}-*.json")):
    s = json.load(open(f))["summary"]
    rps.append(s["request_throughput"]); p50.append(s["e2e_ms"]["p50"]); p99.append(s["e2e_ms"]["p99"])
    ok += s["completed"]; err += s["failed"]
mid = lambda v: sorted(v)[len(v) // 2]
json.dump({"profile": prof, "rps": mid(rps), "p50": mid(p50), "p99": mid(p99), "ok": ok, "err": err,
           "sched_us": e2e}, open(f"{work}/{prof}.sum", "w"))
PYEOF
done
$PY - "$ig_work" <<'PYEOF'
import json, sys
d = {p: json.load(open(f"{sys.argv[1]}/{p}.sum")) for p in ("default", "round-robin")}
print("| profile | requests/s | e2e p50 ms | e2e p99 ms | scheduler e2e mean us | ok / failed |")
print("|---|---:|---:|---:|---:|---|")
for p, s in d.items():
    print(f"| {p} | {s['rps']:.0f} | {s['p50']:.2f} | {s['p99']:.2f} | {s['sched_us']:.1f} | {s['ok']} / {s['err']} |")
a, b = d["default"], d["round-robin"]
print(f"\ndefault vs round-robin: requests/s {a['rps'] / b['rps']:.2f}x, e2e p50 {a['p50'] / b['p50']:.2f}x, "
      f"scheduler e2e {a['sched_us'] / b['sched_us']:.1f}x")
PYEOF

#!/usr/bin/env bash
# Routing: the same load through each endpoint-selection policy, fresh simulated pods per run:
# a plain backend with round-robin (the baseline), and an inference pool with the schedulers
# least-request, gie and default. Workloads: ShareGPT-like near saturation, and shared prefix.
# Prints TTFT p50/p90, TPOT p50, E2E p90, throughput, prefix-cache hit rate and ratios vs round-robin.
# Usage: bench/routing.sh [--quick] [--fleet h100] [--pods N] [--workloads sharegpt,shared-prefix]
#                         [--gauges step|live] [--pod-rate R] [--json DIR]
# --fleet h100: issue #5's fleet instead: 8 pods of llama3-8b-h100 (time scale 0.2), ShareGPT-like at
# 150 requests/s per pod (simulated; --pod-rate R for another) near saturation, 8,000 requests per
# target (about 12 minutes).
# --gauges: how the simulated pods publish running / waiting / KV (docs/simulator.md): step (default
# here), as vLLM does, as of the last step's end; live, as they are when scraped.
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=4 QUICK=0 WORKLOADS=sharegpt,shared-prefix JSONDIR="" FLEET="" GAUGES=step POD_RATE=150
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --fleet) FLEET="$2"; shift 2 ;;
    --pods) PODS="$2"; shift 2 ;;
    --workloads) WORKLOADS="$2"; shift 2 ;;
    --json) JSONDIR="$2"; shift 2 ;;
    --gauges) GAUGES="$2"; shift 2 ;;
    --pod-rate) POD_RATE="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
. bench/lib.sh

# A100 profile pods (slow enough that queues form at modest request rates). Per pod with 16 sequences
# and ShareGPT-like requests (~250 in / 200 out) the closed form (docs/simulator.md) gives ~900 tokens/s,
# ~4.5 requests/s, so the sharegpt rate below (4 requests/s per pod) is ~90% of the pool's capacity. Shared prefix: KV caches that cannot hold every group's
# system prompt at once, where routing decides whether the prefix is already cached.
SIM_COMMON=(--model llama3 --profile llama3-8b-a100 --seed 7 --gauges "$GAUGES")
SG_SIM=(--max-num-seqs 16) SG_EXTRA=()
if [ "$FLEET" = h100 ]; then
  # H100 pods keep their profile's limits (1,024 sequences, 8,192-token steps): near saturation the
  # steps are long with new prompts' prefill (docs/simulator.md "Capacity of one pod"), and a new
  # request's time to first token is mostly the prefill ahead of it on its pod. 150 requests/s per pod
  # simulated at time scale 0.2 is 30 per pod in wall time; thousands of streams are open at once.
  [ "$WORKLOADS" = sharegpt,shared-prefix ] && WORKLOADS=sharegpt
  [ "$PODS" = 4 ] && PODS=8
  SIM_COMMON=(--model llama3 --profile llama3-8b-h100 --seed 7 --time-scale 0.2 --gauges "$GAUGES")
  SG_SIM=() SG_EXTRA=(--timeout 600)
  SG_RATE=$($PY -c "import sys; print(round(int(sys.argv[1]) * float(sys.argv[2]) * 0.2, 3))" \
    "$PODS" "$POD_RATE") # wall-clock requests/s for the pool
  SG_REQ=8000 SP_GROUPS=32 SP_PER=8 SP_SYS=2048 SP_OUT=64 SP_RATE=10 SP_KV=3000
elif [ -n "$FLEET" ]; then
  echo "unknown fleet $FLEET (h100)" >&2; exit 2
elif [ "$QUICK" = 1 ]; then
  SG_REQ=120 SG_RATE=$((PODS * 4)) SP_GROUPS=8 SP_PER=4 SP_SYS=1024 SP_OUT=32 SP_RATE=8 SP_KV=1200
else
  SG_REQ=400 SG_RATE=$((PODS * 4)) SP_GROUPS=32 SP_PER=8 SP_SYS=2048 SP_OUT=64 SP_RATE=10 SP_KV=3000
fi

run_target() { # workload, label, scheduler ("" = plain round-robin backend)
  local wl="$1" label="$2" sched="$3" sim_args load
  if [ "$wl" = sharegpt ]; then
    sim_args=("${SG_SIM[@]}")
    load=(--workload sharegpt --requests "$SG_REQ" --rate "$SG_RATE" "${SG_EXTRA[@]}")
  else
    sim_args=(--kv-blocks "$SP_KV")
    load=(--workload shared-prefix --groups "$SP_GROUPS" --prompts-per-group "$SP_PER" --system-len "$SP_SYS"
          --question-len 128 --output-mean "$SP_OUT" --rate "$SP_RATE")
  fi
  ig_start_sims "$wl-$label" "$PODS" "${SIM_COMMON[@]}" "${sim_args[@]}"
  local gw admin cfg="$ig_work/$wl-$label.yaml"
  gw="$(ig_free_ports 1)"; admin="$(ig_free_ports 1)"
  {
    echo "listeners: [{name: main, address: \"127.0.0.1:$gw\"}]"
    echo "admin: {address: \"127.0.0.1:$admin\"}"
    if [ -z "$sched" ]; then
      echo "backends: [{name: llama, policy: round-robin, endpoints: [${SIM_EPS}]}]"
    else
      echo "pools: [{name: llama, scheduler: $sched, endpoints: [${SIM_EPS}]}]"
    fi
    echo "routes: [{name: all, backend: llama}]"
    echo "limits: {max_connections_per_ip: 0}" # the load's thousands of streams come from one address
  } >"$cfg"
  "$BIN" serve -c "$cfg" --log-level warn 2>"$ig_work/gw-$wl-$label.log" & pids+=($!)
  ig_wait_port "$gw"
  echo "==> $wl / $label: ${load[*]}" >&2
  "$BIN" bench --url "http://127.0.0.1:$gw" --model llama3 "${load[@]}" --seed 3 --label "$label" \
    --json "$ig_work/$wl-$label.json" >"$ig_work/$wl-$label.txt"
  ig_sim_cache_json "$SIM_BASE" "$PODS" "$ig_work/$wl-$label.cache.json"
  ig_stop_all
}

TARGETS=("round-robin:" "least-request:least-request" "gie:gie" "default:default")
IFS=, read -r -a wls <<<"$WORKLOADS"
for wl in "${wls[@]}"; do
  for t in "${TARGETS[@]}"; do run_target "$wl" "${t%%:*}" "${t#*:}"; done
done
[ -n "$JSONDIR" ] && mkdir -p "$JSONDIR" && cp "$ig_work"/*.json "$JSONDIR"/

$PY - "$ig_work" "$PODS" "$WORKLOADS" "${TARGETS[@]%%:*}" <<'PYEOF'
import json, os, sys
work, pods, wls, labels = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4:]
for wl in wls:
    rows = []
    for l in labels:
        s = json.load(open(os.path.join(work, f"{wl}-{l}.json")))["summary"]
        c = json.load(open(os.path.join(work, f"{wl}-{l}.cache.json")))
        hit = 100.0 * c["hits"] / c["queries"] if c["queries"] else 0.0
        rows.append((l, s, hit))
    base = rows[0][1]
    print(f"\n{wl} ({pods} pods)")
    lr = dict((l, s) for l, s, _ in rows).get("least-request", base)
    print(f"| scheduler | done | failed | TTFT p50 | TTFT p90 | TTFT p99 | TPOT p50 | E2E p90 | tok/s "
          f"| cache hit | TTFT p90 vs rr | TTFT p90 vs lr | E2E p90 vs rr | tok/s vs rr |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for l, s, hit in rows:
        t, tp, e = s["ttft_ms"], s["tpot_ms"], s["e2e_ms"]
        r = lambda a, b: a / b if b else 0.0
        ttft90 = t["p90"]
        print(f"| {l} | {s['completed']} | {s['failed'] + s['shed']} | {t['p50']:.0f} ms | {ttft90:.0f} ms "
              f"| {t['p99']:.0f} ms | {tp['p50']:.1f} ms | {e['p90']:.0f} ms | {s['output_throughput']:.0f} "
              f"| {hit:.1f}% | {r(ttft90, base['ttft_ms']['p90']):.2f}x "
              f"| {r(ttft90, lr['ttft_ms']['p90']):.2f}x "
              f"| {r(e['p90'], base['e2e_ms']['p90']):.2f}x "
              f"| {r(s['output_throughput'], base['output_throughput']):.2f}x |")
print("\n(wall-clock ms; cache hit = the pods' prefix-cache hits / queries; ratios vs round-robin, lower is "
      "better for latency, higher for throughput)")
PYEOF

#!/usr/bin/env bash
# EPP benchmark: the latency `infergate epp` adds to each request, as seen by an Envoy stand-in written
# in C (bench/bench_epp_load.c: nghttp2 client sessions, one thread), against a null ext_proc server
# (`bench_epp_load --serve-null`: answers every message at once with a fixed destination, echoes body
# chunks, picks nothing) measured by the same client in the same run.
#
# Each request is one Process call: request_headers (FULL_DUPLEX_STREAMED), the body (one message with
# end_of_stream, or chunks), then the answer with x-gateway-destination-endpoint and the body streamed
# back; with RESPONSE=1 also response headers and body. Pick latency: last body byte sent -> request
# side answered. Rows: 4 KB and 220 KB bodies (220 KB also in 16 KB chunks), over 1 connection and over
# 16 (STREAMS calls at a time on each: closed loop, so the 16-connection rows measure throughput and
# the queueing it causes, the 1-connection rows the latency of one pick).
#
# usage: bench/epp.sh    env: INFERGATE_BIN (default build/infergate), LOAD_BIN (default: bench_epp_load
#                             next to INFERGATE_BIN), REQS (default 5000 requests per 4 KB run; 220 KB
#                             runs do REQS/5), SIMS (default 8 `infergate sim` pods, scraped; 0: unused
#                             ports, the picker's blind least-outstanding path), STREAMS (default 1),
#                             SCRAPE (the picker's --scrape-interval, default 50ms; a slower one for
#                             SIMS=1000), DISCOVER (1: no --model, the pods' models are discovered),
#                             ROWS (all, or small: the 4 KB rows only), RESPONSE (default 0), MODE
#                             (duplex | buffered; default duplex), ROUNDS (default 3: every row runs
#                             null, epp, null, epp...; the table shows the median of each number over
#                             the rounds, which tames a busy machine)
# A large pool: SIMS=1000 SCRAPE=1s ROWS=small bench/epp.sh (one sim process serves all the pods).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
LOAD="${LOAD_BIN:-$(dirname "$BIN")/bench_epp_load}"
[ -x "$LOAD" ] || { echo "build bench_epp_load first (cmake --build <dir> --target bench_epp_load)" >&2; exit 1; }
REQS=${REQS:-5000}
ROUNDS=${ROUNDS:-3}
SIMS=${SIMS:-8}
STREAMS=${STREAMS:-1}
RESPONSE=${RESPONSE:-0}
MODE=${MODE:-duplex}
SCRAPE=${SCRAPE:-50ms}
DISCOVER=${DISCOVER:-0}

if [ "$SIMS" -gt 0 ]; then
  ig_start_sims epp "$SIMS" --model llama3
  eps="$SIM_EPS"
else
  base="$(ig_free_ports 3)"
  eps="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))" # nothing listens: blind picks
fi
ports="$(ig_free_ports 3)"
gport=$ports
nport=$((ports + 1))
mport=$((ports + 2))
models=(--model llama3)
[ "$DISCOVER" = 1 ] && models=()
"$BIN" epp --endpoints "$eps" "${models[@]}" --scrape-interval "$SCRAPE" --grpc "127.0.0.1:$gport" --health off \
  --metrics "127.0.0.1:$mport" --log-level warn >"$ig_work/epp.log" 2>&1 & pids+=($!)
"$LOAD" --serve-null "127.0.0.1:$nport" >"$ig_work/null.log" 2>&1 & pids+=($!)
ig_wait_port "$gport"
ig_wait_port "$nport"
sleep 0.3 # a first scrape of every pod
ig_wait_port "$mport"
[ "$SIMS" -gt 100 ] && sleep 2 # ... of many pods

extra=(--streams "$STREAMS" --mode "$MODE" --json)
[ "$RESPONSE" = 1 ] && extra+=(--response)
shown="$eps"
[ "$SIMS" -gt 8 ] && shown="${eps%%,*},... ($SIMS)"
echo "infergate epp on 127.0.0.1:$gport, endpoints $shown (sims: $SIMS, scraped every $SCRAPE, discovery $DISCOVER);" \
  "null ext_proc on 127.0.0.1:$nport;" \
  "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); mode $MODE, streams/conn $STREAMS, response $RESPONSE"
: >"$ig_work/results.jsonl"
rows=("4096 0 1" "4096 0 16" "225280 0 1" "225280 0 16" "225280 16384 1" "225280 16384 16")
[ "${ROWS:-all}" = small ] && rows=("4096 0 1" "4096 0 16")
for row in "${rows[@]}"; do
  read -r size chunk conns <<<"$row"
  n=$REQS
  [ "$size" -gt 4096 ] && n=$((REQS / 5))
  [ "$n" -lt "$conns" ] && n=$conns
  for ((r = 0; r < ROUNDS; r++)); do
    for target in null epp; do
      port=$gport
      [ $target = null ] && port=$nport
      echo "  $target: $LOAD --addr 127.0.0.1:$port --conns $conns --body-bytes $size --chunk $chunk --requests $n ${extra[*]}" >&2
      "$LOAD" --addr "127.0.0.1:$port" --conns "$conns" --body-bytes "$size" --chunk "$chunk" --requests "$n" \
        --label "$target" "${extra[@]}" >>"$ig_work/results.jsonl"
    done
  done
done

$PY - "$ig_work/results.jsonl" <<'PYEOF'
import json, sys
from statistics import median
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}  # (body, chunk, conns) -> {"null": [runs], "epp": [runs]}, in the order run
for r in runs:
    groups.setdefault((r["body_bytes"], r["chunk"], r["conns"]), {}).setdefault(r["label"], []).append(r)

def med(rs):
    m = dict(rs[0])
    for k in ("picks_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms"):
        m[k] = median(x[k] for x in rs)
    m["errors"] = sum(x["errors"] for x in rs)
    return m

rows = []
for g in groups.values():
    rows += [med(g["null"]), med(g["epp"])]
print("| body | chunk | conns | null picks/s | epp picks/s | null p50 ms | epp p50 ms | null p99 ms | epp p99 ms "
      "| added p50 ms | added p99 ms | epp p99 / null p99 | errors epp/null |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for i in range(0, len(rows), 2):
    b, e = rows[i], rows[i + 1]
    size = "%d KB" % (e["body_bytes"] // 1024)
    chunk = "%d KB" % (e["chunk"] // 1024) if e["chunk"] else "whole"
    ratio = e["p99_ms"] / b["p99_ms"] if b["p99_ms"] > 0 else 0
    print(f"| {size} | {chunk} | {e['conns']} | {b['picks_per_s']:.0f} | {e['picks_per_s']:.0f} | "
          f"{b['p50_ms']:.3f} | {e['p50_ms']:.3f} | {b['p99_ms']:.3f} | {e['p99_ms']:.3f} | "
          f"{e['p50_ms'] - b['p50_ms']:+.3f} | {e['p99_ms'] - b['p99_ms']:+.3f} | {ratio:.2f} | {e['errors']}/{b['errors']} |")
PYEOF

# the picker's own account of the time it spent per decision (GIE's scheduler e2e histogram)
read -r mean count <<<"$(ig_sched_e2e_mean "$mport")"
[ "$count" -gt 0 ] && printf '\npicker'"'"'s scheduler e2e (resolve + pick) over %s requests: mean %s us\n' "$count" "$mean"

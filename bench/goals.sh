#!/usr/bin/env bash
# The two README goals that `infergate demo` tables do not show directly, each with fresh simulated
# pods (`infergate sim`, A100 profile) per run:
#  - criticality overload: Critical p99 TTFT under 1.5x overload vs the same pool unloaded (0.3x),
#    through the inference pool (default scheduler: Sheddable is shed with 429 when every pod is
#    saturated), and nginx least_conn at the same overload for contrast (nothing is shed);
#  - lora-mix: six adapters with Zipf popularity on pods with 2 LoRA slots each, through nginx
#    least_conn, infergate least-request and the inference pool: TTFT and adapter loads.
# Adapter loads are the pods' infergate_sim_lora_loads_total after the run (fresh pods per run).
# Prints markdown tables (stdout). Usage: bench/goals.sh [--quick] [--pods N] [--goals criticality,lora-mix]
#                                            [--time-scale X] [--gauges live|step] [--json DIR]
# --gauges: how the simulated pods publish running / waiting / KV (docs/simulator.md): live (default
# here, as the documented runs), or step, as vLLM does, as of the last step's end.
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=4 QUICK=0 GOALS=criticality,lora-mix TS=4 JSONDIR="" GAUGES=live
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --pods) PODS="$2"; shift 2 ;;
    --goals) GOALS="$2"; shift 2 ;;
    --time-scale) TS="$2"; shift 2 ;;
    --json) JSONDIR="$2"; shift 2 ;;
    --gauges) GAUGES="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
. bench/lib.sh

NGINX="$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)"
[ -n "$NGINX" ] || echo "note: nginx is not installed; its rows are missing" >&2
MODEL=llama3
LORAS=lora-sql,lora-chat,lora-code,lora-math,lora-law,lora-med
# Capacity of one A100-profile pod with 16 sequences on ShareGPT-like requests (~250 in / 200 out):
# ~4.5 requests per simulated second (docs/simulator.md closed form; bench/routing.sh uses the same).
CAP_PER_POD=4.5
if [ "$QUICK" = 1 ]; then CRIT_REQ=90 LORA_REQ=90; else CRIT_REQ=900 LORA_REQ=400; fi
MAX_SEQS=16
SIM_COMMON=(--model "$MODEL" --profile llama3-8b-a100 --max-num-seqs "$MAX_SEQS" --time-scale "$TS" --seed 7
            --gauges "$GAUGES")
# wall-clock rate for a fraction of the pool's capacity (simulated time runs TS times faster)
rate_for() { awk -v f="$1" -v p="$PODS" -v c="$CAP_PER_POD" -v t="$TS" 'BEGIN {printf "%.2f", f * p * c * t}'; }

# Starts a target in front of SIM_EPS; sets GW. kind: pool (told the pods' batch size) | pool-learned
# (learns it from their metrics) | least-request | nginx-leastconn.
start_target() {
  local kind="$1" label="$2"
  GW="$(ig_free_ports 1)"
  case "$kind" in
    nginx-leastconn)
      local dir="$ig_work/nginx-$label" user=""
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
      {
        echo "worker_processes 1; daemon off; $user"
        echo "pid $dir/nginx.pid; error_log $dir/error.log warn;"
        echo "events { worker_connections 4096; }"
        echo "http { access_log off; client_body_temp_path $dir/cb; proxy_temp_path $dir/px;"
        echo "  fastcgi_temp_path $dir/fc; uwsgi_temp_path $dir/uw; scgi_temp_path $dir/sc;"
        echo "  client_max_body_size 64m; client_body_buffer_size 1m;"
        echo "  upstream pods { least_conn;"
        local ep
        for ep in ${SIM_EPS//,/ }; do echo "    server $ep max_fails=0;"; done
        echo "    keepalive 64; }"
        echo "  server { listen 127.0.0.1:$GW; location / { proxy_pass http://pods; proxy_http_version 1.1;"
        echo "    proxy_set_header Connection \"\"; proxy_buffering off; proxy_read_timeout 300s; } } }"
      } >"$dir/nginx.conf"
      "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$dir/stderr.log" & pids+=($!)
      ;;
    least-request)
      "$BIN" serve --listen "127.0.0.1:$GW" --backend "$SIM_EPS" --policy least-request --log-level warn \
        2>"$ig_work/gw-$label.log" & pids+=($!)
      ;;
    pool|pool-learned)
      # The pods' models and adapters are discovered (no InferenceModel), so the bench's
      # x-infergate-criticality header sets each request's class; one load generator on one address
      # needs more than the default 256 connections per client IP under overload.
      local cfg="$ig_work/gw-$label.yaml" ep
      {
        echo "listeners: [{name: web, address: \"127.0.0.1:$GW\"}]"
        echo "limits: {max_connections_per_ip: 0}"
        echo "pools:"
        echo "  - name: pods"
        echo "    engine: vllm"
        echo "    discovery_interval: 1s"
        if [ "$kind" = pool ]; then echo "    scheduling: {batch_slots: $MAX_SEQS}"; fi # the pods' --max-num-seqs
        echo "    endpoints:"
        for ep in ${SIM_EPS//,/ }; do echo "      - \"$ep\""; done
        echo "routes: [{name: all, matches: [{path: /}], backend: pods}]"
      } >"$cfg"
      "$BIN" serve -c "$cfg" --log-level warn 2>"$ig_work/gw-$label.log" & pids+=($!)
      ;;
  esac
  ig_wait_port "$GW"
}

# Sums the pods' infergate_sim_lora_loads_total (adapters made resident) into {"loads": N} in $1.
count_lora_loads() {
  $PY - "$1" "$SIM_EPS" <<'PYEOF'
import json, re, sys, urllib.request
out, eps = sys.argv[1], sys.argv[2].split(",")
loads = 0
for ep in eps:
    text = urllib.request.urlopen(f"http://{ep}/metrics", timeout=5).read().decode()
    m = re.search(r'^infergate_sim_lora_loads_total(?:\{[^}]*\})?\s+(\S+)', text, re.M)
    if not m:
        sys.exit(f"goals.sh: {ep}/metrics has no infergate_sim_lora_loads_total")
    loads += int(float(m.group(1)))
json.dump({"loads": loads}, open(out, "w"))
PYEOF
}

crit_run() { # label, target kind, load fraction
  local label="$1" kind="$2" frac="$3" rate
  rate="$(rate_for "$frac")"
  ig_start_sims "crit-$label" "$PODS" "${SIM_COMMON[@]}"
  start_target "$kind" "crit-$label"
  echo "==> criticality / $label: $kind at ${frac}x capacity ($rate req/s)" >&2
  "$BIN" bench --url "http://127.0.0.1:$GW" --model "$MODEL" --workload criticality --requests "$CRIT_REQ" \
    --rate "$rate" --seed 3 --label "$label" --no-progress --timeout 120 \
    --json "$ig_work/crit-$label.json" >"$ig_work/crit-$label.txt"
  ig_stop_all
}

lora_run() { # label, target kind
  local label="$1" kind="$2" rate
  rate="$(rate_for 0.8)"
  ig_start_sims "lora-$label" "$PODS" "${SIM_COMMON[@]}" --lora "$LORAS" --max-loras 2
  start_target "$kind" "lora-$label"
  echo "==> lora-mix / $label: $kind at 0.8x capacity ($rate req/s)" >&2
  "$BIN" bench --url "http://127.0.0.1:$GW" --model "$MODEL" --workload lora-mix --models "$MODEL,$LORAS" \
    --requests "$LORA_REQ" --rate "$rate" --seed 3 --label "$label" --no-progress --timeout 120 \
    --json "$ig_work/lora-$label.json" >"$ig_work/lora-$label.txt"
  count_lora_loads "$ig_work/lora-$label.loads.json"
  ig_stop_all
}

IFS=, read -r -a goals <<<"$GOALS"
for g in "${goals[@]}"; do
  case "$g" in
    criticality)
      crit_run unloaded pool 0.3
      crit_run overload pool 1.5
      crit_run overload-learned pool-learned 1.5
      [ -n "$NGINX" ] && crit_run nginx-overload nginx-leastconn 1.5
      ;;
    lora-mix)
      [ -n "$NGINX" ] && lora_run nginx-leastconn nginx-leastconn
      lora_run least-request least-request
      lora_run pool pool
      ;;
    *) echo "unknown goal $g" >&2; exit 2 ;;
  esac
done
[ -n "$JSONDIR" ] && mkdir -p "$JSONDIR" && cp "$ig_work"/*.json "$JSONDIR"/

$PY - "$ig_work" "$PODS" "$TS" "$GOALS" "$CRIT_REQ" "$LORA_REQ" <<'PYEOF'
import json, os, sys
work, pods, ts, goals, crit_req, lora_req = sys.argv[1:7]
goals = goals.split(",")
def load(name):
    p = os.path.join(work, name)
    return json.load(open(p)) if os.path.exists(p) else None
def f(x, fmt="{:.0f}"):
    return "-" if x is None else fmt.format(x)
if "criticality" in goals:
    runs = [(l, load(f"crit-{l}.json")) for l in ("unloaded", "overload", "overload-learned", "nginx-overload")]
    runs = [(l, d) for l, d in runs if d]
    base = dict(runs).get("unloaded")
    base_p99 = base["summary"]["by_class"]["Critical"]["ttft_ms"]["p99"] if base else None
    print(f"\n### Criticality overload ({pods} pods, time scale {ts}, {crit_req} requests per run, "
          "1/3 each Critical / Standard / Sheddable)\n")
    print("| run | offered | class | sent | done | shed | failed | TTFT p50 | TTFT p99 | Critical p99 vs unloaded |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for l, d in runs:
        s = d["summary"]
        for cls in ("Critical", "Standard", "Sheddable"):
            g = (s.get("by_class") or {}).get(cls)
            if not g:
                continue
            t = g["ttft_ms"]
            ratio = (f"{t['p99'] / base_p99:.2f}x" if cls == "Critical" and base_p99 and t["count"] else "")
            print(f"| {l} | {s['rate']:.1f} req/s | {cls} | {g['sent']} | {g['completed']} | {g['shed']} | "
                  f"{g['failed']} | {f(t['p50'] if t['count'] else None)} ms | "
                  f"{f(t['p99'] if t['count'] else None)} ms | {ratio} |")
    print("\noverload: the pool is told the pods' batch size (scheduling.batch_slots); overload-learned: it "
          "learns it from their metrics.")
    print("\nGoal: Critical p99 TTFT under overload within 2x of its unloaded value while Sheddable is shed.")
if "lora-mix" in goals:
    runs = [(l, load(f"lora-{l}.json"), load(f"lora-{l}.loads.json"))
            for l in ("nginx-leastconn", "least-request", "pool")]
    runs = [r for r in runs if r[1]]
    base = runs[0] if runs else None
    print(f"\n### LoRA mix ({pods} pods, 2 LoRA slots each, 6 adapters + base model, Zipf popularity, "
          f"time scale {ts}, {lora_req} requests per run, 0.8x capacity)\n")
    print("| target | done | failed+shed | TTFT p50 | TTFT p90 | TTFT p99 | adapter loads | loads vs base | TTFT p90 vs base |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for l, d, c in runs:
        s, t = d["summary"], d["summary"]["ttft_ms"]
        loads = c["loads"] if c else None
        bl = base[2]["loads"] if base and base[2] else None
        bt = base[1]["summary"]["ttft_ms"]["p90"]
        print(f"| {l}{' (base)' if base and l == base[0] else ''} | {s['completed']} | {s['failed']}+{s['shed']} | "
              f"{t['p50']:.0f} ms | {t['p90']:.0f} ms | {t['p99']:.0f} ms | {f(loads)} | "
              f"{f(loads / bl if loads is not None and bl else None, '{:.2f}x')} | "
              f"{f(t['p90'] / bt if bt else None, '{:.2f}x')} |")
    print("\nGoal: fewer adapter loads and lower TTFT than least_conn. Loads: the pods' "
          "infergate_sim_lora_loads_total.")
PYEOF

# Shell helpers for the benchmark scripts (source it; bash only).
# Provides: PY, BIN, ig_work (temp dir, removed at exit), pids + ig_stop_all, ig_free_ports N,
# ig_wait_port PORT, ig_start_sims LABEL PODS ARGS... (sets SIM_EPS "h:p,h:p"), ig_sim_cache_json
# BASE PODS FILE (prefix-cache hits/queries summed over the pods), ig_sched_e2e_mean ADMIN_PORT.

PY=/usr/bin/python3
BIN="${INFERGATE_BIN:-build/infergate}"
[ -x "$BIN" ] || { echo "build first: make (or set INFERGATE_BIN)" >&2; exit 1; }

ig_work="$(mktemp -d)"
pids=()
ig_stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'ig_stop_all; rm -rf "$ig_work"' EXIT

# N consecutive free ports; prints the first.
ig_free_ports() {
  $PY - "$1" <<'PYEOF'
import random, socket, sys
n = int(sys.argv[1])
# below the ephemeral range (32768+), so client connections' TIME_WAIT ports never collide
for _ in range(500):
    base = random.randrange(15000, 32000 - n)
    socks = []
    try:
        for i in range(n):
            t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind(("127.0.0.1", base + i)); socks.append(t)
        print(base); break
    except OSError:
        pass
    finally:
        for t in socks: t.close()
PYEOF
}

ig_wait_port() {
  local _
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "port $1 never opened" >&2
  exit 1
}

# Starts PODS fresh sim pods (extra sim arguments follow); sets SIM_BASE and SIM_EPS.
ig_start_sims() {
  local label="$1" pods="$2" i
  shift 2
  SIM_BASE="$(ig_free_ports "$pods")"
  SIM_EPS=""
  for ((i = 0; i < pods; i++)); do SIM_EPS+="${SIM_EPS:+,}127.0.0.1:$((SIM_BASE + i))"; done
  "$BIN" sim --pods "$pods" --base-port "$SIM_BASE" "$@" 2>"$ig_work/sim-$label.log" & pids+=($!)
  for ((i = 0; i < pods; i++)); do ig_wait_port $((SIM_BASE + i)); done
}

# The mean of inference_extension_scheduler_e2e_duration_seconds on http://127.0.0.1:PORT/metrics, in
# microseconds ("0" when nothing was observed), and the count after it: "MEAN COUNT".
ig_sched_e2e_mean() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '
    /^inference_extension_scheduler_e2e_duration_seconds_sum / {s = $NF}
    /^inference_extension_scheduler_e2e_duration_seconds_count / {n = $NF}
    END {printf "%.1f %d\n", n ? s / n * 1e6 : 0, n}'
}

# Writes {"hits": H, "queries": Q}: the pods' own prefix-cache counters (vLLM dialect).
ig_sim_cache_json() {
  local base="$1" pods="$2" out="$3" hits=0 queries=0 m i
  for ((i = 0; i < pods; i++)); do
    m="$(curl -s "http://127.0.0.1:$((base + i))/metrics")"
    hits=$(awk -v h="$hits" '/^vllm:prefix_cache_hits_total/ {h += $NF} END {printf "%d", h}' <<<"$m")
    queries=$(awk -v q="$queries" '/^vllm:prefix_cache_queries_total/ {q += $NF} END {printf "%d", q}' <<<"$m")
  done
  echo "{\"hits\": $hits, \"queries\": $queries}" >"$out"
}

#!/usr/bin/env bash
# EPP benchmark: per-request latency added by `infergate epp` as seen by an Envoy stand-in (python
# grpcio + tests/integration/eppclient.py), against a baseline ext_proc server in Python that answers
# CONTINUE without picking, in the same run. Each request is one Process stream: request_headers
# (FULL_DUPLEX_STREAMED), the body in one request_body with end_of_stream, then every response up to
# the last body chunk. Sequential over 1 connection, then 16 connections at once; 4 KB and 220 KB.
#
# usage: bench/epp.sh            env: INFERGATE_BIN (default build/infergate), REQS (default 2000:
#                                     requests per 4 KB run; 220 KB runs do REQS/4), SIMS (default 0:
#                                     endpoints are unused ports, the picker's blind least-outstanding
#                                     path; N: N `infergate sim` pods are started and scraped)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${INFERGATE_BIN:-build/infergate}
REQS=${REQS:-2000}
SIMS=${SIMS:-0}
PY=/usr/bin/python3
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2
  exit 1
}

eps=""
if [ "$SIMS" -gt 0 ]; then
  base=$(port)
  "$BIN" sim --pods "$SIMS" --base-port "$base" --model llama3 --log-level warn >"$tmp/sim.log" 2>&1 &
  pids+=($!)
  for i in $(seq 0 $((SIMS - 1))); do wait_port $((base + i)); eps="$eps${eps:+,}127.0.0.1:$((base + i))"; done
else
  for _ in 1 2 3; do eps="$eps${eps:+,}127.0.0.1:$(port)"; done # nothing listens: blind picks
fi
gport=$(port)
"$BIN" epp --endpoints "$eps" --model llama3 --grpc "127.0.0.1:$gport" --health off --metrics off \
  --log-level warn >"$tmp/epp.log" 2>&1 &
pids+=($!)
bport=$(port)

cat >"$tmp/driver.py" <<'PYEOF'
import json, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
import grpc
sys.path.insert(0, "tests/integration")
import eppclient as E

def baseline(port):
    """A trivial ext_proc server: CONTINUE to every message, no picking, no body handling."""
    def process(reqs, ctx):
        for m in reqs:
            d = E.decode(m)
            if 2 in d:
                yield E.f_bytes(1, E.f_bytes(1, b""))
            elif 4 in d:
                yield E.f_bytes(3, E.f_bytes(1, b""))
            elif 3 in d:
                yield E.f_bytes(2, E.f_bytes(1, b""))
            elif 5 in d:
                yield E.f_bytes(4, E.f_bytes(1, b""))
    ident = lambda x: x
    h = grpc.method_handlers_generic_handler("envoy.service.ext_proc.v3.ExternalProcessor", {
        "Process": grpc.stream_stream_rpc_method_handler(process, request_deserializer=ident,
                                                         response_serializer=ident)})
    srv = grpc.server(ThreadPoolExecutor(max_workers=40), handlers=(h,),
                      options=[("grpc.max_receive_message_length", 8 << 20)])
    srv.add_insecure_port(f"127.0.0.1:{port}")
    srv.start()
    return srv

def one(fn, msgs):
    t0 = time.perf_counter()
    call = fn(iter(msgs), timeout=30)
    for raw in call:
        r = E.parse_response(raw)
        if r["kind"] == "immediate_response":
            raise SystemExit("immediate response %s: %s" % (r.get("status"), r["body"][:200]))
        if r["kind"] == "request_body" and (r["streamed"] is None or r["streamed"][1]):
            break
    dt = time.perf_counter() - t0
    call.cancel()
    return dt

def run(port, size, conns, n):
    prompt = "x" * (size - 60)
    body = json.dumps({"model": "llama3", "prompt": prompt, "max_tokens": 4}).encode()
    msgs = [E.request_headers(E.post_headers(), protocol_config=(E.FULL_DUPLEX_STREAMED, E.NONE)),
            E.request_body(body, eos=True)]
    lat = []
    lock = threading.Lock()
    def worker(k):
        with E.channel(port) as ch:
            fn = ch.stream_stream(E.PROCESS, request_serializer=lambda x: x, response_deserializer=lambda x: x)
            for _ in range(5):
                one(fn, msgs)  # warm-up
            mine = [one(fn, msgs) for _ in range(k)]
        with lock:
            lat.extend(mine)
    per = max(1, n // conns)
    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(per,)) for _ in range(conns)]
    for t in ths: t.start()
    for t in ths: t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    return len(lat) / wall, q(0.50), q(0.99)

epp_port, base_port, reqs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
srv = baseline(base_port)
print("| body | conns | requests | epp req/s | epp p50 ms | epp p99 ms | base req/s | base p50 ms | base p99 ms | p50 ratio | p99 ratio | added p50 ms | added p99 ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for size, label in ((4096, "4 KB"), (220 * 1024, "220 KB")):
    n = reqs if size == 4096 else max(16, reqs // 4)
    for conns in (1, 16):
        e = run(epp_port, size, conns, n)
        b = run(base_port, size, conns, n)
        print(f"| {label} | {conns} | {n // conns * conns} | {e[0]:.0f} | {e[1]:.2f} | {e[2]:.2f} | {b[0]:.0f} | "
              f"{b[1]:.2f} | {b[2]:.2f} | {e[1] / b[1]:.2f} | {e[2] / b[2]:.2f} | {e[1] - b[1]:+.2f} | "
              f"{e[2] - b[2]:+.2f} |", flush=True)
srv.stop(0)
PYEOF

wait_port "$gport"
echo "infergate epp on 127.0.0.1:$gport, endpoints $eps (sims: $SIMS); baseline on 127.0.0.1:$bport; $(nproc) cores"
$PY "$tmp/driver.py" "$gport" "$bport" "$REQS"

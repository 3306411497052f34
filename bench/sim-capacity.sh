#!/usr/bin/env bash
# Simulator capacity: one pod (llama3-8b-h100), Poisson arrivals at rising request rates, ShareGPT-like
# lengths (mean ~250 prompt / ~200 output tokens). Prints completed requests/s, output tokens/s and
# p50/p90 TTFT per rate, in simulated time, and the p50 TTFT as a ratio of the unloaded TTFT measured
# in the same run.
# Usage: bench/sim-capacity.sh [--rates "5 10 20 40 80 160"] [--duration SIM_SECONDS] [--time-scale X]
#                              [--profile NAME] [--seed N]
set -euo pipefail
cd "$(dirname "$0")/.."
RATES="5 10 20 40 80 160" DURATION=10 SCALE=0.5 PROFILE=llama3-8b-h100 SEED=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) RATES="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --time-scale) SCALE="$2"; shift 2 ;;
    --profile) PROFILE="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BIN="${INFERGATE_BIN:-build/infergate}"
[ -x "$BIN" ] || { echo "build infergate first (make)" >&2; exit 1; }
PY=/usr/bin/python3

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" sim --pods 1 --base-port "$PORT" --model bench --profile "$PROFILE" --time-scale "$SCALE" \
  --max-waiting 100000 --seed "$SEED" 2>/dev/null &
SIM=$!
trap 'kill $SIM 2>/dev/null || true; wait $SIM 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

$PY - "$PORT" "$SCALE" "$DURATION" "$SEED" $RATES <<'EOF'
import asyncio, json, math, random, sys, time

port, scale, duration, seed = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rates = [float(r) for r in sys.argv[5:]]
rng = random.Random(seed)

def lengths():
    # long-tailed (lognormal) lengths with means ~250 / ~200 tokens
    p = min(2048, max(4, int(rng.lognormvariate(math.log(250) - 0.5, 1.0))))
    o = min(1024, max(1, int(rng.lognormvariate(math.log(200) - 0.5, 1.0))))
    return p, o

async def one(n_prompt, n_out, tag):
    prompt = f"{tag:010d} " + "lorem ipsum dolor sit amet " * (n_prompt * 4 // 27 + 1)
    body = json.dumps({"model": "bench", "prompt": prompt[: n_prompt * 4], "max_tokens": n_out,
                       "stream": True}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    t0 = time.monotonic()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(head + body)
    await w.drain()
    first, buf = None, b""
    while True:
        data = await r.read(65536)
        if not data:
            break
        buf += data
        if first is None and b"data: {" in buf:
            first = time.monotonic()
        if buf.endswith(b"0\r\n\r\n"):
            break
    w.close()
    ok = buf.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in buf
    return ok, (first - t0) * scale if first else None, buf.count(b"data: {")

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

async def run_rate(rate, tag0):
    tasks, t = [], 0.0
    start = time.monotonic()
    wall = duration / scale
    while t < wall:
        t += rng.expovariate(rate * scale)
        delay = start + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        p, o = lengths()
        tasks.append(asyncio.create_task(one(p, o, tag0 + len(tasks))))
    res = await asyncio.gather(*tasks)
    elapsed = (time.monotonic() - start) * scale
    ttfts = [x[1] for x in res if x[0] and x[1] is not None]
    toks = sum(x[2] for x in res if x[0])
    return sum(1 for x in res if x[0]) / elapsed, toks / elapsed, pct(ttfts, 0.5), pct(ttfts, 0.9), len(res) - len(ttfts)

async def main():
    idle = []
    for i in range(5):
        ok, ttft, _ = await one(250, 1, 10**9 + i)
        idle.append(ttft)
    base = pct(idle, 0.5)
    print(f"unloaded TTFT (250-token prompt): {base * 1000:.1f} ms (simulated time, time scale {scale})")
    print(f"{'rate/s':>8} {'done/s':>8} {'out tok/s':>10} {'p50 TTFT ms':>12} {'p90 TTFT ms':>12} {'p50/unloaded':>13} {'failed':>7}")
    for i, rate in enumerate(rates):
        rps, tps, p50, p90, failed = await run_rate(rate, i * 10**6)
        print(f"{rate:8.1f} {rps:8.1f} {tps:10.0f} {p50 * 1000:12.1f} {p90 * 1000:12.1f} {p50 / base:13.2f} {failed:7d}",
              flush=True)

asyncio.run(main())
EOF

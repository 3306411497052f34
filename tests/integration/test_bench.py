"""Integration tests for `infergate bench` against the small SSE test server (tests/integration/
sse_server.py) and, when the binary has it, against `infergate sim`.

Only relations are asserted (counts add up, ttft <= e2e, tokens == max_tokens), never absolute
latencies: CI is busy and also runs these under ASan."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import SLOW, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"

SUMMARY_KEYS = {
    "label": (str, type(None)), "url": str, "endpoint": str, "model": str, "workload": str, "mode": str,
    "rate": (float, int, type(None)), "concurrency": (int, type(None)), "stream": bool, "seed": int,
    "requests_sent": int, "completed": int, "failed": int, "shed": int, "connections": int,
    "interrupted": bool, "duration_s": (float, int), "request_throughput": (float, int),
    "output_throughput": (float, int), "input_throughput": (float, int), "total_input_tokens": int,
    "total_output_tokens": int, "percentile_method": str, "ttft_ms": dict, "tpot_ms": dict,
    "itl_ms": dict, "e2e_ms": dict, "status_counts": dict, "errors": dict,
    "arrival": (str, type(None)), "burstiness": (float, int, type(None)), "max_tokens_cap": (int, type(None)),
    "dataset": (dict, type(None)), "slo": (dict, type(None)), "goodput": (float, int, type(None)),
    "goodput_requests": (int, type(None)), "goodput_fraction": (float, int, type(None)),
    "by_class": (dict, type(None)), "by_model": (dict, type(None)),
}
STAT_KEYS = {"count", "mean", "stddev", "min", "max", "p50", "p90", "p95", "p99"}
NUM_OR_NONE = (float, int, type(None))
REQUEST_KEYS = {
    "id": int, "status": int, "ok": bool, "shed": bool, "error": (str, type(None)), "prompt_tokens": int,
    "max_tokens": int, "output_tokens": int, "chunks": int, "start_ms": (float, int), "ttft_ms": NUM_OR_NONE,
    "tpot_ms": NUM_OR_NONE, "e2e_ms": NUM_OR_NONE, "itl_ms_mean": NUM_OR_NONE, "model": str,
    "class": (str, type(None)), "group": (int, type(None)),
}


def check_sanitizers(text):
    for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        assert marker not in text, f"sanitizer report from bench:\n{text[-4000:]}"


def run_bench(binary, tmp_path, args, timeout=120, expect_rc=0):
    """Runs bench to completion with --json; returns (completed process, parsed JSON)."""
    out = tmp_path / f"bench-{time.monotonic_ns()}.json"
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    p = subprocess.run([binary, "bench", *map(str, args), "--json", str(out)], capture_output=True, text=True,
                       timeout=timeout * SLOW, env=env, stdin=subprocess.DEVNULL)
    check_sanitizers(p.stderr)
    assert p.returncode == expect_rc, f"rc {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr[-3000:]}"
    with open(out) as f:
        return p, json.load(f)


@pytest.fixture
def sse(procs):
    """Starts the SSE test server; returns a function giving (url, stats getter)."""
    def start(*extra):
        port = free_port()
        procs.start("sse_server", [PY, os.path.join(HERE, "sse_server.py"), "--port", port, *extra],
                    wait_port=port)
        url = f"http://127.0.0.1:{port}"

        def stats():
            import urllib.request
            with urllib.request.urlopen(url + "/stats", timeout=10) as r:
                return json.load(r)
        return url, stats
    return start


def check_consistency(d):
    s, reqs = d["summary"], d["requests"]
    assert s["requests_sent"] == len(reqs)
    assert s["completed"] + s["failed"] + s["shed"] == s["requests_sent"]
    assert s["completed"] == sum(r["ok"] for r in reqs)
    assert s["shed"] == sum(r["shed"] for r in reqs)
    assert sum(s["status_counts"].values()) == s["requests_sent"]
    assert len({r["id"] for r in reqs}) == len(reqs)
    assert sum(s["errors"].values()) == sum(1 for r in reqs if r["error"] is not None)
    for r in reqs:
        if r["ok"]:
            assert r["error"] is None and 200 <= r["status"] < 300
            assert r["ttft_ms"] is not None and r["e2e_ms"] is not None
            assert 0 <= r["ttft_ms"] <= r["e2e_ms"]
        else:
            assert r["error"]
        assert not (r["ok"] and r["shed"])
    ok = [r for r in reqs if r["ok"]]
    assert s["e2e_ms"]["count"] == len(ok)
    assert s["total_output_tokens"] == sum(r["output_tokens"] for r in ok)
    for k in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        st = s[k]
        if st["count"]:
            assert st["min"] <= st["p50"] <= st["p90"] <= st["p95"] <= st["p99"] <= st["max"]
            assert st["min"] <= st["mean"] <= st["max"]


def test_closed_loop_completes_exactly_n(infergate_bin, tmp_path, sse):
    url, stats = sse()
    p, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "m", "--workload", "fixed",
                                               "--input-mean", 16, "--output-mean", 8, "--concurrency", 4,
                                               "--requests", 30, "--label", "exact"])
    check_consistency(d)
    s = d["summary"]
    assert (s["requests_sent"], s["completed"], s["failed"], s["shed"]) == (30, 30, 0, 0)
    assert s["label"] == "exact" and s["mode"] == "concurrency" and s["concurrency"] == 4
    assert sorted(r["id"] for r in d["requests"]) == list(range(30))
    for r in d["requests"]:
        assert r["status"] == 200 and r["ok"]
        assert r["prompt_tokens"] == 16 and r["max_tokens"] == 8
        assert r["output_tokens"] == r["max_tokens"] == r["chunks"]
        assert r["tpot_ms"] is not None and r["tpot_ms"] >= 0
    # keep-alive: never more connections than workers, and the server saw exactly 30 requests
    assert 1 <= s["connections"] <= 4
    st = stats()
    assert st["requests"] == 30
    assert st["connections"] <= s["connections"] + 2  # + the fixture's port probe and this stats call
    assert s["itl_ms"]["count"] == 30 * 7
    assert "completed 30" in p.stdout and "TTFT" in p.stdout and "p99" in p.stdout


def test_mixed_outcomes_add_up(infergate_bin, tmp_path, sse):
    """Each model name makes the server behave differently; every record must match it."""
    url, _ = sse("--split")
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--workload", "lora-mix",
                                               "--models", "ok,shed,reset,error,close,drop",
                                               "--output-mean", 20, "--concurrency", 3, "--requests", 80])
    check_consistency(d)
    by_model = {}
    for r in d["requests"]:
        by_model.setdefault(r["model"], []).append(r)
        m = r["model"]
        if m == "shed":
            assert r["status"] == 429 and r["shed"] and not r["ok"]
        elif m == "reset":
            assert not r["ok"] and not r["shed"] and r["status"] == 200
            assert "mid-response" in r["error"]
        elif m == "error":
            assert r["status"] == 500 and not r["ok"] and not r["shed"]
            assert "injected failure" in r["error"]
        else:
            assert r["ok"], r
            assert r["output_tokens"] == r["max_tokens"]
    # Zipf popularity: the first model is the most frequent
    counts = {m: len(v) for m, v in by_model.items()}
    assert counts["ok"] == max(counts.values())
    s = d["summary"]
    assert s["shed"] == counts.get("shed", 0)
    assert s["failed"] == counts.get("reset", 0) + counts.get("error", 0)


def test_429_counted_as_shed(infergate_bin, tmp_path, sse):
    url, _ = sse()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "shed-me", "--requests", 12,
                                               "--concurrency", 3])
    check_consistency(d)
    s = d["summary"]
    assert (s["requests_sent"], s["shed"], s["completed"], s["failed"]) == (12, 12, 0, 0)
    assert s["status_counts"] == {"429": 12}
    assert all("429" in r["error"] for r in d["requests"])


def test_reset_mid_stream_counts_as_failed(infergate_bin, tmp_path, sse):
    url, _ = sse()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "reset", "--requests", 6,
                                               "--concurrency", 2, "--output-mean", 50])
    check_consistency(d)
    s = d["summary"]
    assert (s["requests_sent"], s["failed"], s["completed"], s["shed"]) == (6, 6, 0, 0)
    for r in d["requests"]:
        assert r["status"] == 200 and not r["ok"] and "mid-response" in r["error"]


def test_idle_close_is_retried(infergate_bin, tmp_path, sse):
    """A server that closes kept-alive connections after each answer costs nothing but new
    connections: the reuse attempt fails before any byte and is retried once."""
    url, stats = sse()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "drop", "--requests", 20,
                                               "--concurrency", 2, "--output-mean", 10])
    check_consistency(d)
    assert d["summary"]["completed"] == 20
    assert stats()["requests"] == 20


def test_json_schema(infergate_bin, tmp_path, sse):
    url, _ = sse()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "m", "--requests", 8, "--concurrency", 2,
                                               "--workload", "criticality"])
    assert set(d) == {"summary", "requests"}
    s = d["summary"]
    for k, t in SUMMARY_KEYS.items():
        assert k in s, k
        assert isinstance(s[k], t), (k, s[k])
    for k in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert set(s[k]) == STAT_KEYS
    assert s["percentile_method"] == "nearest-rank" and s["workload"] == "criticality"
    assert len(d["requests"]) == 8
    for r in d["requests"]:
        for k, t in REQUEST_KEYS.items():
            assert k in r, k
            assert isinstance(r[k], t), (k, r[k])
        assert r["class"] in ("Critical", "Standard", "Sheddable")
    check_consistency(d)


def test_criticality_header_and_extra_headers(infergate_bin, tmp_path, sse):
    url, stats = sse()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "m", "--workload", "criticality",
                                               "--requests", 30, "--concurrency", 3, "--output-mean", 8,
                                               "--header", "x-test: yes"])
    check_consistency(d)
    want = {}
    for r in d["requests"]:
        want[r["class"]] = want.get(r["class"], 0) + 1
    st = stats()
    assert st["criticality"] == want
    assert st["x-test"] == {"yes": 30}


def test_criticality_models(infergate_bin, tmp_path, sse):
    url, stats = sse()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--workload", "criticality", "--models",
                                               "ok-c,ok-s,shed-x", "--requests", 30, "--concurrency", 3,
                                               "--output-mean", 8])
    check_consistency(d)
    models = {"Critical": "ok-c", "Standard": "ok-s", "Sheddable": "shed-x"}
    for r in d["requests"]:
        assert r["model"] == models[r["class"]]
        assert r["shed"] == (r["class"] == "Sheddable")
    assert stats()["criticality"] == {}  # the models carry the class, not the header


def test_chat_without_streaming(infergate_bin, tmp_path, sse):
    url, _ = sse()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--endpoint", "/v1/chat/completions", "--model", "m",
                                               "--no-stream", "--requests", 10, "--concurrency", 2,
                                               "--workload", "shared-prefix", "--groups", 2,
                                               "--prompts-per-group", 3, "--system-len", 32, "--question-len", 4,
                                               "--output-mean", 5])
    check_consistency(d)
    s = d["summary"]
    assert s["completed"] == 10 and not s["stream"] and s["endpoint"] == "/v1/chat/completions"
    for r in d["requests"]:
        assert r["output_tokens"] == r["max_tokens"] == 5
        assert r["ttft_ms"] == r["e2e_ms"]
        assert r["group"] in (0, 1) and r["prompt_tokens"] == 36


def test_rate_mode_with_duration(infergate_bin, tmp_path, sse):
    url, _ = sse()
    t0 = time.monotonic()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "m", "--rate", 40, "--duration", 1,
                                               "--output-mean", 8, "--input-mean", 16])
    check_consistency(d)
    s = d["summary"]
    assert s["mode"] == "rate" and s["rate"] == 40 and s["concurrency"] is None
    assert 1 <= s["requests_sent"] <= 400
    assert s["completed"] == s["requests_sent"]
    assert time.monotonic() - t0 < 60 * SLOW
    starts = [r["start_ms"] for r in d["requests"]]
    assert max(starts) <= 1000 + 500 * SLOW  # nothing is sent after the duration (tick slack allowed)


def test_connect_refused(infergate_bin, tmp_path):
    port = free_port()  # nothing listens there
    _, d = run_bench(infergate_bin, tmp_path, ["--url", f"http://127.0.0.1:{port}", "--model", "m",
                                               "--requests", 5, "--concurrency", 2])
    check_consistency(d)
    s = d["summary"]
    assert (s["requests_sent"], s["failed"]) == (5, 5)
    assert all(r["status"] == 0 and r["error"].startswith("connect") for r in d["requests"])


def test_timeout_bounds_the_run(infergate_bin, tmp_path, sse):
    url, _ = sse("--token-delay-ms", "200")
    t0 = time.monotonic()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "m", "--workload", "fixed",
                                               "--output-mean", 1000, "--requests", 2, "--concurrency", 2,
                                               "--timeout", 1])
    assert time.monotonic() - t0 < 30 * SLOW
    check_consistency(d)
    assert d["summary"]["failed"] == 2
    assert all("timeout" in r["error"] for r in d["requests"])


def test_sigint_writes_partial_results(infergate_bin, tmp_path, sse, procs):
    url, _ = sse("--token-delay-ms", "20")
    out = tmp_path / "int.json"
    p = procs.start("bench", [infergate_bin, "bench", "--url", url, "--model", "m", "--duration", 600,
                              "--concurrency", 2, "--output-mean", 50, "--json", out])
    time.sleep(1.0)
    procs.stop(p, sig=signal.SIGINT)
    assert p.popen.returncode == 0, p.log()
    d = json.loads(out.read_text())
    assert d["summary"]["interrupted"] is True
    check_consistency(d)


@pytest.mark.parametrize("args,msg", [
    (["--model", "m"], "--url is required"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--rate", "1", "--concurrency", "2"], "exclude"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--workload", "nope"], "unknown workload"),
    (["--url", "https://127.0.0.1:1", "--model", "m"], "https"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--requests", "x"], "--requests"),
    (["--url", "http://127.0.0.1:1", "--workload", "lora-mix", "--model", "m"], "--models"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--header", "nocolon"], "--header"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--bogus", "1"], "unknown option"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--slo", "ttft=fast"], "--slo"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--slo", "itl=5ms"], "--slo"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--burstiness", "2"], "need --rate"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--rate", "1", "--arrival", "weibull"], "--arrival"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--rate", "1", "--arrival", "poisson", "--burstiness", "2"],
     "--arrival gamma"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--rate", "1", "--burstiness", "0"], "--burstiness"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--dataset", "/nonexistent.jsonl"], "cannot open"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--workload", "lora-mix", "--models", "a,b", "--dataset",
      "/nonexistent.jsonl"], "does not combine"),
    (["--url", "http://127.0.0.1:1", "--model", "m", "--workload", "dataset"], "needs --dataset"),
])
def test_bad_arguments(infergate_bin, args, msg):
    p = subprocess.run([infergate_bin, "bench", *args], capture_output=True, text=True, timeout=30 * SLOW)
    check_sanitizers(p.stderr)
    assert p.returncode == 2
    assert msg in p.stderr


def test_help(infergate_bin):
    p = subprocess.run([infergate_bin, "bench", "--help"], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 0
    for opt in ("--rate", "--concurrency", "--workload", "--json", "nearest-rank", "--dataset", "--slo",
                "--burstiness", "--arrival", "--progress"):
        assert opt in p.stdout


def has_sim(binary):
    p = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return any(line.split()[:1] == ["sim"] for line in p.stdout.splitlines())


@pytest.mark.parametrize("workload", ["fixed", "shared-prefix"])
def test_against_sim(infergate_bin, tmp_path, procs, workload):
    if not has_sim(infergate_bin):
        pytest.skip("this infergate has no sim subcommand")
    port = free_port()
    procs.start("sim", [infergate_bin, "sim", "--pods", 1, "--base-port", port, "--model", "m",
                        "--time-scale", 10], wait_port=port)
    args = ["--url", f"http://127.0.0.1:{port}", "--model", "m", "--workload", workload, "--concurrency", 4,
            "--requests", 16]
    if workload == "fixed":
        args += ["--input-mean", 100, "--output-mean", 20]
    else:
        args += ["--groups", 2, "--prompts-per-group", 8, "--system-len", 256, "--question-len", 16,
                 "--output-mean", 20]
    _, d = run_bench(infergate_bin, tmp_path, args)
    check_consistency(d)
    s = d["summary"]
    assert s["completed"] == 16 and s["connections"] <= 4
    for r in d["requests"]:
        assert r["output_tokens"] == r["max_tokens"] == 20
        assert r["ttft_ms"] <= r["e2e_ms"]
    assert s["total_output_tokens"] == 16 * 20


# ---- ShareGPT datasets, SLO goodput, gamma arrivals, per-class reports, progress line ----

def sharegpt_rows(n):
    """n ShareGPT conversations whose answers are 4*(i % 9 + 1) bytes: i % 9 + 1 tokens."""
    rows = []
    for i in range(n):
        rows.append({"id": f"c{i}", "conversations": [
            {"from": "system", "value": "ignored"},
            {"from": "human", "value": f"question {i}: " + "why " * (i % 5)},
            {"from": "gpt", "value": "abcd" * (i % 9 + 1)},
            {"from": "human", "value": "follow-up (not used)"}]})
    return rows


def write_jsonl(path, rows, junk=()):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        for j in junk:
            f.write(j + "\n")


def test_dataset_bad_file(infergate_bin, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("\n# my prompts\nhello\n")
    p = subprocess.run([infergate_bin, "bench", "--url", "http://127.0.0.1:1", "--model", "m", "--dataset", bad],
                       capture_output=True, text=True, timeout=30 * SLOW)
    check_sanitizers(p.stderr)
    assert p.returncode == 2
    assert f"{bad}:2: not JSON" in p.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"conversations": []},\n{"conversations": [}\n]\n')
    p = subprocess.run([infergate_bin, "bench", "--url", "http://127.0.0.1:1", "--model", "m", "--dataset",
                        broken], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 2 and f"{broken}:3: not JSON" in p.stderr, p.stderr
    empty = tmp_path / "empty.jsonl"
    write_jsonl(empty, [], junk=['{"conversations": []}', '{"x": 1}'])
    p = subprocess.run([infergate_bin, "bench", "--url", "http://127.0.0.1:1", "--model", "m", "--dataset",
                        empty], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 2 and "no usable conversation (2 entries skipped" in p.stderr, p.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_dataset_replay_against_sim(infergate_bin, tmp_path, procs, fmt):
    if not has_sim(infergate_bin):
        pytest.skip("this infergate has no sim subcommand")
    rows = sharegpt_rows(12)
    path = tmp_path / f"sharegpt.{fmt}"
    if fmt == "jsonl":
        skipped = 3
        write_jsonl(path, rows, junk=['{"conversations": [{"from": "human", "value": "no answer"}]}',
                                      "{not json", '{"conversations": "x"}'])
    else:
        path.write_text(json.dumps(rows + [{"conversations": []}, 7, "x"], indent=1))
        skipped = 3
    port = free_port()
    procs.start("sim", [infergate_bin, "sim", "--pods", 1, "--base-port", port, "--model", "m",
                        "--time-scale", 10], wait_port=port)
    args = ["--url", f"http://127.0.0.1:{port}", "--model", "m", "--dataset", path, "--requests", 20,
            "--rate", 50, "--burstiness", 0.5, "--max-tokens", 6, "--seed", 9,
            "--slo", "ttft=60s,tpot=60s,e2e=120s"]
    p, d = run_bench(infergate_bin, tmp_path, args)
    check_consistency(d)
    s = d["summary"]
    assert s["workload"] == "dataset" and s["arrival"] == "gamma" and s["burstiness"] == 0.5
    assert s["dataset"] == {"path": str(path), "format": fmt, "entries": 12, "skipped": skipped,
                            "truncated": False}
    assert s["max_tokens_cap"] == 6
    assert s["completed"] == 20
    # prompts and answer lengths come from the file: question i has i % 9 + 1 answer tokens, capped at 6
    for r in d["requests"]:
        assert r["output_tokens"] == r["max_tokens"]
    assert {r["max_tokens"] for r in d["requests"]} <= {min(i % 9 + 1, 6) for i in range(12)}
    # 20 requests over 12 entries: the seeded order visits each entry once before any repeats
    assert len({(r["prompt_tokens"], r["max_tokens"]) for r in d["requests"][:12]}) >= 6
    # generous SLO: every completed request meets it; goodput is reported
    assert s["slo"] == {"ttft_ms": 60000.0, "tpot_ms": 60000.0, "e2e_ms": 120000.0}
    assert s["goodput_requests"] == 20 and s["goodput_fraction"] == 1.0
    assert s["goodput"] > 0 and abs(s["goodput"] - s["request_throughput"]) < 1e-6 * s["goodput"] + 1e-9
    assert all(r["slo_met"] for r in d["requests"])
    assert "goodput" in p.stdout and f"12 conversations used, {skipped} skipped" in p.stdout
    # same seed, same sequence of prompts
    _, d2 = run_bench(infergate_bin, tmp_path, args)
    assert [(r["id"], r["prompt_tokens"], r["max_tokens"]) for r in sorted(d["requests"], key=lambda r: r["id"])] \
        == [(r["id"], r["prompt_tokens"], r["max_tokens"]) for r in sorted(d2["requests"], key=lambda r: r["id"])]


def test_dataset_max_caps_entries(infergate_bin, tmp_path, sse):
    url, _ = sse()
    path = tmp_path / "big.jsonl"
    write_jsonl(path, sharegpt_rows(200), junk=["this tail is never read"])
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "m", "--dataset", path,
                                               "--dataset-max", 5, "--requests", 10, "--concurrency", 2])
    check_consistency(d)
    s = d["summary"]["dataset"]
    assert (s["entries"], s["skipped"], s["truncated"]) == (5, 0, True)
    assert len({r["max_tokens"] for r in d["requests"]}) <= 5


def test_slo_goodput_counts_misses(infergate_bin, tmp_path, sse):
    """A TTFT objective no request can meet (1 us) gives goodput 0; shed requests never count."""
    url, _ = sse("--split")
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--workload", "lora-mix", "--models", "ok,shed",
                                               "--output-mean", 5, "--concurrency", 2, "--requests", 20,
                                               "--slo", "ttft=1us"])
    check_consistency(d)
    s = d["summary"]
    assert s["goodput_requests"] == 0 and s["goodput"] == 0 and s["goodput_fraction"] == 0
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--workload", "lora-mix", "--models", "ok,shed",
                                               "--output-mean", 5, "--concurrency", 2, "--requests", 20,
                                               "--slo", "e2e=600s"])
    s = d["summary"]
    assert s["goodput_requests"] == s["completed"] == sum(1 for r in d["requests"] if r["model"] == "ok")
    assert s["goodput_fraction"] == s["completed"] / s["requests_sent"]
    bm = s["by_model"]
    assert set(bm) == {"ok", "shed"}
    assert bm["shed"]["shed"] == bm["shed"]["sent"] and bm["shed"]["slo_met"] == 0
    assert bm["ok"]["slo_met"] == bm["ok"]["completed"] == bm["ok"]["sent"]


def test_no_slo_means_null_goodput(infergate_bin, tmp_path, sse):
    url, _ = sse()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "m", "--requests", 4, "--concurrency", 2])
    s = d["summary"]
    assert s["slo"] is None and s["goodput"] is None and s["by_class"] is None and s["dataset"] is None
    assert s["arrival"] is None  # closed loop
    assert "slo_met" not in d["requests"][0]


def test_criticality_per_class_report(infergate_bin, tmp_path, sse):
    url, _ = sse()
    p, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--workload", "criticality", "--models",
                                               "ok-c,ok-s,shed-x", "--requests", 30, "--concurrency", 3,
                                               "--output-mean", 8])
    bc = d["summary"]["by_class"]
    assert list(bc) == ["Critical", "Standard", "Sheddable"]
    for cls, g in bc.items():
        mine = [r for r in d["requests"] if r["class"] == cls]
        assert g["sent"] == len(mine)
        assert g["shed"] == sum(r["shed"] for r in mine)
        assert g["ttft_ms"]["count"] == sum(r["ok"] for r in mine)
        if g["ttft_ms"]["count"]:
            assert g["ttft_ms"]["p50"] <= g["ttft_ms"]["p99"]
    assert bc["Sheddable"]["shed"] == bc["Sheddable"]["sent"] and bc["Critical"]["shed"] == 0
    lines = [ln.split() for ln in p.stdout.splitlines()]
    assert ["class", "sent", "done", "failed", "shed", "TTFT", "p50", "TTFT", "p90", "TTFT", "p99", "E2E",
            "p90"] in lines
    assert any(ln[:1] == ["Sheddable"] for ln in lines)


def test_gamma_arrivals_against_server(infergate_bin, tmp_path, sse):
    url, stats = sse()
    _, d = run_bench(infergate_bin, tmp_path, ["--url", url, "--model", "m", "--rate", 100, "--requests", 60,
                                               "--arrival", "gamma", "--burstiness", 0.3, "--output-mean", 4,
                                               "--input-mean", 8])
    check_consistency(d)
    s = d["summary"]
    assert s["arrival"] == "gamma" and s["burstiness"] == 0.3 and s["completed"] == 60
    assert stats()["requests"] == 60


def test_progress_line_only_on_a_terminal(infergate_bin, tmp_path, sse):
    import pty
    url, _ = sse("--token-delay-ms", "20")
    args = [infergate_bin, "bench", "--url", url, "--model", "m", "--workload", "fixed", "--output-mean", 30,
            "--input-mean", 8, "--concurrency", 2, "--requests", 6]
    args = [str(a) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    # not a terminal: nothing, even when asked by default
    p = subprocess.run(args, capture_output=True, text=True, timeout=60 * SLOW, env=env)
    assert p.returncode == 0 and "\r" not in p.stderr and "bench: sent" not in p.stderr
    # a terminal: the line is rewritten in place with \r, and cleared at the end
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        slave = None
        out = b""
        deadline = time.monotonic() + 60 * SLOW
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=30 * SLOW)
        proc.stdout.close()
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    assert proc.returncode == 0
    text = out.decode(errors="replace")
    check_sanitizers(text)
    assert "\rbench: sent" in text and "done" in text and "req/s" in text and "elapsed" in text
    # CI=true: nothing even on a terminal
    env["CI"] = "true"
    master, slave = pty.openpty()
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, timeout=60 * SLOW, env=env)
        os.close(slave)
        slave = None
        import select
        got = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                c = os.read(master, 65536)
            except OSError:
                break
            if not c:
                break
            got += c
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    assert p.returncode == 0 and b"bench: sent" not in got

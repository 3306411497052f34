"""Integration tests for `infergate sim`: the OpenAI surface, metrics dialects, failure injection,
keep-alive, and the engine's timing checked against its model (in simulated time, via /metrics)."""
import http.client
import json
import os
import re
import socket
import threading
import time

import pytest
import requests

from conftest import SLOW, free_port_range, wait_until

B0, B1, B2 = 5752.7, 17.25, 6.00  # llama3-8b-h100, microseconds


def start_sim(procs, infergate_bin, *args, pods=1):
    base = free_port_range(pods)
    procs.start("sim", [infergate_bin, "sim", "--pods", pods, "--base-port", base, "--model", "m", *args],
                wait_port=[base + i for i in range(pods)])
    return base


def url(port, path):
    return f"http://127.0.0.1:{port}{path}"


def metrics(port):
    """Parses /metrics into {(name, frozenset(labels)): value}, plus {name: value} for unlabeled lookups."""
    r = requests.get(url(port, "/metrics"), timeout=10 * SLOW)
    assert r.status_code == 200
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, f"bad metrics line: {line!r}"
        name, labels, value = m.group(1), m.group(3) or "", float(m.group(4))
        lab = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        out[(name, frozenset(lab.items()))] = value
        out.setdefault(name, value)
    return out


def labels_of(port, name):
    r = requests.get(url(port, "/metrics"), timeout=10 * SLOW)
    for line in r.text.splitlines():
        if line.startswith(name + "{"):
            return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line))
    return None


def completion(port, model="m", prompt="hello world", max_tokens=4, headers=None, **kw):
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, **kw}
    return requests.post(url(port, "/v1/completions"), json=body, headers=headers, timeout=30 * SLOW)


def raw_request(path, body, port, extra=""):
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def read_stream(sock, deadline):
    """Reads a streamed response until EOF or [DONE]; returns (bytes, [arrival time of each data event])."""
    buf, times, seen = b"", [], 0
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
        n = buf.count(b"data: {")
        now = time.monotonic()
        times.extend([now] * (n - seen))
        seen = n
        if b"data: [DONE]" in buf and buf.endswith(b"0\r\n\r\n"):
            break
    return buf, times


def test_health_models_and_lora_list(procs, infergate_bin):
    port = start_sim(procs, infergate_bin, "--lora", "a,b")
    assert requests.get(url(port, "/health"), timeout=10).status_code == 200
    data = requests.get(url(port, "/v1/models"), timeout=10).json()["data"]
    ids = {d["id"]: d for d in data}
    assert set(ids) == {"m", "a", "b"}
    assert ids["m"]["parent"] is None
    assert ids["a"]["parent"] == "m" and ids["b"]["parent"] == "m"


def test_completion_and_chat_bodies(procs, infergate_bin):
    port = start_sim(procs, infergate_bin, "--time-scale", "50")
    r = completion(port, prompt="x" * 400, max_tokens=5)
    assert r.status_code == 200
    j = r.json()
    assert j["object"] == "text_completion" and j["model"] == "m"
    assert j["choices"][0]["finish_reason"] == "length"
    assert len(j["choices"][0]["text"]) == 20  # 5 tokens x 4 characters
    assert j["usage"] == {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                          "prompt_tokens_details": {"cached_tokens": 0}}
    # same prompt again: all full blocks but the last are cached
    j = completion(port, prompt="x" * 400, max_tokens=1).json()
    assert j["usage"]["prompt_tokens_details"]["cached_tokens"] == 96
    # chat, default max_tokens is 16
    r = requests.post(url(port, "/v1/chat/completions"),
                      json={"model": "m", "messages": [{"role": "user", "content": "hi there"}]}, timeout=30)
    j = r.json()
    assert j["object"] == "chat.completion"
    assert j["choices"][0]["message"]["role"] == "assistant"
    assert j["usage"]["completion_tokens"] == 16
    m = metrics(port)
    assert m["vllm:prefix_cache_hits_total"] == 96
    assert m["vllm:generation_tokens_total"] == 22
    assert m["vllm:request_success_total"] == 3


def test_stream_chunks_and_usage(procs, infergate_bin):
    port = start_sim(procs, infergate_bin, "--time-scale", "20")
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6,
            "stream": True, "stream_options": {"include_usage": True}}
    r = requests.post(url(port, "/v1/chat/completions"), json=body, stream=True, timeout=30 * SLOW)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers.get("Transfer-Encoding") == "chunked"
    events = [line[6:] for line in r.iter_lines() if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    tokens = [c for c in chunks if c["choices"]]
    assert len(tokens) == 6
    assert tokens[0]["choices"][0]["delta"]["role"] == "assistant"
    assert tokens[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    assert chunks[-1]["usage"]["prompt_tokens"] == 2


def test_stream_timing_follows_model(procs, infergate_bin):
    """Tokens arrive one by one at the simulated step times (wall-clock bounds are generous), and the
    TTFT histogram (simulated time) matches the model closely."""
    scale = 0.1  # 10x slower than real time so that steps are long enough to observe on a busy machine
    port = start_sim(procs, infergate_bin, "--time-scale", str(scale))
    n = 8
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        t0 = time.monotonic()
        s.sendall(raw_request("/v1/completions", {"prompt": "y" * 400, "max_tokens": n, "stream": True}, port))
        buf, times = read_stream(s, t0 + 30 * SLOW)
    assert buf.count(b"data: {") == n and b"data: [DONE]" in buf
    ttft = (B0 + B1 * 100) / 1e6 / scale
    itl = (B0 + B2) / 1e6 / scale
    expect = ttft + (n - 1) * itl
    elapsed = times[-1] - t0
    assert elapsed > 0.7 * expect, (elapsed, expect)
    assert elapsed < 3 * SLOW * expect + 1.0, (elapsed, expect)
    # token by token, not one burst: the events span most of the expected decode time
    assert times[-1] - times[0] > 0.4 * (n - 1) * itl
    m = metrics(port)
    assert m["vllm:time_to_first_token_seconds_count"] == 1
    assert abs(m["vllm:time_to_first_token_seconds_sum"] - (B0 + B1 * 100) / 1e6) < 0.02 * ttft * scale + 1e-4
    e2e = ((B0 + B1 * 100) + (n - 1) * (B0 + B2)) / 1e6
    assert abs(m["vllm:e2e_request_latency_seconds_sum"] - e2e) < 0.02 * e2e + 1e-4


def test_keep_alive_reuse_and_pipelining(procs, infergate_bin):
    port = start_sim(procs, infergate_bin, "--time-scale", "50")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30 * SLOW)
    socks = []
    for i in range(3):
        conn.request("POST", "/v1/completions", body=json.dumps({"model": "m", "prompt": "a", "max_tokens": 2}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["usage"]["completion_tokens"] == 2
        assert not r.will_close
        socks.append(conn.sock)
    assert socks[0] is not None and all(s is socks[0] for s in socks)
    conn.close()
    # two pipelined requests on one raw connection: both answered, in order
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW) as s:
        req = raw_request("/v1/completions", {"model": "m", "prompt": "p", "max_tokens": 1}, port)
        s.sendall(req + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + req)
        data = b""
        deadline = time.monotonic() + 20 * SLOW
        while data.count(b"HTTP/1.1 200") < 3 and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.count(b"HTTP/1.1 200") == 3
        assert data.count(b"text_completion") == 2
    m = metrics(port)
    assert m["vllm:request_success_total"] == 5


def test_errors(procs, infergate_bin):
    port = start_sim(procs, infergate_bin, "--time-scale", "50")
    r = completion(port, model="nope")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "The model `nope` does not exist."
    r = requests.post(url(port, "/v1/completions"), data=b'{"model": "m", "prompt": ', timeout=10)
    assert r.status_code == 400 and "error" in r.json()
    r = requests.post(url(port, "/v1/chat/completions"), json={"model": "m"}, timeout=10)
    assert r.status_code == 400
    r = completion(port, max_tokens=-3)
    assert r.status_code == 400
    r = completion(port, max_tokens="ten")
    assert r.status_code == 400
    for status in (429, 503, 500):
        r = completion(port, headers={"X-Return-Error": str(status)})
        assert r.status_code == status
        assert "error" in r.json()
    assert requests.get(url(port, "/v1/completions"), timeout=10).status_code == 405
    assert requests.get(url(port, "/nope"), timeout=10).status_code == 404
    # garbage on the wire: 400 and the server keeps serving
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"BAD\x01 / HTTP/1.1\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400")
    assert completion(port).status_code == 200


def test_load_unload_adapter(procs, infergate_bin):
    port = start_sim(procs, infergate_bin, "--time-scale", "50", "--max-loras", "2")
    load = url(port, "/v1/load_lora_adapter")
    unload = url(port, "/v1/unload_lora_adapter")
    assert completion(port, model="sql").status_code == 404
    r = requests.post(load, json={"lora_name": "sql", "lora_path": "/adapters/sql"}, timeout=10)
    assert r.status_code == 200
    assert requests.post(load, json={"lora_name": "sql", "lora_path": "/x"}, timeout=10).status_code == 400
    assert requests.post(load, json={"lora_path": "/x"}, timeout=10).status_code == 400
    models = {d["id"]: d for d in requests.get(url(port, "/v1/models"), timeout=10).json()["data"]}
    assert models["sql"]["parent"] == "m" and models["sql"]["root"] == "/adapters/sql"
    info = labels_of(port, "vllm:lora_requests_info")
    # as in vLLM, a resident adapter is "running" only while a sequence of it runs
    assert info["max_lora"] == "2" and info["running_lora_adapters"] == ""
    body = {"model": "sql", "prompt": "x", "max_tokens": 4000, "stream": True}
    with requests.post(url(port, "/v1/completions"), json=body, stream=True, timeout=30 * SLOW) as r:
        assert r.status_code == 200
        seen = False
        for line in r.iter_lines():  # read on, so the sequence keeps running while we look
            if line.startswith(b"data: {") and not seen:
                seen = labels_of(port, "vllm:lora_requests_info")["running_lora_adapters"] == "sql"
        assert seen, "sql never listed as running while its stream was open"
    r = completion(port, model="sql", max_tokens=3)
    assert r.status_code == 200 and r.json()["model"] == "sql"
    assert requests.post(unload, json={"lora_name": "sql"}, timeout=10).status_code == 200
    assert requests.post(unload, json={"lora_name": "sql"}, timeout=10).status_code == 404
    assert completion(port, model="sql").status_code == 404
    assert labels_of(port, "vllm:lora_requests_info")["running_lora_adapters"] == ""
    assert [d["id"] for d in requests.get(url(port, "/v1/models"), timeout=10).json()["data"]] == ["m"]


def test_fail_rate(procs, infergate_bin):
    port = start_sim(procs, infergate_bin, "--time-scale", "100", "--fail-rate", "0.5", "--seed", "7")
    codes = []
    with requests.Session() as sess:
        for _ in range(100):
            r = sess.post(url(port, "/v1/completions"), json={"model": "m", "prompt": "a", "max_tokens": 1},
                          timeout=30 * SLOW)
            codes.append(r.status_code)
    assert set(codes) <= {200, 500}
    assert 25 <= codes.count(500) <= 75


def test_die_after_tokens(procs, infergate_bin):
    base = start_sim(procs, infergate_bin, "--time-scale", "20", "--die-after-tokens", "1:3", pods=2)
    body = {"model": "m", "prompt": "hello", "max_tokens": 10, "stream": True}
    with socket.create_connection(("127.0.0.1", base + 1), timeout=1) as s:
        s.sendall(raw_request("/v1/completions", body, base + 1))
        buf, _ = read_stream(s, time.monotonic() + 20 * SLOW)
    assert buf.count(b"data: {") == 3
    assert b"[DONE]" not in buf
    # pod 0 is unaffected
    with socket.create_connection(("127.0.0.1", base), timeout=1) as s:
        s.sendall(raw_request("/v1/completions", body, base))
        buf, _ = read_stream(s, time.monotonic() + 20 * SLOW)
    assert buf.count(b"data: {") == 10 and b"[DONE]" in buf
    # non-streamed requests on the dying pod are answered in full
    assert completion(base + 1, max_tokens=5).json()["usage"]["completion_tokens"] == 5
    wait_until(lambda: metrics(base + 1)["vllm:num_requests_running"] == 0, timeout=10, what="abort")


def test_slow_pod(procs, infergate_bin):
    base = start_sim(procs, infergate_bin, "--time-scale", "20", "--slow-pod", "1:4", pods=2)
    for p in (base, base + 1):
        assert completion(p, prompt="z" * 400, max_tokens=2).status_code == 200
    t0 = metrics(base)["vllm:time_to_first_token_seconds_sum"]
    t1 = metrics(base + 1)["vllm:time_to_first_token_seconds_sum"]
    assert 3.8 < t1 / t0 < 4.2


def test_queue_full_429(procs, infergate_bin):
    port = start_sim(procs, infergate_bin, "--max-num-seqs", "1", "--max-waiting", "1")
    body = {"model": "m", "prompt": "q", "max_tokens": 100000, "stream": True}
    socks = []
    try:
        for i in range(2):
            s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
            socks.append(s)
            s.sendall(raw_request("/v1/completions", body, port))
            s.recv(1024)  # the stream headers: the request was accepted
        wait_until(lambda: metrics(port)["vllm:num_requests_waiting"] == 1, timeout=10, what="one waiting")
        r = completion(port, max_tokens=1)
        assert r.status_code == 429
        assert "error" in r.json()
    finally:
        for s in socks:
            s.close()
    # the aborted requests leave the engine
    wait_until(lambda: metrics(port)["vllm:num_requests_running"] == 0 and
               metrics(port)["vllm:num_requests_waiting"] == 0, timeout=10, what="aborts")
    assert completion(port, max_tokens=1).status_code == 200


def test_metrics_move_under_load(procs, infergate_bin):
    """More requests than --max-num-seqs: the queue grows past the batch, KV usage rises; when the clients
    leave, everything drains."""
    port = start_sim(procs, infergate_bin, "--max-num-seqs", "4", "--kv-blocks", "2000")
    m0 = metrics(port)
    assert m0["vllm:num_requests_running"] == 0 and m0["vllm:kv_cache_usage_perc"] == 0
    socks = []
    try:
        for i in range(10):
            s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
            socks.append(s)
            body = {"model": "m", "prompt": f"{i:04d}" + "w" * 4000, "max_tokens": 20000, "stream": True}
            s.sendall(raw_request("/v1/completions", body, port))
        wait_until(lambda: metrics(port)["vllm:num_requests_waiting"] == 6, timeout=15, what="queue of 6")
        m = metrics(port)
        assert m["vllm:num_requests_running"] == 4
        assert m["vllm:kv_cache_usage_perc"] > 4 * 63 / 2000 - 0.001
        assert labels_of(port, "vllm:cache_config_info") == {"block_size": "16", "enable_prefix_caching": "True",
                                                             "num_gpu_blocks": "2000"}
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: metrics(port)["vllm:num_requests_waiting"] == 0 and
               metrics(port)["vllm:num_requests_running"] == 0, timeout=15, what="drain")
    assert metrics(port)["vllm:kv_cache_usage_perc"] == 0


def test_step_gauges_hide_arrivals_until_a_step_ends(procs, infergate_bin):
    """--gauges step: the engine's gauges are those of the last step's end, as vLLM publishes them.
    Requests that arrive during a long step are not seen waiting (the sim's own live gauge sees them);
    they show up running once a step has taken them in and ended."""
    port = start_sim(procs, infergate_bin, "--gauges", "step", "--time-scale", "0.02")  # a 2,000-token
    socks = []                                                                         # prefill: ~2 s
    try:
        for i, chars in enumerate((8000, 40, 40)):
            s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
            socks.append(s)
            body = {"model": "m", "prompt": f"{i:04d}" + "w" * chars, "max_tokens": 20000, "stream": True}
            s.sendall(raw_request("/v1/completions", body, port))
            if i == 0:
                wait_until(lambda: metrics(port)["infergate_sim_requests_running"] == 1, what="long prefill")
        wait_until(lambda: metrics(port)["infergate_sim_requests_waiting"] == 2, what="two arrived")
        m = metrics(port)
        assert m["infergate_sim_requests_running"] == 1, "the long prefill step ended too soon for the test"
        assert m["vllm:num_requests_waiting"] == 0 and m["vllm:num_requests_running"] == 0, m
        wait_until(lambda: metrics(port)["vllm:num_requests_running"] == 3, what="a step took them in")
        assert metrics(port)["vllm:num_requests_waiting"] == 0
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("engine,present,absent", [
    ("vllm", ["vllm:kv_cache_usage_perc", "vllm:num_requests_waiting", "vllm:lora_requests_info"],
     ["vllm:gpu_cache_usage_perc"]),
    ("vllm-v0", ["vllm:gpu_cache_usage_perc", "vllm:num_requests_running"], ["vllm:kv_cache_usage_perc"]),
    ("sglang", ["sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage"], ["vllm:num_requests_waiting"]),
    ("trtllm", ["trtllm_num_requests_waiting"], ["vllm:num_requests_waiting"]),
])
def test_metrics_dialects(procs, infergate_bin, engine, present, absent):
    port = start_sim(procs, infergate_bin, "--engine", engine)
    m = metrics(port)
    for name in present:
        assert name in m, name
    for name in absent:
        assert name not in m, name
    if engine == "vllm":
        assert ("vllm:num_requests_waiting", frozenset({("engine", "0"), ("model_name", "m")})) in m
    if engine == "vllm-v0":
        assert ("vllm:num_requests_waiting", frozenset({("model_name", "m")})) in m


def test_throughput_matches_closed_form(procs, infergate_bin):
    """Saturated pod (waiting queue never empty, batch = C): tokens per simulated second equals
    C / (b0 + b1 P C / O + b2 C (O - 1) / O). Measured with the sim's own counters and clock."""
    C, P, O = 8, 200, 256
    port = start_sim(procs, infergate_bin, "--max-num-seqs", str(C), "--time-scale", "5")
    stop = threading.Event()
    errors = []

    def client(k):
        with requests.Session() as sess:
            i = 0
            while not stop.is_set():
                prompt = f"{k:04d}-{i:08d}".ljust(P * 4, "t")  # unique first block: no prefix hits
                try:
                    r = sess.post(url(port, "/v1/completions"), json={"model": "m", "prompt": prompt, "max_tokens": O},
                                  timeout=60 * SLOW)
                    if r.status_code != 200:
                        errors.append(r.status_code)
                except requests.RequestException as e:
                    if not stop.is_set():
                        errors.append(repr(e))
                i += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(3 * C)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: metrics(port)["vllm:request_success_total"] >= C, timeout=30, what="warm-up")
        m1 = metrics(port)
        wait_until(lambda: metrics(port)["infergate_sim_clock_seconds"] - m1["infergate_sim_clock_seconds"] > 8,
                   timeout=60, interval=0.2, what="8 simulated seconds")
        m2 = metrics(port)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60 * SLOW)
    assert not errors, errors[:5]
    dt = m2["infergate_sim_clock_seconds"] - m1["infergate_sim_clock_seconds"]
    measured = (m2["vllm:generation_tokens_total"] - m1["vllm:generation_tokens_total"]) / dt
    model = C / ((B0 + B1 * P * C / O + B2 * C * (O - 1) / O) / 1e6)
    print(f"throughput {measured:.1f} tok/s vs model {model:.1f}")
    assert abs(measured - model) < 0.10 * model, (measured, model)


def test_idle_pods_use_no_cpu(procs, infergate_bin):
    base = free_port_range(16)
    p = procs.start("sim", [infergate_bin, "sim", "--pods", "16", "--base-port", base, "--time-scale", "10"],
                    wait_port=[base + i for i in range(16)])
    time.sleep(0.3)

    def cpu():
        with open(f"/proc/{p.popen.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    c0 = cpu()
    time.sleep(1.0)
    assert cpu() - c0 < 0.05


def test_bad_options(infergate_bin):
    import subprocess
    for args in (["--pods", "0"], ["--profile", "nope"], ["--engine", "x"], ["--die-after-tokens", "5:3"],
                 ["--slow-pod", "1"], ["--gauges", "sometimes"], ["--bogus"]):
        r = subprocess.run([infergate_bin, "sim", *args], capture_output=True, timeout=10)
        assert r.returncode == 2, args
        assert r.stderr
    r = subprocess.run([infergate_bin, "sim", "--help"], capture_output=True, timeout=10)
    assert r.returncode == 0 and b"--time-scale" in r.stdout

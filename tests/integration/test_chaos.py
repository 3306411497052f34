"""Chaos against `infergate serve`: pods killed mid-stream, hung pods, metrics endpoints that answer
garbage or never answer, reloads under load and SIGTERM with streams in flight. Assertions are on
outcomes (status codes, clean stream ends, exit codes), never on tight timings."""
import concurrent.futures
import json
import os
import signal
import socket
import threading
import time

import backend
from conftest import SLOW, free_port, port_open, wait_until
from rawhttp import Conn, admin_get, build, post_json, sse_events, start_gateway


def start_sim(procs, infergate_bin, *args, name="sim"):
    """One sim process with one pod (killing the process kills that pod only); returns its port."""
    port = free_port()
    procs.start(name, [infergate_bin, "sim", "--pods", 1, "--base-port", port, "--model", "llama3", *args],
                wait_port=[port])
    return port


def pool_yaml(port, admin, eps, extra_pool="", top=""):
    return f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
pools:
  - name: llama
    endpoints: [{", ".join(f"127.0.0.1:{p}" for p in eps)}]
{extra_pool}
routes:
  - name: openai
    backend: llama
{top}
"""


def debug_pods(admin):
    status, text = admin_get(admin, "/debug/pools")
    assert status == 200
    return {int(p["endpoint"].rsplit(":", 1)[1]): p for p in json.loads(text)["pools"][0]["pods"]}


def stream_body(max_tokens, prompt="hello"):
    return json.dumps({"model": "llama3", "prompt": prompt, "max_tokens": max_tokens, "stream": True}).encode()


def complete(port, prompt="hi", max_tokens=2, model="llama3", host="test"):
    return post_json(port, "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": max_tokens},
                     host=host, timeout=60 * SLOW)


def test_pod_killed_mid_stream(procs, infergate_bin, tmp_path):
    """The client of a stream whose pod dies gets a clean end (the chunked stream stops without its
    last chunk and the connection closes); later requests go to the surviving pod."""
    a = start_sim(procs, infergate_bin, "--slow-pod", "0:20", name="sim-a")
    b = start_sim(procs, infergate_bin, name="sim-b")
    sims = {a: procs.procs[-2], b: procs.procs[-1]}
    port, admin = free_port(), free_port()
    start_gateway(procs, tmp_path, pool_yaml(port, admin, [a, b]), [port, admin])
    wait_until(lambda: all(p["has_metrics"] for p in debug_pods(admin).values()), what="pods scraped")
    c = Conn(port, timeout=60 * SLOW)
    c.send(build("POST", "/v1/completions", [("Content-Type", "application/json")], stream_body(100000)))
    assert c.read_until(b"data: ") is not None, "stream did not start"
    victim = wait_until(lambda: [p for p, pod in debug_pods(admin).items() if pod["inflight"]],
                        what="the stream's pod")[0]
    sims[victim].popen.kill()
    sims[victim].popen.wait(timeout=10)
    rest = c.read_all()  # returns once the gateway closed the connection
    assert c.eof
    assert not rest.endswith(b"0\r\n\r\n") and b"[DONE]" not in rest, rest[-200:]
    c.close()
    survivor = b if victim == a else a
    for i in range(6):
        r = complete(port, prompt=f"after {i}")
        assert r.status == 200, r
    assert debug_pods(admin)[survivor]["inflight"] == 0
    r = post_json(port, "/v1/completions", {"model": "llama3", "prompt": "s", "max_tokens": 3, "stream": True},
                  timeout=60 * SLOW)
    assert r.status == 200 and sse_events(r.body)[-1] == "[DONE]"


def test_sim_pod_dies_after_tokens(procs, infergate_bin, tmp_path):
    """--die-after-tokens: the pod drops every stream after N tokens; each such client gets a
    truncated stream and a closed connection, never a hang; plain requests keep working."""
    s = start_sim(procs, infergate_bin, "--die-after-tokens", "0:3")
    port, admin = free_port(), free_port()
    start_gateway(procs, tmp_path, pool_yaml(port, admin, [s]), [port, admin])
    for i in range(3):
        with Conn(port, timeout=60 * SLOW) as c:
            c.send(build("POST", "/v1/completions", [("Content-Type", "application/json")], stream_body(20)))
            r = c.read_response("POST")
            assert r.status == 200 and r.truncated, r
            assert c.eof
        assert complete(port).status == 200


class HangServer:
    """Accepts connections, reads, never answers (a hung pod)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                continue

    def close(self):
        self.stop = True
        for cn in self.conns:
            cn.close()
        self.sock.close()


def test_hung_pod_504_others_served(procs, infergate_bin, tmp_path):
    bp = backend.start(procs, ["good"])
    hang = HangServer()
    try:
        port = free_port()
        start_gateway(procs, tmp_path, f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
backends:
  - name: b
    policy: round-robin
    endpoints: [127.0.0.1:{bp["good"]}, 127.0.0.1:{hang.port}]
    response_timeout: 500ms
routes:
  - name: all
    backend: b
""", [port])

        def one(i):
            t0 = time.monotonic()
            r = Conn(port, timeout=30 * SLOW)
            try:
                r.send(build("GET", f"/r{i}"))
                resp = r.read_response()
            finally:
                r.close()
            return resp.status, time.monotonic() - t0

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            results = list(ex.map(one, range(16)))
        statuses = [s for s, _ in results]
        assert set(statuses) <= {200, 504}, statuses
        assert statuses.count(200) >= 4 and statuses.count(504) >= 1, statuses
        for s, dt in results:
            if s == 504:
                assert dt >= 0.4, dt  # the response timeout, not an early give-up
    finally:
        hang.close()


def test_bad_metrics_endpoints_do_not_stop_routing(procs, infergate_bin, tmp_path):
    """Pool 'garbage' scrapes JSON (backend.py's echo) from /metrics; pool 'hung' scrapes a path the
    backend never answers. Completions to both pools still succeed."""
    bp = backend.start(procs, ["g1", "g2", "h1", "h2"])
    port, admin = free_port(), free_port()
    start_gateway(procs, tmp_path, f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
pools:
  - name: garbage
    endpoints: [127.0.0.1:{bp["g1"]}, 127.0.0.1:{bp["g2"]}]
    scrape_interval: 20ms
  - name: hung
    endpoints: [127.0.0.1:{bp["h1"]}, 127.0.0.1:{bp["h2"]}]
    metrics_path: /metrics?hang=1
    scrape_interval: 20ms
models:
  - name: mg
    pool: garbage
  - name: mh
    pool: hung
routes:
  - name: g
    hostnames: [g.test]
    backend: garbage
  - name: h
    hostnames: [h.test]
    backend: hung
""", [port, admin])
    time.sleep(0.5 * SLOW)  # let a few scrapes fail
    for i in range(6):
        for model, names in (("mg", {"g1", "g2"}), ("mh", {"h1", "h2"})):
            r = complete(port, prompt=f"p{i}", model=model, host=model[1] + ".test")
            assert r.status == 200, (model, r)
            assert r.header("x-backend") in names, r
    status, text = admin_get(admin, "/debug/pools")
    assert status == 200
    for p in json.loads(text)["pools"]:
        for pod in p["pods"]:
            assert not pod["has_metrics"], pod


def test_reload_under_load_drops_nothing(procs, infergate_bin, tmp_path):
    bp = backend.start(procs, ["b1", "b2"])
    port, admin = free_port(), free_port()

    def cfg(extra_route):
        return f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
backends:
  - name: b
    endpoints: [127.0.0.1:{bp["b1"]}, 127.0.0.1:{bp["b2"]}]
routes:
  - name: all
    backend: b
{extra_route}
"""
    gw, path = start_gateway(procs, tmp_path, cfg(""), [port, admin])
    stop = threading.Event()
    results, errors = [], []

    def loop(k):
        n = 0
        while not stop.is_set() and n < 2000:
            n += 1
            try:
                with Conn(port, timeout=30 * SLOW) as c:
                    for j in range(3):  # keep-alive requests across the reload too
                        c.send(build("POST", f"/w{k}/{n}/{j}", [("Content-Type", "application/json")],
                                     b'{"x": 1}'))
                        r = c.read_response("POST")
                        results.append(r.status if r else None)
            except OSError as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            time.sleep(0.3 * SLOW)
            extra = f"  - name: extra{i}\n    matches: [{{path: /x{i}}}]\n    backend: b\n" if i % 2 == 0 else ""
            with open(path, "w") as f:
                f.write(cfg(extra))
            gw.popen.send_signal(signal.SIGHUP)
            wait_until(lambda: gw.log().count("configuration reloaded") > i, timeout=10, what=f"reload {i + 1}")
        time.sleep(0.3 * SLOW)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60 * SLOW)
    assert not errors, errors[:5]
    assert results and all(s == 200 for s in results), [s for s in results if s != 200][:10]
    assert len(results) >= 20
    assert gw.alive()


def test_sigterm_drain_with_streams_in_flight(procs, infergate_bin, tmp_path):
    s1 = start_sim(procs, infergate_bin, name="sim-a")
    s2 = start_sim(procs, infergate_bin, name="sim-b")
    port, admin = free_port(), free_port()
    gw, _ = start_gateway(procs, tmp_path, pool_yaml(port, admin, [s1, s2], top="timeouts:\n  drain: 60s"),
                          [port, admin])
    conns = []
    for i in range(8):
        c = Conn(port, timeout=60 * SLOW)
        c.send(build("POST", "/v1/completions", [("Content-Type", "application/json")],
                     stream_body(60, prompt=f"drain {i}")))
        conns.append(c)
    for c in conns:
        assert c.read_until(b"data: ") is not None
    gw.popen.send_signal(signal.SIGTERM)
    wait_until(lambda: not port_open(port), what="listener closed")
    for c in conns:
        rest = c.read_all()
        assert b"data: [DONE]" in rest and rest.endswith(b"0\r\n\r\n"), rest[-200:]
        c.close()
    gw.popen.wait(timeout=60 * SLOW)
    assert gw.popen.returncode == 0
    assert "drained" in gw.log()

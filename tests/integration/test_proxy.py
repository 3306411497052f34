"""The HTTP proxy (`infergate serve`): forwarding, streaming, keep-alive pools, limits and errors.
Real processes over loopback: tests/integration/backend.py behind the gateway, raw sockets in front."""
import concurrent.futures
import json
import os
import re
import threading
import time

import pytest

import backend
from conftest import SLOW, free_port, wait_until
from rawhttp import Conn, build, post_json, request, sse_events, start_gateway


def quick(procs, infergate_bin, endpoints, extra=()):
    """Quick-start gateway (no file) in front of endpoints; returns its port."""
    port, admin = free_port(), free_port()
    procs.start("gateway", [infergate_bin, "serve", "--listen", f"127.0.0.1:{port}", "--admin",
                            f"127.0.0.1:{admin}", "--backend", ",".join(f"127.0.0.1:{p}" for p in endpoints),
                            *extra], wait_port=[port, admin])
    return port


def one_backend_yaml(port, backend_port, extra_backend="", top=""):
    return f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
backends:
  - name: b
    endpoints: [127.0.0.1:{backend_port}]
{extra_backend}
routes:
  - name: all
    backend: b
{top}
"""


def backend_stats(port):
    return request(port, "GET", "/__stats").json()


# ---------------------------------------------------------------- forwarding


def test_plain_get_and_forwarded_headers(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    r = request(port, "GET", "/hello?x=1", [
        ("Connection", "keep-alive, X-Secret"), ("X-Secret", "s"), ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic eA=="), ("TE", "trailers"), ("X-Custom", "kept")], host="example.test")
    assert r.status == 200, r
    assert r.header("x-backend") == "b1"
    echo = r.json()
    h = echo["headers"]
    assert echo["path"] == "/hello?x=1" and echo["method"] == "GET"
    assert h["host"] == "example.test"
    assert h["x-custom"] == "kept"
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", h["x-request-id"])
    for gone in ("x-secret", "keep-alive", "proxy-authorization", "te", "connection"):
        assert gone not in h, gone


def test_request_id_and_xff_are_kept(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    r = request(port, "GET", "/", [("X-Request-Id", "abc-123"), ("X-Forwarded-For", "10.0.0.1")])
    h = r.json()["headers"]
    assert h["x-request-id"] == "abc-123"
    assert h["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"


def test_post_body_and_content_length(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    body = json.dumps({"prompt": "x" * 100000})
    r = request(port, "POST", "/echo", [("Content-Type", "application/json")], body)
    assert r.status == 200
    echo = r.json()
    assert echo["body"] == body
    assert echo["headers"]["content-length"] == str(len(body))
    # a chunked request body is forwarded with a Content-Length
    with Conn(port) as c:
        c.send(build("POST", "/echo", [("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        r = c.read_response()
    echo = r.json()
    assert echo["body"] == "hello world"
    assert echo["headers"]["content-length"] == "11"
    assert "transfer-encoding" not in echo["headers"]


def test_response_framing_kept_and_rechunked(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    with Conn(port) as c:
        c.send(build("GET", "/a?chunked=1"))
        r = c.read_response()
        assert r.status == 200 and r.chunked and r.json()["path"] == "/a?chunked=1"
        c.send(build("GET", "/b"))
        r = c.read_response()
        assert r.header("content-length") == str(len(r.body)) and r.json()["path"] == "/b"
        # no length and no chunking upstream (close-delimited): re-chunked, connection kept
        c.send(build("GET", "/c?close_delimited=1"))
        r = c.read_response()
        assert r.chunked and not r.closed and r.json()["path"] == "/c?close_delimited=1"
        c.send(build("HEAD", "/d"))
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b""
        c.send(build("GET", "/e"))
        assert c.read_response().json()["path"] == "/e"


def test_http10_client(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    with Conn(port) as c:
        c.send(build("GET", "/x?chunked=1", version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 200 and not r.chunked
        assert r.json()["path"] == "/x?chunked=1"
        assert c.at_eof()


def test_expect_continue(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    with Conn(port) as c:
        c.send(build("POST", "/up", [("Expect", "100-continue"), ("Content-Length", "5")]))
        interim = c.read_response(skip_interim=False)
        assert interim.status == 100
        c.send(b"hello")
        r = c.read_response()
    assert r.status == 200
    echo = r.json()
    assert echo["body"] == "hello" and "expect" not in echo["headers"]


def test_pipelined_requests_in_order(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    with Conn(port) as c:
        c.send(build("GET", "/1?delay=100") + build("POST", "/2", body="two") + build("GET", "/3?stream=2"))
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
    assert r1.json()["path"] == "/1?delay=100"
    assert r2.json()["body"] == "two"
    assert sse_events(r3.body)[-1] == "[DONE]"


# ---------------------------------------------------------------- streaming


def test_sse_chunks_arrive_as_sent(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    n, interval = 6, 0.25
    with Conn(port, timeout=30) as c:
        t0 = time.monotonic()
        c.send(build("POST", "/v1/completions", [("Content-Type", "application/json"),
                                                 ("x-interval-ms", str(int(interval * 1000)))],
                     json.dumps({"model": "m", "prompt": "hi", "stream": True, "max_tokens": n})))
        r = c.read_response()
    assert r.status == 200 and r.chunked
    assert r.header("content-type") == "text/event-stream"
    events = sse_events(r.body)
    assert len(events) == n + 1 and events[-1] == "[DONE]"
    data_times = [t for t, d in r.chunks if d.startswith(b"data: {")]
    assert len(data_times) == n  # one chunk per event: nothing was coalesced
    # the first token reached us long before the stream ended, and tokens arrived spread out
    span = data_times[-1] - data_times[0]
    assert span >= (n - 1) * interval * 0.5, span
    assert data_times[0] - t0 < (n - 1) * interval * 0.5 + 1.0 * SLOW


def test_keepalive_upstream_reuse(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    before = backend_stats(bp["b1"])
    for i in range(20):
        r = request(port, "GET", f"/r{i}")  # a new client connection each time
        assert r.status == 200
    after = backend_stats(bp["b1"])
    new_conns = after["connections"] - before["connections"] - 1  # minus our own stats connection
    assert after["requests"] - before["requests"] == 21
    assert new_conns <= 3, new_conns


def test_100_concurrent_streams(procs, infergate_bin):
    bp = backend.start(procs, ["b1", "b2"])
    port = quick(procs, infergate_bin, bp.values())

    def one(i):
        with Conn(port, timeout=60 * SLOW) as c:
            c.send(build("GET", f"/s{i}?stream=5&interval=50"))
            r = c.read_response()
            return r.status, sse_events(r.body)

    with concurrent.futures.ThreadPoolExecutor(100) as ex:
        results = list(ex.map(one, range(100)))
    for status, events in results:
        assert status == 200
        assert len(events) == 6 and events[-1] == "[DONE]"


def test_backend_dies_mid_stream(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    with Conn(port, timeout=20) as c:
        c.send(build("GET", "/s?stream=10&interval=20&die=3"))
        r = c.read_response()
        assert r.status == 200
        assert r.truncated  # no last chunk: the client can tell the body is incomplete
        assert len(sse_events(r.body)) == 3
        assert c.at_eof()
    # only that response ended: the gateway serves the next one
    r = request(port, "GET", "/after")
    assert r.status == 200 and r.json()["path"] == "/after"


def test_slow_client_is_bounded(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    gw = procs.procs[-1]

    def rss_kb():
        with open(f"/proc/{gw.popen.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    request(port, "GET", "/warm")
    base = rss_kb()
    size = 64 << 20
    slow = Conn(port, timeout=60 * SLOW)
    slow.sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 65536)
    slow.send(build("GET", f"/big?bytes={size}"))
    time.sleep(1.0 * SLOW)  # the backend writes as fast as it can; we read nothing
    # others are served meanwhile
    for i in range(5):
        assert request(port, "GET", f"/other{i}").status == 200
    grown = rss_kb() - base
    assert grown < 24 * 1024, f"gateway RSS grew by {grown} KiB while a client was not reading"
    # then the slow client reads everything, intact
    got = 0
    head = slow.read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    got = len(slow.buf)
    slow.buf = b""
    while got < size:
        data = slow.sock.recv(1 << 20)
        assert data, f"connection closed after {got} bytes"
        got += len(data)
    assert got == size
    slow.close()


def test_client_gone_cancels_upstream(procs, infergate_bin, tmp_path):
    bp = backend.start(procs, ["b1"])
    port, admin = free_port(), free_port()
    start_gateway(procs, tmp_path, one_backend_yaml(port, bp["b1"], top=f"admin:\n  address: 127.0.0.1:{admin}"),
                  [port, admin])
    c = Conn(port)
    c.send(build("GET", "/h?hang=1"))
    ep = f'infergate_endpoint_in_flight{{endpoint="127.0.0.1:{bp["b1"]}"}}'

    def in_flight():
        text = request(admin, "GET", "/metrics").body.decode()
        return next((float(l.split()[-1]) for l in text.splitlines() if l.startswith(ep)), None)

    wait_until(lambda: in_flight() == 1, what="request in flight")
    c.close()
    wait_until(lambda: in_flight() == 0, what="upstream request cancelled")
    text = request(admin, "GET", "/metrics").body.decode()
    assert 'infergate_http_requests_total{route="all",status="499"} 1' in text
    assert request(port, "GET", "/next").status == 200


# ---------------------------------------------------------------- errors and limits


def error_of(r):
    body = r.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}, body
    assert r.header("content-type", "").startswith("application/json")
    return body["error"]


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/3.0\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
])
def test_malformed_request_400_then_close(procs, infergate_bin, raw):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    with Conn(port) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 400, r
        assert error_of(r)["type"] == "invalid_request_error"
        assert r.closed and c.at_eof()
    assert request(port, "GET", "/ok").status == 200


def test_malformed_chunked_body_400(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    with Conn(port) as c:
        c.send(build("POST", "/x", [("Transfer-Encoding", "chunked")]) + b"zz\r\nhello\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and c.at_eof()


def test_body_too_large_413(procs, infergate_bin, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, one_backend_yaml(port, bp["b1"], top="limits:\n  max_body_bytes: 1024"), [port])
    with Conn(port) as c:
        c.send(build("POST", "/x", [("Content-Length", str(10 << 20))]))
        r = c.read_response()
        assert r.status == 413 and error_of(r) and c.at_eof()
    with Conn(port) as c:
        c.send(build("POST", "/x", [("Transfer-Encoding", "chunked")]) + (b"400\r\n" + b"a" * 1024 + b"\r\n") * 2)
        r = c.read_response()
        assert r.status == 413 and c.at_eof()
    r = request(port, "POST", "/x", body="a" * 1024)
    assert r.status == 200 and len(r.json()["body"]) == 1024


def test_head_too_large_431(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    with Conn(port) as c:
        c.send(build("GET", "/", [("X-Big", "a" * 20000)]))
        r = c.read_response()
        assert r.status == 431 and error_of(r) and c.at_eof()
    with Conn(port) as c:
        c.send(build("GET", "/", [(f"X-H{i}", "v") for i in range(150)]))
        r = c.read_response()
        assert r.status == 431 and c.at_eof()


def test_no_route_404_keeps_connection(procs, infergate_bin, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
backends:
  - name: b
    endpoints: [127.0.0.1:{bp["b1"]}]
routes:
  - name: v1
    matches: [{{path: /v1}}]
    backend: b
""", [port])
    with Conn(port) as c:
        c.send(build("POST", "/other", body="ignored"))
        r = c.read_response()
        assert r.status == 404 and error_of(r)["code"]
        c.send(build("GET", "/v1/models"))
        r = c.read_response()
        assert r.status == 200 and r.json()["path"] == "/v1/models"


def test_502_when_all_endpoints_down(procs, infergate_bin):
    port = quick(procs, infergate_bin, [free_port(), free_port()])
    r = request(port, "GET", "/x")
    assert r.status == 502
    assert error_of(r)["type"] == "server_error"


def test_retry_next_endpoint_on_refused(procs, infergate_bin):
    bp = backend.start(procs, ["live"])
    port = quick(procs, infergate_bin, [free_port(), bp["live"]], ["--policy", "round-robin"])
    for i in range(10):
        r = request(port, "GET", f"/r{i}")
        assert r.status == 200 and r.header("x-backend") == "live"


def test_504_on_upstream_timeout(procs, infergate_bin, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, one_backend_yaml(port, bp["b1"], "    response_timeout: 300ms"), [port])
    t0 = time.monotonic()
    r = request(port, "GET", "/slow?delay=5000", timeout=30)
    assert r.status == 504 and error_of(r)
    assert time.monotonic() - t0 < 4.5
    assert request(port, "GET", "/fast").status == 200


def test_route_timeout_504(procs, infergate_bin, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
backends:
  - name: b
    endpoints: [127.0.0.1:{bp["b1"]}]
routes:
  - name: all
    backend: b
    timeout: 300ms
""", [port])
    r = request(port, "GET", "/slow?delay=5000", timeout=30)
    assert r.status == 504


# ---------------------------------------------------------------- routing and balancing


def test_route_precedence(procs, infergate_bin, tmp_path):
    bp = backend.start(procs, ["prefix", "exact", "header", "host", "longer"])
    port = free_port()
    start_gateway(procs, tmp_path, f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
backends:
""" + "".join(f"""  - name: {n}
    endpoints: [127.0.0.1:{p}]
""" for n, p in bp.items()) + """
routes:
  - name: prefix
    matches: [{path: /v1}]
    backend: prefix
  - name: longer
    matches: [{path: /v1/chat}]
    backend: longer
  - name: exact
    matches: [{path: {type: Exact, value: /v1/models}}]
    backend: exact
  - name: header
    matches: [{path: /v1, headers: [{name: x-tier, value: gold}]}]
    backend: header
  - name: host
    hostnames: [api.example.com]
    matches: [{path: /}]
    backend: host
""", [port])

    def who(path, headers=None, host="test"):
        r = request(port, "GET", path, headers, host=host)
        assert r.status == 200, r
        return r.header("x-backend")

    assert who("/v1/completions") == "prefix"
    assert who("/v1") == "prefix"
    assert who("/v1/chat/completions") == "longer"
    assert who("/v1/models") == "exact"
    assert who("/v1/models/x") == "prefix"
    assert who("/v1/completions", [("X-Tier", "gold")]) == "header"
    assert who("/v1/completions", host="api.example.com") == "host"
    assert who("/v1/models", host="api.example.com:8080") == "host"
    assert request(port, "GET", "/v2").status == 404
    assert request(port, "GET", "/v1x").status == 404


@pytest.mark.parametrize("policy", ["round-robin", "random", "least-request"])
def test_balancing_spreads(procs, infergate_bin, policy):
    bp = backend.start(procs, ["a", "b", "c"])
    port = quick(procs, infergate_bin, bp.values(), ["--policy", policy])
    seen = {}
    for i in range(30):
        r = request(port, "GET", f"/{i}")
        seen[r.header("x-backend")] = seen.get(r.header("x-backend"), 0) + 1
    assert set(seen) == {"a", "b", "c"}, seen
    if policy == "round-robin":
        assert seen == {"a": 10, "b": 10, "c": 10}


def test_least_request_avoids_busy_endpoint(procs, infergate_bin):
    bp = backend.start(procs, ["a", "b"])
    port = quick(procs, infergate_bin, bp.values(), ["--policy", "least-request"])
    hold = []
    try:
        # park 3 slow requests; whichever endpoint has fewer gets the next quick ones
        for i in range(3):
            c = Conn(port, timeout=30)
            c.send(build("GET", f"/slow{i}?delay={int(3000 * SLOW)}"))
            hold.append(c)
        time.sleep(0.3 * SLOW)
        quick_seen = [request(port, "GET", "/q").header("x-backend") for _ in range(4)]
        slow_seen = [c.read_response().header("x-backend") for c in hold]
    finally:
        for c in hold:
            c.close()
    busy = max(set(slow_seen), key=slow_seen.count)
    assert slow_seen.count(busy) == 2
    assert quick_seen.count(busy) == 0, (slow_seen, quick_seen)


# ---------------------------------------------------------------- upstream keep-alive pool


def test_pool_detects_backend_closed_idle_connection(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    r = request(port, "GET", "/a?idle_close=100")
    assert r.status == 200
    first_conn = r.header("x-conn-id")
    time.sleep(0.5)  # the backend closes the pooled connection meanwhile
    r = request(port, "GET", "/b")
    assert r.status == 200 and r.header("x-conn-id") != first_conn


def test_stale_pooled_connection_retried_once(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    r = request(port, "GET", "/a?drop_next=1")
    assert r.status == 200
    # the pooled connection answers the next request by closing: retried on a fresh connection
    r = request(port, "GET", "/b")
    assert r.status == 200 and r.json()["path"] == "/b"
    assert backend_stats(bp["b1"]).get("dropped") == 1


def test_upstream_connection_close_not_reused(procs, infergate_bin):
    bp = backend.start(procs, ["b1"])
    port = quick(procs, infergate_bin, bp.values())
    ids = set()
    for i in range(3):
        r = request(port, "GET", f"/c{i}?close=1")
        assert r.status == 200
        ids.add(r.header("x-conn-id"))
    assert len(ids) == 3

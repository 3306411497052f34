"""Hostile clients in front of `infergate serve`: request smuggling and framing ambiguities, header
hygiene (hop-by-hop headers, x-request-id), connection limits and slowloris heads.

The invariant of the smuggling tests: a request whose framing is ambiguous gets 400 and the
connection is closed, and the backend (backend.py, which counts every request it reads in
/__stats) never sees it - so nothing can be smuggled behind it."""
import resource
import socket
import time

import pytest

import backend
from conftest import SLOW, free_port, wait_until
from rawhttp import Conn, build, request, start_gateway


def gateway_yaml(port, backend_port, top=""):
    return f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
backends:
  - name: b
    endpoints: [127.0.0.1:{backend_port}]
routes:
  - name: all
    backend: b
{top}
"""


class Seen:
    """Counts requests the backend reads between two points, not counting its own /__stats calls."""

    def __init__(self, bport):
        self.bport = bport
        self.base = self._raw()

    def _raw(self):
        return request(self.bport, "GET", "/__stats").json()["requests"]

    def since(self):
        return self._raw() - self.base - 1


@pytest.fixture
def gw(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, gateway_yaml(port, bp["b1"]), [port])
    return port, bp["b1"]


def expect_400_close(port, raw, what):
    with Conn(port, timeout=10 * SLOW) as c:
        try:
            c.send(raw)
        except OSError:
            pass  # the gateway may close before it read everything: still a refusal
        r = c.read_response()
        assert r is not None, f"{what}: no response"
        assert r.status == 400, f"{what}: {r!r}"
        assert r.header("content-type", "").startswith("application/json"), what
        assert r.json()["error"]["type"] == "invalid_request_error", what
        assert c.at_eof(timeout=5 * SLOW), f"{what}: connection left open"


SMUGGLE = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

# Each is sent with a smuggled request behind it; each must get 400 + close, nothing forwarded.
AMBIGUOUS = {
    "CL.TE": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"0\r\n\r\n" + SMUGGLE,
    "TE.CL": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
             b"5c\r\n" + SMUGGLE + b"\r\n0\r\n\r\n",
    "conflicting CL": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n"
                      b"hello" + SMUGGLE,
    "CL list": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 40\r\n\r\nhello" + SMUGGLE,
    "CL sign": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" + SMUGGLE,
    "CL hex": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello" + SMUGGLE,
    "CL negative": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + SMUGGLE,
    "CL overflow": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n" + SMUGGLE,
    "TE chunked, identity": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
                            b"0\r\n\r\n" + SMUGGLE,
    "TE xchunked": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLE,
    "TE chunked twice": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLE,
    "TE space before colon": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
                             b"Content-Length: 4\r\n\r\n0\r\n\r\n" + SMUGGLE,
    "TE obs-fold": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + SMUGGLE,
    "TE in folded line": b"POST /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n"
                         b"0\r\n\r\n" + SMUGGLE,
    "TE on HTTP/1.0": b"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLE,
    "TE vertical tab": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + SMUGGLE,
    "bare LF in value": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\nTransfer-Encoding: chunked\r\n\r\n" + SMUGGLE,
    "bare CR in value": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" + SMUGGLE,
    "NUL in value": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n" + SMUGGLE,
    "NUL in name": b"GET /a HTTP/1.1\r\nHost: x\r\nX-\x00A: b\r\n\r\n" + SMUGGLE,
    "bad chunk size": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5;\x00\r\nhello\r\n0\r\n\r\n" + SMUGGLE,
    "chunk size overflow": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"ffffffffffffffffff\r\n" + SMUGGLE,
    "two Host headers": b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + SMUGGLE,
}


def test_ambiguous_framing_is_refused(gw):
    port, bport = gw
    seen = Seen(bport)
    failed = []
    for what, raw in AMBIGUOUS.items():
        try:
            expect_400_close(port, raw, what)
        except AssertionError as e:
            failed.append(str(e))
    assert not failed, "\n".join(failed)
    assert seen.since() == 0, "a refused request reached the backend"
    assert request(port, "GET", "/ok").status == 200


# Bad request lines and targets: 400 + close, nothing forwarded.
BAD_TARGETS = {
    "absolute-form": b"GET http://evil.example/a HTTP/1.1\r\nHost: x\r\n\r\n",
    "authority-form": b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    "relative": b"GET a/b HTTP/1.1\r\nHost: x\r\n\r\n",
    "space in target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "tab in target": b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
    "NUL in target": b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "DEL in target": b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n",
    "empty target": b"GET  HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad method": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "lower-case version": b"GET / http/1.1\r\nHost: x\r\n\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "LF-only line ends": b"GET / HTTP/1.1\nHost: x\n\n",
}


def test_bad_targets_are_refused(gw):
    port, bport = gw
    seen = Seen(bport)
    failed = []
    for what, raw in BAD_TARGETS.items():
        try:
            expect_400_close(port, raw + SMUGGLE, what)
        except AssertionError as e:
            failed.append(str(e))
    assert not failed, "\n".join(failed)
    assert seen.since() == 0


def test_identical_duplicate_content_length_is_not_a_smuggling_vector(gw):
    """RFC 9110 lets a recipient accept `Content-Length: 5` twice. Either way, the backend must see
    exactly one request, framed by the gateway's own single Content-Length."""
    port, bport = gw
    seen = Seen(bport)
    with Conn(port) as c:
        c.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
        r = c.read_response()
    assert r.status in (200, 400), r
    if r.status == 200:
        echo = r.json()
        assert echo["body"] == "hello" and echo["headers"]["content-length"] == "5"
        assert seen.since() == 1
    else:
        assert seen.since() == 0


def test_chunked_body_is_forwarded_with_content_length(gw):
    """A chunked request body is decoded and forwarded with one Content-Length and no
    Transfer-Encoding, so the backend cannot frame it differently; a request pipelined behind it
    is a separate, visible request."""
    port, bport = gw
    seen = Seen(bport)
    with Conn(port) as c:
        c.send(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\n\r\n" + b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        r1 = c.read_response()
        r2 = c.read_response()
    echo = r1.json()
    assert echo["body"] == "hello"
    assert echo["headers"]["content-length"] == "5"
    assert "transfer-encoding" not in echo["headers"]
    assert r2.json()["path"] == "/second"
    assert seen.since() == 2


def test_hop_by_hop_and_connection_listed_headers_are_stripped(gw):
    port, _ = gw
    hdrs = [("Connection", "keep-alive, X-Secret, x-other"), ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="), ("Trailer", "X-T"),
            ("X-Secret", "s"), ("X-Other", "o"), ("X-Kept", "k")]
    r = request(port, "GET", "/h", hdrs)
    assert r.status == 200, r
    seen = r.json()["headers"]
    for h in ("keep-alive", "proxy-connection", "te", "upgrade", "proxy-authorization", "trailer",
              "x-secret", "x-other"):
        assert h not in seen, (h, seen)
    assert seen.get("connection", "keep-alive").lower() != "keep-alive, x-secret, x-other"
    assert seen["x-kept"] == "k"


def test_request_id_generated_and_propagated(gw):
    port, _ = gw
    r = request(port, "GET", "/id")
    rid = r.json()["headers"].get("x-request-id")
    assert rid and 8 <= len(rid) <= 64 and all(ch.isalnum() or ch == "-" for ch in rid), rid
    r2 = request(port, "GET", "/id")
    assert r2.json()["headers"]["x-request-id"] != rid
    r3 = request(port, "GET", "/id", [("X-Request-Id", "abc-123")])
    assert r3.json()["headers"]["x-request-id"] == "abc-123"


def test_refused_request_does_not_poison_keep_alive(gw):
    """A good request, then a smuggling attempt on the same connection: the first is answered, the
    second refused, and the connection closed before the smuggled part is read as a request."""
    port, bport = gw
    seen = Seen(bport)
    with Conn(port) as c:
        c.send(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n" + AMBIGUOUS["CL.TE"])
        r1 = c.read_response()
        r2 = c.read_response()
        assert r1.status == 200 and r2.status == 400
        assert c.at_eof(timeout=5 * SLOW)
    assert seen.since() == 1


# ---------------------------------------------------------------- limits


def test_per_ip_connection_cap(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, gateway_yaml(port, bp["b1"], "limits:\n  max_connections_per_ip: 5"),
                  [port])
    held = []
    try:
        for _ in range(5):
            c = Conn(port, timeout=10 * SLOW)
            c.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().status == 200
            held.append(c)
        # the sixth is closed at once, without an answer
        with Conn(port, timeout=10 * SLOW) as c:
            try:
                c.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            except OSError:
                pass
            assert c.read_response() is None
        # the ones held still work
        held[0].send(b"GET /y HTTP/1.1\r\nHost: x\r\n\r\n")
        assert held[0].read_response().status == 200
    finally:
        for c in held:
            c.close()
    # once they are gone, new connections are accepted again
    wait_until(lambda: request(port, "GET", "/z", timeout=2 * SLOW).status == 200, timeout=10,
               what="connections accepted again")


def test_header_timeout_408(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, gateway_yaml(port, bp["b1"], "timeouts:\n  header: 500ms\n  client: 60s"),
                  [port])
    with Conn(port, timeout=15 * SLOW) as c:
        c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        # a header line now and then does not extend the deadline
        for i in range(3):
            time.sleep(0.1)
            c.send(f"X-{i}: {i}\r\n".encode())
        r = c.read_response()
        assert r is not None and r.status == 408, r
        assert c.at_eof(timeout=5 * SLOW)
        assert time.monotonic() - t0 < 30 * SLOW  # far below the 60 s client timeout
    assert request(port, "GET", "/ok").status == 200


def test_slowloris_1000_connections(procs, tmp_path):
    """1,000 connections that each send half a request head and stall: the gateway keeps serving
    normal requests, and cuts every one of them at the header timeout."""
    # this process holds n sockets and the gateway (which inherits the limit) n more
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2600 if hard == resource.RLIM_INFINITY else min(2600, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    n = min(1000, (want - 300) // 2)
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, gateway_yaml(port, bp["b1"],
                                                "limits:\n  max_connections_per_ip: 0\n"
                                                "timeouts:\n  header: 2s\n  client: 120s"), [port])
    socks = []
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
            s.sendall(b"GET /loris HTTP/1.1\r\nHost: x\r\nX-Pad: ")
            socks.append(s)
        # normal traffic goes through meanwhile
        for i in range(20):
            assert request(port, "GET", f"/n{i}", timeout=10 * SLOW).status == 200
        # every stalled connection gets its 408 (or at least the close) within a bound
        deadline = time.monotonic() + 60 * SLOW
        closed = 0
        got_408 = 0
        for s in socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            except socket.timeout:
                break
            closed += 1
            got_408 += data.startswith(b"HTTP/1.1 408")
        assert closed == n, f"only {closed} of {n} slowloris connections were cut"
        assert got_408 >= n * 0.9, got_408
    finally:
        for s in socks:
            s.close()
    assert request(port, "GET", "/after").status == 200

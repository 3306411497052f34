"""Operating the gateway: admin endpoints, access log, SIGHUP reload, SIGTERM drain, TCP listeners."""
import os
import signal
import socket
import threading
import time

import backend
from conftest import SLOW, free_port, port_open, wait_until
from rawhttp import Conn, admin_get, build, metric, request, sse_events, start_gateway


def config(port, admin, endpoints, extra="", listeners_extra="", route_extra=""):
    eps = ", ".join(f"127.0.0.1:{p}" for p in endpoints)
    return f"""# test gateway
listeners:
  - name: web
    address: 127.0.0.1:{port}
{listeners_extra}
admin:
  address: 127.0.0.1:{admin}
backends:
  - name: b
    endpoints: [{eps}]
routes:
  - name: main
    backend: b
{route_extra}
{extra}
"""


def test_admin_health_ready_metrics(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port, admin = free_port(), free_port()
    start_gateway(procs, tmp_path, config(port, admin, [bp["b1"]]), [port, admin])
    assert admin_get(admin, "/healthz") == (200, "ok\n")
    assert admin_get(admin, "/readyz")[0] == 200
    assert admin_get(admin, "/nope")[0] == 404
    for _ in range(3):
        assert request(port, "GET", "/x").status == 200
    request(port, "GET", "/x?status=503")
    status, text = admin_get(admin, "/metrics")
    assert status == 200
    assert metric(text, 'infergate_http_requests_total{route="main",status="200"}') == 3
    assert metric(text, 'infergate_http_requests_total{route="main",status="503"}') == 1
    assert "# TYPE infergate_http_requests_total counter" in text
    # the admin port does not proxy, and the proxy port has no admin paths
    assert request(port, "GET", "/healthz").json()["path"] == "/healthz"
    # admin keep-alive
    with Conn(admin) as c:
        for _ in range(3):
            c.send(build("GET", "/healthz"))
            assert c.read_response().status == 200


def test_access_log_line(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    log = tmp_path / "access.log"
    start_gateway(procs, tmp_path, config(port, free_port(), [bp["b1"]], extra=f"access_log: {log}"), [port])
    r = request(port, "GET", "/logged?stream=2", [("X-Request-Id", "rid-1")])
    assert r.status == 200
    request(port, "GET", "/missing?status=404")
    line = wait_until(lambda: [l for l in log.read_text().splitlines() if "rid-1" in l], what="access log")[0]
    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
    assert line.split()[0].endswith("Z") and "T" in line.split()[0]
    assert fields["route"] == "main"
    assert fields["model"] == "-"
    assert fields["endpoint"] == f"127.0.0.1:{bp['b1']}"
    assert fields["status"] == "200"
    assert int(fields["bytes"]) > len(r.body)  # head + body as written to the client
    assert float(fields["duration_ms"]) >= float(fields["ttft_ms"]) >= 0
    assert fields["method"] == "GET" and fields["path"] == "/logged?stream=2"
    wait_until(lambda: "status=404" in log.read_text(), what="second log line")


def test_access_log_stdout(procs, infergate_bin, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    out = open(tmp_path / "stdout.txt", "w")
    procs.start("gateway", [infergate_bin, "serve", "--listen", f"127.0.0.1:{port}", "--backend",
                            f"127.0.0.1:{bp['b1']}", "--access-log", "-"], wait_port=port, stdout=out)
    request(port, "GET", "/to-stdout")
    wait_until(lambda: "path=/to-stdout" in (tmp_path / "stdout.txt").read_text(), what="stdout access log")


def test_reload_switches_backend_and_keeps_old_on_error(procs, tmp_path):
    bp = backend.start(procs, ["old", "new"])
    port, admin, port2 = free_port(), free_port(), free_port()
    gw, path = start_gateway(procs, tmp_path, config(port, admin, [bp["old"]]), [port, admin])
    assert request(port, "GET", "/").header("x-backend") == "old"
    # an in-flight stream keeps the snapshot it started with
    stream = Conn(port, timeout=30)
    stream.send(build("GET", "/s?stream=4&interval=200"))
    head = stream.read_until(b"\r\n\r\n")  # the stream has started on the old snapshot
    assert b"x-backend: old" in head
    # good config: new backend, plus a second listener
    with open(path, "w") as f:
        f.write(config(port, admin, [bp["new"]], listeners_extra=f"  - name: web2\n    address: 127.0.0.1:{port2}"))
    gw.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: request(port, "GET", "/").header("x-backend") == "new", what="reload to the new backend")
    wait_until(lambda: port_open(port2), what="new listener")
    assert request(port2, "GET", "/").header("x-backend") == "new"
    rest = stream.read_until(b"0\r\n\r\n")
    assert rest is not None and b"data: [DONE]" in rest
    stream.close()
    # bad config: every error logged with file:line, old config kept
    with open(path, "w") as f:
        f.write(f"listeners:\n  - name: web\n    address: 127.0.0.1:{port}\n    bogus_key: 1\n"
                "routes:\n  - name: main\n    backend: nowhere\n")
    gw.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: "keeping the running configuration" in gw.log(), what="reload failure logged")
    log = gw.log()
    assert f"{path}:4:" in log  # bogus_key
    assert f"{path}:7:" in log  # unknown backend
    assert request(port, "GET", "/").header("x-backend") == "new"
    assert request(port2, "GET", "/").status == 200
    # removing the second listener closes it
    with open(path, "w") as f:
        f.write(config(port, admin, [bp["old"]]))
    gw.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: not port_open(port2), what="removed listener closed")
    assert request(port, "GET", "/").header("x-backend") == "old"
    status, text = admin_get(admin, "/metrics")
    assert metric(text, 'infergate_config_reloads_total{result="success"}') == 2
    assert metric(text, 'infergate_config_reloads_total{result="failure"}') == 1


def test_sigterm_drains_in_flight_stream(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port, admin = free_port(), free_port()
    gw, _ = start_gateway(procs, tmp_path, config(port, admin, [bp["b1"]], extra="timeouts:\n  drain: 30s"),
                          [port, admin])
    idle = Conn(port)  # an idle keep-alive connection is closed by the drain
    idle.send(build("GET", "/warm"))
    assert idle.read_response().status == 200
    c = Conn(port, timeout=30)
    c.send(build("GET", "/s?stream=8&interval=150"))
    first = c.read_until(b"data: ")  # the stream has started
    assert first is not None
    gw.popen.send_signal(signal.SIGTERM)
    wait_until(lambda: admin_get(admin, "/readyz")[0] == 503, what="readyz 503 while draining")
    wait_until(lambda: not port_open(port), what="listener closed")
    assert idle.at_eof()
    rest = c.read_all()
    assert b"data: [DONE]" in rest and rest.endswith(b"0\r\n\r\n")
    gw.popen.wait(timeout=20 * SLOW)
    assert gw.popen.returncode == 0
    assert "drained" in gw.log()


def test_sigterm_drain_timeout(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    gw, _ = start_gateway(procs, tmp_path, config(port, free_port(), [bp["b1"]], extra="timeouts:\n  drain: 500ms"),
                          [port])
    c = Conn(port, timeout=30)
    c.send(build("GET", "/h?hang=1"))
    time.sleep(0.2)
    t0 = time.monotonic()
    gw.popen.send_signal(signal.SIGTERM)
    gw.popen.wait(timeout=20 * SLOW)
    assert gw.popen.returncode == 0
    assert time.monotonic() - t0 < 10 * SLOW
    assert c.at_eof()
    c.close()


def test_tcp_listener_splices(procs, tmp_path):
    bp = backend.start(procs, ["b1", "b2"])
    port, tport = free_port(), free_port()
    start_gateway(procs, tmp_path, config(port, free_port(), [bp["b1"], bp["b2"]], listeners_extra=(
        f"  - name: l4\n    address: 127.0.0.1:{tport}\n    protocol: tcp\n    backend: b")), [port, tport])
    seen = set()
    for i in range(4):
        with Conn(tport) as c:
            # several requests over the spliced connection, then half-close: the response still arrives
            c.send(build("POST", "/a", body="x" * 200000))
            r = c.read_response()
            assert r.status == 200 and len(r.json()["body"]) == 200000
            seen.add(r.header("x-backend"))
            c.send(build("GET", f"/b{i}", [("Connection", "close")]))
            c.sock.shutdown(socket.SHUT_WR)
            r = c.read_response()
            assert r.status == 200 and r.json()["path"] == f"/b{i}"
            assert c.at_eof()
    assert seen == {"b1", "b2"}  # round-robin over the endpoints


def test_tcp_listener_retries_refused_endpoint(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port, tport = free_port(), free_port()
    start_gateway(procs, tmp_path, config(port, free_port(), [free_port(), bp["b1"]], listeners_extra=(
        f"  - name: l4\n    address: 127.0.0.1:{tport}\n    protocol: tcp\n    backend: b")), [port, tport])
    for i in range(3):
        with Conn(tport) as c:
            c.send(build("GET", "/x"))
            assert c.read_response().header("x-backend") == "b1"


def test_max_connections(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port, admin = free_port(), free_port()
    start_gateway(procs, tmp_path, config(port, admin, [bp["b1"]], extra="limits:\n  max_connections: 2"),
                  [port, admin])

    def conns():
        return metric(admin_get(admin, "/metrics")[1], "infergate_client_connections")

    wait_until(lambda: conns() == 0, what="the readiness probe connection to go away")
    a, b = Conn(port), Conn(port)
    for c in (a, b):
        c.send(build("GET", "/x"))
        assert c.read_response().status == 200
    extra = Conn(port)
    assert extra.at_eof()  # over the limit: closed at once
    a.close()
    extra.close()
    wait_until(lambda: conns() == 1, what="a connection slot to free up")
    wait_until(lambda: request(port, "GET", "/again").status == 200, what="a free connection slot")
    b.close()


def test_client_timeout_408(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, config(port, free_port(), [bp["b1"]], extra="timeouts:\n  client: 300ms"), [port])
    with Conn(port, timeout=20) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # head never finished
        r = c.read_response()
        assert r.status == 408 and c.at_eof()
    with Conn(port, timeout=20) as c:  # an idle keep-alive connection is closed quietly
        c.send(build("GET", "/x"))
        assert c.read_response().status == 200
        assert c.at_eof(timeout=10 * SLOW)

"""A reload that removes a listener (native YAML, SIGHUP): keep-alive connections accepted on it are
closed instead of answering 404 route_not_found, and a request in flight on one still completes."""
import signal

import backend
from conftest import SLOW, free_port, port_open, wait_until
from rawhttp import Conn, build, start_gateway

EOF_WAIT = 10 * SLOW


def two_listeners(p1, p2, admin, bport, second=True):
    extra = f"""  - name: second
    address: 127.0.0.1:{p2}
""" if second else ""
    return f"""listeners:
  - name: first
    address: 127.0.0.1:{p1}
{extra}admin:
  address: 127.0.0.1:{admin}
backends:
  - name: b
    endpoints: [127.0.0.1:{bport}]
routes:
  - name: all
    backend: b
"""


def reload_without_second(proc, path, p1, p2, admin, bport):
    with open(path, "w") as f:
        f.write(two_listeners(p1, p2, admin, bport, second=False))
    proc.popen.send_signal(signal.SIGHUP)
    # the listener closes while the reload is applied: once the port is shut the reload is done
    wait_until(lambda: not port_open(p2), timeout=10 * SLOW, what="the second listener to close")


def start_two(procs, tmp_path):
    bport = backend.start(procs, ["b1"])["b1"]
    p1, p2, admin = free_port(), free_port(), free_port()
    proc, path = start_gateway(procs, tmp_path, two_listeners(p1, p2, admin, bport), [p1, p2, admin])
    return proc, path, p1, p2, admin, bport


def test_idle_keepalive_connection_of_removed_listener_is_closed(procs, tmp_path):
    proc, path, p1, p2, admin, bport = start_two(procs, tmp_path)
    timeout = 10 * SLOW
    with Conn(p2, timeout=timeout) as idle, Conn(p2, timeout=timeout) as partial, \
            Conn(p1, timeout=timeout) as kept:
        for c in (idle, partial, kept):
            c.send(build("GET", "/before"))
            r = c.read_response()
            assert r is not None and r.status == 200
            assert (r.header("connection") or "").lower() != "close"
        # a request head that has started to arrive when the listener goes
        partial.send(b"GET /half HTTP/1.1\r\nHost: test\r\n")
        reload_without_second(proc, path, p1, p2, admin, bport)
        assert idle.at_eof(timeout=EOF_WAIT), "idle connection of the removed listener stays open"
        # the head completes after the reload: closed without an answer (no 404 route_not_found)
        try:
            partial.send(b"\r\n")
        except OSError:
            pass
        assert partial.read_response() is None
        # the listener that stayed keeps its keep-alive connection
        kept.send(build("GET", "/after"))
        r = kept.read_response()
        assert r is not None and r.status == 200
    assert proc.alive()


def test_request_in_flight_on_removed_listener_completes(procs, tmp_path):
    proc, path, p1, p2, admin, bport = start_two(procs, tmp_path)
    interval = int(300 * SLOW)
    with Conn(p2, timeout=30 * SLOW) as c:
        c.send(build("GET", "/warm"))
        r = c.read_response()
        assert r is not None and r.status == 200
        # a stream of 6 events, one every `interval` ms: it is under way during the reload
        c.send(build("GET", f"/s?stream=6&interval={interval}"))
        head = c.read_until(b"\r\n\r\n")
        assert head is not None and head.startswith(b"HTTP/1.1 200")
        reload_without_second(proc, path, p1, p2, admin, bport)
        rest = c.read_all()  # the whole stream, then the close
        assert b"data: [DONE]" in rest and rest.endswith(b"0\r\n\r\n")
        assert rest.count(b"data:") == 7
        assert c.eof
    # the listener that stayed still serves
    with Conn(p1, timeout=10 * SLOW) as c:
        c.send(build("GET", "/after"))
        r = c.read_response()
        assert r is not None and r.status == 200
    assert proc.alive()

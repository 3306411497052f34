"""TLS from the gateway to upstreams (issue #9): certificates made at test time with the openssl CLI,
in-process Python ssl upstreams (tests/integration/upstreamsrv.py), `infergate serve` in front.
Verification (CA, DNS name, IP address), no plaintext fallback, mTLS, keep-alive and streaming; the
metrics scrape and model discovery of a pool's pods over TLS."""
import json
import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port, infergate_path, wait_until
from rawhttp import Conn, build, request, sse_events, start_gateway
import upstreamsrv


@pytest.fixture
def servers():
    s = upstreamsrv.Servers()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("upki"))
    ca, _ = upstreamsrv.make_ca(d, "ca")
    other, _ = upstreamsrv.make_ca(d, "other")
    return {
        "dir": d,
        "ca": ca,
        "other_ca": other,
        "up": upstreamsrv.make_leaf(d, "up", "DNS:up.example.com"),
        "ip": upstreamsrv.make_leaf(d, "ip", "IP:127.0.0.1"),
        "client": upstreamsrv.make_leaf(d, "client", "DNS:gateway.example.com", usage="clientAuth"),
    }


def gw_yaml(port, admin, up_port, tls_block, backend_kind="backends"):
    return f"""
listeners:
  - name: main
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
{backend_kind}:
  - name: b
    endpoints: [127.0.0.1:{up_port}]
    tls:
{tls_block}
routes:
  - name: all
    backend: b
"""


def start(procs, tmp_path, up_port, tls_block):
    port, admin = free_port(), free_port()
    gw, _ = start_gateway(procs, tmp_path, gw_yaml(port, admin, up_port, tls_block), [port, admin])
    return gw, port


def test_verified_tls_by_name(procs, tmp_path, servers, pki):
    srv = servers.start("tls", cert=pki["up"][0], key=pki["up"][1])
    gw, port = start(procs, tmp_path, srv.port,
                     f"      ca_file: {pki['ca']}\n      server_name: up.example.com\n")
    with Conn(port) as c:
        for i in range(3):
            c.send(build("POST", f"/v1/x?i={i}", [("Content-Type", "application/json")], b'{"a":1}'))
            r = c.read_response("POST")
            assert r.status == 200, r.body
            j = r.json()
            assert j["tls"] is True and j["backend"] == "tls" and j["body"] == '{"a":1}'
    assert srv.state.requests == 3


def test_verified_tls_by_ip_address(procs, tmp_path, servers, pki):
    srv = servers.start("tls", cert=pki["ip"][0], key=pki["ip"][1])
    gw, port = start(procs, tmp_path, srv.port, f"      ca_file: {pki['ca']}\n")
    r = request(port, "GET", "/")
    assert r.status == 200 and r.json()["tls"] is True


def check_502(r, gw):
    assert r.status == 502, r.body
    err = r.json()["error"]
    assert err["code"] == "upstream_tls_error" and err["type"] == "server_error"


def test_wrong_ca_is_502(procs, tmp_path, servers, pki):
    srv = servers.start("tls", cert=pki["up"][0], key=pki["up"][1])
    gw, port = start(procs, tmp_path, srv.port,
                     f"      ca_file: {pki['other_ca']}\n      server_name: up.example.com\n")
    check_502(request(port, "GET", "/"), gw)
    assert srv.state.requests == 0
    assert "certificate verification failed" in gw.log()


def test_wrong_name_is_502(procs, tmp_path, servers, pki):
    srv = servers.start("tls", cert=pki["up"][0], key=pki["up"][1])
    gw, port = start(procs, tmp_path, srv.port,
                     f"      ca_file: {pki['ca']}\n      server_name: other.example.com\n")
    check_502(request(port, "GET", "/"), gw)
    # the endpoint's IP is checked when no server_name is given: a DNS-only certificate fails too
    assert srv.state.requests == 0
    assert "certificate verification failed" in gw.log()


def test_ip_not_in_certificate_is_502(procs, tmp_path, servers, pki):
    srv = servers.start("tls", cert=pki["up"][0], key=pki["up"][1])
    gw, port = start(procs, tmp_path, srv.port, f"      ca_file: {pki['ca']}\n")
    check_502(request(port, "GET", "/"), gw)
    assert srv.state.requests == 0


def test_no_plaintext_fallback(procs, tmp_path, servers, pki):
    srv = servers.start("plain")  # speaks plain HTTP only
    gw, port = start(procs, tmp_path, srv.port, f"      ca_file: {pki['ca']}\n      server_name: up.example.com\n")
    r = request(port, "GET", "/")
    check_502(r, gw)
    assert srv.state.requests == 0


def test_verify_false_accepts_any_certificate(procs, tmp_path, servers, pki):
    srv = servers.start("tls", cert=pki["up"][0], key=pki["up"][1])
    gw, port = start(procs, tmp_path, srv.port, f"      ca_file: {pki['other_ca']}\n      verify: false\n")
    r = request(port, "GET", "/")
    assert r.status == 200 and r.json()["tls"] is True
    assert "NOT verified" in gw.log()


def test_reload_keeps_client_context_until_files_change(procs, tmp_path, servers, pki):
    """A reload with the same upstream TLS settings and files reuses the backend's TLS client context
    (built once: the unverified-TLS warning is not repeated); a CA file that changed builds a new one."""
    import shutil
    import signal
    srv = servers.start("tls", cert=pki["up"][0], key=pki["up"][1])
    ca = str(tmp_path / "ca-copy.pem")
    shutil.copy(pki["other_ca"], ca)
    gw, port = start(procs, tmp_path, srv.port, f"      ca_file: {ca}\n      verify: false\n")
    assert request(port, "GET", "/").status == 200

    def reload(n):
        gw.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: gw.log().count("configuration reloaded") >= n, what=f"reload {n}")
        r = request(port, "GET", "/")
        assert r.status == 200 and r.json()["tls"] is True

    reload(1)
    reload(2)
    assert gw.log().count("NOT verified") == 1
    st = os.stat(ca)
    os.utime(ca, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    reload(3)
    assert gw.log().count("NOT verified") == 2


def test_mutual_tls(procs, tmp_path, servers, pki):
    srv = servers.start("mtls", cert=pki["up"][0], key=pki["up"][1], client_ca=pki["ca"])
    base = f"      ca_file: {pki['ca']}\n      server_name: up.example.com\n"
    gw, port = start(procs, tmp_path, srv.port, base)
    r = request(port, "GET", "/")
    assert r.status == 502  # the server wants a client certificate
    procs.stop(gw)
    sub = tmp_path / "m"
    sub.mkdir()
    gw, port = start(procs, sub, srv.port,
                     base + f"      cert_file: {pki['client'][0]}\n      key_file: {pki['client'][1]}\n")
    r = request(port, "GET", "/")
    assert r.status == 200, r.body
    assert r.json()["peer_cert"] == "client"


def test_streaming_over_tls(procs, tmp_path, servers, pki):
    srv = servers.start("tls", cert=pki["up"][0], key=pki["up"][1])
    srv.state.events, srv.state.interval = 5, 0.02
    gw, port = start(procs, tmp_path, srv.port, f"      ca_file: {pki['ca']}\n      server_name: up.example.com\n")
    r = request(port, "GET", "/stream")
    assert r.status == 200
    ev = sse_events(r.body)
    assert ev[-1] == "[DONE]" and [json.loads(e)["i"] for e in ev[:-1]] == list(range(5))


def test_pool_over_tls(procs, tmp_path, servers, pki):
    """An inference pool's requests go over TLS too (this server answers its scrapes with 404)."""
    srv = servers.start("tls", cert=pki["up"][0], key=pki["up"][1])
    port, admin = free_port(), free_port()
    y = gw_yaml(port, admin, srv.port, f"      ca_file: {pki['ca']}\n      server_name: up.example.com\n",
                backend_kind="pools")
    start_gateway(procs, tmp_path, y, [port, admin])
    body = json.dumps({"model": "m", "prompt": "hi"}).encode()
    r = request(port, "POST", "/v1/completions", [("Content-Type", "application/json")], body)
    assert r.status == 200 and r.json()["tls"] is True


def test_check_reports_bad_tls_files(tmp_path, pki):
    path = tmp_path / "bad.yaml"
    path.write_text(f"""listeners:
  - name: main
    address: 127.0.0.1:1
backends:
  - name: b
    endpoints: [127.0.0.1:2]
    tls:
      ca_file: {tmp_path}/missing.pem
      cert_file: {pki['client'][0]}
routes:
  - name: all
    backend: b
""")
    p = subprocess.run([infergate_path(), "check", "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert f"{path}:8:" in out and "missing.pem" in out
    assert "key_file" in out


# ---------------------------------------------------------------- a pool's pods that speak only TLS

METRICS_PAGE = (b"# HELP vllm:num_requests_waiting Requests waiting.\n"
                b"# TYPE vllm:num_requests_waiting gauge\n"
                b'vllm:num_requests_waiting{model_name="tls-base",engine="0"} 3\n'
                b'vllm:num_requests_running{model_name="tls-base",engine="0"} 2\n'
                b'vllm:kv_cache_usage_perc{model_name="tls-base",engine="0"} 0.25\n')
MODELS = {"object": "list", "data": [{"id": "tls-base", "object": "model", "owned_by": "test"},
                                     {"id": "tls-lora", "object": "model", "parent": "tls-base"}]}


class TlsPod:
    """A vLLM-like pod over TLS only: /metrics (a small V1 page), /v1/models, and an echo for
    everything else. Counts scrapes, and the connections whose first request was a scrape."""

    def __init__(self, cert, key):
        self.lock = threading.Lock()
        self.scrapes = 0
        self.scrape_conns = 0
        self.model_lists = 0
        self.requests = 0
        pod = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, status, ctype, body):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                first = not getattr(self, "_seen", False)
                self._seen = True
                if self.path == "/metrics":
                    with pod.lock:
                        pod.scrapes += 1
                        pod.scrape_conns += first
                    self._reply(200, "text/plain; version=0.0.4", METRICS_PAGE)
                elif self.path == "/v1/models":
                    with pod.lock:
                        pod.model_lists += 1
                    self._reply(200, "application/json", json.dumps(MODELS).encode())
                else:
                    self._reply(404, "application/json", b'{"error":{"message":"no"}}')

            def do_POST(self):
                self._seen = True
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with pod.lock:
                    pod.requests += 1
                out = json.dumps({"tls": isinstance(self.connection, ssl.SSLSocket), "path": self.path,
                                  "body": body.decode("latin-1")}).encode()
                self._reply(200, "application/json", out)

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def counts(self):
        with self.lock:
            return self.scrapes, self.scrape_conns

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tls_pods():
    pods = []

    def make(cert, key):
        p = TlsPod(cert, key)
        pods.append(p)
        return p

    yield make
    for p in pods:
        p.stop()


def pool_yaml(port, admin, pods, tls_block, interval="100ms"):
    eps = ", ".join(f"127.0.0.1:{p.port}" for p in pods)
    return f"""
listeners:
  - name: main
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
pools:
  - name: tp
    endpoints: [{eps}]
    scrape_interval: {interval}
    discovery_interval: 200ms
    tls:
{tls_block}
routes:
  - name: all
    backend: tp
"""


def debug_pods(admin):
    r = request(admin, "GET", "/debug/pools")
    assert r.status == 200
    pools = [p for p in r.json()["pools"] if p["name"] == "tp"]
    return pools[0]["pods"]


def test_pool_pods_scraped_and_discovered_over_tls(procs, tmp_path, tls_pods, pki):
    """A pool whose pods serve /metrics and /v1/models only over TLS: fresh metrics for every pod, the
    discovered models routed to and listed, and the scrapes on one kept-alive TLS connection per pod."""
    pods = [tls_pods(*pki["ip"]), tls_pods(*pki["ip"])]
    port, admin = free_port(), free_port()
    gw, _ = start_gateway(procs, tmp_path, pool_yaml(port, admin, pods, f"      ca_file: {pki['ca']}\n"),
                          [port, admin])

    def fresh():
        ps = debug_pods(admin)
        return all(p["has_metrics"] and p["scrapes_ok"] >= 10 and p["discovered"] for p in ps)

    wait_until(fresh, timeout=20, what="fresh metrics and discovered models of the TLS pods")
    for p in debug_pods(admin):
        assert p["waiting"] == 3 and p["running"] == 2 and abs(p["kv"] - 0.25) < 1e-9, p
        assert p["age_ms"] is not None and p["age_ms"] < 2000, p  # not stale
        assert p["last_status"] == 200
        assert sorted(p["models"]) == ["tls-base", "tls-lora"], p

    # keep-alive: a new scrape connection (a full handshake) only after a failed scrape, never per scrape
    for pod in pods:
        scrapes, conns = pod.counts()
        assert scrapes >= 10
        failed = next(p["scrapes_failed"] for p in debug_pods(admin) if p["endpoint"].endswith(f":{pod.port}"))
        assert 1 <= conns <= 1 + failed, (scrapes, conns, failed)

    # the discovered models are served (and listed); an unknown one is 404
    body = json.dumps({"model": "tls-lora", "prompt": "hi"}).encode()
    r = request(port, "POST", "/v1/completions", [("Content-Type", "application/json")], body)
    assert r.status == 200, r.body
    assert r.json()["tls"] is True
    r = request(port, "GET", "/v1/models")
    assert r.status == 200
    ids = {m["id"] for m in r.json()["data"]}
    assert {"tls-base", "tls-lora"} <= ids, ids
    body = json.dumps({"model": "nope", "prompt": "hi"}).encode()
    r = request(port, "POST", "/v1/completions", [("Content-Type", "application/json")], body)
    assert r.status == 404, r.body
    assert "certificate verification failed" not in gw.log()


def test_pool_pods_wrong_ca_stale_and_502(procs, tmp_path, tls_pods, pki):
    """A pool whose CA does not sign its pods' certificate: no metrics (stale), nothing discovered, a
    warning naming the endpoint and the reason, never plain HTTP, and requests get 502."""
    pod = tls_pods(*pki["ip"])
    port, admin = free_port(), free_port()
    gw, _ = start_gateway(procs, tmp_path, pool_yaml(port, admin, [pod], f"      ca_file: {pki['other_ca']}\n"),
                          [port, admin])
    name = f"127.0.0.1:{pod.port}"

    def failing():
        ps = debug_pods(admin)
        return ps[0]["scrapes_failed"] >= 3 and ps[0].get("discovery_fetches", 0) >= 1
    wait_until(failing, timeout=20, what="failed scrapes and discovery")
    p = debug_pods(admin)[0]
    assert p["has_metrics"] is False and p["age_ms"] is None and p["scrapes_ok"] == 0, p
    assert p["discovered"] is False and p["models"] == [], p
    assert p["last_status"] == 0
    log = gw.log()
    assert f"scrape {name}: TLS certificate verification failed" in log, log
    assert f"discovery {name}: TLS certificate verification failed" in log, log
    # rate-limited: one warning every 30 s, however many scrapes failed
    warned = log.count(f"scrape {name}: TLS certificate verification failed")
    assert 1 <= warned <= 2 and warned < debug_pods(admin)[0]["scrapes_failed"], log
    assert pod.counts() == (0, 0) and pod.model_lists == 0  # nothing reached the pod in plain text

    body = json.dumps({"model": "tls-base", "prompt": "hi"}).encode()
    r = request(port, "POST", "/v1/completions", [("Content-Type", "application/json")], body)
    check_502(r, gw)
    assert pod.requests == 0


class FirstBytes:
    """A TCP listener that records the first bytes of every connection and closes it: tells a TLS
    ClientHello (0x16) from plain HTTP ("GET ")."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.seen = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.settimeout(2)
            try:
                b = c.recv(4)
            except OSError:
                b = b""
            with self.lock:
                self.seen.append(b)
            c.close()

    def first_bytes(self):
        with self.lock:
            return list(self.seen)

    def stop(self):
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


def test_pool_no_plaintext_scrape_or_discovery(procs, tmp_path, pki):
    """No plaintext fallback for scrapes and discovery: every connection to the pod starts a TLS
    handshake, none a plain GET; the failure is a handshake failure naming the endpoint."""
    fb = FirstBytes()
    try:
        port, admin = free_port(), free_port()
        gw, _ = start_gateway(procs, tmp_path, pool_yaml(port, admin, [fb], f"      ca_file: {pki['ca']}\n"),
                              [port, admin])
        wait_until(lambda: debug_pods(admin)[0]["scrapes_failed"] >= 3 and len(fb.first_bytes()) >= 4,
                   timeout=20, what="failed scrapes")
        p = debug_pods(admin)[0]
        assert p["has_metrics"] is False and p["scrapes_ok"] == 0
        seen = fb.first_bytes()
        assert all(b[:1] == b"\x16" for b in seen if b), seen  # TLS handshake records only
        assert not any(b.startswith(b"GET") for b in seen), seen
        log = gw.log()
        assert f"scrape 127.0.0.1:{fb.port}: TLS handshake failed" in log, log
    finally:
        fb.stop()

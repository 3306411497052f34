"""TLS termination on listeners (issue #9): certificates made at test time with the openssl CLI, a
Python ssl client in front of `infergate serve`, tests/integration/backend.py behind it."""
import json
import os
import socket
import ssl
import subprocess
import time
import warnings

import pytest

import backend
from conftest import SLOW, free_port, infergate_path, wait_until
from rawhttp import start_gateway

IO_TIMEOUT = 10 * SLOW


def run_openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_leaf(d, name, dns):
    """A P-256 key and a certificate for dns (subject CN and SAN) signed by the test CA."""
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{dns}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    run_openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={dns}", cwd=d)
    run_openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


@pytest.fixture
def certs(tmp_path):
    d = str(tmp_path / "certs")
    os.makedirs(d)
    run_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=infergate test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=d)
    return {
        "ca": os.path.join(d, "ca.pem"),
        "default": make_leaf(d, "default", "default.example.org"),
        "a": make_leaf(d, "a", "a.example.com"),
        "wild": make_leaf(d, "wild", "*.example.com"),
    }


def tls_yaml(port, backend_port, certs, key=None):
    dc, dk = certs["default"]
    return f"""
listeners:
  - name: secure
    address: 127.0.0.1:{port}
    tls:
      cert: {dc}
      key: {key or dk}
      certificates:
        - hostnames: [a.example.com]
          cert: {certs["a"][0]}
          key: {certs["a"][1]}
        - hostnames: ["*.example.com"]
          cert: {certs["wild"][0]}
          key: {certs["wild"][1]}
backends:
  - name: b
    endpoints: [127.0.0.1:{backend_port}]
routes:
  - name: all
    backend: b
"""


@pytest.fixture
def gateway(procs, tmp_path, certs):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    start_gateway(procs, tmp_path, tls_yaml(port, bp["b1"], certs), [port])
    return port


def client_ctx(certs, check_hostname=True):
    ctx = ssl.create_default_context(cafile=certs["ca"])
    ctx.check_hostname = check_hostname
    return ctx


def tls_connect(port, ctx, sni):
    raw = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise


class Reader:
    """Minimal HTTP/1.1 response reader over a (TLS) socket, keeping leftovers for keep-alive."""

    def __init__(self, sock):
        self.sock, self.buf, self.recvs = sock, b"", []

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.recvs.append((time.monotonic(), data))
        self.buf += data

    def until(self, sep):
        while sep not in self.buf:
            self.fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self):
        head = self.until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {}
        for line in lines[1:]:
            if line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        body = b""
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.until(b"\r\n").strip().split(b";")[0], 16)
                if size == 0:
                    self.until(b"\r\n")
                    break
                body += self.exact(size)
                self.exact(2)
        else:
            body = self.exact(int(hdrs.get("content-length", "0")))
        return status, hdrs, body


def send(sock, method, path, host="a.example.com", body=b"", headers=()):
    req = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    for k, v in headers:
        req += f"{k}: {v}\r\n"
    if body or method == "POST":
        req += f"Content-Length: {len(body)}\r\n"
    sock.sendall(req.encode() + b"\r\n" + body)


def test_get_post_keep_alive(gateway, certs):
    with tls_connect(gateway, client_ctx(certs), "a.example.com") as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        assert s.selected_alpn_protocol() is None  # not offered
        rd = Reader(s)
        conn_ids = set()
        for i in range(5):
            send(s, "GET", f"/hello?i={i}")
            status, hdrs, body = rd.response()
            assert status == 200, body
            echo = json.loads(body)
            assert echo["path"] == f"/hello?i={i}" and echo["method"] == "GET"
            assert echo["headers"]["x-forwarded-for"] == "127.0.0.1"
            conn_ids.add(hdrs["x-conn-id"])
        payload = json.dumps({"prompt": "y" * 200000}).encode()
        send(s, "POST", "/v1/echo", body=payload, headers=[("Content-Type", "application/json")])
        status, hdrs, body = rd.response()
        assert status == 200
        echo = json.loads(body)
        assert echo["method"] == "POST" and echo["body"] == payload.decode()
        send(s, "GET", "/big?bytes=300000")
        status, hdrs, body = rd.response()
        assert status == 200 and body == b"x" * 300000
    assert len(conn_ids) == 1  # the gateway kept one upstream connection for the keep-alive client


def test_alpn_http11(gateway, certs):
    ctx = client_ctx(certs)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with tls_connect(gateway, ctx, "a.example.com") as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        send(s, "GET", "/")
        assert Reader(s).response()[0] == 200


def test_sse_stream_arrives_in_chunks(gateway, certs):
    n, interval = 5, int(150 * SLOW)
    with tls_connect(gateway, client_ctx(certs), "b.example.com") as s:
        send(s, "GET", f"/stream?stream={n}&interval={interval}")
        rd = Reader(s)
        status, hdrs, body = rd.response()
        assert status == 200
        assert hdrs["content-type"].startswith("text/event-stream")
        events = [line for line in body.decode().split("\n") if line.startswith("data:")]
        assert len(events) == n + 1 and events[-1] == "data: [DONE]"
        with_data = [t for t, d in rd.recvs if b"data:" in d]
        assert len(with_data) >= 3, rd.recvs  # events came as they were produced, not in one piece
        assert with_data[-1] - with_data[0] >= 2 * interval / 1000 * 0.8


@pytest.mark.parametrize("sni,want", [("a.example.com", "a.example.com"), ("b.example.com", "*.example.com"),
                                      ("A.Example.COM", "a.example.com"), ("other.test", "default.example.org"),
                                      (None, "default.example.org")])
def test_sni_picks_certificate(gateway, certs, sni, want):
    ctx = client_ctx(certs, check_hostname=sni is not None and want != "default.example.org")
    if sni is None:
        raw = socket.create_connection(("127.0.0.1", gateway), timeout=IO_TIMEOUT)
        s = ctx.wrap_socket(raw)  # no server_hostname: no SNI
    else:
        s = tls_connect(gateway, ctx, sni)
    with s:
        cert = s.getpeercert()
        subject = dict(x[0] for x in cert["subject"])
        assert subject["commonName"] == want
        assert ("DNS", want) in cert["subjectAltName"]
        send(s, "GET", "/", host=sni or "x")
        assert Reader(s).response()[0] == 200


def test_plain_http_to_tls_port_closes(gateway, certs, procs):
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", gateway), timeout=IO_TIMEOUT) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            got = b""
            try:
                while True:
                    d = raw.recv(4096)
                    if not d:
                        break
                    got += d
            except ConnectionResetError:
                pass
            assert not got.startswith(b"HTTP/")
    assert procs.procs[-1].alive()
    with tls_connect(gateway, client_ctx(certs), "a.example.com") as s:
        send(s, "GET", "/after")
        assert Reader(s).response()[0] == 200


def test_garbage_and_abandoned_handshakes(gateway, certs):
    # a truncated ClientHello, random bytes, and a client that leaves mid-handshake
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", os.urandom(2048), b""):
        with socket.create_connection(("127.0.0.1", gateway), timeout=IO_TIMEOUT) as raw:
            if junk:
                raw.sendall(junk)
    with tls_connect(gateway, client_ctx(certs), "a.example.com") as s:
        send(s, "GET", "/")
        assert Reader(s).response()[0] == 200


def test_tls11_client_refused(gateway, certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this Python/OpenSSL cannot offer TLS 1.1")
    with pytest.raises((ssl.SSLError, ConnectionResetError, EOFError, OSError)):
        with tls_connect(gateway, ctx, "a.example.com") as s:
            send(s, "GET", "/")
            Reader(s).response()
    # and a TLS 1.2-only client is fine
    ctx12 = client_ctx(certs)
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_connect(gateway, ctx12, "a.example.com") as s:
        assert s.version() == "TLSv1.2"
        send(s, "GET", "/")
        assert Reader(s).response()[0] == 200


def check(tmp_path, text):
    path = os.path.join(str(tmp_path), "check.yaml")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([infergate_path(), "check", "-c", path], capture_output=True, text=True, timeout=60 * SLOW)
    return p.returncode, p.stdout + p.stderr, path


def line_of(text, needle, nth=0):
    lines = [i + 1 for i, l in enumerate(text.splitlines()) if needle in l]
    return lines[nth]


def test_check_reports_bad_key_and_missing_files(tmp_path, certs):
    # the key of another certificate
    text = tls_yaml(8443, 9000, certs, key=certs["a"][1])
    rc, out, path = check(tmp_path, text)
    assert rc != 0
    want = f"{path}:{line_of(text, 'key: ' + certs['a'][1])}:"
    assert want in out and "does not match" in out, out
    # a key file that is not a key
    bad = os.path.join(str(tmp_path), "bad.key")
    with open(bad, "w") as f:
        f.write("not a key\n")
    text = tls_yaml(8443, 9000, certs, key=bad)
    rc, out, path = check(tmp_path, text)
    assert rc != 0 and f"{path}:{line_of(text, 'key: ' + bad)}:" in out, out
    # missing files
    text = tls_yaml(8443, 9000, certs, key="/nonexistent/x.key")
    rc, out, path = check(tmp_path, text)
    assert rc != 0 and f"{path}:{line_of(text, '/nonexistent/x.key')}:" in out and "cannot read" in out, out
    # the good config passes
    rc, out, _ = check(tmp_path, tls_yaml(8443, 9000, certs))
    assert rc == 0, out


def test_reload_keeps_serving_tls(procs, tmp_path, certs):
    bp = backend.start(procs, ["b1"])
    port = free_port()
    proc, path = start_gateway(procs, tmp_path, tls_yaml(port, bp["b1"], certs), [port])
    s = tls_connect(port, client_ctx(certs), "a.example.com")
    with s:
        send(s, "GET", "/before")
        rd = Reader(s)
        assert rd.response()[0] == 200
        proc.popen.send_signal(1)  # SIGHUP: reload, new certificate contexts
        time.sleep(0.5 * SLOW)
        send(s, "GET", "/after")  # the open connection keeps its TLS session
        assert rd.response()[0] == 200
    with tls_connect(port, client_ctx(certs), "b.example.com") as s2:
        send(s2, "GET", "/new")
        assert Reader(s2).response()[0] == 200
    assert proc.alive()
    # stop with an idle TLS connection and one mid-handshake open: everything is freed (LSan)
    idle = tls_connect(port, client_ctx(certs), "a.example.com")
    half = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    try:
        procs.stop(proc)
        assert proc.popen.returncode == 0
    finally:
        idle.close()
        half.close()


def resumed_get(port, ctx, session=None):
    """One GET over a new TLS connection offering session; returns (its session, whether it resumed)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname="a.example.com", session=session) as s:
        send(s, "GET", "/r")
        assert Reader(s).response()[0] == 200  # reading also takes in the TLS 1.3 session ticket
        return s.session, s.session_reused


def test_session_resumes_across_reload_with_same_certificate(procs, tmp_path, certs):
    """A reload that keeps the certificate files keeps their TLS contexts (session cache, ticket keys):
    a session from before resumes after; a certificate file that changed gets a new context."""
    bp = backend.start(procs, ["b1"])
    port = free_port()
    proc, _ = start_gateway(procs, tmp_path, tls_yaml(port, bp["b1"], certs), [port])
    ctx = client_ctx(certs)
    sess, reused = resumed_get(port, ctx)
    assert sess is not None and not reused
    sess, reused = resumed_get(port, ctx, sess)
    assert reused, "no resumption even without a reload"

    def reload(n):
        proc.popen.send_signal(1)  # SIGHUP
        wait_until(lambda: proc.log().count("configuration reloaded") >= n, timeout=10 * SLOW, what="reload")

    for n in (1, 2):
        reload(n)
        sess, reused = resumed_get(port, ctx, sess)
        assert reused, f"the session did not resume after reload {n} with the same certificate"
    # the certificate file changed (its modification time): a new context, a full handshake
    st = os.stat(certs["a"][0])
    os.utime(certs["a"][0], ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    dc = os.stat(certs["default"][0])
    os.utime(certs["default"][0], ns=(dc.st_atime_ns, dc.st_mtime_ns + 2_000_000_000))
    reload(3)
    _, reused = resumed_get(port, ctx, sess)
    assert not reused
    assert proc.alive()


def test_concurrent_clients(gateway, certs):
    import concurrent.futures

    def worker(k):
        sni = "a.example.com" if k % 2 else "c.example.com"
        with tls_connect(gateway, client_ctx(certs), sni) as s:
            rd = Reader(s)
            for i in range(8):
                if i % 3 == 0:
                    send(s, "GET", f"/b?bytes={50000 + k * 1000 + i}")
                    status, _, body = rd.response()
                    assert status == 200 and len(body) == 50000 + k * 1000 + i
                elif i % 3 == 1:
                    payload = os.urandom(30000).hex().encode()
                    send(s, "POST", "/p", body=payload)
                    status, _, body = rd.response()
                    assert status == 200 and json.loads(body)["body"] == payload.decode()
                else:
                    send(s, "GET", "/s?stream=3")
                    status, _, body = rd.response()
                    assert status == 200 and body.count(b"data:") == 4
        return k

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        assert sorted(ex.map(worker, range(8))) == list(range(8))

"""In-process HTTP/1.1 upstreams for the issue #9 tests (upstream TLS, circuit breaker, stream cap):
threaded http.server instances, optionally behind Python's ssl (with or without client certificates),
whose behaviour a test changes while they run; and test certificates made with the openssl CLI."""
import json
import os
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port


def run_openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name="ca"):
    """A self-signed P-256 CA: returns (cert path, key path)."""
    run_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=infergate {name}",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def make_leaf(d, name, san, ca="ca", usage="serverAuth"):
    """A P-256 key and certificate with subjectAltName san (e.g. "DNS:a.example.com,IP:127.0.0.1")
    signed by CA ca; returns (cert path, key path)."""
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                f"extendedKeyUsage={usage}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    run_openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    run_openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


class State:
    """What a server does and what it saw; tests change `status` / `delay` while it runs."""

    def __init__(self, name):
        self.name = name
        self.status = 200
        self.delay = 0.0       # seconds before the response head
        self.events = 0        # > 0: answer with an SSE stream of that many events
        self.interval = 0.0    # between SSE events
        self.lock = threading.Lock()
        self.requests = 0
        self.active = 0
        self.max_active = 0
        self.seen = []         # (path, headers dict, peer certificate subject or None)
        # GET /metrics and /v1/models (a pool's scrapes and discovery) get 404 and are not counted


def _handler(state):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _serve(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            peer = None
            if isinstance(self.connection, ssl.SSLSocket):
                cert = self.connection.getpeercert()
                if cert:
                    peer = dict(x[0] for x in cert.get("subject", ())).get("commonName")
            if self.path.startswith("/metrics") or self.path.startswith("/v1/models"):
                # a pool's scrapes and model discovery: not traffic; answered 404 (no metrics)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with state.lock:
                state.requests += 1
                state.active += 1
                state.max_active = max(state.max_active, state.active)
                state.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, peer))
                status, delay, events, interval = state.status, state.delay, state.events, state.interval
            try:
                if delay:
                    time.sleep(delay)
                if events and status == 200:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("x-backend", state.name)
                    self.end_headers()
                    for i in range(events):
                        data = f"data: {json.dumps({'i': i, 'backend': state.name})}\n\n".encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                        time.sleep(interval)
                    done = b"data: [DONE]\n\n"
                    self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
                    self.wfile.flush()
                    return
                out = json.dumps({"backend": state.name, "path": self.path, "tls": peer is not None or
                                  isinstance(self.connection, ssl.SSLSocket), "peer_cert": peer,
                                  "body": body.decode("latin-1")}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("x-backend", state.name)
                self.end_headers()
                self.wfile.write(out)
            finally:
                with state.lock:
                    state.active -= 1

        do_GET = _serve
        do_POST = _serve

    return H


class Server:
    """A running in-process server: .port, .state; stop() at the end (the fixture does it)."""

    def __init__(self, name, cert=None, key=None, client_ca=None):
        self.state = State(name)
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self.state))
        self.httpd.daemon_threads = True
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(cert, key)
            if client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(client_ca)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True,
                                                do_handshake_on_connect=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Servers:
    def __init__(self):
        self.all = []

    def start(self, name, **kw):
        s = Server(name, **kw)
        self.all.append(s)
        return s

    def stop(self):
        for s in self.all:
            try:
                s.stop()
            except Exception:
                pass

"""`infergate serve --kube`, live changes of the two kinds added last (issue #7): TLS Secrets named by a
Gateway HTTPS listener's tls.certificateRefs, and InferenceObjectives.

- A Secret created after the gateway started opens the HTTPS listener with its certificate; a
  MODIFIED Secret gives new connections the new certificate (open ones keep theirs); a DELETED
  Secret closes the listener (no "last good" certificate is kept: docs/kubernetes.md), and the
  listener comes back when the Secret does.
- With --write-status, the listener's ResolvedRefs is False (InvalidCertificateRef) and Programmed
  False while the Secret is missing, True once it exists.
- An InferenceObjective ADDED / MODIFIED / DELETED changes the priority of the requests naming it
  (header x-gateway-inference-objective). Observable: a model server pod whose metrics say it is
  saturated (waiting queue 10), so that a negative priority is shed at once with 429 ("shed") and
  any other priority is queued until the route's request timeout (503 "queue_timeout"). The
  InferenceModel is Sheddable, so each change flips the outcome."""
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import backend
from conftest import SLOW, free_port, port_open, wait_until
from rawhttp import admin_get, post_json, request
from test_discovery import pools
from test_kube import GIE_X, pod
from test_kube_ext import GW_API, b64, gateway, latest, start_fake
from test_tls import certs  # noqa: F401 - a fixture: a test CA and leaves for a.example.com, *.example.com

IO_TIMEOUT = 10 * SLOW
SNI = "a.example.com"


# ---- Gateway HTTPS listener and its kubernetes.io/tls Secret ----------------------------------------------

def seed_https(fake, backend_port):
    """A Gateway with an HTTP and an HTTPS listener (Secret a-cert, not created here), a Service whose
    endpoint is the mock backend, and an HTTPRoute to it from both listeners."""
    fake.apply({"apiVersion": GW_API, "kind": "Gateway", "metadata": {"name": "gw"},
                "spec": {"gatewayClassName": "infergate",
                         "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"},
                                       {"name": "https", "port": 443, "protocol": "HTTPS",
                                        "tls": {"mode": "Terminate",
                                                "certificateRefs": [{"kind": "Secret", "name": "a-cert"}]}}]}})
    fake.apply({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "echo", "annotations": {"infergate.io/endpoints": f"127.0.0.1:{backend_port}"}},
                "spec": {"ports": [{"name": "http", "port": 80}]}})
    fake.apply({"apiVersion": GW_API, "kind": "HTTPRoute", "metadata": {"name": "web"},
                "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "echo", "port": 80}]}]}})


def tls_secret(name, cert_key):
    cert, key = cert_key
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(cert), "tls.key": b64(key)}}


def der_of(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def tls_open(port, ca):
    """A TLS connection to the gateway, verified against the test CA for SNI; the caller closes it."""
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    try:
        return ctx.wrap_socket(raw, server_hostname=SNI)
    except Exception:
        raw.close()
        raise


def served_cert(port, ca):
    """The DER certificate a new connection gets, or None when the listener is closed."""
    try:
        with tls_open(port, ca) as s:
            return s.getpeercert(binary_form=True)
    except ConnectionRefusedError:
        return None


def get_over(s, path="/x"):
    """One GET with Connection: close on the open TLS connection s; the whole response."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {SNI}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def https_get(port, ca, path="/x"):
    with tls_open(port, ca) as s:
        return get_over(s, path)


def start_https(procs, infergate_bin, extra=()):
    bp = backend.start(procs, ["b1"])
    fake, api = start_fake(procs)
    seed_https(fake, bp["b1"])
    sport = free_port()
    gw, port, admin = gateway(procs, infergate_bin, "gw", ["--kube-api", f"http://127.0.0.1:{api}",
                                                           "--port", f"https={sport}", *extra])
    return fake, gw, port, sport


def test_https_listener_follows_its_secret(procs, infergate_bin, certs):  # noqa: F811 - the fixture
    fake, gw, port, sport = start_https(procs, infergate_bin)
    ca = certs["ca"]
    # no Secret yet: the HTTP listener serves, the HTTPS one is not opened, the warning names both
    assert request(port, "GET", "/x").status == 200
    wait_until(lambda: "listener https: Secret a-cert: not found" in gw.log(), what="the missing Secret noted")
    assert "InvalidCertificateRef" in gw.log()
    assert not port_open(sport)

    # the Secret is created: the listener opens with its certificate
    fake.apply(tls_secret("a-cert", certs["a"]))
    wait_until(lambda: served_cert(sport, ca) == der_of(certs["a"][0]), what="https with the Secret's certificate")
    data = https_get(sport, ca)
    assert data.startswith(b"HTTP/1.1 200") and b"x-backend: b1" in data.lower(), data[:300]

    # MODIFIED to another certificate (another CN, *.example.com, and serial): new connections get it;
    # a connection opened before the change keeps its certificate and is still served
    old = tls_open(sport, ca)
    try:
        assert old.getpeercert(binary_form=True) == der_of(certs["a"][0])
        fake.apply(tls_secret("a-cert", certs["wild"]))
        wait_until(lambda: served_cert(sport, ca) == der_of(certs["wild"][0]), what="the new certificate")
        assert dict(x[0] for x in old.getpeercert()["subject"])["commonName"] == SNI
        assert get_over(old).startswith(b"HTTP/1.1 200")
    finally:
        old.close()
    assert https_get(sport, ca).startswith(b"HTTP/1.1 200")

    # MODIFIED to a key that does not match: like a missing Secret, the listener closes
    bad = (certs["a"][0], certs["wild"][1])
    fake.apply(tls_secret("a-cert", bad))
    wait_until(lambda: not port_open(sport), what="listener closed for a broken Secret")
    wait_until(lambda: "listener https: Secret a-cert: tls.key does not match" in gw.log(), what="the reason logged")
    fake.apply(tls_secret("a-cert", certs["a"]))
    wait_until(lambda: served_cert(sport, ca) == der_of(certs["a"][0]), what="served again")

    # DELETED: the listener closes (no last good certificate is kept); HTTP keeps serving
    fake.delete("v1", "Secret", "a-cert")
    wait_until(lambda: not port_open(sport), what="listener closed after the Secret was deleted")
    assert request(port, "GET", "/x").status == 200
    # created again: back, with the new Secret's certificate
    fake.apply(tls_secret("a-cert", certs["wild"]))
    wait_until(lambda: served_cert(sport, ca) == der_of(certs["wild"][0]), what="listener back with the Secret")
    assert https_get(sport, ca).startswith(b"HTTP/1.1 200")
    assert procs.stop(gw) == 0


def test_https_listener_status_follows_its_secret(procs, infergate_bin, certs):  # noqa: F811 - the fixture
    fake, gw, port, sport = start_https(procs, infergate_bin, ["--write-status"])

    def listener(name):
        st = latest(fake, "gateways", "gw")
        if not st:
            return None
        (lst,) = [x for x in st["listeners"] if x["name"] == name]
        return {c["type"]: c for c in lst["conditions"]}

    c = wait_until(lambda: listener("https"), what="gateway status")
    assert (c["ResolvedRefs"]["status"], c["ResolvedRefs"]["reason"]) == ("False", "InvalidCertificateRef"), c
    assert "a-cert" in c["ResolvedRefs"]["message"], c
    assert (c["Programmed"]["status"], c["Accepted"]["status"]) == ("False", "True"), c
    assert {t: x["status"] for t, x in listener("http").items()} == {"Accepted": "True", "Programmed": "True",
                                                                     "ResolvedRefs": "True"}

    fake.apply(tls_secret("a-cert", certs["a"]))
    c = wait_until(lambda: (listener("https") or {}).get("ResolvedRefs", {}).get("status") == "True"
                   and listener("https"), what="ResolvedRefs=True once the Secret exists")
    assert (c["ResolvedRefs"]["reason"], c["Programmed"]["status"]) == ("ResolvedRefs", "True"), c
    assert https_get(sport, certs["ca"]).startswith(b"HTTP/1.1 200")

    fake.delete("v1", "Secret", "a-cert")
    c = wait_until(lambda: listener("https")["ResolvedRefs"]["status"] == "False" and listener("https"),
                   what="ResolvedRefs=False after the Secret was deleted")
    assert c["ResolvedRefs"]["reason"] == "InvalidCertificateRef" and c["Programmed"]["status"] == "False", c
    # the Gateway as a whole stays Accepted and Programmed: the other listener serves
    conds = {x["type"]: x["status"] for x in latest(fake, "gateways", "gw")["conditions"]}
    assert conds == {"Accepted": "True", "Programmed": "True"}, conds
    assert request(port, "GET", "/x").status == 200
    assert procs.stop(gw) == 0


# ---- InferenceObjective priorities ------------------------------------------------------------------------

class SaturatedPod:
    """A model server that is always saturated by its metrics (vLLM V1 names: 10 waiting, 4 running)
    and answers completions with 200; in-process, stopped by the caller."""

    def __init__(self):
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.startswith("/metrics"):
                    body = (b'vllm:num_requests_waiting{model_name="chat"} 10\n'
                            b'vllm:num_requests_running{model_name="chat"} 4\n'
                            b'vllm:kv_cache_usage_perc{model_name="chat"} 0.5\n')
                    self.reply(200, "text/plain; version=0.0.4", body)
                else:
                    self.reply(404, "application/json", b"{}")

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                self.reply(200, "application/json", json.dumps({"object": "text_completion", "choices": []}).encode())

            def reply(self, status, ctype, body):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def saturated_pod():
    p = SaturatedPod()
    yield p
    p.stop()


def objective(name, priority):
    return {"apiVersion": GIE_X, "kind": "InferenceObjective", "metadata": {"name": name},
            "spec": {"priority": priority, "poolRef": {"name": "sims"}}}


def outcome(port, objective_name):
    """(status, error code) of a completion for model chat naming the objective: 429 "shed" at once
    when its priority is negative, else 503 "queue_timeout" after the route's 1 s request timeout."""
    r = post_json(port, "/v1/completions", {"model": "chat", "prompt": "hi", "max_tokens": 2},
                  headers=[("x-gateway-inference-objective", objective_name)], timeout=IO_TIMEOUT + 5)
    try:
        code = r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    return r.status, code


SHED = (429, "shed")
QUEUED = (503, "queue_timeout")


def test_inference_objective_priority_follows_events(procs, infergate_bin, saturated_pod):
    fake, api = start_fake(procs)
    fake.apply({"apiVersion": GW_API, "kind": "Gateway", "metadata": {"name": "gw"},
                "spec": {"gatewayClassName": "infergate",
                         "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    fake.apply({"apiVersion": GW_API, "kind": "HTTPRoute", "metadata": {"name": "llm"},
                "spec": {"parentRefs": [{"name": "gw"}],
                         "rules": [{"timeouts": {"request": "1s"},
                                    "backendRefs": [{"group": "inference.networking.k8s.io",
                                                     "kind": "InferencePool", "name": "sims"}]}]}})
    fake.apply({"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                "metadata": {"name": "sims"},
                "spec": {"selector": {"matchLabels": {"app": "sim"}},
                         "targetPorts": [{"number": saturated_pod.port}],
                         "endpointPickerRef": {"name": "epp", "port": {"number": 9002}}}})
    fake.apply(pod("pod-a"))
    fake.apply({"apiVersion": GIE_X, "kind": "InferenceModel", "metadata": {"name": "chat"},
                "spec": {"modelName": "chat", "criticality": "Sheddable", "poolRef": {"name": "sims"}}})
    gw, port, admin = gateway(procs, infergate_bin, "gw", ["--kube-api", f"http://127.0.0.1:{api}"])
    wait_until(lambda: admin_get(admin, "/readyz")[0] == 200, what="gateway ready")
    wait_until(lambda: pools(admin)[0]["pods"][0]["waiting"] >= 5, what="the pod scraped as saturated")

    # no objective of that name: the header is ignored, the model's Sheddable applies
    assert outcome(port, "vip") == SHED
    fake.apply(objective("vip", 5))  # ADDED, positive: not shed, queued behind the saturated pod
    wait_until(lambda: outcome(port, "vip") == QUEUED, what="objective ADDED (priority 5) applied")
    assert outcome(port, "other") == SHED  # other names still fall back to the model
    fake.apply(objective("vip", -2))  # MODIFIED, negative: shed
    wait_until(lambda: outcome(port, "vip") == SHED, what="objective MODIFIED (priority -2) applied")
    fake.apply(objective("vip", 0))  # MODIFIED, 0 = Standard: queued, not shed
    wait_until(lambda: outcome(port, "vip") == QUEUED, what="objective MODIFIED (priority 0) applied")
    fake.delete(GIE_X, "InferenceObjective", "vip")  # DELETED: back to the model's Sheddable
    wait_until(lambda: outcome(port, "vip") == SHED, what="objective DELETED applied")
    r = post_json(port, "/v1/completions", {"model": "chat", "prompt": "hi"}, timeout=IO_TIMEOUT)
    assert r.status == 429 and r.header("retry-after") == "1", r
    assert procs.stop(gw) == 0

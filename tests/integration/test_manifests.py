"""`infergate serve --manifests`: Kubernetes resources from a directory serve real requests through
the gateway to `infergate sim` pods; SIGHUP reloads them (a bad edit keeps the running config, a good
one switches)."""
import os
import signal
import subprocess

import pytest

from conftest import free_port, free_port_range, wait_until
from rawhttp import admin_get, metric, post_json

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: infergate
  listeners:
    - name: http
      port: 80
      protocol: HTTP
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: llm
spec:
  parentRefs:
    - name: gw
      sectionName: http
  rules:
    - matches:
        - path: {type: PathPrefix, value: /v1}
      backendRefs:
        - group: inference.networking.k8s.io
          kind: InferencePool
          name: sims
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: not-used
spec: {}
"""

POOL = """\
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: sims
  annotations:
    infergate.io/scrape-interval: 50ms
spec:
  selector:
    matchLabels: {app: sim}
  targetPorts:
    - number: %d
    - number: %d
---
apiVersion: v1
kind: Pod
metadata:
  name: sim-a
  labels: {app: sim}
status:
  phase: Running
  podIP: 127.0.0.1
  conditions:
    - {type: Ready, status: "True"}
"""

MODELS = """\
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata:
  name: chat
spec:
  modelName: chat
  poolRef: {name: sims}
  targetModels:
%s
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata:
  name: base
spec:
  modelName: llama3-8b
  poolRef: {name: sims}
"""


def write(d, name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)


def complete(port, model, i=0):
    return post_json(port, "/v1/completions", {"model": model, "prompt": f"hello {i}", "max_tokens": 2})


def start_sims(procs, infergate_bin):
    base = free_port_range(2)
    procs.start("sim", [infergate_bin, "sim", "--pods", 2, "--base-port", base, "--lora", "lora-a,lora-b",
                        "--time-scale", 20], wait_port=[base, base + 1])
    return base


def test_manifests_serve_and_reload(procs, infergate_bin, tmp_path):
    base = start_sims(procs, infergate_bin)
    d = tmp_path / "manifests"
    d.mkdir()
    write(d, "10-gateway.yaml", GATEWAY)
    write(d, "20-pool.yaml", POOL % (base, base + 1))
    write(d, "30-models.yaml", MODELS % "    - {name: lora-a, weight: 80}\n    - {name: lora-b, weight: 20}")
    port, admin = free_port(), free_port()
    gw = procs.start("gateway", [infergate_bin, "serve", "--manifests", d, "--port", f"http={port}",
                                 "--admin", f"127.0.0.1:{admin}"], wait_port=[port, admin])

    wait_until(lambda: admin_get(admin, "/readyz")[0] == 200, what="gateway ready")
    seen = {}
    for i in range(40):
        r = complete(port, "chat", i)
        assert r.status == 200, r
        body = r.json()
        seen[body["model"]] = seen.get(body["model"], 0) + 1
    assert set(seen) <= {"lora-a", "lora-b"} and seen.get("lora-a", 0) > seen.get("lora-b", 0), seen
    assert complete(port, "llama3-8b").status == 200
    r = complete(port, "nope")
    assert r.status == 404 and r.json()["error"]["code"] == "model_not_found"
    # notes are printed as warnings with file:line
    assert "10-gateway.yaml:" in gw.log() and "warning:" in gw.log() and "UnknownKind" in gw.log()

    # a bad edit (a regular-expression path is an error): SIGHUP keeps the running configuration
    write(d, "10-gateway.yaml", GATEWAY.replace("type: PathPrefix", "type: RegularExpression"))
    gw.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: metric(admin_get(admin, "/metrics")[1],
                              'infergate_config_reloads_total{result="failure"}') == 1, what="failed reload")
    assert "10-gateway.yaml:" in gw.log()
    for i in range(5):
        r = complete(port, "chat", i)
        assert r.status == 200 and r.json()["model"] in ("lora-a", "lora-b"), r

    # a good edit: chat goes to lora-b only, a new model appears, the bad file is fixed
    write(d, "10-gateway.yaml", GATEWAY)
    write(d, "30-models.yaml", MODELS % "    - {name: lora-b}" + """\
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata:
  name: chat2
spec:
  modelName: chat2
  poolRef: {name: sims}
  targetModels:
    - {name: lora-a}
""")
    gw.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: metric(admin_get(admin, "/metrics")[1],
                              'infergate_config_reloads_total{result="success"}') == 1, what="reload")
    for i in range(10):
        r = complete(port, "chat", i)
        assert r.status == 200 and r.json()["model"] == "lora-b", r
    r = complete(port, "chat2")
    assert r.status == 200 and r.json()["model"] == "lora-a", r

    # the Pod stops being ready: the pool has no endpoints (503), and comes back on the next reload
    write(d, "20-pool.yaml", (POOL % (base, base + 1)).replace('status: "True"', 'status: "False"'))
    gw.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: metric(admin_get(admin, "/metrics")[1],
                              'infergate_config_reloads_total{result="success"}') == 2, what="second reload")
    assert complete(port, "chat").status == 503
    assert procs.stop(gw) == 0


def test_manifests_command_line_errors(procs, infergate_bin, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    write(d, "gw.yaml", GATEWAY)

    def run(*args):
        p = subprocess.run([infergate_bin, "serve", *map(str, args)], capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stderr

    rc, err = run("--manifests", d, "-c", d / "gw.yaml")
    assert rc == 2 and "cannot be combined" in err
    rc, err = run("--manifests", d, "--port", "http=0")
    assert rc == 2 and "LISTENER=PORT" in err
    rc, err = run("--manifests", d, "--port-offset", "x")
    assert rc == 2
    rc, err = run("--manifests", d, "--kube")
    assert rc == 2 and "not both" in err
    rc, err = run("--listen-host", "0.0.0.0", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2")
    assert rc == 2
    # the route names a pool that is not there: every error with file:line, exit 1
    rc, err = run("--manifests", d, "--port", f"http={free_port()}")
    assert rc == 1 and "gw.yaml:" in err and "sims" in err, err
    # a port override for a listener that does not exist is an error too
    rc, err = run("--manifests", d / "gw.yaml", "--port", "nope=8080")
    assert rc == 1 and "nope" in err, err


# ---- HTTPS listeners from Gateway tls.certificateRefs (kubernetes.io/tls Secrets) ----------------------

TLS_GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: infergate
  listeners:
    - {{name: http, port: 80, protocol: HTTP}}
    - name: https
      port: 443
      protocol: HTTPS
      hostname: a.example.com
      tls:
        mode: Terminate
        certificateRefs: [{{kind: Secret, name: a-cert}}]
    - name: broken
      port: 8443
      protocol: HTTPS
      tls:
        certificateRefs: [{{name: {broken}}}]
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  annotations: {{infergate.io/endpoints: "127.0.0.1:{backend}"}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - backendRefs: [{{name: echo, port: 80}}]
"""


def tls_secret(name, cert_path, key_path):
    import base64

    def b64(p):
        with open(p, "rb") as f:
            return base64.b64encode(f.read()).decode()

    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\n"
            f"data:\n  tls.crt: {b64(cert_path)}\n  tls.key: {b64(key_path)}\n")


def https_get(port, ca, sni, path="/x"):
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=sni) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_manifests_https_listener_from_secret(procs, infergate_bin, tmp_path):
    import backend
    from test_tls import make_leaf, run_openssl

    certs = str(tmp_path / "certs")
    os.makedirs(certs)
    run_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=infergate test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=certs)
    cert, key = make_leaf(certs, "a", "a.example.com")
    ca = os.path.join(certs, "ca.pem")
    bp = backend.start(procs, ["b1"])
    d = tmp_path / "manifests"
    d.mkdir()
    write(d, "gw.yaml", TLS_GATEWAY.format(backend=bp["b1"], broken="no-such-secret"))
    write(d, "secret.yaml", tls_secret("a-cert", cert, key))
    http_port, https_port, broken_port = free_port(), free_port(), free_port()
    gw = procs.start("gateway", [infergate_bin, "serve", "--manifests", d, "--port", f"http={http_port}",
                                 "--port", f"https={https_port}", "--port", f"broken={broken_port}"],
                     wait_port=[http_port, https_port])
    data = https_get(https_port, ca, "a.example.com")
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b"x-backend: b1" in data.lower()
    # the listener whose Secret is missing is not served; the warning names the Gateway and listener
    log = gw.log()
    assert "Gateway gw: listener broken: Secret no-such-secret: not found" in log, log
    assert "InvalidCertificateRef" in log
    import socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", broken_port), timeout=2).close()

    # check: a Secret with a key that does not match is reported the same way, with file:line
    write(d, "gw.yaml", TLS_GATEWAY.format(backend=bp["b1"], broken="bad-cert"))
    write(d, "secret2.yaml", tls_secret("bad-cert", cert, os.path.join(certs, "ca.key")))
    p = subprocess.run([infergate_bin, "check", "--manifests", str(d)], capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "gw.yaml:19:" in out and "listener broken: Secret bad-cert: tls.key does not match" in out, out

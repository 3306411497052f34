"""HTTPRoute header filters (issue #7): RequestHeaderModifier and ResponseHeaderModifier on a rule and
on a backendRef, from the native YAML routes and from HTTPRoute manifests. A small in-process backend
echoes every request header line it received (duplicates kept) and answers with fixed headers that
the response filters modify."""
import http.server
import json
import os
import subprocess
import threading

import pytest

from conftest import free_port, infergate_path
from rawhttp import Conn, build, request, start_gateway

RESP_HEADERS = [("X-Resp-Set", "old"), ("X-Resp-Add", "orig"), ("X-Resp-Remove", "bye"), ("X-Resp-Keep", "k")]


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": [[k, v] for k, v in self.headers.items()]}).encode()
        self.send_response(200)
        for k, v in RESP_HEADERS:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def echo():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), EchoHandler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


CLIENT_HEADERS = [("X-Set", "client"), ("x-add", "client"), ("X-REMOVE", "client"), ("X-Keep", "client")]


def sent(port, path):
    """GET path with CLIENT_HEADERS; returns (response, [(lower name, value)] the backend saw)."""
    r = request(port, "GET", path, CLIENT_HEADERS)
    assert r is not None and r.status == 200, r
    return r, [(k.lower(), v) for k, v in r.json()["headers"]]


def values(pairs, name):
    return [v for k, v in pairs if k.lower() == name]


def check_filtered(r, seen):
    assert values(seen, "x-set") == ["new"]
    assert values(seen, "x-add") == ["client", "added"]
    assert values(seen, "x-remove") == []
    assert values(seen, "x-keep") == ["client"]
    assert values(seen, "x-new") == ["fresh"]
    assert values(r.headers, "x-resp-set") == ["new"]
    assert values(r.headers, "x-resp-add") == ["orig", "more"]
    assert values(r.headers, "x-resp-remove") == []
    assert values(r.headers, "x-resp-keep") == ["k"]


def check_plain(r, seen):
    for name in ("x-set", "x-add", "x-remove", "x-keep"):
        assert values(seen, name) == ["client"], (name, seen)
    assert values(seen, "x-new") == []
    assert values(r.headers, "x-resp-set") == ["old"]
    assert values(r.headers, "x-resp-remove") == ["bye"]


FILTERS = """\
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set: [{name: x-set, value: new}]
          add: [{name: X-Add, value: added}, {name: X-New, value: fresh}]
          remove: [x-remove]
      - type: ResponseHeaderModifier
        responseHeaderModifier:
          set: [{name: X-RESP-SET, value: new}]
          add: [{name: x-resp-add, value: more}]
          remove: [X-Resp-Remove]
"""


def native_yaml(port, backend_port):
    return f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
backends:
  - name: b
    endpoints: [127.0.0.1:{backend_port}]
routes:
  - name: filtered
    matches: [{{path: /f}}]
    backend: b
    filters:
{FILTERS}
  - name: per-ref
    matches: [{{path: /ref}}]
    filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set: [{{name: X-Set, value: rule}}]
          add: [{{name: X-Rule, value: r}}]
    backends:
      - name: b
        filters:
          - type: RequestHeaderModifier
            requestHeaderModifier:
              set: [{{name: X-Ref, value: ref}}]
              remove: [x-rule]
  - name: redirect
    matches: [{{path: /redirect}}]
    backend: b
    filters:
      - type: RequestRedirect
        requestRedirect: {{scheme: https}}
  - name: plain
    backend: b
"""


def test_native_route_filters(procs, tmp_path, echo):
    port = free_port()
    gw, _ = start_gateway(procs, tmp_path, native_yaml(port, echo), [port])
    r, seen = sent(port, "/f")
    check_filtered(r, seen)
    r, seen = sent(port, "/plain")
    check_plain(r, seen)
    # a backendRef's filter follows the rule's: the rule's set survives, its add is removed by the ref
    r, seen = sent(port, "/ref")
    assert values(seen, "x-set") == ["rule"] and values(seen, "x-ref") == ["ref"], seen
    assert values(seen, "x-rule") == [] and values(seen, "x-keep") == ["client"], seen
    # an unsupported filter type: the route is served (filter ignored) and a warning names it
    r, seen = sent(port, "/redirect")
    check_plain(r, seen)
    assert "RequestRedirect is not supported" in gw.log(), gw.log()
    # keep-alive: several filtered requests on one connection
    with Conn(port) as c:
        for _ in range(3):
            c.send(build("GET", "/f", CLIENT_HEADERS))
            resp = c.read_response("GET")
            check_filtered(resp, [(k.lower(), v) for k, v in resp.json()["headers"]])


def test_native_filter_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("""listeners:
  - name: web
    address: 127.0.0.1:8080
backends:
  - name: b
    endpoints: [127.0.0.1:9000]
routes:
  - name: r
    backend: b
    filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set: [{name: "bad name", value: v}]
          remove: [Content-Length]
      - type: Nope
""")
    p = subprocess.run([infergate_path(), "check", "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p
    out = p.stdout + p.stderr
    assert "bad.yaml:13:" in out and "invalid header name 'bad name'" in out, out
    assert "bad.yaml:14:" in out and "Content-Length" in out, out
    assert "bad.yaml:15:" in out and "'Nope'" in out, out


MANIFESTS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: infergate
  listeners:
    - {{name: http, port: 80, protocol: HTTP}}
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
metadata: {{name: filtered}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /f}}}}]
      filters:
{filters}
      backendRefs: [{{name: echo, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /rewrite}}}}]
      filters:
        - type: URLRewrite
          urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /x}}}}
      backendRefs:
        - name: echo
          port: 80
          filters:
            - type: ResponseHeaderModifier
              responseHeaderModifier:
                add: [{{name: X-From-Ref, value: "1"}}]
    - backendRefs: [{{name: echo, port: 80}}]
"""


def test_manifest_route_filters(procs, tmp_path, echo):
    d = tmp_path / "m"
    d.mkdir()
    filters = "".join("  " + line + "\n" for line in FILTERS.splitlines())
    (d / "gw.yaml").write_text(MANIFESTS.format(backend=echo, filters=filters))
    port = free_port()
    gw = procs.start("gateway", [infergate_path(), "serve", "--manifests", d, "--port", f"http={port}"],
                     wait_port=[port])
    r, seen = sent(port, "/f")
    check_filtered(r, seen)
    r, seen = sent(port, "/other")
    check_plain(r, seen)
    # URLRewrite is not supported: noted (naming the HTTPRoute), the rule still serves, unrewritten
    r, seen = sent(port, "/rewrite/a")
    assert r.json()["path"] == "/rewrite/a"
    assert values(r.headers, "x-from-ref") == ["1"]
    log = gw.log()
    assert "HTTPRoute filtered" in log and "URLRewrite is not supported" in log and "UnsupportedValue" in log, log
    assert "gw.yaml:" in log


def test_manifest_filter_errors(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    filters = """\
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            add: [{name: X-A, value: "a\\r\\nX-Injected: 1"}]
"""
    (d / "gw.yaml").write_text(MANIFESTS.format(backend=9, filters=filters))
    p = subprocess.run([infergate_path(), "check", "--manifests", str(d)], capture_output=True, text=True,
                       timeout=30)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "gw.yaml:27:" in out and "HTTPRoute filtered" in out and "control character" in out, out
    assert os.path.exists(d / "gw.yaml")

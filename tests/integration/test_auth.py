"""API-key authentication per route (issue #9): bearer keys from a file, 401 with an OpenAI error body
and a Bearer challenge, the Authorization header kept from the upstream unless configured, keys
reloaded on SIGHUP."""
import signal
import subprocess

import pytest

import backend
from conftest import free_port, infergate_path, wait_until
from rawhttp import admin_get, metric, request, start_gateway

KEYS = """# gateway keys
sk-alpha-0001
   sk-beta-0002   

# sk-commented-out
"""


def gw_yaml(port, admin, bport, keys_path):
    return f"""
listeners:
  - name: main
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
backends:
  - name: b
    endpoints: [127.0.0.1:{bport}]
routes:
  - name: secured
    matches: [{{path: {{type: PathPrefix, value: /v1}}}}]
    backend: b
    auth: {{api_keys_file: {keys_path}}}
  - name: passthrough
    matches: [{{path: {{type: PathPrefix, value: /pass}}}}]
    backend: b
    auth: {{api_keys_file: {keys_path}, forward_authorization: true}}
  - name: open
    backend: b
"""


@pytest.fixture
def gw(procs, tmp_path):
    bp = backend.start(procs, ["b1"])
    keys = tmp_path / "keys.txt"
    keys.write_text(KEYS)
    port, admin = free_port(), free_port()
    proc, path = start_gateway(procs, tmp_path, gw_yaml(port, admin, bp["b1"], keys), [port, admin])
    return {"proc": proc, "port": port, "admin": admin, "keys": keys}


def auth(key):
    return [("Authorization", f"Bearer {key}")]


def check_401(r):
    assert r.status == 401, r.body
    assert r.header("www-authenticate") == "Bearer"
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_api_key"
    assert err["message"]


def test_missing_and_wrong_keys_get_401(gw):
    port = gw["port"]
    check_401(request(port, "GET", "/v1/models"))
    check_401(request(port, "GET", "/v1/models", auth("sk-alpha-000")))   # a prefix of a key
    check_401(request(port, "GET", "/v1/models", auth("sk-alpha-00011")))  # longer
    check_401(request(port, "GET", "/v1/models", auth("sk-commented-out")))
    check_401(request(port, "GET", "/v1/models", [("Authorization", "Basic c2stYWxwaGEtMDAwMQ==")]))
    check_401(request(port, "GET", "/v1/models", [("Authorization", "Bearer")]))
    check_401(request(port, "GET", "/v1/models", auth("sk-alpha-0001") + auth("sk-beta-0002")))  # two headers
    # a POST with a body: the body is read, the connection stays usable
    r = request(port, "POST", "/v1/completions", [("Content-Type", "application/json")], b'{"model":"m"}')
    check_401(r)
    _, text = admin_get(gw["admin"], "/metrics")
    assert metric(text, 'infergate_auth_failures_total{route="secured"}') >= 8


def test_valid_keys_pass_and_header_is_not_forwarded(gw):
    port = gw["port"]
    for key in ("sk-alpha-0001", "sk-beta-0002"):
        r = request(port, "GET", "/v1/models", auth(key))
        assert r.status == 200, r.body
        assert "authorization" not in r.json()["headers"]
    r = request(port, "GET", "/v1/models", [("authorization", "bearer   sk-alpha-0001  ")])
    assert r.status == 200  # scheme is case-insensitive, blanks around the token ignored
    r = request(port, "GET", "/pass/x", auth("sk-beta-0002"))
    assert r.status == 200 and r.json()["headers"]["authorization"] == "Bearer sk-beta-0002"
    r = request(port, "GET", "/other")  # a route without auth
    assert r.status == 200


def test_keys_reload_on_sighup(gw):
    port = gw["port"]
    assert request(port, "GET", "/v1/models", auth("sk-alpha-0001")).status == 200
    gw["keys"].write_text("sk-gamma-0003\n")
    gw["proc"].popen.send_signal(signal.SIGHUP)
    wait_until(lambda: request(port, "GET", "/v1/models", auth("sk-gamma-0003")).status == 200,
               what="new key accepted after reload")
    check_401(request(port, "GET", "/v1/models", auth("sk-alpha-0001")))


def test_reload_with_unreadable_keys_keeps_running_config(gw):
    port = gw["port"]
    gw["keys"].write_text("# nothing\n")
    gw["proc"].popen.send_signal(signal.SIGHUP)
    wait_until(lambda: "keeping the running configuration" in gw["proc"].log(), what="reload refused")
    assert request(port, "GET", "/v1/models", auth("sk-alpha-0001")).status == 200


def test_check_reports_keys_file_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# no keys\n\n")
    path = tmp_path / "g.yaml"
    path.write_text(f"""listeners:
  - name: main
    address: 127.0.0.1:1
backends:
  - name: b
    endpoints: [127.0.0.1:2]
routes:
  - name: a
    backend: b
    auth: {{api_keys_file: {tmp_path}/missing.txt}}
  - name: c
    backend: b
    auth: {{api_keys_file: {empty}}}
""")
    p = subprocess.run([infergate_path(), "check", "-c", str(path)], capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert f"{path}:10:" in out and "missing.txt" in out
    assert f"{path}:13:" in out and "holds no API key" in out

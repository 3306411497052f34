"""TLS from the gateway to upstreams (issue #9): certificates made at test time with the openssl CLI,
in-process Python ssl upstreams (tests/integration/upstreamsrv.py), `infergate serve` in front.
Verification (CA, DNS name, IP address), no plaintext fallback, mTLS, keep-alive and streaming."""
import json
import os
import subprocess

import pytest

from conftest import free_port, infergate_path
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
    """An inference pool's requests go over TLS too (its metrics scrape stays plain: documented)."""
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

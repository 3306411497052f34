"""`infergate serve --kube`, continued (issue #7): --kubeconfig (plain http with a token, https with a
CA and a client certificate as base64 data, a CA file with a tokenFile, insecure-skip-tls-verify),
pools whose endpoints come from EndpointSlices, Gateway and HTTPRoute status write-back, and leader
election over a Lease so that only one of several replicas writes status."""
import base64
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import SLOW, free_port, free_port_range, wait_until
from rawhttp import admin_get, post_json
from test_kube import GIE_X, TOKEN, Fake, model, pod, seed, status_of

HERE = os.path.dirname(os.path.abspath(__file__))
GW_API = "gateway.networking.k8s.io/v1"


def start_sim(procs, infergate_bin):
    base = free_port_range(2)
    procs.start("sim", [infergate_bin, "sim", "--pods", 2, "--base-port", base, "--lora", "lora-a,lora-b",
                        "--time-scale", 20], wait_port=[base, base + 1])
    return base


def start_fake(procs, extra=()):
    api_port = free_port()
    procs.start("fakeapi", [sys.executable, os.path.join(HERE, "fakeapi.py"), "--port", api_port, *extra],
                wait_port=api_port)
    fake = Fake(api_port)
    fake.post("uninstall", {"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute"})
    return fake, api_port


def run_openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def pki(tmp_path):
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    if not shutil.which("openssl"):
        pytest.skip("openssl command not available")
    d = str(tmp_path / "pki")
    os.makedirs(d)
    run_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=kube test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=d)
    out = {"ca": os.path.join(d, "ca.pem")}
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" + ext)
        run_openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        run_openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                    "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)
        out[name] = (os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key"))
    return out


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def kubeconfig(path, server, cluster=None, user=None, ns="default"):
    """Writes a kubeconfig (JSON is YAML) with one context "test" and a decoy current context."""
    import json

    cl = {"server": server, **(cluster or {})}
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
           "clusters": [{"name": "decoy", "cluster": {"server": "http://127.0.0.1:1"}}, {"name": "c", "cluster": cl}],
           "contexts": [{"name": "other", "context": {"cluster": "decoy", "user": "u"}},
                        {"name": "test", "context": {"cluster": "c", "user": "u", "namespace": ns}}],
           "users": [{"name": "u", "user": user or {}}]}
    path.write_text(json.dumps(doc, indent=1))
    return path


def gateway(procs, infergate_bin, name, args, port=None):
    port = port or free_port()
    admin = free_port()
    gw = procs.start(name, [infergate_bin, "serve", "--port", f"http={port}", "--admin", f"127.0.0.1:{admin}",
                            *args], wait_port=[port, admin])
    return gw, port, admin


def test_kubeconfig_http_token_and_namespace(procs, infergate_bin, tmp_path):
    """Plain http: server, token and namespace come from the kubeconfig's current context."""
    base = start_sim(procs, infergate_bin)
    fake, api = start_fake(procs, ["--token", TOKEN])
    seed(fake, base)
    kc = kubeconfig(tmp_path / "kc.yaml", f"http://127.0.0.1:{api}", user={"token": TOKEN})
    gw, port, admin = gateway(procs, infergate_bin, "gw", ["--kubeconfig", kc])
    assert status_of(port, "chat") == 200
    assert "context test" in gw.log()
    # a kubeconfig naming a context that does not exist is refused at start
    bad = procs.start("bad", [infergate_bin, "serve", "--kubeconfig", kc, "--kube-context", "nope",
                              "--port", f"http={free_port()}"])
    wait_until(lambda: not bad.alive(), what="exit on a bad context")
    assert bad.popen.returncode != 0 and "context 'nope'" in bad.log()
    assert procs.stop(gw) == 0


def test_kubeconfig_https_client_cert_data(procs, infergate_bin, tmp_path, pki):
    """https with certificate-authority-data and client-certificate-data / client-key-data (base64):
    the fake API server requires the client certificate; a second gateway uses a CA file and a
    tokenFile relative to the kubeconfig; a third skips verification."""
    base = start_sim(procs, infergate_bin)
    api = free_port()
    procs.start("fakeapi", [sys.executable, os.path.join(HERE, "fakeapi.py"), "--port", api, "--tls-cert",
                            pki["server"][0], "--tls-key", pki["server"][1], "--client-ca", pki["ca"]],
                wait_port=api)
    import requests

    def ctl(what, body):
        r = requests.post(f"https://127.0.0.1:{api}/_ctl/{what}", json=body, timeout=10, cert=pki["client"],
                          verify=pki["ca"])
        assert r.status_code == 200, r.text

    class TlsFake:
        def apply(self, obj):
            ctl("apply", obj)

        def post(self, what, body=None):
            ctl(what, body or {})

    fake = TlsFake()
    fake.post("uninstall", {"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute"})
    seed(fake, base)
    server = f"https://127.0.0.1:{api}"
    kc = kubeconfig(tmp_path / "kc.yaml", server, cluster={"certificate-authority-data": b64(pki["ca"])},
                    user={"client-certificate-data": b64(pki["client"][0]),
                          "client-key-data": b64(pki["client"][1])})
    gw, port, _ = gateway(procs, infergate_bin, "gw-data", ["--kubeconfig", kc])
    assert status_of(port, "chat") == 200
    # CA file and client certificate files, relative to the kubeconfig's directory
    sub = tmp_path / "kdir"
    sub.mkdir()
    shutil.copy(pki["ca"], sub / "ca.pem")
    shutil.copy(pki["client"][0], sub / "client.pem")
    shutil.copy(pki["client"][1], sub / "client.key")
    (sub / "token").write_text("unused-token\n")
    kc2 = kubeconfig(sub / "config", server, cluster={"certificate-authority": "ca.pem"},
                     user={"client-certificate": "client.pem", "client-key": "client.key", "tokenFile": "token"})
    gw2, port2, _ = gateway(procs, infergate_bin, "gw-files", ["--kubeconfig", kc2])
    assert status_of(port2, "chat") == 200
    # insecure-skip-tls-verify: no CA at all, still connects
    kc3 = kubeconfig(tmp_path / "kc3.yaml", server, cluster={"insecure-skip-tls-verify": True},
                     user={"client-certificate-data": b64(pki["client"][0]),
                           "client-key-data": b64(pki["client"][1])})
    gw3, port3, _ = gateway(procs, infergate_bin, "gw-insecure", ["--kubeconfig", kc3])
    assert status_of(port3, "chat") == 200
    assert "insecure-skip-tls-verify" in gw3.log()
    # without the client certificate the server refuses the handshake: never configured
    kc4 = kubeconfig(tmp_path / "kc4.yaml", server, cluster={"certificate-authority-data": b64(pki["ca"])})
    p4 = free_port()
    gw4 = procs.start("gw-nocert", [infergate_bin, "serve", "--kubeconfig", kc4, "--port", f"http={p4}"])
    wait_until(lambda: "retrying" in gw4.log(), what="refused without a client certificate")
    assert gw4.alive() and status_of(p4, "chat") is None
    for g in (gw, gw2, gw3, gw4):
        assert procs.stop(g) == 0


def slice_obj(name, svc, ports, ready=(True,)):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": r}} for r in ready],
            "ports": [{"name": f"p{p}", "port": p, "protocol": "TCP"} for p in ports]}


def served_by(port, n=6):
    """The set of sim pods (x-served-by / served-endpoint header) that served n requests."""
    seen = set()
    for _ in range(n):
        r = post_json(port, "/v1/completions", {"model": "chat", "prompt": "hi", "max_tokens": 2}, timeout=10)
        if r.status != 200:
            return None
        seen.add(r.header("x-gateway-destination-endpoint-served"))
    return seen


def test_pool_endpoints_from_endpointslices(procs, infergate_bin, tmp_path):
    """A pool with no Pods takes the ready addresses of the EndpointSlices of the Service whose selector
    is the pool's; when the slice changes (port, readiness, deleted), traffic follows within ~1 s."""
    base = start_sim(procs, infergate_bin)
    fake, api = start_fake(procs)
    seed(fake, base)
    fake.delete("v1", "Pod", "sim-a")
    fake.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sims-svc"},
                "spec": {"selector": {"app": "sim"}, "ports": [{"port": 8000}]}})
    fake.apply(slice_obj("sims-svc-abc", "sims-svc", [base]))
    gw, port, admin = gateway(procs, infergate_bin, "gw", ["--kube-api", f"http://127.0.0.1:{api}"])
    wait_until(lambda: status_of(port, "chat") == 200, what="served from the slice")
    assert served_by(port) == {f"127.0.0.1:{base}"}
    fake.apply(slice_obj("sims-svc-abc", "sims-svc", [base + 1]))
    t0 = time.monotonic()
    wait_until(lambda: served_by(port, 2) == {f"127.0.0.1:{base + 1}"}, what="traffic follows the slice")
    assert time.monotonic() - t0 < 1.0 * SLOW + 1.0
    assert served_by(port) == {f"127.0.0.1:{base + 1}"}
    # both target ports, then the endpoint not ready -> 503, then the slice deleted -> 503
    fake.apply(slice_obj("sims-svc-abc", "sims-svc", [base, base + 1]))
    wait_until(lambda: served_by(port, 8) == {f"127.0.0.1:{base}", f"127.0.0.1:{base + 1}"}, what="both ports")
    fake.apply(slice_obj("sims-svc-abc", "sims-svc", [base], ready=(False,)))
    wait_until(lambda: status_of(port, "chat") == 503, what="not ready -> 503")
    fake.apply(slice_obj("sims-svc-abc", "sims-svc", [base]))
    wait_until(lambda: status_of(port, "chat") == 200, what="ready again")
    fake.delete("discovery.k8s.io/v1", "EndpointSlice", "sims-svc-abc")
    wait_until(lambda: status_of(port, "chat") == 503, what="slice deleted -> 503")
    assert procs.stop(gw) == 0


def latest(fake, plural, name):
    ps = [p for p in fake.get("patches") if p["plural"] == plural and p["name"] == name]
    return ps[-1]["patch"]["status"] if ps else None


def test_gateway_and_route_status(procs, infergate_bin, tmp_path):
    """--write-status: the Gateway gets Accepted and Programmed plus listener statuses with the number
    of attached routes; the HTTPRoute gets parents[] with Accepted and ResolvedRefs; a route to a
    missing pool gets ResolvedRefs=False BackendNotFound (and its requests 503) without breaking the
    others, and True once the pool exists. Patches only on change."""
    base = start_sim(procs, infergate_bin)
    fake, api = start_fake(procs)
    seed(fake, base)
    gw, port, admin = gateway(procs, infergate_bin, "gw", ["--kube-api", f"http://127.0.0.1:{api}",
                                                           "--write-status"])
    wait_until(lambda: status_of(port, "chat") == 200, what="served")
    st = wait_until(lambda: latest(fake, "gateways", "gw"), what="gateway status")
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Accepted"]["status"] == "True" and conds["Programmed"]["status"] == "True", st
    assert conds["Programmed"]["reason"] == "Programmed"
    (lst,) = st["listeners"]
    assert lst["name"] == "http" and lst["attachedRoutes"] == 1, lst
    assert lst["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]
    assert {c["type"]: c["status"] for c in lst["conditions"]} == {"Accepted": "True", "Programmed": "True",
                                                                   "ResolvedRefs": "True"}
    rs = wait_until(lambda: latest(fake, "httproutes", "llm"), what="route status")
    (parent,) = rs["parents"]
    assert parent["parentRef"]["name"] == "gw" and parent["controllerName"] == "infergate.io/gateway-controller"
    rc = {c["type"]: c for c in parent["conditions"]}
    assert (rc["Accepted"]["status"], rc["Accepted"]["reason"]) == ("True", "Accepted")
    assert (rc["ResolvedRefs"]["status"], rc["ResolvedRefs"]["reason"]) == ("True", "ResolvedRefs")

    # a second route, to a pool that does not exist
    fake.apply({"apiVersion": GW_API, "kind": "HTTPRoute", "metadata": {"name": "missing"},
                "spec": {"parentRefs": [{"name": "gw"}],
                         "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/other"}}],
                                    "backendRefs": [{"group": "inference.networking.k8s.io",
                                                     "kind": "InferencePool", "name": "nopool"}]}]}})

    def missing_refs():
        s = latest(fake, "httproutes", "missing")
        return s and {c["type"]: c for c in s["parents"][0]["conditions"]}["ResolvedRefs"]

    c = wait_until(missing_refs, what="ResolvedRefs of the route to a missing pool")
    assert (c["status"], c["reason"]) == ("False", "BackendNotFound"), c
    assert "nopool" in c["message"]
    wait_until(lambda: latest(fake, "gateways", "gw")["listeners"][0]["attachedRoutes"] == 2,
               what="two attached routes")
    assert status_of(port, "chat") == 200  # the other route still works
    r = post_json(port, "/other/v1/completions", {"model": "chat", "prompt": "hi"}, timeout=10)
    assert r.status == 500, r.status  # Gateway API: a rule whose backendRefs are all invalid answers 500
    # the pool appears: ResolvedRefs turns True
    fake.apply({"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                "metadata": {"name": "nopool"},
                "spec": {"selector": {"matchLabels": {"app": "sim"}}, "targetPorts": [{"number": base}],
                         "endpointPickerRef": {"name": "epp", "port": {"number": 9002}}}})
    wait_until(lambda: missing_refs()["status"] == "True", what="ResolvedRefs=True once the pool exists")
    # an unrelated change (a new model) sends no Gateway / HTTPRoute patch
    n = len([p for p in fake.get("patches") if p["plural"] in ("gateways", "httproutes")])
    fake.apply(model("other", "other-model", ["lora-b"]))
    wait_until(lambda: status_of(port, "other-model") == 200, what="new model served")
    time.sleep(0.3)
    assert len([p for p in fake.get("patches") if p["plural"] in ("gateways", "httproutes")]) == n
    assert procs.stop(gw) == 0


def test_leader_election_status_writer(procs, infergate_bin, tmp_path):
    """Two gateways with --leader-elect: both serve traffic, only the Lease holder writes status; when
    it is killed, the other takes the Lease after it expires and writes status from then on."""
    base = start_sim(procs, infergate_bin)
    fake, api = start_fake(procs)
    seed(fake, base)
    args = ["--kube-api", f"http://127.0.0.1:{api}", "--write-status", "--leader-elect",
            "--leader-elect-lease-duration", "3", "--leader-elect-lease-name", "ig-test"]
    a, pa, _ = gateway(procs, infergate_bin, "gw-a", [*args, "--controller-name", "example.com/a"])
    wait_until(lambda: "acquired lease" in a.log(), what="the first replica leads")
    b, pb, _ = gateway(procs, infergate_bin, "gw-b", [*args, "--controller-name", "example.com/b"])
    wait_until(lambda: status_of(pb, "chat") == 200, what="replica b serves")
    assert status_of(pa, "chat") == 200
    wait_until(lambda: latest(fake, "gateways", "gw"), what="status from the leader")
    lease = fake.get("leases")["default/ig-test"]
    assert lease["spec"]["holderIdentity"] and lease["spec"]["leaseDurationSeconds"] == 3
    assert lease["spec"]["renewTime"].endswith("Z") and lease["spec"]["acquireTime"]
    # only a writes: every controllerName in the patches is a's
    time.sleep(1.0)
    fake.apply(pod("sim-a", ready=False))
    wait_until(lambda: status_of(pb, "chat") == 503 and status_of(pa, "chat") == 503, what="both follow")
    time.sleep(0.5)
    ctrl = {p2["controllerName"] for p in fake.get("patches") for p2 in p["patch"]["status"].get("parents", [])}
    assert ctrl == {"example.com/a"}, ctrl
    assert "acquired lease" not in b.log()
    # kill the leader (no goodbye): b takes over after the lease expires and writes status
    t0 = time.monotonic()
    a.popen.send_signal(signal.SIGKILL)
    a.popen.wait()
    wait_until(lambda: "acquired lease" in b.log(), timeout=15, what="b takes the lease")
    assert time.monotonic() - t0 >= 0.5  # not at once: only once the lease expired
    lease = fake.get("leases")["default/ig-test"]
    assert lease["spec"]["leaseTransitions"] == 1, lease
    fake.apply(pod("sim-a"))

    def b_wrote():
        return any(p2["controllerName"] == "example.com/b" for p in fake.get("patches")
                   for p2 in p["patch"]["status"].get("parents", []))

    wait_until(b_wrote, what="status written by b")
    wait_until(lambda: status_of(pb, "chat") == 200, what="b follows the pod")
    assert procs.stop(b) == 0


def test_leader_releases_lease_on_sigterm(procs, infergate_bin, tmp_path):
    """A leader stopped with SIGTERM releases the Lease (no holder, 1 s duration) so that another
    replica can take it over at once instead of waiting for it to expire."""
    base = start_sim(procs, infergate_bin)
    fake, api = start_fake(procs)
    seed(fake, base)
    args = ["--kube-api", f"http://127.0.0.1:{api}", "--write-status", "--leader-elect",
            "--leader-elect-lease-duration", "30", "--leader-elect-lease-name", "ig-rel"]
    a, pa, _ = gateway(procs, infergate_bin, "gw-a", args)
    wait_until(lambda: "acquired lease" in a.log(), what="the replica leads")
    assert fake.get("leases")["default/ig-rel"]["spec"]["holderIdentity"]
    assert procs.stop(a) == 0
    lease = fake.get("leases")["default/ig-rel"]
    assert lease["spec"]["holderIdentity"] == "" and lease["spec"]["leaseDurationSeconds"] == 1, lease
    assert "released lease" in a.log()
    # a new replica takes it at once, long before the 30 s duration
    b, pb, _ = gateway(procs, infergate_bin, "gw-b", args)
    wait_until(lambda: "acquired lease" in b.log(), timeout=10, what="b takes the released lease")
    assert procs.stop(b) == 0

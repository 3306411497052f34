"""`infergate serve --kube` against a fake API server (fakeapi.py): LIST + WATCH build the routes,
Pod and InferenceModel events change them, with --write-status a duplicate model name gets
Accepted=False written back and InferencePools get parents[] with Accepted and ResolvedRefs,
and dropped watch streams and 410 Gone make the client re-list and keep working."""
import os
import shutil
import subprocess
import sys

import pytest
import requests

from conftest import free_port, free_port_range, wait_until
from rawhttp import admin_get, post_json

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "s3cr3t-token"


class Fake:
    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}"
        self.verify = True

    def apply(self, obj):
        r = requests.post(self.url + "/_ctl/apply", json=obj, timeout=10, verify=self.verify)
        assert r.status_code == 200, r.text

    def delete(self, api_version, kind, name):
        r = requests.post(self.url + "/_ctl/delete", json={"apiVersion": api_version, "kind": kind, "name": name},
                          timeout=10, verify=self.verify)
        assert r.status_code == 200, r.text

    def post(self, what, body=None):
        r = requests.post(f"{self.url}/_ctl/{what}", json=body or {}, timeout=10, verify=self.verify)
        assert r.status_code == 200, r.text

    def get(self, what):
        return requests.get(f"{self.url}/_ctl/{what}", timeout=10, verify=self.verify).json()


GIE_X = "inference.networking.x-k8s.io/v1alpha2"


def pod(name, ready=True):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "sim"}},
            "spec": {"containers": [{"name": "sim", "image": "sim"}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def model(name, model_name, targets=None, created="2024-01-01T00:00:00Z"):
    spec = {"modelName": model_name, "poolRef": {"name": "sims"}}
    if targets:
        spec["targetModels"] = [{"name": t} for t in targets]
    return {"apiVersion": GIE_X, "kind": "InferenceModel",
            "metadata": {"name": name, "creationTimestamp": created}, "spec": spec}


def seed(fake, base):
    fake.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw"},
                "spec": {"gatewayClassName": "infergate",
                         "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    fake.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "llm"},
                "spec": {"parentRefs": [{"name": "gw", "sectionName": "http"}],
                         "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                                    "backendRefs": [{"group": "inference.networking.k8s.io",
                                                     "kind": "InferencePool", "name": "sims"}]}]}})
    fake.apply({"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                "metadata": {"name": "sims", "annotations": {"infergate.io/scrape-interval": "50ms"}},
                "spec": {"selector": {"matchLabels": {"app": "sim"}},
                         "targetPorts": [{"number": base}, {"number": base + 1}],
                         "endpointPickerRef": {"name": "epp", "port": {"number": 9002}}}})
    fake.apply(pod("sim-a"))
    fake.apply(model("chat", "chat", ["lora-a"]))
    fake.apply(model("base", "llama3-8b"))


def complete(port, name):
    try:
        return post_json(port, "/v1/completions", {"model": name, "prompt": "hi", "max_tokens": 2}, timeout=10)
    except OSError:
        return None


def status_of(port, name):
    r = complete(port, name)
    return r.status if r else None


def model_of(port, name):
    r = complete(port, name)
    return r.json().get("model") if r and r.status == 200 else None


def start(procs, infergate_bin, tmp_path, extra=()):
    base = free_port_range(2)
    procs.start("sim", [infergate_bin, "sim", "--pods", 2, "--base-port", base, "--lora", "lora-a,lora-b",
                        "--time-scale", 20], wait_port=[base, base + 1])
    api_port = free_port()
    procs.start("fakeapi", [sys.executable, os.path.join(HERE, "fakeapi.py"), "--port", api_port, "--token",
                            TOKEN], wait_port=api_port)
    fake = Fake(api_port)
    fake.post("uninstall", {"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute"})
    seed(fake, base)
    tok = tmp_path / "token"
    tok.write_text(TOKEN + "\n")
    port, admin = free_port(), free_port()
    gw = procs.start("gateway", [infergate_bin, "serve", "--kube", "--kube-api", f"http://127.0.0.1:{api_port}",
                                 "--namespace", "default", "--kube-token-file", tok, "--port", f"http={port}",
                                 "--admin", f"127.0.0.1:{admin}", *extra], wait_port=[port, admin])
    return fake, gw, port, admin


def test_kube_watch(procs, infergate_bin, tmp_path):
    fake, gw, port, admin = start(procs, infergate_bin, tmp_path, ["--write-status"])
    wait_until(lambda: admin_get(admin, "/readyz")[0] == 200, what="gateway ready")
    assert model_of(port, "chat") == "lora-a"
    assert status_of(port, "llama3-8b") == 200
    assert "CRD not installed" in gw.log()  # TCPRoute answered 404: logged, treated as empty

    # Pod events: not ready -> no endpoint (503); ready again; deleted; added back
    fake.apply(pod("sim-a", ready=False))
    wait_until(lambda: status_of(port, "chat") == 503, what="pod not ready -> 503")
    fake.apply(pod("sim-a"))
    wait_until(lambda: status_of(port, "chat") == 200, what="pod ready -> 200")
    fake.delete("v1", "Pod", "sim-a")
    wait_until(lambda: status_of(port, "chat") == 503, what="pod deleted -> 503")
    fake.apply(pod("sim-b"))
    wait_until(lambda: status_of(port, "chat") == 200, what="pod added -> 200")

    # deleting an InferenceModel: its name is unknown (404)
    fake.delete(GIE_X, "InferenceModel", "base")
    wait_until(lambda: status_of(port, "llama3-8b") == 404, what="model deleted -> 404")

    # a second InferenceModel with the same name (newer) is skipped and gets Accepted=False back
    fake.apply(model("chat-dup", "chat", ["lora-b"], created="2025-06-01T00:00:00Z"))

    def conds(name):
        out = [p["patch"]["status"]["conditions"][0] for p in fake.get("patches") if p["name"] == name]
        return out[-1] if out else None

    c = wait_until(lambda: conds("chat-dup"), what="status patch of chat-dup")
    assert (c["type"], c["status"], c["reason"]) == ("Accepted", "False", "ModelNameInUse"), c
    assert c["message"] and c["lastTransitionTime"].endswith("Z")
    c = wait_until(lambda: conds("chat"), what="status patch of chat")
    assert (c["type"], c["status"], c["reason"]) == ("Accepted", "True", "Accepted"), c
    assert model_of(port, "chat") == "lora-a"  # the oldest one wins

    # a dropped watch stream: the client re-lists and keeps following changes
    lists = fake.get("stats")["list"].get("inferencemodels", 0)
    fake.post("drop")
    wait_until(lambda: fake.get("stats")["list"].get("inferencemodels", 0) > lists, what="re-list after drop")
    fake.apply(model("chat", "chat", ["lora-b"]))
    wait_until(lambda: model_of(port, "chat") == "lora-b", what="change after a dropped watch")

    # 410 Gone (history compacted): re-list, keep working
    lists = fake.get("stats")["list"].get("inferencemodels", 0)
    fake.post("compact")
    wait_until(lambda: fake.get("stats")["list"].get("inferencemodels", 0) > lists, what="re-list after 410")
    fake.delete(GIE_X, "InferenceModel", "chat-dup")
    fake.apply(model("chat", "chat", ["lora-a"]))
    wait_until(lambda: model_of(port, "chat") == "lora-a", what="change after 410")
    assert status_of(port, "llama3-8b") == 404

    # status is written only when it changes: no patch storm
    patches = fake.get("patches")
    assert len([p for p in patches if p["name"] == "chat"]) <= 2, patches
    assert {p["plural"] for p in patches} <= {"inferencemodels", "inferencepools", "gateways", "httproutes"}, patches
    assert len([p for p in patches if p["plural"] in ("gateways", "httproutes")]) <= 4, patches
    assert procs.stop(gw) == 0


def test_kube_pool_status(procs, infergate_bin, tmp_path):
    """--write-status: the InferencePool gets status.parents[] naming the Gateway whose HTTPRoute routes
    to it, with Accepted=True and ResolvedRefs=True; ResolvedRefs turns False (NoReadyEndpoints) when
    its only Pod is not ready, and True again; patches are sent only on change."""
    fake, gw, port, admin = start(procs, infergate_bin, tmp_path,
                                  ["--write-status", "--controller-name", "example.com/infergate"])
    wait_until(lambda: admin_get(admin, "/readyz")[0] == 200, what="gateway ready")

    def pool_patches():
        return [p for p in fake.get("patches") if p["plural"] == "inferencepools" and p["name"] == "sims"]

    def resolved():
        ps = pool_patches()
        if not ps:
            return None
        parents = ps[-1]["patch"]["status"]["parents"]
        assert len(parents) == 1, parents
        conds = {c["type"]: c for c in parents[0]["conditions"]}
        return parents[0], conds

    parent, conds = wait_until(resolved, what="pool status patch")
    assert parent["parentRef"]["kind"] == "Gateway" and parent["parentRef"]["name"] == "gw", parent
    assert parent["parentRef"]["group"] == "gateway.networking.k8s.io"
    assert parent["controllerName"] == "example.com/infergate"
    assert (conds["Accepted"]["status"], conds["Accepted"]["reason"]) == ("True", "Accepted")
    assert (conds["ResolvedRefs"]["status"], conds["ResolvedRefs"]["reason"]) == ("True", "ResolvedRefs")
    assert conds["ResolvedRefs"]["lastTransitionTime"].endswith("Z")
    # the fake API server merged it into the object
    pool = [o for o in fake.get("objects") if o["kind"] == "InferencePool"][0]
    assert pool["status"]["parents"][0]["parentRef"]["name"] == "gw"

    fake.apply(pod("sim-a", ready=False))
    wait_until(lambda: resolved()[1]["ResolvedRefs"]["status"] == "False", what="ResolvedRefs=False")
    c = resolved()[1]["ResolvedRefs"]
    assert c["reason"] == "NoReadyEndpoints" and c["message"], c
    assert resolved()[1]["Accepted"]["status"] == "True"
    fake.apply(pod("sim-a"))
    wait_until(lambda: resolved()[1]["ResolvedRefs"]["status"] == "True", what="ResolvedRefs=True again")
    wait_until(lambda: status_of(port, "chat") == 200, what="served again")
    # an unrelated change rebuilds but sends no pool patch (the status did not change)
    fake.apply(model("other", "other-model", ["lora-b"]))
    wait_until(lambda: status_of(port, "other-model") == 200, what="new model served")
    wait_until(lambda: any(p["name"] == "other" for p in fake.get("patches")), what="status of the new model")
    assert len(pool_patches()) == 3, pool_patches()
    assert procs.stop(gw) == 0


def test_kube_waits_for_api_and_bad_objects_keep_config(procs, infergate_bin, tmp_path):
    """The gateway starts before the API server answers (retrying with backoff), and an object that
    makes the configuration invalid is logged while the last good configuration keeps serving."""
    base = free_port_range(2)
    procs.start("sim", [infergate_bin, "sim", "--pods", 2, "--base-port", base, "--lora", "lora-a,lora-b",
                        "--time-scale", 20], wait_port=[base, base + 1])
    api_port, port = free_port(), free_port()
    gw = procs.start("gateway", [infergate_bin, "serve", "--kube", "--kube-api", f"http://127.0.0.1:{api_port}",
                                 "--port", f"http={port}"])
    wait_until(lambda: "retrying" in gw.log(), what="retries while the API server is down")
    assert gw.alive()
    procs.start("fakeapi", [sys.executable, os.path.join(HERE, "fakeapi.py"), "--port", api_port],
                wait_port=api_port)
    fake = Fake(api_port)
    seed(fake, base)
    wait_until(lambda: status_of(port, "chat") == 200, timeout=20, what="served after the API came up")
    # an HTTPRoute with a regular-expression path is an error: keep serving the last good config
    fake.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "bad"},
                "spec": {"parentRefs": [{"name": "gw"}],
                         "rules": [{"matches": [{"path": {"type": "RegularExpression", "value": "/x.*"}}],
                                    "backendRefs": [{"group": "inference.networking.k8s.io",
                                                     "kind": "InferencePool", "name": "sims"}]}]}})
    wait_until(lambda: "keeping the running configuration" in gw.log(), what="bad update logged")
    assert status_of(port, "chat") == 200
    fake.delete("gateway.networking.k8s.io/v1", "HTTPRoute", "bad")
    fake.delete(GIE_X, "InferenceModel", "base")
    wait_until(lambda: status_of(port, "llama3-8b") == 404, what="good update after the bad one")
    assert fake.get("patches") == []  # no --write-status: no status is written
    assert procs.stop(gw) == 0


def make_cert(tmp_path, name, san):
    key, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def test_kube_https_verifies_the_ca(procs, infergate_bin, tmp_path):
    """https: the API server's certificate is verified against --kube-ca (and its IP SAN); a server
    with a certificate from another CA is refused."""
    if not shutil.which("openssl"):
        pytest.skip("openssl command not available")
    crt, key = make_cert(tmp_path, "api", "IP:127.0.0.1")
    other, _ = make_cert(tmp_path, "other", "IP:127.0.0.1")
    base = free_port_range(2)
    procs.start("sim", [infergate_bin, "sim", "--pods", 2, "--base-port", base, "--lora", "lora-a,lora-b",
                        "--time-scale", 20], wait_port=[base, base + 1])
    api_port = free_port()
    procs.start("fakeapi", [sys.executable, os.path.join(HERE, "fakeapi.py"), "--port", api_port, "--token",
                            TOKEN, "--tls-cert", crt, "--tls-key", key], wait_port=api_port)
    fake = Fake(api_port)
    fake.url = f"https://127.0.0.1:{api_port}"
    fake.verify = str(crt)
    seed(fake, base)
    tok = tmp_path / "token"
    tok.write_text(TOKEN)
    bad_port, port = free_port(), free_port()
    bad = procs.start("gateway-bad-ca", [infergate_bin, "serve", "--kube", "--kube-api",
                                         f"https://127.0.0.1:{api_port}", "--kube-ca", other,
                                         "--kube-token-file", tok, "--port", f"http={bad_port}"])
    gw = procs.start("gateway", [infergate_bin, "serve", "--kube", "--kube-api", f"https://127.0.0.1:{api_port}",
                                 "--kube-ca", crt, "--kube-token-file", tok, "--port", f"http={port}"],
                     wait_port=port)
    assert model_of(port, "chat") == "lora-a"
    wait_until(lambda: "TLS handshake" in bad.log(), what="certificate refused")
    assert bad.alive() and status_of(bad_port, "chat") is None  # never configured: no listener
    assert procs.stop(bad) == 0 and procs.stop(gw) == 0

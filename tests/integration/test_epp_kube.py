"""`infergate epp --kube --pool-name NAME` (issue #8): the picker resolves its pool, Pods, EndpointSlices
and InferenceModels from the (fake) API server and follows changes live, keeping streams in flight;
`infergate epp -c FILE` and `--manifests` reload on SIGHUP and keep the last good configuration."""
import json
import os
import signal
import sys

import eppclient as E
from conftest import free_port, wait_until
from test_epp import body_of, pick, start_epp
from test_kube import GIE_X, Fake

HERE = os.path.dirname(os.path.abspath(__file__))


def pod(name, ip, ready=True):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "llm"}},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pool(port):
    return {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": "llm"},
            "spec": {"selector": {"matchLabels": {"app": "llm"}}, "targetPorts": [{"number": port}],
                     "endpointPickerRef": {"name": "epp", "port": {"number": 9002}}}}


def picks(e, n=8, model="llama3"):
    out = set()
    for _ in range(n):
        st, ep = pick(e, model=model)
        if st != 200:
            return st
        out.add(ep)
    return out


def test_epp_kube_follows_the_api_server(procs, infergate_bin, tmp_path):
    api = free_port()
    procs.start("fakeapi", [sys.executable, os.path.join(HERE, "fakeapi.py"), "--port", api], wait_port=api)
    fake = Fake(api)
    port = free_port()  # nothing listens there: the picker is blind and picks least outstanding
    a, b, c = f"127.0.0.2:{port}", f"127.0.0.3:{port}", f"127.0.0.4:{port}"
    fake.apply(pool(port))
    fake.apply(pod("p1", "127.0.0.2"))
    fake.apply(pod("p2", "127.0.0.3"))
    e = start_epp(procs, infergate_bin, ["--kube", "--kube-api", f"http://127.0.0.1:{api}", "--pool-name", "llm"])
    try:
        assert "waiting for InferencePool" in e.proc.log()
        wait_until(lambda: picks(e) == {a, b}, what="both pods picked")
        # the epp lists no Gateway or routes (it does not need them: less RBAC)
        assert "gateways" not in fake.get("stats")["list"]
        assert E.health_check(e.health) == 1

        # a stream picks an endpoint, then its pod goes away while the response is still coming
        s = e.stream()
        s.send(E.request_headers(E.post_headers()))
        r = s.exchange(E.request_body(body_of(), eos=True), 1)[0]
        held = r["set_headers"]["x-gateway-destination-endpoint"]
        assert s.recv()["kind"] == "request_body"
        fake.delete("v1", "Pod", "p1" if held == a else "p2")
        other = b if held == a else a
        wait_until(lambda: picks(e) == {other}, what="the deleted pod is no longer picked")
        r = s.exchange(E.response_headers([(":status", "200")]), 1)[0]
        assert r["set_headers"].get("x-gateway-destination-endpoint-served") == held
        s.close()

        # a new pod, and a not-ready one
        fake.apply(pod("p3", "127.0.0.4"))
        fake.apply(pod("p4", "127.0.0.5", ready=False))
        wait_until(lambda: picks(e, 12) == {other, c}, what="the new pod is picked, the unready one not")

        # InferenceModels: once the pool has one, unknown models get 404 and targets are rewritten
        fake.apply({"apiVersion": GIE_X, "kind": "InferenceModel", "metadata": {"name": "chat"},
                    "spec": {"modelName": "chat", "poolRef": {"name": "llm"}, "targetModels": [{"name": "lora-a"}]}})
        wait_until(lambda: pick(e, model="nope")[0] == 404, what="unknown model -> 404")
        st = e.stream()
        st.send(E.request_headers(E.post_headers(), protocol_config=(E.FULL_DUPLEX_STREAMED, E.NONE)))
        st.send(E.request_body(json.dumps({"model": "chat", "prompt": "hi"}).encode(), eos=True))
        st.recv()
        assert json.loads(st.recv()["streamed"][0])["model"] == "lora-a"
        st.close()

        # the pool's port changes: every endpoint follows
        port2 = free_port()
        fake.apply(pool(port2))
        wait_until(lambda: picks(e, 12, "chat") == {f"127.0.0.3:{port2}" if other == b else f"127.0.0.2:{port2}",
                                                    f"127.0.0.4:{port2}"}, what="new target port")
        # a broken update (invalid pool) keeps the last good configuration
        bad = pool(port2)
        bad["spec"]["targetPorts"] = [{"number": 0}]
        fake.apply(bad)
        wait_until(lambda: "keeping the running configuration" in e.proc.log(), what="bad update refused")
        assert len(picks(e, 12, "chat")) == 2
        # EndpointSlices of the pool's Service (same selector) add their ready addresses
        fake.apply(pool(port2))
        fake.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "llm-svc"},
                    "spec": {"selector": {"app": "llm"}, "ports": [{"port": 80}]}})
        fake.apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "llm-svc-1", "labels": {"kubernetes.io/service-name": "llm-svc"}},
                    "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.9"], "conditions": {"ready": True}}],
                    "ports": [{"port": port2}]})
        wait_until(lambda: f"127.0.0.9:{port2}" in picks(e, 16, "chat"), what="slice address picked")
    finally:
        e.close()
    assert procs.stop(e.proc) == 0


CONFIG = """
listeners:
  - name: web
    address: 127.0.0.1:1
pools:
  - name: llama
    endpoints: [{eps}]
models:
  - name: llama3
    pool: llama
"""


def test_epp_sighup_reload(procs, infergate_bin, tmp_path):
    """-c FILE: SIGHUP applies a new endpoint list; a broken file keeps the last good one."""
    p1, p2 = free_port(), free_port()
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(eps=f"127.0.0.1:{p1}"))
    e = start_epp(procs, infergate_bin, ["-c", str(path), "--pool", "llama"])
    try:
        assert picks(e) == {f"127.0.0.1:{p1}"}
        s = e.stream()  # a pick in flight across the reload
        s.send(E.request_headers(E.post_headers()))
        s.exchange(E.request_body(body_of(), eos=True), 2)
        path.write_text(CONFIG.format(eps=f"127.0.0.1:{p2}, 127.0.0.1:{p1}"))
        e.proc.popen.send_signal(signal.SIGHUP)
        # the pick in flight on p1 is carried over: least outstanding sends everything to p2 meanwhile
        wait_until(lambda: picks(e) == {f"127.0.0.1:{p2}"}, what="reloaded endpoints")
        r = s.exchange(E.response_headers([(":status", "200")], eos=True), 1)[0]
        assert r["set_headers"].get("x-gateway-destination-endpoint-served") == f"127.0.0.1:{p1}"
        s.close()
        wait_until(lambda: picks(e) == {f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"}, what="p1 released")
        path.write_text("pools: [oops\n")
        e.proc.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: "keeping the running configuration" in e.proc.log(), what="bad reload refused")
        assert picks(e) == {f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"}
        assert E.health_check(e.health) == 1
        # the pool disappears from the file: refused too
        path.write_text(CONFIG.replace("name: llama\n", "name: other\n").replace("pool: llama", "pool: other")
                        .format(eps=f"127.0.0.1:{p2}"))
        e.proc.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: e.proc.log().count("keeping the running configuration") >= 2, what="missing pool")
        assert picks(e) == {f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"}
    finally:
        e.close()
    assert procs.stop(e.proc) == 0


def test_epp_kube_bad_args(infergate_bin):
    import subprocess
    r = subprocess.run([infergate_bin, "epp", "--kube"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--pool-name" in r.stderr
    r = subprocess.run([infergate_bin, "epp", "--kube", "--pool-name", "x", "-c", "f.yaml"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "one of" in r.stderr
    r = subprocess.run([infergate_bin, "epp", "--kubeconfig", "/nonexistent", "--pool-name", "x", "--grpc",
                        f"127.0.0.1:{free_port()}", "--health", "off", "--metrics", "off"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot open /nonexistent" in r.stderr

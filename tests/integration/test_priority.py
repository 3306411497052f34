"""Integer priority (issue #5): every distinct priority is a band of the flow-control queue, served
highest first (a model's `priority`, an InferenceObjective named by header x-gateway-inference-objective);
a negative priority is shed with 429 when the pool is saturated. The serving order is made observable
with a one-pod pool capped at one request in flight (max_streams_per_endpoint: 1): requests wait in the
queue while a held stream occupies the pod, and after it is released they are sent one at a time; the
access log (written when a request ends, before the next one is taken from the queue) gives the order."""
import json
import threading
import time

from conftest import SLOW, free_port, free_port_range, wait_until
from rawhttp import admin_get, metric, post_json, start_gateway, stream_in_flight

CONFIG = """
listeners:
  - name: web
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
access_log: {log}
pools:
  - name: llama
    endpoints: [127.0.0.1:{ep}]
    max_streams_per_endpoint: 1
models:
  - name: p5
    pool: llama
    priority: 5
    targets: [{{name: llama3}}]
  - name: p1
    pool: llama
    priority: 1
    targets: [{{name: llama3}}]
  - name: low
    pool: llama
    priority: -2
    targets: [{{name: llama3}}]
  - name: llama3
    pool: llama
objectives:
  - name: gold
    pool: llama
    priority: 7
  - name: batch
    pool: llama
    priority: -7
routes:
  - name: openai
    backend: llama
"""


def start(procs, infergate_bin, tmp_path, *sim_args):
    ep = free_port_range(1)
    procs.start("sim", [infergate_bin, "sim", "--pods", "1", "--base-port", ep, "--model", "llama3",
                        "--time-scale", "1", *sim_args], wait_port=[ep])
    port, admin = free_port(), free_port()
    log = tmp_path / "access.log"
    start_gateway(procs, tmp_path, CONFIG.format(port=port, admin=admin, ep=ep, log=log), [port, admin])
    wait_until(lambda: pool(admin)["pods"][0]["has_metrics"], what="pod scraped")
    return ep, port, admin, log


def pool(admin):
    status, text = admin_get(admin, "/debug/pools")
    assert status == 200
    return json.loads(text)["pools"][0]


def complete(port, model, rid, objective=None, max_tokens=2):
    headers = [("x-request-id", rid)]
    if objective:
        headers.append(("x-gateway-inference-objective", objective))
    return post_json(port, "/v1/completions", {"model": model, "prompt": f"hello {rid}", "max_tokens": max_tokens},
                     headers=headers, timeout=90 * SLOW)


def hold_stream(port):
    """Starts a long streamed completion through the gateway and returns its socket once the response
    has started (the pod's one stream is then taken); closing the socket releases it."""
    return stream_in_flight(port, [("x-request-id", "hold")], prompt="hold", timeout=60 * SLOW)


def test_higher_priority_served_first(procs, infergate_bin, tmp_path):
    ep, port, admin, log = start(procs, infergate_bin, tmp_path)
    held = hold_stream(port)
    wait_until(lambda: pool(admin)["pods"][0]["inflight"] == 1, what="the held stream in flight")
    # arrivals in the worst order: the low priorities first; each waits (the pod is at its stream cap)
    plan = [("p1-0", "p1", None, 1), ("p1-1", "p1", None, 1), ("low-0", "low", None, -2),
            ("std-0", "llama3", None, 0), ("p5-0", "p5", None, 5), ("p1-2", "p1", None, 1),
            ("p5-1", "p5", None, 5), ("gold-0", "llama3", "gold", 7), ("p5-2", "p5", None, 5)]
    prio = {rid: p for rid, _, _, p in plan}
    results = {}
    threads = []
    for n, (rid, model, objective, _) in enumerate(plan):
        t = threading.Thread(target=lambda rid=rid, m=model, o=objective: results.update({rid: complete(port, m, rid, o)}),
                             daemon=True)
        t.start()
        threads.append(t)
        wait_until(lambda: pool(admin)["queue"] == n + 1, what=f"{rid} queued")
    q = pool(admin)
    assert q["queue_by_priority"] == {"7": 1, "5": 3, "1": 3, "0": 1, "-2": 1}, q
    assert q["queue_by_criticality"] == {"Critical": 7, "Standard": 1, "Sheddable": 1}, q
    status, text = admin_get(admin, "/metrics")
    assert metric(text, 'flow_control_queue_size{name="llama",criticality="Critical"}') == 7
    assert metric(text, 'flow_control_queue_size{name="llama",criticality="Sheddable"}') == 1
    # waiting for a stream slot is not a saturated pool: the Sheddable one is not shed however long the
    # higher priorities wait (past the 200 ms after which queued capacity waits shed it, several scrapes)
    time.sleep(0.4)
    assert pool(admin)["queue_by_priority"].get("-2") == 1
    held.close()  # the pod's stream frees up: the queue drains one request at a time
    for t in threads:
        t.join(120 * SLOW)
        assert not t.is_alive()
    for rid, r in results.items():
        assert r.status == 200, (rid, r)
    wait_until(lambda: pool(admin)["queue"] == 0, what="queue empty")

    def served():
        with open(log) as f:
            ids = [line.split(" request_id=")[1].split()[0] for line in f if " request_id=" in line]
        return [i for i in ids if i in prio]

    wait_until(lambda: len(served()) == len(plan), what="access log written")
    order = [prio[i] for i in served()]
    assert order == [7, 5, 5, 5, 1, 1, 1, 0, -2], served()
    # inside a band, one flow: arrival order
    assert [i for i in served() if i.startswith("p1")] == ["p1-0", "p1-1", "p1-2"]


def test_negative_priority_shed_when_saturated(procs, infergate_bin, tmp_path):
    ep, port, admin, log = start(procs, infergate_bin, tmp_path, "--max-num-seqs", "1")
    # saturate the pod directly: one running, the rest waiting (each request lasts a while)
    for i in range(10):
        threading.Thread(target=lambda i=i: post_json(ep, "/v1/completions",
                                                      {"model": "llama3", "prompt": f"direct {i}",
                                                       "max_tokens": 100}, timeout=90 * SLOW),
                         daemon=True).start()
    wait_until(lambda: pool(admin)["pods"][0]["waiting"] >= 7, what="pod saturated")
    # negative priorities (a model's, an objective's): 429 at once, with the OpenAI error body
    for rid, model, objective in (("low", "low", None), ("batch", "llama3", "batch")):
        r = complete(port, model, rid, objective)
        assert r.status == 429, (rid, r)
        assert r.header("retry-after") == "1" and r.json()["error"]["code"] == "shed"
    # non-negative priorities wait in their own bands and are served when the pod has room
    results = {}
    threads = []
    for rid, model, objective in (("p1", "p1", None), ("gold", "llama3", "gold"), ("std", "llama3", None)):
        t = threading.Thread(target=lambda rid=rid, m=model, o=objective: results.update({rid: complete(port, m, rid, o)}),
                             daemon=True)
        t.start()
        threads.append(t)
    seen = wait_until(lambda: pool(admin)["queue_by_priority"] == {"7": 1, "1": 1, "0": 1} or
                      any(not t.is_alive() for t in threads), what="requests queued by priority")
    assert seen
    for t in threads:
        t.join(120 * SLOW)
        assert not t.is_alive()
    for rid, r in results.items():
        assert r.status == 200, (rid, r)
    status, text = admin_get(admin, "/metrics")
    assert metric(text, 'inference_objective_request_error_total{model_name="low",target_model_name="llama3",'
                        'error_code="429"}') == 1

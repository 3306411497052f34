"""Inference pools against `infergate sim`: metrics scraping, the scheduler's picks (queue, prefix and
LoRA affinity, stale metrics), admission (shedding, queueing, queue TTL), the GIE metrics on /metrics
and /debug/pools. Assertions are on outcomes (which pod served, status codes, counters), never on
tight timings: CI runs this on two busy cores and under ASan."""
import json
import threading
import time

import pytest

from conftest import SLOW, free_port, free_port_range, wait_until
from rawhttp import admin_get, metric, post_json, sse_events, start_gateway, stream_in_flight


def start_sim(procs, infergate_bin, pods, *args):
    base = free_port_range(pods)
    procs.start("sim", [infergate_bin, "sim", "--pods", pods, "--base-port", base, "--model", "llama3",
                        *args], wait_port=[base + i for i in range(pods)])
    return [base + i for i in range(pods)]


def gateway(procs, tmp_path, eps, scheduler="default", extra_pool="", models="", routes=None, args=()):
    port, admin = free_port(), free_port()
    ep_list = ", ".join(f"127.0.0.1:{p}" for p in eps)
    routes = routes or "  - name: openai\n    backend: llama\n"
    text = f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
pools:
  - name: llama
    endpoints: [{ep_list}]
    scheduler: {scheduler}
{extra_pool}
{models}
routes:
{routes}
"""
    start_gateway(procs, tmp_path, text, [port, admin], args=args)
    return port, admin


def pools(admin):
    status, text = admin_get(admin, "/debug/pools")
    assert status == 200
    return json.loads(text)["pools"]


def pods_by_port(admin):
    return {int(p["endpoint"].rsplit(":", 1)[1]): p for p in pools(admin)[0]["pods"]}


def wait_scraped(admin, n):
    wait_until(lambda: sum(p["has_metrics"] and p["age_ms"] < 1000 for p in pools(admin)[0]["pods"]) == n,
               what=f"{n} pods scraped")


def wait_no_pending(admin, busy=()):
    """Until a scrape has reset our own per-pod counts (so the next pick sees plain metrics); the pods
    on ports in busy run requests of their own."""
    def idle(p):
        mine = p["pending"] == 0 and p["inflight"] == 0
        return mine and (int(p["endpoint"].rsplit(":", 1)[1]) in busy or (p["waiting"] == 0 and p["running"] == 0))
    wait_until(lambda: all(idle(p) for p in pools(admin)[0]["pods"]), what="pods idle and scraped")


def complete(port, prompt="hello", max_tokens=2, model="llama3", headers=None, host="test", stream=False):
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return post_json(port, "/v1/completions", body, headers=headers, host=host, timeout=60 * SLOW)


def served_pod(resp):
    """Pod index of the sim pod that answered (ids are cmpl-POD-SEQ)."""
    return int(resp.json()["id"].split("-")[1])


def direct_load(port, n, max_tokens, model="llama3"):
    """n long requests straight to one sim pod (bypassing the gateway), in background threads."""
    threads = []
    for i in range(n):
        t = threading.Thread(target=lambda i=i: complete(port, prompt=f"direct {i}", max_tokens=max_tokens,
                                                         model=model),
                             daemon=True)
        t.start()
        threads.append(t)
    return threads


def test_scrape_debug_pools_and_gie_metrics(procs, tmp_path, infergate_bin):
    eps = start_sim(procs, infergate_bin, 3, "--max-num-seqs", "1")
    port, admin = gateway(procs, tmp_path, eps)
    wait_scraped(admin, 3)
    p = pools(admin)[0]
    assert p["name"] == "llama" and p["scheduler"] == "default" and p["engine"] == "vllm"
    assert p["queue"] == 0 and len(p["pods"]) == 3
    for pod in p["pods"]:
        assert pod["last_status"] == 200 and pod["scrapes_ok"] >= 1 and pod["max_lora"] == 4
        assert pod["kv"] == 0 and pod["waiting"] == 0
    # a queue on one pod (requests sent to it directly) is seen by the gateway
    direct_load(eps[0], 5, 400)
    wait_until(lambda: pods_by_port(admin)[eps[0]]["waiting"] >= 3, what="pod 0 queue seen by the gateway")
    busy = pods_by_port(admin)[eps[0]]
    assert busy["running"] == 1 and busy["kv"] > 0
    # requests through the gateway, one streamed
    for i in range(4):
        r = complete(port, prompt=f"q{i}")
        assert r.status == 200, r
    r = complete(port, prompt="streamed", max_tokens=3, stream=True)
    assert r.status == 200
    events = sse_events(r.body)
    assert events[-1] == "[DONE]"
    status, text = admin_get(admin, "/metrics")
    assert status == 200
    lbl = 'model_name="llama3",target_model_name="llama3"'
    assert metric(text, f"inference_objective_request_total{{{lbl}}}") == 5
    assert metric(text, f"inference_objective_request_duration_seconds_count{{{lbl}}}") == 5
    assert metric(text, f"inference_objective_request_ttft_seconds_count{{{lbl}}}") == 1
    assert metric(text, f"inference_objective_input_tokens_count{{{lbl}}}") == 5
    assert metric(text, f"inference_objective_input_tokens_sum{{{lbl}}}") >= 5
    assert metric(text, f"inference_objective_output_tokens_sum{{{lbl}}}") == 4 * 2 + 3
    assert metric(text, 'inference_objective_running_requests{model_name="llama3"}') == 0
    assert metric(text, 'inference_pool_ready_pods{name="llama"}') == 3
    assert metric(text, 'inference_pool_average_queue_size{name="llama"}') >= 0
    kv = metric(text, 'inference_pool_average_kv_cache_utilization{name="llama"}')
    assert kv is not None and 0 <= kv <= 1
    assert metric(text, "inference_extension_scheduler_e2e_duration_seconds_count") >= 5
    assert metric(text, 'flow_control_queue_size{name="llama",criticality="Critical"}') == 0
    assert "# TYPE inference_objective_request_ttft_seconds histogram" in text
    assert "# TYPE prefix_indexer_hit_ratio histogram" in text
    assert metric(text, 'infergate_pool_scrapes_total{endpoint="127.0.0.1:%d",result="success"}' % eps[1]) >= 1
    # the busy pod got none of the gateway's requests
    assert busy["inflight"] == 0 and pods_by_port(admin)[eps[0]]["inflight"] == 0


def test_busy_pod_gets_fewer_requests(procs, tmp_path, infergate_bin):
    eps = start_sim(procs, infergate_bin, 3, "--max-num-seqs", "1")
    port, admin = gateway(procs, tmp_path, eps)
    wait_scraped(admin, 3)
    direct_load(eps[0], 8, 500)  # pod 0: one running, seven waiting, for many seconds
    wait_until(lambda: pods_by_port(admin)[eps[0]]["waiting"] >= 5, what="pod 0 saturated")
    counts = [0, 0, 0]
    for i in range(30):
        r = complete(port, prompt=f"short {i}")
        assert r.status == 200, r
        counts[served_pod(r)] += 1
    assert counts[0] <= 2, counts
    assert counts[1] >= 5 and counts[2] >= 5, counts


def test_prefix_affinity(procs, tmp_path, infergate_bin):
    eps = start_sim(procs, infergate_bin, 3)
    port, admin = gateway(procs, tmp_path, eps)
    wait_scraped(admin, 3)
    system = "You are a helpful assistant that answers questions about the sea. " * 30  # ~2 KB, 32 blocks
    counts = [0, 0, 0]
    for i in range(12):
        r = complete(port, prompt=system + f"Question {i}: why is the sea salty?", max_tokens=2)
        assert r.status == 200, r
        counts[served_pod(r)] += 1
    assert max(counts) >= 11, counts
    status, text = admin_get(admin, "/metrics")
    assert metric(text, "prefix_indexer_hit_ratio_count") == 12
    # the sims agree: the shared prefix was served from their cache
    hot = eps[counts.index(max(counts))]
    import urllib.request
    sim_text = urllib.request.urlopen(f"http://127.0.0.1:{hot}/metrics", timeout=10).read().decode()
    hits = sum(float(line.rsplit(" ", 1)[1]) for line in sim_text.splitlines()
               if line.startswith("vllm:prefix_cache_hits_total"))
    assert hits >= 10 * 400, hits  # ~500 cached prompt tokens per request after the first


def test_lora_affinity(procs, tmp_path, infergate_bin):
    eps = start_sim(procs, infergate_bin, 3, "--lora", "sql-lora,chat-lora")
    port, admin = gateway(procs, tmp_path, eps)
    wait_scraped(admin, 3)
    # as in vLLM, an adapter is listed while a sequence of it runs: keep one running on pod 1
    direct_load(eps[1], 1, 4000, model="sql-lora")
    wait_until(lambda: pods_by_port(admin)[eps[1]]["loras"] == ["sql-lora"], what="adapter seen on pod 1")
    counts = [0, 0, 0]
    for i in range(8):
        wait_no_pending(admin, busy=[eps[1]])
        r = complete(port, model="sql-lora", prompt=f"select {i}")
        assert r.status == 200, r
        counts[served_pod(r)] += 1
    assert counts[1] == 8, counts


def test_lora_slot_filter(procs, tmp_path, infergate_bin):
    """One adapter slot per pod. Pod 0 is idle but its slot runs chat-lora; pods 1 and 2 have a queue.
    The queue favours pod 0, yet sql-lora would wait there for the slot: it goes to pod 1 or 2 (the
    base model's side of it is in tests/unit/test_sched_lora.c)."""
    eps = start_sim(procs, infergate_bin, 3, "--lora", "sql-lora,chat-lora", "--max-loras", "1",
                    "--max-num-seqs", "1")
    port, admin = gateway(procs, tmp_path, eps)
    wait_scraped(admin, 3)
    direct_load(eps[0], 1, 4000, model="chat-lora")
    for ep in eps[1:]:
        direct_load(ep, 3, 300)  # base model: one running, two waiting (about 2 s each)
    wait_until(lambda: pods_by_port(admin)[eps[0]]["loras"] == ["chat-lora"] and
               all(pods_by_port(admin)[ep]["waiting"] >= 2 for ep in eps[1:]), what="pods loaded")
    wait_no_pending(admin, busy=eps)
    r = complete(port, model="sql-lora", prompt="select 1")
    assert r.status == 200, r
    assert served_pod(r) != 0


def test_stale_pod_is_avoided(procs, tmp_path, infergate_bin):
    a = free_port_range(1)
    sim_a = procs.start("sim-a", [infergate_bin, "sim", "--pods", 1, "--base-port", a, "--model", "llama3"],
                        wait_port=[a])
    rest = start_sim(procs, infergate_bin, 2)
    port, admin = gateway(procs, tmp_path, [a] + rest, args=["--access-log", str(tmp_path / "access.log")])
    wait_scraped(admin, 3)
    procs.stop(sim_a)
    wait_until(lambda: pods_by_port(admin)[a]["age_ms"] > 1000, what="pod a stale")
    for i in range(20):
        r = complete(port, prompt=f"after {i}")
        assert r.status == 200, r
    pod = pods_by_port(admin)[a]
    assert pod["scrapes_failed"] >= 1 and pod["last_status"] == 0
    wait_until(lambda: metric(admin_get(admin, "/metrics")[1], 'inference_pool_ready_pods{name="llama"}') == 2,
               what="ready pods = 2")
    with open(tmp_path / "access.log") as f:
        lines = [line for line in f if "status=200" in line]
    assert len(lines) == 20 and not any(f"endpoint=127.0.0.1:{a} " in line for line in lines)


SHED_MODELS = """
models:
  - name: critical
    pool: llama
    criticality: Critical
    targets: [{name: llama3}]
  - name: sheddable
    pool: llama
    criticality: Sheddable
    targets: [{name: llama3}]
"""

SHED_ROUTES = """  - name: short
    hostnames: [short.test]
    backend: llama
    timeout: 1s
  - name: openai
    backend: llama
"""


def test_shed_queue_and_ttl(procs, tmp_path, infergate_bin):
    eps = start_sim(procs, infergate_bin, 2, "--max-num-seqs", "1")
    port, admin = gateway(procs, tmp_path, eps, models=SHED_MODELS, routes=SHED_ROUTES)
    wait_scraped(admin, 2)
    for ep in eps:  # both pods: one running, nine waiting; each request lasts ~0.6 s
        direct_load(ep, 10, 100)
    wait_until(lambda: all(p["waiting"] >= 7 for p in pools(admin)[0]["pods"]), what="pool saturated")
    # Sheddable: 429 at once, with retry-after and an OpenAI error body
    r = complete(port, model="sheddable")
    assert r.status == 429, r
    assert r.header("retry-after") == "1"
    err = r.json()["error"]
    assert err["code"] == "shed" and err["type"] == "rate_limit_exceeded" and err["message"]
    # Critical on a route with a 1 s timeout: queued, then 503 when its TTL runs out
    r = complete(port, model="critical", host="short.test")
    assert r.status == 503, r
    assert r.json()["error"]["code"] == "queue_timeout"
    # Critical without a timeout: queued until a pod has room, then served
    result = {}
    t = threading.Thread(target=lambda: result.update(r=complete(port, model="critical")), daemon=True)
    t.start()
    seen = wait_until(lambda: pools(admin)[0]["queue_by_criticality"]["Critical"] == 1 or not t.is_alive(),
                      what="critical request queued")
    assert seen
    t.join(60 * SLOW)
    assert not t.is_alive()
    assert result["r"].status == 200, result["r"]
    status, text = admin_get(admin, "/metrics")
    assert metric(text, 'inference_objective_request_error_total{model_name="sheddable",'
                        'target_model_name="llama3",error_code="429"}') == 1
    assert metric(text, 'inference_objective_request_error_total{model_name="critical",'
                        'target_model_name="llama3",error_code="503"}') == 1
    assert metric(text, 'flow_control_queue_size{name="llama",criticality="Critical"}') == 0


def test_queue_capacity_full(procs, tmp_path, infergate_bin):
    """scheduling.queue_capacity: a full queue rejects a request of the same priority (429 queue_full)
    and makes room for a higher one by evicting a lower one (429 queue_full), which is served later."""
    eps = start_sim(procs, infergate_bin, 1, "--max-num-seqs", "1")
    models = SHED_MODELS + "  - name: llama3\n    pool: llama\n"
    port, admin = gateway(procs, tmp_path, eps, models=models, extra_pool="    scheduling: {queue_capacity: 1}")
    wait_scraped(admin, 1)
    assert pools(admin)[0]["queue_capacity"] == 1
    direct_load(eps[0], 10, 100)  # one running, nine waiting; each request lasts ~0.6 s
    wait_until(lambda: pools(admin)[0]["pods"][0]["waiting"] >= 7, what="pod saturated")
    result = {}
    ask = lambda k, m: lambda: result.update({k: complete(port, model=m, prompt=k)})
    first = threading.Thread(target=ask("first", "llama3"), daemon=True)
    first.start()
    wait_until(lambda: pools(admin)[0]["queue_by_criticality"]["Standard"] == 1, what="Standard queued")
    r = complete(port, prompt="second")  # the same priority finds the queue full
    assert r.status == 429 and r.json()["error"]["code"] == "queue_full", r
    assert r.header("retry-after") == "1"
    crit = threading.Thread(target=ask("critical", "critical"), daemon=True)
    crit.start()  # a higher priority: the Standard one is evicted to make room
    first.join(30 * SLOW)
    assert not first.is_alive() and result["first"].status == 429, result
    assert result["first"].json()["error"]["code"] == "queue_full"
    crit.join(60 * SLOW)
    assert not crit.is_alive() and result["critical"].status == 200, result


def test_client_leaving_queue_and_header_criticality(procs, tmp_path, infergate_bin):
    """No InferenceModel: x-infergate-criticality decides; a client that leaves the queue is removed."""
    import socket
    eps = start_sim(procs, infergate_bin, 1, "--max-num-seqs", "1")
    port, admin = gateway(procs, tmp_path, eps)
    wait_scraped(admin, 1)
    direct_load(eps[0], 10, 100)
    wait_until(lambda: pools(admin)[0]["pods"][0]["waiting"] >= 7, what="pod saturated")
    r = complete(port, headers=[("x-infergate-criticality", "Sheddable")])
    assert r.status == 429 and r.json()["error"]["code"] == "shed"
    body = json.dumps({"model": "llama3", "prompt": "waiting", "max_tokens": 2})
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
               f"x-gateway-inference-fairness-id: tenant-a\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    wait_until(lambda: pools(admin)[0]["queue"] == 1, what="request queued")
    s.close()
    wait_until(lambda: pools(admin)[0]["queue"] == 0, what="queue emptied by the disconnect")
    wait_until(lambda: complete(port, prompt="later").status == 200, timeout=30, what="served again")


def test_headroom_for_critical(procs, tmp_path, infergate_bin):
    """Once a Critical request was seen, a Standard one does not join a pod's own queue (first come,
    first served there): it waits in our priority queue while every pod has one, and a Sheddable one
    queued before it is shed; Critical goes on.
    (Without Critical traffic nothing is held: tests/unit/test_sched_queue.c.)"""
    eps = start_sim(procs, infergate_bin, 2, "--max-num-seqs", "1")
    port, admin = gateway(procs, tmp_path, eps)
    wait_scraped(admin, 2)
    crit = [("x-infergate-criticality", "Critical")]
    std = [("x-infergate-criticality", "Standard")]
    # Critical traffic around (the window is 10 s)
    r = complete(port, prompt="critical", headers=crit)
    assert r.status == 200, r
    for ep in eps:
        direct_load(ep, 3, 150)
    wait_until(lambda: all(1 <= p["waiting"] < 5 for p in pools(admin)[0]["pods"]), what="queues on both pods")
    result = {}
    shed = [("x-infergate-criticality", "Sheddable")]
    ts = threading.Thread(target=lambda: result.update(s=complete(port, prompt="sheddable", headers=shed)),
                          daemon=True)
    ts.start()
    wait_until(lambda: pools(admin)[0]["queue_by_criticality"]["Sheddable"] == 1, what="sheddable held by us")
    t = threading.Thread(target=lambda: result.update(r=complete(port, prompt="standard", headers=std)),
                         daemon=True)
    t.start()
    wait_until(lambda: pools(admin)[0]["queue_by_criticality"]["Standard"] == 1, what="standard held by us")
    # the queued Sheddable would only wait behind it: shed at once, not after its TTL
    ts.join(30 * SLOW)
    assert not ts.is_alive() and result["s"].status == 429, result
    assert result["s"].json()["error"]["code"] == "shed"
    r = complete(port, prompt="critical again", headers=crit)  # not held: it joins a pod's queue
    assert r.status == 200, r
    t.join(60 * SLOW)
    assert not t.is_alive() and result["r"].status == 200, result


def test_done_counts_until_the_next_scrape(procs, tmp_path, infergate_bin):
    """A request of ours that finished counts as `done` on its pod (its batch slot is free) until the
    next scrape, which shows the pod's own counts again."""
    eps = start_sim(procs, infergate_bin, 1)
    port, admin = gateway(procs, tmp_path, eps, extra_pool="    scrape_interval: 1s")
    wait_scraped(admin, 1)
    pod = lambda: pools(admin)[0]["pods"][0]
    before = pod()
    assert before["done"] == 0
    assert complete(port, prompt="one").status == 200
    after = pod()
    if after["scrapes_ok"] == before["scrapes_ok"]:  # no scrape in between (almost always)
        assert after["done"] == 1 and after["pending"] == 1, after
    wait_until(lambda: pod()["scrapes_ok"] > after["scrapes_ok"], what="next scrape")
    assert pod()["done"] == 0 and pod()["pending"] == 0


def test_prefill_tokens_until_the_first_token(procs, tmp_path, infergate_bin):
    """Our prompt counts as prefill work on its pod (`prefill_tokens`, ~4 body bytes a token) from the
    pick until the pod's first token, and a request whose client leaves before that gives it back."""
    eps = start_sim(procs, infergate_bin, 1, "--time-scale", "0.02")  # a 2,000-token prefill: ~2 s
    port, admin = gateway(procs, tmp_path, eps)
    wait_scraped(admin, 1)
    pod = lambda: pools(admin)[0]["pods"][0]
    s = stream_in_flight(port, prompt="y" * 8000)
    try:
        p = pod()
        assert p["inflight"] == 1 and 2000 <= p["prefill_tokens"] <= 2100, p
        s.settimeout(60 * SLOW)
        got = b""
        while b"data:" not in got:  # the first token
            chunk = s.recv(65536)
            assert chunk, "the stream ended early"
            got += chunk
        wait_until(lambda: pod()["prefill_tokens"] == 0, what="prefill answered")
        assert pod()["inflight"] == 1
    finally:
        s.close()
    wait_until(lambda: pod()["inflight"] == 0, what="request ended")
    t = stream_in_flight(port, prompt="z" * 8000)  # a different prompt: no prefix-cache hit
    p = pod()
    t.close()  # before its first token
    assert p["prefill_tokens"] >= 2000, p
    wait_until(lambda: pod()["inflight"] == 0, what="request ended")
    assert pod()["prefill_tokens"] == 0


def test_sheddable_waits_out_a_short_hold(procs, tmp_path, infergate_bin):
    """A Standard request held only until the next scrape (the pod has a request we sent since, still
    in flight, and Critical traffic is around) is no reason to shed a Sheddable one: it waits behind it and is served.
    Sheddable is shed for requests queued ahead of it only once they have waited 2 scrape intervals
    (test_headroom_for_critical)."""
    eps = start_sim(procs, infergate_bin, 1)
    port, admin = gateway(procs, tmp_path, eps, extra_pool="    scrape_interval: 2s")
    wait_scraped(admin, 1)
    pod = lambda: pools(admin)[0]["pods"][0]
    held = lambda: pools(admin)[0]["queue_by_criticality"]["Standard"] == 1
    crit, result = [("x-infergate-criticality", "Critical")], {}
    ask = lambda k: lambda: result.update({k: complete(port, prompt=k, headers=[("x-infergate-criticality", k)])})
    for attempt in range(3):  # a scrape between the Critical request and the Standard one clears the hold
        wait_no_pending(admin)
        scrapes = pod()["scrapes_ok"]
        # Critical traffic around, and one of ours in flight on the pod (its queue until the next scrape)
        critical = stream_in_flight(port, crit, timeout=60 * SLOW)
        std = threading.Thread(target=ask("Standard"), daemon=True)
        std.start()
        wait_until(lambda: held() or "Standard" in result, what="standard held by us or served")
        if held():
            break
        assert pod()["scrapes_ok"] != scrapes, "standard sent although the pod had a request pending"
        std.join(60 * SLOW)
        result.clear()
        critical.close()
    else:
        pytest.fail("every attempt raced a scrape")
    shed = threading.Thread(target=ask("Sheddable"), daemon=True)
    shed.start()
    for t in (std, shed):
        t.join(60 * SLOW)
    assert all(result[k].status == 200 for k in ("Standard", "Sheddable")), result
    critical.close()


@pytest.mark.parametrize("learned", [False, True])
def test_batch_slots_for_critical(procs, tmp_path, infergate_bin, learned):
    """With the pods' batch size known (batch_slots, or learned from scrapes that show requests waiting
    at the largest running count) and Critical traffic around, a Standard request is held while a pod
    would have fewer than critical_slots free batch slots with it, so a Critical one starts at once;
    the Standard one goes when slots free up. (The queue rule alone would send it: the pod's queue is
    empty.)"""
    eps = start_sim(procs, infergate_bin, 1, "--max-num-seqs", "8")
    sched = "{critical_slots: 2}" if learned else "{batch_slots: 8, critical_slots: 2}"
    port, admin = gateway(procs, tmp_path, eps, extra_pool=f"    scheduling: {sched}")
    wait_scraped(admin, 1)
    pod = lambda: pools(admin)[0]["pods"][0]
    if learned:
        assert pod()["batch_slots"] == 0
        load = direct_load(eps[0], 10, 60)  # 8 running, 2 waiting
        wait_until(lambda: pod()["batch_slots"] == 8, what="batch size learned")
        for t in load:
            t.join(60 * SLOW)
        wait_until(lambda: pod()["running"] == 0, what="pod idle")
    crit = [("x-infergate-criticality", "Critical")]
    r = complete(port, prompt="critical", headers=crit)  # Critical traffic around (the window is 10 s)
    assert r.status == 200, r
    direct_load(eps[0], 6, 300)  # six of the eight slots busy: 6 + 2 kept = 8
    wait_until(lambda: pod()["running"] == 6, what="six running")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=complete(port, prompt="standard",
                                                                 headers=[("x-infergate-criticality", "Standard")])),
                         daemon=True)
    t.start()
    wait_until(lambda: pools(admin)[0]["queue_by_criticality"]["Standard"] == 1, what="standard held by us")
    r = complete(port, prompt="critical again", headers=crit)  # a free slot: not held
    assert r.status == 200, r
    assert pools(admin)[0]["queue_by_criticality"]["Standard"] == 1, "standard sent before the slots freed up"
    t.join(60 * SLOW)
    assert not t.is_alive() and result["r"].status == 200, result
    assert pod()["batch_slots"] == 8


def test_batch_size_not_learned_inside_one_step(procs, tmp_path, infergate_bin):
    """Requests that arrive while a pod runs a long step wait for its end with the running count
    standing still, as at a batch limit. The scrapes inside that step teach no batch size (the pod's
    token counters show that no step ended between them), and the next step takes the requests in."""
    eps = start_sim(procs, infergate_bin, 1, "--time-scale", "0.02")  # a 2,000-token prefill: ~2 s
    port, admin = gateway(procs, tmp_path, eps)
    wait_scraped(admin, 1)
    pod = lambda: pools(admin)[0]["pods"][0]
    long = threading.Thread(target=lambda: complete(eps[0], prompt="y" * 8000), daemon=True)
    long.start()
    wait_until(lambda: pod()["running"] == 1, what="the long prefill running")
    load = direct_load(eps[0], 2, 2)
    wait_until(lambda: pod()["waiting"] == 2, what="two waiting")
    first, seen = pod(), []
    while len(seen) < 500:  # at most ~10 s: the step lasts ~2 s
        p = pod()
        if p["running"] != 1 or p["waiting"] != 2:
            break
        seen.append((p["scrapes_ok"], p["batch_slots"]))
        time.sleep(0.02)
    # enough scrapes saw the same batch with requests waiting to have taught a limit without the check
    assert seen and seen[-1][0] >= first["scrapes_ok"] + 3, (first, seen[-3:])
    assert all(slots == 0 for _, slots in seen), seen
    for t in [long, *load]:
        t.join(60 * SLOW)
    assert pod()["batch_slots"] == 0


def test_scheduling_thresholds_from_config(procs, tmp_path, infergate_bin):
    """pools[].scheduling reaches the running scheduler: with queue_threshold 2 a pod with three
    waiting requests is saturated, so a Sheddable request is shed (the default 5 would admit it)."""
    eps = start_sim(procs, infergate_bin, 1, "--max-num-seqs", "1")
    port, admin = gateway(procs, tmp_path, eps, extra_pool="    scheduling: {queue_threshold: 2}")
    wait_scraped(admin, 1)
    direct_load(eps[0], 4, 300)  # one running, three waiting
    wait_until(lambda: 3 <= pools(admin)[0]["pods"][0]["waiting"] < 5, what="three waiting")
    r = complete(port, headers=[("x-infergate-criticality", "Sheddable")])
    assert r.status == 429 and r.json()["error"]["code"] == "shed", r

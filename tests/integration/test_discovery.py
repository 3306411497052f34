"""Model discovery (a pool that no model names learns each pod's models and LoRA adapters from its
GET /v1/models), the quick-start flags --engine / --profile / --discovery-interval, and integer
priority (a model's `priority`, InferenceObjective by header): negative is shed under saturation,
positive is served. Assertions are on outcomes (status codes, which pod served, listings)."""
import json
import subprocess
import threading

import backend
from conftest import SLOW, free_port, free_port_range, wait_until
from rawhttp import admin_get, post_json, request, start_gateway


def start_sim(procs, infergate_bin, pods, model, *args, name="sim", time_scale="20"):
    base = free_port_range(pods)
    procs.start(name, [infergate_bin, "sim", "--pods", pods, "--base-port", base, "--model", model,
                       "--time-scale", time_scale, *args], wait_port=[base + i for i in range(pods)])
    return [base + i for i in range(pods)]


def quick_gateway(procs, infergate_bin, eps, *args):
    port, admin = free_port(), free_port()
    procs.start("gateway", [infergate_bin, "serve", "--listen", f"127.0.0.1:{port}", "--admin",
                            f"127.0.0.1:{admin}", "--pool", ",".join(f"127.0.0.1:{p}" for p in eps), *args],
                wait_port=[port, admin])
    return port, admin


def complete(port, model, headers=None, max_tokens=2, prompt="hello"):
    return post_json(port, "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": max_tokens},
                     headers=headers, timeout=60 * SLOW)


def served_port(resp):
    return int(resp.header("x-gateway-destination-endpoint-served").rsplit(":", 1)[1])


def listed(port):
    r = request(port, "GET", "/v1/models")
    if r.status != 200:
        return {}
    body = r.json()
    if body.get("object") != "list":
        return {}
    return {m["id"]: m.get("parent") for m in body["data"]}


def pools(admin):
    status, text = admin_get(admin, "/debug/pools")
    assert status == 200
    return json.loads(text)["pools"]


def test_discovery_routes_by_served_model(procs, infergate_bin):
    llama = start_sim(procs, infergate_bin, 2, "llama3", "--lora", "sql-lora,chat-lora", name="sim-llama")
    qwen = start_sim(procs, infergate_bin, 1, "qwen", name="sim-qwen")
    port, admin = quick_gateway(procs, infergate_bin, llama + qwen, "--discovery-interval", "200ms")
    want = {"llama3": None, "sql-lora": "llama3", "chat-lora": "llama3", "qwen": None}
    wait_until(lambda: listed(port) == want, what="the gateway lists the discovered models")
    # the list is complete as soon as one llama pod answered: wait for every pod's own answer
    wait_until(lambda: all(pod["discovered"] is True for pod in pools(admin)[0]["pods"]),
               what="every pod's model list fetched")
    # each model goes only to the pods that serve it
    for model, allowed in (("llama3", llama), ("sql-lora", llama), ("qwen", qwen)):
        seen = set()
        for i in range(8):
            r = complete(port, model, prompt=f"p{i}")
            assert r.status == 200, r
            assert r.json()["model"] == model
            seen.add(served_port(r))
        assert seen <= set(allowed), (model, seen)
    # a model no pod serves: 404 with the OpenAI error body, never forwarded
    r = complete(port, "mistral")
    assert r.status == 404, r
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and "mistral" in err["message"]
    # the rewrite header is checked against what the pods serve too
    r = complete(port, "llama3", headers=[("x-gateway-model-name-rewrite", "nope")])
    assert r.status == 404, r
    r = complete(port, "anything", headers=[("x-gateway-model-name-rewrite", "qwen")])
    assert r.status == 200 and served_port(r) == qwen[0]


def test_discovery_picks_up_new_adapter(procs, infergate_bin):
    llama = start_sim(procs, infergate_bin, 1, "llama3", name="sim-llama")
    qwen = start_sim(procs, infergate_bin, 1, "qwen", name="sim-qwen")
    port, admin = quick_gateway(procs, infergate_bin, llama + qwen, "--discovery-interval", "200ms")
    wait_until(lambda: set(listed(port)) == {"llama3", "qwen"}, what="models discovered")
    assert complete(port, "qwen-sql").status == 404
    # the qwen pod starts serving an adapter: after a refresh it is listed and routed there
    r = post_json(qwen[0], "/v1/load_lora_adapter", {"lora_name": "qwen-sql", "lora_path": "/adapters/sql"})
    assert r.status == 200, r
    wait_until(lambda: listed(port).get("qwen-sql") == "qwen", what="new adapter discovered")
    for i in range(4):
        r = complete(port, "qwen-sql", prompt=f"q{i}")
        assert r.status == 200, r
        assert served_port(r) == qwen[0]
    # unloaded again: gone after a refresh
    r = post_json(qwen[0], "/v1/unload_lora_adapter", {"lora_name": "qwen-sql"})
    assert r.status == 200, r
    wait_until(lambda: "qwen-sql" not in listed(port), what="adapter removal discovered")
    assert complete(port, "qwen-sql").status == 404


def test_discovery_in_native_yaml_and_unknown_pods(procs, infergate_bin, tmp_path):
    """A YAML pool without models discovers. A pod without /v1/models (a plain HTTP server) stays
    unknown: a model no known pod lists is tried there rather than refused. A pod that is down from
    the start serves nothing."""
    llama = start_sim(procs, infergate_bin, 1, "llama3", name="sim-llama")
    echo = backend.start(procs, ["e1"])["e1"]
    dead = free_port()
    port, admin = free_port(), free_port()
    start_gateway(procs, tmp_path, f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
pools:
  - name: llama
    endpoints: [127.0.0.1:{llama[0]}, 127.0.0.1:{dead}]
    discovery_interval: 100ms
  - name: mixed
    endpoints: [127.0.0.1:{llama[0]}, 127.0.0.1:{echo}]
    discovery_interval: 100ms
routes:
  - name: mixed
    hostnames: [mixed.test]
    backend: mixed
  - name: openai
    backend: llama
""", [port, admin])
    wait_until(lambda: set(listed(port)) == {"llama3"}, what="models discovered")
    wait_until(lambda: all(p.get("discovery_fetches", 0) >= 1 for pool in pools(admin) for p in pool["pods"]),
               what="every pod fetched once")
    assert [p["discovery_down"] for p in pools(admin)[0]["pods"]] == [False, True]
    for i in range(4):
        r = complete(port, "llama3", prompt=f"l{i}")
        assert r.status == 200 and served_port(r) == llama[0], r
    assert complete(port, "other").status == 404  # the dead pod serves nothing

    def mixed(model):
        return post_json(port, "/v1/completions", {"model": model, "prompt": "x", "max_tokens": 2},
                         host="mixed.test", timeout=60 * SLOW)
    for i in range(4):
        r = mixed("llama3")
        assert r.status == 200 and served_port(r) == llama[0], r
        r = mixed("other")  # only the unknown pod may serve it: the echo server answers
        assert r.status == 200 and r.json()["echo"]["backend"] == "e1", r


def test_engine_and_profile_flags(procs, infergate_bin):
    eps = start_sim(procs, infergate_bin, 2, "llama3", "--engine", "sglang")
    port, admin = quick_gateway(procs, infergate_bin, eps, "--engine", "sglang", "--profile", "round-robin",
                                "--model", "llama3", "--model", "alias", "--batch-slots", "32",
                                "--scrape-interval", "400ms")
    wait_until(lambda: all(p["has_metrics"] for p in pools(admin)[0]["pods"]), what="sglang metrics scraped")
    p = pools(admin)[0]
    assert p["engine"] == "sglang" and p["scheduler"] == "round-robin" and p["batch_slots"] == 32
    assert p["scrape_interval_ms"] == 400
    first = {q["endpoint"]: q["scrapes_ok"] for q in p["pods"]}
    threading.Event().wait(1.0)  # 2 or 3 scrapes at 400 ms (20 at the default 50 ms)
    for q in pools(admin)[0]["pods"]:
        assert q["scrapes_ok"] - first[q["endpoint"]] <= 4, q
    served = [served_port(complete(port, "llama3", prompt=f"r{i}")) for i in range(6)]
    assert sorted(served) == sorted(eps * 3), served  # round-robin: an even split
    assert set(listed(port)) == {"llama3", "alias"}
    assert complete(port, "qwen").status == 404
    for args, msg in ((["--profile", "fastest"], "unknown scheduler profile 'fastest'"),
                      (["--engine", "tgi"], "unknown engine 'tgi'"),
                      (["--batch-slots", "0"], "'batch_slots' in pool scheduling is out of range"),
                      (["--scrape-interval", "2h"], "'scrape_interval' in pool is out of range")):
        r = subprocess.run([infergate_bin, "serve", "--listen", "127.0.0.1:1", "--pool", "127.0.0.1:2", *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
    r = subprocess.run([infergate_bin, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert all(f in r.stdout for f in ("--engine", "--profile", "--discovery-interval", "--batch-slots",
                                       "--scrape-interval"))
    r = subprocess.run([infergate_bin, "serve", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                        "--scrape-interval", "1s"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "go with --pool" in r.stderr, r.stderr


PRIORITY_CONFIG = """
listeners:
  - name: web
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
pools:
  - name: llama
    endpoints: [127.0.0.1:{ep}]
models:
  - name: high
    pool: llama
    priority: 1
    targets: [{{name: llama3}}]
  - name: low
    pool: llama
    priority: -1
    targets: [{{name: llama3}}]
  - name: llama3
    pool: llama
objectives:
  - name: batch
    pool: llama
    priority: -3
  - name: premium
    pool: llama
    priority: 5
routes:
  - name: openai
    backend: llama
"""


def test_priority_shed_and_served(procs, infergate_bin, tmp_path):
    # real time: each saturating request lasts ~0.6 s, so the pod stays saturated for seconds
    eps = start_sim(procs, infergate_bin, 1, "llama3", "--max-num-seqs", "1", time_scale="1")
    port, admin = free_port(), free_port()
    start_gateway(procs, tmp_path, PRIORITY_CONFIG.format(port=port, admin=admin, ep=eps[0]), [port, admin])
    wait_until(lambda: pools(admin)[0]["pods"][0]["has_metrics"], what="pod scraped")
    assert complete(port, "low").status == 200  # not saturated: every priority is served
    # saturate the pod: one running, the rest waiting (each request lasts a while)
    for i in range(10):
        threading.Thread(target=lambda i=i: post_json(eps[0], "/v1/completions",
                                                      {"model": "llama3", "prompt": f"direct {i}",
                                                       "max_tokens": 100}, timeout=60 * SLOW),
                         daemon=True).start()
    wait_until(lambda: pools(admin)[0]["pods"][0]["waiting"] >= 7, what="pod saturated")
    # negative priority: shed with 429 at once
    r = complete(port, "low")
    assert r.status == 429, r
    assert r.header("retry-after") == "1" and r.json()["error"]["code"] == "shed"
    # an InferenceObjective with a negative priority, by header: shed too
    r = complete(port, "llama3", headers=[("x-gateway-inference-objective", "batch")])
    assert r.status == 429, r
    # positive priority (model, and objective by header): queued until the pod has room, then served
    results = {}
    threads = [threading.Thread(target=lambda k=k, m=m, h=h: results.update({k: complete(port, m, headers=h)}),
                                daemon=True)
               for k, m, h in (("high", "high", None),
                               ("premium", "llama3", [("x-gateway-inference-objective", "premium")]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90 * SLOW)
        assert not t.is_alive()
    assert results["high"].status == 200, results["high"]
    assert results["premium"].status == 200, results["premium"]

"""Inference pools and models against `infergate sim` (issue #5): the response header naming the endpoint
that served, the x-gateway-model-name-rewrite request header, GET /v1/models answered by the gateway,
and the weighted split of an InferenceModel's targets over many requests. Assertions are on outcomes
(headers, bodies, counts), never on timings: CI runs this on two busy cores and under ASan."""
import json
import threading

import requests

from conftest import SLOW, free_port, free_port_range, wait_until
from rawhttp import Conn, admin_get, build, metric, post_json, request, sse_events, start_gateway

SERVED = "x-gateway-destination-endpoint-served"


def start_sim(procs, infergate_bin, pods, *args):
    base = free_port_range(pods)
    procs.start("sim", [infergate_bin, "sim", "--pods", pods, "--base-port", base, "--model", "llama3",
                        "--time-scale", "50", *args], wait_port=[base + i for i in range(pods)])
    return [base + i for i in range(pods)]


def gateway(procs, tmp_path, eps, models, plain=None):
    """A gateway with pool `llama` over eps (route /v1) and, with plain, a plain backend on /plain."""
    port, admin = free_port(), free_port()
    ep_list = ", ".join(f"127.0.0.1:{p}" for p in eps)
    backends = routes = ""
    if plain:
        backends = f"backends:\n  - name: plain\n    endpoints: [127.0.0.1:{plain}]\n"
        routes = "  - name: plain\n    matches: [{path: /plain}]\n    backend: plain\n"
    text = f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
pools:
  - name: llama
    endpoints: [{ep_list}]
{backends}
{models}
routes:
{routes}  - name: openai
    matches: [{{path: /v1}}]
    backend: llama
"""
    start_gateway(procs, tmp_path, text, [port, admin])
    return port, admin


MODELS = """models:
  - name: llama3
    pool: llama
  - name: chat
    pool: llama
    targets: [{name: sql, weight: 1}]
"""


def complete(port, model, headers=None, stream=False, max_tokens=2):
    body = {"model": model, "prompt": "hello", "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    return post_json(port, "/v1/completions", body, headers=headers, timeout=30 * SLOW)


def test_served_endpoint_header(procs, infergate_bin, tmp_path):
    eps = start_sim(procs, infergate_bin, 3)
    port, _ = gateway(procs, tmp_path, eps, MODELS)
    seen = set()
    for i in range(12):
        r = complete(port, "llama3")
        assert r.status == 200, r
        pod = int(r.json()["id"].split("-")[1])  # sim ids are cmpl-POD-SEQ
        assert r.header(SERVED) == f"127.0.0.1:{eps[pod]}", r
        seen.add(pod)
    assert seen  # at least one pod served; which ones is the scheduler's business
    # streamed responses carry it too, once
    r = complete(port, "llama3", stream=True)
    assert r.status == 200 and r.chunked
    assert [k for k, _ in r.headers if k.lower() == SERVED] == [SERVED]
    assert r.header(SERVED) in {f"127.0.0.1:{p}" for p in eps}
    assert sse_events(r.body)[-1] == "[DONE]"
    # answers made by the gateway itself name no endpoint
    r = complete(port, "no-such-model")
    assert r.status == 404 and r.header(SERVED) is None


def test_served_header_only_for_pools(procs, infergate_bin, tmp_path):
    eps = start_sim(procs, infergate_bin, 2)
    # the second sim pod doubles as a plain backend: same server, no pool
    port, _ = gateway(procs, tmp_path, eps[:1], MODELS, plain=eps[1])
    r = request(port, "GET", "/plain")
    assert r is not None and r.header(SERVED) is None, r
    r = complete(port, "llama3")
    assert r.status == 200 and r.header(SERVED) == f"127.0.0.1:{eps[0]}"


def test_model_name_rewrite_header(procs, infergate_bin, tmp_path):
    eps = start_sim(procs, infergate_bin, 2, "--lora", "sql,chatlora")
    port, _ = gateway(procs, tmp_path, eps, MODELS)
    # without the header, the weighted target
    r = complete(port, "chat")
    assert r.status == 200 and r.json()["model"] == "sql", r
    # with it, the named model, whatever the split says
    hdr = [("x-gateway-model-name-rewrite", "chatlora")]
    for _ in range(4):
        r = complete(port, "chat", headers=hdr)
        assert r.status == 200 and r.json()["model"] == "chatlora", r
    r = complete(port, "llama3", headers=[("X-Gateway-Model-Name-Rewrite", "sql")], stream=True)
    assert r.status == 200 and json.loads(sse_events(r.body)[0])["model"] == "sql"
    # the client-facing model must still exist
    r = complete(port, "nope", headers=hdr)
    assert r.status == 404 and r.json()["error"]["code"] == "model_not_found"
    # a rewrite to a name the server does not know: the server's own 404 comes back
    r = complete(port, "chat", headers=[("x-gateway-model-name-rewrite", "unknown-adapter")])
    assert r.status == 404, r
    # an empty or oversized header is a clear 400, and the connection stays usable
    with Conn(port, timeout=30 * SLOW) as c:
        body = json.dumps({"model": "chat", "prompt": "x", "max_tokens": 1})
        for bad in ("", "m" * 300):
            c.send(build("POST", "/v1/completions", [("Content-Type", "application/json"),
                                                      ("x-gateway-model-name-rewrite", bad)], body))
            r = c.read_response()
            assert r.status == 400 and r.json()["error"]["code"] == "invalid_model", r
        c.send(build("POST", "/v1/completions", [("Content-Type", "application/json")], body))
        r = c.read_response()
        assert r.status == 200 and r.json()["model"] == "sql"


def test_models_list_answered_locally(procs, infergate_bin, tmp_path):
    eps = start_sim(procs, infergate_bin, 1)
    port, _ = gateway(procs, tmp_path, eps, MODELS)
    for path in ("/v1/models", "/v1/models?limit=5"):
        r = request(port, "GET", path)
        assert r.status == 200 and r.header("content-type").startswith("application/json"), r
        assert r.header(SERVED) is None  # no endpoint involved
        doc = r.json()
        assert doc["object"] == "list"
        assert [m["id"] for m in doc["data"]] == ["llama3", "chat"]
        for m in doc["data"]:
            assert m["object"] == "model" and m["owned_by"] == "infergate"
            assert isinstance(m["created"], int) and m["created"] > 1_600_000_000
    r = request(port, "HEAD", "/v1/models")
    assert r.status == 200 and r.body == b""
    # other paths under /v1/models still go to the server
    r = request(port, "GET", "/v1/models/llama3")
    assert r.header(SERVED) == f"127.0.0.1:{eps[0]}", r


def test_models_list_pool_without_models_is_discovered(procs, infergate_bin, tmp_path):
    """No InferenceModel: the pods' own lists (model discovery, test_discovery.py), answered by the
    gateway once discovered (before that, the request is proxied to a pod)."""
    eps = start_sim(procs, infergate_bin, 1, "--lora", "sql")
    port, _ = gateway(procs, tmp_path, eps, "")
    r = request(port, "GET", "/v1/models")
    assert r.status == 200, r
    assert {"llama3", "sql"} <= {m["id"] for m in r.json()["data"]}
    wait_until(lambda: request(port, "GET", "/v1/models").header(SERVED) is None, what="models discovered")
    data = request(port, "GET", "/v1/models").json()["data"]
    assert {m["id"]: m["parent"] for m in data} == {"llama3": None, "sql": "llama3"}


def test_weighted_split_80_20(procs, infergate_bin, tmp_path):
    eps = start_sim(procs, infergate_bin, 2, "--lora", "lora-a,lora-b", "--time-scale", "1000")
    models = """models:
  - name: m
    pool: llama
    targets: [{name: lora-a, weight: 80}, {name: lora-b, weight: 20}]
"""
    port, admin = gateway(procs, tmp_path, eps, models)
    total, threads = 2000, 4
    counts, errors = {}, []
    lock = threading.Lock()

    def worker(n):
        mine = {}
        try:
            with requests.Session() as s:
                for _ in range(n):
                    r = s.post(f"http://127.0.0.1:{port}/v1/completions",
                               json={"model": "m", "prompt": "hi", "max_tokens": 1}, timeout=60 * SLOW)
                    if r.status_code != 200:
                        errors.append((r.status_code, r.text[:200]))
                        return
                    model = r.json()["model"]
                    mine[model] = mine.get(model, 0) + 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        with lock:
            for k, v in mine.items():
                counts[k] = counts.get(k, 0) + v

    ts = [threading.Thread(target=worker, args=(total // threads,), daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300 * SLOW)
    assert not any(t.is_alive() for t in ts), "load threads did not finish"
    assert not errors, errors[:5]
    assert sum(counts.values()) == total and set(counts) == {"lora-a", "lora-b"}, counts
    share = counts["lora-a"] / total
    assert 0.75 <= share <= 0.85, counts
    # our /metrics agrees with what the servers answered
    status, text = admin_get(admin, "/metrics")
    assert status == 200
    for target, n in counts.items():
        series = f'inference_objective_request_total{{model_name="m",target_model_name="{target}"}}'
        assert metric(text, series) == n, (series, n)

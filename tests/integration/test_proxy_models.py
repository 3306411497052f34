"""Model-aware routing for inference pools: the body's `model` picks an InferenceModel, a weighted
target is chosen and written into the forwarded body; unknown or missing models get OpenAI errors."""
import json

import backend
from conftest import free_port
from rawhttp import Conn, build, post_json, request, sse_events, start_gateway


def pool_config(port, endpoints, extra=""):
    eps = ", ".join(f"127.0.0.1:{p}" for p in endpoints)
    return f"""
listeners:
  - name: web
    address: 127.0.0.1:{port}
pools:
  - name: llama
    endpoints: [{eps}]
models:
  - name: llama3
    pool: llama
    criticality: Critical
    targets: [{{name: llama3-lora-a, weight: 80}}, {{name: llama3-lora-b, weight: 20}}]
  - name: base
    pool: llama
routes:
  - name: openai
    matches: [{{path: /v1}}]
    backend: llama
{extra}
"""


def test_unknown_model_404(procs, tmp_path):
    bp = backend.start(procs, ["p1"])
    port = free_port()
    start_gateway(procs, tmp_path, pool_config(port, [bp["p1"]]), [port])
    r = post_json(port, "/v1/completions", {"model": "nope", "prompt": "hi"})
    assert r.status == 404
    err = r.json()["error"]
    assert err["message"] == "The model `nope` does not exist."
    assert err["code"] == "model_not_found"
    assert err["type"] == "invalid_request_error"
    assert "param" in err


def test_missing_model_400_and_bad_json_400(procs, tmp_path):
    bp = backend.start(procs, ["p1"])
    port = free_port()
    start_gateway(procs, tmp_path, pool_config(port, [bp["p1"]]), [port])
    with Conn(port) as c:
        c.send(build("POST", "/v1/completions", [("Content-Type", "application/json")], '{"prompt": "hi"}'))
        r = c.read_response()
        assert r.status == 400 and r.json()["error"]["message"]
        c.send(build("POST", "/v1/completions", [("Content-Type", "application/json")], '{"model": "base",'))
        r = c.read_response()
        assert r.status == 400 and r.json()["error"]["code"]
        # the connection is still usable after these errors
        c.send(build("GET", "/v1/models"))
        assert c.read_response().status == 200


def test_weighted_targets_rewrite_model(procs, tmp_path):
    bp = backend.start(procs, ["p1", "p2"])
    port = free_port()
    start_gateway(procs, tmp_path, pool_config(port, bp.values()), [port], env={"INFERGATE_SEED": "7"})
    counts = {}
    for i in range(60):
        r = post_json(port, "/v1/completions", {"model": "llama3", "prompt": f"p{i}", "max_tokens": 3})
        assert r.status == 200, r
        body = r.json()
        seen = body["model"]
        counts[seen] = counts.get(seen, 0) + 1
        echoed = json.loads(body["echo"]["body"])
        assert echoed["model"] == seen and echoed["prompt"] == f"p{i}" and echoed["max_tokens"] == 3
        assert body["echo"]["headers"]["content-length"] == str(len(body["echo"]["body"].encode()))
    assert set(counts) == {"llama3-lora-a", "llama3-lora-b"}, counts
    assert counts["llama3-lora-a"] > counts["llama3-lora-b"], counts
    # a model without targets passes unchanged
    r = post_json(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "model": "base"})
    assert r.status == 200 and r.json()["model"] == "base"


def test_streaming_through_pool(procs, tmp_path):
    bp = backend.start(procs, ["p1"])
    port = free_port()
    start_gateway(procs, tmp_path, pool_config(port, [bp["p1"]]), [port])
    r = post_json(port, "/v1/completions", {"model": "llama3", "prompt": "x", "stream": True, "max_tokens": 4})
    assert r.status == 200 and r.chunked
    events = sse_events(r.body)
    assert events[-1] == "[DONE]" and len(events) == 5
    assert json.loads(events[0])["model"] in ("llama3-lora-a", "llama3-lora-b")


def test_default_model(procs, tmp_path):
    bp = backend.start(procs, ["p1"])
    port = free_port()
    start_gateway(procs, tmp_path, pool_config(port, [bp["p1"]], "default_model: base"), [port])
    r = post_json(port, "/v1/completions", {"prompt": "no model here"})
    assert r.status == 200
    echoed = json.loads(r.json()["echo"]["body"])
    assert echoed["model"] == "base" and echoed["prompt"] == "no model here"


def test_pool_without_models_passes_through(procs, infergate_bin):
    bp = backend.start(procs, ["p1"])
    port = free_port()
    procs.start("gateway", [infergate_bin, "serve", "--listen", f"127.0.0.1:{port}", "--pool",
                            f"127.0.0.1:{bp['p1']}"], wait_port=port)
    r = post_json(port, "/v1/completions", {"model": "anything", "prompt": "x"})
    assert r.status == 200 and r.json()["model"] == "anything"
    assert request(port, "GET", "/v1/models").status == 200


def test_quick_start_pool_with_models(procs, infergate_bin):
    bp = backend.start(procs, ["p1"])
    port = free_port()
    procs.start("gateway", [infergate_bin, "serve", "--listen", f"127.0.0.1:{port}", "--pool",
                            f"127.0.0.1:{bp['p1']}", "--model", "m1", "--model", "m2"], wait_port=port)
    assert post_json(port, "/v1/completions", {"model": "m2", "prompt": "x"}).status == 200
    r = post_json(port, "/v1/completions", {"model": "m3", "prompt": "x"})
    assert r.status == 404 and r.json()["error"]["code"] == "model_not_found"

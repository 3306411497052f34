"""Circuit breaker per endpoint and the per-endpoint stream cap (issue #9), over in-process upstreams
(tests/integration/upstreamsrv.py) whose answers a test changes while the gateway runs."""
import json
import threading
import time

import pytest

from conftest import SLOW, free_port, wait_until
from rawhttp import admin_get, metric, request, start_gateway
import upstreamsrv


@pytest.fixture
def servers():
    s = upstreamsrv.Servers()
    yield s
    s.stop()


def gw_yaml(port, admin, kind, eps, extra, policy="round-robin"):
    pol = f"    policy: {policy}\n" if kind == "backends" else ""
    return f"""
listeners:
  - name: main
    address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
{kind}:
  - name: b
    endpoints: [{", ".join(f"127.0.0.1:{p}" for p in eps)}]
{pol}{extra}
routes:
  - name: all
    backend: b
"""


BREAKER = """    circuit_breaker:
      consecutive_failures: 2
      base_ejection_time: {base}ms
      max_ejection_time: 60s
"""


def start(procs, tmp_path, kind, eps, extra, **kw):
    port, admin = free_port(), free_port()
    gw, _ = start_gateway(procs, tmp_path, gw_yaml(port, admin, kind, eps, extra, **kw), [port, admin])
    return gw, port, admin


def completion(port, model="m", stream=False, timeout=30):
    body = json.dumps({"model": model, "prompt": "hi", "stream": stream}).encode()
    return request(port, "POST", "/v1/completions", [("Content-Type", "application/json")], body, timeout=timeout)


def test_failing_backend_is_ejected_then_recovers(procs, tmp_path, servers):
    bad, good = servers.start("bad"), servers.start("good")
    bad.state.status = 500
    base = int(1500 * SLOW)
    gw, port, admin = start(procs, tmp_path, "backends", [bad.port, good.port], BREAKER.format(base=base))
    statuses = [request(port, "GET", "/").status for _ in range(4)]
    assert statuses.count(500) == 2  # round-robin: bad answered twice, then it was ejected
    for _ in range(10):
        r = request(port, "GET", "/")
        assert r.status == 200 and r.header("x-backend") == "good"
    assert bad.state.requests == 2
    _, text = admin_get(admin, "/metrics")
    ep = f"127.0.0.1:{bad.port}"
    assert metric(text, f'infergate_endpoint_ejections_total{{endpoint="{ep}"}}') == 1
    assert metric(text, f'infergate_endpoint_ejected{{endpoint="{ep}"}}') == 1
    assert "ejected" in gw.log()
    # the endpoint heals; after the ejection time one trial request closes the breaker again
    bad.state.status = 200
    time.sleep(base / 1000 + 0.2)
    wait_until(lambda: request(port, "GET", "/").header("x-backend") == "bad", timeout=10 * SLOW,
               what="trial request to the recovered endpoint")
    backends = [request(port, "GET", "/").header("x-backend") for _ in range(6)]
    assert backends.count("bad") == 3 and backends.count("good") == 3
    _, text = admin_get(admin, "/metrics")
    assert metric(text, f'infergate_endpoint_ejected{{endpoint="{ep}"}}') == 0


def test_failed_trial_ejects_again(procs, tmp_path, servers):
    bad, good = servers.start("bad"), servers.start("good")
    bad.state.status = 503
    base = int(800 * SLOW)
    gw, port, admin = start(procs, tmp_path, "backends", [bad.port, good.port], BREAKER.format(base=base))
    for _ in range(4):
        request(port, "GET", "/")
    assert bad.state.requests == 2
    time.sleep(base / 1000 + 0.2)
    wait_until(lambda: bad.state.requests == 3 or request(port, "GET", "/").status == 0, timeout=10 * SLOW,
               what="half-open trial")
    # the trial failed: ejected again (for twice as long), traffic stays on the good endpoint
    for _ in range(6):
        assert request(port, "GET", "/").header("x-backend") == "good"
    assert bad.state.requests == 3
    _, text = admin_get(admin, "/metrics")
    assert metric(text, f'infergate_endpoint_ejections_total{{endpoint="127.0.0.1:{bad.port}"}}') == 2


def test_connect_failures_eject(procs, tmp_path, servers):
    good = servers.start("good")
    dead = free_port()  # nothing listens here
    gw, port, admin = start(procs, tmp_path, "backends", [dead, good.port], BREAKER.format(base=60000))
    for _ in range(8):
        r = request(port, "GET", "/")
        assert r.status == 200 and r.header("x-backend") == "good"  # retried on the other endpoint
    _, text = admin_get(admin, "/metrics")
    assert metric(text, f'infergate_endpoint_ejected{{endpoint="127.0.0.1:{dead}"}}') == 1


def test_all_ejected_is_503(procs, tmp_path, servers):
    bad = servers.start("bad")
    bad.state.status = 500
    gw, port, admin = start(procs, tmp_path, "backends", [bad.port], BREAKER.format(base=60000))
    assert [request(port, "GET", "/").status for _ in range(2)] == [500, 500]
    r = request(port, "GET", "/")
    assert r.status == 503 and r.json()["error"]["code"] == "no_healthy_upstream"
    assert bad.state.requests == 2


def test_pool_endpoint_ejected_and_shown_in_debug(procs, tmp_path, servers):
    bad, good = servers.start("bad"), servers.start("good")
    bad.state.status = 500
    gw, port, admin = start(procs, tmp_path, "pools", [bad.port, good.port], BREAKER.format(base=60000))
    for _ in range(12):
        completion(port)
    assert bad.state.requests == 2
    for _ in range(5):
        r = completion(port)
        assert r.status == 200 and r.header("x-backend") == "good"
    _, text = admin_get(admin, "/debug/pools")
    pods = {p["endpoint"]: p for p in json.loads(text)["pools"][0]["pods"]}
    assert pods[f"127.0.0.1:{bad.port}"]["breaker"] == "open"
    assert pods[f"127.0.0.1:{bad.port}"]["ejections"] == 1
    assert pods[f"127.0.0.1:{good.port}"]["breaker"] == "closed"


def test_breaker_disabled(procs, tmp_path, servers):
    bad = servers.start("bad")
    bad.state.status = 500
    gw, port, admin = start(procs, tmp_path, "backends", [bad.port], "    circuit_breaker: {enabled: false}\n")
    assert all(request(port, "GET", "/").status == 500 for _ in range(8))
    assert bad.state.requests == 8


def slow_streams(port, n, results, stream=True):
    def one(i):
        t0 = time.monotonic()
        r = completion(port, stream=stream, timeout=60 * SLOW)
        results[i] = (r.status if r else 0, t0, time.monotonic(), r)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
        time.sleep(0.1 * SLOW)  # in order
    for t in ts:
        t.join(90 * SLOW)


def test_stream_cap_pool_queues(procs, tmp_path, servers):
    pod = servers.start("pod")
    pod.state.events, pod.state.interval = 5, 0.15 * SLOW
    gw, port, admin = start(procs, tmp_path, "pools", [pod.port], "    max_streams_per_endpoint: 1\n")
    results = {}
    slow_streams(port, 2, results)
    assert results[0][0] == 200 and results[1][0] == 200
    assert pod.state.requests == 2 and pod.state.max_active == 1  # the second waited in the queue


def test_stream_cap_backend_503(procs, tmp_path, servers):
    up = servers.start("up")
    up.state.events, up.state.interval = 5, 0.2 * SLOW
    gw, port, admin = start(procs, tmp_path, "backends", [up.port], "    max_streams_per_endpoint: 1\n")
    results = {}
    slow_streams(port, 2, results)
    assert results[0][0] == 200
    r = results[1][3]
    assert results[1][0] == 503 and r.json()["error"]["code"] == "endpoint_capacity"
    assert up.state.requests == 1
    assert request(port, "GET", "/").status == 200  # free again

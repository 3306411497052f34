"""`infergate epp`: Envoy's ext_proc protocol over gRPC, with python grpcio acting as Envoy."""
import json
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests

import eppclient as E
from conftest import SLOW, free_port, free_port_range, wait_until

EPS = ["127.0.0.1:18001", "127.0.0.1:18002", "127.0.0.1:18003"]

CONFIG = """
listeners:
  - name: web
    address: 127.0.0.1:1
pools:
  - name: llama
    endpoints: [{eps}]
  - name: other
    endpoints: [127.0.0.1:18999]
models:
  - name: llama3
    pool: llama
  - name: chat
    pool: llama
    targets: [{{name: lora-a, weight: 1}}]
  - name: batch
    pool: llama
    criticality: Sheddable
  - name: elsewhere
    pool: other
"""


class Epp:
    def __init__(self, proc, grpc_port, health_port, metrics_port):
        self.proc, self.grpc, self.health, self.metrics = proc, grpc_port, health_port, metrics_port
        self.channel = E.channel(grpc_port)

    def stream(self):
        return E.Stream(self.channel, timeout=15 * SLOW)

    def metrics_text(self):
        return requests.get(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5 * SLOW).text

    def close(self):
        self.channel.close()


def start_epp(procs, infergate_bin, args):
    g, h, m = free_port(), free_port(), free_port()
    proc = procs.start("epp", [infergate_bin, "epp", "--grpc", f"127.0.0.1:{g}", "--health", f"127.0.0.1:{h}",
                               "--metrics", f"127.0.0.1:{m}"] + args, wait_port=[g, h, m])
    return Epp(proc, g, h, m)


@pytest.fixture
def epp(procs, infergate_bin):
    e = start_epp(procs, infergate_bin, ["--endpoints", ",".join(EPS), "--model", "llama3"])
    yield e
    e.close()


@pytest.fixture
def epp_cfg(procs, infergate_bin, tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(eps=", ".join(EPS)))
    e = start_epp(procs, infergate_bin, ["-c", str(path), "--pool", "llama", "--shed-inflight", "1"])
    yield e
    e.close()


def body_of(model="llama3", prompt="hello"):
    return json.dumps({"model": model, "prompt": prompt, "max_tokens": 4}).encode()


def streamed_body(resps):
    """Concatenates the streamed_response chunks; checks sizes and that only the last ends the stream."""
    out = b""
    for i, r in enumerate(resps):
        assert r["kind"] == "request_body"
        chunk, eos = r["streamed"]
        assert len(chunk) <= 62000
        assert eos == (i == len(resps) - 1)
        out += chunk
    return out


def test_health_check_serving(epp):
    assert E.health_check(epp.health) == 1
    assert E.health_check(epp.health, "envoy.service.ext_proc.v3.ExternalProcessor") == 1
    assert E.health_check(epp.grpc) == 1  # also answered on the ext_proc port
    with pytest.raises(grpc.RpcError) as ei:
        E.health_check(epp.health, "no.such.Service")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    # Watch sends the current status and keeps the stream open
    with E.channel(epp.health) as ch:
        fn = ch.unary_stream(E.HEALTH_WATCH, request_serializer=lambda x: x, response_deserializer=lambda x: x)
        call = fn(b"", timeout=10 * SLOW)
        assert E.first(E.decode(next(call)), 1) == 1
        call.cancel()
    # ext_proc is not served on the health port
    with E.channel(epp.health) as ch:
        s = E.Stream(ch, timeout=5 * SLOW)
        s.send(E.request_headers(E.post_headers(), eos=True))
        with pytest.raises(grpc.RpcError) as ei:
            s.recv()
        assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_headers_only_request(epp):
    s = epp.stream()
    [r] = s.exchange(E.request_headers([(":method", "GET"), (":path", "/v1/models")], eos=True))
    assert r["kind"] == "request_headers"
    dest = r["set_headers"]["x-gateway-destination-endpoint"]
    assert dest in EPS
    meta = r["metadata"]["envoy.lb"]["x-gateway-destination-endpoint"].split(",")
    assert meta[0] == dest and sorted(meta) == sorted(EPS)
    [r] = s.exchange(E.response_headers([(":status", "200")], eos=True))
    assert r["kind"] == "response_headers"
    assert r["set_headers"]["x-gateway-destination-endpoint-served"] == dest
    s.close()


def test_buffered_body(epp):
    s = epp.stream()
    [r] = s.exchange(E.request_headers(E.post_headers(), protocol_config=(E.BUFFERED, E.NONE)))
    assert r["kind"] == "request_headers" and not r["set_headers"]  # CONTINUE at once
    [r] = s.exchange(E.request_body(body_of(), eos=True))
    assert r["kind"] == "request_body"
    assert r["set_headers"]["x-gateway-destination-endpoint"] in EPS
    assert r["metadata"]["envoy.lb"]["x-gateway-destination-endpoint"].startswith(
        r["set_headers"]["x-gateway-destination-endpoint"])
    assert r["body"] is None  # model unchanged: no body mutation
    s.close()


def test_streamed_body_in_chunks(epp):
    body = json.dumps({"model": "llama3", "prompt": "x" * 150000}).encode()
    s = epp.stream()
    s.send(E.request_headers(E.post_headers(), protocol_config=(E.FULL_DUPLEX_STREAMED, E.FULL_DUPLEX_STREAMED)))
    cuts = [0, 10, 70000, 140000, len(body)]
    for i in range(4):
        s.send(E.request_body(body[cuts[i]:cuts[i + 1]], eos=(i == 3)))
    first = s.recv()
    assert first["kind"] == "request_headers"
    dest = first["set_headers"]["x-gateway-destination-endpoint"]
    assert dest in EPS
    assert first["metadata"]["envoy.lb"]["x-gateway-destination-endpoint"].split(",")[0] == dest
    chunks = [s.recv() for _ in range(3)]  # ceil(150k / 62000)
    assert streamed_body(chunks) == body
    [r] = s.exchange(E.response_headers([(":status", "200")]))
    assert r["set_headers"]["x-gateway-destination-endpoint-served"] == dest
    [r] = s.exchange(E.response_body(b"data: [DONE]\n\n", eos=True))
    assert r["streamed"] == (b"data: [DONE]\n\n", True)
    s.close()


def test_default_mode_is_full_duplex(epp):
    """Without protocol_config the GIE setup (FULL_DUPLEX_STREAMED) is assumed."""
    s = epp.stream()
    s.send(E.request_headers(E.post_headers()))
    s.send(E.request_body(body_of()[:5]))
    s.send(E.request_body(body_of()[5:], eos=True))
    rs = [s.recv(), s.recv()]
    assert rs[0]["kind"] == "request_headers" and rs[0]["set_headers"]["x-gateway-destination-endpoint"] in EPS
    assert streamed_body(rs[1:]) == body_of()
    s.close()


def test_model_rewrite_buffered_and_streamed(epp_cfg):
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()
    want = json.dumps({"model": "lora-a", "messages": [{"role": "user", "content": "hi"}]}).encode()
    # buffered: BodyMutation.body
    s = epp_cfg.stream()
    s.exchange(E.request_headers(E.post_headers(), protocol_config=(E.BUFFERED, E.NONE)))
    [r] = s.exchange(E.request_body(body, eos=True))
    assert r["body"] == want
    assert r["set_headers"]["content-length"] == str(len(want))
    assert r["set_headers"]["x-gateway-destination-endpoint"] in EPS
    s.close()
    # full duplex: streamed chunks carry the rewritten body
    s = epp_cfg.stream()
    s.send(E.request_headers(E.post_headers(), protocol_config=(E.FULL_DUPLEX_STREAMED, E.NONE)))
    s.send(E.request_body(body[:7]))
    s.send(E.request_body(body[7:], eos=True))
    h = s.recv()
    assert "content-length" not in h["set_headers"]  # Envoy drops it in full-duplex mode
    assert streamed_body([s.recv()]) == want
    s.close()
    text = epp_cfg.metrics_text()
    assert 'inference_objective_request_total{model_name="chat",target_model_name="lora-a"} 2' in text


def test_unknown_model_404(epp_cfg):
    for model in ("nope", "elsewhere"):
        s = epp_cfg.stream()
        s.send(E.request_headers(E.post_headers()))
        [r] = s.exchange(E.request_body(body_of(model), eos=True))
        assert r["kind"] == "immediate_response" and r["status"] == 404
        err = json.loads(r["body"])["error"]
        assert err["message"] == f"The model `{model}` does not exist."
        assert err["code"] == "model_not_found"
        assert r["set_headers"]["content-type"] == "application/json"
        s.close()
    # no model and no default_model -> 400; not JSON -> 400
    for body in (b'{"prompt": "x"}', b"not json"):
        s = epp_cfg.stream()
        s.send(E.request_headers(E.post_headers()))
        [r] = s.exchange(E.request_body(body, eos=True))
        assert r["status"] == 400
        s.close()
    assert 'error_code="404"' in epp_cfg.metrics_text()


def test_shed_sheddable_429(epp_cfg):
    # --shed-inflight 1: hold one pick on every endpoint, then a Sheddable request is shed
    held = []
    for _ in EPS:
        s = epp_cfg.stream()
        [r] = s.exchange(E.request_headers(E.post_headers(), eos=True))
        assert r["kind"] == "request_headers"
        held.append(s)
    s = epp_cfg.stream()
    s.send(E.request_headers(E.post_headers()))
    [r] = s.exchange(E.request_body(body_of("batch"), eos=True))
    assert r["kind"] == "immediate_response" and r["status"] == 429
    assert r["set_headers"]["retry-after"] == "1"
    s.close()
    for h in held:
        h.close()
    # picks are released when the streams end: the Sheddable request goes through again
    wait_until(lambda: "infergate_epp_endpoint_inflight{endpoint=\"127.0.0.1:18001\"} 0" in epp_cfg.metrics_text(),
               what="picks released")
    s = epp_cfg.stream()
    s.send(E.request_headers(E.post_headers()))
    rs = s.exchange(E.request_body(body_of("batch"), eos=True), 2)
    assert rs[0]["kind"] == "request_headers"
    s.close()


def test_subset_hint(epp):
    for _ in range(3):
        s = epp.stream()
        [r] = s.exchange(E.request_headers(E.post_headers(), eos=True, metadata=E.subset_hint([EPS[2]])))
        assert r["set_headers"]["x-gateway-destination-endpoint"] == EPS[2]
        assert r["metadata"]["envoy.lb"]["x-gateway-destination-endpoint"] == EPS[2]
        s.close()
    s = epp.stream()
    [r] = s.exchange(E.request_headers(E.post_headers(), eos=True, metadata=E.subset_hint(["10.1.1.1:80"])))
    assert r["kind"] == "immediate_response" and r["status"] == 503
    s.close()
    # the hint may come with the headers of a streamed request; the pick happens at end of body
    s = epp.stream()
    s.send(E.request_headers(E.post_headers(), metadata=E.subset_hint(EPS[:2])))
    rs = s.exchange(E.request_body(body_of(), eos=True), 2)
    assert rs[0]["set_headers"]["x-gateway-destination-endpoint"] in EPS[:2]
    s.close()


def test_metrics_endpoint(epp):
    s = epp.stream()
    s.exchange(E.request_headers(E.post_headers()), 0)
    s.exchange(E.request_body(body_of(), eos=True), 2)
    s.close()
    r = requests.get(f"http://127.0.0.1:{epp.metrics}/metrics", timeout=5 * SLOW)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'inference_objective_request_total{model_name="llama3",target_model_name="llama3"} 1' in r.text
    assert 'inference_pool_ready_pods{name="default"} 3' in r.text
    assert "infergate_epp_streams_total 1" in r.text
    assert "inference_extension_scheduler_e2e_duration_seconds_count 1" in r.text
    assert requests.get(f"http://127.0.0.1:{epp.metrics}/healthz", timeout=5 * SLOW).status_code == 200
    assert requests.get(f"http://127.0.0.1:{epp.metrics}/nope", timeout=5 * SLOW).status_code == 404


def raw_send(port, data):
    """Sends bytes on a fresh TCP connection and reads until the server closes it (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW) as sk:
        sk.sendall(data)
        got = b""
        try:
            while len(got) < 1 << 20:
                b = sk.recv(65536)
                if not b:
                    break
                got += b
        except OSError:
            pass
        return got


def good_request_works(epp):
    s = epp.stream()
    [r] = s.exchange(E.request_headers(E.post_headers(), eos=True))
    assert r["set_headers"]["x-gateway-destination-endpoint"] in EPS
    s.close()


def test_malformed_input_does_not_kill_server(epp):
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    raw_send(epp.grpc, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    raw_send(epp.grpc, os.urandom(4096))
    # a valid preface, then garbage frames: the server answers GOAWAY and closes
    raw_send(epp.grpc, preface + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + os.urandom(2000))
    # a HEADERS frame with a broken HPACK block
    raw_send(epp.grpc, preface + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + b"\x00\x00\x05\x01\x05\x00\x00\x00\x01"
             + b"\xff\xff\xff\xff\xff")
    assert epp.proc.alive()
    good_request_works(epp)

    fn = epp.channel.stream_stream(E.PROCESS, request_serializer=lambda x: x, response_deserializer=lambda x: x)
    # not a ProcessingRequest -> INTERNAL
    with pytest.raises(grpc.RpcError) as ei:
        list(fn(iter([b"\xff\xff\xff\xff\xff\x0f"]), timeout=10 * SLOW))
    assert ei.value.code() == grpc.StatusCode.INTERNAL
    # a ProcessingRequest with no request -> INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as ei:
        list(fn(iter([b""]), timeout=10 * SLOW))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # compressed messages are refused
    with pytest.raises(grpc.RpcError) as ei:
        list(fn(iter([E.request_headers(E.post_headers(), eos=True) + b"\x00" * 4000]), timeout=10 * SLOW,
                compression=grpc.Compression.Gzip))
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # a message over 4 MiB
    with pytest.raises(grpc.RpcError) as ei:
        list(fn(iter([E.request_body(b"x" * (4 << 20), eos=True)]), timeout=20 * SLOW))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # unknown method
    other = epp.channel.unary_unary("/no.Such/Method", request_serializer=lambda x: x,
                                    response_deserializer=lambda x: x)
    with pytest.raises(grpc.RpcError) as ei:
        other(b"", timeout=10 * SLOW)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # a client that cancels mid-request
    s = epp.stream()
    s.send(E.request_headers(E.post_headers()))
    s.send(E.request_body(b'{"model": "ll'))
    s.cancel()
    assert epp.proc.alive()
    good_request_works(epp)
    assert "infergate_epp_grpc_errors_total" in epp.metrics_text()


def test_many_concurrent_streams(epp):
    n_streams, workers = 200, 16
    counts = {}
    lock = threading.Lock()

    def one(i):
        s = epp.stream()
        s.send(E.request_headers(E.post_headers()))
        s.send(E.request_body(body_of(prompt=f"p{i}"), eos=True))
        h = s.recv()
        assert streamed_body([s.recv()]) == body_of(prompt=f"p{i}")
        dest = h["set_headers"]["x-gateway-destination-endpoint"]
        [r] = s.exchange(E.response_headers([(":status", "200")]))
        assert r["set_headers"]["x-gateway-destination-endpoint-served"] == dest
        s.exchange(E.response_body(b"{}", eos=True))
        s.close()
        with lock:
            counts[dest] = counts.get(dest, 0) + 1

    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, range(n_streams)))
    assert sum(counts.values()) == n_streams
    assert set(counts) == set(EPS)
    # least outstanding spreads the load: every endpoint gets a fair share
    assert min(counts.values()) >= n_streams // 6
    text = wait_until(lambda: (lambda t: t if "infergate_epp_streams_active 0" in t else None)(epp.metrics_text()),
                      what="all streams closed")
    for ep in EPS:
        assert f'infergate_epp_endpoint_inflight{{endpoint="{ep}"}} 0' in text


def test_sigterm_exits_cleanly(procs, epp):
    s = epp.stream()
    s.send(E.request_headers(E.post_headers()))
    assert procs.stop(epp.proc) == 0


# ---------------------------------------------------------------- the gateway's scheduler over sim pods
# The picker scrapes `infergate sim` pods and picks with the same scheduler as `infergate serve`. The
# picks are measured as outcomes (which endpoint the answer names); every wait is bounded and waits on
# the picker's own view of the pods (its /metrics), never on timings.

from rawhttp import metric, post_json  # noqa: E402

SIM_CONFIG = """
listeners:
  - name: web
    address: 127.0.0.1:1
pools:
  - name: llama
    endpoints: [{eps}]
models:
  - name: llama3
    pool: llama
  - name: batch
    pool: llama
    criticality: Sheddable
    targets: [{{name: llama3, weight: 1}}]
"""


def start_sims(procs, infergate_bin, pods, *args):
    base = free_port_range(pods)
    procs.start("sim", [infergate_bin, "sim", "--pods", pods, "--base-port", base, "--model", "llama3",
                        *args], wait_port=[base + i for i in range(pods)])
    return [f"127.0.0.1:{base + i}" for i in range(pods)]


def sim_load(addr, n, max_tokens=200):
    """n long requests straight to one sim pod (bypassing the picker), in background daemon threads."""
    port = int(addr.rsplit(":", 1)[1])

    def one(i):
        try:
            post_json(port, "/v1/completions", {"model": "llama3", "prompt": f"direct {i}", "max_tokens": max_tokens},
                      timeout=120 * SLOW)
        except Exception:  # noqa: BLE001 - the sim is killed at teardown while these still run
            pass

    for i in range(n):
        threading.Thread(target=one, args=(i,), daemon=True).start()


def scraped(e, addr):
    text = e.metrics_text()
    return metric(text, f'infergate_epp_endpoint_scraped{{endpoint="{addr}"}}') == 1, \
        metric(text, f'infergate_epp_endpoint_waiting{{endpoint="{addr}"}}')


def wait_scraped(e, eps):
    wait_until(lambda: all(scraped(e, a)[0] for a in eps), what="pods scraped by the picker")


def scrape_counts(e, eps):
    text = e.metrics_text()
    return [metric(text, f'infergate_epp_endpoint_scrapes_ok{{endpoint="{a}"}}') or 0 for a in eps]


def wait_next_scrape(e, eps):
    """Until every pod was scraped again: the picker's own pending counts (picks the sims never see,
    since nothing forwards them) are reset, as they would be once real requests show up in a scrape."""
    before = scrape_counts(e, eps)
    wait_until(lambda: all(n > b for n, b in zip(scrape_counts(e, eps), before)), what="a new scrape of every pod")


def wait_waiting(e, addr, n):
    wait_until(lambda: (lambda ok, w: ok and w is not None and w >= n)(*scraped(e, addr)),
               timeout=30, what=f"{addr} has {n} waiting")


def pick_open(e, model="llama3", prompt="hello", hint=None):
    """One full-duplex request whose stream stays open (the request is in flight until the caller
    closes it); returns (status, endpoint, stream): status 200 with the picked endpoint."""
    s = e.stream()
    try:
        kw = {"metadata": E.subset_hint(hint)} if hint else {}
        s.send(E.request_headers(E.post_headers(), **kw))
        r = s.exchange(E.request_body(body_of(model, prompt), eos=True), 1)[0]
    except BaseException:
        s.close()
        raise
    if r["kind"] == "immediate_response":
        return r["status"], None, s
    return 200, r["set_headers"]["x-gateway-destination-endpoint"], s


def pick(e, model="llama3", prompt="hello", hint=None):
    """One full-duplex request, ended at once (as if answered in no time); returns (status, endpoint)."""
    status, dest, s = pick_open(e, model, prompt, hint)
    s.close()
    return status, dest


@pytest.fixture
def sim3(procs, infergate_bin):
    return start_sims(procs, infergate_bin, 3, "--max-num-seqs", "1", "--time-scale", "0.5")


def test_sched_saturated_pod_not_picked(procs, infergate_bin, sim3):
    eps = sim3
    e = start_epp(procs, infergate_bin, ["--endpoints", ",".join(eps), "--model", "llama3"])
    wait_scraped(e, eps)
    sim_load(eps[0], 9)  # pod 0: one running, eight waiting, for many seconds
    wait_waiting(e, eps[0], 6)
    counts = {a: 0 for a in eps}
    for i in range(30):
        if i % 5 == 0:
            wait_next_scrape(e, eps)
        status, ep = pick(e, prompt=f"short {i}")
        assert status == 200
        counts[ep] += 1
    assert counts[eps[0]] <= 2, counts
    assert counts[eps[1]] >= 5 and counts[eps[2]] >= 5, counts
    # the subset hint still wins over the scheduler: the saturated pod alone is picked (Standard)
    for _ in range(3):
        assert pick(e, hint=[eps[0]]) == (200, eps[0])
    e.close()


def test_sched_unanswered_prompt_counts_as_queue(procs, infergate_bin):
    """A long prompt the picker sent and whose response has not begun is prefill work ahead on its pod
    (ig_sched_pod_t.prefill): new requests go to the other pod, also after a scrape reset the picker's
    pending counts, until the first response byte comes through the picker."""
    eps = start_sims(procs, infergate_bin, 2)
    e = start_epp(procs, infergate_bin, ["--endpoints", ",".join(eps), "--model", "llama3"])
    wait_scraped(e, eps)
    status, busy, s = pick_open(e, prompt="a long prompt of many words " * 300)  # ~2,100 tokens, unanswered
    assert status == 200
    other = [a for a in eps if a != busy][0]
    try:
        wait_next_scrape(e, eps)  # no pending count left: only the unanswered prompt tells the pods apart
        for i in range(4):
            assert pick(e, prompt=f"short {i}") == (200, other)
        [r] = s.exchange(E.response_headers([(":status", "200")]))
        assert pick(e, prompt="short 5") == (200, other)  # the head is not an answer: no token yet
        status, dest, t = pick_open(e, prompt="a shorter prompt " * 60)  # ~250 tokens, left unanswered
        try:
            assert (status, dest) == (200, other)
            s.exchange(E.response_body(b"data: {}\n\n"))  # busy's first token: its prefill is done
            wait_next_scrape(e, eps)
            assert pick(e, prompt="short 6") == (200, busy)
        finally:
            t.close()
    finally:
        s.close()
    e.close()


def test_sched_prefix_affinity(procs, infergate_bin):
    eps = start_sims(procs, infergate_bin, 3)
    e = start_epp(procs, infergate_bin, ["--endpoints", ",".join(eps), "--model", "llama3"])
    wait_scraped(e, eps)
    system = "You are a helpful assistant that answers questions about the sea. " * 30  # ~2 KB, 32 blocks
    counts = {a: 0 for a in eps}
    for i in range(12):
        wait_next_scrape(e, eps)
        status, ep = pick(e, prompt=system + f"Question {i}: why is the sea salty?")
        assert status == 200
        counts[ep] += 1
    assert max(counts.values()) >= 11, counts
    # the hint restricts the choice even when the cached pod is elsewhere
    hot = max(counts, key=counts.get)
    other = [a for a in eps if a != hot]
    for i in range(3):
        status, ep = pick(e, prompt=system + f"Again {i}", hint=other)
        assert status == 200 and ep in other
    e.close()


def test_sched_sheddable_shed_when_all_saturated(procs, infergate_bin, tmp_path):
    eps = start_sims(procs, infergate_bin, 2, "--max-num-seqs", "1", "--time-scale", "0.5")
    path = tmp_path / "gateway.yaml"
    path.write_text(SIM_CONFIG.format(eps=", ".join(eps)))
    e = start_epp(procs, infergate_bin, ["-c", str(path), "--pool", "llama"])
    wait_scraped(e, eps)
    # not saturated yet: Sheddable goes through
    assert pick(e, model="batch")[0] == 200
    for a in eps:
        sim_load(a, 10)
    for a in eps:
        wait_waiting(e, a, 7)
    status, _ = pick(e, model="batch")
    assert status == 429
    # Critical/Standard on a saturated pool: picked anyway (without --queue-ttl, the picker queues nothing)
    status, ep = pick(e, model="llama3")
    assert status == 200 and ep in eps
    text = e.metrics_text()
    assert metric(text, 'inference_objective_request_error_total{model_name="batch",'
                        'target_model_name="llama3",error_code="429"}') == 1
    e.close()


class Parked:
    """A request whose answers are read in the background (they may be held back). Full duplex by
    default; buffered=True: buffered body modes, the body in one chunk without end of stream, then
    request trailers (the headers are answered at once, the body and the trailers after the pick)."""

    def __init__(self, e, model="llama3", buffered=False):
        self.s = E.Stream(e.channel, timeout=60 * SLOW)
        self.expect = 3 if buffered else 1
        if buffered:
            self.s.send(E.request_headers(E.post_headers(), protocol_config=(E.BUFFERED, E.BUFFERED)))
            self.s.send(E.request_body(body_of(model, "parked"), eos=False))
            self.s.send(E.request_trailers([("x-end", "1")]))
        else:
            self.s.send(E.request_headers(E.post_headers()))
            self.s.send(E.request_body(body_of(model, "parked"), eos=True))
        self.answers = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        try:
            for _ in range(self.expect):
                self.answers.append(self.s.recv())
        except Exception as err:  # noqa: BLE001 - a cancelled call ends the read
            self.answers.append(err)

    def all_answers(self, timeout):
        self.t.join(timeout * SLOW)
        assert len(self.answers) == self.expect, self.answers
        return self.answers

    def answer(self, timeout):
        return self.all_answers(timeout)[0]


def queued(e, crit="Standard"):
    return metric(e.metrics_text(), f'flow_control_queue_size{{name="llama",criticality="{crit}"}}') or 0


def saturate(procs, infergate_bin, tmp_path, ttl_ms, max_tokens):
    """Two one-slot sim pods with long queues, and a picker with flow control that sees them."""
    eps = start_sims(procs, infergate_bin, 2, "--max-num-seqs", "1", "--time-scale", "0.5")
    path = tmp_path / "gateway.yaml"
    path.write_text(SIM_CONFIG.format(eps=", ".join(eps)))
    e = start_epp(procs, infergate_bin, ["-c", str(path), "--pool", "llama", "--queue-ttl", str(ttl_ms)])
    wait_scraped(e, eps)
    for a in eps:
        sim_load(a, 10, max_tokens=max_tokens)
    for a in eps:
        wait_waiting(e, a, 7)
    return e, eps


def test_flow_control_parks_until_a_pod_has_room(procs, infergate_bin, tmp_path):
    # short answers: the pods drain their queues in a few seconds
    e, eps = saturate(procs, infergate_bin, tmp_path, 60000, 24)
    held = Parked(e)
    wait_until(lambda: queued(e) == 1, what="the request parked")
    gone = Parked(e)  # a second one, whose client goes away while it waits
    wait_until(lambda: queued(e) == 2, what="the second request parked")
    buffered = Parked(e, buffered=True)  # buffered modes, with request trailers
    wait_until(lambda: queued(e) == 3, what="the third request parked")
    assert not held.answers and not gone.answers  # the saturated pool answers neither yet
    assert [a["kind"] for a in buffered.answers] == ["request_headers"]  # headers: CONTINUE at once
    gone.s.cancel()
    wait_until(lambda: queued(e) == 2, what="the cancelled request out of the queue")
    # Sheddable is still shed at once, not parked
    assert pick(e, model="batch")[0] == 429
    # once a pod's queue drains below the threshold, the parked requests get their picks, in order
    r = held.answer(30)
    assert not isinstance(r, Exception), r
    assert r["kind"] == "request_headers", r
    assert r["set_headers"]["x-gateway-destination-endpoint"] in eps
    rs = buffered.all_answers(30)
    assert [a["kind"] for a in rs] == ["request_headers", "request_body", "request_trailers"], rs
    assert rs[1]["set_headers"]["x-gateway-destination-endpoint"] in eps
    assert queued(e) == 0
    held.s.close()
    buffered.s.close()
    # the picker still serves
    assert pick(e)[0] == 200
    e.close()


def test_flow_control_ttl_gives_503(procs, infergate_bin, tmp_path):
    # long answers: the pods stay saturated past the TTL
    e, _ = saturate(procs, infergate_bin, tmp_path, 1500, 400)
    held = Parked(e)
    r = held.answer(15)
    assert not isinstance(r, Exception), r
    assert r["kind"] == "immediate_response" and r["status"] == 503, r
    assert b"queue_timeout" in r["body"]
    held.s.close()
    assert queued(e) == 0
    text = e.metrics_text()
    assert metric(text, 'inference_objective_request_error_total{model_name="llama3",'
                        'target_model_name="llama3",error_code="503"}') == 1
    # a request still parked when the picker stops: it exits cleanly (no leak, no late answer)
    Parked(e)
    wait_until(lambda: queued(e) == 1, what="a request parked")
    assert procs.stop(e.proc) == 0
    e.close()


CRIT_CONFIG = SIM_CONFIG + """  - name: crit
    pool: llama
    criticality: Critical
    targets: [{{name: llama3, weight: 1}}]
"""


def test_flow_control_keeps_headroom_for_critical(procs, infergate_bin, tmp_path):
    eps = start_sims(procs, infergate_bin, 2, "--max-num-seqs", "1", "--time-scale", "0.5")
    path = tmp_path / "gateway.yaml"
    path.write_text(CRIT_CONFIG.format(eps=", ".join(eps)))
    e = start_epp(procs, infergate_bin, ["-c", str(path), "--pool", "llama", "--queue-ttl", "60000"])
    wait_scraped(e, eps)
    for a in eps:  # one running and one waiting on each pod: busy, far from saturated (5 waiting)
        sim_load(a, 2, max_tokens=60)
    for a in eps:
        wait_waiting(e, a, 1)
    assert pick(e)[0] == 200  # no Critical request seen yet: Standard takes a queue place
    assert pick(e, model="crit")[0] == 200
    # Critical traffic is around: the pods keep their queues for it, so Standard waits
    held = Parked(e)
    wait_until(lambda: queued(e) == 1, what="Standard parked behind the Critical headroom")
    assert pick(e, model="crit")[0] == 200  # Critical is not held back
    r = held.answer(30)  # the pods' queues empty: Standard goes
    assert not isinstance(r, Exception), r
    assert r["kind"] == "request_headers" and r["set_headers"]["x-gateway-destination-endpoint"] in eps, r
    held.s.close()
    e.close()


def test_flow_control_sheddable_waits_out_a_short_hold(procs, infergate_bin, tmp_path):
    """As in the gateway: a Standard request parked only until the next scrape (the pod has a pick of
    ours pending and Critical traffic is around) is no reason to shed a Sheddable one, which is parked
    behind it and picked; once requests wait longer (two scrape intervals here), Sheddable is shed."""
    eps = start_sims(procs, infergate_bin, 1, "--max-num-seqs", "1")
    path = tmp_path / "gateway.yaml"
    path.write_text(CRIT_CONFIG.format(eps=", ".join(eps)).replace(
        "endpoints: [", "scrape_interval: 1500ms\n    endpoints: ["))
    e = start_epp(procs, infergate_bin, ["-c", str(path), "--pool", "llama", "--queue-ttl", "60000"])
    wait_scraped(e, eps)
    for attempt in range(3):  # a scrape between the Critical pick and the Standard one clears the hold
        wait_next_scrape(e, eps)
        status, _, crit = pick_open(e, model="crit")  # Critical around, in flight on the pod until a scrape
        assert status == 200
        held = Parked(e)
        wait_until(lambda: queued(e) == 1 or held.answers, what="Standard parked or picked")
        if queued(e) == 1:
            break
        held.s.close()
        crit.close()
    else:
        pytest.fail("every attempt raced a scrape")
    shed = Parked(e, model="batch")
    for p in (held, shed):  # the next scrape lets the Standard request go, and then the Sheddable one
        r = p.answer(30)
        assert not isinstance(r, Exception), r
        assert r["kind"] == "request_headers" and r["set_headers"]["x-gateway-destination-endpoint"] == eps[0], r
        p.s.close()
    crit.close()
    # sustained: the pod stays full for Standard (a long queue of its own, Critical around), so once the
    # Standard request has waited two scrape intervals, a Sheddable one behind it is shed
    sim_load(eps[0], 3, max_tokens=4000)  # one running, two waiting
    wait_waiting(e, eps[0], 2)
    assert pick(e, model="crit")[0] == 200
    held = Parked(e)
    wait_until(lambda: queued(e) == 1, what="Standard parked")
    shed = Parked(e, model="batch")
    r = shed.answer(30)
    assert not isinstance(r, Exception), r
    assert r["kind"] == "immediate_response" and r["status"] == 429 and b"request_shed" in r["body"], r
    shed.s.close()
    assert queued(e) == 1 and queued(e, "Sheddable") == 0  # the Standard one still waits
    held.s.cancel()
    e.close()


def test_flow_control_queue_capacity(procs, infergate_bin, tmp_path):
    """scheduling.queue_capacity: the full queue answers a request of the same priority with 429
    queue_full, and a Critical one evicts the parked Standard one (429 queue_full) and takes its place."""
    eps = start_sims(procs, infergate_bin, 2, "--max-num-seqs", "1", "--time-scale", "0.5")
    path = tmp_path / "gateway.yaml"
    path.write_text(CRIT_CONFIG.format(eps=", ".join(eps)).replace(
        "endpoints: [", "scheduling: {queue_capacity: 1}\n    endpoints: ["))
    e = start_epp(procs, infergate_bin, ["-c", str(path), "--pool", "llama", "--queue-ttl", "60000"])
    wait_scraped(e, eps)
    for a in eps:
        sim_load(a, 10, max_tokens=100)  # saturated for a few seconds
    for a in eps:
        wait_waiting(e, a, 7)
    first = Parked(e)
    wait_until(lambda: queued(e) == 1, what="Standard parked")
    status, _ = pick(e)
    assert status == 429
    crit = Parked(e, model="crit")
    r = first.answer(30)
    assert not isinstance(r, Exception), r
    assert r["kind"] == "immediate_response" and r["status"] == 429 and b"queue_full" in r["body"], r
    first.s.close()
    # a reload with a larger capacity while a request is parked: it applies once the queue is empty
    path.write_text(path.read_text().replace("queue_capacity: 1", "queue_capacity: 3"))
    e.proc.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: "changes from 1 to 3 once no request is parked" in e.proc.log(), what="reload seen")
    assert pick(e, model="crit")[0] == 429  # still 1 (Critical cannot evict Critical)
    r = crit.answer(60)  # the pods drain: the Critical request gets its pick
    assert not isinstance(r, Exception), r
    assert r["kind"] == "request_headers" and r["set_headers"]["x-gateway-destination-endpoint"] in eps, r
    crit.s.close()
    for a in eps:  # saturated again: now three can wait
        sim_load(a, 10, max_tokens=100)  # saturated for a few seconds
    for a in eps:
        wait_waiting(e, a, 7)
    parked = [Parked(e) for _ in range(3)]
    wait_until(lambda: queued(e) == 3, what="three parked")
    for p in parked:
        p.s.cancel()
    e.close()


def test_flow_control_ttl_arg(infergate_bin):
    import subprocess
    r = subprocess.run([infergate_bin, "epp", "--endpoints", "127.0.0.1:1", "--queue-ttl", "soon"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "bad --queue-ttl 'soon'" in r.stderr


# Only pools, pods and models: the picker needs no Gateway (unlike `serve --manifests`).
MANIFESTS = """
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {{name: llm, namespace: ml}}
spec:
  selector:
    matchLabels: {{app: sim}}
  targetPorts: [{ports}]
---
apiVersion: v1
kind: Pod
metadata:
  name: sim-0
  namespace: ml
  labels: {{app: sim}}
status:
  phase: Running
  podIP: 127.0.0.1
  conditions: [{{type: Ready, status: "True"}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: not-ready
  namespace: ml
  labels: {{app: sim}}
status:
  phase: Pending
  podIP: 127.0.0.2
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {{name: chat, namespace: ml}}
spec:
  modelName: chat
  poolRef: {{name: llm}}
  targetModels: [{{name: llama3, weight: 1}}]
---
apiVersion: example.com/v1
kind: Unknown
metadata: {{name: x, namespace: ml}}
"""


def test_manifests_pool(procs, infergate_bin, tmp_path):
    eps = start_sims(procs, infergate_bin, 2)
    d = tmp_path / "k8s"
    d.mkdir()
    ports = ", ".join("{number: %s}" % a.rsplit(":", 1)[1] for a in eps)
    (d / "resources.yaml").write_text(MANIFESTS.format(ports=ports))
    e = start_epp(procs, infergate_bin, ["--manifests", str(d), "--pool", "ml/llm"])
    try:
        body = json.dumps({"model": "chat", "prompt": "hi"}).encode()
        want = json.dumps({"model": "llama3", "prompt": "hi"}).encode()
        seen = set()
        for _ in range(4):
            s = e.stream()
            s.send(E.request_headers(E.post_headers(), protocol_config=(E.FULL_DUPLEX_STREAMED, E.NONE)))
            s.send(E.request_body(body, eos=True))
            h = s.recv()
            dest = h["set_headers"]["x-gateway-destination-endpoint"]
            assert dest in eps
            seen.add(dest)
            assert streamed_body([s.recv()]) == want
            s.close()
        assert seen <= set(eps)
        assert pick(e, model="nope")[0] == 404
    finally:
        e.close()
    assert "warning" in e.proc.log() and "Unknown" in e.proc.log()  # manifest notes


def test_manifests_bad_args(infergate_bin, tmp_path):
    import subprocess
    r = subprocess.run([infergate_bin, "epp", "--manifests", str(tmp_path / "none"), "--pool", "x"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 1 and r.stderr
    r = subprocess.run([infergate_bin, "epp", "--manifests", str(tmp_path), "-c", "x.yaml"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 2 and "one of" in r.stderr


def test_large_streamed_body_with_raised_limit(procs, infergate_bin, tmp_path):
    """A 5 MB prompt sent in 64 KiB chunks (as Envoy streams it), limits.max_body_bytes raised to 8 MiB:
    picked, and the rewritten body comes back in chunks of at most 62000 bytes; 9 MB gets 413."""
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(eps=", ".join(EPS)) + "limits:\n  max_body_bytes: 8MiB\n")
    e = start_epp(procs, infergate_bin, ["-c", str(path), "--pool", "llama"])
    try:
        prompt = "lorem ipsum " * (5 * 1000 * 1000 // 12)
        body = json.dumps({"model": "chat", "prompt": prompt, "max_tokens": 4}).encode()
        assert len(body) > 5 * 1000 * 1000
        cuts = list(range(0, len(body), 65536)) + [len(body)]
        s = E.Stream(e.channel, timeout=60 * SLOW)
        s.send(E.request_headers(E.post_headers(), protocol_config=(E.FULL_DUPLEX_STREAMED, E.NONE)))
        for i in range(len(cuts) - 1):
            s.send(E.request_body(body[cuts[i]:cuts[i + 1]], eos=(i == len(cuts) - 2)))
        h = s.recv()
        assert h["kind"] == "request_headers"
        assert h["set_headers"]["x-gateway-destination-endpoint"] in EPS
        chunks = []
        while not chunks or not chunks[-1]["streamed"][1]:
            assert len(chunks) < 200
            chunks.append(s.recv())
        out = json.loads(streamed_body(chunks))
        assert out["model"] == "lora-a" and out["prompt"] == prompt and out["max_tokens"] == 4
        s.close()

        # over the limit: 413 as soon as the total passes 8 MiB, without waiting for the end
        big = b'{"model": "chat", "prompt": "' + b"x" * (9 << 20) + b'"}'
        s = E.Stream(e.channel, timeout=60 * SLOW)
        s.send(E.request_headers(E.post_headers(), protocol_config=(E.FULL_DUPLEX_STREAMED, E.NONE)))
        n = (8 << 20) // 65536 + 1  # the first chunk past the limit; the end of stream is never sent
        for i in range(n):
            s.send(E.request_body(big[i * 65536:(i + 1) * 65536]))
        r = s.recv()
        assert r["kind"] == "immediate_response" and r["status"] == 413
        assert json.loads(r["body"])["error"]["code"] == "request_too_large"
        s.cancel()
        good_request_works(e)
    finally:
        e.close()


def test_model_discovery_without_model(procs, infergate_bin):
    """Quick start without --model: each pod's GET /v1/models is fetched, a model goes only to the pods
    that list it (LoRA adapters included), and a model no pod lists gets 404 once the pods answered."""
    llama = start_sims(procs, infergate_bin, 2, "--lora", "sql-lora")
    qbase = free_port_range(1)
    procs.start("sim-qwen", [infergate_bin, "sim", "--pods", 1, "--base-port", qbase, "--model", "qwen"],
                wait_port=[qbase])
    qwen = [f"127.0.0.1:{qbase}"]
    e = start_epp(procs, infergate_bin, ["--endpoints", ",".join(llama + qwen), "--discovery-interval", "200ms"])
    try:
        wait_until(lambda: pick(e, model="nope")[0] == 404, what="the picker learns the pods' models")
        s = e.stream()
        s.send(E.request_headers(E.post_headers()))
        r = s.exchange(E.request_body(body_of("nope"), eos=True), 1)[0]
        s.close()
        assert r["kind"] == "immediate_response" and r["status"] == 404
        assert "The model `nope` does not exist." in r["body"].decode()
        for model, allowed in (("llama3", llama), ("sql-lora", llama), ("qwen", qwen)):
            seen, open_ = set(), []
            for i in range(6):  # six requests in flight at once
                status, dest, s = pick_open(e, model=model, prompt=f"p{i}")
                open_.append(s)
                assert status == 200 and dest in allowed, (model, status, dest)
                seen.add(dest)
            for s in open_:
                s.close()
            if len(allowed) > 1:
                assert len(seen) > 1, (model, seen)  # still balanced over the pods that serve it
        # a subset hint that leaves no pod serving the model: nothing to pick (503)
        assert pick(e, model="qwen", hint=llama)[0] == 503
    finally:
        e.close()


def test_discovery_interval_args(infergate_bin, tmp_path):
    import subprocess
    r = subprocess.run([infergate_bin, "epp", "--endpoints", "127.0.0.1:1", "--discovery-interval", "soon",
                        "--grpc", "127.0.0.1:0", "--health", "off", "--metrics", "off"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode != 0 and "discovery" in r.stderr
    r = subprocess.run([infergate_bin, "epp", "-c", str(tmp_path / "g.yaml"), "--discovery-interval", "1s"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 2 and "--discovery-interval" in r.stderr
    r = subprocess.run([infergate_bin, "epp", "--endpoints", "127.0.0.1:1", "--scrape-interval", "0",
                        "--grpc", "127.0.0.1:0", "--health", "off", "--metrics", "off"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode != 0 and "'scrape_interval' in pool is out of range" in r.stderr, r.stderr
    r = subprocess.run([infergate_bin, "epp", "-c", str(tmp_path / "g.yaml"), "--scrape-interval", "1s"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 2 and "--scrape-interval" in r.stderr

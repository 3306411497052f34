"""The official OpenAI Node.js client (npm package `openai`, installed by scripts/deps.sh with
`npm ci`) talks to `infergate sim` directly and through `infergate serve` with an inference pool."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import free_port, free_port_range

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "openai_node")


def run_client(base_url, model):
    if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "openai")):
        pytest.fail("node and the openai package are required: run scripts/deps.sh")
    out = subprocess.run(["node", "client.mjs", base_url, model], cwd=NODE_DIR, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def check(seen, model):
    assert model in seen["models"]
    assert seen["chat"]["completion_tokens"] == 5 and seen["chat"]["content"]
    assert seen["stream"]["chunks"] == 6 and seen["stream"]["completion_tokens"] == 6
    assert seen["completion"]["completion_tokens"] == 4 and seen["completion"]["text"]
    assert seen["notFound"]["status"] == 404 and seen["notFound"]["code"] == "model_not_found"


def test_openai_client_against_sim(procs, infergate_bin):
    base = free_port_range(1)
    procs.start("sim", [infergate_bin, "sim", "--pods", "1", "--base-port", base, "--model", "llama3",
                        "--time-scale", "20"], wait_port=base)
    check(run_client(f"http://127.0.0.1:{base}/v1", "llama3"), "llama3")


def test_openai_client_through_gateway(procs, infergate_bin):
    base = free_port_range(2)
    procs.start("sim", [infergate_bin, "sim", "--pods", "2", "--base-port", base, "--model", "llama3",
                        "--time-scale", "20"], wait_port=[base, base + 1])
    gw = free_port()
    procs.start("gateway", [infergate_bin, "serve", "--listen", f"127.0.0.1:{gw}", "--pool",
                            f"127.0.0.1:{base},127.0.0.1:{base + 1}", "--model", "llama3"], wait_port=gw)
    check(run_client(f"http://127.0.0.1:{gw}/v1", "llama3"), "llama3")

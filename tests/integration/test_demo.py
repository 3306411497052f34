"""infergate demo: the whole pipeline (sim pods + each target + bench) in quick mode, its table, JSON
and HTML report (rendered in headless Chromium), and that an interrupted demo leaves no process behind."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import SLOW, wait_until

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                       if os.access(p, os.X_OK)), None)
HAPROXY = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
                                           if os.access(p, os.X_OK)), None)
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "")
                 if p and os.access(p, os.X_OK)), None)

NAMES = {
    "nginx-rr": "nginx round-robin",
    "nginx-leastconn": "nginx least_conn",
    "haproxy-leastconn": "HAProxy leastconn",
    "infergate-rr": "infergate round-robin",
    "infergate-lr": "infergate least-request",
    "infergate": "infergate inference pool",
}


def expected_ids():
    ids = []
    if NGINX:
        ids += ["nginx-rr", "nginx-leastconn"]
    if HAPROXY:
        ids += ["haproxy-leastconn"]
    return ids + ["infergate-rr", "infergate-lr", "infergate"]


def run_env():
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return e


@pytest.fixture(scope="module")
def demo_bin(infergate_bin):
    return os.path.abspath(infergate_bin)  # the demo runs in a temporary directory


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, demo_bin):
    """One quick demo shared by the checks below (it takes a while)."""
    d = tmp_path_factory.mktemp("demo")
    report, js = d / "report.html", d / "demo.json"
    p = subprocess.run([demo_bin, "demo", "--quick", "--report", str(report), "--json", str(js)],
                       cwd=str(d), env=run_env(), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=240 * SLOW, start_new_session=True)
    return p, report, js


def test_quick_table_and_json(quick_run):
    p, report, js = quick_run
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    for sanitizer in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        assert sanitizer not in out, out[-4000:]
    table = out[out.index("\ntarget "):]
    for col in ("completed", "errors+shed", "TTFT p50", "TTFT p90", "TPOT p90", "E2E p90", "req/s", "goodput",
                "output tok/s", "prefix hit", "TTFT p90 vs base"):
        assert col in table.splitlines()[1], table
    # the SLO the goodput column counts against, under the table: 500 ms / 50 ms simulated at x2
    assert "(goodput: successful requests/s meeting TTFT <= 250 ms, TPOT <= 25 ms wall" in table, table
    for tid in expected_ids():
        row = [line for line in table.splitlines() if line.startswith(NAMES[tid] + " ")]
        assert len(row) == 1, f"no row for {tid}:\n{table}"
        assert re.search(r"\d+\.\d\dx\s*$", row[0]), row[0]  # a ratio against the baseline
        assert re.search(r"\s\d+\.\d\d \(\d+%\)\s", row[0]), row[0]  # goodput (share of requests sent)

    doc = json.load(open(js))
    assert [t["id"] for t in doc["targets"]] == expected_ids()
    assert doc["baseline"] == ("nginx-rr" if NGINX else "infergate-rr")
    assert doc["mode"] == "quick" and doc["workload"] == "shared-prefix" and doc["pods"] == 4
    assert doc["slo_simulated_ms"] == {"ttft": 500.0, "tpot": 50.0, "e2e": None}
    assert "--slo=ttft=250ms,tpot=25ms" in doc["bench_args"]
    for t in doc["targets"]:
        assert t["ran"] and t["error"] is None, t
        s = t["summary"]
        assert s["completed"] > 0, t
        assert s["completed"] + s["failed"] + s["shed"] == s["requests_sent"]
        assert s["ttft_ms"]["p90"] > 0
        # the pods counted prefix-cache queries for every target: routing decides the hits
        assert t["prefix_cache"]["queries"] > 0, t
        assert 0 <= t["prefix_cache"]["hit_rate"] <= 1
        assert t["ttft_p90_ratio"] > 0
        assert s["slo"]["ttft_ms"] == pytest.approx(250) and s["slo"]["tpot_ms"] == pytest.approx(25)
        assert 0 <= s["goodput_requests"] <= s["completed"]
        assert 0 <= s["goodput_fraction"] <= 1 and s["goodput"] >= 0
    base = next(t for t in doc["targets"] if t["id"] == doc["baseline"])
    assert base["ttft_p90_ratio"] == pytest.approx(1.0)


def test_quick_report_is_self_contained(quick_run):
    p, report, _ = quick_run
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") == 2
    assert html.count("<polyline") == 2 * len(expected_ids())
    for tid in expected_ids():
        assert f'id="row-{tid}"' in html
    assert "<th>goodput</th>" in html and "TTFT &lt;= 250 ms" in html
    for external in ("<script", "<link", " src=", "url(http", "@import"):
        assert external not in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_quick_report_renders_in_chromium(quick_run, tmp_path):
    p, report, _ = quick_run
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    profile = tmp_path / "chromium-profile"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
            "--dump-dom", f"file://{report}"]
    dom = None
    for _ in range(2):  # a busy CI machine can make the first start of a browser slow
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=90 * SLOW,
                               stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired:
            continue
        if r.returncode == 0 and "<svg" in r.stdout:
            dom = r.stdout
            break
    assert dom is not None, "chromium did not render the report"
    # the parsed DOM (not just our text) has both charts with one line per target and the table rows
    assert dom.count("<svg") == 2
    assert dom.count("<polyline") == 2 * len(expected_ids())
    for tid in expected_ids():
        assert f'id="row-{tid}"' in dom
    for m in re.finditer(r'<polyline[^>]*points="([^"]*)"', dom):
        pts = m.group(1).split()
        assert len(pts) >= 2
        for pt in pts:
            x, y = (float(v) for v in pt.split(","))
            assert 0 <= x <= 960 and 0 <= y <= 420


def test_bad_usage(infergate_bin):
    for args in (["--workload", "nope"], ["--pods", "0"], ["--pods"], ["--targets", "apache"],
                 ["--frobnicate"], ["--seed", "-1"], ["--slo", "ttft=fast"], ["--slo", "ttft=0"],
                 ["--slo="], ["--time-scale", "0"], ["--groups", "0"], ["--rate-per-pod", "-1"]):
        r = subprocess.run([infergate_bin, "demo", *args], capture_output=True, text=True, timeout=30 * SLOW,
                           env=run_env())
        assert r.returncode == 2, (args, r.stderr)
        assert "infergate demo:" in r.stderr
    r = subprocess.run([infergate_bin, "demo", "--help"], capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 0 and "--quick" in r.stdout


def descendants(pid):
    """Every live process whose parent chain reaches pid (children are in their own groups)."""
    parents = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            parents[int(d)] = int(fields[1])
    out, frontier = set(), {pid}
    while frontier:
        nxt = {c for c, pp in parents.items() if pp in frontier and c not in out}
        out |= nxt
        frontier = nxt
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_interrupt_stops_every_child(demo_bin, tmp_path):
    # the target runs long enough to be caught mid-load; SIGINT must stop pods, gateway and bench
    p = subprocess.Popen([demo_bin, "demo", "--targets", "infergate", "--report", str(tmp_path / "r.html")],
                         cwd=str(tmp_path), env=run_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        seen = set()

        def three_children():
            seen.update(descendants(p.pid))
            return p.poll() is None and len(descendants(p.pid)) >= 3  # sim, serve, bench
        wait_until(three_children, timeout=60, interval=0.1, what="the demo's sim, gateway and bench")
        seen.update(descendants(p.pid))
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60 * SLOW)
        assert p.returncode == 130, out[-3000:]
        assert "interrupted" in out
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline and any(alive(c) for c in seen):
            time.sleep(0.05)
        assert not [c for c in seen if alive(c)], "children left behind"
        assert not (tmp_path / "r.html").exists()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

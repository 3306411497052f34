"""Shared fixtures for integration tests: real processes over loopback.

Every process started through `procs` is killed at teardown, and its stderr tail is printed when
the test failed. Ports are ephemeral: `free_port()` asks the kernel, `free_port_range(n)` finds n
consecutive free ports (for `infergate sim --pods N --base-port P`).
"""
import os
import random
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANITIZED = bool(os.environ.get("INFERGATE_SANITIZED"))
# Sanitizer builds are several times slower: scale waits, never assertions about correctness.
SLOW = 4.0 if SANITIZED else 1.0


def infergate_path():
    return os.environ.get("INFERGATE_BIN") or os.path.join(ROOT, "build", "infergate")


@pytest.fixture(scope="session")
def infergate_bin():
    path = infergate_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"infergate binary not found at {path}; run make first")
    return path


def free_port():
    """A port that is free right now, outside the ephemeral range (see free_port_range)."""
    return free_port_range(1)


_port_rng = random.Random(os.getpid() ^ time.time_ns())
_ports_given = set()


def free_port_range(n, attempts=500):
    """Returns the first of n consecutive ports that are free right now.

    The ports come from below the kernel's ephemeral range (32768 and up here), where the many
    short-lived client connections of a test run leave TIME_WAIT entries; probes use SO_REUSEADDR,
    as libuv's listeners do, so such leftovers do not count as taken."""
    for _ in range(attempts):
        base = _port_rng.randrange(15000, 32000 - n)
        if any(p in _ports_given for p in range(base, base + n)):
            continue  # handed out earlier in this run, maybe not bound yet
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            _ports_given.update(range(base, base + n))
            if len(_ports_given) > 8000:  # a long run: forget the oldest hand-outs
                _ports_given.clear()
                _ports_given.update(range(base, base + n))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Polls pred() until it is truthy; returns its value or fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - the predicate may race a starting process
            last = e
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Proc:
    def __init__(self, name, args, popen, logpath):
        self.name, self.args, self.popen, self.logpath = name, args, popen, logpath

    def alive(self):
        return self.popen.poll() is None

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class ProcessManager:
    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.procs = []

    def start(self, name, args, wait_port=None, env=None, stdout=None):
        logpath = os.path.join(self.tmpdir, f"{name}-{len(self.procs)}.log")
        log = open(logpath, "w")
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        if env:
            e.update(env)
        p = subprocess.Popen([str(a) for a in args], stdout=stdout or log, stderr=log, env=e,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        proc = Proc(name, args, p, logpath)
        self.procs.append(proc)
        if wait_port:
            ports = wait_port if isinstance(wait_port, (list, tuple)) else [wait_port]
            for port in ports:
                wait_until(lambda: not proc.alive() or port_open(port), timeout=15,
                           what=f"{name} on port {port}")
                if not proc.alive():
                    pytest.fail(f"{name} exited with {p.returncode}:\n{proc.log()[-3000:]}")
        return proc

    def stop(self, proc, sig=15, timeout=10):
        if proc.popen.poll() is None:
            proc.popen.send_signal(sig)
            try:
                proc.popen.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        return proc.popen.returncode

    def cleanup(self):
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.terminate()
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()


@pytest.fixture
def procs(tmp_path, request):
    pm = ProcessManager(str(tmp_path))
    yield pm
    pm.cleanup()
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for proc in pm.procs:
        text = proc.log()
        # A sanitizer report in any process fails the test, even if the assertions passed.
        if "ERROR: AddressSanitizer" in text or "runtime error:" in text or "ERROR: LeakSanitizer" in text:
            pytest.fail(f"sanitizer report from {proc.name}:\n{text[-4000:]}")
        if failed:
            print(f"--- {proc.name} (exit {proc.popen.returncode}) log tail ---\n{text[-3000:]}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)

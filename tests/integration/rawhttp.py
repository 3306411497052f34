"""Raw-socket HTTP/1.1 helpers for proxy tests: exact bytes out, every response detail back (framing,
chunk arrival times, truncation, connection close), which high-level clients hide."""
import json
import socket
import time


class Response:
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []  # [(name, value)] as received
        self.body = b""
        self.chunks = []  # [(monotonic time, data)] for chunked bodies
        self.chunked = False
        self.truncated = False  # the connection ended inside the body
        self.closed = False  # the server closed the connection after this response

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body={self.body[:200]!r}>"


class Conn:
    """One client connection with its own read buffer (so pipelined responses can be read one by one)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, sep):
        while sep not in self.buf:
            if not self._fill():
                return None
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_all(self):
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def at_eof(self, timeout=5.0):
        """True when the server closed the connection (waits up to timeout for the close)."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return not self._fill()
        except socket.timeout:
            return False

    def read_response(self, method="GET", skip_interim=True):
        """Reads one response; returns None when the connection closed before a status line."""
        while True:
            r = Response()
            raw = self.read_until(b"\r\n\r\n")
            if raw is None:
                return None
            lines = raw.decode("latin-1").split("\r\n")
            r.version, _, rest = lines[0].partition(" ")
            code, _, r.reason = rest.partition(" ")
            r.status = int(code)
            for line in lines[1:]:
                if line:
                    k, _, v = line.partition(":")
                    r.headers.append((k.strip(), v.strip()))
            if 100 <= r.status < 200 and skip_interim:
                continue
            break
        if r.status < 200 or method == "HEAD" or r.status in (204, 304):
            return r
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        if "chunked" in te:
            r.chunked = True
            while True:
                line = self.read_until(b"\r\n")
                if line is None:
                    r.truncated = True
                    break
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.read_until(b"\r\n")
                        if t is None:
                            r.truncated = True
                            break
                        if t == b"\r\n":
                            break
                    break
                data = self.read_exact(size + 2)
                if data is None:
                    r.truncated = True
                    break
                r.chunks.append((time.monotonic(), data[:-2]))
                r.body += data[:-2]
        elif cl is not None:
            data = self.read_exact(int(cl))
            if data is None:
                r.truncated = True
                r.body = self.buf
            else:
                r.body = data
        else:
            r.body = self.read_all()
            r.closed = True
        if (r.header("connection") or "").lower() == "close":
            r.closed = True
        return r


def build(method, path, headers=None, body=None, host="test", version="HTTP/1.1"):
    """Builds request bytes; adds Host and Content-Length unless the caller set them."""
    if isinstance(body, str):
        body = body.encode()
    hdrs = list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if host is not None and "host" not in names:
        hdrs.insert(0, ("Host", host))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    out = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    return out.encode("latin-1") + (body or b"")


def request(port, method="GET", path="/", headers=None, body=None, host="test", timeout=10.0):
    """One request on a fresh connection; returns the Response (None when closed without one)."""
    with Conn(port, timeout=timeout) as c:
        c.send(build(method, path, headers, body, host))
        return c.read_response(method)


def post_json(port, path, obj, headers=None, host="test", timeout=10.0):
    body = json.dumps(obj).encode()
    hdrs = [("Content-Type", "application/json")] + list(headers or [])
    return request(port, "POST", path, hdrs, body, host, timeout)


def sse_events(body):
    """The `data:` payloads of an SSE body, in order."""
    out = []
    for block in body.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                out.append(line[6:])
    return out


# ---- process helpers shared by the test_proxy*.py files ----

def start_gateway(procs, tmp_path, yaml_text, ports, name="gateway", env=None, args=()):
    """Writes yaml_text to tmp_path/gateway.yaml, starts `infergate serve -c` on it and waits for the
    given ports (listeners, admin). Returns (Proc, config path)."""
    import os
    from conftest import infergate_path

    path = os.path.join(str(tmp_path), "gateway.yaml")
    with open(path, "w") as f:
        f.write(yaml_text)
    proc = procs.start(name, [infergate_path(), "serve", "-c", path, *args], wait_port=list(ports), env=env)
    return proc, path


def metric(text, series):
    """Value of one exact series line ("name{labels}") in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def admin_get(port, path):
    r = request(port, "GET", path)
    return r.status, r.body.decode()


def stream_in_flight(port, headers=(), prompt="in flight", timeout=60.0):
    """Starts a long streamed completion (model llama3) and returns its socket once the response head
    has arrived: the request is then in flight on its pod until the socket is closed."""
    body = json.dumps({"model": "llama3", "prompt": prompt, "max_tokens": 20000, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" + extra +
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk, "the stream ended early"
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    return s

"""A mock HTTP/1.1 backend for proxy tests (raw asyncio, so that it can misbehave on purpose).

Run: python3 backend.py --port PORT [--name NAME] [--port PORT2 --name NAME2 ...] [--host 127.0.0.1]
(several ports in one process: each port is a separate backend with its own name)

Every response carries `x-backend: NAME`, `x-conn-id` (connection number) and `x-conn-requests`
(requests served on that connection so far). Behaviour is chosen per request by query parameters:

  (default)         200 JSON echo: backend, method, path, headers (lower-cased), body, conn_id
  status=N          respond with status N (JSON echo body)
  delay=MS          sleep before sending the response head
  stream=N          SSE: N events `data: {...}` (then `data: [DONE]`), chunked
  interval=MS       pause between SSE events (default 0)
  die=K             with stream: after K events, drop the connection (no last chunk)
  bytes=N           N bytes of 'x' (Content-Length), written in 64 KiB pieces
  chunked=1         send the JSON echo with chunked encoding (in 3 chunks)
  close_delimited=1 no Content-Length / Transfer-Encoding, body ends at close
  close=1           `Connection: close` and close after the response
  hang=1            read the request, never answer (until the client leaves)
  idle_close=MS     after this response, close the connection if no request comes within MS
  drop_next=1       the next request on this connection is answered by closing it (a stale
                    keep-alive connection, as when a server times it out just as it is reused)

OpenAI paths (POST /v1/completions, /v1/chat/completions) with a JSON body: "stream": true gives SSE
with max_tokens events (default 5; interval from the query or header x-interval-ms); otherwise a
completion JSON. Both include "model" as received and the echo under "echo".

GET /__stats returns {"connections": accepted so far, "requests": served so far} (per process).
"""
import argparse
import asyncio
import json
import signal
import sys
import urllib.parse

STATS = {"connections": 0, "requests": 0}


class BadRequest(Exception):
    pass


async def read_head(reader):
    data = await reader.readuntil(b"\r\n\r\n")
    lines = data.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return method, target, version, headers


async def read_body(reader, headers):
    h = {k.lower(): v for k, v in headers}
    if "chunked" in h.get("transfer-encoding", "").lower():
        body = b""
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    n = int(h.get("content-length", "0") or 0)
    return await reader.readexactly(n) if n else b""


def head(status, headers, reason="OK"):
    out = [f"HTTP/1.1 {status} {reason}"]
    out += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(out) + "\r\n\r\n").encode()


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


class Server:
    def __init__(self, name):
        self.name = name
        self.conn_seq = 0

    async def handle(self, reader, writer):
        STATS["connections"] += 1
        self.conn_seq += 1
        conn_id, served = self.conn_seq, 0
        st = {"idle_close": None, "drop_next": False}  # per-connection knobs
        try:
            while True:
                try:
                    if st["idle_close"] is not None:
                        method, target, version, headers = await asyncio.wait_for(read_head(reader),
                                                                                 st["idle_close"])
                    else:
                        method, target, version, headers = await read_head(reader)
                    body = await read_body(reader, headers)
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
                    return
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(head(400, [("Content-Length", "0"), ("Connection", "close")], "Bad Request"))
                    await writer.drain()
                    return
                if st["drop_next"]:
                    STATS["dropped"] = STATS.get("dropped", 0) + 1
                    writer.transport.abort()
                    return
                served += 1
                STATS["requests"] += 1
                keep = await self.respond(writer, reader, method, target, headers, body, conn_id, served, st)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def respond(self, writer, reader, method, target, headers, body, conn_id, served, st):
        url = urllib.parse.urlsplit(target)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        hl = {k.lower(): v for k, v in headers}
        st["idle_close"] = int(q["idle_close"]) / 1000 if "idle_close" in q else None
        st["drop_next"] = bool(q.get("drop_next"))
        base = [("x-backend", self.name), ("x-conn-id", str(conn_id)), ("x-conn-requests", str(served))]
        echo = {"backend": self.name, "method": method, "path": target, "headers": hl,
                "body": body.decode("utf-8", "replace"), "conn_id": conn_id}
        if url.path == "/__stats":
            data = json.dumps(STATS).encode()
            writer.write(head(200, base + [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(data)))]) + data)
            return True
        if q.get("hang"):
            try:
                await reader.read(1)
            except ConnectionError:
                pass
            return False
        if "delay" in q:
            await asyncio.sleep(int(q["delay"]) / 1000)
        status = int(q.get("status", "200"))
        close = bool(q.get("close"))
        stream_n, interval = None, int(q.get("interval", hl.get("x-interval-ms", "0")) or 0) / 1000
        model = None
        if method == "POST" and url.path in ("/v1/completions", "/v1/chat/completions"):
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                req = {}
            model = req.get("model") if isinstance(req, dict) else None
            if isinstance(req, dict) and req.get("stream"):
                stream_n = int(req.get("max_tokens") or 5)
        if "stream" in q:
            stream_n = int(q["stream"])
        if stream_n is not None:
            die = int(q["die"]) if "die" in q else None
            hdrs = base + [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                           ("Transfer-Encoding", "chunked")]
            if close:
                hdrs.append(("Connection", "close"))
            writer.write(head(status, hdrs))
            await writer.drain()
            for i in range(stream_n):
                if die is not None and i == die:
                    writer.transport.abort()
                    return False
                if i and interval:
                    await asyncio.sleep(interval)
                ev = {"id": "cmpl-1", "object": "text_completion", "model": model, "index": i,
                      "choices": [{"index": 0, "text": f"tok{i} "}]}
                if i == 0:
                    ev["echo"] = echo
                writer.write(chunk(b"data: " + json.dumps(ev).encode() + b"\n\n"))
                await writer.drain()
            if die is not None and die >= stream_n:
                writer.transport.abort()
                return False
            writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            return not close
        if "bytes" in q:
            n = int(q["bytes"])
            hdrs = base + [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))]
            writer.write(head(status, hdrs))
            piece = b"x" * 65536
            while n > 0:
                writer.write(piece[:n])
                n -= min(n, 65536)
                await writer.drain()
            return not close
        if model is not None:
            payload = {"id": "cmpl-1", "object": "text_completion", "model": model,
                       "choices": [{"index": 0, "text": "hello", "finish_reason": "stop"}], "echo": echo}
        else:
            payload = echo
        data = json.dumps(payload).encode()
        hdrs = base + [("Content-Type", "application/json")]
        if q.get("close_delimited"):
            writer.write(head(status, hdrs + [("Connection", "close")]) + data)
            await writer.drain()
            return False
        if close:
            hdrs.append(("Connection", "close"))
        if q.get("chunked"):
            third = max(1, len(data) // 3)
            parts = [data[:third], data[third:2 * third], data[2 * third:]]
            writer.write(head(status, hdrs + [("Transfer-Encoding", "chunked")]))
            for p in parts:
                writer.write(chunk(p))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            return not close
        if method == "HEAD":
            writer.write(head(status, hdrs + [("Content-Length", str(len(data)))]))
            return not close
        writer.write(head(status, hdrs + [("Content-Length", str(len(data)))]) + data)
        return not close


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, action="append", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", action="append", default=[])
    a = ap.parse_args()
    servers = []
    for i, port in enumerate(a.port):
        name = a.name[i] if i < len(a.name) else f"backend{i}"
        srv = Server(name)
        servers.append(await asyncio.start_server(srv.handle, a.host, port, limit=1 << 20))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)


def start(procs, names, tag="backend"):
    """Starts one backend process serving one port per name; returns {name: port}."""
    import os
    from conftest import free_port

    ports = {}
    args = ["/usr/bin/python3", os.path.abspath(__file__)]
    for n in names:
        ports[n] = free_port()
        args += ["--port", ports[n], "--name", n]
    procs.start(tag, args, wait_port=list(ports.values()))
    return ports

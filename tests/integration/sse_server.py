"""A tiny OpenAI-compatible server for the bench integration tests.

It answers POST /v1/completions and /v1/chat/completions, streaming max_tokens content events
(one token each) over chunked SSE with a usage chunk and `data: [DONE]`, or one JSON answer when
"stream" is false. The behaviour for a request is chosen by its model name prefix:
  shed*   429 with an OpenAI error body
  error*  500 with an OpenAI error body
  reset*  200, two content events, then a TCP reset (SO_LINGER 0) mid-stream
  close*  200, SSE without chunked coding or Content-Length, ended by closing the connection
  drop*   a normal stream, then the connection is closed silently (no "Connection: close")
  other   a normal stream
GET /stats returns counters: connections, requests, and per-header-value counts of
x-infergate-criticality and x-test. Usage: sse_server.py --port P [--token-delay-ms MS] [--split]
(--split sends each event in two HTTP chunks cut mid-line, to exercise the client's parser).
"""
import argparse
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {"connections": 0, "requests": 0, "criticality": {}, "x-test": {}}


def bump(d, k):
    d[k] = d.get(k, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sse-test"

    def setup(self):
        super().setup()
        with LOCK:
            STATS["connections"] += 1

    def log_message(self, *args):  # keep test logs quiet
        pass

    def send_json(self, status, obj, close=False):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                self.send_json(200, STATS)
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error",
                                           "param": None, "code": None}})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def event(self, obj, raw=False):
        data = b"data: " + (obj if raw else json.dumps(obj).encode()) + b"\n\n"
        if self.framing == "chunked":
            if self.server.split and len(data) > 3:
                cut = len(data) // 2
                self.chunk(data[:cut])
                self.chunk(data[cut:])
            else:
                self.chunk(data)
        else:
            self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        try:
            req = json.loads(self.rfile.read(n))
        except ValueError:
            self.send_json(400, {"error": {"message": "bad json", "type": "invalid_request_error",
                                           "param": None, "code": None}})
            return
        model = str(req.get("model", ""))
        with LOCK:
            STATS["requests"] += 1
            for h, key in (("x-infergate-criticality", "criticality"), ("x-test", "x-test")):
                if self.headers.get(h) is not None:
                    bump(STATS[key], self.headers[h])
        chat = self.path.startswith("/v1/chat/completions")
        max_tokens = int(req.get("max_tokens") or 16)
        if model.startswith("shed"):
            self.send_json(429, {"error": {"message": "server overloaded", "type": "rate_limit_error",
                                           "param": None, "code": 429}})
            return
        if model.startswith("error"):
            self.send_json(500, {"error": {"message": "injected failure", "type": "server_error",
                                           "param": None, "code": 500}})
            return
        if chat:
            prompt_len = sum(len(m.get("content", "")) for m in req.get("messages", []))
        else:
            prompt_len = len(req.get("prompt", ""))
        usage = {"prompt_tokens": (prompt_len + 3) // 4, "completion_tokens": max_tokens,
                 "total_tokens": (prompt_len + 3) // 4 + max_tokens}
        if not req.get("stream"):
            text = "tok " * max_tokens
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                      if chat else {"index": 0, "text": text, "finish_reason": "length"})
            self.send_json(200, {"id": "x", "object": "chat.completion" if chat else "text_completion",
                                 "model": model, "choices": [choice], "usage": usage})
            return
        self.framing = "close" if model.startswith("close") else "chunked"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if self.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        obj = "chat.completion.chunk" if chat else "text_completion"
        if chat:  # the role-only first chunk carries no content
            self.event({"id": "x", "object": obj, "model": model,
                        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        for i in range(max_tokens):
            if self.server.delay:
                time.sleep(self.server.delay)
            choice = ({"index": 0, "delta": {"content": "tok "}} if chat else {"index": 0, "text": "tok "})
            choice["finish_reason"] = "length" if i == max_tokens - 1 else None
            self.event({"id": "x", "object": obj, "model": model, "choices": [choice]})
            if model.startswith("reset") and i == 1:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
        if req.get("stream_options", {}).get("include_usage"):
            self.event({"id": "x", "object": obj, "model": model, "choices": [], "usage": usage})
        self.event(b"[DONE]", raw=True)
        if self.framing == "chunked":
            self.wfile.write(b"0\r\n\r\n")
        if model.startswith("drop"):
            self.close_connection = True

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token-delay-ms", type=float, default=0)
    ap.add_argument("--split", action="store_true")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.delay = a.token_delay_ms / 1000.0
    srv.split = a.split
    srv.serve_forever()


if __name__ == "__main__":
    main()

"""A small Envoy stand-in for testing `infergate epp`: hand-encoded protobuf (no generated stubs) for the
ext_proc messages (envoy.service.ext_proc.v3) and grpc.health.v1, sent with grpcio using raw bytes.

Field numbers follow Envoy's public external_processor.proto / base.proto and google's struct.proto.
"""
import queue
import struct

import grpc

PROCESS = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"

# ProcessingMode.BodySendMode
NONE, STREAMED, BUFFERED, BUFFERED_PARTIAL, FULL_DUPLEX_STREAMED = 0, 1, 2, 3, 4

# ---------------------------------------------------------------- wire format


def varint(v):
    out = bytearray()
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(n, v):
    return varint(n << 3) + varint(v)


def f_bytes(n, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((n << 3) | 2) + varint(len(b)) + b


def f_double(n, v):
    return varint((n << 3) | 1) + struct.pack("<d", v)


def decode(buf):
    """Returns {field: [values]}: ints for varint/fixed fields, bytes for length-delimited ones."""
    out = {}
    i = 0
    n = len(buf)

    def rd_varint():
        nonlocal i
        shift = v = 0
        while True:
            if i >= n:
                raise ValueError("truncated varint")
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while i < n:
        key = rd_varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            val = rd_varint()
        elif wt == 1:
            val = buf[i:i + 8]
            i += 8
        elif wt == 2:
            ln = rd_varint()
            val = bytes(buf[i:i + ln])
            if len(val) != ln:
                raise ValueError("truncated field")
            i += ln
        elif wt == 5:
            val = buf[i:i + 4]
            i += 4
        else:
            raise ValueError(f"wire type {wt}")
        out.setdefault(field, []).append(val)
    return out


def first(d, field, default=None):
    v = d.get(field)
    return v[0] if v else default


# ---------------------------------------------------------------- google.protobuf.Struct


def enc_value(v):
    if v is None:
        return f_varint(1, 0)
    if isinstance(v, bool):
        return f_varint(4, int(v))
    if isinstance(v, (int, float)):
        return f_double(2, float(v))
    if isinstance(v, str):
        return f_bytes(3, v)
    if isinstance(v, dict):
        return f_bytes(5, enc_struct(v))
    if isinstance(v, (list, tuple)):
        return f_bytes(6, b"".join(f_bytes(1, enc_value(x)) for x in v))
    raise TypeError(type(v))


def enc_struct(d):
    return b"".join(f_bytes(1, f_bytes(1, k) + f_bytes(2, enc_value(v))) for k, v in d.items())


def dec_value(buf):
    d = decode(buf)
    if 3 in d:
        return d[3][0].decode()
    if 5 in d:
        return dec_struct(d[5][0])
    if 6 in d:
        return [dec_value(x) for x in decode(d[6][0]).get(1, [])]
    if 4 in d:
        return bool(d[4][0])
    if 2 in d:
        return struct.unpack("<d", d[2][0])[0]
    return None


def dec_struct(buf):
    out = {}
    for entry in decode(buf).get(1, []):
        e = decode(entry)
        out[first(e, 1, b"").decode()] = dec_value(first(e, 2, b""))
    return out


# ---------------------------------------------------------------- ProcessingRequest


def header_map(headers, raw=True):
    """headers: list of (name, value) or a dict. Envoy puts values in raw_value (field 3)."""
    items = headers.items() if isinstance(headers, dict) else headers
    out = b""
    for k, v in items:
        hv = f_bytes(1, k) + (f_bytes(3, v) if raw else f_bytes(2, v))
        out += f_bytes(1, hv)
    return out


def _request(case, payload, metadata=None, protocol_config=None, observability=False):
    msg = f_bytes(case, payload)
    if metadata is not None:
        # Metadata.filter_metadata: map<string, Struct>
        md = b"".join(f_bytes(1, f_bytes(1, ns) + f_bytes(2, enc_struct(st))) for ns, st in metadata.items())
        msg += f_bytes(8, md)
    if observability:
        msg += f_varint(10, 1)
    if protocol_config is not None:
        req_mode, resp_mode = protocol_config
        msg += f_bytes(11, f_varint(1, req_mode) + f_varint(2, resp_mode))
    return msg


def request_headers(headers, eos=False, **kw):
    return _request(2, f_bytes(1, header_map(headers)) + (f_varint(3, 1) if eos else b""), **kw)


def response_headers(headers, eos=False, **kw):
    return _request(3, f_bytes(1, header_map(headers)) + (f_varint(3, 1) if eos else b""), **kw)


def request_body(body, eos=False, **kw):
    return _request(4, f_bytes(1, body) + (f_varint(2, 1) if eos else b""), **kw)


def response_body(body, eos=False, **kw):
    return _request(5, f_bytes(1, body) + (f_varint(2, 1) if eos else b""), **kw)


def request_trailers(headers, **kw):
    return _request(6, f_bytes(1, header_map(headers)), **kw)


def subset_hint(endpoints):
    return {"envoy.lb.subset_hint": {"x-gateway-destination-endpoint-subset": list(endpoints)}}


def post_headers(path="/v1/completions", extra=()):
    return [(":method", "POST"), (":path", path), (":authority", "gw"), ("content-type", "application/json")] + list(
        extra)


# ---------------------------------------------------------------- ProcessingResponse

CASES = {1: "request_headers", 2: "response_headers", 3: "request_body", 4: "response_body",
         5: "request_trailers", 6: "response_trailers", 7: "immediate_response"}


def dec_header_mutation(buf):
    d = decode(buf)
    sets = {}
    for hvo in d.get(1, []):
        o = decode(hvo)
        hv = decode(first(o, 1, b""))
        val = first(hv, 3)
        if val is None:
            val = first(hv, 2, b"")
        sets[first(hv, 1, b"").decode()] = val.decode()
    return sets


def parse_response(buf):
    """Decodes a ProcessingResponse into a dict: kind, set_headers, body (BodyMutation.body),
    streamed (body, eos) for a streamed_response, status/body/headers of an immediate response,
    metadata (dynamic_metadata as a dict)."""
    d = decode(buf)
    r = {"kind": None, "set_headers": {}, "body": None, "streamed": None, "metadata": None}
    for num, name in CASES.items():
        if num in d:
            r["kind"] = name
            inner = decode(d[num][0])
            if num == 7:
                r["status"] = first(decode(first(inner, 1, b"")), 1, 0)
                r["set_headers"] = dec_header_mutation(first(inner, 2, b""))
                r["body"] = first(inner, 3, b"")
                r["details"] = first(inner, 5, b"").decode()
            elif num in (5, 6):
                r["set_headers"] = dec_header_mutation(first(inner, 1, b""))
            else:
                common = decode(first(inner, 1, b""))
                r["status"] = first(common, 1, 0)
                r["set_headers"] = dec_header_mutation(first(common, 2, b""))
                bm = first(common, 3)
                if bm is not None:
                    bmd = decode(bm)
                    if 1 in bmd:
                        r["body"] = bmd[1][0]
                    if 3 in bmd:
                        sr = decode(bmd[3][0])
                        r["streamed"] = (first(sr, 1, b""), bool(first(sr, 2, 0)))
    if 8 in d:
        r["metadata"] = dec_struct(d[8][0])
    return r


# ---------------------------------------------------------------- gRPC


def _ident(x):
    return x


class Stream:
    """One ext_proc Process call driven step by step, like Envoy does: send a request, read the
    responses it produces. Every read is bounded by the call deadline."""

    def __init__(self, channel, timeout=10.0):
        self._q = queue.Queue()
        fn = channel.stream_stream(PROCESS, request_serializer=_ident, response_deserializer=_ident)
        self.call = fn(iter(self._q.get, None), timeout=timeout)

    def send(self, msg):
        self._q.put(msg)

    def recv(self):
        return parse_response(next(self.call))

    def exchange(self, msg, n=1):
        self.send(msg)
        return [self.recv() for _ in range(n)]

    def close(self):
        self._q.put(None)
        try:
            for _ in self.call:
                pass
        except grpc.RpcError:
            pass

    def cancel(self):
        self._q.put(None)
        self.call.cancel()


def channel(port):
    return grpc.insecure_channel(f"127.0.0.1:{port}")


def health_check(port, service="", timeout=5.0):
    """Returns the ServingStatus number (1 = SERVING) of grpc.health.v1.Health/Check."""
    with channel(port) as ch:
        fn = ch.unary_unary(HEALTH_CHECK, request_serializer=_ident, response_deserializer=_ident)
        resp = fn(f_bytes(1, service) if service else b"", timeout=timeout)
        return first(decode(resp), 1, 0)

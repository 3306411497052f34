"""A fake Kubernetes API server for the --kube tests (aiohttp, objects in memory).

Serves, for the namespaced kinds infergate watches:
  GET   /api/v1/namespaces/NS/PLURAL and /apis/GROUP/VERSION/namespaces/NS/PLURAL   LIST
  GET   ...?watch=1&resourceVersion=RV                      WATCH: chunked newline-delimited JSON events
                                                            (ERROR 410 when RV is older than the last
                                                            compaction); starts with a BOOKMARK
  PATCH .../PLURAL/NAME/status                             merge patch of status (recorded)
  GET/POST/PUT /apis/coordination.k8s.io/v1/namespaces/NS/leases[/NAME]   Leases: POST 409 when it
                                                            exists, PUT 409 when metadata.resourceVersion
                                                            is not the current one (recorded)
A kind whose resource is not "installed" answers 404. With --token, every API request needs
"Authorization: Bearer TOKEN" (401 otherwise). With --client-ca (and TLS), clients must present a
certificate signed by that CA.

Test-only control endpoints (no token needed):
  POST /_ctl/apply        body: an object (apiVersion, kind, metadata.name[, namespace]): ADDED/MODIFIED
  POST /_ctl/delete       body: {"apiVersion", "kind", "name", "namespace"}: DELETED
  POST /_ctl/drop         ends every open watch stream
  POST /_ctl/compact      forgets history: watches from an older version get 410 (open ones are dropped)
  POST /_ctl/uninstall    body: {"apiVersion", "kind"}: that resource answers 404 from now on
  GET  /_ctl/patches      the status patches received, in order
  GET  /_ctl/stats        {"list": {PLURAL: n}, "watch": {PLURAL: n}, "watching": n}
  GET  /_ctl/objects      every object
  GET  /_ctl/leases       {"NS/NAME": lease} and "_writes": [{"op", "holder", "code"}] of every lease write

Run: python3 fakeapi.py --port PORT [--token TOKEN] [--tls-cert CERT --tls-key KEY]
"""
import argparse
import asyncio
import copy
import json

from aiohttp import web

KINDS = {
    ("gateway.networking.k8s.io/v1", "Gateway"): "gateways",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    ("gateway.networking.k8s.io/v1alpha2", "TCPRoute"): "tcproutes",
    ("inference.networking.k8s.io/v1", "InferencePool"): "inferencepools",
    ("inference.networking.x-k8s.io/v1alpha2", "InferencePool"): "inferencepools",
    ("inference.networking.x-k8s.io/v1alpha2", "InferenceModel"): "inferencemodels",
    ("inference.networking.x-k8s.io/v1alpha2", "InferenceObjective"): "inferenceobjectives",
    ("v1", "Secret"): "secrets",
    ("v1", "Pod"): "pods",
    ("v1", "Service"): "services",
    ("v1", "Endpoints"): "endpoints",
    ("discovery.k8s.io/v1", "EndpointSlice"): "endpointslices",
}
LEASES = ("/apis/coordination.k8s.io/v1", "leases")


def prefix_of(api_version):
    return "/api/v1" if api_version == "v1" else "/apis/" + api_version


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


class Api:
    def __init__(self, token=None):
        self.token = token
        self.rv = 100
        self.compacted = 0
        self.objects = {}  # (prefix, plural) -> {(ns, name): obj}
        self.installed = {(prefix_of(a), p) for (a, _), p in KINDS.items()}
        self.log = []  # (rv, res, ns, type, obj)
        self.watchers = set()  # asyncio.Queue
        self.patches = []
        self.stats = {"list": {}, "watch": {}}
        self.leases = {}
        self.lease_writes = []

    def bump(self):
        self.rv += 1
        return str(self.rv)

    def emit(self, res, ns, etype, obj):
        rv = int(obj["metadata"]["resourceVersion"])
        self.log.append((rv, res, ns, etype, copy.deepcopy(obj)))
        if len(self.log) > 10000:
            self.log = self.log[-5000:]
        for q in list(self.watchers):
            q.put_nowait(("event", rv, res, ns, etype, obj))

    def drop_watches(self):
        for q in list(self.watchers):
            q.put_nowait(("drop",))

    # ---- API
    def check_auth(self, request):
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPUnauthorized(text=json.dumps({"kind": "Status", "code": 401, "reason": "Unauthorized"}),
                                       content_type="application/json")

    def resource(self, request):
        ns = request.match_info["ns"]
        plural = request.match_info["plural"]
        group = request.match_info.get("group")
        version = request.match_info["version"]
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        res = (prefix, plural)
        if res not in self.installed:
            raise web.HTTPNotFound(text=json.dumps({"kind": "Status", "code": 404, "reason": "NotFound"}),
                                   content_type="application/json")
        return res, ns

    async def list_or_watch(self, request):
        self.check_auth(request)
        res, ns = self.resource(request)
        plural = res[1]
        if request.query.get("watch") in ("1", "true"):
            self.stats["watch"][plural] = self.stats["watch"].get(plural, 0) + 1
            return await self.watch(request, res, ns)
        self.stats["list"][plural] = self.stats["list"].get(plural, 0) + 1
        items = [copy.deepcopy(o) for (ons, _), o in sorted(self.objects.get(res, {}).items()) if ons == ns]
        for o in items:  # list items carry no apiVersion/kind, like the real API
            o.pop("apiVersion", None)
            o.pop("kind", None)
        return web.json_response({"kind": "List", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(self.rv)}, "items": items})

    async def watch(self, request, res, ns):
        try:
            since = int(request.query.get("resourceVersion", "0") or "0")
        except ValueError:
            since = 0
        timeout = min(float(request.query.get("timeoutSeconds", "300")), 600.0)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def send(etype, obj):
            await resp.write((json.dumps({"type": etype, "object": obj}) + "\n").encode())

        if since < self.compacted:
            await send("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired",
                                 "code": 410, "message": f"too old resource version: {since} ({self.compacted})"})
            await resp.write_eof()
            return resp
        q = asyncio.Queue()
        self.watchers.add(q)
        try:
            await send("BOOKMARK", {"kind": "Status", "metadata": {"resourceVersion": str(self.rv)}})
            for rv, r, ons, etype, obj in list(self.log):
                if rv > since and r == res and ons == ns:
                    await send(etype, obj)
                    since = rv
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(q.get(), left)
                except asyncio.TimeoutError:
                    break
                if item[0] == "drop":
                    break
                _, rv, r, ons, etype, obj = item
                if rv > since and r == res and ons == ns:
                    await send(etype, obj)
                    since = rv
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.watchers.discard(q)
        return resp

    # ---- leases (coordination.k8s.io/v1)
    async def lease_get(self, request):
        self.check_auth(request)
        key = (request.match_info["ns"], request.match_info["name"])
        obj = self.leases.get(key)
        if obj is None:
            raise web.HTTPNotFound(text=json.dumps({"kind": "Status", "code": 404, "reason": "NotFound"}),
                                   content_type="application/json")
        return web.json_response(obj)

    def lease_conflict(self, what):
        return web.HTTPConflict(text=json.dumps({"kind": "Status", "code": 409, "reason": what}),
                                content_type="application/json")

    async def lease_post(self, request):
        self.check_auth(request)
        ns = request.match_info["ns"]
        obj = await request.json()
        name = obj.get("metadata", {}).get("name")
        holder = obj.get("spec", {}).get("holderIdentity")
        if not name:
            raise web.HTTPUnprocessableEntity(text="metadata.name required")
        if (ns, name) in self.leases:
            self.lease_writes.append({"op": "create", "holder": holder, "code": 409})
            raise self.lease_conflict("AlreadyExists")
        obj.setdefault("metadata", {})["namespace"] = ns
        obj["metadata"]["resourceVersion"] = self.bump()
        self.leases[(ns, name)] = obj
        self.lease_writes.append({"op": "create", "holder": holder, "code": 201})
        return web.json_response(obj, status=201)

    async def lease_put(self, request):
        self.check_auth(request)
        key = (request.match_info["ns"], request.match_info["name"])
        obj = await request.json()
        holder = obj.get("spec", {}).get("holderIdentity")
        cur = self.leases.get(key)
        if cur is None:
            raise web.HTTPNotFound(text=json.dumps({"kind": "Status", "code": 404}), content_type="application/json")
        if obj.get("metadata", {}).get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            self.lease_writes.append({"op": "update", "holder": holder, "code": 409})
            raise self.lease_conflict("Conflict")
        obj["metadata"]["resourceVersion"] = self.bump()
        self.leases[key] = obj
        self.lease_writes.append({"op": "update", "holder": holder, "code": 200})
        return web.json_response(obj)

    async def ctl_leases(self, request):
        out = {f"{ns}/{n}": o for (ns, n), o in self.leases.items()}
        out["_writes"] = self.lease_writes
        return web.json_response(out)

    async def patch_status(self, request):
        self.check_auth(request)
        res, ns = self.resource(request)
        name = request.match_info["name"]
        if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/merge-patch+json":
            raise web.HTTPUnsupportedMediaType(text="merge-patch+json only")
        body = await request.json()
        obj = self.objects.get(res, {}).get((ns, name))
        if obj is None:
            raise web.HTTPNotFound(text=json.dumps({"kind": "Status", "code": 404}), content_type="application/json")
        self.patches.append({"plural": res[1], "namespace": ns, "name": name, "patch": body})
        if "status" in body:
            obj["status"] = merge_patch(obj.get("status"), body["status"])
        obj["metadata"]["resourceVersion"] = self.bump()
        self.emit(res, ns, "MODIFIED", obj)
        return web.json_response(obj)

    # ---- control
    def res_of(self, api_version, kind):
        plural = KINDS.get((api_version, kind))
        if not plural:
            raise web.HTTPBadRequest(text=f"unknown kind {api_version} {kind}")
        return (prefix_of(api_version), plural)

    async def ctl_apply(self, request):
        obj = await request.json()
        res = self.res_of(obj["apiVersion"], obj["kind"])
        meta = obj.setdefault("metadata", {})
        ns = meta.setdefault("namespace", "default")
        store = self.objects.setdefault(res, {})
        old = store.get((ns, meta["name"]))
        if old is not None and "status" in old and "status" not in obj and obj["kind"] == "InferenceModel":
            obj["status"] = old["status"]
        meta["resourceVersion"] = self.bump()
        store[(ns, meta["name"])] = obj
        self.emit(res, ns, "MODIFIED" if old is not None else "ADDED", obj)
        return web.json_response({"resourceVersion": meta["resourceVersion"]})

    async def ctl_delete(self, request):
        b = await request.json()
        res = self.res_of(b["apiVersion"], b["kind"])
        ns = b.get("namespace", "default")
        obj = self.objects.get(res, {}).pop((ns, b["name"]), None)
        if obj is None:
            raise web.HTTPNotFound(text="no such object")
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self.bump()
        self.emit(res, ns, "DELETED", obj)
        return web.json_response({"resourceVersion": obj["metadata"]["resourceVersion"]})

    async def ctl_drop(self, request):
        self.drop_watches()
        return web.json_response({"dropped": len(self.watchers)})

    async def ctl_compact(self, request):
        self.compacted = self.rv + 1
        self.bump()
        self.log = []
        self.drop_watches()
        return web.json_response({"compacted": self.compacted})

    async def ctl_uninstall(self, request):
        b = await request.json()
        self.installed.discard(self.res_of(b["apiVersion"], b["kind"]))
        return web.json_response({})

    async def ctl_patches(self, request):
        return web.json_response(self.patches)

    async def ctl_stats(self, request):
        return web.json_response(dict(self.stats, watching=len(self.watchers)))

    async def ctl_objects(self, request):
        return web.json_response([o for store in self.objects.values() for o in store.values()])


def make_app(token=None):
    api = Api(token)
    app = web.Application()
    r = app.router
    r.add_post("/_ctl/apply", api.ctl_apply)
    r.add_post("/_ctl/delete", api.ctl_delete)
    r.add_post("/_ctl/drop", api.ctl_drop)
    r.add_post("/_ctl/compact", api.ctl_compact)
    r.add_post("/_ctl/uninstall", api.ctl_uninstall)
    r.add_get("/_ctl/patches", api.ctl_patches)
    r.add_get("/_ctl/stats", api.ctl_stats)
    r.add_get("/_ctl/objects", api.ctl_objects)
    r.add_get("/_ctl/leases", api.ctl_leases)
    r.add_get("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}", api.lease_get)
    r.add_post("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases", api.lease_post)
    r.add_put("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}", api.lease_put)
    r.add_get("/api/{version}/namespaces/{ns}/{plural}", api.list_or_watch)
    r.add_get("/apis/{group}/{version}/namespaces/{ns}/{plural}", api.list_or_watch)
    r.add_patch("/api/{version}/namespaces/{ns}/{plural}/{name}/status", api.patch_status)
    r.add_patch("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/status", api.patch_status)
    return app


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    a = ap.parse_args()
    ctx = None
    if a.tls_cert:
        import ssl
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        if a.client_ca:
            ctx.load_verify_locations(a.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    web.run_app(make_app(a.token), host="127.0.0.1", port=a.port, print=None, shutdown_timeout=1,
                ssl_context=ctx)


if __name__ == "__main__":
    main()

/* Kubernetes manifests: a directory of Gateway API and GIE resources (both InferencePool versions,
 * Pods, Services with Endpoints and EndpointSlices, a TCPRoute) becomes the expected listeners,
 * routes, pools, endpoints and models, and routes requests as the proxy would; duplicate model names
 * resolve oldest-first with a note; each class of mistake is an error at the right file:line:column;
 * directories load in sorted order; options override ports and addresses; `check --manifests`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config_internal.h"
#include "infergate/cmd.h"
#include "infergate/config.h"
#include "infergate/core.h"

#define DATA "tests/unit/data/manifests/"
#define FULL DATA "full"

/* ---- helpers ----------------------------------------------------------------------------------- */

static char tmpdir[64];

/* Writes text to tmpdir/name; returns the path in a static buffer. */
static const char *write_file(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ig_manifests_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static ig_config_t *load_ok(const char *path, const ig_manifest_opts_t *opts) {
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_manifests(path, opts, &cfg, &errs);
  if (rc != 0) ig_config_errors_print(&errs, stderr);
  assert_int_equal(rc, 0);
  assert_int_equal(errs.n, 0);
  assert_non_null(cfg);
  ig_config_errors_free(&errs);
  return cfg;
}

/* Loads yaml as t.yaml (must fail) and checks the errors one for one against the NULL-terminated
 * "LINE:COL: substring" list, in order. */
static void expect_errors(const char *yaml, ...) {
  const char *path = write_file("t.yaml", yaml);
  char file[256];
  snprintf(file, sizeof file, "%s", path);
  ig_config_t *cfg = (ig_config_t *)1;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_manifests(file, NULL, &cfg, &errs);
  va_list ap;
  va_start(ap, yaml);
  size_t i = 0;
  int bad = rc != IG_ECONFIG || cfg != NULL;
  for (const char *want; (want = va_arg(ap, const char *)); i++) {
    int line, col, off = 0;
    assert_int_equal(sscanf(want, "%d:%d: %n", &line, &col, &off), 2);
    if (i >= errs.n || errs.v[i].line != line || errs.v[i].column != col ||
        !strstr(errs.v[i].message, want + off) || strcmp(errs.v[i].file, file)) {
      fprintf(stderr, "expected error %zu: %s\n", i, want);
      bad = 1;
    }
  }
  va_end(ap);
  if (i != errs.n) bad = 1;
  if (bad) {
    fprintf(stderr, "got (rc %d):\n", rc);
    ig_config_errors_print(&errs, stderr);
  }
  ig_config_errors_free(&errs);
  unlink(file);
  assert_false(bad);
}

static const ig_manifest_note_t *find_note(const ig_manifest_notes_t *notes, const char *reason,
                                           const char *name) {
  for (size_t i = 0; i < notes->n; i++)
    if (!strcmp(notes->v[i].reason, reason) &&
        (!name || (notes->v[i].name && !strcmp(notes->v[i].name, name))))
      return &notes->v[i];
  return NULL;
}

static long route_index(const ig_config_t *cfg, const char *name) {
  for (size_t i = 0; i < cfg->n_routes; i++)
    if (!strcmp(cfg->routes[i].name, name)) return (long)i;
  return -1;
}

static void assert_ep(const ig_backend_cfg_t *b, size_t i, const char *host, int port) {
  assert_true(i < b->n_endpoints);
  assert_string_equal(b->endpoints[i].host, host);
  assert_int_equal(b->endpoints[i].port, port);
}

static long match(const ig_config_t *cfg, size_t li, const char *host, const char *method, const char *path,
                  const char *hname, const char *hvalue) {
  ig_http_header_t h = {hname, hname ? strlen(hname) : 0, hvalue, hvalue ? strlen(hvalue) : 0};
  return ig_route_match(cfg, li, host, strlen(host), method, strlen(method), path, strlen(path), &h,
                        hname ? 1 : 0);
}

/* ---- the full example -------------------------------------------------------------------------- */

static void test_full(void **state) {
  (void)state;
  ig_manifest_notes_t notes = {0};
  ig_manifest_opts_t opts = {.notes = &notes};
  ig_config_t *cfg = load_ok(FULL, &opts);
  assert_string_equal(cfg->source, FULL);

  /* listeners: the TCP listener without a TCPRoute is dropped */
  assert_int_equal(cfg->n_listeners, 3);
  assert_string_equal(cfg->listeners[0].name, "inference-gateway/http");
  assert_string_equal(cfg->listeners[0].host, "127.0.0.1");
  assert_int_equal(cfg->listeners[0].port, 8080);
  assert_int_equal(cfg->listeners[0].protocol, IG_PROTO_HTTP);
  assert_string_equal(cfg->listeners[0].file, FULL "/00-gateway.yaml");
  assert_int_equal(cfg->listeners[0].line, 10);
  assert_string_equal(cfg->listeners[1].name, "inference-gateway/api");
  assert_int_equal(cfg->listeners[1].port, 8081);
  assert_string_equal(cfg->listeners[2].name, "inference-gateway/pg");
  assert_int_equal(cfg->listeners[2].protocol, IG_PROTO_TCP);
  assert_int_equal(cfg->listeners[2].port, 5432);
  assert_string_equal(cfg->listeners[2].tcp_backend, "postgres:5432");
  assert_string_equal(cfg->backends[cfg->listeners[2].tcp_backend_index].name, "postgres:5432");
  assert_null(cfg->admin_host);

  /* pools, from both API versions, with their ready Pods of the namespace (every target port) */
  assert_int_equal(cfg->n_backends, 5);
  const ig_backend_cfg_t *llama = &cfg->backends[0], *qwen = &cfg->backends[1];
  assert_string_equal(llama->name, "llama");
  assert_int_equal(llama->policy, IG_LB_INFERENCE);
  assert_int_equal(llama->engine, IG_ENGINE_VLLM);
  assert_string_equal(llama->scheduler, "gie");
  assert_int_equal(llama->scrape_interval_ms, 100);
  assert_string_equal(llama->metrics_path, "/metrics");
  assert_int_equal(llama->connect_timeout_ms, 2000);
  assert_string_equal(llama->file, FULL "/10-pools.yaml");
  assert_int_equal(llama->line, 2);
  assert_int_equal(llama->n_endpoints, 4);
  assert_ep(llama, 0, "10.0.0.1", 8000);
  assert_ep(llama, 1, "10.0.0.1", 8001);
  assert_ep(llama, 2, "10.0.0.2", 8000);
  assert_ep(llama, 3, "10.0.0.2", 8001);
  assert_string_equal(qwen->name, "qwen");
  assert_int_equal(qwen->policy, IG_LB_INFERENCE);
  assert_int_equal(qwen->engine, IG_ENGINE_SGLANG);
  assert_string_equal(qwen->scheduler, "default");
  assert_string_equal(qwen->metrics_path, "/stats");
  assert_int_equal(qwen->scrape_interval_ms, 50);
  assert_int_equal(qwen->n_endpoints, 1);
  assert_ep(qwen, 0, "10.0.1.1", 30000);

  /* Service backends: Endpoints (port by the Service port's name), EndpointSlice (ready only),
   * clusterIP */
  const ig_backend_cfg_t *echo = &cfg->backends[2], *canary = &cfg->backends[3], *pg = &cfg->backends[4];
  assert_string_equal(echo->name, "echo:80");
  assert_int_equal(echo->policy, IG_LB_ROUND_ROBIN);
  assert_int_equal(echo->n_endpoints, 2);
  assert_ep(echo, 0, "10.1.0.1", 8080);
  assert_ep(echo, 1, "10.1.0.2", 8080);
  assert_string_equal(canary->name, "echo-canary:80");
  assert_int_equal(canary->n_endpoints, 2);
  assert_ep(canary, 0, "10.2.0.1", 8080);
  assert_ep(canary, 1, "10.2.0.3", 8080);
  assert_string_equal(pg->name, "postgres:5432");
  assert_int_equal(pg->n_endpoints, 1);
  assert_ep(pg, 0, "10.96.0.10", 5432);

  /* routes: one per rule, the older HTTPRoute first; echo splits by listener hostname */
  assert_int_equal(cfg->n_routes, 4);
  const ig_route_cfg_t *r = &cfg->routes[0];
  assert_string_equal(r->name, "llm/0");
  assert_int_equal(r->n_listeners, 1);
  assert_string_equal(r->listeners[0], "inference-gateway/http");
  assert_int_equal(r->n_hostnames, 0);
  assert_int_equal(r->n_matches, 1);
  assert_int_equal(r->matches[0].path_type, IG_PATH_PREFIX);
  assert_string_equal(r->matches[0].path, "/v1");
  assert_string_equal(r->matches[0].method, "POST");
  assert_int_equal(r->matches[0].n_headers, 1);
  assert_string_equal(r->matches[0].headers[0].name, "x-pool");
  assert_string_equal(r->matches[0].headers[0].value, "qwen");
  assert_int_equal(r->n_backends, 1);
  assert_string_equal(r->backends[0].backend, "qwen");
  assert_int_equal(r->backends[0].backend_index, 1);
  assert_int_equal(r->backends[0].weight, 1);
  assert_int_equal(r->timeout_ms, 0);
  assert_string_equal(r->file, FULL "/30-routes.yaml");
  assert_int_equal(r->line, 11);
  r = &cfg->routes[1];
  assert_string_equal(r->name, "llm/1");
  assert_string_equal(r->matches[0].path, "/v1");
  assert_string_equal(r->matches[0].method, "POST");
  assert_string_equal(r->backends[0].backend, "llama");
  assert_int_equal(r->backends[0].backend_index, 0);
  assert_int_equal(r->timeout_ms, 150000);
  r = &cfg->routes[2];
  assert_string_equal(r->name, "echo/0/inference-gateway/http");
  assert_int_equal(r->n_listeners, 1);
  assert_string_equal(r->listeners[0], "inference-gateway/http");
  assert_int_equal(r->n_hostnames, 2);
  assert_string_equal(r->hostnames[0], "api.example.com");
  assert_string_equal(r->hostnames[1], "echo.test");
  assert_int_equal(r->matches[0].path_type, IG_PATH_EXACT);
  assert_string_equal(r->matches[0].path, "/echo");
  assert_int_equal(r->n_backends, 2);
  assert_string_equal(r->backends[0].backend, "echo:80");
  assert_int_equal(r->backends[0].weight, 3);
  assert_int_equal(r->backends[1].backend_index, 3);
  assert_int_equal(r->backends[1].weight, 1);
  r = &cfg->routes[3];
  assert_string_equal(r->name, "echo/0/inference-gateway/api");
  assert_string_equal(r->listeners[0], "inference-gateway/api");
  assert_int_equal(r->n_hostnames, 1);
  assert_string_equal(r->hostnames[0], "api.example.com");
  assert_int_equal(r->n_backends, 2);

  /* models: the newer duplicate is skipped */
  assert_int_equal(cfg->n_models, 3);
  const ig_model_cfg_t *m = ig_config_find_model(cfg, "llama3", 6);
  assert_non_null(m);
  assert_int_equal(m->criticality, IG_CRIT_CRITICAL);
  assert_string_equal(m->pool, "llama");
  assert_int_equal(m->pool_index, 0);
  assert_int_equal(m->n_targets, 2);
  assert_string_equal(m->targets[0].name, "llama3-lora-a");
  assert_int_equal(m->targets[0].weight, 80);
  assert_int_equal(m->targets[1].weight, 20);
  assert_string_equal(m->file, FULL "/20-models.yaml");
  assert_int_equal(m->line, 1);
  m = ig_config_find_model(cfg, "llama3-batch", 12);
  assert_non_null(m);
  assert_int_equal(m->criticality, IG_CRIT_SHEDDABLE);
  assert_int_equal(m->n_targets, 0);
  m = ig_config_find_model(cfg, "qwen2.5", 7);
  assert_non_null(m);
  assert_int_equal(m->criticality, IG_CRIT_STANDARD);
  assert_int_equal(m->pool_index, 1);
  assert_int_equal(m->n_targets, 2);
  assert_int_equal(m->targets[0].weight, 1);
  assert_int_equal(m->targets[1].weight, 1);
  assert_int_equal(cfg->max_body_bytes, 4u << 20);
  assert_null(cfg->default_model);

  /* the snapshot routes requests like a native one */
  assert_int_equal(match(cfg, 0, "x", "POST", "/v1/chat/completions", "X-Pool", "qwen"), 0);
  assert_int_equal(match(cfg, 0, "x", "POST", "/v1/chat/completions", NULL, NULL), 1);
  assert_int_equal(match(cfg, 0, "x", "GET", "/v1/models", NULL, NULL), -1);
  assert_int_equal(match(cfg, 0, "echo.test", "GET", "/echo", NULL, NULL), 2);
  assert_int_equal(match(cfg, 1, "api.example.com", "GET", "/echo", NULL, NULL), 3);
  assert_int_equal(match(cfg, 1, "echo.test", "GET", "/echo", NULL, NULL), -1);
  assert_int_equal(match(cfg, 1, "api.example.com", "POST", "/v1/completions", NULL, NULL), -1);

  /* notes, in file order */
  assert_int_equal(notes.n, 4);
  assert_string_equal(notes.v[0].reason, "NoRoute");
  assert_string_equal(notes.v[0].kind, "Gateway");
  assert_string_equal(notes.v[0].file, FULL "/00-gateway.yaml");
  assert_int_equal(notes.v[0].line, 20);
  assert_string_equal(notes.v[1].reason, "UnknownKind");
  assert_string_equal(notes.v[1].kind, "GatewayClass");
  const ig_manifest_note_t *n = &notes.v[2];
  assert_string_equal(n->reason, "ModelNameInUse");
  assert_string_equal(n->kind, "InferenceModel");
  assert_string_equal(n->ns, "default");
  assert_string_equal(n->name, "llama3-copy");
  assert_int_equal(n->line, 24);
  assert_int_equal(n->column, 14);
  assert_non_null(strstr(n->message, "older InferenceModel llama3"));
  assert_string_equal(notes.v[3].reason, "UnknownKind");
  assert_string_equal(notes.v[3].kind, "Deployment");
  ig_config_notes_free(&notes);
  assert_int_equal(notes.n, 0);
  ig_config_free(cfg);
}

/* ---- duplicate model names --------------------------------------------------------------------- */

#define HEAD                                                                                                 \
  "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"                          \
  "spec:\n  gatewayClassName: c\n  listeners:\n  - {name: web, port: 8080, protocol: HTTP}\n---\n"           \
  "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: p1}\n"                  \
  "spec: {selector: {matchLabels: {app: a}}, targetPorts: [{number: 8000}]}\n---\n"                          \
  "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata: {name: p2}\n"          \
  "spec: {selector: {app: b}, targetPortNumber: 8000}\n---\n"
/* HEAD is 18 lines; each MODEL 5 */

#define MODEL(name, ts, model, pool, crit)                                                                   \
  "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\n"                               \
  "metadata: {name: " name ts "}\nspec: {modelName: " model ", poolRef: {name: " pool                        \
  "}, criticality: " crit "}\n---\n"

static void test_model_precedence(void **state) {
  (void)state;
  /* the oldest wins wherever it is written; a model without a timestamp counts as newest; between
   * two without one, the name decides */
  const char *yaml =
      HEAD MODEL("m-new", ", creationTimestamp: '2025-03-01T00:00:00Z'", "llama", "p1", "Sheddable")
          MODEL("m-old", ", creationTimestamp: '2025-03-01T00:59:59.5+01:00'", "llama", "p1", "Critical")
              MODEL("m-none", "", "llama", "p1", "Standard") MODEL("z-b", "", "qwen", "p2", "Sheddable")
                  MODEL("z-a", "", "qwen", "p2", "Critical");
  ig_manifest_notes_t notes = {0};
  ig_manifest_opts_t opts = {.notes = &notes};
  ig_config_t *cfg = load_ok(write_file("t.yaml", yaml), &opts);
  assert_int_equal(cfg->n_models, 2);
  assert_string_equal(cfg->models[0].model_name, "llama");
  assert_int_equal(cfg->models[0].criticality, IG_CRIT_CRITICAL); /* m-old */
  assert_int_equal(cfg->models[0].line, 24);
  assert_string_equal(cfg->models[1].model_name, "qwen");
  assert_int_equal(cfg->models[1].criticality, IG_CRIT_CRITICAL); /* z-a */
  assert_string_equal(cfg->models[1].pool, "p2");
  assert_int_equal(notes.n, 5); /* and two pools without Pods */
  assert_non_null(find_note(&notes, "NoReadyEndpoints", "p1"));
  assert_non_null(find_note(&notes, "ModelNameInUse", "m-new"));
  assert_non_null(find_note(&notes, "ModelNameInUse", "m-none"));
  const ig_manifest_note_t *n = find_note(&notes, "ModelNameInUse", "z-b");
  assert_non_null(n);
  assert_int_equal(n->line, 37);
  assert_non_null(
      strstr(n->message, "InferenceModel z-b: spec.modelName: 'qwen' is already served in pool p2"));
  ig_config_notes_free(&notes);
  ig_config_free(cfg);

  /* the same name in two pools: infergate looks models up by name, so that is an error */
  expect_errors(HEAD MODEL("a", ", creationTimestamp: '2025-01-01T00:00:00Z'", "llama", "p1", "Standard")
                    MODEL("b", ", creationTimestamp: '2025-01-02T00:00:00Z'", "llama", "p2", "Standard"),
                "27:19: InferenceModel b: spec.modelName: 'llama' is also served by InferencePool p1", NULL);
}

/* ---- errors ------------------------------------------------------------------------------------ */

static void test_errors_gateway(void **state) {
  (void)state;
  expect_errors(
      "apiVersion: gateway.networking.k8s.io/v1\n"
      "kind: Gateway\n"
      "metadata:\n"
      "  name: gw\n"
      "spec:\n"
      "  gatewayClassName: c\n"
      "  listeners:\n"
      "    - name: web\n"
      "      port: 80800\n"
      "      protocol: HTTP\n"
      "    - name: tls\n"
      "      port: 8443\n"
      "      protocol: HTTPS\n"
      "    - name: web2\n"
      "      protocol: HTTP2\n"
      "      port: 8081\n"
      "    - port: 8082\n"
      "      protocol: TCP\n"
      "    - name: a\n"
      "      port: 8083\n"
      "      protocol: HTTP\n"
      "      hostname: 'bad host'\n"
      "    - name: a\n"
      "      port: 8083\n"
      "      protocol: HTTP\n",
      "9:13: spec.listeners[].port: out of range: 80800 (expected 1..65535)",
      "11:7: spec.listeners[1]: missing required field 'tls' for protocol HTTPS",
      "15:17: spec.listeners[].protocol: invalid value 'HTTP2' (expected one of: HTTP, TCP, HTTPS, TLS, UDP)",
      "17:7: spec.listeners[3]: missing required field 'name'",
      "22:17: spec.listeners[].hostname: invalid hostname 'bad host'",
      "23:13: spec.listeners: duplicate listener name 'a'", NULL);
}

static void test_errors(void **state) {
  (void)state;
  /* listener errors other than the first batch */
  expect_errors("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
                "spec:\n  gatewayClassName: c\n  listeners:\n"
                "    - {name: a, port: 8083, protocol: HTTP, hostname: 'bad host'}\n"
                "    - {name: a, port: 8084, protocol: HTTP}\n"
                "    - {name: b, port: 8083, protocol: HTTP}\n"
                "    - {name: t, port: 9000, protocol: TCP, tls: {mode: Terminate}}\n",
                "7:55: spec.listeners[].hostname: invalid hostname 'bad host'",
                "8:14: spec.listeners: duplicate listener name 'a'",
                "9:23: spec.listeners[].port: port 8083 is already used by listener gw/a",
                "10:49: spec.listeners[].tls: only HTTPS listeners take tls", NULL);
  /* resources themselves: not a mapping, no kind, no name, bad types, duplicates, bad timestamps */
  expect_errors("- a\n- b\n---\n"
                "apiVersion: v1\nmetadata: {name: x}\n---\n"
                "apiVersion: v1\nkind: Pod\nmetadata: {namespace: n}\n---\n"
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p, creationTimestamp: yesterday}\n---\n"
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\n"
                "apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nstatus: {podIP: 10.0.0.300}\n---\n"
                "apiVersion: v1\nkind: Pod\nmetadata: [x]\n",
                "1:1: expected a Kubernetes resource (a mapping with apiVersion and kind), got a list",
                "4:1: missing required field 'kind'", "9:11: metadata: missing required field 'name'",
                "13:40: Pod p: metadata.creationTimestamp: invalid time 'yesterday'",
                "17:18: Pod p: duplicate Pod (first defined at",
                "22:17: Pod q: status.podIP: invalid IP address '10.0.0.300'",
                "26:11: metadata: expected a mapping, got a list", NULL);
}

#define GW_WEB                                                                                               \
  "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"                          \
  "spec:\n  gatewayClassName: c\n  listeners:\n  - {name: web, port: 8080, protocol: HTTP}\n"                \
  "  - {name: db, port: 5432, protocol: TCP}\n---\n"
/* GW_WEB is 9 lines */
#define ROUTE_HEAD "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n"
/* ROUTE_HEAD is 4 lines: spec fields start at line 14 after GW_WEB */

static void test_errors_routes(void **state) {
  (void)state;
  expect_errors(
      GW_WEB ROUTE_HEAD
      "  parentRefs:\n"
      "  - name: nogw\n"
      "  - {name: gw, sectionName: nolistener}\n"
      "  - {name: gw, sectionName: db}\n"
      "  - {name: gw, kind: Service}\n"
      "  hostnames: ['-x.com']\n"
      "  rules:\n"
      "  - matches:\n"
      "    - path: {type: RegularExpression, value: '.*'}\n"
      "    - path: {value: v1}\n"
      "      method: FETCH\n"
      "      headers: [{name: 'bad header', value: x}, {name: A, value: 1}, {name: a, value: 2}]\n"
      "    - queryParams: [{name: a, value: b}]\n"
      "    filters: [{type: RequestHeaderModifier}]\n"
      "    backendRefs:\n"
      "    - {name: svc, port: 80}\n"
      "    - {name: p, kind: InferencePool, group: inference.networking.k8s.io}\n"
      "    - {name: x, kind: Bucket, group: s3}\n"
      "    - {name: svc2, namespace: other, port: 80}\n"
      "    - {name: svc3}\n"
      "    - {name: svc4, port: 80, weight: -1}\n"
      "    timeouts: {request: 10 s}\n"
      "  - backendRefs: []\n",
      "15:11: spec.parentRefs[0]: unknown Gateway 'nogw'",
      "16:29: spec.parentRefs[1]: Gateway gw has no listener 'nolistener'",
      "17:29: spec.parentRefs[2]: listener 'db' of Gateway gw is TCP; a HTTPRoute cannot attach to it",
      "18:5: spec.parentRefs[3]: only Gateway parents are supported",
      "19:15: spec.hostnames[]: invalid hostname '-x.com'",
      "22:20: matches[].path.type: RegularExpression is not supported yet",
      "23:21: matches[].path.value: 'v1' must start with '/'",
      "24:15: matches[].method: invalid value 'FETCH'",
      "25:24: matches[].headers[].name: invalid header name 'bad header'",
      "25:77: matches[].headers: duplicate header 'a'",
      "26:20: matches[].queryParams: query parameter matches are not supported yet",
      "27:15: rules[].filters[]: missing required field 'requestHeaderModifier'",
      "29:14: backendRefs[].name: cannot find endpoints for Service svc",
      "30:14: backendRefs[].name: unknown InferencePool 'p'",
      "31:7: backendRefs[]: unsupported backend s3/Bucket",
      "32:31: backendRefs[].namespace: references to another namespace are not supported yet",
      "33:7: rules[].backendRefs[]: missing required field 'port'",
      "34:14: backendRefs[].name: cannot find endpoints for Service svc4",
      "34:38: backendRefs[].weight: out of range: -1 (expected 0..1000000)",
      "35:25: rules[].timeouts.request: invalid duration '10 s'",
      "36:18: rules[].backendRefs: must not be empty", NULL);
  /* the whole route attached to nothing but a TCP listener; missing fields */
  expect_errors(GW_WEB ROUTE_HEAD "  rules: [{backendRefs: [{name: s, port: 80}]}]\n---\n"
                                  "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: "
                                  "10.0.0.1, ports: [{port: 81}]}\n",
                "14:3: HTTPRoute r: spec: missing required field 'parentRefs'",
                "14:33: HTTPRoute r: backendRefs[].name: Service s has no port 80", NULL);
}

static void test_errors_pools_models(void **state) {
  (void)state;
  expect_errors(
      GW_WEB
      "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\n"
      "metadata:\n  name: p\n  annotations:\n    infergate.io/engine: tgi\n"
      "    infergate.io/scheduler: fastest\n    infergate.io/metrics-path: metrics\n"
      "    infergate.io/scrape-interval: 5x\n"
      "spec:\n  selector: {matchLabels: {}, matchExpressions: [{key: a, operator: In}]}\n"
      "  targetPorts: [{number: 8000}, {number: 8000}, {number: 0}]\n"
      "  appProtocol: kubernetes.io/h2c\n---\n"
      "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata: {name: q}\n"
      "spec: {selector: [app], targetPortNumber: 70000}\n---\n"
      "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: m}\n"
      "spec:\n  modelName: ''\n  criticality: Urgent\n  poolRef: {name: nopool}\n"
      "  targetModels: [{name: a, weight: 10}, {name: b}, {name: a, weight: 0}]\n---\n"
      "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: m2}\n"
      "spec: {modelName: x, poolRef: {name: q, kind: Service}}\n---\n"
      "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: m3}\n"
      "spec: {poolRef: {name: q}}\n",
      "15:26: metadata.annotations.infergate.io/engine: invalid value 'tgi' (expected one of: vllm, vllm-v0, "
      "sglang, trtllm)",
      "16:29: metadata.annotations.infergate.io/scheduler: invalid value 'fastest'",
      "17:32: metadata.annotations.infergate.io/metrics-path: must start with '/'",
      "18:35: metadata.annotations.infergate.io/scrape-interval: invalid duration '5x'",
      "20:27: spec.selector: must select at least one label",
      "20:49: spec.selector.matchExpressions: not supported (use matchLabels)",
      "21:42: spec.targetPorts: duplicate port 8000",
      "21:58: spec.targetPorts[].number: out of range: 0 (expected 1..65535)",
      "22:16: spec.appProtocol: 'kubernetes.io/h2c' is not supported",
      "27:18: spec.selector: expected a mapping, got a list",
      "27:43: spec.targetPortNumber: out of range: 70000", "33:14: spec.modelName: must not be empty",
      "34:16: spec.criticality: invalid value 'Urgent' (expected one of: Critical, Standard, Sheddable)",
      "35:19: spec.poolRef.name: unknown InferencePool 'nopool'",
      "36:41: spec.targetModels: weights must be set on all targets or on none",
      "36:59: spec.targetModels: duplicate target 'a'",
      "36:70: spec.targetModels[].weight: out of range: 0 (expected 1..1000000)",
      "41:31: spec.poolRef: must reference an InferencePool",
      "46:7: spec: missing required field 'modelName'", NULL);
}

static void test_errors_tcp_and_yaml(void **state) {
  (void)state;
  expect_errors(
      GW_WEB
      "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: t}\n"
      "spec:\n  parentRefs: [{name: gw, sectionName: web}]\n"
      "  rules: [{backendRefs: [{name: a, port: 1}, {name: b, port: 2}]}]\n---\n"
      "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: t2}\n"
      "spec:\n  parentRefs: [{name: gw}]\n"
      "  rules: [{backendRefs: [{name: p, kind: InferencePool, group: inference.networking.k8s.io}]}]\n",
      "14:40: listener 'web' of Gateway gw is HTTP; a TCPRoute cannot attach",
      "15:25: rules[0].backendRefs: exactly one backendRef is supported, got 2",
      "22:26: backendRefs[0]: a TCPRoute backend must be a Service", NULL);
  expect_errors("apiVersion: v1\nkind: Pod\nmetadata: &m {name: a}\n---\nkind: Pod\nmetadata: *m\n",
                "6:11: YAML aliases (*m) are not supported", NULL);
  expect_errors("apiVersion: v1\nkind: Pod\nmetadata: {name: a\n",
                "4:1: YAML syntax error: did not find expected ',' or '}'", NULL);
  /* nothing usable: no listener */
  expect_errors("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
                "0:0: no listeners: the manifests define no usable Gateway listener", NULL);
}

/* ---- directories and options ------------------------------------------------------------------- */

static void test_directory_order(void **state) {
  (void)state;
  char dir[128], sub[160];
  snprintf(dir, sizeof dir, "%s/dir", tmpdir);
  snprintf(sub, sizeof sub, "%s/sub.yaml", dir);
  assert_int_equal(mkdir(dir, 0700), 0);
  assert_int_equal(mkdir(sub, 0700), 0); /* a directory named like a manifest is skipped */
  const char *pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s, labels: {app: a}}\n"
                    "status: {phase: Running, podIP: %s, conditions: [{type: Ready, status: 'True'}]}\n";
  char text[512], name[256];
  static const char *const files[][2] = {
      {"b.yaml", "10.0.0.2"}, {"a.yml", "10.0.0.1"}, {"c.yaml", "10.0.0.3"}};
  for (size_t i = 0; i < 3; i++) {
    snprintf(text, sizeof text, pod, files[i][0], files[i][1]);
    snprintf(name, sizeof name, "dir/%s", files[i][0]);
    write_file(name, text);
  }
  write_file("dir/.hidden.yaml", "not: [valid");
  write_file("dir/notes.txt", "not yaml at all: [");
  write_file("dir/gw.yaml",
             "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
             "spec: {gatewayClassName: c, listeners: [{name: web, port: 8080, protocol: HTTP}]}\n---\n"
             "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\n"
             "metadata: {name: p}\nspec: {selector: {app: a}, targetPortNumber: 8000}\n");
  ig_config_t *cfg = load_ok(dir, NULL);
  assert_int_equal(cfg->n_backends, 1);
  assert_int_equal(cfg->backends[0].n_endpoints, 3);
  assert_ep(&cfg->backends[0], 0, "10.0.0.1", 8000); /* a.yml */
  assert_ep(&cfg->backends[0], 1, "10.0.0.2", 8000); /* b.yaml */
  assert_ep(&cfg->backends[0], 2, "10.0.0.3", 8000); /* c.yaml */
  snprintf(name, sizeof name, "%s/gw.yaml", dir);
  assert_string_equal(cfg->backends[0].file, name);
  assert_string_equal(cfg->source, dir);
  ig_config_free(cfg);

  /* errors come in file order, a duplicate names the first definition in the earlier file */
  write_file("dir/d.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a.yml}\n");
  write_file("dir/0.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nstatus: {podIP: nope}\n");
  ig_config_errors_t errs = {0};
  assert_int_equal(ig_config_load_manifests(dir, NULL, &cfg, &errs), IG_ECONFIG);
  assert_null(cfg);
  assert_int_equal(errs.n, 2);
  snprintf(name, sizeof name, "%s/0.yaml", dir);
  assert_string_equal(errs.v[0].file, name);
  snprintf(name, sizeof name, "%s/d.yaml", dir);
  assert_string_equal(errs.v[1].file, name);
  snprintf(text, sizeof text, "Pod a.yml: duplicate Pod (first defined at %s/a.yml:1)", dir);
  assert_string_equal(errs.v[1].message, text);
  ig_config_errors_free(&errs);

  /* a directory without manifests; a path that does not exist */
  snprintf(sub, sizeof sub, "%s/empty", tmpdir);
  assert_int_equal(mkdir(sub, 0700), 0);
  assert_int_equal(ig_config_load_manifests(sub, NULL, &cfg, &errs), IG_ECONFIG);
  assert_int_equal(errs.n, 1);
  assert_string_equal(errs.v[0].file, sub);
  assert_int_equal(errs.v[0].line, 0);
  assert_string_equal(errs.v[0].message, "no *.yaml or *.yml files in the directory");
  ig_config_errors_free(&errs);
  assert_int_equal(ig_config_load_manifests(DATA "nope", NULL, &cfg, &errs), IG_ECONFIG);
  assert_string_equal(errs.v[0].message, "cannot open: No such file or directory");
  ig_config_errors_free(&errs);
}

static int fake_resolver(const char *host, char *out, size_t cap, const char **why) {
  if (!strcmp(host, "gw.local")) {
    snprintf(out, cap, "10.9.9.9");
    return 0;
  }
  if (!strcmp(host, "db.local")) {
    snprintf(out, cap, "10.8.8.8");
    return 0;
  }
  if (strspn(host, "0123456789.") == strlen(host)) {
    snprintf(out, cap, "%s", host);
    return 0;
  }
  *why = "not found";
  return -1;
}

static void test_options(void **state) {
  (void)state;
  ig_config_set_resolver(fake_resolver);
  const char *yaml =
      "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: prod}\n"
      "spec:\n  gatewayClassName: ours\n  listeners:\n"
      "  - {name: web, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}\n"
      "  - {name: web2, port: 8081, protocol: HTTP}\n---\n"
      "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: theirs}\n"
      "spec: {gatewayClassName: istio, listeners: [{name: web, port: 80, protocol: HTTP}]}\n---\n"
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
      "spec:\n  parentRefs: [{name: gw, namespace: prod}, {name: theirs}]\n"
      "  rules: [{backendRefs: [{name: db, port: 5432}]}]\n---\n"
      "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\n"
      "  annotations: {infergate.io/endpoints: 'db.local:5432, 10.0.0.7:5433'}\n"
      "spec: {clusterIP: None, ports: [{port: 5432}]}\n";
  const char *path = write_file("t.yaml", yaml);
  ig_manifest_port_t ports[] = {{"prod/gw/web", 18080}};
  ig_manifest_notes_t notes = {0};
  ig_manifest_opts_t opts = {.listen_host = "gw.local",
                             .port_offset = 10000,
                             .ports = ports,
                             .n_ports = 1,
                             .admin = "127.0.0.1:9901",
                             .gateway_class = "ours",
                             .notes = &notes};
  ig_config_t *cfg = load_ok(path, &opts);
  assert_int_equal(cfg->n_listeners, 2);
  assert_string_equal(cfg->listeners[0].name, "prod/gw/web");
  assert_string_equal(cfg->listeners[0].host, "10.9.9.9");
  assert_int_equal(cfg->listeners[0].port, 18080);
  assert_int_equal(cfg->listeners[1].port, 18081);
  assert_string_equal(cfg->admin_host, "127.0.0.1");
  assert_int_equal(cfg->admin_port, 9901);
  /* from another namespace: only the listener that allows All */
  assert_int_equal(cfg->n_routes, 1);
  assert_string_equal(cfg->routes[0].name, "r/0");
  assert_int_equal(cfg->routes[0].n_listeners, 1);
  assert_string_equal(cfg->routes[0].listeners[0], "prod/gw/web");
  assert_string_equal(cfg->backends[0].name, "db:5432");
  assert_int_equal(cfg->backends[0].n_endpoints, 2);
  assert_ep(&cfg->backends[0], 0, "10.8.8.8", 5432);
  assert_ep(&cfg->backends[0], 1, "10.0.0.7", 5433);
  assert_non_null(find_note(&notes, "OtherGatewayClass", "theirs"));
  const ig_manifest_note_t *n = find_note(&notes, "NotAllowedByListeners", "r");
  assert_non_null(n);
  assert_non_null(strstr(n->message, "listener prod/gw/web2 only allows routes of namespace prod"));
  ig_config_notes_free(&notes);
  ig_config_free(cfg);

  /* the default namespace is an option; the bare listener name overrides too */
  ig_manifest_port_t bare[] = {{"web", 28080}, {"nope", 1}};
  ig_manifest_opts_t o2 = {.default_namespace = "prod", .ports = bare, .n_ports = 1, .gateway_class = "ours"};
  cfg = load_ok(path, &o2);
  assert_int_equal(cfg->n_listeners, 2);
  assert_string_equal(cfg->listeners[0].name, "gw/web");
  assert_int_equal(cfg->listeners[0].port, 28080);
  assert_string_equal(cfg->routes[0].name, "r/0"); /* in the default namespace, which is now prod */
  ig_config_free(cfg);
  /* "web" names a listener of every Gateway: with both served, two listeners want port 28080 */
  ig_config_errors_t errs = {0};
  o2.gateway_class = NULL;
  assert_int_equal(ig_config_load_manifests(path, &o2, &cfg, &errs), IG_ECONFIG);
  assert_int_equal(errs.n, 1);
  assert_non_null(strstr(errs.v[0].message, "port 28080 is already used by listener gw/web"));
  ig_config_errors_free(&errs);
  /* errors in the options: no line */
  o2.default_namespace = NULL;
  o2.n_ports = 2;
  o2.gateway_class = "ours";
  o2.listen_host = "nowhere";
  o2.admin = "127.0.0.1:x";
  assert_int_equal(ig_config_load_manifests(path, &o2, &cfg, &errs), IG_ECONFIG);
  assert_int_equal(errs.n, 3);
  assert_string_equal(errs.v[0].message, "cannot resolve listen host 'nowhere': not found");
  assert_string_equal(errs.v[1].message, "port override for unknown listener 'nope'");
  assert_string_equal(errs.v[2].message, "invalid admin address '127.0.0.1:x' (expected HOST:PORT)");
  ig_config_errors_free(&errs);
  ig_config_set_resolver(NULL);
}

static void test_listener_hostnames(void **state) {
  (void)state;
  const char *yaml =
      "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
      "spec:\n  gatewayClassName: c\n  listeners:\n"
      "  - {name: a, port: 8080, protocol: HTTP, hostname: 'api.example.com'}\n"
      "  - {name: b, port: 8081, protocol: HTTP, hostname: '*.example.com'}\n"
      "  - {name: c, port: 8082, protocol: HTTP, hostname: 'other.org'}\n"
      "  bogus: 1\n---\n"
      "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: InferencePool\nmetadata: {name: old}\n---\n"
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: wild}\n"
      "spec:\n  parentRefs: [{name: gw, sectionName: a}, {name: gw, sectionName: b}, {name: gw, sectionName: "
      "c}]\n"
      "  hostnames: ['*.Example.com']\n"
      "  rules: [{backendRefs: [{name: s, port: 80}]}]\n---\n"
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: any}\n"
      "spec:\n  parentRefs: [{name: gw, port: 8081}]\n"
      "  rules: [{backendRefs: [{name: s, port: 80}]}]\n---\n"
      "apiVersion: v1\nkind: Endpoints\nmetadata: {name: s}\nsubsets: []\n";
  ig_manifest_notes_t notes = {0};
  ig_manifest_opts_t opts = {.notes = &notes};
  ig_config_t *cfg = load_ok(write_file("t.yaml", yaml), &opts);
  assert_int_equal(cfg->n_routes, 3);
  long a = route_index(cfg, "any/0");
  assert_true(a >= 0);
  assert_int_equal(cfg->routes[a].n_hostnames, 1);
  assert_string_equal(cfg->routes[a].hostnames[0], "*.example.com");
  assert_string_equal(cfg->routes[a].listeners[0], "gw/b");
  long w1 = route_index(cfg, "wild/0/gw/a"), w2 = route_index(cfg, "wild/0/gw/b");
  assert_true(w1 >= 0 && w2 >= 0);
  assert_string_equal(cfg->routes[w1].hostnames[0], "api.example.com");
  assert_string_equal(cfg->routes[w2].hostnames[0], "*.example.com");
  assert_non_null(find_note(&notes, "NoMatchingListenerHostname", "wild"));
  const ig_manifest_note_t *n = find_note(&notes, "UnknownField", "gw");
  assert_non_null(n);
  assert_int_equal(n->line, 10);
  assert_int_equal(n->column, 3);
  assert_string_equal(n->message, "Gateway gw: spec: unknown field 'bogus' ignored");
  assert_non_null(find_note(&notes, "UnsupportedVersion", "old"));
  /* a Service whose Endpoints have no address: 503 at run time, a note now */
  assert_int_equal(cfg->backends[0].n_endpoints, 0);
  assert_non_null(find_note(&notes, "NoReadyEndpoints", "any")); /* "any" sorts first */
  ig_config_notes_free(&notes);
  ig_config_free(cfg);
}

static void test_port_parse(void **state) {
  (void)state;
  char name[16];
  int port = 0;
  assert_int_equal(ig_config_manifest_port_parse("gw/web=8080", name, sizeof name, &port), 0);
  assert_string_equal(name, "gw/web");
  assert_int_equal(port, 8080);
  assert_int_equal(ig_config_manifest_port_parse("web=0", name, sizeof name, &port), IG_EINVAL);
  assert_int_equal(ig_config_manifest_port_parse("web=65536", name, sizeof name, &port), IG_EINVAL);
  assert_int_equal(ig_config_manifest_port_parse("=80", name, sizeof name, &port), IG_EINVAL);
  assert_int_equal(ig_config_manifest_port_parse("web=", name, sizeof name, &port), IG_EINVAL);
  assert_int_equal(ig_config_manifest_port_parse("web", name, sizeof name, &port), IG_EINVAL);
  assert_int_equal(ig_config_manifest_port_parse("a-very-long-listener-name=80", name, sizeof name, &port),
                   IG_EINVAL);
  assert_int_equal(ig_config_manifest_port_parse("web=8x", name, sizeof name, &port), IG_EINVAL);
}

/* ---- check ------------------------------------------------------------------------------------- */

static int run_check(char *out, size_t cap, int argc, char **argv) {
  char path[] = "/tmp/ig_check_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stdout);
  fflush(stderr);
  int so = dup(1), se = dup(2);
  dup2(fd, 1);
  dup2(fd, 2);
  int rc = ig_cmd_check(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(so, 1);
  dup2(se, 2);
  close(so);
  close(se);
  ssize_t n = pread(fd, out, cap - 1, 0);
  out[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
  return rc;
}

static void test_check_command(void **state) {
  (void)state;
  char out[8192];
  char *ok[] = {"check", "--manifests", FULL, NULL};
  assert_int_equal(run_check(out, sizeof out, 3, ok), 0);
  assert_non_null(strstr(out, FULL ": ok (3 listeners, 4 routes, 3 backends, 2 pools, 3 models)\n"));
  assert_non_null(strstr(out, FULL
                         "/20-models.yaml:24:14: warning: InferenceModel llama3-copy: spec.modelName: "
                         "'llama3' is already served in pool llama by the older InferenceModel llama3; this "
                         "one is skipped [ModelNameInUse]\n"));
  char *quiet[] = {"check", "-q", "--manifests=" FULL, NULL};
  assert_int_equal(run_check(out, sizeof out, 3, quiet), 0);
  assert_string_equal(out, "");
  const char *bad =
      write_file("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {podIP: x}\n");
  char badpath[256];
  snprintf(badpath, sizeof badpath, "%s", bad);
  char *err[] = {"check", "--manifests", badpath, NULL};
  assert_int_equal(run_check(out, sizeof out, 3, err), 1);
  char want[512];
  snprintf(want, sizeof want, "%s:4:17: error: Pod p: status.podIP: invalid IP address 'x'\n", badpath);
  assert_non_null(strstr(out, want));
  snprintf(want, sizeof want, "%s: 1 error\n", badpath);
  assert_non_null(strstr(out, want));
  char *both[] = {"check", "-c", "x.yaml", "--manifests", FULL, NULL};
  assert_int_equal(run_check(out, sizeof out, 5, both), 2);
  char *missing[] = {"check", "--manifests", NULL};
  assert_int_equal(run_check(out, sizeof out, 2, missing), 2);
  char *help[] = {"check", "--help", NULL};
  assert_int_equal(run_check(out, sizeof out, 2, help), 0);
  assert_non_null(strstr(out, "--manifests PATH"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full),
      cmocka_unit_test(test_model_precedence),
      cmocka_unit_test(test_errors_gateway),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_errors_routes),
      cmocka_unit_test(test_errors_pools_models),
      cmocka_unit_test(test_errors_tcp_and_yaml),
      cmocka_unit_test(test_directory_order),
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_listener_hostnames),
      cmocka_unit_test(test_port_parse),
      cmocka_unit_test(test_check_command),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

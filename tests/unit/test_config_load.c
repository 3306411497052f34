/* Native YAML config: a full file round-trips into ig_config_t; each class of mistake is reported at
 * the right line:column with the right message; all errors are reported, in file order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "infergate/cmd.h"
#include "infergate/config.h"
#include "infergate/core.h"

#define DATA "tests/unit/data/config/"

static ig_config_t *load_ok(const char *yaml) {
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &errs);
  if (rc != 0) ig_config_errors_print(&errs, stderr);
  assert_int_equal(rc, 0);
  assert_int_equal(errs.n, 0);
  assert_non_null(cfg);
  ig_config_errors_free(&errs);
  return cfg;
}

/* Loads yaml (which must fail) and checks the errors one for one against the NULL-terminated list of
 * "LINE:COL: substring-of-message" expectations, in order. */
static void expect_errors(const char *yaml, ...) {
  ig_config_t *cfg = (ig_config_t *)1;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &errs);
  va_list ap;
  va_start(ap, yaml);
  size_t i = 0;
  int bad = rc != IG_ECONFIG || cfg != NULL;
  for (const char *want; (want = va_arg(ap, const char *)); i++) {
    int line, col, off = 0;
    assert_int_equal(sscanf(want, "%d:%d: %n", &line, &col, &off), 2);
    if (i >= errs.n || errs.v[i].line != line || errs.v[i].column != col ||
        !strstr(errs.v[i].message, want + off) || strcmp(errs.v[i].file, "t.yaml")) {
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
  assert_false(bad);
}

#define LISTENER "listeners:\n  - name: web\n    address: 127.0.0.1:8080\n"
#define POOL "pools:\n  - name: llama\n    endpoints: [127.0.0.1:8001]\n"

static void test_full_roundtrip(void **state) {
  (void)state;
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load(DATA "full.yaml", &cfg, &errs);
  ig_config_errors_print(&errs, stderr);
  assert_int_equal(rc, 0);
  assert_string_equal(cfg->source, DATA "full.yaml");

  assert_int_equal(cfg->n_listeners, 3);
  assert_string_equal(cfg->listeners[0].name, "web");
  assert_string_equal(cfg->listeners[0].host, "127.0.0.1");
  assert_int_equal(cfg->listeners[0].port, 8080);
  assert_int_equal(cfg->listeners[0].protocol, IG_PROTO_HTTP);
  assert_null(cfg->listeners[0].tcp_backend);
  assert_int_equal(cfg->listeners[0].line, 3);
  assert_ptr_equal(cfg->listeners[0].file, cfg->source);
  assert_string_equal(cfg->listeners[1].host, "127.0.0.1"); /* localhost resolved, IPv4 first */
  assert_int_equal(cfg->listeners[1].port, 8081);
  assert_string_equal(cfg->listeners[2].host, "::1");
  assert_int_equal(cfg->listeners[2].protocol, IG_PROTO_TCP);
  assert_string_equal(cfg->listeners[2].tcp_backend, "db");
  assert_int_equal(cfg->listeners[2].tcp_backend_index, 1);

  assert_string_equal(cfg->admin_host, "127.0.0.1");
  assert_int_equal(cfg->admin_port, 9901);
  assert_int_equal(cfg->max_header_bytes, 32 * 1024);
  assert_int_equal(cfg->max_headers, 64);
  assert_int_equal(cfg->max_body_bytes, 8 << 20);
  assert_int_equal(cfg->max_connections, 500);
  assert_int_equal(cfg->client_timeout_ms, 30000);
  assert_int_equal(cfg->drain_timeout_ms, 120000);
  assert_string_equal(cfg->access_log, "/var/log/infergate/access.log");
  assert_string_equal(cfg->default_model, "llama3");

  assert_int_equal(cfg->n_backends, 3);
  const ig_backend_cfg_t *b = &cfg->backends[0];
  assert_string_equal(b->name, "echo");
  assert_int_equal(b->policy, IG_LB_LEAST_REQUEST);
  assert_int_equal(b->n_endpoints, 2);
  assert_string_equal(b->endpoints[0].host, "127.0.0.1");
  assert_int_equal(b->endpoints[0].port, 9000);
  assert_string_equal(b->endpoints[1].host, "127.0.0.1");
  assert_int_equal(b->endpoints[1].port, 9001);
  assert_int_equal(b->connect_timeout_ms, 500);
  assert_int_equal(b->response_timeout_ms, 60000);
  assert_int_equal(b->idle_timeout_ms, 3600000);
  assert_int_equal(b->max_idle_conns, 8);
  b = &cfg->backends[1];
  assert_string_equal(b->name, "db");
  assert_int_equal(b->policy, IG_LB_ROUND_ROBIN);
  assert_int_equal(b->connect_timeout_ms, 2000);
  assert_int_equal(b->response_timeout_ms, 60000);
  assert_int_equal(b->idle_timeout_ms, 300000);
  assert_int_equal(b->max_idle_conns, 64);
  b = &cfg->backends[2];
  assert_string_equal(b->name, "llama");
  assert_int_equal(b->policy, IG_LB_INFERENCE);
  assert_int_equal(b->n_endpoints, 2);
  assert_int_equal(b->endpoints[1].port, 8002);
  assert_int_equal(b->engine, IG_ENGINE_SGLANG);
  assert_int_equal(b->scrape_interval_ms, 100);
  assert_string_equal(b->metrics_path, "/stats");
  assert_string_equal(b->scheduler, "gie");
  assert_int_equal(b->connect_timeout_ms, 1000);
  assert_int_equal(b->response_timeout_ms, 120000);
  assert_int_equal(b->idle_timeout_ms, 30000);
  assert_int_equal(b->max_idle_conns, 16);

  assert_int_equal(cfg->n_models, 2);
  const ig_model_cfg_t *m = &cfg->models[0];
  assert_string_equal(m->model_name, "llama3");
  assert_string_equal(m->pool, "llama");
  assert_int_equal(m->pool_index, 2);
  assert_int_equal(m->criticality, IG_CRIT_CRITICAL);
  assert_int_equal(m->n_targets, 2);
  assert_string_equal(m->targets[0].name, "llama3-lora-a");
  assert_int_equal(m->targets[0].weight, 80);
  assert_int_equal(m->targets[1].weight, 20);
  assert_int_equal(cfg->models[1].criticality, IG_CRIT_SHEDDABLE);
  assert_int_equal(cfg->models[1].n_targets, 0);

  assert_int_equal(cfg->n_routes, 2);
  const ig_route_cfg_t *r = &cfg->routes[0];
  assert_string_equal(r->name, "api");
  assert_int_equal(r->n_listeners, 1);
  assert_string_equal(r->listeners[0], "web");
  assert_int_equal(r->n_hostnames, 2);
  assert_string_equal(r->hostnames[0], "api.example.com");
  assert_string_equal(r->hostnames[1], "*.example.com");
  assert_int_equal(r->n_matches, 2);
  assert_int_equal(r->matches[0].path_type, IG_PATH_PREFIX);
  assert_string_equal(r->matches[0].path, "/v1");
  assert_string_equal(r->matches[0].method, "POST");
  assert_int_equal(r->matches[0].n_headers, 1);
  assert_string_equal(r->matches[0].headers[0].name, "x-tenant");
  assert_string_equal(r->matches[0].headers[0].value, "a");
  assert_int_equal(r->matches[1].path_type, IG_PATH_EXACT);
  assert_string_equal(r->matches[1].path, "/health");
  assert_null(r->matches[1].method);
  assert_int_equal(r->n_backends, 2);
  assert_string_equal(r->backends[0].backend, "llama");
  assert_int_equal(r->backends[0].backend_index, 2);
  assert_int_equal(r->backends[0].weight, 3);
  assert_int_equal(r->backends[1].weight, 1);
  assert_int_equal(r->timeout_ms, 30000);
  r = &cfg->routes[1];
  assert_int_equal(r->n_listeners, 0);
  assert_int_equal(r->n_hostnames, 0);
  assert_int_equal(r->n_backends, 1);
  assert_string_equal(r->backends[0].backend, "echo");
  assert_int_equal(r->backends[0].backend_index, 0);
  assert_int_equal(r->timeout_ms, 0);

  assert_int_equal(ig_config_find_backend(cfg, "llama"), 2);
  assert_int_equal(ig_config_find_backend(cfg, "db"), 1);
  assert_int_equal(ig_config_find_backend(cfg, "nope"), -1);
  assert_ptr_equal(ig_config_find_model(cfg, "llama3", 6), &cfg->models[0]);
  assert_ptr_equal(ig_config_find_model(cfg, "llama3-batchXX", 12), &cfg->models[1]);
  assert_null(ig_config_find_model(cfg, "llama", 5));
  assert_null(ig_config_find_model(cfg, "llama3x", 7));
  ig_config_free(cfg);
  ig_config_errors_free(&errs);
}

/* The shipped example must stay valid. */
static void test_example_is_valid(void **state) {
  (void)state;
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load("examples/gateway.yaml", &cfg, &errs);
  ig_config_errors_print(&errs, stderr);
  assert_int_equal(rc, 0);
  assert_int_equal(cfg->n_listeners, 2);
  assert_non_null(ig_config_find_model(cfg, "llama3-chat", 11));
  ig_config_free(cfg);
  ig_config_errors_free(&errs);
}

static void test_defaults(void **state) {
  (void)state;
  ig_config_t *cfg = load_ok(LISTENER POOL "routes:\n  - name: r\n    backend: llama\n");
  assert_null(cfg->admin_host);
  assert_int_equal(cfg->max_header_bytes, 16384);
  assert_int_equal(cfg->max_headers, 100);
  assert_int_equal(cfg->max_body_bytes, 4 << 20);
  assert_int_equal(cfg->max_connections, 10000);
  assert_int_equal(cfg->client_timeout_ms, 60000);
  assert_int_equal(cfg->drain_timeout_ms, 10000);
  assert_null(cfg->access_log);
  assert_null(cfg->default_model);
  const ig_backend_cfg_t *b = &cfg->backends[0];
  assert_int_equal(b->engine, IG_ENGINE_VLLM);
  assert_int_equal(b->scrape_interval_ms, 50);
  assert_string_equal(b->metrics_path, "/metrics");
  assert_string_equal(b->scheduler, "default");
  assert_int_equal(cfg->routes[0].n_matches, 0);
  assert_int_equal(cfg->routes[0].backends[0].weight, 1);
  ig_config_free(cfg);
}

static void test_units(void **state) {
  (void)state;
  ig_config_t *cfg = load_ok(LISTENER "limits:\n  max_header_bytes: 2KB\n  max_body_bytes: 1gib\n"
                                      "timeouts:\n  client: 1h\n  drain: 250\naccess_log: off\n");
  assert_int_equal(cfg->max_header_bytes, 2000);
  assert_int_equal(cfg->max_body_bytes, 1u << 30);
  assert_int_equal(cfg->client_timeout_ms, 3600000);
  assert_int_equal(cfg->drain_timeout_ms, 250);
  assert_null(cfg->access_log);
  ig_config_free(cfg);
  cfg = load_ok(LISTENER "access_log: \"-\"\nlimits:\n  max_body_bytes: 512\n");
  assert_string_equal(cfg->access_log, "-");
  assert_int_equal(cfg->max_body_bytes, 512);
  ig_config_free(cfg);
}

static void test_unknown_keys(void **state) {
  (void)state;
  expect_errors(
      LISTENER "backends:\n  - name: echo\n    polcy: random\n    endpoints: [127.0.0.1:1]\n",
      "6:5: unknown key 'polcy' in backend (expected one of: name, policy, endpoints, connect_timeout, "
      "response_timeout, idle_timeout, max_idle_conns, tls, max_streams_per_endpoint, circuit_breaker)",
      NULL);
  expect_errors(LISTENER "listner: {}\n",
                "4:1: unknown key 'listner' in the top level (expected one of: listeners, admin", NULL);
  expect_errors(LISTENER "limits: {max_headerz: 1}\n", "4:10: unknown key 'max_headerz' in limits", NULL);
  expect_errors(LISTENER POOL
                "routes:\n  - name: r\n    backend: llama\n    matches:\n      - path: {type: Exact, "
                "valu: /x}\n",
                "11:29: unknown key 'valu' in match path", NULL);
  expect_errors(LISTENER "listeners: []\n",
                "4:1: duplicate key 'listeners' in the top level (first given at line 1)", NULL);
}

static void test_wrong_types(void **state) {
  (void)state;
  expect_errors("listeners:\n  name: web\n",
                "2:3: expected a list for 'listeners' in the top level, got a mapping", NULL);
  expect_errors("- a\n- b\n", "1:1: expected a mapping for the top level, got a list", NULL);
  expect_errors(LISTENER "backends:\n  - name: e\n    endpoints: 127.0.0.1:1\n",
                "6:16: expected a list for 'endpoints' in backend, got a scalar", NULL);
  expect_errors(LISTENER "backends:\n  - [a]\n", "5:5: expected a mapping for backend, got a list", NULL);
  expect_errors("listeners:\n  - name: [web]\n    address: 127.0.0.1:1\n",
                "2:11: expected a string for 'name' in listener, got a list", NULL);
  expect_errors(LISTENER "admin: 127.0.0.1:9901\n", "4:8: expected a mapping for admin, got a scalar", NULL);
  expect_errors(LISTENER "{a: 1}: 2\n", "4:1: keys in the top level must be strings, got a mapping", NULL);
}

static void test_bad_values(void **state) {
  (void)state;
  expect_errors(LISTENER "limits:\n  max_headers: lots\n",
                "5:16: invalid integer 'lots' for 'max_headers' in limits", NULL);
  expect_errors(LISTENER "limits:\n  max_headers: 0\n",
                "5:16: 'max_headers' in limits is out of range: 0 (expected 1..10000)", NULL);
  expect_errors(LISTENER "limits:\n  max_connections: 99999999999999999999999\n",
                "5:20: 'max_connections' in limits is out of range", NULL);
  expect_errors(LISTENER "limits:\n  max_body_bytes: 4MB5\n",
                "5:19: invalid size '4MB5' for 'max_body_bytes' in limits", NULL);
  expect_errors(LISTENER "limits:\n  max_body_bytes: 2GiB\n",
                "5:19: 'max_body_bytes' in limits is out of range: 2GiB (expected 1..1GiB bytes)", NULL);
  expect_errors(LISTENER "timeouts:\n  client: 5 s\n",
                "5:11: invalid duration '5 s' for 'client' in timeouts (expected e.g. 250ms, 2s, 1m, 1h)",
                NULL);
  expect_errors(LISTENER "timeouts:\n  client: 25h\n",
                "5:11: 'client' in timeouts is out of range: 25h (expected 1ms..24h)", NULL);
  expect_errors(LISTENER "timeouts:\n  client: -1s\n", "5:11: invalid duration '-1s'", NULL);
  expect_errors(
      LISTENER "backends:\n  - name: e\n    policy: fastest\n    endpoints: [127.0.0.1:1]\n",
      "6:13: invalid value 'fastest' for 'policy' in backend (expected one of: round-robin, random, "
      "least-request)",
      NULL);
  expect_errors(
      LISTENER "pools:\n  - name: p\n    engine: ollama\n    endpoints: [127.0.0.1:1]\n    "
               "metrics_path: metrics\n",
      "6:13: invalid value 'ollama' for 'engine' in pool (expected one of: vllm, vllm-v0, sglang, trtllm)",
      "8:19: 'metrics_path' in pool must start with '/'", NULL);
  expect_errors(LISTENER "backends:\n  - name: \"\"\n    endpoints: [127.0.0.1:1]\n",
                "5:11: 'name' in backend must not be empty", NULL);
  expect_errors(LISTENER "default_model: \"a\\0b\"\n",
                "4:16: 'default_model' in the top level contains a NUL byte", NULL);
}

static void test_addresses(void **state) {
  (void)state;
  expect_errors("listeners:\n  - name: web\n    address: 127.0.0.1:0\n",
                "3:14: port out of range in '127.0.0.1:0' for 'address' in listener (expected 1..65535)",
                NULL);
  expect_errors("listeners:\n  - name: web\n    address: 127.0.0.1:65536\n", "3:14: port out of range", NULL);
  expect_errors("listeners:\n  - name: web\n    address: 127.0.0.1\n",
                "3:14: invalid address '127.0.0.1' for 'address' in listener (expected HOST:PORT)", NULL);
  expect_errors("listeners:\n  - name: web\n    address: 127.0.0.1:http\n", "3:14: invalid address", NULL);
  expect_errors("listeners:\n  - name: web\n    address: \"bad host:80\"\n",
                "3:14: invalid host 'bad host' in 'address' of listener", NULL);
  expect_errors(LISTENER "backends:\n  - name: e\n    endpoints: [127.0.0.1:1, no-such-host.invalid:80]\n",
                "6:30: cannot resolve host 'no-such-host.invalid' in 'endpoints' of backend", NULL);
  expect_errors(LISTENER "backends:\n  - name: e\n    endpoints: [127.0.0.1:1, \"127.0.0.1:1\"]\n",
                "6:30: duplicate endpoint '127.0.0.1:1' in backend", NULL);
  expect_errors(LISTENER "  - name: web2\n    address: 127.0.0.1:8080\nadmin:\n  address: 127.0.0.1:8080\n",
                "5:14: address '127.0.0.1:8080' is already used by the listener at line 2",
                "7:12: admin address '127.0.0.1:8080' is already used by the listener at line 2", NULL);
}

static void test_duplicates(void **state) {
  (void)state;
  expect_errors(LISTENER "  - name: web\n    address: 127.0.0.1:8081\n",
                "4:11: duplicate listener name 'web' (first defined at line 2)", NULL);
  expect_errors(LISTENER "backends:\n  - name: llama\n    endpoints: [127.0.0.1:1]\n" POOL,
                "8:11: duplicate name 'llama': already used by the backend at line 5", NULL);
  expect_errors(LISTENER POOL "models:\n  - {name: m, pool: llama}\n  - {name: m, pool: llama}\n",
                "9:12: duplicate model name 'm' (first defined at line 8)", NULL);
  expect_errors(LISTENER POOL "routes:\n  - {name: r, backend: llama}\n  - {name: r, backend: llama}\n",
                "9:12: duplicate route name 'r' (first defined at line 8)", NULL);
}

static void test_references(void **state) {
  (void)state;
  expect_errors(LISTENER POOL "routes:\n  - name: r\n    backends:\n      - {name: lama, weight: 2}\n",
                "10:16: unknown backend or pool 'lama' in route", NULL);
  expect_errors(LISTENER POOL "routes:\n  - {name: r, backend: nope, listeners: [web, api]}\n",
                "8:24: unknown backend or pool 'nope' in route", "8:47: unknown listener 'api' in route",
                NULL);
  expect_errors(LISTENER POOL "models:\n  - {name: m, pool: lama}\n", "8:21: unknown pool 'lama' in model",
                NULL);
  expect_errors(LISTENER
                "backends:\n  - {name: echo, endpoints: [127.0.0.1:1]}\nmodels:\n  - {name: m, pool: echo}\n",
                "7:21: 'echo' is a backend, not an inference pool", NULL);
  expect_errors(LISTENER POOL "models:\n  - {name: m, pool: llama}\ndefault_model: mm\n",
                "9:16: default_model 'mm' is not one of the models", NULL);
  expect_errors(LISTENER POOL "routes:\n  - {name: r, backend: llama, backends: [{name: llama}]}\n",
                "8:24: use either 'backend' or 'backends' in route, not both", NULL);
  expect_errors(LISTENER POOL "routes:\n  - {name: r}\n",
                "8:5: missing required key 'backends' (or 'backend') in route", NULL);
  expect_errors(LISTENER POOL "routes:\n  - {name: r, backends: [{name: llama, weight: 0}]}\n",
                "8:25: all backend weights in route are 0", NULL);
}

static void test_tcp(void **state) {
  (void)state;
  const char *tcp = "listeners:\n  - {name: web, address: 127.0.0.1:8080}\n"
                    "  - {name: pg, address: 127.0.0.1:5432, protocol: tcp, backend: db}\n"
                    "backends:\n  - {name: db, endpoints: [127.0.0.1:5433]}\n" POOL;
  char buf[1024];
  snprintf(buf, sizeof buf, "%sroutes:\n  - {name: r, backend: llama, listeners: [web, pg]}\n", tcp);
  expect_errors(buf, "10:48: route cannot attach to tcp listener 'pg' (tcp listeners take no routes)", NULL);
  expect_errors("listeners:\n  - {name: pg, address: 127.0.0.1:5432, protocol: tcp}\n",
                "2:5: missing required key 'backend' in tcp listener", NULL);
  expect_errors("listeners:\n  - {name: pg, address: 127.0.0.1:5432, protocol: tcp, backend: llama}\n" POOL,
                "2:65: tcp listener cannot use inference pool 'llama'", NULL);
  expect_errors("listeners:\n  - {name: pg, address: 127.0.0.1:5432, protocol: tcp, backend: x}\n",
                "2:65: unknown backend 'x' in listener", NULL);
  expect_errors(LISTENER "    backend: x\n", "4:14: 'backend' is only valid for tcp listeners", NULL);
  expect_errors(
      "listeners:\n  - {name: pg, address: 127.0.0.1:5432, protocol: tcp, backend: db}\n"
      "backends:\n  - {name: db, endpoints: [127.0.0.1:5433]}\nroutes:\n  - {name: r, backend: db}\n",
      "6:5: route has no http listener to attach to", NULL);
}

static void test_routes_values(void **state) {
  (void)state;
  expect_errors(LISTENER POOL "routes:\n  - name: r\n    backend: llama\n    matches:\n"
                              "      - path: {type: RegularExpression, value: \"/v[0-9]\"}\n"
                              "        method: FETCH\n"
                              "        headers: [{name: \"bad header\", value: x}, {name: a, value: b}, "
                              "{name: A, value: c}]\n"
                              "    hostnames: [\"*\", \"a..b\", \"*.ok.com\"]\n"
                              "    timeout: 1d\n",
                "11:22: invalid value 'RegularExpression' for 'type' in match path (expected one of: "
                "PathPrefix, Exact)",
                "12:17: invalid method 'FETCH' in match",
                "13:26: invalid header name 'bad header' in header match",
                "13:79: duplicate header match 'A'", "14:17: invalid hostname '*' in route",
                "14:22: invalid hostname 'a..b' in route", "15:14: invalid duration '1d'", NULL);
}

static void test_models(void **state) {
  (void)state;
  char big[400], buf[1200];
  memset(big, 'x', 257);
  big[257] = '\0';
  snprintf(buf, sizeof buf, LISTENER POOL "models:\n  - {name: %s, pool: llama}\n", big);
  expect_errors(buf, "8:12: model name is too long: 257 characters (at most 256)", NULL);
  big[256] = '\0';
  snprintf(buf, sizeof buf, LISTENER POOL "models:\n  - {name: %s, pool: llama}\n", big);
  ig_config_free(load_ok(buf));
  expect_errors(
      LISTENER POOL "models:\n  - name: m\n    pool: llama\n    criticality: critical\n    targets:\n"
                    "      - {name: a, weight: 1000001}\n      - {name: a}\n",
      "10:18: invalid value 'critical' for 'criticality' in model (expected one of: Critical, Standard, "
      "Sheddable)",
      "12:27: 'weight' in target is out of range: 1000001 (expected 1..1000000)",
      "13:9: target without 'weight': weights must be set on all targets or on none",
      "13:16: duplicate target 'a' in model", NULL);
  expect_errors(LISTENER POOL
                "models:\n  - name: m\n    pool: llama\n    targets: [{name: a}, {name: b}, {name: c}, "
                "{name: d}, {name: e}, {name: f}, {name: g}, {name: h}, {name: i}, {name: j}, {name: k}]\n",
                "10:14: too many targets in model: 11 (at most 10)", NULL);
  ig_config_t *cfg =
      load_ok(LISTENER POOL "models:\n  - name: m\n    pool: llama\n    targets: [{name: a}, {name: b}]\n");
  assert_int_equal(cfg->models[0].n_targets, 2);
  assert_int_equal(cfg->models[0].targets[0].weight, 1);
  assert_int_equal(cfg->models[0].targets[1].weight, 1);
  ig_config_free(cfg);
}

static void test_structure(void **state) {
  (void)state;
  expect_errors("", "0:0: empty configuration", NULL);
  expect_errors("# only a comment\n", "0:0: empty configuration", NULL);
  expect_errors("admin: {address: 127.0.0.1:1}\n", "1:1: missing required key 'listeners' at the top level",
                NULL);
  expect_errors("listeners: []\n", "1:12: 'listeners' must not be empty", NULL);
  expect_errors("listeners:\n", "1:11: 'listeners' must not be empty", NULL);
  expect_errors("listeners:\n  - {name: a}\n", "2:5: missing required key 'address' in listener", NULL);
  expect_errors(LISTENER "backends:\n  - {name: e, endpoints: []}\n",
                "5:26: 'endpoints' in backend must not be empty", NULL);
  expect_errors(LISTENER "---\n" LISTENER, "4:1: only one YAML document is allowed", NULL);
  expect_errors(LISTENER "pools:\n  - name: p\n    endpoints: &eps [127.0.0.1:1]\n  - name: q\n"
                         "    endpoints: *eps\n",
                "8:16: YAML aliases (*eps) are not supported", NULL);
  expect_errors("listeners: &a [*a]\n", "1:16: YAML aliases (*a) are not supported", NULL);
}

static void test_syntax_errors(void **state) {
  (void)state;
  expect_errors("listeners:\n  - name: web\n   address: x\n",
                "3:4: YAML syntax error: did not find expected '-' indicator (while parsing a block "
                "collection at line 2, column 3)",
                NULL);
  expect_errors("listeners: [a, b\n",
                "2:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
                "sequence at line 1, column 12)",
                NULL);
  expect_errors("listeners:\n\t- name: web\n",
                "2:1: YAML syntax error: found character that cannot start any token", NULL);
  expect_errors("a: 1\nb: \"\x01\"\n", "2:5: YAML: control characters are not allowed", NULL);
  char deep[200] = "x: ";
  for (int i = 0; i < 40; i++)
    strcat(deep, "[");
  expect_errors(deep, "1:35: nesting is too deep", NULL);
}

/* Every independent mistake in a file is reported, in file order, with the file name as given. */
static void test_multiple_errors(void **state) {
  (void)state;
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  /* errors already in the list are kept; the new ones are appended */
  ig_config_load(DATA "does-not-exist.yaml", &cfg, &errs);
  assert_null(cfg);
  assert_int_equal(errs.n, 1);
  assert_int_equal(errs.v[0].line, 0);
  assert_string_equal(errs.v[0].file, DATA "does-not-exist.yaml");
  assert_string_equal(errs.v[0].message, "cannot open: No such file or directory");
  assert_int_equal(ig_config_load(DATA "errors.yaml", &cfg, &errs), IG_ECONFIG);
  assert_null(cfg);
  static const struct {
    int line, col;
    const char *msg;
  } want[] = {
      {4, 14, "port out of range in '127.0.0.1:80800' for 'address' in listener (expected 1..65535)"},
      {7, 5,
       "unknown key 'polcy' in backend (expected one of: name, policy, endpoints, connect_timeout, "
       "response_timeout, idle_timeout, max_idle_conns, tls, max_streams_per_endpoint, circuit_breaker)"},
      {9, 22, "invalid duration 'soon' for 'connect_timeout' in backend (expected e.g. 250ms, 2s, 1m, 1h)"},
      {11, 11, "duplicate name 'echo': already used by the backend at line 6"},
      {15, 11, "unknown pool 'nopool' in model"},
      {19, 15, "path 'v1' must start with '/'"},
      {20, 23, "unknown backend or pool 'missing' in route"},
  };
  assert_int_equal(errs.n, 1 + sizeof want / sizeof want[0]);
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    assert_string_equal(errs.v[i + 1].file, DATA "errors.yaml");
    assert_int_equal(errs.v[i + 1].line, want[i].line);
    assert_int_equal(errs.v[i + 1].column, want[i].col);
    assert_string_equal(errs.v[i + 1].message, want[i].msg);
  }
  /* the printed form */
  char *out = NULL;
  size_t outlen = 0;
  FILE *f = open_memstream(&out, &outlen);
  ig_config_errors_print(&errs, f);
  fclose(f);
  assert_non_null(strstr(out, DATA "does-not-exist.yaml: error: cannot open"));
  assert_non_null(strstr(out, DATA "errors.yaml:7:5: error: unknown key 'polcy' in backend"));
  free(out);
  ig_config_errors_free(&errs);
  assert_int_equal(errs.n, 0);
  /* a NULL error list is allowed */
  assert_int_equal(ig_config_load_string("x", "a: [", 4, &cfg, NULL), IG_ECONFIG);
  assert_null(cfg);
}

/* Many errors are capped with a closing note rather than growing without bound. */
static void test_error_cap(void **state) {
  (void)state;
  ig_buf_t b;
  ig_buf_init(&b);
  ig_buf_puts(&b, LISTENER);
  for (int i = 0; i < 300; i++)
    ig_buf_printf(&b, "k%d: 1\n", i);
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  assert_int_equal(ig_config_load_string("t.yaml", b.data, b.len, &cfg, &errs), IG_ECONFIG);
  assert_int_equal(errs.n, 201);
  assert_string_equal(errs.v[200].message, "too many errors; 100 more not shown");
  assert_int_equal(errs.v[0].line, 4);
  ig_config_errors_free(&errs);
  ig_buf_free(&b);
}

/* Runs `infergate check` with args, capturing stdout and stderr together into out. */
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
  char *ok[] = {"check", "-c", DATA "full.yaml", NULL};
  assert_int_equal(run_check(out, sizeof out, 3, ok), 0);
  assert_string_equal(out, DATA "full.yaml: ok (3 listeners, 2 routes, 2 backends, 1 pools, 2 models)\n");
  char *bad[] = {"check", "--config=" DATA "errors.yaml", NULL};
  assert_int_equal(run_check(out, sizeof out, 2, bad), 1);
  assert_non_null(strstr(out, DATA "errors.yaml:7:5: error: unknown key 'polcy' in backend"));
  assert_non_null(strstr(out, DATA "errors.yaml:20:23: error: unknown backend or pool 'missing' in route"));
  assert_non_null(strstr(out, DATA "errors.yaml: 7 errors\n"));
  char *missing[] = {"check", "-c", DATA "nope.yaml", NULL};
  assert_int_equal(run_check(out, sizeof out, 3, missing), 1);
  assert_non_null(strstr(out, DATA "nope.yaml: error: cannot open: No such file or directory"));
  char *help[] = {"check", "--help", NULL};
  assert_int_equal(run_check(out, sizeof out, 2, help), 0);
  assert_non_null(strstr(out, "usage: infergate check -c FILE"));
  char *none[] = {"check", NULL};
  assert_int_equal(run_check(out, sizeof out, 1, none), 2);
  char *quiet[] = {"check", "-q", DATA "full.yaml", NULL};
  assert_int_equal(run_check(out, sizeof out, 3, quiet), 0);
  assert_string_equal(out, "");
}

/* Writes a self-signed P-256 certificate for cn and its key to dir/NAME.pem and dir/NAME.key. */
static void make_cert(const char *dir, const char *name, const char *cn) {
  EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  assert_non_null(pk);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, pk);
  X509_NAME *nm = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, nm);
  assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
  char path[512];
  snprintf(path, sizeof path, "%s/%s.pem", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  PEM_write_X509(f, x);
  fclose(f);
  snprintf(path, sizeof path, "%s/%s.key", dir, name);
  f = fopen(path, "w");
  assert_non_null(f);
  PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(pk);
}

static void test_tls(void **state) {
  (void)state;
  char dir[] = "/tmp/ig-tls-XXXXXX";
  assert_non_null(mkdtemp(dir));
  make_cert(dir, "d", "default.test");
  make_cert(dir, "a", "a.example.com");
  char junk[600], y[4096];
  snprintf(junk, sizeof junk, "%s/junk.key", dir);
  FILE *f = fopen(junk, "w");
  assert_non_null(f);
  fputs("not a key\n", f);
  fclose(f);
  /* a good listener: default certificate plus one SNI certificate */
  snprintf(y, sizeof y,
           LISTENER "    tls:\n      cert: %s/d.pem\n      key: %s/d.key\n      certificates:\n"
                    "        - hostnames: [A.example.com, \"*.Example.com\"]\n          cert: %s/a.pem\n"
                    "          key: %s/a.key\n",
           dir, dir, dir, dir);
  ig_config_t *cfg = load_ok(y);
  const ig_tls_cfg_t *t = cfg->listeners[0].tls;
  assert_non_null(t);
  assert_int_equal(t->line, 5);
  assert_int_equal(t->n_certificates, 1);
  assert_int_equal(t->certificates[0].n_hostnames, 2);
  assert_string_equal(t->certificates[0].hostnames[0], "a.example.com");
  assert_string_equal(t->certificates[0].hostnames[1], "*.example.com");
  assert_int_equal(t->certificates[0].line, 8);
  assert_non_null(strstr(t->certificates[0].key, "/a.key"));
  ig_config_free(cfg);
  cfg = load_ok(LISTENER);
  assert_null(cfg->listeners[0].tls);
  ig_config_free(cfg);
  /* the key of another certificate, a key file that holds no key, a missing file */
  snprintf(y, sizeof y, LISTENER "    tls: {cert: %s/d.pem, key: %s/a.key}\n", dir, dir);
  expect_errors(y, "4:48: does not match the certificate", NULL);
  snprintf(y, sizeof y, LISTENER "    tls: {cert: %s/d.pem, key: %s}\n", dir, junk);
  expect_errors(y, "4:48: holds no usable PEM private key", NULL);
  snprintf(y, sizeof y, LISTENER "    tls: {cert: %s/d.pem, key: %s/none.key}\n", dir, dir);
  expect_errors(y, "4:48: cannot read TLS key file", NULL);
  snprintf(y, sizeof y, LISTENER "    tls: {cert: %s, key: %s/d.key}\n", junk, dir);
  expect_errors(y, "4:17: holds no usable PEM certificate", NULL);
  /* structure */
  snprintf(y, sizeof y, LISTENER "    tls: {cert: %s/d.pem}\n", dir);
  expect_errors(y, "4:10: missing required key 'key' in listener tls", NULL);
  snprintf(y, sizeof y,
           LISTENER "    tls:\n      cert: %s/d.pem\n      key: %s/d.key\n      certificates:\n"
                    "        - {cert: %s/a.pem, key: %s/a.key}\n        - {hostnames: [bad_host!], cert: %s/a.pem,"
                    " key: %s/a.key}\n        - {hostnames: []}\n",
           dir, dir, dir, dir, dir, dir);
  expect_errors(y, "8:11: missing required key 'hostnames' in tls certificate",
                "9:24: invalid hostname 'bad_host!' in tls certificate", "10:11: missing required key 'cert'",
                "10:11: missing required key 'key'", "10:23: 'hostnames' in tls certificate must not be empty", NULL);
  expect_errors(LISTENER "    tls: {crt: x}\n", "4:10: missing required key 'cert' in listener tls",
                "4:10: missing required key 'key'", "4:11: unknown key 'crt' in listener tls", NULL);
  expect_errors("listeners:\n  - {name: pg, address: 127.0.0.1:5432, protocol: tcp, backend: db, tls: {}}\n"
                "backends:\n  - {name: db, endpoints: [127.0.0.1:5433]}\n",
                "2:74: 'tls' is only valid for http listeners", NULL);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_roundtrip),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_units),
      cmocka_unit_test(test_unknown_keys),
      cmocka_unit_test(test_wrong_types),
      cmocka_unit_test(test_bad_values),
      cmocka_unit_test(test_addresses),
      cmocka_unit_test(test_duplicates),
      cmocka_unit_test(test_references),
      cmocka_unit_test(test_tcp),
      cmocka_unit_test(test_tls),
      cmocka_unit_test(test_routes_values),
      cmocka_unit_test(test_models),
      cmocka_unit_test(test_structure),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_multiple_errors),
      cmocka_unit_test(test_error_cap),
      cmocka_unit_test(test_example_is_valid),
      cmocka_unit_test(test_check_command),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

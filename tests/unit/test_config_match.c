/* Route matching: Gateway API HTTPRoute precedence (hostname, exact path, longest prefix, method,
 * header count, first defined) over configs loaded from YAML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/config.h"

static ig_config_t *load(const char *routes) {
  char yaml[4096];
  snprintf(yaml, sizeof yaml,
           "listeners:\n"
           "  - {name: web, address: 127.0.0.1:8080}\n"
           "  - {name: internal, address: 127.0.0.1:8081}\n"
           "  - {name: pg, address: 127.0.0.1:5432, protocol: tcp, backend: b}\n"
           "backends:\n"
           "  - {name: b, endpoints: [127.0.0.1:9000]}\n"
           "routes:\n%s",
           routes);
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_string("match.yaml", yaml, strlen(yaml), &cfg, &errs);
  ig_config_errors_print(&errs, stderr);
  ig_config_errors_free(&errs);
  assert_int_equal(rc, 0);
  return cfg;
}

/* Matches on listener li; hdrs is "name: value" strings, NULL-terminated. Returns the route name or
 * "-" when nothing matched. */
static const char *route(const ig_config_t *cfg, size_t li, const char *host, const char *method,
                         const char *path, ...) {
  ig_http_header_t hdrs[8];
  size_t n = 0;
  va_list ap;
  va_start(ap, path);
  for (const char *h; n < 8 && (h = va_arg(ap, const char *)); n++) {
    const char *colon = strchr(h, ':');
    hdrs[n].name = h;
    hdrs[n].name_len = (size_t)(colon - h);
    hdrs[n].value = colon + 2;
    hdrs[n].value_len = strlen(colon + 2);
  }
  va_end(ap);
  long i = ig_route_match(cfg, li, host, host ? strlen(host) : 0, method, method ? strlen(method) : 0, path,
                          path ? strlen(path) : 0, hdrs, n);
  return i < 0 ? "-" : cfg->routes[i].name;
}

#define R(...) route(cfg, 0, "api.example.com", "POST", __VA_ARGS__, NULL)

static void test_exact_over_prefix(void **state) {
  (void)state;
  ig_config_t *cfg =
      load("  - {name: prefix, backend: b, matches: [{path: /v1/chat/completions}]}\n"
           "  - {name: exact, backend: b, matches: [{path: {type: Exact, value: /v1/chat/completions}}]}\n"
           "  - {name: short, backend: b, matches: [{path: /v1}]}\n");
  assert_string_equal(R("/v1/chat/completions"), "exact");
  assert_string_equal(R("/v1/chat/completions?x=1"), "exact");
  assert_string_equal(R("/v1/chat/completions/"), "prefix");
  assert_string_equal(R("/v1/chat/completions/x"), "prefix");
  assert_string_equal(R("/v1/models"), "short");
  assert_string_equal(R("/v2"), "-");
  ig_config_free(cfg);
}

static void test_longest_prefix_and_segments(void **state) {
  (void)state;
  ig_config_t *cfg = load("  - {name: root, backend: b}\n"
                          "  - {name: v1, backend: b, matches: [{path: /v1/}]}\n"
                          "  - {name: chat, backend: b, matches: [{path: /v1/chat}]}\n");
  assert_string_equal(R("/v1/chat/completions"), "chat");
  assert_string_equal(R("/v1/chat"), "chat");
  assert_string_equal(R("/v1/chatter"), "v1"); /* segment boundary: /v1/chat does not match /v1/chatter */
  assert_string_equal(R("/v1"), "v1");         /* trailing '/' of a prefix is ignored */
  assert_string_equal(R("/v1x"), "root");
  assert_string_equal(R("/"), "root");
  assert_string_equal(R(""), "root");
  assert_string_equal(route(cfg, 0, NULL, NULL, NULL, NULL), "root");
  ig_config_free(cfg);
}

static void test_method_and_headers(void **state) {
  (void)state;
  ig_config_t *cfg =
      load("  - {name: any, backend: b, matches: [{path: /v1}]}\n"
           "  - {name: post, backend: b, matches: [{path: /v1, method: POST}]}\n"
           "  - {name: h1, backend: b, matches: [{path: /v1, headers: [{name: X-Tenant, value: a}]}]}\n"
           "  - {name: h2, backend: b, matches: [{path: /v1, headers: [{name: x-tenant, value: a},\n"
           "                                                            {name: x-tier, value: gold}]}]}\n"
           "  - {name: longer, backend: b, matches: [{path: /v1/x}]}\n");
  assert_string_equal(route(cfg, 0, "h", "GET", "/v1", NULL), "any");
  assert_string_equal(route(cfg, 0, "h", "POST", "/v1", NULL), "post");
  /* a method beats header matches; header count decides among the rest */
  assert_string_equal(route(cfg, 0, "h", "POST", "/v1", "x-tenant: a", NULL), "post");
  assert_string_equal(route(cfg, 0, "h", "GET", "/v1", "X-TENANT: a", NULL), "h1");
  assert_string_equal(route(cfg, 0, "h", "GET", "/v1", "x-tier: gold", "x-tenant: a", NULL), "h2");
  assert_string_equal(route(cfg, 0, "h", "GET", "/v1", "x-tier: silver", "x-tenant: a", NULL), "h1");
  assert_string_equal(route(cfg, 0, "h", "GET", "/v1", "x-tenant: A", NULL), "any"); /* values are exact */
  /* path length comes before method and headers */
  assert_string_equal(route(cfg, 0, "h", "GET", "/v1/x", "x-tier: gold", "x-tenant: a", NULL), "longer");
  ig_config_free(cfg);
}

static void test_hostnames(void **state) {
  (void)state;
  ig_config_t *cfg = load("  - {name: none, backend: b, matches: [{path: /v1}]}\n"
                          "  - {name: wild, backend: b, hostnames: [\"*.example.com\"]}\n"
                          "  - {name: wild2, backend: b, hostnames: [\"*.eu.example.com\"]}\n"
                          "  - {name: exact, backend: b, hostnames: [api.example.com, API.other.org]}\n");
  assert_string_equal(route(cfg, 0, "api.example.com", "GET", "/", NULL), "exact");
  assert_string_equal(route(cfg, 0, "API.Example.COM", "GET", "/", NULL), "exact");
  assert_string_equal(route(cfg, 0, "api.example.com:8080", "GET", "/", NULL), "exact");
  assert_string_equal(route(cfg, 0, "api.example.com.", "GET", "/", NULL), "exact");
  assert_string_equal(route(cfg, 0, "api.other.org", "GET", "/", NULL), "exact");
  assert_string_equal(route(cfg, 0, "web.example.com", "GET", "/", NULL), "wild");
  assert_string_equal(route(cfg, 0, "a.b.example.com", "GET", "/", NULL), "wild"); /* one or more labels */
  assert_string_equal(route(cfg, 0, "x.eu.example.com", "GET", "/", NULL), "wild2");
  /* the hostname comes before the path: a wildcard route for "/" beats a host-less "/v1" */
  assert_string_equal(route(cfg, 0, "web.example.com", "GET", "/v1", NULL), "wild");
  /* the apex does not match "*.example.com"; nor does a suffix without a dot */
  assert_string_equal(route(cfg, 0, "example.com", "GET", "/v1", NULL), "none");
  assert_string_equal(route(cfg, 0, "badexample.com", "GET", "/v1", NULL), "none");
  assert_string_equal(route(cfg, 0, "example.com", "GET", "/", NULL), "-");
  assert_string_equal(route(cfg, 0, NULL, "GET", "/v1", NULL), "none");
  ig_config_free(cfg);
}

/* A route whose hostname matches but whose path does not leaves room for less specific hosts. */
static void test_hostname_fallthrough(void **state) {
  (void)state;
  ig_config_t *cfg =
      load("  - {name: exact, backend: b, hostnames: [api.example.com], matches: [{path: /admin}]}\n"
           "  - {name: none, backend: b}\n");
  assert_string_equal(route(cfg, 0, "api.example.com", "GET", "/admin/x", NULL), "exact");
  assert_string_equal(route(cfg, 0, "api.example.com", "GET", "/v1", NULL), "none");
  ig_config_free(cfg);
}

static void test_listeners(void **state) {
  (void)state;
  ig_config_t *cfg =
      load("  - {name: public, backend: b, listeners: [web]}\n"
           "  - {name: private, backend: b, listeners: [internal], matches: [{path: /admin}]}\n"
           "  - {name: both, backend: b, matches: [{path: /v1}]}\n");
  assert_string_equal(route(cfg, 0, "h", "GET", "/admin", NULL), "public");
  assert_string_equal(route(cfg, 1, "h", "GET", "/admin", NULL), "private");
  assert_string_equal(route(cfg, 1, "h", "GET", "/v1", NULL), "both");
  assert_string_equal(route(cfg, 1, "h", "GET", "/", NULL), "-");
  assert_string_equal(route(cfg, 2, "h", "GET", "/v1", NULL), "-"); /* tcp listener */
  assert_string_equal(route(cfg, 3, "h", "GET", "/v1", NULL), "-"); /* no such listener */
  ig_config_free(cfg);
}

static void test_first_defined_wins(void **state) {
  (void)state;
  ig_config_t *cfg =
      load("  - {name: first, backend: b, matches: [{path: /v1, method: GET}]}\n"
           "  - {name: second, backend: b, matches: [{path: /v1, method: GET}]}\n"
           "  - {name: third, backend: b, matches: [{path: /v1}, {path: /v1, method: POST}]}\n");
  assert_string_equal(route(cfg, 0, "h", "GET", "/v1", NULL), "first");
  assert_string_equal(route(cfg, 0, "h", "POST", "/v1", NULL), "third");
  assert_string_equal(route(cfg, 0, "h", "PUT", "/v1/x", NULL), "third");
  ig_config_free(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_over_prefix),    cmocka_unit_test(test_longest_prefix_and_segments),
      cmocka_unit_test(test_method_and_headers),   cmocka_unit_test(test_hostnames),
      cmocka_unit_test(test_hostname_fallthrough), cmocka_unit_test(test_listeners),
      cmocka_unit_test(test_first_defined_wins),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

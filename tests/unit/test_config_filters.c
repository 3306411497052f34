/* HTTPRoute header filters (issue #7): RequestHeaderModifier / ResponseHeaderModifier read from the
 * native `routes[].filters` (and `backends[].filters`) and from HTTPRoute rules and backendRefs; each
 * mistake is an error at its file:line:column; unsupported filter types are notes, not errors; a
 * backendRef's filter composes after the rule's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config_internal.h"
#include "infergate/config.h"
#include "infergate/core.h"

static ig_config_t *load_ok(const char *yaml) {
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &errs);
  if (rc != 0) ig_config_errors_print(&errs, stderr);
  assert_int_equal(rc, 0);
  assert_non_null(cfg);
  ig_config_errors_free(&errs);
  return cfg;
}

/* Checks errs one for one against the NULL-terminated "LINE:COL: substring" list (va_list). */
static void check_errors(const ig_config_errors_t *errs, const char *file, va_list ap) {
  size_t i = 0;
  int bad = 0;
  for (const char *want; (want = va_arg(ap, const char *)); i++) {
    int line, col, off = 0;
    assert_int_equal(sscanf(want, "%d:%d: %n", &line, &col, &off), 2);
    if (i >= errs->n || errs->v[i].line != line || errs->v[i].column != col ||
        !strstr(errs->v[i].message, want + off) || strcmp(errs->v[i].file, file)) {
      fprintf(stderr, "expected error %zu: %s\n", i, want);
      bad = 1;
    }
  }
  if (i != errs->n) bad = 1;
  if (bad) ig_config_errors_print(errs, stderr);
  assert_false(bad);
}

static void expect_errors(const char *yaml, ...) {
  ig_config_t *cfg = (ig_config_t *)1;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &errs);
  assert_int_equal(rc, IG_ECONFIG);
  assert_null(cfg);
  va_list ap;
  va_start(ap, yaml);
  check_errors(&errs, "t.yaml", ap);
  va_end(ap);
  ig_config_errors_free(&errs);
}

static void expect_manifest_errors(const char *yaml, ...) {
  ig_config_t *cfg = (ig_config_t *)1;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_manifests_string("m.yaml", yaml, strlen(yaml), NULL, &cfg, &errs);
  assert_int_equal(rc, IG_ECONFIG);
  assert_null(cfg);
  va_list ap;
  va_start(ap, yaml);
  check_errors(&errs, "m.yaml", ap);
  va_end(ap);
  ig_config_errors_free(&errs);
}

#define HEAD                                                                                                 \
  "listeners:\n  - {name: web, address: 127.0.0.1:8080}\n"                                                  \
  "backends:\n  - {name: b, endpoints: [127.0.0.1:9000]}\n  - {name: c, endpoints: [127.0.0.1:9001]}\n"      \
  "routes:\n"
/* HEAD is 6 lines: a route starts at line 7 */

static void test_native_filters(void **state) {
  (void)state;
  ig_config_t *cfg = load_ok(HEAD
                             "  - name: r\n"
                             "    backends:\n"
                             "      - name: b\n"
                             "      - name: c\n"
                             "        filters:\n"
                             "          - type: RequestHeaderModifier\n"
                             "            requestHeaderModifier:\n"
                             "              set: [{name: X-A, value: ref}]\n"
                             "              add: [{name: X-Ref, value: '1'}]\n"
                             "    filters:\n"
                             "      - type: RequestHeaderModifier\n"
                             "        requestHeaderModifier:\n"
                             "          set: [{name: X-A, value: a}, {name: Host, value: h.example}]\n"
                             "          add: [{name: X-B, value: 'b, c'}]\n"
                             "          remove: [X-Secret, x-other]\n"
                             "      - type: ResponseHeaderModifier\n"
                             "        responseHeaderModifier:\n"
                             "          remove: [Server]\n"
                             "      - type: URLRewrite\n"
                             "        urlRewrite: {hostname: x}\n"
                             "  - {name: plain, backend: b}\n");
  assert_int_equal(cfg->n_routes, 2);
  const ig_route_cfg_t *r = &cfg->routes[0];
  const ig_header_filter_cfg_t *f = r->request_headers;
  assert_non_null(f);
  assert_int_equal(f->n_set, 2);
  assert_string_equal(f->set[0].name, "X-A");
  assert_string_equal(f->set[0].value, "a");
  assert_string_equal(f->set[1].name, "Host");
  assert_int_equal(f->n_add, 1);
  assert_string_equal(f->add[0].value, "b, c");
  assert_int_equal(f->n_remove, 2);
  assert_string_equal(f->remove[0], "x-secret"); /* lower-cased */
  assert_non_null(r->response_headers);
  assert_int_equal(r->response_headers->n_remove, 1);
  assert_string_equal(r->response_headers->remove[0], "server");
  /* backend b has no filter of its own (the route's applies); c's is composed after the route's */
  assert_null(r->backends[0].request_headers);
  assert_null(r->backends[1].response_headers);
  const ig_header_filter_cfg_t *e = r->backends[1].request_headers;
  assert_non_null(e);
  assert_int_equal(e->n_set, 2);
  assert_string_equal(e->set[0].name, "Host"); /* the route's X-A is replaced by the ref's */
  assert_string_equal(e->set[1].value, "ref");
  assert_int_equal(e->n_add, 2);
  assert_string_equal(e->add[0].name, "X-B");
  assert_string_equal(e->add[1].name, "X-Ref");
  assert_int_equal(e->n_remove, 2);
  assert_null(cfg->routes[1].request_headers);
  assert_null(cfg->routes[1].response_headers);
  ig_config_free(cfg);
}

static void test_native_errors(void **state) {
  (void)state;
  expect_errors(HEAD
                "  - name: r\n"
                "    backend: b\n"
                "    filters:\n"
                "      - type: RequestHeaderModifier\n"
                "        requestHeaderModifier:\n"
                "          set: [{name: 'a b', value: x}, {name: X, value: ''}, {name: y, value: 1}, {name: Y, value: 2}]\n"
                "          add: [{name: Transfer-Encoding, value: chunked}, {name: z}]\n"
                "          remove: [connection, ok, OK]\n"
                "          replace: []\n"
                "      - type: RequestHeaderModifier\n"
                "        requestHeaderModifier: {}\n"
                "      - {type: ResponseHeaderModifier}\n"
                "      - {type: Teleport}\n"
                "      - {type: ResponseHeaderModifier, responseHeaderModifier: {}, requestRedirect: {}}\n"
                "    filters2: []\n",
                "12:24: route filters[].requestHeaderModifier.set[].name: invalid header name 'a b'",
                "12:59: route filters[].requestHeaderModifier.set[].value: must be 1..4096 bytes",
                "12:92: route filters[].requestHeaderModifier.set[].name: header 'Y' given twice",
                "13:24: route filters[].requestHeaderModifier.add[].name: header 'Transfer-Encoding' is hop-by-hop",
                "13:60: route filters[].requestHeaderModifier.add[]: missing required field 'value'",
                "14:20: route filters[].requestHeaderModifier.remove[]: header 'connection' is hop-by-hop",
                "14:36: route filters[].requestHeaderModifier.remove[]: header 'OK' given twice",
                "15:11: route filters[].requestHeaderModifier: unknown key 'replace'",
                "16:15: route filters[]: filter type RequestHeaderModifier given twice",
                "18:9: route filters[]: missing required field 'responseHeaderModifier'",
                "19:16: route filters[].type: invalid value 'Teleport'",
                "20:85: route filters[]: field 'requestRedirect' does not go with type ResponseHeaderModifier",
                "21:5: unknown key 'filters2' in route", NULL);
}

#define MHEAD                                                                                                \
  "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"                          \
  "spec:\n  gatewayClassName: c\n  listeners:\n  - {name: web, port: 8080, protocol: HTTP}\n---\n"          \
  "apiVersion: v1\nkind: Service\nmetadata: {name: s, annotations: {infergate.io/endpoints: '127.0.0.1:9'}}\n" \
  "spec: {ports: [{port: 80}]}\n---\n"                                                                       \
  "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"                         \
  "spec:\n  parentRefs: [{name: gw}]\n  rules:\n"
/* MHEAD is 19 lines: rules start at line 20 */

static void test_manifest_filters(void **state) {
  (void)state;
  static const char yaml[] = MHEAD
      "  - filters:\n"
      "    - type: ResponseHeaderModifier\n"
      "      responseHeaderModifier: {add: [{name: X-Gw, value: infergate}]}\n"
      "    - type: RequestMirror\n"
      "      requestMirror: {backendRef: {name: s, port: 80}}\n"
      "    backendRefs:\n"
      "    - name: s\n"
      "      port: 80\n"
      "      filters:\n"
      "      - type: RequestHeaderModifier\n"
      "        requestHeaderModifier: {remove: [X-Drop]}\n";
  ig_manifest_notes_t notes = {0};
  ig_manifest_opts_t opts = {0};
  opts.notes = &notes;
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_manifests_string("m.yaml", yaml, sizeof yaml - 1, &opts, &cfg, &errs);
  if (rc) ig_config_errors_print(&errs, stderr);
  assert_int_equal(rc, 0);
  assert_int_equal(cfg->n_routes, 1);
  const ig_route_cfg_t *r = &cfg->routes[0];
  assert_null(r->request_headers);
  assert_non_null(r->response_headers);
  assert_string_equal(r->response_headers->add[0].name, "X-Gw");
  assert_non_null(r->backends[0].request_headers);
  assert_string_equal(r->backends[0].request_headers->remove[0], "x-drop");
  assert_null(r->backends[0].response_headers);
  /* RequestMirror: a note on the HTTPRoute naming the filter, at its type */
  int found = 0;
  for (size_t i = 0; i < notes.n; i++)
    if (!strcmp(notes.v[i].reason, "UnsupportedValue")) {
      found = 1;
      assert_string_equal(notes.v[i].kind, "HTTPRoute");
      assert_string_equal(notes.v[i].name, "r");
      assert_int_equal(notes.v[i].line, 23);
      assert_non_null(strstr(notes.v[i].message, "RequestMirror is not supported"));
    }
  assert_true(found);
  ig_config_notes_free(&notes);
  ig_config_errors_free(&errs);
  ig_config_free(cfg);
}

static void test_manifest_errors(void **state) {
  (void)state;
  expect_manifest_errors(MHEAD
                         "  - filters:\n"
                         "    - type: RequestHeaderModifier\n"
                         "      requestHeaderModifier: {set: [{name: X, value: \"a\\nb\"}]}\n"
                         "    backendRefs:\n"
                         "    - {name: s, port: 80, filters: {}}\n",
                         "22:54: HTTPRoute r: rules[].filters[].requestHeaderModifier.set[].value: control character",
                         "24:36: HTTPRoute r: backendRefs[].filters: expected a list, got a mapping", NULL);
}

static void test_compose(void **state) {
  (void)state;
  ig_header_value_cfg_t s1[] = {{"A", "1"}, {"B", "1"}}, a1[] = {{"C", "1"}, {"D", "1"}};
  char *r1[] = {"e", "f"};
  ig_header_filter_cfg_t first = {s1, 2, a1, 2, r1, 2};
  ig_header_value_cfg_t s2[] = {{"a", "2"}}, a2[] = {{"F", "2"}};
  char *r2[] = {"c"};
  ig_header_filter_cfg_t second = {s2, 1, a2, 1, r2, 1};
  ig_header_filter_cfg_t *f = ig_config_header_filter_compose(&first, &second);
  /* A set again by second; C added by first but removed by second; F removed by first, added by second */
  assert_int_equal(f->n_set, 2);
  assert_string_equal(f->set[0].name, "B");
  assert_string_equal(f->set[1].name, "a");
  assert_string_equal(f->set[1].value, "2");
  assert_int_equal(f->n_add, 2);
  assert_string_equal(f->add[0].name, "D");
  assert_string_equal(f->add[1].name, "F");
  assert_int_equal(f->n_remove, 3);
  assert_string_equal(f->remove[0], "e");
  assert_string_equal(f->remove[1], "f");
  assert_string_equal(f->remove[2], "c");
  ig_config_header_filter_free(f);
  assert_null(ig_config_header_filter_compose(NULL, NULL));
  f = ig_config_header_filter_compose(NULL, &second);
  assert_int_equal(f->n_set, 1);
  ig_config_header_filter_free(f);
  assert_true(ig_config_header_filter_forbidden("Content-Length", 14));
  assert_false(ig_config_header_filter_forbidden("Host", 4));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_native_filters), cmocka_unit_test(test_native_errors),
      cmocka_unit_test(test_manifest_filters), cmocka_unit_test(test_manifest_errors),
      cmocka_unit_test(test_compose),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Issue #9 configuration keys (src/config/load.c): backends[]/pools[] tls, circuit_breaker and
 * max_streams_per_endpoint; routes[].auth; and the errors of pools[].scheduling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "infergate/config.h"
#include "infergate/core.h"

#define HEAD "listeners:\n  - name: main\n    address: 127.0.0.1:1\n"

static ig_config_t *load(const char *yaml, ig_config_errors_t *errs) {
  ig_config_t *cfg = NULL;
  memset(errs, 0, sizeof *errs);
  ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, errs);
  return cfg;
}

static int has_error(const ig_config_errors_t *e, int line, const char *needle) {
  for (size_t i = 0; i < e->n; i++)
    if (e->v[i].line == line && strstr(e->v[i].message, needle)) return 1;
  for (size_t i = 0; i < e->n; i++)
    fprintf(stderr, "  %d: %s\n", e->v[i].line, e->v[i].message);
  return 0;
}

static void test_defaults_and_values(void **state) {
  (void)state;
  char keys[] = "/tmp/ig_keys_XXXXXX";
  int fd = mkstemp(keys);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "# c\nsk-1\n", 9), 9);
  close(fd);
  char yaml[2048];
  snprintf(yaml, sizeof yaml,
           HEAD "backends:\n"
                "  - name: plain\n    endpoints: [127.0.0.1:2]\n"
                "  - name: secure\n    endpoints: [127.0.0.1:3]\n"
                "    tls: {server_name: up.example.com, verify: false}\n"
                "    max_streams_per_endpoint: 4\n"
                "    circuit_breaker: {consecutive_failures: 2, base_ejection_time: 500ms, max_ejection_time: 2s}\n"
                "  - name: off\n    endpoints: [127.0.0.1:4]\n"
                "    tls: {enabled: false}\n    circuit_breaker: {enabled: false}\n"
                "routes:\n  - name: r\n    backend: plain\n    auth: {api_keys_file: %s, forward_authorization: yes}\n"
                "  - name: r2\n    backend: secure\n",
           keys);
  ig_config_errors_t errs;
  ig_config_t *cfg = load(yaml, &errs);
  assert_int_equal(errs.n, 0);
  assert_non_null(cfg);
  const ig_backend_cfg_t *b = &cfg->backends[0];
  assert_null(b->tls);
  assert_int_equal(b->max_streams_per_endpoint, 0);
  assert_int_equal(b->breaker_failures, 0); /* 0 = the default (5) */
  assert_false(b->breaker_disabled);
  b = &cfg->backends[1];
  assert_non_null(b->tls);
  assert_string_equal(b->tls->server_name, "up.example.com");
  assert_int_equal(b->tls->verify, 0);
  assert_null(b->tls->ca_file);
  assert_int_equal(b->max_streams_per_endpoint, 4);
  assert_int_equal(b->breaker_failures, 2);
  assert_int_equal(b->breaker_base_ms, 500);
  assert_int_equal(b->breaker_max_ms, 2000);
  b = &cfg->backends[2];
  assert_null(b->tls);
  assert_true(b->breaker_disabled);
  assert_string_equal(cfg->routes[0].api_keys_file, keys);
  assert_int_equal(cfg->routes[0].forward_authorization, 1);
  assert_null(cfg->routes[1].api_keys_file);
  ig_config_free(cfg);
  ig_config_errors_free(&errs);
  unlink(keys);
}

static void test_errors(void **state) {
  (void)state;
  const char *yaml = HEAD "pools:\n"
                          "  - name: p\n    endpoints: [127.0.0.1:2]\n"                       /* 5, 6 */
                          "    tls: {verify: maybe, cert_file: /x.pem, ca_file: /nonexistent/ca.pem}\n" /* 7 */
                          "    max_streams_per_endpoint: -1\n"                                /* 8 */
                          "    circuit_breaker: {base_ejection_time: 10s, max_ejection_time: 1s, bogus: 1}\n" /* 9 */
                          "routes:\n  - name: r\n    backend: p\n"                          /* 10-12 */
                          "    auth: {forward_authorization: true}\n"                          /* 13 */
                          "  - name: r2\n    backend: p\n    auth: {api_keys_file: /nonexistent/keys}\n"; /* 14-16 */
  ig_config_errors_t errs;
  ig_config_t *cfg = load(yaml, &errs);
  assert_null(cfg);
  assert_true(has_error(&errs, 7, "must be true or false"));
  assert_true(has_error(&errs, 7, "cannot read 'ca_file'"));
  assert_true(has_error(&errs, 7, "needs both 'cert_file' and 'key_file'"));
  assert_true(has_error(&errs, 8, "max_streams_per_endpoint"));
  assert_true(has_error(&errs, 9, "unknown key 'bogus'"));
  assert_true(has_error(&errs, 13, "api_keys_file"));
  assert_true(has_error(&errs, 16, "cannot read 'api_keys_file'"));
  ig_config_errors_free(&errs);
}

static void test_max_shorter_than_base(void **state) {
  (void)state;
  const char *yaml = HEAD "backends:\n  - name: b\n    endpoints: [127.0.0.1:2]\n"
                          "    circuit_breaker: {base_ejection_time: 10s, max_ejection_time: 1s}\n"
                          "routes:\n  - name: r\n    backend: b\n";
  ig_config_errors_t errs;
  ig_config_t *cfg = load(yaml, &errs);
  assert_null(cfg);
  assert_true(has_error(&errs, 7, "shorter than 'base_ejection_time'"));
  ig_config_errors_free(&errs);
}

static void test_scheduling_errors(void **state) {
  (void)state;
  const char *yaml = HEAD "pools:\n"
                          "  - name: p\n    endpoints: [127.0.0.1:2]\n"
                          "    scheduling:\n"
                          "      queue_threshold: -1\n"    /* line 8 */
                          "      kv_threshold: 1.5\n"      /* line 9 */
                          "      standard_queue_max: 1e3\n" /* line 10 */
                          "      queue_running_weight: nan\n"
                          "      weights: {queue: 2, speed: 1, kv: x}\n" /* line 12 */
                          "      bogus: 1\n"               /* line 13 */
                          "      batch_slots: 2.5\n"       /* line 14 */
                          "      critical_slots: -2\n"     /* line 15 */
                          "      queue_capacity: 0\n"      /* line 16 */
                          "routes:\n  - name: r\n    backend: p\n";
  ig_config_errors_t errs;
  ig_config_t *cfg = load(yaml, &errs);
  assert_null(cfg);
  assert_true(has_error(&errs, 8, "invalid number '-1' for 'queue_threshold'"));
  assert_true(has_error(&errs, 9, "'kv_threshold'"));
  assert_true(has_error(&errs, 9, "out of range"));
  assert_true(has_error(&errs, 10, "invalid number '1e3'"));
  assert_true(has_error(&errs, 11, "invalid number 'nan'"));
  assert_true(has_error(&errs, 12, "speed"));
  assert_true(has_error(&errs, 12, "invalid number 'x' for 'kv'"));
  assert_true(has_error(&errs, 13, "bogus"));
  assert_true(has_error(&errs, 14, "invalid integer '2.5' for 'batch_slots'"));
  assert_true(has_error(&errs, 15, "invalid number '-2' for 'critical_slots'"));
  assert_true(has_error(&errs, 16, "'queue_capacity'"));
  assert_true(has_error(&errs, 16, "out of range"));
  ig_config_errors_free(&errs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_values),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_max_shorter_than_base),
      cmocka_unit_test(test_scheduling_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* pools[].scheduling: parsed by the config loader (values, file:line errors) and applied by
 * pool_sched_new (the scheduler's thresholds and weights, shared by `serve` and `epp`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy.h"

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
  for (size_t i = 0; i < e->n; i++) fprintf(stderr, "  %d: %s\n", e->v[i].line, e->v[i].message);
  return 0;
}

static void test_values_applied(void **state) {
  (void)state;
  const char *yaml = HEAD "pools:\n"
                          "  - name: tuned\n    endpoints: [127.0.0.1:2]\n"
                          "    scheduling:\n"
                          "      queue_threshold: 8\n      kv_threshold: 0.9\n      standard_queue_max: 0\n"
                          "      queue_running_weight: 0.25\n"
                          "      weights: {queue: 1, prefix: 4.5, lora: 0}\n"
                          "  - name: plain\n    endpoints: [127.0.0.1:3]\n"
                          "  - name: gie\n    endpoints: [127.0.0.1:4]\n    scheduler: gie\n"
                          "    scheduling: {queue_threshold: 3, weights: {kv: 9}}\n"
                          "routes:\n  - name: r\n    backend: tuned\n";
  ig_config_errors_t errs;
  ig_config_t *cfg = load(yaml, &errs);
  assert_int_equal(errs.n, 0);
  assert_non_null(cfg);
  ig_sched_t *s = pool_sched_new(&cfg->backends[0], 1);
  const ig_sched_opts_t *o = ig_sched_opts(s);
  assert_true(o->queue_threshold == 8 && o->kv_threshold == 0.9 && o->standard_queue_max == 0 &&
              o->queue_running_weight == 0.25);
  assert_true(ig_sched_weight(s, "queue") == 1 && ig_sched_weight(s, "kv") == 2 &&
              ig_sched_weight(s, "prefix") == 4.5 && ig_sched_weight(s, "lora") == 0);
  ig_sched_free(s);
  /* nothing given: the scheduler's defaults */
  ig_sched_opts_t d;
  ig_sched_opts_default(&d);
  s = pool_sched_new(&cfg->backends[1], 1);
  o = ig_sched_opts(s);
  assert_true(o->queue_threshold == d.queue_threshold && o->standard_queue_max == d.standard_queue_max &&
              o->queue_running_weight == d.queue_running_weight);
  assert_true(ig_sched_weight(s, "prefix") == 3);
  ig_sched_free(s);
  /* a profile without weights takes the thresholds only */
  s = pool_sched_new(&cfg->backends[2], 1);
  assert_string_equal(ig_sched_profile_name(s), "gie");
  assert_true(ig_sched_opts(s)->queue_threshold == 3);
  ig_sched_free(s);
  ig_config_free(cfg);
}

static void test_errors(void **state) {
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
  ig_config_errors_free(&errs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_applied),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

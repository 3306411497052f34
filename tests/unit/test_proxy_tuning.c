/* pools[].scheduling applied by pool_sched_new (the scheduler's thresholds and weights, shared by
 * `serve` and `epp`); its parse errors are in test_config_security.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy.h"

#define HEAD "listeners:\n  - name: main\n    address: 127.0.0.1:1\n"

static void test_values_applied(void **state) {
  (void)state;
  const char *yaml = HEAD "pools:\n"
                          "  - name: tuned\n    endpoints: [127.0.0.1:2]\n"
                          "    scheduling:\n"
                          "      queue_threshold: 8\n      kv_threshold: 0.9\n      standard_queue_max: 0\n"
                          "      queue_running_weight: 0.25\n      critical_slots: 3\n      batch_slots: 24\n"
                          "      queue_capacity: 7\n      queue_prefill_tokens: 0\n"
                          "      weights: {queue: 1, prefix: 4.5, lora: 0}\n"
                          "  - name: plain\n    endpoints: [127.0.0.1:3]\n"
                          "  - name: gie\n    endpoints: [127.0.0.1:4]\n    scheduler: gie\n"
                          "    scheduling: {queue_threshold: 3, weights: {kv: 9}}\n"
                          "routes:\n  - name: r\n    backend: tuned\n";
  ig_config_errors_t errs;
  memset(&errs, 0, sizeof errs);
  ig_config_t *cfg = NULL;
  ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &errs);
  assert_int_equal(errs.n, 0);
  assert_non_null(cfg);
  ig_sched_t *s = pool_sched_new(&cfg->backends[0], 1);
  const ig_sched_opts_t *o = ig_sched_opts(s);
  assert_true(o->queue_threshold == 8 && o->kv_threshold == 0.9 && o->standard_queue_max == 0 &&
              o->queue_running_weight == 0.25 && o->critical_slots == 3 && o->queue_prefill_tokens == 0);
  assert_int_equal(cfg->backends[0].tuning.batch_slots, 24);
  assert_int_equal(cfg->backends[1].tuning.batch_slots, 0);
  assert_int_equal(ig_tuning_queue_capacity(&cfg->backends[0].tuning), 7);
  assert_int_equal(ig_tuning_queue_capacity(&cfg->backends[1].tuning), IG_QUEUE_CAPACITY_DEFAULT);
  assert_true(ig_sched_weight(s, "queue") == 1 && ig_sched_weight(s, "kv") == 2 &&
              ig_sched_weight(s, "prefix") == 4.5 && ig_sched_weight(s, "lora") == 0);
  ig_sched_free(s);
  /* nothing given: the scheduler's defaults */
  ig_sched_opts_t d;
  ig_sched_opts_default(&d);
  s = pool_sched_new(&cfg->backends[1], 1);
  o = ig_sched_opts(s);
  assert_true(o->queue_threshold == d.queue_threshold && o->standard_queue_max == d.standard_queue_max &&
              o->queue_running_weight == d.queue_running_weight && o->critical_slots == d.critical_slots &&
              o->queue_prefill_tokens == d.queue_prefill_tokens);
  assert_true(ig_sched_weight(s, "prefix") == 3);
  ig_sched_free(s);
  /* a profile without weights takes the thresholds only */
  s = pool_sched_new(&cfg->backends[2], 1);
  assert_string_equal(ig_sched_profile_name(s), "gie");
  assert_true(ig_sched_opts(s)->queue_threshold == 3);
  ig_sched_free(s);
  ig_config_free(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_applied),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Circuit breaker state machine (src/proxy/breaker.c) and the pickers' respect for it and for the
 * per-endpoint stream cap (src/proxy/lb.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy.h"

static const breaker_opts_t opts = {3, 1000, 5000};

static void test_defaults(void **state) {
  (void)state;
  breaker_opts_t o;
  breaker_opts_of(NULL, &o);
  assert_int_equal(o.failures, 5);
  assert_int_equal(o.base_ms, 10000);
  assert_int_equal(o.max_ms, 300000);
  ig_backend_cfg_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.breaker_failures = 2;
  cfg.breaker_base_ms = 100;
  cfg.breaker_max_ms = 50; /* shorter than base: raised to base */
  breaker_opts_of(&cfg, &o);
  assert_int_equal(o.failures, 2);
  assert_int_equal(o.max_ms, 100);
  cfg.breaker_disabled = 1;
  breaker_opts_of(&cfg, &o);
  assert_int_equal(o.failures, 0);
}

static void test_consecutive_failures_eject(void **state) {
  (void)state;
  breaker_t b;
  memset(&b, 0, sizeof b);
  assert_int_equal(breaker_on_result(&b, &opts, 0, 0, 0), 0);
  assert_int_equal(breaker_on_result(&b, &opts, 0, 0, 0), 0);
  assert_int_equal(breaker_on_result(&b, &opts, 1, 0, 0), 0); /* a success resets the count */
  assert_int_equal(breaker_on_result(&b, &opts, 0, 0, 10), 0);
  assert_int_equal(breaker_on_result(&b, &opts, 0, 0, 10), 0);
  assert_true(breaker_allows(&b, 10));
  assert_int_equal(breaker_on_result(&b, &opts, 0, 0, 10), 1);
  assert_false(breaker_allows(&b, 10));
  assert_false(breaker_allows(&b, 1009));
  assert_string_equal(breaker_state_name(&b, 500), "open");
  assert_int_equal(b.ejections_total, 1);
  /* late outcomes of requests sent before the ejection change nothing */
  assert_int_equal(breaker_on_result(&b, &opts, 1, 0, 20), 0);
  assert_int_equal(breaker_on_result(&b, &opts, 0, 0, 20), 0);
  assert_false(breaker_allows(&b, 1009));
}

static void test_half_open_trial_success_closes(void **state) {
  (void)state;
  breaker_t b;
  memset(&b, 0, sizeof b);
  for (int i = 0; i < 3; i++)
    breaker_on_result(&b, &opts, 0, 0, 0);
  assert_true(breaker_allows(&b, 1000));
  assert_string_equal(breaker_state_name(&b, 1000), "half-open");
  assert_int_equal(breaker_on_pick(&b, 1000), 1); /* the trial */
  assert_false(breaker_allows(&b, 1001));           /* only one at a time */
  assert_int_equal(breaker_on_pick(&b, 1001), 0);
  assert_int_equal(breaker_on_result(&b, &opts, 1, 0, 1002), 0); /* not the trial: ignored */
  assert_int_equal(breaker_on_result(&b, &opts, 1, 1, 1003), -1);
  assert_string_equal(breaker_state_name(&b, 1003), "closed");
  assert_true(breaker_allows(&b, 1003));
  assert_int_equal(b.ejections, 0);
}

static void test_half_open_failure_doubles_up_to_max(void **state) {
  (void)state;
  breaker_t b;
  memset(&b, 0, sizeof b);
  for (int i = 0; i < 3; i++)
    breaker_on_result(&b, &opts, 0, 0, 0);
  assert_int_equal(b.until_ms, 1000);
  uint64_t now = 1000, expect[] = {2000, 4000, 5000, 5000};
  for (int k = 0; k < 4; k++) {
    assert_int_equal(breaker_on_pick(&b, now), 1);
    assert_int_equal(breaker_on_result(&b, &opts, 0, 1, now), 1);
    assert_int_equal(b.until_ms - now, expect[k]);
    now = b.until_ms;
  }
  assert_int_equal(b.ejections_total, 5);
}

static void test_abandoned_trial(void **state) {
  (void)state;
  breaker_t b;
  memset(&b, 0, sizeof b);
  for (int i = 0; i < 3; i++)
    breaker_on_result(&b, &opts, 0, 0, 0);
  assert_int_equal(breaker_on_pick(&b, 2000), 1);
  assert_false(breaker_allows(&b, 2000));
  breaker_on_abandon(&b, 1); /* the client went away: another request may try */
  assert_true(breaker_allows(&b, 2000));
  assert_int_equal(breaker_on_pick(&b, 2000), 1);
}

static void test_disabled_never_ejects(void **state) {
  (void)state;
  breaker_opts_t off = {0, 1000, 5000};
  breaker_t b;
  memset(&b, 0, sizeof b);
  for (int i = 0; i < 100; i++)
    assert_int_equal(breaker_on_result(&b, &off, 0, 0, 0), 0);
  assert_true(breaker_allows(&b, 0));
}

static endpoint_t eps[3];
static endpoint_t *ptrs[3] = {&eps[0], &eps[1], &eps[2]};

/* The process-wide count of breakers that are not closed: up on an ejection from closed, down when one
 * closes again or goes away with its endpoint; a re-ejection from half-open does not count twice. */
static void test_not_closed_count(void **state) {
  (void)state;
  size_t base = breakers_not_closed();
  breaker_t a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  for (int i = 0; i < 3; i++) breaker_on_result(&a, &opts, 0, 0, 0);
  assert_int_equal(breakers_not_closed(), base + 1);
  for (int i = 0; i < 3; i++) breaker_on_result(&b, &opts, 0, 0, 0);
  assert_int_equal(breakers_not_closed(), base + 2);
  assert_int_equal(breaker_on_pick(&a, 1000), 1); /* half-open trial */
  assert_int_equal(breaker_on_result(&a, &opts, 0, 1, 1000), 1); /* ejected again: still one */
  assert_int_equal(breakers_not_closed(), base + 2);
  assert_int_equal(breaker_on_pick(&a, 5000), 1);
  assert_int_equal(breaker_on_result(&a, &opts, 1, 1, 5000), -1); /* recovered */
  assert_int_equal(breakers_not_closed(), base + 1);
  breaker_forget(&a); /* closed already: no change */
  assert_int_equal(breakers_not_closed(), base + 1);
  breaker_forget(&b); /* open, gone with its endpoint */
  assert_int_equal(breakers_not_closed(), base);
  const breaker_opts_t off = {0, 1000, 5000};
  for (int i = 0; i < 3; i++) breaker_on_result(&b, &opts, 0, 0, 0);
  assert_int_equal(breakers_not_closed(), base + 1);
  assert_int_equal(breaker_on_result(&b, &off, 1, 0, 0), -1); /* the backend turned its breaker off */
  assert_int_equal(breakers_not_closed(), base);
}

static void test_pickers_skip_ejected_and_capped(void **state) {
  (void)state;
  ig_backend_cfg_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.max_streams_per_endpoint = 2;
  backend_rt_t be;
  memset(&be, 0, sizeof be);
  memset(eps, 0, sizeof eps);
  be.cfg = &cfg;
  be.eps = ptrs;
  be.n_eps = 3;
  ig_rng_seed(&gw.rng, 7);
  uint64_t now = ig_now_ms();
  eps[0].brk.state = BRK_OPEN;
  eps[0].brk.until_ms = now + 600000;
  eps[1].inflight = 2; /* at its cap */
  const char *names[] = {"round-robin", "random", "least-request"};
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 20; i++)
      assert_ptr_equal(lb_find(names[k])->pick(&be, NULL), &eps[2]);
  /* exclude is still taken when it is the only usable endpoint */
  for (int k = 0; k < 3; k++)
    assert_ptr_equal(lb_find(names[k])->pick(&be, &eps[2]), &eps[2]);
  eps[2].inflight = 2;
  for (int k = 0; k < 3; k++)
    assert_null(lb_find(names[k])->pick(&be, NULL));
  assert_int_equal(lb_unusable_reason(&be, NULL, 0, now), LB_NONE_AT_CAP);
  size_t only0 = 0;
  assert_int_equal(lb_unusable_reason(&be, &only0, 1, now), LB_NONE_EJECTED);
  /* cap 0 = unlimited */
  cfg.max_streams_per_endpoint = 0;
  assert_ptr_not_equal(lb_find("least-request")->pick(&be, NULL), &eps[0]);
  assert_non_null(lb_find("round-robin")->pick(&be, NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_consecutive_failures_eject),
      cmocka_unit_test(test_half_open_trial_success_closes),
      cmocka_unit_test(test_half_open_failure_doubles_up_to_max),
      cmocka_unit_test(test_abandoned_trial),
      cmocka_unit_test(test_disabled_never_ejects),
      cmocka_unit_test(test_not_closed_count),
      cmocka_unit_test(test_pickers_skip_ejected_and_capped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

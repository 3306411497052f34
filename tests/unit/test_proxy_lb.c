/* Balancing policies of src/proxy/lb.c: selection by name, spreading, exclusion on retry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy.h"

static endpoint_t eps[3];
static endpoint_t *ptrs[3] = {&eps[0], &eps[1], &eps[2]};

static backend_rt_t make_backend(size_t n) {
  backend_rt_t be;
  memset(&be, 0, sizeof be);
  memset(eps, 0, sizeof eps);
  be.eps = ptrs;
  be.n_eps = n;
  ig_rng_seed(&gw.rng, 42);
  return be;
}

static void test_lookup(void **state) {
  (void)state;
  assert_non_null(lb_find("round-robin"));
  assert_non_null(lb_find("random"));
  assert_non_null(lb_find("least-request"));
  assert_null(lb_find("fastest"));
  assert_string_equal(lb_for_policy(IG_LB_RANDOM)->name, "random");
  assert_int_equal(lb_for_policy(IG_LB_LEAST_REQUEST)->policy, IG_LB_LEAST_REQUEST);
}

static void test_round_robin(void **state) {
  (void)state;
  backend_rt_t be = make_backend(3);
  const lb_ops_t *lb = lb_find("round-robin");
  int count[3] = {0};
  for (int i = 0; i < 30; i++)
    count[lb->pick(&be, NULL) - eps]++;
  assert_int_equal(count[0], 10);
  assert_int_equal(count[1], 10);
  assert_int_equal(count[2], 10);
  for (int i = 0; i < 10; i++)
    assert_ptr_not_equal(lb->pick(&be, &eps[1]), &eps[1]);
}

static void test_random_excludes(void **state) {
  (void)state;
  backend_rt_t be = make_backend(3);
  const lb_ops_t *lb = lb_find("random");
  int count[3] = {0};
  for (int i = 0; i < 300; i++)
    count[lb->pick(&be, &eps[0]) - eps]++;
  assert_int_equal(count[0], 0);
  assert_true(count[1] > 50 && count[2] > 50);
}

static void test_least_request(void **state) {
  (void)state;
  backend_rt_t be = make_backend(3);
  const lb_ops_t *lb = lb_find("least-request");
  eps[0].inflight = 5;
  eps[1].inflight = 1;
  eps[2].inflight = 3;
  for (int i = 0; i < 5; i++)
    assert_ptr_equal(lb->pick(&be, NULL), &eps[1]);
  assert_ptr_equal(lb->pick(&be, &eps[1]), &eps[2]);
  eps[0].inflight = eps[1].inflight = eps[2].inflight = 0;
  int count[3] = {0};
  for (int i = 0; i < 30; i++)
    count[lb->pick(&be, NULL) - eps]++;
  assert_true(count[0] > 0 && count[1] > 0 && count[2] > 0); /* ties spread */
}

static void test_single_and_empty(void **state) {
  (void)state;
  const char *names[] = {"round-robin", "random", "least-request"};
  for (int k = 0; k < 3; k++) {
    backend_rt_t be = make_backend(1);
    assert_ptr_equal(lb_find(names[k])->pick(&be, &eps[0]), &eps[0]); /* nothing else to try */
    be.n_eps = 0;
    assert_null(lb_find(names[k])->pick(&be, NULL));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lookup),           cmocka_unit_test(test_round_robin),
      cmocka_unit_test(test_random_excludes),  cmocka_unit_test(test_least_request),
      cmocka_unit_test(test_single_and_empty),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

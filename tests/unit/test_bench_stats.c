/* Unit tests for the bench statistics: nearest-rank percentiles and summaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "bench.h"

static void add_all(ig_bench_samples_t *s, const double *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    ig_bench_samples_add(s, v[i]);
}

static void test_empty(void **state) {
  ig_bench_samples_t s;
  ig_bench_samples_init(&s);
  assert_true(ig_bench_percentile(&s, 50) == 0);
  ig_bench_summary_t sum;
  ig_bench_summarize(&s, &sum);
  assert_int_equal(sum.count, 0);
  assert_true(sum.mean == 0 && sum.p99 == 0 && sum.max == 0);
  ig_bench_samples_free(&s);
}

static void test_single(void **state) {
  ig_bench_samples_t s;
  ig_bench_samples_init(&s);
  ig_bench_samples_add(&s, 7.5);
  assert_true(ig_bench_percentile(&s, 0) == 7.5);
  assert_true(ig_bench_percentile(&s, 50) == 7.5);
  assert_true(ig_bench_percentile(&s, 100) == 7.5);
  ig_bench_summary_t sum;
  ig_bench_summarize(&s, &sum);
  assert_int_equal(sum.count, 1);
  assert_true(sum.stddev == 0 && sum.min == 7.5 && sum.max == 7.5);
  ig_bench_samples_free(&s);
}

/* 1..10 shuffled: nearest rank gives p50 = 5 (ceil(5) = 5th), p90 = 9, p91 = 10, p10 = 1, p11 = 2. */
static void test_nearest_rank(void **state) {
  static const double v[] = {7, 3, 10, 1, 9, 2, 8, 5, 4, 6};
  ig_bench_samples_t s;
  ig_bench_samples_init(&s);
  add_all(&s, v, 10);
  assert_true(ig_bench_percentile(&s, 50) == 5);
  assert_true(ig_bench_percentile(&s, 90) == 9);
  assert_true(ig_bench_percentile(&s, 91) == 10);
  assert_true(ig_bench_percentile(&s, 99) == 10);
  assert_true(ig_bench_percentile(&s, 10) == 1);
  assert_true(ig_bench_percentile(&s, 11) == 2);
  assert_true(ig_bench_percentile(&s, 0) == 1);
  assert_true(ig_bench_percentile(&s, 100) == 10);
  /* adding after a sort re-sorts */
  ig_bench_samples_add(&s, 0.5);
  assert_true(ig_bench_percentile(&s, 0) == 0.5);
  ig_bench_samples_free(&s);
}

/* 1..100: pXX is exactly XX; 1..1000: p99 = 990, p99.9 = 999. */
static void test_large(void **state) {
  ig_bench_samples_t s;
  ig_bench_samples_init(&s);
  for (int i = 100; i >= 1; i--)
    ig_bench_samples_add(&s, i);
  for (int p = 1; p <= 100; p++)
    assert_true(ig_bench_percentile(&s, p) == p);
  ig_bench_summary_t sum;
  ig_bench_summarize(&s, &sum);
  assert_true(fabs(sum.mean - 50.5) < 1e-9);
  assert_true(sum.p50 == 50 && sum.p90 == 90 && sum.p95 == 95 && sum.p99 == 99);
  assert_true(sum.min == 1 && sum.max == 100);
  assert_true(fabs(sum.stddev - 29.011491975882016) < 1e-9); /* sample stddev of 1..100 */
  ig_bench_samples_free(&s);

  ig_bench_samples_init(&s);
  for (int i = 1; i <= 1000; i++)
    ig_bench_samples_add(&s, i);
  assert_true(ig_bench_percentile(&s, 99) == 990);
  assert_true(ig_bench_percentile(&s, 99.9) == 999);
  ig_bench_samples_free(&s);
}

/* Duplicates and negative values sort like any others. */
static void test_duplicates(void **state) {
  static const double v[] = {2, 2, 2, -1, 2};
  ig_bench_samples_t s;
  ig_bench_samples_init(&s);
  add_all(&s, v, 5);
  assert_true(ig_bench_percentile(&s, 20) == -1);
  assert_true(ig_bench_percentile(&s, 21) == 2);
  ig_bench_samples_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty), cmocka_unit_test(test_single),     cmocka_unit_test(test_nearest_rank),
      cmocka_unit_test(test_large), cmocka_unit_test(test_duplicates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

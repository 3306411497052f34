/* Unit tests for infergate bench's service-level objectives: parsing --slo, judging one request,
 * and goodput (requests per second meeting every objective) over a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bench.h"

static void test_parse(void **state) {
  ig_bench_slo_t s;
  char err[256];
  assert_int_equal(ig_bench_slo_parse("ttft=200ms,tpot=50ms,e2e=10s", &s, err, sizeof err), 0);
  assert_true(s.ttft_ms == 200 && s.tpot_ms == 50 && s.e2e_ms == 10000);
  assert_true(ig_bench_slo_any(&s));
  /* any subset, any order, bare numbers are ms, fractions and microseconds */
  assert_int_equal(ig_bench_slo_parse("e2e=1.5s", &s, err, sizeof err), 0);
  assert_true(s.ttft_ms == 0 && s.tpot_ms == 0 && s.e2e_ms == 1500);
  assert_int_equal(ig_bench_slo_parse("tpot=20,ttft=500us,", &s, err, sizeof err), 0);
  assert_true(s.tpot_ms == 20 && s.ttft_ms == 0.5 && s.e2e_ms == 0);
}

static void test_parse_errors(void **state) {
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"", "empty SLO"},
      {",", "expected ttft="},
      {"ttft", "expected ttft="},
      {"itl=5ms", "'itl=5ms': expected ttft="},
      {"ttft=", "positive duration"},
      {"ttft=abc", "positive duration"},
      {"ttft=-5ms", "positive duration"},
      {"ttft=0", "positive duration"},
      {"ttft=5min", "positive duration"},
      {"ttft=5 ms", "positive duration"},
      {"ttft=nan", "positive duration"},
      {"ttft=1e400", "positive duration"},
      {"ttft=1ms,ttft=2ms", "given twice"},
      {"ttft=1ms,,e2e=1s", "expected ttft="},
      {"TTFT=1ms", "expected ttft="},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ig_bench_slo_t s;
    char err[256] = "";
    assert_int_equal(ig_bench_slo_parse(cases[i].in, &s, err, sizeof err), IG_EINVAL);
    if (!strstr(err, cases[i].want)) fail_msg("'%s': got '%s', want '%s'", cases[i].in, err, cases[i].want);
  }
}

static ig_bench_record_t rec(int ok, double ttft, double tpot, double e2e) {
  ig_bench_record_t r;
  memset(&r, 0, sizeof r);
  r.ok = ok;
  r.ttft_ms = ttft;
  r.tpot_ms = tpot;
  r.e2e_ms = e2e;
  return r;
}

static void test_met(void **state) {
  ig_bench_slo_t s = {.ttft_ms = 100, .tpot_ms = 10, .e2e_ms = 0};
  ig_bench_record_t r = rec(1, 100, 10, 99999); /* limits are inclusive; e2e is not set */
  assert_true(ig_bench_slo_met(&s, &r));
  r = rec(1, 100.001, 1, 1);
  assert_false(ig_bench_slo_met(&s, &r));
  r = rec(1, 50, 10.5, 1);
  assert_false(ig_bench_slo_met(&s, &r));
  r = rec(1, 50, -1, 1); /* one output token: no TPOT to miss */
  assert_true(ig_bench_slo_met(&s, &r));
  r = rec(0, 1, 1, 1); /* failed or shed: never good */
  assert_false(ig_bench_slo_met(&s, &r));
  r = rec(1, -1, 1, 1); /* no TTFT measured while a TTFT objective is set */
  assert_false(ig_bench_slo_met(&s, &r));
  ig_bench_slo_t e = {.e2e_ms = 1000};
  r = rec(1, 5000, 5000, 1000);
  assert_true(ig_bench_slo_met(&e, &r));
  r = rec(1, 1, 1, -1);
  assert_false(ig_bench_slo_met(&e, &r));
}

static void test_goodput(void **state) {
  ig_bench_slo_t s = {.ttft_ms = 200, .tpot_ms = 50, .e2e_ms = 10000};
  ig_bench_record_t r[8] = {
      rec(1, 100, 20, 2000),  rec(1, 150, 49, 9000), rec(1, 250, 20, 2000), /* TTFT missed */
      rec(1, 100, 60, 2000),                                                /* TPOT missed */
      rec(1, 100, 20, 10001),                                               /* E2E missed */
      rec(0, 10, 10, 10),                                                   /* failed */
      rec(1, 10, -1, 10),     rec(1, 199, 0, 500),
  };
  ig_bench_goodput_t g;
  ig_bench_goodput(&s, r, 8, 2.0, &g);
  assert_int_equal(g.met, 4);
  assert_true(g.goodput == 2.0);
  assert_true(g.fraction == 0.5);
  ig_bench_goodput(&s, r, 0, 2.0, &g);
  assert_true(g.met == 0 && g.goodput == 0 && g.fraction == 0);
  ig_bench_goodput(&s, r, 2, 0, &g); /* no duration measured */
  assert_true(g.met == 2 && g.goodput == 0 && g.fraction == 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_met),
      cmocka_unit_test(test_goodput),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

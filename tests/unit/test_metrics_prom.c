/* Unit tests for the Prometheus text parser and label decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/metrics.h"

static int span_eq(const char *p, size_t n, const char *s) { return n == strlen(s) && memcmp(p, s, n) == 0; }

static void test_basic(void **state) {
  (void)state;
  const char *t = "# HELP http_requests_total The total number of HTTP requests.\n"
                  "# TYPE http_requests_total counter\n"
                  "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
                  "http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\r\n"
                  "\n"
                  "   \t\n"
                  "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n"
                  "metric_without_timestamp_and_labels 12.47\n"
                  "something_weird{problem=\"division by zero\"} +Inf -3982045\n"
                  "neg -Inf\n"
                  "nan_metric NaN\n"
                  "  indented{a=\"1\",} 5e-3\n"
                  "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 4.0";
  size_t pos = 0;
  ig_prom_sample_t s;
  char v[128];

  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_true(ig_prom_name_is(&s, "http_requests_total"));
  assert_true(span_eq(s.labels, s.labels_len, "method=\"post\",code=\"200\""));
  assert_true(s.value == 1027);
  assert_int_equal(ig_prom_label(&s, "code", v, sizeof v), 3);
  assert_string_equal(v, "200");
  assert_int_equal(ig_prom_label(&s, "method", v, sizeof v), 4);
  assert_string_equal(v, "post");
  assert_int_equal(ig_prom_label(&s, "cod", v, sizeof v), IG_ENOENT);
  assert_int_equal(ig_prom_label(&s, "codes", v, sizeof v), IG_ENOENT);

  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_true(s.value == 3);
  assert_int_equal(ig_prom_label(&s, "code", v, sizeof v), 3);
  assert_string_equal(v, "400");

  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_true(ig_prom_name_is(&s, "msdos_file_access_time_seconds"));
  assert_true(s.value == 1.458255915e9);
  assert_int_equal(ig_prom_label(&s, "path", v, sizeof v), (int)strlen("C:\\DIR\\FILE.TXT"));
  assert_string_equal(v, "C:\\DIR\\FILE.TXT");
  assert_int_equal(ig_prom_label(&s, "error", v, sizeof v), (int)strlen("Cannot find file:\n\"FILE.TXT\""));
  assert_string_equal(v, "Cannot find file:\n\"FILE.TXT\"");

  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_true(ig_prom_name_is(&s, "metric_without_timestamp_and_labels"));
  assert_null(s.labels);
  assert_int_equal(s.labels_len, 0);
  assert_true(s.value == 12.47);
  assert_int_equal(ig_prom_label(&s, "a", v, sizeof v), IG_ENOENT);

  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_true(isinf(s.value) && s.value > 0);
  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_true(isinf(s.value) && s.value < 0);
  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_true(isnan(s.value));
  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_true(ig_prom_name_is(&s, "indented"));
  assert_true(s.value == 5e-3);
  assert_int_equal(ig_prom_label(&s, "a", v, sizeof v), 1);

  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_true(ig_prom_name_is(&s, "vllm:num_requests_waiting"));
  assert_true(s.value == 4.0);
  assert_int_equal(ig_prom_label(&s, "model_name", v, sizeof v), 1);
  assert_string_equal(v, "m");

  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 0);
  assert_int_equal(pos, strlen(t));
  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 0);
}

static void test_malformed_skipped(void **state) {
  (void)state;
  const char *t = "good1 1\n"
                  "bad_no_value\n"
                  "bad_value abc\n"
                  "bad_value2 1.5.5\n"
                  "bad_hex 0x10\n"
                  "bad_labels{a=\"x\" 1\n"
                  "bad_labels2{a=x} 1\n"
                  "bad_labels3{=\"x\"} 1\n"
                  "bad_labels4{a=\"x\"b=\"y\"} 1\n"
                  "bad_labels5{a=\"unterminated} 1\n"
                  "bad_labels6{a:b=\"x\"} 1\n"
                  "bad_ts 1 12x\n"
                  "bad_ts2 1 2 3\n"
                  "9bad_name 1\n"
                  "bad-name 1\n"
                  "{a=\"b\"} 1\n"
                  "good2{a=\"b\\\\\",c=\"}\"} 2 -5\n"
                  "good3 { a = \"1\" , b=\"2\" } 3\n"
                  "good4\t4\n";
  size_t pos = 0;
  ig_prom_sample_t s;
  char v[16];
  const char *want[] = {"good1", "good2", "good3", "good4"};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
    assert_true(ig_prom_name_is(&s, want[i]));
    assert_true(s.value == i + 1);
  }
  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 0);

  /* good2: an escaped backslash before the closing quote, a brace inside a value */
  pos = 0;
  const char *g2 = "good2{a=\"b\\\\\",c=\"}\"} 2";
  assert_int_equal(ig_prom_next(g2, strlen(g2), &pos, &s), 1);
  assert_int_equal(ig_prom_label(&s, "a", v, sizeof v), 2);
  assert_string_equal(v, "b\\");
  assert_int_equal(ig_prom_label(&s, "c", v, sizeof v), 1);
  assert_string_equal(v, "}");

  pos = 0;
  const char *g3 = "good3 { a = \"1\" , b=\"2\" } 3";
  assert_int_equal(ig_prom_next(g3, strlen(g3), &pos, &s), 1);
  assert_int_equal(ig_prom_label(&s, "b", v, sizeof v), 1);
  assert_string_equal(v, "2");
}

static void test_label_cap(void **state) {
  (void)state;
  const char *t = "m{k=\"abcdef\",e=\"\"} 1";
  size_t pos = 0;
  ig_prom_sample_t s;
  char v[8];
  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 1);
  assert_int_equal(ig_prom_label(&s, "k", v, 7), 6);
  assert_string_equal(v, "abcdef");
  assert_int_equal(ig_prom_label(&s, "k", v, 6), IG_ETOOBIG);
  assert_string_equal(v, "abcde");
  assert_int_equal(ig_prom_label(&s, "k", v, 0), IG_ETOOBIG);
  assert_int_equal(ig_prom_label(&s, "e", v, sizeof v), 0);
  assert_string_equal(v, "");
}

static void test_empty_and_partial(void **state) {
  (void)state;
  size_t pos = 0;
  ig_prom_sample_t s;
  assert_int_equal(ig_prom_next("", 0, &pos, &s), 0);
  const char *t = "# only a comment";
  pos = 0;
  assert_int_equal(ig_prom_next(t, strlen(t), &pos, &s), 0);
  /* not NUL-terminated: the parser must stop at len */
  const char buf[] = {'a', ' ', '1', '2', '3'};
  pos = 0;
  assert_int_equal(ig_prom_next(buf, 3, &pos, &s), 1);
  assert_true(s.value == 1);
  pos = 10;
  assert_int_equal(ig_prom_next(buf, 3, &pos, &s), 0);
}

static void test_format_value(void **state) {
  (void)state;
  ig_buf_t b;
  ig_buf_init(&b);
  double vals[] = {0, 1, -2.5, 0.1, 1e21, 123456789012345678.0, 1.0 / 3, 5e-324, INFINITY, -INFINITY, NAN};
  const char *want[] = {"0", "1", "-2.5", "0.1", "1e+21", NULL, NULL, NULL, "+Inf", "-Inf", "NaN"};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    ig_buf_reset(&b);
    ig_buf_puts(&b, "x ");
    ig_prom_format_value(&b, vals[i]);
    if (want[i]) assert_string_equal(b.data + 2, want[i]);
    /* round trip through the parser */
    size_t pos = 0;
    ig_prom_sample_t s;
    assert_int_equal(ig_prom_next(b.data, b.len, &pos, &s), 1);
    if (isnan(vals[i]))
      assert_true(isnan(s.value));
    else
      assert_true(s.value == vals[i]);
  }
  ig_buf_reset(&b);
  ig_prom_label_escape(&b, "a\\b\"c\nd");
  assert_string_equal(b.data, "a\\\\b\\\"c\\nd");
  ig_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),       cmocka_unit_test(test_malformed_skipped),
      cmocka_unit_test(test_label_cap),   cmocka_unit_test(test_empty_and_partial),
      cmocka_unit_test(test_format_value),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

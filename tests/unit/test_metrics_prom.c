/* Unit tests for the Prometheus text parser and label decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- ig_prom_next_in: the name-filtered iterator must return exactly what ig_prom_next returns for
 * the names of the set, on any input ------------------------------------------------------------ */

/* Reads a file (relative to the repository root, where ctest runs) into a NUL-terminated buffer. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  ig_buf_t b;
  ig_buf_init(&b);
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) ig_buf_append(&b, tmp, n);
  fclose(f);
  ig_buf_reserve(&b, 1);
  *len = b.len;
  return b.data; /* owned by the caller; free() */
}

/* Pages captured from `infergate sim --engine E` under load (also the fuzzer's seeds). */
static const char *const pages[] = {
    "tests/fuzz/corpus/metrics_prom/sim-vllm.txt",   "tests/fuzz/corpus/metrics_prom/sim-vllm-v0.txt",
    "tests/fuzz/corpus/metrics_prom/sim-sglang.txt", "tests/fuzz/corpus/metrics_prom/sim-trtllm.txt",
    "tests/fuzz/corpus/metrics_prom/vllm.txt",       "tests/fuzz/corpus/metrics_prom/sglang.txt",
    "tests/fuzz/corpus/metrics_prom/odd.txt",
};
#define N_PAGES (sizeof pages / sizeof pages[0])

/* Names worth asking for: every dialect's, near misses (a prefix, a longer name sharing the first 8
 * bytes), names shorter than 8 bytes, and invalid ones. */
static const char *const probe_names[] = {
    "vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc", "vllm:lora_requests_info",   "vllm:cache_config_info",
    "sglang:num_queue_reqs",     "sglang:num_running_reqs",   "sglang:token_usage",
    "trtllm_num_requests_waiting", "vllm:num_requests",       "vllm:num_requests_waiting_extra",
    "vllm:time_to_first_token_seconds_bucket", "vllm:e2e_request_latency_seconds_sum",
    "a", "up", "neg", "x", "nan_metric", "vllm:num", "vllm:nu", "1abc", "a{b", "#", "",
};
#define N_PROBES (sizeof probe_names / sizeof probe_names[0])

/* Compares ig_prom_next_in over set with ig_prom_next filtered by the set's names on buf[0..len). */
static void check_same(const char *buf, size_t len, const ig_prom_names_t *set) {
  size_t pa = 0, pb = 0, which = 99;
  ig_prom_sample_t a, b;
  for (int guard = 0; guard < 100000; guard++) {
    int rb = 0;
    size_t want = 0;
    while ((rb = ig_prom_next(buf, len, &pb, &b)) == 1) {
      size_t i;
      for (i = 0; i < set->n; i++)
        if (set->name[i] && set->name[i][0] && ig_prom_name_is(&b, set->name[i])) break;
      if (i < set->n) {
        want = i;
        break;
      }
    }
    int ra = ig_prom_next_in(buf, len, &pa, set, &a, &which);
    assert_int_equal(ra, rb);
    if (!ra) break;
    assert_int_equal(which, want);
    assert_ptr_equal(a.name, b.name);
    assert_int_equal(a.name_len, b.name_len);
    assert_ptr_equal(a.labels, b.labels);
    assert_int_equal(a.labels_len, b.labels_len);
    assert_memory_equal(&a.value, &b.value, sizeof a.value); /* NaN and -0 too */
    assert_int_equal(pa, pb);
  }
}

static void test_next_in_basic(void **state) {
  (void)state;
  const char *t = "# TYPE vllm:num_requests_waiting gauge\n"
                  "vllm:num_requests_waiting{model_name=\"a\"} 2\n"
                  "vllm:num_requests_waiting_extra 99\n"
                  "vllm:num_requests_running 3\r\n"
                  "  \tvllm:num_requests_waiting 4 1700000000000\n"
                  "vllm:num_requests_waiting{broken 5\n"
                  "vllm:num_requests_waitinG 6\n"
                  "up 1\n"
                  "upx 2\n"
                  "a 7";
  const char *names[] = {NULL, "vllm:num_requests_waiting", "up", "a", ""};
  ig_prom_names_t set;
  ig_prom_names_init(&set, names, 5);
  size_t pos = 0, which = 0;
  ig_prom_sample_t s;
  assert_int_equal(ig_prom_next_in(t, strlen(t), &pos, &set, &s, &which), 1);
  assert_int_equal(which, 1);
  assert_true(s.value == 2);
  assert_true(span_eq(s.labels, s.labels_len, "model_name=\"a\""));
  assert_int_equal(ig_prom_next_in(t, strlen(t), &pos, &set, &s, &which), 1);
  assert_int_equal(which, 1);
  assert_true(s.value == 4);
  assert_int_equal(ig_prom_next_in(t, strlen(t), &pos, &set, &s, &which), 1);
  assert_int_equal(which, 2);
  assert_true(s.value == 1);
  assert_int_equal(ig_prom_next_in(t, strlen(t), &pos, &set, &s, &which), 1);
  assert_int_equal(which, 3);
  assert_true(s.value == 7);
  assert_int_equal(ig_prom_next_in(t, strlen(t), &pos, &set, &s, &which), 0);
  check_same(t, strlen(t), &set);
  /* a name at the very end of a buffer shorter than 8 bytes, not NUL-terminated */
  const char tail[] = {'u', 'p', ' ', '1', 'X', 'X', 'X', 'X', 'X', 'X', 'X', 'X'};
  pos = 0;
  assert_int_equal(ig_prom_next_in(tail, 4, &pos, &set, &s, &which), 1);
  assert_int_equal(which, 2);
  assert_true(s.value == 1);
  /* an empty set matches nothing; more names than fit are ignored */
  ig_prom_names_init(&set, names, 0);
  pos = 0;
  assert_int_equal(ig_prom_next_in(t, strlen(t), &pos, &set, &s, &which), 0);
  ig_prom_names_init(&set, probe_names, N_PROBES);
  assert_int_equal(set.n, IG_PROM_NAMES_MAX);
}

/* Random edits that stress line and name boundaries. */
static void mutate(ig_rng_t *r, ig_buf_t *b) {
  static const char alpha[] = "{}\"=, \t\r\n#:_.+-\\vlmanuqx019eE";
  int edits = 1 + (int)(ig_rng_next(r) % 8);
  for (int k = 0; k < edits && b->len > 0; k++) {
    size_t at = (size_t)(ig_rng_next(r) % b->len);
    switch (ig_rng_next(r) % 4) {
    case 0: b->data[at] = alpha[ig_rng_next(r) % (sizeof alpha - 1)]; break;
    case 1:
      memmove(b->data + at, b->data + at + 1, b->len - at - 1);
      b->len--;
      break;
    case 2: { /* insert a probe name (a whole or cut one) */
      const char *n = probe_names[ig_rng_next(r) % N_PROBES];
      size_t nl = strlen(n);
      if (nl && ig_rng_next(r) % 2) nl = (size_t)(ig_rng_next(r) % nl);
      ig_buf_reserve(b, nl);
      memmove(b->data + at + nl, b->data + at, b->len - at);
      memcpy(b->data + at, n, nl);
      b->len += nl;
      break;
    }
    default: b->len = at; /* truncate */
    }
  }
  b->data[b->len] = '\0';
}

static void test_next_in_same_as_next(void **state) {
  (void)state;
  ig_rng_t r;
  ig_rng_seed(&r, 5);
  ig_buf_t m;
  ig_buf_init(&m);
  for (size_t p = 0; p < N_PAGES; p++) {
    size_t len = 0;
    char *page = slurp(pages[p], &len);
    assert_non_null(page);
    /* every probe name alone, then random sets of up to 8 */
    for (size_t i = 0; i < N_PROBES; i++) {
      ig_prom_names_t set;
      ig_prom_names_init(&set, &probe_names[i], 1);
      check_same(page, len, &set);
    }
    for (int round = 0; round < 300; round++) {
      const char *names[IG_PROM_NAMES_MAX];
      size_t n = 1 + (size_t)(ig_rng_next(&r) % IG_PROM_NAMES_MAX);
      for (size_t i = 0; i < n; i++) names[i] = probe_names[ig_rng_next(&r) % N_PROBES];
      ig_prom_names_t set;
      ig_prom_names_init(&set, names, n);
      ig_buf_reset(&m);
      ig_buf_append(&m, page, len);
      if (round) mutate(&r, &m);
      check_same(m.data, m.len, &set);
    }
    free(page);
  }
  ig_buf_free(&m);
}

/* The value fast path must give strtod's answer bit for bit. */
static void test_value_fast_path(void **state) {
  (void)state;
  ig_rng_t r;
  ig_rng_seed(&r, 9);
  char line[64];
  static const char *const fixed[] = {"1795926537.883261", "0.00225988700564972", "9007199254740992",
                                      "9007199254740993", "0.0000000000000000000001", "-0", "-0.0",
                                      "1.", ".5", "+.5", "00012.50", "1234567890123456789",
                                      "12345678901234567890", "0.1234567890123456789012"};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] + 20000; i++) {
    char num[40];
    if (i < sizeof fixed / sizeof fixed[0]) {
      snprintf(num, sizeof num, "%s", fixed[i]);
    } else {
      size_t n = 0, digits = 1 + (size_t)(ig_rng_next(&r) % 22);
      if (ig_rng_next(&r) % 4 == 0) num[n++] = ig_rng_next(&r) % 2 ? '-' : '+';
      size_t dot = (size_t)(ig_rng_next(&r) % (digits + 2)); /* > digits: no dot */
      for (size_t d = 0; d < digits; d++) {
        if (d == dot) num[n++] = '.';
        num[n++] = (char)('0' + ig_rng_next(&r) % 10);
      }
      if (dot == digits) num[n++] = '.';
      num[n] = '\0';
    }
    snprintf(line, sizeof line, "x %s\n", num);
    size_t pos = 0;
    ig_prom_sample_t s;
    assert_int_equal(ig_prom_next(line, strlen(line), &pos, &s), 1);
    double want = strtod(num, NULL);
    assert_memory_equal(&s.value, &want, sizeof want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),       cmocka_unit_test(test_malformed_skipped),
      cmocka_unit_test(test_label_cap),   cmocka_unit_test(test_empty_and_partial),
      cmocka_unit_test(test_format_value), cmocka_unit_test(test_next_in_basic),
      cmocka_unit_test(test_next_in_same_as_next), cmocka_unit_test(test_value_fast_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

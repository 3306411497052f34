/* Unit tests for the demo's pure parts: bench JSON reading, Prometheus counters, axes, table, SVG, HTML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "demo.h"

static const char *bench_doc =
    "{\"summary\": {\"completed\": 3, \"failed\": 1, \"shed\": 2, \"requests_sent\": 6,"
    " \"request_throughput\": 1.5, \"output_throughput\": 99.5, \"duration_s\": 2.0,"
    " \"ttft_ms\": {\"p50\": 20.0, \"p90\": 40.0, \"p99\": 50.0},"
    " \"tpot_ms\": {\"p90\": 5.25}, \"e2e_ms\": {\"p90\": 300.0},"
    " \"goodput\": 1.25, \"goodput_fraction\": 0.5},"
    " \"requests\": ["
    "  {\"id\": 0, \"ok\": true, \"start_ms\": 0.0, \"ttft_ms\": 40.0, \"e2e_ms\": 1000.0},"
    "  {\"id\": 1, \"ok\": false, \"start_ms\": 5.0, \"ttft_ms\": null, \"e2e_ms\": null},"
    "  {\"id\": 2, \"ok\": true, \"start_ms\": 100.0, \"ttft_ms\": 10.0, \"e2e_ms\": 400.0},"
    "  {\"id\": 3, \"ok\": true, \"start_ms\": 200.0, \"ttft_ms\": 20.0, \"e2e_ms\": 1500.0}]}";

static void load(ig_demo_result_t *r, const char *id, const char *name, const char *doc) {
  memset(r, 0, sizeof *r);
  r->id = id;
  r->name = name;
  json_error_t e;
  json_t *root = json_loads(doc, 0, &e);
  assert_non_null(root);
  assert_int_equal(ig_demo_result_from_json(r, root), 0);
  json_decref(root);
}

static void test_result_from_json(void **state) {
  (void)state;
  ig_demo_result_t r;
  load(&r, "a", "A", bench_doc);
  assert_int_equal(r.ran, 1);
  assert_int_equal(r.completed, 3);
  assert_int_equal(r.failed, 1);
  assert_int_equal(r.shed, 2);
  assert_true(r.ttft_p90 == 40.0 && r.tpot_p90 == 5.25 && r.e2e_p90 == 300.0 && r.tok_s == 99.5);
  assert_true(r.have_goodput && r.goodput == 1.25 && r.goodput_fraction == 0.5);
  /* only successful requests, sorted */
  assert_int_equal(r.n_ttft, 3);
  assert_true(r.ttft[0] == 10.0 && r.ttft[1] == 20.0 && r.ttft[2] == 40.0);
  assert_int_equal(r.n_done, 3);
  assert_true(r.done_s[0] == 0.5 && r.done_s[1] == 1.0 && r.done_s[2] == 1.7);
  assert_string_equal(r.id, "a");
  ig_demo_result_free(&r);
  assert_string_equal(r.id, "a"); /* id and name survive the free */
  assert_null(r.ttft);

  json_t *bad = json_loads("{\"requests\": []}", 0, NULL);
  assert_int_equal(ig_demo_result_from_json(&r, bad), IG_EPARSE);
  json_decref(bad);
  ig_demo_result_free(&r);
}

static void test_prefix_counters(void **state) {
  (void)state;
  const char *text = "# HELP vllm:prefix_cache_hits Prefix cache hits\n"
                     "# TYPE vllm:prefix_cache_hits counter\n"
                     "vllm:prefix_cache_hits_total{model_name=\"llama3\",engine=\"0\"} 100\n"
                     "vllm:prefix_cache_hits_total{model_name=\"x}\\\"y\"} 28.5\n"
                     "vllm:prefix_cache_hits_created 17\n"
                     "vllm:prefix_cache_queries_total 256\n"
                     "vllm:prefix_cache_queries_totalx 1000\n"
                     "vllm:num_requests_waiting 3";
  double h, q;
  assert_int_equal(ig_demo_parse_prefix_counters(text, strlen(text), &h, &q), 0);
  assert_true(h == 128.5);
  assert_true(q == 256);
  const char *none = "vllm:num_requests_waiting 3\n";
  assert_int_equal(ig_demo_parse_prefix_counters(none, strlen(none), &h, &q), IG_ENOENT);
  assert_int_equal(ig_demo_parse_prefix_counters("", 0, &h, &q), IG_ENOENT);
  /* a truncated line never reads past the end */
  const char *cut = "vllm:prefix_cache_hits_total{a=\"b";
  assert_int_equal(ig_demo_parse_prefix_counters(cut, strlen(cut), &h, &q), IG_ENOENT);
}

static void test_axis(void **state) {
  (void)state;
  ig_demo_axis_t a;
  ig_demo_axis(237, 6, &a);
  assert_true(a.step == 50 && a.max == 250 && a.decimals == 0);
  ig_demo_axis(1.0, 5, &a);
  assert_true(a.max == 1.0);
  assert_true(a.step > 0.19 && a.step < 0.21);
  assert_int_equal(a.decimals, 1);
  ig_demo_axis(0, 5, &a); /* no data: still a usable axis */
  assert_true(a.max == 1.0 && a.step > 0);
  ig_demo_axis(-3, 0, &a);
  assert_true(a.max > 0 && a.step > 0);
  ig_demo_axis(1000, 5, &a);
  assert_true(a.max == 1000 && a.step == 200);
}

static void test_escape(void **state) {
  (void)state;
  ig_buf_t b;
  ig_buf_init(&b);
  ig_demo_html_escape(&b, "<a href=\"x\">&'</a>");
  assert_string_equal(b.data, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  ig_buf_free(&b);
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

static void test_table_text(void **state) {
  (void)state;
  ig_demo_result_t rows[3];
  load(&rows[0], "base", "baseline", bench_doc);
  load(&rows[1], "fast", "fast one", bench_doc);
  rows[1].ttft_p90 = 20.0;
  rows[1].cache_hits = 50;
  rows[1].cache_queries = 200;
  memset(&rows[2], 0, sizeof rows[2]);
  rows[2].id = "gone";
  rows[2].name = "did-not-run";
  ig_buf_t b;
  ig_buf_init(&b);
  ig_demo_table_text(&b, rows, 3, 0);
  assert_non_null(strstr(b.data, "target"));
  assert_non_null(strstr(b.data, "baseline"));
  assert_non_null(strstr(b.data, "1.00x"));
  assert_non_null(strstr(b.data, "0.50x"));
  assert_non_null(strstr(b.data, "25.0%"));
  assert_non_null(strstr(b.data, "1+2")); /* failed+shed */
  assert_non_null(strstr(b.data, "did not run"));
  assert_non_null(strstr(b.data, "goodput"));
  assert_non_null(strstr(b.data, "1.25 (50%)"));
  /* header + 3 rows, every line the same width */
  int lines = 0;
  size_t w = 0;
  for (const char *p = b.data; *p;) {
    const char *nl = strchr(p, '\n');
    assert_non_null(nl);
    if (lines == 0) w = (size_t)(nl - p);
    assert_int_equal((size_t)(nl - p), w);
    lines++;
    p = nl + 1;
  }
  assert_int_equal(lines, 4);
  /* a run without an SLO (goodput null): a dash, not 0 */
  json_t *nogp = json_loads("{\"summary\": {\"completed\": 1, \"goodput\": null}}", 0, NULL);
  assert_int_equal(ig_demo_result_from_json(&rows[1], nogp), 0);
  json_decref(nogp);
  assert_false(rows[1].have_goodput);
  ig_buf_reset(&b);
  ig_demo_table_text(&b, rows, 2, 2);
  assert_int_equal(count(b.data, "1.25 (50%)"), 1); /* the first row only */
  /* no baseline: the ratio column is a dash */
  ig_buf_reset(&b);
  ig_demo_table_text(&b, rows, 2, 2);
  assert_null(strstr(b.data, "1.00x"));
  ig_buf_free(&b);
  for (int i = 0; i < 3; i++)
    ig_demo_result_free(&rows[i]);
}

static void test_svg(void **state) {
  (void)state;
  ig_demo_result_t rows[2];
  load(&rows[0], "a", "A <1>", bench_doc);
  memset(&rows[1], 0, sizeof rows[1]);
  rows[1].id = "b";
  rows[1].name = "B";
  ig_buf_t b;
  ig_buf_init(&b);
  ig_demo_svg_cdf(&b, rows, 2, 800, 400);
  assert_int_equal(count(b.data, "<svg"), 1);
  assert_int_equal(count(b.data, "</svg>"), 1);
  assert_int_equal(count(b.data, "<polyline"), 1); /* B has no data: legend only */
  assert_non_null(strstr(b.data, "A &lt;1&gt;"));
  assert_non_null(strstr(b.data, ">B</text>"));
  assert_null(strstr(b.data, "nan"));
  assert_null(strstr(b.data, "inf"));
  /* the CDF starts at 0 and ends at 1: the first and last points sit at the plot's bottom and top */
  const char *pts = strstr(b.data, "points=\"");
  assert_non_null(pts);
  ig_buf_reset(&b);
  ig_demo_svg_throughput(&b, rows, 2, 800, 300, 0.5);
  assert_int_equal(count(b.data, "<polyline"), 1);
  assert_non_null(strstr(b.data, "buckets of 0.5 s"));
  /* 1.7 s of completions in 0.5 s buckets: 4 points */
  const char *p = strstr(b.data, "<polyline");
  p = strstr(p, "points=\"") + 8;
  const char *e = strchr(p, '"');
  size_t commas = 0;
  for (const char *q = p; q < e; q++)
    commas += *q == ',';
  assert_int_equal(commas, 4);
  /* nothing at all: still a valid empty chart */
  ig_buf_reset(&b);
  ig_demo_svg_throughput(&b, rows + 1, 1, 800, 300, 0);
  assert_int_equal(count(b.data, "<polyline"), 0);
  assert_null(strstr(b.data, "nan"));
  ig_buf_free(&b);
  for (int i = 0; i < 2; i++)
    ig_demo_result_free(&rows[i]);
}

static void test_html(void **state) {
  (void)state;
  ig_demo_result_t rows[2];
  load(&rows[0], "a", "A", bench_doc);
  load(&rows[1], "b", "B", bench_doc);
  ig_demo_meta_t m = {.title = "t",
                      .command = "infergate demo --x '<y>'",
                      .nproc = 2,
                      .pods = 4,
                      .time_scale = 2,
                      .slo = "TTFT <= 250 ms"};
  ig_buf_t b;
  ig_buf_init(&b);
  ig_demo_html(&b, &m, rows, 2, 0);
  assert_true(strncmp(b.data, "<!DOCTYPE html>", 15) == 0);
  assert_int_equal(count(b.data, "<svg"), 2);
  assert_int_equal(count(b.data, "<polyline"), 4);
  assert_int_equal(count(b.data, "<tr id=\"row-"), 2);
  assert_non_null(strstr(b.data, "&lt;y&gt;"));
  assert_non_null(strstr(b.data, "<th>goodput</th>"));
  assert_non_null(strstr(b.data, "TTFT &lt;= 250 ms"));
  /* self-contained: no external references */
  assert_null(strstr(b.data, "<script"));
  assert_null(strstr(b.data, "src="));
  assert_null(strstr(b.data, "http://www.w3.org/1999")); /* only the SVG namespace URI */
  assert_null(strstr(b.data, "<link"));
  ig_buf_free(&b);
  for (int i = 0; i < 2; i++)
    ig_demo_result_free(&rows[i]);
}

static void test_slo(void **state) {
  (void)state;
  ig_demo_slo_t s;
  assert_int_equal(ig_demo_slo_parse("ttft=500ms,tpot=50", &s), 0);
  assert_true(s.ttft_ms == 500 && s.tpot_ms == 50 && s.e2e_ms == 0);
  assert_int_equal(ig_demo_slo_parse("e2e=1.5s,ttft=250us", &s), 0);
  assert_true(s.e2e_ms == 1500 && s.ttft_ms == 0.25 && s.tpot_ms == 0);
  const char *bad[] = {"",         "ttft",          "ttft=",   "ttft=0",          "ttft=-5ms", "ttft=5ms,",
                       "ttft=1h",  "ttft=1,ttft=2", "itl=5",   "ttft=0x10",       "ttft=1e3",  "ttft=inf",
                       "ttft=nan", " ttft=5",       "ttft= 5", "ttft=5ms;tpot=1", ",ttft=5",   "ttft=.ms"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (ig_demo_slo_parse(bad[i], &s) != IG_EINVAL) fail_msg("accepted '%s'", bad[i]);
  }
  assert_int_equal(ig_demo_slo_parse(NULL, &s), IG_EINVAL);
  /* formatted for the bench, divided by the time scale */
  ig_buf_t b;
  ig_buf_init(&b);
  assert_int_equal(ig_demo_slo_parse("ttft=500ms,tpot=50ms", &s), 0);
  ig_demo_slo_format(&b, &s, 2);
  assert_string_equal(b.data, "ttft=250ms,tpot=25ms");
  ig_buf_reset(&b);
  assert_int_equal(ig_demo_slo_parse("e2e=10s", &s), 0);
  ig_demo_slo_format(&b, &s, 0); /* a bad scale counts as 1 */
  assert_string_equal(b.data, "e2e=10000ms");
  /* no exponents for the bench: thirds, tiny and huge limits stay plain decimals */
  ig_buf_reset(&b);
  assert_int_equal(ig_demo_slo_parse("ttft=500ms,tpot=0.5ms,e2e=1000000s", &s), 0);
  ig_demo_slo_format(&b, &s, 3);
  assert_string_equal(b.data, "ttft=166.667ms,tpot=167us,e2e=333333333.333ms");
  ig_buf_reset(&b);
  assert_int_equal(ig_demo_slo_parse("ttft=1us", &s), 0);
  ig_demo_slo_format(&b, &s, 100);
  assert_string_equal(b.data, "ttft=1us");
  assert_int_equal(ig_demo_slo_parse("ttft=1000000000000ms", &s), IG_EINVAL);
  ig_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_result_from_json),
      cmocka_unit_test(test_prefix_counters),
      cmocka_unit_test(test_axis),
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_table_text),
      cmocka_unit_test(test_svg),
      cmocka_unit_test(test_html),
      cmocka_unit_test(test_slo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for the metrics registry and its Prometheus text rendering (parsed back with ig_prom_next). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/metrics.h"

/* Finds the sample `name` whose raw label text equals labels (NULL = no labels) in text. */
static int find_sample(const ig_buf_t *text, const char *name, const char *labels, double *v) {
  size_t pos = 0;
  ig_prom_sample_t s;
  while (ig_prom_next(text->data, text->len, &pos, &s) == 1) {
    if (!ig_prom_name_is(&s, name)) continue;
    if (labels ? (s.labels_len != strlen(labels) || memcmp(s.labels, labels, s.labels_len) != 0) : s.labels != NULL)
      continue;
    *v = s.value;
    return 1;
  }
  return 0;
}

static void test_counter_gauge(void **state) {
  (void)state;
  ig_registry_t *reg = ig_registry_new();
  ig_metric_t *c = ig_registry_counter(reg, "inference_objective_request_total", "Counter of requests.");
  ig_metric_t *g = ig_registry_gauge(reg, "inference_pool_ready_pods", "Ready pods.\nSecond \\ line");
  assert_non_null(c);
  assert_non_null(g);
  assert_ptr_equal(ig_registry_counter(reg, "inference_objective_request_total", "x"), c);
  assert_null(ig_registry_gauge(reg, "inference_objective_request_total", "x"));

  ig_buf_t lab;
  ig_buf_init(&lab);
  ig_buf_puts(&lab, "model_name=\"");
  ig_prom_label_escape(&lab, "we\"ird\\name\n");
  ig_buf_puts(&lab, "\",target_model_name=\"b\"");

  ig_metric_add(c, "model_name=\"a\",target_model_name=\"b\"", 1);
  ig_metric_add(c, "model_name=\"a\",target_model_name=\"b\"", 2);
  ig_metric_add(c, "model_name=\"a\",target_model_name=\"b\"", -5); /* ignored */
  ig_metric_add(c, lab.data, 1);
  ig_metric_observe(c, "", 1); /* wrong type: ignored */
  ig_metric_set(g, "name=\"pool\"", 3);
  ig_metric_add(g, "name=\"pool\"", -1);
  ig_metric_set(g, NULL, 0.25);
  assert_true(ig_metric_get(c, "model_name=\"a\",target_model_name=\"b\"") == 3);
  assert_true(ig_metric_get(g, "name=\"pool\"") == 2);
  assert_true(ig_metric_get(g, "") == 0.25);
  assert_true(ig_metric_get(g, "name=\"nope\"") == 0);

  ig_buf_t out;
  ig_buf_init(&out);
  ig_registry_render(reg, &out);
  assert_non_null(strstr(out.data, "# HELP inference_objective_request_total Counter of requests.\n"
                                   "# TYPE inference_objective_request_total counter\n"));
  assert_non_null(strstr(out.data, "# HELP inference_pool_ready_pods Ready pods.\\nSecond \\\\ line\n"
                                   "# TYPE inference_pool_ready_pods gauge\n"));
  double v = 0;
  assert_true(find_sample(&out, "inference_objective_request_total", "model_name=\"a\",target_model_name=\"b\"", &v));
  assert_true(v == 3);
  assert_true(find_sample(&out, "inference_pool_ready_pods", "name=\"pool\"", &v));
  assert_true(v == 2);
  assert_true(find_sample(&out, "inference_pool_ready_pods", NULL, &v));
  assert_true(v == 0.25);

  /* the escaped label value decodes back */
  size_t pos = 0;
  ig_prom_sample_t s;
  int found = 0;
  char val[64];
  while (ig_prom_next(out.data, out.len, &pos, &s) == 1) {
    if (ig_prom_label(&s, "model_name", val, sizeof val) > 0 && strcmp(val, "we\"ird\\name\n") == 0) {
      found = 1;
      assert_true(s.value == 1);
    }
  }
  assert_true(found);

  /* remove and clear */
  assert_int_equal(ig_metric_remove(g, "name=\"pool\""), 0);
  assert_int_equal(ig_metric_remove(g, "name=\"pool\""), IG_ENOENT);
  assert_true(ig_metric_get(g, "") == 0.25);
  ig_metric_clear(c);
  ig_buf_reset(&out);
  ig_registry_render(reg, &out);
  assert_false(find_sample(&out, "inference_objective_request_total", "model_name=\"a\",target_model_name=\"b\"", &v));
  assert_false(find_sample(&out, "inference_pool_ready_pods", "name=\"pool\"", &v));
  assert_true(find_sample(&out, "inference_pool_ready_pods", NULL, &v));
  ig_metric_add(c, "x=\"1\"", 4);
  assert_true(ig_metric_get(c, "x=\"1\"") == 4);

  ig_buf_free(&lab);
  ig_buf_free(&out);
  ig_registry_free(reg);
}

static void test_histogram(void **state) {
  (void)state;
  ig_registry_t *reg = ig_registry_new();
  const double bounds[] = {1, 0.1, 0.5, 0.5, INFINITY, 2.5};
  ig_metric_t *h = ig_registry_histogram(reg, "inference_objective_request_duration_seconds", "Latency.", bounds, 6);
  assert_non_null(h);
  const char *l = "model_name=\"m\",target_model_name=\"t\"";
  double obs[] = {0.05, 0.1, 0.3, 0.7, 2, 100, NAN};
  for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) ig_metric_observe(h, l, obs[i]);
  ig_metric_observe(h, NULL, 0.2);
  ig_metric_add(h, l, 1); /* wrong type */
  assert_true(ig_metric_get(h, l) == 6);
  assert_true(fabs(ig_metric_sum(h, l) - 103.15) < 1e-9);

  ig_buf_t out;
  ig_buf_init(&out);
  ig_registry_render(reg, &out);
  assert_non_null(strstr(out.data, "# TYPE inference_objective_request_duration_seconds histogram\n"));
  const char *n = "inference_objective_request_duration_seconds_bucket";
  struct {
    const char *le;
    double want;
  } b[] = {{"0.1", 2}, {"0.5", 3}, {"1", 4}, {"2.5", 5}, {"+Inf", 6}};
  char lab[128];
  double v = 0;
  for (size_t i = 0; i < 5; i++) {
    snprintf(lab, sizeof lab, "%s,le=\"%s\"", l, b[i].le);
    assert_true(find_sample(&out, n, lab, &v));
    assert_true(v == b[i].want);
  }
  snprintf(lab, sizeof lab, "%s,le=\"0.5\"", l);
  assert_true(find_sample(&out, n, lab, &v));
  assert_true(find_sample(&out, "inference_objective_request_duration_seconds_count", l, &v));
  assert_true(v == 6);
  assert_true(find_sample(&out, "inference_objective_request_duration_seconds_sum", l, &v));
  assert_true(fabs(v - 103.15) < 1e-9);
  /* the unlabeled series */
  assert_true(find_sample(&out, n, "le=\"0.5\"", &v));
  assert_true(v == 1);
  assert_true(find_sample(&out, n, "le=\"0.1\"", &v));
  assert_true(v == 0);
  assert_true(find_sample(&out, "inference_objective_request_duration_seconds_count", NULL, &v));
  assert_true(v == 1);
  /* exactly 4 + 1 bucket lines per series */
  size_t pos = 0, nb = 0;
  ig_prom_sample_t s;
  while (ig_prom_next(out.data, out.len, &pos, &s) == 1) nb += ig_prom_name_is(&s, n);
  assert_int_equal(nb, 10);

  /* no bounds at all: only the +Inf bucket */
  ig_metric_t *h0 = ig_registry_histogram(reg, "h0", "", NULL, 0);
  ig_metric_observe(h0, NULL, 5);
  ig_buf_reset(&out);
  ig_registry_render(reg, &out);
  assert_true(find_sample(&out, "h0_bucket", "le=\"+Inf\"", &v));
  assert_true(v == 1);
  ig_buf_free(&out);
  ig_registry_free(reg);
}

static void test_many_series(void **state) {
  (void)state;
  ig_registry_t *reg = ig_registry_new();
  ig_metric_t *c = ig_registry_counter(reg, "c_total", "many");
  char l[64];
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 1000; i++) {
      snprintf(l, sizeof l, "pod=\"p%d\"", i);
      ig_metric_add(c, l, i);
    }
  for (int i = 0; i < 1000; i += 2) {
    snprintf(l, sizeof l, "pod=\"p%d\"", i);
    assert_int_equal(ig_metric_remove(c, l), 0);
  }
  for (int i = 0; i < 1000; i++) {
    snprintf(l, sizeof l, "pod=\"p%d\"", i);
    assert_true(ig_metric_get(c, l) == (i % 2 ? 3.0 * i : 0));
  }
  ig_buf_t out;
  ig_buf_init(&out);
  ig_registry_render(reg, &out);
  size_t pos = 0, n = 0;
  ig_prom_sample_t s;
  while (ig_prom_next(out.data, out.len, &pos, &s) == 1) n++;
  assert_int_equal(n, 500);
  ig_buf_free(&out);
  ig_registry_free(reg);
  ig_registry_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counter_gauge),
      cmocka_unit_test(test_histogram),
      cmocka_unit_test(test_many_series),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

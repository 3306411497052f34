/* Integer priority (GIE InferenceObjective): a native model's `priority` instead of `criticality`,
 * the native `objectives` section, kind InferenceObjective in manifests, the band mapping, and each
 * mistake reported at its file:line:column. Also the quick-start YAML of --engine/--profile and the
 * pool's discovery_interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "infergate/config.h"
#include "infergate/core.h"

static ig_config_t *load_ok(const char *yaml) {
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &errs);
  if (rc != 0) ig_config_errors_print(&errs, stderr);
  assert_int_equal(rc, 0);
  assert_non_null(cfg);
  ig_config_errors_free(&errs);
  return cfg;
}

/* Checks errors against a NULL-terminated list of "LINE:COL: substring" (file t.yaml), in order.
 * manifests: load through the manifests loader (pools only) instead of the native one. */
static void expect_errors(int manifests, const char *yaml, ...) {
  ig_config_t *cfg = (ig_config_t *)1;
  ig_config_errors_t errs = {0};
  ig_manifest_opts_t mo = {.pools_only = 1};
  int rc = manifests ? ig_config_load_manifests_string("t.yaml", yaml, strlen(yaml), &mo, &cfg, &errs)
                     : ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &errs);
  va_list ap;
  va_start(ap, yaml);
  size_t i = 0;
  int bad = rc != IG_ECONFIG || cfg != NULL;
  for (const char *want; (want = va_arg(ap, const char *)); i++) {
    int line, col, off = 0;
    assert_int_equal(sscanf(want, "%d:%d: %n", &line, &col, &off), 2);
    if (i >= errs.n || errs.v[i].line != line || errs.v[i].column != col ||
        !strstr(errs.v[i].message, want + off) || strcmp(errs.v[i].file, "t.yaml")) {
      fprintf(stderr, "expected error %zu: %s\n", i, want);
      bad = 1;
    }
  }
  va_end(ap);
  if (i != errs.n) bad = 1;
  if (bad) {
    fprintf(stderr, "got (rc %d):\n", rc);
    ig_config_errors_print(&errs, stderr);
  }
  ig_config_errors_free(&errs);
  assert_false(bad);
}

#define LISTENER "listeners:\n  - name: web\n    address: 127.0.0.1:8080\n"
#define POOL "pools:\n  - name: llama\n    endpoints: [127.0.0.1:8001]\n"
/* LISTENER + POOL are 6 lines */

static void test_bands(void **state) {
  (void)state;
  assert_int_equal(ig_config_priority_band(1), IG_CRIT_CRITICAL);
  assert_int_equal(ig_config_priority_band(1000), IG_CRIT_CRITICAL);
  assert_int_equal(ig_config_priority_band(0), IG_CRIT_STANDARD);
  assert_int_equal(ig_config_priority_band(-1), IG_CRIT_SHEDDABLE);
  assert_int_equal(ig_config_priority_band(INT32_MIN), IG_CRIT_SHEDDABLE);
  for (int c = IG_CRIT_CRITICAL; c <= IG_CRIT_SHEDDABLE; c++)
    assert_int_equal(ig_config_priority_band(ig_config_criticality_priority((ig_criticality_t)c)), c);
}

static void test_native_priority(void **state) {
  (void)state;
  ig_config_t *cfg = load_ok(
      LISTENER POOL "models:\n  - {name: hi, pool: llama, priority: 10}\n"
                    "  - {name: lo, pool: llama, priority: -2}\n  - {name: std, pool: llama, priority: 0}\n"
                    "  - {name: crit, pool: llama, criticality: Critical}\n"
                    "  - {name: shed, pool: llama, criticality: Sheddable}\n"
                    "  - {name: plain, pool: llama}\n  - {name: plus, pool: llama, priority: +3}\n");
  struct {
    const char *name;
    int prio;
    ig_criticality_t crit;
  } want[] = {{"hi", 10, IG_CRIT_CRITICAL},  {"lo", -2, IG_CRIT_SHEDDABLE},   {"std", 0, IG_CRIT_STANDARD},
              {"crit", 1, IG_CRIT_CRITICAL}, {"shed", -1, IG_CRIT_SHEDDABLE}, {"plain", 0, IG_CRIT_STANDARD},
              {"plus", 3, IG_CRIT_CRITICAL}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const ig_model_cfg_t *m = ig_config_find_model(cfg, want[i].name, strlen(want[i].name));
    assert_non_null(m);
    assert_int_equal(m->priority, want[i].prio);
    assert_int_equal(m->criticality, want[i].crit);
  }
  assert_int_equal(cfg->backends[0].discovery_interval_ms, 5000);
  ig_config_free(cfg);

  expect_errors(0,
                LISTENER POOL "models:\n  - {name: a, pool: llama, priority: 1, criticality: Critical}\n"
                              "  - {name: b, pool: llama, priority: high}\n"
                              "  - {name: c, pool: llama, priority: 2147483648}\n"
                              "  - {name: d, pool: llama, priority: -}\n"
                              "  - {name: e, pool: llama, priority: [1]}\n",
                "8:38: model has both 'criticality' and 'priority'",
                "9:38: invalid integer 'high' for 'priority' in model",
                "10:38: 'priority' in model is out of range: 2147483648 (expected -2147483648..2147483647)",
                "11:38: invalid integer '-' for 'priority' in model",
                "12:38: expected a string for 'priority' in model, got a list", NULL);
}

static void test_native_objectives(void **state) {
  (void)state;
  ig_config_t *cfg = load_ok(LISTENER POOL "  - name: other\n    endpoints: [127.0.0.1:8002]\n"
                                           "objectives:\n  - {name: batch, pool: llama, priority: -5}\n"
                                           "  - {name: chat, pool: llama, priority: 7}\n"
                                           "  - {name: chat, pool: other}\n");
  assert_int_equal(cfg->n_objectives, 3);
  const ig_objective_cfg_t *o = ig_config_find_objective(cfg, 0, "batch", 5);
  assert_non_null(o);
  assert_int_equal(o->priority, -5);
  assert_int_equal(o->line, 10);
  o = ig_config_find_objective(cfg, 0, "chat", 4);
  assert_non_null(o);
  assert_int_equal(o->priority, 7);
  o = ig_config_find_objective(cfg, 1, "chat", 4);
  assert_non_null(o);
  assert_int_equal(o->priority, 0);
  assert_string_equal(o->pool, "other");
  assert_null(ig_config_find_objective(cfg, 1, "batch", 5));
  assert_null(ig_config_find_objective(cfg, 0, "cha", 3));
  ig_config_free(cfg);

  expect_errors(0,
                LISTENER POOL "backends:\n  - name: web\n    endpoints: [127.0.0.1:9000]\n"
                              "objectives:\n  - {name: a, pool: llama}\n  - {name: a, pool: llama}\n"
                              "  - {name: b, pool: nopool}\n  - {name: c, pool: web}\n  - {pool: llama}\n"
                              "  - {name: d, pool: llama, priority: 1.5, extra: 1}\n",
                "12:12: duplicate objective 'a' in pool 'llama' (first defined at line 11)",
                "13:21: unknown pool 'nopool' in objective",
                "14:21: 'web' is a backend, not an inference pool", "15:5: missing required key 'name'",
                "16:38: invalid integer '1.5' for 'priority' in objective",
                "16:43: unknown key 'extra' in objective", NULL);
}

#define M_POOL                                                                                               \
  "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: llama}\n"               \
  "spec:\n  selector: {matchLabels: {app: llama}}\n  targetPorts: [{number: 8000}]\n"                        \
  "  endpointPickerRef: {name: epp, port: {number: 9002}}\n---\n"
/* M_POOL is 8 lines */
#define OBJ "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceObjective\n"

static void test_manifest_objective(void **state) {
  (void)state;
  const char *y =
      M_POOL OBJ "metadata: {name: premium}\nspec:\n  priority: 100\n  poolRef:\n"
                 "    group: inference.networking.k8s.io\n    kind: InferencePool\n    name: llama\n---\n" OBJ
                 "metadata: {name: batch}\nspec: {priority: -1, poolRef: {name: llama}}\n---\n" OBJ
                 "metadata: {name: plain}\nspec: {poolRef: {name: llama}}\n";
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  ig_manifest_opts_t mo = {.pools_only = 1};
  int rc = ig_config_load_manifests_string("t.yaml", y, strlen(y), &mo, &cfg, &errs);
  if (rc) ig_config_errors_print(&errs, stderr);
  assert_int_equal(rc, 0);
  assert_int_equal(cfg->n_objectives, 3);
  long pi = ig_config_find_backend(cfg, "llama");
  assert_true(pi >= 0);
  const ig_objective_cfg_t *o = ig_config_find_objective(cfg, (size_t)pi, "premium", 7);
  assert_non_null(o);
  assert_int_equal(o->priority, 100);
  assert_int_equal(o->line, 9);
  assert_string_equal(o->file, "t.yaml");
  o = ig_config_find_objective(cfg, (size_t)pi, "batch", 5);
  assert_non_null(o);
  assert_int_equal(o->priority, -1);
  assert_int_equal(ig_config_priority_band(o->priority), IG_CRIT_SHEDDABLE);
  o = ig_config_find_objective(cfg, (size_t)pi, "plain", 5);
  assert_non_null(o);
  assert_int_equal(o->priority, 0);
  ig_config_free(cfg);
  ig_config_errors_free(&errs);

  expect_errors(
      1,
      M_POOL OBJ "metadata: {name: a}\nspec: {priority: high, poolRef: {name: llama}}\n---\n" OBJ
                 "metadata: {name: b}\nspec: {priority: 3000000000, poolRef: {name: llama}}\n---\n" OBJ
                 "metadata: {name: c}\nspec: {priority: 1}\n---\n" OBJ
                 "metadata: {name: d}\nspec: {poolRef: {name: nopool}}\n---\n" OBJ
                 "metadata: {name: e}\nspec: {poolRef: {name: llama, kind: Service}}\n---\n" OBJ
                 "metadata: {name: f}\n",
      "12:18: spec.priority: invalid integer 'high'",
      "17:18: spec.priority: out of range: 3000000000 (expected -2147483648..2147483647)",
      "22:7: spec: missing required field 'poolRef'",
      "27:24: spec.poolRef.name: unknown InferencePool 'nopool'",
      "32:17: spec.poolRef: must reference an InferencePool", "34:1: missing required field 'spec'", NULL);
}

static void test_quick_yaml(void **state) {
  (void)state;
  ig_buf_t y;
  ig_buf_init(&y);
  ig_quick_cfg_t q = {.listen = "127.0.0.1:8080",
                      .pool = "127.0.0.1:8001,127.0.0.1:8002",
                      .engine = "sglang",
                      .profile = "round-robin",
                      .discovery_interval = "250ms",
                      .batch_slots = "48"};
  ig_config_quick_yaml(&y, &q);
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  assert_int_equal(ig_config_load_string("command line", y.data, y.len, &cfg, &errs), 0);
  assert_int_equal(cfg->n_backends, 1);
  assert_int_equal(cfg->backends[0].engine, IG_ENGINE_SGLANG);
  assert_string_equal(cfg->backends[0].scheduler, "round-robin");
  assert_int_equal(cfg->backends[0].discovery_interval_ms, 250);
  assert_int_equal(cfg->backends[0].tuning.batch_slots, 48);
  assert_int_equal(cfg->n_models, 0);
  ig_config_free(cfg);
  ig_buf_reset(&y);
  q.engine = "tgi";
  ig_config_quick_yaml(&y, &q);
  cfg = (ig_config_t *)1;
  assert_int_equal(ig_config_load_string("command line", y.data, y.len, &cfg, &errs), IG_ECONFIG);
  assert_null(cfg);
  assert_int_equal(errs.n, 1);
  assert_non_null(strstr(errs.v[0].message, "invalid value 'tgi' for 'engine'"));
  ig_config_errors_free(&errs);
  ig_buf_free(&y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bands),
      cmocka_unit_test(test_native_priority),
      cmocka_unit_test(test_native_objectives),
      cmocka_unit_test(test_manifest_objective),
      cmocka_unit_test(test_quick_yaml),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

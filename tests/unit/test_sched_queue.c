/* Unit tests for admission and the flow-control queue: bands, fairness, TTL, capacity and eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/sched.h"

static int items[64];
#define ITEM(i) ((void *)&items[(i)])
#define ID(p) ((int)((int *)(p)-items))

static int push(ig_sched_queue_t *q, int i, ig_sched_crit_t c, const char *fid, uint64_t now, uint64_t ttl,
                void **ev) {
  return ig_sched_queue_push(q, ITEM(i), c, fid, fid ? strlen(fid) : 0, now, ttl, NULL, ev);
}

static int pop(ig_sched_queue_t *q, uint64_t now, int *rc) {
  void *d;
  *rc = ig_sched_queue_pop(q, now, &d, NULL);
  return d ? ID(d) : -1;
}

static void test_bands(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(16);
  int rc;
  assert_int_equal(push(q, 0, IG_SCHED_CRIT_SHEDDABLE, NULL, 0, 1000, NULL), 0);
  assert_int_equal(push(q, 1, IG_SCHED_CRIT_STANDARD, NULL, 0, 1000, NULL), 0);
  assert_int_equal(push(q, 2, IG_SCHED_CRIT_CRITICAL, NULL, 0, 1000, NULL), 0);
  assert_int_equal(push(q, 3, IG_SCHED_CRIT_STANDARD, NULL, 0, 1000, NULL), 0);
  assert_int_equal(push(q, 4, IG_SCHED_CRIT_CRITICAL, NULL, 0, 1000, NULL), 0);
  assert_int_equal(ig_sched_queue_len(q), 5);
  assert_int_equal(ig_sched_queue_band_len(q, IG_SCHED_CRIT_STANDARD), 2);
  int want[] = {2, 4, 1, 3, 0};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(pop(q, 1, &rc), want[i]);
    assert_int_equal(rc, 0);
  }
  assert_int_equal(pop(q, 1, &rc), -1);
  assert_int_equal(rc, IG_ENOENT);
  assert_int_equal(ig_sched_queue_len(q), 0);
  ig_sched_crit_t c;
  void *d;
  push(q, 7, IG_SCHED_CRIT_SHEDDABLE, NULL, 0, 1000, NULL);
  assert_int_equal(ig_sched_queue_pop(q, 1, &d, &c), 0);
  assert_int_equal(c, IG_SCHED_CRIT_SHEDDABLE);
  assert_int_equal(push(q, 1, (ig_sched_crit_t)9, NULL, 0, 1, NULL), IG_EINVAL);
  ig_sched_queue_free(q);
}

static void test_fairness(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(32);
  int rc;
  /* flow a floods first; b and c arrive later; they still alternate */
  for (int i = 0; i < 6; i++) push(q, i, IG_SCHED_CRIT_STANDARD, "a", 0, 1000, NULL);
  push(q, 10, IG_SCHED_CRIT_STANDARD, "b", 0, 1000, NULL);
  push(q, 11, IG_SCHED_CRIT_STANDARD, "b", 0, 1000, NULL);
  push(q, 20, IG_SCHED_CRIT_STANDARD, "c", 0, 1000, NULL);
  int want[] = {0, 10, 20, 1, 11, 2, 3, 4, 5};
  for (int i = 0; i < 9; i++) assert_int_equal(pop(q, 1, &rc), want[i]);
  /* no fairness id is one flow of its own; the same id in another band is another flow */
  push(q, 0, IG_SCHED_CRIT_STANDARD, NULL, 0, 1000, NULL);
  push(q, 1, IG_SCHED_CRIT_STANDARD, NULL, 0, 1000, NULL);
  push(q, 2, IG_SCHED_CRIT_STANDARD, "x", 0, 1000, NULL);
  push(q, 3, IG_SCHED_CRIT_CRITICAL, "x", 0, 1000, NULL);
  int want2[] = {3, 0, 2, 1};
  for (int i = 0; i < 4; i++) assert_int_equal(pop(q, 1, &rc), want2[i]);
  ig_sched_queue_free(q);
}

static void test_ttl(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(8);
  int rc;
  assert_int_equal(ig_sched_queue_next_deadline(q), UINT64_MAX);
  push(q, 0, IG_SCHED_CRIT_STANDARD, NULL, 100, 50, NULL);  /* deadline 150 */
  push(q, 1, IG_SCHED_CRIT_STANDARD, NULL, 110, 500, NULL); /* 610 */
  push(q, 2, IG_SCHED_CRIT_CRITICAL, NULL, 120, 20, NULL);  /* 140 */
  push(q, 3, IG_SCHED_CRIT_SHEDDABLE, NULL, 130, UINT64_MAX, NULL);
  assert_int_equal(ig_sched_queue_next_deadline(q), 140);
  void *d;
  assert_int_equal(ig_sched_queue_expire(q, 139, &d), IG_ENOENT);
  assert_int_equal(ig_sched_queue_expire(q, 145, &d), 0);
  assert_int_equal(ID(d), 2);
  assert_int_equal(ig_sched_queue_expire(q, 145, &d), IG_ENOENT);
  assert_int_equal(ig_sched_queue_next_deadline(q), 150);
  /* pop reports an expired head as IG_ETIMEDOUT (answer 503), then goes on */
  assert_int_equal(pop(q, 200, &rc), 0);
  assert_int_equal(rc, IG_ETIMEDOUT);
  assert_int_equal(pop(q, 200, &rc), 1);
  assert_int_equal(rc, 0);
  assert_int_equal(pop(q, 1000000, &rc), 3); /* no deadline overflow */
  assert_int_equal(rc, 0);
  ig_sched_queue_free(q);
}

static void test_capacity_eviction(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(4);
  void *ev;
  int rc;
  push(q, 0, IG_SCHED_CRIT_SHEDDABLE, "a", 0, 1000, NULL);
  push(q, 1, IG_SCHED_CRIT_SHEDDABLE, "b", 1, 1000, NULL);
  push(q, 2, IG_SCHED_CRIT_STANDARD, NULL, 2, 1000, NULL);
  push(q, 3, IG_SCHED_CRIT_STANDARD, NULL, 3, 1000, NULL);
  assert_int_equal(ig_sched_queue_len(q), 4);
  /* full: a Sheddable is rejected (nothing lower to evict) */
  assert_int_equal(push(q, 4, IG_SCHED_CRIT_SHEDDABLE, NULL, 4, 1000, &ev), IG_EFULL);
  assert_null(ev);
  /* a Critical evicts the newest Sheddable */
  assert_int_equal(push(q, 5, IG_SCHED_CRIT_CRITICAL, NULL, 5, 1000, &ev), 0);
  assert_int_equal(ID(ev), 1);
  /* a Standard evicts the last Sheddable */
  assert_int_equal(push(q, 6, IG_SCHED_CRIT_STANDARD, NULL, 6, 1000, &ev), 0);
  assert_int_equal(ID(ev), 0);
  assert_int_equal(ig_sched_queue_band_len(q, IG_SCHED_CRIT_SHEDDABLE), 0);
  /* only higher bands left: a Standard is rejected; a Critical evicts the newest Standard */
  assert_int_equal(push(q, 7, IG_SCHED_CRIT_STANDARD, NULL, 7, 1000, &ev), IG_EFULL);
  assert_int_equal(push(q, 8, IG_SCHED_CRIT_CRITICAL, NULL, 8, 1000, &ev), 0);
  assert_int_equal(ID(ev), 6);
  assert_int_equal(push(q, 9, IG_SCHED_CRIT_CRITICAL, NULL, 9, 1000, &ev), 0);
  assert_int_equal(ID(ev), 3);
  assert_int_equal(push(q, 10, IG_SCHED_CRIT_CRITICAL, NULL, 10, 1000, &ev), 0);
  assert_int_equal(ID(ev), 2);
  assert_int_equal(push(q, 11, IG_SCHED_CRIT_CRITICAL, NULL, 11, 1000, &ev), IG_EFULL);
  int want[] = {5, 8, 9, 10};
  for (int i = 0; i < 4; i++) assert_int_equal(pop(q, 12, &rc), want[i]);
  assert_int_equal(ig_sched_queue_capacity(q), 4);
  ig_sched_queue_free(q);
}

static void test_cancel(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(8);
  ig_sched_qnode_t *n1, *n2;
  int rc;
  ig_sched_queue_push(q, ITEM(1), IG_SCHED_CRIT_STANDARD, "a", 1, 0, 100, &n1, NULL);
  ig_sched_queue_push(q, ITEM(2), IG_SCHED_CRIT_STANDARD, "b", 1, 0, 50, &n2, NULL);
  push(q, 3, IG_SCHED_CRIT_STANDARD, "a", 0, 200, NULL);
  assert_int_equal(ID(ig_sched_queue_cancel(q, n2)), 2);
  assert_int_equal(ig_sched_queue_next_deadline(q), 100);
  assert_int_equal(ID(ig_sched_queue_cancel(q, n1)), 1);
  assert_int_equal(ig_sched_queue_len(q), 1);
  assert_int_equal(pop(q, 1, &rc), 3);
  assert_null(ig_sched_queue_cancel(q, NULL));
  ig_sched_queue_free(q);
}

/* Random operations against a simple model: counts and the band order stay consistent. */
static void test_random_ops(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(20);
  ig_rng_t rng;
  ig_rng_seed(&rng, 5);
  size_t len = 0;
  for (int i = 0; i < 20000; i++) {
    int op = (int)(ig_rng_next(&rng) % 4);
    uint64_t now = (uint64_t)i;
    void *d;
    if (op <= 1) {
      char fid[4] = {(char)('a' + ig_rng_next(&rng) % 5), 0};
      void *ev;
      int rc = ig_sched_queue_push(q, ITEM(i % 64), (ig_sched_crit_t)(ig_rng_next(&rng) % 3), fid, 1, now,
                                   ig_rng_next(&rng) % 40, NULL, &ev);
      if (rc == 0 && !ev) len++;
    } else if (op == 2) {
      ig_sched_crit_t c;
      int rc = ig_sched_queue_pop(q, now, &d, &c);
      if (rc != IG_ENOENT) {
        len--;
        for (int b = 0; b < (int)c; b++) assert_int_equal(ig_sched_queue_band_len(q, (ig_sched_crit_t)b), 0);
      }
    } else {
      while (ig_sched_queue_expire(q, now, &d) == 0) len--;
      assert_true(ig_sched_queue_next_deadline(q) > now);
    }
    assert_int_equal(ig_sched_queue_len(q), len);
    assert_int_equal(ig_sched_queue_band_len(q, 0) + ig_sched_queue_band_len(q, 1) + ig_sched_queue_band_len(q, 2),
                     len);
  }
  ig_sched_queue_free(q);
}

static void pod_set(ig_sched_pod_t *p, double waiting, double kv) {
  memset(p, 0, sizeof *p);
  p->waiting = waiting;
  p->kv_usage = kv;
  p->has_metrics = 1;
}

static void test_admit(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_pod_t pods[2];
  ig_sched_request_t crit = {.crit = IG_SCHED_CRIT_CRITICAL}, std = {.crit = IG_SCHED_CRIT_STANDARD},
                     shed = {.crit = IG_SCHED_CRIT_SHEDDABLE};
  pod_set(&pods[0], 9, 0.1);
  pod_set(&pods[1], 1, 0.2);
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed, NULL), IG_SCHED_ADMIT_PICK);
  /* only the subset counts */
  size_t sub[] = {0};
  ig_sched_request_t shed_sub = shed;
  shed_sub.subset = sub;
  shed_sub.n_subset = 1;
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed_sub, NULL), IG_SCHED_ADMIT_SHED);
  /* saturated pool: queue Critical/Standard, shed Sheddable */
  pods[1].kv_usage = 0.9;
  assert_int_equal(ig_sched_admit(s, pods, 2, &crit, NULL), IG_SCHED_ADMIT_QUEUE);
  assert_int_equal(ig_sched_admit(s, pods, 2, &std, NULL), IG_SCHED_ADMIT_QUEUE);
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed, NULL), IG_SCHED_ADMIT_SHED);
  /* stale metrics make a pool saturated, never look idle */
  pod_set(&pods[0], 0, 0);
  pod_set(&pods[1], 0, 0);
  pods[0].metrics_age_ms = pods[1].metrics_age_ms = 1000;
  assert_int_equal(ig_sched_admit(s, pods, 2, &std, NULL), IG_SCHED_ADMIT_QUEUE);
  assert_int_equal(ig_sched_admit(s, pods, 0, &std, NULL), IG_SCHED_ADMIT_QUEUE);
  /* room again, but a Standard request already waits: a new Standard queues behind it; a Critical
   * does not */
  pods[0].metrics_age_ms = 0;
  ig_sched_queue_t *q = ig_sched_queue_new(4);
  push(q, 0, IG_SCHED_CRIT_STANDARD, NULL, 0, 1000, NULL);
  assert_int_equal(ig_sched_admit(s, pods, 2, &std, q), IG_SCHED_ADMIT_QUEUE);
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed, q), IG_SCHED_ADMIT_QUEUE);
  assert_int_equal(ig_sched_admit(s, pods, 2, &crit, q), IG_SCHED_ADMIT_PICK);
  ig_sched_queue_free(q);
  ig_sched_free(s);
  /* gie and the baselines never queue */
  s = ig_sched_new("round-robin", 1);
  pods[0].metrics_age_ms = 1000;
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed, NULL), IG_SCHED_ADMIT_PICK);
  ig_sched_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bands),     cmocka_unit_test(test_fairness),
      cmocka_unit_test(test_ttl),       cmocka_unit_test(test_capacity_eviction),
      cmocka_unit_test(test_cancel),    cmocka_unit_test(test_random_ops),
      cmocka_unit_test(test_admit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

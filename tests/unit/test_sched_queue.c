/* Unit tests for admission and the flow-control queue: bands (criticalities and integer priorities),
 * fairness, TTL, capacity and eviction, the band bound, and the criticality wrappers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/sched.h"

static int items[512];
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
  ig_sched_request_t crit = {.crit = IG_SCHED_CRIT_CRITICAL, .reserve_critical = 1},
                     std = {.crit = IG_SCHED_CRIT_STANDARD, .reserve_critical = 1},
                     shed = {.crit = IG_SCHED_CRIT_SHEDDABLE, .reserve_critical = 1};
  pod_set(&pods[0], 9, 0.1);
  pod_set(&pods[1], 0, 0.2);
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed, NULL), IG_SCHED_ADMIT_PICK);
  /* headroom for Critical (standard_queue_max 1): once every pod has a queue, only Critical joins it */
  pods[1].waiting = 1;
  assert_int_equal(ig_sched_admit(s, pods, 2, &crit, NULL), IG_SCHED_ADMIT_PICK);
  assert_int_equal(ig_sched_admit(s, pods, 2, &std, NULL), IG_SCHED_ADMIT_QUEUE);
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed, NULL), IG_SCHED_ADMIT_QUEUE);
  assert_true(ig_sched_pool_full_for(s, pods, 2, 0, 1) && !ig_sched_pool_full_for(s, pods, 2, 1, 1));
  /* without Critical traffic around (reserve_critical 0) there is nothing to keep room for */
  ig_sched_request_t plain = {.crit = IG_SCHED_CRIT_STANDARD};
  assert_int_equal(ig_sched_admit(s, pods, 2, &plain, NULL), IG_SCHED_ADMIT_PICK);
  assert_false(ig_sched_pool_full_for(s, pods, 2, 0, 0));
  pods[1].waiting = 0.5; /* pending counts too: 0.5 + 1 >= 1 */
  pods[1].pending = 1;
  assert_int_equal(ig_sched_admit(s, pods, 2, &std, NULL), IG_SCHED_ADMIT_QUEUE);
  pods[1].pending = 0;
  assert_int_equal(ig_sched_admit(s, pods, 2, &std, NULL), IG_SCHED_ADMIT_PICK);
  /* the option off: Standard joins any unsaturated pod's queue */
  ig_sched_opts_t o;
  ig_sched_opts_default(&o);
  assert_true(o.standard_queue_max == 1);
  o.standard_queue_max = 0;
  ig_sched_t *off = ig_sched_new_opts("default", 1, &o);
  pods[1].waiting = 4;
  assert_int_equal(ig_sched_admit(off, pods, 2, &std, NULL), IG_SCHED_ADMIT_PICK);
  assert_false(ig_sched_pool_full_for(off, pods, 2, 0, 1));
  ig_sched_free(off);
  pods[1].waiting = 1;
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
  assert_int_equal(ig_sched_admit(s, pods, 2, &crit, q), IG_SCHED_ADMIT_PICK);
  /* a Sheddable would only wait behind the higher priority: shed; behind its own priority: queue */
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed, q), IG_SCHED_ADMIT_SHED);
  ig_sched_queue_t *q2 = ig_sched_queue_new(4);
  push(q2, 0, IG_SCHED_CRIT_SHEDDABLE, NULL, 0, 1000, NULL);
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed, q2), IG_SCHED_ADMIT_QUEUE);
  assert_int_equal(ig_sched_admit(s, pods, 2, &std, q2), IG_SCHED_ADMIT_PICK);
  ig_sched_queue_free(q2);
  ig_sched_queue_free(q);
  ig_sched_free(s);
  /* gie and the baselines never queue */
  s = ig_sched_new("round-robin", 1);
  pods[0].metrics_age_ms = 1000;
  assert_int_equal(ig_sched_admit(s, pods, 2, &shed, NULL), IG_SCHED_ADMIT_PICK);
  ig_sched_free(s);
}

static int pushp(ig_sched_queue_t *q, int i, int prio, const char *fid, uint64_t now, void **ev) {
  return ig_sched_queue_push_prio(q, ITEM(i), prio, fid, fid ? strlen(fid) : 0, now, 1000, NULL, ev);
}

static int popp(ig_sched_queue_t *q, int *prio) {
  void *d;
  int rc = ig_sched_queue_pop_prio(q, 1, &d, prio);
  assert_true(rc == 0 || rc == IG_ENOENT);
  return d ? ID(d) : -1;
}

/* Distinct integer priorities are distinct bands, served highest first (10, 5, 0, -1, -7). */
static void test_priority_order(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(16);
  int prios[] = {0, -7, 5, -1, 10, 5, 0, 10, -7, 1};
  for (int i = 0; i < 10; i++) assert_int_equal(pushp(q, i, prios[i], NULL, (uint64_t)i, NULL), 0);
  assert_int_equal(ig_sched_queue_len(q), 10);
  int bp[8];
  size_t bl[8];
  assert_int_equal(ig_sched_queue_bands(q, bp, bl, 8), 6);
  int want_bp[] = {10, 5, 1, 0, -1, -7};
  size_t want_bl[] = {2, 2, 1, 2, 1, 2};
  for (int i = 0; i < 6; i++) {
    assert_int_equal(bp[i], want_bp[i]);
    assert_int_equal(bl[i], want_bl[i]);
  }
  assert_int_equal(ig_sched_queue_bands(q, bp, NULL, 2), 6); /* max bounds the writes, not the count */
  assert_int_equal(ig_sched_queue_prio_len(q, 5), 2);
  assert_int_equal(ig_sched_queue_prio_len(q, 4), 0);
  /* the crit view counts classes: > 0, 0, < 0 */
  assert_int_equal(ig_sched_queue_band_len(q, IG_SCHED_CRIT_CRITICAL), 5);
  assert_int_equal(ig_sched_queue_band_len(q, IG_SCHED_CRIT_STANDARD), 2);
  assert_int_equal(ig_sched_queue_band_len(q, IG_SCHED_CRIT_SHEDDABLE), 3);
  int top = 99;
  assert_int_equal(ig_sched_queue_top_priority(q, &top), 0);
  assert_int_equal(top, 10);
  int want[] = {4, 7, 2, 5, 9, 0, 6, 3, 1, 8};
  int wantp[] = {10, 10, 5, 5, 1, 0, 0, -1, -7, -7};
  for (int i = 0; i < 10; i++) {
    int p = 99;
    assert_int_equal(popp(q, &p), want[i]);
    assert_int_equal(p, wantp[i]);
  }
  assert_int_equal(popp(q, NULL), -1);
  assert_int_equal(ig_sched_queue_top_priority(q, &top), IG_ENOENT);
  assert_int_equal(ig_sched_queue_bands(q, bp, bl, 8), 0);
  /* extreme priorities are fine */
  pushp(q, 0, INT32_MIN, NULL, 0, NULL);
  pushp(q, 1, INT32_MAX, NULL, 0, NULL);
  assert_int_equal(popp(q, NULL), 1);
  assert_int_equal(popp(q, NULL), 0);
  ig_sched_queue_free(q);
}

/* Fairness inside an integer band: flows alternate; the same id in another priority is another flow. */
static void test_priority_fairness(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(32);
  for (int i = 0; i < 4; i++) pushp(q, i, 5, "a", 0, NULL);
  pushp(q, 10, 5, "b", 0, NULL);
  pushp(q, 11, 5, "b", 0, NULL);
  pushp(q, 20, 7, "a", 0, NULL);
  pushp(q, 30, 3, "b", 0, NULL);
  int want[] = {20, 0, 10, 1, 11, 2, 3, 30};
  for (int i = 0; i < 8; i++) assert_int_equal(popp(q, NULL), want[i]);
  ig_sched_queue_free(q);
}

/* When full, the newest request of the lowest band below the newcomer's priority is evicted. */
static void test_priority_eviction(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(5);
  void *ev;
  pushp(q, 0, 3, NULL, 0, NULL);
  pushp(q, 1, -7, "a", 1, NULL);
  pushp(q, 2, -1, NULL, 2, NULL);
  pushp(q, 3, -7, "b", 3, NULL);
  pushp(q, 4, 0, NULL, 4, NULL);
  /* below or equal to the lowest band: rejected, nothing changes */
  assert_int_equal(pushp(q, 5, -8, NULL, 5, &ev), IG_EFULL);
  assert_null(ev);
  assert_int_equal(pushp(q, 5, -7, NULL, 5, &ev), IG_EFULL);
  assert_int_equal(ig_sched_queue_len(q), 5);
  /* -3 beats -7: the newest -7 goes (3, then 1) */
  assert_int_equal(pushp(q, 6, -3, NULL, 6, &ev), 0);
  assert_int_equal(ID(ev), 3);
  assert_int_equal(pushp(q, 7, 1, NULL, 7, &ev), 0);
  assert_int_equal(ID(ev), 1);
  assert_int_equal(ig_sched_queue_prio_len(q, -7), 0);
  /* now the lowest band is -3 (item 6), then -1 (2), then 0 (4) */
  assert_int_equal(pushp(q, 8, -2, NULL, 8, &ev), 0);
  assert_int_equal(ID(ev), 6);
  assert_int_equal(pushp(q, 9, -2, NULL, 9, &ev), IG_EFULL); /* -2 is now the lowest band */
  assert_int_equal(pushp(q, 9, 2, NULL, 9, &ev), 0);
  assert_int_equal(ID(ev), 8);
  int want[] = {0, 9, 7, 4, 2};
  for (int i = 0; i < 5; i++) assert_int_equal(popp(q, NULL), want[i]);
  ig_sched_queue_free(q);
  /* ig_sched_queue_evict_below: the newest of the lowest band below the priority, until none is */
  q = ig_sched_queue_new(8);
  pushp(q, 0, 1, NULL, 0, NULL);
  pushp(q, 1, -1, "a", 1, NULL);
  pushp(q, 2, -5, NULL, 2, NULL);
  pushp(q, 3, -1, "b", 3, NULL);
  pushp(q, 4, 0, NULL, 4, NULL);
  int gone[] = {2, 3, 1};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(ig_sched_queue_evict_below(q, 0, &ev), 0);
    assert_int_equal(ID(ev), gone[i]);
  }
  assert_int_equal(ig_sched_queue_evict_below(q, 0, &ev), IG_ENOENT);
  assert_null(ev);
  assert_int_equal(ig_sched_queue_len(q), 2);
  assert_int_equal(ig_sched_queue_evict_below(q, 1, &ev), 0);
  assert_int_equal(ID(ev), 4);
  assert_int_equal(popp(q, NULL), 0);
  assert_int_equal(ig_sched_queue_evict_below(q, 5, &ev), IG_ENOENT);
  assert_int_equal(ig_sched_queue_evict_below(NULL, 5, &ev), IG_ENOENT);
  ig_sched_queue_free(q);
}

/* At most IG_SCHED_QUEUE_MAX_BANDS bands: a further priority joins the nearest band below it (or the
 * lowest), is never served before a higher band, and released bands are reused. */
static void test_band_bound(void **state) {
  (void)state;
  const int nb = IG_SCHED_QUEUE_MAX_BANDS;
  ig_sched_queue_t *q = ig_sched_queue_new(400);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < nb; i++) assert_int_equal(pushp(q, i, 2 * i + round, NULL, 0, NULL), 0);
    int bp[IG_SCHED_QUEUE_MAX_BANDS + 1];
    assert_int_equal(ig_sched_queue_bands(q, bp, NULL, (size_t)nb + 1), (size_t)nb);
    /* 7 + round has no band: it joins 6 + round; -5 is below all: it joins the lowest (round) */
    assert_int_equal(pushp(q, 200, 7 + round, NULL, 0, NULL), 0);
    assert_int_equal(pushp(q, 201, -5, NULL, 0, NULL), 0);
    assert_int_equal(ig_sched_queue_bands(q, bp, NULL, (size_t)nb + 1), (size_t)nb);
    assert_int_equal(ig_sched_queue_prio_len(q, 6 + round), 2);
    assert_int_equal(ig_sched_queue_prio_len(q, 7 + round), 0);
    assert_int_equal(ig_sched_queue_prio_len(q, round), 2);
    assert_int_equal(ig_sched_queue_band_len(q, IG_SCHED_CRIT_SHEDDABLE), 1);
    /* highest first; the guests come right after their hosts and report their own priority */
    int prev = INT32_MAX;
    for (int i = 0; i < nb + 2; i++) {
      int p = 0, id = popp(q, &p);
      assert_true(id >= 0);
      if (id == 200) {
        assert_int_equal(p, 7 + round);
        assert_int_equal(prev, 6 + round); /* its host band, after the host's own request */
        continue;
      }
      if (id == 201) {
        assert_int_equal(p, -5);
        assert_int_equal(prev, round);
        continue;
      }
      assert_int_equal(p, 2 * id + round);
      assert_true(p < prev);
      prev = p;
    }
    assert_int_equal(ig_sched_queue_len(q), 0);
    assert_int_equal(ig_sched_queue_bands(q, NULL, NULL, 0), 0);
  }
  ig_sched_queue_free(q);
}

/* The crit functions are the priorities 1 / 0 / -1: the same operations give the same results. */
static void test_crit_wrappers(void **state) {
  (void)state;
  assert_int_equal(ig_sched_crit_priority(IG_SCHED_CRIT_CRITICAL), 1);
  assert_int_equal(ig_sched_crit_priority(IG_SCHED_CRIT_STANDARD), 0);
  assert_int_equal(ig_sched_crit_priority(IG_SCHED_CRIT_SHEDDABLE), -1);
  assert_int_equal(ig_sched_priority_crit(5), IG_SCHED_CRIT_CRITICAL);
  assert_int_equal(ig_sched_priority_crit(0), IG_SCHED_CRIT_STANDARD);
  assert_int_equal(ig_sched_priority_crit(-7), IG_SCHED_CRIT_SHEDDABLE);
  ig_sched_request_t r = {.crit = IG_SCHED_CRIT_SHEDDABLE};
  assert_int_equal(ig_sched_request_priority(&r), -1);
  r.priority = 9; /* ignored without has_priority */
  assert_int_equal(ig_sched_request_priority(&r), -1);
  r.has_priority = 1;
  assert_int_equal(ig_sched_request_priority(&r), 9);
  ig_sched_queue_t *a = ig_sched_queue_new(12), *b = ig_sched_queue_new(12);
  ig_rng_t rng;
  ig_rng_seed(&rng, 11);
  for (int i = 0; i < 20000; i++) {
    int op = (int)(ig_rng_next(&rng) % 4);
    uint64_t now = (uint64_t)i;
    if (op <= 1) {
      char fid[2] = {(char)('a' + ig_rng_next(&rng) % 3), 0};
      ig_sched_crit_t c = (ig_sched_crit_t)(ig_rng_next(&rng) % 3);
      uint64_t ttl = ig_rng_next(&rng) % 40;
      void *ea, *eb;
      int ra = ig_sched_queue_push(a, ITEM(i % 64), c, fid, 1, now, ttl, NULL, &ea);
      int rb = ig_sched_queue_push_prio(b, ITEM(i % 64), ig_sched_crit_priority(c), fid, 1, now, ttl, NULL, &eb);
      assert_int_equal(ra, rb);
      assert_ptr_equal(ea, eb);
    } else if (op == 2) {
      void *da, *db;
      ig_sched_crit_t c = IG_SCHED_CRIT_STANDARD;
      int p = 0;
      assert_int_equal(ig_sched_queue_pop(a, now, &da, &c), ig_sched_queue_pop_prio(b, now, &db, &p));
      assert_ptr_equal(da, db);
      if (da) assert_int_equal(ig_sched_crit_priority(c), p);
    } else {
      void *da, *db;
      assert_int_equal(ig_sched_queue_expire(a, now, &da), ig_sched_queue_expire(b, now, &db));
      assert_ptr_equal(da, db);
    }
    for (int c = 0; c < IG_SCHED_N_CRIT; c++)
      assert_int_equal(ig_sched_queue_band_len(a, (ig_sched_crit_t)c),
                       ig_sched_queue_prio_len(b, ig_sched_crit_priority((ig_sched_crit_t)c)));
  }
  assert_int_equal(ig_sched_queue_push(a, ITEM(0), (ig_sched_crit_t)9, NULL, 0, 0, 1, NULL, NULL), IG_EINVAL);
  assert_int_equal(ig_sched_queue_push_prio(b, ITEM(0), 0, NULL, 3, 0, 1, NULL, NULL), IG_EINVAL);
  ig_sched_queue_free(a);
  ig_sched_queue_free(b);
}

/* Random operations over many priorities (more than the band bound): bands stay sorted and bounded,
 * their lengths add up, and a pop never leaves a higher band behind. */
static void test_priority_random(void **state) {
  (void)state;
  ig_sched_queue_t *q = ig_sched_queue_new(300);
  ig_sched_qnode_t *nodes[512] = {0};
  ig_rng_t rng;
  ig_rng_seed(&rng, 3);
  size_t len = 0, max_nb = 0;
  for (int i = 0; i < 30000; i++) {
    int op = (int)(ig_rng_next(&rng) % 5);
    uint64_t now = (uint64_t)i;
    void *d;
    if (op <= 2) {
      char fid[2] = {(char)('a' + ig_rng_next(&rng) % 4), 0};
      int prio = (int)(ig_rng_next(&rng) % 100) - 50;
      int slot = i % 512;
      void *ev;
      if (nodes[slot]) { /* reuse the handle slot: cancel the old one first */
        ig_sched_queue_cancel(q, nodes[slot]);
        nodes[slot] = NULL;
        len--;
      }
      int rc = ig_sched_queue_push_prio(q, ITEM(slot), prio, fid, 1, now, 200 + ig_rng_next(&rng) % 400,
                                        &nodes[slot], &ev);
      if (ev) nodes[ID(ev)] = NULL;
      if (rc == 0 && !ev) len++;
    } else if (op == 3) {
      int p = 0, top = 0;
      int had = ig_sched_queue_top_priority(q, &top) == 0;
      size_t top_len = had ? ig_sched_queue_prio_len(q, top) : 0;
      int rc = ig_sched_queue_pop_prio(q, now, &d, &p);
      assert_int_equal(rc == IG_ENOENT, !had);
      if (rc != IG_ENOENT) {
        nodes[ID(d)] = NULL;
        len--;
        assert_int_equal(ig_sched_queue_prio_len(q, top), top_len - 1); /* it came from the top band */
      }
    } else {
      while (ig_sched_queue_expire(q, now, &d) == 0) {
        nodes[ID(d)] = NULL;
        len--;
      }
    }
    int bp[IG_SCHED_QUEUE_MAX_BANDS];
    size_t bl[IG_SCHED_QUEUE_MAX_BANDS], sum = 0;
    size_t nb = ig_sched_queue_bands(q, bp, bl, IG_SCHED_QUEUE_MAX_BANDS);
    assert_true(nb <= IG_SCHED_QUEUE_MAX_BANDS);
    if (nb > max_nb) max_nb = nb;
    for (size_t b = 0; b < nb; b++) {
      assert_true(bl[b] > 0);
      if (b) assert_true(bp[b] < bp[b - 1]);
      sum += bl[b];
    }
    assert_int_equal(sum, len);
    assert_int_equal(ig_sched_queue_len(q), len);
    assert_int_equal(ig_sched_queue_band_len(q, 0) + ig_sched_queue_band_len(q, 1) + ig_sched_queue_band_len(q, 2),
                     len);
  }
  assert_int_equal(max_nb, IG_SCHED_QUEUE_MAX_BANDS); /* the bound was reached and held */
  ig_sched_queue_free(q);
}

/* Admission by integer priority: the sign decides shedding; queued requests of the same or a higher
 * priority are not overtaken, lower ones are. */
/* Batch slots kept for Critical requests (critical_slots 4): with a pod's batch size known, priority
 * <= 0 goes there only while running + waiting + pending + 4 < batch_slots, and the pick sends it to
 * such a pod even when another one scores better; any request prefers a pod with a free slot. */
static void test_admit_batch_slots(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 3);
  assert_true(ig_sched_opts(s)->critical_slots == 4);
  ig_sched_pod_t pods[2];
  pod_set(&pods[0], 0, 0);
  pod_set(&pods[1], 0, 0.78); /* pod 0 scores better (kv 2 x 0.78 > queue 2 x 10 x 0.05) */
  pods[0].running = 11;
  pods[1].running = 2;
  ig_sched_request_t crit = {.crit = IG_SCHED_CRIT_CRITICAL, .reserve_critical = 1},
                     std = {.crit = IG_SCHED_CRIT_STANDARD, .reserve_critical = 1};
  /* unknown batch sizes: only the queue rule applies */
  assert_int_equal(ig_sched_admit(s, pods, 1, &std, NULL), IG_SCHED_ADMIT_PICK);
  pods[0].batch_slots = pods[1].batch_slots = 16;
  assert_int_equal(ig_sched_admit(s, pods, 1, &std, NULL), IG_SCHED_ADMIT_PICK); /* 11 + 4 < 16 */
  pods[0].running = 12;                                                            /* 12 + 4 = 16 */
  assert_int_equal(ig_sched_admit(s, pods, 1, &std, NULL), IG_SCHED_ADMIT_QUEUE);
  assert_int_equal(ig_sched_admit(s, pods, 1, &crit, NULL), IG_SCHED_ADMIT_PICK);
  pods[0].running = 10;
  pods[0].pending = 2; /* our own sends since the scrape count as well */
  assert_int_equal(ig_sched_admit(s, pods, 1, &std, NULL), IG_SCHED_ADMIT_QUEUE);
  pods[0].pending = 0;
  pods[0].running = 12;
  pods[0].done = 1; /* one of ours finished since the scrape: its slot is free (11 + 4 < 16) */
  assert_int_equal(ig_sched_admit(s, pods, 1, &std, NULL), IG_SCHED_ADMIT_PICK);
  pods[0].done = 20; /* more than the scrape showed: no fewer than 0 used */
  assert_int_equal(ig_sched_admit(s, pods, 1, &std, NULL), IG_SCHED_ADMIT_PICK);
  pods[0].done = 0;
  /* our requests in flight hold slots the scrape may not show yet (it is as of a step's end): 12 of
   * ours on the pod are 12 slots used even though the scrape shows 2 and nothing is pending */
  pods[0].running = 2;
  pods[0].inflight = 12;
  assert_int_equal(ig_sched_admit(s, pods, 1, &std, NULL), IG_SCHED_ADMIT_QUEUE);
  pods[0].inflight = 11;
  assert_int_equal(ig_sched_admit(s, pods, 1, &std, NULL), IG_SCHED_ADMIT_PICK);
  pods[0].inflight = 0;
  pods[0].running = 12;
  /* the pick: pod 0 has the better kv score, but only pod 1 keeps 4 slots free with a Standard one */
  size_t order[2], n = 2;
  for (int i = 0; i < 20; i++) {
    n = 2;
    assert_int_equal(ig_sched_pick(s, pods, 2, &std, order, &n), 0);
    assert_int_equal(order[0], 1);
    pods[1].pending = 0;
  }
  /* Critical ignores the reserve, and so does a request without Critical traffic around */
  ig_sched_request_t plain = {.crit = IG_SCHED_CRIT_STANDARD};
  int seen0 = 0;
  for (int i = 0; i < 20; i++) {
    n = 2;
    assert_int_equal(ig_sched_pick(s, pods, 2, i % 2 ? &crit : &plain, order, &n), 0);
    seen0 += order[0] == 0;
    pods[0].pending = pods[1].pending = 0;
  }
  assert_int_equal(seen0, 20);
  /* a full batch (12 running + 4 waiting of 16): every request goes where it starts at once */
  pods[0].waiting = 4;
  for (int i = 0; i < 20; i++) {
    n = 2;
    assert_int_equal(ig_sched_pick(s, pods, 2, i % 2 ? &crit : &plain, order, &n), 0);
    assert_int_equal(order[0], 1);
    pods[0].pending = pods[1].pending = 0;
  }
  pods[0].waiting = 0;
  /* when no pod keeps the reserve, admission queues; a pick made anyway still picks */
  pods[1].running = 12;
  assert_true(ig_sched_pool_full_for(s, pods, 2, 0, 1) && !ig_sched_pool_full_for(s, pods, 2, 1, 1));
  n = 2;
  assert_int_equal(ig_sched_pick(s, pods, 2, &std, order, &n), 0);
  assert_int_equal(n, 2);
  /* at most a quarter of a pod's batch is kept: with 8 slots, 2 (6 + 2 = 8: no room; 5 + 2 < 8) */
  pods[0].batch_slots = pods[1].batch_slots = 8;
  pods[0].running = pods[1].running = 6;
  assert_true(ig_sched_pool_full_for(s, pods, 2, 0, 1));
  pods[1].running = 5;
  assert_false(ig_sched_pool_full_for(s, pods, 2, 0, 1));
  pods[1].batch_slots = 3; /* a quarter of 3 is 0: nothing kept */
  pods[1].running = 2;
  assert_false(ig_sched_pool_full_for(s, pods, 2, 0, 1));
  pods[0].batch_slots = pods[1].batch_slots = 16;
  pods[0].running = pods[1].running = 12;
  /* critical_slots 0 turns it off */
  ig_sched_opts_t o;
  ig_sched_opts_default(&o);
  o.critical_slots = 0;
  ig_sched_t *off = ig_sched_new_opts("default", 3, &o);
  assert_false(ig_sched_pool_full_for(off, pods, 2, 0, 1));
  ig_sched_free(off);
  ig_sched_free(s);
}

/* The batch size learned from the scrapes: confirmed by two queueing scrapes at the largest running
 * count seen, forgotten when a larger one shows up. */
static void test_slots_learn(void **state) {
  (void)state;
  ig_sched_slots_est_t e;
  memset(&e, 0, sizeof e);
  assert_int_equal(ig_sched_slots_learn(&e, 3, 0, 0.1, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 8, 2, 0.1, NAN), 0);  /* queueing once */
  assert_int_equal(ig_sched_slots_learn(&e, 7, 2, 0.1, NAN), 0);  /* a different count */
  assert_int_equal(ig_sched_slots_learn(&e, 7, 1, 0.1, NAN), 0);  /* twice at 7, but 8 was seen: no limit */
  assert_int_equal(ig_sched_slots_learn(&e, 8, 1, 0.1, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 8, 3, 0.1, NAN), 8);  /* twice at the largest count: learned */
  assert_int_equal(ig_sched_slots_learn(&e, 5, 0, 0.1, NAN), 8);  /* kept while the load drops */
  assert_int_equal(ig_sched_slots_learn(&e, 9, 0, 0.1, NAN), 0);  /* 9 running: 8 was not the limit */
  assert_int_equal(ig_sched_slots_learn(&e, 9, 1, 0.1, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 9, 1, 0.1, NAN), 9);
  /* a waiting count below one (an average, or nothing) is no queue; odd values count as 0 */
  memset(&e, 0, sizeof e);
  assert_int_equal(ig_sched_slots_learn(&e, 4, 0.5, 0.1, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 4, 0.5, 0.1, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, NAN, 2, 0.1, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, -1, 2, 0.1, NAN), 0); /* 0 running: never a limit */
  assert_int_equal(ig_sched_slots_learn(&e, 4, INFINITY, 0.1, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 4, 1, 0.1, NAN), 0); /* the previous one counted as not queued */
  assert_int_equal(ig_sched_slots_learn(&e, 4, 1, 0.1, NAN), 4);
  /* waiting for KV blocks is no batch limit */
  memset(&e, 0, sizeof e);
  assert_int_equal(ig_sched_slots_learn(&e, 3, 2, 0.95, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 3, 2, 0.95, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 3, 2, 0.5, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 3, 2, NAN, NAN), 3);
  /* a limit not met again for IG_SCHED_SLOTS_FORGET scrapes is forgotten; meeting it again renews it */
  for (int i = 0; i < IG_SCHED_SLOTS_FORGET - 2; i++)
    assert_int_equal(ig_sched_slots_learn(&e, 2, 0, 0.1, NAN), 3);
  assert_int_equal(ig_sched_slots_learn(&e, 3, 1, 0.1, NAN), 3); /* the last scrape before it is forgotten */
  assert_int_equal(ig_sched_slots_learn(&e, 3, 1, 0.1, NAN), 3); /* confirmed: the count starts again */
  for (int i = 0; i < IG_SCHED_SLOTS_FORGET - 1; i++)
    assert_int_equal(ig_sched_slots_learn(&e, 2, 0, 0.1, NAN), 3);
  assert_int_equal(ig_sched_slots_learn(&e, 2, 0, 0.1, NAN), 0); /* forgotten */
  assert_int_equal(ig_sched_slots_learn(&e, 3, 1, 0.1, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 3, 1, 0.1, NAN), 3); /* relearned */
}

/* With a token counter, only two queueing scrapes on either side of a step's end teach the limit: two
 * inside one long step see the same batch whatever the limit (the arrivals wait for the step's end). */
static void test_slots_learn_across_steps(void **state) {
  (void)state;
  ig_sched_slots_est_t e;
  memset(&e, 0, sizeof e);
  assert_int_equal(ig_sched_slots_learn(&e, 300, 0, 0.3, 1000), 0);
  for (int i = 0; i < 5; i++) /* one long step: arrivals wait, the batch and the counter stand still */
    assert_int_equal(ig_sched_slots_learn(&e, 300, 1 + i, 0.3, 1000), 0);
  /* the step ended and took the waiting ones in (310 running): still nothing learned */
  assert_int_equal(ig_sched_slots_learn(&e, 310, 2, 0.3, 1310), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 310, 4, 0.3, 1310), 0);
  /* at the limit: the step ends, the queue stays and the batch does not grow */
  assert_int_equal(ig_sched_slots_learn(&e, 310, 6, 0.3, 1620), 310);
  assert_int_equal(ig_sched_slots_learn(&e, 310, 7, 0.3, 1620), 310); /* kept inside the next step */
  /* the first scrape with a counter after none (or a counter that went away) may straddle a step */
  memset(&e, 0, sizeof e);
  assert_int_equal(ig_sched_slots_learn(&e, 8, 2, 0.3, NAN), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 8, 2, 0.3, 50), 8);
  assert_int_equal(ig_sched_slots_learn(&e, 9, 2, 0.3, 50), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 9, 2, 0.3, -1), 9); /* a negative counter: not exported */
  /* a counter that went back (the engine restarted) moved too */
  memset(&e, 0, sizeof e);
  assert_int_equal(ig_sched_slots_learn(&e, 4, 1, 0.3, 900), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 4, 1, 0.3, 900), 0);
  assert_int_equal(ig_sched_slots_learn(&e, 4, 1, 0.3, 12), 4);
}

static void test_admit_priority(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_pod_t pods[1];
  pod_set(&pods[0], 9, 0.1); /* saturated */
  ig_sched_request_t r = {.has_priority = 1};
  int shed[] = {-1, -7, INT32_MIN}, queue[] = {0, 1, 5};
  for (int i = 0; i < 3; i++) {
    r.priority = shed[i];
    assert_int_equal(ig_sched_admit(s, pods, 1, &r, NULL), IG_SCHED_ADMIT_SHED);
    r.priority = queue[i];
    assert_int_equal(ig_sched_admit(s, pods, 1, &r, NULL), IG_SCHED_ADMIT_QUEUE);
  }
  pod_set(&pods[0], 0, 0.1); /* room */
  ig_sched_queue_t *q = ig_sched_queue_new(4);
  pushp(q, 0, 5, NULL, 0, NULL);
  r.priority = 5;
  assert_int_equal(ig_sched_admit(s, pods, 1, &r, q), IG_SCHED_ADMIT_QUEUE);
  r.priority = 1;
  assert_int_equal(ig_sched_admit(s, pods, 1, &r, q), IG_SCHED_ADMIT_QUEUE);
  r.priority = 6;
  assert_int_equal(ig_sched_admit(s, pods, 1, &r, q), IG_SCHED_ADMIT_PICK);
  /* a Critical (1) wrapper request queues behind a waiting priority 5 */
  ig_sched_request_t crit = {.crit = IG_SCHED_CRIT_CRITICAL};
  assert_int_equal(ig_sched_admit(s, pods, 1, &crit, q), IG_SCHED_ADMIT_QUEUE);
  ig_sched_queue_free(q);
  ig_sched_free(s);
  /* gie: a negative priority is shed when no pod has capacity, a positive one keeps the Critical path */
  s = ig_sched_new("gie", 1);
  pod_set(&pods[0], 9, 0.1);
  size_t order[1], n = 1;
  r.priority = -3;
  assert_int_equal(ig_sched_pick(s, pods, 1, &r, order, &n), IG_EFULL);
  r.priority = 4;
  n = 1;
  assert_int_equal(ig_sched_pick(s, pods, 1, &r, order, &n), 0);
  ig_sched_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bands),     cmocka_unit_test(test_fairness),
      cmocka_unit_test(test_ttl),       cmocka_unit_test(test_capacity_eviction),
      cmocka_unit_test(test_cancel),    cmocka_unit_test(test_random_ops),
      cmocka_unit_test(test_admit),     cmocka_unit_test(test_priority_order),
      cmocka_unit_test(test_priority_fairness), cmocka_unit_test(test_priority_eviction),
      cmocka_unit_test(test_band_bound), cmocka_unit_test(test_crit_wrappers),
      cmocka_unit_test(test_priority_random), cmocka_unit_test(test_admit_priority),
      cmocka_unit_test(test_admit_batch_slots), cmocka_unit_test(test_slots_learn),
      cmocka_unit_test(test_slots_learn_across_steps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for the "gie" profile: the original GIE filter tree, LoRA affinity and shedding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/sched.h"

static void pod_set(ig_sched_pod_t *p, size_t id, double waiting, double kv) {
  memset(p, 0, sizeof *p);
  p->id = id;
  p->waiting = waiting;
  p->kv_usage = kv;
  p->has_metrics = 1;
}

static ig_sched_lora_t lora_state[16];

/* Gives pod p (keyed by its id) adapter slots and at most one running adapter. */
static void lora(ig_sched_pod_t *p, int max, const char *running) {
  ig_sched_lora_t *l = &lora_state[p->id];
  memset(l, 0, sizeof *l);
  p->lora = l;
  l->max_lora = max;
  if (running) {
    strcpy(l->running_loras[0], running);
    l->n_running_loras = 1;
  }
}

/* Picks n times (metrics restored each time) and returns a bitmask of the pods picked. */
static unsigned picks(ig_sched_t *s, const ig_sched_pod_t *init, size_t n, const ig_sched_request_t *r,
                      int rounds, int *shed) {
  ig_sched_pod_t pods[16];
  unsigned mask = 0;
  *shed = 0;
  for (int i = 0; i < rounds; i++) {
    memcpy(pods, init, n * sizeof *pods);
    size_t order[1], k = 1;
    int rc = ig_sched_pick(s, pods, n, r, order, &k);
    if (rc == IG_EFULL) {
      (*shed)++;
      assert_int_equal(k, 0);
      continue;
    }
    assert_int_equal(rc, 0);
    mask |= 1u << order[0];
  }
  return mask;
}

static void test_noncritical_capacity(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("gie", 1);
  ig_sched_pod_t pods[4];
  int shed;
  /* queue <= 5 and kv <= 0.8 keeps 0 and 1 (2 has a long queue, 3 a full cache); then least queue
   * bucket [2, 2 + (3-2)/2] keeps pod 0 only */
  pod_set(&pods[0], 0, 2, 0.5);
  pod_set(&pods[1], 1, 3, 0.2);
  pod_set(&pods[2], 2, 6, 0.1);
  pod_set(&pods[3], 3, 0, 0.9);
  ig_sched_request_t r = {.model = "m", .crit = IG_SCHED_CRIT_STANDARD};
  assert_int_equal(picks(s, pods, 4, &r, 50, &shed), 1u << 0);
  /* equal queues: least KV decides */
  pods[1].waiting = 2;
  assert_int_equal(picks(s, pods, 4, &r, 50, &shed), 1u << 1);
  ig_sched_free(s);
}

static void test_bucket_not_just_min(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("gie", 1);
  ig_sched_pod_t pods[4];
  int shed;
  /* queues 0,1,2,4: bucket [0, 0 + 4/4] keeps pods with queue <= 1 -> pods 0 and 1 (same KV) */
  pod_set(&pods[0], 0, 0, 0.3);
  pod_set(&pods[1], 1, 1, 0.3);
  pod_set(&pods[2], 2, 2, 0.3);
  pod_set(&pods[3], 3, 4, 0.3);
  ig_sched_request_t r = {.model = "m", .crit = IG_SCHED_CRIT_STANDARD};
  assert_int_equal(picks(s, pods, 4, &r, 200, &shed), (1u << 0) | (1u << 1));
  ig_sched_free(s);
}

static void test_shed_sheddable(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("gie", 1);
  ig_sched_pod_t pods[3];
  int shed;
  pod_set(&pods[0], 0, 6, 0.1);
  pod_set(&pods[1], 1, 1, 0.85);
  pod_set(&pods[2], 2, 9, 0.9);
  ig_sched_request_t r = {.model = "m", .crit = IG_SCHED_CRIT_SHEDDABLE};
  assert_int_equal(picks(s, pods, 3, &r, 20, &shed), 0);
  assert_int_equal(shed, 20);
  /* Standard is not shed: least queue -> least kv over everyone (bucket [1, 1+8/3] keeps pod 1) */
  r.crit = IG_SCHED_CRIT_STANDARD;
  assert_int_equal(picks(s, pods, 3, &r, 20, &shed), 1u << 1);
  assert_int_equal(shed, 0);
  /* Critical: queue < 128 keeps all, least queue -> pod 1 */
  r.crit = IG_SCHED_CRIT_CRITICAL;
  assert_int_equal(picks(s, pods, 3, &r, 20, &shed), 1u << 1);
  /* a pod with capacity appears: the Sheddable request goes there */
  pods[0].waiting = 5;
  r.crit = IG_SCHED_CRIT_SHEDDABLE;
  assert_int_equal(picks(s, pods, 3, &r, 20, &shed), 1u << 0);
  /* admission never queues or sheds in this profile: the tree does */
  assert_int_equal(ig_sched_admit(s, pods, 3, &r, NULL), IG_SCHED_ADMIT_PICK);
  ig_sched_free(s);
}

static void test_critical_branches(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("gie", 5);
  ig_sched_pod_t pods[3];
  int shed;
  ig_sched_request_t r = {.model = "sql", .crit = IG_SCHED_CRIT_CRITICAL};
  /* all queues >= 128: failure branch: least queue over all, then low-cost LoRA, then least KV */
  pod_set(&pods[0], 0, 130, 0.5);
  pod_set(&pods[1], 1, 131, 0.4);
  pod_set(&pods[2], 2, 200, 0.1);
  lora(&pods[0], 1, "other"); /* no slot, adapter absent */
  lora(&pods[1], 2, "other"); /* free slot */
  lora(&pods[2], 2, NULL);
  /* bucket [130, 130 + 70/3] keeps 0 and 1; low-cost LoRA keeps 1 */
  assert_int_equal(picks(s, pods, 3, &r, 50, &shed), 1u << 1);
  /* low-cost LoRA finds nothing: the input set passes on, least KV keeps pod 1 (0.4 < 0.5) */
  lora(&pods[1], 1, "other");
  assert_int_equal(picks(s, pods, 3, &r, 50, &shed), 1u << 1);
  pods[1].kv_usage = 0.9;
  assert_int_equal(picks(s, pods, 3, &r, 50, &shed), 1u << 0);
  ig_sched_free(s);
}

static void test_lora_affinity(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("gie", 8);
  ig_sched_pod_t pods[3];
  int shed;
  ig_sched_request_t r = {.model = "sql", .crit = IG_SCHED_CRIT_CRITICAL};
  pod_set(&pods[0], 0, 10, 0.7); /* busier, but has the adapter */
  pod_set(&pods[1], 1, 0, 0.1);  /* idle, free slot */
  pod_set(&pods[2], 2, 0, 0.1);  /* idle, no slot */
  lora(&pods[0], 2, "sql");
  lora(&pods[1], 2, NULL);
  lora(&pods[2], 1, "x");
  int on_aff = 0;
  enum { ROUNDS = 4000 };
  ig_sched_pod_t w[3];
  for (int i = 0; i < ROUNDS; i++) {
    memcpy(w, pods, sizeof w);
    size_t order[1], k = 1;
    assert_int_equal(ig_sched_pick(s, w, 3, &r, order, &k), 0);
    assert_true(order[0] == 0 || order[0] == 1);
    on_aff += order[0] == 0;
  }
  /* 0.999 affinity: nearly all, but not necessarily all */
  assert_true(on_aff >= ROUNDS - 30);
  /* probability 0: never the affinity group while a free slot exists */
  ig_sched_opts_t o;
  ig_sched_opts_default(&o);
  o.lora_affinity_p = 0;
  ig_sched_t *s0 = ig_sched_new_opts("gie", 8, &o);
  assert_int_equal(picks(s0, pods, 3, &r, 50, &shed), 1u << 1);
  ig_sched_free(s0);
  /* a waiting adapter counts as active */
  lora(&pods[0], 2, NULL);
  strcpy(lora_state[0].waiting_loras[0], "sql");
  lora_state[0].n_waiting_loras = 1;
  assert_true(picks(s, pods, 3, &r, 200, &shed) & 1u);
  ig_sched_free(s);
}

static void test_stale_and_order(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("gie", 3);
  ig_sched_pod_t pods[3];
  int shed;
  pod_set(&pods[0], 0, 0, 0);
  pods[0].metrics_age_ms = 500; /* stale: filtered while fresh pods exist */
  pod_set(&pods[1], 1, 3, 0.5);
  pod_set(&pods[2], 2, 4, 0.5);
  ig_sched_request_t r = {.model = "m", .crit = IG_SCHED_CRIT_STANDARD};
  assert_int_equal(picks(s, pods, 3, &r, 50, &shed), 1u << 1);
  /* fallbacks follow the pick: the rest of the allowed pods, least queue first */
  size_t order[3], k = 3;
  assert_int_equal(ig_sched_pick(s, pods, 3, &r, order, &k), 0);
  assert_int_equal(k, 3);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 0);
  assert_int_equal(order[2], 2);
  ig_sched_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_noncritical_capacity), cmocka_unit_test(test_bucket_not_just_min),
      cmocka_unit_test(test_shed_sheddable),       cmocka_unit_test(test_critical_branches),
      cmocka_unit_test(test_lora_affinity),        cmocka_unit_test(test_stale_and_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

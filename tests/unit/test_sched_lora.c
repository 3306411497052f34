/* Unit tests for adapter slots in the scheduler: the "lora-slot" filter of the default pick, our own
 * in-flight counts per adapter, the count of waiting requests that wait for a slot, and what a pick
 * notes on the pod before the next scrape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/core.h"
#include "infergate/sched.h"

static void pod_set(ig_sched_pod_t *p, double waiting, double kv) {
  memset(p, 0, sizeof *p);
  p->waiting = waiting;
  p->kv_usage = kv;
  p->has_metrics = 1;
  p->metrics_age_ms = 10;
}

/* Slots = max, running adapters and waiting adapters as comma-free name lists (NULL-terminated). */
static void lora_set(ig_sched_lora_t *l, int max, const char *const *running, const char *const *waiting) {
  memset(l, 0, sizeof *l);
  l->max_lora = max;
  for (; running && *running; running++) snprintf(l->running_loras[l->n_running_loras++], IG_SCHED_LORA_NAME_MAX, "%s", *running);
  for (; waiting && *waiting; waiting++) snprintf(l->waiting_loras[l->n_waiting_loras++], IG_SCHED_LORA_NAME_MAX, "%s", *waiting);
}

static size_t pick1(ig_sched_t *s, ig_sched_pod_t *pods, size_t n, const char *model) {
  ig_sched_request_t r = {.model = model, .crit = IG_SCHED_CRIT_STANDARD};
  size_t order[8], k = n < 8 ? n : 8;
  assert_int_equal(ig_sched_pick(s, pods, n, &r, order, &k), 0);
  return order[0];
}

/* Pod 0 is much better on queue and KV but both its slots run other adapters: an adapter request goes
 * to a pod that can start it now; the base model and a request for an adapter no pod can start now
 * still go by score. */
static void test_blocked_pod_filtered(void **state) {
  (void)state;
  static const char *const busy[] = {"lt-a", "lt-b", NULL}, *const one[] = {"lt-a", NULL};
  ig_sched_lora_t lo[3];
  ig_sched_pod_t pods[3];
  pod_set(&pods[0], 0, 0.0);
  pod_set(&pods[1], 4, 0.7);
  pod_set(&pods[2], 4, 0.7);
  lora_set(&lo[0], 2, busy, NULL);
  lora_set(&lo[1], 2, one, NULL);
  lora_set(&lo[2], 2, busy, NULL);
  for (int i = 0; i < 3; i++) ig_sched_pod_set_lora(&pods[i], &lo[i]);
  static const char *const c_only[] = {"lt-c", NULL};
  ig_sched_lora_t seen;
  lora_set(&seen, 1, c_only, NULL);
  ig_sched_lora_intern(&seen); /* lt-c is an adapter some pod listed */
  assert_true(ig_sched_lora_id("lt-c") != 0);
  ig_sched_t *s = ig_sched_new("default", 1);
  for (int i = 0; i < 20; i++) {
    for (int j = 0; j < 3; j++) pods[j].pending = 0;
    assert_int_equal(pick1(s, pods, 3, "lt-c"), 1); /* the only pod with a free slot */
    assert_int_equal(pick1(s, pods, 3, "lt-a"), 0); /* running on pod 0: it starts there */
    assert_int_equal(pick1(s, pods, 3, "base"), 0); /* the base model needs no slot */
  }
  /* no pod can start lt-c now: the filter keeps them all (the best score wins) */
  lora_set(&lo[1], 2, busy, NULL);
  ig_sched_pod_set_lora(&pods[1], &lo[1]);
  pods[0].pending = pods[1].pending = pods[2].pending = 0;
  assert_int_equal(pick1(s, pods, 3, "lt-c"), 0);
  /* the fallbacks still name every pod, the blocked ones last */
  lora_set(&lo[1], 2, one, NULL);
  ig_sched_pod_set_lora(&pods[1], &lo[1]);
  ig_sched_request_t r = {.model = "lt-c"};
  size_t order[3], k = 3;
  assert_int_equal(ig_sched_pick(s, pods, 3, &r, order, &k), 0);
  assert_int_equal(k, 3);
  assert_int_equal(order[0], 1);
  /* pods without slot information (max_lora 0) are never "blocked" */
  lora_set(&lo[0], 0, busy, NULL);
  ig_sched_pod_set_lora(&pods[0], &lo[0]);
  pods[0].pending = pods[1].pending = pods[2].pending = 0;
  assert_int_equal(pick1(s, pods, 3, "lt-c"), 0);
  ig_sched_free(s);
}

static void test_flight_counts(void **state) {
  (void)state;
  ig_sched_lora_flight_t f;
  memset(&f, 0, sizeof f);
  assert_int_equal(ig_sched_lora_flight_add(&f, 0, 1), 0); /* base model: nothing */
  assert_int_equal(ig_sched_lora_flight_add(&f, 7, 1), 0);
  assert_int_equal(ig_sched_lora_flight_add(&f, 7, 1), 0);
  assert_int_equal(ig_sched_lora_flight_add(&f, 9, 1), 0);
  unsigned total = 0;
  for (int i = 0; i < IG_SCHED_LORA_TRACK; i++) total += f.id[i] == 7 ? f.n[i] : 0;
  assert_int_equal(total, 2);
  /* full table: a new id is not counted (and says so) */
  for (uint32_t id = 100; id < 100 + IG_SCHED_LORA_TRACK - 2; id++) assert_int_equal(ig_sched_lora_flight_add(&f, id, 1), 0);
  assert_int_equal(ig_sched_lora_flight_add(&f, 555, 1), IG_EFULL);
  assert_int_equal(ig_sched_lora_flight_add(&f, 7, 1), 0); /* a known one still is */
  /* down to zero frees the entry; never below zero */
  for (int i = 0; i < 3; i++) assert_int_equal(ig_sched_lora_flight_add(&f, 7, -1), 0);
  assert_int_equal(ig_sched_lora_flight_add(&f, 7, -1), 0);
  for (int i = 0; i < IG_SCHED_LORA_TRACK; i++) assert_true(f.id[i] != 7);
  assert_int_equal(ig_sched_lora_flight_add(&f, 555, 1), 0);
}

/* Waiting requests that wait for a slot: ours, of adapters listed waiting and not running, only when
 * every slot is taken. */
static void test_blocked_count(void **state) {
  (void)state;
  static const char *const run2[] = {"lb-a", "lb-b", NULL}, *const run1[] = {"lb-a", NULL};
  static const char *const wait[] = {"lb-c", "lb-a", "lb-d", NULL};
  ig_sched_lora_t l;
  ig_sched_lora_flight_t f;
  memset(&f, 0, sizeof f);
  lora_set(&l, 2, run2, wait);
  ig_sched_lora_intern(&l);
  uint32_t a = ig_sched_lora_id("lb-a"), c = ig_sched_lora_id("lb-c"), d = ig_sched_lora_id("lb-d");
  assert_true(a && c && d);
  ig_sched_lora_flight_add(&f, c, 3);
  ig_sched_lora_flight_add(&f, a, 5); /* running there: its waiting ones wait for capacity */
  ig_sched_lora_flight_add(&f, d, 1);
  assert_int_equal(ig_sched_lora_blocked(&l, &f), 4);
  /* a free slot: they wait for capacity, not for a slot */
  lora_set(&l, 2, run1, wait);
  ig_sched_lora_intern(&l);
  assert_int_equal(ig_sched_lora_blocked(&l, &f), 0);
  /* unknown slots, names not interned, NULL */
  lora_set(&l, 0, run2, wait);
  ig_sched_lora_intern(&l);
  assert_int_equal(ig_sched_lora_blocked(&l, &f), 0);
  lora_set(&l, 2, run2, wait);
  assert_int_equal(ig_sched_lora_blocked(&l, &f), 0);
  assert_int_equal(ig_sched_lora_blocked(NULL, &f), 0);
  assert_int_equal(ig_sched_lora_blocked(&l, NULL), 0);
}

/* A pick notes the adapter on the pod until the next scrape: running when a slot was free (so the
 * next request for another adapter sees the slot taken), else waiting. */
static void test_note_sent(void **state) {
  (void)state;
  static const char *const run1[] = {"ln-a", NULL}, *const names[] = {"ln-a", "ln-b", "ln-c", NULL};
  ig_sched_lora_t l, all;
  lora_set(&all, 3, names, NULL);
  ig_sched_lora_intern(&all);
  ig_sched_pod_t p;
  pod_set(&p, 0, 0);
  lora_set(&l, 2, run1, NULL);
  ig_sched_pod_set_lora(&p, &l);
  assert_int_equal(p.lora_free, 1);
  uint32_t b = ig_sched_lora_id("ln-b"), c = ig_sched_lora_id("ln-c"), a = ig_sched_lora_id("ln-a");
  assert_int_equal(ig_sched_lora_note_sent(&p, &l, "ln-a", a), 0); /* running already */
  assert_int_equal(ig_sched_lora_note_sent(&p, &l, "ln-b", b), 1);
  assert_int_equal(l.n_running_loras, 2);
  assert_string_equal(l.running_loras[1], "ln-b");
  assert_int_equal(p.lora_free, 0);
  assert_int_equal(ig_sched_lora_note_sent(&p, &l, "ln-c", c), 1);
  assert_int_equal(l.n_waiting_loras, 1);
  assert_string_equal(l.waiting_loras[0], "ln-c");
  assert_int_equal(ig_sched_lora_note_sent(&p, &l, "ln-c", c), 0); /* listed once */
  /* the pick sees it: ln-b now runs on this pod, ln-c waits there */
  ig_sched_pod_t pods[2];
  ig_sched_lora_t other;
  pods[0] = p;
  pod_set(&pods[1], 0, 0);
  lora_set(&other, 2, NULL, NULL);
  ig_sched_pod_set_lora(&pods[1], &other);
  ig_sched_t *s = ig_sched_new("default", 3);
  double sc[2];
  ig_sched_request_t r = {.model = "ln-b"};
  assert_int_equal(ig_sched_scores(s, "lora", pods, 2, &r, sc), 0);
  assert_true(sc[0] == 1.0 && sc[1] == 0.8);
  r.model = "ln-c";
  assert_int_equal(ig_sched_scores(s, "lora", pods, 2, &r, sc), 0);
  assert_true(sc[0] == 0.6 && sc[1] == 0.8);
  ig_sched_free(s);
  /* nothing to note: base model, no slots, bad arguments */
  assert_int_equal(ig_sched_lora_note_sent(&p, &l, "base", 0), 0);
  lora_set(&l, 0, NULL, NULL);
  ig_sched_pod_set_lora(&p, &l);
  assert_int_equal(ig_sched_lora_note_sent(&p, &l, "ln-b", b), 0);
  assert_int_equal(ig_sched_lora_note_sent(NULL, &l, "ln-b", b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blocked_pod_filtered),
      cmocka_unit_test(test_flight_counts),
      cmocka_unit_test(test_blocked_count),
      cmocka_unit_test(test_note_sent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

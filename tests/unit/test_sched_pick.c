/* Unit tests for the scheduler: scorers, profiles, tie-breaks, staleness, saturation, herding guards,
 * fallback order, baselines and a large-pool sanity run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/sched.h"

static void pod_set(ig_sched_pod_t *p, size_t id, double waiting, double kv) {
  memset(p, 0, sizeof *p);
  p->id = id;
  p->waiting = waiting;
  p->kv_usage = kv;
  p->has_metrics = 1;
  p->metrics_age_ms = 10;
}

static ig_sched_request_t req_std(void) {
  ig_sched_request_t r = {.model = "base", .crit = IG_SCHED_CRIT_STANDARD};
  return r;
}

static int pick1(ig_sched_t *s, ig_sched_pod_t *pods, size_t n, const ig_sched_request_t *r, size_t *out) {
  size_t order[1] = {0}, k = 1;
  int rc = ig_sched_pick(s, pods, n, r, order, &k);
  *out = (size_t)-1;
  if (rc == 0) {
    assert_int_equal(k, 1);
    *out = order[0];
  }
  return rc;
}

static void test_profiles(void **state) {
  (void)state;
  const char *names[] = {"default", "gie", "round-robin", "random", "least-request"};
  for (size_t i = 0; i < 5; i++) {
    assert_true(ig_sched_profile_exists(names[i]));
    ig_sched_t *s = ig_sched_new(names[i], 1);
    assert_non_null(s);
    assert_string_equal(ig_sched_profile_name(s), names[i]);
    ig_sched_free(s);
  }
  assert_false(ig_sched_profile_exists("nope"));
  assert_false(ig_sched_profile_exists(NULL));
  assert_null(ig_sched_new("nope", 1));
  ig_sched_t *s = ig_sched_new(NULL, 1);
  assert_string_equal(ig_sched_profile_name(s), "default");
  /* documented default weights */
  assert_true(ig_sched_weight(s, "queue") == 2);
  assert_true(ig_sched_weight(s, "kv") == 2);
  assert_true(ig_sched_weight(s, "prefix") == 3);
  assert_true(ig_sched_weight(s, "lora") == 1);
  assert_true(ig_sched_weight(s, "bogus") == 0);
  assert_int_equal(ig_sched_set_weight(s, "bogus", 1), IG_ENOENT);
  assert_int_equal(ig_sched_set_weight(s, "kv", -1), IG_EINVAL);
  assert_int_equal(ig_sched_set_weight(s, "kv", 5), 0);
  assert_true(ig_sched_weight(s, "kv") == 5);
  ig_sched_free(s);
  s = ig_sched_new("gie", 1);
  assert_int_equal(ig_sched_set_weight(s, "kv", 1), IG_ENOTSUP);
  ig_sched_free(s);
  assert_true(ig_sched_scorer_exists("prefix"));
  assert_false(ig_sched_scorer_exists("x"));
  ig_sched_free(NULL);
}

static void test_queue_scorer(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_pod_t pods[4];
  double out[4];
  pod_set(&pods[0], 0, 0, 0);
  pod_set(&pods[1], 1, 10, 0);
  pod_set(&pods[2], 2, 5, 0);
  pod_set(&pods[3], 3, 4, 0);
  pods[3].pending = 1; /* our own in-flight count adds to the queue */
  assert_int_equal(ig_sched_scores(s, "queue", pods, 4, NULL, out), 0);
  assert_float_equal(out[0], 1.0, 1e-12);
  assert_float_equal(out[1], 0.0, 1e-12);
  assert_float_equal(out[2], 0.5, 1e-12);
  assert_float_equal(out[3], 0.5, 1e-12);
  /* all equal -> 1 */
  for (int i = 0; i < 4; i++) pod_set(&pods[i], (size_t)i, 3, 0);
  ig_sched_scores(s, "queue", pods, 4, NULL, out);
  for (int i = 0; i < 4; i++) assert_float_equal(out[i], 1.0, 1e-12);
  assert_int_equal(ig_sched_scores(s, "nope", pods, 4, NULL, out), IG_ENOENT);
  /* the running batch counts at queue_running_weight (0.05) of a waiting request, and the span is at
   * least one waiting request: 10 vs 2 running differ by 0.4 of a request */
  for (int i = 0; i < 4; i++) pod_set(&pods[i], (size_t)i, 0, 0);
  pods[0].running = 10;
  pods[1].running = 2;
  pods[2].running = 2;
  pods[3].running = 2;
  ig_sched_scores(s, "queue", pods, 4, NULL, out);
  assert_float_equal(out[0], 0.0, 1e-12);
  assert_float_equal(out[1], 0.4, 1e-12);
  /* one waiting request outweighs the whole difference */
  pods[1].waiting = 1;
  ig_sched_scores(s, "queue", pods, 4, NULL, out);
  assert_float_equal(out[2], 1.0, 1e-12);
  assert_float_equal(out[0], 0.6, 1e-12); /* (1.1 - 0.5) / 1 */
  assert_float_equal(out[1], 0.0, 1e-12);
  ig_sched_free(s);
}

/* Our unanswered prompt tokens (prefill) count as waiting requests, one per queue_prefill_tokens (64),
 * in the queue scorer and so in the pick; not in saturation; 0 turns it off. */
static void test_prefill_counts_as_queue(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_pod_t pods[3];
  double out[3];
  for (int i = 0; i < 3; i++) pod_set(&pods[i], (size_t)i, 0, 0.1);
  pods[0].prefill = 256; /* four requests' worth */
  pods[1].prefill = 64;
  ig_sched_scores(s, "queue", pods, 3, NULL, out);
  assert_float_equal(out[0], 0.0, 1e-12);
  assert_float_equal(out[1], 0.75, 1e-12);
  assert_float_equal(out[2], 1.0, 1e-12);
  ig_sched_request_t r = req_std();
  size_t got;
  for (int i = 0; i < 50; i++) { /* pod 2 until it has the most prefill work ahead */
    assert_int_equal(pick1(s, pods, 3, &r, &got), 0);
    assert_int_equal(got, 2);
    pods[2].pending = 0; /* only the prefill term differs */
  }
  pods[2].prefill = 512;
  assert_int_equal(pick1(s, pods, 3, &r, &got), 0);
  assert_int_equal(got, 1);
  /* 20 requests' worth of prompt does not saturate the pod: saturation is the pod's own queue */
  pods[0].prefill = 20 * 64;
  assert_int_equal(ig_sched_pod_saturated(s, &pods[0]), 0);
  ig_sched_free(s);
  ig_sched_opts_t o;
  ig_sched_opts_default(&o);
  assert_true(o.queue_prefill_tokens == 64);
  o.queue_prefill_tokens = 0; /* off */
  s = ig_sched_new_opts("default", 1, &o);
  pods[1].pending = 0; /* the last pick's */
  ig_sched_scores(s, "queue", pods, 3, NULL, out);
  for (int i = 0; i < 3; i++) assert_float_equal(out[i], 1.0, 1e-12);
  ig_sched_free(s);
}

static void test_kv_scorer(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_pod_t pods[4];
  double out[4];
  pod_set(&pods[0], 0, 0, 0);
  pod_set(&pods[1], 1, 0, 0.25);
  pod_set(&pods[2], 2, 0, 1.5); /* clamped */
  pod_set(&pods[3], 3, 0, -1);
  ig_sched_scores(s, "kv", pods, 4, NULL, out);
  assert_float_equal(out[0], 1.0, 1e-12);
  assert_float_equal(out[1], 0.75, 1e-12);
  assert_float_equal(out[2], 0.0, 1e-12);
  assert_float_equal(out[3], 1.0, 1e-12);
  ig_sched_free(s);
}

static void test_lora_scorer(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_pod_t pods[4];
  ig_sched_lora_t lo[4];
  double out[4];
  memset(lo, 0, sizeof lo);
  for (int i = 0; i < 4; i++) {
    pod_set(&pods[i], (size_t)i, 0, 0);
    pods[i].lora = &lo[i];
    lo[i].max_lora = 2;
    lo[i].n_running_loras = 2;
    strcpy(lo[i].running_loras[0], "a");
    strcpy(lo[i].running_loras[1], "b");
  }
  strcpy(lo[0].running_loras[1], "sql"); /* active */
  lo[1].n_running_loras = 1;             /* free slot */
  strcpy(lo[2].waiting_loras[0], "sql"); /* waiting */
  lo[2].n_waiting_loras = 1;
  ig_sched_request_t r = {.model = "sql"};
  ig_sched_scores(s, "lora", pods, 4, &r, out);
  assert_float_equal(out[0], 1.0, 1e-12);
  assert_float_equal(out[1], 0.8, 1e-12);
  assert_float_equal(out[2], 0.6, 1e-12);
  assert_float_equal(out[3], 0.0, 1e-12);
  /* a pool without LoRA scores everyone the same */
  for (int i = 0; i < 4; i++) pod_set(&pods[i], (size_t)i, 0, 0);
  ig_sched_scores(s, "lora", pods, 4, &r, out);
  for (int i = 0; i < 4; i++) assert_float_equal(out[i], 0.0, 1e-12);
  ig_sched_free(s);
}

static void test_weights_decide(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 7);
  ig_sched_pod_t pods[2];
  ig_sched_request_t r = req_std();
  size_t got;
  /* pod 0: short queue, fuller cache; pod 1: longer queue, emptier cache.
   * queue: 1 vs 0 (x2); kv: 0.3 vs 0.9 free (x2) -> 2.6 vs 1.8 */
  pod_set(&pods[0], 0, 1, 0.7);
  pod_set(&pods[1], 1, 3, 0.1);
  assert_int_equal(pick1(s, pods, 2, &r, &got), 0);
  assert_int_equal(got, 0);
  /* with kv weighted up, the emptier cache wins: 2 + 0.3*10 = 5 vs 0 + 0.9*10 = 9 */
  pod_set(&pods[0], 0, 1, 0.7);
  pod_set(&pods[1], 1, 3, 0.1);
  assert_int_equal(ig_sched_set_weight(s, "kv", 10), 0);
  assert_int_equal(pick1(s, pods, 2, &r, &got), 0);
  assert_int_equal(got, 1);
  ig_sched_free(s);
}

static void test_tie_break_spreads(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 42);
  enum { N = 8, ROUNDS = 4000 };
  ig_sched_pod_t pods[N];
  unsigned hits[N] = {0};
  ig_sched_request_t r = req_std();
  for (int i = 0; i < ROUNDS; i++) {
    for (int j = 0; j < N; j++) pod_set(&pods[j], (size_t)j, 2, 0.5);
    size_t got;
    assert_int_equal(pick1(s, pods, N, &r, &got), 0);
    hits[got]++;
  }
  for (int j = 0; j < N; j++) {
    assert_true(hits[j] > ROUNDS / N / 2);
    assert_true(hits[j] < ROUNDS / N * 2);
  }
  /* with a fallback: every ordered pair of the tied pods about as often, under many seeds, and the
   * first pick repeats about 1 time in N */
  for (uint64_t seed = 70; seed < 90; seed++) {
    ig_sched_t *t = ig_sched_new("default", seed);
    unsigned pairs[N][N] = {{0}}, same = 0;
    size_t prev = N;
    for (int i = 0; i < ROUNDS; i++) {
      for (int j = 0; j < N; j++) pod_set(&pods[j], (size_t)j, 2, 0.5);
      size_t order[2], k = 2;
      assert_int_equal(ig_sched_pick(t, pods, N, &r, order, &k), 0);
      assert_int_equal(k, 2);
      assert_true(order[0] != order[1]);
      pairs[order[0]][order[1]]++;
      same += order[0] == prev;
      prev = order[0];
    }
    unsigned each = ROUNDS / (N * (N - 1)); /* 71 */
    for (int a = 0; a < N; a++)
      for (int b = 0; b < N; b++)
        if (a != b) assert_true(pairs[a][b] > each / 3 && pairs[a][b] < each * 3);
    assert_true(same > ROUNDS / N / 2 && same < ROUNDS / N * 2); /* a repeat 1 time in N */
    ig_sched_free(t);
  }
  /* the same seed gives the same sequence */
  ig_sched_t *a = ig_sched_new("default", 9), *b = ig_sched_new("default", 9);
  for (int i = 0; i < 50; i++) {
    size_t ga, gb;
    for (int j = 0; j < N; j++) pod_set(&pods[j], (size_t)j, 2, 0.5);
    pick1(a, pods, N, &r, &ga);
    for (int j = 0; j < N; j++) pod_set(&pods[j], (size_t)j, 2, 0.5);
    pick1(b, pods, N, &r, &gb);
    assert_int_equal(ga, gb);
  }
  ig_sched_free(a);
  ig_sched_free(b);
  ig_sched_free(s);
}

static void test_stale_filtered(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 3);
  ig_sched_pod_t pods[3];
  ig_sched_request_t r = req_std();
  for (int i = 0; i < 200; i++) {
    pod_set(&pods[0], 0, 0, 0);
    pods[0].metrics_age_ms = 201; /* looks idle but the numbers are old */
    pod_set(&pods[1], 1, 0, 0);
    pods[1].has_metrics = 0; /* never scraped */
    pod_set(&pods[2], 2, 4, 0.7); /* busy but fresh */
    size_t got;
    assert_int_equal(pick1(s, pods, 3, &r, &got), 0);
    assert_int_equal(got, 2);
  }
  /* nothing fresh: falls back to least in-flight instead of trusting stale numbers */
  pod_set(&pods[0], 0, 0, 0);
  pod_set(&pods[1], 1, 0, 0);
  pod_set(&pods[2], 2, 0, 0);
  for (int i = 0; i < 3; i++) pods[i].metrics_age_ms = 5000;
  pods[0].inflight = 3;
  pods[1].inflight = 1;
  pods[2].inflight = 2;
  size_t got;
  assert_int_equal(pick1(s, pods, 3, &r, &got), 0);
  assert_int_equal(got, 1);
  ig_sched_free(s);
}

static void test_saturation(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_pod_t p;
  pod_set(&p, 0, 4, 0.79);
  assert_false(ig_sched_pod_saturated(s, &p));
  p.waiting = 5;
  assert_true(ig_sched_pod_saturated(s, &p));
  p.waiting = 4;
  p.pending = 1; /* our own in-flight counts */
  assert_true(ig_sched_pod_saturated(s, &p));
  p.pending = 0;
  p.kv_usage = 0.8;
  assert_true(ig_sched_pod_saturated(s, &p));
  p.kv_usage = 0.1;
  p.metrics_age_ms = 201;
  assert_true(ig_sched_pod_saturated(s, &p));
  p.metrics_age_ms = 200;
  assert_false(ig_sched_pod_saturated(s, &p));
  p.has_metrics = 0;
  assert_true(ig_sched_pod_saturated(s, &p));

  ig_sched_pod_t pods[3];
  pod_set(&pods[0], 0, 9, 0);
  pod_set(&pods[1], 1, 0, 0.95);
  pod_set(&pods[2], 2, 0, 0);
  pods[2].metrics_age_ms = 1000; /* idle but stale: does not count */
  assert_true(ig_sched_pool_saturated(s, pods, 3));
  pods[2].metrics_age_ms = 0;
  assert_false(ig_sched_pool_saturated(s, pods, 3));
  assert_true(ig_sched_pool_saturated(s, pods, 0)); /* no fresh pods */
  ig_sched_free(s);

  /* configurable thresholds */
  ig_sched_opts_t o;
  ig_sched_opts_default(&o);
  o.queue_threshold = 50;
  o.kv_threshold = 0.99;
  o.stale_ms = 2000;
  s = ig_sched_new_opts("default", 1, &o);
  pod_set(&p, 0, 20, 0.9);
  p.metrics_age_ms = 1500;
  assert_false(ig_sched_pod_saturated(s, &p));
  ig_sched_free(s);
}

static void test_not_saturated_preferred(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 5);
  ig_sched_pod_t pods[3];
  ig_sched_request_t r = req_std();
  for (int i = 0; i < 100; i++) {
    /* pod 1 has the best queue score among... nothing: it is saturated by KV */
    pod_set(&pods[0], 0, 4, 0.5);
    pod_set(&pods[1], 1, 0, 0.85);
    pod_set(&pods[2], 2, 4, 0.6);
    size_t got;
    pick1(s, pods, 3, &r, &got);
    assert_true(got == 0 || got == 2);
  }
  ig_sched_free(s);
}

static void test_herding_guard(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 11);
  enum { N = 4 };
  ig_sched_pod_t pods[N];
  for (int round = 0; round < 100; round++) {
    for (int j = 0; j < N; j++) pod_set(&pods[j], (size_t)j, 1, 0.3 + 0.001 * j);
    /* N picks between two scrapes land on N different pods */
    unsigned seen = 0;
    char prompt[32];
    for (int k = 0; k < N; k++) {
      snprintf(prompt, sizeof prompt, "p%d-%d", round, k);
      ig_sched_request_t r = {.model = "m", .crit = IG_SCHED_CRIT_STANDARD, .prompt = prompt,
                              .prompt_len = strlen(prompt)};
      size_t got;
      assert_int_equal(pick1(s, pods, N, &r, &got), 0);
      assert_false(seen & (1u << got));
      seen |= 1u << got;
    }
    for (int j = 0; j < N; j++) assert_int_equal(pods[j].pending, 1);
  }
  ig_sched_free(s);
}

static void test_fallback_order(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 2);
  ig_sched_pod_t pods[5];
  pod_set(&pods[0], 0, 3, 0.5);
  pod_set(&pods[1], 1, 0, 0.1);
  pod_set(&pods[2], 2, 2, 0.3);
  pod_set(&pods[3], 3, 9, 0.1); /* saturated: ranks after every candidate */
  pod_set(&pods[4], 4, 1, 0.2);
  ig_sched_request_t r = req_std();
  size_t order[8], k = 8;
  assert_int_equal(ig_sched_pick(s, pods, 5, &r, order, &k), 0);
  assert_int_equal(k, 5);
  size_t want[] = {1, 4, 2, 0, 3};
  for (int i = 0; i < 5; i++) assert_int_equal(order[i], want[i]);
  assert_int_equal(pods[1].pending, 1);
  assert_int_equal(pods[4].pending, 0);
  /* capacity 2: the two best */
  pod_set(&pods[1], 1, 0, 0.1);
  k = 2;
  assert_int_equal(ig_sched_pick(s, pods, 5, &r, order, &k), 0);
  assert_int_equal(k, 2);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 4);
  /* a large order request goes through the sorting path */
  enum { N = 40 };
  ig_sched_pod_t many[N];
  for (int i = 0; i < N; i++) pod_set(&many[i], (size_t)i, (double)(i % 5), 0.01 * i);
  size_t big[N];
  k = N;
  assert_int_equal(ig_sched_pick(s, many, N, &r, big, &k), 0);
  assert_int_equal(k, N);
  unsigned char seen[N] = {0};
  for (int i = 0; i < N; i++) {
    assert_false(seen[big[i]]);
    seen[big[i]] = 1;
  }
  assert_int_equal(big[0], 0);
  ig_sched_free(s);
}

static void test_subset_and_errors(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 2);
  ig_sched_pod_t pods[4];
  for (int i = 0; i < 4; i++) pod_set(&pods[i], (size_t)i, 0, 0);
  size_t subset[] = {3, 3, 9, 2};
  ig_sched_request_t r = req_std();
  r.subset = subset;
  r.n_subset = 4;
  size_t order[4], k = 4;
  assert_int_equal(ig_sched_pick(s, pods, 4, &r, order, &k), 0);
  assert_int_equal(k, 2); /* de-duplicated, out-of-range dropped */
  assert_true((order[0] == 3 && order[1] == 2) || (order[0] == 2 && order[1] == 3));
  size_t bad[] = {7};
  r.subset = bad;
  r.n_subset = 1;
  k = 4;
  assert_int_equal(ig_sched_pick(s, pods, 4, &r, order, &k), IG_ENOENT);
  assert_int_equal(k, 0);
  r = req_std();
  k = 4;
  assert_int_equal(ig_sched_pick(s, pods, 0, &r, order, &k), IG_ENOENT);
  k = 0;
  assert_int_equal(ig_sched_pick(s, pods, 4, &r, order, &k), IG_EINVAL);
  k = 1;
  assert_int_equal(ig_sched_pick(s, pods, 4, NULL, order, &k), IG_EINVAL);
  assert_int_equal(ig_sched_pick(s, pods, 4, &r, order, NULL), IG_EINVAL);
  ig_sched_free(s);
}

static void test_imbalance_fallback(void **state) {
  (void)state;
  ig_sched_opts_t o;
  ig_sched_opts_default(&o);
  o.queue_threshold = 1000; /* keep everyone unsaturated so only the guard acts */
  o.kv_threshold = 1.1;
  ig_sched_t *s = ig_sched_new_opts("default", 4, &o);
  ig_sched_pod_t pods[2];
  pod_set(&pods[0], 0, 0, 0);
  pod_set(&pods[1], 1, 0, 0);
  pods[0].prefix = ig_sched_prefix_new(0);
  pods[1].prefix = ig_sched_prefix_new(0);
  char prompt[64 * 20 + 1];
  memset(prompt, 'x', sizeof prompt - 1);
  prompt[sizeof prompt - 1] = 0;
  ig_sched_request_t r = {.model = "m", .prompt = prompt, .prompt_len = strlen(prompt)};
  size_t got, first;
  assert_int_equal(pick1(s, pods, 2, &r, &first), 0);
  /* moderate load on the cached pod: prefix affinity still wins (3 > 2 x queue gap) */
  pods[first].pending = 0;
  pods[first].waiting = 40;
  pods[!first].waiting = 30;
  assert_int_equal(pick1(s, pods, 2, &r, &got), 0);
  assert_int_equal(got, first);
  /* large imbalance (max-min > 64, max > 1.5 x min): least-queue takes over */
  pods[first].pending = 0;
  pods[first].waiting = 100;
  pods[!first].waiting = 20;
  assert_int_equal(pick1(s, pods, 2, &r, &got), 0);
  assert_int_equal(got, !first);
  ig_sched_free(s);
  /* thresholds scaled down for a small pool: 10 vs 3 already counts as imbalanced */
  o.imbalance_abs = 4;
  s = ig_sched_new_opts("default", 4, &o);
  ig_sched_prefix_clear(pods[!first].prefix); /* only `first` holds the prompt */
  pods[0].pending = pods[1].pending = 0;
  pods[first].waiting = 6; /* spread 3: prefix affinity */
  pods[!first].waiting = 3;
  assert_int_equal(pick1(s, pods, 2, &r, &got), 0);
  assert_int_equal(got, first);
  pods[0].pending = pods[1].pending = 0;
  pods[first].waiting = 10; /* spread 7 > 4 and 10 > 1.5 x 3 */
  assert_int_equal(pick1(s, pods, 2, &r, &got), 0);
  assert_int_equal(got, !first);
  ig_sched_prefix_free(pods[0].prefix);
  ig_sched_prefix_free(pods[1].prefix);
  ig_sched_free(s);
}

static void test_baselines(void **state) {
  (void)state;
  enum { N = 5 };
  ig_sched_pod_t pods[N];
  for (int i = 0; i < N; i++) pod_set(&pods[i], (size_t)i, 100, 0.99); /* saturated: baselines ignore it */
  ig_sched_request_t r = {.crit = IG_SCHED_CRIT_SHEDDABLE};
  ig_sched_t *rr = ig_sched_new("round-robin", 1);
  for (int i = 0; i < 12; i++) {
    size_t got;
    assert_int_equal(pick1(rr, pods, N, &r, &got), 0);
    assert_int_equal(got, (size_t)(i % N));
  }
  size_t order[N], k = N;
  assert_int_equal(ig_sched_pick(rr, pods, N, &r, order, &k), 0);
  assert_int_equal(k, N);
  for (int i = 0; i < N; i++) assert_int_equal(order[i], (size_t)((2 + i) % N));
  assert_int_equal(ig_sched_admit(rr, pods, N, &r, NULL), IG_SCHED_ADMIT_PICK);
  ig_sched_free(rr);

  ig_sched_t *lr = ig_sched_new("least-request", 1);
  for (int i = 0; i < N; i++) pods[i].inflight = (unsigned)(10 - i);
  size_t got;
  assert_int_equal(pick1(lr, pods, N, &r, &got), 0);
  assert_int_equal(got, 4);
  ig_sched_free(lr);

  ig_sched_t *rnd = ig_sched_new("random", 1);
  unsigned hits[N] = {0};
  for (int i = 0; i < 2000; i++) {
    assert_int_equal(pick1(rnd, pods, N, &r, &got), 0);
    hits[got]++;
  }
  for (int i = 0; i < N; i++) assert_true(hits[i] > 200);
  k = N;
  assert_int_equal(ig_sched_pick(rnd, pods, N, &r, order, &k), 0);
  unsigned mask = 0;
  for (int i = 0; i < N; i++) mask |= 1u << order[i];
  assert_int_equal(mask, (1u << N) - 1);
  ig_sched_free(rnd);
}

/* 10,000 picks over 1,000 pods with changing metrics and prompts: sanity only (no timing asserts). */
static void test_large_pool(void **state) {
  (void)state;
  enum { N = 1000, PICKS = 10000 };
  ig_sched_pod_t *pods = calloc(N, sizeof *pods);
  ig_rng_t rng;
  ig_rng_seed(&rng, 123);
  for (int i = 0; i < N; i++) {
    pod_set(&pods[i], (size_t)i, (double)(ig_rng_next(&rng) % 8), ig_rng_double(&rng));
    pods[i].prefix = ig_sched_prefix_new(2000);
  }
  ig_sched_t *s = ig_sched_new("default", 99);
  ig_sched_reserve(s, N);
  char prompt[1024];
  unsigned *hits = calloc(N, sizeof *hits);
  for (int i = 0; i < PICKS; i++) {
    if (i % 50 == 0) /* a scrape */
      for (int j = 0; j < N; j++) {
        pods[j].waiting = (double)(ig_rng_next(&rng) % 8);
        pods[j].kv_usage = ig_rng_double(&rng);
        pods[j].pending = 0;
      }
    int group = (int)(ig_rng_next(&rng) % 64);
    memset(prompt, 'a' + group % 26, sizeof prompt);
    snprintf(prompt, 16, "g%d", group);
    ig_sched_request_t r = {.model = "m", .crit = IG_SCHED_CRIT_STANDARD, .prompt = prompt,
                            .prompt_len = sizeof prompt};
    size_t order[3], k = 3;
    assert_int_equal(ig_sched_pick(s, pods, N, &r, order, &k), 0);
    assert_int_equal(k, 3);
    assert_true(order[0] < N && order[1] < N && order[2] < N);
    assert_true(order[0] != order[1] && order[1] != order[2]);
    hits[order[0]]++;
  }
  size_t used = 0;
  for (int i = 0; i < N; i++) used += hits[i] > 0;
  assert_true(used > 50); /* spread, not all on one pod */
  ig_sched_free(s);
  for (int i = 0; i < N; i++) ig_sched_prefix_free(pods[i].prefix);
  free(hits);
  free(pods);
}

/* Three copies of one pool, one stamped (ig_sched_pod_touch on every change, as the scraper does; but
 * for two pods, which move around, sometimes to index 0), one never stamped, and one picked event-driven
 * (ig_sched_pick_at, every change reported with ig_sched_pods_changed, its ages never set), go through
 * the same scrapes, time passing, pending and batch-size changes the glue makes without a stamp, pods
 * moving to other indexes, adapters noted as sent to the picked pod (ig_sched_lora_note_sent), and
 * requests of every kind (subsets, adapters, priorities, the Critical reserve): every pick must give the
 * same answer in all three, so the records kept between picks are never stale. */
enum { DIFF_PODS = 48, DIFF_ADAPTERS = 5 };

typedef struct {
  ig_sched_pod_t pods[DIFF_PODS];
  ig_sched_lora_t loras[DIFF_PODS];
  ig_sched_t *s;
} diff_pool_t;

static void diff_lora(ig_sched_lora_t *l, ig_rng_t *r) {
  memset(l, 0, sizeof *l);
  l->max_lora = 2;
  l->n_running_loras = (int)(ig_rng_next(r) % 3);
  for (int k = 0; k < l->n_running_loras; k++)
    snprintf(l->running_loras[k], IG_SCHED_LORA_NAME_MAX, "diff-lora-%d",
             (int)(ig_rng_next(r) % DIFF_ADAPTERS));
}

/* One scrape of pod i at now with the values r draws (the same draws for every copy: r is copied). */
static void diff_scrape(diff_pool_t *d, size_t i, ig_rng_t r, uint64_t now) {
  ig_sched_pod_t *p = &d->pods[i];
  uint64_t ago = ig_rng_next(&r) % 80;
  p->scraped_ms = ig_rng_next(&r) % 10 ? now - ago : now + 3; /* a clock step: age 0 */
  p->waiting = (double)(ig_rng_next(&r) % 7);
  p->running = (double)(ig_rng_next(&r) % 20);
  p->kv_usage = ig_rng_double(&r) * (ig_rng_next(&r) % 4 ? 0.85 : 1.2);
  p->has_metrics = ig_rng_next(&r) % 16 != 0;
  p->pending = 0;
  p->done = 0;
  if (ig_rng_next(&r) % 3 == 0) {
    diff_lora(&d->loras[i], &r);
    ig_sched_pod_set_lora(p, &d->loras[i]);
  } else if (ig_rng_next(&r) % 8 == 0) {
    ig_sched_pod_set_lora(p, NULL);
  }
  if (p->seq) ig_sched_pod_touch(p); /* a pod never stamped stays so */
}

static void diff_init(diff_pool_t *d, int stamped) {
  memset(d, 0, sizeof *d);
  d->s = ig_sched_new("default", 77);
  ig_rng_t r;
  ig_rng_seed(&r, 5);
  for (size_t i = 0; i < DIFF_PODS; i++) {
    ig_sched_pod_t *p = &d->pods[i];
    p->id = i;
    p->prefix = ig_sched_prefix_new(512);
    p->metrics_age_ms = 10;
    if (stamped && i % 23 != 7) ig_sched_pod_touch(p); /* two pods of the stamped pool are not */
    diff_scrape(d, i, r, 1000);
    ig_rng_next(&r);
  }
}

static void diff_free(diff_pool_t *d) {
  for (size_t i = 0; i < DIFF_PODS; i++)
    ig_sched_prefix_free(d->pods[i].prefix);
  ig_sched_free(d->s);
}

/* Swaps pods i and j (their adapter state travels with them). */
static void diff_swap(diff_pool_t *d, size_t i, size_t j) {
  ig_sched_pod_t t = d->pods[i];
  d->pods[i] = d->pods[j];
  d->pods[j] = t;
  ig_sched_lora_t l = d->loras[i];
  d->loras[i] = d->loras[j];
  d->loras[j] = l;
  /* the pods point at their adapter state, which moved with them */
  for (size_t k = 0; k < 2; k++) {
    ig_sched_pod_t *p = &d->pods[k ? j : i];
    if (p->lora) p->lora = &d->loras[k ? j : i];
  }
}

static void test_stamped_same_as_unstamped(void **state) {
  (void)state;
  static diff_pool_t a, b, c;
  diff_pool_t *all[] = {&a, &b, &c};
  diff_init(&a, 1);
  diff_init(&b, 0);
  diff_init(&c, 1);
  ig_rng_t r;
  ig_rng_seed(&r, 11);
  char prompt[512];
  size_t subset[DIFF_PODS];
  size_t refreshed = 0, noted = 0, stale = 0;
  uint64_t now = 1000;
  for (int it = 0; it < 6000; it++) {
    unsigned what = (unsigned)(ig_rng_next(&r) % 16);
    size_t i = ig_rng_next(&r) % DIFF_PODS, j = ig_rng_next(&r) % DIFF_PODS;
    if (what < 3) { /* a scrape */
      ig_rng_t draw = r;
      for (int k = 0; k < 3; k++) diff_scrape(all[k], i, draw, now);
      ig_sched_pods_changed(c.s, i);
      ig_rng_next(&r);
      refreshed++;
    } else if (what == 3) { /* time passes: ages change without a stamp, unreported */
      now += ig_rng_next(&r) % 60;
    } else if (what == 4) { /* the glue's own counts, never stamped */
      unsigned v = (unsigned)(ig_rng_next(&r) % 20);
      for (int k = 0; k < 3; k++) {
        all[k]->pods[i].batch_slots = v;
        all[k]->pods[j].done = v % 3;
        all[k]->pods[j].pending = v % 4;
      }
      ig_sched_pods_changed(c.s, i);
      ig_sched_pods_changed(c.s, j);
    } else if (what == 7) { /* our unanswered prompt tokens, alone (never stamped either) */
      unsigned v = (unsigned)(ig_rng_next(&r) % 4) * 300;
      for (int k = 0; k < 3; k++) all[k]->pods[i].prefill = v;
      ig_sched_pods_changed(c.s, i);
    } else if (what == 5) {
      for (int k = 0; k < 3; k++) diff_swap(all[k], i, j);
      ig_sched_pods_changed(c.s, i);
      ig_sched_pods_changed(c.s, j);
    } else if (what == 6 && ig_rng_next(&r) % 4 == 0) { /* batch sizes forgotten (unknown again) */
      for (size_t k = 0; k < DIFF_PODS; k++)
        a.pods[k].batch_slots = b.pods[k].batch_slots = c.pods[k].batch_slots = 0;
      ig_sched_pods_changed(c.s, ig_rng_next(&r) % 2 ? SIZE_MAX : DIFF_PODS); /* "all", either way */
    }
    /* the array picks read the ages the glue derives (ig_sched_pod_copy); the event-driven one must
     * not read them at all */
    for (size_t k = 0; k < DIFF_PODS; k++) {
      const ig_sched_pod_t *p = &a.pods[k];
      uint64_t age = p->has_metrics && now > p->scraped_ms ? now - p->scraped_ms : 0;
      a.pods[k].metrics_age_ms = b.pods[k].metrics_age_ms = age;
      c.pods[k].metrics_age_ms = 12345 + (uint64_t)it;
      stale += age > 200;
    }
    ig_sched_request_t q = {0};
    int m = (int)(ig_rng_next(&r) % (DIFF_ADAPTERS + 2));
    char model[32];
    snprintf(model, sizeof model, m < DIFF_ADAPTERS ? "diff-lora-%d" : "base", m);
    q.model = m == DIFF_ADAPTERS + 1 ? NULL : model;
    q.priority = (int)(ig_rng_next(&r) % 3) - 1;
    q.has_priority = 1;
    q.crit = ig_sched_priority_crit(q.priority);
    q.reserve_critical = ig_rng_next(&r) % 2 == 0;
    int group = (int)(ig_rng_next(&r) % 6);
    memset(prompt, 'a' + group, sizeof prompt);
    q.prompt = prompt;
    q.prompt_len = 64 + (size_t)(ig_rng_next(&r) % 400);
    if (ig_rng_next(&r) % 4 == 0) {
      size_t n = 1 + ig_rng_next(&r) % DIFF_PODS;
      for (size_t k = 0; k < n; k++)
        subset[k] = ig_rng_next(&r) % DIFF_PODS;
      q.subset = subset;
      q.n_subset = n;
    }
    size_t oa[3], ob[3], oc[3], ka = 3, kb = 3, kc = 3;
    int ra = ig_sched_pick(a.s, a.pods, DIFF_PODS, &q, oa, &ka);
    int rb = ig_sched_pick(b.s, b.pods, DIFF_PODS, &q, ob, &kb);
    int rc = ig_sched_pick_at(c.s, c.pods, DIFF_PODS, now, &q, oc, &kc);
    assert_int_equal(ra, rb);
    assert_int_equal(ra, rc);
    assert_int_equal(ka, kb);
    assert_int_equal(ka, kc);
    for (size_t k = 0; k < ka; k++) {
      assert_int_equal(oa[k], ob[k]);
      assert_int_equal(oa[k], oc[k]);
    }
    assert_true(ig_sched_last_prefix_hit(a.s) == ig_sched_last_prefix_hit(b.s));
    assert_true(ig_sched_last_prefix_hit(a.s) == ig_sched_last_prefix_hit(c.s));
    for (size_t k = 0; k < DIFF_PODS; k++) {
      assert_int_equal(a.pods[k].pending, b.pods[k].pending);
      assert_int_equal(a.pods[k].pending, c.pods[k].pending);
    }
    /* an adapter noted as sent (it may take the pod's last slot): the glue does it for the picked pod,
     * whose pending count changed too; here also for another pod, where nothing else changed */
    uint32_t id = ra == 0 && q.model ? ig_sched_lora_id(q.model) : 0;
    size_t t = ig_rng_next(&r) % 2 ? oa[0] : j;
    if (id && a.pods[t].lora) {
      int ca = ig_sched_lora_note_sent(&a.pods[t], &a.loras[t], q.model, id);
      int cb = ig_sched_lora_note_sent(&b.pods[t], &b.loras[t], q.model, id);
      int cc = ig_sched_lora_note_sent(&c.pods[t], &c.loras[t], q.model, id);
      assert_int_equal(ca, cb);
      assert_int_equal(ca, cc);
      if (cc) ig_sched_pods_changed(c.s, t);
      noted += (size_t)ca;
    }
  }
  assert_true(noted > 100);
  assert_true(refreshed > 500);
  assert_true(stale > 1000); /* pods went stale between scrapes, and fresh again */
  for (int k = 0; k < 3; k++) diff_free(all[k]);
}

/* A stamp is unique and changes on every touch; ig_sched_pod_set_lora stamps tracked pods only. */
static void test_pod_touch(void **state) {
  (void)state;
  ig_sched_pod_t p, q;
  memset(&p, 0, sizeof p);
  memset(&q, 0, sizeof q);
  ig_sched_lora_t l;
  memset(&l, 0, sizeof l);
  ig_sched_pod_set_lora(&p, &l);
  assert_true(p.seq == 0); /* untracked stays untracked */
  ig_sched_pod_touch(&p);
  ig_sched_pod_touch(&q);
  assert_true(p.seq != 0 && q.seq != 0 && p.seq != q.seq);
  uint64_t before = p.seq;
  ig_sched_pod_set_lora(&p, &l);
  assert_true(p.seq != before);
  before = p.seq;
  ig_sched_pod_set_lora(&p, NULL);
  assert_true(p.seq != before);
}

/* Our requests count on a pod between scrapes only while they are there: pending - done is added to
 * the scraped queue, so requests that already finished (a slow scrape interval, fast answers) do not
 * make a pod look busy or saturated; those still there do. */
static void test_finished_requests_leave_the_queue(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 3);
  ig_sched_pod_t pods[2];
  pod_set(&pods[0], 0, 0, 0.1);
  pod_set(&pods[1], 1, 2, 0.1);
  pods[0].pending = 6; /* six sent since the scrape, still there: saturated (queue threshold 5) */
  ig_sched_request_t r = req_std();
  size_t got;
  assert_true(ig_sched_pod_saturated(s, &pods[0]));
  assert_int_equal(pick1(s, pods, 2, &r, &got), 0);
  assert_int_equal(got, 1);
  pods[1].pending = 0;
  pods[0].pending = 6;
  pods[0].done = 6; /* all six finished: the pod is as idle as its scrape said */
  assert_false(ig_sched_pod_saturated(s, &pods[0]));
  assert_int_equal(pick1(s, pods, 2, &r, &got), 0);
  assert_int_equal(got, 0);
  /* more of ours finished than were sent since the scrape (they were in its counts): never below 0 */
  pods[0].pending = 0;
  pods[0].done = 3;
  pods[1].waiting = 0;
  pods[1].pending = 0;
  double q[2];
  assert_int_equal(ig_sched_scores(s, "queue", pods, 2, &r, q), 0);
  assert_true(q[0] == 1 && q[1] == 1); /* both at 0 */
  ig_sched_free(s);
}

/* An event-driven pick notices a pod going stale with time alone (no change reported), also when the
 * pod is not the one picked: here the second of three, which the order then ranks last. And a
 * profile other than "default" reads the ages ig_sched_pick_at derives. */
static void test_event_pick_sees_pods_go_stale(void **state) {
  (void)state;
  ig_sched_pod_t pods[3];
  memset(pods, 0, sizeof pods);
  double waiting[3] = {0, 2, 3};
  uint64_t scraped[3] = {100, 0, 100}; /* pod 1 is stale after 200 (stale_ms 200) */
  for (size_t i = 0; i < 3; i++) {
    pods[i].id = i;
    pods[i].has_metrics = 1;
    pods[i].waiting = waiting[i];
    pods[i].scraped_ms = scraped[i];
    pods[i].metrics_age_ms = 99999; /* never read */
  }
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_request_t r = {0};
  size_t order[3], k = 3;
  assert_int_equal(ig_sched_pick_at(s, pods, 3, 150, &r, order, &k), 0);
  assert_int_equal(k, 3);
  assert_true(order[0] == 0 && order[1] == 1 && order[2] == 2);
  k = 3;
  assert_int_equal(ig_sched_pick_at(s, pods, 3, 200, &r, order, &k), 0); /* still fresh at 200 */
  assert_true(order[0] == 0 && order[1] == 1 && order[2] == 2);
  k = 3;
  assert_int_equal(ig_sched_pick_at(s, pods, 3, 201, &r, order, &k), 0);
  assert_true(order[0] == 0 && order[1] == 2 && order[2] == 1); /* 1 went stale: a fallback only */
  pods[1].scraped_ms = 190; /* scraped again, and so was pod 0 (its pending count back to 0) */
  pods[0].pending = 0;
  ig_sched_pods_changed(s, 1);
  ig_sched_pods_changed(s, 0);
  k = 3;
  assert_int_equal(ig_sched_pick_at(s, pods, 3, 202, &r, order, &k), 0);
  assert_true(order[0] == 0 && order[1] == 1 && order[2] == 2);
  k = 3; /* every pod stale: our own counts decide (least-request), no pod read as fresh */
  assert_int_equal(ig_sched_pick_at(s, pods, 3, 1000, &r, order, &k), 0);
  assert_int_equal(k, 3);
  ig_sched_free(s);
  /* an ig_sched_pick in between (ages given) makes the next event-driven pick reread every pod, so a
   * change made meanwhile without a report still counts */
  s = ig_sched_new("default", 1);
  for (size_t i = 0; i < 3; i++) {
    pods[i].scraped_ms = 990;
    pods[i].metrics_age_ms = 10;
    pods[i].pending = 0;
  }
  k = 3;
  assert_int_equal(ig_sched_pick_at(s, pods, 3, 1000, &r, order, &k), 0);
  assert_true(order[0] == 0 && order[1] == 1 && order[2] == 2);
  k = 3;
  assert_int_equal(ig_sched_pick(s, pods, 3, &r, order, &k), 0);
  for (size_t i = 0; i < 3; i++) pods[i].pending = 0;
  pods[1].waiting = 4;
  k = 3;
  assert_int_equal(ig_sched_pick_at(s, pods, 3, 1000, &r, order, &k), 0);
  assert_true(order[0] == 0 && order[1] == 2 && order[2] == 1);
  ig_sched_free(s);
  s = ig_sched_new("gie", 1);
  pods[1].scraped_ms = 1300; /* after the pick's now (a clock step): age 0 */
  k = 1;
  assert_int_equal(ig_sched_pick_at(s, pods, 3, 1250, &r, order, &k), 0);
  assert_true(pods[0].metrics_age_ms == 260 && pods[1].metrics_age_ms == 0 && pods[2].metrics_age_ms == 260);
  ig_sched_free(s);
}

/* ig_sched_pod_sync: a whole copy unless the copy holds the pod's stamp; then only the fields that
 * change without one. */
static void test_pod_sync(void **state) {
  (void)state;
  ig_sched_pod_t src, dst;
  memset(&src, 0, sizeof src);
  memset(&dst, 0, sizeof dst);
  src.waiting = 3;
  src.has_metrics = 1;
  ig_sched_pod_sync(&dst, &src); /* untracked: copied */
  assert_true(dst.waiting == 3 && dst.has_metrics == 1);
  src.waiting = 4;
  ig_sched_pod_sync(&dst, &src); /* untracked: copied every time */
  assert_true(dst.waiting == 4);
  ig_sched_pod_touch(&src);
  assert_int_equal(ig_sched_pod_sync(&dst, &src), 1);
  assert_true(dst.seq == src.seq && dst.waiting == 4);
  assert_int_equal(ig_sched_pod_sync(&dst, &src), 0); /* nothing changed */
  dst.metrics_age_ms = 70; /* the caller's own fields stay */
  dst.inflight = 5;
  dst.id = 9;
  src.pending = 2;
  src.done = 1;
  src.batch_slots = 64;
  assert_int_equal(ig_sched_pod_sync(&dst, &src), 1);
  assert_int_equal(dst.pending, 2);
  assert_int_equal(dst.done, 1);
  src.prefill = 300; /* the glue's count, never stamped */
  assert_int_equal(ig_sched_pod_sync(&dst, &src), 1);
  assert_int_equal(dst.prefill, 300);
  assert_int_equal(ig_sched_pod_sync(&dst, &src), 0);
  assert_int_equal(dst.batch_slots, 64);
  assert_true(dst.metrics_age_ms == 70 && dst.inflight == 5 && dst.id == 9);
  src.kv_usage = 0.5; /* a scrape: stamped */
  ig_sched_pod_touch(&src);
  ig_sched_pod_sync(&dst, &src);
  assert_true(dst.kv_usage == 0.5 && dst.seq == src.seq && dst.inflight == 0);
  /* ig_sched_pod_copy: the age from scraped_ms (0 before it: a clock step), a pod without state zeroed */
  src.scraped_ms = 1000;
  ig_sched_pod_touch(&src);
  assert_int_equal(ig_sched_pod_copy(&dst, &src, 1250, 0), 1);
  assert_true(dst.metrics_age_ms == 250);
  assert_int_equal(ig_sched_pod_copy(&dst, &src, 990, 0), 0);
  assert_true(dst.metrics_age_ms == 0);
  /* a configured batch size over the learned one (64): a change once, not on every copy */
  assert_int_equal(ig_sched_pod_copy(&dst, &src, 990, 16), 1);
  assert_int_equal(dst.batch_slots, 16);
  assert_int_equal(ig_sched_pod_copy(&dst, &src, 990, 16), 0);
  assert_int_equal(dst.batch_slots, 16);
  src.pending++;
  assert_int_equal(ig_sched_pod_copy(&dst, &src, 990, 16), 1);
  src.prefill = 0;
  assert_int_equal(ig_sched_pod_copy(&dst, &src, 990, 16), 1);
  assert_int_equal(dst.prefill, 0);
  assert_int_equal(ig_sched_pod_copy(&dst, &src, 990, 16), 0);
  dst.id = 4;
  dst.inflight = 2;
  assert_int_equal(ig_sched_pod_copy(&dst, NULL, 2000, 0), 1);
  assert_true(dst.has_metrics == 0 && dst.seq == 0 && dst.prefix == NULL && dst.id == 4 && dst.inflight == 2);
  assert_int_equal(ig_sched_pod_copy(&dst, NULL, 2000, 0), 0); /* no state, still */
  assert_int_equal(ig_sched_pod_copy(&dst, NULL, 2000, 8), 1);   /* a configured batch size: once */
  assert_int_equal(ig_sched_pod_copy(&dst, NULL, 2000, 8), 0);
  assert_int_equal(dst.batch_slots, 8);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_profiles),          cmocka_unit_test(test_queue_scorer),
      cmocka_unit_test(test_prefill_counts_as_queue),
      cmocka_unit_test(test_kv_scorer),         cmocka_unit_test(test_lora_scorer),
      cmocka_unit_test(test_weights_decide),    cmocka_unit_test(test_tie_break_spreads),
      cmocka_unit_test(test_stale_filtered),    cmocka_unit_test(test_saturation),
      cmocka_unit_test(test_not_saturated_preferred), cmocka_unit_test(test_herding_guard),
      cmocka_unit_test(test_fallback_order),    cmocka_unit_test(test_subset_and_errors),
      cmocka_unit_test(test_imbalance_fallback), cmocka_unit_test(test_baselines),
      cmocka_unit_test(test_large_pool),        cmocka_unit_test(test_stamped_same_as_unstamped),
      cmocka_unit_test(test_pod_touch),         cmocka_unit_test(test_pod_sync),
      cmocka_unit_test(test_event_pick_sees_pods_go_stale),
      cmocka_unit_test(test_finished_requests_leave_the_queue),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

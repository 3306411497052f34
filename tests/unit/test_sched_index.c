/* Unit tests for the pool-wide prefix head index and the LoRA adapter ids: the scheduler's prefix
 * scores equal ig_sched_prefix_match on every pod (randomized), the per-pod LRU bound holds while
 * pods share the index, pods come and go, and interned adapter checks equal name compares. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/sched.h"

enum { NPODS = 40, NSYS = 12, MAXB = 24 };

/* A prompt of nb blocks: the first sys_blocks from system prompt sys, the rest from tail. */
static size_t make_prompt(char *p, int sys, int sys_blocks, int nb, unsigned tail) {
  for (int b = 0; b < nb; b++)
    memset(p + b * 64, b < sys_blocks ? 'A' + (sys * 3 + b) % 26 : 'a' + (int)((tail + (unsigned)b) % 26), 64);
  return (size_t)nb * 64;
}

/* Compares the scheduler's prefix scores (head index) with per-pod matching. */
static void check_scores(ig_sched_t *s, ig_sched_pod_t *pods, size_t n, const ig_sched_request_t *r) {
  double out[NPODS];
  uint64_t h[IG_SCHED_PREFIX_MAX_BLOCKS];
  size_t nh = ig_sched_prefix_hashes(r->model, r->prompt, r->prompt_len, 0, h, IG_SCHED_PREFIX_MAX_BLOCKS);
  assert_int_equal(ig_sched_scores(s, "prefix", pods, n, r, out), 0);
  for (size_t i = 0; i < n; i++) {
    double want = nh ? (double)ig_sched_prefix_match(pods[i].prefix, h, nh) / (double)nh : 0;
    assert_float_equal(out[i], want, 1e-12);
  }
}

/* Randomized: picks (which record prompts), direct inserts, clears, pods replaced, small capacities
 * that rotate often; after every step the index answers as the per-pod sets do. */
static void test_index_equals_per_pod(void **state) {
  (void)state;
  ig_rng_t rng;
  ig_rng_seed(&rng, 2024);
  ig_sched_pod_t pods[NPODS];
  memset(pods, 0, sizeof pods);
  for (int i = 0; i < NPODS; i++) {
    pods[i].id = (size_t)i;
    pods[i].has_metrics = 1;
    pods[i].kv_usage = 0.1;
    pods[i].prefix = ig_sched_prefix_new(8 + ig_rng_next(&rng) % 200);
  }
  ig_sched_t *s = ig_sched_new("default", 7);
  static const char *models[] = {"m", "lora-a", "lora-b"};
  char prompt[MAXB * 64];
  for (int step = 0; step < 4000; step++) {
    for (int i = 0; i < NPODS; i++) pods[i].pending = 0;
    int nb = 1 + (int)(ig_rng_next(&rng) % MAXB);
    ig_sched_request_t r = {.model = models[ig_rng_next(&rng) % 3], .crit = IG_SCHED_CRIT_STANDARD,
                            .prompt = prompt};
    r.prompt_len = make_prompt(prompt, (int)(ig_rng_next(&rng) % NSYS), (int)(ig_rng_next(&rng) % (unsigned)nb),
                               nb, (unsigned)ig_rng_next(&rng) % 5);
    unsigned op = (unsigned)(ig_rng_next(&rng) % 100);
    size_t v = ig_rng_next(&rng) % NPODS;
    if (op < 70) {
      size_t order[2], k = 2;
      assert_int_equal(ig_sched_pick(s, pods, NPODS, &r, order, &k), 0);
    } else if (op < 90) { /* recorded behind the scheduler's back */
      uint64_t h[MAXB];
      size_t nh = ig_sched_prefix_hashes(r.model, prompt, r.prompt_len, 0, h, MAXB);
      ig_sched_prefix_insert(pods[v].prefix, h, nh);
    } else if (op < 95) {
      ig_sched_prefix_clear(pods[v].prefix);
    } else { /* the pod restarts with a new index (address may be reused) */
      ig_sched_prefix_free(pods[v].prefix);
      pods[v].prefix = ig_sched_prefix_new(8 + ig_rng_next(&rng) % 200);
    }
    check_scores(s, pods, NPODS, &r);
  }
  /* a second live scheduler over the same pods (their indexes stay with the first): same answers */
  ig_sched_t *s2 = ig_sched_new("default", 8);
  ig_sched_request_t r = {.model = "m", .prompt = prompt};
  r.prompt_len = make_prompt(prompt, 1, 6, 10, 0);
  size_t order[1], k = 1;
  assert_int_equal(ig_sched_pick(s2, pods, NPODS, &r, order, &k), 0);
  check_scores(s2, pods, NPODS, &r);
  check_scores(s, pods, NPODS, &r);
  /* the first scheduler goes (reload): the next one takes the pods over and still agrees */
  ig_sched_free(s);
  check_scores(s2, pods, NPODS, &r);
  k = 1;
  assert_int_equal(ig_sched_pick(s2, pods, NPODS, &r, order, &k), 0);
  check_scores(s2, pods, NPODS, &r);
  for (int i = 0; i < NPODS; i++) ig_sched_prefix_free(pods[i].prefix);
  ig_sched_free(s2);
}

/* Per-pod LRU bound while attached to the shared index; evicted prompts no longer score. */
static void test_index_eviction_bound(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_pod_t pod;
  memset(&pod, 0, sizeof pod);
  pod.has_metrics = 1;
  pod.prefix = ig_sched_prefix_new(64);
  char prompt[8 * 64];
  ig_sched_request_t first = {.model = "m", .prompt = prompt};
  first.prompt_len = make_prompt(prompt, 0, 8, 8, 0);
  size_t order[1], k = 1;
  assert_int_equal(ig_sched_pick(s, &pod, 1, &first, order, &k), 0);
  double out[1];
  ig_sched_scores(s, "prefix", &pod, 1, &first, out);
  assert_float_equal(out[0], 1.0, 1e-12);
  for (int i = 1; i < 200; i++) {
    char model[16];
    snprintf(model, sizeof model, "m%d", i);
    ig_sched_request_t r = {.model = model, .prompt = prompt, .prompt_len = first.prompt_len};
    k = 1;
    assert_int_equal(ig_sched_pick(s, &pod, 1, &r, order, &k), 0);
    assert_true(ig_sched_prefix_size(pod.prefix) <= 64);
  }
  ig_sched_scores(s, "prefix", &pod, 1, &first, out);
  assert_float_equal(out[0], 0.0, 1e-12); /* the first prompt was evicted */
  ig_sched_prefix_free(pod.prefix);
  ig_sched_free(s);
}

/* Pods removed while the scheduler lives, and the scheduler freed before its pods (LeakSanitizer
 * checks that the shared index goes with the last of them). */
static void test_index_pod_removal(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 3);
  ig_sched_pod_t pods[4];
  memset(pods, 0, sizeof pods);
  char prompt[4 * 64];
  ig_sched_request_t r = {.model = "m", .prompt = prompt};
  r.prompt_len = make_prompt(prompt, 2, 4, 4, 0);
  for (int i = 0; i < 4; i++) {
    pods[i].has_metrics = 1;
    pods[i].prefix = ig_sched_prefix_new(0);
    uint64_t h[4];
    ig_sched_prefix_insert(pods[i].prefix, h, ig_sched_prefix_hashes("m", prompt, r.prompt_len, 0, h, 4));
  }
  check_scores(s, pods, 4, &r);
  ig_sched_prefix_free(pods[1].prefix); /* removed from the pool */
  pods[1].prefix = NULL;
  check_scores(s, pods, 4, &r);
  pods[1].prefix = ig_sched_prefix_new(0); /* a new pod in its place holds nothing */
  double out[4];
  ig_sched_scores(s, "prefix", pods, 4, &r, out);
  assert_float_equal(out[1], 0.0, 1e-12);
  assert_float_equal(out[0], 1.0, 1e-12);
  ig_sched_free(s);
  for (int i = 0; i < 4; i++) ig_sched_prefix_free(pods[i].prefix);
}

/* Interned adapter checks (with the copied masks) equal name compares, for many names. */
static void test_lora_ids(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  enum { N = 24 };
  ig_sched_pod_t a[N], b[N];
  ig_sched_lora_t la[N], lb[N];
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  memset(la, 0, sizeof la);
  ig_rng_t rng;
  ig_rng_seed(&rng, 5);
  for (int i = 0; i < N; i++) {
    la[i].max_lora = (int)(ig_rng_next(&rng) % 4);
    la[i].n_running_loras = (int)(ig_rng_next(&rng) % 5);
    la[i].n_waiting_loras = (int)(ig_rng_next(&rng) % 3);
    for (int k = 0; k < la[i].n_running_loras; k++)
      snprintf(la[i].running_loras[k], IG_SCHED_LORA_NAME_MAX, "ad-%u", (unsigned)(ig_rng_next(&rng) % 100));
    for (int k = 0; k < la[i].n_waiting_loras; k++)
      snprintf(la[i].waiting_loras[k], IG_SCHED_LORA_NAME_MAX, "ad-%u", (unsigned)(ig_rng_next(&rng) % 100));
    lb[i] = la[i];
    a[i].lora = &la[i]; /* compared by name */
    ig_sched_pod_set_lora(&b[i], &lb[i]);
    assert_true(b[i].lora == &lb[i] && lb[i].ids_valid);
  }
  for (unsigned m = 0; m < 110; m++) {
    char model[16];
    snprintf(model, sizeof model, "ad-%u", m);
    ig_sched_request_t r = {.model = m == 105 ? NULL : model};
    double x[N], y[N];
    assert_int_equal(ig_sched_scores(s, "lora", a, N, &r, x), 0);
    assert_int_equal(ig_sched_scores(s, "lora", b, N, &r, y), 0);
    assert_memory_equal(x, y, sizeof x);
  }
  ig_sched_free(s);
}

/* The "default" pick's one-pass scoring (records, the prefix term by matched blocks, the LoRA term
 * from the copied masks, skips of candidates that cannot rank) ranks as the scorer table's weighted
 * sum does: random pools of fresh, unsaturated pods with adapters compared by mask, by id and by name
 * (ids above 62 share a mask bit), shared prefixes, 3 of up to 300 pods asked for, and pods whose
 * prefix index is replaced or swapped between picks (the scheduler's slot cache must notice). */
/* 1 when model is among names[0..n). */
static int listed(const char names[][IG_SCHED_LORA_NAME_MAX], int n, const char *model) {
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], model)) return 1;
  return 0;
}

static void test_pick_equals_scorer_sum(void **state) {
  (void)state;
  enum { MAXP = 300 };
  static ig_sched_pod_t pods[MAXP];
  static ig_sched_lora_t loras[MAXP];
  static const char *const scorers[] = {"queue", "kv", "prefix", "lora"};
  static double sc[4][MAXP];
  double want[MAXP];
  char prompt[MAXB * 64], model[16];
  ig_rng_t rng;
  ig_rng_seed(&rng, 77);
  for (int round = 0; round < 60; round++) {
    size_t n = 1 + ig_rng_next(&rng) % MAXP;
    ig_sched_t *s = ig_sched_new("default", (uint64_t)round), *ref = ig_sched_new("default", 1);
    memset(pods, 0, sizeof pods);
    memset(loras, 0, sizeof loras);
    for (size_t i = 0; i < n; i++) {
      ig_sched_pod_t *p = &pods[i];
      p->has_metrics = 1;
      p->waiting = (double)(ig_rng_next(&rng) % 5); /* below the queue threshold (5) */
      p->running = (double)(ig_rng_next(&rng) % 40);
      p->kv_usage = ig_rng_double(&rng) * 0.79;     /* below the KV threshold (0.8) */
      ig_sched_lora_t *l = &loras[i];
      l->max_lora = (int)(ig_rng_next(&rng) % 4);
      l->n_running_loras = (int)(ig_rng_next(&rng) % 4);
      l->n_waiting_loras = (int)(ig_rng_next(&rng) % 3);
      for (int k = 0; k < l->n_running_loras; k++)
        snprintf(l->running_loras[k], IG_SCHED_LORA_NAME_MAX, "pa-%u", (unsigned)(ig_rng_next(&rng) % 90));
      for (int k = 0; k < l->n_waiting_loras; k++)
        snprintf(l->waiting_loras[k], IG_SCHED_LORA_NAME_MAX, "pa-%u", (unsigned)(ig_rng_next(&rng) % 90));
      unsigned how = (unsigned)(ig_rng_next(&rng) % 4);
      if (how == 1) p->lora = l; /* names only */
      if (how >= 2) ig_sched_pod_set_lora(p, l);
      p->prefix = ig_sched_prefix_new(0);
      for (int k = 0; k < 3; k++) {
        uint64_t h[MAXB];
        int nb = 1 + (int)(ig_rng_next(&rng) % MAXB);
        size_t len = make_prompt(prompt, (int)(ig_rng_next(&rng) % NSYS), nb / 2 + 1, nb, (unsigned)k);
        const char *m = k == 0 ? NULL : "pa-1"; /* the models most requests below use */
        ig_sched_prefix_insert(p->prefix, h, ig_sched_prefix_hashes(m, prompt, len, 0, h, MAXB));
      }
    }
    for (int step = 0; step < 20; step++) {
      snprintf(model, sizeof model, "pa-%u", (unsigned)(ig_rng_next(&rng) % 95));
      int nb = 1 + (int)(ig_rng_next(&rng) % MAXB);
      ig_sched_request_t r = {.model = step % 3 == 0 ? NULL : step % 3 == 1 ? "pa-1" : model, .prompt = prompt};
      r.prompt_len = make_prompt(prompt, (int)(ig_rng_next(&rng) % NSYS), nb / 2 + 1, nb, 9);
      for (size_t i = 0; i < n; i++) pods[i].pending = 0; /* a scrape: every pod stays unsaturated */
      size_t u = ig_rng_next(&rng) % n, v = ig_rng_next(&rng) % n;
      switch (ig_rng_next(&rng) % 4) {
      case 0: { /* swapped */
        ig_sched_prefix_t *t = pods[u].prefix;
        pods[u].prefix = pods[v].prefix;
        pods[v].prefix = t;
        break;
      }
      case 1: /* the pod restarts with a new, empty index (its address may be the old one's) */
        ig_sched_prefix_free(pods[u].prefix);
        pods[u].prefix = ig_sched_prefix_new(0);
        break;
      default:
        break;
      }
      double lo = INFINITY, hi = -INFINITY;
      for (size_t i = 0; i < n; i++) {
        double load = pods[i].waiting + pods[i].running;
        lo = load < lo ? load : lo;
        hi = load > hi ? load : hi;
      }
      if (n > 1 && hi - lo > 64 && hi > 1.5 * lo) continue; /* herding guard: another test's subject */
      /* the reference: the scorer table (another scheduler, so as not to touch s's cache) and, for
       * prefixes, every pod's own index */
      for (int k = 0; k < 4; k++)
        if (k != 2) assert_int_equal(ig_sched_scores(ref, scorers[k], pods, n, &r, sc[k]), 0);
      uint64_t h[IG_SCHED_PREFIX_MAX_BLOCKS];
      size_t nh = ig_sched_prefix_hashes(r.model, prompt, r.prompt_len, 0, h, IG_SCHED_PREFIX_MAX_BLOCKS);
      for (size_t i = 0; i < n; i++) sc[2][i] = (double)ig_sched_prefix_match(pods[i].prefix, h, nh) / (double)nh;
      for (size_t i = 0; i < n; i++)
        want[i] = 2 * sc[0][i] + 2 * sc[1][i] + 3 * sc[2][i] + 1 * sc[3][i];
      /* the filter "lora-slot": for an adapter, pods where it would wait for a slot are dropped when
       * another pod can start it (they follow as fallbacks, in any order) */
      static int blocked[MAXP];
      size_t n_free = n;
      if (r.model && ig_sched_lora_id(r.model)) {
        n_free = 0;
        for (size_t i = 0; i < n; i++) {
          const ig_sched_lora_t *l = pods[i].lora;
          blocked[i] = l && l->max_lora > 0 && l->n_running_loras >= l->max_lora &&
                       !listed(l->running_loras, l->n_running_loras, r.model);
          n_free += (size_t)!blocked[i];
        }
        if (n_free == 0 || n < 2) n_free = n;
      }
      if (n_free == n) memset(blocked, 0, n * sizeof *blocked);
      if (n_free < n) { /* the queue score spans the candidates the filter kept */
        static ig_sched_pod_t kept[MAXP];
        static size_t at[MAXP];
        static double qk[MAXP];
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
          if (!blocked[i]) {
            kept[m] = pods[i];
            at[m++] = i;
          }
        assert_int_equal(ig_sched_scores(ref, "queue", kept, m, &r, qk), 0);
        for (size_t j = 0; j < m; j++) {
          size_t i = at[j];
          want[i] += 2 * (qk[j] - sc[0][i]);
        }
      }
      static size_t order[MAXP];
      size_t k = step % 2 ? 3 : n; /* the top 3 (skips before ranking), or every pod (a full sort) */
      size_t want_k = k;
      assert_int_equal(ig_sched_pick(s, pods, n, &r, order, &k), 0);
      assert_int_equal(k, want_k < n ? want_k : n);
      /* order[j] holds the j-th best sum among the pods the filter kept (ties in any order) */
      size_t kept = k < n_free ? k : n_free;
      for (size_t j = 0; j < k; j++) assert_int_equal(blocked[order[j]], j >= kept);
      if (k == n) {
        for (size_t j = 0; j + 1 < kept; j++) assert_true(want[order[j]] >= want[order[j + 1]] - 1e-9);
      } else {
        for (size_t j = 0; j < kept; j++) {
          size_t better = 0;
          for (size_t i = 0; i < n; i++) better += !blocked[i] && want[i] > want[order[j]] + 1e-9;
          assert_true(better <= j);
        }
      }
    }
    for (size_t i = 0; i < n; i++) ig_sched_prefix_free(pods[i].prefix);
    ig_sched_free(s);
    ig_sched_free(ref);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_index_equals_per_pod),
      cmocka_unit_test(test_index_eviction_bound),
      cmocka_unit_test(test_index_pod_removal),
      cmocka_unit_test(test_lora_ids),
      cmocka_unit_test(test_pick_equals_scorer_sum),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

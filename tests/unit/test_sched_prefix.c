/* Unit tests for the prefix-cache index and prefix-aware routing. */
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

/* A prompt of nblocks 64-char blocks; block i is filled with a letter from seed + i. */
static char *make_prompt(int seed, int nblocks, size_t *len) {
  *len = (size_t)nblocks * 64;
  char *p = malloc(*len + 1);
  for (int b = 0; b < nblocks; b++) memset(p + b * 64, 'A' + (seed + b) % 50, 64);
  p[*len] = 0;
  return p;
}

static void test_hashes(void **state) {
  (void)state;
  uint64_t a[8], b[8];
  size_t len;
  char *p = make_prompt(0, 4, &len);
  assert_int_equal(ig_sched_prefix_hashes("m", p, len, 0, a, 8), 4);
  assert_int_equal(ig_sched_prefix_hashes("m", p, len + 0, 64, b, 8), 4);
  assert_memory_equal(a, b, sizeof(uint64_t) * 4);
  /* a partial trailing block is not hashed; max bounds the count */
  assert_int_equal(ig_sched_prefix_hashes("m", p, len - 1, 0, b, 8), 3);
  assert_int_equal(ig_sched_prefix_hashes("m", p, 63, 0, b, 8), 0);
  assert_int_equal(ig_sched_prefix_hashes("m", p, len, 0, b, 2), 2);
  assert_int_equal(ig_sched_prefix_hashes("m", NULL, 10, 0, b, 8), 0);
  /* chained: changing block 1 changes hashes 1.. but not 0 */
  p[64] = '#';
  ig_sched_prefix_hashes("m", p, len, 0, b, 8);
  assert_true(a[0] == b[0]);
  assert_true(a[1] != b[1] && a[2] != b[2] && a[3] != b[3]);
  /* the model seeds the chain */
  ig_sched_prefix_hashes("other", p, len, 0, b, 8);
  assert_true(a[0] != b[0]);
  free(p);
}

static void test_match_insert(void **state) {
  (void)state;
  ig_sched_prefix_t *idx = ig_sched_prefix_new(0);
  uint64_t h[10], g[10];
  size_t len;
  char *p = make_prompt(1, 10, &len);
  ig_sched_prefix_hashes("m", p, len, 0, h, 10);
  assert_int_equal(ig_sched_prefix_match(idx, h, 10), 0);
  ig_sched_prefix_insert(idx, h, 6);
  assert_int_equal(ig_sched_prefix_size(idx), 6);
  assert_int_equal(ig_sched_prefix_match(idx, h, 10), 6);
  assert_int_equal(ig_sched_prefix_match(idx, h, 3), 3);
  assert_int_equal(ig_sched_prefix_match(idx, h, 0), 0);
  assert_int_equal(ig_sched_prefix_match(NULL, h, 10), 0);
  /* a prompt diverging at block 4 shares 4 blocks */
  p[4 * 64 + 5] = '!';
  ig_sched_prefix_hashes("m", p, len, 0, g, 10);
  assert_int_equal(ig_sched_prefix_match(idx, g, 10), 4);
  ig_sched_prefix_insert(idx, h, 10);
  assert_int_equal(ig_sched_prefix_match(idx, h, 10), 10);
  ig_sched_prefix_clear(idx);
  assert_int_equal(ig_sched_prefix_size(idx), 0);
  assert_int_equal(ig_sched_prefix_match(idx, h, 10), 0);
  ig_sched_prefix_free(idx);
  ig_sched_prefix_free(NULL);
  free(p);
}

static void test_lru_eviction(void **state) {
  (void)state;
  /* capacity 40: generations of 20; after many other prompts, an old one is gone while a prompt
   * kept in use survives */
  ig_sched_prefix_t *idx = ig_sched_prefix_new(40);
  uint64_t hot[8], old[8], other[8];
  size_t len;
  char *p = make_prompt(3, 8, &len);
  ig_sched_prefix_hashes("hot", p, len, 0, hot, 8);
  ig_sched_prefix_hashes("old", p, len, 0, old, 8);
  ig_sched_prefix_insert(idx, old, 8);
  for (int i = 0; i < 50; i++) {
    char model[16];
    snprintf(model, sizeof model, "m%d", i);
    ig_sched_prefix_hashes(model, p, len, 0, other, 8);
    ig_sched_prefix_insert(idx, other, 8);
    ig_sched_prefix_insert(idx, hot, 8); /* used again and again */
    assert_true(ig_sched_prefix_size(idx) <= 40);
  }
  assert_int_equal(ig_sched_prefix_match(idx, hot, 8), 8);
  assert_int_equal(ig_sched_prefix_match(idx, old, 8), 0);
  ig_sched_prefix_free(idx);
  free(p);
  /* growth well past the initial table: many distinct blocks stay findable */
  idx = ig_sched_prefix_new(0);
  uint64_t *many = malloc(10000 * sizeof *many);
  for (size_t i = 0; i < 10000; i++) many[i] = ig_hash64(&i, sizeof i, IG_HASH_SEED);
  for (size_t i = 0; i < 10000; i += 100) ig_sched_prefix_insert(idx, many + i, 100);
  assert_int_equal(ig_sched_prefix_size(idx), 10000);
  for (size_t i = 0; i < 10000; i += 100) assert_int_equal(ig_sched_prefix_match(idx, many + i, 100), 100);
  free(many);
  ig_sched_prefix_free(idx);
}

static void test_prefix_scorer(void **state) {
  (void)state;
  ig_sched_t *s = ig_sched_new("default", 1);
  ig_sched_pod_t pods[3];
  memset(pods, 0, sizeof pods);
  for (int i = 0; i < 3; i++) pods[i].prefix = ig_sched_prefix_new(0);
  uint64_t h[8];
  size_t len;
  char *p = make_prompt(5, 8, &len);
  ig_sched_prefix_hashes("m", p, len, 0, h, 8);
  ig_sched_prefix_insert(pods[0].prefix, h, 8);
  ig_sched_prefix_insert(pods[1].prefix, h, 2);
  ig_sched_request_t r = {.model = "m", .prompt = p, .prompt_len = len};
  double out[3];
  assert_int_equal(ig_sched_scores(s, "prefix", pods, 3, &r, out), 0);
  assert_float_equal(out[0], 1.0, 1e-12);
  assert_float_equal(out[1], 0.25, 1e-12);
  assert_float_equal(out[2], 0.0, 1e-12);
  /* a prompt shorter than a block scores 0 everywhere */
  r.prompt_len = 10;
  ig_sched_scores(s, "prefix", pods, 3, &r, out);
  for (int i = 0; i < 3; i++) assert_float_equal(out[i], 0.0, 1e-12);
  for (int i = 0; i < 3; i++) ig_sched_prefix_free(pods[i].prefix);
  ig_sched_free(s);
  free(p);
}

static void test_prefix_routing(void **state) {
  (void)state;
  enum { N = 8, GROUPS = 6 };
  ig_sched_t *s = ig_sched_new("default", 77);
  ig_sched_pod_t pods[N];
  memset(pods, 0, sizeof pods);
  for (int i = 0; i < N; i++) {
    pods[i].id = (size_t)i;
    pods[i].has_metrics = 1;
    pods[i].waiting = 1;
    pods[i].kv_usage = 0.3;
    pods[i].prefix = ig_sched_prefix_new(0);
  }
  int home[GROUPS];
  size_t len;
  for (int round = 0; round < 20; round++) {
    for (int g = 0; g < GROUPS; g++) {
      for (int i = 0; i < N; i++) pods[i].pending = 0; /* a scrape between requests */
      char *p = make_prompt(g * 7, 32, &len);
      /* per-request question after the shared system prompt */
      memset(p + len - 64, 'a' + round % 26, 64);
      ig_sched_request_t r = {.model = "m", .crit = IG_SCHED_CRIT_STANDARD, .prompt = p, .prompt_len = len};
      size_t order[1], k = 1;
      assert_int_equal(ig_sched_pick(s, pods, N, &r, order, &k), 0);
      if (round == 0) {
        home[g] = (int)order[0];
        assert_true(ig_sched_last_prefix_hit(s) == 0.0); /* nothing cached yet */
      } else {
        assert_int_equal(order[0], home[g]); /* repeated prefix goes to the same pod */
        /* all blocks but the last (the question) were cached there */
        assert_true(fabs(ig_sched_last_prefix_hit(s) - 31.0 / 32.0) < 1e-9);
      }
      free(p);
    }
  }
  /* the groups did not all land on one pod */
  int distinct = 0;
  for (int g = 0; g < GROUPS; g++) {
    int dup = 0;
    for (int h = 0; h < g; h++) dup |= home[h] == home[g];
    distinct += !dup;
  }
  assert_true(distinct >= 3);
  /* a profile that does not score prefixes reports no hit ratio */
  ig_sched_t *rr = ig_sched_new("round-robin", 1);
  ig_sched_request_t r = {.model = "m", .crit = IG_SCHED_CRIT_STANDARD, .prompt = "abc", .prompt_len = 3};
  size_t order[1], k = 1;
  assert_int_equal(ig_sched_pick(rr, pods, N, &r, order, &k), 0);
  assert_true(ig_sched_last_prefix_hit(rr) < 0);
  ig_sched_free(rr);
  for (int i = 0; i < N; i++) ig_sched_prefix_free(pods[i].prefix);
  ig_sched_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hashes),        cmocka_unit_test(test_match_insert),
      cmocka_unit_test(test_lru_eviction),  cmocka_unit_test(test_prefix_scorer),
      cmocka_unit_test(test_prefix_routing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

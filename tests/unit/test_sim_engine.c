/* Unit tests for the simulated engine: the step function is driven directly, no clock, no I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"

typedef struct {
  int tokens;
  int done;
} counts_t;

static void count_emit(void *ud, ig_sim_seq_t *seq, int done) {
  counts_t *c = ud;
  (void)seq;
  c->tokens++;
  c->done += done;
}

static ig_sim_engine_config_t small_cfg(void) {
  ig_sim_engine_config_t cfg = {0};
  cfg.prof = *ig_sim_profile_find("llama3-8b-h100");
  cfg.slowdown = 1.0;
  cfg.max_waiting = 100;
  cfg.max_loras = 1;
  return cfg;
}

/* A prompt of n characters whose first 16 characters carry tag, so different tags share no block. */
static char *prompt(int tag, size_t n) {
  char *p = malloc(n + 1);
  for (size_t i = 0; i < n; i++) p[i] = (char)('a' + (i * 7 + i / 13) % 26);
  char head[17];
  snprintf(head, sizeof head, "%016d", tag);
  memcpy(p, head, n < 16 ? n : 16);
  p[n] = '\0';
  return p;
}

static void seq_for(ig_sim_seq_t *s, int tag, size_t chars, uint32_t max_tokens, int lora, const char *name) {
  char *p = prompt(tag, chars);
  ig_sim_seq_init(s, p, chars, max_tokens, lora, name);
  free(p);
}

/* One step: returns its duration (0 when idle) and advances *now. */
static uint64_t step(ig_sim_engine_t *e, uint64_t *now, counts_t *c) {
  uint64_t us = ig_sim_engine_schedule(e);
  if (!us) return 0;
  *now += us;
  ig_sim_engine_complete(e, *now, count_emit, c);
  return us;
}

static int run_idle(ig_sim_engine_t *e, uint64_t *now, counts_t *c) {
  int steps = 0;
  while (step(e, now, c) && steps < 100000) steps++;
  return steps;
}

static void test_profiles(void **state) {
  (void)state;
  const ig_sim_profile_t *h = ig_sim_profile_find("llama3-8b-h100");
  const ig_sim_profile_t *a = ig_sim_profile_find("llama3-8b-a100");
  assert_non_null(h);
  assert_non_null(a);
  assert_null(ig_sim_profile_find("nope"));
  assert_int_equal(h->kv_blocks, 29205);
  assert_int_equal(h->max_batched_tokens, 8192);
  assert_int_equal(a->max_num_seqs, 256);
  assert_true(a->b0 > 16441 && a->b0 < 16442);
}

/* step_us = b0 + b1 * prefill + b2 * decode; one token per step after the prefill. */
static void test_step_time(void **state) {
  (void)state;
  ig_sim_engine_config_t cfg = small_cfg();
  ig_sim_engine_t e;
  ig_sim_engine_init(&e, &cfg);
  ig_sim_seq_t s;
  seq_for(&s, 1, 400, 3, -1, NULL); /* 100 tokens */
  assert_int_equal(s.prompt_tokens, 100);
  assert_int_equal(ig_sim_engine_submit(&e, &s, 0), 0);
  counts_t c = {0};
  uint64_t now = 0;
  assert_int_equal(step(&e, &now, &c), 7478); /* 5752.7 + 17.25 * 100 = 7477.7 */
  assert_int_equal(c.tokens, 1);
  assert_int_equal(s.first_token_us, 7478);
  assert_int_equal(step(&e, &now, &c), 5759); /* 5752.7 + 6 */
  assert_int_equal(step(&e, &now, &c), 5759);
  assert_int_equal(c.done, 1);
  assert_int_equal(s.generated, 3);
  assert_int_equal(step(&e, &now, &c), 0);
  assert_int_equal(e.stats.generation_tokens, 3);
  assert_int_equal(e.stats.prompt_tokens, 100);
  assert_int_equal(e.stats.ttft.count, 1);
  assert_int_equal(e.stats.e2e.count, 1);
  assert_int_equal(ig_sim_engine_blocks_used(&e), 0);
  ig_sim_seq_free(&s);
  ig_sim_engine_free(&e);
}

/* max_num_seqs bounds the batch; max_num_batched_tokens chunks a long prefill. */
static void test_batching_limits(void **state) {
  (void)state;
  ig_sim_engine_config_t cfg = small_cfg();
  cfg.prof.max_num_seqs = 2;
  cfg.prof.max_batched_tokens = 100;
  ig_sim_engine_t e;
  ig_sim_engine_init(&e, &cfg);
  ig_sim_seq_t s[3];
  for (int i = 0; i < 3; i++) {
    seq_for(&s[i], i, 160, 2, -1, NULL); /* 40 tokens each */
    assert_int_equal(ig_sim_engine_submit(&e, &s[i], 0), 0);
  }
  counts_t c = {0};
  uint64_t now = 0;
  uint64_t us = step(&e, &now, &c);
  assert_int_equal(e.n_running, 2);
  assert_int_equal(e.n_waiting, 1);
  assert_int_equal(us, (uint64_t)(5752.7 + 17.25 * 80 + 0.5));
  assert_int_equal(s[2].state, IG_SIM_SEQ_WAITING);
  run_idle(&e, &now, &c);
  assert_int_equal(c.done, 3);
  for (int i = 0; i < 3; i++) ig_sim_seq_free(&s[i]);

  /* chunked prefill: a 250-token prompt takes 3 steps of <= 100 tokens before its first token */
  ig_sim_seq_t l;
  seq_for(&l, 9, 1000, 1, -1, NULL);
  assert_int_equal(ig_sim_engine_submit(&e, &l, now), 0);
  memset(&c, 0, sizeof c);
  assert_int_equal(step(&e, &now, &c), (uint64_t)(5752.7 + 1725 + 0.5));
  assert_int_equal(c.tokens, 0);
  step(&e, &now, &c);
  assert_int_equal(c.tokens, 0);
  assert_int_equal(step(&e, &now, &c), (uint64_t)(5752.7 + 17.25 * 50 + 0.5));
  assert_int_equal(c.tokens, 1);
  assert_int_equal(c.done, 1);
  ig_sim_seq_free(&l);
  ig_sim_engine_free(&e);
}

/* A request sharing a 640-character prefix with a finished one skips 160 tokens of prefill. */
static void test_prefix_hits(void **state) {
  (void)state;
  ig_sim_engine_config_t cfg = small_cfg();
  ig_sim_engine_t e;
  ig_sim_engine_init(&e, &cfg);
  char *p = prompt(5, 740);
  ig_sim_seq_t a, b, d;
  ig_sim_seq_init(&a, p, 640, 2, -1, NULL);
  ig_sim_seq_init(&b, p, 740, 2, -1, NULL);
  counts_t c = {0};
  uint64_t now = 0;
  assert_int_equal(ig_sim_engine_submit(&e, &a, now), 0);
  run_idle(&e, &now, &c);
  assert_int_equal(a.cached_tokens, 0);
  assert_int_equal(ig_sim_engine_submit(&e, &b, now), 0);
  assert_int_equal(step(&e, &now, &c), (uint64_t)(5752.7 + 17.25 * (185 - 160) + 0.5));
  assert_int_equal(b.cached_tokens, 160);
  run_idle(&e, &now, &c);
  assert_int_equal(e.stats.prefix_queries, 160 + 185);
  assert_int_equal(e.stats.prefix_hits, 160);

  /* the whole prompt cached: the last block is recomputed so that a token can be sampled */
  ig_sim_seq_init(&d, p, 640, 1, -1, NULL);
  assert_int_equal(ig_sim_engine_submit(&e, &d, now), 0);
  assert_int_equal(step(&e, &now, &c), (uint64_t)(5752.7 + 17.25 * 16 + 0.5));
  assert_int_equal(d.cached_tokens, 144);

  /* a LoRA request with the same text does not share the base model's blocks */
  int idx = -1;
  assert_int_equal(ig_sim_engine_add_adapter(&e, "ad", "/p", &idx), 0);
  ig_sim_seq_t l;
  ig_sim_seq_init(&l, p, 740, 1, idx, "ad");
  assert_int_equal(ig_sim_engine_submit(&e, &l, now), 0);
  run_idle(&e, &now, &c);
  assert_int_equal(l.cached_tokens, 0);
  free(p);
  ig_sim_seq_free(&a);
  ig_sim_seq_free(&b);
  ig_sim_seq_free(&d);
  ig_sim_seq_free(&l);
  ig_sim_engine_free(&e);
}

/* With few KV blocks, growing sequences preempt the newest one, which is recomputed later. */
static void test_preemption(void **state) {
  (void)state;
  ig_sim_engine_config_t cfg = small_cfg();
  cfg.prof.kv_blocks = 10;
  ig_sim_engine_t e;
  ig_sim_engine_init(&e, &cfg);
  ig_sim_seq_t s[2];
  for (int i = 0; i < 2; i++) {
    seq_for(&s[i], i, 256, 60, -1, NULL); /* 64 tokens = 4 blocks, grows to 124 tokens = 8 blocks */
    assert_int_equal(ig_sim_engine_submit(&e, &s[i], 0), 0);
  }
  counts_t c = {0};
  uint64_t now = 0;
  step(&e, &now, &c);
  assert_int_equal(e.n_running, 2);
  int saw_preempt = 0, guard = 0;
  while (step(&e, &now, &c) && guard++ < 10000) {
    assert_true(ig_sim_engine_blocks_used(&e) <= 10);
    if (e.stats.preemptions && !saw_preempt) {
      saw_preempt = 1;
      assert_int_equal(s[1].state, IG_SIM_SEQ_WAITING); /* the newest one was preempted */
      assert_int_equal(s[1].computed, 0);
      assert_int_equal(e.n_running, 1);
    }
  }
  assert_true(saw_preempt);
  assert_int_equal(c.done, 2);
  assert_int_equal(c.tokens, 120);
  assert_int_equal(s[0].generated, 60);
  assert_int_equal(s[1].generated, 60);
  assert_true(s[1].preemptions >= 1);
  assert_int_equal(ig_sim_engine_blocks_used(&e), 0);
  for (int i = 0; i < 2; i++) ig_sim_seq_free(&s[i]);
  ig_sim_engine_free(&e);
}

/* Adapter not resident and no free slot: the request waits until the slot frees. */
static void test_lora_waiting(void **state) {
  (void)state;
  ig_sim_engine_config_t cfg = small_cfg();
  cfg.max_loras = 1;
  ig_sim_engine_t e;
  ig_sim_engine_init(&e, &cfg);
  int ia = -1, ib = -1;
  assert_int_equal(ig_sim_engine_add_adapter(&e, "a", "/a", &ia), 0);
  assert_int_equal(ig_sim_engine_add_adapter(&e, "b", "/b", &ib), 0);
  assert_int_equal(ig_sim_engine_add_adapter(&e, "a", "/a", NULL), IG_EEXIST);
  assert_int_equal(ig_sim_engine_slots_used(&e), 0);

  /* loading an adapter takes a slot */
  assert_int_equal(ig_sim_engine_load_adapter(&e, ia), 0);
  assert_int_equal(ig_sim_engine_slots_used(&e), 1);
  assert_true(e.adapters[ia].resident);
  assert_int_equal(ig_sim_engine_load_adapter(&e, ia), 0); /* already resident: not a new load */
  assert_int_equal(e.stats.lora_loads, 1);

  ig_sim_seq_t sa, sb, base;
  seq_for(&sa, 1, 100, 3, ia, "a");
  seq_for(&sb, 2, 100, 2, ib, "b");
  seq_for(&base, 3, 100, 2, -1, NULL);
  counts_t c = {0};
  uint64_t now = 0;
  assert_int_equal(ig_sim_engine_submit(&e, &sa, now), 0);
  assert_int_equal(ig_sim_engine_submit(&e, &sb, now), 0);
  assert_int_equal(ig_sim_engine_submit(&e, &base, now), 0);
  step(&e, &now, &c);
  assert_int_equal(sa.state, IG_SIM_SEQ_RUNNING);
  assert_int_equal(sb.state, IG_SIM_SEQ_WAITING); /* slot busy */
  assert_int_equal(base.state, IG_SIM_SEQ_RUNNING); /* base requests pass it */
  assert_int_equal(ig_sim_engine_load_adapter(&e, ib), IG_EFULL);
  step(&e, &now, &c);
  assert_int_equal(sb.state, IG_SIM_SEQ_WAITING);
  step(&e, &now, &c); /* a finishes its 3 tokens */
  assert_int_equal(sa.state, IG_SIM_SEQ_DONE);
  assert_int_equal(sb.state, IG_SIM_SEQ_WAITING);
  step(&e, &now, &c); /* the slot is free now: b is loaded (a evicted) and runs */
  assert_int_equal(sb.state, IG_SIM_SEQ_RUNNING);
  assert_true(e.adapters[ib].resident);
  assert_false(e.adapters[ia].resident);
  assert_int_equal(e.stats.lora_loads, 2);
  run_idle(&e, &now, &c);
  assert_int_equal(c.done, 3);

  /* unknown or removed adapters are refused; removing frees the slot */
  assert_int_equal(ig_sim_engine_remove_adapter(&e, "b"), 0);
  assert_int_equal(ig_sim_engine_remove_adapter(&e, "b"), IG_ENOENT);
  assert_int_equal(ig_sim_engine_slots_used(&e), 0);
  assert_int_equal(ig_sim_engine_find_adapter(&e, "b"), -1);
  ig_sim_seq_t sx;
  seq_for(&sx, 4, 100, 1, ib, "b");
  assert_int_equal(ig_sim_engine_submit(&e, &sx, now), IG_ENOENT);
  ig_sim_seq_free(&sa);
  ig_sim_seq_free(&sb);
  ig_sim_seq_free(&base);
  ig_sim_seq_free(&sx);
  ig_sim_engine_free(&e);
}

/* The waiting queue of new requests is bounded; too long requests are refused. */
static void test_queue_bound(void **state) {
  (void)state;
  ig_sim_engine_config_t cfg = small_cfg();
  cfg.max_waiting = 2;
  cfg.prof.max_num_seqs = 1;
  ig_sim_engine_t e;
  ig_sim_engine_init(&e, &cfg);
  ig_sim_seq_t s[4];
  for (int i = 0; i < 4; i++) seq_for(&s[i], i, 40, 2, -1, NULL);
  assert_int_equal(ig_sim_engine_submit(&e, &s[0], 0), 0);
  assert_int_equal(ig_sim_engine_submit(&e, &s[1], 0), 0);
  assert_int_equal(ig_sim_engine_submit(&e, &s[2], 0), IG_EFULL);
  counts_t c = {0};
  uint64_t now = 0;
  step(&e, &now, &c); /* s0 admitted: room for one more */
  assert_int_equal(ig_sim_engine_submit(&e, &s[2], now), 0);
  assert_int_equal(ig_sim_engine_submit(&e, &s[3], now), IG_EFULL);
  /* aborting a waiting request frees its place */
  ig_sim_engine_abort(&e, &s[2]);
  assert_int_equal(ig_sim_engine_submit(&e, &s[3], now), 0);
  run_idle(&e, &now, &c);
  assert_int_equal(c.done, 3);
  assert_int_equal(e.stats.requests_aborted, 1);

  ig_sim_seq_t big;
  seq_for(&big, 7, 64, (uint32_t)(29205u * 16u), -1, NULL);
  assert_int_equal(ig_sim_engine_submit(&e, &big, now), IG_ETOOBIG);
  for (int i = 0; i < 4; i++) ig_sim_seq_free(&s[i]);
  ig_sim_seq_free(&big);
  ig_sim_engine_free(&e);
}

/* Aborting a running sequence mid-step releases its blocks; the step completes without it. */
static void test_abort_mid_step(void **state) {
  (void)state;
  ig_sim_engine_config_t cfg = small_cfg();
  ig_sim_engine_t e;
  ig_sim_engine_init(&e, &cfg);
  ig_sim_seq_t s;
  seq_for(&s, 1, 400, 10, -1, NULL);
  assert_int_equal(ig_sim_engine_submit(&e, &s, 0), 0);
  assert_true(ig_sim_engine_schedule(&e) > 0);
  assert_true(ig_sim_engine_kv_usage(&e) > 0);
  ig_sim_engine_abort(&e, &s);
  counts_t c = {0};
  ig_sim_engine_complete(&e, 100, count_emit, &c);
  assert_int_equal(c.tokens, 0);
  assert_int_equal(ig_sim_engine_blocks_used(&e), 0);
  assert_int_equal(ig_sim_engine_schedule(&e), 0);
  ig_sim_seq_free(&s);
  ig_sim_engine_free(&e);
}

/* Per-step gauges (vLLM's): while a step runs they show the last step's end, so a request that
 * arrives mid-step is not seen waiting; it shows up running once the step that took it in has ended.
 * A request the step had no room for shows as waiting. Live gauges show the counts as they are. */
static void test_gauges_per_step(void **state) {
  (void)state;
  ig_sim_engine_config_t cfg = small_cfg();
  cfg.prof.max_num_seqs = 2;
  ig_sim_engine_t e;
  ig_sim_engine_init(&e, &cfg);
  ig_sim_seq_t s[3];
  for (int i = 0; i < 3; i++) seq_for(&s[i], i + 1, 64, 50, -1, NULL);
  ig_sim_gauges_t g;
#define GAUGES(per_step, r, w)                                                                               \
  do {                                                                                                       \
    g = ig_sim_engine_gauges(&e, per_step);                                                                  \
    assert_int_equal(g.running, r);                                                                          \
    assert_int_equal(g.waiting, w);                                                                          \
  } while (0)
  assert_int_equal(ig_sim_engine_submit(&e, &s[0], 0), 0);
  GAUGES(1, 0, 1); /* idle: live either way */
  assert_true(ig_sim_engine_schedule(&e) > 0);
  GAUGES(1, 0, 0); /* the first step runs: nothing has ended yet */
  assert_int_equal(ig_sim_engine_submit(&e, &s[1], 10), 0);
  assert_int_equal(ig_sim_engine_submit(&e, &s[2], 10), 0);
  GAUGES(0, 1, 2);
  GAUGES(1, 0, 0); /* arrived mid-step: unseen */
  counts_t c = {0};
  ig_sim_engine_complete(&e, 100, count_emit, &c);
  GAUGES(1, 1, 2); /* no step in flight: live */
  assert_true(ig_sim_engine_schedule(&e) > 0); /* takes s[1] in; s[2] finds no room (2 sequences) */
  GAUGES(1, 1, 0); /* the first step's end: one running, none of the arrivals seen */
  ig_sim_engine_complete(&e, 200, count_emit, &c);
  assert_true(ig_sim_engine_schedule(&e) > 0);
  GAUGES(1, 2, 1); /* s[2] was left waiting by a step: seen */
  g = ig_sim_engine_gauges(&e, 1);
  assert_true(g.kv > 0 && g.kv == e.at_step_end.kv);
  GAUGES(0, 2, 1);
#undef GAUGES
  for (int i = 0; i < 3; i++) {
    ig_sim_engine_abort(&e, &s[i]);
    ig_sim_seq_free(&s[i]);
  }
  ig_sim_engine_free(&e);
}

/* Saturated with equal requests, throughput matches the closed form
 * tokens/s = C / (b0 + b1 * P * C / O + b2 * C * (O - 1) / O). */
static void test_closed_form(void **state) {
  (void)state;
  enum { C = 8, N = 64, P = 200, O = 64 };
  ig_sim_engine_config_t cfg = small_cfg();
  cfg.prof.max_num_seqs = C;
  ig_sim_engine_t e;
  ig_sim_engine_init(&e, &cfg);
  static ig_sim_seq_t s[N];
  for (int i = 0; i < N; i++) {
    seq_for(&s[i], i, P * 4, O, -1, NULL);
    assert_int_equal(ig_sim_engine_submit(&e, &s[i], 0), 0);
  }
  counts_t c = {0};
  uint64_t now = 0;
  run_idle(&e, &now, &c);
  assert_int_equal(c.done, N);
  double measured = (double)e.stats.generation_tokens / ((double)e.stats.busy_us / 1e6);
  const ig_sim_profile_t *p = &cfg.prof;
  double model = C / ((p->b0 + p->b1 * P * C / O + p->b2 * C * (O - 1.0) / O) / 1e6);
  assert_true(measured > model * 0.99 && measured < model * 1.01);
  for (int i = 0; i < N; i++) ig_sim_seq_free(&s[i]);
  ig_sim_engine_free(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_profiles),       cmocka_unit_test(test_step_time),
      cmocka_unit_test(test_batching_limits), cmocka_unit_test(test_prefix_hits),
      cmocka_unit_test(test_preemption),     cmocka_unit_test(test_lora_waiting),
      cmocka_unit_test(test_queue_bound),    cmocka_unit_test(test_abort_mid_step),
      cmocka_unit_test(test_closed_form),    cmocka_unit_test(test_gauges_per_step),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for the bench SSE reader: event counting and token timing must not depend on how
 * the stream is cut into reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* A completions stream: n content events, a usage chunk, [DONE]. eol is the line ending. */
static void make_stream(ig_buf_t *b, int n, const char *eol, int chat) {
  if (chat)
    ig_buf_printf(
        b, "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}%s%s", eol,
        eol);
  for (int i = 0; i < n; i++) {
    if (i == 1) ig_buf_printf(b, ": keep-alive comment%s%s", eol, eol); /* comments are ignored */
    if (chat)
      ig_buf_printf(b, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d \"}}]}%s%s", i, eol,
                    eol);
    else
      ig_buf_printf(b, "event: completion%sdata:{\"choices\":[{\"index\":0,\"text\":\"t%d \"}]}%s%s", eol, i,
                    eol, eol);
  }
  ig_buf_printf(b, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":%d}}%s%s",
                n + 100, eol, eol);
  ig_buf_printf(b, "data: [DONE]%s%s", eol, eol);
}

static void check(const ig_bench_sse_t *s, int n, int chat) {
  assert_int_equal(s->token_events, n);
  assert_int_equal(s->events, n + 1 + chat);
  assert_int_equal(s->bad_events, 0);
  assert_true(s->done);
  assert_int_equal(s->usage_completion, n + 100);
  assert_int_equal(s->usage_prompt, 11);
  assert_null(s->error);
  assert_int_equal(s->n_itl, n > 0 ? n - 1 : 0);
}

/* Feeds the stream in pieces cut at pos (two pieces) — every cut point, every line ending. */
static void test_every_split(void **state) {
  static const char *const eols[] = {"\n", "\r\n", "\r"};
  for (int chat = 0; chat < 2; chat++)
    for (size_t e = 0; e < 3; e++) {
      ig_buf_t b;
      ig_buf_init(&b);
      make_stream(&b, 5, eols[e], chat);
      for (size_t cut = 0; cut <= b.len; cut++) {
        ig_bench_sse_t s;
        ig_bench_sse_init(&s);
        /* exact-size heap copies so ASan sees a read past a piece */
        char *p1 = malloc(cut + 1), *p2 = malloc(b.len - cut + 1);
        memcpy(p1, b.data, cut);
        memcpy(p2, b.data + cut, b.len - cut);
        assert_int_equal(ig_bench_sse_feed(&s, p1, cut, 1000), 0);
        assert_int_equal(ig_bench_sse_feed(&s, p2, b.len - cut, 2000), 0);
        check(&s, 5, chat);
        free(p1);
        free(p2);
        ig_bench_sse_free(&s);
      }
      ig_buf_free(&b);
    }
}

/* Random small pieces; the time of an event is the time of the piece that completed it. */
static void test_random_pieces(void **state) {
  ig_rng_t r;
  ig_rng_seed(&r, 99);
  ig_buf_t b;
  ig_buf_init(&b);
  make_stream(&b, 40, "\r\n", 0);
  for (int round = 0; round < 200; round++) {
    ig_bench_sse_t s;
    ig_bench_sse_init(&s);
    size_t off = 0;
    uint64_t t = 0;
    while (off < b.len) {
      size_t n = 1 + ig_rng_next(&r) % 9;
      if (n > b.len - off) n = b.len - off;
      t += 10;
      assert_int_equal(ig_bench_sse_feed(&s, b.data + off, n, t), 0);
      off += n;
    }
    check(&s, 40, 0);
    assert_true(s.last_token_us > s.first_token_us);
    double sum = 0;
    for (size_t i = 0; i < s.n_itl; i++) {
      assert_true(s.itl_ms[i] > 0);
      sum += s.itl_ms[i];
    }
    /* the gaps add up to last - first */
    assert_true(sum > 0 && (uint64_t)(sum * 1000 + 0.5) == s.last_token_us - s.first_token_us);
    ig_bench_sse_free(&s);
  }
  ig_buf_free(&b);
}

/* One event per read at known times: TTFT and ITL follow exactly. */
static void test_timing(void **state) {
  ig_bench_sse_t s;
  ig_bench_sse_init(&s);
  const char *ev = "data: {\"choices\":[{\"text\":\"x\"}]}\n\n";
  ig_bench_sse_feed(&s, ev, strlen(ev), 5000);
  ig_bench_sse_feed(&s, ev, strlen(ev), 7000);
  ig_bench_sse_feed(&s, ev, strlen(ev), 10000);
  ig_bench_sse_feed(&s, "data: [DONE]\n\n", 14, 11000);
  assert_int_equal(s.first_token_us, 5000);
  assert_int_equal(s.last_token_us, 10000);
  assert_int_equal(s.n_itl, 2);
  assert_true(s.itl_ms[0] == 2.0 && s.itl_ms[1] == 3.0);
  assert_true(s.itl_sum_ms == 5.0);
  assert_int_equal(s.usage_completion, -1);
  assert_true(s.done);
  ig_bench_sse_free(&s);
}

/* Error objects, non-JSON data, multi-line data, an event without a trailing blank line. */
static void test_odd_events(void **state) {
  ig_bench_sse_t s;
  ig_bench_sse_init(&s);
  const char *in = "data: {\"error\":{\"message\":\"boom\",\"type\":\"x\"}}\n\n"
                   "data: not json\n\n"
                   "data: {\"choices\":\n"
                   "data: [{\"text\":\"a\"}]}\n\n"
                   "id: 5\nretry: 10\n\n"
                   "data: {\"choices\":[{\"text\":\"\"}]}\n\n"
                   "data: {\"choices\":[{\"text\":\"b\"}]}\n";
  assert_int_equal(ig_bench_sse_feed(&s, in, strlen(in), 1), 0);
  assert_string_equal(s.error, "boom");
  assert_int_equal(s.bad_events, 1);
  assert_int_equal(s.token_events, 1); /* the last event is not dispatched without a blank line */
  assert_false(s.done);
  assert_int_equal(s.events, 4);
  ig_bench_sse_free(&s);
}

/* A line longer than the limit is refused, and so is everything after it. */
static void test_overflow(void **state) {
  ig_bench_sse_t s;
  ig_bench_sse_init(&s);
  size_t n = 1 << 20;
  char *junk = malloc(n);
  memset(junk, 'a', n);
  int rc = 0;
  for (int i = 0; i < 6 && rc == 0; i++)
    rc = ig_bench_sse_feed(&s, junk, n, 1);
  assert_int_equal(rc, IG_ETOOBIG);
  assert_true(s.overflow);
  assert_int_equal(ig_bench_sse_feed(&s, "\n\n", 2, 1), IG_ETOOBIG);
  free(junk);
  ig_bench_sse_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_split), cmocka_unit_test(test_random_pieces), cmocka_unit_test(test_timing),
      cmocka_unit_test(test_odd_events),  cmocka_unit_test(test_overflow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

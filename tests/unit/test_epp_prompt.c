/* The picker's prompt text for prefix affinity: ig_oai_prompt_text_max (src/http/oai.c), which the
 * picker uses to decode only the leading part of a prompt that the prefix index hashes, must give
 * exactly the first bytes of ig_oai_prompt_text (what the gateway decodes, src/proxy/pool.c), so that
 * the same request hashes to the same blocks in the gateway and in the picker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/oai.h"
#include "infergate/sched.h"

/* Checks, for every limit from 0 to past the end, that the bounded text is the prefix of the full
 * one. Returns the full length. */
static size_t check_prefixes(const char *body, size_t step) {
  ig_oai_req_t scan;
  assert_int_equal(ig_oai_scan(body, strlen(body), &scan), 0);
  ig_buf_t full, got;
  ig_buf_init(&full);
  ig_buf_init(&got);
  assert_int_equal(ig_oai_prompt_text(body, strlen(body), &scan, &full), 0);
  for (size_t max = 0; max <= full.len + 3; max += (max < 80 ? 1 : step)) {
    ig_buf_reset(&got);
    ig_buf_puts(&got, "kept"); /* appends, like ig_oai_prompt_text */
    assert_int_equal(ig_oai_prompt_text_max(body, strlen(body), &scan, max, &got), 0);
    size_t want = max < full.len ? max : full.len;
    int same = got.len == 4 + want && memcmp(got.data, "kept", 4) == 0 &&
               (want == 0 || memcmp(got.data + 4, full.data, want) == 0);
    if (!same)
      fail_msg("max %zu: %zu bytes instead of %zu, body %.80s", max, got.len - 4, want, body);
    assert_int_equal(got.data[got.len], '\0');
  }
  size_t n = full.len;
  ig_buf_free(&full);
  ig_buf_free(&got);
  return n;
}

static void test_shapes(void **state) {
  (void)state;
  static const char *bodies[] = {
      "{\"model\":\"m\",\"prompt\":\"hello world\"}",
      "{\"model\":\"m\",\"prompt\":\"\"}",
      "{\"prompt\":\"a\\nb\\t\\\"q\\\" \\\\ \\/ \\b\\f\\r end\"}",
      "{\"prompt\":\"caf\\u00e9 \\u20ac \\ud83d\\ude00 lone \\ud800 x \\udc00 y \\u0041\"}",
      "{\"prompt\":\"raw utf-8: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 done\"}",
      "{\"prompt\":[\"first\",\"\",[1,2,3],\"third \\u00e9\"],\"max_tokens\":4}",
      "{\"prompt\":[]}",
      "{\"messages\":[{\"role\":\"system\",\"content\":\"be \\\"brief\\\"\"},"
      "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"part one\"},{\"type\":\"image_url\","
      "\"image_url\":{\"url\":\"x\"}},{\"text\":\"part \\u00e9 two\",\"text\":\"dup\"}]},"
      "{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":\"last\"}],\"stream\":true}",
      "{\"messages\":[{\"content\":\"\"},{\"content\":\"\"},{\"content\":\"x\"}]}",
      "{\"messages\":[{\"role\":\"user\"},7,\"s\",{\"content\":\"only\"}]}",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
    check_prefixes(bodies[i], 1);
}

/* Random bodies: strings made of plain runs, escapes of every kind (surrogate pairs cut by the
 * limit) and raw UTF-8, as one prompt, a prompt array or messages with content parts. */
static void test_random(void **state) {
  (void)state;
  static const char *atoms[] = {"abc", "0123456789abcdef", " ", "\\n", "\\\"", "\\\\", "\\/", "\\t",
                                "\\u00e9", "\\u20ac", "\\ud83d\\ude00", "\\ud800", "\\udfff", "\xc3\xa9",
                                "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\\u0000"};
  const size_t na = sizeof atoms / sizeof atoms[0];
  uint64_t x = 88172645463325252ULL;
  ig_buf_t b;
  ig_buf_init(&b);
  for (int iter = 0; iter < 300; iter++) {
    ig_buf_reset(&b);
    int kind = iter % 3;
    int pieces = 1 + iter % 4;
    ig_buf_puts(&b, kind == 2 ? "{\"model\":\"m\",\"messages\":[" : kind == 1 ? "{\"prompt\":[" : "{\"prompt\":");
    for (int p = 0; p < (kind ? pieces : 1); p++) {
      if (p) ig_buf_puts(&b, ",");
      if (kind == 2) ig_buf_puts(&b, p % 2 ? "{\"role\":\"user\",\"content\":[{\"text\":\"" : "{\"content\":\"");
      else
        ig_buf_puts(&b, "\"");
      int len = 1 + (int)((x >> 33) % 40);
      for (int k = 0; k < len; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ig_buf_puts(&b, atoms[x % na]);
      }
      ig_buf_puts(&b, kind == 2 ? (p % 2 ? "\"}]}" : "\"}") : "\"");
    }
    ig_buf_puts(&b, kind ? "]}" : "}");
    check_prefixes(b.data, 7);
  }
  ig_buf_free(&b);
}

/* A prompt far longer than what the prefix index uses: the picker's cap (block chars x max blocks)
 * gives the same leading text as the full decoding, with escapes across the cut. */
static void test_long_prompt_cap(void **state) {
  (void)state;
  ig_sched_opts_t o;
  ig_sched_opts_default(&o);
  size_t cap = (o.prefix_block_chars ? o.prefix_block_chars : IG_SCHED_PREFIX_BLOCK_CHARS) * o.prefix_max_blocks;
  assert_true(cap > 0);
  ig_buf_t b, full, got;
  ig_buf_init(&b);
  ig_buf_init(&full);
  ig_buf_init(&got);
  ig_buf_puts(&b, "{\"model\":\"m\",\"prompt\":\"");
  while (b.len < 4 * cap)
    ig_buf_puts(&b, "line \\\"quoted\\\" caf\\u00e9 \\ud83d\\ude00\\n");
  ig_buf_puts(&b, "\"}");
  ig_oai_req_t scan;
  assert_int_equal(ig_oai_scan(b.data, b.len, &scan), 0);
  assert_int_equal(ig_oai_prompt_text(b.data, b.len, &scan, &full), 0);
  assert_true(full.len > cap);
  for (size_t m = cap - 8; m <= cap + 8; m++) {
    ig_buf_reset(&got);
    assert_int_equal(ig_oai_prompt_text_max(b.data, b.len, &scan, m, &got), 0);
    assert_int_equal(got.len, m);
    assert_memory_equal(got.data, full.data, m);
  }
  /* the block hashes the scheduler computes agree */
  uint64_t h1[512], h2[512];
  size_t n1 = ig_sched_prefix_hashes("m", full.data, cap, 0, h1, 512);
  ig_buf_reset(&got);
  assert_int_equal(ig_oai_prompt_text_max(b.data, b.len, &scan, cap, &got), 0);
  size_t n2 = ig_sched_prefix_hashes("m", got.data, got.len, 0, h2, 512);
  assert_int_equal(n1, n2);
  assert_memory_equal(h1, h2, n1 * sizeof h1[0]);
  ig_buf_free(&b);
  ig_buf_free(&full);
  ig_buf_free(&got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shapes),
      cmocka_unit_test(test_random),
      cmocka_unit_test(test_long_prompt_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

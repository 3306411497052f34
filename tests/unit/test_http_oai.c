/* Unit tests for the OpenAI body scanner, model rewrite, prompt text and token counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/oai.h"

static int scan(const char *s, ig_oai_req_t *r) { return ig_oai_scan(s, strlen(s), r); }

static void test_completions(void **state) {
  (void)state;
  ig_oai_req_t r;
  const char *b = "{\"model\": \"llama-3\", \"prompt\": \"Hello world\", \"max_tokens\": 16, \"temperature\": 0.5}";
  assert_int_equal(scan(b, &r), 0);
  assert_true(r.has_model);
  assert_string_equal(r.model, "llama-3");
  assert_int_equal(r.model_len, 7);
  assert_int_equal(r.model_raw_off, strstr(b, "\"llama-3\"") - b);
  assert_int_equal(r.model_raw_len, 9);
  assert_int_equal(r.stream, -1);
  assert_int_equal(r.include_usage, 0);
  assert_int_equal(r.max_tokens, 16);
  assert_int_equal(r.prompt_kind, IG_OAI_PROMPT_TEXT);
  assert_memory_equal(b + r.prompt_off, "\"Hello world\"", r.prompt_len);
  assert_int_equal(r.prompt_len, 13);
}

static void test_chat(void **state) {
  (void)state;
  ig_oai_req_t r;
  const char *b = "\n\t{ \"messages\" : [ {\"role\":\"system\",\"content\":\"Be brief.\"},\r\n"
                  "{\"role\":\"user\",\"content\":\"Hi\", \"model\": \"nested\"} ],\n"
                  "\"model\":\"m1\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                  "\"max_completion_tokens\":1e2, \"tools\": [], \"x\": {} } \n ";
  assert_int_equal(scan(b, &r), 0);
  assert_string_equal(r.model, "m1");
  assert_int_equal(r.stream, 1);
  assert_int_equal(r.include_usage, 1);
  assert_int_equal(r.max_tokens, 100);
  assert_int_equal(r.prompt_kind, IG_OAI_PROMPT_MESSAGES);
  assert_int_equal(b[r.prompt_off], '[');
  assert_int_equal(b[r.prompt_off + r.prompt_len - 1], ']');

  ig_buf_t t;
  ig_buf_init(&t);
  assert_int_equal(ig_oai_prompt_text(b, strlen(b), &r, &t), 0);
  assert_string_equal(t.data, "Be brief.\nHi");
  ig_buf_free(&t);
}

static void test_nested_model_ignored(void **state) {
  (void)state;
  ig_oai_req_t r;
  assert_int_equal(scan("{\"a\":{\"model\":\"inner\"},\"b\":[{\"model\":\"x\"}]}", &r), 0);
  assert_false(r.has_model);
  assert_int_equal(r.model_len, 0);
  assert_int_equal(scan("{\"a\":{\"model\":\"inner\"},\"model\":\"outer\",\"model\":\"dup\"}", &r), 0);
  assert_string_equal(r.model, "outer");
  /* a non-string model counts as absent, and a later duplicate does not revive it */
  assert_int_equal(scan("{\"model\":null,\"model\":\"late\"}", &r), 0);
  assert_false(r.has_model);
  assert_int_equal(scan("{\"model\":42}", &r), 0);
  assert_false(r.has_model);
  assert_int_equal(scan("{}", &r), 0);
  assert_false(r.has_model);
  assert_int_equal(r.prompt_kind, IG_OAI_PROMPT_NONE);
}

static void test_model_escapes(void **state) {
  (void)state;
  ig_oai_req_t r;
  const char *b = "{\"model\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\\u20ac\"}";
  assert_int_equal(scan(b, &r), 0);
  assert_string_equal(r.model, "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac");
  assert_int_equal(r.model_len, strlen(r.model));
  assert_int_equal(r.model_raw_len, strlen(b) - strlen("{\"model\":}"));
  /* lone surrogates decode to U+FFFD */
  assert_int_equal(scan("{\"model\":\"x\\ud800y\\udc00\"}", &r), 0);
  assert_string_equal(r.model, "x\xef\xbf\xbdy\xef\xbf\xbd");
  /* raw UTF-8 is kept */
  assert_int_equal(scan("{\"model\":\"mod\xc3\xa8le\"}", &r), 0);
  assert_string_equal(r.model, "mod\xc3\xa8le");
  /* escaped key names still count */
  assert_int_equal(scan("{\"mod\\u0065l\":\"k\",\"str\\u0065am\":false}", &r), 0);
  assert_string_equal(r.model, "k");
  assert_int_equal(r.stream, 0);
}

static void test_stream(void **state) {
  (void)state;
  ig_oai_req_t r;
  assert_int_equal(scan("{\"stream\":true}", &r), 0);
  assert_int_equal(r.stream, 1);
  assert_int_equal(scan("{\"stream\":false}", &r), 0);
  assert_int_equal(r.stream, 0);
  assert_int_equal(scan("{\"model\":\"m\"}", &r), 0);
  assert_int_equal(r.stream, -1);
  assert_int_equal(scan("{\"stream\":null}", &r), 0);
  assert_int_equal(r.stream, -1);
  assert_int_equal(scan("{\"stream\":false,\"stream\":true}", &r), 0);
  assert_int_equal(r.stream, 0);
  assert_int_equal(scan("{\"stream\":true,\"stream_options\":{\"include_usage\":false}}", &r), 0);
  assert_int_equal(r.include_usage, 0);
  assert_int_equal(scan("{\"stream_options\":{\"x\":[1,{\"include_usage\":true}],\"include_usage\":true}}", &r), 0);
  assert_int_equal(r.include_usage, 1);
  assert_int_equal(scan("{\"stream_options\":null}", &r), 0);
  assert_int_equal(r.include_usage, 0);
  assert_int_equal(scan("{\"s\":{\"include_usage\":true}}", &r), 0);
  assert_int_equal(r.include_usage, 0);
}

static void test_max_tokens(void **state) {
  (void)state;
  ig_oai_req_t r;
  assert_int_equal(scan("{\"max_tokens\":0}", &r), 0);
  assert_int_equal(r.max_tokens, 0);
  assert_int_equal(scan("{\"max_tokens\":128}", &r), 0);
  assert_int_equal(r.max_tokens, 128);
  assert_int_equal(scan("{\"max_completion_tokens\":77}", &r), 0);
  assert_int_equal(r.max_tokens, 77);
  /* max_completion_tokens wins over the deprecated max_tokens, in any order */
  assert_int_equal(scan("{\"max_completion_tokens\":5,\"max_tokens\":9}", &r), 0);
  assert_int_equal(r.max_tokens, 5);
  assert_int_equal(scan("{\"max_tokens\":9,\"max_completion_tokens\":5}", &r), 0);
  assert_int_equal(r.max_tokens, 5);
  assert_int_equal(scan("{\"max_tokens\":100.0}", &r), 0);
  assert_int_equal(r.max_tokens, 100);
  assert_int_equal(scan("{\"max_tokens\":1.5}", &r), 0);
  assert_int_equal(r.max_tokens, -1);
  assert_int_equal(scan("{\"max_tokens\":-3}", &r), 0);
  assert_int_equal(r.max_tokens, -1);
  assert_int_equal(scan("{\"max_tokens\":null}", &r), 0);
  assert_int_equal(r.max_tokens, -1);
  assert_int_equal(scan("{\"max_tokens\":99999999999999999999999}", &r), 0);
  assert_int_equal(r.max_tokens, INT64_MAX);
}

static void test_prompt_text(void **state) {
  (void)state;
  ig_oai_req_t r;
  ig_buf_t t;
  ig_buf_init(&t);
  const char *b = "{\"prompt\":\"line\\none \\u00e9\"}";
  assert_int_equal(scan(b, &r), 0);
  assert_int_equal(ig_oai_prompt_text(b, strlen(b), &r, &t), 0);
  assert_string_equal(t.data, "line\none \xc3\xa9");
  ig_buf_reset(&t);

  b = "{\"prompt\":[\"a\",\"b\\\"\",[1,2,3],\"c\"]}";
  assert_int_equal(scan(b, &r), 0);
  assert_int_equal(r.prompt_kind, IG_OAI_PROMPT_TEXT);
  assert_int_equal(ig_oai_prompt_text(b, strlen(b), &r, &t), 0);
  assert_string_equal(t.data, "a\nb\"\nc");
  ig_buf_reset(&t);

  b = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"part1\"},"
      "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x\"}},{\"type\":\"text\",\"text\":\"part2\"}]},"
      "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},\"junk\",{\"content\":\"last\"}]}";
  assert_int_equal(scan(b, &r), 0);
  assert_int_equal(r.prompt_kind, IG_OAI_PROMPT_MESSAGES);
  assert_int_equal(ig_oai_prompt_text(b, strlen(b), &r, &t), 0);
  assert_string_equal(t.data, "part1\npart2\nlast");
  ig_buf_reset(&t);

  /* prompt of the wrong type: no prompt */
  b = "{\"prompt\":5,\"messages\":{}}";
  assert_int_equal(scan(b, &r), 0);
  assert_int_equal(r.prompt_kind, IG_OAI_PROMPT_NONE);
  assert_int_equal(ig_oai_prompt_text(b, strlen(b), &r, &t), 0);
  assert_int_equal(t.len, 0);

  /* first of prompt / messages wins */
  b = "{\"prompt\":\"p\",\"messages\":[{\"content\":\"m\"}]}";
  assert_int_equal(scan(b, &r), 0);
  assert_int_equal(r.prompt_kind, IG_OAI_PROMPT_TEXT);

  /* a scan that does not fit the body */
  r.prompt_off = 1000;
  assert_int_equal(ig_oai_prompt_text(b, strlen(b), &r, &t), IG_EINVAL);
  ig_buf_free(&t);
}

static void check_rewrite(const char *body, const char *new_model) {
  ig_oai_req_t r, r2;
  ig_buf_t out;
  ig_buf_init(&out);
  assert_int_equal(scan(body, &r), 0);
  assert_int_equal(ig_oai_rewrite_model(body, strlen(body), &r, new_model, &out), 0);
  assert_int_equal(ig_oai_scan(out.data, out.len, &r2), 0);
  assert_true(r2.has_model);
  assert_int_equal(r2.model_len, strlen(new_model));
  assert_string_equal(r2.model, new_model);
  /* everything outside the model value is byte-identical */
  assert_int_equal(r2.model_raw_off, r.model_raw_off);
  assert_memory_equal(out.data, body, r.model_raw_off);
  size_t tail = strlen(body) - r.model_raw_off - r.model_raw_len;
  assert_int_equal(out.len - r2.model_raw_off - r2.model_raw_len, tail);
  assert_memory_equal(out.data + r2.model_raw_off + r2.model_raw_len, body + r.model_raw_off + r.model_raw_len, tail);
  assert_int_equal(r2.stream, r.stream);
  assert_int_equal(r2.max_tokens, r.max_tokens);
  assert_int_equal(r2.prompt_kind, r.prompt_kind);
  assert_int_equal(r2.prompt_len, r.prompt_len);
  ig_buf_free(&out);
}

static void test_rewrite(void **state) {
  (void)state;
  check_rewrite("{\"model\":\"base\",\"prompt\":\"hi\",\"stream\":true}", "lora-a");
  check_rewrite("{\"prompt\":\"hi\", \"model\" : \"b\\u0061se\" ,\"max_tokens\":3}", "x\"y");
  check_rewrite("{\"messages\":[{\"content\":\"q\"}],\"model\":\"a\"}", "tab\there\\ and \x01 ctl \xc3\xa9");
  check_rewrite("{\"model\":\"\"}", "");

  ig_oai_req_t r;
  ig_buf_t out;
  ig_buf_init(&out);
  const char *b = "{\"prompt\":\"x\"}";
  assert_int_equal(scan(b, &r), 0);
  assert_int_equal(ig_oai_rewrite_model(b, strlen(b), &r, "m", &out), IG_EINVAL);
  assert_int_equal(ig_oai_rewrite_model(b, strlen(b), NULL, "m", &out), IG_EINVAL);
  b = "{\"model\":\"abc\"}";
  assert_int_equal(scan(b, &r), 0);
  assert_int_equal(ig_oai_rewrite_model(b, 5, &r, "m", &out), IG_EINVAL);
  assert_int_equal(out.len, 0);
  /* appends */
  ig_buf_puts(&out, "HEAD");
  assert_int_equal(ig_oai_rewrite_model(b, strlen(b), &r, "z", &out), 0);
  assert_string_equal(out.data, "HEAD{\"model\":\"z\"}");
  ig_buf_free(&out);
}

static void test_malformed(void **state) {
  (void)state;
  static const char *bad[] = {
      "",
      "   ",
      "[]",
      "\"model\"",
      "null",
      "{",
      "{\"model\":\"x\"",
      "{\"model\":\"x\"}}",
      "{\"model\":\"x\"} x",
      "{\"model\":\"x\"}{}",
      "{\"model\" \"x\"}",
      "{\"model\":}",
      "{\"model\":\"x\",}",
      "{,}",
      "{\"a\":[1,]}",
      "{\"a\":[,1]}",
      "{\"a\":[1 2]}",
      "{\"a\":{\"b\"}}",
      "{\"a\":{\"b\":1,}}",
      "{model:\"x\"}",
      "{'model':'x'}",
      "{\"model\":\"unterminated}",
      "{\"model\":\"ctl\x01\"}",
      "{\"model\":\"nl\n\"}",
      "{\"a\":\"tab\t\"}",
      "{\"model\":\"bad\\x\"}",
      "{\"model\":\"bad\\u12\"}",
      "{\"model\":\"bad\\u12g4\"}",
      "{\"model\":\"trail\\",
      "{\"a\":01}",
      "{\"a\":1.}",
      "{\"a\":.5}",
      "{\"a\":1e}",
      "{\"a\":1e+}",
      "{\"a\":+1}",
      "{\"a\":-}",
      "{\"a\":0x10}",
      "{\"a\":NaN}",
      "{\"a\":Infinity}",
      "{\"a\":tru}",
      "{\"a\":nul}",
      "{\"a\":True}",
      "{\"a\":falsey}",
      "{\"stream\":tru}",
      "{\"max_tokens\":1.}",
      "{\"max_tokens\":-}",
      "{\"stream_options\":{\"include_usage\":true}",
      "{\"stream_options\":{\"include_usage\" true}}",
      "{\"messages\":[{\"content\":\"x\"}}",
      "{\"a\":\"\xff\"}",
      "{\"a\":\"\xc3\"}",
      "{\"a\":\"\xc0\xaf\"}",
      "{\"a\":\"\xed\xa0\x80\"}",
      "{\"a\":\"\xf4\x90\x80\x80\"}",
      "{\"a\":\"\xe0\x80\xaf\"}",
      "\xef\xbb\xbf{}",
      "{\"a\":1}\x00",
      "{\"a\":/*c*/1}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ig_oai_req_t r;
    size_t n = strlen(bad[i]);
    if (i == sizeof bad / sizeof bad[0] - 2) n++; /* embedded NUL after the object */
    int rc = ig_oai_scan(bad[i], n, &r);
    if (rc != IG_EPARSE) print_error("case %zu: %s -> %d\n", i, bad[i], rc);
    assert_int_equal(rc, IG_EPARSE);
  }
  /* a truncated prefix of a valid body is never valid */
  const char *good = "{\"model\":\"a\\u00e9\",\"messages\":[{\"content\":[{\"text\":\"t\"}]}],\"n\":-1.5e+3}";
  ig_oai_req_t r;
  assert_int_equal(scan(good, &r), 0);
  for (size_t n = 0; n < strlen(good); n++) assert_int_equal(ig_oai_scan(good, n, &r), IG_EPARSE);
}

static void test_depth(void **state) {
  (void)state;
  char b[512];
  ig_oai_req_t r;
  /* top-level object + 63 nested arrays = 64 levels: ok */
  size_t n = 0;
  n += (size_t)sprintf(b + n, "{\"a\":");
  for (int i = 0; i < 63; i++) b[n++] = '[';
  for (int i = 0; i < 63; i++) b[n++] = ']';
  b[n++] = '}';
  assert_int_equal(ig_oai_scan(b, n, &r), 0);
  /* 65 levels: rejected */
  n = 0;
  n += (size_t)sprintf(b + n, "{\"a\":");
  for (int i = 0; i < 64; i++) b[n++] = '[';
  for (int i = 0; i < 64; i++) b[n++] = ']';
  b[n++] = '}';
  assert_int_equal(ig_oai_scan(b, n, &r), IG_EPARSE);
  /* same through objects, and inside stream_options / messages */
  n = 0;
  n += (size_t)sprintf(b + n, "{\"messages\":");
  for (int i = 0; i < 64; i++) n += (size_t)sprintf(b + n, "{\"k\":");
  n += (size_t)sprintf(b + n, "1");
  for (int i = 0; i < 64; i++) b[n++] = '}';
  b[n++] = '}';
  assert_int_equal(ig_oai_scan(b, n, &r), IG_EPARSE);
  n = 0;
  n += (size_t)sprintf(b + n, "{\"stream_options\":{\"x\":");
  for (int i = 0; i < 63; i++) b[n++] = '[';
  for (int i = 0; i < 63; i++) b[n++] = ']';
  b[n++] = '}';
  b[n++] = '}';
  assert_int_equal(ig_oai_scan(b, n, &r), IG_EPARSE);
}

static void test_model_too_big(void **state) {
  (void)state;
  char b[1200];
  ig_oai_req_t r;
  char name[300];
  memset(name, 'm', 256);
  name[256] = '\0';
  snprintf(b, sizeof b, "{\"model\":\"%s\"}", name);
  assert_int_equal(scan(b, &r), 0);
  assert_int_equal(r.model_len, 256);
  assert_string_equal(r.model, name);
  name[256] = 'm';
  name[257] = '\0';
  snprintf(b, sizeof b, "{\"model\":\"%s\"}", name);
  assert_int_equal(scan(b, &r), IG_ETOOBIG);
  /* escapes count decoded: 256 x "\u0041" is 256 characters */
  size_t n = (size_t)sprintf(b, "{\"model\":\"");
  for (int i = 0; i < 128; i++) n += (size_t)sprintf(b + n, "\\u0041\\n");
  n += (size_t)sprintf(b + n, "\"}");
  assert_int_equal(ig_oai_scan(b, n, &r), 0);
  assert_int_equal(r.model_len, 256);
  /* malformed beats too big */
  snprintf(b, sizeof b, "{\"model\":\"%s\",}", name);
  assert_int_equal(scan(b, &r), IG_EPARSE);
}

static void test_count_tokens(void **state) {
  (void)state;
  assert_int_equal(ig_oai_count_tokens("", 0), 0);
  assert_int_equal(ig_oai_count_tokens("a", 1), 1);
  assert_int_equal(ig_oai_count_tokens("abcd", 4), 1);
  assert_int_equal(ig_oai_count_tokens("abcde", 5), 2);
  assert_int_equal(ig_oai_count_tokens(NULL, 400), 100);
}

static void test_speed(void **state) {
  (void)state;
  /* a ~200 KB chat body with mixed content must scan in well under 1 ms; allow slack for sanitizer
   * builds and busy CI machines by taking the best of several runs and a 20 ms bound */
  ig_buf_t b;
  ig_buf_init(&b);
  ig_buf_puts(&b, "{\"model\":\"m\",\"messages\":[");
  for (int i = 0; b.len < 200 * 1024; i++)
    ig_buf_printf(&b, "%s{\"role\":\"user\",\"content\":\"The quick brown fox %d jumps \\\"over\\\" the "
                      "lazy dog \xc3\xa9\xe2\x82\xac \\u00e9 and keeps running for a while.\"}",
                  i ? "," : "", i);
  ig_buf_puts(&b, "],\"stream\":true}");
  ig_oai_req_t r;
  uint64_t best = UINT64_MAX;
  for (int k = 0; k < 20; k++) {
    uint64_t t0 = ig_now_us();
    assert_int_equal(ig_oai_scan(b.data, b.len, &r), 0);
    uint64_t dt = ig_now_us() - t0;
    if (dt < best) best = dt;
  }
  assert_int_equal(r.stream, 1);
  assert_true(best < 20000);
  ig_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_completions), cmocka_unit_test(test_chat),
      cmocka_unit_test(test_nested_model_ignored), cmocka_unit_test(test_model_escapes),
      cmocka_unit_test(test_stream), cmocka_unit_test(test_max_tokens),
      cmocka_unit_test(test_prompt_text), cmocka_unit_test(test_rewrite),
      cmocka_unit_test(test_malformed), cmocka_unit_test(test_depth),
      cmocka_unit_test(test_model_too_big), cmocka_unit_test(test_count_tokens),
      cmocka_unit_test(test_speed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

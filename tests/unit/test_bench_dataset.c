/* Unit tests for ShareGPT datasets (infergate bench --dataset): JSON Lines and JSON array files,
 * malformed entries skipped and counted, files that are not JSON rejected with file:line, the
 * entry cap, and the dataset workload's seeded order and max_tokens cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "infergate/oai.h"

static int parse(ig_bench_dataset_t *d, const char *text, size_t cap, char *err, size_t errcap) {
  return ig_bench_dataset_parse(d, "t.jsonl", text, strlen(text), cap, err, errcap);
}

#define CONV(q, a)                                                                                           \
  "{\"conversations\":[{\"from\":\"human\",\"value\":\"" q "\"},{\"from\":\"gpt\",\"value\":\"" a "\"}]}"

static void test_jsonl_good(void **state) {
  const char *text = CONV(
      "hello there",
      "12345678") "\n"
                  "\n" /* blank lines are fine */
                  "  " CONV("q2",
                            "a") "  \r\n"
                                 "{\"id\":\"x\",\"conversations\":[{\"from\":\"gpt\",\"value\":\"greeting\"},"
                                 "{\"from\":\"human\",\"value\":\"third\"},{\"from\":\"gpt\",\"value\":"
                                 "\"abcdefghi\"},"
                                 "{\"from\":\"human\",\"value\":\"later\"}]}\n";
  ig_bench_dataset_t d;
  char err[256];
  assert_int_equal(parse(&d, text, 0, err, sizeof err), 0);
  assert_int_equal(d.n, 3);
  assert_int_equal(d.skipped, 0);
  assert_false(d.is_array);
  assert_false(d.truncated);
  assert_string_equal(d.v[0].prompt, "hello there");
  assert_int_equal(d.v[0].prompt_tokens, ig_oai_count_tokens("hello there", 11));
  assert_int_equal(d.v[0].output_tokens, 2); /* 8 bytes / 4 */
  assert_string_equal(d.v[1].prompt, "q2");
  assert_int_equal(d.v[1].output_tokens, 1);
  /* the first human turn and the gpt turn right after it */
  assert_string_equal(d.v[2].prompt, "third");
  assert_int_equal(d.v[2].output_tokens, 3);
  ig_bench_dataset_free(&d);
}

static void test_jsonl_malformed_entries(void **state) {
  const char *text = CONV(
      "one",
      "a") "\n"
           "{\"conversations\":[]}\n"                                     /* empty */
           "{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"}]}\n" /* no answer */
           "{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"},{\"from\":\"human\",\"value\":\"a\"}]}\n"
           "{\"conversations\":[{\"from\":\"human\",\"value\":\"\"},{\"from\":\"gpt\",\"value\":\"a\"}]}\n"
           "{\"conversations\":[{\"from\":\"human\",\"value\":1},{\"from\":\"gpt\",\"value\":\"a\"}]}\n"
           "{\"conversations\":\"no\"}\n"
           "[1,2]\n"
           "{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"}\n" /* truncated line: not JSON */
      CONV("two", "bb");                                                /* no final newline */
  ig_bench_dataset_t d;
  char err[256];
  assert_int_equal(parse(&d, text, 0, err, sizeof err), 0);
  assert_int_equal(d.n, 2);
  assert_int_equal(d.skipped, 8);
  assert_int_equal(d.seen, 10);
  assert_string_equal(d.v[1].prompt, "two");
  ig_bench_dataset_free(&d);
}

static void test_array(void **state) {
  const char *text = "\xEF\xBB\xBF[\n  " CONV(
      "a\\u00e9\\n", "xyzw") ",\n  42,\n  {\"conversations\":null},\n  "
                             "{\"conversations\":[{\"role\":\"user\",\"content\":\"chat style\"},"
                             "{\"role\":\"assistant\",\"content\":\"ok\"}]}\n]\n";
  ig_bench_dataset_t d;
  char err[256];
  assert_int_equal(ig_bench_dataset_parse(&d, "v3.json", text, strlen(text), 0, err, sizeof err), 0);
  assert_true(d.is_array);
  assert_int_equal(d.n, 2);
  assert_int_equal(d.skipped, 2);
  assert_int_equal(d.v[0].prompt_len, 4); /* 'a', U+00E9 (2 bytes), '\n' */
  assert_memory_equal(d.v[0].prompt, "a\xC3\xA9\n", 4);
  assert_string_equal(d.v[1].prompt, "chat style");
  ig_bench_dataset_free(&d);

  assert_int_equal(ig_bench_dataset_parse(&d, "e.json", "[]", 2, 0, err, sizeof err), IG_EPARSE);
  assert_non_null(strstr(err, "no usable conversation"));
}

/* A file that is not JSON / JSON Lines at all: an error naming the file and line. */
static void test_not_json(void **state) {
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"", "t.jsonl:1: empty file"},
      {"\n\n  hello world\n", "t.jsonl:3: not JSON or JSON Lines"},
      {"id,conversations\n1,2\n", "t.jsonl:1: not JSON"},
      {"{\"conversations\": [\n{\"from\": \"human\"}]}\n", "t.jsonl:1: not JSON Lines"},
      {"[\n" CONV("q", "a") ",\n" CONV("q", "a") "\n" CONV("q", "a") "]", "t.jsonl:4: not a JSON array"},
      {"[\n" CONV("q", "a") ",\n{\"conversations\": [}\n]", "t.jsonl:3: not JSON"},
      {"[\n" CONV("q", "a") ",\n", "t.jsonl:3: not a JSON array: unexpected end"},
      {"{\"no\":1}\n{\"conversations\":[]}\n", "no usable conversation (2 entries skipped"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ig_bench_dataset_t d;
    char err[256];
    assert_int_equal(parse(&d, cases[i].text, 0, err, sizeof err), IG_EPARSE);
    if (!strstr(err, cases[i].want)) fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
    assert_int_equal(d.n, 0);
    assert_null(d.v);
  }
}

/* The cap keeps at most N usable entries and stops reading: a broken tail is never seen. */
static void test_cap(void **state) {
  const char *lines = CONV("1", "a") "\n{}\n" CONV("2", "a") "\n" CONV("3", "a") "\nnot json\n";
  const char *arr = "[" CONV("1", "a") "," CONV("2", "a") "," CONV("3", "a") ", oops";
  ig_bench_dataset_t d;
  char err[256];
  assert_int_equal(parse(&d, lines, 2, err, sizeof err), 0);
  assert_int_equal(d.n, 2);
  assert_int_equal(d.skipped, 1);
  assert_true(d.truncated);
  assert_string_equal(d.v[1].prompt, "2");
  ig_bench_dataset_free(&d);
  assert_int_equal(parse(&d, arr, 3, err, sizeof err), 0);
  assert_int_equal(d.n, 3);
  assert_true(d.truncated);
  ig_bench_dataset_free(&d);
  assert_int_equal(parse(&d, arr, 0, err, sizeof err), IG_EPARSE); /* without the cap the tail is read */
}

static void test_load_file(void **state) {
  char path[] = "/tmp/ig_bench_dsXXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < 50; i++)
    fprintf(f,
            "{\"conversations\":[{\"from\":\"human\",\"value\":\"prompt "
            "%d\"},{\"from\":\"gpt\",\"value\":\"%0*d\"}]}\n",
            i, 4 * (i + 1), 0);
  fclose(f);
  ig_bench_dataset_t d;
  char err[256];
  assert_int_equal(ig_bench_dataset_load(&d, path, 0, err, sizeof err), 0);
  assert_int_equal(d.n, 50);
  assert_int_equal(d.v[9].output_tokens, 10);
  ig_bench_dataset_free(&d);
  unlink(path);
  assert_int_equal(ig_bench_dataset_load(&d, path, 0, err, sizeof err), IG_EIO);
  assert_non_null(strstr(err, "cannot open"));
  assert_int_equal(ig_bench_dataset_load(&d, "/tmp", 0, err, sizeof err), IG_EIO);
}

/* The dataset workload: every entry once per pass in a seeded order, answers capped by max_tokens. */
static void test_workload(void **state) {
  ig_bench_dataset_t d;
  char err[256], text[8192] = "";
  for (int i = 0; i < 20; i++) {
    char line[256];
    snprintf(line, sizeof line,
             "{\"conversations\":[{\"from\":\"human\",\"value\":\"p%02d\"},{\"from\":\"gpt\",\"value\":\"%0*"
             "d\"}]}\n",
             i, 4 * (i + 1), 0);
    strcat(text, line);
  }
  assert_int_equal(parse(&d, text, 0, err, sizeof err), 0);
  ig_bench_wl_config_t c = {0};
  c.kind = IG_BENCH_WL_DATASET;
  c.seed = 5;
  c.input_mean = c.output_mean = 1;
  c.model = "m";
  c.dataset = &d;
  c.max_tokens_cap = 15;
  ig_bench_wl_t w, w2;
  assert_int_equal(ig_bench_wl_init(&w, &c), 0);
  c.seed = 6;
  assert_int_equal(ig_bench_wl_init(&w2, &c), 0);
  int seen[20] = {0}, in_file_order = 1, same_as_other_seed = 1;
  for (uint64_t id = 0; id < 40; id++) {
    ig_bench_item_t it, it2;
    ig_bench_wl_item(&w, id, &it);
    ig_bench_wl_item(&w2, id, &it2);
    int k = atoi(it.question + 1);
    assert_true(k >= 0 && k < 20);
    seen[k]++;
    in_file_order &= id >= 20 || k == (int)id;
    same_as_other_seed &= !strcmp(it.question, it2.question);
    assert_int_equal(it.max_tokens, k + 1 > 15 ? 15 : k + 1);
    assert_int_equal(it.prompt_tokens, 1);
    assert_string_equal(it.model, "m");
    ig_bench_item_free(&it);
    ig_bench_item_free(&it2);
  }
  for (int k = 0; k < 20; k++)
    assert_int_equal(seen[k], 2);
  assert_false(in_file_order);
  assert_false(same_as_other_seed);
  ig_bench_wl_free(&w);
  ig_bench_wl_free(&w2);
  c.dataset = NULL;
  assert_int_equal(ig_bench_wl_init(&w, &c), IG_EINVAL);
  ig_bench_dataset_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jsonl_good), cmocka_unit_test(test_jsonl_malformed_entries),
      cmocka_unit_test(test_array),      cmocka_unit_test(test_not_json),
      cmocka_unit_test(test_cap),        cmocka_unit_test(test_load_file),
      cmocka_unit_test(test_workload),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

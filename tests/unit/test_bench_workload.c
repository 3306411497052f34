/* Unit tests for the bench workload generator: determinism, length distributions, shared
 * prefixes, model popularity, criticality mix and request bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "infergate/oai.h"

static ig_bench_wl_config_t base_cfg(ig_bench_wl_kind_t kind) {
  ig_bench_wl_config_t c = {0};
  c.kind = kind;
  c.seed = 42;
  c.input_mean = 250;
  c.output_mean = 200;
  c.model = "m";
  c.groups = 8;
  c.prompts_per_group = 4;
  c.system_len = 64;
  c.question_len = 8;
  return c;
}

static void test_names(void **state) {
  ig_bench_wl_kind_t k;
  assert_int_equal(ig_bench_wl_parse("shared-prefix", &k), 0);
  assert_int_equal(k, IG_BENCH_WL_SHARED_PREFIX);
  assert_string_equal(ig_bench_wl_name(IG_BENCH_WL_LORA_MIX), "lora-mix");
  assert_int_equal(ig_bench_wl_parse("nope", &k), IG_EINVAL);
}

/* Exactly 4 bytes per token, JSON-safe, deterministic in the seed. */
static void test_text(void **state) {
  ig_buf_t a, b, c;
  ig_buf_init(&a);
  ig_buf_init(&b);
  ig_buf_init(&c);
  ig_bench_text(&a, 7, 100);
  ig_bench_text(&b, 7, 100);
  ig_bench_text(&c, 8, 100);
  assert_int_equal(a.len, 400);
  assert_int_equal(ig_oai_count_tokens(a.data, a.len), 100);
  assert_memory_equal(a.data, b.data, a.len);
  assert_memory_not_equal(a.data, c.data, a.len);
  for (size_t i = 0; i < a.len; i++)
    assert_true(a.data[i] == ' ' || (a.data[i] >= 'a' && a.data[i] <= 'z'));
  ig_buf_free(&a);
  ig_buf_free(&b);
  ig_buf_free(&c);
}

/* Same seed and id give the same request; another seed gives another. */
static void test_determinism(void **state) {
  ig_bench_wl_config_t c1 = base_cfg(IG_BENCH_WL_SHAREGPT), c2 = c1;
  c2.seed = 43;
  ig_bench_wl_t w1, w2;
  assert_int_equal(ig_bench_wl_init(&w1, &c1), 0);
  assert_int_equal(ig_bench_wl_init(&w2, &c2), 0);
  int differ = 0;
  for (uint64_t id = 0; id < 50; id++) {
    ig_bench_item_t a, b, x;
    ig_bench_wl_item(&w1, id, &a);
    ig_bench_wl_item(&w1, id, &b); /* order does not matter: regenerate the same id */
    ig_bench_wl_item(&w2, id, &x);
    assert_int_equal(a.max_tokens, b.max_tokens);
    assert_int_equal(a.question_len, b.question_len);
    assert_memory_equal(a.question, b.question, a.question_len);
    assert_int_equal(a.prompt_tokens, a.question_len / 4);
    assert_int_equal(a.prompt_tokens, ig_oai_count_tokens(a.question, a.question_len));
    differ += a.question_len != x.question_len || a.max_tokens != x.max_tokens;
    ig_bench_item_free(&a);
    ig_bench_item_free(&b);
    ig_bench_item_free(&x);
  }
  assert_true(differ > 40);
  ig_bench_wl_free(&w1);
  ig_bench_wl_free(&w2);
}

/* Sample means within 10% of the requested means, for defaults and for a case where the clamp at
 * 4096 matters; every length within [4, 4096]; the distribution is long-tailed (mean > median). */
static void check_means(uint32_t in_mean, uint32_t out_mean) {
  ig_bench_wl_config_t c = base_cfg(IG_BENCH_WL_SHAREGPT);
  c.input_mean = in_mean;
  c.output_mean = out_mean;
  ig_bench_wl_t w;
  assert_int_equal(ig_bench_wl_init(&w, &c), 0);
  const int n = 20000;
  double sin = 0, sout = 0;
  uint32_t *ins = malloc(n * sizeof *ins);
  for (int i = 0; i < n; i++) {
    ig_bench_item_t it;
    ig_bench_wl_item(&w, (uint64_t)i, &it);
    assert_true(it.prompt_tokens >= IG_BENCH_LEN_MIN && it.prompt_tokens <= IG_BENCH_LEN_MAX);
    assert_true(it.max_tokens >= IG_BENCH_LEN_MIN && it.max_tokens <= IG_BENCH_LEN_MAX);
    sin += it.prompt_tokens;
    sout += it.max_tokens;
    ins[i] = it.prompt_tokens;
    ig_bench_item_free(&it);
  }
  sin /= n;
  sout /= n;
  assert_true(fabs(sin - in_mean) < 0.1 * in_mean);
  assert_true(fabs(sout - out_mean) < 0.1 * out_mean);
  /* long tail: fewer than half of the prompts are longer than the mean */
  int above = 0;
  for (int i = 0; i < n; i++)
    above += ins[i] > in_mean;
  if (in_mean < 1000) assert_true(above < n / 2);
  free(ins);
  ig_bench_wl_free(&w);
}

static void test_length_means(void **state) {
  check_means(250, 200);
  check_means(2000, 30);
  check_means(8, 1000);
}

static void test_lognormal_draw(void **state) {
  ig_rng_t r;
  ig_rng_seed(&r, 1);
  double mu = ig_bench_lognormal_mu(500, 1.0), sum = 0;
  for (int i = 0; i < 50000; i++)
    sum += ig_bench_lognormal_len(&r, mu, 1.0);
  assert_true(fabs(sum / 50000 - 500) < 25);
  /* exponential gaps average 1/rate */
  double g = 0;
  for (int i = 0; i < 50000; i++)
    g += ig_bench_exp_gap(&r, 4.0);
  assert_true(fabs(g / 50000 - 0.25) < 0.0125);
}

static void test_fixed(void **state) {
  ig_bench_wl_config_t c = base_cfg(IG_BENCH_WL_FIXED);
  c.input_mean = 33;
  c.output_mean = 7;
  ig_bench_wl_t w;
  assert_int_equal(ig_bench_wl_init(&w, &c), 0);
  for (uint64_t id = 0; id < 10; id++) {
    ig_bench_item_t it;
    ig_bench_wl_item(&w, id, &it);
    assert_int_equal(it.prompt_tokens, 33);
    assert_int_equal(it.question_len, 33 * 4);
    assert_int_equal(it.max_tokens, 7);
    assert_int_equal(it.class_idx, -1);
    assert_null(it.class_name);
    ig_bench_item_free(&it);
  }
  ig_bench_wl_free(&w);
}

/* Within a group the system text is identical; groups differ; the first groups x prompts ids
 * cover every (group, question) exactly once. */
static void test_shared_prefix(void **state) {
  ig_bench_wl_config_t c = base_cfg(IG_BENCH_WL_SHARED_PREFIX);
  c.output_mean = 256;
  ig_bench_wl_t w;
  assert_int_equal(ig_bench_wl_init(&w, &c), 0);
  const size_t total = 8 * 4;
  char *sys[8] = {0};
  int seen[8] = {0};
  char *questions[32];
  for (uint64_t id = 0; id < total; id++) {
    ig_bench_item_t it;
    ig_bench_wl_item(&w, id, &it);
    assert_true(it.group >= 0 && it.group < 8);
    assert_int_equal(it.system_len, 64 * 4);
    assert_int_equal(it.question_len, 8 * 4);
    assert_int_equal(it.prompt_tokens, 72);
    assert_int_equal(it.max_tokens, 256);
    if (!sys[it.group])
      sys[it.group] = strdup(it.system);
    else
      assert_string_equal(sys[it.group], it.system);
    seen[it.group]++;
    questions[id] = strdup(it.question);
    ig_bench_item_free(&it);
  }
  for (int g = 0; g < 8; g++) {
    assert_int_equal(seen[g], 4);
    for (int h = g + 1; h < 8; h++)
      assert_string_not_equal(sys[g], sys[h]);
    free(sys[g]);
  }
  for (size_t i = 0; i < total; i++)
    for (size_t j = i + 1; j < total; j++)
      assert_string_not_equal(questions[i], questions[j]);
  for (size_t i = 0; i < total; i++)
    free(questions[i]);
  /* ids past the set repeat it */
  ig_bench_item_t a, b;
  ig_bench_wl_item(&w, 3, &a);
  ig_bench_wl_item(&w, 3 + total, &b);
  assert_string_equal(a.question, b.question);
  ig_bench_item_free(&a);
  ig_bench_item_free(&b);
  ig_bench_wl_free(&w);
}

/* Zipf popularity 1/k: shares 12/25, 6/25, 4/25, 3/25 for 4 models. */
static void test_lora_mix(void **state) {
  static const char *const models[] = {"a", "b", "c", "d"};
  ig_bench_wl_config_t c = base_cfg(IG_BENCH_WL_LORA_MIX);
  c.models = models;
  c.n_models = 4;
  ig_bench_wl_t w;
  assert_int_equal(ig_bench_wl_init(&w, &c), 0);
  int count[4] = {0};
  const int n = 10000;
  for (int i = 0; i < n; i++) {
    ig_bench_item_t it;
    ig_bench_wl_item(&w, (uint64_t)i, &it);
    int k = it.model[0] - 'a';
    assert_true(k >= 0 && k < 4);
    count[k]++;
    ig_bench_item_free(&it);
  }
  static const double share[] = {12.0 / 25, 6.0 / 25, 4.0 / 25, 3.0 / 25};
  for (int k = 0; k < 4; k++)
    assert_true(fabs((double)count[k] / n - share[k]) < 0.03);
  ig_bench_wl_free(&w);
  c.n_models = 0;
  assert_int_equal(ig_bench_wl_init(&w, &c), IG_EINVAL);
}

static void test_criticality(void **state) {
  static const char *const models[] = {"crit", "std", "shed"};
  ig_bench_wl_config_t c = base_cfg(IG_BENCH_WL_CRITICALITY);
  ig_bench_wl_t w;
  for (int with_models = 0; with_models < 2; with_models++) {
    c.models = with_models ? models : NULL;
    c.n_models = with_models ? 3 : 0;
    assert_int_equal(ig_bench_wl_init(&w, &c), 0);
    int count[3] = {0};
    for (int i = 0; i < 3000; i++) {
      ig_bench_item_t it;
      ig_bench_wl_item(&w, (uint64_t)i, &it);
      assert_true(it.class_idx >= 0 && it.class_idx < 3);
      assert_string_equal(it.class_name, ig_bench_class_names[it.class_idx]);
      assert_string_equal(it.model, with_models ? models[it.class_idx] : "m");
      count[it.class_idx]++;
      ig_bench_item_free(&it);
    }
    for (int k = 0; k < 3; k++)
      assert_true(count[k] > 900 && count[k] < 1100);
    ig_bench_wl_free(&w);
  }
  c.n_models = 2;
  c.models = models;
  assert_int_equal(ig_bench_wl_init(&w, &c), IG_EINVAL);
}

/* Bodies are valid JSON with the fields an OpenAI server needs. */
static void test_body(void **state) {
  ig_bench_wl_config_t c = base_cfg(IG_BENCH_WL_SHARED_PREFIX);
  c.model = "we\"ird";
  ig_bench_wl_t w;
  assert_int_equal(ig_bench_wl_init(&w, &c), 0);
  ig_bench_item_t it;
  ig_bench_wl_item(&w, 0, &it);
  for (int chat = 0; chat < 2; chat++)
    for (int stream = 0; stream < 2; stream++) {
      ig_buf_t b;
      ig_buf_init(&b);
      ig_bench_body(&b, &it, chat, stream);
      json_error_t err;
      json_t *j = json_loadb(b.data, b.len, 0, &err);
      assert_non_null(j);
      assert_string_equal(json_string_value(json_object_get(j, "model")), "we\"ird");
      assert_int_equal(json_integer_value(json_object_get(j, "max_tokens")), it.max_tokens);
      assert_true(json_is_boolean(json_object_get(j, "stream")));
      assert_int_equal(json_is_true(json_object_get(j, "stream")), stream);
      if (stream)
        assert_true(json_is_true(json_object_get(json_object_get(j, "stream_options"), "include_usage")));
      if (chat) {
        json_t *m = json_object_get(j, "messages");
        assert_int_equal(json_array_size(m), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "role")), "system");
        assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "content")), it.system);
        assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "content")), it.question);
      } else {
        const char *p = json_string_value(json_object_get(j, "prompt"));
        assert_int_equal(strlen(p), it.system_len + it.question_len);
        assert_memory_equal(p, it.system, it.system_len);
        assert_int_equal(ig_oai_count_tokens(p, strlen(p)), it.prompt_tokens);
      }
      json_decref(j);
      ig_buf_free(&b);
    }
  ig_bench_item_free(&it);
  ig_bench_wl_free(&w);
}

static void test_bad_config(void **state) {
  ig_bench_wl_t w;
  ig_bench_wl_config_t c = base_cfg(IG_BENCH_WL_SHARED_PREFIX);
  c.groups = 0;
  assert_int_equal(ig_bench_wl_init(&w, &c), IG_EINVAL);
  c = base_cfg(IG_BENCH_WL_SHAREGPT);
  c.model = NULL;
  assert_int_equal(ig_bench_wl_init(&w, &c), IG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),          cmocka_unit_test(test_text),
      cmocka_unit_test(test_determinism),    cmocka_unit_test(test_length_means),
      cmocka_unit_test(test_lognormal_draw), cmocka_unit_test(test_fixed),
      cmocka_unit_test(test_shared_prefix),  cmocka_unit_test(test_lora_mix),
      cmocka_unit_test(test_criticality),    cmocka_unit_test(test_body),
      cmocka_unit_test(test_bad_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

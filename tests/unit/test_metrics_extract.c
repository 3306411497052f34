/* Unit tests for engine metrics extraction (vLLM V1/V0, SGLang, TensorRT-LLM). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infergate/metrics.h"

static const char vllm_v1[] =
    "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 7.0\n"
    "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
    "# TYPE vllm:num_requests_waiting gauge\n"
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 3.0\n"
    "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
    "# TYPE vllm:kv_cache_usage_perc gauge\n"
    "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 0.4375\n"
    "# HELP vllm:lora_requests_info Running stats on lora requests.\n"
    "# TYPE vllm:lora_requests_info gauge\n"
    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"old\",waiting_lora_adapters=\"\"} "
    "1.7200000001e9\n"
    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"sql-lora, chat-lora,,\","
    "waiting_lora_adapters=\"tweet-lora\"} 1.7200000005e9\n"
    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"older\",waiting_lora_adapters=\"x\"} "
    "1.7200000003e9\n"
    "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
    "# TYPE vllm:cache_config_info gauge\n"
    "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",enable_prefix_caching=\"True\","
    "gpu_memory_utilization=\"0.9\",num_cpu_blocks=\"2048\",num_gpu_blocks=\"29205\"} 1.0\n"
    "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
    "# TYPE vllm:prompt_tokens_total counter\n"
    "vllm:prompt_tokens_total{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 12345.0\n"
    "vllm:time_to_first_token_seconds_bucket{le=\"0.001\",model_name=\"m\"} 0.0\n"
    "vllm:num_requests_waiting_extra 99\n";

static const char vllm_v0[] = "vllm:num_requests_running{model_name=\"m\"} 2.0\n"
                              "vllm:num_requests_swapped{model_name=\"m\"} 0.0\n"
                              "vllm:num_requests_waiting{model_name=\"m\"} 11.0\n"
                              "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.91\n"
                              "vllm:cpu_cache_usage_perc{model_name=\"m\"} 0.0\n";

static const char sglang[] = "# HELP sglang:num_running_reqs The number of running requests.\n"
                             "# TYPE sglang:num_running_reqs gauge\n"
                             "sglang:num_running_reqs{model_name=\"qwen\"} 12.0\n"
                             "sglang:num_queue_reqs{model_name=\"qwen\"} 5.0\n"
                             "sglang:token_usage{model_name=\"qwen\"} 0.25\n"
                             "sglang:cache_hit_rate{model_name=\"qwen\"} 0.5\n"
                             "sglang:prompt_tokens_total{model_name=\"qwen\"} 600.0\n"
                             "sglang:generation_tokens_total{model_name=\"qwen\"} 77.0\n"
                             "sglang:generation_tokens_total{model_name=\"other\"} 3.0\n"
                             "sglang:generation_tokens_total{model_name=\"bad\"} -5.0\n"
                             "sglang:generation_tokens_created{model_name=\"qwen\"} 1.7e9\n"
                             "vllm:num_requests_waiting 100\n";

static const char trtllm[] = "# TYPE trtllm_num_requests_waiting gauge\n"
                             "trtllm_num_requests_waiting{model_name=\"llama\"} 6\n"
                             "trtllm_kv_cache_hit_rate 0.1\n";

static void test_vllm_v1(void **state) {
  (void)state;
  ig_pod_metrics_t m;
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, vllm_v1, strlen(vllm_v1), &m), 0);
  assert_true(m.has_waiting && m.has_running && m.has_kv);
  assert_true(m.waiting == 3.0);
  assert_true(m.running == 7.0);
  assert_true(m.kv_usage == 0.4375);
  assert_int_equal(m.max_lora, 4);
  assert_int_equal(m.n_running_loras, 2);
  assert_string_equal(m.running_loras[0], "sql-lora");
  assert_string_equal(m.running_loras[1], "chat-lora");
  assert_int_equal(m.n_waiting_loras, 1);
  assert_string_equal(m.waiting_loras[0], "tweet-lora");
  assert_int_equal(m.block_size, 16);
  assert_int_equal(m.num_gpu_blocks, 29205);
  assert_true(m.has_tokens && m.tokens == 12345.0); /* the prompt counter alone (no generation yet) */
}

static void test_vllm_v0(void **state) {
  (void)state;
  ig_pod_metrics_t m;
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM_V0, vllm_v0, strlen(vllm_v0), &m), 0);
  assert_true(m.waiting == 11.0 && m.running == 2.0 && m.kv_usage == 0.91);
  assert_int_equal(m.max_lora, 0);
  assert_int_equal(m.n_running_loras, 0);
  assert_int_equal(m.block_size, 0);
  assert_false(m.has_tokens);
  /* a vllm pool still understands the V0 KV name when the V1 one is absent */
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, vllm_v0, strlen(vllm_v0), &m), 0);
  assert_true(m.has_kv && m.kv_usage == 0.91);
  /* ... and the engine's own name wins when both are there */
  const char both[] = "vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.2\n";
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, both, strlen(both), &m), 0);
  assert_true(m.kv_usage == 0.2);
  assert_false(m.has_waiting);
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM_V0, both, strlen(both), &m), 0);
  assert_true(m.kv_usage == 0.9);
}

static void test_sglang(void **state) {
  (void)state;
  ig_pod_metrics_t m;
  assert_int_equal(ig_metrics_extract(IG_ENGINE_SGLANG, sglang, strlen(sglang), &m), 0);
  assert_true(m.waiting == 5.0 && m.running == 12.0 && m.kv_usage == 0.25);
  assert_true(m.has_waiting && m.has_running && m.has_kv);
  assert_true(m.has_tokens && m.tokens == 680.0); /* every series summed; a negative one is no count */
  /* other dialects' names are not read */
  assert_int_equal(ig_metrics_extract(IG_ENGINE_SGLANG, vllm_v1, strlen(vllm_v1), &m), IG_ENOENT);
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, sglang, strlen(sglang), &m), 0);
  assert_true(m.waiting == 100 && !m.has_running && !m.has_kv);
}

static void test_trtllm(void **state) {
  (void)state;
  ig_pod_metrics_t m;
  assert_int_equal(ig_metrics_extract(IG_ENGINE_TRTLLM, trtllm, strlen(trtllm), &m), 0);
  assert_true(m.has_waiting && m.waiting == 6);
  assert_false(m.has_running);
  assert_false(m.has_kv);
  assert_false(m.has_tokens);
  assert_int_equal(ig_metrics_extract(IG_ENGINE_TRTLLM, sglang, strlen(sglang), &m), IG_ENOENT);
}

static void test_multi_series(void **state) {
  (void)state;
  const char t[] = "vllm:num_requests_waiting{model_name=\"a\"} 2\n"
                   "vllm:num_requests_waiting{model_name=\"b\"} 3\n"
                   "vllm:num_requests_running{model_name=\"a\"} 1\n"
                   "vllm:num_requests_running{model_name=\"b\"} 4\n"
                   "vllm:num_requests_running{model_name=\"c\"} NaN\n"
                   "vllm:kv_cache_usage_perc{model_name=\"a\"} 0.3\n"
                   "vllm:kv_cache_usage_perc{model_name=\"b\"} 0.7\n"
                   "vllm:kv_cache_usage_perc{model_name=\"c\"} 0.5\n"
                   "vllm:kv_cache_usage_perc{model_name=\"d\"} +Inf\n";
  ig_pod_metrics_t m;
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, t, strlen(t), &m), 0);
  assert_true(m.waiting == 5);
  assert_true(m.running == 5);
  assert_true(m.kv_usage == 0.7);
}

static void test_lora_edge_cases(void **state) {
  (void)state;
  ig_pod_metrics_t m;
  char t[8192];
  /* more adapters than IG_MAX_LORAS, one name too long, blanks, escapes */
  size_t n = (size_t)snprintf(t, sizeof t, "vllm:num_requests_waiting 0\nvllm:lora_requests_info{running_lora_adapters=\"");
  for (int i = 0; i < 20; i++) n += (size_t)snprintf(t + n, sizeof t - n, "%s a%d ", i ? "," : "", i);
  n += (size_t)snprintf(t + n, sizeof t - n,
                        "\",waiting_lora_adapters=\"%0100d,q\\\"x\",max_lora=\"bogus\"} 5\n", 7);
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, t, n, &m), 0);
  assert_int_equal(m.n_running_loras, IG_MAX_LORAS);
  assert_string_equal(m.running_loras[0], "a0");
  assert_string_equal(m.running_loras[15], "a15");
  assert_int_equal(m.n_waiting_loras, 1);
  assert_string_equal(m.waiting_loras[0], "q\"x");
  assert_int_equal(m.max_lora, 0);

  /* a label value longer than the internal buffer keeps its complete leading entries */
  n = (size_t)snprintf(t, sizeof t, "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"");
  for (int i = 0; n < 6000; i++) n += (size_t)snprintf(t + n, sizeof t - n, "%sadapter-%d", i ? "," : "", i);
  n += (size_t)snprintf(t + n, sizeof t - n, "\"} 1\n");
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, t, n, &m), IG_ENOENT);
  assert_int_equal(m.max_lora, 2);
  assert_int_equal(m.n_running_loras, IG_MAX_LORAS);
  assert_string_equal(m.running_loras[15], "adapter-15");

  /* lora info is vLLM only */
  const char s[] = "sglang:num_queue_reqs 1\nvllm:lora_requests_info{running_lora_adapters=\"a\"} 1\n";
  assert_int_equal(ig_metrics_extract(IG_ENGINE_SGLANG, s, strlen(s), &m), 0);
  assert_int_equal(m.n_running_loras, 0);
}

static void test_enoent(void **state) {
  (void)state;
  ig_pod_metrics_t m;
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, "", 0, &m), IG_ENOENT);
  const char t[] = "# nothing here\ngarbage line\nvllm:num_requests_waiting NaN\n";
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, t, strlen(t), &m), IG_ENOENT);
  assert_int_equal(ig_metrics_extract((ig_engine_t)42, t, strlen(t), &m), IG_EINVAL);
}

static void test_engine_names(void **state) {
  (void)state;
  ig_engine_t e;
  const char *names[] = {"vllm", "vllm-v0", "sglang", "trtllm"};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(ig_metrics_engine_parse(names[i], &e), 0);
    assert_int_equal(e, i);
    assert_string_equal(ig_metrics_engine_name(e), names[i]);
  }
  assert_int_equal(ig_metrics_engine_parse("SGLang", &e), 0);
  assert_int_equal(e, IG_ENGINE_SGLANG);
  assert_int_equal(ig_metrics_engine_parse("tgi", &e), IG_EINVAL);
}

/* ---- the name filter must never change what is extracted ------------------------------------------
 * extract_ref is the generic algorithm ig_metrics_extract used before it skipped lines by name: every
 * sample parsed with ig_prom_next and compared with each wanted name, labels read with ig_prom_label.
 * Both must agree field for field on the simulator's pages of every dialect and on mutated pages. */

static int ref_split(const char *list, char names[IG_MAX_LORAS][IG_LORA_NAME_MAX]) {
  int n = 0;
  const char *p = list;
  while (*p && n < IG_MAX_LORAS) {
    const char *e = strchr(p, ',');
    if (!e) e = p + strlen(p);
    const char *a = p, *b = e;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    size_t l = (size_t)(b - a);
    if (l > 0 && l < IG_LORA_NAME_MAX) {
      memcpy(names[n], a, l);
      names[n][l] = '\0';
      n++;
    }
    p = *e ? e + 1 : e;
  }
  return n;
}

static int ref_loras(const ig_prom_sample_t *s, const char *key, char names[IG_MAX_LORAS][IG_LORA_NAME_MAX]) {
  char buf[IG_MAX_LORAS * IG_LORA_NAME_MAX * 2];
  int rc = ig_prom_label(s, key, buf, sizeof buf);
  if (rc == IG_ENOENT) return 0;
  if (rc == IG_ETOOBIG) {
    char *comma = strrchr(buf, ',');
    if (comma)
      *comma = '\0';
    else
      buf[0] = '\0';
  }
  return ref_split(buf, names);
}

static int ref_int(const ig_prom_sample_t *s, const char *key, long *out) {
  char buf[32];
  if (ig_prom_label(s, key, buf, sizeof buf) <= 0) return 0;
  char *e = NULL;
  double d = strtod(buf, &e);
  if (e == buf || *e || !isfinite(d) || d < 0 || d > (double)LONG_MAX / 2) return 0;
  *out = (long)d;
  return 1;
}

static int ref_is(const ig_prom_sample_t *s, const char *name) { return name && ig_prom_name_is(s, name); }

static int extract_ref(ig_engine_t engine, const char *text, size_t len, ig_pod_metrics_t *out) {
  static const struct {
    const char *waiting, *running, *kv, *kv_alt, *tokens;
    int vllm_info;
  } dialects[] = {
      [IG_ENGINE_VLLM] = {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
                          "vllm:gpu_cache_usage_perc", "vllm", 1},
      [IG_ENGINE_VLLM_V0] = {"vllm:num_requests_waiting", "vllm:num_requests_running",
                             "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc", "vllm", 1},
      [IG_ENGINE_SGLANG] = {"sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage", NULL,
                            "sglang", 0},
      [IG_ENGINE_TRTLLM] = {"trtllm_num_requests_waiting", NULL, NULL, NULL, NULL, 0},
  };
  char prompt[64] = "", gen[64] = "";
  const char *tk = dialects[engine].tokens;
  if (tk) {
    snprintf(prompt, sizeof prompt, "%s:prompt_tokens_total", tk);
    snprintf(gen, sizeof gen, "%s:generation_tokens_total", tk);
  }
  memset(out, 0, sizeof *out);
  const char *w = dialects[engine].waiting, *r = dialects[engine].running, *kv = dialects[engine].kv,
             *alt = dialects[engine].kv_alt;
  int info = dialects[engine].vllm_info, has_alt = 0, has_lora = 0;
  double kv_alt = 0, lora_ts = 0;
  ig_prom_sample_t s;
  size_t pos = 0;
  while (ig_prom_next(text, len, &pos, &s) == 1) {
    int finite = isfinite(s.value);
    if (ref_is(&s, w)) {
      if (finite) {
        out->waiting += s.value;
        out->has_waiting = 1;
      }
    } else if (ref_is(&s, r)) {
      if (finite) {
        out->running += s.value;
        out->has_running = 1;
      }
    } else if (ref_is(&s, kv)) {
      if (finite && (!out->has_kv || s.value > out->kv_usage)) out->kv_usage = s.value;
      out->has_kv |= finite;
    } else if (ref_is(&s, alt)) {
      if (finite && (!has_alt || s.value > kv_alt)) kv_alt = s.value;
      has_alt |= finite;
    } else if (tk && (ig_prom_name_is(&s, prompt) || ig_prom_name_is(&s, gen))) {
      if (finite && s.value >= 0) {
        out->tokens += s.value;
        out->has_tokens = 1;
      }
    } else if (info && ig_prom_name_is(&s, "vllm:lora_requests_info")) {
      if (!finite || (has_lora && s.value <= lora_ts)) continue;
      has_lora = 1;
      lora_ts = s.value;
      long ml = 0;
      out->max_lora = ref_int(&s, "max_lora", &ml) && ml <= INT_MAX ? (int)ml : 0;
      out->n_running_loras = ref_loras(&s, "running_lora_adapters", out->running_loras);
      out->n_waiting_loras = ref_loras(&s, "waiting_lora_adapters", out->waiting_loras);
    } else if (info && ig_prom_name_is(&s, "vllm:cache_config_info")) {
      long v;
      if (ref_int(&s, "block_size", &v) && v <= INT_MAX) out->block_size = (int)v;
      if (ref_int(&s, "num_gpu_blocks", &v)) out->num_gpu_blocks = v;
    }
  }
  if (!out->has_kv && has_alt) {
    out->kv_usage = kv_alt;
    out->has_kv = 1;
  }
  return out->has_waiting || out->has_running || out->has_kv ? 0 : IG_ENOENT;
}

/* Extracts text with both and compares every field; returns how many core metrics were found. */
static int check_extract(ig_engine_t e, const char *text, size_t len) {
  static ig_pod_metrics_t a, b;
  int ra = ig_metrics_extract(e, text, len, &a);
  int rb = extract_ref(e, text, len, &b);
  assert_int_equal(ra, rb);
  assert_memory_equal(&a.waiting, &b.waiting, sizeof a.waiting);
  assert_memory_equal(&a.running, &b.running, sizeof a.running);
  assert_memory_equal(&a.kv_usage, &b.kv_usage, sizeof a.kv_usage);
  assert_int_equal(a.has_waiting, b.has_waiting);
  assert_int_equal(a.has_running, b.has_running);
  assert_int_equal(a.has_kv, b.has_kv);
  assert_int_equal(a.max_lora, b.max_lora);
  assert_int_equal(a.n_running_loras, b.n_running_loras);
  assert_int_equal(a.n_waiting_loras, b.n_waiting_loras);
  for (int i = 0; i < a.n_running_loras; i++) assert_string_equal(a.running_loras[i], b.running_loras[i]);
  for (int i = 0; i < a.n_waiting_loras; i++) assert_string_equal(a.waiting_loras[i], b.waiting_loras[i]);
  assert_int_equal(a.block_size, b.block_size);
  assert_int_equal(a.num_gpu_blocks, b.num_gpu_blocks);
  assert_memory_equal(&a.tokens, &b.tokens, sizeof a.tokens);
  assert_int_equal(a.has_tokens, b.has_tokens);
  return a.has_waiting + a.has_running + a.has_kv;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  ig_buf_t b;
  ig_buf_init(&b);
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) ig_buf_append(&b, tmp, n);
  fclose(f);
  ig_buf_reserve(&b, 1);
  *len = b.len;
  return b.data;
}

/* Edits that keep most lines valid but move names, values and line ends around. */
static void mutate(ig_rng_t *r, ig_buf_t *b) {
  static const char *const bits[] = {"vllm:num_requests_waiting",
                                     "vllm:kv_cache_usage_perc",
                                     "vllm:gpu_cache_usage_perc",
                                     "sglang:num_queue_reqs",
                                     "trtllm_num_requests_waiting",
                                     "vllm:lora_requests_info{max_lora=\"3\",running_lora_adapters=\"z,y\"} 2e9",
                                     "vllm:cache_config_info{block_size=\"32\"} 1",
                                     "vllm:generation_tokens_total",
                                     "sglang:prompt_tokens_total",
                                     " -3\n",
                                     " 7\n", " NaN\n", " 0.5\r\n", "\n", "{a=\"b\"}", "_x", "#", " ", "\t"};
  static const char alpha[] = "{}\"=, \t\r\n#:_.+-\\0159";
  int edits = 1 + (int)(ig_rng_next(r) % 6);
  for (int k = 0; k < edits && b->len > 0; k++) {
    size_t at = (size_t)(ig_rng_next(r) % b->len);
    switch (ig_rng_next(r) % 4) {
    case 0: b->data[at] = alpha[ig_rng_next(r) % (sizeof alpha - 1)]; break;
    case 1:
      memmove(b->data + at, b->data + at + 1, b->len - at - 1);
      b->len--;
      break;
    default: {
      const char *ins = bits[ig_rng_next(r) % (sizeof bits / sizeof bits[0])];
      size_t n = strlen(ins);
      ig_buf_reserve(b, n);
      memmove(b->data + at + n, b->data + at, b->len - at);
      memcpy(b->data + at, ins, n);
      b->len += n;
    }
    }
  }
  b->data[b->len] = '\0';
}

static void test_filter_matches_reference(void **state) {
  (void)state;
  static const struct {
    const char *path;
    ig_engine_t engine; /* the dialect the page was captured in */
  } pages[] = {
      {"tests/fuzz/corpus/metrics_prom/sim-vllm.txt", IG_ENGINE_VLLM},
      {"tests/fuzz/corpus/metrics_prom/sim-vllm-v0.txt", IG_ENGINE_VLLM_V0},
      {"tests/fuzz/corpus/metrics_prom/sim-sglang.txt", IG_ENGINE_SGLANG},
      {"tests/fuzz/corpus/metrics_prom/sim-trtllm.txt", IG_ENGINE_TRTLLM},
      {"tests/fuzz/corpus/metrics_prom/vllm.txt", IG_ENGINE_VLLM},
      {"tests/fuzz/corpus/metrics_prom/sglang.txt", IG_ENGINE_SGLANG},
  };
  ig_rng_t r;
  ig_rng_seed(&r, 11);
  ig_buf_t m;
  ig_buf_init(&m);
  for (size_t p = 0; p < sizeof pages / sizeof pages[0]; p++) {
    size_t len = 0;
    char *page = slurp(pages[p].path, &len);
    assert_non_null(page);
    /* the page's own dialect finds its core metrics (and the sim's LoRA info for vLLM) */
    assert_true(check_extract(pages[p].engine, page, len) >= 1);
    ig_pod_metrics_t own;
    assert_int_equal(ig_metrics_extract(pages[p].engine, page, len, &own), 0);
    for (int e = IG_ENGINE_VLLM; e <= IG_ENGINE_TRTLLM; e++) check_extract((ig_engine_t)e, page, len);
    for (int round = 0; round < 400; round++) {
      ig_buf_reset(&m);
      ig_buf_append(&m, page, len);
      mutate(&r, &m);
      for (int e = IG_ENGINE_VLLM; e <= IG_ENGINE_TRTLLM; e++) check_extract((ig_engine_t)e, m.data, m.len);
    }
    free(page);
  }
  ig_buf_free(&m);
  /* the hand-written pages above too */
  const char *const texts[] = {vllm_v1, vllm_v0, sglang, trtllm};
  for (size_t t = 0; t < 4; t++)
    for (int e = IG_ENGINE_VLLM; e <= IG_ENGINE_TRTLLM; e++) check_extract((ig_engine_t)e, texts[t], strlen(texts[t]));
}

static void test_sim_pages(void **state) {
  (void)state;
  /* what the scheduler gets from the simulator's pages (captured with 4 requests running) */
  size_t len = 0;
  ig_pod_metrics_t m;
  char *page = slurp("tests/fuzz/corpus/metrics_prom/sim-vllm.txt", &len);
  assert_non_null(page);
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM, page, len, &m), 0);
  assert_true(m.has_waiting && m.has_running && m.has_kv);
  assert_true(m.running == 4 && m.waiting == 0 && m.kv_usage > 0 && m.kv_usage < 0.01);
  assert_int_equal(m.max_lora, 4);
  assert_int_equal(m.n_running_loras, 2);
  assert_string_equal(m.running_loras[0], "a");
  assert_string_equal(m.running_loras[1], "b");
  assert_int_equal(m.block_size, 16);
  assert_true(m.has_tokens && m.tokens == 16 + 1004); /* the engine's counters, not the sim's own */
  free(page);
  page = slurp("tests/fuzz/corpus/metrics_prom/sim-sglang.txt", &len);
  assert_non_null(page);
  assert_int_equal(ig_metrics_extract(IG_ENGINE_SGLANG, page, len, &m), 0);
  assert_true(m.has_waiting && m.has_running && m.has_kv && m.running == 4);
  assert_true(m.has_tokens && m.tokens == 16 + 995);
  free(page);
  page = slurp("tests/fuzz/corpus/metrics_prom/sim-trtllm.txt", &len);
  assert_non_null(page);
  assert_int_equal(ig_metrics_extract(IG_ENGINE_TRTLLM, page, len, &m), 0);
  assert_true(m.has_waiting && !m.has_running && !m.has_kv);
  free(page);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vllm_v1),       cmocka_unit_test(test_vllm_v0),
      cmocka_unit_test(test_sglang),        cmocka_unit_test(test_trtllm),
      cmocka_unit_test(test_multi_series),  cmocka_unit_test(test_lora_edge_cases),
      cmocka_unit_test(test_enoent),        cmocka_unit_test(test_engine_names),
      cmocka_unit_test(test_filter_matches_reference), cmocka_unit_test(test_sim_pages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

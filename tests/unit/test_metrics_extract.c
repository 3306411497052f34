/* Unit tests for engine metrics extraction (vLLM V1/V0, SGLang, TensorRT-LLM). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
}

static void test_vllm_v0(void **state) {
  (void)state;
  ig_pod_metrics_t m;
  assert_int_equal(ig_metrics_extract(IG_ENGINE_VLLM_V0, vllm_v0, strlen(vllm_v0), &m), 0);
  assert_true(m.waiting == 11.0 && m.running == 2.0 && m.kv_usage == 0.91);
  assert_int_equal(m.max_lora, 0);
  assert_int_equal(m.n_running_loras, 0);
  assert_int_equal(m.block_size, 0);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vllm_v1),       cmocka_unit_test(test_vllm_v0),
      cmocka_unit_test(test_sglang),        cmocka_unit_test(test_trtllm),
      cmocka_unit_test(test_multi_series),  cmocka_unit_test(test_lora_edge_cases),
      cmocka_unit_test(test_enoent),        cmocka_unit_test(test_engine_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

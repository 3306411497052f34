/* Simulator /metrics in the dialect of the engine it imitates (vLLM V1, vLLM V0, SGLang,
 * TensorRT-LLM), plus infergate_sim_* series (simulated clock, steps) present in every dialect. */
#include <stdio.h>
#include <string.h>

#include "sim.h"

/* Appends s as a Prometheus label value (backslash, quote and newline escaped). */
static void label_value(ig_buf_t *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\') ig_buf_puts(b, "\\\\");
    else if (*s == '"') ig_buf_puts(b, "\\\"");
    else if (*s == '\n') ig_buf_puts(b, "\\n");
    else ig_buf_append(b, s, 1);
  }
}

typedef struct {
  ig_buf_t *b;
  const char *labels; /* rendered label pairs without braces, may be "" */
} out_t;

static void head(out_t *o, const char *name, const char *type, const char *help) {
  ig_buf_printf(o->b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(out_t *o, const char *name, const char *suffix, double v) {
  ig_buf_printf(o->b, "%s%s{%s} %.15g\n", name, suffix, o->labels, v);
}

static void gauge(out_t *o, const char *name, const char *help, double v) {
  head(o, name, "gauge", help);
  sample(o, name, "", v);
}

/* Counter family "name" with the sample "name_total". */
static void counter(out_t *o, const char *name, const char *help, double v) {
  head(o, name, "counter", help);
  sample(o, name, "_total", v);
}

/* Bucket bound the way Python prints floats (1.0, 0.005, 2560.0). */
static void le_value(char *buf, size_t cap, double v) {
  snprintf(buf, cap, "%g", v);
  if (!strpbrk(buf, ".e")) strncat(buf, ".0", cap - strlen(buf) - 1);
}

static void histogram(out_t *o, const char *name, const char *help, const ig_sim_hist_t *h) {
  char le[32];
  uint64_t cum = 0;
  head(o, name, "histogram", help);
  for (size_t i = 0; i <= h->n; i++) {
    cum += h->counts[i];
    if (i < h->n) le_value(le, sizeof le, h->bounds[i]);
    else strcpy(le, "+Inf");
    ig_buf_printf(o->b, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, o->labels, *o->labels ? "," : "", le,
                  (unsigned long long)cum);
  }
  ig_buf_printf(o->b, "%s_sum{%s} %.15g\n%s_count{%s} %llu\n", name, o->labels, h->sum, name, o->labels,
                (unsigned long long)h->count);
}

/* vllm:lora_requests_info as vLLM writes it: adapters with running sequences as running, adapters with
 * queued requests as waiting (a resident adapter nobody runs is in neither: its slot can be taken),
 * the value the current wall time in seconds. */
static void lora_info(ig_sim_pod_t *pod, ig_buf_t *b) {
  const ig_sim_engine_t *e = &pod->eng;
  ig_buf_puts(b, "# HELP vllm:lora_requests_info Running stats on lora requests.\n"
                 "# TYPE vllm:lora_requests_info gauge\n");
  ig_buf_printf(b, "vllm:lora_requests_info{max_lora=\"%u\",running_lora_adapters=\"", e->cfg.max_loras);
  int n = 0;
  for (int i = 0; i < e->n_adapters; i++)
    if (e->adapters[i].resident && e->adapters[i].running) {
      if (n++) ig_buf_puts(b, ",");
      label_value(b, e->adapters[i].name);
    }
  ig_buf_puts(b, "\",waiting_lora_adapters=\"");
  n = 0;
  for (int i = 0; i < e->n_adapters; i++)
    if (e->adapters[i].waiting) {
      if (n++) ig_buf_puts(b, ",");
      label_value(b, e->adapters[i].name);
    }
  ig_buf_printf(b, "\"} %.6f\n", (double)ig_wall_us() / 1e6);
}

/* The engine's running / waiting / KV gauges, live or as of the last step's end (--gauges). */
static ig_sim_gauges_t engine_gauges(const ig_sim_pod_t *pod) {
  return ig_sim_engine_gauges(&pod->eng, pod->sim->opt.step_gauges);
}

static void vllm_metrics(ig_sim_pod_t *pod, out_t *o, int v1) {
  const ig_sim_engine_t *e = &pod->eng;
  const ig_sim_stats_t *s = &e->stats;
  ig_sim_gauges_t g = engine_gauges(pod);
  gauge(o, "vllm:num_requests_running", "Number of requests in model execution batches.", g.running);
  gauge(o, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", g.waiting);
  if (v1)
    gauge(o, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", g.kv);
  else
    gauge(o, "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", g.kv);
  counter(o, "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
          (double)s->prefix_queries);
  counter(o, "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
          (double)s->prefix_hits);
  counter(o, "vllm:num_preemptions", "Cumulative number of preemption from the engine.", (double)s->preemptions);
  counter(o, "vllm:prompt_tokens", "Number of prefill tokens processed.", (double)s->prompt_tokens);
  counter(o, "vllm:generation_tokens", "Number of generation tokens processed.", (double)s->generation_tokens);
  head(o, "vllm:request_success", "counter", "Count of successfully processed requests.");
  ig_buf_printf(o->b, "vllm:request_success_total{%s,finished_reason=\"length\"} %llu\n", o->labels,
                (unsigned long long)s->requests_finished);
  histogram(o, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", &s->ttft);
  histogram(o, "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", &s->e2e);
  lora_info(pod, o->b);
  counter(o, "infergate_sim_lora_loads", "Adapters made resident in a LoRA slot (simulator only).",
          (double)s->lora_loads);
  ig_buf_printf(o->b,
                "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
                "# TYPE vllm:cache_config_info gauge\n"
                "vllm:cache_config_info{block_size=\"%d\",enable_prefix_caching=\"True\",num_gpu_blocks=\"%u\"} 1.0\n",
                IG_SIM_BLOCK_TOKENS, e->cfg.prof.kv_blocks);
}

static void sglang_metrics(ig_sim_pod_t *pod, out_t *o) {
  const ig_sim_engine_t *e = &pod->eng;
  const ig_sim_stats_t *s = &e->stats;
  ig_sim_gauges_t g = engine_gauges(pod);
  gauge(o, "sglang:num_running_reqs", "The number of running requests.", g.running);
  gauge(o, "sglang:num_queue_reqs", "The number of requests in the waiting queue.", g.waiting);
  gauge(o, "sglang:token_usage", "The token usage.", g.kv);
  gauge(o, "sglang:num_used_tokens", "The number of used tokens.",
        (double)ig_sim_engine_blocks_used(e) * IG_SIM_BLOCK_TOKENS);
  gauge(o, "sglang:cache_hit_rate", "The prefix cache hit rate.",
        s->prefix_queries ? (double)s->prefix_hits / (double)s->prefix_queries : 0.0);
  counter(o, "sglang:prompt_tokens", "Number of prefill tokens processed.", (double)s->prompt_tokens);
  counter(o, "sglang:generation_tokens", "Number of generation tokens processed.", (double)s->generation_tokens);
  histogram(o, "sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", &s->ttft);
  histogram(o, "sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds",
            &s->e2e);
}

static void trtllm_metrics(ig_sim_pod_t *pod, out_t *o) {
  gauge(o, "trtllm_num_requests_waiting", "Number of requests waiting to be scheduled.",
        engine_gauges(pod).waiting);
}

void ig_sim_metrics_render(ig_sim_pod_t *pod, ig_buf_t *b) {
  ig_sim_t *sim = pod->sim;
  ig_buf_t labels;
  ig_buf_init(&labels);
  if (sim->opt.dialect == IG_SIM_VLLM) ig_buf_puts(&labels, "engine=\"0\",");
  ig_buf_puts(&labels, "model_name=\"");
  label_value(&labels, sim->opt.model);
  ig_buf_puts(&labels, "\"");
  out_t o = {b, labels.data};
  switch (sim->opt.dialect) {
  case IG_SIM_VLLM: vllm_metrics(pod, &o, 1); break;
  case IG_SIM_VLLM_V0: vllm_metrics(pod, &o, 0); break;
  case IG_SIM_SGLANG: sglang_metrics(pod, &o); break;
  case IG_SIM_TRTLLM: trtllm_metrics(pod, &o); break;
  }

  /* simulator series: the clock is taken at the last step boundary while a step is in flight, so
   * that it is consistent with the counters (which move at step ends) */
  char podl[32];
  snprintf(podl, sizeof podl, "pod=\"%d\"", pod->index);
  out_t so = {b, podl};
  const ig_sim_stats_t *s = &pod->eng.stats;
  gauge(&so, "infergate_sim_clock_seconds", "Simulated time since start.",
        (double)(pod->busy ? pod->sim_us : ig_sim_pod_now(pod)) / 1e6);
  counter(&so, "infergate_sim_steps", "Engine steps run.", (double)s->steps);
  counter(&so, "infergate_sim_busy_seconds", "Simulated time spent in steps.", (double)s->busy_us / 1e6);
  counter(&so, "infergate_sim_generation_tokens", "Output tokens generated.", (double)s->generation_tokens);
  counter(&so, "infergate_sim_prompt_tokens", "Prompt tokens prefilled.", (double)s->prompt_tokens);
  counter(&so, "infergate_sim_requests_finished", "Requests finished.", (double)s->requests_finished);
  counter(&so, "infergate_sim_requests_aborted", "Requests aborted (client gone, chaos).",
          (double)s->requests_aborted);
  gauge(&so, "infergate_sim_requests_running", "Requests in the running batch.", pod->eng.n_running);
  gauge(&so, "infergate_sim_requests_waiting", "Requests waiting.", pod->eng.n_waiting);
  gauge(&so, "infergate_sim_kv_usage", "KV blocks in use / all blocks.", ig_sim_engine_kv_usage(&pod->eng));
  ig_buf_free(&labels);
}

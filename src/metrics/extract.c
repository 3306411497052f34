/* Engine metrics extraction: the queue, batch, KV-cache and LoRA view of one model-server pod, from a
 * Prometheus text scrape, per the metric names of each engine dialect (DESIGN.md "Model server
 * metrics"). */
#include "infergate/metrics.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *waiting;
  const char *running;
  const char *kv;     /* the engine's own KV usage metric */
  const char *kv_alt; /* accepted when kv is absent (vLLM V0 <-> V1) */
  const char *prompt_tokens, *generation_tokens; /* counters that move when a step ends */
  int vllm_info;                                 /* lora_requests_info and cache_config_info */
} dialect_t;

static const dialect_t dialects[] = {
    [IG_ENGINE_VLLM] = {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
                        "vllm:gpu_cache_usage_perc", "vllm:prompt_tokens_total",
                        "vllm:generation_tokens_total", 1},
    [IG_ENGINE_VLLM_V0] = {"vllm:num_requests_waiting", "vllm:num_requests_running",
                           "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc",
                           "vllm:prompt_tokens_total", "vllm:generation_tokens_total", 1},
    [IG_ENGINE_SGLANG] = {"sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage", NULL,
                          "sglang:prompt_tokens_total", "sglang:generation_tokens_total", 0},
    [IG_ENGINE_TRTLLM] = {"trtllm_num_requests_waiting", NULL, NULL, NULL, NULL, NULL, 0},
};

static const struct {
  const char *name;
  ig_engine_t engine;
} engine_names[] = {
    {"vllm", IG_ENGINE_VLLM},       {"vllm-v1", IG_ENGINE_VLLM}, {"vllm-v0", IG_ENGINE_VLLM_V0},
    {"vllm_v0", IG_ENGINE_VLLM_V0}, {"sglang", IG_ENGINE_SGLANG}, {"trtllm", IG_ENGINE_TRTLLM},
    {"trt-llm", IG_ENGINE_TRTLLM},  {"tensorrt-llm", IG_ENGINE_TRTLLM},
};

int ig_metrics_engine_parse(const char *s, ig_engine_t *out) {
  for (size_t i = 0; i < sizeof engine_names / sizeof engine_names[0]; i++)
    if (ig_strncaseeq(s, strlen(s), engine_names[i].name)) {
      *out = engine_names[i].engine;
      return 0;
    }
  return IG_EINVAL;
}

const char *ig_metrics_engine_name(ig_engine_t e) {
  switch (e) {
  case IG_ENGINE_VLLM: return "vllm";
  case IG_ENGINE_VLLM_V0: return "vllm-v0";
  case IG_ENGINE_SGLANG: return "sglang";
  case IG_ENGINE_TRTLLM: return "trtllm";
  }
  return "unknown";
}

/* Splits a comma-separated adapter list into names (blanks trimmed, empty entries and names that do
 * not fit IG_LORA_NAME_MAX skipped, at most IG_MAX_LORAS kept). Returns the count. */
static int split_loras(const char *list, char names[IG_MAX_LORAS][IG_LORA_NAME_MAX]) {
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

/* Reads an adapter-list label; a value too long for the buffer keeps its complete leading entries. */
static int lora_label(const ig_prom_sample_t *s, const char *key, char names[IG_MAX_LORAS][IG_LORA_NAME_MAX]) {
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
  return split_loras(buf, names);
}

/* Reads an integer label value; returns 1 and sets *out when present and numeric. */
static int int_label(const ig_prom_sample_t *s, const char *key, long *out) {
  char buf[32];
  if (ig_prom_label(s, key, buf, sizeof buf) <= 0) return 0;
  char *e = NULL;
  double d = strtod(buf, &e); /* "4" or "4.0" */
  if (e == buf || *e || !isfinite(d) || d < 0 || d > (double)LONG_MAX / 2) return 0;
  *out = (long)d;
  return 1;
}

/* Indexes of the wanted names in the set ig_metrics_extract builds per dialect. */
enum { W_WAITING, W_RUNNING, W_KV, W_KV_ALT, W_LORA_INFO, W_CACHE_INFO, W_PROMPT, W_GENERATION, W_COUNT };
_Static_assert(W_COUNT <= IG_PROM_NAMES_MAX, "more names than a set holds");

int ig_metrics_extract(ig_engine_t engine, const char *text, size_t len, ig_pod_metrics_t *out) {
  memset(out, 0, sizeof *out);
  if ((unsigned)engine >= sizeof dialects / sizeof dialects[0]) return IG_EINVAL;
  const dialect_t *d = &dialects[engine];
  /* only these lines are parsed; the others (histograms, counters) are skipped by name */
  const char *names[W_COUNT] = {
      [W_WAITING] = d->waiting,
      [W_RUNNING] = d->running,
      [W_KV] = d->kv,
      [W_KV_ALT] = d->kv_alt,
      [W_LORA_INFO] = d->vllm_info ? "vllm:lora_requests_info" : NULL,
      [W_CACHE_INFO] = d->vllm_info ? "vllm:cache_config_info" : NULL,
      [W_PROMPT] = d->prompt_tokens,
      [W_GENERATION] = d->generation_tokens,
  };
  ig_prom_names_t set;
  ig_prom_names_init(&set, names, W_COUNT);
  ig_prom_sample_t s;
  size_t pos = 0, which = 0;
  int has_alt = 0, has_lora = 0;
  double kv_alt = 0, lora_ts = 0;

  while (ig_prom_next_in(text, len, &pos, &set, &s, &which) == 1) {
    int finite = isfinite(s.value);
    switch (which) {
    case W_WAITING:
      if (finite) {
        out->waiting += s.value;
        out->has_waiting = 1;
      }
      break;
    case W_RUNNING:
      if (finite) {
        out->running += s.value;
        out->has_running = 1;
      }
      break;
    case W_KV:
      if (finite && (!out->has_kv || s.value > out->kv_usage)) out->kv_usage = s.value;
      out->has_kv |= finite;
      break;
    case W_KV_ALT:
      if (finite && (!has_alt || s.value > kv_alt)) kv_alt = s.value;
      has_alt |= finite;
      break;
    case W_LORA_INFO: {
      /* one series per state change, valued with its timestamp: the newest wins */
      if (!finite || (has_lora && s.value <= lora_ts)) break;
      has_lora = 1;
      lora_ts = s.value;
      long ml = 0;
      out->max_lora = int_label(&s, "max_lora", &ml) && ml <= INT_MAX ? (int)ml : 0;
      out->n_running_loras = lora_label(&s, "running_lora_adapters", out->running_loras);
      out->n_waiting_loras = lora_label(&s, "waiting_lora_adapters", out->waiting_loras);
      break;
    }
    case W_CACHE_INFO: {
      long v;
      if (int_label(&s, "block_size", &v) && v <= INT_MAX) out->block_size = (int)v;
      if (int_label(&s, "num_gpu_blocks", &v)) out->num_gpu_blocks = v;
      break;
    }
    case W_PROMPT:
    case W_GENERATION:
      if (finite && s.value >= 0) {
        out->tokens += s.value;
        out->has_tokens = 1;
      }
      break;
    default: break;
    }
  }
  if (!out->has_kv && has_alt) {
    out->kv_usage = kv_alt;
    out->has_kv = 1;
  }
  return out->has_waiting || out->has_running || out->has_kv ? 0 : IG_ENOENT;
}

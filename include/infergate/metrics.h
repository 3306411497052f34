/* Metrics: a pull-style zero-copy parser for the Prometheus text exposition format (scraping model
 * servers), the extraction of the engine metrics the scheduler needs, and a small registry of counters,
 * gauges and histograms rendered as Prometheus text for our own /metrics. */
#ifndef INFERGATE_METRICS_H
#define INFERGATE_METRICS_H

#include <stddef.h>

#include "infergate/core.h"

/* Model-server dialect (metric names). Also used by config.h. */
typedef enum { IG_ENGINE_VLLM, IG_ENGINE_VLLM_V0, IG_ENGINE_SGLANG, IG_ENGINE_TRTLLM } ig_engine_t;

/* ---- Prometheus text parser ------------------------------------------------------------------- */

/* One sample line. Pointers point into the caller's buffer. */
typedef struct {
  const char *name; /* metric name, e.g. "vllm:num_requests_waiting" */
  size_t name_len;
  const char *labels; /* raw text between the braces (e.g. `a="x",b="y"`); NULL/0 when none */
  size_t labels_len;
  double value; /* handles +Inf, -Inf, NaN and exponents */
} ig_prom_sample_t;

/* Returns the next sample of buf[0..len) starting at *pos (start with *pos = 0): 1 with *s filled and
 * *pos advanced past the line, or 0 at the end. Comments (# HELP, # TYPE, ...), blank lines and
 * malformed lines are skipped, never fatal. An optional timestamp after the value is ignored. Lines
 * end in "\n" (a "\r" before it is ignored); the last line may lack it. */
int ig_prom_next(const char *buf, size_t len, size_t *pos, ig_prom_sample_t *s);

/* Finds label key in s and writes its decoded value (escapes \\ \" \n resolved) NUL-terminated to out.
 * Returns the value length, IG_ENOENT when the label is absent, or IG_ETOOBIG when the value and its
 * NUL do not fit in cap (out then holds a truncated, NUL-terminated prefix when cap > 0). */
int ig_prom_label(const ig_prom_sample_t *s, const char *key, char *out, size_t cap);

/* Compares a sample's name with a NUL-terminated name. */
int ig_prom_name_is(const ig_prom_sample_t *s, const char *name);

/* A small set of metric names for ig_prom_next_in (a scrape wants a handful of metrics out of a page
 * of histograms). Fill with ig_prom_names_init; the names are not copied and must outlive the set. */
#define IG_PROM_NAMES_MAX 8
typedef struct {
  size_t n;
  const char *name[IG_PROM_NAMES_MAX];
  size_t len[IG_PROM_NAMES_MAX];
  uint64_t head[IG_PROM_NAMES_MAX], mask[IG_PROM_NAMES_MAX]; /* first (up to) 8 bytes, as loaded */
} ig_prom_names_t;

/* Builds a set from names[0..n) (n <= IG_PROM_NAMES_MAX, extra ones ignored). NULL or empty entries
 * never match but keep their index. */
void ig_prom_names_init(ig_prom_names_t *set, const char *const *names, size_t n);

/* Like ig_prom_next, but returns only the samples whose name is in set: exactly the subsequence of
 * what ig_prom_next would return, with *which set to the index of the matching name. Lines of other
 * metrics are skipped after a look at their first bytes, without parsing labels or values. */
int ig_prom_next_in(const char *buf, size_t len, size_t *pos, const ig_prom_names_t *set, ig_prom_sample_t *s,
                    size_t *which);

/* ---- engine metrics --------------------------------------------------------------------------- */

#define IG_MAX_LORAS 16
#define IG_LORA_NAME_MAX 64 /* bytes including the NUL; longer adapter names are skipped */

typedef struct {
  double waiting, running, kv_usage; /* queue length, batch size, KV-cache usage in 0..1 */
  int has_waiting, has_running, has_kv;
  int max_lora; /* from vllm:lora_requests_info; 0 when unknown */
  int n_running_loras, n_waiting_loras;
  char running_loras[IG_MAX_LORAS][IG_LORA_NAME_MAX];
  char waiting_loras[IG_MAX_LORAS][IG_LORA_NAME_MAX];
  int block_size;      /* vllm:cache_config_info; 0 when unknown */
  long num_gpu_blocks; /* vllm:cache_config_info; 0 when unknown */
  double tokens;       /* prompt + generation tokens processed (counters): moves when an engine step ends */
  int has_tokens;      /* 0 when the engine exports neither counter (TensorRT-LLM) */
} ig_pod_metrics_t;

/* Extracts the scheduler's view of one pod from a scrape (see DESIGN.md "Model server metrics").
 * Several series of one metric (e.g. one per model_name) are summed for waiting/running and maxed
 * for KV usage; non-finite values are ignored. For vLLM the V1 KV metric and the V0 one are both
 * accepted (the engine's own name wins). out is fully overwritten. Returns 0, or IG_ENOENT when
 * none of the engine's core metrics (waiting, running, KV usage) was found. */
int ig_metrics_extract(ig_engine_t engine, const char *text, size_t len, ig_pod_metrics_t *out);

/* Parses an engine name ("vllm", "vllm-v0", "sglang", "trtllm"); returns 0 or IG_EINVAL. */
int ig_metrics_engine_parse(const char *s, ig_engine_t *out);
const char *ig_metrics_engine_name(ig_engine_t e);

/* ---- exporter --------------------------------------------------------------------------------- */

typedef enum { IG_METRIC_COUNTER, IG_METRIC_GAUGE, IG_METRIC_HISTOGRAM } ig_metric_type_t;

typedef struct ig_registry ig_registry_t;
typedef struct ig_metric ig_metric_t;

/* A registry owns its metrics; metrics live until ig_registry_free. Single-threaded. */
ig_registry_t *ig_registry_new(void);
void ig_registry_free(ig_registry_t *reg);

/* Registers a metric (name and help are copied). Registering an existing name again returns the
 * existing metric when the type matches (a histogram keeps its first bounds), NULL otherwise.
 * Histogram bounds are the upper bounds of the finite buckets (sorted and de-duplicated here,
 * non-finite ones dropped; +Inf is implicit). */
ig_metric_t *ig_registry_counter(ig_registry_t *reg, const char *name, const char *help);
ig_metric_t *ig_registry_gauge(ig_registry_t *reg, const char *name, const char *help);
ig_metric_t *ig_registry_histogram(ig_registry_t *reg, const char *name, const char *help, const double *bounds,
                                   size_t n);

/* Series are keyed by a pre-rendered label string such as `model_name="a",target_model_name="b"`
 * (NULL or "" for none); build values with ig_prom_label_escape. A series is created on first use.
 * add: counters (negative amounts ignored) and gauges. set: gauges and counters. observe: histograms
 * (NaN ignored; an observation lands in the first bucket whose bound is >= it). Calls on the wrong
 * metric type, or with m NULL, are ignored. */
void ig_metric_add(ig_metric_t *m, const char *labels, double v);
void ig_metric_set(ig_metric_t *m, const char *labels, double v);
void ig_metric_observe(ig_metric_t *m, const char *labels, double v);
/* Value of a counter/gauge series, or the observation count of a histogram series; 0 when absent. */
double ig_metric_get(const ig_metric_t *m, const char *labels);
/* Histogram series sum; 0 when absent or not a histogram. */
double ig_metric_sum(const ig_metric_t *m, const char *labels);
/* Drops one series (e.g. a pod that went away); returns 0 or IG_ENOENT. */
int ig_metric_remove(ig_metric_t *m, const char *labels);
/* Drops every series of a metric. */
void ig_metric_clear(ig_metric_t *m);

/* Appends the Prometheus text exposition (version 0.0.4) of every metric, in registration order,
 * series in creation order, with # HELP and # TYPE lines. */
void ig_registry_render(const ig_registry_t *reg, ig_buf_t *out);

/* Appends s escaped as a label value (\\ \" \n), without quotes. */
void ig_prom_label_escape(ig_buf_t *out, const char *s);

/* Appends a sample value as Prometheus writes it: shortest round-trip decimal, +Inf, -Inf, NaN. */
void ig_prom_format_value(ig_buf_t *out, double v);

#endif

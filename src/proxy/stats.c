/* The Gateway API Inference Extension metrics of our /metrics, kept in an ig_registry_t: per-model
 * request counts, errors, latency, TTFT and token histograms, running requests; per-pool gauges
 * (computed when /metrics is read); scheduler latency, prefix-index hit ratio and queue sizes.
 * Token counts come from the response's "usage" object, found by scanning only the last bytes of the
 * response (no JSON parse of the stream). */
#include <stdlib.h>
#include <string.h>

#include "infergate/metrics.h"
#include "proxy.h"

static ig_registry_t *reg;
static ig_metric_t *m_req, *m_err, *m_dur, *m_ttft, *m_in, *m_out, *m_running;
static ig_metric_t *m_pool_kv, *m_pool_queue, *m_pool_ready, *m_pick, *m_prefix, *m_fc_queue;
static ig_metric_t *m_scrapes;
static ig_metric_t *m_ejected; /* issue #9: circuit breaker state per endpoint */
static ig_buf_t lbl; /* label scratch */

static const double dur_bounds[] = {0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5,
                                    6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200,
                                    1800, 2700, 3600};
static const double ttft_bounds[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                     1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560};
static const double tok_bounds[] = {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
                                    65536, 131072, 262144, 524288, 1048576};
static const double pick_bounds[] = {0.000001, 0.000002, 0.000005, 0.00001, 0.00002, 0.00005, 0.0001,
                                     0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05};
static const double ratio_bounds[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1};
#define NB(a) (sizeof(a) / sizeof(a)[0])

static void stats_init(void) {
  if (reg) return;
  reg = ig_registry_new();
  m_req = ig_registry_counter(reg, "inference_objective_request_total",
                              "Requests per client-facing model and target model.");
  m_err = ig_registry_counter(reg, "inference_objective_request_error_total",
                              "Requests that ended in an error, by HTTP status (0: no response).");
  m_dur = ig_registry_histogram(reg, "inference_objective_request_duration_seconds",
                                "Time from request received to response complete.", dur_bounds, NB(dur_bounds));
  m_ttft = ig_registry_histogram(reg, "inference_objective_request_ttft_seconds",
                                 "Time from request received to the first byte of a streamed response.",
                                 ttft_bounds, NB(ttft_bounds));
  m_in = ig_registry_histogram(reg, "inference_objective_input_tokens",
                               "Prompt tokens per request (usage.prompt_tokens).", tok_bounds, NB(tok_bounds));
  m_out = ig_registry_histogram(reg, "inference_objective_output_tokens",
                                "Output tokens per request (usage.completion_tokens).", tok_bounds, NB(tok_bounds));
  m_running = ig_registry_gauge(reg, "inference_objective_running_requests",
                                "Requests sent to a model server and not finished, per model.");
  m_pool_kv = ig_registry_gauge(reg, "inference_pool_average_kv_cache_utilization",
                                "Mean KV-cache usage (0..1) of the pool's pods with metrics younger than 2 s.");
  m_pool_queue = ig_registry_gauge(reg, "inference_pool_average_queue_size",
                                   "Mean waiting queue of the pool's pods with metrics younger than 2 s.");
  m_pool_ready = ig_registry_gauge(reg, "inference_pool_ready_pods", "Pods with metrics younger than 2 s.");
  m_pick = ig_registry_histogram(reg, "inference_extension_scheduler_e2e_duration_seconds",
                                 "Time of one scheduling decision (pod states, admission, the pick).",
                                 pick_bounds, NB(pick_bounds));
  m_prefix = ig_registry_histogram(reg, "prefix_indexer_hit_ratio",
                                   "Leading prompt blocks found in the picked pod's prefix index / prompt blocks.",
                                   ratio_bounds, NB(ratio_bounds));
  m_fc_queue = ig_registry_gauge(reg, "flow_control_queue_size", "Requests waiting in a pool's flow-control queue.");
  m_scrapes = ig_registry_counter(reg, "infergate_pool_scrapes_total", "Metrics scrapes of pool endpoints.");
  m_ejected = ig_registry_gauge(reg, "infergate_endpoint_ejected",
                                "1 while the endpoint is ejected by its circuit breaker (open or half-open).");
}

void stats_registry_free(void) {
  ig_registry_free(reg);
  reg = NULL;
  ig_buf_free(&lbl);
}

/* Renders model_name="..",target_model_name=".." (and more) into the label scratch. */
static const char *model_labels(const req_t *q, int with_target) {
  ig_buf_reset(&lbl);
  ig_buf_puts(&lbl, "model_name=\"");
  ig_prom_label_escape(&lbl, q->model);
  ig_buf_puts(&lbl, "\"");
  if (with_target) {
    ig_buf_puts(&lbl, ",target_model_name=\"");
    ig_prom_label_escape(&lbl, q->target[0] ? q->target : q->model);
    ig_buf_puts(&lbl, "\"");
  }
  return lbl.data;
}

void stats_request_sent(client_t *c) {
  req_t *q = &c->req;
  if (!q->model[0] || q->running) return;
  stats_init();
  q->running = 1;
  ig_metric_add(m_running, model_labels(q, 0), 1);
}

/* Searches backwards for needle in buf[0..len). */
static const char *rfind(const char *buf, size_t len, const char *needle) {
  size_t n = strlen(needle);
  if (len < n) return NULL;
  for (size_t i = len - n + 1; i-- > 0;)
    if (memcmp(buf + i, needle, n) == 0) return buf + i;
  return NULL;
}

/* The integer after "key": in p[0..len), or -1. */
static long key_number(const char *p, size_t len, const char *key) {
  size_t kl = strlen(key);
  for (size_t i = 0; i + kl < len; i++) {
    if (memcmp(p + i, key, kl) != 0) continue;
    size_t j = i + kl;
    while (j < len && (p[j] == ' ' || p[j] == ':')) j++;
    if (j >= len || p[j] < '0' || p[j] > '9') return -1;
    long v = 0;
    while (j < len && p[j] >= '0' && p[j] <= '9' && v < 1000000000L)
      v = v * 10 + (p[j++] - '0');
    return v;
  }
  return -1;
}

int stats_usage_scan(const char *buf, size_t len, long *in_tokens, long *out_tokens) {
  const char *u = rfind(buf, len, "\"usage\"");
  if (!u) return IG_ENOENT;
  size_t rest = len - (size_t)(u - buf);
  const char *brace = memchr(u, '{', rest);
  const char *nul = memchr(u, 'n', rest);
  if (!brace || (nul && nul < brace)) return IG_ENOENT; /* "usage":null */
  rest = len - (size_t)(brace - buf);
  const char *end = memchr(brace, '}', rest);
  size_t span = end ? (size_t)(end - brace) : rest;
  *in_tokens = key_number(brace, span, "\"prompt_tokens\"");
  *out_tokens = key_number(brace, span, "\"completion_tokens\"");
  return *in_tokens >= 0 || *out_tokens >= 0 ? 0 : IG_ENOENT;
}

/* Accounts a finished (or failed) request to a model: counters, latency, TTFT, tokens. */
void stats_request_done(client_t *c) {
  req_t *q = &c->req;
  if (!q->model[0]) return;
  stats_init();
  if (q->running) {
    q->running = 0;
    ig_metric_add(m_running, model_labels(q, 0), -1);
  }
  const char *l = model_labels(q, 1);
  ig_metric_add(m_req, l, 1);
  if (q->status >= 400 || q->status == 0) {
    ig_buf_printf(&lbl, ",error_code=\"%d\"", q->status);
    ig_metric_add(m_err, lbl.data, 1);
    return;
  }
  uint64_t now = ig_now_us();
  l = model_labels(q, 1);
  if (q->t_start_us) ig_metric_observe(m_dur, l, (double)(now - q->t_start_us) / 1e6);
  if (q->stream && q->t_first_us && q->t_start_us)
    ig_metric_observe(m_ttft, l, (double)(q->t_first_us - q->t_start_us) / 1e6);
  long in = -1, out = -1;
  if (q->tail_len && stats_usage_scan(q->tail, q->tail_len, &in, &out) == 0) {
    if (in >= 0) ig_metric_observe(m_in, l, (double)in);
    if (out >= 0) ig_metric_observe(m_out, l, (double)out);
  }
}

void stats_pick_latency(double seconds) {
  stats_init();
  ig_metric_observe(m_pick, NULL, seconds);
}

void stats_prefix_hit(double ratio) {
  stats_init();
  ig_metric_observe(m_prefix, NULL, ratio);
}

/* Sets the per-pool gauges from the current snapshot and appends the registry. */
void stats_render(ig_buf_t *out) {
  stats_init();
  static const char *const crit_names[] = {"Critical", "Standard", "Sheddable"};
  ig_metric_clear(m_pool_kv);
  ig_metric_clear(m_pool_queue);
  ig_metric_clear(m_pool_ready);
  ig_metric_clear(m_fc_queue);
  ig_metric_clear(m_scrapes);
  ig_metric_clear(m_ejected);
  uint64_t now = ig_now_ms();
  for (link_t *l = gw.endpoints.next; l && l != &gw.endpoints; l = l->next) {
    const endpoint_t *ep = container_of(l, endpoint_t, reg);
    ig_buf_reset(&lbl);
    ig_buf_puts(&lbl, "endpoint=\"");
    ig_prom_label_escape(&lbl, ep->name);
    ig_buf_puts(&lbl, "\"");
    ig_metric_set(m_ejected, lbl.data, ep->brk.state != BRK_CLOSED);
  }
  snapshot_t *s = gw.snap;
  for (size_t i = 0; s && i < s->n_backends; i++) {
    const backend_rt_t *be = &s->backends[i];
    if (!be->pool) continue;
    double kv, qs;
    size_t ready;
    pool_summary(be, now, &kv, &qs, &ready);
    ig_buf_reset(&lbl);
    ig_buf_puts(&lbl, "name=\"");
    ig_prom_label_escape(&lbl, be->cfg->name);
    ig_buf_puts(&lbl, "\"");
    ig_metric_set(m_pool_kv, lbl.data, kv);
    ig_metric_set(m_pool_queue, lbl.data, qs);
    ig_metric_set(m_pool_ready, lbl.data, (double)ready);
    size_t base = lbl.len;
    for (int k = 0; k < IG_SCHED_N_CRIT; k++) {
      lbl.len = base;
      ig_buf_printf(&lbl, ",criticality=\"%s\"", crit_names[k]);
      ig_metric_set(m_fc_queue, lbl.data, (double)pool_queue_len(be, k));
    }
    for (size_t j = 0; j < be->n_eps; j++) {
      const endpoint_t *ep = be->eps[j];
      if (!ep->pod) continue;
      for (int ok = 0; ok < 2; ok++) {
        ig_buf_reset(&lbl);
        ig_buf_puts(&lbl, "endpoint=\"");
        ig_prom_label_escape(&lbl, ep->name);
        ig_buf_puts(&lbl, ok ? "\",result=\"success\"" : "\",result=\"failure\"");
        ig_metric_set(m_scrapes, lbl.data, (double)(ok ? ep->pod->scrapes_ok : ep->pod->scrapes_failed));
      }
    }
  }
  ig_registry_render(reg, out);
}

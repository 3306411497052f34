/* The picker's state: the configuration snapshot, the pool's endpoints (resolved to the numeric
 * "ip:port" form Envoy's ORIGINAL_DST cluster needs) and the metrics registry. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "epp.h"

/* Resolves host:port to the numeric "ip:port" / "[ipv6]:port" form. Returns 0 or IG_ECONNECT. */
static int resolve_addr(const char *host, int port, char *out, size_t cap, struct sockaddr_storage *ss) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char ports[16];
  snprintf(ports, sizeof ports, "%d", port);
  if (getaddrinfo(host, ports, &hints, &res) != 0 || !res) return IG_ECONNECT;
  char ip[INET6_ADDRSTRLEN];
  int rc = IG_ECONNECT;
  memset(ss, 0, sizeof *ss);
  if (res->ai_addrlen <= sizeof *ss) memcpy(ss, res->ai_addr, res->ai_addrlen);
  if (res->ai_family == AF_INET) {
    const struct sockaddr_in *sa = (const struct sockaddr_in *)res->ai_addr;
    if (inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip)) {
      snprintf(out, cap, "%s:%d", ip, port);
      rc = 0;
    }
  } else if (res->ai_family == AF_INET6) {
    const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *)res->ai_addr;
    if (inet_ntop(AF_INET6, &sa->sin6_addr, ip, sizeof ip)) {
      snprintf(out, cap, "[%s]:%d", ip, port);
      rc = 0;
    }
  }
  freeaddrinfo(res);
  return rc;
}

static const double sched_bounds[] = {0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1};

/* The index of the pool named pool_name in cfg (NULL: its only inference pool); -1 with the reason
 * logged. */
static long find_pool(const ig_config_t *cfg, const char *pool_name) {
  long pi = -1;
  if (pool_name) {
    pi = ig_config_find_backend(cfg, pool_name);
    if (pi < 0) ig_error("epp: no pool named '%s' in %s", pool_name, cfg->source ? cfg->source : "the configuration");
    return pi;
  }
  for (size_t i = 0; i < cfg->n_backends; i++) {
    if (cfg->backends[i].policy != IG_LB_INFERENCE) continue;
    if (pi >= 0) {
      ig_error("epp: the configuration has several pools; choose one with --pool NAME");
      return -1;
    }
    pi = (long)i;
  }
  if (pi < 0) ig_error("epp: the configuration has no inference pool");
  return pi;
}

/* Whether cfg has a model for pool index pi. */
static int has_models(const ig_config_t *cfg, size_t pi) {
  for (size_t i = 0; i < cfg->n_models; i++)
    if (cfg->models[i].pool_index == pi) return 1;
  return 0;
}

size_t epp_stream_ep(epp_t *e, epp_stream_t *s) {
  if (s->ep == (size_t)-1) return (size_t)-1;
  if (s->ep_gen == e->gen && s->ep < e->n_eps) return s->ep;
  for (size_t i = 0; i < e->n_eps; i++)
    if (!strcmp(e->eps[i].addr, s->ep_addr)) {
      s->ep = i;
      s->ep_gen = e->gen;
      return i;
    }
  s->ep = (size_t)-1;
  return (size_t)-1;
}

int epp_reconfigure(epp_t *e, ig_config_t *cfg) {
  long pi = find_pool(cfg, e->pool_name);
  if (pi < 0) {
    ig_config_free(cfg);
    return IG_ENOENT;
  }
  const ig_backend_cfg_t *pool = &cfg->backends[pi];
  size_t n = pool->n_endpoints;
  epp_endpoint_t *eps = ig_calloc(n ? n : 1, sizeof *eps);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const ig_endpoint_cfg_t *ep = &pool->endpoints[i];
    if (resolve_addr(ep->host, ep->port, eps[k].addr, sizeof eps[k].addr, &eps[k].sa) != 0) {
      ig_warn("epp: cannot resolve endpoint %s:%d of pool '%s'; skipped", ep->host, ep->port, pool->name);
      continue;
    }
    k++;
  }
  /* carry what stays over (counts, scraper with its metrics and prefix index); drop what is gone */
  int changed = k != e->n_eps;
  for (size_t i = 0; i < k; i++) {
    for (size_t j = 0; j < e->n_eps; j++) {
      if (!e->eps[j].addr[0] || strcmp(e->eps[j].addr, eps[i].addr)) continue;
      eps[i].inflight = e->eps[j].inflight;
      eps[i].picks = e->eps[j].picks;
      eps[i].scr = e->eps[j].scr;
      e->eps[j].scr = NULL;
      e->eps[j].addr[0] = '\0'; /* taken */
      changed |= i != j;
      break;
    }
    if (!eps[i].scr) changed = 1;
  }
  for (size_t j = 0; j < e->n_eps; j++)
    if (e->eps[j].scr) epp_scrape_drop(e->eps[j].scr);
  free(e->eps);
  ig_config_t *old = e->cfg;
  e->cfg = cfg;
  e->pool_index = (size_t)pi;
  e->pool = pool;
  e->pool_has_models = has_models(cfg, e->pool_index);
  e->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : (4u << 20);
  e->eps = eps;
  e->n_eps = k;
  /* the copy of endpoints the scrapers were started from moved with cfg: point them at the new pool */
  e->pods = ig_realloc(e->pods, (k ? k : 1) * sizeof *e->pods);
  e->allowed = ig_realloc(e->allowed, (k ? k : 1) * sizeof *e->allowed);
  e->mark = ig_realloc(e->mark, (k ? k : 1) * sizeof *e->mark);
  memset(e->mark, 0, (k ? k : 1) * sizeof *e->mark);
  e->mark_stamp = 0;
  memset(e->pods, 0, (k ? k : 1) * sizeof *e->pods);
  e->pods_stale = 1;
  const char *prof = pool->scheduler && ig_sched_profile_exists(pool->scheduler) ? pool->scheduler : "default";
  if (strcmp(ig_sched_profile_name(e->sched), prof) || memcmp(&e->tuning, &pool->tuning, sizeof e->tuning) ||
      e->scrape_ms != pool->scrape_interval_ms) {
    ig_sched_free(e->sched);
    e->sched = epp_sched_new(pool, ig_rng_next(&e->rng));
    e->tuning = pool->tuning;
    e->scrape_ms = pool->scrape_interval_ms;
    e->uses_prefix = ig_sched_weight(e->sched, "prefix") > 0;
  }
  ig_sched_reserve(e->sched, k);
  for (size_t i = 0; i < k; i++) {
    if (eps[i].scr) {
      epp_scrape_update(e, i); /* the pool's scrape settings may have changed */
    } else if (e->loop) {
      epp_scrape_one(e, i);
    }
  }
  if (changed) e->gen++;
  epp_queue_init(e); /* a new queue_capacity */
  epp_disc_sync(e);
  ig_config_free(old);
  ig_info("epp: pool '%s' now has %zu endpoint(s)%s", pool->name, k, changed ? "" : " (unchanged)");
  return 0;
}

int epp_init(epp_t *e, ig_config_t *cfg, const char *pool_name, const epp_opts_t *opts) {
  memset(e, 0, sizeof *e);
  e->cfg = cfg;
  e->opts = *opts;
  e->pool_name = pool_name ? ig_strdup(pool_name) : NULL;
  ig_rng_seed(&e->rng, opts->seed ? opts->seed : ig_wall_us());
  long pi = find_pool(cfg, pool_name);
  if (pi < 0) goto fail;
  e->pool_index = (size_t)pi;
  e->pool = &cfg->backends[pi];
  if (e->pool->policy != IG_LB_INFERENCE)
    ig_warn("epp: '%s' is a plain backend, not an inference pool; picking among its endpoints anyway",
            e->pool->name);
  for (size_t i = 0; i < cfg->n_models; i++)
    if (cfg->models[i].pool_index == e->pool_index) e->pool_has_models = 1;
  e->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : (4u << 20);
  e->n_eps = e->pool->n_endpoints;
  e->eps = ig_calloc(e->n_eps ? e->n_eps : 1, sizeof *e->eps);
  for (size_t i = 0; i < e->n_eps; i++) {
    const ig_endpoint_cfg_t *ep = &e->pool->endpoints[i];
    if (resolve_addr(ep->host, ep->port, e->eps[i].addr, sizeof e->eps[i].addr, &e->eps[i].sa) != 0) {
      ig_error("epp: cannot resolve endpoint %s:%d of pool '%s'", ep->host, ep->port, e->pool->name);
      free(e->eps);
      e->eps = NULL;
      ig_config_free(cfg);
      e->cfg = NULL;
      free(e->pool_name);
      e->pool_name = NULL;
      return IG_ECONNECT;
    }
  }

  /* the gateway's scheduler, set up like src/proxy/pool.c does for `infergate serve` */
  e->sched = epp_sched_new(e->pool, ig_rng_next(&e->rng));
  e->tuning = e->pool->tuning;
  e->scrape_ms = e->pool->scrape_interval_ms;
  ig_sched_reserve(e->sched, e->n_eps);
  e->uses_prefix = ig_sched_weight(e->sched, "prefix") > 0;
  e->pods = ig_calloc(e->n_eps ? e->n_eps : 1, sizeof *e->pods);
  e->pods_stale = 1;
  e->allowed = ig_calloc(e->n_eps ? e->n_eps : 1, sizeof *e->allowed);
  e->mark = ig_calloc(e->n_eps ? e->n_eps : 1, sizeof *e->mark);

  e->serving = 1;
  e->reg = ig_registry_new();
  e->m_requests = ig_registry_counter(e->reg, "inference_objective_request_total",
                                      "Requests picked an endpoint, by model and target model.");
  e->m_errors = ig_registry_counter(e->reg, "inference_objective_request_error_total",
                                    "Requests answered with a local error, by model, target and HTTP status.");
  e->m_running = ig_registry_gauge(e->reg, "inference_objective_running_requests",
                                   "Picked requests whose response has not ended yet, by model.");
  e->m_ready = ig_registry_gauge(e->reg, "inference_pool_ready_pods", "Endpoints of the pool.");
  e->m_sched_dur = ig_registry_histogram(e->reg, "inference_extension_scheduler_e2e_duration_seconds",
                                         "Time to resolve the model and pick an endpoint.", sched_bounds,
                                         sizeof sched_bounds / sizeof sched_bounds[0]);
  e->m_streams = ig_registry_counter(e->reg, "infergate_epp_streams_total", "ext_proc streams opened.");
  e->m_streams_active = ig_registry_gauge(e->reg, "infergate_epp_streams_active", "ext_proc streams open.");
  e->m_picks = ig_registry_counter(e->reg, "infergate_epp_endpoint_picks_total", "Picks per endpoint.");
  e->m_inflight = ig_registry_gauge(e->reg, "infergate_epp_endpoint_inflight",
                                    "Picks per endpoint whose response has not ended yet.");
  e->m_grpc_errors = ig_registry_counter(e->reg, "infergate_epp_grpc_errors_total",
                                         "gRPC calls ended with an error status, by reason.");
  e->m_scraped = ig_registry_gauge(e->reg, "infergate_epp_endpoint_scraped",
                                  "1 when the endpoint's model-server metrics are fresh (scraped in the last 2 s).");
  e->m_waiting = ig_registry_gauge(e->reg, "infergate_epp_endpoint_waiting",
                                   "Scraped queue length (waiting requests) of the endpoint, last known value.");
  e->m_scrapes = ig_registry_gauge(e->reg, "infergate_epp_endpoint_scrapes_ok",
                                   "Successful metrics scrapes of the endpoint so far.");
  epp_queue_init(e);
  if (e->queue)
    e->m_queue = ig_registry_gauge(e->reg, "flow_control_queue_size",
                                   "Requests parked in the flow-control queue (--queue-ttl), by class.");
  return 0;
fail:
  ig_config_free(cfg);
  e->cfg = NULL;
  free(e->pool_name);
  e->pool_name = NULL;
  return IG_ENOENT;
}

void epp_metrics_refresh(epp_t *e) {
  ig_buf_t l;
  ig_buf_init(&l);
  ig_buf_puts(&l, "name=\"");
  ig_prom_label_escape(&l, e->pool->name);
  ig_buf_puts(&l, "\"");
  ig_metric_set(e->m_ready, l.data, (double)e->n_eps);
  for (size_t i = 0; i < e->n_eps; i++) {
    ig_buf_reset(&l);
    ig_buf_puts(&l, "endpoint=\"");
    ig_prom_label_escape(&l, e->eps[i].addr);
    ig_buf_puts(&l, "\"");
    ig_metric_set(e->m_inflight, l.data, e->eps[i].inflight);
  }
  epp_pods_fill(e, ig_now_ms());
  for (size_t i = 0; i < e->n_eps; i++) {
    const ig_sched_pod_t *sp = &e->pods[i];
    ig_buf_reset(&l);
    ig_buf_puts(&l, "endpoint=\"");
    ig_prom_label_escape(&l, e->eps[i].addr);
    ig_buf_puts(&l, "\"");
    ig_metric_set(e->m_scraped, l.data, sp->has_metrics && sp->metrics_age_ms < 2000 ? 1 : 0);
    if (sp->has_metrics) ig_metric_set(e->m_waiting, l.data, sp->waiting);
    ig_metric_set(e->m_scrapes, l.data, (double)epp_pods_scrapes(e, i));
  }
  ig_buf_free(&l);
}

void epp_free(epp_t *e) {
  if (e->reg) ig_registry_free(e->reg);
  if (e->eps) epp_scrape_free(e);
  if (e->sched) ig_sched_free(e->sched);
  epp_queue_free(e);
  free(e->pods);
  epp_pods_free(e);
  free(e->allowed);
  free(e->mark);
  free(e->eps);
  if (e->cfg) ig_config_free(e->cfg);
  free(e->pool_name);
  memset(e, 0, sizeof *e);
}

/* Inference pools: model-aware routing (the body's "model" picks an InferenceModel, a weighted target
 * and the integer priority; the body is rewritten when the target differs), admission and the flow-control
 * queue, and the one place where an endpoint of a pool is chosen (the scheduler, include/infergate/
 * sched.h). One ig_sched_t and one ig_sched_queue_t per pool of a snapshot; the per-endpoint state
 * (scraped metrics, prefix index) lives with the endpoint so that it survives reloads. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proxy.h"

#define QUEUE_TTL_MS 30000 /* when the route sets no timeout */
#define READY_MS 2000      /* pool-level gauges count pods with metrics younger than this */

struct pool {
  link_t qlink; /* in queued_pools while its queue is not empty */
  backend_rt_t *be;
  ig_sched_t *sched;
  ig_sched_queue_t *queue;
  ig_sched_pod_t *pods; /* per-pick copy of the endpoints' state, indexed like be->eps */
  pod_view_t view;      /* which copies changed since the last decision (journal.c) */
  int uses_prefix;
  int kicking, kick_again;
  uint64_t critical_ms; /* ig_now_ms() when a request of priority > 0 last arrived (0: never) */
  uint64_t pressure_ms; /* since when requests of priority >= 0 wait in the queue for want of capacity
                           (not for a stream slot) without a break (0: none) */
  size_t *avail; /* scratch: indexes of the endpoints that may take a request (issue #9) */
};

static link_t queued_pools = {&queued_pools, &queued_pools};
static ig_buf_t prompt_buf;                     /* scratch: the prompt text of the request being picked */

pod_t *pod_new(void) {
  pod_t *pod = IG_NEW(pod_t);
  pod->sp.prefix = ig_sched_prefix_new(0);
  pod->sp.lora = &pod->lora;
  ig_sched_pod_touch(&pod->sp); /* tracked: stamped on every change (scrape.c), see sched.h */
  return pod;
}

void pod_free(pod_t *pod) {
  if (!pod) return;
  ig_sched_prefix_free(pod->sp.prefix);
  discovery_free(pod->disc);
  free(pod);
}

ig_sched_t *pool_sched_new(const ig_backend_cfg_t *cfg, uint64_t seed) {
  const char *prof = cfg->scheduler && ig_sched_profile_exists(cfg->scheduler) ? cfg->scheduler : "default";
  ig_sched_opts_t o;
  ig_sched_opts_default(&o);
  /* a pod is stale after missing a few scrapes, and never sooner than the usual 200 ms */
  uint64_t stale = 4ull * (cfg->scrape_interval_ms ? cfg->scrape_interval_ms : 50);
  if (stale > o.stale_ms) o.stale_ms = stale;
  const ig_sched_tuning_cfg_t *t = &cfg->tuning;
  if (t->set & IG_TUNE_QUEUE_THRESHOLD) o.queue_threshold = t->queue_threshold;
  if (t->set & IG_TUNE_KV_THRESHOLD) o.kv_threshold = t->kv_threshold;
  if (t->set & IG_TUNE_STANDARD_QUEUE_MAX) o.standard_queue_max = t->standard_queue_max;
  if (t->set & IG_TUNE_RUNNING_WEIGHT) o.queue_running_weight = t->queue_running_weight;
  if (t->set & IG_TUNE_CRITICAL_SLOTS) o.critical_slots = t->critical_slots;
  if (t->set & IG_TUNE_PREFILL_TOKENS) o.queue_prefill_tokens = t->queue_prefill_tokens;
  ig_sched_t *s = ig_sched_new_opts(prof, seed, &o);
  if (ig_sched_set_weight(s, "queue", ig_sched_weight(s, "queue")) == IG_ENOTSUP) return s; /* no weights */
  if (t->set & IG_TUNE_W_QUEUE) ig_sched_set_weight(s, "queue", t->w_queue);
  if (t->set & IG_TUNE_W_KV) ig_sched_set_weight(s, "kv", t->w_kv);
  if (t->set & IG_TUNE_W_PREFIX) ig_sched_set_weight(s, "prefix", t->w_prefix);
  if (t->set & IG_TUNE_W_LORA) ig_sched_set_weight(s, "lora", t->w_lora);
  return s;
}

/* Creates the runtime of an inference pool (scheduler with the configured profile, queue). */
pool_t *pool_new(backend_rt_t *be) {
  pool_t *p = IG_NEW(pool_t);
  p->be = be;
  p->sched = pool_sched_new(be->cfg, ig_rng_next(&gw.rng));
  ig_sched_reserve(p->sched, be->n_eps);
  p->queue = ig_sched_queue_new(ig_tuning_queue_capacity(&be->cfg->tuning));
  p->pods = ig_calloc(be->n_eps ? be->n_eps : 1, sizeof *p->pods);
  pod_view_init(&p->view, be->n_eps);
  for (size_t i = 0; i < be->n_eps; i++) pod_view_add(&p->view, be->eps[i], i);
  p->avail = ig_calloc(be->n_eps ? be->n_eps : 1, sizeof *p->avail);
  p->uses_prefix = ig_sched_weight(p->sched, "prefix") > 0;
  return p;
}

/* Frees a pool; its queue is empty (queued requests hold the snapshot). */
void pool_free(pool_t *p) {
  list_remove(&p->qlink);
  discovery_pool_free(p->be);
  ig_sched_free(p->sched);
  ig_sched_queue_free(p->queue);
  free(p->pods);
  pod_view_free(&p->view);
  free(p->avail);
  free(p);
}

void pools_free_globals(void) {
  ig_buf_free(&prompt_buf);
}

unsigned pod_prefill_estimate(const ig_sched_pod_t *sp, size_t body_len, double hit) {
  double tokens = (double)(body_len / 4) * (1.0 - (hit > 0 ? hit : 0));
  unsigned est = tokens < IG_PREFILL_MAX ? (unsigned)tokens : IG_PREFILL_MAX;
  return sp->prefill <= UINT_MAX - est ? est : 0;
}

/* The batch size the scheduler uses for a pod: the pool's configured one, else what its scrapes taught
 * (scrape.c, ig_sched_slots_learn). */
static unsigned pod_batch_slots(const backend_rt_t *be, const ig_sched_pod_t *sp) {
  return be->cfg->tuning.batch_slots ? (unsigned)be->cfg->tuning.batch_slots : sp->batch_slots;
}

/* Brings pool ctx's copy of endpoint i up to date (but for its age) and tells the scheduler when it
 * changed (ig_sched_pick_at rereads only those). Returns whether the copy changed. */
static int pod_sync(void *ctx, size_t i) {
  pool_t *p = ctx;
  backend_rt_t *be = p->be;
  endpoint_t *ep = be->eps[i];
  ig_sched_pod_t *sp = &p->pods[i];
  unsigned slots = be->cfg->tuning.batch_slots ? (unsigned)be->cfg->tuning.batch_slots : 0; /* else learned */
  int changed = ig_sched_pod_copy(sp, ep->pod ? &ep->pod->sp : NULL, 0, slots); /* the age: pods_fill */
  sp->id = i;
  sp->inflight = ep->inflight;
  if (changed) ig_sched_pods_changed(p->sched, i);
  return changed;
}

/* Brings p->pods up to date for a decision at now_ms: the copies of the endpoints touched since the
 * last decision (journal.c), or all, then every copy's age. Returns the number of pods whose metrics
 * are younger than READY_MS (0: the pool is "blind", the scheduler cannot help). */
static size_t pods_fill(pool_t *p, uint64_t now_ms) {
  backend_rt_t *be = p->be;
  size_t n = be->n_eps;
  if (pod_view_replay(&p->view, pod_sync, p)) {
    for (size_t i = 0; i < n; i++) {
      /* as epp_pods_fill: the misses of many pods overlap */
      if (i + 2 * POD_AHEAD < n) __builtin_prefetch(&be->eps[i + 2 * POD_AHEAD]->pod);
      if (i + POD_AHEAD < n) pod_prefetch(be->eps[i + POD_AHEAD]);
      pod_sync(p, i);
    }
  }
  return pod_view_ages(p->pods, n, now_ms, READY_MS, pod_sync, p);
}

/* Whether the pods' queues are kept for Critical requests now (one arrived within the window). */
static int reserve_critical(const pool_t *p, uint64_t now) {
  return p->critical_ms && now - p->critical_ms < IG_SCHED_CRITICAL_WINDOW_MS;
}

/* The request's integer priority (and its class) for the scheduler. */
static void sched_priority(pool_t *p, const req_t *q, ig_sched_request_t *sr) {
  sr->priority = q->priority;
  sr->has_priority = 1;
  sr->crit = ig_sched_priority_crit(q->priority);
  uint64_t now = ig_now_ms();
  if (q->priority > 0) p->critical_ms = now ? now : 1;
  sr->reserve_critical = reserve_critical(p, now);
}

/* The scheduler's request for c (the prompt only when the profile scores prefixes). */
static void sched_request(pool_t *p, client_t *c, ig_sched_request_t *sr) {
  req_t *q = &c->req;
  memset(sr, 0, sizeof *sr);
  sr->model = q->target[0] ? q->target : NULL;
  discovery_subset(p->be, sr->model, &sr->subset, &sr->n_subset); /* pods serving the model */
  sched_priority(p, q, sr);
  if (q->fairness[0]) {
    sr->fairness_id = q->fairness;
    sr->fairness_id_len = strlen(q->fairness);
  }
  if (!p->uses_prefix || !c->body.len) return;
  ig_oai_req_t scan;
  if (ig_oai_scan(c->body.data, c->body.len, &scan) != 0 || scan.prompt_kind == IG_OAI_PROMPT_NONE) return;
  ig_buf_reset(&prompt_buf);
  /* only the leading part the prefix index hashes is decoded (the epp cuts it the same way, so the
   * same request hashes to the same blocks in both) */
  const ig_sched_opts_t *o = ig_sched_opts(p->sched);
  size_t cap = o->prefix_block_chars * o->prefix_max_blocks;
  if (ig_oai_prompt_text_max(c->body.data, c->body.len, &scan, cap, &prompt_buf) != 0) return;
  sr->prompt = prompt_buf.data;
  sr->prompt_len = prompt_buf.len;
}

/* Least in-flight endpoint of the pool (of the pods serving model, when discovered) other than
 * exclude (rotating start for ties). */
static endpoint_t *pick_least_request(backend_rt_t *be, const char *model, const endpoint_t *exclude) {
  endpoint_t *ep = discovery_least_request(be, model, exclude);
  if (!ep) return lb_for_policy(IG_LB_LEAST_REQUEST)->pick(be, exclude); /* skips unusable endpoints */
  uint64_t now = ig_now_ms();
  if (endpoint_usable(be, ep, now)) return ep;
  /* issue #9: that pod is ejected or at its stream cap: the least loaded usable pod serving model */
  const size_t *sub = NULL;
  size_t n = 0;
  endpoint_t *fallback = NULL;
  ep = NULL;
  discovery_subset(be, model, &sub, &n);
  for (size_t i = 0; sub && i < n; i++) {
    endpoint_t *e = be->eps[sub[i]];
    if (!endpoint_usable(be, e, now)) continue;
    if (e == exclude) {
      fallback = e;
      continue;
    }
    if (!ep || e->inflight < ep->inflight) ep = e;
  }
  return ep ? ep : fallback;
}

/* Issue #9: narrows *subset (all pods when NULL) to the endpoints that may take a request now (circuit
 * breaker, max_streams_per_endpoint), in p->avail. Returns 0, IG_EAGAIN when none may but one is only
 * at its cap (wait in the queue), or IG_ECONNECT when every one is ejected. */
static int usable_subset(pool_t *p, const size_t **subset, size_t *n, uint64_t now) {
  backend_rt_t *be = p->be;
  if (*subset && *n == 0) return 0; /* no pod serves the model: the scheduler says so */
  if (!be->cfg->max_streams_per_endpoint && !breakers_not_closed()) return 0; /* all usable */
  size_t m = *subset ? *n : be->n_eps, k = 0;
  for (size_t i = 0; i < m; i++) {
    size_t idx = *subset ? (*subset)[i] : i;
    if (endpoint_usable(be, be->eps[idx], now)) p->avail[k++] = idx;
  }
  if (k == 0) return lb_unusable_reason(be, *subset, *n, now) == LB_NONE_AT_CAP ? IG_EAGAIN : IG_ECONNECT;
  if (k < m) {
    *subset = p->avail;
    *n = k;
  }
  return 0;
}

/* Runs the scheduler for c and stores the pick and its first fallback in the request. filled: the
 * caller has just run pods_fill and it found ready pods (no second pass over the endpoints); t0_us:
 * when the caller's decision began (the scheduler e2e histogram). Returns 0, IG_EFULL when the
 * profile sheds the request, or IG_ENOENT when the pool has no endpoint. */
static int pool_do_pick(pool_t *p, client_t *c, int filled, uint64_t t0_us) {
  req_t *q = &c->req;
  backend_rt_t *be = p->be;
  q->picked = q->alt = NULL;
  q->prefix_hit = 0;
  if (be->n_eps == 0) return IG_ENOENT;
  q->lora_id = q->target[0] ? ig_sched_lora_id(q->target) : 0;
  uint64_t now = ig_now_ms();
  if (!filled && pods_fill(p, now) == 0) {
    /* no pod has usable metrics (none exposes them, or all went quiet): our own counts still work */
    q->picked = pick_least_request(be, q->target, NULL);
    if (q->picked) return 0;
    return lb_unusable_reason(be, NULL, 0, now) == LB_NONE_AT_CAP ? IG_EAGAIN : IG_ECONNECT;
  }
  ig_sched_request_t sr;
  sched_request(p, c, &sr);
  int why = usable_subset(p, &sr.subset, &sr.n_subset, now);
  if (why < 0) return why;
  size_t order[2], n_order = 2;
  int rc = ig_sched_pick_at(p->sched, p->pods, be->n_eps, now, &sr, order, &n_order);
  stats_pick_latency((double)(ig_now_us() - t0_us) / 1e6);
  if (rc < 0) return rc;
  size_t k = order[0];
  pod_t *pod = be->eps[k]->pod;
  pod->sp.pending = p->pods[k].pending;
  /* an adapter sent to a pod takes a slot (or waits for one) before the next scrape says so */
  if (q->lora_id) ig_sched_lora_note_sent(&pod->sp, &pod->lora, q->target, q->lora_id);
  endpoint_touch(be->eps[k]);
  double hit = ig_sched_last_prefix_hit(p->sched);
  if (hit >= 0) stats_prefix_hit(hit);
  q->prefix_hit = hit > 0 ? (float)hit : 0;
  q->picked = be->eps[k];
  if (n_order > 1) q->alt = be->eps[order[1]];
  return 0;
}

/* The endpoint for a request to a pool: the scheduler's pick made at admission; on a retry after a
 * failed connect (exclude set), its first fallback. Least-request when there is neither. */
endpoint_t *pool_pick(backend_rt_t *be, req_t *r, const endpoint_t *exclude) {
  endpoint_t *ep = NULL;
  if (!exclude && r->picked) {
    ep = r->picked;
    r->picked = NULL;
    return ep;
  }
  if (exclude && r->alt && r->alt != exclude && endpoint_usable(be, r->alt, ig_now_ms())) {
    ep = r->alt;
    r->alt = NULL;
    return ep;
  }
  r->picked = r->alt = NULL;
  return pick_least_request(be, r->target, exclude);
}

static void send_shed(client_t *c, const char *code, const char *msg) {
  client_send_error_ex(c, 429, "rate_limit_exceeded", code, msg, "Retry-After: 1\r\n", 0);
}

static void queue_track(pool_t *p) {
  if (ig_sched_queue_len(p->queue)) {
    if (!p->qlink.next) list_insert_tail(&queued_pools, &p->qlink);
  } else {
    list_remove(&p->qlink);
  }
  int top;
  if (ig_sched_queue_top_priority(p->queue, &top) != 0 || top < 0) p->pressure_ms = 0; /* set by queue_push */
}

/* Whether requests of priority >= 0 have waited in the queue long enough that Sheddable ones are shed
 * rather than queued behind them (ig_sched_pressure_sustained). */
static int pressure_sustained(const pool_t *p, uint64_t now) {
  return ig_sched_pressure_sustained(p->pressure_ms, now, p->be->cfg->scrape_interval_ms);
}

/* Sheds the queued requests of negative priority (they could only be served after those waiting). */
static void shed_queued_below(pool_t *p) {
  void *evicted = NULL;
  while (ig_sched_queue_evict_below(p->queue, 0, &evicted) == 0 && evicted) {
    client_t *e = evicted;
    e->req.qnode = NULL;
    send_shed(e, "shed", "the pool is saturated: Sheddable request shed; retry later");
  }
  queue_track(p);
}

/* Parks c in the pool's queue until a pod frees up, its TTL runs out (503) or it is evicted (429).
 * shed_lower: admission queued it for want of capacity, so the queued Sheddable requests (which could
 * only be served after it) are shed now when the pressure is sustained (pressure_sustained; else
 * pool_kick sheds them once it is); not when it waits for a stream slot (max_streams_per_endpoint). */
static void queue_push(pool_t *p, client_t *c, int shed_lower) {
  req_t *q = &c->req;
  uint64_t now = ig_now_ms();
  uint64_t ttl = QUEUE_TTL_MS;
  if (q->deadline_ms) ttl = q->deadline_ms > now ? q->deadline_ms - now : 1;
  void *evicted = NULL;
  ig_sched_qnode_t *node = NULL;
  int rc = ig_sched_queue_push_prio(p->queue, c, q->priority, q->fairness[0] ? q->fairness : NULL,
                                    strlen(q->fairness), now, ttl, &node, &evicted);
  if (rc < 0) {
    send_shed(c, "queue_full", "the pool is saturated and its queue is full; retry later");
    return;
  }
  q->qnode = node;
  c->state = CS_QUEUED;
  queue_track(p);
  client_queue_timer(c, ttl);
  if (evicted) {
    client_t *e = evicted;
    e->req.qnode = NULL;
    send_shed(e, "queue_full", "evicted from the queue by a request of higher priority; retry later");
  }
  /* queued Sheddable requests would only wait behind requests like this one: once those have waited
   * a while, shed them (here or in pool_kick) rather than after their TTL */
  if (!shed_lower || q->priority < 0) return;
  if (!p->pressure_ms) p->pressure_ms = now | 1;
  if (pressure_sustained(p, now)) shed_queued_below(p);
}

/* Whether the request is GET (or HEAD) /v1/models, with or without a query string. */
static int is_models_list(const req_t *q) {
  if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0) return 0;
  static const char p[] = "/v1/models";
  char end = q->path[sizeof p - 1];
  return strncmp(q->path, p, sizeof p - 1) == 0 && (end == '\0' || end == '?');
}

/* Answers GET /v1/models locally (OpenAI list format) with every InferenceModel of the request's pool. */
static void send_models_list(client_t *c) {
  static time_t created; /* first listing: a stable timestamp for the life of the process */
  if (!created) created = time(NULL);
  const ig_config_t *cfg = c->req.snap->cfg;
  backend_rt_t *be = c->req.be;
  ig_buf_t out;
  ig_buf_init(&out);
  ig_buf_puts(&out, "{\"object\":\"list\",\"data\":[");
  int first = 1;
  for (size_t i = 0; i < cfg->n_models; i++) {
    const ig_model_cfg_t *m = &cfg->models[i];
    if (m->pool_index != be->index) continue;
    ig_buf_puts(&out, first ? "{\"id\":\"" : ",{\"id\":\"");
    first = 0;
    ig_json_escape(&out, m->model_name, strlen(m->model_name));
    ig_buf_printf(&out, "\",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"infergate\"}",
                  (long long)created);
  }
  discovery_models_json(be, cfg, &out, &first, (long long)created); /* what the pods serve */
  ig_buf_puts(&out, "]}\n");
  client_local_response(c, 200, "application/json", out.data, out.len);
  ig_buf_free(&out);
}

int pool_prepare(client_t *c) {
  req_t *q = &c->req;
  const ig_config_t *cfg = q->snap->cfg;
  backend_rt_t *be = q->be;
  const size_t *sub;
  size_t n_sub;
  if (is_models_list(q) && (be->has_models || discovery_models_json(be, cfg, NULL, NULL, 0))) {
    send_models_list(c);
    return 1;
  }
  if (strcmp(q->method, "POST") != 0 || c->body.len == 0) return 0; /* e.g. GET /v1/models */
  ig_oai_req_t scan;
  int rc = ig_oai_scan(c->body.data, c->body.len, &scan);
  if (rc == IG_ETOOBIG) {
    client_send_error(c, 400, "invalid_model", "the model name is too long", 0);
    return 1;
  }
  if (rc < 0) {
    client_send_error(c, 400, "invalid_json", "the request body is not a valid JSON object", 0);
    return 1;
  }
  const char *model;
  if (scan.has_model) {
    model = scan.model;
  } else if (cfg->default_model) {
    model = cfg->default_model;
  } else {
    client_send_error(c, 400, "missing_model", "you must provide a model parameter", 0);
    return 1;
  }
  snprintf(q->model, sizeof q->model, "%s", model);
  const ig_model_cfg_t *m = ig_config_find_model(cfg, q->model, strlen(q->model));
  if (m && m->pool_index != be->index) m = NULL;
  const char *target = q->model;
  int prio;
  q->priority = 0; /* Standard */
  q->stream = scan.stream == 1;
  if (m) {
    q->priority = m->priority; /* set from `priority` or `criticality` alike */
    target = ig_config_pick_target(m, &gw.rng);
  } else if (q->hdr_crit >= 0) {
    q->priority = ig_config_criticality_priority((ig_criticality_t)q->hdr_crit); /* the client's header */
  }
  if (objective_priority(c, &prio) == 0) q->priority = prio; /* x-gateway-inference-objective */
  q->criticality = ig_config_priority_band(q->priority);
  /* no InferenceModel: with discovery, the model (after the rewrite header) must be served by a pod */
  if (!m && (be->has_models ||
             discovery_subset(be, q->rewrite[0] ? q->rewrite : q->model, &sub, &n_sub) == IG_ENOENT)) {
    ig_buf_t msg;
    ig_buf_init(&msg);
    ig_buf_printf(&msg, "The model `%s` does not exist.", q->model);
    client_send_error(c, 404, "model_not_found", msg.data, 0);
    ig_buf_free(&msg);
    return 1;
  }
  if (q->rewrite[0]) target = q->rewrite; /* x-gateway-model-name-rewrite beats the weighted split */
  snprintf(q->target, sizeof q->target, "%s", target);
  if (scan.has_model && strcmp(q->target, scan.model) == 0) return 0;
  ig_buf_reset(&c->tmp);
  rc = scan.has_model ? ig_oai_rewrite_model(c->body.data, c->body.len, &scan, q->target, &c->tmp)
                      : ig_oai_insert_model(c->body.data, c->body.len, q->target, &c->tmp);
  if (rc < 0) {
    client_send_error(c, 400, "invalid_json", "cannot rewrite the model of this request body", 0);
    return 1;
  }
  ig_buf_t t = c->body;
  c->body = c->tmp;
  c->tmp = t;
  return 0;
}

/* Admission for a request to an inference pool whose body is complete: pick now, queue, or shed. */
int pool_admit(client_t *c) {
  req_t *q = &c->req;
  pool_t *p = q->be->pool;
  if (!p || !q->model[0]) return 0; /* not an inference request (GET /v1/models): least-request */
  uint64_t t0 = ig_now_us();
  int filled = pods_fill(p, ig_now_ms()) > 0;
  if (filled) {
    ig_sched_request_t sr;
    memset(&sr, 0, sizeof sr);
    sr.model = q->target[0] ? q->target : NULL;
    discovery_subset(p->be, sr.model, &sr.subset, &sr.n_subset);
    sched_priority(p, q, &sr);
    if (usable_subset(p, &sr.subset, &sr.n_subset, ig_now_ms()) < 0) goto pick; /* pool_do_pick says why */
    switch (ig_sched_admit(p->sched, p->pods, p->be->n_eps, &sr, p->queue)) {
    case IG_SCHED_ADMIT_SHED:
      /* shed for the requests queued ahead of it: only when they have waited a while (else it waits
       * behind them); shed for a saturated pool: always */
      if (!pressure_sustained(p, ig_now_ms()) &&
          ig_sched_admit(p->sched, p->pods, p->be->n_eps, &sr, NULL) != IG_SCHED_ADMIT_SHED) {
        queue_push(p, c, 0);
        return 1;
      }
      send_shed(c, "shed", "the pool is saturated: Sheddable request shed; retry later");
      return 1;
    case IG_SCHED_ADMIT_QUEUE:
      queue_push(p, c, 1);
      return 1;
    case IG_SCHED_ADMIT_PICK:
      break;
    }
  }
pick:;
  int rc = pool_do_pick(p, c, filled, t0);
  if (rc == IG_EFULL) {
    send_shed(c, "shed", "the pool is saturated: Sheddable request shed; retry later");
    return 1;
  }
  if (rc == IG_EAGAIN) { /* every endpoint is at max_streams_per_endpoint: wait for one */
    queue_push(p, c, 0);
    return 1;
  }
  if (rc == IG_ECONNECT) {
    client_send_error(c, 503, "no_healthy_upstream", "every endpoint is ejected by the circuit breaker", 0);
    return 1;
  }
  if (rc < 0) {
    client_send_error(c, 503, "no_healthy_upstream", "no endpoint available", 0);
    return 1;
  }
  return 0;
}

void pool_unqueue(client_t *c) {
  req_t *q = &c->req;
  if (!q->qnode) return;
  pool_t *p = q->be->pool;
  ig_sched_queue_cancel(p->queue, q->qnode);
  q->qnode = NULL;
  queue_track(p);
}

void pool_queue_timeout(client_t *c) {
  pool_unqueue(c);
  client_send_error(c, 503, "queue_timeout", "timed out waiting for a model server with capacity", 0);
}

/* Takes queued requests while some pod has room (or the pool went blind) and sends them. Re-entrant
 * calls (a dequeued request that fails at once finishes and kicks again) only mark another round. */
void pool_kick(backend_rt_t *be) {
  pool_t *p = be->pool;
  if (!p || !ig_sched_queue_len(p->queue)) return;
  if (p->kicking) {
    p->kick_again = 1;
    return;
  }
  p->kicking = 1;
  if (pressure_sustained(p, ig_now_ms())) shed_queued_below(p);
  do {
    p->kick_again = 0;
    while (ig_sched_queue_len(p->queue)) {
      uint64_t now = ig_now_ms(), t0 = ig_now_us();
      size_t ready = pods_fill(p, now);
      int top = 0;
      ig_sched_queue_top_priority(p->queue, &top);
      if (ready && ig_sched_pool_full_for(p->sched, p->pods, be->n_eps, top, reserve_critical(p, now))) break;
      const size_t *all = NULL;
      size_t n_all = 0;
      if (usable_subset(p, &all, &n_all, now) == IG_EAGAIN) break; /* every endpoint at its cap */
      void *data = NULL;
      int rc = ig_sched_queue_pop(p->queue, now, &data, NULL);
      if (rc == IG_ENOENT || !data) break;
      client_t *c = data;
      c->req.qnode = NULL;
      queue_track(p);
      if (rc == IG_ETIMEDOUT) {
        client_send_error(c, 503, "queue_timeout", "timed out waiting for a model server with capacity", 0);
        continue;
      }
      rc = pool_do_pick(p, c, ready > 0, t0);
      if (rc == IG_EFULL) {
        send_shed(c, "shed", "the pool is saturated: Sheddable request shed; retry later");
        continue;
      }
      if (rc == IG_EAGAIN) { /* the pods that may serve it are at their cap: back in line */
        queue_push(p, c, 0);
        break;
      }
      if (rc == IG_ECONNECT) {
        client_send_error(c, 503, "no_healthy_upstream", "every endpoint is ejected by the circuit breaker", 0);
        continue;
      }
      if (rc < 0) {
        client_send_error(c, 503, "no_healthy_upstream", "no endpoint available", 0);
        continue;
      }
      request_send(c);
    }
  } while (p->kick_again);
  p->kicking = 0;
  queue_track(p);
}

/* A scrape came in: pools with queued requests may have room now. */
void pools_on_scrape(endpoint_t *ep) {
  (void)ep;
  for (link_t *l = queued_pools.next; l != &queued_pools;) {
    pool_t *p = container_of(l, pool_t, qlink);
    l = l->next;
    /* the kick may empty (and unlink) p, never another pool */
    pool_kick(p->be);
  }
}

void pool_summary(const backend_rt_t *be, uint64_t now_ms, double *avg_kv, double *avg_queue, size_t *ready) {
  double kv = 0, qs = 0;
  size_t n = 0;
  for (size_t i = 0; i < be->n_eps; i++) {
    const pod_t *pod = be->eps[i]->pod;
    if (!pod || !pod->sp.has_metrics || now_ms - pod->sp.scraped_ms >= READY_MS) continue;
    kv += pod->sp.kv_usage;
    qs += pod->sp.waiting;
    n++;
  }
  *avg_kv = n ? kv / (double)n : 0;
  *avg_queue = n ? qs / (double)n : 0;
  *ready = n;
}

size_t pool_queue_len(const backend_rt_t *be, int crit) {
  if (!be->pool) return 0;
  if (crit < 0) return ig_sched_queue_len(be->pool->queue);
  return ig_sched_queue_band_len(be->pool->queue, (ig_sched_crit_t)crit);
}

static void json_str(ig_buf_t *out, const char *s) {
  ig_buf_puts(out, "\"");
  ig_json_escape(out, s, strlen(s));
  ig_buf_puts(out, "\"");
}

static void json_names(ig_buf_t *out, const char (*names)[IG_SCHED_LORA_NAME_MAX], int n) {
  ig_buf_puts(out, "[");
  for (int i = 0; i < n && i < IG_SCHED_MAX_LORAS; i++) {
    if (i) ig_buf_puts(out, ",");
    json_str(out, names[i]);
  }
  ig_buf_puts(out, "]");
}

/* ,"queue_by_priority":{"5":2,"0":1} - requests queued per priority band, highest first. */
static void queue_by_priority(const ig_sched_queue_t *q, ig_buf_t *out) {
  int prio[IG_SCHED_QUEUE_MAX_BANDS];
  size_t len[IG_SCHED_QUEUE_MAX_BANDS];
  size_t n = ig_sched_queue_bands(q, prio, len, IG_SCHED_QUEUE_MAX_BANDS);
  ig_buf_puts(out, ",\"queue_by_priority\":{");
  for (size_t i = 0; i < n; i++) ig_buf_printf(out, "%s\"%d\":%zu", i ? "," : "", prio[i], len[i]);
  ig_buf_puts(out, "}");
}

/* {"pools":[{"name","scheduler","engine","queue","pods":[{...}]}]} for the current snapshot. */
void pools_debug_json(ig_buf_t *out) {
  uint64_t now = ig_now_ms();
  snapshot_t *s = gw.snap;
  ig_buf_puts(out, "{\"pools\":[");
  int first = 1;
  for (size_t i = 0; s && i < s->n_backends; i++) {
    backend_rt_t *be = &s->backends[i];
    if (!be->pool) continue;
    if (!first) ig_buf_puts(out, ",");
    first = 0;
    ig_buf_puts(out, "{\"name\":");
    json_str(out, be->cfg->name);
    ig_buf_puts(out, ",\"scheduler\":");
    json_str(out, ig_sched_profile_name(be->pool->sched));
    ig_buf_puts(out, ",\"engine\":");
    json_str(out, ig_metrics_engine_name(be->cfg->engine));
    ig_buf_printf(out, ",\"max_streams_per_endpoint\":%u,\"batch_slots\":%u,\"reserve_critical\":%s",
                  be->cfg->max_streams_per_endpoint, (unsigned)be->cfg->tuning.batch_slots,
                  reserve_critical(be->pool, ig_now_ms()) ? "true" : "false");
    ig_buf_printf(out, ",\"scrape_interval_ms\":%u,\"queue_capacity\":%zu,\"queue\":%zu,"
                  "\"queue_by_criticality\":{\"Critical\":%zu,\"Standard\":%zu,\"Sheddable\":%zu}",
                  be->cfg->scrape_interval_ms, ig_sched_queue_capacity(be->pool->queue),
                  pool_queue_len(be, -1), pool_queue_len(be, IG_CRIT_CRITICAL),
                  pool_queue_len(be, IG_CRIT_STANDARD), pool_queue_len(be, IG_CRIT_SHEDDABLE));
    queue_by_priority(be->pool->queue, out);
    ig_buf_puts(out, ",\"pods\":[");
    for (size_t j = 0; j < be->n_eps; j++) {
      endpoint_t *ep = be->eps[j];
      const pod_t *pod = ep->pod;
      if (j) ig_buf_puts(out, ",");
      ig_buf_puts(out, "{\"endpoint\":");
      json_str(out, ep->name);
      ig_buf_printf(out, ",\"inflight\":%u,\"breaker\":\"%s\",\"ejections\":%llu,\"consecutive_failures\":%u",
                    ep->inflight, breaker_state_name(&ep->brk, now), (unsigned long long)ep->brk.ejections_total,
                    ep->brk.fails);
      if (!pod) {
        ig_buf_puts(out, ",\"has_metrics\":false}");
        continue;
      }
      const ig_sched_pod_t *sp = &pod->sp;
      ig_buf_printf(out, ",\"has_metrics\":%s,\"waiting\":", sp->has_metrics ? "true" : "false");
      ig_prom_format_value(out, pod->raw_waiting);
      ig_buf_printf(out, ",\"lora_blocked\":%u,\"running\":", pod->lora_blocked);
      ig_prom_format_value(out, sp->running);
      ig_buf_puts(out, ",\"kv\":");
      ig_prom_format_value(out, sp->kv_usage);
      if (sp->has_metrics)
        ig_buf_printf(out, ",\"age_ms\":%llu", (unsigned long long)(now - pod->sp.scraped_ms));
      else
        ig_buf_puts(out, ",\"age_ms\":null");
      ig_buf_printf(out,
                    ",\"pending\":%u,\"done\":%u,\"prefill_tokens\":%u,\"batch_slots\":%u,"
                    "\"scrapes_ok\":%llu,\"scrapes_failed\":%llu,\"last_status\":%d,\"prefix_blocks\":%zu,"
                    "\"max_lora\":%d,\"loras\":",
                    sp->pending, sp->done, sp->prefill, pod_batch_slots(be, sp),
                    (unsigned long long)pod->scrapes_ok, (unsigned long long)pod->scrapes_failed,
                    pod->last_status, sp->prefix ? ig_sched_prefix_size(sp->prefix) : (size_t)0,
                    pod->lora.max_lora);
      json_names(out, pod->lora.running_loras, pod->lora.n_running_loras);
      ig_buf_puts(out, ",\"waiting_loras\":");
      json_names(out, pod->lora.waiting_loras, pod->lora.n_waiting_loras);
      discovery_debug_json(pod, out);
      ig_buf_puts(out, "}");
    }
    ig_buf_puts(out, "]}");
  }
  ig_buf_puts(out, "]}\n");
}

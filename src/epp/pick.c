/* The endpoint choice of the picker: the gateway's scheduler (include/infergate/sched.h) with the
 * pool's profile over the scraped pods (pods.c), exactly like src/proxy/pool.c picks for `infergate
 * serve`, with the request's target model, criticality, prompt text (prefix affinity) and Envoy's
 * subset hint. Admission: SHED gives 429; QUEUE (Critical/Standard on a saturated pool) waits in the
 * flow-control queue when it is on (--queue-ttl, queue.c), else is picked anyway. When no
 * pod has fresh metrics (the pool exposes none, or all went quiet) the pick is least outstanding over
 * our own in-flight picks. --shed-inflight N sheds Sheddable requests on our own counts in both cases. */
#include <limits.h>
#include <string.h>

#include "epp.h"

int epp_reserve_critical(const epp_t *e, uint64_t now_ms) {
  return e->queue && e->critical_ms && now_ms - e->critical_ms < IG_SCHED_CRITICAL_WINDOW_MS;
}

/* Whether ep is in the request's subset hint (when it has one). */
static int in_subset(const epp_pick_req_t *rq, const epp_endpoint_t *ep) {
  if (!rq->has_subset) return 1;
  for (size_t i = 0; i < rq->n_subset; i++)
    if (rq->subset[i] && strcmp(rq->subset[i], ep->addr) == 0) return 1;
  return 0;
}

/* Writes the indexes of the endpoints that serve the model (discovery) and that the subset hint allows
 * to e->allowed, in index order, once per pick (a scan of the discovery list per endpoint would cost
 * pods x pods). Returns how many. */
static size_t allowed_set(epp_t *e, const epp_pick_req_t *rq) {
  uint32_t stamp = 0;
  if (rq->disc) {
    if (++e->mark_stamp == 0) { /* wrapped: forget every mark */
      memset(e->mark, 0, e->n_eps * sizeof *e->mark);
      e->mark_stamp = 1;
    }
    stamp = e->mark_stamp;
    for (size_t k = 0; k < rq->n_disc; k++)
      if (rq->disc[k] < e->n_eps) e->mark[rq->disc[k]] = stamp;
  }
  size_t n = 0;
  for (size_t i = 0; i < e->n_eps; i++) {
    if (rq->disc && e->mark[i] != stamp) continue;
    if (!in_subset(rq, &e->eps[i])) continue;
    e->allowed[n++] = i;
  }
  return n;
}

/* a is a better choice than b: fewer in flight, then fewer picks so far (round robin among idle
 * endpoints), then the first in the pool. */
static int better(const epp_endpoint_t *a, size_t ia, const epp_endpoint_t *b, size_t ib) {
  if (a->inflight != b->inflight) return a->inflight < b->inflight;
  if (a->picks != b->picks) return a->picks < b->picks;
  return ia < ib;
}

/* Least outstanding among the allowed endpoints e->allowed[0..n_allowed): the best 1 + EPP_FALLBACKS
 * in order. */
static void pick_least(epp_t *e, size_t n_allowed, epp_pick_t *out) {
  size_t want = n_allowed < 1 + EPP_FALLBACKS ? n_allowed : 1 + EPP_FALLBACKS;
  out->n = 0;
  while (out->n < want) {
    size_t best = (size_t)-1;
    for (size_t a = 0; a < n_allowed; a++) {
      size_t i = e->allowed[a];
      int taken = 0;
      for (size_t k = 0; k < out->n; k++)
        if (out->order[k] == i) taken = 1;
      if (taken) continue;
      if (best == (size_t)-1 || better(&e->eps[i], i, &e->eps[best], best)) best = i;
    }
    out->order[out->n++] = best;
  }
}

/* The scheduler's pick. Returns 0, IG_EFULL (shed), IG_EAGAIN (wait: may_wait and the queue is on) or
 * another negative code (fall back). */
static int pick_sched(epp_t *e, const epp_pick_req_t *rq, size_t n_allowed, epp_pick_t *out, int may_wait) {
  ig_sched_request_t sr;
  memset(&sr, 0, sizeof sr);
  sr.model = rq->target && rq->target[0] ? rq->target : NULL;
  sr.crit = (ig_sched_crit_t)rq->crit; /* same order by value (sched.h) */
  uint64_t now = ig_now_ms();
  if (rq->crit == IG_CRIT_CRITICAL) e->critical_ms = now | 1;
  sr.reserve_critical = epp_reserve_critical(e, now); /* lower priorities may wait: a queue to wait in */
  if (e->uses_prefix && rq->prompt && rq->prompt_len) {
    const ig_sched_opts_t *o = ig_sched_opts(e->sched);
    size_t cap = o->prefix_block_chars * o->prefix_max_blocks; /* what the prefix index can use */
    sr.prompt = rq->prompt;
    sr.prompt_len = rq->prompt_len < cap ? rq->prompt_len : cap;
  }
  if (rq->has_subset || rq->disc) { /* else all are allowed: no list for the scheduler */
    sr.subset = e->allowed;
    sr.n_subset = n_allowed;
  }
  /* with the queue on, a new request does not overtake those of its priority or higher that wait */
  const ig_sched_queue_t *q = may_wait ? e->queue : NULL;
  switch (ig_sched_admit(e->sched, e->pods, e->n_eps, &sr, q)) {
  case IG_SCHED_ADMIT_SHED:
    /* shed for a saturated pool at once; for the requests parked ahead of it only once they have
     * waited a while (epp_pressure_sustained): until then it waits behind them */
    if (q && !epp_pressure_sustained(e, now) &&
        ig_sched_admit(e->sched, e->pods, e->n_eps, &sr, NULL) != IG_SCHED_ADMIT_SHED)
      return IG_EAGAIN;
    return IG_EFULL;
  case IG_SCHED_ADMIT_QUEUE:
    if (q) return IG_EAGAIN;
    break; /* no queue: picked anyway (see the comment at the top) */
  case IG_SCHED_ADMIT_PICK:
    break;
  }
  size_t order[1 + EPP_FALLBACKS], n_order = 1 + EPP_FALLBACKS;
  int rc = ig_sched_pick_at(e->sched, e->pods, e->n_eps, now, &sr, order, &n_order);
  if (rc < 0) return rc;
  out->n = 0;
  for (size_t i = 0; i < n_order && out->n < 1 + EPP_FALLBACKS; i++)
    if (order[i] < e->n_eps) out->order[out->n++] = order[i];
  if (!out->n) return IG_ENOENT;
  epp_pods_picked(e, out->order[0]);
  return 0;
}

int epp_pick(epp_t *e, const epp_pick_req_t *rq, epp_pick_t *out, int may_wait) {
  out->n = 0;
  size_t n_allowed = allowed_set(e, rq), n_busy = 0;
  for (size_t a = 0; e->opts.shed_inflight && a < n_allowed; a++)
    n_busy += e->eps[e->allowed[a]].inflight >= e->opts.shed_inflight;
  if (n_allowed == 0) return IG_ENOENT;
  if (rq->crit == IG_CRIT_SHEDDABLE && e->opts.shed_inflight && n_busy == n_allowed) return IG_EFULL;
  int rc = IG_ENOENT;
  if (e->sched && epp_pods_fill(e, ig_now_ms()) > 0) {
    rc = pick_sched(e, rq, n_allowed, out, may_wait);
    if (rc == IG_EFULL || rc == IG_EAGAIN) return rc;
  }
  double hit = rc < 0 ? 0 : ig_sched_last_prefix_hit(e->sched);
  if (rc < 0) pick_least(e, n_allowed, out);
  epp_endpoint_t *p = &e->eps[out->order[0]];
  p->inflight++;
  epp_pods_inflight(e, out->order[0]);
  p->picks++;
  /* an adapter takes a slot (or waits for one) on the pod before the next scrape says so, and its
   * count there tells slot waits from queueing (ig_sched_lora_blocked, in the scraper) */
  out->lora_id = epp_pods_adapter_sent(e, out->order[0], rq->target);
  out->prefill = epp_pods_prefill_add(e, out->order[0], rq->body_len, hit);
  return 0;
}

void epp_release(epp_t *e, size_t ep, uint32_t lora_id) {
  if (ep >= e->n_eps) return;
  if (e->eps[ep].inflight > 0) e->eps[ep].inflight--;
  /* nothing of ours in flight there: no prompt of ours waits either (heals a count that a stream from
   * before a reload could not give back) */
  if (!e->eps[ep].inflight) epp_pods_answered(e, ep, UINT_MAX);
  epp_pods_inflight(e, ep);
  epp_pods_finished(e, ep, lora_id);
  epp_queue_poke(e); /* its batch slot may be what a parked request waits for */
}

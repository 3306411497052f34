/* The endpoint choice of the picker. Everything the ext_proc state machine needs from a scheduler goes
 * through epp_pick()/epp_release(): today least-outstanding over the pool's static endpoints (our own
 * in-flight picks per endpoint). The shared pool code (src/proxy/pool.c: scraped queue / KV metrics)
 * and the scheduler (ig_sched_pick with filters, scorers, saturation and shedding) replace the body
 * of epp_pick() once their API is final; the contract above (primary + fallbacks, 503, 429) stays. */
#include <string.h>

#include "epp.h"

/* Whether ep is allowed by the request's subset hint. */
static int allowed(const epp_pick_req_t *rq, const epp_endpoint_t *ep) {
  if (!rq->has_subset) return 1;
  for (size_t i = 0; i < rq->n_subset; i++)
    if (rq->subset[i] && strcmp(rq->subset[i], ep->addr) == 0) return 1;
  return 0;
}

/* a is a better choice than b: fewer in flight, then fewer picks so far (round robin among idle
 * endpoints), then the first in the pool. */
static int better(const epp_endpoint_t *a, size_t ia, const epp_endpoint_t *b, size_t ib) {
  if (a->inflight != b->inflight) return a->inflight < b->inflight;
  if (a->picks != b->picks) return a->picks < b->picks;
  return ia < ib;
}

int epp_pick(epp_t *e, const epp_pick_req_t *rq, epp_pick_t *out) {
  out->n = 0;
  size_t n_allowed = 0, n_busy = 0;
  for (size_t i = 0; i < e->n_eps; i++) {
    if (!allowed(rq, &e->eps[i])) continue;
    n_allowed++;
    if (e->opts.shed_inflight && e->eps[i].inflight >= e->opts.shed_inflight) n_busy++;
  }
  if (n_allowed == 0) return IG_ENOENT;
  /* Our own in-flight count stands in for the scraped queue until the scheduler plugs in. */
  if (rq->crit == IG_CRIT_SHEDDABLE && e->opts.shed_inflight && n_busy == n_allowed) return IG_EFULL;
  /* Partial selection: the best 1 + EPP_FALLBACKS candidates in order. */
  size_t want = n_allowed < 1 + EPP_FALLBACKS ? n_allowed : 1 + EPP_FALLBACKS;
  while (out->n < want) {
    size_t best = (size_t)-1;
    for (size_t i = 0; i < e->n_eps; i++) {
      if (!allowed(rq, &e->eps[i])) continue;
      int taken = 0;
      for (size_t k = 0; k < out->n; k++)
        if (out->order[k] == i) taken = 1;
      if (taken) continue;
      if (best == (size_t)-1 || better(&e->eps[i], i, &e->eps[best], best)) best = i;
    }
    out->order[out->n++] = best;
  }
  epp_endpoint_t *p = &e->eps[out->order[0]];
  p->inflight++;
  p->picks++;
  return 0;
}

void epp_release(epp_t *e, size_t ep) {
  if (ep < e->n_eps && e->eps[ep].inflight > 0) e->eps[ep].inflight--;
}

/* Scraped model-server state for the picker: each endpoint of the pool gets a src/proxy endpoint_t
 * scraped by the gateway's own scraper (src/proxy/scrape.c, on the picker's libuv loop), so the
 * scheduler sees the same waiting/running/KV/LoRA numbers as in `infergate serve`. The endpoints are
 * owned here (snap_refs = 1), not by a gateway snapshot. */
#include <stdlib.h>
#include <string.h>

#include "../proxy/proxy.h"
#include "epp.h"

#define EPP_READY_MS 2000 /* a pod counts as scraped when its metrics are younger than this */

void epp_scrape_one(epp_t *e, size_t i) {
  const ig_endpoint_cfg_t *c = &e->pool->endpoints[i];
  endpoint_t *ep = IG_NEW(endpoint_t);
  ep->host = ig_strdup(c->host);
  ep->port = c->port;
  snprintf(ep->name, sizeof ep->name, "%s:%d", c->host, c->port);
  memcpy(&ep->addr, &e->eps[i].sa, sizeof ep->addr);
  ep->resolved = 1;
  ep->snap_refs = 1; /* ours */
  list_init(&ep->idle);
  ep->scrape_refs = 1;
  scrape_start(ep, e->pool);
  e->eps[i].scr = ep;
  e->pods_stale = 1;
}

void epp_scrape_start(epp_t *e, uv_loop_t *loop) {
  if (!gw.loop) gw.loop = loop; /* scrape.c runs on gw.loop; the gateway is not started in this process */
  e->loop = loop;
  for (size_t i = 0; i < e->n_eps; i++)
    epp_scrape_one(e, i);
  epp_disc_sync(e);
}

void epp_scrape_update(epp_t *e, size_t i) {
  if (e->eps[i].scr) scrape_start(e->eps[i].scr, e->pool);
}

void epp_scrape_drop(endpoint_t *ep) {
  if (!ep) return;
  scrape_stop(ep);
  ep->snap_refs = 0;
  endpoint_maybe_free(ep);
}

void epp_scrape_stop(epp_t *e) {
  epp_disc_stop();
  for (size_t i = 0; i < e->n_eps; i++)
    if (e->eps[i].scr) scrape_stop(e->eps[i].scr);
}

void epp_scrape_free(epp_t *e) {
  epp_disc_free();
  for (size_t i = 0; i < e->n_eps; i++) {
    endpoint_t *ep = e->eps[i].scr;
    if (!ep) continue;
    e->eps[i].scr = NULL;
    e->pods_stale = 1;
    scrape_stop(ep); /* no-op when stopped already */
    ep->snap_refs = 0;
    endpoint_maybe_free(ep); /* freed now, or by the last close callback if one is still pending */
  }
}

/* Brings the picker ctx's copy of endpoint i up to date (but for its age) and tells the scheduler when
 * it changed (ig_sched_pick_at rereads only those). Returns whether the copy changed. */
static int pod_sync(void *ctx, size_t i) {
  epp_t *e = ctx;
  ig_sched_pod_t *sp = &e->pods[i];
  const endpoint_t *ep = e->eps[i].scr;
  unsigned slots = (unsigned)e->tuning.batch_slots; /* 0: learned (scrape.c) */
  int changed = ig_sched_pod_copy(sp, ep && ep->pod ? &ep->pod->sp : NULL, 0, slots); /* the age: below */
  sp->id = i;
  sp->inflight = e->eps[i].inflight;
  if (changed && e->sched) ig_sched_pods_changed(e->sched, i);
  return changed;
}

/* The copies of the endpoints touched since the last fill (journal.c), or all, then every age. */
size_t epp_pods_fill(epp_t *e, uint64_t now_ms) {
  size_t n = e->n_eps;
  if (!e->view) e->view = IG_NEW(pod_view_t);
  if (e->pods_stale) {
    pod_view_init(e->view, n);
    for (size_t i = 0; i < n; i++) pod_view_add(e->view, e->eps[i].scr, i);
    e->pods_stale = 0;
  }
  if (pod_view_replay(e->view, pod_sync, e)) {
    for (size_t i = 0; i < n; i++) {
      /* each pod lies two pointers away: fetch the endpoint of a later pod, and the pod of a nearer one
       * whose endpoint came in already, so that the misses of many pods overlap */
      const endpoint_t *far = i + 2 * POD_AHEAD < n ? e->eps[i + 2 * POD_AHEAD].scr : NULL;
      if (far) __builtin_prefetch(&far->pod);
      if (i + POD_AHEAD < n) pod_prefetch(e->eps[i + POD_AHEAD].scr);
      pod_sync(e, i);
    }
  }
  return pod_view_ages(e->pods, n, now_ms, EPP_READY_MS, pod_sync, e);
}

void epp_pods_inflight(epp_t *e, size_t k) {
  if (k < e->n_eps) e->pods[k].inflight = e->eps[k].inflight;
}

void epp_pods_free(epp_t *e) {
  if (e->view) pod_view_free(e->view);
  free(e->view);
  e->view = NULL;
}

void epp_pods_picked(epp_t *e, size_t k) {
  endpoint_t *ep = k < e->n_eps ? e->eps[k].scr : NULL;
  if (!ep || !ep->pod) return;
  ep->pod->sp.pending = e->pods[k].pending;
  endpoint_touch(ep);
}

ig_sched_t *epp_sched_new(const ig_backend_cfg_t *pool, uint64_t seed) { return pool_sched_new(pool, seed); }

uint32_t epp_pods_adapter_sent(epp_t *e, size_t k, const char *target) {
  endpoint_t *ep = k < e->n_eps ? e->eps[k].scr : NULL;
  uint32_t id = target && target[0] ? ig_sched_lora_id(target) : 0;
  if (!id || !ep || !ep->pod) return 0;
  ig_sched_lora_note_sent(&ep->pod->sp, &ep->pod->lora, target, id);
  endpoint_touch(ep);
  return ig_sched_lora_flight_add(&ep->pod->flight, id, 1) == 0 ? id : 0;
}

void epp_pods_finished(epp_t *e, size_t k, uint32_t id) {
  endpoint_t *ep = k < e->n_eps ? e->eps[k].scr : NULL;
  if (!ep || !ep->pod) return;
  ep->pod->sp.done++;
  endpoint_touch(ep);
  if (id) ig_sched_lora_flight_add(&ep->pod->flight, id, -1);
}

unsigned epp_pods_prefill_add(epp_t *e, size_t k, size_t body_len, double hit) {
  endpoint_t *ep = k < e->n_eps ? e->eps[k].scr : NULL;
  if (!ep || !ep->pod) return 0;
  unsigned est = pod_prefill_estimate(&ep->pod->sp, body_len, hit);
  if (!est) return 0;
  ep->pod->sp.prefill += est;
  endpoint_touch(ep);
  return est;
}

void epp_pods_answered(epp_t *e, size_t k, unsigned tokens) {
  endpoint_t *ep = k < e->n_eps ? e->eps[k].scr : NULL;
  if (!tokens || !ep || !ep->pod || !ep->pod->sp.prefill) return;
  ig_sched_pod_t *sp = &ep->pod->sp;
  /* at least 0: a stream that outlived a reload may meet its pod's count reset (epp_release) */
  sp->prefill -= tokens < sp->prefill ? tokens : sp->prefill;
  endpoint_touch(ep);
}

uint64_t epp_pods_scrapes(const epp_t *e, size_t i) {
  const endpoint_t *ep = i < e->n_eps ? e->eps[i].scr : NULL;
  return ep && ep->pod ? ep->pod->scrapes_ok : 0;
}

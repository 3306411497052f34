/* Baseline balancing policies over a backend's static endpoint list, as a table selected by name.
 * Every picker skips endpoints that are ejected by their circuit breaker or at the backend's
 * max_streams_per_endpoint (issue #9), and returns NULL when none is left. */
#include <string.h>

#include "proxy.h"

int endpoint_usable(const backend_rt_t *be, const endpoint_t *ep, uint64_t now_ms) {
  if (!be->cfg) return breaker_allows(&ep->brk, now_ms);
  unsigned cap = be->cfg->max_streams_per_endpoint;
  if (cap && ep->inflight >= cap) return 0;
  return be->cfg->breaker_disabled || breaker_allows(&ep->brk, now_ms);
}

int lb_unusable_reason(const backend_rt_t *be, const size_t *subset, size_t n, uint64_t now_ms) {
  size_t m = subset ? n : be->n_eps;
  for (size_t i = 0; i < m; i++) {
    const endpoint_t *ep = be->eps[subset ? subset[i] : i];
    if (!be->cfg || be->cfg->breaker_disabled || breaker_allows(&ep->brk, now_ms)) return LB_NONE_AT_CAP;
  }
  return LB_NONE_EJECTED;
}

/* Round-robin: the next usable endpoint after the last pick, skipping exclude when another is usable. */
static endpoint_t *pick_round_robin(backend_rt_t *be, const endpoint_t *exclude) {
  if (be->n_eps == 0) return NULL;
  uint64_t now = ig_now_ms();
  endpoint_t *fallback = NULL;
  for (size_t tries = 0; tries < be->n_eps; tries++) {
    endpoint_t *ep = be->eps[be->rr++ % be->n_eps];
    if (!endpoint_usable(be, ep, now)) continue;
    if (ep != exclude) return ep;
    fallback = ep;
  }
  return fallback;
}

/* Random: uniform over the usable endpoints other than exclude (exclude when it is the only one). */
static endpoint_t *pick_random(backend_rt_t *be, const endpoint_t *exclude) {
  if (be->n_eps == 0) return NULL;
  uint64_t now = ig_now_ms();
  size_t usable = 0, others = 0;
  for (size_t i = 0; i < be->n_eps; i++) {
    if (!endpoint_usable(be, be->eps[i], now)) continue;
    usable++;
    others += be->eps[i] != exclude;
  }
  if (usable == 0) return NULL;
  int skip_excl = others > 0;
  size_t m = skip_excl ? others : usable;
  size_t k = (size_t)(ig_rng_next(&gw.rng) % m);
  for (size_t i = 0; i < be->n_eps; i++) {
    endpoint_t *ep = be->eps[i];
    if (!endpoint_usable(be, ep, now) || (skip_excl && ep == exclude)) continue;
    if (k-- == 0) return ep;
  }
  return NULL;
}

/* Least-request: fewest in-flight requests (counted locally) among the usable endpoints; the scan
 * starts at a rotating offset so that ties spread instead of piling onto the first endpoint. */
static endpoint_t *pick_least_request(backend_rt_t *be, const endpoint_t *exclude) {
  if (be->n_eps == 0) return NULL;
  uint64_t now = ig_now_ms();
  endpoint_t *best = NULL, *fallback = NULL;
  size_t start = be->rr++;
  for (size_t i = 0; i < be->n_eps; i++) {
    endpoint_t *ep = be->eps[(start + i) % be->n_eps];
    if (!endpoint_usable(be, ep, now)) continue;
    if (ep == exclude) {
      fallback = ep;
      continue;
    }
    if (!best || ep->inflight < best->inflight) best = ep;
  }
  return best ? best : fallback;
}

static const lb_ops_t lb_table[] = {
    {"round-robin", IG_LB_ROUND_ROBIN, pick_round_robin},
    {"random", IG_LB_RANDOM, pick_random},
    {"least-request", IG_LB_LEAST_REQUEST, pick_least_request},
    /* inference pools go through pool_pick; least-request is their fallback picker */
    {"inference", IG_LB_INFERENCE, pick_least_request},
};

/* Looks a policy up by its configuration name; NULL when unknown. */
const lb_ops_t *lb_find(const char *name) {
  for (size_t i = 0; i < sizeof lb_table / sizeof lb_table[0]; i++)
    if (strcmp(lb_table[i].name, name) == 0) return &lb_table[i];
  return NULL;
}

/* The policy for a configured enum value (round-robin for anything unknown). */
const lb_ops_t *lb_for_policy(ig_lb_policy_t policy) {
  for (size_t i = 0; i < sizeof lb_table / sizeof lb_table[0]; i++)
    if (lb_table[i].policy == policy) return &lb_table[i];
  return &lb_table[0];
}

/* Baseline balancing policies over a backend's static endpoint list, as a table selected by name. */
#include <string.h>

#include "proxy.h"

/* Round-robin: the next endpoint after the last pick, skipping exclude when there is another. */
static endpoint_t *pick_round_robin(backend_rt_t *be, const endpoint_t *exclude) {
  if (be->n_eps == 0) return NULL;
  for (size_t tries = 0; tries < be->n_eps; tries++) {
    endpoint_t *ep = be->eps[be->rr++ % be->n_eps];
    if (ep != exclude || be->n_eps == 1) return ep;
  }
  return be->eps[0];
}

/* Random: uniform over the endpoints other than exclude. */
static endpoint_t *pick_random(backend_rt_t *be, const endpoint_t *exclude) {
  if (be->n_eps == 0) return NULL;
  if (be->n_eps == 1) return be->eps[0];
  size_t n = be->n_eps, skip = n;
  for (size_t i = 0; i < n; i++)
    if (be->eps[i] == exclude) skip = i;
  size_t m = skip < n ? n - 1 : n;
  size_t k = (size_t)(ig_rng_next(&gw.rng) % m);
  if (skip < n && k >= skip) k++;
  return be->eps[k];
}

/* Least-request: fewest in-flight requests (counted locally); the scan starts at a rotating offset
 * so that ties spread instead of piling onto the first endpoint. */
static endpoint_t *pick_least_request(backend_rt_t *be, const endpoint_t *exclude) {
  if (be->n_eps == 0) return NULL;
  endpoint_t *best = NULL;
  size_t start = be->rr++;
  for (size_t i = 0; i < be->n_eps; i++) {
    endpoint_t *ep = be->eps[(start + i) % be->n_eps];
    if (ep == exclude && be->n_eps > 1) continue;
    if (!best || ep->inflight < best->inflight) best = ep;
  }
  return best;
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

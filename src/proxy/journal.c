/* The change journal of the endpoints' scheduler state, and pod views over it.
 *
 * A pool (and the endpoint picker) keeps a copy of each of its endpoints' scheduler state
 * (ig_sched_pod_t) for its picks. Refreshing every copy on every decision reads every endpoint and its
 * pod: at 1,000 endpoints, most of a decision. Instead, every place that changes what a copy holds
 * (a stored scrape, a pending or done count, an adapter noted as sent, the in-flight count) records the
 * endpoint here, and a view replays what was recorded since it last looked: only those copies are
 * refreshed. A view that fell a whole journal behind, or has not been filled yet, refreshes all. */
#include <stdlib.h>

#include "proxy.h"

#define JOURNAL_SIZE (1u << 15) /* entries: ~0.5 s of changes at 60,000 per second */

static const endpoint_t *journal[JOURNAL_SIZE];
static uint64_t journal_head; /* entries ever recorded */

void endpoint_touch(const endpoint_t *ep) { journal[journal_head++ & (JOURNAL_SIZE - 1)] = ep; }

static size_t view_home(const pod_view_t *v, const endpoint_t *ep) {
  return (size_t)(((uint64_t)(uintptr_t)ep >> 4) * 0x9E3779B97F4A7C15ULL >> 32) & v->mask;
}

void pod_view_init(pod_view_t *v, size_t n) {
  free(v->keys);
  free(v->idx);
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  v->keys = ig_calloc(cap, sizeof *v->keys);
  v->idx = ig_calloc(cap, sizeof *v->idx);
  v->mask = cap - 1;
  v->full = 1;
  v->dup = 0;
}

void pod_view_add(pod_view_t *v, const endpoint_t *ep, size_t i) {
  if (!ep) return;
  size_t h = view_home(v, ep);
  while (v->keys[h] && v->keys[h] != ep) h = (h + 1) & v->mask;
  if (v->keys[h]) { /* one endpoint at two indexes: the map cannot name both */
    v->dup = 1;
    return;
  }
  v->keys[h] = ep;
  v->idx[h] = (uint32_t)i;
}

void pod_view_free(pod_view_t *v) {
  free(v->keys);
  free(v->idx);
  v->keys = NULL;
  v->idx = NULL;
}

int pod_view_replay(pod_view_t *v, int (*sync)(void *ctx, size_t i), void *ctx) {
  if (v->full || v->dup || journal_head - v->seen > JOURNAL_SIZE) {
    v->full = 0;
    v->seen = journal_head;
    return 1;
  }
  for (; v->seen < journal_head; v->seen++) {
    const endpoint_t *ep = journal[v->seen & (JOURNAL_SIZE - 1)];
    for (size_t h = view_home(v, ep); v->keys[h]; h = (h + 1) & v->mask) {
      if (v->keys[h] != ep) continue;
      sync(ctx, v->idx[h]);
      break;
    }
  }
  return 0;
}

size_t pod_view_ages(ig_sched_pod_t *pods, size_t n, uint64_t now_ms, uint64_t ready_ms,
                     int (*sync)(void *ctx, size_t i), void *ctx) {
  size_t ready = 0;
  for (size_t i = 0; i < n; i++) {
    ig_sched_pod_t *sp = &pods[i];
    sp->metrics_age_ms = sp->has_metrics && now_ms > sp->scraped_ms ? now_ms - sp->scraped_ms : 0;
    ready += sp->has_metrics && sp->metrics_age_ms < ready_ms;
  }
#ifdef IG_CHECKS /* sanitizer and debug builds: no change went unjournaled */
  for (size_t i = 0; i < n; i++) {
    unsigned inflight = pods[i].inflight;
    uint64_t age = pods[i].metrics_age_ms;
    if (sync(ctx, i) || inflight != pods[i].inflight) {
      ig_error("endpoint %zu of a pool changed without endpoint_touch", i);
      abort();
    }
    pods[i].metrics_age_ms = age;
  }
#else
  (void)sync;
  (void)ctx;
#endif
  return ready;
}

/* Scorers and filters, as tables registered by name, and the original GIE filter tree. */
#include <math.h>
#include <string.h>

#include "sched_internal.h"

/* ---- pod helpers ---- */

int ig_sched_pod_has_lora(const char lists[][IG_SCHED_LORA_NAME_MAX], int n, const char *model) {
  if (!model || n <= 0) return 0;
  if (n > IG_SCHED_MAX_LORAS) n = IG_SCHED_MAX_LORAS;
  for (int i = 0; i < n; i++)
    if (strncmp(lists[i], model, IG_SCHED_LORA_NAME_MAX) == 0) return 1;
  return 0;
}

static int lora_free_slot(const ig_sched_pod_t *p) {
  if (p->lora && p->lora_hint) return p->lora_free;
  return p->lora && p->lora->max_lora > 0 && p->lora->n_running_loras < p->lora->max_lora;
}

/* What a pod's copied mask (ig_sched_pod_set_lora) says about the request's adapter: 0 absent,
 * 1 present, -1 ask the lists (ig_sched_lora_bit). */
static int lora_mask_says(const ig_sched_ctx_t *ctx, uint64_t mask) {
  uint64_t bit = ig_sched_lora_bit(ctx->model_id);
  if (!(mask & bit)) return 0;
  return bit == 1ull << 63 ? -1 : 1;
}

/* The adapter checks compare interned ids when the pod's lists were interned (lora.c). */
static int lora_running(const ig_sched_ctx_t *ctx, const ig_sched_pod_t *p) {
  const ig_sched_lora_t *l = p->lora;
  if (l && p->lora_hint) {
    int says = ctx->model ? lora_mask_says(ctx, p->lora_running_mask) : 0;
    if (says >= 0) return says;
  }
  return l && ig_sched_lora_has(l->running_loras, l->ids_valid ? l->running_ids : NULL, l->n_running_loras,
                                ctx->model, ctx->model_id);
}

static int lora_waiting(const ig_sched_ctx_t *ctx, const ig_sched_pod_t *p) {
  const ig_sched_lora_t *l = p->lora;
  if (l && p->lora_hint) {
    int says = ctx->model ? lora_mask_says(ctx, p->lora_waiting_mask) : 0;
    if (says >= 0) return says;
  }
  return l && ig_sched_lora_has(l->waiting_loras, l->ids_valid ? l->waiting_ids : NULL, l->n_waiting_loras,
                                ctx->model, ctx->model_id);
}

/* 1 when the request's adapter cannot start on p now: p reports adapter slots, the adapter is not
 * running there and every slot is taken by running adapters (it would wait for one to drain). */
int ig_sched_lora_blocked_on(const ig_sched_ctx_t *ctx, const ig_sched_pod_t *p) {
  if (!p->lora) return 0;
  int full = p->lora_hint ? p->lora_full : !lora_free_slot(p) && p->lora->max_lora > 0;
  return full && !lora_running(ctx, p);
}

/* lora score of one pod: 1.0 adapter running, 0.8 a free adapter slot, 0.6 adapter waiting, else 0. */
double ig_sched_lora_score(const ig_sched_ctx_t *ctx, const ig_sched_pod_t *p) {
  if (!p->lora) return 0;
  if (lora_running(ctx, p)) return 1.0;
  if (lora_free_slot(p)) return 0.8;
  if (lora_waiting(ctx, p)) return 0.6;
  return 0;
}

/* ---- scorers ---- */

/* queue: (maxQ - q) / max(maxQ - minQ, 1) over the candidates, 1 when they are all equal; q =
 * ig_sched_pod_qload (waiting + pending + queue_running_weight x running + prefill /
 * queue_prefill_tokens). The span is at least one waiting request, so that a difference of a few
 * running sequences weighs little (integer queues score as in GIE). */
static int queue_prepare(ig_sched_ctx_t *ctx) {
  ctx->qmin = INFINITY;
  ctx->qmax = -INFINITY;
  for (size_t i = 0; i < ctx->n; i++) {
    double q = ig_sched_pod_qload(&ctx->s->o, &ctx->pods[ctx->cand[i]]);
    if (q < ctx->qmin) ctx->qmin = q;
    if (q > ctx->qmax) ctx->qmax = q;
  }
  return ctx->qmax > ctx->qmin;
}

static double queue_score(const ig_sched_ctx_t *ctx, size_t pod) {
  if (!(ctx->qmax > ctx->qmin)) return 1;
  double span = ctx->qmax - ctx->qmin < 1 ? 1 : ctx->qmax - ctx->qmin;
  double v = (ctx->qmax - ig_sched_pod_qload(&ctx->s->o, &ctx->pods[pod])) / span;
  return v < 0 ? 0 : v > 1 ? 1 : v; /* a pod outside the candidate set may fall outside [min, max] */
}

/* kv: free KV-cache fraction. */
static double kv_score(const ig_sched_ctx_t *ctx, size_t pod) { return 1 - ig_sched_pod_kv(&ctx->pods[pod]); }

/* prefix: matched leading blocks / blocks of the prompt (ctx->match is filled by the caller). */
static double prefix_score(const ig_sched_ctx_t *ctx, size_t pod) {
  if (!ctx->n_hashes || !ctx->match) return 0;
  return (double)ctx->match[pod] / (double)ctx->n_hashes;
}

/* Without adapter information on any candidate every lora score is 0. */
static int lora_prepare(ig_sched_ctx_t *ctx) {
  for (size_t i = 0; i < ctx->n; i++)
    if (ctx->pods[ctx->cand[i]].lora) return 1;
  return 0;
}

/* lora: 1.0 adapter running, 0.8 a free adapter slot, 0.6 adapter waiting, 0 otherwise. */
static double lora_score(const ig_sched_ctx_t *ctx, size_t pod) { return ig_sched_lora_score(ctx, &ctx->pods[pod]); }

/* Indexed by SC_*. */
const ig_scorer_t ig_sched_scorers[N_SCORERS] = {
    [SC_QUEUE] = {"queue", queue_prepare, queue_score},
    [SC_KV] = {"kv", NULL, kv_score},
    [SC_PREFIX] = {"prefix", NULL, prefix_score},
    [SC_LORA] = {"lora", lora_prepare, lora_score},
};

int ig_sched_scorer_index(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < N_SCORERS; i++)
    if (strcmp(ig_sched_scorers[i].name, name) == 0) return i;
  return -1;
}

/* ---- filters ---- */

size_t ig_sched_filter_fresh(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (ig_sched_pod_fresh(&ctx->s->o, &ctx->pods[in[i]])) out[m++] = in[i];
  return m;
}

size_t ig_sched_filter_unsaturated(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (!ig_sched_pod_sat(&ctx->s->o, &ctx->pods[in[i]])) out[m++] = in[i];
  return m;
}

/* Critical: queue below critical_queue_max (128). */
static size_t gie_low_queue(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (ig_sched_pod_queue(&ctx->pods[in[i]]) < ctx->s->o.critical_queue_max) out[m++] = in[i];
  return m;
}

/* Non-critical: queue <= queue_threshold and KV <= kv_threshold (room without hurting Critical). */
static size_t gie_has_capacity(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    const ig_sched_pod_t *p = &ctx->pods[in[i]];
    if (ig_sched_pod_queue(p) <= ctx->s->o.queue_threshold && ig_sched_pod_kv(p) <= ctx->s->o.kv_threshold)
      out[m++] = in[i];
  }
  return m;
}

/* Keeps the bucket [min, min + (max - min) / n] of a per-pod value. */
static size_t least_bucket(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out,
                           double (*val)(const ig_sched_pod_t *)) {
  if (!n) return 0;
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    double v = val(&ctx->pods[in[i]]);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  double limit = lo + (hi - lo) / (double)n;
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (val(&ctx->pods[in[i]]) <= limit) out[m++] = in[i];
  return m;
}

static size_t gie_least_queue(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out) {
  return least_bucket(ctx, in, n, out, ig_sched_pod_queue);
}

static size_t gie_least_kv(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out) {
  return least_bucket(ctx, in, n, out, ig_sched_pod_kv);
}

static int lora_active(const ig_sched_ctx_t *ctx, const ig_sched_pod_t *p) {
  return lora_running(ctx, p) || lora_waiting(ctx, p);
}

/* LoRA soft affinity: pods with the adapter active, with probability lora_affinity_p, else pods with
 * a free slot; whichever group is not empty when only one is. */
static size_t gie_lora_affinity(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out) {
  size_t n_aff = 0, n_free = 0;
  for (size_t i = 0; i < n; i++) {
    const ig_sched_pod_t *p = &ctx->pods[in[i]];
    if (lora_active(ctx, p))
      n_aff++;
    else if (lora_free_slot(p))
      n_free++;
  }
  int want_aff;
  if (n_aff && n_free)
    want_aff = ig_rng_double(&ctx->s->rng) < ctx->s->o.lora_affinity_p;
  else
    want_aff = n_aff > 0;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    const ig_sched_pod_t *p = &ctx->pods[in[i]];
    int aff = lora_active(ctx, p);
    if (want_aff ? aff : (!aff && lora_free_slot(p))) out[m++] = in[i];
  }
  return m;
}

/* Low-cost LoRA: the adapter is active or a slot is free to load it. */
static size_t gie_low_cost_lora(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    const ig_sched_pod_t *p = &ctx->pods[in[i]];
    if (lora_active(ctx, p) || lora_free_slot(p)) out[m++] = in[i];
  }
  return m;
}

typedef size_t (*filter_fn)(ig_sched_ctx_t *, const size_t *, size_t, size_t *);

/* Applies f to the current set; keeps the input when nothing passes (GIE passes the input set on to
 * the next filter after a failure). */
static void step(ig_sched_ctx_t *ctx, filter_fn f, size_t **cur, size_t **spare, size_t *n) {
  size_t m = f(ctx, *cur, *n, *spare);
  if (m) {
    size_t *t = *cur;
    *cur = *spare;
    *spare = t;
    *n = m;
  }
}

/* The original GIE tree (DESIGN.md "Scheduling"):
 *   Critical: queue < 128 ? (LoRA affinity -> least queue -> least KV)
 *                         : (least queue -> low-cost LoRA -> least KV)
 *   otherwise: queue <= 5 && KV <= 0.8 ? (least queue -> low-cost LoRA -> least KV)
 *            : Sheddable -> shed; Standard -> the same chain over all pods. */
size_t ig_sched_gie_tree(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out, size_t *tmp) {
  if (!n) return 0;
  size_t *cur = out, *spare = tmp, m;
  int prio = ig_sched_request_priority(ctx->req), crit = prio > 0; /* classes: > 0 Critical, < 0 Sheddable */
  m = crit ? gie_low_queue(ctx, in, n, out) : gie_has_capacity(ctx, in, n, out);
  if (m && crit) {
    step(ctx, gie_lora_affinity, &cur, &spare, &m);
    step(ctx, gie_least_queue, &cur, &spare, &m);
  } else {
    if (!m) {
      if (prio < 0) return 0;
      memcpy(out, in, n * sizeof *in);
      m = n;
    }
    step(ctx, gie_least_queue, &cur, &spare, &m);
    step(ctx, gie_low_cost_lora, &cur, &spare, &m);
  }
  step(ctx, gie_least_kv, &cur, &spare, &m);
  if (cur != out) memcpy(out, cur, m * sizeof *cur);
  return m;
}

/* Every filter by name, for introspection and future configurable profiles. */
const ig_filter_t ig_sched_filters[] = {
    {"fresh", ig_sched_filter_fresh},
    {"not-saturated", ig_sched_filter_unsaturated},
    {"gie-low-queue", gie_low_queue},
    {"gie-has-capacity", gie_has_capacity},
    {"gie-lora-affinity", gie_lora_affinity},
    {"gie-low-cost-lora", gie_low_cost_lora},
    {"gie-least-queue", gie_least_queue},
    {"gie-least-kv", gie_least_kv},
    {NULL, NULL},
};

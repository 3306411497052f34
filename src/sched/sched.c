/* Scheduler: profiles, the pick pipeline (allowed set -> filters -> scorers or picker -> ranked order),
 * saturation and admission. No I/O, no clock; scratch buffers are owned by ig_sched_t so a pick
 * allocates nothing once they fit the pool. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

/* Profiles. Weights of "default": queue 2, kv 2, prefix 3 (GIE/llm-d defaults), lora 1 (a tie-breaker
 * between otherwise similar pods of a LoRA pool; it is the same for every pod of a pool without LoRA). */
static const profile_t profiles[] = {
    {"default", PICK_SCORED, 1, {[SC_QUEUE] = 2, [SC_KV] = 2, [SC_PREFIX] = 3, [SC_LORA] = 1}},
    {"gie", PICK_GIE, 0, {0}},
    {"round-robin", PICK_ROUND_ROBIN, 0, {0}},
    {"random", PICK_RANDOM, 0, {0}},
    {"least-request", PICK_LEAST_REQUEST, 0, {0}},
};
#define N_PROFILES (sizeof profiles / sizeof profiles[0])
#define MAX_WEIGHT 1e6
#define SMALL_TOPK 16

static const profile_t *profile_find(const char *name) {
  if (!name) name = "default";
  for (size_t i = 0; i < N_PROFILES; i++)
    if (strcmp(profiles[i].name, name) == 0) return &profiles[i];
  return NULL;
}

int ig_sched_profile_exists(const char *name) { return name && profile_find(name) != NULL; }
int ig_sched_scorer_exists(const char *name) { return ig_sched_scorer_index(name) >= 0; }

void ig_sched_opts_default(ig_sched_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->queue_threshold = 5;
  o->kv_threshold = 0.8;
  o->stale_ms = 200;
  o->critical_queue_max = 128;
  o->lora_affinity_p = 0.999;
  o->imbalance_abs = 64;
  o->imbalance_rel = 1.5;
  o->prefix_block_chars = IG_SCHED_PREFIX_BLOCK_CHARS;
  o->prefix_max_blocks = IG_SCHED_PREFIX_MAX_BLOCKS;
}

/* Creates a scheduler; see sched.h. */
ig_sched_t *ig_sched_new_opts(const char *profile, uint64_t seed, const ig_sched_opts_t *opts) {
  const profile_t *p = profile_find(profile);
  if (!p) return NULL;
  ig_sched_t *s = IG_NEW(ig_sched_t);
  s->prof = p;
  memcpy(s->w, p->weights, sizeof s->w);
  if (opts)
    s->o = *opts;
  else
    ig_sched_opts_default(&s->o);
  if (!s->o.prefix_block_chars) s->o.prefix_block_chars = IG_SCHED_PREFIX_BLOCK_CHARS;
  if (!s->o.prefix_max_blocks || s->o.prefix_max_blocks > IG_SCHED_PREFIX_MAX_BLOCKS)
    s->o.prefix_max_blocks = IG_SCHED_PREFIX_MAX_BLOCKS;
  ig_rng_seed(&s->rng, seed);
  s->last_prefix_hit = -1;
  return s;
}

ig_sched_t *ig_sched_new(const char *profile, uint64_t seed) { return ig_sched_new_opts(profile, seed, NULL); }

void ig_sched_free(ig_sched_t *s) {
  if (!s) return;
  for (int i = 0; i < 4; i++) free(s->set[i]);
  free(s->mark);
  free(s->match);
  free(s->rank);
  free(s->pc_ptr);
  free(s->pc_slot);
  free(s->slot_stamp);
  free(s->slot_pod);
  free(s->slow);
  free(s->flat);
  ig_sched_pspace_release(s->space);
  free(s);
}

const char *ig_sched_profile_name(const ig_sched_t *s) { return s->prof->name; }
const ig_sched_opts_t *ig_sched_opts(const ig_sched_t *s) { return &s->o; }

int ig_sched_set_weight(ig_sched_t *s, const char *scorer, double weight) {
  int i = ig_sched_scorer_index(scorer);
  if (i < 0) return IG_ENOENT;
  if (s->prof->kind != PICK_SCORED) return IG_ENOTSUP;
  if (!isfinite(weight) || weight < 0 || weight > MAX_WEIGHT) return IG_EINVAL;
  s->w[i] = weight;
  return 0;
}

double ig_sched_weight(const ig_sched_t *s, const char *scorer) {
  int i = ig_sched_scorer_index(scorer);
  return i < 0 ? 0 : s->w[i];
}

/* Grows the scratch buffers to hold n pods (never shrinks). */
void ig_sched_reserve(ig_sched_t *s, size_t n) {
  if (n <= s->cap) return;
  size_t cap = s->cap ? s->cap : 64;
  while (cap < n) cap *= 2;
  for (int i = 0; i < 4; i++) {
    free(s->set[i]);
    s->set[i] = ig_malloc(cap * sizeof(size_t));
  }
  free(s->mark);
  s->mark = ig_calloc(cap, sizeof(uint32_t));
  s->epoch = 0;
  free(s->match);
  s->match = ig_calloc(cap, sizeof(uint32_t));
  free(s->rank);
  s->rank = ig_malloc(cap * sizeof(rank_t));
  free(s->pc_ptr);
  s->pc_ptr = ig_calloc(cap, sizeof *s->pc_ptr);
  free(s->pc_slot);
  s->pc_slot = ig_calloc(cap, sizeof *s->pc_slot);
  free(s->slow);
  s->slow = ig_malloc(cap * sizeof *s->slow);
  free(s->flat);
  s->flat = ig_malloc(cap * sizeof *s->flat);
  s->cap = cap;
}

/* Two fresh stamps per pick: epoch marks "allowed", epoch + 1 marks "candidate". */
static void next_epoch(ig_sched_t *s) {
  if (s->epoch >= UINT32_MAX - 4) {
    memset(s->mark, 0, s->cap * sizeof(uint32_t));
    s->epoch = 0;
  }
  s->epoch += 2;
}

/* ---- saturation ---- */

int ig_sched_pod_saturated(const ig_sched_t *s, const ig_sched_pod_t *pod) { return ig_sched_pod_sat(&s->o, pod); }

int ig_sched_pool_saturated(const ig_sched_t *s, const ig_sched_pod_t *pods, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!ig_sched_pod_saturated(s, &pods[i])) return 0;
  return 1;
}

/* Decides pick / queue / shed for a new request; see sched.h. */
ig_sched_admit_t ig_sched_admit(const ig_sched_t *s, const ig_sched_pod_t *pods, size_t n,
                                const ig_sched_request_t *req, const ig_sched_queue_t *q) {
  if (!s->prof->admission || !req) return IG_SCHED_ADMIT_PICK;
  int saturated = 1;
  if (req->subset) {
    for (size_t i = 0; i < req->n_subset && saturated; i++)
      if (req->subset[i] < n && !ig_sched_pod_saturated(s, &pods[req->subset[i]])) saturated = 0;
  } else {
    saturated = ig_sched_pool_saturated(s, pods, n);
  }
  int prio = ig_sched_request_priority(req), top;
  if (saturated) return prio < 0 ? IG_SCHED_ADMIT_SHED : IG_SCHED_ADMIT_QUEUE;
  /* Capacity is free, but do not overtake requests of the same or a higher priority already waiting. */
  if (q && ig_sched_queue_top_priority(q, &top) == 0 && top >= prio) return IG_SCHED_ADMIT_QUEUE;
  return IG_SCHED_ADMIT_PICK;
}

/* ---- ranking: top k by key, random tie-break, without sorting everything ---- */

typedef struct {
  rank_t *v;
  size_t n, k;
  int big; /* k too large for insertion: collect all, sort at the end */
} topk_t;

static int rank_better(const rank_t *a, const rank_t *b) {
  return a->key > b->key || (a->key == b->key && a->rnd > b->rnd);
}

static int rank_cmp(const void *pa, const void *pb) {
  const rank_t *a = pa, *b = pb;
  return rank_better(a, b) ? -1 : rank_better(b, a) ? 1 : 0;
}

static void topk_init(topk_t *t, rank_t *buf, size_t k) {
  t->v = buf;
  t->n = 0;
  t->k = k;
  t->big = k > SMALL_TOPK;
}

static void topk_push(ig_sched_t *s, topk_t *t, int64_t key, size_t idx) {
  /* An element below the current k-th key can never rank: skip it before drawing its tie-breaker. */
  if (!t->big && t->n == t->k && key < t->v[t->n - 1].key) return;
  rank_t e = {key, ig_rng_next(&s->rng), idx};
  if (t->big) {
    t->v[t->n++] = e;
    return;
  }
  if (t->n == t->k && !rank_better(&e, &t->v[t->n - 1])) return;
  size_t i = t->n < t->k ? t->n++ : t->k - 1;
  while (i > 0 && rank_better(&e, &t->v[i - 1])) {
    t->v[i] = t->v[i - 1];
    i--;
  }
  t->v[i] = e;
}

/* Writes the ranked indexes to out and returns how many (at most k). */
static size_t topk_finish(topk_t *t, size_t *out) {
  if (t->big) {
    qsort(t->v, t->n, sizeof *t->v, rank_cmp);
    if (t->n > t->k) t->n = t->k;
  }
  for (size_t i = 0; i < t->n; i++) out[i] = t->v[i].idx;
  return t->n;
}

/* Scores are compared after rounding to 1e-9 so that float noise does not defeat the random tie-break. */
static int64_t quant(double v) {
  double x = v * 1e9;
  if (!(x > -9e18)) return -(int64_t)9e18; /* also NaN; keeps the cast defined */
  if (x > 9e18) return (int64_t)9e18;
  return (int64_t)(x < 0 ? x - 0.5 : x + 0.5);
}

/* Appends to order the allowed pods that are not candidates, least queue first. */
static size_t rank_rest(ig_sched_t *s, const ig_sched_pod_t *pods, const size_t *allowed, size_t n_allowed,
                        size_t *order, size_t k) {
  if (!k) return 0;
  topk_t t;
  topk_init(&t, s->rank, k);
  for (size_t i = 0; i < n_allowed; i++) {
    size_t p = allowed[i];
    if (s->mark[p] == s->epoch + 1) continue;
    topk_push(s, &t, -quant(ig_sched_pod_queue(&pods[p]) * 1e-6), p);
  }
  return topk_finish(&t, order);
}

/* Marks cand as candidates (for rank_rest). */
static void mark_cand(ig_sched_t *s, const size_t *cand, size_t n) {
  for (size_t i = 0; i < n; i++) s->mark[cand[i]] = s->epoch + 1;
}

/* Random order of set[0..n) (partial Fisher-Yates, k first places). */
static size_t shuffle_into(ig_sched_t *s, size_t *set, size_t n, size_t *out, size_t k) {
  if (k > n) k = n;
  for (size_t i = 0; i < k; i++) {
    size_t j = i + (size_t)(ig_rng_next(&s->rng) % (n - i));
    size_t t = set[i];
    set[i] = set[j];
    set[j] = t;
    out[i] = set[i];
  }
  return k;
}

/* Least in-flight first, ties at random. */
static size_t pick_least_request(ig_sched_t *s, const ig_sched_pod_t *pods, const size_t *set, size_t n,
                                 size_t *out, size_t k) {
  topk_t t;
  topk_init(&t, s->rank, k);
  for (size_t i = 0; i < n; i++) topk_push(s, &t, -(int64_t)pods[set[i]].inflight, set[i]);
  return topk_finish(&t, out);
}

/* Hashes the request's prompt into s->hashes; returns the block count. */
static size_t hash_prompt(ig_sched_t *s, const ig_sched_request_t *req) {
  if (!req->prompt || !req->prompt_len) return 0;
  return ig_sched_prefix_hashes(req->model, req->prompt, req->prompt_len, s->o.prefix_block_chars, s->hashes,
                                s->o.prefix_max_blocks);
}

/* Grows the by-slot arrays to hold slot n - 1 (new stamps are 0: never the current pick's). */
static void slots_reserve(ig_sched_t *s, size_t n) {
  if (n <= s->slot_cap) return;
  size_t cap = s->slot_cap ? s->slot_cap : 64;
  while (cap < n) cap *= 2;
  s->slot_stamp = ig_realloc(s->slot_stamp, cap * sizeof *s->slot_stamp);
  s->slot_pod = ig_realloc(s->slot_pod, cap * sizeof *s->slot_pod);
  memset(s->slot_stamp + s->slot_cap, 0, (cap - s->slot_cap) * sizeof *s->slot_stamp);
  s->slot_cap = cap;
}

/* The slot of pod i's prefix index in our space, attaching it when it has no live space of its own;
 * -1 when it belongs to another live scheduler's space (then it is matched pod by pod). The last
 * answer per pod index is cached; the owner check catches a freed index whose address came back. */
static int64_t pod_slot(ig_sched_t *s, size_t i, ig_sched_prefix_t *px) {
  ig_sched_pspace_t *sp = s->space;
  uint32_t slot = s->pc_slot[i];
  if (s->pc_ptr[i] == px && slot < sp->n_owner && sp->owner[slot] == px) return slot;
  ig_sched_pspace_t *o = ig_sched_prefix_space(px);
  if (o != sp) {
    if (o && !o->orphan) {
      s->pc_ptr[i] = NULL;
      return -1;
    }
    ig_sched_prefix_attach(px, sp);
  }
  slot = ig_sched_prefix_slot(px);
  slots_reserve(s, (size_t)slot + 1);
  s->pc_ptr[i] = px;
  s->pc_slot[i] = slot;
  return slot;
}

/* Fills s->match (indexed by pod) for the candidates: the pods that hold the request's first block
 * come from one lookup in the pool-wide head index; only they are matched block by block (a pod
 * without the first block matches 0). Same values as ig_sched_prefix_match on every pod. */
static void match_prefix(ig_sched_t *s, const ig_sched_pod_t *pods, const size_t *cand, size_t n, size_t nh) {
  if (!s->space) s->space = ig_sched_pspace_new();
  if (++s->pick_stamp == 0) { /* wrapped: forget every stamp */
    if (s->slot_cap) memset(s->slot_stamp, 0, s->slot_cap * sizeof *s->slot_stamp);
    s->pick_stamp = 1;
  }
  uint32_t stamp = s->pick_stamp;
  size_t n_slow = 0;
  for (size_t c = 0; c < n; c++) {
    size_t i = cand[c];
    ig_sched_prefix_t *px = pods[i].prefix;
    s->match[i] = 0;
    if (!px || !nh) continue;
    int64_t slot = pod_slot(s, i, px);
    if (slot < 0 || s->slot_stamp[slot] == stamp) { /* another space, or one index on two pods */
      s->slow[n_slow++] = i;
      continue;
    }
    s->slot_stamp[slot] = stamp;
    s->slot_pod[slot] = (uint32_t)i;
  }
  if (!nh) return;
  size_t nl;
  const uint32_t *list = ig_sched_pspace_find(s->space, s->hashes[0], &nl);
  for (size_t j = 0; j < nl; j++) {
    uint32_t slot = list[j];
    if (slot >= s->slot_cap || s->slot_stamp[slot] != stamp) continue; /* not a candidate */
    size_t i = s->slot_pod[slot];
    if (!s->match[i]) s->match[i] = (uint32_t)ig_sched_prefix_match(pods[i].prefix, s->hashes, nh);
  }
  for (size_t j = 0; j < n_slow; j++)
    s->match[s->slow[j]] = (uint32_t)ig_sched_prefix_match(pods[s->slow[j]].prefix, s->hashes, nh);
}

/* Weighted-sum scoring of the candidates s->flat[0..ctx->n) (q, kv and load filled in; ctx->cand
 * holds their indexes) and ranking into order; returns how many were written. The sum is formed in
 * scorer order exactly as the scorer table (score.c) computes it, without a call per pod and scorer. */
static size_t pick_scored(ig_sched_t *s, ig_sched_ctx_t *ctx, size_t *order, size_t k, int use_prefix) {
  cand_t *f = s->flat;
  size_t n = ctx->n;
  double lo = INFINITY, hi = -INFINITY;
  double qmin = INFINITY, qmax = -INFINITY;
  int any_lora = 0;
  for (size_t c = 0; c < n; c++) {
    double q = f[c].q, l = f[c].load;
    if (q < qmin) qmin = q;
    if (q > qmax) qmax = q;
    if (l < lo) lo = l;
    if (l > hi) hi = l;
    any_lora |= ctx->pods[f[c].idx].lora != NULL;
  }
  ctx->qmin = qmin;
  ctx->qmax = qmax;
  double w[N_SCORERS];
  memcpy(w, s->w, sizeof w);
  /* Cache-aware herding guard (SGLang): a load spread too large for cache affinity to be worth it
   * falls back to least-queue for this pick. */
  if (n > 1 && hi - lo > s->o.imbalance_abs && hi > s->o.imbalance_rel * lo) {
    memset(w, 0, sizeof w);
    w[SC_QUEUE] = 1;
  }
  ctx->n_hashes = 0;
  ctx->match = NULL;
  if (use_prefix) {
    ctx->n_hashes = hash_prompt(s, ctx->req);
    if (w[SC_PREFIX] > 0 && ctx->n_hashes) {
      match_prefix(s, ctx->pods, ctx->cand, n, ctx->n_hashes);
      ctx->match = s->match;
    }
  }
  /* a scorer that gives every candidate the same score does not change the ranking: skip it */
  int use_q = w[SC_QUEUE] > 0 && qmax > qmin;
  int use_kv = w[SC_KV] > 0;
  int use_p = w[SC_PREFIX] > 0 && ctx->match;
  int use_l = w[SC_LORA] > 0 && any_lora;
  if (use_l)
    for (size_t c = 0; c < n; c++) f[c].lora = ig_sched_lora_score(ctx, &ctx->pods[f[c].idx]);
  topk_t t;
  topk_init(&t, s->rank, k);
  for (size_t c = 0; c < n; c++) {
    double sum = 0;
    if (use_q) {
      double v = (qmax - f[c].q) / (qmax - qmin);
      sum += w[SC_QUEUE] * (v < 0 ? 0 : v > 1 ? 1 : v);
    }
    if (use_kv) sum += w[SC_KV] * (1 - f[c].kv);
    if (use_p) sum += w[SC_PREFIX] * ((double)ctx->match[f[c].idx] / (double)ctx->n_hashes);
    if (use_l) sum += w[SC_LORA] * f[c].lora;
    topk_push(s, &t, quant(sum), f[c].idx);
  }
  return topk_finish(&t, order);
}

/* Builds the allowed set (subset or all, de-duplicated, in range) into set[0]; returns its size. */
static size_t allowed_set(ig_sched_t *s, size_t n, const ig_sched_request_t *req) {
  size_t *a = s->set[0], m = 0;
  if (!req->subset) { /* no de-duplication needed: marks stay as they are (rank_rest reads epoch + 1) */
    for (size_t i = 0; i < n; i++) a[i] = i;
    return n;
  }
  for (size_t i = 0; i < req->n_subset && m < n; i++) {
    size_t p = req->subset[i];
    if (p >= n || s->mark[p] == s->epoch) continue;
    s->mark[p] = s->epoch;
    a[m++] = p;
  }
  return m;
}

/* Picks an endpoint; see sched.h. */
int ig_sched_pick(ig_sched_t *s, ig_sched_pod_t *pods, size_t n, const ig_sched_request_t *req, size_t *order,
                  size_t *n_order) {
  if (!n_order) return IG_EINVAL;
  size_t k = *n_order;
  *n_order = 0;
  if (!s || !req || !order || k == 0 || (n && !pods) || (req->subset == NULL && req->n_subset)) return IG_EINVAL;
  if (!n) return IG_ENOENT;
  ig_sched_reserve(s, n);
  next_epoch(s);
  size_t n_allowed = allowed_set(s, n, req);
  if (!n_allowed) return IG_ENOENT;
  if (k > n_allowed) k = n_allowed;
  size_t *allowed = s->set[0], *cand = s->set[1], *tmp = s->set[2];
  ig_sched_ctx_t ctx = {.s = s, .pods = pods, .req = req, .model = req->model};
  size_t got = 0;
  if (req->model && (s->prof->kind == PICK_GIE || (s->prof->kind == PICK_SCORED && s->w[SC_LORA] > 0)))
    ctx.model_id = ig_sched_lora_id(req->model); /* once per pick: the pods compare integers */
  int used_prefix = s->w[SC_PREFIX] > 0 && s->prof->kind == PICK_SCORED;

  switch (s->prof->kind) {
  case PICK_ROUND_ROBIN:
    for (size_t i = 0; i < k; i++) order[i] = allowed[(s->rr + i) % n_allowed];
    s->rr = (s->rr + 1) % n_allowed;
    got = k;
    break;
  case PICK_RANDOM:
    got = shuffle_into(s, allowed, n_allowed, order, k);
    break;
  case PICK_LEAST_REQUEST:
    got = pick_least_request(s, pods, allowed, n_allowed, order, k);
    break;
  case PICK_GIE: {
    size_t nc = ig_sched_filter_fresh(&ctx, allowed, n_allowed, cand);
    if (!nc) { /* no fresh metrics anywhere: judge on what we have */
      memcpy(cand, allowed, n_allowed * sizeof *cand);
      nc = n_allowed;
    }
    size_t m = ig_sched_gie_tree(&ctx, cand, nc, tmp, s->set[3]);
    if (!m) return IG_EFULL;
    mark_cand(s, tmp, m);
    got = shuffle_into(s, tmp, m, order, k);
    got += rank_rest(s, pods, allowed, n_allowed, order + got, k - got);
    break;
  }
  case PICK_SCORED: {
    /* The filters "fresh" then "not-saturated" (when any pod passes it) in one pass over the pods,
     * copying what the scorers read into the flat candidate array. */
    cand_t *f = s->flat;
    size_t nc = 0, nu = 0;
    for (size_t i = 0; i < n_allowed; i++) {
      const ig_sched_pod_t *p = &pods[allowed[i]];
      if (!ig_sched_pod_fresh(&s->o, p)) continue;
      cand_t *e = &f[nc++];
      e->idx = allowed[i];
      e->q = ig_sched_pod_queue(p);
      e->kv = ig_sched_pod_kv(p);
      e->load = ig_sched_pod_load(p);
      e->sat = e->q >= s->o.queue_threshold || e->kv >= s->o.kv_threshold; /* = ig_sched_pod_sat */
      nu += !e->sat;
    }
    if (!nc) {
      /* Nothing fresh: stale numbers must not pass for live ones, so fall back to our own counts. */
      got = pick_least_request(s, pods, allowed, n_allowed, order, k);
      break;
    }
    if (nu) {
      size_t m = 0;
      for (size_t c = 0; c < nc; c++)
        if (!f[c].sat) f[m++] = f[c];
      nc = m;
    }
    for (size_t c = 0; c < nc; c++) cand[c] = f[c].idx;
    ctx.cand = cand;
    ctx.n = nc;
    got = pick_scored(s, &ctx, order, k, used_prefix);
    if (got < k) { /* fallbacks beyond the candidates */
      mark_cand(s, cand, nc);
      got += rank_rest(s, pods, allowed, n_allowed, order + got, k - got);
    }
    break;
  }
  }

  if (!got) return IG_ENOENT;
  ig_sched_pod_t *best = &pods[order[0]];
  best->pending++;
  /* the match was computed before the insert below, so it is what the pod had cached */
  s->last_prefix_hit = ctx.match && ctx.n_hashes ? (double)ctx.match[order[0]] / (double)ctx.n_hashes : -1;
  if (used_prefix && best->prefix && ctx.n_hashes) ig_sched_prefix_insert(best->prefix, s->hashes, ctx.n_hashes);
  *n_order = got;
  return 0;
}

double ig_sched_last_prefix_hit(const ig_sched_t *s) {
  return s->last_prefix_hit;
}

/* One scorer over every pod; see sched.h. */
int ig_sched_scores(ig_sched_t *s, const char *scorer, const ig_sched_pod_t *pods, size_t n,
                    const ig_sched_request_t *req, double *out) {
  int sc = ig_sched_scorer_index(scorer);
  if (sc < 0) return IG_ENOENT;
  if (!n) return 0;
  static const ig_sched_request_t none = {0};
  if (!req) req = &none;
  ig_sched_reserve(s, n);
  for (size_t i = 0; i < n; i++) s->set[1][i] = i;
  ig_sched_ctx_t ctx = {.s = s, .pods = pods, .req = req, .cand = s->set[1], .n = n, .model = req->model};
  if (sc == SC_LORA) ctx.model_id = ig_sched_lora_id(req->model);
  if (sc == SC_PREFIX) {
    ctx.n_hashes = hash_prompt(s, req);
    match_prefix(s, pods, ctx.cand, n, ctx.n_hashes);
    ctx.match = s->match;
  }
  if (ig_sched_scorers[sc].prepare) ig_sched_scorers[sc].prepare(&ctx);
  for (size_t i = 0; i < n; i++) out[i] = ig_sched_scorers[sc].score(&ctx, i);
  return 0;
}

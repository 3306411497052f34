/* Scheduler: profiles, the pick pipeline (allowed set -> filters -> scorers or picker -> ranked order),
 * saturation and admission. No I/O, no clock; scratch buffers are owned by ig_sched_t so a pick
 * allocates nothing once they fit the pool. */
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
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
  o->standard_queue_max = 1;
  o->critical_slots = 4;
  o->kv_threshold = 0.8;
  o->queue_running_weight = 0.05;
  o->queue_prefill_tokens = 64;
  o->stale_ms = 200;
  o->critical_queue_max = 128;
  o->lora_affinity_p = 0.999;
  o->imbalance_abs = 64;
  o->imbalance_rel = 1.5;
  o->prefix_block_chars = IG_SCHED_PREFIX_BLOCK_CHARS;
  o->prefix_max_blocks = IG_SCHED_PREFIX_MAX_BLOCKS;
}

void ig_sched_pod_touch(ig_sched_pod_t *p) {
  static _Atomic uint64_t stamps;
  p->seq = atomic_fetch_add_explicit(&stamps, 1, memory_order_relaxed) + 1;
}

void ig_sched_pod_check_stamp(const ig_sched_pod_t *d, const ig_sched_pod_t *s) {
  int same = d->seq == s->seq && memcmp(&d->waiting, &s->waiting, sizeof d->waiting) == 0 &&
             memcmp(&d->running, &s->running, sizeof d->running) == 0 &&
             memcmp(&d->kv_usage, &s->kv_usage, sizeof d->kv_usage) == 0 &&
             d->has_metrics == s->has_metrics && d->scraped_ms == s->scraped_ms &&
             d->lora == s->lora && d->prefix == s->prefix && d->lora_hint == s->lora_hint &&
             d->lora_free == s->lora_free && d->lora_full == s->lora_full &&
             d->lora_running_mask == s->lora_running_mask && d->lora_waiting_mask == s->lora_waiting_mask;
  if (same) return;
  fprintf(stderr, "infergate: pod state changed without a new stamp (ig_sched_pod_touch)\n");
  abort();
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
  free(s->snap);
  free(s->pos);
  free(s->mpx);
  free(s->mpod);
  free(s->mout);
  free(s->dirty);
  free(s->ev_key);
  free(s->lmask);
  free(s->sums);
  free(s->ev_bits);
  free(s->ev_fresh);
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
  free(s->snap);
  s->snap = ig_calloc(cap, sizeof *s->snap); /* seq 0: made on first sight */
  s->ev_valid = 0;                           /* and event-driven picks remake every record */
  free(s->dirty);
  s->dirty = ig_malloc(cap * sizeof *s->dirty);
  s->n_dirty = 0;
  free(s->ev_key);
  s->ev_key = ig_calloc(cap, sizeof *s->ev_key);
  free(s->lmask);
  s->lmask = ig_calloc(2 * cap, sizeof *s->lmask);
  free(s->sums);
  s->sums = ig_malloc(cap * sizeof *s->sums);
  free(s->ev_bits);
  s->ev_bits = ig_calloc(cap / 64 + 1, sizeof *s->ev_bits);
  free(s->ev_fresh);
  s->ev_fresh = ig_calloc(cap / 64 + 1, sizeof *s->ev_fresh);
  free(s->pos);
  s->pos = ig_calloc(cap, sizeof *s->pos);
  free(s->mpx);
  s->mpx = ig_malloc(cap * sizeof *s->mpx);
  free(s->mpod);
  s->mpod = ig_malloc(cap * sizeof *s->mpod);
  free(s->mout);
  s->mout = ig_malloc(cap * sizeof *s->mout);
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

/* Whether pod p, its batch size known, can start one more request at once and still have `keep` batch
 * slots free (slots in use + keep < batch_slots); 1 when its batch size is unknown. The slots in use
 * are running + waiting + pending - done (ig_sched_pod_load), or our own requests in flight there when
 * more: engines publish their counts as of a step's end, so a scrape that resets pending leaves out
 * what we sent during that step, while every request of ours in flight holds a slot or waits for one. */
static int pod_slots_free(const ig_sched_pod_t *p, double keep) {
  if (!p->batch_slots) return 1;
  double used = ig_sched_pod_load(p);
  if (used < (double)p->inflight) used = p->inflight;
  return used + keep < (double)p->batch_slots;
}

/* Whether pod p keeps its headroom for Critical requests with one more request of priority <= 0: its
 * queue below standard_queue_max and critical_slots batch slots free (pod_slots_free), at most a
 * quarter of its batch, so that lower priorities always keep three quarters of it. */
static int pod_headroom(const ig_sched_opts_t *o, const ig_sched_pod_t *p) {
  double low = o->standard_queue_max;
  if (low > 0 && low < o->queue_threshold && ig_sched_pod_queue(p) >= low) return 0;
  double keep = o->critical_slots, quarter = floor(p->batch_slots / 4.0);
  if (keep > quarter) keep = quarter;
  return keep <= 0 || pod_slots_free(p, keep);
}

/* Whether pod p may take a request of priority prio now (see standard_queue_max, critical_slots). */
static int pod_room(const ig_sched_opts_t *o, const ig_sched_pod_t *p, int prio, int reserve) {
  if (ig_sched_pod_sat(o, p)) return 0;
  return prio > 0 || !reserve || pod_headroom(o, p);
}

int ig_sched_pool_full_for(const ig_sched_t *s, const ig_sched_pod_t *pods, size_t n, int prio, int reserve) {
  if (!s->prof->admission) return ig_sched_pool_saturated(s, pods, n);
  for (size_t i = 0; i < n; i++)
    if (pod_room(&s->o, &pods[i], prio, reserve)) return 0;
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
  int queued = q && ig_sched_queue_top_priority(q, &top) == 0;
  /* Capacity is free, but do not overtake requests of the same or a higher priority already waiting. */
  if (queued && top >= prio) return prio < 0 && top > prio ? IG_SCHED_ADMIT_SHED : IG_SCHED_ADMIT_QUEUE;
  /* Only Critical requests may join a pod's own queue beyond standard_queue_max. */
  int room = 0;
  if (req->subset) {
    for (size_t i = 0; i < req->n_subset && !room; i++)
      room = req->subset[i] < n && pod_room(&s->o, &pods[req->subset[i]], prio, req->reserve_critical);
  } else {
    room = !ig_sched_pool_full_for(s, pods, n, prio, req->reserve_critical);
  }
  return room ? IG_SCHED_ADMIT_PICK : IG_SCHED_ADMIT_QUEUE;
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

/* quant for a weighted sum of the default pick: never negative and at most the sum of the weights
 * (each term is a weight times a score in [0,1], weights at most MAX_WEIGHT), so neither clamp of
 * quant can apply: the same key without its branches. */
static inline int64_t quant_sum(double v) {
  double x = v * 1e9;
  return (int64_t)(x + 0.5);
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
  memset(s->slot_pod + s->slot_cap, 0, (cap - s->slot_cap) * sizeof *s->slot_pod);
  s->slot_cap = cap;
}

/* Event-driven records carry SNAP_PCBAD: the slot cache's prefix index for their pod index (pc_ptr)
 * is not theirs, so a pick that keeps them must rebuild the cache (match_cands). pc_note recomputes it
 * for pod i; pc_set changes the cache and keeps the bit right. */
static void pc_note(ig_sched_t *s, size_t i) {
  snap_t *sn = &s->snap[i];
  sn->flags = (sn->flags & ~(uint32_t)SNAP_PCBAD) | (s->pc_ptr[i] != sn->prefix ? SNAP_PCBAD : 0u);
}

static void pc_set(ig_sched_t *s, size_t i, const ig_sched_prefix_t *px) {
  s->pc_ptr[i] = px;
  if (s->ev_valid && i < s->ev_n) pc_note(s, i);
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
      pc_set(s, i, NULL);
      return -1;
    }
    ig_sched_prefix_attach(px, sp);
  }
  slot = ig_sched_prefix_slot(px);
  slots_reserve(s, (size_t)slot + 1);
  pc_set(s, i, px);
  s->pc_slot[i] = slot;
  return slot;
}

/* Fills s->match (indexed by pod) for the candidates: the pods that hold the request's first block
 * come from one lookup in the pool-wide head index; only they are matched block by block (a pod
 * without the first block matches 0). Same values as ig_sched_prefix_match on every pod. The
 * candidates are rec[0..n) when rec is not NULL, else pods cand[0..n). Sets s->max_match. */
static void match_prefix(ig_sched_t *s, const ig_sched_pod_t *pods, const cand_t *rec, const size_t *cand, size_t n,
                         size_t nh) {
  if (!s->space) s->space = ig_sched_pspace_new();
  s->max_match = 0;
  if (++s->pick_stamp == 0) { /* wrapped: forget every stamp */
    if (s->slot_cap) memset(s->slot_stamp, 0, s->slot_cap * sizeof *s->slot_stamp);
    s->pick_stamp = 1;
  }
  uint32_t stamp = s->pick_stamp;
  const ig_sched_pspace_t *sp = s->space;
  size_t n_slow = 0;
  for (size_t c = 0; c < n; c++) {
    size_t i = rec ? rec[c].idx : cand[c];
    ig_sched_prefix_t *px = pods[i].prefix;
    s->match[i] = 0;
    if (!px) pc_set(s, i, NULL); /* cached as "no index" */
    if (!px || !nh) continue;
    uint32_t slot = s->pc_slot[i];
    /* the cached slot of this pod index, checked as pod_slot does, without the call */
    if (!(s->pc_ptr[i] == px && slot < sp->n_owner && sp->owner[slot] == px)) {
      int64_t sl = pod_slot(s, i, px);
      if (sl < 0) { /* another space */
        s->slow[n_slow++] = i;
        continue;
      }
      slot = (uint32_t)sl;
    }
    if (s->slot_stamp[slot] == stamp) { /* one index on two pods */
      s->pc_dups = 1;
      s->slow[n_slow++] = i;
      continue;
    }
    uint32_t prev = s->slot_pod[slot]; /* the pod this slot was last seen on */
    if (prev != i && prev < s->cap && s->pc_ptr[prev] == px) s->pc_dups = 1;
    s->slot_stamp[slot] = stamp;
    s->slot_pod[slot] = (uint32_t)i;
  }
  if (!nh) return;
  size_t nl;
  uint32_t mx = 0;
  const uint32_t *list = ig_sched_pspace_find(s->space, s->hashes[0], &nl);
  size_t nm = 0;
  for (size_t j = 0; j < nl; j++) {
    uint32_t slot = list[j];
    if (slot >= s->slot_cap || s->slot_stamp[slot] != stamp) continue; /* not a candidate */
    size_t i = s->slot_pod[slot];
    if (s->match[i]) continue; /* listed twice (both generations hold the head) */
    s->match[i] = 1;
    s->mpod[nm] = i;
    s->mpx[nm++] = pods[i].prefix;
  }
  for (size_t j = 0; j < n_slow; j++) {
    s->mpod[nm] = s->slow[j];
    s->mpx[nm++] = pods[s->slow[j]].prefix;
  }
  /* the candidates' look-ups are cache misses: run them side by side */
  ig_sched_prefix_match_many(s->mpx, nm, s->hashes, nh, s->mout);
  for (size_t j = 0; j < nm; j++) {
    s->match[s->mpod[j]] = s->mout[j];
    if (s->mout[j] > mx) mx = s->mout[j];
  }
  s->max_match = mx;
}

/* Fills f[c].m for the candidates f[0..n) of a "default" pick (n_hashes nh >= 1) and s->max_match.
 * When every candidate's prefix index is the one cached for its pod index (bad == 0: checked in the
 * filter pass) and no index joined or left the space since the cache was built, the cache maps the
 * head index's slots straight to candidates (pos), so only the pods listed under the first block are
 * touched; otherwise match_prefix does the per-candidate work and rebuilds the cache. Same values as
 * ig_sched_prefix_match on every pod either way. */
static void match_cands(ig_sched_t *s, const ig_sched_pod_t *pods, cand_t *f, size_t n, size_t nh, int bad) {
  if (!s->space) s->space = ig_sched_pspace_new();
  ig_sched_pspace_t *sp = s->space;
  if (s->pc_gen != sp->gen) { /* slots changed hands: forget the cache (rebuilt below, pod by pod) */
    memset(s->pc_ptr, 0, s->cap * sizeof *s->pc_ptr);
    for (size_t i = 0; s->ev_valid && i < s->ev_n; i++) pc_note(s, i);
    s->pc_gen = sp->gen;
    bad = 1;
  }
  if (bad || s->pc_dups) {
    match_prefix(s, pods, f, NULL, n, nh);
    for (size_t c = 0; c < n; c++) f[c].m = (uint16_t)s->match[f[c].idx];
    return;
  }
  size_t nl, nm = 0;
  const uint32_t *list = ig_sched_pspace_find(sp, s->hashes[0], &nl);
  for (size_t j = 0; j < nl; j++) {
    uint32_t slot = list[j];
    if (slot >= s->slot_cap) continue;
    size_t i = s->slot_pod[slot], c;
    if (i >= s->cap || (c = s->pos[i]) >= n || f[c].idx != i) continue; /* not a candidate */
    const ig_sched_prefix_t *px = pods[i].prefix;
    if (!px || s->pc_slot[i] != slot || f[c].m) continue; /* not its index, or listed twice */
    f[c].m = 1;
    s->mpod[nm] = c;
    s->mpx[nm++] = px;
  }
  ig_sched_prefix_match_many(s->mpx, nm, s->hashes, nh, s->mout);
  uint32_t mx = 0;
  for (size_t j = 0; j < nm; j++) {
    f[s->mpod[j]].m = (uint16_t)s->mout[j];
    if (s->mout[j] > mx) mx = s->mout[j];
  }
  s->max_match = mx;
}

/* What a pick needs for the LoRA term without reading the pod's adapter lists: the request's adapter
 * bit (0 without a model or for a model in no list), whether that bit answers exactly (ig_sched_lora_bit),
 * and the term by answer: lora weight * {0, 0.6, 0.8, 1.0}, and -1 = ask ig_sched_lora_score. */
typedef struct {
  uint64_t bit;
  int exact;
  double term[5];
} lora_q_t;

static void lora_q_init(lora_q_t *lq, const ig_sched_ctx_t *ctx, double w) {
  /* a model in no adapter list (a base model, the common case) matches no bit: exact too */
  lq->bit = ctx->model && !ig_sched_lora_unlisted(ctx->model_id) ? ig_sched_lora_bit(ctx->model_id) : 0;
  lq->exact = lq->bit != 1ull << 63;
  lq->term[0] = w * 0.0;
  lq->term[1] = w * 0.6;
  lq->term[2] = w * 0.8;
  lq->term[3] = w * 1.0;
  lq->term[4] = -1;
}

/* The lora term of a pod (lora_q_t) from the masks copied into it (running, waiting) when they answer
 * exactly, and its record's lbits: the same answer as ig_sched_lora_score (score.c) with the same ids.
 * Branch-free; -1 for the rare case that needs the lists. */
static inline double lora_term(const lora_q_t *lq, uint64_t running, uint64_t waiting, unsigned lbits) {
  unsigned run = (running & lq->bit) != 0, wait = (waiting & lq->bit) != 0;
  unsigned code = 3 * run, free2 = 2 * ((lbits & LB_FREE) != 0);
  code = code > free2 ? code : free2; /* running 3 > a free slot 2 > waiting 1 > 0 */
  code = code > wait ? code : wait;
  unsigned fast = ((lbits & LB_HINT) != 0) & (unsigned)lq->exact;
  code = fast ? code : 4;
  code &= 0u - (lbits & LB_LORA);
  return lq->term[code];
}

/* The smallest and largest q and load of f[0..n) (n >= 1; never NaN, so any order gives the same). */
static void minmax_cands(const cand_t *f, size_t n, double *qmin, double *qmax, double *lo, double *hi) {
#if defined(__SSE2__)
  _Static_assert(offsetof(cand_t, load) == offsetof(cand_t, q) + sizeof(double), "q, load side by side");
  /* (q, load) pairs, two accumulators each so that the min/max latency overlaps */
  __m128d mn0 = _mm_set1_pd(INFINITY), mx0 = _mm_set1_pd(-INFINITY), mn1 = mn0, mx1 = mx0;
  size_t c = 0;
  for (; c + 2 <= n; c += 2) {
    __m128d a = _mm_loadu_pd(&f[c].q), b = _mm_loadu_pd(&f[c + 1].q);
    mn0 = _mm_min_pd(mn0, a);
    mx0 = _mm_max_pd(mx0, a);
    mn1 = _mm_min_pd(mn1, b);
    mx1 = _mm_max_pd(mx1, b);
  }
  if (c < n) {
    __m128d a = _mm_loadu_pd(&f[c].q);
    mn0 = _mm_min_pd(mn0, a);
    mx0 = _mm_max_pd(mx0, a);
  }
  double v[4];
  _mm_storeu_pd(v, _mm_min_pd(mn0, mn1));
  _mm_storeu_pd(v + 2, _mm_max_pd(mx0, mx1));
  *qmin = v[0];
  *lo = v[1];
  *qmax = v[2];
  *hi = v[3];
#else
  double a = INFINITY, b = -INFINITY, l0 = INFINITY, l1 = -INFINITY;
  for (size_t c = 0; c < n; c++) {
    a = f[c].q < a ? f[c].q : a;
    b = f[c].q > b ? f[c].q : b;
    l0 = f[c].load < l0 ? f[c].load : l0;
    l1 = f[c].load > l1 ? f[c].load : l1;
  }
  *qmin = a;
  *qmax = b;
  *lo = l0;
  *hi = l1;
#endif
}

/* Keeps top[0..k) the k largest values seen (largest first) with x. */
static inline void top_note(double *top, size_t k, double x) {
  if (!(x > top[k - 1])) return;
  size_t i = k - 1;
  while (i > 0 && x > top[i - 1]) {
    top[i] = top[i - 1];
    i--;
  }
  top[i] = x;
}

/* The weighted sum of the queue, KV and prefix terms (those of use_q, use_kv, use_p) of each candidate
 * f[c] into sums[c], formed term by term in scorer order as pick_scored describes (two candidates at a
 * time with SSE2: the same operations, lane by lane), and the k largest sums into top[0..k) (k >= 1,
 * top[] all -INFINITY on entry); inlined for the common combinations, so that the loop has no branch
 * but the rare one that updates top. */
static inline __attribute__((always_inline)) void sum_terms(const cand_t *f, size_t n, double *sums,
                                                            const double *w, double qmax, double qspan,
                                                            const double *pterm, int use_q, int use_kv,
                                                            int use_p, double *top, size_t k) {
  const double wq = w[SC_QUEUE], wkv = w[SC_KV];
  size_t c = 0;
#if defined(__SSE2__)
  const __m128d vqmax = _mm_set1_pd(qmax), vspan = _mm_set1_pd(qspan), one = _mm_set1_pd(1);
  const __m128d zero = _mm_setzero_pd(), vwq = _mm_set1_pd(wq), vwkv = _mm_set1_pd(wkv);
  __m128d low = _mm_set1_pd(top[k - 1]); /* the k-th largest so far */
  for (; c + 2 <= n; c += 2) {
    __m128d sum = zero;
    if (use_q) { /* v = (qmax - q) / qspan clamped to [0,1]: min, then max (v is never NaN) */
      __m128d v = _mm_div_pd(_mm_sub_pd(vqmax, _mm_set_pd(f[c + 1].q, f[c].q)), vspan);
      sum = _mm_add_pd(sum, _mm_mul_pd(vwq, _mm_max_pd(_mm_min_pd(v, one), zero)));
    }
    if (use_kv) sum = _mm_add_pd(sum, _mm_mul_pd(vwkv, _mm_sub_pd(one, _mm_set_pd(f[c + 1].kv, f[c].kv))));
    if (use_p) sum = _mm_add_pd(sum, _mm_set_pd(pterm[f[c + 1].m], pterm[f[c].m]));
    _mm_storeu_pd(&sums[c], sum);
    if (__builtin_expect(_mm_movemask_pd(_mm_cmpgt_pd(sum, low)) != 0, 0)) {
      top_note(top, k, sums[c]);
      top_note(top, k, sums[c + 1]);
      low = _mm_set1_pd(top[k - 1]);
    }
  }
#endif
  for (; c < n; c++) {
    double sum = 0;
    if (use_q) {
      double v = (qmax - f[c].q) / qspan;
      v = v < 1 ? v : 1;
      sum += wq * (v > 0 ? v : 0);
    }
    if (use_kv) sum += wkv * (1 - f[c].kv);
    if (use_p) sum += pterm[f[c].m];
    sums[c] = sum;
    top_note(top, k, sum);
  }
}

/* Lists in out the c < n whose sums[c] + add, as quant_sum rounds it, is not below the integer key
 * (given as a double): (sums[c] + add) * 1e9 + 0.5 >= key, the same operations two at a time with
 * SSE2. Returns how many. */
static size_t above_floor(const double *sums, size_t n, double add, double key, size_t *out) {
  size_t m = 0, c = 0;
#if defined(__SSE2__)
  const __m128d va = _mm_set1_pd(add), scale = _mm_set1_pd(1e9), half = _mm_set1_pd(0.5);
  const __m128d vk = _mm_set1_pd(key);
  for (; c + 2 <= n; c += 2) {
    __m128d x = _mm_add_pd(_mm_mul_pd(_mm_add_pd(_mm_loadu_pd(&sums[c]), va), scale), half);
    int mask = _mm_movemask_pd(_mm_cmpge_pd(x, vk));
    out[m] = c;
    m += (size_t)(mask & 1);
    out[m] = c + 1;
    m += (size_t)(mask >> 1);
  }
#endif
  for (; c < n; c++) {
    out[m] = c;
    m += (sums[c] + add) * 1e9 + 0.5 >= key;
  }
  return m;
}

/* What adds a candidate's LoRA term to its sum (pick_scored). */
typedef struct {
  const ig_sched_ctx_t *ctx;
  const lora_q_t *lq;
  const uint64_t *lmask; /* the kept masks by pod index, or NULL: read the pods */
  double w;              /* the LoRA weight */
  int use;               /* 0: no LoRA term */
} lora_eval_t;

/* sum + the LoRA term of candidate e (the last term, as the scorer table adds it). */
static inline double with_lora(const lora_eval_t *le, const cand_t *e, double sum) {
  if (!le->use) return sum;
  const ig_sched_pod_t *p = &le->ctx->pods[e->idx];
  double lt = le->lmask ? lora_term(le->lq, le->lmask[2 * e->idx], le->lmask[2 * e->idx + 1], e->lbits)
                        : lora_term(le->lq, p->lora_running_mask, p->lora_waiting_mask, e->lbits);
  return sum + (lt >= 0 ? lt : le->w * ig_sched_lora_score(le->ctx, p));
}

/* Ranks the candidates f[pass[0..np)] (sums without the LoRA term in sums) into order[0..k), k >
 * SMALL_TOPK: every one gets its random tie-breaker (topk_push). */
static size_t rank_all(ig_sched_t *s, const cand_t *f, const double *sums, const size_t *pass, size_t np,
                       const lora_eval_t *le, size_t *order, size_t k) {
  topk_t t;
  topk_init(&t, s->rank, k);
  for (size_t j = 0; j < np; j++)
    topk_push(s, &t, quant_sum(with_lora(le, &f[pass[j]], sums[pass[j]])), f[pass[j]].idx);
  return topk_finish(&t, order);
}

/* Ranks the candidates f[pass[0..np)] into order[0..k), k <= SMALL_TOPK: the candidates whose key is
 * above the k-th largest key K, then as many of those at K as fit, chosen uniformly at random, equal
 * keys in random order. The same distribution as an independent random tie-breaker per candidate
 * (rank_all), with draws only for the ties that are broken: a pool of idle pods ties everywhere. A
 * candidate whose sum with the largest LoRA term stays below the k-th key so far is not evaluated
 * further (quant_sum is monotonic). */
static size_t rank_select(ig_sched_t *s, const cand_t *f, const double *sums, const size_t *pass, size_t np,
                          const lora_eval_t *le, size_t *order, size_t k) {
  int64_t top[SMALL_TOPK]; /* the k largest keys so far, largest first (equal keys repeated) */
  size_t nt = 0, nl = 0;
  rank_t *l = s->rank; /* the candidates at or above the k-th key so far when seen */
  double lmax = le->use ? le->lq->term[3] : 0;
  for (size_t j = 0; j < np; j++) {
    size_t c = pass[j];
    if (nt == k && le->use && quant_sum(sums[c] + lmax) < top[k - 1]) continue;
    int64_t key = quant_sum(with_lora(le, &f[c], sums[c]));
    if (nt == k && key < top[k - 1]) continue;
    l[nl].key = key;
    l[nl++].idx = f[c].idx;
    size_t i = nt < k ? nt++ : k - 1;
    while (i > 0 && key > top[i - 1]) {
      top[i] = top[i - 1];
      i--;
    }
    top[i] = key;
  }
  if (!nt) return 0;
  int64_t kth = top[nt - 1];
  rank_t win[SMALL_TOPK];
  size_t got = 0, nties = 0;
  for (size_t j = 0; j < nl; j++) {
    if (l[j].key > kth)
      win[got++] = l[j];
    else if (l[j].key == kth)
      l[nties++] = l[j]; /* compacted in place: j >= nties */
  }
  for (size_t q = 0; got < nt && q < nties; q++) { /* partial Fisher-Yates over the ties */
    /* a uniform index from the high half of the draw (the low bits of consecutive draws are weaker) */
    size_t r = q + (size_t)(((ig_rng_next(&s->rng) >> 32) * (uint64_t)(nties - q)) >> 32);
    rank_t tmp = l[q];
    l[q] = l[r];
    l[r] = tmp;
    win[got++] = l[q];
  }
  for (size_t j = 0; got > 1 && j < got; j++) win[j].rnd = ig_rng_next(&s->rng); /* ties: random order */
  for (size_t j = 1; j < got; j++) {
    rank_t e = win[j];
    size_t i = j;
    while (i > 0 && rank_better(&e, &win[i - 1])) {
      win[i] = win[i - 1];
      i--;
    }
    win[i] = e;
  }
  for (size_t j = 0; j < got; j++) order[j] = win[j].idx;
  return got;
}

/* Weighted-sum scoring of the candidates s->flat[0..ctx->n) and ranking into order; returns how many
 * were written. The sum is formed term by term in scorer order exactly as the scorer table (score.c)
 * computes it (the same operations on the same values, so the same keys and the same tie-break
 * draws), without a call per pod and scorer, a division per pod for the prefix term, or a pod read. */
static size_t pick_scored(ig_sched_t *s, ig_sched_ctx_t *ctx, size_t *order, size_t k, int use_prefix, int any_lora,
                          int pc_bad, const uint64_t *lmask) {
  cand_t *f = s->flat;
  size_t n = ctx->n;
  double lo, hi, qmin, qmax;
  minmax_cands(f, n, &qmin, &qmax, &lo, &hi);
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
      match_cands(s, ctx->pods, f, n, ctx->n_hashes, pc_bad);
      ctx->match = s->match;
    }
  }
  /* a scorer that gives every candidate the same score does not change the ranking: skip it */
  int use_q = w[SC_QUEUE] > 0 && qmax > qmin;
  int use_kv = w[SC_KV] > 0;
  int use_p = w[SC_PREFIX] > 0 && ctx->match;
  int use_l = w[SC_LORA] > 0 && any_lora;
  double *pterm = s->pterm;
  if (use_p) /* the prefix term by matched blocks: the same product and quotient as per pod */
    for (uint32_t m = 0; m <= s->max_match; m++) pterm[m] = w[SC_PREFIX] * ((double)m / (double)ctx->n_hashes);
  double qspan = qmax - qmin < 1 ? 1 : qmax - qmin; /* as queue_score (score.c) */
  lora_q_t lq;
  lora_q_init(&lq, ctx, w[SC_LORA]);
  double *sums = s->sums, top[SMALL_TOPK];
  size_t kt = k <= SMALL_TOPK ? k : 1; /* the k largest sums are tracked for k <= SMALL_TOPK */
  for (size_t i = 0; i < kt; i++) top[i] = -INFINITY;
  if (use_q && use_kv && use_p)
    sum_terms(f, n, sums, w, qmax, qspan, pterm, 1, 1, 1, top, kt);
  else if (use_q && use_kv)
    sum_terms(f, n, sums, w, qmax, qspan, pterm, 1, 1, 0, top, kt);
  else
    sum_terms(f, n, sums, w, qmax, qspan, pterm, use_q, use_kv, use_p, top, kt);
  /* Every term is at least 0, so the k-th key is at least quant_sum of the k-th largest sum: a
   * candidate whose sum with the largest LoRA term stays below that cannot rank (nor draw a
   * tie-breaker). The floor is that key as a double (exact: below 2^53), compared as quant_sum
   * compares (quant_sum(x) < K exactly when x * 1e9 + 0.5 < K for x >= 0 and an integer K). */
  double floor_key = -1, lmax = use_l ? lq.term[3] : 0;
  if (k <= SMALL_TOPK && n > k) floor_key = (double)quant_sum(top[k - 1]);
  size_t *pass = s->set[2], np = above_floor(sums, n, lmax, floor_key, pass);
  lora_eval_t le = {ctx, &lq, lmask, w[SC_LORA], use_l};
  size_t got = k <= SMALL_TOPK ? rank_select(s, f, sums, pass, np, &le, order, k)
                               : rank_all(s, f, sums, pass, np, &le, order, k);
  if (ctx->match && got) s->match[order[0]] = f[s->pos[order[0]]].m; /* for last_prefix_hit */
  return got;
}

/* Writes pod i's candidate record (m = 0) to e and returns its SNAP_* flags: the values of
 * ig_sched_pod_queue / _qload / _kv / _load and the saturation test of ig_sched_pod_sat without its
 * freshness half (the age is read on every pick). Branch-free. */
static inline __attribute__((always_inline)) unsigned cand_make(const ig_sched_opts_t *o, cand_t *e,
                                                                const ig_sched_pod_t *p, size_t i) {
  double wq = ig_sched_nonneg_fast(p->waiting), run = ig_sched_nonneg_fast(p->running);
  double net = (double)p->pending - (double)p->done;
  double q = wq + net, load = wq + run + net;
  q = q > 0 ? q : 0;
  double kv = ig_sched_nonneg_fast(p->kv_usage);
  kv = kv > 1 ? 1 : kv;
  e->q = q + o->queue_running_weight * run + ig_sched_pod_prefill(o, p);
  e->kv = kv;
  e->load = load > 0 ? load : 0;
  e->idx = (uint32_t)i;
  e->m = 0;
  e->slots_full = (uint8_t)((p->lora != NULL) & (p->lora_hint ? p->lora_full != 0 : 1));
  e->lbits = (uint8_t)((unsigned)(p->lora != NULL) * LB_LORA | (unsigned)(p->lora_free != 0) * LB_FREE |
                       (unsigned)(p->lora_hint != 0) * LB_HINT);
  unsigned sat = (q >= o->queue_threshold) | (kv >= o->kv_threshold);
  return (unsigned)(p->has_metrics != 0) * SNAP_METRICS | sat * SNAP_SAT |
         (unsigned)(p->lora != NULL) * SNAP_LORA | (unsigned)(p->batch_slots != 0) * SNAP_SLOTS |
         (unsigned)e->slots_full * SNAP_FULL;
}

/* Remakes the kept record of pod i. */
static void snap_make(const ig_sched_opts_t *o, snap_t *sn, uint64_t *lm, const ig_sched_pod_t *p, size_t i) {
  sn->flags = cand_make(o, &sn->rec, p, i);
  lm[0] = p->lora_running_mask;
  lm[1] = p->lora_waiting_mask;
  sn->seq = p->seq;
  sn->prefix = p->prefix;
  sn->pending = p->pending;
  sn->done = p->done;
  sn->prefill = p->prefill;
  sn->slots = p->batch_slots;
}

/* The filters "fresh" then "not-saturated" in one pass over pods allowed[0..n) (allowed NULL = pods
 * 0..n-1): the unsaturated fresh pods' records go to f, their count is returned; *n_fresh counts the
 * fresh pods, *any_out gets the kept pods' SNAP_* flags or'd (one with adapter information, a known
 * batch size, adapter slots that may all be taken), *pc_bad whether one's prefix index is not the one
 * the slot cache (match_cands) knows for its index. With snap, a pod's record is the one kept there,
 * remade (snap_make) only when the pod is untracked or changed since: the pass reads four fields of the
 * pod and copies the record. Without, every record is derived from its pod (cand_make). Either way the
 * same records; inlined for each combination so that every loop knows its case. */
static inline __attribute__((always_inline)) size_t filter_pass(const ig_sched_opts_t *o, const ig_sched_pod_t *pods,
                                                                const size_t *allowed, size_t n, cand_t *f,
                                                                size_t *n_fresh, unsigned *any_out,
                                                                const ig_sched_prefix_t *const *pc_ptr, uint32_t *pos,
                                                                snap_t *snap, uint64_t *lmask, int *pc_bad) {
  const uint64_t stale = o->stale_ms;
  size_t nc = 0, nu = 0;
  unsigned any = 0, bad = 0;
  for (size_t a = 0; a < n; a++) {
    size_t i = allowed ? allowed[a] : a;
    const ig_sched_pod_t *p = &pods[i];
    unsigned fl;
    const ig_sched_prefix_t *px;
    unsigned fresh;
    if (snap) {
      snap_t *sn = &snap[i];
      int same = p->seq && p->seq == sn->seq && p->pending == sn->pending && p->done == sn->done &&
                 p->prefill == sn->prefill && p->batch_slots == sn->slots;
      if (__builtin_expect(!same, 0)) snap_make(o, sn, lmask + 2 * i, p, i);
      fl = sn->flags;
      px = sn->prefix;
      f[nu] = sn->rec;
      fresh = (fl & SNAP_METRICS) & (p->metrics_age_ms <= stale);
    } else {
      fl = cand_make(o, &f[nu], p, i);
      px = p->prefix;
      fresh = (fl & SNAP_METRICS) & (p->metrics_age_ms <= stale);
    }
    unsigned keep = fresh & !(fl & SNAP_SAT);
    pos[i] = (uint32_t)nu;
    bad |= keep & (pc_ptr[i] != px);
    any |= fl & (0u - keep);
    nc += fresh;
    nu += keep;
  }
  *n_fresh = nc;
  *any_out = any;
  *pc_bad = (int)bad;
  return nu;
}

/* The largest time an event-driven record keeps (so that its key cannot overflow), and the key a pod's
 * ev_key is compared with for "fresh at now" (v >= ev_key_now(now): its until >= now, see ev_make). */
#define EV_UNTIL_MAX (UINT64_MAX / 4)
static inline uint64_t ev_key_now(uint64_t now) { return now >= EV_UNTIL_MAX ? UINT64_MAX : 2 * (now + 1); }

/* The records of the kept pods kept[0..nu) of an event-driven pick into s->flat (pos follows), with
 * filter_pass's *any_out and *pc_bad. */
static void ev_records(ig_sched_t *s, const size_t *kept, size_t nu, unsigned *any_out, int *pc_bad) {
  const snap_t *snap = s->snap;
  cand_t *f = s->flat;
  unsigned any = 0;
  for (size_t c = 0; c < nu; c++) {
    size_t i = kept[c];
    const snap_t *sn = &snap[i];
    f[c] = sn->rec;
    s->pos[i] = (uint32_t)c;
    any |= sn->flags;
  }
  *any_out = any;
  *pc_bad = (any & SNAP_PCBAD) != 0;
}

/* filter_pass for an event-driven pick (ev_sync made every record and bitmap current): the same
 * records, the pods not read. Of every pod (allowed NULL): the candidates' bits; of pods allowed[0..n):
 * their compact keys (ev_key) at now. */
static size_t filter_pass_ev(ig_sched_t *s, const size_t *allowed, size_t n, uint64_t now, size_t *n_fresh,
                             unsigned *any_out, int *pc_bad) {
  size_t *kept = s->set[1], nc = 0, nu = 0;
  if (!allowed) {
    for (size_t w = 0; w < (n + 63) / 64; w++)
      for (uint64_t b = s->ev_bits[w]; b; b &= b - 1) kept[nu++] = w * 64 + (size_t)__builtin_ctzll(b);
    nc = s->ev_nfresh;
  } else {
    const uint64_t *key = s->ev_key, now2 = ev_key_now(now);
    for (size_t a = 0; a < n; a++) {
      size_t i = allowed[a];
      uint64_t v = key[i];
      unsigned fresh = v >= now2;
      kept[nu] = i;
      nc += fresh;
      nu += fresh & (unsigned)v;
    }
  }
  ev_records(s, kept, nu, any_out, pc_bad);
  *n_fresh = nc;
  return nu;
}

/* The filter "lora-slot" over the candidates f[0..n) for a request naming an adapter (ctx->model_id
 * not 0): drops the pods where the adapter would wait for a slot (ig_sched_lora_blocked_on) when any
 * candidate can start it now; else keeps them all. Returns the new count; s->pos follows. */
static size_t filter_lora_slots(ig_sched_t *s, const ig_sched_ctx_t *ctx, cand_t *f, size_t n) {
  size_t m = 0;
  for (size_t c = 0; c < n; c++) {
    int blocked = f[c].slots_full && ig_sched_lora_blocked_on(ctx, &ctx->pods[f[c].idx]);
    s->mpod[c] = (size_t)blocked; /* scratch: one flag per candidate */
    m += (size_t)!blocked;
  }
  if (m == 0 || m == n) return n;
  m = 0;
  for (size_t c = 0; c < n; c++) {
    if (s->mpod[c]) continue;
    f[m] = f[c];
    s->pos[f[m].idx] = (uint32_t)m;
    m++;
  }
  return m;
}

/* The filter "batch-slot" over the candidates f[0..n): keeps the pods where the request starts at once
 * (a free batch slot: pod_slots_free) or, for a request of priority <= 0 while Critical ones are around
 * (hold), the pods that keep their headroom for Critical requests with it (pod_headroom); when none
 * passes, keeps them all. Returns the new count; s->pos follows. */
static size_t filter_batch_slots(ig_sched_t *s, const ig_sched_pod_t *pods, cand_t *f, size_t n, int hold) {
  size_t m = 0;
  for (size_t c = 0; c < n; c++) {
    const ig_sched_pod_t *p = &pods[f[c].idx];
    if (!(hold ? pod_headroom(&s->o, p) : pod_slots_free(p, 0))) continue;
    f[m] = f[c];
    s->pos[f[m].idx] = (uint32_t)m;
    m++;
  }
  return m ? m : n; /* none passed: nothing was moved */
}

/* The "default" pick: the filters "fresh" then "not-saturated" (when any pod passes it) in one
 * branch-free pass over the allowed pods (allowed NULL = all n), writing what the scorers read into
 * s->flat, then pick_scored. Returns how many were written to order; *n_fresh = 0 (and nothing
 * written) when no pod is fresh. */
static size_t pick_default(ig_sched_t *s, ig_sched_ctx_t *ctx, const size_t *allowed, size_t n_allowed, size_t *order,
                           size_t k, int use_prefix, size_t *n_fresh, int ev, uint64_t now) {
  const ig_sched_pod_t *pods = ctx->pods;
  cand_t *f = s->flat;
  size_t nc, nu;
  unsigned any; /* SNAP_* flags of the candidates, or'd */
  int bad;
  const ig_sched_prefix_t *const *pc = (const ig_sched_prefix_t *const *)s->pc_ptr;
  /* the first allowed pod says whether the caller stamps its pods (any mix gives the same records) */
  int stamped = !ev && pods[allowed ? allowed[0] : 0].seq != 0;
  snap_t *sn = s->snap;
  uint32_t *pos = s->pos;
  uint64_t *lm = s->lmask;
  if (ev)
    nu = filter_pass_ev(s, allowed, n_allowed, now, &nc, &any, &bad);
  else if (allowed && stamped)
    nu = filter_pass(&s->o, pods, allowed, n_allowed, f, &nc, &any, pc, pos, sn, lm, &bad);
  else if (allowed)
    nu = filter_pass(&s->o, pods, allowed, n_allowed, f, &nc, &any, pc, pos, NULL, lm, &bad);
  else if (stamped)
    nu = filter_pass(&s->o, pods, NULL, n_allowed, f, &nc, &any, pc, pos, sn, lm, &bad);
  else
    nu = filter_pass(&s->o, pods, NULL, n_allowed, f, &nc, &any, pc, pos, NULL, lm, &bad);
  *n_fresh = nc;
  if (!nc) return 0;
  if (!nu) { /* every fresh pod is saturated: score them all */
    for (size_t a = 0; a < n_allowed; a++) {
      size_t i = allowed ? allowed[a] : a;
      int fresh = ev ? s->ev_key[i] >= ev_key_now(now) : ig_sched_pod_fresh(&s->o, &pods[i]);
      if (!fresh) continue;
      s->pos[i] = (uint32_t)nu;
      any |= cand_make(&s->o, &f[nu++], &pods[i], i);
    }
    bad = 1;
  }
  const ig_sched_request_t *req = ctx->req;
  int hold = req->reserve_critical && ig_sched_request_priority(req) <= 0;
  if (nu > 1 && (hold || (any & SNAP_SLOTS))) nu = filter_batch_slots(s, pods, f, nu, hold);
  /* an adapter can wait for a slot only on a pod whose slots may all be taken */
  if (ctx->model_id && (any & SNAP_FULL) && nu > 1) nu = filter_lora_slots(s, ctx, f, nu);
  ctx->n = nu;
  /* the masks of the kept records are current for every candidate when records were kept */
  return pick_scored(s, ctx, order, k, use_prefix, (any & SNAP_LORA) != 0, bad, ev || stamped ? lm : NULL);
}

/* Writes 0..n-1 to set[0] (the allowed set without a subset). */
static void allowed_all(ig_sched_t *s, size_t n) {
  for (size_t i = 0; i < n; i++) s->set[0][i] = i;
}

/* Builds the allowed set (subset or all, de-duplicated, in range) into set[0]; returns its size. Without
 * a subset, set[0] is written only when fill (the default pick reads "all" without the list). */
static size_t allowed_set(ig_sched_t *s, size_t n, const ig_sched_request_t *req, int fill) {
  size_t *a = s->set[0], m = 0;
  if (!req->subset) { /* no de-duplication needed: marks stay as they are (rank_rest reads epoch + 1) */
    if (fill) allowed_all(s, n);
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

/* Remakes the kept record of pod i for event-driven picks: snap_make, and the last ms at which the pod
 * is fresh (ig_sched_pod_fresh with the age ig_sched_pick_at derives) in seq. */
static void ev_make(const ig_sched_t *s, snap_t *sn, uint64_t *key, uint64_t *lm, const ig_sched_pod_t *p,
                    size_t i) {
  const ig_sched_opts_t *o = &s->o;
  snap_make(o, sn, lm, p, i);
  uint64_t until = p->scraped_ms + o->stale_ms;
  if (until < p->scraped_ms || until > EV_UNTIL_MAX) until = EV_UNTIL_MAX;
  sn->seq = p->has_metrics ? until : 0;
  sn->flags |= SNAP_EV | (s->pc_ptr[i] != p->prefix ? SNAP_PCBAD : 0u);
  *key = (sn->flags & SNAP_METRICS ? 2 * (until + 1) : 0) + !(sn->flags & SNAP_SAT);
}

/* Counts pod i in the event-driven pick's bitmaps at now: ev_fresh (fresh), ev_bits (fresh and not
 * saturated: a candidate), ev_nfresh, and ev_bound (at most the time any fresh pod goes stale). */
static void ev_mark(ig_sched_t *s, size_t i, uint64_t now) {
  const snap_t *sn = &s->snap[i];
  uint64_t bit = 1ull << (i & 63);
  size_t w = i >> 6;
  int fresh = s->ev_key[i] >= ev_key_now(now);
  int was = (s->ev_fresh[w] & bit) != 0;
  s->ev_nfresh = s->ev_nfresh + (size_t)fresh - (size_t)was;
  s->ev_fresh[w] = fresh ? s->ev_fresh[w] | bit : s->ev_fresh[w] & ~bit;
  s->ev_bits[w] = fresh && !(sn->flags & SNAP_SAT) ? s->ev_bits[w] | bit : s->ev_bits[w] & ~bit;
  if (fresh && sn->seq < s->ev_bound) s->ev_bound = sn->seq;
}

/* Counts every pod of pods[0..n) afresh at now (as ev_mark does, from the keys, a word at a time). */
static void ev_rescan(ig_sched_t *s, size_t n, uint64_t now) {
  const uint64_t *key = s->ev_key, now2 = ev_key_now(now);
  size_t nfresh = 0;
  uint64_t bound = UINT64_MAX;
  for (size_t w = 0; w * 64 < n; w++) {
    uint64_t fb = 0, kb = 0;
    size_t end = n - w * 64 < 64 ? n - w * 64 : 64;
    for (size_t j = 0; j < end; j++) {
      uint64_t v = key[w * 64 + j], fresh = v >= now2;
      fb |= fresh << j;
      kb |= (fresh & v) << j;
      uint64_t until = fresh ? (v >> 1) - 1 : UINT64_MAX;
      bound = until < bound ? until : bound;
    }
    s->ev_fresh[w] = fb;
    s->ev_bits[w] = kb;
    nfresh += (size_t)__builtin_popcountll(fb);
  }
  s->ev_nfresh = nfresh;
  s->ev_bound = bound;
}

#ifdef IG_CHECKS
/* Whether two kept records hold the same values (field by field: snap_t has padding). */
static int snap_same(const snap_t *a, const snap_t *b) {
  return !memcmp(&a->rec, &b->rec, sizeof a->rec) && a->seq == b->seq && a->prefix == b->prefix &&
         a->pending == b->pending && a->done == b->done && a->slots == b->slots && a->prefill == b->prefill &&
         a->flags == b->flags;
}
#endif

/* Brings the kept records of pods[0..n) and the bitmaps up to date for an event-driven pick at now:
 * the reported pods', or all when the records are not the event-driven ones of a pool of n; and every
 * pod's freshness when a fresh pod may have gone stale since (now past ev_bound) or the clock went
 * back. */
static void ev_sync(ig_sched_t *s, const ig_sched_pod_t *pods, size_t n, uint64_t now) {
  int rescan = now > s->ev_bound || now < s->ev_now;
  if (!s->ev_valid || s->ev_n != n) {
    for (size_t i = 0; i < n; i++) ev_make(s, &s->snap[i], &s->ev_key[i], &s->lmask[2 * i], &pods[i], i);
    s->ev_n = n;
    s->ev_valid = 1;
    rescan = 1;
  } else {
    for (size_t k = 0; k < s->n_dirty; k++) {
      size_t i = s->dirty[k];
      ev_make(s, &s->snap[i], &s->ev_key[i], &s->lmask[2 * i], &pods[i], i);
      if (!rescan) ev_mark(s, i, now);
    }
  }
  s->n_dirty = 0;
  if (rescan) ev_rescan(s, n, now);
  s->ev_now = now;
#ifdef IG_CHECKS /* sanitizer and debug builds: no change went unreported, the bitmaps are right */
  size_t nfresh = 0;
  for (size_t i = 0; i < n; i++) {
    snap_t t;
    uint64_t key, lm[2], *mine = &s->lmask[2 * i];
    ev_make(s, &t, &key, lm, &pods[i], i);
    int fresh = (t.flags & SNAP_METRICS) && now <= t.seq && now < EV_UNTIL_MAX;
    int keep = fresh && !(t.flags & SNAP_SAT);
    nfresh += (size_t)fresh;
    int fresh_bit = (int)(s->ev_fresh[i >> 6] >> (i & 63) & 1);
    int keep_bit = (int)(s->ev_bits[i >> 6] >> (i & 63) & 1);
    if (snap_same(&t, &s->snap[i]) && key == s->ev_key[i] && !memcmp(lm, mine, sizeof lm) &&
        fresh == fresh_bit && keep == keep_bit)
      continue;
    fprintf(stderr, "infergate: pod %zu: its kept record is not its state (a change not reported with "
                    "ig_sched_pods_changed?)\n", i);
    abort();
  }
  if (nfresh != s->ev_nfresh) abort();
#endif
}

void ig_sched_pods_changed(ig_sched_t *s, size_t i) {
  if (!s || !s->ev_valid) return; /* every record is remade anyway */
  if (i >= s->ev_n) {
    s->ev_valid = 0;
    return;
  }
  snap_t *sn = &s->snap[i];
  if (!(sn->flags & SNAP_EV)) return; /* listed already */
  sn->flags &= ~(uint32_t)SNAP_EV;
  s->dirty[s->n_dirty++] = i;
}

/* Picks an endpoint (ig_sched_pick, or with ev ig_sched_pick_at at now). */
static int pick(ig_sched_t *s, ig_sched_pod_t *pods, size_t n, const ig_sched_request_t *req, size_t *order,
                size_t *n_order, int ev, uint64_t now) {
  if (!n_order) return IG_EINVAL;
  size_t k = *n_order;
  *n_order = 0;
  if (!s || !req || !order || k == 0 || (n && !pods) || (req->subset == NULL && req->n_subset)) return IG_EINVAL;
  if (!n) return IG_ENOENT;
  ig_sched_reserve(s, n);
  if (ev && s->prof->kind != PICK_SCORED) { /* the other profiles read the ages */
    for (size_t i = 0; i < n; i++)
      pods[i].metrics_age_ms = pods[i].has_metrics && now > pods[i].scraped_ms ? now - pods[i].scraped_ms : 0;
    ev = 0;
  }
  if (ev) {
    ev_sync(s, pods, n, now);
  } else if (s->prof->kind == PICK_SCORED && s->ev_valid) {
    /* the records of event-driven picks hold no stamps: remade for ig_sched_pick, and after it all */
    for (size_t i = 0; i < s->ev_n; i++) s->snap[i].seq = 0;
    s->ev_valid = 0;
  }
  next_epoch(s);
  size_t n_allowed = allowed_set(s, n, req, s->prof->kind != PICK_SCORED);
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
    size_t nc;
    got = pick_default(s, &ctx, req->subset ? allowed : NULL, n_allowed, order, k, used_prefix, &nc, ev, now);
    if (!req->subset && (!nc || got < k)) allowed_all(s, n); /* the fallbacks below read the list */
    if (!nc) {
      /* Nothing fresh: stale numbers must not pass for live ones, so fall back to our own counts. */
      got = pick_least_request(s, pods, allowed, n_allowed, order, k);
      break;
    }
    if (got < k) { /* fallbacks beyond the candidates */
      for (size_t c = 0; c < ctx.n; c++) cand[c] = s->flat[c].idx;
      mark_cand(s, cand, ctx.n);
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
  if (ev) ig_sched_pods_changed(s, order[0]);
  *n_order = got;
  return 0;
}

int ig_sched_pick(ig_sched_t *s, ig_sched_pod_t *pods, size_t n, const ig_sched_request_t *req, size_t *order,
                  size_t *n_order) {
  return pick(s, pods, n, req, order, n_order, 0, 0);
}

int ig_sched_pick_at(ig_sched_t *s, ig_sched_pod_t *pods, size_t n, uint64_t now_ms,
                     const ig_sched_request_t *req, size_t *order, size_t *n_order) {
  return pick(s, pods, n, req, order, n_order, 1, now_ms);
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
    match_prefix(s, pods, NULL, ctx.cand, n, ctx.n_hashes);
    ctx.match = s->match;
  }
  if (ig_sched_scorers[sc].prepare) ig_sched_scorers[sc].prepare(&ctx);
  for (size_t i = 0; i < n; i++) out[i] = ig_sched_scorers[sc].score(&ctx, i);
  return 0;
}

/* ---- batch size learned from the metrics ---- */

unsigned ig_sched_slots_learn(ig_sched_slots_est_t *e, double running, double waiting, double kv_usage,
                              double tokens) {
  double r = ig_sched_nonneg(running), w = ig_sched_nonneg(waiting);
  if (r > 1e6) r = 1e6;
  r = floor(r);
  if (r > e->run_max) { /* more than the limit we believed in: not the limit */
    e->run_max = r;
    e->slots = 0;
  }
  if (!(tokens >= 0)) tokens = NAN; /* not exported (or nonsense): every scrape may straddle a step */
  int stepped = isnan(tokens) || isnan(e->prev_tokens) || tokens != e->prev_tokens;
  int queued = w >= 1 && !(kv_usage >= IG_SCHED_SLOTS_KV_MAX); /* NaN KV: as if low */
  if (queued && e->prev_queued && stepped && r == e->prev_running && r >= e->run_max && r >= 1) {
    e->slots = (unsigned)r;
    e->unconfirmed = 0;
  } else if (e->slots && ++e->unconfirmed >= IG_SCHED_SLOTS_FORGET) {
    e->slots = 0; /* relearned (two scrapes) when the pod queues at it again */
    e->unconfirmed = 0;
  }
  e->prev_queued = queued;
  e->prev_running = r;
  e->prev_tokens = tokens;
  return e->slots;
}

/* Scheduler internals shared by the files of src/sched: the scheduler state, the per-pick context and
 * the tables of filters and scorers. */
#ifndef IG_SCHED_INTERNAL_H
#define IG_SCHED_INTERNAL_H

#include <stdint.h>

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "infergate/sched.h"

enum { SC_QUEUE, SC_KV, SC_PREFIX, SC_LORA, N_SCORERS };

/* What one pick sees. Scorers read it; their prepare step fills the stats they need. */
typedef struct {
  struct ig_sched *s;
  const ig_sched_pod_t *pods;
  const ig_sched_request_t *req;
  const size_t *cand; /* candidate pod indexes */
  size_t n;
  double qmin, qmax;    /* queue scorer: ig_sched_pod_qload over the candidates */
  size_t n_hashes;      /* prefix scorer: blocks of the request (hashes in s->hashes) */
  const uint32_t *match; /* prefix scorer: matched blocks, indexed by pod index */
  const char *model;     /* req->model, for the LoRA checks */
  uint32_t model_id;     /* its interned id (ig_sched_lora_id), 0 when never interned */
} ig_sched_ctx_t;

/* A scorer: a name, an optional once-per-pick preparation over the candidates, and a score in [0,1].
 * prepare returns 0 when the score is the same for every candidate, so the pick may skip it. */
typedef struct ig_scorer {
  const char *name;
  int (*prepare)(ig_sched_ctx_t *ctx);
  double (*score)(const ig_sched_ctx_t *ctx, size_t pod);
} ig_scorer_t;

/* A filter: keeps some of in[0..n) in out (order kept) and returns how many. 0 = nothing passed; the
 * caller then decides (fallback to the input, branch, or shed). */
typedef struct ig_filter {
  const char *name;
  size_t (*filter)(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out);
} ig_filter_t;

typedef enum { PICK_SCORED, PICK_GIE, PICK_ROUND_ROBIN, PICK_RANDOM, PICK_LEAST_REQUEST } pick_kind_t;

typedef struct {
  const char *name;
  pick_kind_t kind;
  int admission;               /* queue/shed on saturation in ig_sched_admit */
  double weights[N_SCORERS];
} profile_t;

/* A scored candidate of a "default" pick: what the scorers read, copied once from the pod in the pass
 * that filters the pods, so that scoring reads one small record per candidate instead of the pod.
 * 32 bytes: the filter pass writes one per pod, so its size is most of that pass's stores. */
typedef struct {
  double q, load, kv; /* ig_sched_pod_qload / _load / _kv (q and load side by side: one 16-byte load
                         in the min/max pass) */
  uint32_t idx;       /* pod index */
  uint16_t m;         /* prefix blocks matched (0 until matched; at most IG_SCHED_PREFIX_MAX_BLOCKS) */
  uint8_t slots_full; /* 1 when the pod's adapter slots may all be taken (check the pod), 0 when an
                         adapter can start there whatever it is (no LoRA data, a free slot) */
  uint8_t lbits;      /* LB_*: what the LoRA term reads of the pod besides its masks */
} cand_t;
enum { LB_LORA = 1, LB_FREE = 2, LB_HINT = 4 }; /* lora not NULL, lora_free, lora_hint */

/* What a "default" pick derived from one tracked pod (ig_sched_pod_touch), kept between picks and
 * remade when the pod's stamp, pending, done or prefill count or batch size differ from those it was
 * made with; for event-driven picks (ig_sched_pick_at, SNAP_EV), until the pod is reported changed. */
enum {
  SNAP_METRICS = 1,
  SNAP_SAT = 2,
  SNAP_LORA = 4,
  SNAP_SLOTS = 8,
  SNAP_EV = 16,    /* an event-driven record (ig_sched_pick_at), current until its pod is reported */
  SNAP_FULL = 32,  /* the pod's adapter slots may all be taken (cand_t.slots_full) */
  SNAP_PCBAD = 64, /* event-driven: the slot cache's prefix index for the pod index is not its own */
};
typedef struct {
  cand_t rec;                      /* the pod's candidate record (m = 0) */
  uint64_t seq;                    /* the stamp it was made with; 0 = remake on every pick. With
                                      SNAP_EV: the last ms at which the pod is fresh (0: never) */
  const ig_sched_prefix_t *prefix; /* the pod's prefix index */
  uint32_t pending, done, slots;   /* pending, done and batch_slots it was made with */
  uint32_t prefill;                /* and prefill */
  uint32_t flags;                  /* SNAP_*: has metrics, saturated by queue or KV, has adapter
                                      information, batch size known */
} snap_t;

typedef struct {
  int64_t key; /* larger is better */
  uint64_t rnd; /* random tie-break */
  size_t idx;
} rank_t;

/* The pool-wide prefix head index (prefix.c): chain head -> slots of the attached pods holding it. */
typedef struct {
  uint64_t key; /* 0 = empty */
  uint32_t n, cap; /* cap <= 2: slots inline */
  union {
    uint32_t in[2];
    uint32_t *v;
  } u;
} ig_sched_pspace_ent_t;

typedef struct ig_sched_pspace {
  ig_sched_pspace_ent_t *tab;
  size_t mask, n;
  ig_sched_prefix_t **owner; /* slot -> attached index (NULL = free slot) */
  uint32_t *free_slots;
  uint32_t n_owner, cap_owner, n_free;
  size_t members;
  uint64_t gen; /* bumped whenever an index joins or leaves (slot <-> index changes) */
  int orphan; /* its scheduler is gone: freed with its last member, members move on when picked */
} ig_sched_pspace_t;

ig_sched_pspace_t *ig_sched_pspace_new(void);
void ig_sched_pspace_release(ig_sched_pspace_t *sp);
const uint32_t *ig_sched_pspace_find(const ig_sched_pspace_t *sp, uint64_t key, size_t *n);
/* Moves idx into sp (out of its previous space, if any). */
void ig_sched_prefix_attach(ig_sched_prefix_t *idx, ig_sched_pspace_t *sp);
ig_sched_pspace_t *ig_sched_prefix_space(const ig_sched_prefix_t *idx);
/* Prefetches the table slots that ig_sched_prefix_match(idx, h, n) probes first (n >= 1), so that the
 * look-ups of many pods overlap their cache misses. */
void ig_sched_prefix_prefetch(const ig_sched_prefix_t *idx, const uint64_t *h, size_t n);
/* out[j] = ig_sched_prefix_match(idx[j], h, n) for j < m (n >= 1, every idx[j] not NULL): the binary
 * searches run side by side, each step's probes prefetched for all indexes before any is read. */
void ig_sched_prefix_match_many(const ig_sched_prefix_t *const *idx, size_t m, const uint64_t *h, size_t n,
                                uint32_t *out);
uint32_t ig_sched_prefix_slot(const ig_sched_prefix_t *idx);

/* LoRA ids (lora.c). */
/* Mask bit of an adapter id: ids 1..62 have a bit of their own (so the bit answers exactly), every
 * other id and 0 (not interned) share bit 63 (then the lists are checked). */
static inline uint64_t ig_sched_lora_bit(uint32_t id) { return 1ull << (id && id < 63 ? id : 63); }
/* 1 when a model of id `id` (ig_sched_lora_id) is in no interned adapter list: id 0 while every name
 * ever listed got an id (the table never filled up). Such a model is a base model to every pod. */
int ig_sched_lora_unlisted(uint32_t id);
int ig_sched_lora_has(const char names[][IG_SCHED_LORA_NAME_MAX], const uint32_t *ids, int n, const char *model,
                      uint32_t mid);

struct ig_sched {
  const profile_t *prof;
  double w[N_SCORERS];
  ig_sched_opts_t o;
  ig_rng_t rng;
  size_t rr;
  /* scratch, sized for cap pods */
  size_t cap;
  size_t *set[4];
  uint32_t *mark; /* membership stamps, compared with epoch */
  uint32_t epoch;
  uint32_t *match;
  double last_prefix_hit; /* matched / total prompt blocks of the last pick; -1 when not scored */
  rank_t *rank;
  uint64_t hashes[IG_SCHED_PREFIX_MAX_BLOCKS];
  /* prefix matching through the pool-wide head index */
  ig_sched_pspace_t *space;
  const ig_sched_prefix_t **pc_ptr; /* by pod index: the prefix seen there last, and its slot */
  uint32_t *pc_slot;
  uint32_t *slot_stamp, *slot_pod; /* by slot: candidate of this pick (stamp == pick_stamp) */
  size_t slot_cap;
  uint32_t pick_stamp;
  size_t *slow; /* candidates matched pod by pod (not in our space) */
  uint32_t max_match; /* largest s->match value of the last match_prefix */
  const ig_sched_prefix_t **mpx; /* pods matched block by block in this pick: their indexes, */
  size_t *mpod;                  /*   pod indexes */
  uint32_t *mout;                /*   and matched blocks */
  cand_t *flat; /* scored candidates of a "default" pick */
  snap_t *snap; /* by pod index: what the filter pass derived from the pod (tracked pods) */
  uint32_t *pos; /* by pod index: its position in flat in the current pick (check flat[pos].idx) */
  uint64_t pc_gen; /* space gen the pc_ptr / pc_slot cache was built under */
  int pc_dups; /* some index was seen on two pod indexes: the cache cannot map slots to pods */
  /* event-driven picks (ig_sched_pick_at): the records of snap[0..ev_n) are current (SNAP_EV) but for
   * the pods listed in dirty; ev_valid 0 = remake them all (first pick, array-mode pick, new size) */
  size_t *dirty, n_dirty, ev_n;
  int ev_valid;
  uint64_t *ev_key; /* by pod index: 2 x (1 + the last ms at which it is fresh) (0: never), + 1 when it
                       is not saturated by queue or KV: one compare answers "fresh", one bit "kept" */
  uint64_t *lmask;  /* by pod index: its adapter masks (running, waiting) as its kept record has them */
  double *sums;     /* scratch of pick_scored: a candidate's queue + KV + prefix terms */
  uint64_t *ev_bits, *ev_fresh; /* bitmaps by pod index (ev_mark): candidate (fresh and not saturated),
                                   fresh; as of ev_now */
  size_t ev_nfresh;             /* fresh pods */
  uint64_t ev_bound;            /* no fresh pod goes stale before this (a lower bound) */
  uint64_t ev_now;              /* the time the bitmaps were made for */
  double pterm[IG_SCHED_PREFIX_MAX_BLOCKS + 1]; /* prefix weight * m / blocks, by matched blocks m */
};

extern const ig_scorer_t ig_sched_scorers[N_SCORERS];
extern const ig_filter_t ig_sched_filters[]; /* NULL-name terminated */
int ig_sched_scorer_index(const char *name);

/* Pod helpers, inline because every pass of a pick calls them once per pod. */
static inline double ig_sched_nonneg(double v) { return isfinite(v) && v > 0 ? v : 0; }

/* ig_sched_nonneg without branches, for the passes over every pod (a branch there mispredicts on
 * every idle pod): NaN, negative, -0 and +inf give +0, like ig_sched_nonneg. With SSE2, a max against
 * 0 (which answers 0 for NaN) and a mask for +inf; elsewhere the same on the bits: a double is finite
 * and > 0 exactly when its bits, read as an integer, lie in [1, the bits of DBL_MAX]. */
static inline double ig_sched_nonneg_fast(double v) {
#if defined(__SSE2__)
  __m128d r = _mm_max_sd(_mm_set_sd(v), _mm_setzero_pd());
  r = _mm_and_pd(r, _mm_cmplt_sd(r, _mm_set_sd(INFINITY)));
  return _mm_cvtsd_f64(r);
#else
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  b &= (uint64_t)0 - (uint64_t)(b - 1 < 0x7FEFFFFFFFFFFFFFull);
  memcpy(&v, &b, sizeof v);
  return v;
#endif
}

/* How our own traffic changed the pod's counts since its last scrape: the requests we sent since
 * (pending) minus ours that finished since (done). Negative when more finished than were sent. */
static inline double ig_sched_pod_net(const ig_sched_pod_t *p) {
  return (double)p->pending - (double)p->done;
}

/* waiting + our net change since the last scrape (ig_sched_pod_net), at least 0: requests we sent and
 * that already finished do not count, however long the scrape interval */
static inline double ig_sched_pod_queue(const ig_sched_pod_t *p) {
  double q = ig_sched_nonneg(p->waiting) + ig_sched_pod_net(p);
  return q > 0 ? q : 0;
}

/* Our unanswered prompt tokens on p as waiting requests (queue_prefill_tokens; 0 when off). */
static inline double ig_sched_pod_prefill(const ig_sched_opts_t *o, const ig_sched_pod_t *p) {
  return o->queue_prefill_tokens > 0 ? (double)p->prefill / o->queue_prefill_tokens : 0;
}

/* What the queue scorer ranks: the queue plus queue_running_weight x the running batch plus our
 * unanswered prompt tokens (ig_sched_pod_prefill). */
static inline double ig_sched_pod_qload(const ig_sched_opts_t *o, const ig_sched_pod_t *p) {
  return ig_sched_pod_queue(p) + o->queue_running_weight * ig_sched_nonneg(p->running) +
         ig_sched_pod_prefill(o, p);
}

/* kv_usage clamped to [0,1] */
static inline double ig_sched_pod_kv(const ig_sched_pod_t *p) {
  double kv = ig_sched_nonneg(p->kv_usage);
  return kv > 1 ? 1 : kv;
}

/* waiting + running + our net change since the last scrape, at least 0: the load of the cache-aware
 * herding guard, and the batch slots in use */
static inline double ig_sched_pod_load(const ig_sched_pod_t *p) {
  double l = ig_sched_nonneg(p->waiting) + ig_sched_nonneg(p->running) + ig_sched_pod_net(p);
  return l > 0 ? l : 0;
}

static inline int ig_sched_pod_fresh(const ig_sched_opts_t *o, const ig_sched_pod_t *p) {
  return p->has_metrics && p->metrics_age_ms <= o->stale_ms;
}

static inline int ig_sched_pod_sat(const ig_sched_opts_t *o, const ig_sched_pod_t *p) {
  return !ig_sched_pod_fresh(o, p) || ig_sched_pod_queue(p) >= o->queue_threshold ||
         ig_sched_pod_kv(p) >= o->kv_threshold;
}

double ig_sched_lora_score(const ig_sched_ctx_t *ctx, const ig_sched_pod_t *p);
int ig_sched_lora_blocked_on(const ig_sched_ctx_t *ctx, const ig_sched_pod_t *p);
int ig_sched_pod_has_lora(const char lists[][IG_SCHED_LORA_NAME_MAX], int n, const char *model);

/* Filters (score.c). */
size_t ig_sched_filter_fresh(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out);
size_t ig_sched_filter_unsaturated(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out);
/* The original GIE filter tree over in[0..n). Returns the survivors' count (written to out; uses
 * tmp as scratch, both sized n), or 0 when the request is to be shed. */
size_t ig_sched_gie_tree(ig_sched_ctx_t *ctx, const size_t *in, size_t n, size_t *out, size_t *tmp);

#endif

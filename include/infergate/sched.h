/* Scheduler: the inference-aware endpoint picker (filters, scorers, pickers, profiles), the per-pod
 * prefix-cache index, the saturation detector and admission, and the flow-control queue.
 *
 * The module is a pure library: it does no I/O, reads no clock and never calls the proxy. The caller
 * (the proxy glue) owns an array of ig_sched_pod_t, copies scraped metrics into it, and passes times in.
 * See docs/scheduling.md for the profiles, weights and rules. Single-threaded: one ig_sched_t per pool
 * (or per thread). */
#ifndef INFERGATE_SCHED_H
#define INFERGATE_SCHED_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "infergate/core.h"

/* Criticality, in priority order. Same order as config.h's ig_criticality_t (Critical, Standard,
 * Sheddable) so the glue may map one to the other by value. */
typedef enum { IG_SCHED_CRIT_CRITICAL, IG_SCHED_CRIT_STANDARD, IG_SCHED_CRIT_SHEDDABLE } ig_sched_crit_t;
#define IG_SCHED_N_CRIT 3

/* Integer priority (GIE InferenceObjective `spec.priority`): higher is served first; negative is
 * sheddable. A criticality stands for a priority: Critical 1, Standard 0, Sheddable -1. */
#define IG_SCHED_PRIO_CRITICAL 1
#define IG_SCHED_PRIO_STANDARD 0
#define IG_SCHED_PRIO_SHEDDABLE (-1)
/* The priority of a criticality (1 / 0 / -1; 0 for a value out of range). */
int ig_sched_crit_priority(ig_sched_crit_t crit);
/* The criticality class of a priority: > 0 Critical, 0 Standard, < 0 Sheddable. */
ig_sched_crit_t ig_sched_priority_crit(int priority);

/* Same limits as metrics.h's ig_pod_metrics_t, so the glue can copy the adapter lists verbatim. */
#define IG_SCHED_MAX_LORAS 16
#define IG_SCHED_LORA_NAME_MAX 64

/* ---- prefix-cache index ------------------------------------------------------------------------ */

/* Approximate LRU set of prompt block hashes believed to be in one pod's KV cache. */
typedef struct ig_sched_prefix ig_sched_prefix_t;

#define IG_SCHED_PREFIX_DEFAULT_CAPACITY 31250 /* blocks per pod */
#define IG_SCHED_PREFIX_BLOCK_CHARS 64         /* prompt characters per block */
#define IG_SCHED_PREFIX_MAX_BLOCKS 256         /* blocks looked up per request */

/* Creates an empty index holding about capacity block hashes (0 = the default 31,250). Memory grows
 * with use, up to about 16 bytes per block of capacity. Free with ig_sched_prefix_free. */
ig_sched_prefix_t *ig_sched_prefix_new(size_t capacity);
void ig_sched_prefix_free(ig_sched_prefix_t *idx);
/* Forgets everything (e.g. the pod restarted). */
void ig_sched_prefix_clear(ig_sched_prefix_t *idx);
/* Number of block hashes currently held (at most about the capacity). */
size_t ig_sched_prefix_size(const ig_sched_prefix_t *idx);

/* Splits prompt[0..len) into full blocks of block_chars characters (0 = 64) and writes the chained
 * hash of each block (hash of block i covers the model name and blocks 0..i) to out[0..max). A trailing
 * partial block is not hashed. model may be NULL. Returns the number of hashes written. */
size_t ig_sched_prefix_hashes(const char *model, const char *prompt, size_t len, size_t block_chars,
                              uint64_t *out, size_t max);
/* Number of consecutive leading hashes of h[0..n) present in the index (0..n). Read-only. */
size_t ig_sched_prefix_match(const ig_sched_prefix_t *idx, const uint64_t *h, size_t n);
/* Records h[0..n) as most recently used, evicting the least recently used generation when full. */
void ig_sched_prefix_insert(ig_sched_prefix_t *idx, const uint64_t *h, size_t n);

/* ---- pods and requests ------------------------------------------------------------------------- */

/* LoRA adapter state of one pod (cold data, kept out of ig_sched_pod_t so that a pick over a large
 * pool touches little memory). Same fields and limits as metrics.h's ig_pod_metrics_t. */
typedef struct {
  int max_lora; /* adapter slots; 0 = unknown / no LoRA */
  int n_running_loras, n_waiting_loras;
  char running_loras[IG_SCHED_MAX_LORAS][IG_SCHED_LORA_NAME_MAX];
  char waiting_loras[IG_SCHED_MAX_LORAS][IG_SCHED_LORA_NAME_MAX];
  /* Filled by ig_sched_lora_intern: the names above as process-wide small integer ids, so that a pick
   * compares integers instead of strings. ids_valid 0 (a zeroed struct) = compare the names. */
  int ids_valid;
  uint32_t running_ids[IG_SCHED_MAX_LORAS];
  uint32_t waiting_ids[IG_SCHED_MAX_LORAS];
  uint64_t running_mask, waiting_mask; /* bit (id % 64) of each id; all ones when an id is 0 */
} ig_sched_lora_t;

/* Interns l's adapter names (process-wide table, thread-safe) into l's id arrays and sets ids_valid.
 * Call it whenever the names or counts change (the scraper does once per scrape); a struct whose
 * names changed after the call must be interned again. Names beyond the table's limit (4,096 distinct)
 * keep id 0 and are compared by name, so the result never depends on the table. */
void ig_sched_lora_intern(ig_sched_lora_t *l);

/* The scheduler's view of one endpoint. Owned by the caller; ig_sched_pick updates `pending` and the
 * prefix index of the pod it picks. */
typedef struct {
  size_t id;                  /* caller's endpoint id, opaque here */
  uint64_t seq;               /* change stamp (ig_sched_pod_touch), so that a pick reuses what it
                                 derived from the pod last time instead of reading it all again; 0 (a
                                 zeroed struct) = not tracked, read on every pick. See below. */
  double waiting;             /* scraped queue length */
  double running;             /* scraped batch size */
  double kv_usage;            /* scraped KV-cache usage, 0..1 */
  uint64_t metrics_age_ms;    /* time since the last successful scrape (read by ig_sched_pick) */
  uint64_t scraped_ms;        /* when the last successful scrape was stored, in the caller's clock
                                 (ms); ig_sched_pick_at derives the age from it and its now_ms */
  int has_metrics;            /* 0 until the first successful scrape: the pod counts as stale */
  unsigned pending;           /* requests we sent since the last scrape; pending - done is added to
                                 waiting (at least 0 in all) so picks do not herd between scrapes.
                                 ig_sched_pick increments it on the pod it picks; the glue resets it
                                 to 0 when it stores a new scrape. */
  unsigned inflight;          /* our requests currently outstanding on the pod (glue-maintained:
                                 +1 at dispatch, -1 at completion); used by "least-request" */
  unsigned batch_slots;       /* the engine's batch size limit (vLLM max_num_seqs) when known (from
                                 the config, or ig_sched_slots_learn); 0 = unknown. Read with
                                 critical_slots (ig_sched_opts_t). */
  unsigned done;              /* our requests that finished on the pod since the last scrape (glue-
                                 maintained, reset with pending): they leave the pod's queue and
                                 batch slots although the scraped counts still hold them, and those
                                 we sent since the scrape no longer count in pending - done */
  unsigned prefill;           /* prompt tokens (estimated) of our requests on the pod that have no
                                 answer yet (no response byte): prefill work the pod has ahead of a
                                 new request, known without waiting for a scrape. Glue-maintained
                                 (+ at dispatch, - at the first response byte or the end), never
                                 reset by a scrape; the queue scorer counts it (queue_prefill_tokens) */
  const ig_sched_lora_t *lora; /* owned by the caller; NULL = no adapter information */
  ig_sched_prefix_t *prefix;  /* owned by the pod state (ig_sched_prefix_new); NULL = no prefix scoring */
  /* A copy of *lora's masks and free-slot state, so that a pick over a large pool reads the cold LoRA
   * data only of pods that may hold the adapter. Set by ig_sched_pod_set_lora; lora_hint 0 (a zeroed
   * struct) = no copy, read *lora. */
  int lora_hint;
  int lora_free;
  int lora_full; /* every slot taken by running adapters (max_lora > 0 and none free) */
  uint64_t lora_running_mask, lora_waiting_mask;
} ig_sched_pod_t;

/* A pod's scraped state changes once per scrape, while a pool of 1,000 pods sees many picks between
 * two scrapes of any one pod: a caller that stamps its pods lets the scheduler keep, per pod, what a
 * pick derives from them (queue, KV, saturation, adapter slots) and redo it only for the pods that
 * changed. Stamp a pod (a new, process-wide unique seq) whenever waiting, running, kv_usage,
 * has_metrics, scraped_ms, lora (the pointer), lora_hint/free/full, the masks or prefix (the pointer)
 * change; a
 * copy of the struct keeps its stamp (same content). pending, done, prefill and batch_slots are compared on
 * every pick, so picks and the glue may change them freely; metrics_age_ms, inflight and the adapter
 * lists behind lora are read afresh every pick, never kept. ig_sched_pod_set_lora stamps a tracked
 * pod itself. Thread-safe. */
void ig_sched_pod_touch(ig_sched_pod_t *p);

/* Aborts when dst, holding src's stamp, differs from src in a field the
 * stamp covers: a change made without ig_sched_pod_touch. */
void ig_sched_pod_check_stamp(const ig_sched_pod_t *dst, const ig_sched_pod_t *src);

/* Brings dst, the copy a pick reads, up to date with src, the pod state the glue keeps: the whole
 * struct, or, when dst already holds src's stamp (tracked, so nothing the stamp covers changed), only
 * pending, done, prefill and batch_slots. id, metrics_age_ms and inflight are the caller's to set
 * after. Returns 1 when dst changed in a field other than those four (tell ig_sched_pods_changed). */
static inline int ig_sched_pod_sync(ig_sched_pod_t *dst, const ig_sched_pod_t *src) {
  if (!src->seq || dst->seq != src->seq) {
    *dst = *src;
    return 1;
  }
#ifdef IG_CHECKS /* sanitizer and debug builds (CMakeLists.txt) */
  ig_sched_pod_check_stamp(dst, src);
#endif
  int changed = dst->pending != src->pending || dst->done != src->done || dst->prefill != src->prefill ||
                dst->batch_slots != src->batch_slots;
  dst->pending = src->pending;
  dst->done = src->done;
  dst->prefill = src->prefill;
  dst->batch_slots = src->batch_slots;
  return changed;
}

/* The glue's copy of a pod for a pick at now_ms: dst brought up to date with src (ig_sched_pod_sync),
 * or zeroed when src is NULL (no state yet); batch_slots set to slots when not 0 (a configured batch
 * size over the learned one); metrics_age_ms derived from scraped_ms as ig_sched_pick_at does. Returns
 * 1 when dst changed in a field other than id, metrics_age_ms and inflight (report it:
 * ig_sched_pods_changed), else 0. */
static inline int ig_sched_pod_copy(ig_sched_pod_t *dst, const ig_sched_pod_t *src, uint64_t now_ms,
                                    unsigned slots) {
  uint64_t seq = dst->seq;
  unsigned pending = dst->pending, done = dst->done, prefill = dst->prefill, batch = dst->batch_slots;
  int copied;
  if (src) {
    copied = ig_sched_pod_sync(dst, src); /* the copy only when the pod changed */
  } else {
    ig_sched_pod_t z;
    memset(&z, 0, sizeof z);
    z.id = dst->id;
    z.inflight = dst->inflight;
    z.batch_slots = slots;
    copied = memcmp(&z, dst, sizeof z) != 0; /* padding may differ: at worst reported again */
    if (copied) memcpy(dst, &z, sizeof z);
  }
  if (slots) dst->batch_slots = slots;
  dst->metrics_age_ms = dst->has_metrics && now_ms > dst->scraped_ms ? now_ms - dst->scraped_ms : 0;
  /* a copy of the same stamp changed only if pending, done, prefill or the batch size it ends with did */
  return (copied && (!dst->seq || dst->seq != seq)) || dst->pending != pending || dst->done != done ||
         dst->prefill != prefill || dst->batch_slots != batch;
}

/* Points p at l after interning l (ig_sched_lora_intern) and copies l's masks and free-slot state
 * into p. Call it again whenever l changes (the scraper does once per scrape); l NULL clears. Stamps p
 * (ig_sched_pod_touch) when it is tracked (seq not 0). */
void ig_sched_pod_set_lora(ig_sched_pod_t *p, ig_sched_lora_t *l);

/* The id of an adapter name, 0 when no pod ever listed it (ig_sched_lora_intern): a model with id 0
 * is treated as a base model (no adapter slot needed). Thread-safe. */
uint32_t ig_sched_lora_id(const char *name);
/* Marks name as an adapter before any pod lists it (e.g. a /v1/models card with a "parent"), so that
 * its first requests already look for a free slot. Returns its id (0: the table is full). */
uint32_t ig_sched_lora_register(const char *name);

/* Our own requests in flight on one pod per adapter id (glue-maintained), so that waiting requests
 * which wait for an adapter slot rather than for capacity can be told apart (ig_sched_lora_blocked). */
#define IG_SCHED_LORA_TRACK 16
typedef struct {
  uint32_t id[IG_SCHED_LORA_TRACK]; /* 0 = free entry */
  unsigned n[IG_SCHED_LORA_TRACK];
} ig_sched_lora_flight_t;

/* Adds delta (+1 at dispatch, -1 at completion) to id's count in f. Returns 0, or IG_EFULL when a +1
 * finds no free entry (nothing counted: the caller must not subtract it later); id 0 is ignored (0). */
int ig_sched_lora_flight_add(ig_sched_lora_flight_t *f, uint32_t id, int delta);
/* How many of a pod's waiting requests wait for an adapter slot, not for capacity: when every slot of
 * l is taken by running adapters, our in-flight requests (f) of adapters l lists as waiting and not as
 * running (none of those can be running there). A lower bound when other clients share the pod. Needs
 * l interned (ig_sched_lora_intern); 0 for NULL arguments. */
unsigned ig_sched_lora_blocked(const ig_sched_lora_t *l, const ig_sched_lora_flight_t *f);
/* Records that a request for adapter model (id from ig_sched_lora_id, not 0) was just sent to the pod
 * of l: listed as running when a slot is free (the pod will load it), else as waiting, unless listed
 * already; then p's copy is refreshed (ig_sched_pod_set_lora). So picks before the next scrape see the
 * slot taken; a tracked p is stamped (ig_sched_pod_touch). Returns 1 when l changed. */
int ig_sched_lora_note_sent(ig_sched_pod_t *p, ig_sched_lora_t *l, const char *model, uint32_t id);

/* One request to place. Nothing is retained after the call. */
typedef struct {
  const char *model;       /* target model after the InferenceModel split (LoRA adapter name or
                              base model); NULL = unknown */
  ig_sched_crit_t crit;
  const char *prompt;      /* text used for prefix hashing (may be NULL) */
  size_t prompt_len;
  const char *fairness_id; /* x-gateway-inference-fairness-id, for the flow-control queue; may be NULL */
  size_t fairness_id_len;
  const size_t *subset;    /* allowed indexes into pods[] (e.g. Envoy's subset hint); NULL = all */
  size_t n_subset;
  /* Integer priority (admission, the gie tree): used when has_priority is 1; 0 (a zeroed struct) =
   * derive it from crit (ig_sched_crit_priority). Callers that set it should set crit to its class
   * (ig_sched_priority_crit) too. */
  int priority;
  int has_priority;
  /* 1 = keep the pods' own queues and some batch slots for Critical requests (standard_queue_max and
   * critical_slots apply to this request's admission and pick); the caller sets it while requests of
   * priority > 0 are around (one arrived within IG_SCHED_CRITICAL_WINDOW_MS). 0 = off. */
  int reserve_critical;
} ig_sched_request_t;

/* How long after a request of priority > 0 the callers keep reserve_critical set. */
#define IG_SCHED_CRITICAL_WINDOW_MS 10000

/* Sheddable requests are shed because more important ones wait in a flow-control queue only once those
 * have waited IG_SCHED_PRESSURE_MS (or two scrape intervals, when longer): a hold that the next scrape
 * clears (a burst left every pod with a request just sent) is no reason for a 429. since_ms: when
 * requests of priority >= 0 started to wait (0: none waits); scrape_ms: the pool's scrape interval. */
#define IG_SCHED_PRESSURE_MS 200
static inline int ig_sched_pressure_sustained(uint64_t since_ms, uint64_t now_ms, uint64_t scrape_ms) {
  uint64_t after = 2 * scrape_ms;
  if (after < IG_SCHED_PRESSURE_MS) after = IG_SCHED_PRESSURE_MS;
  return since_ms && now_ms >= since_ms && now_ms - since_ms >= after;
}

/* The request's effective priority: req->priority when has_priority, else crit's (1 / 0 / -1). */
int ig_sched_request_priority(const ig_sched_request_t *req);

/* ---- batch size learned from the metrics --------------------------------------------------------- */

/* What a pod's scrapes showed of its batch size limit (vLLM max_num_seqs), which engines do not
 * publish: the running count never exceeds it, and a pod that keeps requests waiting at the same,
 * highest running count seen across a step boundary is at it. Zero it to start; feed it every
 * successful scrape. */
typedef struct {
  double run_max;       /* largest running count seen */
  double prev_running;  /* the previous scrape's running count */
  double prev_tokens;   /* and its token counter (NaN: not exported; 0 in a zeroed estimate) */
  int prev_queued;      /* and whether it had a request waiting */
  unsigned slots;       /* the learned limit; 0 = not known */
  unsigned unconfirmed; /* scrapes since the limit was last confirmed */
} ig_sched_slots_est_t;

/* Feeds one scrape (running, waiting: the pod's counts, waiting without requests that wait for an
 * adapter slot; kv_usage; tokens: the pod's processed-token counter, prompt + generation, which moves
 * when an engine step ends, NaN or negative when the engine does not export it) and returns the
 * learned limit, 0 while unknown: the running count of two scrapes in a row that both had a request
 * waiting with the same running count, which is also the largest seen, and between which a step ended
 * (the token counter moved; always assumed without one): two scrapes inside one long step see the
 * same batch whatever its limit, while the arrivals wait for the step's end. A limit is forgotten
 * when a larger running count shows up (until confirmed there), and after IG_SCHED_SLOTS_FORGET
 * scrapes that do not confirm it (a limit learned from a passing condition must not keep traffic off
 * a pod for good, while one the pod keeps meeting is confirmed again). A scrape with KV usage at or
 * above IG_SCHED_SLOTS_KV_MAX counts as not queueing (the pod waits for KV blocks, not for a slot); a
 * pod that queues below its limit for want of prefill budget teaches its effective limit, which is
 * what a new request meets there. Non-finite or negative counts count as 0. */
#define IG_SCHED_SLOTS_KV_MAX 0.8
#define IG_SCHED_SLOTS_FORGET 600 /* scrapes: 30 s at the default 50 ms interval */
unsigned ig_sched_slots_learn(ig_sched_slots_est_t *e, double running, double waiting, double kv_usage,
                              double tokens);

/* ---- the scheduler ----------------------------------------------------------------------------- */

/* Thresholds. Start from ig_sched_opts_default and change what you need. */
typedef struct {
  double queue_threshold;       /* pod saturated when waiting + pending >= this; 5 */
  double standard_queue_max;    /* admission with reserve_critical: requests of priority <= 0 go to a
                                   pod only while its waiting + pending < this, so the pods' own (FIFO)
                                   queues keep room for Critical ones and the rest waits in our priority
                                   queue; 0 or >= queue_threshold = off; 1 */
  double critical_slots;        /* admission with reserve_critical on a pod whose batch_slots is known:
                                   requests of priority <= 0 go to it only while running + waiting +
                                   pending - done + this < batch_slots, so that a Critical request finds a
                                   free batch slot instead of waiting for a sequence to finish; at
                                   most a quarter of batch_slots is kept; 0 = off; 4 */
  double kv_threshold;          /* pod saturated when kv_usage >= this; 0.8 */
  double queue_running_weight;  /* the queue scorer's load is waiting + pending + this x running (a
                                   full batch delays a new request like a queue does); 0.05 */
  double queue_prefill_tokens;  /* ... + prefill / this: our unanswered prompt tokens on the pod count
                                   as one waiting request per this many (the pod's step is longer by
                                   them, and so is a new request's time to first token); 0 = off; 64 */
  uint64_t stale_ms;            /* pod stale (and saturated) when metrics are older; 200 */
  double critical_queue_max;    /* gie: Critical keeps pods with queue < this; 128 */
  double lora_affinity_p;       /* gie: probability of preferring pods with the adapter active; 0.999 */
  double imbalance_abs;         /* cache-aware herding guard: fall back to least-queue when */
  double imbalance_rel;         /*   max-min load > abs and max > rel * min; 64 and 1.5 */
  size_t prefix_block_chars;    /* 64 */
  size_t prefix_max_blocks;     /* 256 (at most IG_SCHED_PREFIX_MAX_BLOCKS) */
} ig_sched_opts_t;

void ig_sched_opts_default(ig_sched_opts_t *o);

typedef struct ig_sched ig_sched_t;

/* 1 when name is a known profile: "default", "gie", "round-robin", "random", "least-request". */
int ig_sched_profile_exists(const char *name);
/* 1 when name is a known scorer: "queue", "kv", "prefix", "lora". */
int ig_sched_scorer_exists(const char *name);

/* Creates a scheduler for a profile (NULL = "default") with a seeded random source (ties, sampling)
 * and options (NULL = defaults). Returns NULL when the profile is unknown (check first with
 * ig_sched_profile_exists). Free with ig_sched_free. */
ig_sched_t *ig_sched_new(const char *profile, uint64_t seed);
ig_sched_t *ig_sched_new_opts(const char *profile, uint64_t seed, const ig_sched_opts_t *opts);
void ig_sched_free(ig_sched_t *s);
const char *ig_sched_profile_name(const ig_sched_t *s);
const ig_sched_opts_t *ig_sched_opts(const ig_sched_t *s);

/* Sets (0 removes) a scorer's weight in a scoring profile ("default"). Returns 0, IG_ENOENT for an
 * unknown scorer, IG_ENOTSUP for a profile that does not score, IG_EINVAL for a negative or
 * non-finite weight. */
int ig_sched_set_weight(ig_sched_t *s, const char *scorer, double weight);
/* A scorer's weight in this scheduler's profile (0 when unused). */
double ig_sched_weight(const ig_sched_t *s, const char *scorer);

/* Pre-sizes the scratch buffers for pools of up to n pods (pick grows them otherwise, once). */
void ig_sched_reserve(ig_sched_t *s, size_t n);

/* Picks an endpoint for req among pods[0..n) (or the request's subset). On success returns 0 and writes
 * to order[0..*n_order) pod indexes, best first: the pick, then fallbacks for retries (candidates that
 * passed the filters by rank, then the other allowed pods). On entry *n_order is the capacity of order
 * (>= 1). The picked pod's `pending` is incremented and its prefix index records the request's blocks.
 * Returns IG_ENOENT when no pod is allowed (n == 0, empty subset), IG_EFULL when the profile sheds the
 * request (answer 429), IG_EINVAL on bad arguments. *n_order is 0 on failure. Allocates nothing once
 * the scratch buffers are large enough for n. */
int ig_sched_pick(ig_sched_t *s, ig_sched_pod_t *pods, size_t n, const ig_sched_request_t *req, size_t *order,
                  size_t *n_order);

/* Picks with what the scheduler kept (event-driven): ig_sched_pick does for every pick what the
 * stamps allow it to skip only partly, reading a line of every pod to find the changed ones and their
 * ages; ig_sched_pick_at reads only the pods the caller reports changed (ig_sched_pods_changed), the
 * picked one, and, for some requests, the candidates (adapter lists, batch-slot filter, fallbacks).
 * The same pick as ig_sched_pick on the same pods with each metrics_age_ms set to has_metrics &&
 * now_ms > scraped_ms ? now_ms - scraped_ms : 0 (the ages are neither read nor written; other profiles
 * than "default" fill them and call ig_sched_pick). The array must stay current, and every change to a
 * pod other than to id, metrics_age_ms and inflight must be reported before the next ig_sched_pick_at:
 * pods[i] changed, or i >= the pool's size / SIZE_MAX: everything may have changed (a new array). The
 * pick reports the pending count it raises itself. Sanitizer builds (IG_CHECKS) check every pick that
 * no unreported change happened. Mixing it with ig_sched_pick on one scheduler is allowed but slow:
 * each pick after a pick of the other kind rereads every pod. */
void ig_sched_pods_changed(ig_sched_t *s, size_t i);
int ig_sched_pick_at(ig_sched_t *s, ig_sched_pod_t *pods, size_t n, uint64_t now_ms,
                     const ig_sched_request_t *req, size_t *order, size_t *n_order);

/* One scorer's score in [0,1] for each of pods[0..n) (all treated as candidates), into out[0..n). For
 * tests and explain/debug output; no state changes. Returns 0 or IG_ENOENT for an unknown scorer. */
/* The prefix-cache hit of the last successful ig_sched_pick: blocks of the prompt the chosen pod had
 * cached / blocks of the prompt, measured before the pick recorded them; -1 when that pick did not
 * score prefixes (other profiles, no prompt, or the imbalance fallback). */
double ig_sched_last_prefix_hit(const ig_sched_t *s);

int ig_sched_scores(ig_sched_t *s, const char *scorer, const ig_sched_pod_t *pods, size_t n,
                    const ig_sched_request_t *req, double *out);

/* ---- saturation and admission ------------------------------------------------------------------ */

/* 1 when the pod is saturated: no metrics, metrics older than stale_ms, waiting + pending >=
 * queue_threshold, or kv_usage >= kv_threshold. */
int ig_sched_pod_saturated(const ig_sched_t *s, const ig_sched_pod_t *pod);
/* 1 when every pod is saturated (stale pods count as saturated, so also when no pod is fresh). */
int ig_sched_pool_saturated(const ig_sched_t *s, const ig_sched_pod_t *pods, size_t n);
/* 1 when no pod has room for a request of priority prio: every pod is saturated or, for prio <= 0 when
 * reserve (reserve_critical) is set, has waiting + pending >= standard_queue_max or, its batch_slots
 * known, running + waiting + pending - done + critical_slots >= batch_slots. Profiles without admission:
 * ig_sched_pool_saturated. */
int ig_sched_pool_full_for(const ig_sched_t *s, const ig_sched_pod_t *pods, size_t n, int prio, int reserve);

typedef enum {
  IG_SCHED_ADMIT_PICK,  /* schedule now with ig_sched_pick */
  IG_SCHED_ADMIT_QUEUE, /* put in the flow-control queue until a pod frees up (TTL -> 503) */
  IG_SCHED_ADMIT_SHED,  /* answer 429 */
} ig_sched_admit_t;

typedef struct ig_sched_queue ig_sched_queue_t;

/* Decides what to do with a new request (only the request's subset counts, when given), by its
 * priority (ig_sched_request_priority).
 * Profile "default": SHED a request of negative priority (Sheddable) when every pod is saturated;
 * QUEUE when every pod is saturated, when a request of the same or a higher priority waits in q (q may
 * be NULL), or when the request's priority is <= 0, it has reserve_critical set and no pod has room
 * for it (ig_sched_pool_full_for); a Sheddable request is also SHED when a higher priority is queued
 * (the proxy queues it instead while that hold is young);
 * otherwise PICK.
 * Profile "gie" and the baselines never queue: PICK (gie sheds inside ig_sched_pick). */
ig_sched_admit_t ig_sched_admit(const ig_sched_t *s, const ig_sched_pod_t *pods, size_t n,
                                const ig_sched_request_t *req, const ig_sched_queue_t *q);

/* ---- flow-control queue ------------------------------------------------------------------------ */

/* A pure data structure: one band per distinct integer priority, higher served first (at most
 * IG_SCHED_QUEUE_MAX_BANDS bands hold requests at a time); inside a band, round-robin between fairness
 * ids (one FIFO per id); a deadline per request; a fixed capacity. Times are passed in by the caller
 * (milliseconds on any monotonic clock). The ig_sched_crit_t functions are wrappers: a criticality is
 * the priority 1 / 0 / -1, and a "crit band" counts the priorities of its class (> 0, 0, < 0). */
typedef struct ig_sched_qnode ig_sched_qnode_t;

/* Bands (distinct priorities) that may hold requests at once. A request whose priority has no band
 * while all of them are in use joins the nearest band below its priority (or, when its priority is
 * below them all, the lowest band): it is served with that band, never ahead of a higher band. */
#define IG_SCHED_QUEUE_MAX_BANDS 64

/* Creates a queue for at most capacity requests (>= 1). All memory is allocated here. */
ig_sched_queue_t *ig_sched_queue_new(size_t capacity);
/* Frees the queue; items still queued are dropped (their data is not touched). */
void ig_sched_queue_free(ig_sched_queue_t *q);

/* Queues data (the caller's request handle) in the band of its priority and in its flow, to expire at
 * now_ms + ttl_ms. When the queue is full, the newest request of the lowest band whose priority is
 * below `priority` is evicted to make room (*evicted = its data: answer it 429); when no lower band
 * holds anything, returns IG_EFULL (answer 429) and nothing changes. *node (may be NULL) receives a
 * handle for ig_sched_queue_cancel, valid until the item leaves the queue. Returns 0, IG_EFULL or
 * IG_EINVAL. Allocates nothing. */
int ig_sched_queue_push_prio(ig_sched_queue_t *q, void *data, int priority, const char *fairness_id,
                             size_t fairness_id_len, uint64_t now_ms, uint64_t ttl_ms, ig_sched_qnode_t **node,
                             void **evicted);
/* Removes the newest request of the lowest band whose priority is below priority (*data = its data:
 * answer it) and returns 0, or IG_ENOENT when no such band holds anything. */
int ig_sched_queue_evict_below(ig_sched_queue_t *q, int priority, void **data);
/* ig_sched_queue_push_prio with crit's priority (1 / 0 / -1); IG_EINVAL for a crit out of range. */
int ig_sched_queue_push(ig_sched_queue_t *q, void *data, ig_sched_crit_t crit, const char *fairness_id,
                        size_t fairness_id_len, uint64_t now_ms, uint64_t ttl_ms, ig_sched_qnode_t **node,
                        void **evicted);
/* Takes the next request: the highest band, the next flow of that band in round-robin order, that
 * flow's oldest request. Returns 0 with *data set, IG_ETIMEDOUT with *data set when that request had
 * expired (answer 503 and call again), or IG_ENOENT when empty. *priority (may be NULL) gets the
 * priority it was pushed with. */
int ig_sched_queue_pop_prio(ig_sched_queue_t *q, uint64_t now_ms, void **data, int *priority);
/* ig_sched_queue_pop_prio; *crit (may be NULL) gets the class of the request's priority. */
int ig_sched_queue_pop(ig_sched_queue_t *q, uint64_t now_ms, void **data, ig_sched_crit_t *crit);
/* Removes one expired request (earliest deadline first): 0 with *data set, or IG_ENOENT when none has
 * expired at now_ms. */
int ig_sched_queue_expire(ig_sched_queue_t *q, uint64_t now_ms, void **data);
/* Removes a queued request (client went away); returns its data. node must be live. */
void *ig_sched_queue_cancel(ig_sched_queue_t *q, ig_sched_qnode_t *node);
/* Earliest deadline of a queued request, or UINT64_MAX when empty (arm a timer for it). */
uint64_t ig_sched_queue_next_deadline(const ig_sched_queue_t *q);
size_t ig_sched_queue_len(const ig_sched_queue_t *q);
/* Queued requests whose priority is of crit's class (> 0 Critical, 0 Standard, < 0 Sheddable). */
size_t ig_sched_queue_band_len(const ig_sched_queue_t *q, ig_sched_crit_t crit);
/* Queued requests in the band of exactly this priority (0 when it has no band). */
size_t ig_sched_queue_prio_len(const ig_sched_queue_t *q, int priority);
/* Writes the bands that hold requests, highest priority first, to prio[0..max) and len[0..max) (len
 * may be NULL). Returns the number of such bands (at most IG_SCHED_QUEUE_MAX_BANDS; may exceed max). */
size_t ig_sched_queue_bands(const ig_sched_queue_t *q, int *prio, size_t *len, size_t max);
/* The highest priority with a band holding requests: 0 with *priority set, IG_ENOENT when empty. */
int ig_sched_queue_top_priority(const ig_sched_queue_t *q, int *priority);
size_t ig_sched_queue_capacity(const ig_sched_queue_t *q);

#endif

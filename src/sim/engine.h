/* Simulated inference engine (private to the sim module): continuous batching with chunked prefill,
 * paged KV cache of 16-token blocks with prefix caching (block hash chain, LRU eviction of free
 * blocks), preemption by recompute, LoRA slots and a bounded waiting queue.
 *
 * The engine is pure: it never reads a clock and never does I/O. Callers pass the simulated time in
 * microseconds where timestamps matter (arrival, step end) and drive it in two phases per step:
 *   us = ig_sim_engine_schedule(e);        picks the batch, returns the step duration (0 = idle)
 *   ig_sim_engine_complete(e, now, cb, u); applies the step: tokens, finished sequences, metrics
 * Sequences are owned by the caller (usually embedded in a request object); the engine links them
 * into its queues and never frees them. */
#ifndef IG_SIM_ENGINE_H
#define IG_SIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "infergate/core.h"

#define IG_SIM_BLOCK_TOKENS 16
#define IG_SIM_BLOCK_CHARS 64 /* = 16 tokens at ~4 characters per token */
#define IG_SIM_MAX_ADAPTERS 64
#define IG_SIM_DEFAULT_MODEL_LEN 131072 /* Llama 3.1 8B context */

/* Hardware/model profile: step_us = b0 + b1 * prefill_tokens + b2 * decode_tokens. */
typedef struct {
  const char *name;
  double b0, b1, b2;
  uint32_t kv_blocks;
  uint32_t max_batched_tokens;
  uint32_t max_num_seqs;
} ig_sim_profile_t;

/* Returns the built-in profile called name, or NULL. */
const ig_sim_profile_t *ig_sim_profile_find(const char *name);

typedef struct {
  ig_sim_profile_t prof; /* coefficients and limits actually used (after overrides) */
  double slowdown;       /* multiplies every step time (1 = normal) */
  uint32_t max_waiting;  /* bound of the waiting queue (new requests); 0 = unbounded */
  uint32_t max_loras;    /* LoRA slots (adapters resident at once) */
  uint32_t max_model_len; /* prompt + max_tokens limit; 0 = 131072; at most kv_blocks * 16 */
} ig_sim_engine_config_t;

typedef enum { IG_SIM_SEQ_NEW, IG_SIM_SEQ_WAITING, IG_SIM_SEQ_RUNNING, IG_SIM_SEQ_DONE } ig_sim_seq_state_t;

typedef struct ig_sim_seq ig_sim_seq_t;
struct ig_sim_seq {
  /* set by ig_sim_seq_init */
  uint32_t prompt_tokens;
  uint32_t max_tokens;
  int lora; /* adapter index, -1 for the base model */
  uint64_t *hashes; /* chained hashes of the full 64-character prompt blocks */
  uint32_t n_hashes;
  /* progress (read-only for callers) */
  ig_sim_seq_state_t state;
  uint32_t computed;      /* tokens whose KV is computed */
  uint32_t generated;     /* output tokens produced */
  uint32_t cached_tokens; /* prefix-cache hit at first admission */
  uint32_t scheduled;     /* tokens scheduled in the step in flight */
  uint32_t preemptions;
  int admitted_once;
  uint64_t arrival_us;
  uint64_t first_token_us;
  uint32_t *blocks; /* physical block ids held, in order */
  uint32_t n_blocks, cap_blocks;
  uint32_t n_reg; /* leading blocks already registered in the prefix cache */
  ig_sim_seq_t *prev, *next; /* queue links (waiting or running) */
  void *user;
};

/* Prepares seq for a prompt of text[0..len): token count (ig_oai_count_tokens) and the block hash
 * chain, seeded by the adapter name for LoRA requests (adapter KV is not shared with the base).
 * max_tokens is clamped to >= 1. Release with ig_sim_seq_free. */
void ig_sim_seq_init(ig_sim_seq_t *seq, const char *text, size_t len, uint32_t max_tokens, int lora,
                     const char *lora_name);
void ig_sim_seq_free(ig_sim_seq_t *seq);

/* Histogram with fixed upper bounds (seconds), Prometheus style. */
#define IG_SIM_HIST_MAX 32
typedef struct {
  const double *bounds;
  size_t n;
  uint64_t counts[IG_SIM_HIST_MAX]; /* per bucket, not cumulative */
  uint64_t count;
  double sum;
} ig_sim_hist_t;

typedef struct {
  uint64_t prompt_tokens;     /* prompt tokens of requests whose prefill completed */
  uint64_t generation_tokens;
  uint64_t prefix_queries;    /* prompt tokens looked up in the prefix cache */
  uint64_t prefix_hits;       /* of those, found cached */
  uint64_t preemptions;
  uint64_t lora_loads;        /* adapters made resident (each load of an evicted adapter counts again) */
  uint64_t requests_finished;
  uint64_t requests_aborted;
  uint64_t steps;
  uint64_t busy_us;           /* simulated time spent in steps */
  ig_sim_hist_t ttft;         /* simulated seconds */
  ig_sim_hist_t e2e;
} ig_sim_stats_t;

typedef struct {
  char *name;
  char *path;
  int registered; /* listed by /v1/models and accepted in requests */
  int resident;   /* occupies a LoRA slot */
  uint32_t running; /* running sequences using it */
  uint32_t waiting; /* waiting sequences using it */
  uint64_t last_used; /* step counter, for LRU eviction of idle resident adapters */
} ig_sim_adapter_t;

typedef struct {
  uint64_t hash;
  uint32_t ref;
  uint32_t hnext; /* hash bucket chain, UINT32_MAX = end */
  uint32_t lprev, lnext; /* LRU free list links, UINT32_MAX = end */
  unsigned hashed : 1;
  unsigned in_free : 1;
} ig_sim_block_t;

/* What an engine's running / waiting / KV-usage gauges show (ig_sim_engine_gauges). */
typedef struct {
  uint32_t running, waiting;
  double kv;
} ig_sim_gauges_t;

typedef struct {
  ig_sim_engine_config_t cfg;
  /* KV cache */
  ig_sim_block_t *blocks;
  uint32_t *buckets;
  uint32_t nbuckets; /* power of two */
  uint32_t free_head, free_tail; /* LRU order: head is evicted first */
  uint32_t n_free;
  /* queues */
  ig_sim_seq_t *wait_head, *wait_tail;
  ig_sim_seq_t *run_head, *run_tail;
  uint32_t n_waiting, n_running;
  uint32_t n_waiting_new; /* waiting sequences never admitted (the bounded part) */
  int step_in_flight;
  uint64_t step_us; /* duration of the step in flight */
  uint32_t arrived_in_step; /* submitted while the step in flight runs (not yet seen by a schedule) */
  ig_sim_gauges_t at_step_end; /* the gauges as of the last step's end (ig_sim_engine_gauges) */
  /* LoRA */
  ig_sim_adapter_t adapters[IG_SIM_MAX_ADAPTERS];
  int n_adapters;
  ig_sim_stats_t stats;
} ig_sim_engine_t;

void ig_sim_engine_init(ig_sim_engine_t *e, const ig_sim_engine_config_t *cfg);
/* Frees engine memory. Sequences still queued are unlinked (their blocks are released) but stay
 * owned by the caller. */
void ig_sim_engine_free(ig_sim_engine_t *e);

/* Queues seq (prepared with ig_sim_seq_init) arriving at now_us. Returns 0, IG_EFULL when the
 * waiting queue is full, IG_ETOOBIG when prompt + max_tokens exceeds the context limit, or
 * IG_ENOENT when seq->lora is not a known adapter. */
int ig_sim_engine_submit(ig_sim_engine_t *e, ig_sim_seq_t *seq, uint64_t now_us);

/* Removes seq wherever it is (waiting or running, also mid-step) and releases its blocks. */
void ig_sim_engine_abort(ig_sim_engine_t *e, ig_sim_seq_t *seq);

/* Picks the batch of the next step and returns its duration in simulated microseconds (at least 1),
 * or 0 when there is nothing to run. Must be followed by ig_sim_engine_complete before the next
 * schedule. */
uint64_t ig_sim_engine_schedule(ig_sim_engine_t *e);

/* Called once per sequence that produced a token in the step; done is set when it finished (it has
 * then left the engine, and the callback may free it). */
typedef void (*ig_sim_emit_fn)(void *ud, ig_sim_seq_t *seq, int done);

/* Applies the step scheduled last, ending at simulated time now_us: advances computed tokens,
 * samples one token for each sequence that caught up with its tokens, finishes sequences at
 * max_tokens, registers full prompt blocks in the prefix cache and updates stats. */
void ig_sim_engine_complete(ig_sim_engine_t *e, uint64_t now_us, ig_sim_emit_fn emit, void *ud);

/* Adapter registry. add returns the index (existing or new), IG_EEXIST when registered already
 * (with *idx set), IG_EFULL when the table is full. */
int ig_sim_engine_add_adapter(ig_sim_engine_t *e, const char *name, const char *path, int *idx);
/* Unregisters an adapter (IG_ENOENT when unknown); it leaves its slot once no sequence uses it. */
int ig_sim_engine_remove_adapter(ig_sim_engine_t *e, const char *name);
/* Index of a registered adapter, or -1. */
int ig_sim_engine_find_adapter(const ig_sim_engine_t *e, const char *name);
/* Makes an adapter resident: takes a free slot, or evicts the least recently used idle one.
 * Returns 0 (also when already resident) or IG_EFULL when every slot is busy. */
int ig_sim_engine_load_adapter(ig_sim_engine_t *e, int idx);
/* Number of resident adapters. */
uint32_t ig_sim_engine_slots_used(const ig_sim_engine_t *e);

/* KV usage in [0, 1]: blocks referenced by sequences / all blocks. */
double ig_sim_engine_kv_usage(const ig_sim_engine_t *e);
/* Blocks held by sequences. */
uint32_t ig_sim_engine_blocks_used(const ig_sim_engine_t *e);

/* What the engine's running / waiting / KV gauges show. Live: the counts right now. Per step (as
 * vLLM's, which publishes the scheduler's numbers with each step's output): while a step runs, the
 * numbers of the last step's end - the batch less the sequences that finished in it, and the
 * requests that step left waiting; requests that arrived since wait unseen until a step ends. An
 * idle engine shows its live counts either way. */
ig_sim_gauges_t ig_sim_engine_gauges(const ig_sim_engine_t *e, int per_step);

/* Deterministic output text of the i-th generated token (4 characters = 1 token). */
const char *ig_sim_token_text(uint32_t i);

extern const double ig_sim_ttft_buckets[];
extern const size_t ig_sim_ttft_nbuckets;
extern const double ig_sim_e2e_buckets[];
extern const size_t ig_sim_e2e_nbuckets;

#endif

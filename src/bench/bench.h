/* infergate bench (private to the bench module): workload generation, SSE token accounting,
 * statistics, and the libuv load-generating client.
 *
 * The workload generator, the SSE counter and the statistics are pure (no clock, no I/O) so the
 * unit tests can drive them directly; only client.c touches sockets and time. */
#ifndef IG_BENCH_H
#define IG_BENCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "infergate/core.h"

/* Lengths are clamped to this range (tokens) for the sampled workloads. */
#define IG_BENCH_LEN_MIN 4
#define IG_BENCH_LEN_MAX 4096
/* Bytes of generated prompt text per token (ig_oai_count_tokens counts ceil(bytes / 4)). */
#define IG_BENCH_CHARS_PER_TOKEN 4

/* ---- workloads ---------------------------------------------------------------------------- */

typedef enum {
  IG_BENCH_WL_SHAREGPT,      /* lognormal input/output lengths around the given means */
  IG_BENCH_WL_SHARED_PREFIX, /* groups of prompts sharing one system prompt */
  IG_BENCH_WL_LORA_MIX,      /* sharegpt lengths, model drawn from --models with Zipf popularity */
  IG_BENCH_WL_CRITICALITY,   /* sharegpt lengths, 1/3 each Critical / Standard / Sheddable */
  IG_BENCH_WL_FIXED,         /* exactly input_mean in, output_mean out */
  IG_BENCH_WL_DATASET,       /* prompts and answer lengths replayed from a ShareGPT file */
} ig_bench_wl_kind_t;

/* ---- ShareGPT datasets (dataset.c) -------------------------------------------------------- */

/* One conversation: its first human turn and the token count of the gpt turn that answers it. */
typedef struct {
  char *prompt; /* owned, NUL-terminated (may also hold NULs: use prompt_len) */
  size_t prompt_len;
  uint32_t prompt_tokens; /* ig_oai_count_tokens of the prompt */
  uint32_t output_tokens; /* ig_oai_count_tokens of the answer, >= 1 */
} ig_bench_ds_entry_t;

typedef struct {
  ig_bench_ds_entry_t *v; /* entries in file order */
  size_t n, cap;
  size_t seen;    /* entries looked at before stopping (kept + skipped) */
  size_t skipped; /* entries that were not a usable conversation (or JSONL lines that were not JSON) */
  int truncated;  /* stopped at max_entries; the rest of the file was not read */
  int is_array;   /* a JSON array file, else JSON Lines */
} ig_bench_dataset_t;

#define IG_BENCH_DATASET_MAX_DEFAULT 10000

/* Turns one ShareGPT object into an entry: the first turn from "human" (or "user") and the turn
 * right after it, which must be from "gpt" (or "assistant", "chatgpt"); "value" (or "content") of
 * both must be non-empty strings. Returns 0 (out->prompt owned by the caller) or IG_EPARSE. */
int ig_bench_dataset_entry(const json_t *obj, ig_bench_ds_entry_t *out);
/* Parses a whole ShareGPT file held in data[0..len): a JSON array of objects, or JSON Lines (one
 * object per line, blank lines ignored). Keeps at most max_entries usable entries (0 = no cap) and
 * stops reading there. Entries that are valid JSON but not usable, and JSONL lines after the first
 * that are not JSON, are skipped and counted. Returns 0, or IG_EPARSE with "name:line: why" in err
 * when the file is not JSON / JSON Lines at all or has no usable entry (d is then empty, but
 * d->skipped still counts). name is only used in messages. */
int ig_bench_dataset_parse(ig_bench_dataset_t *d, const char *name, const char *data, size_t len,
                           size_t max_entries, char *err, size_t errcap);
/* ig_bench_dataset_parse on a file (mapped, not copied). Also IG_EIO when it cannot be read. */
int ig_bench_dataset_load(ig_bench_dataset_t *d, const char *path, size_t max_entries, char *err,
                          size_t errcap);
void ig_bench_dataset_free(ig_bench_dataset_t *d);

/* Returns 0 and sets *out for a workload name ("sharegpt", "shared-prefix", ...), else IG_EINVAL. */
int ig_bench_wl_parse(const char *name, ig_bench_wl_kind_t *out);
const char *ig_bench_wl_name(ig_bench_wl_kind_t kind);

typedef struct {
  ig_bench_wl_kind_t kind;
  uint64_t seed;
  uint32_t input_mean;       /* tokens */
  uint32_t output_mean;      /* tokens */
  const char *model;         /* default model (borrowed) */
  const char *const *models; /* lora-mix: candidates, most popular first; criticality: one per class */
  size_t n_models;
  uint32_t groups, prompts_per_group, system_len, question_len; /* shared-prefix */
  double zipf_s; /* lora-mix popularity exponent (weight of rank k is 1/k^s); 0 = default 1.0 */
  const ig_bench_dataset_t *dataset; /* dataset workload (borrowed) */
  uint32_t max_tokens_cap;           /* every request's max_tokens is capped to this; 0 = no cap */
} ig_bench_wl_config_t;

extern const char *const ig_bench_class_names[3]; /* "Critical", "Standard", "Sheddable" */

/* One generated request. system is the shared part (shared-prefix only, else empty); the prompt
 * sent is system followed by question. Strings are owned by the item (free with
 * ig_bench_item_free); model and class_name are borrowed from the config or static tables. */
typedef struct {
  uint64_t id;
  char *system;
  size_t system_len;
  char *question;
  size_t question_len;
  uint32_t prompt_tokens; /* ig_oai_count_tokens of system + question */
  uint32_t max_tokens;
  const char *model;
  int class_idx;          /* criticality class 0..2, or -1 */
  const char *class_name; /* NULL when class_idx < 0 */
  int group;              /* shared-prefix group, or -1 */
} ig_bench_item_t;

typedef struct {
  ig_bench_wl_config_t cfg;
  uint32_t *order; /* shared-prefix: shuffled prompt indices (groups * prompts_per_group);
                      dataset: shuffled entry indices */
  size_t n_order;
  double *zipf_cdf;     /* lora-mix: cumulative popularity */
  double mu_in, mu_out; /* lognormal locations for the sampled workloads */
} ig_bench_wl_t;

/* Validates cfg (copied; the strings it points to must outlive w) and prepares w.
 * Returns IG_EINVAL with a message on stderr for an impossible configuration. */
int ig_bench_wl_init(ig_bench_wl_t *w, const ig_bench_wl_config_t *cfg);
void ig_bench_wl_free(ig_bench_wl_t *w);

/* Generates request number id. The result depends only on the configuration and id, so a run is
 * reproducible from its seed whatever the order of completions. */
void ig_bench_wl_item(const ig_bench_wl_t *w, uint64_t id, ig_bench_item_t *out);
void ig_bench_item_free(ig_bench_item_t *it);

/* Writes exactly tokens * IG_BENCH_CHARS_PER_TOKEN bytes of pseudo-words derived from seed to out
 * (appending; no characters that need JSON escaping). */
void ig_bench_text(ig_buf_t *out, uint64_t seed, uint32_t tokens);

/* Location mu of a lognormal with log-space sigma whose values, once clamped to
 * [IG_BENCH_LEN_MIN, IG_BENCH_LEN_MAX], have the given mean (solved numerically, so the clamp does
 * not bias the mean; a mean outside the range gives the nearest reachable one). */
double ig_bench_lognormal_mu(double mean, double sigma);
/* Draws exp(mu + sigma * N(0,1)), rounded and clamped to [IG_BENCH_LEN_MIN, IG_BENCH_LEN_MAX]. */
uint32_t ig_bench_lognormal_len(ig_rng_t *rng, double mu, double sigma);

/* Exponential inter-arrival gap (seconds) for a Poisson process of the given rate (> 0). */
double ig_bench_exp_gap(ig_rng_t *rng, double rate);
/* Gamma-distributed inter-arrival gap (seconds) with shape k (> 0) and mean 1/rate, as vLLM's
 * benchmark_serving --burstiness: k < 1 is burstier than Poisson, k > 1 more regular, and the
 * coefficient of variation of the gaps is 1/sqrt(k). k == 1 is exactly ig_bench_exp_gap (same draws). */
double ig_bench_gamma_gap(ig_rng_t *rng, double rate, double k);

/* ---- SSE token accounting ----------------------------------------------------------------- */

/* Incremental server-sent-events reader for OpenAI streaming responses. Feed it the decoded body
 * in pieces of any size; it splits lines (LF, CRLF or CR), gathers "data:" fields into events and
 * classifies each event: "[DONE]", a chunk with content (text or delta.content non-empty), a usage
 * chunk, or an error object. Times are whatever clock the caller uses, in microseconds. */
typedef struct {
  ig_buf_t line; /* current partial line */
  ig_buf_t data; /* data of the event being gathered */
  int has_data;
  int last_cr;              /* the previous byte was CR (a following LF belongs to the same line end) */
  size_t events;            /* data events dispatched, [DONE] excluded */
  size_t token_events;      /* events that carried content */
  size_t bad_events;        /* data that was not JSON */
  int done;                 /* saw data: [DONE] */
  int64_t usage_completion; /* usage.completion_tokens of the last usage chunk, -1 when none */
  int64_t usage_prompt;     /* usage.prompt_tokens, -1 when none */
  uint64_t first_token_us, last_token_us; /* valid when token_events > 0 */
  double itl_sum_ms;
  double *itl_ms; /* gaps between consecutive content events */
  size_t n_itl, cap_itl;
  char *error;  /* message of the first error event (owned), or NULL */
  int overflow; /* a line exceeded the limit; the stream is malformed */
} ig_bench_sse_t;

#define IG_BENCH_SSE_MAX_LINE (4u << 20)

void ig_bench_sse_init(ig_bench_sse_t *s);
void ig_bench_sse_free(ig_bench_sse_t *s);
/* Consumes p[0..n) received at now_us. Returns 0, or IG_ETOOBIG when a line exceeds
 * IG_BENCH_SSE_MAX_LINE (the reader then ignores the rest). */
int ig_bench_sse_feed(ig_bench_sse_t *s, const char *p, size_t n, uint64_t now_us);

/* ---- statistics --------------------------------------------------------------------------- */

/* Growable sample set (milliseconds). */
typedef struct {
  double *v;
  size_t n, cap;
  int sorted;
} ig_bench_samples_t;

void ig_bench_samples_init(ig_bench_samples_t *s);
void ig_bench_samples_free(ig_bench_samples_t *s);
void ig_bench_samples_add(ig_bench_samples_t *s, double x);

typedef struct {
  size_t count;
  double mean, min, max, stddev, p50, p90, p95, p99;
} ig_bench_summary_t;

/* Nearest-rank percentile of the samples (sorted in place on first use): the smallest sample x
 * such that at least p percent of the samples are <= x, i.e. sorted[ceil(p/100 * n) - 1]
 * (p <= 0 gives the minimum). Returns 0 for an empty set. */
double ig_bench_percentile(ig_bench_samples_t *s, double p);
/* Fills every field of out (all zero for an empty set). */
void ig_bench_summarize(ig_bench_samples_t *s, ig_bench_summary_t *out);

/* ---- SLO and goodput (stats.c) ----------------------------------------------------------- */

/* Per-request service-level objectives in ms; a limit <= 0 is not set. */
typedef struct {
  double ttft_ms, tpot_ms, e2e_ms;
} ig_bench_slo_t;

/* Parses "ttft=200ms,tpot=50ms,e2e=10s" (any non-empty subset, any order; units us, ms (the default
 * for a bare number), s). Returns 0, or IG_EINVAL with a message in err. */
int ig_bench_slo_parse(const char *s, ig_bench_slo_t *out, char *err, size_t errcap);
/* Whether an SLO is set at all. */
int ig_bench_slo_any(const ig_bench_slo_t *slo);

struct ig_bench_record;
/* Whether a request meets every objective that is set: it succeeded, and its TTFT, TPOT and E2E are
 * within their limits (a request with fewer than 2 output tokens has no TPOT and meets that one). */
int ig_bench_slo_met(const ig_bench_slo_t *slo, const struct ig_bench_record *r);

typedef struct {
  size_t met;      /* requests meeting every objective */
  double goodput;  /* met / wall_s (requests/s), 0 when wall_s <= 0 */
  double fraction; /* met / requests sent, 0 when none */
} ig_bench_goodput_t;

void ig_bench_goodput(const ig_bench_slo_t *slo, const struct ig_bench_record *recs, size_t n, double wall_s,
                      ig_bench_goodput_t *out);

/* ---- the run ------------------------------------------------------------------------------ */

#define IG_BENCH_MAX_HEADERS 32

typedef struct {
  /* target */
  char host[256];
  int port;
  char hostport[300];                        /* Host header value */
  char path[1024];                           /* request path (endpoint) */
  int chat;                                  /* chat/completions body shape */
  const char *headers[IG_BENCH_MAX_HEADERS]; /* "K: V", borrowed */
  size_t n_headers;
  /* load */
  double rate;          /* open loop req/s; 0 = closed loop */
  double burstiness;    /* gamma shape of the arrival gaps; 1 (or 0) = Poisson */
  int progress;         /* rewrite a progress line on stderr (a terminal) while running */
  uint32_t concurrency; /* closed loop workers (rate == 0) */
  uint64_t requests;    /* 0 = unbounded (then duration bounds) */
  double duration_s;    /* 0 = unbounded (then requests bounds) */
  double timeout_s;     /* per request, and the drain after the last one is sent */
  int stream;
  uint64_t seed;
} ig_bench_opts_t;

/* Outcome of one request. */
typedef struct ig_bench_record {
  uint64_t id;
  int status;  /* HTTP status, 0 when no response head arrived */
  int ok;      /* 2xx, complete, and for streams terminated by [DONE] */
  int shed;    /* 429 */
  char *error; /* owned; NULL when ok */
  uint32_t prompt_tokens, max_tokens;
  int64_t output_tokens;
  size_t chunks;      /* content events (streams) */
  double start_ms;    /* since the run started */
  double ttft_ms;     /* < 0 when unknown */
  double e2e_ms;      /* < 0 when the request never finished */
  double tpot_ms;     /* < 0 when fewer than 2 output tokens */
  double itl_ms_mean; /* < 0 when no gaps */
  const char *model;  /* borrowed from the workload config */
  const char *class_name;
  int group;
} ig_bench_record_t;

typedef struct {
  ig_bench_record_t *recs;
  size_t n, cap;
  ig_bench_samples_t itl; /* every inter-token gap of successful requests */
  double wall_s;          /* first send to last completion */
  size_t connections;     /* TCP connections opened (keep-alive reuse keeps this low) */
  int interrupted;        /* stopped by SIGINT/SIGTERM */
} ig_bench_result_t;

/* Runs the load against the target until the request or duration bound, then waits at most
 * timeout_s for in-flight requests. Fills res (free with ig_bench_result_free). Returns 0, or
 * IG_ECONNECT when the host cannot be resolved. */
int ig_bench_run(const ig_bench_opts_t *o, const ig_bench_wl_t *wl, ig_bench_result_t *res);
void ig_bench_result_free(ig_bench_result_t *res);

/* Builds the JSON request body for item into out. */
void ig_bench_body(ig_buf_t *out, const ig_bench_item_t *it, int chat, int stream);

#endif

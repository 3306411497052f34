/* Simulator server internals (private to the sim module): pods on one libuv loop, HTTP connections,
 * the OpenAI endpoints and the /metrics dialects. */
#ifndef IG_SIM_SIM_H
#define IG_SIM_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "engine.h"
#include "infergate/core.h"
#include "infergate/http.h"

typedef enum { IG_SIM_VLLM, IG_SIM_VLLM_V0, IG_SIM_SGLANG, IG_SIM_TRTLLM } ig_sim_dialect_t;

typedef struct {
  const char *host;
  int base_port;
  int pods;
  const char *model;
  const char *profile;
  ig_sim_dialect_t dialect;
  int step_gauges; /* --gauges step: running / waiting / KV as of the last step's end (vLLM's way) */
  double time_scale;
  uint32_t max_loras;
  const char *loras; /* comma-separated adapter names, registered at start */
  uint32_t max_waiting;
  double fail_rate;
  uint64_t seed;
  int die_pod;          /* --die-after-tokens I:N, -1 when unset */
  uint32_t die_tokens;
  double *slow;         /* per-pod slowdown factors (1 = normal) */
  int64_t kv_blocks, max_num_seqs, max_batched_tokens; /* -1 = profile value */
} ig_sim_options_t;

typedef struct ig_sim_s ig_sim_t;
typedef struct ig_sim_pod_s ig_sim_pod_t;
typedef struct ig_sim_conn_s ig_sim_conn_t;
typedef struct ig_sim_req_s ig_sim_req_t;

struct ig_sim_pod_s {
  ig_sim_t *sim;
  int index;
  int port;
  uv_tcp_t listener;
  uv_timer_t timer;
  ig_sim_engine_t eng;
  int busy;                /* a step is in flight */
  uint64_t sim_us;         /* simulated clock at the last step boundary */
  uint64_t wall_mark_us;   /* wall (monotonic) time matching sim_us while idle */
  double target_wall_us;   /* wall time at which the step in flight ends */
  uint64_t next_id;
  ig_sim_conn_t *conns;    /* open connections, for shutdown */
};

struct ig_sim_s {
  uv_loop_t *loop;
  ig_sim_options_t opt;
  ig_sim_engine_config_t ecfg;
  ig_sim_pod_t *pods;
  int npods;
  uv_signal_t sigint, sigterm;
  ig_rng_t rng;
  uint64_t start_wall_s; /* for "created" fields */
  int stopping;
};

struct ig_sim_conn_s {
  uv_tcp_t tcp;
  ig_sim_pod_t *pod;
  ig_buf_t in;
  ig_sim_req_t *req;      /* generation in progress */
  unsigned busy : 1;      /* a response is in progress: do not parse further requests */
  unsigned closing : 1;
  unsigned close_after_write : 1;
  unsigned sent_continue : 1;
  unsigned in_process : 1; /* inside conn_process: ig_sim_conn_done must not re-enter it */
  int pending_writes;
  ig_sim_conn_t *prev, *next;
};

struct ig_sim_req_s {
  ig_sim_seq_t seq;
  ig_sim_conn_t *conn;
  ig_sim_pod_t *pod;
  int chat;
  int stream;
  int include_usage;
  int keep_alive;
  int chunked_out; /* streamed with chunked transfer coding (HTTP/1.1) */
  char *model;
  char id[48];
  uint64_t created;
  uint32_t sent;   /* tokens sent or accumulated */
  ig_buf_t text;   /* generated text (non-stream) */
};

/* sim.c: clock and stepping */
uint64_t ig_sim_pod_now(ig_sim_pod_t *pod);
/* Starts a step if the pod is idle and has work. */
void ig_sim_pod_kick(ig_sim_pod_t *pod);

/* conn.c */
void ig_sim_on_connection(uv_stream_t *server, int status);
/* Queues out's bytes for writing (takes the buffer's memory; out is reset). */
void ig_sim_conn_send(ig_sim_conn_t *c, ig_buf_t *out);
/* Closes now (pending writes are dropped); aborts a generation in progress. */
void ig_sim_conn_close(ig_sim_conn_t *c);
/* Marks the response finished: closes after the writes when close is set, else parses the next
 * pipelined request. */
void ig_sim_conn_done(ig_sim_conn_t *c, int close);

/* api.c: handles one complete request (head + decoded body). Either answers synchronously (and
 * calls ig_sim_conn_done) or starts a generation that answers later. */
void ig_sim_api_handle(ig_sim_conn_t *c, const ig_http_request_t *req, const char *body, size_t body_len);
/* Engine callback: one token (done = finished) for a request. */
void ig_sim_api_emit(void *ud, ig_sim_seq_t *seq, int done);
/* Frees a request (aborting its sequence if still queued). */
void ig_sim_req_free(ig_sim_req_t *r);
/* Appends a complete response with the given body. */
void ig_sim_write_response(ig_buf_t *out, int status, const char *ctype, const char *body, size_t len,
                           int close);

/* metrics.c */
void ig_sim_metrics_render(ig_sim_pod_t *pod, ig_buf_t *out);

#endif

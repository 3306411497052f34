/* infergate proxy: private types shared by the files of src/proxy. One event loop, single-threaded:
 * nothing here is locked. Ownership in short:
 *  - gw_t (one global, `gw`) owns the listeners, the endpoint registry and the current snapshot;
 *  - a snapshot (config + per-backend runtime) is refcounted; each request holds the one it started on;
 *  - endpoints (host:port) are shared by every snapshot that names them, so keep-alive pools and
 *    in-flight counts survive a reload;
 *  - a client connection owns its current request state; an upstream connection belongs to its
 *    endpoint's idle list or to exactly one request. */
#ifndef IG_PROXY_PRIVATE_H
#define IG_PROXY_PRIVATE_H

#include <stdio.h>
#include <sys/socket.h>
#include <uv.h>

#include "infergate/config.h"
#include "infergate/core.h"
#include "infergate/http.h"
#include "infergate/oai.h"
#include "infergate/sched.h"

/* ---- intrusive doubly linked list ---- */
typedef struct link {
  struct link *prev, *next;
} link_t;

static inline void list_init(link_t *h) {
  h->prev = h->next = h;
}
static inline int list_empty(const link_t *h) {
  return h->next == h;
}
static inline void list_insert_head(link_t *h, link_t *n) {
  n->next = h->next;
  n->prev = h;
  h->next->prev = n;
  h->next = n;
}
static inline void list_insert_tail(link_t *h, link_t *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}
static inline void list_remove(link_t *n) {
  if (!n->next) return;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = NULL;
}
#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* Buffering thresholds: stop reading the producer when the consumer has this much queued. */
#define WQ_HIGH (256 * 1024)
#define WQ_LOW (64 * 1024)
#define READ_CHUNK 65536
#define POOL_IDLE_MS 60000 /* pooled upstream connection idle limit (capped by idle_timeout_ms) */
#define LINGER_MS 2000     /* drain what the client still sends after an error before closing */

typedef struct snapshot snapshot_t;
typedef struct endpoint endpoint_t;
typedef struct backend_rt backend_rt_t;
typedef struct listener listener_t;
typedef struct client client_t;
typedef struct upconn upconn_t;
typedef struct pod pod_t;
typedef struct scraper scraper_t;
typedef struct pool pool_t;
typedef struct tls_srv tls_srv_t;   /* tls.c: a TLS listener's certificates (refcounted) */
typedef struct tls_conn tls_conn_t; /* tls.c: one client connection's TLS state */

/* ---- endpoints and balancing ---- */
struct endpoint {
  link_t reg; /* in gw.endpoints */
  char *host;
  int port;
  char name[80]; /* "host:port" for logs and metrics */
  struct sockaddr_storage addr;
  int resolved;
  unsigned snap_refs; /* snapshots naming this endpoint */
  unsigned conn_refs; /* upstream connections pointing at it */
  unsigned inflight;  /* requests currently assigned (least-request, scheduler) */
  link_t idle;        /* LIFO of idle keep-alive upconn_t */
  size_t n_idle;
  /* inference pools (pool.c, scrape.c) */
  pod_t *pod;            /* scheduler state, created when an inference pool first names the endpoint */
  scraper_t *scr;        /* metrics scraper while scrape_refs > 0 */
  unsigned scrape_refs;  /* inference pools of live snapshots naming this endpoint */
};

/* The scheduler's view of one model-server endpoint, kept across reloads with the endpoint. */
struct pod {
  ig_sched_pod_t sp;   /* waiting/running/kv/has_metrics/pending/prefix; age and inflight filled per pick */
  ig_sched_lora_t lora;
  uint64_t scraped_ms; /* ig_now_ms() of the last successful scrape */
  uint64_t scrapes_ok, scrapes_failed;
  int last_status;     /* HTTP status of the last scrape answer (0: no answer) */
};

/* A balancing policy: a name and a picker. exclude (may be NULL) is skipped when another endpoint
 * exists. Returns NULL only when the backend has no endpoints. */
typedef struct lb_ops {
  const char *name;
  ig_lb_policy_t policy;
  endpoint_t *(*pick)(backend_rt_t *be, const endpoint_t *exclude);
} lb_ops_t;

const lb_ops_t *lb_find(const char *name);
const lb_ops_t *lb_for_policy(ig_lb_policy_t policy);

struct backend_rt {
  const ig_backend_cfg_t *cfg;
  size_t index;
  endpoint_t **eps;
  size_t n_eps;
  unsigned rr;
  const lb_ops_t *lb;
  int has_models; /* an InferenceModel names this pool */
  pool_t *pool;   /* inference pools: scheduler, queue (pool.c) */
};

struct snapshot {
  unsigned refs;
  uint64_t gen;
  ig_config_t *cfg;
  backend_rt_t *backends;
  size_t n_backends;
};

/* Builds a runtime snapshot over cfg (takes ownership of cfg on success). Returns 0 or IG_ECONFIG
 * with a message logged (an endpoint that cannot be resolved). */
int snapshot_new(ig_config_t *cfg, snapshot_t **out);
static inline snapshot_t *snapshot_ref(snapshot_t *s) {
  s->refs++;
  return s;
}
void snapshot_release(snapshot_t *s);
void endpoint_close_idle(endpoint_t *ep);
void endpoint_maybe_free(endpoint_t *ep);
void endpoints_close_all_idle(void);

/* ---- listeners ---- */
enum { LST_HTTP, LST_TCP, LST_ADMIN };

struct listener {
  link_t link; /* in gw.listeners */
  uv_tcp_t tcp;
  int kind;
  char *name;
  char host[256];
  int port;
  long li;       /* index in the current snapshot's listeners, -1 once removed */
  unsigned refs; /* the listener itself + connections accepted on it */
  int closed;
  tls_srv_t *tls; /* NULL: plain HTTP */
};

void listener_unref(listener_t *l);
/* Opens the listeners of cfg not yet open, closes those gone; binds everything new first and
 * changes nothing when a bind fails (returns the uv error, logged). */
int listeners_reconcile(const ig_config_t *cfg, const char *admin_override);
void listeners_close_all(int keep_admin);

/* ---- requests ---- */
typedef enum { CS_HEAD, CS_BODY, CS_QUEUED, CS_UPSTREAM, CS_LINGER } cstate_t;

#define REQ_TAIL 512 /* last response bytes kept to find the "usage" object */

typedef struct {
  snapshot_t *snap;
  long route;
  backend_rt_t *be;
  int minor;
  unsigned is_head : 1, keep_alive : 1, chunked : 1, resp_started : 1, counted : 1, has_body_method : 1,
      stream : 1, running : 1;
  int pending_status; /* error decided at head time, sent once the body has been read */
  const char *pending_code;
  const char *pending_msg;
  char method[16];
  char path[256];
  char reqid[72];
  char model[IG_OAI_MODEL_MAX + 1];
  char target[IG_OAI_MODEL_MAX + 1];
  ig_criticality_t criticality;
  int hdr_crit;     /* x-infergate-criticality: -1 none, else an ig_criticality_t */
  char fairness[64]; /* x-gateway-inference-fairness-id */
  char rewrite[IG_OAI_MODEL_MAX + 1]; /* x-gateway-model-name-rewrite: overrides the weighted target */
  ig_sched_qnode_t *qnode; /* while parked in the pool's flow-control queue */
  endpoint_t *picked, *alt; /* scheduler's pick and its first fallback (pool.c) */
  char tail[REQ_TAIL];      /* last response bytes of an inference request */
  size_t tail_len;
  int64_t body_left;
  ig_chunked_decoder_t dec;
  uint64_t t_start_us, t_first_us, deadline_ms;
  uint64_t bytes_out;
  int status;
  upconn_t *up;
  const endpoint_t *last_ep;
  int ep_retries, stale_retries;
} req_t;

struct client {
  link_t link; /* in gw.clients or gw.admin_clients */
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shut;
  int nhandles;
  int closing;
  listener_t *lst;
  cstate_t state;
  unsigned writes_pending;
  unsigned close_after_write : 1, reading : 1, served : 1, up_paused : 1, resume_pending : 1, active : 1,
      into_body : 1;
  char peer[64];
  ig_buf_t in;   /* bytes read from the client, not yet consumed */
  ig_buf_t fwd;  /* forwarded request head, later the response head */
  ig_buf_t body; /* request body as forwarded */
  ig_buf_t tmp;  /* scratch: local responses, rewrites, dechunked data */
  req_t req;
  tls_conn_t *tls; /* NULL on plain listeners */
};

typedef enum { FR_NONE, FR_LENGTH, FR_CHUNKED, FR_CLOSE } framing_t;
typedef enum { US_CONNECTING, US_WAIT_HEAD, US_BODY, US_IDLE, US_CLOSED } ustate_t;

struct upconn {
  link_t link; /* in endpoint idle list while idle */
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t creq;
  int nhandles;
  endpoint_t *ep;
  client_t *c;
  ustate_t state;
  unsigned reused : 1, paused : 1, keep_alive : 1, rechunk : 1, dechunk : 1, counted : 1, got_bytes : 1;
  framing_t framing;
  int64_t left;
  ig_chunked_decoder_t dec;
  ig_buf_t in;
  unsigned idle_timeout_ms;
  unsigned max_idle;
};

/* client.c */
void client_accept(listener_t *l);
void client_send_error(client_t *c, int status, const char *code, const char *msg, int close);
/* Same with an explicit error type and extra header lines ("Name: value\r\n"..., may be NULL). */
void client_send_error_ex(client_t *c, int status, const char *type, const char *code, const char *msg,
                          const char *extra_headers, int close);
void client_abort(client_t *c);
void client_write(client_t *c, const uv_buf_t *bufs, unsigned n);
void request_finish(client_t *c, int close_client);
void clients_drain(void);
void client_stall_timer(client_t *c);
void clients_close_all(int admin_too);
int client_local_response(client_t *c, int status, const char *ctype, const char *body, size_t len);

/* tls.c: TLS termination over memory BIOs. tls_srv_new builds one SSL_CTX per certificate of cfg
 * (0, or IG_ECONFIG logged); connections hold a reference. */
int tls_srv_new(const ig_tls_cfg_t *cfg, const char *listener, tls_srv_t **out);
void tls_srv_release(tls_srv_t *s);
tls_conn_t *tls_conn_new(tls_srv_t *s); /* NULL when OpenSSL fails */
void tls_conn_free(tls_conn_t *t);
/* Feeds ciphertext read from the socket; appends the plaintext it yields to plain. Returns 0,
 * IG_ECLOSED (the peer sent close_notify) or IG_EPARSE (handshake or record failure, logged at debug).
 * Either way, tls_conn_pending may hold bytes to send (handshake records, alerts). */
int tls_conn_feed(tls_conn_t *t, const char *peer, const char *in, size_t n, ig_buf_t *plain);
/* Encrypts plaintext into the pending output. Returns 0 or IG_EIO. */
int tls_conn_encrypt(tls_conn_t *t, const char *peer, const uv_buf_t *bufs, unsigned n);
void tls_conn_close_notify(tls_conn_t *t);
/* The ciphertext waiting to be written (*data valid until tls_conn_consumed, which drops it). */
size_t tls_conn_pending(tls_conn_t *t, char **data);
void tls_conn_consumed(tls_conn_t *t);

/* upstream.c */
void upstream_start(client_t *c, const endpoint_t *exclude, int fresh);
void upstream_detach(upconn_t *up, int reuse);
void upstream_resume(upconn_t *up);
void upconn_close(upconn_t *up);

/* client.c: sends a request whose body is complete (and admitted) to its backend. */
void request_send(client_t *c);
void client_queue_timer(client_t *c, uint64_t ms);

/* pool.c: inference pools. Prepares a request to a pool (model resolution, target pick, body rewrite);
 * returns 0 to go on, or 1 when an error response was sent. */
int pool_prepare(client_t *c);
/* Admission and scheduling: returns 0 when the request was picked (send it), 1 when it was queued or
 * answered (429). */
int pool_admit(client_t *c);
endpoint_t *pool_pick(backend_rt_t *be, req_t *r, const endpoint_t *exclude);
/* Removes a queued request from its pool's queue (client gone). */
void pool_unqueue(client_t *c);
/* The queued request's TTL ran out: 503. */
void pool_queue_timeout(client_t *c);
/* Dequeues and sends what the pool has room for (after a scrape or a finished request). */
void pool_kick(backend_rt_t *be);
/* Kicks every pool with queued requests (a scrape of ep came in). */
void pools_on_scrape(endpoint_t *ep);
pool_t *pool_new(backend_rt_t *be);
void pool_free(pool_t *p);
pod_t *pod_new(void);
void pod_free(pod_t *pod);
/* Appends /debug/pools JSON for the current snapshot. */
void pools_debug_json(ig_buf_t *out);
/* Per-pool gauges for /metrics: over pods with metrics younger than 2 s. */
void pool_summary(const backend_rt_t *be, uint64_t now_ms, double *avg_kv, double *avg_queue, size_t *ready);
size_t pool_queue_len(const backend_rt_t *be, int crit);
void pools_free_globals(void);

/* scrape.c: metrics scraping of inference-pool endpoints (one scraper per endpoint). */
void scrape_start(endpoint_t *ep, const ig_backend_cfg_t *cfg);
void scrape_stop(endpoint_t *ep);

/* stats.c: the GIE metrics (ig_registry_t) */
void stats_request_sent(client_t *c);
void stats_request_done(client_t *c);
void stats_pick_latency(double seconds);
void stats_prefix_hit(double ratio);
void stats_render(ig_buf_t *out);
void stats_registry_free(void);
/* Finds prompt_tokens and completion_tokens of the last "usage" object in buf[0..len); 0 or IG_ENOENT. */
int stats_usage_scan(const char *buf, size_t len, long *in_tokens, long *out_tokens);

/* tcp.c */
void tcp_accept(listener_t *l);
void tcp_close_all(void);

/* admin.c: counters, /metrics, access log */
void stats_inc(const char *series, uint64_t n);
void admin_handle(client_t *c, const ig_http_request_t *req);
void access_log_write(const client_t *c, const char *endpoint);
int access_log_open(const char *path);
void access_log_close(void);
void stats_free(void);

/* write helper shared by clients, upstreams and tcp splices. Writes with uv_try_write first and
 * queues a copy of what is left; *queued tells whether cb will run. Returns 0 or a uv error. */
int stream_write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, uv_write_cb cb, int *queued);
void stream_write_done(uv_write_t *req); /* frees a request made by stream_write */

/* serve.c: the gateway */
typedef struct {
  uv_loop_t *loop;
  snapshot_t *snap;
  uint64_t gen;
  char *config_path;
  char *admin_override;  /* quick start: admin from the command line */
  char *access_log_path; /* --access-log overrides the config */
  link_t listeners;
  link_t endpoints;
  link_t clients; /* proxied (http) client connections */
  link_t admin_clients;
  link_t tcpconns;
  size_t n_clients, n_tcp;
  int draining, ready, stopping;
  ig_rng_t rng;
  ig_http_header_t *hdrs; /* parse scratch, cap n_hdrs */
  size_t n_hdrs;
  FILE *access_log;
  uint64_t inflight;
} gw_t;

extern gw_t gw;

void gw_check_drained(void);

#endif

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
typedef struct disc disc_t;           /* discovery.c: the models one pod serves (its GET /v1/models) */
typedef struct disc_pool disc_pool_t; /* discovery.c: a pool's index model name -> pods serving it */

/* ---- circuit breaker (breaker.c, pure: no I/O, time passed in) ---- */
typedef enum { BRK_CLOSED, BRK_OPEN, BRK_HALF_OPEN } brk_state_t;

/* One endpoint's breaker. Closed: requests flow, consecutive failures are counted. Open: ejected
 * until until_ms. Half-open (open and the time has come): one trial request; its success closes the
 * breaker, its failure ejects again for twice as long (up to the maximum). */
typedef struct {
  brk_state_t state;
  unsigned fails;     /* consecutive failures while closed */
  unsigned ejections; /* ejections since the endpoint last recovered: the exponent of the time */
  unsigned trial;     /* half-open: the trial request is in flight */
  uint64_t until_ms;  /* open: ejected until this ig_now_ms() */
  uint64_t ejections_total;
} breaker_t;

typedef struct {
  unsigned failures; /* consecutive failures that eject; 0 = breaker off */
  uint64_t base_ms;  /* first ejection */
  uint64_t max_ms;   /* longest ejection */
} breaker_opts_t;

/* The breaker options of a backend (defaults for 0 fields; failures 0 when disabled; cfg NULL = defaults). */
void breaker_opts_of(const ig_backend_cfg_t *cfg, breaker_opts_t *o);
/* Whether a new request may go to the endpoint at now_ms (closed; or due for, and without, a trial). */
int breaker_allows(const breaker_t *b, uint64_t now_ms);
/* A request was sent to the endpoint: returns 1 when it is the half-open trial (then report its end). */
int breaker_on_pick(breaker_t *b, uint64_t now_ms);
/* The outcome of a request (ok: a response head below 500); trial: it was the half-open trial.
 * Returns 1 when the endpoint was just ejected, -1 when it just recovered, else 0. */
int breaker_on_result(breaker_t *b, const breaker_opts_t *o, int ok, int trial, uint64_t now_ms);
/* A trial request ended without an outcome (the client went away): another request may try. */
void breaker_on_abandon(breaker_t *b, int trial);
/* "closed", "open" or "half-open" (open whose time has come) at now_ms. */
const char *breaker_state_name(const breaker_t *b, uint64_t now_ms);
/* How many breakers are not closed (open or half-open) in the process: 0 means every endpoint's
 * breaker lets requests through, so the pickers need not look at each one. */
size_t breakers_not_closed(void);
/* The breaker goes away with its endpoint (it no longer counts as not closed). */
void breaker_forget(breaker_t *b);

/* ---- API keys (auth.c) ---- */
#define AUTH_DIGEST_LEN 32 /* SHA-256 */

/* The keys of one route, as SHA-256 digests (so that comparing takes the same time for any key). */
typedef struct {
  unsigned char (*digests)[AUTH_DIGEST_LEN];
  size_t n;
  int active; /* the route requires a key */
} auth_keys_t;

/* Parses a keys file's text (one token per line, surrounding blanks trimmed, empty lines and lines
 * starting with '#' skipped) into k (free with auth_keys_free). Returns the number of keys. */
size_t auth_keys_parse(const char *text, size_t len, auth_keys_t *k);
/* Reads and parses path; 0, or IG_EIO (logged) when it cannot be read or holds no key. */
int auth_keys_load(const char *path, auth_keys_t *k);
void auth_keys_free(auth_keys_t *k);
/* Whether the Authorization header value[0..len) is "Bearer <token>" with a token of k. Every key is
 * compared (CRYPTO_memcmp over SHA-256 digests): the time does not depend on which key, if any,
 * matches nor on the token's length beyond hashing it. */
int auth_check(const auth_keys_t *k, const char *value, size_t len);

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
  /* issue #9 */
  char *tls_key;   /* NULL: plain HTTP; else the TLS settings it is reached with (part of its identity,
                    * so that pooled TLS and plain connections never mix) */
  breaker_t brk;   /* circuit breaker, kept across reloads with the endpoint */
};

/* The scheduler's view of one model-server endpoint, kept across reloads with the endpoint. */
struct pod {
  ig_sched_pod_t sp;   /* waiting/running/kv/has_metrics/pending/prefix, scraped_ms (ig_now_ms() of the
                          last successful scrape); age and inflight filled per pick */
  ig_sched_lora_t lora;
  ig_sched_lora_flight_t flight; /* our in-flight requests per adapter (upstream.c) */
  double raw_waiting;            /* the scraped waiting count; sp.waiting leaves out lora_blocked */
  unsigned lora_blocked;         /* of those, ours that wait for an adapter slot (ig_sched_lora_blocked) */
  ig_sched_slots_est_t slots_est; /* the batch size limit learned from the scrapes (sp.batch_slots) */
  uint64_t scrapes_ok, scrapes_failed;
  int last_status;     /* HTTP status of the last scrape answer (0: no answer) */
  disc_t *disc;        /* model discovery state (discovery.c), NULL until the first fetch */
};

/* The change journal (journal.c): endpoint_touch(ep) after every change to what a pool's copy of ep's
 * scheduler state holds (its pod's sp - a scrape stored, pending, done, an adapter noted - the pod
 * created, ep->inflight). A pod view maps a pool's endpoints to their indexes and replays the journal:
 * pod_view_replay calls sync(ctx, i) for each index touched since the last replay and returns 0, or
 * returns 1 (nothing called) when the caller must refresh every index: the view is new (pod_view_init),
 * fell a whole journal behind, or holds an endpoint twice. */
typedef struct pod_view {
  const endpoint_t **keys; /* open addressing; NULL = empty */
  uint32_t *idx;
  size_t mask;
  uint64_t seen; /* journal entries replayed */
  int full, dup;
} pod_view_t;
void endpoint_touch(const endpoint_t *ep);
void pod_view_init(pod_view_t *v, size_t n); /* empty, for up to n endpoints; the next replay is full */
void pod_view_add(pod_view_t *v, const endpoint_t *ep, size_t i);
void pod_view_free(pod_view_t *v);
int pod_view_replay(pod_view_t *v, int (*sync)(void *ctx, size_t i), void *ctx);
/* After the refresh: every copy's age at now_ms; returns how many have metrics younger than ready_ms.
 * Sanitizer builds (IG_CHECKS) also check that sync(ctx, i) changes nothing (no change unjournaled). */
size_t pod_view_ages(ig_sched_pod_t *pods, size_t n, uint64_t now_ms, uint64_t ready_ms,
                     int (*sync)(void *ctx, size_t i), void *ctx);

/* Filling a pick's pod copies from many endpoints: prefetch the endpoint POD_AHEAD * 2 pods ahead and
 * (pod_prefetch) the pod state of the one POD_AHEAD ahead. */
#define POD_AHEAD 6
static inline void pod_prefetch(const endpoint_t *ep) {
  if (!ep || !ep->pod) return;
  const char *a = (const char *)&ep->pod->sp; /* sp: 128 bytes, three lines at most */
  __builtin_prefetch(a);
  __builtin_prefetch(a + 64);
  __builtin_prefetch(a + 127);
}

/* A balancing policy: a name and a picker. exclude (may be NULL) is skipped when another endpoint
 * exists. Returns NULL only when the backend has no endpoints. */
typedef struct lb_ops {
  const char *name;
  ig_lb_policy_t policy;
  endpoint_t *(*pick)(backend_rt_t *be, const endpoint_t *exclude);
} lb_ops_t;

const lb_ops_t *lb_find(const char *name);
const lb_ops_t *lb_for_policy(ig_lb_policy_t policy);
/* Whether ep may take a new request of be at now_ms: its circuit breaker allows it and it is under
 * the backend's max_streams_per_endpoint (be->cfg NULL: no limits). Pickers skip the others. */
int endpoint_usable(const backend_rt_t *be, const endpoint_t *ep, uint64_t now_ms);
enum { LB_NONE_EJECTED = 1, LB_NONE_AT_CAP = 2 };
/* Why no endpoint of be (of subset[0..n) when subset is not NULL) is usable: LB_NONE_AT_CAP when one
 * that is not ejected is at its cap (worth waiting for), else LB_NONE_EJECTED. */
int lb_unusable_reason(const backend_rt_t *be, const size_t *subset, size_t n, uint64_t now_ms);

struct backend_rt {
  const ig_backend_cfg_t *cfg;
  size_t index;
  endpoint_t **eps;
  size_t n_eps;
  unsigned rr;
  const lb_ops_t *lb;
  int has_models; /* an InferenceModel names this pool */
  pool_t *pool;   /* inference pools: scheduler, queue (pool.c) */
  disc_pool_t *disc; /* discovered models of a pool without models (discovery.c), built lazily */
  struct ssl_ctx_st *tls_ctx; /* TLS client context when cfg->tls (tls.c), shared with the previous
                               * snapshot's when its settings and files did not change */
  char *tls_id;               /* tls_client_ctx_id of cfg->tls */
};

struct snapshot {
  unsigned refs;
  uint64_t gen;
  ig_config_t *cfg;
  backend_rt_t *backends;
  size_t n_backends;
  auth_keys_t *auth; /* per route (cfg->n_routes), read at activation; NULL when no route has auth */
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
  ig_criticality_t criticality; /* the class of priority (ig_config_priority_band) */
  int priority;     /* integer priority (issue #5): the model's, the header's, or the objective's */
  int hdr_crit;     /* x-infergate-criticality: -1 none, else an ig_criticality_t */
  char fairness[64]; /* x-gateway-inference-fairness-id */
  char rewrite[IG_OAI_MODEL_MAX + 1]; /* x-gateway-model-name-rewrite: overrides the weighted target */
  ig_sched_qnode_t *qnode; /* while parked in the pool's flow-control queue */
  endpoint_t *picked, *alt; /* scheduler's pick and its first fallback (pool.c) */
  uint32_t lora_id;         /* target's adapter id (ig_sched_lora_id), 0: base model or not a pool */
  float prefix_hit;         /* the pick's prefix-cache hit on the picked pod, 0..1 (prefill estimate) */
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
  /* HTTPRoute header filters of the route and backend reference taken (owned by snap); NULL = none */
  const ig_header_filter_cfg_t *hdr_req, *hdr_resp;
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
  uint32_t lora_id; /* adapter counted in ep->pod->flight while counted (0: none) */
  unsigned prefill; /* prompt tokens counted in ep->pod->sp.prefill until the first response byte */
  framing_t framing;
  int64_t left;
  ig_chunked_decoder_t dec;
  ig_buf_t in;
  unsigned idle_timeout_ms;
  unsigned max_idle;
  tls_conn_t *tls;                            /* TLS endpoints: client-side TLS state */
  unsigned brk_trial : 1, brk_done : 1;       /* half-open trial; outcome reported to the breaker */
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
/* The listener l closed: closes its client connections that are idle between requests. */
void clients_close_idle_of(const listener_t *l);
void client_stall_timer(client_t *c);
void clients_close_all(int admin_too);
int client_local_response(client_t *c, int status, const char *ctype, const char *body, size_t len);

/* tls.c: TLS termination over memory BIOs. tls_srv_new builds one SSL_CTX per certificate of cfg
 * (0, or IG_ECONFIG logged); connections hold a reference. A context of prev (may be NULL: the
 * listener's certificates before a reload) loaded from the same PEM text, or the same files with the
 * same size and modification time, is shared instead of loaded again (keeping TLS session resumption
 * across reloads). */
int tls_srv_new(const ig_tls_cfg_t *cfg, const char *listener, const tls_srv_t *prev, tls_srv_t **out);
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
/* TLS to upstreams. tls_client_ctx_new builds a client context (TLS 1.2+, ALPN http/1.1, the CA
 * bundle or the system store, verification on unless cfg->verify is 0, an optional client
 * certificate); NULL after logging why. Free with tls_client_ctx_free. */
struct ssl_ctx_st *tls_client_ctx_new(const ig_upstream_tls_cfg_t *cfg, const char *backend);
void tls_client_ctx_free(struct ssl_ctx_st *ctx);
/* A new reference to ctx (free it with tls_client_ctx_free); NULL when OpenSSL fails. */
struct ssl_ctx_st *tls_client_ctx_ref(struct ssl_ctx_st *ctx);
/* What a client context of cfg is built from: its settings (tls_client_key) and the size and
 * modification time of its CA, certificate and key files. Contexts with equal ids are the same, so a
 * rebuild may share the previous one. A new string, free it. */
char *tls_client_ctx_id(const ig_upstream_tls_cfg_t *cfg);
/* A client connection to host (an IP address or a name) checked against server_name when not NULL,
 * else host; name is for logs. Returns NULL when OpenSSL fails. Starts the handshake: send
 * tls_conn_pending, then feed the answers with tls_conn_feed until tls_conn_established. */
tls_conn_t *tls_conn_new_client(struct ssl_ctx_st *ctx, const char *host, const char *server_name,
                                const char *name);
int tls_conn_established(const tls_conn_t *t);
/* Why the peer's certificate was refused (OpenSSL's text), or NULL when it was not. */
const char *tls_conn_verify_error(const tls_conn_t *t);
/* OpenSSL's reason for the last failed operation on t (never NULL). */
const char *tls_conn_last_error(const tls_conn_t *t);
/* The TLS settings of cfg as a string (endpoint identity); a new string, free it. */
char *tls_client_key(const ig_upstream_tls_cfg_t *cfg);
/* Client connections driven over a libuv stream s (the metrics scraper, model discovery). Writes go
 * through stream_write: cb runs only for a write that had to be queued and must call
 * stream_write_done. tls_conn_flush writes the pending ciphertext (after tls_conn_new_client: the
 * ClientHello); tls_conn_send encrypts bufs and writes them; both return 0 or IG_EIO.
 * tls_conn_pump feeds ciphertext read from s, writes what OpenSSL answers (handshake records, alerts)
 * and appends the plaintext to plain: 0, IG_ECLOSED (close_notify), IG_EPARSE (TLS failure:
 * tls_conn_failure says why) or IG_EIO (the answer could not be written). */
int tls_conn_flush(tls_conn_t *t, uv_stream_t *s, uv_write_cb cb);
int tls_conn_send(tls_conn_t *t, uv_stream_t *s, const uv_buf_t *bufs, unsigned n, uv_write_cb cb);
int tls_conn_pump(tls_conn_t *t, uv_stream_t *s, uv_write_cb cb, const char *in, size_t n, ig_buf_t *plain);
/* Keeps OpenSSL's record buffers between reads (a connection that reads every few ms: no malloc/free
 * per record); contexts release them by default. */
void tls_conn_keep_buffers(tls_conn_t *t);
/* Sets the reason tls_conn_last_error reports (a failure OpenSSL did not see, e.g. a close). */
void tls_conn_set_error(tls_conn_t *t, const char *why);
/* Writes "TLS certificate verification failed: REASON" or "TLS handshake failed: REASON" into buf
 * (n bytes) and returns buf. */
const char *tls_conn_failure(const tls_conn_t *t, char *buf, size_t n);
/* Rate limit of a repeated TLS failure warning: returns 1 (and stamps *last_ms) when none was given
 * in the last TLS_WARN_EVERY_MS (*last_ms 0: never), else 0 (log at debug level instead). */
#define TLS_WARN_EVERY_MS 30000
int tls_warn_due(uint64_t *last_ms, uint64_t now_ms);

/* hdrfilter.c: HTTPRoute header filters applied while a head is copied (f not NULL). */
/* Whether f drops the header name[0..len): it is removed, or set (written anew by hdr_filter_append). */
int hdr_filter_drops(const ig_header_filter_cfg_t *f, const char *name, size_t len);
/* Whether f sets the header name (NUL-terminated, any case). */
int hdr_filter_sets(const ig_header_filter_cfg_t *f, const char *name);
/* Appends f's set headers, then its add headers, as "Name: value\r\n" lines to b. */
void hdr_filter_append(const ig_header_filter_cfg_t *f, ig_buf_t *b);

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
/* A scheduler for pool config cfg: its profile, a staleness bound from its scrape interval, and its
 * `scheduling:` thresholds and weights (shared by `serve` and `epp`). */
ig_sched_t *pool_sched_new(const ig_backend_cfg_t *cfg, uint64_t seed);
void pool_free(pool_t *p);
pod_t *pod_new(void);
void pod_free(pod_t *pod);
/* The prompt tokens a request adds to its pod's prefill work (ig_sched_pod_t.prefill): its body at ~4
 * bytes a token (the JSON around the prompt is small), less the share hit (0..1) the pick found in the
 * pod's prefix cache, at most IG_PREFILL_MAX; 0 when sp's sum would overflow. */
#define IG_PREFILL_MAX 131072u /* tokens: a long (Llama 3.1) context */
unsigned pod_prefill_estimate(const ig_sched_pod_t *sp, size_t body_len, double hit);
/* Appends /debug/pools JSON for the current snapshot. */
void pools_debug_json(ig_buf_t *out);
/* Per-pool gauges for /metrics: over pods with metrics younger than 2 s. */
void pool_summary(const backend_rt_t *be, uint64_t now_ms, double *avg_kv, double *avg_queue, size_t *ready);
size_t pool_queue_len(const backend_rt_t *be, int crit);
void pools_free_globals(void);

/* scrape.c: metrics scraping of inference-pool endpoints (one scraper per endpoint). */
void scrape_start(endpoint_t *ep, const ig_backend_cfg_t *cfg);
void scrape_stop(endpoint_t *ep);

/* discovery.c: model discovery for inference pools that no model names. Every pod's GET /v1/models
 * (OpenAI list format; LoRA adapters carry "parent") is fetched every discovery_interval_ms on the
 * event loop (one fetch in flight per pod, bounded answer, timeout); the last good list of a pod is
 * kept when a fetch fails. A pod that never answered with a valid list is "unknown", except while
 * it cannot be connected to at all: then it serves nothing until it answers. */
void discovery_start(void); /* arms the timer on gw.loop (serve) */
void discovery_stop(void);  /* closes the timer and aborts fetches in flight (stop; idempotent) */
/* Whether discovery runs for be (an inference pool that no model names): decided by be->cfg and
 * be->has_models alone. Discovery never reads be->pool, so a process without the gateway's pools
 * (infergate epp) lends it a backend_rt_t with pool NULL (cfg, index, eps, n_eps, has_models set). */
int discovery_enabled(const backend_rt_t *be);
/* The pods of be that may serve model (indexes into be->eps): *subset NULL when nothing restricts the
 * choice (discovery off, no model, or no pod known yet). Else the pods listing model, or when none does
 * the unknown pods; when every pod is known and none serves model, returns IG_ENOENT with an empty
 * subset (answer 404). The array stays valid until the next call for any pool. Returns 0 otherwise. */
int discovery_subset(backend_rt_t *be, const char *model, const size_t **subset, size_t *n);
/* The least in-flight endpoint of model's subset other than exclude; NULL when no subset applies. */
endpoint_t *discovery_least_request(backend_rt_t *be, const char *model, const endpoint_t *exclude);
/* Appends a model card ({"id",...,"parent"}) to out for every model discovered in be that cfg (the
 * request's snapshot) does not already list for it, each preceded by a comma unless *first. Returns
 * how many pods of be are known (0: nothing discovered, the listing is better left to a pod); out
 * NULL only counts them. */
size_t discovery_models_json(backend_rt_t *be, const ig_config_t *cfg, ig_buf_t *out, int *first,
                             long long created);
/* Appends ,"discovered":BOOL,"discovery_down":BOOL,"discovery_fetches":N,"models":[...] for
 * /debug/pools (nothing before the pod's first fetch). */
void discovery_debug_json(const pod_t *pod, ig_buf_t *out);
void discovery_free(disc_t *d);           /* with its pod (pod_free) */
void discovery_pool_free(backend_rt_t *be); /* with its pool (pool_free) */

/* objective.c: the InferenceObjective a request names in x-gateway-inference-objective (looked up in
 * its forwarded head, c->fwd). Returns 0 with *priority set, or IG_ENOENT (no header, or no objective
 * of that name in the request's pool). */
int objective_priority(const client_t *c, int *priority);

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

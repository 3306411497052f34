/* infergate epp: private types shared by the files of src/epp. The endpoint picker speaks Envoy's
 * External Processing protocol (envoy.service.ext_proc.v3) over gRPC on HTTP/2 cleartext.
 *
 *  - extproc.c: the per-stream message state machine (ProcessingRequest in, ProcessingResponse out),
 *    pure: no sockets, so unit tests feed it decoded messages;
 *  - pick.c:    epp_pick(), the one place where an endpoint of the pool is chosen: the gateway's
 *    scheduler (src/sched) over scraped pods, least outstanding when no pod has fresh metrics;
 *  - pods.c:    the pods' scraped state, from the gateway's scraper (src/proxy/scrape.c);
 *  - grpc.c:    gRPC over nghttp2 server sessions on libuv sockets: ext_proc and grpc.health.v1;
 *  - admin.c:   Prometheus /metrics over HTTP/1.1;
 *  - cmd.c:     `infergate epp` command line, configuration, event loop, signals.
 * Single-threaded: one libuv loop, nothing is locked. */
#ifndef IG_EPP_PRIVATE_H
#define IG_EPP_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "envoy/service/ext_proc/v3/external_processor.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "infergate/config.h"
#include "infergate/core.h"
#include "infergate/http.h"
#include "infergate/metrics.h"
#include "infergate/oai.h"
#include "infergate/sched.h"

/* Short names for the generated protobuf-c types. */
typedef Envoy__Service__ExtProc__V3__ProcessingRequest epp_preq_t;
typedef Envoy__Service__ExtProc__V3__ProcessingResponse epp_presp_t;
typedef Envoy__Service__ExtProc__V3__HttpHeaders epp_headers_t;
typedef Envoy__Service__ExtProc__V3__HttpBody epp_body_t;
typedef Envoy__Service__ExtProc__V3__CommonResponse epp_common_t;
typedef Envoy__Service__ExtProc__V3__HeaderMutation epp_hmut_t;
typedef Envoy__Config__Core__V3__HeaderValueOption epp_hvo_t;
typedef Envoy__Config__Core__V3__HeaderValue epp_hv_t;
typedef Google__Protobuf__Struct epp_struct_t;
typedef Google__Protobuf__Value epp_value_t;

/* Body send modes (envoy ProcessingMode.BodySendMode). */
enum {
  EPP_MODE_NONE = 0,
  EPP_MODE_STREAMED = 1,
  EPP_MODE_BUFFERED = 2,
  EPP_MODE_BUFFERED_PARTIAL = 3,
  EPP_MODE_FULL_DUPLEX = 4,
  EPP_MODE_GRPC = 5,
};

#define EPP_HDR_DEST "x-gateway-destination-endpoint"
#define EPP_HDR_SERVED "x-gateway-destination-endpoint-served"
#define EPP_META_NS "envoy.lb"
#define EPP_META_KEY "x-gateway-destination-endpoint"
#define EPP_HINT_NS "envoy.lb.subset_hint"
#define EPP_HINT_KEY "x-gateway-destination-endpoint-subset"
#define EPP_CHUNK_MAX 62000        /* largest streamed body chunk sent back to Envoy */
#define EPP_MSG_MAX (4u << 20)     /* largest gRPC message accepted */
#define EPP_FALLBACKS 3            /* fallback endpoints listed after the primary in the metadata */
#define EPP_ADDR_MAX 64

/* ---- intrusive doubly linked list ---- */
typedef struct epp_link {
  struct epp_link *prev, *next;
} epp_link_t;

static inline void epp_list_init(epp_link_t *h) {
  h->prev = h->next = h;
}
static inline void epp_list_add(epp_link_t *h, epp_link_t *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}
static inline void epp_list_del(epp_link_t *n) {
  if (!n->next) return;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = NULL;
}
#define epp_container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* ---- the picker's state ---- */

struct epp_stream;

typedef struct {
  char addr[EPP_ADDR_MAX]; /* "ip:port" or "[ipv6]:port": what Envoy's ORIGINAL_DST cluster dials */
  unsigned inflight;       /* our picks not yet released (response end or stream close) */
  uint64_t picks;
  struct sockaddr_storage sa; /* the resolved address (scraping) */
  struct endpoint *scr;       /* src/proxy endpoint scraped for its metrics (pods.c); NULL: not scraped */
} epp_endpoint_t;

typedef struct {
  int default_mode;       /* body mode assumed when Envoy sends no protocol_config; FULL_DUPLEX default */
  unsigned shed_inflight; /* shed Sheddable when every candidate has this many in flight; 0 = never */
  uint64_t queue_ttl_ms;  /* flow control: a Critical/Standard request on a saturated pool waits up to
                             this long for a pod with room (then 503); 0 = picked at once (the default) */
  uint64_t seed;          /* weighted target choice */
} epp_opts_t;

typedef struct epp {
  ig_config_t *cfg; /* owned; replaced by epp_reconfigure */
  char *pool_name;  /* as asked for (NULL: the only inference pool), looked up again on reconfigure */
  uint64_t gen;     /* bumped when eps changes: streams re-find their endpoint by address */
  uv_loop_t *loop;  /* the scrapers' loop, once epp_scrape_start ran */
  const ig_backend_cfg_t *pool;
  size_t pool_index;
  int pool_has_models; /* an InferenceModel names the pool: unknown models get 404 */
  epp_endpoint_t *eps;
  size_t n_eps;
  size_t max_body;
  epp_opts_t opts;
  ig_rng_t rng;
  ig_sched_t *sched;    /* the gateway's scheduler with the pool's profile */
  ig_sched_pod_t *pods; /* per-pick copy of the endpoints' scraped state, indexed like eps */
  struct pod_view *view; /* which copies changed since the last fill (src/proxy/journal.c) */
  int pods_stale;        /* eps or their scrapers changed: the view is made anew, every copy refreshed */
  size_t *allowed;      /* scratch: indexes of the endpoints a request may go to (pick.c) */
  uint32_t *mark;       /* scratch by endpoint: == mark_stamp when discovery lists it for the request */
  uint32_t mark_stamp;
  int uses_prefix;      /* the profile scores prefixes: the prompt text is extracted */
  ig_sched_tuning_cfg_t tuning; /* the pool's scheduling: the scheduler was made with (a reload that changes */
  unsigned scrape_ms;           /*   it, or the scrape interval, makes a new one) */
  int serving; /* grpc health status: 1 SERVING, 0 NOT_SERVING */
  /* flow control (queue.c), when opts.queue_ttl_ms is set */
  ig_sched_queue_t *queue; /* parked streams (epp_stream_t *) */
  uv_timer_t qtimer;       /* expires parked streams and retries them while any is parked */
  int qtimer_on, kicking, kick_again;
  uint64_t critical_ms; /* ig_now_ms() when a Critical request last arrived (0: never) */
  uint64_t pressure_ms; /* since when requests of priority >= 0 are parked (0: none is) */
  /* Delivers output that a stream got outside its own messages (a parked stream answered): set by the
   * gRPC server, called with the stream's owner (epp_stream_t.owner). NULL: nothing to do. */
  void (*deliver)(void *owner);
  ig_registry_t *reg;
  ig_metric_t *m_requests, *m_errors, *m_running, *m_ready, *m_sched_dur, *m_streams, *m_streams_active,
      *m_picks, *m_inflight, *m_grpc_errors, *m_scraped, *m_waiting, *m_scrapes, *m_queue;
} epp_t;

/* Sets up e over cfg (taking ownership of it, also on failure) for the pool named pool_name (NULL:
 * the only inference pool of cfg). Endpoint host names are resolved here (blocking). Returns 0, or
 * IG_ENOENT (no such pool, message logged) or IG_ECONNECT (a name does not resolve). */
int epp_init(epp_t *e, ig_config_t *cfg, const char *pool_name, const epp_opts_t *opts);
void epp_free(epp_t *e);
/* Replaces the configuration by cfg (taking ownership of it, also on failure): the pool is looked up
 * again by name; endpoints that stay keep their in-flight counts, scraped metrics and prefix index,
 * new ones start scraping, gone ones stop. Streams in flight keep their pick (epp_stream_ep). Returns
 * 0, or IG_ENOENT (no such pool: the old configuration stays, message logged). */
int epp_reconfigure(epp_t *e, ig_config_t *cfg);
/* The index in e->eps of the endpoint a stream picked, found again by address after a reconfigure;
 * (size_t)-1 when it is gone or there is no pick. */
size_t epp_stream_ep(epp_t *e, struct epp_stream *s);
/* Refreshes the gauges computed from state (in-flight per endpoint, ready pods) before a render. */
void epp_metrics_refresh(epp_t *e);

/* ---- picking (pick.c) ---- */

typedef struct {
  const char *model;  /* client-facing model ("" when the request had none) */
  const char *target; /* target model after the weighted split */
  ig_criticality_t crit;
  int has_subset;             /* Envoy sent a subset hint: only those endpoints are allowed */
  char *const *subset;        /* allowed "ip:port" strings */
  size_t n_subset;
  const char *prompt; /* prompt text for prefix affinity (may be NULL) */
  size_t prompt_len;
  const size_t *disc; /* model discovery: indexes of the endpoints serving the model (NULL: all) */
  size_t n_disc;
  size_t body_len;    /* request body bytes (the prompt's prefill estimate, pod_prefill_estimate) */
} epp_pick_req_t;

typedef struct {
  size_t order[1 + EPP_FALLBACKS]; /* indexes in epp_t.eps: the primary first, then fallbacks */
  size_t n;
  uint32_t lora_id; /* the target's adapter id counted on the primary's pod (0: none); epp_release */
  unsigned prefill; /* prompt tokens counted on the primary's pod until answered (epp_pods_answered) */
} epp_pick_t;

/* Chooses the endpoint for one request, plus up to EPP_FALLBACKS fallbacks, with the gateway's
 * scheduler (ig_sched_admit + ig_sched_pick over the scraped pods) when some pod has fresh metrics,
 * else least outstanding over our own in-flight picks. On success the primary's
 * in-flight count is taken (give it back with epp_release). Returns 0, IG_ENOENT when no endpoint is
 * allowed (503), IG_EFULL when a Sheddable request is shed (429), or, only when may_wait and the
 * flow-control queue is on, IG_EAGAIN when the request is to wait (epp_queue_park): the pool is
 * saturated for it, or requests of its priority or higher already wait. */
int epp_pick(epp_t *e, const epp_pick_req_t *rq, epp_pick_t *out, int may_wait);
/* Whether the pods keep headroom for Critical requests now (the gateway's rule, docs/scheduling.md):
 * only with the flow-control queue on, while a Critical request arrived in the last 10 s. */
int epp_reserve_critical(const epp_t *e, uint64_t now_ms);
/* Gives back a pick of endpoint ep (and its adapter count lora_id, epp_pick_t.lora_id). */
void epp_release(epp_t *e, size_t ep, uint32_t lora_id);

/* ---- flow control (queue.c) ---- */

/* Creates the queue when opts.queue_ttl_ms is set (from epp_init), sized by the pool's
 * scheduling.queue_capacity; again when a reconfigure changed it, as soon as no stream is parked. */
void epp_queue_init(epp_t *e);
/* Arms the queue's timer on loop (once the servers run). */
void epp_queue_start(epp_t *e, uv_loop_t *loop);
/* Closes the timer (its handle closes on the next loop run); parked streams stay until their
 * connections close. */
void epp_queue_stop(epp_t *e);
/* Frees the queue (from epp_free). */
void epp_queue_free(epp_t *e);
/* Parks stream s (its request body kept in s->body) at priority prio until a pod has room for it.
 * Returns 0, or IG_EFULL when the queue is full of requests of its priority or higher (answer 429). A
 * lower-priority stream evicted to make room is answered 429 here. */
int epp_queue_park(epp_t *e, struct epp_stream *s, int prio);
/* Whether requests of priority >= 0 have been parked long enough that a Sheddable request is shed
 * rather than parked behind them (ig_sched_pressure_sustained), as in the gateway (src/proxy/pool.c). */
int epp_pressure_sustained(const epp_t *e, uint64_t now_ms);
/* Takes s out of the queue (its stream ended). */
void epp_queue_cancel(epp_t *e, struct epp_stream *s);
/* Capacity may have changed (a pick was given back): retry the parked streams soon, from the loop. */
void epp_queue_poke(epp_t *e);
/* Answers the parked streams that may go now (in priority order while some pod has room for the top
 * priority) and the expired ones (503); the timer calls it. */
void epp_queue_kick(epp_t *e);

/* ---- scraped pods (pods.c, over src/proxy/scrape.c) ---- */

/* Starts scraping every endpoint of the pool on loop (the pool's metrics_path, interval, engine). */
void epp_scrape_start(epp_t *e, uv_loop_t *loop);
/* Starts scraping endpoint i (after epp_scrape_start; reconfigure). */
void epp_scrape_one(epp_t *e, size_t i);
/* Applies the pool's scrape settings to endpoint i's scraper. */
void epp_scrape_update(epp_t *e, size_t i);
/* Stops and frees the scraped endpoint of a removed endpoint entry (its handles close on the loop). */
void epp_scrape_drop(struct endpoint *ep);
/* Stops the scrapers (their handles close on the next loop run). */
void epp_scrape_stop(epp_t *e);
/* Frees the scraped endpoints; call after the loop has run the closes (from epp_free). */
void epp_scrape_free(epp_t *e);
/* Copies the scraped state into e->pods for a pick at now_ms; returns the number of pods with metrics
 * younger than 2 s (0: the pool is blind, pick least outstanding). */
size_t epp_pods_fill(epp_t *e, uint64_t now_ms);
/* Stores back what ig_sched_pick changed on pod k (its pending count). */
void epp_pods_picked(epp_t *e, size_t k);
/* eps[k].inflight changed: its copy follows. */
void epp_pods_inflight(epp_t *e, size_t k);
/* Frees what epp_pods_fill keeps (from epp_free). */
void epp_pods_free(epp_t *e);
/* The pool's scheduler, made as `infergate serve` makes it (src/proxy/pool.c pool_sched_new). */
ig_sched_t *epp_sched_new(const ig_backend_cfg_t *pool, uint64_t seed);
/* An adapter request (target, an adapter a pod ever listed) was picked for endpoint k: the pod's lists
 * note it (ig_sched_lora_note_sent) and its count there grows. Returns the adapter id to give back
 * with epp_pods_finished, 0 when nothing was counted (a base model, or no pod state). */
uint32_t epp_pods_adapter_sent(epp_t *e, size_t k, const char *target);
/* A request picked for endpoint k finished (its stream ended): its batch slot counts as free until the
 * next scrape (ig_sched_pod_t.done), and its adapter id (0 = none) leaves the pod's count. */
void epp_pods_finished(epp_t *e, size_t k, uint32_t id);
/* A request of body_len bytes was picked for endpoint k, with prefix-cache hit hit (0..1) there: its
 * prompt tokens join the pod's prefill work (ig_sched_pod_t.prefill) until epp_pods_answered. Returns
 * the tokens counted (0: none, or no pod state). */
unsigned epp_pods_prefill_add(epp_t *e, size_t k, size_t body_len, double hit);
/* The pod of endpoint k answered a request whose tokens epp_pods_prefill_add counted (its first
 * response byte, or the end): they leave the pod's prefill work. */
void epp_pods_answered(epp_t *e, size_t k, unsigned tokens);
/* Successful scrapes of endpoint i so far. */
uint64_t epp_pods_scrapes(const epp_t *e, size_t i);

/* ---- model discovery (discover.c, over src/proxy/discovery.c) ---- */

/* Starts model discovery once scraping runs, when no InferenceModel names the pool; after a
 * reconfigure, follows the new endpoint list (or stops restricting when models are now named). */
void epp_disc_sync(epp_t *e);
/* The endpoints (indexes in e->eps) that list model: *subset NULL when any may serve it (discovery
 * off, no answer from any pod yet). Returns 0, or IG_ENOENT when no pod serves the model (404). The
 * subset stays valid until the next call. */
int epp_disc_subset(epp_t *e, const char *model, const size_t **subset, size_t *n);
/* Stops the fetches and the timer (their handles close on the next loop run). */
void epp_disc_stop(void);
/* Frees what discovery kept (after the loop ran the closes; from epp_free). */
void epp_disc_free(void);

/* ---- one ext_proc stream (extproc.c) ---- */

typedef struct epp_stream {
  int req_mode, resp_mode; /* body send modes; -1 until known */
  unsigned got_headers : 1, headers_answered : 1, body_done : 1, picked : 1, done : 1, observe : 1,
      has_subset : 1, counted : 1;
  ig_arena_t arena;        /* header copies and the subset hint */
  ig_http_header_t *hdrs;  /* request headers (names lower-case as Envoy sends them) */
  size_t n_hdrs;
  char **subset;
  size_t n_subset;
  ig_buf_t body;           /* request body accumulated until end of stream */
  size_t n_chunks;
  size_t ep;               /* picked endpoint (when picked): index in eps of generation ep_gen */
  uint32_t lora_id;        /* adapter counted on the picked endpoint's pod (epp_pick_t.lora_id) */
  uint64_t ep_gen;
  char ep_addr[EPP_ADDR_MAX];
  char model[IG_OAI_MODEL_MAX + 1];
  char target[IG_OAI_MODEL_MAX + 1];
  /* flow control: a stream parked in epp_t.queue until a pod has room (queue.c) */
  ig_sched_qnode_t *qnode; /* its queue entry while parked */
  int crit;                /* ig_criticality_t of the request */
  unsigned park_changed : 1, park_has_body : 1, park_eos : 1, park_trailers : 1;
  unsigned prefill; /* prompt tokens counted on the picked endpoint's pod until answered */
  ig_buf_t *out; /* where output made outside the stream's own messages goes (the gRPC server's output
                    buffer of the call); NULL: the stream cannot be parked */
  void *owner;   /* passed to epp_t.deliver after such output */
} epp_stream_t;

void epp_stream_init(epp_stream_t *s);
/* Handles one decoded ProcessingRequest; appends the gRPC-framed ProcessingResponse messages to send
 * (zero or more) to out. Returns 0, or IG_EINVAL for a request with no request case (the caller ends
 * the call with an error status). */
int epp_stream_handle(epp_t *e, epp_stream_t *s, const epp_preq_t *rq, ig_buf_t *out);
/* Same from the serialized message; IG_EPARSE when it is not a ProcessingRequest. */
int epp_stream_recv(epp_t *e, epp_stream_t *s, const uint8_t *msg, size_t len, ig_buf_t *out);
/* Ends a stream: takes it out of the queue, gives back its pick, frees its buffers. */
void epp_stream_end(epp_t *e, epp_stream_t *s);
/* A parked stream's turn (queue.c): picks now (never parks again) and appends the answer to *s->out. */
void epp_stream_resume(epp_t *e, epp_stream_t *s);
/* A parked stream waited too long: appends a 503 to *s->out. */
void epp_stream_expired(epp_t *e, epp_stream_t *s);
/* A parked stream was evicted from a full queue by a more important one: appends a 429 to *s->out. */
void epp_stream_evicted(epp_t *e, epp_stream_t *s);
/* A parked Sheddable stream is shed (the requests ahead of it waited too long): appends a 429. */
void epp_stream_shed(epp_t *e, epp_stream_t *s);

/* ---- gRPC framing (extproc.c) ---- */

/* Appends m packed as one gRPC length-prefixed message (uncompressed). */
void epp_frame_message(ig_buf_t *out, const ProtobufCMessage *m);
/* Looks for one length-prefixed message at buf[0..len). Returns 1 with the message at buf + 5 and its
 * length in *mlen (5 + *mlen bytes are consumed), 0 when more bytes are needed, IG_ENOTSUP when the
 * compressed flag is set, IG_EPARSE for another flag value, IG_ETOOBIG when the length is over max. */
int epp_grpc_next(const uint8_t *buf, size_t len, size_t max, size_t *mlen);

/* ---- servers ---- */

/* grpc.c: starts the ext_proc listener (grpc_addr) and the health listener (health_addr, may be
 * NULL). Both also answer grpc.health.v1. Returns 0 or a uv error (logged). */
int epp_grpc_start(uv_loop_t *loop, epp_t *e, const char *grpc_addr, const char *health_addr);
/* Sends the serving status to every Watch stream. */
void epp_grpc_health_changed(void);
/* Stops listening and closes every connection (GOAWAY first). */
void epp_grpc_stop(void);

/* admin.c: Prometheus /metrics (and /healthz) over HTTP/1.1. */
int epp_admin_start(uv_loop_t *loop, epp_t *e, const char *addr);
void epp_admin_stop(void);

/* Binds a TCP handle to "HOST:PORT" (host resolved, first address) and listens. Returns 0 or a uv
 * error, logged with what. */
int epp_listen(uv_loop_t *loop, uv_tcp_t *tcp, const char *addr, uv_connection_cb cb, const char *what);

#endif

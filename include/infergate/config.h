/* Configuration: the native YAML file, loaded into an immutable snapshot, validated with file:line
 * errors; and HTTPRoute-style route matching over that snapshot. */
#ifndef INFERGATE_CONFIG_H
#define INFERGATE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "infergate/http.h"
#include "infergate/metrics.h" /* ig_engine_t */

typedef enum { IG_LB_ROUND_ROBIN, IG_LB_RANDOM, IG_LB_LEAST_REQUEST, IG_LB_INFERENCE } ig_lb_policy_t;
typedef enum { IG_CRIT_CRITICAL, IG_CRIT_STANDARD, IG_CRIT_SHEDDABLE } ig_criticality_t;

typedef struct {
  char *host; /* numeric IPv4/IPv6 or a hostname resolved at load time */
  int port;
} ig_endpoint_cfg_t;

/* TLS from the gateway to the endpoints of a backend or pool (issue #9; docs/security.md). */
typedef struct {
  char *ca_file;     /* PEM CA bundle that signs the endpoints' certificates; NULL = system store */
  char *server_name; /* SNI and the name checked in the certificate; NULL = each endpoint's host
                      * (an IP address is checked against the certificate's IP SANs) */
  int verify;        /* verify the chain and the name; default 1 (0 only for tests: logged) */
  char *cert_file;   /* client certificate chain (mTLS); NULL = none */
  char *key_file;    /* its private key */
  int line;
} ig_upstream_tls_cfg_t;

/* pools[].scheduling (see docs/configuration.md); bits of .set say which values were given. */
enum {
  IG_TUNE_QUEUE_THRESHOLD = 1 << 0,
  IG_TUNE_KV_THRESHOLD = 1 << 1,
  IG_TUNE_STANDARD_QUEUE_MAX = 1 << 2,
  IG_TUNE_RUNNING_WEIGHT = 1 << 3,
  IG_TUNE_W_QUEUE = 1 << 4,
  IG_TUNE_W_KV = 1 << 5,
  IG_TUNE_W_PREFIX = 1 << 6,
  IG_TUNE_W_LORA = 1 << 7,
  IG_TUNE_CRITICAL_SLOTS = 1 << 8,
  IG_TUNE_PREFILL_TOKENS = 1 << 9,
};
typedef struct {
  uint64_t set; /* IG_TUNE_* bits (64 bits: no padding before the doubles, so memcmp compares values) */
  double queue_threshold, kv_threshold, standard_queue_max, queue_running_weight;
  double w_queue, w_kv, w_prefix, w_lora; /* scorer weights of the "default" profile */
  double critical_slots;
  double queue_prefill_tokens;
  uint64_t batch_slots; /* the engines' max_num_seqs; 0 = not given */
  uint64_t queue_capacity; /* requests the pool's flow-control queue holds; 0 = not given (1,024) */
} ig_sched_tuning_cfg_t;

#define IG_QUEUE_CAPACITY_DEFAULT 1024
static inline size_t ig_tuning_queue_capacity(const ig_sched_tuning_cfg_t *t) {
  return t->queue_capacity ? (size_t)t->queue_capacity : IG_QUEUE_CAPACITY_DEFAULT;
}

/* A backend is a static endpoint list with a balancing policy. An inference pool is a backend with
 * policy IG_LB_INFERENCE: its endpoints are model servers whose metrics are scraped. */
typedef struct {
  char *name;
  ig_lb_policy_t policy;
  ig_endpoint_cfg_t *endpoints;
  size_t n_endpoints;
  unsigned connect_timeout_ms;  /* default 2000 */
  unsigned response_timeout_ms; /* time to response head; default 60000 */
  unsigned idle_timeout_ms;     /* between bytes once streaming; default 300000 */
  unsigned max_idle_conns;      /* per endpoint keep-alive pool; default 64 */
  /* inference pools only */
  ig_engine_t engine;           /* default vLLM */
  unsigned scrape_interval_ms;  /* default 50 */
  char *metrics_path;           /* default "/metrics" */
  char *scheduler;              /* scheduler profile name, default "default" */
  const char *file;
  int line;
  /* appended for model discovery (issue #5): a pool that no model names learns the models and LoRA
   * adapters of its pods from their GET /v1/models, every discovery_interval_ms (0 = 5000) */
  unsigned discovery_interval_ms;
  /* appended for issue #9 (upstream security and robustness); 0 / NULL in a config built elsewhere
   * (manifests) gives the defaults */
  ig_upstream_tls_cfg_t *tls;         /* NULL = plain HTTP to the endpoints */
  unsigned max_streams_per_endpoint;  /* requests in flight per endpoint; 0 = unlimited */
  unsigned breaker_failures;          /* consecutive failures that eject an endpoint; 0 = 5 */
  unsigned breaker_base_ms;           /* first ejection time, doubled per ejection; 0 = 10000 */
  unsigned breaker_max_ms;            /* longest ejection; 0 = 300000 */
  int breaker_disabled;               /* circuit_breaker.enabled: false */
  /* pools[].scheduling: the scheduler's thresholds and weights; a value counts only when its bit
   * (IG_TUNE_*) is set in tuning.set, else the scheduler's default applies */
  ig_sched_tuning_cfg_t tuning;
} ig_backend_cfg_t;

typedef enum { IG_PATH_PREFIX, IG_PATH_EXACT } ig_path_match_t;


typedef struct {
  char *name; /* lower-cased */
  char *value;
} ig_header_match_cfg_t;

typedef struct {
  ig_path_match_t path_type;
  char *path; /* default prefix "/" */
  char *method; /* NULL = any */
  ig_header_match_cfg_t *headers;
  size_t n_headers;
} ig_match_cfg_t;

/* One header of a header filter: the name as written (matched case-insensitively) and its value. */
typedef struct {
  char *name;
  char *value;
} ig_header_value_cfg_t;

/* A Gateway API HTTPHeaderFilter (RequestHeaderModifier / ResponseHeaderModifier): headers named in
 * remove or set are dropped, then each set header is written with its value, then each add header is
 * appended after any existing header of that name (a second line with the same name). Names are
 * unique within set and within remove (case-insensitive); add may repeat a name. Never names a
 * hop-by-hop or framing header (Connection, Content-Length, Transfer-Encoding, ...). */
typedef struct {
  ig_header_value_cfg_t *set;
  size_t n_set;
  ig_header_value_cfg_t *add;
  size_t n_add;
  char **remove; /* lower-cased */
  size_t n_remove;
} ig_header_filter_cfg_t;

typedef struct {
  char *backend; /* backend or pool name */
  size_t backend_index;
  unsigned weight; /* default 1 */
  /* appended for HTTPRoute filters (issue #7): the effective header filters of requests sent through
   * this reference (the rule's filter followed by the reference's own); NULL = the route's */
  ig_header_filter_cfg_t *request_headers;
  ig_header_filter_cfg_t *response_headers;
} ig_backend_ref_t;

typedef struct {
  char *name;
  char **hostnames; /* lower-cased; "*.example.com" wildcards allowed; none = any host */
  size_t n_hostnames;
  char **listeners; /* listener names this route attaches to; none = every http listener */
  size_t n_listeners;
  ig_match_cfg_t *matches; /* none = one prefix "/" match */
  size_t n_matches;
  ig_backend_ref_t *backends;
  size_t n_backends;
  unsigned timeout_ms; /* whole request, 0 = none */
  const char *file;
  int line;
  /* appended for issue #9: API-key authentication (auth.api_keys_file); NULL = none */
  char *api_keys_file;       /* one bearer token per line, '#' comments; read on every activation */
  int forward_authorization; /* forward the client's Authorization header upstream; default 0 */
  /* appended for HTTPRoute filters (issue #7); NULL = none */
  ig_header_filter_cfg_t *request_headers;  /* RequestHeaderModifier: the request sent upstream */
  ig_header_filter_cfg_t *response_headers; /* ResponseHeaderModifier: the response sent to the client */
} ig_route_cfg_t;

typedef enum { IG_PROTO_HTTP, IG_PROTO_TCP } ig_listener_proto_t;

/* One SNI certificate of a TLS listener: a PEM certificate chain and its private key, served to
 * clients asking for one of hostnames (lower-cased; "*.example.com" wildcards allowed). */
typedef struct {
  char **hostnames;
  size_t n_hostnames;
  char *cert; /* path of the PEM certificate chain */
  char *key;  /* path of the PEM private key */
  int line;
} ig_tls_cert_cfg_t;

/* TLS termination on a listener (issue #9): the default certificate and the SNI certificates. */
typedef struct {
  char *cert;
  char *key;
  ig_tls_cert_cfg_t *certificates;
  size_t n_certificates;
  int line;
  /* appended for Gateway HTTPS listeners (issue #7): the default certificate chain and key as PEM
   * text (from a kubernetes.io/tls Secret); when cert_pem is set, cert and key (paths) are NULL */
  char *cert_pem;
  char *key_pem;
} ig_tls_cfg_t;

typedef struct {
  char *name;
  char *host;
  int port;
  ig_listener_proto_t protocol;
  char *tcp_backend; /* protocol tcp: backend name */
  size_t tcp_backend_index;
  const char *file;
  int line;
  /* appended for issue #9 */
  ig_tls_cfg_t *tls; /* NULL = plain HTTP */
} ig_listener_cfg_t;

typedef struct {
  char *name;
  unsigned weight; /* 1..1000000 */
} ig_target_cfg_t;

/* An InferenceModel: a client-facing model name served by a pool, with weighted targets. */
typedef struct {
  char *model_name;
  ig_criticality_t criticality; /* default Standard */
  char *pool;
  size_t pool_index;
  ig_target_cfg_t *targets; /* none = the model name itself */
  size_t n_targets;
  const char *file;
  int line;
  /* appended for integer priority (GIE InferenceObjective): higher is served first, negative is
   * sheddable, 0 standard. Always set: `criticality` is the band of priority and Critical / Standard /
   * Sheddable written as criticality give 1 / 0 / -1 (ig_config_priority_band). */
  int priority;
} ig_model_cfg_t;

/* An InferenceObjective (GIE, inference.networking.x-k8s.io/v1alpha2): a named priority in a pool,
 * chosen per request by the header x-gateway-inference-objective: NAME. */
typedef struct {
  char *name;
  int priority; /* higher first; negative = sheddable; default 0 */
  char *pool;
  size_t pool_index;
  const char *file;
  int line;
} ig_objective_cfg_t;

/* The band (criticality) a priority is served in: > 0 Critical, 0 Standard, < 0 Sheddable. */
ig_criticality_t ig_config_priority_band(int priority);
/* The priority a criticality stands for: Critical 1, Standard 0, Sheddable -1. */
int ig_config_criticality_priority(ig_criticality_t crit);

typedef struct {
  ig_listener_cfg_t *listeners;
  size_t n_listeners;
  char *admin_host; /* NULL = no admin listener */
  int admin_port;
  ig_backend_cfg_t *backends;
  size_t n_backends;
  ig_route_cfg_t *routes;
  size_t n_routes;
  ig_model_cfg_t *models;
  size_t n_models;
  char *default_model;       /* used when a request to a pool has no "model"; NULL = 400 */
  size_t max_header_bytes;   /* default 16384 */
  size_t max_headers;        /* default 100 */
  size_t max_body_bytes;     /* default 4 MiB */
  unsigned max_connections;  /* default 10000 */
  unsigned client_timeout_ms; /* idle keep-alive / slow head; default 60000 */
  unsigned drain_timeout_ms; /* default 10000 */
  char *access_log;          /* NULL = off, "-" = stdout, else a path */
  char *source;              /* file the config was read from (owned) */
  /* appended for issue #9; 0 in a config built elsewhere (manifests) means the fallback given */
  unsigned max_connections_per_ip; /* open client connections per peer address; default 256, 0 = unlimited */
  unsigned header_timeout_ms;      /* whole request head within; default 10000, 0 = client_timeout_ms */
  /* appended for integer priority (issue #5) */
  ig_objective_cfg_t *objectives;
  size_t n_objectives;
} ig_config_t;

typedef struct {
  char *file;
  int line; /* 1-based; 0 when not tied to a line */
  int column;
  char *message;
} ig_config_error_t;

typedef struct {
  ig_config_error_t *v;
  size_t n;
} ig_config_errors_t;

/* Loads and validates a native YAML config. On success returns 0 and a new snapshot in *out (free
 * with ig_config_free). On failure returns IG_ECONFIG and appends every error found to errs (free
 * with ig_config_errors_free); *out is NULL. */
int ig_config_load(const char *path, ig_config_t **out, ig_config_errors_t *errs);
/* Same, from a string; name is used as the file name in errors. */
int ig_config_load_string(const char *name, const char *yaml, size_t len, ig_config_t **out,
                          ig_config_errors_t *errs);
void ig_config_free(ig_config_t *cfg);
void ig_config_errors_free(ig_config_errors_t *errs);
/* Prints "file:line:column: error: message" lines to f (a FILE *). */
void ig_config_errors_print(const ig_config_errors_t *errs, void *f);
/* Finds a backend (or pool) by name; returns its index or -1. */
long ig_config_find_backend(const ig_config_t *cfg, const char *name);
/* A quick start without a file (serve --listen/--backend|--pool, epp --endpoints). */
typedef struct {
  const char *listen;        /* listener HOST:PORT with a catch-all route; NULL: no listener is opened
                              * (the epp), a placeholder satisfies the loader and no route is made */
  const char *admin;         /* admin HOST:PORT or NULL */
  const char *backend;       /* comma-separated endpoints of a plain backend named "default", or */
  const char *pool;          /* comma-separated endpoints of an inference pool named "default" */
  const char *policy;        /* plain backend's policy or NULL */
  char **models;             /* InferenceModels served by the pool */
  size_t n_models;
  const char *default_model; /* or NULL */
  /* appended for the quick-start flags of issue #5; NULL = the loader's default */
  const char *engine;             /* pool metrics dialect: vllm, vllm-v0, sglang, trtllm */
  const char *profile;            /* pool scheduler profile (docs/scheduling.md) */
  const char *discovery_interval; /* pool model discovery interval, a duration ("5s", "200ms") */
  const char *scrape_interval;    /* pool metrics scrape interval, a duration (default 50ms) */
  const char *batch_slots;        /* pool scheduling.batch_slots: the pods' max_num_seqs */
} ig_quick_cfg_t;

/* Appends the quick-start configuration as native YAML to y, for ig_config_load_string. */
void ig_config_quick_yaml(ig_buf_t *y, const ig_quick_cfg_t *q);

/* ---- header filters (config.c) ---- */
/* Frees a header filter and everything it owns; takes NULL. */
void ig_config_header_filter_free(ig_header_filter_cfg_t *f);
/* A deep copy of f (NULL for NULL). */
ig_header_filter_cfg_t *ig_config_header_filter_copy(const ig_header_filter_cfg_t *f);
/* The filter that does what first and then second do (either may be NULL; NULL when both are): a
 * header second sets or removes loses what first did to it. A new filter, or NULL. */
ig_header_filter_cfg_t *ig_config_header_filter_compose(const ig_header_filter_cfg_t *first,
                                                        const ig_header_filter_cfg_t *second);
/* Whether name[0..len) may not be named by a header filter: hop-by-hop and framing headers. */
int ig_config_header_filter_forbidden(const char *name, size_t len);

/* ---- certificates in memory (secret.c) ---- */
/* Loads a PEM certificate chain (leaf first) and its PEM private key into ssl_ctx (an SSL_CTX *) and
 * checks that they belong together. Returns 0, or IG_ECONFIG with the reason in why[0..cap). */
int ig_config_tls_use_pem(void *ssl_ctx, const char *cert_pem, const char *key_pem, char *why, size_t cap);

/* Picks a target of m by weight (the model name itself when it has no targets; an equal split when
 * every weight is 0). The returned name belongs to cfg. */
const char *ig_config_pick_target(const ig_model_cfg_t *m, ig_rng_t *rng);
/* Finds an InferenceModel by client-facing model name; NULL when none. */
const ig_model_cfg_t *ig_config_find_model(const ig_config_t *cfg, const char *model, size_t len);
/* Finds an InferenceObjective of pool pool_index by name[0..len); NULL when none. */
const ig_objective_cfg_t *ig_config_find_objective(const ig_config_t *cfg, size_t pool_index,
                                                   const char *name, size_t len);

/* Route matching with Gateway API HTTPRoute precedence: among routes attached to listener li whose
 * hostnames match host (exact beats wildcard beats none), the match with, in order: an exact path
 * over a prefix, the longest prefix, a method, the most header matches; ties go to the route
 * defined first. Prefix matching is by path segment ("/v1" matches "/v1" and "/v1/x", not "/v1x").
 * Returns the route index, or -1 when nothing matches. */
long ig_route_match(const ig_config_t *cfg, size_t li, const char *host, size_t host_len, const char *method,
                    size_t method_len, const char *path, size_t path_len, const ig_http_header_t *hdrs,
                    size_t n_hdrs);

/* ---- Kubernetes manifests (src/config/manifests.c) --------------------------------------------- */

/* A port for one Gateway listener, replacing the port the Gateway gives it (tests use ephemeral
 * ports). name is "LISTENER" (that listener name in every Gateway) or "GATEWAY/LISTENER". */
typedef struct {
  const char *name;
  int port; /* 1..65535 */
} ig_manifest_port_t;

/* Something read from the manifests but not used as written, without being an error: an unknown
 * kind or field, a duplicate model name (the newer InferenceModel is skipped), a route that attaches
 * to no listener, a pool with no ready Pod. Kept for a later status write-back; `check` prints them
 * as warnings. All strings are owned (ig_config_notes_free). */
typedef struct {
  char *file;
  int line; /* 1-based; 0 when not tied to a line */
  int column;
  char *kind; /* resource kind, e.g. "InferenceModel"; NULL when not tied to a resource */
  char *ns;   /* its namespace */
  char *name; /* its metadata.name */
  char *reason; /* one CamelCase word, e.g. "ModelNameInUse", "UnknownKind", "NoReadyEndpoints" */
  char *message;
} ig_manifest_note_t;

typedef struct {
  ig_manifest_note_t *v;
  size_t n;
} ig_manifest_notes_t;

typedef struct {
  const char *listen_host;         /* host of every listener; NULL = "127.0.0.1" */
  int port_offset;                 /* added to each Gateway listener port that is not overridden */
  const ig_manifest_port_t *ports; /* per-listener port overrides */
  size_t n_ports;
  const char *admin;               /* "HOST:PORT" of the admin listener; NULL = none */
  const char *gateway_class;       /* serve only Gateways of this gatewayClassName; NULL = all */
  const char *default_namespace;   /* namespace of resources that name none; NULL = "default" */
  ig_manifest_notes_t *notes;      /* out: notes are appended here; NULL = dropped */
  int pools_only;                  /* the caller needs only pools and models (the epp): files without a
                                    * Gateway are fine */
  int lenient_refs;                /* a backendRef to a Service or InferencePool that does not exist is a
                                    * note (reason BackendNotFound), not an error: the rule keeps its other
                                    * backends (none: 503); for --kube, where objects come and go */
} ig_manifest_opts_t;

/* Loads Kubernetes resources (Gateway, HTTPRoute, TCPRoute, InferencePool, InferenceModel, and the
 * Pod, Service, Endpoints and EndpointSlice resources that give their endpoints) from path: a YAML
 * file (several documents separated by "---", and kind: List, are allowed) or a directory (every
 * *.yaml and *.yml file in it, in sorted name order, not recursive). opts may be NULL. Produces the
 * same snapshot as ig_config_load (docs/kubernetes.md gives the mapping); cfg->source is path. On
 * failure returns IG_ECONFIG, *out is NULL and every error is appended to errs with its file, line
 * and column. Notes are appended to opts->notes in both cases. */
int ig_config_load_manifests(const char *path, const ig_manifest_opts_t *opts, ig_config_t **out,
                             ig_config_errors_t *errs);
/* Parses a command-line listener port override "NAME=PORT": writes NAME NUL-terminated to
 * name[0..cap) and the port (1..65535) to *port. Returns 0 or IG_EINVAL. */
int ig_config_manifest_port_parse(const char *s, char *name, size_t cap, int *port);
/* Same as ig_config_load_manifests, from the text text[0..len) (YAML or JSON documents; kind: List
 * allowed); name is used as the file name in errors and notes and as cfg->source. */
int ig_config_load_manifests_string(const char *name, const char *text, size_t len,
                                    const ig_manifest_opts_t *opts, ig_config_t **out,
                                    ig_config_errors_t *errs);
void ig_config_notes_free(ig_manifest_notes_t *notes);
/* Prints "file:line:column: warning: message" lines to f (a FILE *). */
void ig_config_notes_print(const ig_manifest_notes_t *notes, void *f);

#endif

/* Kubernetes API client (src/k8s): LIST + WATCH of the Gateway API and Inference Extension kinds
 * and the Pods / Services / Endpoints / EndpointSlices that give them endpoints (configured in
 * cluster, by URL, or from a kubeconfig), kept in an in-memory store and
 * rendered as manifest text for ig_config_load_manifests_string; and a small status write-back for
 * InferenceModels. Runs on a libuv loop, single-threaded; plain http or https (OpenSSL, verified
 * against a CA file). The watch-stream line splitter and event parser are pure, for tests and fuzzing. */
#ifndef INFERGATE_K8S_H
#define INFERGATE_K8S_H

#include <stddef.h>
#include <stdint.h>

#include "infergate/config.h"

struct json_t;
struct uv_loop_s;

/* ---- pure watch-stream parsing ----------------------------------------------------------------- */

#define IG_K8S_MAX_LINE (16u << 20) /* a watch event longer than this is refused */

/* Finds the next newline-terminated line in buf[0..len). On success returns the bytes consumed
 * (line plus its "\n") and sets *line_len (without "\n", and without a trailing "\r"). Returns
 * IG_EAGAIN when no full line is there yet, IG_ETOOBIG when len exceeds IG_K8S_MAX_LINE without
 * a newline. */
long ig_k8s_line_next(const char *buf, size_t len, size_t *line_len);

typedef enum {
  IG_K8S_ADDED,
  IG_K8S_MODIFIED,
  IG_K8S_DELETED,
  IG_K8S_BOOKMARK,
  IG_K8S_ERROR
} ig_k8s_event_type_t;

/* One watch event. object is owned by the event (ig_k8s_event_clear). For ERROR events code is the
 * Status object's code (e.g. 410), 0 when absent. ns, name and rv point into object (NULL when
 * absent; BOOKMARK events carry only rv). */
typedef struct {
  ig_k8s_event_type_t type;
  struct json_t *object;
  const char *ns, *name, *rv;
  int code;
} ig_k8s_event_t;

/* Parses one watch line {"type": ..., "object": {...}}. Returns 0, or IG_EPARSE for invalid JSON,
 * an unknown type, or a missing / non-object "object" (for ADDED, MODIFIED and DELETED also a
 * missing metadata.name). ev is cleared on failure. */
int ig_k8s_event_parse(const char *line, size_t len, ig_k8s_event_t *ev);
void ig_k8s_event_clear(ig_k8s_event_t *ev);

/* Parses "http://host:port" or "https://host[:port]" (optional trailing "/"; IPv6 in brackets).
 * Returns 0 or IG_EINVAL. */
int ig_k8s_url_parse(const char *url, int *tls, char *host, size_t hostcap, int *port);

/* ---- kubeconfig ---------------------------------------------------------------------------------- */

/* What a kubeconfig gives for one context. Strings are owned (ig_k8s_kubeconfig_free); *_data are
 * decoded from base64 (PEM text, NUL-terminated); file names are absolute or relative to the process'
 * working directory (resolved against the kubeconfig's directory). */
typedef struct {
  char *context;         /* the context used */
  char *server;          /* cluster.server, "https://host[:port]" (a trailing "/" removed) */
  char *tls_server_name; /* cluster.tls-server-name: SNI and the name checked in the certificate */
  int insecure;          /* cluster.insecure-skip-tls-verify */
  char *ca_file, *ca_data;
  size_t ca_data_len;
  char *token, *token_file; /* user.token, user.tokenFile */
  char *cert_file, *cert_data, *key_file, *key_data; /* user.client-certificate(-data), client-key(-data) */
  size_t cert_data_len, key_data_len;
  char *ns; /* context.namespace; NULL when none */
} ig_k8s_kubeconfig_t;

/* Parses kubeconfig text: the context named context (NULL: current-context), its cluster and user.
 * dir is the directory relative file names are resolved against (NULL or "": as given). Returns 0, or
 * IG_EINVAL with a one-line reason in err[0..errcap) (invalid YAML, missing context / cluster / user,
 * invalid base64, exec / auth-provider / basic credentials, a certificate without its key). */
int ig_k8s_kubeconfig_parse(const char *text, size_t len, const char *dir, const char *context,
                            ig_k8s_kubeconfig_t *kc, char *err, size_t errcap);
/* Same from a file. */
int ig_k8s_kubeconfig_load(const char *path, const char *context, ig_k8s_kubeconfig_t *kc, char *err,
                           size_t errcap);
void ig_k8s_kubeconfig_free(ig_k8s_kubeconfig_t *kc);

/* ---- the watcher ------------------------------------------------------------------------------- */

typedef struct ig_k8s ig_k8s_t;

/* Called (debounced) with the whole store rendered as manifest text: one JSON document per object,
 * "---" separated, in a stable order; text is valid during the call only. Called only once every
 * kind has been listed (or found missing), and only when the text changed. */
typedef void (*ig_k8s_change_cb)(void *data, const char *text, size_t len);

typedef struct {
  const char *api_url;    /* "http(s)://host:port"; NULL = in cluster (KUBERNETES_SERVICE_HOST/PORT) */
  const char *ns;         /* namespace to watch; NULL = the service account's, else "default" */
  const char *token_file; /* NULL = the service-account token (in cluster) or none; re-read on errors */
  const char *ca_file;    /* NULL = the service-account ca.crt */
  unsigned debounce_ms;   /* 0 = 100 */
  unsigned backoff_max_ms; /* 0 = 5000; errors back off from 100 ms doubling to this */
  ig_k8s_change_cb on_change;
  void *data;
  int write_status;            /* ig_k8s_report PATCHes status only when set (serve --write-status) */
  const char *controller_name; /* NULL = "infergate.io/gateway-controller" (Gateway API status) */
  /* added later; zero = the old behaviour */
  const char *kubeconfig; /* a kubeconfig file: server, CA, credentials, namespace (the fields above win) */
  const char *context;    /* its context to use; NULL = current-context */
  int pools_only;         /* watch only what pools and models need (the epp): no Gateway / routes */
  int leader_elect;       /* status is written only while holding the Lease below */
  const char *lease_name; /* NULL = "infergate-status-writer" */
  const char *lease_ns;   /* NULL = the watched namespace */
  unsigned lease_duration_ms; /* 0 = 15000; renewed every third of it */
  const char *identity;   /* holderIdentity; NULL = $POD_NAME or the host name, plus the pid */
} ig_k8s_opts_t;

/* Starts watching on loop. Returns 0 and a new watcher in *out, or IG_EINVAL (bad URL, no cluster
 * environment, unreadable CA file) with the reason logged. */
int ig_k8s_start(struct uv_loop_s *loop, const ig_k8s_opts_t *opts, ig_k8s_t **out);
/* Stops every request and timer; the watcher frees itself once its handles are closed (run the
 * loop). */
void ig_k8s_stop(ig_k8s_t *k);
/* The namespace being watched. */
const char *ig_k8s_namespace(const ig_k8s_t *k);

/* Status write-back after a successful build from the text last given to on_change; does nothing
 * unless opts.write_status was set. Every InferenceModel in the store gets condition Accepted=True
 * (reason Accepted), or Accepted=False with reason ModelNameInUse when notes name it so. Every
 * InferencePool gets status.parents[]: one entry per Gateway an HTTPRoute routes to it from
 * ({parentRef {group, kind Gateway, namespace, name}, controllerName, conditions}) with Accepted=True
 * and ResolvedRefs=True, or ResolvedRefs=False reason NoReadyEndpoints when notes say so. Sends a
 * merge PATCH to .../status only when the status differs from what was last sent for that object
 * (and what the object carries). Also: every served Gateway gets conditions Accepted and Programmed
 * and listeners[] (supportedKinds, attachedRoutes, conditions); every HTTPRoute gets parents[] per
 * served Gateway with Accepted and ResolvedRefs (False BackendNotFound for a missing Service or
 * InferencePool, InvalidKind for other kinds). With opts.leader_elect only the Lease holder writes;
 * the notes are kept so that a replica that becomes leader writes the current status at once. */
void ig_k8s_report(ig_k8s_t *k, const ig_manifest_notes_t *notes);
/* 1 when this replica may write status: leader election is off, or it holds the Lease. */
int ig_k8s_is_leader(const ig_k8s_t *k);

#endif

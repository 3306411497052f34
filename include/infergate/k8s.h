/* Kubernetes API client (src/k8s): LIST + WATCH of the Gateway API and Inference Extension kinds
 * and the Pods / Services / Endpoints that give them endpoints, kept in an in-memory store and
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
 * (and what the object carries). */
void ig_k8s_report(ig_k8s_t *k, const ig_manifest_notes_t *notes);

#endif

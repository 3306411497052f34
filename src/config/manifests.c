/* Kubernetes manifests: Gateway API (Gateway, HTTPRoute, TCPRoute) and Inference Extension
 * (InferencePool, InferenceModel) resources, plus the Pods, Services, Endpoints and EndpointSlices
 * that give them endpoints, read from files into the same ig_config_t snapshot the native loader
 * produces. docs/kubernetes.md describes the mapping.
 *
 * The load runs in phases over every document of every file, so references may point forward and
 * across files: read and classify resources; Pods and endpoint sources; InferencePools (pools);
 * Gateways (listeners); HTTPRoutes and TCPRoutes (routes, Service backends, tcp backends);
 * InferenceModels (models, oldest wins per model name). Errors carry file:line:column and are sorted
 * into file order at the end; notes (not errors) go to opts->notes. Unknown fields in the spec of the
 * Gateway API and GIE kinds are noted; fields of core kinds (Pod, Service, ...) that infergate does
 * not read are ignored silently, since kubectl output carries many. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <openssl/ssl.h>
#include <yaml.h>

#include "config_internal.h"
#include "filters.h"
#include "infergate/config.h"
#include "infergate/core.h"

#define MAX_ERRORS 200
#define MAX_NOTES 500
#define MAX_DEPTH 64                /* kubectl output of a Pod nests about 10 deep */
#define MAX_FILE_BYTES (16u << 20)  /* per file */
#define MAX_TOTAL_BYTES (64u << 20) /* per load */
#define MAX_FILES 1000
#define MAX_FIELDS 16
#define MAX_MODEL_NAME 256
#define MAX_TARGETS 10
#define MAX_WEIGHT 1000000u
#define MAX_TARGET_PORTS 8
#define MAX_ENDPOINTS 4096 /* per backend; the duplicate check is linear */
#define MAX_DUP_SCAN 1024  /* mappings with more pairs skip the quadratic duplicate-key check */
#define DAY_MS (24ull * 3600000ull)

#define ANN_ENGINE "infergate.io/engine"
#define ANN_SCHEDULER "infergate.io/scheduler"
#define ANN_METRICS_PATH "infergate.io/metrics-path"
#define ANN_SCRAPE "infergate.io/scrape-interval"
#define ANN_ENDPOINTS "infergate.io/endpoints"
#define ANN_POOL_SERVICE "infergate.io/service" /* pool annotation: take this Service's EndpointSlices */
#define LABEL_SERVICE_NAME "kubernetes.io/service-name"

#define GROUP_GATEWAY "gateway.networking.k8s.io"
#define GROUP_GIE "inference.networking.k8s.io"
#define GROUP_GIE_X "inference.networking.x-k8s.io"

typedef enum {
  K_GATEWAY,
  K_HTTPROUTE,
  K_TCPROUTE,
  K_POOL,
  K_MODEL,
  K_OBJECTIVE,
  K_POD,
  K_SERVICE,
  K_ENDPOINTS,
  K_SLICE,
  K_SECRET
} kind_t;

static const struct {
  const char *api;
  const char *kind;
  kind_t k;
} known_kinds[] = {
    {GROUP_GATEWAY "/v1", "Gateway", K_GATEWAY},
    {GROUP_GATEWAY "/v1beta1", "Gateway", K_GATEWAY},
    {GROUP_GATEWAY "/v1", "HTTPRoute", K_HTTPROUTE},
    {GROUP_GATEWAY "/v1beta1", "HTTPRoute", K_HTTPROUTE},
    {GROUP_GATEWAY "/v1alpha2", "TCPRoute", K_TCPROUTE},
    {GROUP_GIE "/v1", "InferencePool", K_POOL},
    {GROUP_GIE_X "/v1alpha2", "InferencePool", K_POOL},
    {GROUP_GIE_X "/v1alpha2", "InferenceModel", K_MODEL},
    {GROUP_GIE_X "/v1alpha2", "InferenceObjective", K_OBJECTIVE},
    {"v1", "Pod", K_POD},
    {"v1", "Service", K_SERVICE},
    {"v1", "Endpoints", K_ENDPOINTS},
    {"discovery.k8s.io/v1", "EndpointSlice", K_SLICE},
    {"v1", "Secret", K_SECRET},
};

/* One resource: a mapping node of a loaded document, with its identity read from metadata. */
typedef struct {
  kind_t kind;
  int v1; /* InferencePool of inference.networking.k8s.io/v1 */
  const char *kind_text;
  const char *file; /* points into cfg->source */
  yaml_document_t *doc;
  yaml_node_t *root, *spec, *status, *labels, *annotations;
  const char *name, *ns;
  int has_created;
  int64_t created_s;
  long created_ns;
  int skip; /* Gateway not of our class */
} res_t;

typedef struct {
  const char *key, *value;
} label_t;

typedef struct {
  res_t *r;
  label_t *labels;
  size_t n_labels;
  const char *ip;
  int ready;
} pod_t;

typedef struct {
  const char *name; /* NULL when unnamed */
  int port;
} port_t;

typedef struct {
  const char *name;
  int port, target; /* target: numeric targetPort, 0 when named or absent */
} svc_port_t;

typedef struct {
  res_t *r;
  const char *cluster_ip;
  svc_port_t *ports;
  size_t n_ports;
  yaml_node_t *ep_annotation;
  label_t *selector; /* spec.selector: pools with the same selector take its EndpointSlices */
  size_t n_selector;
} svc_t;

/* Addresses and ports for a Service: one subset of an Endpoints, or one EndpointSlice. */
typedef struct {
  res_t *r;
  const char *service;
  const char **ips;
  size_t n_ips;
  port_t *ports;
  size_t n_ports;
} epgroup_t;

/* What a listener carries beyond ig_listener_cfg_t; parallel to cfg->listeners. */
typedef struct {
  res_t *gw;
  const char *lname;
  char *hostname; /* lower-cased; NULL = any */
  int gw_port;    /* as written in the Gateway */
  int from_all;   /* allowedRoutes.namespaces.from All */
  int allow_http, allow_tcp;
  res_t *tcp_route;
  yaml_node_t *node;
  int bad_tls; /* HTTPS listener whose certificate could not be resolved: not opened */
} lmeta_t;

typedef struct {
  res_t *r;
  size_t backend;
  label_t *selector;
  size_t n_selector;
} pool_t;

typedef struct {
  res_t *r;
  yaml_node_t *name_node;
  const char *model_name;
  size_t pool; /* index in ctx pools */
  ig_criticality_t crit;
  ig_target_cfg_t *targets;
  size_t n_targets;
  int ok, skipped;
} model_t;

typedef struct {
  const ig_manifest_opts_t *opts;
  const char *path;
  const char *default_ns;
  ig_config_errors_t *errs;
  size_t first_err;
  int n_errors, dropped;
  ig_manifest_notes_t *notes;
  size_t first_note;
  int n_notes, notes_dropped;
  size_t total_bytes;
  const char *file; /* the file being read, or the file of cur */
  res_t *cur;       /* the resource being walked: node lookups use its document */
  yaml_document_t **docs;
  size_t n_docs;
  res_t **res;
  size_t n_res;
  size_t *res_tab; /* open-addressing set of res indices + 1, by kind/namespace/name */
  size_t res_cap;
  size_t over_backend; /* index + 1 of the backend last reported for too many endpoints */
  ig_config_t *cfg;
  char listen_host[64];
  lmeta_t *lm;
  pod_t *pods;
  size_t n_pods;
  svc_t *svcs;
  size_t n_svcs;
  epgroup_t *groups;
  size_t n_groups;
  pool_t *pools;
  size_t n_pools;
  model_t *models;
  size_t n_models;
} ctx_t;

/* ---- errors and notes -------------------------------------------------------------------------- */

/* Formats "Kind name: message" for the current resource into msg, control bytes replaced. */
static void format_msg(ctx_t *c, char *msg, size_t cap, const char *fmt, va_list ap) {
  int off = 0;
  const res_t *r = c->cur;
  if (r && r->kind_text && r->name) {
    int other = r->ns && strcmp(r->ns, c->default_ns) != 0;
    off = snprintf(msg, cap, "%.64s %.64s%s%.128s: ", r->kind_text, other ? r->ns : "", other ? "/" : "",
                   r->name);
  }
  if (off < 0) off = 0;
  if ((size_t)off >= cap) off = (int)cap - 1;
  vsnprintf(msg + off, cap - (size_t)off, fmt, ap);
  for (char *p = msg; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

static void record(ctx_t *c, const char *reason, const yaml_node_t *n, const char *fmt, va_list ap) {
  char msg[1024];
  int line = n ? (int)n->start_mark.line + 1 : 0, col = n ? (int)n->start_mark.column + 1 : 0;
  const char *file = c->file ? c->file : c->path;
  if (!reason) {
    if (c->n_errors >= MAX_ERRORS) {
      c->dropped++;
      return;
    }
    format_msg(c, msg, sizeof msg, fmt, ap);
    ig_config_errors_t *e = c->errs;
    e->v = ig_realloc(e->v, (e->n + 1) * sizeof *e->v);
    e->v[e->n] = (ig_config_error_t){ig_strdup(file), line, col, ig_strdup(msg)};
    e->n++;
    c->n_errors++;
    return;
  }
  if (!c->notes) return;
  if (c->n_notes >= MAX_NOTES) {
    c->notes_dropped++;
    return;
  }
  format_msg(c, msg, sizeof msg, fmt, ap);
  ig_manifest_notes_t *ns = c->notes;
  ns->v = ig_realloc(ns->v, (ns->n + 1) * sizeof *ns->v);
  ig_manifest_note_t *t = &ns->v[ns->n++];
  memset(t, 0, sizeof *t);
  t->file = ig_strdup(file);
  t->line = line;
  t->column = col;
  if (c->cur && c->cur->kind_text) t->kind = ig_strdup(c->cur->kind_text);
  if (c->cur && c->cur->name && c->cur->ns) {
    t->ns = ig_strdup(c->cur->ns);
    t->name = ig_strdup(c->cur->name);
  }
  t->reason = ig_strdup(reason);
  t->message = ig_strdup(msg);
  c->n_notes++;
}

static void err_at(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_at(ctx_t *c, const yaml_node_t *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  record(c, NULL, n, fmt, ap);
  va_end(ap);
}

static void note_at(ctx_t *c, const yaml_node_t *n, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note_at(ctx_t *c, const yaml_node_t *n, const char *reason, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  record(c, reason, n, fmt, ap);
  va_end(ap);
}

/* An error about the load as a whole (path, options): no resource, no line. */
static void err_load(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_load(ctx_t *c, const char *fmt, ...) {
  va_list ap;
  res_t *cur = c->cur;
  const char *file = c->file;
  c->cur = NULL;
  c->file = c->path;
  va_start(ap, fmt);
  record(c, NULL, NULL, fmt, ap);
  va_end(ap);
  c->cur = cur;
  c->file = file;
}

static void use(ctx_t *c, res_t *r) {
  c->cur = r;
  c->file = r->file;
}

static int pos_cmp(const char *fa, int la, int ca, const char *fb, int lb, int cb) {
  int d = strcmp(fa, fb);
  if (d) return d;
  if (la != lb) return la < lb ? -1 : 1;
  return ca < cb ? -1 : ca > cb;
}

/* Stable insertion sorts into file order (files are read in sorted order, so strcmp on the path
 * agrees with the order of reading); the phases visit kinds, the reader wants files. */
static void sort_errors(ig_config_error_t *v, size_t n) {
  for (size_t i = 1; i < n; i++) {
    ig_config_error_t t = v[i];
    size_t j = i;
    while (j > 0 && pos_cmp(v[j - 1].file, v[j - 1].line, v[j - 1].column, t.file, t.line, t.column) > 0) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = t;
  }
}

static void sort_notes(ig_manifest_note_t *w, size_t n) {
  for (size_t i = 1; i < n; i++) {
    ig_manifest_note_t t = w[i];
    size_t j = i;
    while (j > 0 && pos_cmp(w[j - 1].file, w[j - 1].line, w[j - 1].column, t.file, t.line, t.column) > 0) {
      w[j] = w[j - 1];
      j--;
    }
    w[j] = t;
  }
}

static void sort_output(ctx_t *c) {
  /* the lists may still be empty (NULL): no pointer arithmetic on them then */
  if (c->errs->v) sort_errors(c->errs->v + c->first_err, c->errs->n - c->first_err);
  if (c->notes && c->notes->v) sort_notes(c->notes->v + c->first_note, c->notes->n - c->first_note);
}

void ig_config_notes_free(ig_manifest_notes_t *notes) {
  if (!notes) return;
  for (size_t i = 0; i < notes->n; i++) {
    ig_manifest_note_t *t = &notes->v[i];
    free(t->file);
    free(t->kind);
    free(t->ns);
    free(t->name);
    free(t->reason);
    free(t->message);
  }
  free(notes->v);
  notes->v = NULL;
  notes->n = 0;
}

void ig_config_notes_print(const ig_manifest_notes_t *notes, void *f) {
  FILE *out = f;
  for (size_t i = 0; i < notes->n; i++) {
    const ig_manifest_note_t *t = &notes->v[i];
    if (t->line > 0)
      fprintf(out, "%s:%d:%d: warning: %s [%s]\n", t->file, t->line, t->column, t->message, t->reason);
    else
      fprintf(out, "%s: warning: %s [%s]\n", t->file, t->message, t->reason);
  }
}

int ig_config_manifest_port_parse(const char *s, char *name, size_t cap, int *port) {
  const char *eq = s ? strrchr(s, '=') : NULL;
  if (!eq || eq == s || (size_t)(eq - s) >= cap || !eq[1]) return IG_EINVAL;
  long v = 0;
  for (const char *p = eq + 1; *p; p++) {
    if (!isdigit((unsigned char)*p) || v > 65535) return IG_EINVAL;
    v = v * 10 + (*p - '0');
  }
  if (v < 1 || v > 65535) return IG_EINVAL;
  memcpy(name, s, (size_t)(eq - s));
  name[eq - s] = '\0';
  *port = (int)v;
  return 0;
}

/* ---- nodes ------------------------------------------------------------------------------------- */

static yaml_node_t *node(ctx_t *c, int i) {
  return yaml_document_get_node(c->cur->doc, i);
}

static yaml_node_t *seq_item(ctx_t *c, const yaml_node_t *n, size_t i) {
  return node(c, n->data.sequence.items.start[i]);
}

static int scalar_is(const yaml_node_t *k, const char *s) {
  return k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(s) &&
         !memcmp(k->data.scalar.value, s, k->data.scalar.length);
}

/* The value of key in mapping map (the first one), or NULL. */
static yaml_node_t *get(ctx_t *c, const yaml_node_t *map, const char *key) {
  if (!map || map->type != YAML_MAPPING_NODE) return NULL;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
    if (scalar_is(node(c, p->key), key)) return node(c, p->value);
  return NULL;
}

/* A mapping to walk: 1 when n is a mapping; 0 when absent or null; 0 after an error otherwise. */
static int is_map(ctx_t *c, const yaml_node_t *n, const char *path) {
  if (!ig_yaml_present(n)) return 0;
  if (n->type != YAML_MAPPING_NODE) {
    err_at(c, n, "%s: expected a mapping, got %s", path, ig_yaml_kind(n));
    return 0;
  }
  return 1;
}

static int is_seq(ctx_t *c, const yaml_node_t *n, const char *path) {
  if (!ig_yaml_present(n)) return 0;
  if (n->type != YAML_SEQUENCE_NODE) {
    err_at(c, n, "%s: expected a list, got %s", path, ig_yaml_kind(n));
    return 0;
  }
  return 1;
}

/* Reads mapping n into vals by keys (NULL-terminated, at most MAX_FIELDS). A duplicate key is an
 * error; an unknown key is noted and ignored (the API has fields infergate does not use). Returns -1
 * after an error when n is not a mapping. */
static int fields(ctx_t *c, yaml_node_t *n, const char *path, const char *const *keys, yaml_node_t **vals) {
  size_t nk = 0;
  while (keys[nk])
    vals[nk++] = NULL;
  if (n->type != YAML_MAPPING_NODE) {
    err_at(c, n, "%s: expected a mapping, got %s", path, ig_yaml_kind(n));
    return -1;
  }
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node(c, p->key);
    size_t i = 0;
    while (i < nk && !scalar_is(k, keys[i]))
      i++;
    if (i == nk) {
      if (k->type == YAML_SCALAR_NODE)
        note_at(c, k, "UnknownField", "%s: unknown field '%.64s' ignored", path,
                (const char *)k->data.scalar.value);
      else
        err_at(c, k, "%s: keys must be strings, got %s", path, ig_yaml_kind(k));
      continue;
    }
    if (vals[i]) {
      err_at(c, k, "%s: duplicate field '%s' (first given at line %d)", path, keys[i],
             (int)vals[i]->start_mark.line + 1);
      continue;
    }
    vals[i] = node(c, p->value);
  }
  return 0;
}

/* Duplicate keys in a mapping the loader reads with get() (metadata, labels, core kinds). */
static void check_dup_keys(ctx_t *c, const yaml_node_t *map, const char *path) {
  if (!map || map->type != YAML_MAPPING_NODE ||
      map->data.mapping.pairs.top - map->data.mapping.pairs.start > MAX_DUP_SCAN)
    return;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node(c, p->key);
    if (k->type != YAML_SCALAR_NODE) continue;
    for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
      yaml_node_t *kq = node(c, q->key);
      if (kq->type == YAML_SCALAR_NODE && kq->data.scalar.length == k->data.scalar.length &&
          !memcmp(kq->data.scalar.value, k->data.scalar.value, k->data.scalar.length)) {
        err_at(c, k, "%s: duplicate key '%.64s' (first given at line %d)", path,
               (const char *)k->data.scalar.value, (int)kq->start_mark.line + 1);
        break;
      }
    }
  }
}

/* The text of a non-empty scalar, or NULL after an error. Lives as long as the document. */
static const char *str(ctx_t *c, const yaml_node_t *n, const char *path) {
  if (n->type != YAML_SCALAR_NODE) {
    err_at(c, n, "%s: expected a string, got %s", path, ig_yaml_kind(n));
    return NULL;
  }
  const char *s = (const char *)n->data.scalar.value;
  if (ig_yaml_is_null(n) || n->data.scalar.length == 0) {
    err_at(c, n, "%s: must not be empty", path);
    return NULL;
  }
  if (strlen(s) != n->data.scalar.length) {
    err_at(c, n, "%s: contains a NUL byte", path);
    return NULL;
  }
  return s;
}

/* An optional string: NULL without an error when absent or null. */
static const char *opt_str(ctx_t *c, const yaml_node_t *n, const char *path) {
  return ig_yaml_present(n) ? str(c, n, path) : NULL;
}

/* A required value: reports its absence at the mapping that lacks it. */
static yaml_node_t *need(ctx_t *c, yaml_node_t *map, yaml_node_t *v, const char *path, const char *key) {
  if (!ig_yaml_present(v)) err_at(c, v ? v : map, "%s%smissing required field '%s'", path, *path ? ": " : "", key);
  return ig_yaml_present(v) ? v : NULL;
}

/* An integer in [min, max]; returns 0, or -1 after an error. */
static int int_of(ctx_t *c, const yaml_node_t *n, const char *path, long min, long max, long *out) {
  const char *s = str(c, n, path);
  if (!s) return -1;
  const char *p = s + (*s == '-' || *s == '+');
  long v = 0;
  int big = 0;
  if (!*p) goto bad;
  for (; *p; p++) {
    if (!isdigit((unsigned char)*p)) goto bad;
    if (v > 100000000000L)
      big = 1;
    else
      v = v * 10 + (*p - '0');
  }
  if (*s == '-') v = -v;
  if (big || v < min || v > max) {
    err_at(c, n, "%s: out of range: %.32s (expected %ld..%ld)", path, s, min, max);
    return -1;
  }
  *out = v;
  return 0;
bad:
  err_at(c, n, "%s: invalid integer '%.64s'", path, s);
  return -1;
}

static int port_of(ctx_t *c, const yaml_node_t *n, const char *path, int *out) {
  long v;
  if (int_of(c, n, path, 1, 65535, &v) != 0) return -1;
  *out = (int)v;
  return 0;
}

/* One of names (NULL-terminated); returns the index, or -1 after an error. */
static int enum_of(ctx_t *c, const yaml_node_t *n, const char *path, const char *const *names) {
  const char *s = str(c, n, path);
  if (!s) return -1;
  char expect[256];
  size_t off = 0;
  expect[0] = '\0';
  for (int i = 0; names[i]; i++) {
    if (!strcmp(s, names[i])) return i;
    if (off < sizeof expect)
      off += (size_t)snprintf(expect + off, sizeof expect - off, "%s%s", i ? ", " : "", names[i]);
  }
  err_at(c, n, "%s: invalid value '%.64s' (expected one of: %s)", path, s, expect);
  return -1;
}

static int valid_ip(const char *s) {
  unsigned char tmp[16];
  return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* A Gateway API Duration: 1 to 4 groups of up to 5 digits and a unit h, m, s or ms ("1h30m"). */
static int gw_duration(const char *s, uint64_t *ms) {
  uint64_t total = 0;
  int parts = 0;
  if (!*s) return -1;
  while (*s) {
    uint64_t v = 0, mul;
    int d = 0;
    for (; isdigit((unsigned char)*s); s++, d++)
      if (d < 6) v = v * 10 + (uint64_t)(*s - '0');
    if (d == 0 || d > 5) return -1;
    if (s[0] == 'm' && s[1] == 's')
      mul = 1, s += 2;
    else if (*s == 'h')
      mul = 3600000, s++;
    else if (*s == 'm')
      mul = 60000, s++;
    else if (*s == 's')
      mul = 1000, s++;
    else
      return -1;
    total += v * mul;
    if (++parts > 4) return -1;
  }
  *ms = total;
  return 0;
}

static int dur_of(ctx_t *c, const yaml_node_t *n, const char *path, uint64_t min, uint64_t max,
                  unsigned *out) {
  const char *s = str(c, n, path);
  uint64_t ms;
  if (!s) return -1;
  if (gw_duration(s, &ms) != 0) {
    err_at(c, n, "%s: invalid duration '%.64s' (expected e.g. 500ms, 10s, 1m, 1h30m)", path, s);
    return -1;
  }
  if (ms < min || ms > max) {
    err_at(c, n, "%s: out of range: %.64s (expected %llums..%llums)", path, s, (unsigned long long)min,
           (unsigned long long)max);
    return -1;
  }
  *out = (unsigned)ms;
  return 0;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* RFC 3339 "2006-01-02T15:04:05Z" (fraction and numeric offset allowed) into seconds since the epoch
 * and nanoseconds. */
static int parse_time(const char *s, int64_t *sec, long *nsec) {
  int Y, M, D, h, m, x;
  if (strlen(s) < 20 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
      digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) ||
      s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' || digits(s + 17, 2, &x))
    return -1;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || x > 60) return -1;
  const char *p = s + 19;
  long ns = 0;
  if (*p == '.') {
    int n = 0;
    for (p++; isdigit((unsigned char)*p); p++, n++)
      if (n < 9) ns = ns * 10 + (*p - '0');
    if (n == 0) return -1;
    for (; n < 9; n++)
      ns *= 10;
  }
  int64_t off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59) return -1;
    off = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    p += 6;
  } else {
    return -1;
  }
  if (*p) return -1;
  *sec = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + m * 60 + x - off;
  *nsec = ns;
  return 0;
}

/* Gateway API hostnames: lower-case DNS labels, optionally "*." in front. Returns a copy or NULL. */
static char *hostname_of(ctx_t *c, const yaml_node_t *n, const char *path) {
  const char *s = str(c, n, path);
  if (!s) return NULL;
  const char *h = !strncmp(s, "*.", 2) ? s + 2 : s;
  size_t len = strlen(h);
  int ok = len > 0 && len <= 253 && h[0] != '.' && h[len - 1] != '.' && h[0] != '-' && !strstr(h, "..");
  for (size_t i = 0; ok && i < len; i++)
    ok = isalnum((unsigned char)h[i]) || h[i] == '-' || h[i] == '.';
  if (!ok) {
    err_at(c, n, "%s: invalid hostname '%.64s' (expected e.g. api.example.com or *.example.com)", path, s);
    return NULL;
  }
  char *out = ig_strdup(s);
  for (char *p = out; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  return out;
}

/* A string map (labels, selectors) as key/value pairs pointing into the document. */
static label_t *labels_of(ctx_t *c, yaml_node_t *map, const char *path, size_t *n) {
  *n = 0;
  if (!is_map(c, map, path)) return NULL;
  check_dup_keys(c, map, path);
  size_t cap = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
  label_t *v = ig_calloc(cap ? cap : 1, sizeof *v);
  char p[160];
  for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < map->data.mapping.pairs.top; q++) {
    yaml_node_t *k = node(c, q->key), *val = node(c, q->value);
    const char *ks = str(c, k, path), *vs;
    if (!ks) continue;
    snprintf(p, sizeof p, "%s.%.64s", path, ks);
    if (val->type != YAML_SCALAR_NODE) {
      err_at(c, val, "%s: expected a string, got %s", p, ig_yaml_kind(val));
      continue;
    }
    vs = (const char *)val->data.scalar.value; /* an empty label value is valid */
    if (strlen(vs) != val->data.scalar.length) {
      err_at(c, val, "%s: contains a NUL byte", p);
      continue;
    }
    v[*n].key = ks;
    v[(*n)++].value = vs;
  }
  return v;
}

static const char *label_get(const label_t *v, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(v[i].key, key)) return v[i].value;
  return NULL;
}

/* "name" in the default namespace, "ns/name" elsewhere: the names given to config objects. */
static char *qname(ctx_t *c, const char *ns, const char *name) {
  ig_buf_t b;
  ig_buf_init(&b);
  if (strcmp(ns, c->default_ns)) ig_buf_printf(&b, "%s/", ns);
  ig_buf_puts(&b, name);
  return b.data;
}

/* ---- reading files ----------------------------------------------------------------------------- */

/* The loader's sink for problems found by the shared YAML passes. */
static void yaml_err(void *ud, yaml_mark_t m, const char *msg) {
  yaml_node_t at;
  memset(&at, 0, sizeof at);
  at.start_mark = m;
  err_at(ud, &at, "%s", msg);
}

static void add_resource(ctx_t *c, yaml_document_t *doc, yaml_node_t *root, int depth);
static void read_text(ctx_t *c, const char *yaml, size_t len);

/* Reads one file and loads all of its documents; resources are collected for the phases. */
static void read_file(ctx_t *c, const char *file) {
  ig_buf_t buf;
  ig_buf_init(&buf);
  c->cur = NULL;
  c->file = file;
  FILE *f = fopen(file, "rb");
  if (!f) {
    err_at(c, NULL, "cannot open: %s", strerror(errno));
    return;
  }
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    ig_buf_append(&buf, chunk, n);
    if (buf.len > MAX_FILE_BYTES || c->total_bytes + buf.len > MAX_TOTAL_BYTES) {
      err_at(c, NULL,
             buf.len > MAX_FILE_BYTES ? "file is larger than %u MiB"
                                      : "manifests are larger than %u MiB in all",
             (buf.len > MAX_FILE_BYTES ? MAX_FILE_BYTES : MAX_TOTAL_BYTES) >> 20);
      goto out;
    }
  }
  if (ferror(f)) {
    err_at(c, NULL, "cannot read: %s", strerror(errno));
    goto out;
  }
  c->total_bytes += buf.len;
  read_text(c, buf.data ? buf.data : "", buf.len);
out:
  fclose(f);
  ig_buf_free(&buf);
}

/* Loads every document of the text yaml[0..len) (the contents of c->file); resources are collected
 * for the phases. */
static void read_text(ctx_t *c, const char *yaml, size_t len) {
  if (ig_yaml_prescan(yaml, len, MAX_DEPTH, 0, yaml_err, c) != 0) return;
  yaml_parser_t p;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
  for (;;) {
    yaml_document_t *doc = ig_malloc(sizeof *doc);
    if (!yaml_parser_load(&p, doc)) {
      free(doc);
      ig_yaml_syntax_error(&p, yaml, len, yaml_err, c);
      break;
    }
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root) { /* the end of the stream */
      yaml_document_delete(doc);
      free(doc);
      break;
    }
    c->docs = ig_realloc(c->docs, (c->n_docs + 1) * sizeof *c->docs);
    c->docs[c->n_docs++] = doc;
    if (!ig_yaml_is_null(root)) add_resource(c, doc, root, 0); /* "---" with nothing after it is fine */
  }
  yaml_parser_delete(&p);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_yaml_ext(const char *name) {
  size_t n = strlen(name);
  return (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml"));
}

/* The files to read: path itself, or the *.yaml / *.yml regular files of the directory path in
 * sorted order (hidden names skipped: a ConfigMap volume keeps its data under "..data"). Returns a
 * new array of new strings. */
static char **list_files(ctx_t *c, size_t *n_out) {
  struct stat st;
  char **files = NULL;
  size_t n = 0;
  *n_out = 0;
  if (stat(c->path, &st) != 0) {
    err_load(c, "cannot open: %s", strerror(errno));
    return NULL;
  }
  if (!S_ISDIR(st.st_mode)) {
    files = ig_malloc(sizeof *files);
    files[0] = ig_strdup(c->path);
    *n_out = 1;
    return files;
  }
  DIR *d = opendir(c->path);
  if (!d) {
    err_load(c, "cannot open directory: %s", strerror(errno));
    return NULL;
  }
  struct dirent *e;
  size_t plen = strlen(c->path);
  int slash = plen > 0 && c->path[plen - 1] == '/';
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || !has_yaml_ext(e->d_name)) continue;
    char *full = NULL;
    if (asprintf(&full, "%s%s%s", c->path, slash ? "" : "/", e->d_name) < 0) abort();
    if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
      free(full);
      continue;
    }
    if (n >= MAX_FILES) {
      free(full);
      err_load(c, "more than %d manifest files in the directory", MAX_FILES);
      break;
    }
    files = ig_realloc(files, (n + 1) * sizeof *files);
    files[n++] = full;
  }
  closedir(d);
  if (n == 0) err_load(c, "no *.yaml or *.yml files in the directory");
  if (n) qsort(files, n, sizeof *files, cmp_str);
  *n_out = n;
  return files;
}

/* ---- classifying resources --------------------------------------------------------------------- */

static size_t res_hash(const res_t *r) {
  uint64_t h = ig_hash64(&r->kind, sizeof r->kind, IG_HASH_SEED);
  h = ig_hash64(r->ns, strlen(r->ns) + 1, h);
  return (size_t)ig_hash64(r->name, strlen(r->name), h);
}

/* Keeps a copy of r unless a resource of the same kind, namespace and name is kept already; returns
 * that one then, else NULL. */
static const res_t *res_insert(ctx_t *c, const res_t *r) {
  if (2 * (c->n_res + 1) > c->res_cap) { /* grow and rehash, load factor <= 1/2 */
    size_t cap = c->res_cap ? 2 * c->res_cap : 64;
    size_t *tab = ig_calloc(cap, sizeof *tab);
    for (size_t i = 0; i < c->n_res; i++) {
      size_t h = res_hash(c->res[i]) & (cap - 1);
      while (tab[h])
        h = (h + 1) & (cap - 1);
      tab[h] = i + 1;
    }
    free(c->res_tab);
    c->res_tab = tab;
    c->res_cap = cap;
  }
  size_t h = res_hash(r) & (c->res_cap - 1);
  for (; c->res_tab[h]; h = (h + 1) & (c->res_cap - 1)) {
    const res_t *o = c->res[c->res_tab[h] - 1];
    if (o->kind == r->kind && !strcmp(o->ns, r->ns) && !strcmp(o->name, r->name)) return o;
  }
  c->res_tab[h] = c->n_res + 1;
  c->res = ig_realloc(c->res, (c->n_res + 1) * sizeof *c->res);
  c->res[c->n_res] = ig_malloc(sizeof *r);
  *c->res[c->n_res++] = *r;
  return NULL;
}

/* Reads apiVersion, kind and metadata of one resource and keeps it when infergate uses its kind.
 * kind: List has its items expanded (kubectl get -o yaml writes one). */
static void add_resource(ctx_t *c, yaml_document_t *doc, yaml_node_t *root, int depth) {
  res_t tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.doc = doc;
  tmp.file = c->file;
  tmp.root = root;
  c->cur = &tmp; /* for node lookups; no kind_text yet, so messages have no prefix */
  if (root->type != YAML_MAPPING_NODE) {
    err_at(c, root, "expected a Kubernetes resource (a mapping with apiVersion and kind), got %s",
           ig_yaml_kind(root));
    goto out;
  }
  check_dup_keys(c, root, "resource");
  yaml_node_t *av = get(c, root, "apiVersion"), *kv = get(c, root, "kind");
  const char *api = NULL, *kind = NULL;
  if (!ig_yaml_present(av) || !ig_yaml_present(kv)) {
    err_at(c, root, "missing required field '%s' of a Kubernetes resource",
           !ig_yaml_present(av) ? "apiVersion" : "kind");
    goto out;
  }
  if (!(api = str(c, av, "apiVersion")) || !(kind = str(c, kv, "kind"))) goto out;
  if (!strcmp(kind, "List") && depth == 0) {
    yaml_node_t *items = get(c, root, "items");
    if (is_seq(c, items, "List items"))
      for (size_t i = 0; i < ig_yaml_seq_len(items); i++) {
        c->cur = &tmp;
        add_resource(c, doc, seq_item(c, items, i), 1);
      }
    goto out;
  }
  size_t ki = 0, nk = sizeof known_kinds / sizeof known_kinds[0];
  while (ki < nk && (strcmp(known_kinds[ki].kind, kind) || strcmp(known_kinds[ki].api, api)))
    ki++;
  yaml_node_t *meta = get(c, root, "metadata"), *nm = get(c, meta, "name");
  tmp.kind_text = kind;
  tmp.ns = c->default_ns;
  if (ki == nk) { /* not ours: noted, whatever its metadata looks like */
    if (ig_yaml_present(nm) && nm->type == YAML_SCALAR_NODE) tmp.name = (const char *)nm->data.scalar.value;
    size_t j = 0;
    while (j < nk && strcmp(known_kinds[j].kind, kind))
      j++;
    if (j < nk)
      note_at(c, av, "UnsupportedVersion", "apiVersion '%.64s' of %s is not supported; ignored", api, kind);
    else
      note_at(c, kv, "UnknownKind", "kind %.64s (%.64s) is not used by infergate; ignored", kind, api);
    goto out;
  }
  if (!ig_yaml_present(meta)) {
    err_at(c, root, "%s: missing required field 'metadata'", kind);
    goto out;
  }
  if (!is_map(c, meta, "metadata")) goto out;
  if (!(nm = need(c, meta, nm, "metadata", "name")) || !(tmp.name = str(c, nm, "metadata.name"))) goto out;
  yaml_node_t *nsn = get(c, meta, "namespace");
  const char *ns;
  if (ig_yaml_present(nsn) && (ns = str(c, nsn, "metadata.namespace"))) tmp.ns = ns;
  check_dup_keys(c, meta, "metadata");
  tmp.kind = known_kinds[ki].k;
  tmp.kind_text = known_kinds[ki].kind;
  tmp.v1 = !strcmp(api, GROUP_GIE "/v1");
  tmp.spec = get(c, root, "spec");
  tmp.status = get(c, root, "status");
  tmp.labels = get(c, meta, "labels");
  tmp.annotations = get(c, meta, "annotations");
  yaml_node_t *ct = get(c, meta, "creationTimestamp");
  const char *cts;
  if (ig_yaml_present(ct) && (cts = str(c, ct, "metadata.creationTimestamp"))) {
    if (parse_time(cts, &tmp.created_s, &tmp.created_ns) != 0)
      err_at(
          c, ct,
          "metadata.creationTimestamp: invalid time '%.64s' (expected RFC 3339, e.g. 2025-01-31T12:00:00Z)",
          cts);
    else
      tmp.has_created = 1;
  }
  const res_t *o = res_insert(c, &tmp);
  if (o)
    err_at(c, nm, "duplicate %s (first defined at %s:%d)", tmp.kind_text, o->file,
           (int)o->root->start_mark.line + 1);
out:
  c->cur = NULL;
}

/* An annotation value of r (a string), or NULL. */
static yaml_node_t *annotation(ctx_t *c, res_t *r, const char *key) {
  yaml_node_t *v = get(c, r->annotations, key);
  return ig_yaml_present(v) ? v : NULL;
}

/* ---- backends and endpoints -------------------------------------------------------------------- */

static long backend_index(const ig_config_t *cfg, const char *name) {
  for (size_t i = 0; i < cfg->n_backends; i++)
    if (cfg->backends[i].name && !strcmp(cfg->backends[i].name, name)) return (long)i;
  return -1;
}

/* Appends a backend with the native loader's defaults; takes name. Returns its index. */
static size_t backend_new(ctx_t *c, char *name, int pool, res_t *r) {
  ig_config_t *cfg = c->cfg;
  cfg->backends = ig_realloc(cfg->backends, (cfg->n_backends + 1) * sizeof *cfg->backends);
  ig_backend_cfg_t *b = &cfg->backends[cfg->n_backends];
  memset(b, 0, sizeof *b);
  b->name = name;
  b->policy = pool ? IG_LB_INFERENCE : IG_LB_ROUND_ROBIN;
  b->connect_timeout_ms = 2000;
  b->response_timeout_ms = 60000;
  b->idle_timeout_ms = 300000;
  b->max_idle_conns = 64;
  b->engine = IG_ENGINE_VLLM;
  if (pool) {
    b->scrape_interval_ms = 50;
    b->metrics_path = ig_strdup("/metrics");
    b->scheduler = ig_strdup("default");
  }
  b->file = r->file;
  b->line = (int)r->root->start_mark.line + 1;
  return cfg->n_backends++;
}

/* Adds host:port to backend bi unless it is there already; past MAX_ENDPOINTS, one error. */
static void endpoint_add(ctx_t *c, size_t bi, const char *host, int port) {
  ig_backend_cfg_t *b = &c->cfg->backends[bi];
  for (size_t i = 0; i < b->n_endpoints; i++)
    if (b->endpoints[i].port == port && !strcmp(b->endpoints[i].host, host)) return;
  if (b->n_endpoints >= MAX_ENDPOINTS) {
    if (c->over_backend != bi + 1) /* a backend's endpoints are added in one go: report once */
      err_at(c, NULL, "%s has more than %d endpoints", b->name, MAX_ENDPOINTS);
    c->over_backend = bi + 1;
    return;
  }
  b->endpoints = ig_realloc(b->endpoints, (b->n_endpoints + 1) * sizeof *b->endpoints);
  b->endpoints[b->n_endpoints].host = ig_strdup(host);
  b->endpoints[b->n_endpoints++].port = port;
}

/* ---- Pods, Services, Endpoints, EndpointSlices ------------------------------------------------- */

/* A Pod is an endpoint source when Running, Ready=True, not being deleted, and it has an IP. */
static void parse_pod(ctx_t *c, res_t *r) {
  pod_t *p;
  c->pods = ig_realloc(c->pods, (c->n_pods + 1) * sizeof *c->pods);
  p = &c->pods[c->n_pods++];
  memset(p, 0, sizeof *p);
  p->r = r;
  p->labels = labels_of(c, r->labels, "metadata.labels", &p->n_labels);
  if (!is_map(c, r->status, "status")) return;
  const char *ip = opt_str(c, get(c, r->status, "podIP"), "status.podIP");
  const char *phase = opt_str(c, get(c, r->status, "phase"), "status.phase");
  if (ip && !valid_ip(ip)) {
    err_at(c, get(c, r->status, "podIP"), "status.podIP: invalid IP address '%.64s'", ip);
    return;
  }
  int ready = 0;
  yaml_node_t *conds = get(c, r->status, "conditions");
  if (is_seq(c, conds, "status.conditions"))
    for (size_t i = 0; i < ig_yaml_seq_len(conds); i++) {
      yaml_node_t *cn = seq_item(c, conds, i);
      if (!is_map(c, cn, "status.conditions[]")) continue;
      const char *t = opt_str(c, get(c, cn, "type"), "status.conditions[].type");
      const char *s = opt_str(c, get(c, cn, "status"), "status.conditions[].status");
      if (t && s && !strcmp(t, "Ready")) ready = !strcmp(s, "True");
    }
  yaml_node_t *meta = get(c, r->root, "metadata");
  p->ip = ip;
  p->ready = ip && phase && !strcmp(phase, "Running") && ready && !ig_yaml_present(get(c, meta, "deletionTimestamp"));
}

static void parse_service(ctx_t *c, res_t *r) {
  svc_t *s;
  c->svcs = ig_realloc(c->svcs, (c->n_svcs + 1) * sizeof *c->svcs);
  s = &c->svcs[c->n_svcs++];
  memset(s, 0, sizeof *s);
  s->r = r;
  s->ep_annotation = annotation(c, r, ANN_ENDPOINTS);
  if (!is_map(c, r->spec, "spec")) return;
  yaml_node_t *sel = get(c, r->spec, "selector");
  if (ig_yaml_present(sel)) s->selector = labels_of(c, sel, "spec.selector", &s->n_selector);
  yaml_node_t *ip = get(c, r->spec, "clusterIP");
  if (ig_yaml_present(ip) && (s->cluster_ip = str(c, ip, "spec.clusterIP")) && strcmp(s->cluster_ip, "None") &&
      !valid_ip(s->cluster_ip)) {
    err_at(c, ip, "spec.clusterIP: invalid IP address '%.64s'", s->cluster_ip);
    s->cluster_ip = NULL;
  }
  yaml_node_t *ports = get(c, r->spec, "ports");
  if (!is_seq(c, ports, "spec.ports")) return;
  s->ports = ig_calloc(ig_yaml_seq_len(ports) + 1, sizeof *s->ports);
  for (size_t i = 0; i < ig_yaml_seq_len(ports); i++) {
    yaml_node_t *pn = seq_item(c, ports, i), *pv;
    char path[64];
    snprintf(path, sizeof path, "spec.ports[%zu]", i);
    if (!is_map(c, pn, path)) continue;
    svc_port_t *sp = &s->ports[s->n_ports];
    sp->name = opt_str(c, get(c, pn, "name"), "name");
    if (!(pv = need(c, pn, get(c, pn, "port"), path, "port")) ||
        port_of(c, pv, "spec.ports[].port", &sp->port))
      continue;
    yaml_node_t *tp = get(c, pn, "targetPort");
    if (ig_yaml_present(tp) && tp->type == YAML_SCALAR_NODE && isdigit(*(const unsigned char *)tp->data.scalar.value))
      port_of(c, tp, "spec.ports[].targetPort", &sp->target);
    s->n_ports++;
  }
}

/* The ports of an endpoint source ({name, port} list). */
static port_t *ports_of(ctx_t *c, yaml_node_t *seq, const char *path, size_t *n) {
  *n = 0;
  if (!is_seq(c, seq, path)) return NULL;
  port_t *v = ig_calloc(ig_yaml_seq_len(seq) + 1, sizeof *v);
  for (size_t i = 0; i < ig_yaml_seq_len(seq); i++) {
    yaml_node_t *pn = seq_item(c, seq, i), *pv;
    if (!is_map(c, pn, path)) continue;
    v[*n].name = opt_str(c, get(c, pn, "name"), "ports[].name");
    if ((pv = need(c, pn, get(c, pn, "port"), path, "port")) &&
        port_of(c, pv, "ports[].port", &v[*n].port) == 0)
      (*n)++;
  }
  return v;
}

static epgroup_t *group_new(ctx_t *c, res_t *r, const char *service) {
  c->groups = ig_realloc(c->groups, (c->n_groups + 1) * sizeof *c->groups);
  epgroup_t *g = &c->groups[c->n_groups++];
  memset(g, 0, sizeof *g);
  g->r = r;
  g->service = service;
  return g;
}

static void group_add_ip(ctx_t *c, epgroup_t *g, yaml_node_t *n, const char *path) {
  const char *ip = str(c, n, path);
  if (!ip) return;
  if (!valid_ip(ip)) {
    err_at(c, n, "%s: invalid IP address '%.64s'", path, ip);
    return;
  }
  g->ips = ig_realloc(g->ips, (g->n_ips + 1) * sizeof *g->ips);
  g->ips[g->n_ips++] = ip;
}

/* core/v1 Endpoints: one group per subset (ready addresses only), and an empty one that says the
 * Service has an Endpoints even when it lists no subset. */
static void parse_endpoints(ctx_t *c, res_t *r) {
  yaml_node_t *subsets = get(c, r->root, "subsets");
  group_new(c, r, r->name);
  if (!is_seq(c, subsets, "subsets")) return;
  for (size_t i = 0; i < ig_yaml_seq_len(subsets); i++) {
    yaml_node_t *sn = seq_item(c, subsets, i);
    if (!is_map(c, sn, "subsets[]")) continue;
    epgroup_t *g = group_new(c, r, r->name);
    yaml_node_t *addrs = get(c, sn, "addresses");
    if (is_seq(c, addrs, "subsets[].addresses"))
      for (size_t j = 0; j < ig_yaml_seq_len(addrs); j++) {
        yaml_node_t *an = seq_item(c, addrs, j), *ip;
        if (is_map(c, an, "subsets[].addresses[]") &&
            (ip = need(c, an, get(c, an, "ip"), "subsets[].addresses[]", "ip")))
          group_add_ip(c, g, ip, "subsets[].addresses[].ip");
      }
    g->ports = ports_of(c, get(c, sn, "ports"), "subsets[].ports", &g->n_ports);
  }
}

/* discovery.k8s.io/v1 EndpointSlice: one group; endpoints whose conditions.ready is false are left
 * out (absent means ready). */
static void parse_slice(ctx_t *c, res_t *r) {
  size_t nl;
  label_t *labels = labels_of(c, r->labels, "metadata.labels", &nl);
  const char *svc = label_get(labels, nl, LABEL_SERVICE_NAME);
  free(labels);
  if (!svc || !*svc) {
    note_at(c, r->root, "NoServiceName", "no label %s: the slice belongs to no Service; ignored",
            LABEL_SERVICE_NAME);
    return;
  }
  yaml_node_t *at = get(c, r->root, "addressType");
  const char *type = ig_yaml_present(at) ? str(c, at, "addressType") : NULL;
  if (type && strcmp(type, "IPv4") && strcmp(type, "IPv6")) {
    err_at(c, at, "addressType: '%.64s' is not supported (IPv4 or IPv6)", type);
    return;
  }
  epgroup_t *g = group_new(c, r, svc);
  yaml_node_t *eps = get(c, r->root, "endpoints");
  if (is_seq(c, eps, "endpoints"))
    for (size_t i = 0; i < ig_yaml_seq_len(eps); i++) {
      yaml_node_t *en = seq_item(c, eps, i), *addrs;
      if (!is_map(c, en, "endpoints[]")) continue;
      yaml_node_t *cond = get(c, en, "conditions"), *rd = get(c, cond, "ready");
      if (is_map(c, cond, "endpoints[].conditions") && ig_yaml_present(rd)) {
        int v = enum_of(c, rd, "endpoints[].conditions.ready", (const char *const[]){"true", "false", NULL});
        if (v != 0) continue;
      }
      if (!(addrs = need(c, en, get(c, en, "addresses"), "endpoints[]", "addresses")) ||
          !is_seq(c, addrs, "endpoints[].addresses"))
        continue;
      for (size_t j = 0; j < ig_yaml_seq_len(addrs); j++)
        group_add_ip(c, g, seq_item(c, addrs, j), "endpoints[].addresses[]");
    }
  g->ports = ports_of(c, get(c, r->root, "ports"), "ports", &g->n_ports);
}

static svc_t *find_service(ctx_t *c, const char *ns, const char *name) {
  for (size_t i = 0; i < c->n_svcs; i++)
    if (!strcmp(c->svcs[i].r->ns, ns) && !strcmp(c->svcs[i].r->name, name)) return &c->svcs[i];
  return NULL;
}

/* Picks the endpoint port of a group for a Service port: by the Service port's name when it has one,
 * the only port when there is one, else by number (targetPort, then the port itself). 0 = none. */
static int group_port(const epgroup_t *g, const svc_port_t *sp, int port) {
  if (sp && sp->name) {
    for (size_t i = 0; i < g->n_ports; i++)
      if (g->ports[i].name && !strcmp(g->ports[i].name, sp->name)) return g->ports[i].port;
    return 0;
  }
  if (g->n_ports == 1) return g->ports[0].port;
  for (size_t i = 0; i < g->n_ports; i++)
    if ((sp && sp->target && g->ports[i].port == sp->target) || g->ports[i].port == port)
      return g->ports[i].port;
  return 0;
}

/* The infergate.io/endpoints annotation: "HOST:PORT, HOST:PORT"; host names are resolved. */
static void annotation_endpoints(ctx_t *c, yaml_node_t *n, size_t bi) {
  const char *s = str(c, n, "metadata.annotations." ANN_ENDPOINTS);
  if (!s) return;
  char *copy = ig_strdup(s), *save = NULL;
  for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    char host[256], num[64];
    int port;
    const char *why = "unknown error";
    if (ig_parse_hostport(tok, host, sizeof host, &port) != 0) {
      err_at(c, n, "metadata.annotations." ANN_ENDPOINTS ": invalid address '%.64s' (expected HOST:PORT)",
             tok);
      continue;
    }
    if (ig_config_resolve(host, num, sizeof num, &why) != 0) {
      err_at(c, n, "metadata.annotations." ANN_ENDPOINTS ": cannot resolve host '%.64s': %s", host, why);
      continue;
    }
    endpoint_add(c, bi, num, port);
  }
  free(copy);
}

/* The backend for a Service backendRef (ns/name, port): created on first use, named "name:port".
 * Endpoints come from Endpoints/EndpointSlices of the Service, else its infergate.io/endpoints
 * annotation, else its clusterIP. Returns the index or -1 after an error at ref. */
static long service_backend(ctx_t *c, yaml_node_t *ref, const char *ns, const char *name, int port) {
  ig_buf_t bn;
  ig_buf_init(&bn);
  char *q = qname(c, ns, name);
  ig_buf_printf(&bn, "%s:%d", q, port);
  free(q);
  long bi = backend_index(c->cfg, bn.data);
  if (bi >= 0) {
    ig_buf_free(&bn);
    return bi;
  }
  svc_t *s = find_service(c, ns, name);
  const svc_port_t *sp = NULL;
  if (s && s->n_ports) {
    for (size_t i = 0; i < s->n_ports && !sp; i++)
      if (s->ports[i].port == port) sp = &s->ports[i];
    if (!sp) {
      err_at(c, ref, "backendRefs[].name: Service %s has no port %d", name, port);
      ig_buf_free(&bn);
      return -1;
    }
  }
  size_t n_groups = 0;
  for (size_t i = 0; i < c->n_groups; i++)
    n_groups += !strcmp(c->groups[i].r->ns, ns) && !strcmp(c->groups[i].service, name);
  if (!n_groups && !(s && (s->ep_annotation || (s->cluster_ip && strcmp(s->cluster_ip, "None"))))) {
    err_at(c, ref,
           "backendRefs[].name: cannot find endpoints for Service %s: give an Endpoints or EndpointSlice for "
           "it, or a "
           "Service with a clusterIP or an " ANN_ENDPOINTS " annotation",
           name);
    ig_buf_free(&bn);
    return -1;
  }
  bi = (long)backend_new(c, bn.data, 0, s ? s->r : c->cur);
  if (n_groups) {
    for (size_t i = 0; i < c->n_groups; i++) {
      epgroup_t *g = &c->groups[i];
      if (strcmp(g->r->ns, ns) || strcmp(g->service, name)) continue;
      int p = group_port(g, sp, port);
      for (size_t j = 0; p && j < g->n_ips; j++)
        endpoint_add(c, (size_t)bi, g->ips[j], p);
    }
  } else if (s->ep_annotation) {
    res_t *cur = c->cur;
    use(c, s->r);
    annotation_endpoints(c, s->ep_annotation, (size_t)bi);
    use(c, cur);
  } else {
    endpoint_add(c, (size_t)bi, s->cluster_ip, port);
  }
  if (c->cfg->backends[bi].n_endpoints == 0)
    note_at(c, ref, "NoReadyEndpoints",
            "backendRefs[].name: Service %s has no ready endpoint on port %d; requests to it get 503", name,
            port);
  return bi;
}

/* ---- InferencePool ----------------------------------------------------------------------------- */

static const char *const engine_names[] = {"vllm", "vllm-v0", "sglang", "trtllm", NULL};
static const char *const scheduler_names[] = {"default",       "gie",    "round-robin",
                                              "least-request", "random", NULL};

static const char *const pool_v1_keys[] = {"selector", "targetPorts", "appProtocol", "endpointPickerRef",
                                           NULL};
static const char *const pool_x_keys[] = {"selector", "targetPortNumber", "extensionRef", NULL};

/* The pool's engine, scheduler, metrics path and scrape interval from infergate.io annotations. */
static void pool_annotations(ctx_t *c, res_t *r, ig_backend_cfg_t *b) {
  yaml_node_t *n;
  int e;
  if ((n = annotation(c, r, ANN_ENGINE)) &&
      (e = enum_of(c, n, "metadata.annotations." ANN_ENGINE, engine_names)) >= 0)
    b->engine = (ig_engine_t)e;
  if ((n = annotation(c, r, ANN_SCHEDULER)) &&
      (e = enum_of(c, n, "metadata.annotations." ANN_SCHEDULER, scheduler_names)) >= 0) {
    free(b->scheduler);
    b->scheduler = ig_strdup(scheduler_names[e]);
  }
  const char *s;
  if ((n = annotation(c, r, ANN_METRICS_PATH)) && (s = str(c, n, "metadata.annotations." ANN_METRICS_PATH))) {
    if (s[0] != '/') {
      err_at(c, n, "metadata.annotations." ANN_METRICS_PATH ": must start with '/'");
    } else {
      free(b->metrics_path);
      b->metrics_path = ig_strdup(s);
    }
  }
  if ((n = annotation(c, r, ANN_SCRAPE)))
    dur_of(c, n, "metadata.annotations." ANN_SCRAPE, 1, 3600000, &b->scrape_interval_ms);
}

/* Whether two label sets are equal (as sets). */
static int same_labels(const label_t *a, size_t na, const label_t *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++) {
    const char *v = label_get(b, nb, a[i].key);
    if (!v || strcmp(v, a[i].value)) return 0;
  }
  return 1;
}

/* Pool endpoints from EndpointSlices (and Endpoints) of its namespace that belong to the Service named
 * by the pool's infergate.io/service annotation, or to a Service whose selector is the pool's: ready
 * addresses, on each target port the slice lists (every target port when it lists none). */
static void pool_slices(ctx_t *c, res_t *r, pool_t *p, const int *ports, size_t n_ports) {
  yaml_node_t *an = annotation(c, r, ANN_POOL_SERVICE);
  const char *named = an ? str(c, an, "metadata.annotations." ANN_POOL_SERVICE) : NULL;
  for (size_t i = 0; i < c->n_groups; i++) {
    epgroup_t *g = &c->groups[i];
    if (strcmp(g->r->ns, r->ns)) continue;
    svc_t *s = named ? NULL : find_service(c, r->ns, g->service);
    if (named ? strcmp(named, g->service) != 0
              : !s || !s->n_selector || !same_labels(s->selector, s->n_selector, p->selector, p->n_selector))
      continue;
    for (size_t j = 0; j < n_ports; j++) {
      size_t k = 0;
      while (k < g->n_ports && g->ports[k].port != ports[j])
        k++;
      if (g->n_ports && k == g->n_ports) continue;
      for (size_t a = 0; a < g->n_ips; a++)
        endpoint_add(c, p->backend, g->ips[a], ports[j]);
    }
  }
}

/* An InferencePool of either API version becomes a pool whose endpoints are the ready Pods of its
 * namespace matching the selector, one per target port, plus the ready addresses of its Service's
 * EndpointSlices (pool_slices). */
static void parse_pool(ctx_t *c, res_t *r) {
  yaml_node_t *v[MAX_FIELDS];
  int ports[MAX_TARGET_PORTS];
  size_t n_ports = 0;
  pool_t *p;
  c->pools = ig_realloc(c->pools, (c->n_pools + 1) * sizeof *c->pools);
  p = &c->pools[c->n_pools++];
  memset(p, 0, sizeof *p);
  p->r = r;
  p->backend = backend_new(c, qname(c, r->ns, r->name), 1, r);
  pool_annotations(c, r, &c->cfg->backends[p->backend]);
  if (!need(c, r->root, r->spec, "", "spec") ||
      fields(c, r->spec, "spec", r->v1 ? pool_v1_keys : pool_x_keys, v))
    return;
  yaml_node_t *sel = need(c, r->spec, v[0], "spec", "selector");
  if (r->v1 && sel) {
    yaml_node_t *sv[MAX_FIELDS];
    static const char *const sel_keys[] = {"matchLabels", "matchExpressions", NULL};
    if (fields(c, sel, "spec.selector", sel_keys, sv) == 0) {
      if (ig_yaml_present(sv[1])) err_at(c, sv[1], "spec.selector.matchExpressions: not supported (use matchLabels)");
      sel = need(c, sel, sv[0], "spec.selector", "matchLabels");
    } else {
      sel = NULL;
    }
  }
  if (sel) {
    p->selector = labels_of(c, sel, r->v1 ? "spec.selector.matchLabels" : "spec.selector", &p->n_selector);
    if (!p->n_selector && sel->type == YAML_MAPPING_NODE)
      err_at(c, sel, "spec.selector: must select at least one label");
  }
  if (r->v1) {
    yaml_node_t *tp = need(c, r->spec, v[1], "spec", "targetPorts");
    if (tp && is_seq(c, tp, "spec.targetPorts")) {
      if (ig_yaml_seq_len(tp) < 1 || ig_yaml_seq_len(tp) > MAX_TARGET_PORTS)
        err_at(c, tp, "spec.targetPorts: expected 1..%d ports, got %zu", MAX_TARGET_PORTS, ig_yaml_seq_len(tp));
      for (size_t i = 0; i < ig_yaml_seq_len(tp) && n_ports < MAX_TARGET_PORTS; i++) {
        yaml_node_t *pn = seq_item(c, tp, i), *pv[MAX_FIELDS];
        static const char *const port_keys[] = {"number", NULL};
        char path[48];
        int port;
        snprintf(path, sizeof path, "spec.targetPorts[%zu]", i);
        if (fields(c, pn, path, port_keys, pv) || !need(c, pn, pv[0], path, "number") ||
            port_of(c, pv[0], "spec.targetPorts[].number", &port))
          continue;
        size_t j = 0;
        while (j < n_ports && ports[j] != port)
          j++;
        if (j < n_ports)
          err_at(c, pv[0], "spec.targetPorts: duplicate port %d", port);
        else
          ports[n_ports++] = port;
      }
    }
    const char *ap = opt_str(c, v[2], "spec.appProtocol");
    if (ap && strcmp(ap, "http"))
      err_at(c, v[2],
             "spec.appProtocol: '%.64s' is not supported (infergate speaks HTTP/1.1 to model servers)", ap);
    is_map(c, v[3], "spec.endpointPickerRef");
  } else {
    if (need(c, r->spec, v[1], "spec", "targetPortNumber") &&
        port_of(c, v[1], "spec.targetPortNumber", &ports[0]) == 0)
      n_ports = 1;
    is_map(c, v[2], "spec.extensionRef");
  }
  /* endpoints: ready pods of the namespace matching every selector label, in file order */
  if (!p->n_selector || !n_ports) return;
  for (size_t i = 0; i < c->n_pods; i++) {
    pod_t *pod = &c->pods[i];
    if (!pod->ready || strcmp(pod->r->ns, r->ns)) continue;
    size_t k = 0;
    while (k < p->n_selector) {
      const char *lv = label_get(pod->labels, pod->n_labels, p->selector[k].key);
      if (!lv || strcmp(lv, p->selector[k].value)) break;
      k++;
    }
    if (k < p->n_selector) continue;
    for (size_t j = 0; j < n_ports; j++)
      endpoint_add(c, p->backend, pod->ip, ports[j]);
  }
  pool_slices(c, r, p, ports, n_ports);
  if (c->cfg->backends[p->backend].n_endpoints == 0)
    note_at(c, r->root, "NoReadyEndpoints",
            "no ready Pod matches the selector; requests to the pool get 503");
}

/* Finds a pool by namespace and name; -1 when none. */
static long find_pool(ctx_t *c, const char *ns, const char *name) {
  for (size_t i = 0; i < c->n_pools; i++)
    if (!strcmp(c->pools[i].r->ns, ns) && !strcmp(c->pools[i].r->name, name)) return (long)i;
  return -1;
}

/* ---- Gateway ----------------------------------------------------------------------------------- */

static const char *const gw_keys[] = {"gatewayClassName", "listeners", "addresses", "infrastructure", NULL};
static const char *const listener_keys[] = {"name", "hostname",      "port", "protocol",
                                            "tls",  "allowedRoutes", NULL};
static const char *const proto_names[] = {"HTTP", "TCP", "HTTPS", "TLS", "UDP", NULL};

/* The port a listener gets: an override from opts by "gw/listener" or "listener", else the Gateway's
 * port plus the offset. */
static int listener_port(ctx_t *c, const char *full, const char *lname, int port, int *used) {
  const ig_manifest_opts_t *o = c->opts;
  for (size_t i = 0; o && i < o->n_ports; i++)
    if (o->ports[i].name && (!strcmp(o->ports[i].name, full) || !strcmp(o->ports[i].name, lname))) {
      used[i] = 1;
      return o->ports[i].port;
    }
  return port + (o ? o->port_offset : 0);
}

/* allowedRoutes: namespaces.from (Same by default, All; Selector is treated as Same with a note) and
 * kinds (default: the kind matching the protocol). */
static void parse_allowed(ctx_t *c, yaml_node_t *n, const char *path, lmeta_t *m, int tcp) {
  yaml_node_t *v[MAX_FIELDS], *nv[MAX_FIELDS];
  static const char *const keys[] = {"namespaces", "kinds", NULL};
  static const char *const ns_keys[] = {"from", "selector", NULL};
  static const char *const from_names[] = {"Same", "All", "Selector", NULL};
  m->allow_http = !tcp;
  m->allow_tcp = tcp;
  if (!ig_yaml_present(n) || fields(c, n, path, keys, v)) return;
  if (ig_yaml_present(v[0]) && fields(c, v[0], "allowedRoutes.namespaces", ns_keys, nv) == 0 && ig_yaml_present(nv[0])) {
    int f = enum_of(c, nv[0], "allowedRoutes.namespaces.from", from_names);
    if (f == 1) m->from_all = 1;
    if (f == 2)
      note_at(c, nv[0], "UnsupportedValue",
              "allowedRoutes.namespaces.from: Selector is not supported; only routes of the Gateway's "
              "namespace attach");
  }
  if (is_seq(c, v[1], "allowedRoutes.kinds")) {
    m->allow_http = m->allow_tcp = 0;
    for (size_t i = 0; i < ig_yaml_seq_len(v[1]); i++) {
      yaml_node_t *kn = seq_item(c, v[1], i), *kv[MAX_FIELDS], *k;
      static const char *const kind_keys[] = {"group", "kind", NULL};
      if (fields(c, kn, "allowedRoutes.kinds[]", kind_keys, kv) ||
          !(k = need(c, kn, kv[1], "allowedRoutes.kinds[]", "kind")))
        continue;
      const char *g = opt_str(c, kv[0], "allowedRoutes.kinds[].group"),
                 *ks = str(c, k, "allowedRoutes.kinds[].kind");
      if (!ks || (g && strcmp(g, GROUP_GATEWAY))) continue;
      if (!strcmp(ks, "HTTPRoute")) m->allow_http = 1;
      if (!strcmp(ks, "TCPRoute")) m->allow_tcp = 1;
    }
  }
}

static res_t *find_res(ctx_t *c, kind_t k, const char *ns, const char *name);

/* The PEM text of key k of a kubernetes.io/tls Secret: data (base64) or stringData (plain). A new
 * string, or NULL with the reason in why. */
static char *secret_pem(ctx_t *c, res_t *s, const char *k, char *why, size_t cap) {
  yaml_node_t *d = get(c, get(c, s->root, "data"), k), *sd = get(c, get(c, s->root, "stringData"), k);
  if (d && d->type == YAML_SCALAR_NODE && d->data.scalar.length) {
    size_t n;
    char *pem = NULL;
    if (ig_base64_decode((const char *)d->data.scalar.value, d->data.scalar.length, &pem, &n) != 0 ||
        strlen(pem) != n) {
      snprintf(why, cap, "data.%s is not base64 of PEM text", k);
      free(pem);
      return NULL;
    }
    return pem;
  }
  if (sd && sd->type == YAML_SCALAR_NODE && sd->data.scalar.length &&
      strlen((const char *)sd->data.scalar.value) == sd->data.scalar.length)
    return ig_strdup((const char *)sd->data.scalar.value);
  snprintf(why, cap, "no data.%s", k);
  return NULL;
}

/* spec.listeners[].tls of an HTTPS listener l (named lname in its Gateway r): mode Terminate with the
 * certificate of the first certificateRefs Secret, loaded as PEM into l->tls. Malformed fields are
 * errors; a reference that cannot be resolved (missing Secret, wrong type, bad PEM, another namespace)
 * is a note and returns -1: the listener is not opened, the rest is served. */
static int listener_tls(ctx_t *c, res_t *r, yaml_node_t *tn, ig_listener_cfg_t *l, const char *lname) {
  static const char *const tls_keys[] = {"mode", "certificateRefs", "options", "frontendValidation", NULL};
  static const char *const ref_keys_tls[] = {"group", "kind", "name", "namespace", NULL};
  static const char *const modes[] = {"Terminate", "Passthrough", NULL};
  yaml_node_t *v[MAX_FIELDS], *rv[MAX_FIELDS], *refs;
  if (fields(c, tn, "spec.listeners[].tls", tls_keys, v)) return -1;
  if (ig_yaml_present(v[0]) && enum_of(c, v[0], "spec.listeners[].tls.mode", modes) != 0) {
    if (v[0]->type == YAML_SCALAR_NODE && !strcmp((const char *)v[0]->data.scalar.value, "Passthrough"))
      err_at(c, v[0], "spec.listeners[].tls.mode: Passthrough is not supported yet (Terminate)");
    return -1;
  }
  if (ig_yaml_present(v[2]))
    note_at(c, v[2], "UnsupportedValue", "spec.listeners[].tls.options: ignored");
  if (ig_yaml_present(v[3]))
    note_at(c, v[3], "UnsupportedValue", "spec.listeners[].tls.frontendValidation: ignored");
  if (!(refs = need(c, tn, v[1], "spec.listeners[].tls", "certificateRefs")) ||
      !is_seq(c, refs, "spec.listeners[].tls.certificateRefs"))
    return -1;
  if (ig_yaml_seq_len(refs) == 0) {
    err_at(c, refs, "spec.listeners[].tls.certificateRefs: must not be empty");
    return -1;
  }
  if (ig_yaml_seq_len(refs) > 1)
    note_at(c, seq_item(c, refs, 1), "UnsupportedValue",
            "listener %s: only the first of spec.listeners[].tls.certificateRefs is served", lname);
  yaml_node_t *rn = seq_item(c, refs, 0), *nn;
  if (fields(c, rn, "spec.listeners[].tls.certificateRefs[]", ref_keys_tls, rv) ||
      !(nn = need(c, rn, rv[2], "spec.listeners[].tls.certificateRefs[]", "name")))
    return -1;
  const char *g = opt_str(c, rv[0], "certificateRefs[].group"), *k = opt_str(c, rv[1], "certificateRefs[].kind");
  const char *ns = opt_str(c, rv[3], "certificateRefs[].namespace"), *name = str(c, nn, "certificateRefs[].name");
  if (!name) return -1;
  if ((g && strcmp(g, "core")) || (k && strcmp(k, "Secret"))) {
    note_at(c, rn, "InvalidCertificateRef", "listener %s: certificateRefs[0] must be a Secret (got %s/%s); not served",
            lname, g ? g : "core", k ? k : "Secret");
    return -1;
  }
  if (ns && strcmp(ns, r->ns)) {
    note_at(c, rv[3], "RefNotPermitted",
            "listener %s: Secret %s/%s is in another namespace (ReferenceGrant is not supported yet); not served",
            lname, ns, name);
    return -1;
  }
  res_t *s = find_res(c, K_SECRET, r->ns, name);
  char why[300] = "";
  char *cert = NULL, *key = NULL;
  if (!s) {
    snprintf(why, sizeof why, "not found");
  } else {
    res_t *gw = c->cur;
    c->cur = s; /* the Secret's nodes are in its own document */
    yaml_node_t *tv = get(c, s->root, "type");
    int tls_type = tv && scalar_is(tv, "kubernetes.io/tls");
    if (tls_type && (cert = secret_pem(c, s, "tls.crt", why, sizeof why)))
      key = secret_pem(c, s, "tls.key", why, sizeof why);
    c->cur = gw;
    if (!tls_type)
      snprintf(why, sizeof why, "type is not kubernetes.io/tls");
    else if (cert && key) {
      SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
      if (!ctx || ig_config_tls_use_pem(ctx, cert, key, why, sizeof why) != 0) {
        if (!ctx) snprintf(why, sizeof why, "cannot create a TLS context");
        free(cert);
        free(key);
        cert = key = NULL;
      }
      SSL_CTX_free(ctx);
    } else {
      free(cert);
      cert = NULL;
    }
  }
  if (!cert) {
    note_at(c, nn, "InvalidCertificateRef", "listener %s: Secret %s: %s; the listener is not served", lname, name, why);
    return -1;
  }
  l->tls = ig_calloc(1, sizeof *l->tls);
  l->tls->cert_pem = cert;
  l->tls->key_pem = key;
  l->tls->line = (int)tn->start_mark.line + 1;
  return 0;
}

static void parse_gateway(ctx_t *c, res_t *r, int *used) {
  yaml_node_t *v[MAX_FIELDS];
  ig_config_t *cfg = c->cfg;
  if (!need(c, r->root, r->spec, "", "spec") || fields(c, r->spec, "spec", gw_keys, v)) return;
  const char *cls = NULL;
  if (need(c, r->spec, v[0], "spec", "gatewayClassName")) cls = str(c, v[0], "spec.gatewayClassName");
  if (cls && c->opts && c->opts->gateway_class && strcmp(cls, c->opts->gateway_class)) {
    note_at(c, v[0], "OtherGatewayClass", "gatewayClassName '%.64s' is not served (serving '%.64s'); ignored",
            cls, c->opts->gateway_class);
    r->skip = 1;
    return;
  }
  if (ig_yaml_present(v[2]))
    note_at(c, v[2], "UnsupportedValue", "spec.addresses: ignored; listeners bind %s", c->listen_host);
  yaml_node_t *ls = need(c, r->spec, v[1], "spec", "listeners");
  if (!ls || !is_seq(c, ls, "spec.listeners")) return;
  if (ig_yaml_seq_len(ls) == 0) err_at(c, ls, "spec.listeners: must not be empty");
  char *gq = qname(c, r->ns, r->name);
  for (size_t i = 0; i < ig_yaml_seq_len(ls); i++) {
    yaml_node_t *ln = seq_item(c, ls, i), *lv[MAX_FIELDS];
    char path[48];
    snprintf(path, sizeof path, "spec.listeners[%zu]", i);
    if (fields(c, ln, path, listener_keys, lv)) continue;
    const char *name = NULL;
    int port = 0, proto = -1;
    if (need(c, ln, lv[0], path, "name")) name = str(c, lv[0], "spec.listeners[].name");
    if (need(c, ln, lv[2], path, "port")) port_of(c, lv[2], "spec.listeners[].port", &port);
    if (need(c, ln, lv[3], path, "protocol"))
      proto = enum_of(c, lv[3], "spec.listeners[].protocol", proto_names);
    if (proto >= 3) {
      err_at(c, lv[3], "spec.listeners[].protocol: %s is not supported yet (HTTP, HTTPS or TCP)",
             proto_names[proto]);
      proto = -1;
    }
    if (proto == 2 && !ig_yaml_present(lv[4])) {
      err_at(c, ln, "%s: missing required field 'tls' for protocol HTTPS", path);
      proto = -1;
    } else if (proto >= 0 && proto != 2 && ig_yaml_present(lv[4])) {
      err_at(c, lv[4], "spec.listeners[].tls: only HTTPS listeners take tls");
    }
    char *host = NULL;
    if (ig_yaml_present(lv[1])) {
      host = hostname_of(c, lv[1], "spec.listeners[].hostname");
      if (host && proto == 1) {
        note_at(c, lv[1], "UnsupportedValue", "spec.listeners[].hostname: ignored for a TCP listener");
        free(host);
        host = NULL;
      }
    }
    for (size_t j = 0; name && j < cfg->n_listeners; j++)
      if (c->lm[j].gw == r && !strcmp(c->lm[j].lname, name)) {
        err_at(c, lv[0], "spec.listeners: duplicate listener name '%s'", name);
        name = NULL;
      }
    if (!name || !port || proto < 0) {
      free(host);
      continue;
    }
    cfg->listeners = ig_realloc(cfg->listeners, (cfg->n_listeners + 1) * sizeof *cfg->listeners);
    c->lm = ig_realloc(c->lm, (cfg->n_listeners + 1) * sizeof *c->lm);
    ig_listener_cfg_t *l = &cfg->listeners[cfg->n_listeners];
    lmeta_t *m = &c->lm[cfg->n_listeners];
    memset(l, 0, sizeof *l);
    memset(m, 0, sizeof *m);
    cfg->n_listeners++;
    if (asprintf(&l->name, "%s/%s", gq, name) < 0) abort();
    l->host = ig_strdup(c->listen_host);
    l->port = listener_port(c, l->name, name, port, used);
    l->protocol = proto == 1 ? IG_PROTO_TCP : IG_PROTO_HTTP;
    l->file = r->file;
    l->line = (int)ln->start_mark.line + 1;
    m->gw = r;
    m->lname = name;
    m->hostname = host;
    m->gw_port = port;
    m->node = ln;
    parse_allowed(c, lv[5], "spec.listeners[].allowedRoutes", m, proto == 1);
    if (proto == 2 && listener_tls(c, r, lv[4], l, name) != 0) m->bad_tls = 1;
    if (l->port < 1 || l->port > 65535) {
      err_at(c, lv[2], "spec.listeners[].port: %d shifted by the port offset is out of range: %d", port,
             l->port);
      continue;
    }
    for (size_t j = 0; j + 1 < cfg->n_listeners; j++)
      if (cfg->listeners[j].port == l->port) {
        err_at(
            c, lv[2],
            "spec.listeners[].port: port %d is already used by listener %s (%s:%d); listeners sharing a port "
            "are not supported yet",
            l->port, cfg->listeners[j].name, cfg->listeners[j].file, cfg->listeners[j].line);
        break;
      }
  }
  free(gq);
}

/* ---- attaching routes -------------------------------------------------------------------------- */

static res_t *find_res(ctx_t *c, kind_t k, const char *ns, const char *name) {
  for (size_t i = 0; i < c->n_res; i++)
    if (c->res[i]->kind == k && !strcmp(c->res[i]->ns, ns) && !strcmp(c->res[i]->name, name))
      return c->res[i];
  return NULL;
}

static const char *const parent_keys[] = {"group", "kind", "namespace", "name", "sectionName", "port", NULL};

/* Resolves a route's parentRefs into listener indices (deduplicated) in out (cfg->n_listeners
 * entries). A reference to a Gateway, or a listener, that is not in the manifests is an error; a
 * listener that does not allow the route is noted. Returns the count. */
static size_t attach(ctx_t *c, res_t *r, yaml_node_t *refs, int tcp, size_t *out) {
  size_t n = 0;
  const char *rk = tcp ? "TCPRoute" : "HTTPRoute";
  if (!need(c, r->spec, refs, "spec", "parentRefs") || !is_seq(c, refs, "spec.parentRefs")) return 0;
  for (size_t i = 0; i < ig_yaml_seq_len(refs); i++) {
    yaml_node_t *pn = seq_item(c, refs, i), *v[MAX_FIELDS], *nn;
    char path[48];
    snprintf(path, sizeof path, "spec.parentRefs[%zu]", i);
    if (fields(c, pn, path, parent_keys, v) || !(nn = need(c, pn, v[3], path, "name"))) continue;
    const char *g = opt_str(c, v[0], "parentRefs[].group"), *k = opt_str(c, v[1], "parentRefs[].kind");
    const char *ns = opt_str(c, v[2], "parentRefs[].namespace"), *name = str(c, nn, "parentRefs[].name");
    const char *section = opt_str(c, v[4], "parentRefs[].sectionName");
    int port = 0;
    if (ig_yaml_present(v[5]) && port_of(c, v[5], "parentRefs[].port", &port)) continue;
    if ((g && strcmp(g, GROUP_GATEWAY)) || (k && strcmp(k, "Gateway"))) {
      err_at(c, pn, "%s: only Gateway parents are supported", path);
      continue;
    }
    if (!name) continue;
    res_t *gw = find_res(c, K_GATEWAY, ns ? ns : r->ns, name);
    if (!gw) {
      err_at(c, nn, "%s: unknown Gateway '%s'", path, name);
      continue;
    }
    if (gw->skip) continue;
    int named = 0, right_proto = 0;
    for (size_t li = 0; li < c->cfg->n_listeners; li++) {
      lmeta_t *m = &c->lm[li];
      ig_listener_cfg_t *l = &c->cfg->listeners[li];
      if (m->gw != gw || (section && strcmp(section, m->lname)) || (port && port != m->gw_port)) continue;
      named = 1;
      if ((l->protocol == IG_PROTO_TCP) != tcp) {
        if (section)
          err_at(c, v[4], "%s: listener '%s' of Gateway %s is %s; a %s cannot attach to it", path, section,
                 name, tcp ? "HTTP" : "TCP", rk);
        continue;
      }
      right_proto = 1;
      if (!(tcp ? m->allow_tcp : m->allow_http)) {
        note_at(c, pn, "NotAllowedByListeners", "%s: listener %s does not allow %s", path, l->name, rk);
        continue;
      }
      if (!m->from_all && strcmp(gw->ns, r->ns)) {
        note_at(c, pn, "NotAllowedByListeners", "%s: listener %s only allows routes of namespace %s", path,
                l->name, gw->ns);
        continue;
      }
      size_t j = 0;
      while (j < n && out[j] != li)
        j++;
      if (j == n) out[n++] = li;
    }
    if (section && !named)
      err_at(c, v[4], "%s: Gateway %s has no listener '%s'%s", path, name, section,
             port ? " on that port" : "");
    else if (!section && !right_proto)
      err_at(c, nn, "%s: Gateway %s has no %s listener%s", path, name, tcp ? "TCP" : "HTTP",
             port ? " on that port" : "");
  }
  return n;
}

/* ---- HTTPRoute --------------------------------------------------------------------------------- */

static const char *const route_keys[] = {"parentRefs", "hostnames", "rules", NULL};
static const char *const rule_keys[] = {
    "name", "matches", "filters", "backendRefs", "timeouts", "retry", "sessionPersistence", NULL};
static const char *const match_keys[] = {"path", "headers", "queryParams", "method", NULL};
static const char *const path_keys[] = {"type", "value", NULL};
static const char *const header_keys[] = {"type", "name", "value", NULL};
static const char *const ref_keys[] = {"group", "kind",   "name",    "namespace",
                                       "port",  "weight", "filters", NULL};
static const char *const timeout_keys[] = {"request", "backendRequest", NULL};
static const char *const methods[] = {"GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                      "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL};

static int is_token(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return 0;
  return 1;
}

/* A deep copy of the matches and backends of src into dst. */
static void route_copy(ig_route_cfg_t *dst, const ig_route_cfg_t *src) {
  dst->matches = ig_calloc(src->n_matches + 1, sizeof *dst->matches);
  for (size_t i = 0; i < src->n_matches; i++) {
    const ig_match_cfg_t *s = &src->matches[i];
    ig_match_cfg_t *d = &dst->matches[dst->n_matches++];
    d->path_type = s->path_type;
    d->path = ig_strdup(s->path);
    d->method = s->method ? ig_strdup(s->method) : NULL;
    d->headers = ig_calloc(s->n_headers + 1, sizeof *d->headers);
    for (size_t k = 0; k < s->n_headers; k++) {
      d->headers[k].name = ig_strdup(s->headers[k].name);
      d->headers[k].value = ig_strdup(s->headers[k].value);
    }
    d->n_headers = s->n_headers;
  }
  dst->backends = ig_calloc(src->n_backends + 1, sizeof *dst->backends);
  for (size_t i = 0; i < src->n_backends; i++) {
    dst->backends[i] = src->backends[i];
    dst->backends[i].backend = ig_strdup(src->backends[i].backend);
    dst->backends[i].request_headers = ig_config_header_filter_copy(src->backends[i].request_headers);
    dst->backends[i].response_headers = ig_config_header_filter_copy(src->backends[i].response_headers);
  }
  dst->request_headers = ig_config_header_filter_copy(src->request_headers);
  dst->response_headers = ig_config_header_filter_copy(src->response_headers);
  dst->n_backends = src->n_backends;
  dst->timeout_ms = src->timeout_ms;
  dst->file = src->file;
  dst->line = src->line;
}

static void parse_header_matches(ctx_t *c, yaml_node_t *seq, ig_match_cfg_t *m) {
  if (!is_seq(c, seq, "matches[].headers")) return;
  m->headers = ig_calloc(ig_yaml_seq_len(seq) + 1, sizeof *m->headers);
  for (size_t i = 0; i < ig_yaml_seq_len(seq); i++) {
    yaml_node_t *hn = seq_item(c, seq, i), *v[MAX_FIELDS];
    if (fields(c, hn, "matches[].headers[]", header_keys, v)) continue;
    if (ig_yaml_present(v[0]) &&
        enum_of(c, v[0], "matches[].headers[].type", (const char *const[]){"Exact", NULL}) < 0)
      continue;
    const char *name = NULL, *value = NULL;
    if (need(c, hn, v[1], "matches[].headers[]", "name") &&
        (name = str(c, v[1], "matches[].headers[].name")) && !is_token(name)) {
      err_at(c, v[1], "matches[].headers[].name: invalid header name '%.64s'", name);
      name = NULL;
    }
    if (need(c, hn, v[2], "matches[].headers[]", "value")) value = str(c, v[2], "matches[].headers[].value");
    if (!name || !value) continue;
    for (size_t j = 0; j < m->n_headers && name; j++)
      if (!strcasecmp(m->headers[j].name, name)) {
        err_at(c, v[1], "matches[].headers: duplicate header '%s'", name);
        name = NULL;
      }
    if (!name) continue;
    ig_header_match_cfg_t *h = &m->headers[m->n_headers++];
    h->name = ig_strdup(name);
    for (char *p = h->name; *p; p++)
      *p = (char)tolower((unsigned char)*p);
    h->value = ig_strdup(value);
  }
}

static void parse_matches(ctx_t *c, yaml_node_t *seq, ig_route_cfg_t *t) {
  if (!is_seq(c, seq, "rules[].matches")) return;
  t->matches = ig_calloc(ig_yaml_seq_len(seq) + 1, sizeof *t->matches);
  for (size_t i = 0; i < ig_yaml_seq_len(seq); i++) {
    yaml_node_t *mn = seq_item(c, seq, i), *v[MAX_FIELDS], *pv[MAX_FIELDS];
    if (fields(c, mn, "rules[].matches[]", match_keys, v)) continue;
    ig_match_cfg_t *m = &t->matches[t->n_matches++];
    m->path_type = IG_PATH_PREFIX;
    m->path = ig_strdup("/");
    if (ig_yaml_present(v[0]) && fields(c, v[0], "matches[].path", path_keys, pv) == 0) {
      int e = 0;
      if (ig_yaml_present(pv[0])) {
        e = enum_of(c, pv[0], "matches[].path.type",
                    (const char *const[]){"PathPrefix", "Exact", "RegularExpression", NULL});
        if (e == 2) err_at(c, pv[0], "matches[].path.type: RegularExpression is not supported yet");
      }
      if (e >= 0) m->path_type = e == 1 ? IG_PATH_EXACT : IG_PATH_PREFIX;
      const char *s = e == 2 ? NULL : opt_str(c, pv[1], "matches[].path.value");
      if (s && s[0] != '/')
        err_at(c, pv[1], "matches[].path.value: '%.64s' must start with '/'", s);
      else if (s) {
        free(m->path);
        m->path = ig_strdup(s);
      }
    }
    if (ig_yaml_present(v[1])) parse_header_matches(c, v[1], m);
    if (ig_yaml_present(v[2]))
      err_at(c, v[2], "matches[].queryParams: query parameter matches are not supported yet");
    if (ig_yaml_present(v[3])) {
      int e = enum_of(c, v[3], "matches[].method", methods);
      if (e >= 0) m->method = ig_strdup(methods[e]);
    }
  }
}

/* Whether the manifests have Service ns/name or endpoints (Endpoints, EndpointSlices) for it. */
static int service_exists(ctx_t *c, const char *ns, const char *name) {
  if (find_service(c, ns, name)) return 1;
  for (size_t i = 0; i < c->n_groups; i++)
    if (!strcmp(c->groups[i].r->ns, ns) && !strcmp(c->groups[i].service, name)) return 1;
  return 0;
}

/* The filter parser's sinks: the loader's errors and notes, for the current resource. */
static void filter_err(void *ud, const yaml_node_t *n, const char *msg) {
  err_at(ud, n, "%s", msg);
}

static void filter_note(void *ud, const yaml_node_t *n, const char *reason, const char *msg) {
  note_at(ud, n, reason, "%s", msg);
}

/* A `filters` list of an HTTPRoute rule or backendRef into *req / *resp. */
static void parse_filters(ctx_t *c, yaml_node_t *seq, const char *path, ig_header_filter_cfg_t **req,
                          ig_header_filter_cfg_t **resp) {
  ig_filter_ctx_t fc = {c->cur->doc, 0, path, filter_err, filter_note, c};
  ig_config_filters_parse(&fc, seq, req, resp);
}

/* backendRefs of a rule: Services (endpoints resolved here) and InferencePools. */
static void parse_backend_refs(ctx_t *c, res_t *r, yaml_node_t *rule, yaml_node_t *seq, ig_route_cfg_t *t) {
  if (!need(c, rule, seq, "rules[]", "backendRefs") || !is_seq(c, seq, "rules[].backendRefs")) return;
  if (ig_yaml_seq_len(seq) == 0) {
    err_at(c, seq, "rules[].backendRefs: must not be empty");
    return;
  }
  uint64_t total = 0;
  int bad = 0;
  size_t missing = 0; /* lenient_refs: references to nothing, skipped */
  t->backends = ig_calloc(ig_yaml_seq_len(seq), sizeof *t->backends);
  for (size_t i = 0; i < ig_yaml_seq_len(seq); i++) {
    yaml_node_t *bn = seq_item(c, seq, i), *v[MAX_FIELDS], *nn;
    if (fields(c, bn, "rules[].backendRefs[]", ref_keys, v) ||
        !(nn = need(c, bn, v[2], "rules[].backendRefs[]", "name"))) {
      bad = 1;
      continue;
    }
    const char *g = opt_str(c, v[0], "backendRefs[].group"), *k = opt_str(c, v[1], "backendRefs[].kind");
    const char *ns = opt_str(c, v[3], "backendRefs[].namespace"), *name = str(c, nn, "backendRefs[].name");
    long w = 1, bi = -1;
    int port = 0;
    if (ig_yaml_present(v[5]) && int_of(c, v[5], "backendRefs[].weight", 0, MAX_WEIGHT, &w)) bad = 1;
    if (!name) {
      bad = 1;
      continue;
    }
    if (ns && strcmp(ns, r->ns)) {
      err_at(c, v[3], "backendRefs[].namespace: references to another namespace are not supported yet");
      bad = 1;
      continue;
    }
    k = k ? k : "Service";
    if ((!g || !strcmp(g, "core")) && !strcmp(k, "Service")) {
      if (!need(c, bn, v[4], "rules[].backendRefs[]", "port") ||
          port_of(c, v[4], "backendRefs[].port", &port)) {
        bad = 1;
        continue;
      }
      if (c->opts && c->opts->lenient_refs && !service_exists(c, r->ns, name)) {
        note_at(c, nn, "BackendNotFound", "backendRefs[].name: Service %s not found; the rule skips it", name);
        missing++;
        continue;
      }
      bi = service_backend(c, nn, r->ns, name, port);
    } else if (g && (!strcmp(g, GROUP_GIE) || !strcmp(g, GROUP_GIE_X)) && !strcmp(k, "InferencePool")) {
      long pi = find_pool(c, r->ns, name);
      if (pi < 0 && c->opts && c->opts->lenient_refs) {
        note_at(c, nn, "BackendNotFound", "backendRefs[].name: InferencePool %s not found; the rule skips it",
                name);
        missing++;
        continue;
      }
      if (pi < 0)
        err_at(c, nn, "backendRefs[].name: unknown InferencePool '%s'", name);
      else if (c->pools[pi].r->v1 != !strcmp(g, GROUP_GIE))
        err_at(c, v[0], "backendRefs[].group: InferencePool %s is of group %s", name,
               c->pools[pi].r->v1 ? GROUP_GIE : GROUP_GIE_X);
      else
        bi = (long)c->pools[pi].backend;
    } else {
      err_at(c, bn, "backendRefs[]: unsupported backend %s/%s (expected a Service or an InferencePool)",
             g ? g : "core", k);
    }
    if (bi < 0) {
      bad = 1;
      continue;
    }
    ig_backend_ref_t *b = &t->backends[t->n_backends++];
    b->backend = ig_strdup(c->cfg->backends[bi].name);
    b->backend_index = (size_t)bi;
    b->weight = (unsigned)w;
    total += (uint64_t)w;
    if (ig_yaml_present(v[6])) {
      ig_header_filter_cfg_t *rq = NULL, *rs = NULL;
      parse_filters(c, v[6], "backendRefs[].filters", &rq, &rs);
      /* stored as the effective filters of this reference: the rule's, then its own */
      if (rq) b->request_headers = ig_config_header_filter_compose(t->request_headers, rq);
      if (rs) b->response_headers = ig_config_header_filter_compose(t->response_headers, rs);
      ig_config_header_filter_free(rq);
      ig_config_header_filter_free(rs);
    }
  }
  if (!bad && total == 0 && !(missing && !t->n_backends))
    err_at(c, seq, "rules[].backendRefs: all weights are 0: the rule could send nothing");
}

/* Hostname intersection of Gateway API: a route hostname and a listener hostname (either may be a
 * "*." wildcard). Returns the more specific one when they overlap, else NULL. */
static const char *host_isect(const char *rh, const char *lh) {
  int rw = rh[0] == '*', lw = lh[0] == '*';
  size_t rn = strlen(rh), ln = strlen(lh);
  if (!strcmp(rh, lh)) return rh;
  if (rw && lw) {
    if (rn > ln && !strcmp(rh + rn - (ln - 1), lh + 1)) return rh;
    if (ln > rn && !strcmp(lh + ln - (rn - 1), rh + 1)) return lh;
    return NULL;
  }
  if (rw) return ln > rn - 1 && !strcmp(lh + ln - (rn - 1), rh + 1) ? lh : NULL;
  if (lw) return rn > ln - 1 && !strcmp(rh + rn - (ln - 1), lh + 1) ? rh : NULL;
  return NULL;
}

/* The hostnames of a route on listener li: the route's, narrowed by the listener's. *none = 1 when
 * nothing overlaps (the route does not attach there). Returns a new list. */
static char **effective_hosts(ctx_t *c, size_t li, char **hn, size_t n, size_t *n_out, int *none) {
  const char *lh = c->lm[li].hostname;
  char **out = ig_calloc(n + 1, sizeof *out);
  *n_out = 0;
  *none = 0;
  if (!lh) {
    for (size_t i = 0; i < n; i++)
      out[(*n_out)++] = ig_strdup(hn[i]);
    return out;
  }
  if (n == 0) {
    out[(*n_out)++] = ig_strdup(lh);
    return out;
  }
  for (size_t i = 0; i < n; i++) {
    const char *h = host_isect(hn[i], lh);
    size_t j = 0;
    while (h && j < *n_out && strcmp(out[j], h))
      j++;
    if (h && j == *n_out) out[(*n_out)++] = ig_strdup(h);
  }
  *none = *n_out == 0;
  return out;
}

static int same_hosts(char **a, size_t na, char **b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i])) return 0;
  return 1;
}

static void free_strs(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* One HTTPRoute: one infergate route per rule, named "<route>/<rule index>". When the listeners it
 * attaches to narrow its hostnames differently, the rule becomes one route per distinct hostname set
 * ("<route>/<index>/<listener>" after the first). */
static void parse_httproute(ctx_t *c, res_t *r) {
  yaml_node_t *v[MAX_FIELDS];
  ig_config_t *cfg = c->cfg;
  if (!need(c, r->root, r->spec, "", "spec") || fields(c, r->spec, "spec", route_keys, v)) return;
  size_t *lis = ig_calloc(cfg->n_listeners + 1, sizeof *lis);
  int errors_before = c->n_errors;
  size_t n_lis = attach(c, r, v[0], 0, lis);
  char **hn = NULL;
  size_t n_hn = 0;
  if (is_seq(c, v[1], "spec.hostnames")) {
    hn = ig_calloc(ig_yaml_seq_len(v[1]) + 1, sizeof *hn);
    for (size_t i = 0; i < ig_yaml_seq_len(v[1]); i++) {
      char *h = hostname_of(c, seq_item(c, v[1], i), "spec.hostnames[]");
      if (h) hn[n_hn++] = h;
    }
  }
  /* group listeners by their effective hostnames */
  size_t n_groups = 0;
  size_t *group_of = ig_calloc(n_lis + 1, sizeof *group_of);
  char ***ghosts = ig_calloc(n_lis + 1, sizeof *ghosts);
  size_t *gn = ig_calloc(n_lis + 1, sizeof *gn);
  for (size_t i = 0; i < n_lis; i++) {
    size_t ne;
    int none;
    char **eh = effective_hosts(c, lis[i], hn, n_hn, &ne, &none);
    group_of[i] = SIZE_MAX;
    if (none) {
      note_at(c, v[1] ? v[1] : r->spec, "NoMatchingListenerHostname",
              "spec.hostnames: none matches hostname %s of listener %s; not attached there",
              c->lm[lis[i]].hostname, cfg->listeners[lis[i]].name);
      free_strs(eh, ne);
      continue;
    }
    size_t g = 0;
    while (g < n_groups && !same_hosts(ghosts[g], gn[g], eh, ne))
      g++;
    if (g == n_groups) {
      ghosts[g] = eh;
      gn[g] = ne;
      n_groups++;
    } else {
      free_strs(eh, ne);
    }
    group_of[i] = g;
  }
  if (n_lis == 0 && c->n_errors == errors_before)
    note_at(c, r->root, "NotAttached", "attaches to no listener served here; ignored");
  yaml_node_t *rules = need(c, r->spec, v[2], "spec", "rules");
  if (rules && is_seq(c, rules, "spec.rules") && ig_yaml_seq_len(rules) == 0)
    err_at(c, rules, "spec.rules: must not be empty");
  char *rq = qname(c, r->ns, r->name);
  for (size_t i = 0; rules && rules->type == YAML_SEQUENCE_NODE && i < ig_yaml_seq_len(rules); i++) {
    yaml_node_t *rn = seq_item(c, rules, i), *rv[MAX_FIELDS];
    char path[48];
    snprintf(path, sizeof path, "spec.rules[%zu]", i);
    if (fields(c, rn, path, rule_keys, rv)) continue;
    ig_route_cfg_t t;
    memset(&t, 0, sizeof t);
    t.file = r->file;
    t.line = (int)rn->start_mark.line + 1;
    if (ig_yaml_present(rv[1])) parse_matches(c, rv[1], &t);
    if (ig_yaml_present(rv[2])) parse_filters(c, rv[2], "rules[].filters", &t.request_headers, &t.response_headers);
    if (ig_yaml_present(rv[5])) err_at(c, rv[5], "rules[].retry: retry policies are not supported yet");
    if (ig_yaml_present(rv[6])) err_at(c, rv[6], "rules[].sessionPersistence: not supported yet");
    parse_backend_refs(c, r, rn, rv[3], &t);
    yaml_node_t *tv[MAX_FIELDS];
    if (ig_yaml_present(rv[4]) && fields(c, rv[4], "rules[].timeouts", timeout_keys, tv) == 0 && ig_yaml_present(tv[0]))
      dur_of(c, tv[0], "rules[].timeouts.request", 0, DAY_MS, &t.timeout_ms);
    for (size_t g = 0; g < n_groups; g++) {
      cfg->routes = ig_realloc(cfg->routes, (cfg->n_routes + 1) * sizeof *cfg->routes);
      ig_route_cfg_t *out = &cfg->routes[cfg->n_routes++];
      memset(out, 0, sizeof *out);
      route_copy(out, &t);
      size_t first = 0;
      while (group_of[first] != g)
        first++;
      if (n_groups == 1) {
        if (asprintf(&out->name, "%s/%zu", rq, i) < 0) abort();
      } else if (asprintf(&out->name, "%s/%zu/%s", rq, i, cfg->listeners[lis[first]].name) < 0) {
        abort();
      }
      out->hostnames = ig_calloc(gn[g] + 1, sizeof *out->hostnames);
      for (size_t k = 0; k < gn[g]; k++)
        out->hostnames[out->n_hostnames++] = ig_strdup(ghosts[g][k]);
      out->listeners = ig_calloc(n_lis, sizeof *out->listeners);
      for (size_t k = 0; k < n_lis; k++)
        if (group_of[k] == g) out->listeners[out->n_listeners++] = ig_strdup(cfg->listeners[lis[k]].name);
    }
    ig_config_route_clear(&t);
  }
  free(rq);
  for (size_t g = 0; g < n_groups; g++)
    free_strs(ghosts[g], gn[g]);
  free(ghosts);
  free(gn);
  free(group_of);
  free_strs(hn, n_hn);
  free(lis);
}

/* ---- TCPRoute ---------------------------------------------------------------------------------- */

static const char *const tcp_route_keys[] = {"parentRefs", "rules", NULL};
static const char *const tcp_rule_keys[] = {"name", "backendRefs", NULL};
static const char *const tcp_ref_keys[] = {"group", "kind", "name", "namespace", "port", "weight", NULL};

/* A TCPRoute gives the TCP listeners it attaches to their backend: one rule, one Service backendRef. */
static void parse_tcproute(ctx_t *c, res_t *r) {
  yaml_node_t *v[MAX_FIELDS], *rv[MAX_FIELDS], *bv[MAX_FIELDS], *rules, *refs, *nn;
  ig_config_t *cfg = c->cfg;
  if (!need(c, r->root, r->spec, "", "spec") || fields(c, r->spec, "spec", tcp_route_keys, v)) return;
  size_t *lis = ig_calloc(cfg->n_listeners + 1, sizeof *lis);
  size_t n_lis = attach(c, r, v[0], 1, lis);
  long bi = -1;
  if (!(rules = need(c, r->spec, v[1], "spec", "rules")) || !is_seq(c, rules, "spec.rules")) goto out;
  if (ig_yaml_seq_len(rules) != 1) {
    err_at(c, rules, "spec.rules: exactly one rule is supported, got %zu", ig_yaml_seq_len(rules));
    goto out;
  }
  yaml_node_t *rule = seq_item(c, rules, 0);
  if (fields(c, rule, "spec.rules[0]", tcp_rule_keys, rv) ||
      !(refs = need(c, rule, rv[1], "spec.rules[0]", "backendRefs")) ||
      !is_seq(c, refs, "rules[0].backendRefs"))
    goto out;
  if (ig_yaml_seq_len(refs) != 1) {
    err_at(c, refs, "rules[0].backendRefs: exactly one backendRef is supported, got %zu", ig_yaml_seq_len(refs));
    goto out;
  }
  yaml_node_t *bn = seq_item(c, refs, 0);
  if (fields(c, bn, "rules[0].backendRefs[0]", tcp_ref_keys, bv) ||
      !(nn = need(c, bn, bv[2], "backendRefs[0]", "name")))
    goto out;
  const char *g = opt_str(c, bv[0], "backendRefs[0].group"), *k = opt_str(c, bv[1], "backendRefs[0].kind");
  const char *ns = opt_str(c, bv[3], "backendRefs[0].namespace"), *name = str(c, nn, "backendRefs[0].name");
  int port;
  if ((g && strcmp(g, "core")) || (k && strcmp(k, "Service"))) {
    err_at(c, bn, "backendRefs[0]: a TCPRoute backend must be a Service");
    goto out;
  }
  if (ns && strcmp(ns, r->ns)) {
    err_at(c, bv[3], "backendRefs[0].namespace: references to another namespace are not supported yet");
    goto out;
  }
  if (!name || !need(c, bn, bv[4], "backendRefs[0]", "port") ||
      port_of(c, bv[4], "backendRefs[0].port", &port))
    goto out;
  bi = service_backend(c, nn, r->ns, name, port);
out:
  for (size_t i = 0; bi >= 0 && i < n_lis; i++) {
    lmeta_t *m = &c->lm[lis[i]];
    ig_listener_cfg_t *l = &cfg->listeners[lis[i]];
    if (m->tcp_route) {
      err_at(c, r->root, "listener %s already has TCPRoute %s (%s:%d); one TCPRoute per listener", l->name,
             m->tcp_route->name, m->tcp_route->file, (int)m->tcp_route->root->start_mark.line + 1);
      continue;
    }
    m->tcp_route = r;
    l->tcp_backend = ig_strdup(cfg->backends[bi].name);
    l->tcp_backend_index = (size_t)bi;
  }
  free(lis);
}

/* ---- InferenceModel ---------------------------------------------------------------------------- */

static const char *const model_keys[] = {"modelName", "criticality", "targetModels", "poolRef", NULL};
static const char *const crit_names[] = {"Critical", "Standard", "Sheddable", NULL};

static void parse_model(ctx_t *c, res_t *r) {
  yaml_node_t *v[MAX_FIELDS];
  c->models = ig_realloc(c->models, (c->n_models + 1) * sizeof *c->models);
  model_t *m = &c->models[c->n_models++];
  memset(m, 0, sizeof *m);
  m->r = r;
  m->crit = IG_CRIT_STANDARD;
  if (!need(c, r->root, r->spec, "", "spec") || fields(c, r->spec, "spec", model_keys, v)) return;
  int ok = 1;
  if (!(m->name_node = need(c, r->spec, v[0], "spec", "modelName")) ||
      !(m->model_name = str(c, v[0], "spec.modelName")))
    ok = 0;
  else if (strlen(m->model_name) > MAX_MODEL_NAME) {
    err_at(c, v[0], "spec.modelName: too long: %zu characters (at most %d)", strlen(m->model_name),
           MAX_MODEL_NAME);
    ok = 0;
  }
  if (ig_yaml_present(v[1])) {
    int e = enum_of(c, v[1], "spec.criticality", crit_names);
    if (e < 0)
      ok = 0;
    else
      m->crit = (ig_criticality_t)e;
  }
  if (is_seq(c, v[2], "spec.targetModels")) {
    size_t n = ig_yaml_seq_len(v[2]), weighted = 0;
    yaml_node_t *unweighted = NULL;
    if (n > MAX_TARGETS) {
      err_at(c, v[2], "spec.targetModels: too many: %zu (at most %d)", n, MAX_TARGETS);
      ok = 0;
      n = 0;
    }
    m->targets = ig_calloc(n + 1, sizeof *m->targets);
    for (size_t i = 0; i < n; i++) {
      yaml_node_t *tn = seq_item(c, v[2], i), *tv[MAX_FIELDS];
      static const char *const target_keys[] = {"name", "weight", NULL};
      const char *name = NULL;
      long w = 1;
      if (fields(c, tn, "spec.targetModels[]", target_keys, tv) ||
          !need(c, tn, tv[0], "spec.targetModels[]", "name") ||
          !(name = str(c, tv[0], "spec.targetModels[].name"))) {
        ok = 0;
        continue;
      }
      if (ig_yaml_present(tv[1])) {
        weighted++;
        if (int_of(c, tv[1], "spec.targetModels[].weight", 1, MAX_WEIGHT, &w)) ok = 0;
      } else if (!unweighted) {
        unweighted = tn;
      }
      size_t j = 0;
      while (j < m->n_targets && strcmp(m->targets[j].name, name))
        j++;
      if (j < m->n_targets) {
        err_at(c, tv[0], "spec.targetModels: duplicate target '%s'", name);
        ok = 0;
        continue;
      }
      m->targets[m->n_targets].name = ig_strdup(name);
      m->targets[m->n_targets++].weight = (unsigned)w;
    }
    if (weighted && unweighted) {
      err_at(c, unweighted, "spec.targetModels: weights must be set on all targets or on none");
      ok = 0;
    }
  }
  yaml_node_t *pv[MAX_FIELDS], *pn;
  static const char *const pool_ref_keys[] = {"group", "kind", "name", NULL};
  if (!need(c, r->spec, v[3], "spec", "poolRef") || fields(c, v[3], "spec.poolRef", pool_ref_keys, pv) ||
      !(pn = need(c, v[3], pv[2], "spec.poolRef", "name")))
    return;
  const char *g = opt_str(c, pv[0], "spec.poolRef.group"), *k = opt_str(c, pv[1], "spec.poolRef.kind");
  const char *pool = str(c, pn, "spec.poolRef.name");
  if ((g && strcmp(g, GROUP_GIE_X) && strcmp(g, GROUP_GIE)) || (k && strcmp(k, "InferencePool"))) {
    err_at(c, v[3], "spec.poolRef: must reference an InferencePool");
    return;
  }
  long pi = pool ? find_pool(c, r->ns, pool) : -1;
  if (pool && pi < 0) err_at(c, pn, "spec.poolRef.name: unknown InferencePool '%s'", pool);
  if (pi < 0) return;
  m->pool = (size_t)pi;
  m->ok = ok;
}

/* ---- InferenceObjective ------------------------------------------------------------------------ */

/* An InferenceObjective: spec.priority (integer, optional, 0 when unset; higher is served first,
 * negative is sheddable) and spec.poolRef (required). Requests pick it by the header
 * x-gateway-inference-objective: <metadata.name>. */
static void parse_objective(ctx_t *c, res_t *r) {
  static const char *const objective_keys[] = {"priority", "poolRef", NULL};
  static const char *const pool_ref_keys[] = {"group", "kind", "name", NULL};
  yaml_node_t *v[MAX_FIELDS], *pv[MAX_FIELDS], *pn;
  if (!need(c, r->root, r->spec, "", "spec") || fields(c, r->spec, "spec", objective_keys, v)) return;
  long prio = 0;
  int ok = !ig_yaml_present(v[0]) || int_of(c, v[0], "spec.priority", INT32_MIN, INT32_MAX, &prio) == 0;
  if (!need(c, r->spec, v[1], "spec", "poolRef") || fields(c, v[1], "spec.poolRef", pool_ref_keys, pv) ||
      !(pn = need(c, v[1], pv[2], "spec.poolRef", "name")))
    return;
  const char *g = opt_str(c, pv[0], "spec.poolRef.group"), *k = opt_str(c, pv[1], "spec.poolRef.kind");
  const char *pool = str(c, pn, "spec.poolRef.name");
  if ((g && strcmp(g, GROUP_GIE_X) && strcmp(g, GROUP_GIE)) || (k && strcmp(k, "InferencePool"))) {
    err_at(c, v[1], "spec.poolRef: must reference an InferencePool");
    return;
  }
  long pi = pool ? find_pool(c, r->ns, pool) : -1;
  if (pool && pi < 0) err_at(c, pn, "spec.poolRef.name: unknown InferencePool '%s'", pool);
  if (pi < 0 || !ok) return;
  ig_config_t *cfg = c->cfg;
  cfg->objectives = ig_realloc(cfg->objectives, (cfg->n_objectives + 1) * sizeof *cfg->objectives);
  ig_objective_cfg_t *o = &cfg->objectives[cfg->n_objectives++];
  memset(o, 0, sizeof *o);
  o->name = ig_strdup(r->name);
  o->priority = (int)prio;
  o->pool_index = c->pools[pi].backend;
  o->pool = ig_strdup(cfg->backends[o->pool_index].name);
  o->file = r->file;
  o->line = (int)r->root->start_mark.line + 1;
}

/* Older first: creationTimestamp (a model without one counts as newest), then namespace/name. */
static int model_older(const model_t *a, const model_t *b) {
  if (a->r->has_created != b->r->has_created) return a->r->has_created;
  if (a->r->has_created && (a->r->created_s != b->r->created_s || a->r->created_ns != b->r->created_ns))
    return a->r->created_s != b->r->created_s ? a->r->created_s < b->r->created_s
                                              : a->r->created_ns < b->r->created_ns;
  int d = strcmp(a->r->ns, b->r->ns);
  return d ? d < 0 : strcmp(a->r->name, b->r->name) < 0;
}

/* Model names are unique per pool, oldest wins (the newer is skipped with a note ModelNameInUse);
 * infergate looks models up by name alone, so the same name in two pools is an error. */
static void emit_models(ctx_t *c) {
  ig_config_t *cfg = c->cfg;
  cfg->models = ig_calloc(c->n_models + 1, sizeof *cfg->models);
  for (size_t i = 0; i < c->n_models; i++) {
    model_t *m = &c->models[i];
    if (!m->ok) continue;
    use(c, m->r);
    const model_t *winner = NULL;
    for (size_t j = 0; j < c->n_models; j++) {
      model_t *o = &c->models[j];
      if (j == i || !o->ok || strcmp(o->model_name, m->model_name) || !model_older(o, m)) continue;
      if (o->pool != m->pool) {
        err_at(c, m->name_node,
               "spec.modelName: '%s' is also served by InferencePool %s (InferenceModel %s, %s:%d); model "
               "names must "
               "be unique across pools",
               m->model_name, c->pools[o->pool].r->name, o->r->name, o->r->file,
               (int)o->r->root->start_mark.line + 1);
        winner = o;
        break;
      }
      if (!winner || model_older(o, winner)) winner = o;
    }
    if (winner) {
      if (winner->pool == m->pool)
        note_at(c, m->name_node, "ModelNameInUse",
                "spec.modelName: '%s' is already served in pool %s by the older InferenceModel %s; this one "
                "is skipped",
                m->model_name, c->pools[m->pool].r->name, winner->r->name);
      m->skipped = 1;
      continue;
    }
    ig_model_cfg_t *out = &cfg->models[cfg->n_models++];
    out->model_name = ig_strdup(m->model_name);
    out->criticality = m->crit;
    out->priority = ig_config_criticality_priority(m->crit);
    out->pool_index = c->pools[m->pool].backend;
    out->pool = ig_strdup(cfg->backends[out->pool_index].name);
    out->targets = m->targets;
    out->n_targets = m->n_targets;
    m->targets = NULL;
    m->n_targets = 0;
    out->file = m->r->file;
    out->line = (int)m->r->root->start_mark.line + 1;
  }
}

/* ---- the load ---------------------------------------------------------------------------------- */

/* HTTPRoutes in Gateway API precedence order: oldest first, then namespace/name. */
static int route_order(const void *a, const void *b) {
  const res_t *x = *(res_t *const *)a, *y = *(res_t *const *)b;
  if (x->has_created != y->has_created) return x->has_created ? -1 : 1;
  if (x->has_created && (x->created_s != y->created_s || x->created_ns != y->created_ns))
    return x->created_s != y->created_s ? (x->created_s < y->created_s ? -1 : 1)
                                        : (x->created_ns < y->created_ns ? -1 : 1);
  int d = strcmp(x->ns, y->ns);
  return d ? d : strcmp(x->name, y->name);
}

/* Drops TCP listeners no TCPRoute attached to (noted): a TCP listener needs a backend. */
static void drop_idle_tcp(ctx_t *c) {
  ig_config_t *cfg = c->cfg;
  size_t w = 0;
  for (size_t i = 0; i < cfg->n_listeners; i++) {
    ig_listener_cfg_t *l = &cfg->listeners[i];
    if ((l->protocol == IG_PROTO_TCP && !l->tcp_backend) || c->lm[i].bad_tls) {
      use(c, c->lm[i].gw);
      if (!c->lm[i].bad_tls)
        note_at(c, c->lm[i].node, "NoRoute", "TCP listener %s has no TCPRoute; it is not opened", l->name);
      free(l->name);
      free(l->host);
      free(l->tcp_backend);
      free(c->lm[i].hostname);
      continue;
    }
    cfg->listeners[w] = *l;
    c->lm[w++] = c->lm[i];
  }
  cfg->n_listeners = w;
}

static void admin_address(ctx_t *c) {
  char host[256], num[64];
  const char *why = "unknown error";
  ig_config_t *cfg = c->cfg;
  if (!c->opts || !c->opts->admin) return;
  if (ig_parse_hostport(c->opts->admin, host, sizeof host, &cfg->admin_port) != 0) {
    err_load(c, "invalid admin address '%.64s' (expected HOST:PORT)", c->opts->admin);
    return;
  }
  if (ig_config_resolve(host, num, sizeof num, &why) != 0) {
    err_load(c, "cannot resolve admin host '%.64s': %s", host, why);
    return;
  }
  cfg->admin_host = ig_strdup(num);
  for (size_t i = 0; i < cfg->n_listeners; i++)
    if (cfg->listeners[i].port == cfg->admin_port && !strcmp(cfg->listeners[i].host, num))
      err_load(c, "admin address %s is already used by listener %s", c->opts->admin, cfg->listeners[i].name);
}

/* The snapshot, with cfg->source holding path and then every file name, each NUL-terminated: the
 * file fields of listeners, backends, routes and models point into it, so they live exactly as long
 * as the snapshot (ig_config_free frees source). */
static ig_config_t *config_new(const char *path, char **files, size_t n_files, const char **file_ptrs) {
  ig_config_t *cfg = IG_NEW(ig_config_t);
  size_t len = strlen(path) + 1;
  for (size_t i = 0; i < n_files; i++)
    len += strlen(files[i]) + 1;
  cfg->source = ig_malloc(len);
  char *p = stpcpy(cfg->source, path) + 1;
  for (size_t i = 0; i < n_files; i++) {
    file_ptrs[i] = p;
    p = stpcpy(p, files[i]) + 1;
  }
  ig_config_set_defaults(cfg);
  return cfg;
}

static void ctx_free(ctx_t *c) {
  for (size_t i = 0; i < c->n_pods; i++)
    free(c->pods[i].labels);
  free(c->pods);
  for (size_t i = 0; i < c->n_svcs; i++) {
    free(c->svcs[i].ports);
    free(c->svcs[i].selector);
  }
  free(c->svcs);
  for (size_t i = 0; i < c->n_groups; i++) {
    free(c->groups[i].ips);
    free(c->groups[i].ports);
  }
  free(c->groups);
  for (size_t i = 0; i < c->n_pools; i++)
    free(c->pools[i].selector);
  free(c->pools);
  for (size_t i = 0; i < c->n_models; i++) {
    for (size_t j = 0; j < c->models[i].n_targets; j++)
      free(c->models[i].targets[j].name);
    free(c->models[i].targets);
  }
  free(c->models);
  if (c->cfg)
    for (size_t i = 0; i < c->cfg->n_listeners; i++)
      free(c->lm[i].hostname);
  free(c->lm);
  for (size_t i = 0; i < c->n_res; i++)
    free(c->res[i]);
  free(c->res);
  free(c->res_tab);
  for (size_t i = 0; i < c->n_docs; i++) {
    yaml_document_delete(c->docs[i]);
    free(c->docs[i]);
  }
  free(c->docs);
}

static void run_phases(ctx_t *c) {
  ig_config_t *cfg = c->cfg;
  const ig_manifest_opts_t *o = c->opts;
  int *used = ig_calloc((o ? o->n_ports : 0) + 1, sizeof *used);
  for (size_t i = 0; o && i < o->n_ports; i++)
    if (!o->ports[i].name || o->ports[i].port < 1 || o->ports[i].port > 65535)
      err_load(c, "invalid port override %zu (%s=%d)", i, o->ports[i].name ? o->ports[i].name : "(null)",
               o->ports[i].port);
  static const kind_t early[] = {K_POD, K_SERVICE, K_ENDPOINTS, K_SLICE, K_POOL, K_GATEWAY};
  for (size_t e = 0; e < sizeof early / sizeof early[0]; e++)
    for (size_t i = 0; i < c->n_res; i++) {
      res_t *r = c->res[i];
      if (r->kind != early[e]) continue;
      use(c, r);
      switch (r->kind) {
      case K_POD:
        parse_pod(c, r);
        break;
      case K_SERVICE:
        parse_service(c, r);
        break;
      case K_ENDPOINTS:
        parse_endpoints(c, r);
        break;
      case K_SLICE:
        parse_slice(c, r);
        break;
      case K_POOL:
        parse_pool(c, r);
        break;
      case K_GATEWAY:
        parse_gateway(c, r, used);
        break;
      default:
        break;
      }
    }
  for (size_t i = 0; o && i < o->n_ports; i++)
    if (o->ports[i].name && !used[i])
      err_load(c, "port override for unknown listener '%s'", o->ports[i].name);
  free(used);
  res_t **routes = ig_calloc(c->n_res + 1, sizeof *routes);
  size_t n_routes = 0;
  for (size_t i = 0; i < c->n_res; i++)
    if (c->res[i]->kind == K_HTTPROUTE) routes[n_routes++] = c->res[i];
  qsort(routes, n_routes, sizeof *routes, route_order);
  for (size_t i = 0; i < n_routes; i++) {
    use(c, routes[i]);
    parse_httproute(c, routes[i]);
  }
  free(routes);
  for (size_t i = 0; i < c->n_res; i++)
    if (c->res[i]->kind == K_TCPROUTE) {
      use(c, c->res[i]);
      parse_tcproute(c, c->res[i]);
    }
  for (size_t i = 0; i < c->n_res; i++)
    if (c->res[i]->kind == K_MODEL) {
      use(c, c->res[i]);
      parse_model(c, c->res[i]);
    }
  for (size_t i = 0; i < c->n_res; i++)
    if (c->res[i]->kind == K_OBJECTIVE) {
      use(c, c->res[i]);
      parse_objective(c, c->res[i]);
    }
  emit_models(c);
  drop_idle_tcp(c);
  c->cur = NULL;
  c->file = c->path;
  if (cfg->n_listeners == 0 && c->n_errors == 0 && !(c->opts && c->opts->pools_only))
    err_load(c, "no listeners: the manifests define no usable Gateway listener");
  admin_address(c);
}

/* The loader behind ig_config_load_manifests (text NULL: read path) and
 * ig_config_load_manifests_string (text given: path is its name). */
static int load_manifests(const char *path, const char *text, size_t text_len, const ig_manifest_opts_t *opts,
                          ig_config_t **out, ig_config_errors_t *errs) {
  ig_config_errors_t local = {0};
  ctx_t c;
  memset(&c, 0, sizeof c);
  *out = NULL;
  c.opts = opts;
  c.path = path ? path : "";
  c.file = c.path;
  c.default_ns = opts && opts->default_namespace ? opts->default_namespace : "default";
  c.errs = errs ? errs : &local;
  c.first_err = c.errs->n;
  c.notes = opts ? opts->notes : NULL;
  c.first_note = c.notes ? c.notes->n : 0;
  const char *lh = opts && opts->listen_host ? opts->listen_host : "127.0.0.1";
  const char *why = "unknown error";
  if (ig_config_resolve(lh, c.listen_host, sizeof c.listen_host, &why) != 0) {
    err_load(&c, "cannot resolve listen host '%.64s': %s", lh, why);
    snprintf(c.listen_host, sizeof c.listen_host, "127.0.0.1");
  }
  size_t n_files = 0;
  char **files = NULL;
  if (text) {
    files = ig_malloc(sizeof *files);
    files[0] = ig_strdup(c.path);
    n_files = 1;
  } else {
    files = list_files(&c, &n_files);
  }
  const char **fp = ig_calloc(n_files + 1, sizeof *fp);
  c.cfg = config_new(c.path, files, n_files, fp);
  if (text) {
    c.cur = NULL;
    c.file = fp[0];
    if (text_len > MAX_TOTAL_BYTES)
      err_at(&c, NULL, "manifests are larger than %u MiB in all", MAX_TOTAL_BYTES >> 20);
    else
      read_text(&c, text, text_len);
  }
  for (size_t i = 0; !text && i < n_files; i++)
    read_file(&c, fp[i]);
  c.cur = NULL;
  c.file = c.path;
  if (n_files) run_phases(&c);
  free_strs(files, n_files);
  free(fp);
  c.cur = NULL;
  c.file = c.path;
  if (c.dropped) {
    int d = c.dropped;
    c.n_errors = 0;
    err_load(&c, "too many errors; %d more not shown", d);
    c.n_errors = MAX_ERRORS + 1;
  }
  if (c.notes_dropped && c.notes) {
    int d = c.notes_dropped;
    c.n_notes = 0;
    note_at(&c, NULL, "TooManyNotes", "%d more notes not shown", d);
    c.n_notes = MAX_NOTES + 1;
  }
  sort_output(&c);
  ig_config_t *cfg = c.cfg;
  int failed = c.n_errors != 0;
  ctx_free(&c);
  ig_config_errors_free(&local);
  if (failed) {
    ig_config_free(cfg);
    return IG_ECONFIG;
  }
  *out = cfg;
  return 0;
}

int ig_config_load_manifests(const char *path, const ig_manifest_opts_t *opts, ig_config_t **out,
                             ig_config_errors_t *errs) {
  return load_manifests(path, NULL, 0, opts, out, errs);
}

int ig_config_load_manifests_string(const char *name, const char *text, size_t len,
                                    const ig_manifest_opts_t *opts, ig_config_t **out,
                                    ig_config_errors_t *errs) {
  return load_manifests(name ? name : "manifests", text ? text : "", len, opts, out, errs);
}

/* The watcher: per kind, LIST (items + resourceVersion) then WATCH from that version, keeping a store
 * keyed by namespace/name; a 410 Gone, an ERROR event or the end of the stream re-lists; errors back
 * off (100 ms doubling to backoff_max_ms). A 404 (CRD not installed) or 403 is logged once, counts
 * as listed (empty for 404) and is retried slowly. Changes are debounced, then the store is rendered
 * as manifest text for the caller. ig_k8s_report writes InferenceModel, InferencePool, Gateway and
 * HTTPRoute status back (with write_status; only while holding the Lease with leader_elect). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <time.h>
#include <unistd.h>

#include "k8s_internal.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define LIST_TIMEOUT_MS 30000
#define WATCH_IDLE_MS 330000 /* the server ends watches after timeoutSeconds; bookmarks come often */
#define WATCH_SECONDS 300
#define MISSING_RETRY_MS 30000
#define BACKOFF_MIN_MS 100
#define MAX_BODY (64u << 20)
#define MAX_PATCHES_INFLIGHT 64

typedef struct {
  const char *kind, *api_version, *prefix, *plural;
  int drop_status; /* the loader does not read it; rendering without it avoids rebuilds on status */
  int routing;     /* Gateway and routes: not watched with pools_only (the epp) */
  const char *query; /* extra LIST / WATCH query parameters, or NULL */
} kind_def_t;

static const kind_def_t kinds[] = {
    {"Gateway", "gateway.networking.k8s.io/v1", "/apis/gateway.networking.k8s.io/v1", "gateways", 1, 1, NULL},
    {"HTTPRoute", "gateway.networking.k8s.io/v1", "/apis/gateway.networking.k8s.io/v1", "httproutes", 1, 1, NULL},
    {"TCPRoute", "gateway.networking.k8s.io/v1alpha2", "/apis/gateway.networking.k8s.io/v1alpha2", "tcproutes",
     1, 1, NULL},
    {"InferencePool", "inference.networking.k8s.io/v1", "/apis/inference.networking.k8s.io/v1",
     "inferencepools", 1, 0, NULL},
    {"InferencePool", "inference.networking.x-k8s.io/v1alpha2", "/apis/inference.networking.x-k8s.io/v1alpha2",
     "inferencepools", 1, 0, NULL},
    {"InferenceModel", "inference.networking.x-k8s.io/v1alpha2",
     "/apis/inference.networking.x-k8s.io/v1alpha2", "inferencemodels", 1, 0, NULL},
    {"Pod", "v1", "/api/v1", "pods", 0, 0, NULL},
    {"Service", "v1", "/api/v1", "services", 0, 0, NULL},
    {"Endpoints", "v1", "/api/v1", "endpoints", 0, 0, NULL},
    {"EndpointSlice", "discovery.k8s.io/v1", "/apis/discovery.k8s.io/v1", "endpointslices", 0, 0, NULL},
    {"InferenceObjective", "inference.networking.x-k8s.io/v1alpha2",
     "/apis/inference.networking.x-k8s.io/v1alpha2", "inferenceobjectives", 1, 0, NULL},
    /* only TLS Secrets, and only those a Gateway listener names are rendered (render) */
    {"Secret", "v1", "/api/v1", "secrets", 0, 1, "fieldSelector=type%3Dkubernetes.io%2Ftls"},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])
#define GATEWAY_KIND 0
#define ROUTE_KIND 1
#define TCPROUTE_KIND 2
#define POOL_KIND 3   /* inference.networking.k8s.io */
#define POOL_X_KIND 4 /* inference.networking.x-k8s.io */
#define MODEL_KIND 5
#define SERVICE_KIND 7
#define ENDPOINTS_KIND 8
#define SLICE_KIND 9
#define OBJECTIVE_KIND 10
#define SECRET_KIND 11

typedef enum { W_IDLE, W_LISTING, W_WATCHING } wstate_t;

typedef struct {
  ig_k8s_t *k;
  const kind_def_t *def;
  json_t *items; /* "ns/name" -> object */
  char *rv;
  wstate_t state;
  kconn_t *conn;
  ig_buf_t body;  /* LIST body, or watch bytes not yet split into lines */
  int status;     /* of the current response */
  int synced;     /* listed (or found missing) at least once */
  int missing_logged;
  int relist;     /* the watch asked for a re-list (410 / ERROR) */
  int got_events;
  uint64_t watch_start_ms;
  unsigned backoff_ms;
  uv_timer_t retry;
} kwatch_t;

struct ig_k8s {
  uv_loop_t *loop;
  kconn_target_t target;
  char host[256];
  char *ns;
  char *token_file;
  char *token; /* a static token (kubeconfig user.token) */
  char tls_name[256];
  int pools_only;
  klease_t *lease;
  ig_manifest_notes_t notes; /* of the last build: reported again when this replica becomes leader */
  int have_notes;
  unsigned debounce_ms, backoff_max_ms;
  ig_k8s_change_cb on_change;
  void *data;
  kwatch_t w[N_KINDS];
  uv_timer_t debounce;
  int nhandles;
  int stopping;
  char *last_text;
  json_t *sent; /* "KINDINDEX|ns/name" -> the status signature last sent */
  int write_status;
  char *controller_name;
  size_t patches_inflight;
  kconn_t *patches[MAX_PATCHES_INFLIGHT];
};

static void list_start(kwatch_t *w);
static void schedule(kwatch_t *w, unsigned ms);
static const kconn_cbs_t watch_cbs;

const char *ig_k8s_namespace(const ig_k8s_t *k) {
  return k->ns;
}

/* Reads a small file into a new string (trailing whitespace trimmed); NULL when unreadable. */
static char *read_small(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char buf[16384];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
    n--;
  buf[n] = '\0';
  return ig_strdup(buf);
}

/* Extra header lines: the bearer token when there is one (re-read each time: tokens rotate). */
static void auth_headers(ig_k8s_t *k, ig_buf_t *h) {
  if (!k->token_file) {
    if (k->token) ig_buf_printf(h, "Authorization: Bearer %s\r\n", k->token);
    return;
  }
  char *tok = read_small(k->token_file);
  if (!tok) return;
  if (*tok && !strpbrk(tok, "\r\n")) ig_buf_printf(h, "Authorization: Bearer %s\r\n", tok);
  free(tok);
}

static void key_of(json_t *obj, char *key, size_t cap) {
  json_t *meta = json_object_get(obj, "metadata");
  const char *ns = json_string_value(json_object_get(meta, "namespace"));
  const char *name = json_string_value(json_object_get(meta, "name"));
  snprintf(key, cap, "%s/%s", ns ? ns : "", name ? name : "");
}

/* Trims an object to what the loader reads, and gives it its apiVersion and kind (LIST items come
 * without them). Takes a reference to obj; returns a new reference. */
static json_t *trim(const kind_def_t *d, json_t *obj) {
  json_t *o = json_deep_copy(obj);
  json_object_set_new(o, "apiVersion", json_string(d->api_version));
  json_object_set_new(o, "kind", json_string(d->kind));
  json_t *meta = json_object_get(o, "metadata");
  if (json_is_object(meta)) {
    static const char *const drop[] = {"managedFields", "uid",        "resourceVersion", "generation",
                                       "selfLink",      "finalizers", "ownerReferences", "generateName"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
      json_object_del(meta, drop[i]);
    json_object_del(json_object_get(meta, "annotations"), "kubectl.kubernetes.io/last-applied-configuration");
  }
  if (!strcmp(d->kind, "Pod")) json_object_del(o, "spec");
  if (!strcmp(d->kind, "Secret")) {
    /* keep the certificate and key only: nothing else of a Secret is read, or copied around */
    json_t *keep = json_pack("{s:O, s:O}", "apiVersion", json_object_get(o, "apiVersion"), "kind",
                             json_object_get(o, "kind"));
    json_t *m = json_object(), *data = json_object(), *in = json_object_get(o, "data");
    static const char *const mk[] = {"name", "namespace", "creationTimestamp"};
    for (size_t i = 0; i < sizeof mk / sizeof mk[0]; i++)
      if (json_object_get(meta, mk[i])) json_object_set(m, mk[i], json_object_get(meta, mk[i]));
    static const char *const dk[] = {"tls.crt", "tls.key"};
    for (size_t i = 0; i < 2; i++)
      if (json_object_get(in, dk[i])) json_object_set(data, dk[i], json_object_get(in, dk[i]));
    json_object_set_new(keep, "metadata", m);
    json_object_set_new(keep, "data", data);
    if (json_object_get(o, "type")) json_object_set(keep, "type", json_object_get(o, "type"));
    json_decref(o);
    return keep;
  }
  return o;
}

/* ---------------------------------------------------------------- render */

static int cmp_cstr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether a Gateway listener of the store names Secret key ("ns/name") in tls.certificateRefs. */
static int secret_referenced(ig_k8s_t *k, const char *key) {
  const char *gk;
  json_t *gw;
  json_object_foreach(k->w[GATEWAY_KIND].items, gk, gw) {
    const char *gns = json_string_value(json_object_get(json_object_get(gw, "metadata"), "namespace"));
    size_t i, j;
    json_t *l, *ref;
    json_array_foreach(json_object_get(json_object_get(gw, "spec"), "listeners"), i, l) {
      json_array_foreach(json_object_get(json_object_get(l, "tls"), "certificateRefs"), j, ref) {
        const char *ns = json_string_value(json_object_get(ref, "namespace"));
        const char *name = json_string_value(json_object_get(ref, "name"));
        char want[600];
        if (!name) continue;
        snprintf(want, sizeof want, "%s/%s", ns ? ns : gns ? gns : "", name);
        if (!strcmp(want, key)) return 1;
      }
    }
  }
  return 0;
}

/* Renders every object, kind by kind in table order, by namespace/name, one JSON document each
 * (Secrets only when a Gateway listener names them). */
static void render(ig_k8s_t *k, ig_buf_t *out) {
  for (size_t i = 0; i < N_KINDS; i++) {
    kwatch_t *w = &k->w[i];
    size_t n = json_object_size(w->items), j = 0;
    if (!n) continue;
    const char **keys = ig_malloc(n * sizeof *keys);
    const char *key;
    json_t *v;
    json_object_foreach(w->items, key, v) {
      if (i != SECRET_KIND || secret_referenced(k, key)) keys[j++] = key;
    }
    n = j;
    qsort(keys, n, sizeof *keys, cmp_cstr);
    for (j = 0; j < n; j++) {
      json_t *o = json_object_get(w->items, keys[j]);
      json_t *copy = NULL;
      if (w->def->drop_status && json_object_get(o, "status")) {
        copy = json_copy(o);
        json_object_del(copy, "status");
        o = copy;
      }
      char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
      if (s) {
        ig_buf_puts(out, "---\n");
        ig_buf_puts(out, s);
        ig_buf_puts(out, "\n");
        free(s);
      }
      if (copy) json_decref(copy);
    }
    free(keys);
  }
}

static void on_debounce(uv_timer_t *t) {
  ig_k8s_t *k = t->data;
  if (k->stopping) return;
  for (size_t i = 0; i < N_KINDS; i++)
    if (!k->w[i].synced) return; /* the first build waits for every kind */
  ig_buf_t out;
  ig_buf_init(&out);
  render(k, &out);
  const char *text = out.data ? out.data : "";
  if (!k->last_text || strcmp(k->last_text, text) != 0) {
    free(k->last_text);
    k->last_text = ig_strdup(text);
    k->on_change(k->data, text, out.len);
  }
  ig_buf_free(&out);
}

static void changed(ig_k8s_t *k) {
  if (k->stopping) return;
  uv_timer_start(&k->debounce, on_debounce, k->debounce_ms, 0);
}

/* ---------------------------------------------------------------- list and watch */

static unsigned next_backoff(kwatch_t *w) {
  unsigned ms = w->backoff_ms;
  w->backoff_ms = w->backoff_ms * 2 > w->k->backoff_max_ms ? w->k->backoff_max_ms : w->backoff_ms * 2;
  return ms;
}

static void on_retry(uv_timer_t *t) {
  kwatch_t *w = t->data;
  if (!w->k->stopping) list_start(w);
}

static void schedule(kwatch_t *w, unsigned ms) {
  w->state = W_IDLE;
  w->conn = NULL;
  if (!w->k->stopping) uv_timer_start(&w->retry, on_retry, ms, 0);
}

/* The collection path of w's kind with its query ("?..." when it has one). */
static void path_of(kwatch_t *w, ig_buf_t *p) {
  ig_buf_printf(p, "%s/namespaces/%s/%s", w->def->prefix, w->k->ns, w->def->plural);
  if (w->def->query) ig_buf_printf(p, "?%s", w->def->query);
}

static void resp_head(kconn_t *c, int status) {
  kwatch_t *w = c->data;
  w->status = status;
}

static void resp_data(kconn_t *c, const char *p, size_t n) {
  kwatch_t *w = c->data;
  if (w->status != 200 && w->body.len > 65536) return; /* error bodies: keep the start only */
  if (w->body.len + n > MAX_BODY) {
    kconn_cancel(c);
    w->conn = NULL;
    ig_warn("k8s: %s list is larger than %u MiB; retrying", w->def->plural, MAX_BODY >> 20);
    schedule(w, next_backoff(w));
    return;
  }
  ig_buf_append(&w->body, p, n);
}

static void list_done(kconn_t *c, int err) {
  kwatch_t *w = c->data;
  ig_k8s_t *k = w->k;
  w->conn = NULL;
  const char *what = w->def->plural;
  if (err != 0) {
    unsigned ms = next_backoff(w);
    ig_warn("k8s: list %s (%s): %s; retrying in %u ms", what, w->def->api_version, ig_strerror(err), ms);
    schedule(w, ms);
    return;
  }
  if (w->status == 404 || w->status == 403) {
    if (!w->missing_logged)
      ig_warn("k8s: list %s (%s): HTTP %d (%s); treated as %s, retrying every %u s", what,
              w->def->api_version, w->status,
              w->status == 404 ? "resource not served: CRD not installed?" : "forbidden: check RBAC",
              w->status == 404 ? "empty" : "unchanged", MISSING_RETRY_MS / 1000);
    w->missing_logged = 1;
    if (w->status == 404 && json_object_size(w->items)) {
      json_object_clear(w->items);
      changed(k);
    }
    if (!w->synced) {
      w->synced = 1;
      changed(k);
    }
    schedule(w, MISSING_RETRY_MS);
    return;
  }
  json_error_t jerr;
  json_t *root = w->status == 200 ? json_loadb(w->body.data ? w->body.data : "", w->body.len, 0, &jerr) : NULL;
  json_t *items = json_object_get(root, "items");
  const char *rv = json_string_value(json_object_get(json_object_get(root, "metadata"), "resourceVersion"));
  if (!json_is_object(root) || (!json_is_array(items) && !json_is_null(items)) || !rv) {
    unsigned ms = next_backoff(w);
    if (w->status == 200)
      ig_warn("k8s: list %s: malformed response; retrying in %u ms", what, ms);
    else
      ig_warn("k8s: list %s (%s): HTTP %d; retrying in %u ms", what, w->def->api_version, w->status, ms);
    if (root) json_decref(root);
    schedule(w, ms);
    return;
  }
  if (w->missing_logged) ig_info("k8s: %s (%s) is served now", what, w->def->api_version);
  w->missing_logged = 0;
  json_object_clear(w->items);
  size_t i;
  json_t *it;
  char key[512];
  json_array_foreach(items, i, it) {
    if (!json_is_object(it)) continue;
    key_of(it, key, sizeof key);
    json_object_set_new(w->items, key, trim(w->def, it));
  }
  free(w->rv);
  w->rv = ig_strdup(rv);
  json_decref(root);
  w->synced = 1;
  ig_debug("k8s: listed %zu %s at resourceVersion %s", json_object_size(w->items), what, w->rv);
  changed(k);
  /* watch from that version */
  ig_buf_t p, h;
  ig_buf_init(&p);
  ig_buf_init(&h);
  path_of(w, &p);
  ig_buf_printf(&p, "%cwatch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d",
                w->def->query ? '&' : '?', w->rv, WATCH_SECONDS);
  auth_headers(k, &h);
  ig_buf_reset(&w->body);
  w->status = 0;
  w->relist = 0;
  w->got_events = 0;
  w->watch_start_ms = ig_now_ms();
  w->state = W_WATCHING;
  w->conn = kconn_start(&k->target, "GET", p.data, h.data, NULL, 0, WATCH_IDLE_MS, 1, &watch_cbs, w);
  ig_buf_free(&p);
  ig_buf_free(&h);
}

static const kconn_cbs_t list_cbs = {resp_head, resp_data, list_done};

static void list_start(kwatch_t *w) {
  ig_k8s_t *k = w->k;
  ig_buf_t p, h;
  ig_buf_init(&p);
  ig_buf_init(&h);
  path_of(w, &p);
  auth_headers(k, &h);
  ig_buf_reset(&w->body);
  w->status = 0;
  w->state = W_LISTING;
  w->conn = kconn_start(&k->target, "GET", p.data, h.data, NULL, 0, LIST_TIMEOUT_MS, 0, &list_cbs, w);
  ig_buf_free(&p);
  ig_buf_free(&h);
}

/* Applies one watch event to the store. */
static void apply_event(kwatch_t *w, ig_k8s_event_t *ev) {
  char key[512];
  switch (ev->type) {
  case IG_K8S_ADDED:
  case IG_K8S_MODIFIED:
    key_of(ev->object, key, sizeof key);
    json_object_set_new(w->items, key, trim(w->def, ev->object));
    changed(w->k);
    break;
  case IG_K8S_DELETED:
    key_of(ev->object, key, sizeof key);
    if (json_object_del(w->items, key) == 0) changed(w->k);
    break;
  case IG_K8S_BOOKMARK:
    break;
  case IG_K8S_ERROR:
    ig_info("k8s: watch %s: ERROR event (code %d); re-listing", w->def->plural, ev->code);
    w->relist = 1;
    return;
  }
  if (ev->rv) {
    free(w->rv);
    w->rv = ig_strdup(ev->rv);
  }
}

static void watch_data(kconn_t *c, const char *p, size_t n) {
  kwatch_t *w = c->data;
  if (w->relist) return;
  ig_buf_append(&w->body, p, n);
  if (w->status != 200) {
    if (w->body.len > 65536) ig_buf_reset(&w->body);
    return;
  }
  size_t off = 0;
  for (;;) {
    size_t ll = 0;
    long used = ig_k8s_line_next(w->body.data + off, w->body.len - off, &ll);
    if (used == IG_EAGAIN) break;
    if (used < 0) {
      ig_warn("k8s: watch %s: event larger than %u MiB; re-listing", w->def->plural, IG_K8S_MAX_LINE >> 20);
      w->relist = 1;
      break;
    }
    const char *line = w->body.data + off;
    off += (size_t)used;
    if (!ll) continue;
    ig_k8s_event_t ev;
    if (ig_k8s_event_parse(line, ll, &ev) != 0) {
      ig_warn("k8s: watch %s: malformed event; re-listing", w->def->plural);
      w->relist = 1;
      break;
    }
    w->got_events = 1;
    apply_event(w, &ev);
    ig_k8s_event_clear(&ev);
    if (w->relist) break;
  }
  if (w->relist) {
    ig_buf_reset(&w->body);
    kconn_cancel(c);
    w->conn = NULL;
    w->backoff_ms = BACKOFF_MIN_MS;
    schedule(w, 0);
    return;
  }
  ig_buf_consume(&w->body, off);
}

static void watch_done(kconn_t *c, int err) {
  kwatch_t *w = c->data;
  w->conn = NULL;
  int long_enough = ig_now_ms() - w->watch_start_ms >= 5000;
  if (w->status == 410) {
    ig_info("k8s: watch %s: 410 Gone; re-listing", w->def->plural);
    w->backoff_ms = BACKOFF_MIN_MS;
    schedule(w, 0);
    return;
  }
  if (err == 0 && w->status == 200 && (w->got_events || long_enough)) {
    ig_debug("k8s: watch %s ended; re-listing", w->def->plural);
    w->backoff_ms = BACKOFF_MIN_MS;
    schedule(w, 0);
    return;
  }
  unsigned ms = next_backoff(w);
  if (w->status && w->status != 200)
    ig_warn("k8s: watch %s: HTTP %d; re-listing in %u ms", w->def->plural, w->status, ms);
  else
    ig_info("k8s: watch %s ended (%s); re-listing in %u ms", w->def->plural, err ? ig_strerror(err) : "closed",
            ms);
  schedule(w, ms);
}

static const kconn_cbs_t watch_cbs = {resp_head, watch_data, watch_done};

/* ---------------------------------------------------------------- status write-back */

static void format_now(char *out, size_t cap) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

typedef struct {
  ig_k8s_t *k;
  char key[640]; /* the key in k->sent: "KINDINDEX|ns/name" */
  const char *kind;
  int slot;
  int status;
} patch_t;

static void patch_head(kconn_t *c, int status) {
  patch_t *p = c->data;
  p->status = status;
}

static void patch_done(kconn_t *c, int err) {
  patch_t *p = c->data;
  ig_k8s_t *k = p->k;
  k->patches[p->slot] = NULL;
  k->patches_inflight--;
  if (err != 0 || p->status < 200 || p->status >= 300) {
    ig_warn("k8s: status patch of %s %s failed (%s); will retry on the next change", p->kind,
            strchr(p->key, '|') + 1, err ? ig_strerror(err) : ig_http_reason(p->status));
    json_object_del(k->sent, p->key); /* forget it, so that the next report sends it again */
  }
  free(p);
}

static const kconn_cbs_t patch_cbs = {patch_head, NULL, patch_done};

/* The string member key of o, or NULL. */
static const char *jstr_of(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

/* Appends "Type=Status/Reason" of the condition of that type in conds to out ("Type=" when none). */
static void cond_sig(json_t *conds, const char *type, ig_buf_t *out) {
  const char *st = NULL, *re = NULL;
  size_t i;
  json_t *c;
  json_array_foreach(conds, i, c) {
    const char *t = json_string_value(json_object_get(c, "type"));
    if (!t || strcmp(t, type)) continue;
    st = json_string_value(json_object_get(c, "status"));
    re = json_string_value(json_object_get(c, "reason"));
  }
  ig_buf_printf(out, "%s=%s/%s", type, st ? st : "", st && re ? re : "");
}

/* The InferenceModel status an object carries now, as "Accepted=True/Reason" (into out). */
static void model_sig(ig_k8s_t *k, json_t *status, ig_buf_t *out) {
  (void)k;
  cond_sig(json_object_get(status, "conditions"), "Accepted", out);
}

/* The InferencePool status an object (or a patch) carries, as "ns/gw:Accepted=..;ResolvedRefs=..," per
 * parent in order. */
static void pool_sig(ig_k8s_t *k, json_t *status, ig_buf_t *out) {
  (void)k;
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(status, "parents"), i, p) {
    json_t *ref = json_object_get(p, "parentRef");
    const char *ns = json_string_value(json_object_get(ref, "namespace"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    ig_buf_printf(out, "%s/%s:", ns ? ns : "", name ? name : "");
    json_t *conds = json_object_get(p, "conditions");
    cond_sig(conds, "Accepted", out);
    ig_buf_puts(out, ";");
    cond_sig(conds, "ResolvedRefs", out);
    ig_buf_puts(out, ",");
  }
}

/* A condition object with the object's generation as observedGeneration. */
static json_t *cond_new(const char *type, int ok, const char *reason, const char *msg, const char *now,
                        json_t *meta) {
  json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status", ok ? "True" : "False", "reason",
                        reason, "message", msg, "lastTransitionTime", now);
  json_t *gen = json_object_get(meta, "generation");
  if (json_is_integer(gen)) json_object_set(c, "observedGeneration", gen);
  return c;
}

/* The note of that kind, object and reason, or NULL. */
static const ig_manifest_note_t *find_note(const ig_manifest_notes_t *notes, const char *kind, const char *ns,
                                           const char *name, const char *reason) {
  const ig_manifest_note_t *found = NULL;
  for (size_t i = 0; notes && i < notes->n; i++) {
    const ig_manifest_note_t *n = &notes->v[i];
    if (n->kind && n->name && n->reason && !strcmp(n->kind, kind) && !strcmp(n->name, name) &&
        (!ns || !n->ns || !strcmp(n->ns, ns)) && !strcmp(n->reason, reason))
      found = n;
  }
  return found;
}

/* A status signature: the parts of a status (an object's, or a patch's "status") that we compare. */
typedef void (*status_sig_fn)(ig_k8s_t *k, json_t *status, ig_buf_t *out);

static int send_patch(ig_k8s_t *k, size_t ki, const char *ns, const char *name, const char *skey,
                      const char *want, json_t *doc);

/* Sends the merge patch doc (stolen) to the status of object name in ns of kind index ki, unless the
 * status it stands for (sig of doc's "status") was last sent already or the object carries it now
 * (sig of cur, the object's status). Returns 0, or -1 when too many patches are in flight. */
static int send_status(ig_k8s_t *k, size_t ki, const char *ns, const char *name, const char *key,
                       status_sig_fn sig, json_t *cur, json_t *doc) {
  char skey[600];
  snprintf(skey, sizeof skey, "%zu|%s", ki, key);
  ig_buf_t want, have;
  ig_buf_init(&want);
  ig_buf_init(&have);
  sig(k, json_object_get(doc, "status"), &want);
  sig(k, cur, &have);
  const char *w = want.data ? want.data : "", *h = have.data ? have.data : "";
  const char *sent = json_string_value(json_object_get(k->sent, skey));
  int r = 0;
  if (!strcmp(sent ? sent : h, w))
    json_decref(doc);
  else
    r = send_patch(k, ki, ns, name, skey, w, doc);
  ig_buf_free(&want);
  ig_buf_free(&have);
  return r;
}

/* send_status's patch: doc (stolen) to the status subresource; remembers want under skey. */
static int send_patch(ig_k8s_t *k, size_t ki, const char *ns, const char *name, const char *skey,
                      const char *want, json_t *doc) {
  if (k->patches_inflight >= MAX_PATCHES_INFLIGHT) {
    json_decref(doc);
    ig_warn("k8s: too many status patches in flight; the rest waits for the next change");
    return -1;
  }
  int slot = 0;
  while (k->patches[slot])
    slot++;
  const kind_def_t *d = k->w[ki].def;
  char *body = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  if (!body) return 0;
  ig_buf_t p, h;
  ig_buf_init(&p);
  ig_buf_init(&h);
  ig_buf_printf(&p, "%s/namespaces/%s/%s/%s/status", d->prefix, ns ? ns : k->ns, d->plural, name);
  ig_buf_puts(&h, "Content-Type: application/merge-patch+json\r\n");
  auth_headers(k, &h);
  patch_t *pt = IG_NEW(patch_t);
  pt->k = k;
  pt->slot = slot;
  pt->kind = d->kind;
  snprintf(pt->key, sizeof pt->key, "%s", skey);
  json_object_set_new(k->sent, skey, json_string(want));
  k->patches_inflight++;
  ig_info("k8s: %s %s/%s status: %s", d->kind, ns ? ns : k->ns, name, want);
  k->patches[slot] =
      kconn_start(&k->target, "PATCH", p.data, h.data, body, strlen(body), LIST_TIMEOUT_MS, 0, &patch_cbs, pt);
  free(body);
  ig_buf_free(&p);
  ig_buf_free(&h);
  return 0;
}

/* Writes InferenceModel Accepted conditions. Returns -1 when patches must wait. */
static int report_models(ig_k8s_t *k, const ig_manifest_notes_t *notes, const char *now) {
  kwatch_t *w = &k->w[MODEL_KIND];
  const char *key;
  json_t *obj;
  json_object_foreach(w->items, key, obj) {
    json_t *meta = json_object_get(obj, "metadata");
    const char *ns = jstr_of(meta, "namespace"), *name = jstr_of(meta, "name");
    if (!name) continue;
    const ig_manifest_note_t *n = find_note(notes, "InferenceModel", ns, name, "ModelNameInUse");
    const char *msg = n ? n->message : NULL;
    json_t *cond = cond_new("Accepted", !msg, msg ? "ModelNameInUse" : "Accepted",
                            msg ? msg : "the model name is served by this gateway", now, meta);
    json_t *doc = json_pack("{s:{s:[o]}}", "status", "conditions", cond);
    int r = send_status(k, MODEL_KIND, ns, name, key, model_sig, json_object_get(obj, "status"), doc);
    if (r) return r;
  }
  return 0;
}

static int cmp_json_parent(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The "ns/name" keys of the Gateways that HTTPRoutes in ns route to pool name of API group group from,
 * as a sorted, unique array of strings (new reference). */
static json_t *pool_parents(ig_k8s_t *k, const char *group, const char *ns, const char *name) {
  json_t *set = json_object();
  const char *key;
  json_t *route;
  json_object_foreach(k->w[1].items, key, route) {
    const char *rns = json_string_value(json_object_get(json_object_get(route, "metadata"), "namespace"));
    if (!rns) rns = k->ns;
    if (strcmp(rns, ns)) continue;
    json_t *spec = json_object_get(route, "spec");
    int hit = 0;
    size_t i, j;
    json_t *rule, *ref;
    json_array_foreach(json_object_get(spec, "rules"), i, rule) {
      json_array_foreach(json_object_get(rule, "backendRefs"), j, ref) {
        const char *g = json_string_value(json_object_get(ref, "group"));
        const char *kd = json_string_value(json_object_get(ref, "kind"));
        const char *n = json_string_value(json_object_get(ref, "name"));
        const char *bns = json_string_value(json_object_get(ref, "namespace"));
        if (g && kd && n && !strcmp(g, group) && !strcmp(kd, "InferencePool") && !strcmp(n, name) &&
            (!bns || !strcmp(bns, ns)))
          hit = 1;
      }
    }
    if (!hit) continue;
    json_array_foreach(json_object_get(spec, "parentRefs"), i, ref) {
      const char *g = json_string_value(json_object_get(ref, "group"));
      const char *kd = json_string_value(json_object_get(ref, "kind"));
      const char *n = json_string_value(json_object_get(ref, "name"));
      const char *pns = json_string_value(json_object_get(ref, "namespace"));
      if (!n || (g && strcmp(g, "gateway.networking.k8s.io")) || (kd && strcmp(kd, "Gateway"))) continue;
      char pk[600];
      snprintf(pk, sizeof pk, "%s/%s", pns ? pns : rns, n);
      json_object_set_new(set, pk, json_true());
    }
  }
  size_t n = json_object_size(set), j = 0;
  const char **keys = ig_malloc((n ? n : 1) * sizeof *keys);
  json_t *v;
  json_object_foreach(set, key, v) keys[j++] = key;
  qsort(keys, n, sizeof *keys, cmp_json_parent);
  json_t *out = json_array();
  for (j = 0; j < n; j++)
    json_array_append_new(out, json_string(keys[j]));
  free(keys);
  json_decref(set);
  return out;
}

/* Writes InferencePool status.parents[]. Returns -1 when patches must wait. */
static int report_pools(ig_k8s_t *k, const ig_manifest_notes_t *notes, const char *now) {
  for (size_t ki = 0; ki < N_KINDS; ki++) {
    kwatch_t *w = &k->w[ki];
    if (strcmp(w->def->kind, "InferencePool")) continue;
    char group[128];
    snprintf(group, sizeof group, "%s", w->def->api_version);
    *strchr(group, '/') = '\0';
    const char *key;
    json_t *obj;
    json_object_foreach(w->items, key, obj) {
      json_t *meta = json_object_get(obj, "metadata");
      const char *ns = jstr_of(meta, "namespace"), *name = jstr_of(meta, "name");
      if (!name) continue;
      const ig_manifest_note_t *n = find_note(notes, "InferencePool", ns, name, "NoReadyEndpoints");
      json_t *gws = pool_parents(k, group, ns ? ns : k->ns, name);
      json_t *parents = json_array();
      size_t i;
      json_t *g;
      json_array_foreach(gws, i, g) {
        const char *pk = json_string_value(g);
        const char *slash = strchr(pk, '/');
        json_t *conds = json_array();
        json_array_append_new(conds, cond_new("Accepted", 1, "Accepted",
                                              "the pool is referenced by an HTTPRoute of this Gateway", now, meta));
        json_array_append_new(conds, cond_new("ResolvedRefs", !n, n ? "NoReadyEndpoints" : "ResolvedRefs",
                                              n ? n->message : "the pool's Pods resolve to endpoints", now, meta));
        json_t *ref = json_pack("{s:s, s:s, s:s#, s:s}", "group", "gateway.networking.k8s.io", "kind", "Gateway",
                                "namespace", pk, (int)(slash - pk), "name", slash + 1);
        json_array_append_new(parents, json_pack("{s:o, s:s, s:o}", "parentRef", ref, "controllerName",
                                                 k->controller_name, "conditions", conds));
      }
      json_decref(gws);
      json_t *doc = json_pack("{s:{s:o}}", "status", "parents", parents);
      int r = send_status(k, ki, ns, name, key, pool_sig, json_object_get(obj, "status"), doc);
      if (r) return r;
    }
  }
  return 0;
}

/* ---- Gateway and HTTPRoute status */

/* Whether parentRef ref (of a route in namespace rns) names Gateway gns/gname. */
static int ref_is_gateway(json_t *ref, const char *rns, const char *gns, const char *gname) {
  const char *g = jstr_of(ref, "group"), *kd = jstr_of(ref, "kind"), *n = jstr_of(ref, "name");
  const char *ns = jstr_of(ref, "namespace");
  if (!n || (g && strcmp(g, "gateway.networking.k8s.io")) || (kd && strcmp(kd, "Gateway"))) return 0;
  return !strcmp(n, gname) && !strcmp(ns ? ns : rns, gns);
}

/* A Gateway this replica serves: in the store and not of another GatewayClass (per notes). */
static json_t *served_gateway(ig_k8s_t *k, const ig_manifest_notes_t *notes, const char *ns, const char *name) {
  char key[600];
  snprintf(key, sizeof key, "%s/%s", ns, name);
  json_t *gw = json_object_get(k->w[GATEWAY_KIND].items, key);
  if (!gw || find_note(notes, "Gateway", ns, name, "OtherGatewayClass")) return NULL;
  return gw;
}

/* Routes of kind index ki attached to listener lname of Gateway gns/gname (sectionName absent or equal). */
static int attached_routes(ig_k8s_t *k, size_t ki, const char *gns, const char *gname, const char *lname) {
  int n = 0;
  const char *key;
  json_t *route;
  json_object_foreach(k->w[ki].items, key, route) {
    const char *rns = jstr_of(json_object_get(route, "metadata"), "namespace");
    size_t i;
    json_t *ref;
    json_array_foreach(json_object_get(json_object_get(route, "spec"), "parentRefs"), i, ref) {
      const char *sec = jstr_of(ref, "sectionName");
      if (ref_is_gateway(ref, rns ? rns : k->ns, gns, gname) && (!sec || !strcmp(sec, lname))) {
        n++;
        break;
      }
    }
  }
  return n;
}

/* "Type=Status/Reason;" for every condition type of conds in order. */
static void conds_sig(json_t *conds, const char *const *types, ig_buf_t *out) {
  for (size_t i = 0; types[i]; i++) {
    cond_sig(conds, types[i], out);
    ig_buf_puts(out, ";");
  }
}

static const char *const gw_types[] = {"Accepted", "Programmed", NULL};
static const char *const listener_types[] = {"Accepted", "Programmed", "ResolvedRefs", NULL};
static const char *const route_types[] = {"Accepted", "ResolvedRefs", NULL};

/* A Gateway's status signature: its conditions, then each listener's name, attached routes and
 * conditions. */
static void gateway_sig(ig_k8s_t *k, json_t *status, ig_buf_t *out) {
  (void)k;
  conds_sig(json_object_get(status, "conditions"), gw_types, out);
  size_t i;
  json_t *l;
  json_array_foreach(json_object_get(status, "listeners"), i, l) {
    json_t *ar = json_object_get(l, "attachedRoutes");
    ig_buf_printf(out, "|%s:%lld:", jstr_of(l, "name") ? jstr_of(l, "name") : "",
                  json_is_integer(ar) ? (long long)json_integer_value(ar) : -1);
    conds_sig(json_object_get(l, "conditions"), listener_types, out);
  }
}

/* The loader's note that the certificate of listener ln of Gateway ns/name cannot be used
 * (InvalidCertificateRef, RefNotPermitted), or NULL. */
static const ig_manifest_note_t *listener_ref_note(const ig_manifest_notes_t *notes, const char *ns,
                                                   const char *name, const char *ln) {
  char want[300];
  snprintf(want, sizeof want, "listener %s:", ln);
  for (size_t i = 0; notes && i < notes->n; i++) {
    const ig_manifest_note_t *n = &notes->v[i];
    if (n->kind && n->name && n->reason && n->message && !strcmp(n->kind, "Gateway") && !strcmp(n->name, name) &&
        (!n->ns || !strcmp(n->ns, ns)) &&
        (!strcmp(n->reason, "InvalidCertificateRef") || !strcmp(n->reason, "RefNotPermitted")) &&
        strstr(n->message, want))
      return n;
  }
  return NULL;
}

/* Writes Gateway status: Accepted and Programmed, and per listener supportedKinds, attachedRoutes and
 * Accepted / Programmed / ResolvedRefs. Returns -1 when patches must wait. */
static int report_gateways(ig_k8s_t *k, const ig_manifest_notes_t *notes, const char *now) {
  const char *key;
  json_t *gw;
  json_object_foreach(k->w[GATEWAY_KIND].items, key, gw) {
    json_t *meta = json_object_get(gw, "metadata");
    const char *ns = jstr_of(meta, "namespace"), *name = jstr_of(meta, "name");
    if (!name || !served_gateway(k, notes, ns ? ns : k->ns, name)) continue;
    if (!ns) ns = k->ns;
    json_t *conds = json_array(), *listeners = json_array();
    json_array_append_new(conds, cond_new("Accepted", 1, "Accepted", "the Gateway is served by infergate", now, meta));
    json_array_append_new(conds, cond_new("Programmed", 1, "Programmed", "the listeners are open", now, meta));
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(json_object_get(gw, "spec"), "listeners"), i, l) {
      const char *ln = jstr_of(l, "name"), *proto = jstr_of(l, "protocol");
      if (!ln) continue;
      int http = proto && (!strcmp(proto, "HTTP") || !strcmp(proto, "HTTPS"));
      int tcp = proto && !strcmp(proto, "TCP");
      json_t *kinds_ = json_array();
      if (http || tcp)
        json_array_append_new(kinds_, json_pack("{s:s, s:s}", "group", "gateway.networking.k8s.io", "kind",
                                               http ? "HTTPRoute" : "TCPRoute"));
      int n = http ? attached_routes(k, ROUTE_KIND, ns, name, ln) : tcp ? attached_routes(k, TCPROUTE_KIND, ns, name, ln) : 0;
      json_t *lc = json_array();
      const ig_manifest_note_t *bad = listener_ref_note(notes, ns, name, ln);
      int ok = (http || tcp) && !bad;
      json_array_append_new(lc, cond_new("Accepted", http || tcp, http || tcp ? "Accepted" : "UnsupportedProtocol",
                                         http || tcp ? "the listener is served" : "infergate serves HTTP, HTTPS and TCP",
                                         now, meta));
      json_array_append_new(lc, cond_new("Programmed", ok, ok ? "Programmed" : "Invalid",
                                         ok ? "the listener is open" : "the listener is not served", now, meta));
      json_array_append_new(lc, cond_new("ResolvedRefs", !bad, bad ? bad->reason : "ResolvedRefs",
                                         bad ? bad->message : "references resolved", now, meta));
      json_array_append_new(listeners, json_pack("{s:s, s:o, s:i, s:o}", "name", ln, "supportedKinds", kinds_,
                                                 "attachedRoutes", n, "conditions", lc));
    }
    json_t *doc = json_pack("{s:{s:o, s:o}}", "status", "conditions", conds, "listeners", listeners);
    int r = send_status(k, GATEWAY_KIND, ns, name, key, gateway_sig, json_object_get(gw, "status"), doc);
    if (r) return r;
  }
  return 0;
}

/* Whether the store has Service ns/name, its Endpoints, or an EndpointSlice of it. */
static int service_known(ig_k8s_t *k, const char *ns, const char *name) {
  char key[600];
  snprintf(key, sizeof key, "%s/%s", ns, name);
  if (json_object_get(k->w[SERVICE_KIND].items, key) || json_object_get(k->w[ENDPOINTS_KIND].items, key)) return 1;
  const char *sk;
  json_t *sl;
  json_object_foreach(k->w[SLICE_KIND].items, sk, sl) {
    json_t *meta = json_object_get(sl, "metadata");
    const char *sns = jstr_of(meta, "namespace");
    const char *svc = jstr_of(json_object_get(meta, "labels"), "kubernetes.io/service-name");
    if (svc && !strcmp(svc, name) && !strcmp(sns ? sns : k->ns, ns)) return 1;
  }
  return 0;
}

/* The ResolvedRefs verdict of an HTTPRoute from the store: NULL when every backendRef resolves, else
 * the reason (InvalidKind beats BackendNotFound) with a message in msg. */
static const char *route_refs(ig_k8s_t *k, json_t *route, const char *rns, char *msg, size_t cap) {
  const char *reason = NULL;
  size_t i, j;
  json_t *rule, *ref;
  json_array_foreach(json_object_get(json_object_get(route, "spec"), "rules"), i, rule) {
    json_array_foreach(json_object_get(rule, "backendRefs"), j, ref) {
      const char *g = jstr_of(ref, "group"), *kd = jstr_of(ref, "kind"), *n = jstr_of(ref, "name");
      const char *bns = jstr_of(ref, "namespace");
      if (!n) continue;
      if (!bns) bns = rns;
      if ((!g || !*g || !strcmp(g, "core")) && (!kd || !strcmp(kd, "Service"))) {
        if (!service_known(k, bns, n) && !reason) {
          reason = "BackendNotFound";
          snprintf(msg, cap, "Service %s/%s not found", bns, n);
        }
      } else if (g && kd && !strcmp(kd, "InferencePool") &&
                 (!strcmp(g, "inference.networking.k8s.io") || !strcmp(g, "inference.networking.x-k8s.io"))) {
        char key[600];
        snprintf(key, sizeof key, "%s/%s", bns, n);
        size_t ki = !strcmp(g, "inference.networking.k8s.io") ? POOL_KIND : POOL_X_KIND;
        if (!json_object_get(k->w[ki].items, key) && !reason) {
          reason = "BackendNotFound";
          snprintf(msg, cap, "InferencePool %s/%s (%s) not found", bns, n, g);
        }
      } else if (!reason || strcmp(reason, "InvalidKind")) {
        reason = "InvalidKind";
        snprintf(msg, cap, "backendRef %s/%s is not a Service or an InferencePool", g ? g : "core", kd ? kd : "");
      }
    }
  }
  return reason;
}

/* An HTTPRoute's status signature: per parent of ours "ns/name/section:Accepted=..;ResolvedRefs=..;". */
static void route_sig(ig_k8s_t *k, json_t *status, ig_buf_t *out) {
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(status, "parents"), i, p) {
    const char *cn = jstr_of(p, "controllerName");
    if (!cn || strcmp(cn, k->controller_name)) continue;
    json_t *ref = json_object_get(p, "parentRef");
    const char *ns = jstr_of(ref, "namespace"), *n = jstr_of(ref, "name"), *sec = jstr_of(ref, "sectionName");
    ig_buf_printf(out, "%s/%s/%s:", ns ? ns : "", n ? n : "", sec ? sec : "");
    conds_sig(json_object_get(p, "conditions"), route_types, out);
    ig_buf_puts(out, ",");
  }
}

/* Writes HTTPRoute status.parents[]: per parentRef to a Gateway served here, Accepted (False when the
 * loader said the route attaches nowhere or is not allowed) and ResolvedRefs (False BackendNotFound /
 * InvalidKind). Entries of other controllers are kept. Returns -1 when patches must wait. */
static int report_routes(ig_k8s_t *k, const ig_manifest_notes_t *notes, const char *now) {
  const char *key;
  json_t *route;
  json_object_foreach(k->w[ROUTE_KIND].items, key, route) {
    json_t *meta = json_object_get(route, "metadata");
    const char *ns = jstr_of(meta, "namespace"), *name = jstr_of(meta, "name");
    if (!name) continue;
    if (!ns) ns = k->ns;
    char msg[400];
    const char *bad = route_refs(k, route, ns, msg, sizeof msg);
    static const char *const refused[] = {"NotAllowedByListeners", "NoMatchingListenerHostname", "NotAttached",
                                          NULL};
    const ig_manifest_note_t *rn = NULL;
    for (size_t i = 0; refused[i] && !rn; i++)
      rn = find_note(notes, "HTTPRoute", ns, name, refused[i]);
    json_t *parents = json_array();
    size_t i;
    json_t *ref;
    json_array_foreach(json_object_get(json_object_get(route, "spec"), "parentRefs"), i, ref) {
      const char *gn = jstr_of(ref, "name"), *gns = jstr_of(ref, "namespace");
      const char *g = jstr_of(ref, "group"), *kd = jstr_of(ref, "kind");
      if (!gn || (g && strcmp(g, "gateway.networking.k8s.io")) || (kd && strcmp(kd, "Gateway"))) continue;
      if (!served_gateway(k, notes, gns ? gns : ns, gn)) continue;
      json_t *conds = json_array();
      const char *areason = !rn ? "Accepted" : !strcmp(rn->reason, "NotAttached") ? "NoMatchingParent" : rn->reason;
      json_array_append_new(conds, cond_new("Accepted", !rn, areason,
                                            rn ? rn->message : "the route is attached to the Gateway", now, meta));
      json_array_append_new(conds, cond_new("ResolvedRefs", !bad, bad ? bad : "ResolvedRefs",
                                            bad ? msg : "every backendRef resolves", now, meta));
      json_array_append_new(parents, json_pack("{s:O, s:s, s:o}", "parentRef", ref, "controllerName",
                                               k->controller_name, "conditions", conds));
    }
    size_t ours = json_array_size(parents);
    json_t *p;
    json_array_foreach(json_object_get(json_object_get(route, "status"), "parents"), i, p) {
      const char *cn = jstr_of(p, "controllerName");
      if (cn && strcmp(cn, k->controller_name)) json_array_append(parents, p); /* another controller's */
    }
    if (!ours && !json_array_size(parents) && !json_object_get(route, "status")) {
      json_decref(parents);
      continue; /* not ours and nothing to clean up */
    }
    json_t *doc = json_pack("{s:{s:o}}", "status", "parents", parents);
    int r = send_status(k, ROUTE_KIND, ns, name, key, route_sig, json_object_get(route, "status"), doc);
    if (r) return r;
  }
  return 0;
}

/* A deep copy of notes into dst (freed first). */
static void notes_copy(ig_manifest_notes_t *dst, const ig_manifest_notes_t *src) {
  ig_config_notes_free(dst);
  memset(dst, 0, sizeof *dst);
  if (!src || !src->n) return;
  dst->v = ig_calloc(src->n, sizeof *dst->v);
  for (size_t i = 0; i < src->n; i++) {
    const ig_manifest_note_t *a = &src->v[i];
    ig_manifest_note_t *b = &dst->v[i];
    *b = *a;
    b->file = a->file ? ig_strdup(a->file) : NULL;
    b->kind = a->kind ? ig_strdup(a->kind) : NULL;
    b->ns = a->ns ? ig_strdup(a->ns) : NULL;
    b->name = a->name ? ig_strdup(a->name) : NULL;
    b->reason = a->reason ? ig_strdup(a->reason) : NULL;
    b->message = a->message ? ig_strdup(a->message) : NULL;
  }
  dst->n = src->n;
}

void ig_k8s_report(ig_k8s_t *k, const ig_manifest_notes_t *notes) {
  if (k->stopping || !k->write_status) return;
  if (notes != &k->notes) {
    notes_copy(&k->notes, notes);
    k->have_notes = 1;
  }
  if (!ig_k8s_is_leader(k)) return; /* the leader writes; on_lease reports when this one becomes it */
  char now[32];
  format_now(now, sizeof now);
  if (report_models(k, notes, now) == 0 && report_pools(k, notes, now) == 0 && report_gateways(k, notes, now) == 0)
    report_routes(k, notes, now);
  /* forget objects that are gone */
  void *tmp;
  const char *key;
  json_t *v;
  json_object_foreach_safe(k->sent, tmp, key, v) {
    char *end = NULL;
    unsigned long ki = strtoul(key, &end, 10);
    if (ki >= N_KINDS || *end != '|' || !json_object_get(k->w[ki].items, end + 1)) json_object_del(k->sent, key);
  }
}

/* ---------------------------------------------------------------- start and stop */

static int resolve(ig_k8s_t *k) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  char port[16];
  snprintf(port, sizeof port, "%d", k->target.port);
  int r = getaddrinfo(k->host, port, &hints, &res);
  if (r != 0 || !res) {
    ig_error("k8s: cannot resolve API server host '%s': %s", k->host, gai_strerror(r));
    return IG_EINVAL;
  }
  memcpy(&k->target.addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

static void free_k8s(ig_k8s_t *k) {
  for (size_t i = 0; i < N_KINDS; i++) {
    json_decref(k->w[i].items);
    free(k->w[i].rv);
    ig_buf_free(&k->w[i].body);
  }
  if (k->target.ssl_ctx) SSL_CTX_free(k->target.ssl_ctx);
  json_decref(k->sent);
  free(k->last_text);
  free(k->ns);
  free(k->token_file);
  free(k->token);
  ig_config_notes_free(&k->notes);
  free(k->controller_name);
  free(k);
}

static void on_handle_close(uv_handle_t *h) {
  ig_k8s_t *k = h->data;
  if (--k->nhandles == 0) free_k8s(k);
}

/* Loads PEM certificates from a memory buffer into the context's trust store. Returns the count. */
static int load_ca_mem(SSL_CTX *ctx, const char *pem, size_t len) {
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  if (!b) return 0;
  X509_STORE *st = SSL_CTX_get_cert_store(ctx);
  X509 *x;
  int n = 0;
  while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    if (X509_STORE_add_cert(st, x) == 1) n++;
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(b);
  return n;
}

/* The client certificate (with its chain) and key, from files or PEM data. Returns 0 or IG_EINVAL. */
static int load_client_cert(SSL_CTX *ctx, const ig_k8s_kubeconfig_t *kc) {
  if (kc->cert_file) {
    if (SSL_CTX_use_certificate_chain_file(ctx, kc->cert_file) != 1) {
      ig_error("k8s: cannot load the client certificate %s", kc->cert_file);
      return IG_EINVAL;
    }
  } else {
    BIO *b = BIO_new_mem_buf(kc->cert_data, (int)kc->cert_data_len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    int ok = x && SSL_CTX_use_certificate(ctx, x) == 1;
    X509_free(x);
    X509 *extra;
    while (ok && b && (extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
      if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) X509_free(extra);
    ERR_clear_error();
    BIO_free(b);
    if (!ok) {
      ig_error("k8s: client-certificate-data is not a PEM certificate");
      return IG_EINVAL;
    }
  }
  if (kc->key_file) {
    if (SSL_CTX_use_PrivateKey_file(ctx, kc->key_file, SSL_FILETYPE_PEM) != 1) {
      ig_error("k8s: cannot load the client key %s", kc->key_file);
      return IG_EINVAL;
    }
  } else {
    BIO *b = BIO_new_mem_buf(kc->key_data, (int)kc->key_data_len);
    EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    int ok = pk && SSL_CTX_use_PrivateKey(ctx, pk) == 1;
    EVP_PKEY_free(pk);
    BIO_free(b);
    if (!ok) {
      ig_error("k8s: client-key-data is not a PEM private key");
      return IG_EINVAL;
    }
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ig_error("k8s: the client key does not match the client certificate");
    return IG_EINVAL;
  }
  return 0;
}

/* The TLS client context: verification against ca_file / CA data / the system store (or none when
 * insecure), and the client certificate of the kubeconfig. Returns 0 or IG_EINVAL (logged). */
static int tls_init(ig_k8s_t *k, const char *ca, const ig_k8s_kubeconfig_t *kc, int insecure) {
  SSL_CTX *ctx = k->target.ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return IG_EINVAL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (insecure) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    k->target.insecure = 1;
    ig_warn("k8s: insecure-skip-tls-verify: the API server's certificate is not checked");
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (ca) {
      if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        ig_error("k8s: cannot load the CA certificate(s) from %s", ca);
        return IG_EINVAL;
      }
    } else if (kc && kc->ca_data) {
      if (load_ca_mem(ctx, kc->ca_data, kc->ca_data_len) == 0) {
        ig_error("k8s: certificate-authority-data holds no PEM certificate");
        return IG_EINVAL;
      }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      ig_error("k8s: cannot load the system CA certificates");
      return IG_EINVAL;
    }
  }
  if (kc && (kc->cert_file || kc->cert_data)) return load_client_cert(ctx, kc);
  return 0;
}

static void on_lease(void *data, int leader) {
  ig_k8s_t *k = data;
  if (!leader) {
    json_object_clear(k->sent); /* compare with what the objects carry when leading again */
    return;
  }
  if (k->have_notes) ig_k8s_report(k, &k->notes);
}

static void lease_auth(void *data, ig_buf_t *h) {
  auth_headers(data, h);
}

int ig_k8s_start(uv_loop_t *loop, const ig_k8s_opts_t *o, ig_k8s_t **out) {
  *out = NULL;
  ig_k8s_t *k = IG_NEW(ig_k8s_t);
  ig_k8s_kubeconfig_t kc;
  memset(&kc, 0, sizeof kc);
  int have_kc = 0;
  char url[300];
  const char *ca = o->ca_file;
  if (o->kubeconfig) {
    char err[512];
    if (ig_k8s_kubeconfig_load(o->kubeconfig, o->context, &kc, err, sizeof err) != 0) {
      ig_error("k8s: kubeconfig %s: %s", o->kubeconfig, err);
      goto fail;
    }
    have_kc = 1;
  }
  int in_cluster = !o->api_url && !have_kc;
  if (in_cluster) {
    const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
    if (!h || !*h) {
      ig_error("k8s: no --kube-api or --kubeconfig given and not in a cluster (KUBERNETES_SERVICE_HOST is not "
               "set)");
      goto fail;
    }
    snprintf(url, sizeof url, strchr(h, ':') ? "https://[%s]:%s" : "https://%s:%s", h, p && *p ? p : "443");
    if (!ca) ca = SA_DIR "/ca.crt";
  } else {
    snprintf(url, sizeof url, "%s", o->api_url ? o->api_url : kc.server);
    if (!ca && have_kc && kc.ca_file) ca = kc.ca_file;
  }
  int tls = 0;
  if (ig_k8s_url_parse(url, &tls, k->host, sizeof k->host, &k->target.port) != 0) {
    ig_error("k8s: invalid API server URL '%s' (expected http://HOST:PORT or https://HOST[:PORT], no path)", url);
    goto fail;
  }
  k->target.loop = loop;
  k->target.host = k->host;
  if (have_kc && kc.tls_server_name) {
    snprintf(k->tls_name, sizeof k->tls_name, "%s", kc.tls_server_name);
    k->target.tls_name = k->tls_name;
  }
  if (resolve(k) != 0) goto fail;
  if (tls && tls_init(k, ca, have_kc ? &kc : NULL, have_kc && kc.insecure && !o->ca_file) != 0) goto fail;
  const char *tf = o->token_file;
  if (!tf && in_cluster) tf = SA_DIR "/token";
  if (!tf && !o->token_file && have_kc) {
    tf = kc.token_file;
    if (!tf && kc.token) k->token = ig_strdup(kc.token);
  }
  k->token_file = tf ? ig_strdup(tf) : NULL;
  if (o->ns) {
    k->ns = ig_strdup(o->ns);
  } else if (have_kc && kc.ns) {
    k->ns = ig_strdup(kc.ns);
  } else {
    k->ns = in_cluster ? read_small(SA_DIR "/namespace") : NULL;
    if (!k->ns || !*k->ns) {
      free(k->ns);
      k->ns = ig_strdup("default");
    }
  }
  for (const char *p = k->ns; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
      ig_error("k8s: invalid namespace '%s'", k->ns);
      goto fail;
    }
  k->loop = loop;
  k->debounce_ms = o->debounce_ms ? o->debounce_ms : 100;
  k->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 5000;
  if (k->backoff_max_ms < BACKOFF_MIN_MS) k->backoff_max_ms = BACKOFF_MIN_MS;
  k->on_change = o->on_change;
  k->data = o->data;
  k->sent = json_object();
  k->write_status = o->write_status;
  k->pools_only = o->pools_only;
  k->controller_name = ig_strdup(o->controller_name ? o->controller_name : "infergate.io/gateway-controller");
  uv_timer_init(loop, &k->debounce);
  k->debounce.data = k;
  k->nhandles = 1;
  for (size_t i = 0; i < N_KINDS; i++) {
    kwatch_t *w = &k->w[i];
    w->k = k;
    w->def = &kinds[i];
    w->items = json_object();
    w->backoff_ms = BACKOFF_MIN_MS;
    ig_buf_init(&w->body);
    uv_timer_init(loop, &w->retry);
    w->retry.data = w;
    k->nhandles++;
  }
  if (have_kc)
    ig_info("k8s: watching namespace %s at %s (kubeconfig %s, context %s)", k->ns, url, o->kubeconfig, kc.context);
  else
    ig_info("k8s: watching namespace %s at %s", k->ns, url);
  ig_k8s_kubeconfig_free(&kc);
  for (size_t i = 0; i < N_KINDS; i++) {
    if (k->pools_only && k->w[i].def->routing)
      k->w[i].synced = 1; /* not needed: counts as listed and empty */
    else
      list_start(&k->w[i]);
  }
  if (o->leader_elect && o->write_status) {
    const char *const names[] = {o->lease_name, o->lease_ns};
    for (size_t i = 0; i < 2; i++) {
      const char *n = names[i];
      int bad = n && (!*n || strlen(n) > 253);
      for (const char *p = n; p && *p && !bad; p++)
        bad = !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.');
      if (bad) {
        ig_error("k8s: invalid lease %s '%s' (lower-case letters, digits, '-' and '.')", i ? "namespace" : "name", n);
        ig_k8s_stop(k);
        return IG_EINVAL;
      }
    }
    char ident[256];
    if (o->identity) {
      snprintf(ident, sizeof ident, "%s", o->identity);
    } else {
      const char *pod = getenv("POD_NAME");
      char host[128] = "infergate";
      if (!pod || !*pod) {
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        pod = host;
      }
      snprintf(ident, sizeof ident, "%s_%ld", pod, (long)getpid());
    }
    k->lease = klease_start(&k->target, lease_auth, k, o->lease_ns ? o->lease_ns : k->ns,
                            o->lease_name ? o->lease_name : "infergate-status-writer", ident,
                            o->lease_duration_ms ? o->lease_duration_ms : 15000, on_lease, k);
  }
  *out = k;
  return 0;
fail:
  ig_k8s_kubeconfig_free(&kc);
  if (k->target.ssl_ctx) SSL_CTX_free(k->target.ssl_ctx);
  free(k->ns);
  free(k->token_file);
  free(k->token);
  free(k);
  return IG_EINVAL;
}

int ig_k8s_is_leader(const ig_k8s_t *k) {
  return k && (!k->lease || klease_is_leader(k->lease));
}

static void close_timer_k(uv_timer_t *t) {
  uv_close((uv_handle_t *)t, on_handle_close);
}

/* The lease is closed (its release answered): it counts as one of k's handles. */
static void lease_closed(void *arg) {
  ig_k8s_t *k = arg;
  if (--k->nhandles == 0) free_k8s(k);
}

void ig_k8s_stop(ig_k8s_t *k) {
  if (!k || k->stopping) return;
  k->stopping = 1;
  if (k->lease) {
    k->nhandles++; /* the release request uses k's target and credentials: keep k until it ends */
    klease_stop(k->lease, lease_closed, k);
  }
  k->lease = NULL;
  for (size_t i = 0; i < MAX_PATCHES_INFLIGHT; i++)
    if (k->patches[i]) {
      patch_t *p = k->patches[i]->data;
      kconn_cancel(k->patches[i]);
      k->patches[i] = NULL;
      free(p);
    }
  for (size_t i = 0; i < N_KINDS; i++) {
    kwatch_t *w = &k->w[i];
    if (w->conn) kconn_cancel(w->conn);
    w->conn = NULL;
    w->retry.data = k;
    close_timer_k(&w->retry);
  }
  close_timer_k(&k->debounce);
}

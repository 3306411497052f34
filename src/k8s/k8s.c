/* The watcher: per kind, LIST (items + resourceVersion) then WATCH from that version, keeping a store
 * keyed by namespace/name; a 410 Gone, an ERROR event or the end of the stream re-lists; errors back
 * off (100 ms doubling to backoff_max_ms). A 404 (CRD not installed) or 403 is logged once, counts
 * as listed (empty for 404) and is retried slowly. Changes are debounced, then the store is rendered
 * as manifest text for the caller. ig_k8s_report writes InferenceModel and InferencePool status back
 * (with write_status). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
} kind_def_t;

static const kind_def_t kinds[] = {
    {"Gateway", "gateway.networking.k8s.io/v1", "/apis/gateway.networking.k8s.io/v1", "gateways", 1},
    {"HTTPRoute", "gateway.networking.k8s.io/v1", "/apis/gateway.networking.k8s.io/v1", "httproutes", 1},
    {"TCPRoute", "gateway.networking.k8s.io/v1alpha2", "/apis/gateway.networking.k8s.io/v1alpha2", "tcproutes",
     1},
    {"InferencePool", "inference.networking.k8s.io/v1", "/apis/inference.networking.k8s.io/v1",
     "inferencepools", 1},
    {"InferencePool", "inference.networking.x-k8s.io/v1alpha2", "/apis/inference.networking.x-k8s.io/v1alpha2",
     "inferencepools", 1},
    {"InferenceModel", "inference.networking.x-k8s.io/v1alpha2",
     "/apis/inference.networking.x-k8s.io/v1alpha2", "inferencemodels", 1},
    {"Pod", "v1", "/api/v1", "pods", 0},
    {"Service", "v1", "/api/v1", "services", 0},
    {"Endpoints", "v1", "/api/v1", "endpoints", 0},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])
#define MODEL_KIND 5

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
  if (!k->token_file) return;
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
  return o;
}

/* ---------------------------------------------------------------- render */

static int cmp_cstr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Renders every object, kind by kind in table order, by namespace/name, one JSON document each. */
static void render(ig_k8s_t *k, ig_buf_t *out) {
  for (size_t i = 0; i < N_KINDS; i++) {
    kwatch_t *w = &k->w[i];
    size_t n = json_object_size(w->items), j = 0;
    if (!n) continue;
    const char **keys = ig_malloc(n * sizeof *keys);
    const char *key;
    json_t *v;
    json_object_foreach(w->items, key, v) keys[j++] = key;
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

static void path_of(kwatch_t *w, ig_buf_t *p) {
  ig_buf_printf(p, "%s/namespaces/%s/%s", w->def->prefix, w->k->ns, w->def->plural);
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
  ig_buf_printf(&p, "?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d", w->rv,
                WATCH_SECONDS);
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
static void model_sig(json_t *status, ig_buf_t *out) {
  cond_sig(json_object_get(status, "conditions"), "Accepted", out);
}

/* The InferencePool status an object (or a patch) carries, as "ns/gw:Accepted=..;ResolvedRefs=..," per
 * parent in order. */
static void pool_sig(json_t *status, ig_buf_t *out) {
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

/* Sends the merge patch doc (stolen) to the status of object name in ns of kind index ki, unless the
 * status it stands for (want) was last sent already or the object carries it (have). Returns 0, or -1
 * when too many patches are in flight. */
static int send_status(ig_k8s_t *k, size_t ki, const char *ns, const char *name, const char *key,
                       const char *want, const char *have, json_t *doc) {
  char skey[600];
  snprintf(skey, sizeof skey, "%zu|%s", ki, key);
  const char *sent = json_string_value(json_object_get(k->sent, skey));
  if ((sent && !strcmp(sent, want)) || (!sent && !strcmp(have, want))) {
    json_decref(doc);
    return 0;
  }
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
  ig_info("k8s: %s %s status: %s", d->kind, key, want);
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
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    if (!name) continue;
    const ig_manifest_note_t *n = find_note(notes, "InferenceModel", ns, name, "ModelNameInUse");
    const char *msg = n ? n->message : NULL;
    json_t *cond = cond_new("Accepted", !msg, msg ? "ModelNameInUse" : "Accepted",
                            msg ? msg : "the model name is served by this gateway", now, meta);
    json_t *doc = json_pack("{s:{s:[o]}}", "status", "conditions", cond);
    ig_buf_t want, have;
    ig_buf_init(&want);
    ig_buf_init(&have);
    model_sig(json_object_get(doc, "status"), &want);
    model_sig(json_object_get(obj, "status"), &have);
    int r = send_status(k, MODEL_KIND, ns, name, key, want.data, have.data, doc);
    ig_buf_free(&want);
    ig_buf_free(&have);
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
      const char *ns = json_string_value(json_object_get(meta, "namespace"));
      const char *name = json_string_value(json_object_get(meta, "name"));
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
      ig_buf_t want, have;
      ig_buf_init(&want);
      ig_buf_init(&have);
      ig_buf_puts(&want, "parents:");
      ig_buf_puts(&have, "parents:");
      pool_sig(json_object_get(doc, "status"), &want);
      pool_sig(json_object_get(obj, "status"), &have);
      int r = send_status(k, ki, ns, name, key, want.data, have.data, doc);
      ig_buf_free(&want);
      ig_buf_free(&have);
      if (r) return r;
    }
  }
  return 0;
}

void ig_k8s_report(ig_k8s_t *k, const ig_manifest_notes_t *notes) {
  if (k->stopping || !k->write_status) return;
  char now[32];
  format_now(now, sizeof now);
  if (report_models(k, notes, now) == 0) report_pools(k, notes, now);
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
  free(k->controller_name);
  free(k);
}

static void on_handle_close(uv_handle_t *h) {
  ig_k8s_t *k = h->data;
  if (--k->nhandles == 0) free_k8s(k);
}

int ig_k8s_start(uv_loop_t *loop, const ig_k8s_opts_t *o, ig_k8s_t **out) {
  *out = NULL;
  ig_k8s_t *k = IG_NEW(ig_k8s_t);
  char url[300];
  const char *ca = o->ca_file;
  int in_cluster = !o->api_url;
  if (in_cluster) {
    const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
    if (!h || !*h) {
      ig_error("k8s: no --kube-api given and not in a cluster (KUBERNETES_SERVICE_HOST is not set)");
      goto fail;
    }
    snprintf(url, sizeof url, strchr(h, ':') ? "https://[%s]:%s" : "https://%s:%s", h, p && *p ? p : "443");
    if (!ca) ca = SA_DIR "/ca.crt";
  } else {
    snprintf(url, sizeof url, "%s", o->api_url);
  }
  int tls = 0;
  if (ig_k8s_url_parse(url, &tls, k->host, sizeof k->host, &k->target.port) != 0) {
    ig_error("k8s: invalid API server URL '%s' (expected http://HOST:PORT or https://HOST[:PORT])", url);
    goto fail;
  }
  k->target.loop = loop;
  k->target.host = k->host;
  if (resolve(k) != 0) goto fail;
  if (tls) {
    k->target.ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!k->target.ssl_ctx) goto fail;
    SSL_CTX_set_min_proto_version(k->target.ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(k->target.ssl_ctx, SSL_VERIFY_PEER, NULL);
    if (ca) {
      if (SSL_CTX_load_verify_locations(k->target.ssl_ctx, ca, NULL) != 1) {
        ig_error("k8s: cannot load the CA certificate(s) from %s", ca);
        goto fail;
      }
    } else if (SSL_CTX_set_default_verify_paths(k->target.ssl_ctx) != 1) {
      ig_error("k8s: cannot load the system CA certificates");
      goto fail;
    }
  }
  const char *tf = o->token_file;
  if (!tf && in_cluster) tf = SA_DIR "/token";
  k->token_file = tf ? ig_strdup(tf) : NULL;
  if (o->ns) {
    k->ns = ig_strdup(o->ns);
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
  ig_info("k8s: watching namespace %s at %s", k->ns, url);
  for (size_t i = 0; i < N_KINDS; i++)
    list_start(&k->w[i]);
  *out = k;
  return 0;
fail:
  if (k->target.ssl_ctx) SSL_CTX_free(k->target.ssl_ctx);
  free(k->ns);
  free(k->token_file);
  free(k);
  return IG_EINVAL;
}

static void close_timer_k(uv_timer_t *t) {
  uv_close((uv_handle_t *)t, on_handle_close);
}

void ig_k8s_stop(ig_k8s_t *k) {
  if (!k || k->stopping) return;
  k->stopping = 1;
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

/* Model discovery for inference pools that no model names: every pod's GET /v1/models (OpenAI list
 * format, as vLLM, SGLang and `infergate sim` serve it; LoRA adapters carry "parent") is fetched on the
 * event loop every discovery_interval_ms, so that a request is routed only to pods that serve its
 * model and a model no pod serves gets 404. One timer for the whole gateway walks the current
 * snapshot's pools; a pod has at most one fetch in flight, on its own short-lived connection
 * ("Connection: close"), with a bounded answer and a timeout. The per-pod list lives with the pod
 * (it survives reloads); a pool's index (model name -> pod indexes) is rebuilt lazily when any list
 * changed. Pods of a pool with `tls` are asked over TLS with the pool's settings (its client context
 * and verification, tls.c); a failed handshake or verification fails the fetch like a refused
 * connection, with a warning at most every TLS_WARN_EVERY_MS, and nothing goes out in plain text. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define DISC_DEFAULT_MS 5000
#define DISC_MAX_BODY (1u << 20) /* a model list larger than this is refused */
#define DISC_MAX_MODELS 1024     /* models kept per pod */
#define DISC_MAX_HDRS 64
#define DISC_MIN_TIMEOUT_MS 1000
#define DISC_MAX_TIMEOUT_MS 10000
#define DISC_IDLE_TICK_MS 1000 /* timer period when nothing is due sooner (a reload may add a pool) */

typedef struct dconn dconn_t;

/* One pod's discovered models. */
struct disc {
  uint64_t next_ms;    /* next fetch due at */
  uint64_t started_ms; /* fetch in flight since (0: none) */
  dconn_t *conn;
  int known;             /* a valid list was read at least once */
  int down;              /* never known and the last connect failed: serves nothing for now */
  char **ids, **parents; /* parents[i] NULL for a base model */
  size_t n;
  uint64_t ok, failed;
  uint64_t tls_warn_ms; /* last TLS failure warning (rate limit) */
};

/* One fetch: a connection that lives until it is closed, detached from its pod when aborted. */
struct dconn {
  link_t link; /* in fetches */
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  endpoint_t *ep; /* holds a conn_ref */
  disc_t *d;      /* NULL once detached */
  ig_buf_t req, in;
  int closing;
  tls_conn_t *tls; /* TLS pods */
  int sent;        /* the request went out (TLS: after the handshake) */
};

typedef struct {
  const char *name, *parent;
  size_t first, n; /* range in disc_pool.idx */
} dentry_t;

struct disc_pool {
  uint64_t gen; /* disc_gen it was built at */
  dentry_t *v;  /* sorted by name */
  size_t n;
  size_t *idx;     /* pod indexes of every entry, grouped by entry */
  size_t *unknown; /* pods without a known list */
  size_t n_unknown, n_known;
};

static uv_timer_t timer;
static int timer_on;
static link_t fetches = {&fetches, &fetches};
static uint64_t disc_gen = 1; /* bumped whenever a pod's list or known-ness changes */
static size_t empty_subset[1];

/* ---------------------------------------------------------------- per-pod lists */

static void list_clear(disc_t *d) {
  for (size_t i = 0; i < d->n; i++) {
    free(d->ids[i]);
    free(d->parents[i]);
  }
  free(d->ids);
  free(d->parents);
  d->ids = d->parents = NULL;
  d->n = 0;
}

void discovery_free(disc_t *d) {
  if (!d) return;
  if (d->conn) d->conn->d = NULL; /* not expected: a fetch holds its endpoint (and pod) alive */
  list_clear(d);
  free(d);
  disc_gen++;
}

static int same_str(const char *a, const char *b) {
  return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Parses an OpenAI model list ({"data":[{"id":..., "parent":...}, ...]}) into d. Returns 0 (the list
 * is stored; disc_gen bumped when it changed) or IG_EPARSE (d unchanged). */
static int list_parse(disc_t *d, const char *body, size_t len) {
  json_error_t jerr;
  json_t *root = json_loadb(body, len, 0, &jerr);
  json_t *data = json_is_object(root) ? json_object_get(root, "data") : NULL;
  if (!json_is_array(data)) {
    json_decref(root);
    return IG_EPARSE;
  }
  size_t n = json_array_size(data), k = 0;
  if (n > DISC_MAX_MODELS) n = DISC_MAX_MODELS;
  char **ids = ig_calloc(n + 1, sizeof *ids), **parents = ig_calloc(n + 1, sizeof *parents);
  for (size_t i = 0; i < n; i++) {
    json_t *card = json_array_get(data, i);
    json_t *id = json_is_object(card) ? json_object_get(card, "id") : NULL;
    json_t *parent = json_is_object(card) ? json_object_get(card, "parent") : NULL;
    size_t idlen = json_is_string(id) ? json_string_length(id) : 0;
    /* model names go into bodies and JSON: no empty, oversized or NUL-carrying names */
    if (idlen == 0 || idlen > IG_OAI_MODEL_MAX || strlen(json_string_value(id)) != idlen) continue;
    size_t j = 0;
    while (j < k && strcmp(ids[j], json_string_value(id)))
      j++;
    if (j < k) continue; /* duplicate */
    ids[k] = ig_strdup(json_string_value(id));
    if (json_is_string(parent) && json_string_length(parent) > 0 &&
        json_string_length(parent) <= IG_OAI_MODEL_MAX &&
        strlen(json_string_value(parent)) == json_string_length(parent)) {
      parents[k] = ig_strdup(json_string_value(parent));
      ig_sched_lora_register(ids[k]); /* an adapter: its requests look for a slot from the first one */
    }
    k++;
  }
  json_decref(root);
  int changed = !d->known || k != d->n;
  for (size_t i = 0; i < k && !changed; i++)
    changed = strcmp(ids[i], d->ids[i]) || !same_str(parents[i], d->parents[i]);
  if (!changed) {
    disc_t tmp = {.ids = ids, .parents = parents, .n = k};
    list_clear(&tmp);
    return 0;
  }
  list_clear(d);
  d->ids = ids;
  d->parents = parents;
  d->n = k;
  d->known = 1;
  disc_gen++;
  return 0;
}

/* ---------------------------------------------------------------- fetches */

static void on_dconn_close(uv_handle_t *h) {
  dconn_t *k = h->data;
  endpoint_t *ep = k->ep;
  ig_buf_free(&k->req);
  ig_buf_free(&k->in);
  tls_conn_free(k->tls);
  free(k);
  ep->conn_refs--;
  endpoint_maybe_free(ep);
}

/* Detaches the fetch from its pod and closes its connection. */
static void dconn_close(dconn_t *k) {
  if (k->closing) return;
  k->closing = 1;
  if (k->d) {
    k->d->conn = NULL;
    k->d->started_ms = 0;
    k->d = NULL;
  }
  list_remove(&k->link);
  uv_close((uv_handle_t *)&k->tcp, on_dconn_close);
}

/* Ends the fetch: ok = a complete answer is in k->in (status and list still to be checked).
 * unreachable: the connect failed. */
static void fetch_done_ex(dconn_t *k, int ok, int unreachable) {
  disc_t *d = k->d;
  if (d && d->down != (unreachable && !d->known)) {
    d->down = unreachable && !d->known;
    disc_gen++;
  }
  if (d) {
    int good = 0;
    if (ok) {
      ig_http_header_t hdrs[DISC_MAX_HDRS];
      ig_http_limits_t lim = {16384, DISC_MAX_HDRS};
      ig_http_response_t res;
      int n = ig_http_parse_response(k->in.data, k->in.len, &res, hdrs, DISC_MAX_HDRS, &lim);
      if (n > 0 && res.status == 200) {
        const char *body = k->in.data + n;
        size_t blen = k->in.len - (size_t)n;
        ig_buf_t dec;
        ig_buf_init(&dec);
        if (res.chunked) {
          ig_chunked_decoder_t cd;
          ig_chunked_init(&cd);
          size_t off = 0;
          int rc = 0;
          while (off < blen) {
            size_t used = 0, dlen = 0;
            const char *data = NULL;
            rc = ig_chunked_next(&cd, body + off, blen - off, &used, &data, &dlen);
            if (rc < 0) break;
            off += used;
            if (dlen) ig_buf_append(&dec, data, dlen);
            if (rc == 1 || (used == 0 && dlen == 0)) break;
          }
          body = dec.data ? dec.data : "";
          blen = rc == 1 ? dec.len : 0;
        } else if (res.content_length >= 0 && (uint64_t)res.content_length < blen) {
          blen = (size_t)res.content_length;
        }
        good = blen > 0 && list_parse(d, body, blen) == 0;
        ig_buf_free(&dec);
      }
    }
    if (good) {
      d->ok++;
    } else {
      d->failed++;
      ig_debug("discovery %s: no valid model list from GET /v1/models", k->ep->name);
    }
  }
  dconn_close(k);
}

static void fetch_done(dconn_t *k, int ok) {
  fetch_done_ex(k, ok, 0);
}

/* Whether k->in holds a whole answer before the server closes (Content-Length reached). */
static int answer_complete(dconn_t *k) {
  ig_http_header_t hdrs[DISC_MAX_HDRS];
  ig_http_limits_t lim = {16384, DISC_MAX_HDRS};
  ig_http_response_t res;
  int n = ig_http_parse_response(k->in.data, k->in.len, &res, hdrs, DISC_MAX_HDRS, &lim);
  if (n <= 0 || res.chunked || res.content_length < 0) return 0;
  return k->in.len - (size_t)n >= (uint64_t)res.content_length;
}

static void on_dconn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  dconn_t *k = h->data;
  (void)hint;
  if (k->tls) {
    static char cipher[16384]; /* decrypted onto k->in at once */
    *buf = uv_buf_init(cipher, sizeof cipher);
    return;
  }
  ig_buf_reserve(&k->in, 16384);
  buf->base = k->in.data + k->in.len;
  buf->len = k->in.cap - k->in.len - 1;
}

/* New answer bytes are in k->in: ends the fetch when the answer is complete or too large. */
static void dconn_on_data(dconn_t *k) {
  if (k->in.len > DISC_MAX_BODY + 16384) {
    ig_debug("discovery %s: model list too large", k->ep->name);
    fetch_done(k, 0);
  } else if (answer_complete(k)) {
    fetch_done(k, 1);
  }
}

/* The TLS handshake with the pod failed (why: the reason): the fetch fails like a refused connection. */
static void dconn_tls_failed(dconn_t *k, const char *why) {
  if (k->d && tls_warn_due(&k->d->tls_warn_ms, ig_now_ms()))
    ig_warn("discovery %s: %s; no models are discovered from it while this lasts (repeats logged at debug "
            "level)",
            k->ep->name, why);
  else
    ig_debug("discovery %s: %s", k->ep->name, why);
  fetch_done_ex(k, 0, 1);
}

static void dconn_send(dconn_t *k);
static void on_dconn_tls_write(uv_write_t *req, int status);

/* TLS: decrypts ciphertext p[0..n) onto k->in, answers the handshake, sends the request once the
 * handshake is done. */
static void dconn_tls_read(dconn_t *k, const char *p, size_t n) {
  size_t before = k->in.len;
  int rc = tls_conn_pump(k->tls, (uv_stream_t *)&k->tcp, on_dconn_tls_write, p, n, &k->in);
  if (k->closing) return;
  if (!k->sent) {
    char why[320];
    if (rc == IG_EIO || rc == IG_ECLOSED) tls_conn_set_error(k->tls, "the connection failed");
    if (rc < 0) {
      dconn_tls_failed(k, tls_conn_failure(k->tls, why, sizeof why));
    } else if (tls_conn_established(k->tls)) {
      ig_buf_reset(&k->in); /* nothing is expected before the request */
      dconn_send(k);
    }
    return;
  }
  if (k->in.len != before) dconn_on_data(k);
  if (k->closing) return;
  if (rc == IG_ECLOSED)
    fetch_done(k, 1); /* close_notify: the answer ends here */
  else if (rc < 0)
    fetch_done(k, 0);
}

static void on_dconn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  dconn_t *k = st->data;
  if (k->closing || nread == 0) return;
  if (k->tls && nread > 0) {
    dconn_tls_read(k, buf->base, (size_t)nread);
    return;
  }
  if (k->tls && !k->sent) {
    char why[320];
    tls_conn_set_error(k->tls,
                       nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
    dconn_tls_failed(k, tls_conn_failure(k->tls, why, sizeof why));
    return;
  }
  if (nread < 0) {
    fetch_done(k, nread == UV_EOF);
    return;
  }
  k->in.len += (size_t)nread;
  k->in.data[k->in.len] = '\0';
  dconn_on_data(k);
}

static void on_dconn_write(uv_write_t *req, int status) {
  dconn_t *k = req->data;
  if (status < 0 && !k->closing) fetch_done(k, 0);
}

/* A queued TLS write (stream_write's request) ended. */
static void on_dconn_tls_write(uv_write_t *req, int status) {
  dconn_t *k = req->handle->data;
  stream_write_done(req);
  if (status < 0 && !k->closing) fetch_done(k, 0);
}

/* Sends the GET (encrypted on TLS connections). */
static void dconn_send(dconn_t *k) {
  k->sent = 1;
  ig_buf_printf(&k->req,
                "GET /v1/models HTTP/1.1\r\nHost: %s\r\nUser-Agent: infergate\r\nAccept: application/json\r\n"
                "Connection: close\r\n\r\n",
                k->ep->name);
  uv_buf_t b = uv_buf_init(k->req.data, (unsigned)k->req.len);
  if (k->tls) {
    if (tls_conn_send(k->tls, (uv_stream_t *)&k->tcp, &b, 1, on_dconn_tls_write) != 0) fetch_done(k, 0);
    return;
  }
  k->wreq.data = k;
  if (uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_dconn_write) != 0) fetch_done(k, 0);
}

static void on_dconn_connect(uv_connect_t *req, int status) {
  dconn_t *k = req->data;
  if (k->closing) return;
  if (status < 0) {
    ig_debug("discovery %s: connect failed: %s", k->ep->name, uv_strerror(status));
    fetch_done_ex(k, 0, 1);
    return;
  }
  if (uv_read_start((uv_stream_t *)&k->tcp, on_dconn_alloc, on_dconn_read) != 0) {
    fetch_done(k, 0);
    return;
  }
  if (!k->tls) {
    dconn_send(k);
    return;
  }
  /* the ClientHello; the request follows the handshake */
  if (tls_conn_flush(k->tls, (uv_stream_t *)&k->tcp, on_dconn_tls_write) != 0) fetch_done_ex(k, 0, 1);
}

/* Starts a fetch of ep's model list (over TLS with be's settings when ep is a TLS endpoint). */
static void fetch_start(const backend_rt_t *be, endpoint_t *ep, disc_t *d, uint64_t now) {
  dconn_t *k = IG_NEW(dconn_t);
  k->ep = ep;
  k->d = d;
  ep->conn_refs++;
  uv_tcp_init(gw.loop, &k->tcp);
  k->tcp.data = k;
  k->creq.data = k;
  list_insert_tail(&fetches, &k->link);
  d->conn = k;
  d->started_ms = now;
  if (ep->tls_key) {
    if (be->tls_ctx && be->cfg->tls)
      k->tls = tls_conn_new_client(be->tls_ctx, ep->host, be->cfg->tls->server_name, ep->name);
    if (!k->tls) {
      dconn_tls_failed(k, "cannot set up TLS");
      return;
    }
  }
  if (uv_tcp_connect(&k->creq, &k->tcp, (const struct sockaddr *)&ep->addr, on_dconn_connect) != 0)
    fetch_done_ex(k, 0, 1);
}

/* ---------------------------------------------------------------- the timer */

int discovery_enabled(const backend_rt_t *be) {
  return be->cfg->policy == IG_LB_INFERENCE && !be->has_models; /* be->pool is not needed (see proxy.h) */
}

static unsigned interval_of(const backend_rt_t *be) {
  return be->cfg->discovery_interval_ms ? be->cfg->discovery_interval_ms : DISC_DEFAULT_MS;
}

/* Starts the fetches that are due, times out hung ones, and re-arms for the next due time. */
static void on_tick(uv_timer_t *t) {
  (void)t;
  if (gw.stopping) {
    discovery_stop();
    return;
  }
  uint64_t now = ig_now_ms(), next = now + DISC_IDLE_TICK_MS;
  snapshot_t *s = gw.snap;
  for (size_t i = 0; s && i < s->n_backends; i++) {
    backend_rt_t *be = &s->backends[i];
    if (!discovery_enabled(be)) continue;
    unsigned iv = interval_of(be);
    uint64_t timeout = iv < DISC_MIN_TIMEOUT_MS   ? DISC_MIN_TIMEOUT_MS
                       : iv > DISC_MAX_TIMEOUT_MS ? DISC_MAX_TIMEOUT_MS
                                                  : iv;
    for (size_t j = 0; j < be->n_eps; j++) {
      endpoint_t *ep = be->eps[j];
      if (!ep->pod || !ep->resolved) continue;
      if (!ep->pod->disc) ep->pod->disc = IG_NEW(disc_t);
      disc_t *d = ep->pod->disc;
      if (d->started_ms && now - d->started_ms >= timeout) {
        ig_debug("discovery %s: timed out", ep->name);
        fetch_done(d->conn, 0);
      }
      if (!d->started_ms && now >= d->next_ms) {
        d->next_ms = now + iv;
        fetch_start(be, ep, d, now);
      }
      if (d->started_ms && d->started_ms + timeout < next) next = d->started_ms + timeout;
      if (d->next_ms < next) next = d->next_ms;
    }
  }
  uint64_t delay = next > now ? next - now : 1;
  if (delay < 10) delay = 10;
  if (timer_on) uv_timer_start(&timer, on_tick, delay, 0);
}

void discovery_start(void) {
  if (timer_on) return;
  uv_timer_init(gw.loop, &timer);
  timer_on = 1;
  uv_timer_start(&timer, on_tick, 0, 0);
}

static void on_timer_close(uv_handle_t *h) {
  (void)h;
}

void discovery_stop(void) {
  while (!list_empty(&fetches))
    dconn_close(container_of(fetches.next, dconn_t, link));
  if (!timer_on) return;
  timer_on = 0;
  uv_timer_stop(&timer);
  uv_close((uv_handle_t *)&timer, on_timer_close);
}

/* ---------------------------------------------------------------- a pool's index */

static int pair_cmp(const void *a, const void *b) {
  const dentry_t *x = a, *y = b;
  int d = strcmp(x->name, y->name);
  return d ? d : (x->first > y->first) - (x->first < y->first);
}

void discovery_pool_free(backend_rt_t *be) {
  disc_pool_t *p = be->disc;
  if (!p) return;
  free(p->v);
  free(p->idx);
  free(p->unknown);
  free(p);
  be->disc = NULL;
}

/* The index of be, rebuilt when a pod's list changed since it was built. */
static disc_pool_t *pool_index(backend_rt_t *be) {
  disc_pool_t *p = be->disc;
  if (p && p->gen == disc_gen) return p;
  if (!p) p = be->disc = IG_NEW(disc_pool_t);
  free(p->v);
  free(p->idx);
  free(p->unknown);
  p->v = NULL;
  p->idx = p->unknown = NULL;
  p->n = p->n_unknown = p->n_known = 0;
  p->gen = disc_gen;
  size_t total = 0;
  for (size_t i = 0; i < be->n_eps; i++) {
    const disc_t *d = be->eps[i]->pod ? be->eps[i]->pod->disc : NULL;
    if (d && d->known) total += d->n;
  }
  /* one (name, pod) pair per listed model, sorted by name then pod, then folded into entries */
  dentry_t *pairs = ig_calloc(total + 1, sizeof *pairs);
  p->unknown = ig_calloc(be->n_eps + 1, sizeof *p->unknown);
  size_t np = 0;
  for (size_t i = 0; i < be->n_eps; i++) {
    const disc_t *d = be->eps[i]->pod ? be->eps[i]->pod->disc : NULL;
    if (d && d->down) continue; /* unreachable since startup: serves nothing until it answers */
    if (!d || !d->known) {
      p->unknown[p->n_unknown++] = i;
      continue;
    }
    p->n_known++;
    for (size_t j = 0; j < d->n; j++)
      pairs[np++] = (dentry_t){.name = d->ids[j], .parent = d->parents[j], .first = i};
  }
  qsort(pairs, np, sizeof *pairs, pair_cmp);
  p->v = ig_calloc(np + 1, sizeof *p->v);
  p->idx = ig_calloc(np + 1, sizeof *p->idx);
  for (size_t i = 0; i < np; i++) {
    if (!p->n || strcmp(p->v[p->n - 1].name, pairs[i].name)) {
      p->v[p->n++] = (dentry_t){.name = pairs[i].name, .parent = pairs[i].parent, .first = i};
    }
    if (!p->v[p->n - 1].parent) p->v[p->n - 1].parent = pairs[i].parent;
    p->idx[i] = pairs[i].first;
    p->v[p->n - 1].n++;
  }
  free(pairs);
  return p;
}

static const dentry_t *index_find(const disc_pool_t *p, const char *model) {
  size_t lo = 0, hi = p->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int d = strcmp(p->v[mid].name, model);
    if (d == 0) return &p->v[mid];
    if (d < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int discovery_subset(backend_rt_t *be, const char *model, const size_t **subset, size_t *n) {
  *subset = NULL;
  *n = 0;
  if (!model || !model[0] || !discovery_enabled(be)) return 0;
  disc_pool_t *p = pool_index(be);
  if (!p->n_known) return 0;
  const dentry_t *e = index_find(p, model);
  if (e) {
    *subset = p->idx + e->first;
    *n = e->n;
    return 0;
  }
  if (p->n_unknown) {
    *subset = p->unknown;
    *n = p->n_unknown;
    return 0;
  }
  *subset = empty_subset;
  return IG_ENOENT;
}

endpoint_t *discovery_least_request(backend_rt_t *be, const char *model, const endpoint_t *exclude) {
  const size_t *sub;
  size_t n;
  discovery_subset(be, model, &sub, &n);
  if (!sub || n == 0) return NULL;
  endpoint_t *best = NULL;
  size_t start = be->rr++;
  for (size_t i = 0; i < n; i++) {
    endpoint_t *ep = be->eps[sub[(start + i) % n]];
    if (ep == exclude && n > 1) continue;
    if (!best || ep->inflight < best->inflight) best = ep;
  }
  return best;
}

size_t discovery_models_json(backend_rt_t *be, const ig_config_t *cfg, ig_buf_t *out, int *first,
                             long long created) {
  if (!discovery_enabled(be)) return 0;
  disc_pool_t *p = pool_index(be);
  if (!out) return p->n_known;
  for (size_t i = 0; p->n_known && i < p->n; i++) {
    const dentry_t *e = &p->v[i];
    const ig_model_cfg_t *m = cfg ? ig_config_find_model(cfg, e->name, strlen(e->name)) : NULL;
    if (m && m->pool_index == be->index) continue; /* listed already */
    ig_buf_puts(out, *first ? "{\"id\":\"" : ",{\"id\":\"");
    *first = 0;
    ig_json_escape(out, e->name, strlen(e->name));
    ig_buf_printf(out,
                  "\",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"infergate\",\"parent\":", created);
    if (e->parent) {
      ig_buf_puts(out, "\"");
      ig_json_escape(out, e->parent, strlen(e->parent));
      ig_buf_puts(out, "\"}");
    } else {
      ig_buf_puts(out, "null}");
    }
  }
  return p->n_known;
}

void discovery_debug_json(const pod_t *pod, ig_buf_t *out) {
  const disc_t *d = pod ? pod->disc : NULL;
  if (!d) return;
  ig_buf_printf(out, ",\"discovered\":%s,\"discovery_down\":%s,\"discovery_fetches\":%llu,\"models\":[",
                d->known ? "true" : "false", d->down ? "true" : "false",
                (unsigned long long)(d->ok + d->failed));
  for (size_t i = 0; i < d->n; i++) {
    ig_buf_puts(out, i ? ",\"" : "\"");
    ig_json_escape(out, d->ids[i], strlen(d->ids[i]));
    ig_buf_puts(out, "\"");
  }
  ig_buf_puts(out, "]");
}

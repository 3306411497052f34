/* Leader election over a coordination.k8s.io/v1 Lease, the way Kubernetes controllers do it: the
 * holder renews spec.renewTime; the others watch the record and take it over (PUT with the
 * resourceVersion they read, so that only one wins; 409 otherwise) once it has not changed for
 * leaseDurationSeconds, measured on their own clock from when they saw it change. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "k8s_internal.h"

#define LEASE_REQ_TIMEOUT_MS 10000

typedef enum { L_IDLE, L_GET, L_WRITE } lstate_t;

struct klease {
  const kconn_target_t *t;
  klease_auth_fn auth;
  void *auth_data;
  char *ns, *name, *identity;
  unsigned duration_ms, retry_ms;
  klease_cb cb;
  void *data;
  uv_timer_t timer;
  kconn_t *conn;
  lstate_t state;
  int status;
  ig_buf_t body;
  int leader, stopping;
  char *seen_sig;      /* holder|renewTime|rv of the record as last seen */
  uint64_t seen_ms;    /* when it last changed (our clock) */
  uint64_t renewed_ms; /* our last successful write as the holder */
  json_t *held;        /* the Lease as our last successful write left it (to release it) */
  void (*closed)(void *arg); /* called once everything is closed after klease_stop */
  void *closed_arg;
};

static void round_start(klease_t *l);

int klease_is_leader(const klease_t *l) {
  return l && l->leader;
}

static void set_leader(klease_t *l, int v) {
  if (l->leader == v) return;
  l->leader = v;
  ig_info("k8s: leader election: %s lease %s/%s as %s", v ? "acquired" : "lost", l->ns, l->name, l->identity);
  if (l->cb && !l->stopping) l->cb(l->data, v);
}

/* RFC 3339 with microseconds (a MicroTime). */
static void micro_now(char *out, size_t cap) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  time_t s = tv.tv_sec;
  gmtime_r(&s, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, cap, "%s.%06ldZ", base, (long)tv.tv_usec);
}

static void on_timer(uv_timer_t *t) {
  klease_t *l = t->data;
  if (!l->stopping && l->state == L_IDLE) round_start(l);
}

static void next_round(klease_t *l) {
  l->state = L_IDLE;
  l->conn = NULL;
  if (l->leader && ig_now_ms() - l->renewed_ms > l->duration_ms * 2 / 3) set_leader(l, 0);
  if (!l->stopping) uv_timer_start(&l->timer, on_timer, l->retry_ms, 0);
}

static void r_head(kconn_t *c, int status) {
  klease_t *l = c->data;
  l->status = status;
}

static void r_data(kconn_t *c, const char *p, size_t n) {
  klease_t *l = c->data;
  if (l->body.len + n <= 1u << 20) ig_buf_append(&l->body, p, n);
}

static const kconn_cbs_t lease_cbs;

/* Sends the Lease obj (stolen): POST when create, else PUT. */
static void write_lease(klease_t *l, json_t *obj, int create) {
  char *body = json_dumps(obj, JSON_COMPACT);
  json_decref(obj);
  ig_buf_t p, h;
  ig_buf_init(&p);
  ig_buf_init(&h);
  ig_buf_printf(&p, "/apis/coordination.k8s.io/v1/namespaces/%s/leases", l->ns);
  if (!create) ig_buf_printf(&p, "/%s", l->name);
  ig_buf_puts(&h, "Content-Type: application/json\r\n");
  if (l->auth) l->auth(l->auth_data, &h);
  ig_buf_reset(&l->body);
  l->status = 0;
  l->state = L_WRITE;
  l->conn = kconn_start(l->t, create ? "POST" : "PUT", p.data, h.data, body, body ? strlen(body) : 0,
                        LEASE_REQ_TIMEOUT_MS, 0, &lease_cbs, l);
  free(body);
  ig_buf_free(&p);
  ig_buf_free(&h);
}

/* A new Lease object held by us. */
static json_t *lease_new(klease_t *l, const char *now) {
  return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:I, s:s, s:s, s:i}}", "apiVersion", "coordination.k8s.io/v1",
                   "kind", "Lease", "metadata", "name", l->name, "namespace", l->ns, "spec", "holderIdentity",
                   l->identity, "leaseDurationSeconds", (json_int_t)((l->duration_ms + 999) / 1000), "acquireTime",
                   now, "renewTime", now, "leaseTransitions", 0);
}

/* The GET answered: decide whether to create, renew, take over or wait. */
static void got_lease(klease_t *l) {
  char now[48];
  micro_now(now, sizeof now);
  if (l->status == 404) {
    write_lease(l, lease_new(l, now), 1);
    return;
  }
  json_error_t jerr;
  json_t *obj = l->status == 200 ? json_loadb(l->body.data ? l->body.data : "", l->body.len, 0, &jerr) : NULL;
  json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
  const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
  if (!json_is_object(obj) || !rv) {
    if (l->status != 200)
      ig_warn("k8s: leader election: GET lease %s/%s: HTTP %d", l->ns, l->name, l->status);
    else
      ig_warn("k8s: leader election: lease %s/%s: malformed answer", l->ns, l->name);
    if (obj) json_decref(obj);
    next_round(l);
    return;
  }
  if (!json_is_object(spec)) {
    json_object_set_new(obj, "spec", json_object());
    spec = json_object_get(obj, "spec");
  }
  const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
  const char *renew = json_string_value(json_object_get(spec, "renewTime"));
  json_t *dur = json_object_get(spec, "leaseDurationSeconds");
  uint64_t dur_ms = json_is_integer(dur) && json_integer_value(dur) > 0 && json_integer_value(dur) < 86400
                        ? (uint64_t)json_integer_value(dur) * 1000
                        : l->duration_ms;
  char sig[512];
  snprintf(sig, sizeof sig, "%s|%s|%s", holder ? holder : "", renew ? renew : "", rv);
  uint64_t t = ig_now_ms();
  if (!l->seen_sig || strcmp(l->seen_sig, sig)) {
    free(l->seen_sig);
    l->seen_sig = ig_strdup(sig);
    l->seen_ms = t;
  }
  int mine = holder && !strcmp(holder, l->identity);
  int free_ = !holder || !*holder || t - l->seen_ms > dur_ms;
  if (!mine && !free_) {
    set_leader(l, 0);
    json_decref(obj);
    next_round(l);
    return;
  }
  if (!mine) {
    int had = holder && *holder; /* holder points into spec: read it before replacing it */
    json_t *tr = json_object_get(spec, "leaseTransitions");
    json_int_t n = json_is_integer(tr) ? json_integer_value(tr) : 0;
    ig_info("k8s: leader election: lease %s/%s %s; taking it", l->ns, l->name, had ? "expired" : "is free");
    json_object_set_new(spec, "leaseTransitions", json_integer(had ? n + 1 : n));
    json_object_set_new(spec, "holderIdentity", json_string(l->identity));
    json_object_set_new(spec, "acquireTime", json_string(now));
  }
  json_object_set_new(spec, "renewTime", json_string(now));
  json_object_set_new(spec, "leaseDurationSeconds", json_integer((json_int_t)((l->duration_ms + 999) / 1000)));
  json_object_del(obj, "status");
  write_lease(l, obj, 0);
}

static void on_close(uv_handle_t *h);

static void r_done(kconn_t *c, int err) {
  klease_t *l = c->data;
  l->conn = NULL;
  if (l->stopping) {
    /* the release written by klease_stop */
    if (err || l->status < 200 || l->status >= 300)
      ig_warn("k8s: leader election: releasing lease %s/%s failed: %s", l->ns, l->name,
              err ? ig_strerror(err) : ig_http_reason(l->status));
    else
      ig_info("k8s: leader election: released lease %s/%s", l->ns, l->name);
    uv_close((uv_handle_t *)&l->timer, on_close);
    return;
  }
  if (err != 0) {
    ig_debug("k8s: leader election: lease request failed: %s", ig_strerror(err));
    next_round(l);
    return;
  }
  if (l->state == L_GET) {
    got_lease(l);
    return;
  }
  /* a write */
  if (l->status >= 200 && l->status < 300) {
    l->renewed_ms = ig_now_ms();
    json_error_t jerr;
    json_t *obj = json_loadb(l->body.data ? l->body.data : "", l->body.len, 0, &jerr);
    json_t *spec = json_object_get(obj, "spec");
    const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    char sig[512];
    snprintf(sig, sizeof sig, "%s|%s|%s", l->identity,
             json_string_value(json_object_get(spec, "renewTime")) ? json_string_value(json_object_get(spec, "renewTime"))
                                                                  : "",
             rv ? rv : "");
    free(l->seen_sig);
    l->seen_sig = ig_strdup(sig);
    l->seen_ms = l->renewed_ms;
    if (l->held) json_decref(l->held);
    l->held = json_is_object(obj) && rv ? obj : NULL;
    if (!l->held && obj) json_decref(obj);
    set_leader(l, 1);
  } else if (l->status == 409) {
    ig_debug("k8s: leader election: lost a race for lease %s/%s (409)", l->ns, l->name);
  } else {
    ig_warn("k8s: leader election: writing lease %s/%s: HTTP %d", l->ns, l->name, l->status);
  }
  next_round(l);
}

static const kconn_cbs_t lease_cbs = {r_head, r_data, r_done};

static void round_start(klease_t *l) {
  ig_buf_t p, h;
  ig_buf_init(&p);
  ig_buf_init(&h);
  ig_buf_printf(&p, "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", l->ns, l->name);
  if (l->auth) l->auth(l->auth_data, &h);
  ig_buf_reset(&l->body);
  l->status = 0;
  l->state = L_GET;
  l->conn = kconn_start(l->t, "GET", p.data, h.data, NULL, 0, LEASE_REQ_TIMEOUT_MS, 0, &lease_cbs, l);
  ig_buf_free(&p);
  ig_buf_free(&h);
}

klease_t *klease_start(const kconn_target_t *t, klease_auth_fn auth, void *auth_data, const char *ns,
                       const char *name, const char *identity, unsigned duration_ms, klease_cb cb, void *data) {
  klease_t *l = IG_NEW(klease_t);
  l->t = t;
  l->auth = auth;
  l->auth_data = auth_data;
  l->ns = ig_strdup(ns);
  l->name = ig_strdup(name);
  l->identity = ig_strdup(identity);
  l->duration_ms = duration_ms < 1000 ? 1000 : duration_ms;
  l->retry_ms = l->duration_ms / 5 < 100 ? 100 : l->duration_ms / 5;
  l->cb = cb;
  l->data = data;
  ig_buf_init(&l->body);
  uv_timer_init(t->loop, &l->timer);
  l->timer.data = l;
  ig_info("k8s: leader election: lease %s/%s, identity %s, duration %u ms", l->ns, l->name, l->identity,
          l->duration_ms);
  round_start(l);
  return l;
}

static void on_close(uv_handle_t *h) {
  klease_t *l = h->data;
  free(l->ns);
  free(l->name);
  free(l->identity);
  free(l->seen_sig);
  ig_buf_free(&l->body);
  if (l->held) json_decref(l->held);
  void (*closed)(void *) = l->closed;
  void *arg = l->closed_arg;
  free(l);
  if (closed) closed(arg);
}

void klease_stop(klease_t *l, void (*closed)(void *arg), void *arg) {
  if (!l || l->stopping) return;
  l->stopping = 1;
  l->closed = closed;
  l->closed_arg = arg;
  if (l->conn) kconn_cancel(l->conn);
  l->conn = NULL;
  uv_timer_stop(&l->timer);
  if (l->leader && l->held) {
    /* hand the Lease over at once, as client-go's ReleaseOnCancel does: no holder, a 1 s duration */
    char now[48];
    micro_now(now, sizeof now);
    json_t *obj = l->held, *spec = json_object_get(obj, "spec");
    l->held = NULL;
    if (json_is_object(spec)) {
      json_object_set_new(spec, "holderIdentity", json_string(""));
      json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
      json_object_set_new(spec, "renewTime", json_string(now));
      json_object_set_new(spec, "acquireTime", json_string(now));
      json_object_del(obj, "status");
      ig_info("k8s: leader election: releasing lease %s/%s", l->ns, l->name);
      write_lease(l, obj, 0); /* r_done closes the timer */
      if (l->conn) return;
    } else {
      json_decref(obj);
    }
  }
  uv_close((uv_handle_t *)&l->timer, on_close);
}

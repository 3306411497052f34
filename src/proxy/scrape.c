/* Metrics scraping of inference-pool endpoints: one scraper per endpoint (shared by every pool and
 * snapshot that names it), ticking every scrape interval, with one kept-alive HTTP/1.1 connection and
 * at most one scrape in flight. A scrape that fails or times out leaves the pod's metrics to age; the
 * scheduler filters stale pods.
 *
 * Cost per scrape (bench/scrape-cost.sh, docs/benchmarks.md): the request is built once per path and
 * written straight from the scraper; the first read of every response lands in one buffer shared by
 * all scrapers (it stays in cache, where 100 per-scraper buffers would not) and a response complete in
 * that read is parsed there without a copy; only a response that needs more reads is copied into the
 * scraper's own buffer. The extraction scratch is shared too, and ig_metrics_extract parses only the
 * lines of the metrics it wants. Nothing is allocated per scrape once the buffers have grown.
 *
 * Endpoints of a pool with `tls` are scraped over TLS with the pool's settings (the same client
 * context and verification as its requests, tls.c): the handshake is done once per connection, and the
 * kept-alive connection keeps its OpenSSL buffers, so a scrape costs its decryption and no allocation.
 * The ciphertext lands in the shared read buffer and the first plaintext of a response in a shared
 * plaintext buffer, parsed there in place like a plain read. A failed handshake or verification fails
 * the scrape (the pod goes stale; a warning at most every TLS_WARN_EVERY_MS); nothing is ever sent in
 * plain text to such an endpoint. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define SCRAPE_MAX_BODY (8u << 20) /* a metrics page larger than this is refused */
#define SCRAPE_MAX_HDRS 64
#define SCRAPE_MIN_TIMEOUT_MS 100
#define SCRAPE_HANDSHAKE_TIMEOUT_MS 2000 /* a scrape that waits for a TLS handshake gets this long */

typedef struct sconn sconn_t;

struct scraper {
  endpoint_t *ep;
  uv_timer_t timer;
  sconn_t *conn; /* current connection (NULL: connect on the next scrape) */
  ig_engine_t engine;
  unsigned interval_ms;
  char *path;
  ig_buf_t req;        /* the GET, built when the path is set (the same bytes every scrape) */
  uint64_t started_ms; /* the scrape in flight started at; 0 = none in flight */
  /* the response being read */
  ig_buf_t in;   /* raw bytes */
  ig_buf_t body; /* de-chunked body */
  size_t head_len, off;
  int status, have_head, chunked, keep_alive;
  int64_t content_length;
  ig_chunked_decoder_t dec;
  uint64_t tls_warn_ms; /* last TLS failure warning (rate limit) */
};

struct sconn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  endpoint_t *ep;
  scraper_t *s;    /* NULL once the scraper let go of the connection */
  int connected;   /* requests may be sent: TCP connected and, with TLS, the handshake done */
  ig_buf_t req;    /* what uv_try_write left of the request, for a queued write (rare) */
  tls_conn_t *tls; /* TLS endpoints */
};

static void scrape_send(scraper_t *s);

/* Shared by every scraper: all run on the gateway's one loop thread, and a scrape uses them only
 * inside one callback (a read that leaves a response incomplete copies it out of rbuf). */
static char rbuf[64 * 1024]; /* where the first read of each response lands (TLS: every read) */
static ig_buf_t tplain;      /* TLS: where the first plaintext of each response lands */
static ig_pod_metrics_t spm; /* extraction scratch (large: not on the stack) */

static void on_conn_close(uv_handle_t *h) {
  sconn_t *k = h->data;
  endpoint_t *ep = k->ep;
  ig_buf_free(&k->req);
  tls_conn_free(k->tls);
  free(k);
  ep->conn_refs--;
  endpoint_maybe_free(ep);
}

/* Lets go of the scraper's connection and closes it. */
static void conn_drop(scraper_t *s) {
  sconn_t *k = s->conn;
  if (!k) return;
  s->conn = NULL;
  k->s = NULL;
  uv_close((uv_handle_t *)&k->tcp, on_conn_close);
}

/* Ends the scrape in flight. ok: the response raw[0..raw_len) (head at raw, s->head_len bytes; the
 * de-chunked body is in s->body) is complete; it is parsed and stored when the status is 200.
 * reuse: the connection may carry the next scrape. */
static void scrape_done(scraper_t *s, int ok, int reuse, const char *raw, size_t raw_len) {
  pod_t *pod = s->ep->pod;
  s->started_ms = 0;
  if (!reuse) conn_drop(s);
  if (!pod) return;
  pod->last_status = ok ? s->status : 0;
  const char *text = NULL;
  size_t len = 0;
  if (ok && s->chunked) {
    text = s->body.data;
    len = s->body.len;
  } else if (ok && raw && raw_len >= s->head_len) {
    text = raw + s->head_len;
    len = raw_len - s->head_len;
  }
  ig_pod_metrics_t *pm = &spm;
  if (!ok || s->status != 200 || ig_metrics_extract(s->engine, text ? text : "", text ? len : 0, pm) != 0) {
    pod->scrapes_failed++;
    pools_on_scrape(s->ep); /* queued requests of a pool that went blind are sent least-request */
    return;
  }
  ig_sched_pod_t *sp = &pod->sp;
  sp->waiting = pm->has_waiting ? pm->waiting : 0;
  sp->running = pm->has_running ? pm->running : 0;
  sp->kv_usage = pm->has_kv ? pm->kv_usage : 0;
  sp->has_metrics = 1;
  sp->pending = 0;
  sp->done = 0;
  sp->scraped_ms = ig_now_ms();
  pod->scrapes_ok++;
  ig_sched_lora_t *l = &pod->lora;
  l->max_lora = pm->max_lora;
  l->n_running_loras = pm->n_running_loras;
  l->n_waiting_loras = pm->n_waiting_loras;
  _Static_assert(IG_MAX_LORAS == IG_SCHED_MAX_LORAS && IG_LORA_NAME_MAX == IG_SCHED_LORA_NAME_MAX,
                 "metrics and sched LoRA limits differ");
  /* every reader stops at the counts: entries past them are never looked at */
  memcpy(l->running_loras, pm->running_loras, (size_t)l->n_running_loras * sizeof l->running_loras[0]);
  memcpy(l->waiting_loras, pm->waiting_loras, (size_t)l->n_waiting_loras * sizeof l->waiting_loras[0]);
  ig_sched_pod_set_lora(sp, l); /* adapter names to ids once per scrape, not per pick */
  /* requests of ours that wait for an adapter slot do not hold up the others (the engine lets them
   * pass): they do not count towards saturation or the queue score */
  pod->raw_waiting = sp->waiting;
  pod->lora_blocked = ig_sched_lora_blocked(l, &pod->flight);
  sp->waiting = sp->waiting > pod->lora_blocked ? sp->waiting - pod->lora_blocked : 0;
  sp->batch_slots = ig_sched_slots_learn(&pod->slots_est, sp->running, sp->waiting, sp->kv_usage,
                                         pm->has_tokens ? pm->tokens : NAN);
  ig_sched_pod_touch(sp); /* picks remake what they derived from this pod */
  endpoint_touch(s->ep);  /* and the pools' copies of it */
  pools_on_scrape(s->ep);
}

/* Parses what arrived so far: the bytes (*data)[0..*len), either s->in or the shared read buffer.
 * An interim (1xx) response is skipped by moving *data / consuming s->in. Returns 1 when the response
 * is complete, 0 when more is needed, -1 on a protocol error or an oversized page. */
static int scrape_parse(scraper_t *s, const char **data, size_t *len) {
  while (!s->have_head) {
    ig_http_header_t hdrs[SCRAPE_MAX_HDRS];
    ig_http_limits_t lim = {16384, SCRAPE_MAX_HDRS};
    ig_http_response_t res;
    int n = ig_http_parse_response(*data, *len, &res, hdrs, SCRAPE_MAX_HDRS, &lim);
    if (n == IG_EAGAIN) return 0;
    if (n < 0) return -1;
    if (res.status >= 100 && res.status < 200) {
      if (*data == s->in.data) {
        ig_buf_consume(&s->in, (size_t)n);
        *data = s->in.data;
        *len = s->in.len;
      } else {
        *data += n;
        *len -= (size_t)n;
      }
      continue;
    }
    s->have_head = 1;
    s->head_len = s->off = (size_t)n;
    s->status = res.status;
    s->chunked = res.chunked;
    s->keep_alive = res.keep_alive;
    s->content_length = res.content_length;
    if (s->chunked) ig_chunked_init(&s->dec);
    if (!s->chunked && s->content_length < 0) s->keep_alive = 0; /* ends at close */
    if (s->content_length > (int64_t)SCRAPE_MAX_BODY) return -1;
  }
  if (s->chunked) {
    while (s->off < *len) {
      size_t used = 0, dlen = 0;
      const char *d = NULL;
      int rc = ig_chunked_next(&s->dec, *data + s->off, *len - s->off, &used, &d, &dlen);
      if (rc < 0 && rc != IG_EAGAIN) return -1;
      s->off += used;
      if (dlen) ig_buf_append(&s->body, d, dlen);
      if (s->body.len > SCRAPE_MAX_BODY) return -1;
      if (rc == 1) return 1;
      if (rc == IG_EAGAIN || (used == 0 && dlen == 0)) break;
    }
    return 0;
  }
  if (s->content_length >= 0) return *len - s->head_len >= (uint64_t)s->content_length ? 1 : 0;
  return *len - s->head_len > SCRAPE_MAX_BODY ? -1 : 0; /* close-delimited */
}

static void on_conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  sconn_t *k = h->data;
  (void)hint;
  static char sink[4096];
  if (!k->s) {
    *buf = uv_buf_init(sink, sizeof sink);
    return;
  }
  scraper_t *s = k->s;
  if (s->in.len == 0 || k->tls) {
    *buf = uv_buf_init(rbuf, sizeof rbuf); /* the start of a response: see the top of the file */
    return;
  }
  ig_buf_reserve(&s->in, 16384);
  buf->base = s->in.data + s->in.len;
  buf->len = s->in.cap - s->in.len - 1;
}

/* New response bytes: data[0..len) is all of the response so far, either in s->in or (its first
 * bytes) in a shared buffer, parsed in place and copied into s->in only when incomplete. */
static void scrape_on_bytes(scraper_t *s, const char *data, size_t len) {
  int rc = scrape_parse(s, &data, &len);
  if (rc < 0) {
    ig_debug("scrape %s: bad or oversized metrics response", s->ep->name);
    scrape_done(s, 0, 0, NULL, 0);
  } else if (rc == 1) {
    int extra = !s->chunked && len - s->head_len > (uint64_t)s->content_length;
    if (s->chunked) extra = s->off < len;
    scrape_done(s, 1, s->keep_alive && !extra, data, len);
  } else if (data != s->in.data) {
    /* incomplete: keep what came (offsets in s are relative to data) for the next read, which then
     * lands in s->in */
    ig_buf_append(&s->in, data, len);
  }
}

/* The connection closed (or failed) while a scrape was on it: a close-delimited page is complete. */
static void scrape_on_eof(scraper_t *s) {
  int complete = s->have_head && !s->chunked && s->content_length < 0;
  scrape_done(s, complete, 0, s->in.data, s->in.len);
}

/* Logs a TLS failure of the scraper's connection: a warning at most every TLS_WARN_EVERY_MS. */
static void scrape_tls_warn(scraper_t *s, const char *why) {
  if (tls_warn_due(&s->tls_warn_ms, ig_now_ms()))
    ig_warn("scrape %s: %s; the pod has no metrics while this lasts (repeats logged at debug level)",
            s->ep->name, why);
  else
    ig_debug("scrape %s: %s", s->ep->name, why);
}

/* The TLS handshake of the scraper's connection failed: the scrape fails (the pod goes stale). */
static void scrape_tls_failed(scraper_t *s, const char *why) {
  scrape_tls_warn(s, why);
  scrape_done(s, 0, 0, NULL, 0);
}

static void on_tls_write(uv_write_t *req, int status);

/* TLS: ciphertext p[0..n) was read. Decrypts it (into the shared plaintext buffer at the start of a
 * response, else onto s->in), answers the handshake, sends the waiting scrape once the handshake is
 * done, and goes on like a plain read with the plaintext. */
static void scrape_tls_read(sconn_t *k, const char *p, size_t n) {
  scraper_t *s = k->s;
  int in_place = s->in.len == 0;
  ig_buf_t *plain = in_place ? &tplain : &s->in;
  if (in_place) ig_buf_reset(&tplain);
  size_t before = plain->len;
  int rc = tls_conn_pump(k->tls, (uv_stream_t *)&k->tcp, on_tls_write, p, n, plain);
  if (!k->connected) {
    if (rc < 0) {
      char why[320];
      if (rc == IG_EIO || rc == IG_ECLOSED) tls_conn_set_error(k->tls, "the connection failed");
      scrape_tls_failed(s, tls_conn_failure(k->tls, why, sizeof why));
      return;
    }
    if (!tls_conn_established(k->tls)) return;
    k->connected = 1;
    ig_buf_reset(plain); /* nothing is expected before the request */
    scrape_send(s);
    return;
  }
  if (!s->started_ms) {
    /* post-handshake messages (session tickets) are fine on an idle connection; data or a close is not */
    if (rc < 0 || plain->len != before) conn_drop(s);
    return;
  }
  if (plain->len != before) {
    if (in_place)
      scrape_on_bytes(s, tplain.data, tplain.len);
    else
      scrape_on_bytes(s, s->in.data, s->in.len);
  }
  if (rc < 0 && k->s) {
    if (s->started_ms)
      scrape_on_eof(s);
    else
      conn_drop(s); /* closed after a complete response */
  }
}

static void on_conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  sconn_t *k = st->data;
  scraper_t *s = k->s;
  if (!s || nread == 0) return;
  if (k->tls && nread > 0) {
    scrape_tls_read(k, buf->base, (size_t)nread);
    return;
  }
  if (!s->started_ms) {
    conn_drop(s); /* the server closed (or spoke on) the idle connection */
    return;
  }
  if (k->tls && !k->connected) {
    char why[320];
    tls_conn_set_error(k->tls,
                       nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
    scrape_tls_failed(s, tls_conn_failure(k->tls, why, sizeof why));
    return;
  }
  if (nread < 0) {
    scrape_on_eof(s);
    return;
  }
  if (buf->base == rbuf) {
    scrape_on_bytes(s, rbuf, (size_t)nread); /* nothing of this response was kept yet: parse in place */
    return;
  }
  s->in.len += (size_t)nread;
  s->in.data[s->in.len] = '\0';
  scrape_on_bytes(s, s->in.data, s->in.len);
}

static void on_conn_write(uv_write_t *req, int status) {
  sconn_t *k = req->handle->data;
  if (status < 0 && k->s && k->s->started_ms) scrape_done(k->s, 0, 0, NULL, 0);
}

/* A queued TLS write (stream_write's request) ended. */
static void on_tls_write(uv_write_t *req, int status) {
  sconn_t *k = req->handle->data;
  stream_write_done(req);
  if (status < 0 && k->s && k->s->started_ms) scrape_done(k->s, 0, 0, NULL, 0);
}

static void on_conn_connect(uv_connect_t *req, int status) {
  sconn_t *k = req->data;
  scraper_t *s = k->s;
  if (!s) return;
  if (status < 0) {
    ig_debug("scrape %s: connect failed: %s", s->ep->name, uv_strerror(status));
    scrape_done(s, 0, 0, NULL, 0);
    return;
  }
  uv_tcp_nodelay(&k->tcp, 1);
  uv_read_start((uv_stream_t *)&k->tcp, on_conn_alloc, on_conn_read);
  if (k->tls) {
    /* the ClientHello; the scrape is sent once the handshake is done */
    if (tls_conn_flush(k->tls, (uv_stream_t *)&k->tcp, on_tls_write) != 0) scrape_done(s, 0, 0, NULL, 0);
    return;
  }
  k->connected = 1;
  scrape_send(s);
}

/* Builds the scraper's request text (once per path). */
static void scrape_build_req(scraper_t *s) {
  ig_buf_reset(&s->req);
  ig_buf_printf(&s->req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: infergate\r\nAccept: text/plain\r\n\r\n",
                s->path, s->ep->name);
}

/* Writes the GET on the connected connection: straight from the scraper's prebuilt request; only a
 * short write copies the rest into the connection, which owns it until the queued write ends. */
static void scrape_send(scraper_t *s) {
  sconn_t *k = s->conn;
  uv_buf_t b = uv_buf_init(s->req.data, (unsigned)s->req.len);
  if (k->tls) {
    if (tls_conn_send(k->tls, (uv_stream_t *)&k->tcp, &b, 1, on_tls_write) != 0)
      scrape_done(s, 0, 0, NULL, 0);
    return;
  }
  int w = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
  if (w == UV_EAGAIN || w == UV_ENOSYS) w = 0;
  if (w < 0) {
    scrape_done(s, 0, 0, NULL, 0);
    return;
  }
  if ((size_t)w < b.len) {
    ig_buf_reset(&k->req);
    ig_buf_append(&k->req, s->req.data + w, b.len - (size_t)w);
    b = uv_buf_init(k->req.data, (unsigned)k->req.len);
    if (uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_conn_write) != 0) scrape_done(s, 0, 0, NULL, 0);
  }
}

/* The backend of the current snapshot that reaches ep over TLS (an endpoint's TLS settings are part
 * of its identity, so every backend naming it has the same ones); NULL when none names it any more. */
static const backend_rt_t *tls_backend_of(const endpoint_t *ep) {
  const snapshot_t *snap = gw.snap;
  for (size_t i = 0; snap && i < snap->n_backends; i++) {
    const backend_rt_t *be = &snap->backends[i];
    if (!be->tls_ctx || !be->cfg->tls) continue;
    for (size_t j = 0; j < be->n_eps; j++)
      if (be->eps[j] == ep) return be;
  }
  return NULL;
}

/* Sets up the TLS state of a new connection to a TLS endpoint. Returns 0, or IG_ENOENT (logged)
 * when it cannot: the scrape then fails, nothing is sent in plain text. */
static int scrape_tls_new(scraper_t *s, sconn_t *k) {
  const backend_rt_t *be = tls_backend_of(s->ep);
  if (!be) {
    ig_debug("scrape %s: no TLS settings in the current configuration", s->ep->name);
    return IG_ENOENT;
  }
  k->tls = tls_conn_new_client(be->tls_ctx, s->ep->host, be->cfg->tls->server_name, s->ep->name);
  if (!k->tls) {
    scrape_tls_warn(s, "cannot set up TLS");
    return IG_ENOENT;
  }
  tls_conn_keep_buffers(k->tls); /* the connection reads every scrape interval */
  return 0;
}

/* Starts one scrape: on the kept-alive connection, or a new one. */
static void scrape_begin(scraper_t *s) {
  s->started_ms = ig_now_ms();
  ig_buf_reset(&s->in);
  ig_buf_reset(&s->body);
  s->have_head = 0;
  s->head_len = s->off = 0;
  s->status = 0;
  if (s->conn && s->conn->connected) {
    scrape_send(s);
    return;
  }
  if (s->conn) return; /* still connecting */
  sconn_t *k = IG_NEW(sconn_t);
  k->ep = s->ep;
  k->s = s;
  s->ep->conn_refs++;
  uv_tcp_init(gw.loop, &k->tcp);
  k->tcp.data = k;
  k->creq.data = k;
  s->conn = k;
  if (s->ep->tls_key && scrape_tls_new(s, k) != 0) {
    scrape_done(s, 0, 0, NULL, 0);
    return;
  }
  int rc = uv_tcp_connect(&k->creq, &k->tcp, (const struct sockaddr *)&s->ep->addr, on_conn_connect);
  if (rc < 0) scrape_done(s, 0, 0, NULL, 0);
}

static void on_tick(uv_timer_t *t) {
  scraper_t *s = t->data;
  if (gw.stopping) {
    scrape_stop(s->ep); /* the loop must be able to end (e.g. startup failed after the snapshot) */
    return;
  }
  uint64_t now = ig_now_ms();
  if (s->started_ms) {
    unsigned timeout = s->interval_ms > SCRAPE_MIN_TIMEOUT_MS ? s->interval_ms : SCRAPE_MIN_TIMEOUT_MS;
    /* a TLS handshake (public-key crypto on both sides) may take longer than a scrape */
    if (s->conn && s->conn->tls && !s->conn->connected && timeout < SCRAPE_HANDSHAKE_TIMEOUT_MS)
      timeout = SCRAPE_HANDSHAKE_TIMEOUT_MS;
    if (now - s->started_ms < timeout) return; /* never two in flight */
    ig_debug("scrape %s: timed out", s->ep->name);
    scrape_done(s, 0, 0, NULL, 0);
  }
  scrape_begin(s);
}

static void on_timer_close(uv_handle_t *h) {
  scraper_t *s = h->data;
  endpoint_t *ep = s->ep;
  ig_buf_free(&s->in);
  ig_buf_free(&s->body);
  ig_buf_free(&s->req);
  free(s->path);
  free(s);
  ep->conn_refs--;
  endpoint_maybe_free(ep);
}

/* Starts scraping ep with a pool's settings, or updates them (the newest snapshot wins). */
void scrape_start(endpoint_t *ep, const ig_backend_cfg_t *cfg) {
  if (!ep->pod) {
    ep->pod = pod_new();
    endpoint_touch(ep);
  }
  scraper_t *s = ep->scr;
  unsigned interval = cfg->scrape_interval_ms ? cfg->scrape_interval_ms : 50;
  const char *path = cfg->metrics_path ? cfg->metrics_path : "/metrics";
  if (!s) {
    s = IG_NEW(scraper_t);
    s->ep = ep;
    ep->conn_refs++;
    uv_timer_init(gw.loop, &s->timer);
    s->timer.data = s;
    ep->scr = s;
    s->interval_ms = interval;
    s->engine = cfg->engine;
    s->path = ig_strdup(path);
    scrape_build_req(s);
    uv_timer_start(&s->timer, on_tick, 0, interval);
    return;
  }
  s->engine = cfg->engine;
  if (strcmp(s->path, path) != 0) {
    free(s->path);
    s->path = ig_strdup(path);
    scrape_build_req(s);
  }
  if (s->interval_ms != interval) {
    s->interval_ms = interval;
    uv_timer_start(&s->timer, on_tick, interval, interval);
  }
}

/* Stops scraping ep (no pool names it any more, or the gateway stops). */
void scrape_stop(endpoint_t *ep) {
  scraper_t *s = ep->scr;
  if (!s) return;
  ep->scr = NULL;
  s->started_ms = 0;
  conn_drop(s);
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_timer_close);
}

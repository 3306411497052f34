/* Client side of the HTTP proxy: accept, parse one request at a time (pipelined requests wait until
 * the previous response is finished), route, read the body with a bound, hand the request to the
 * upstream side, and end the request (access log, counters, keep-alive or close). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"

static void client_process(client_t *c);
static void client_close_graceful(client_t *c);
static void on_client_timer(uv_timer_t *t);
static void on_client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static int tls_flush(client_t *c);
static void client_tls_read(client_t *c, const char *p, size_t n);

/* ---------------------------------------------------------------- write helper */

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
  char data[];
} wreq_t;

int stream_write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, uv_write_cb cb, int *queued) {
  *queued = 0;
  size_t total = 0;
  for (unsigned i = 0; i < n; i++)
    total += bufs[i].len;
  if (total == 0) return 0;
  int w = uv_try_write(s, bufs, n);
  if (w == UV_EAGAIN || w == UV_ENOSYS) w = 0;
  if (w < 0) return w;
  if ((size_t)w == total) return 0;
  size_t skip = (size_t)w, rest = total - skip;
  wreq_t *r = ig_malloc(sizeof *r + rest);
  char *p = r->data;
  for (unsigned i = 0; i < n; i++) {
    size_t len = bufs[i].len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    memcpy(p, bufs[i].base + skip, len - skip);
    p += len - skip;
    skip = 0;
  }
  r->buf = uv_buf_init(r->data, (unsigned)rest);
  int rc = uv_write(&r->req, s, &r->buf, 1, cb);
  if (rc) {
    free(r);
    return rc;
  }
  *queued = 1;
  return 0;
}

void stream_write_done(uv_write_t *req) {
  free(container_of(req, wreq_t, req));
}

/* ---------------------------------------------------------------- lifecycle */

static void on_client_close(uv_handle_t *h) {
  client_t *c = h->data;
  if (--c->nhandles) return;
  ig_buf_free(&c->in);
  ig_buf_free(&c->fwd);
  ig_buf_free(&c->body);
  ig_buf_free(&c->tmp);
  tls_conn_free(c->tls);
  listener_unref(c->lst);
  free(c);
  gw_check_drained();
}

/* Appends s at dst[off] (escaping a Prometheus label value when esc), always NUL-terminated and
 * bounded by cap; returns the new length. */
static size_t put(char *dst, size_t cap, size_t off, const char *s, int esc) {
  for (; *s && off + 3 < cap; s++) {
    if (esc && (*s == '"' || *s == '\\' || *s == '\n')) {
      dst[off++] = '\\';
      dst[off++] = *s == '\n' ? 'n' : *s;
    } else {
      dst[off++] = *s;
    }
  }
  dst[off] = '\0';
  return off;
}

/* Writes the access log line and the counters of the current request, once. */
static void req_account(client_t *c) {
  req_t *q = &c->req;
  if (!c->active || c->lst->kind == LST_ADMIN) return;
  c->active = 0;
  const char *route = "-";
  if (q->snap && q->route >= 0) route = q->snap->cfg->routes[q->route].name;
  char series[1400];
  size_t o = 0;
  o = put(series, sizeof series, o, "infergate_http_requests_total{route=\"", 0);
  o = put(series, sizeof series, o, route, 1);
  o = put(series, sizeof series, o, "\",status=\"", 0);
  char st[16];
  snprintf(st, sizeof st, "%d", q->status);
  o = put(series, sizeof series, o, st, 0);
  put(series, sizeof series, o, "\"}", 0);
  stats_inc(series, 1);
  stats_request_done(c);
  access_log_write(c, q->last_ep ? q->last_ep->name : "-");
}

/* Releases what the current request holds (upstream connection, snapshot) without logging. */
static void req_release(client_t *c, int reuse_upstream) {
  req_t *q = &c->req;
  pool_unqueue(c);
  int kick = q->counted && q->be && q->be->pool; /* a pod may have room now */
  if (q->up) upstream_detach(q->up, reuse_upstream);
  q->up = NULL;
  if (q->counted) gw.inflight--;
  q->counted = 0;
  snapshot_t *snap = q->snap;
  q->snap = NULL;
  if (kick) pool_kick(q->be); /* the snapshot, and so the pool, is still held here */
  snapshot_release(snap);
}

static void req_clear(client_t *c) {
  memset(&c->req, 0, sizeof c->req);
  c->req.route = -1;
  ig_buf_reset(&c->body);
  if (c->body.cap > (1u << 20)) ig_buf_free(&c->body);
  if (c->tmp.cap > (1u << 20)) ig_buf_free(&c->tmp);
}

/* Closes the connection now; an unfinished request is logged with status 499 (client gone) unless
 * a status was already sent. */
void client_abort(client_t *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->active && c->req.status == 0) c->req.status = 499;
  req_account(c);
  req_release(c, 0);
  list_remove(&c->link);
  if (c->lst->kind != LST_ADMIN) gw.n_clients--;
  uv_close((uv_handle_t *)&c->tcp, on_client_close);
  uv_close((uv_handle_t *)&c->timer, on_client_close);
}

static void on_client_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the linger timer or the client's EOF closes the connection */
}

/* Closes after everything queued was written: half-close our side, then discard what the client
 * still sends for a short while (so that it reads our response instead of a reset). */
static void client_close_graceful(client_t *c) {
  if (c->closing) return;
  if (c->writes_pending) {
    /* read no further requests; bound the wait for a client that does not read its response */
    c->close_after_write = 1;
    c->state = CS_LINGER;
    uv_timer_start(&c->timer, on_client_timer, gw.snap->cfg->client_timeout_ms, 0);
    return;
  }
  req_account(c);
  req_release(c, 0);
  c->state = CS_LINGER;
  ig_buf_reset(&c->in);
  if (c->tls) {
    tls_conn_close_notify(c->tls);
    if (tls_flush(c) != 0 || c->closing) return;
  }
  if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_client_shutdown) != 0) {
    client_abort(c);
    return;
  }
  if (!c->reading) {
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
  }
  uv_timer_start(&c->timer, on_client_timer, LINGER_MS, 0);
}

/* ---------------------------------------------------------------- writing */

static void on_client_write(uv_write_t *req, int status) {
  client_t *c = req->handle->data;
  stream_write_done(req);
  c->writes_pending--;
  if (c->closing) return;
  if (status < 0) {
    client_abort(c);
    return;
  }
  if (c->writes_pending == 0 && c->close_after_write) {
    c->close_after_write = 0;
    client_close_graceful(c);
    return;
  }
  if (c->up_paused && c->req.up) {
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WQ_LOW) {
      c->up_paused = 0;
      uv_timer_stop(&c->timer);
      upstream_resume(c->req.up);
    } else {
      client_stall_timer(c); /* progress: the client is slow, not stuck */
    }
  }
}

/* Bounds how long a client may leave its response unread while the upstream is paused. */
void client_stall_timer(client_t *c) {
  uv_timer_start(&c->timer, on_client_timer, gw.snap->cfg->client_timeout_ms, 0);
}

void client_write(client_t *c, const uv_buf_t *bufs, unsigned n) {
  if (c->closing || c->state == CS_LINGER) return;
  int queued = 0;
  req_t *q = &c->req;
  for (unsigned i = 0; i < n; i++) {
    q->bytes_out += bufs[i].len;
    if (q->model[0] && q->resp_started) {
      /* keep the last bytes: the "usage" object ends the body (or the stream) */
      size_t len = bufs[i].len;
      const char *p = bufs[i].base;
      if (len >= REQ_TAIL) {
        memcpy(q->tail, p + len - REQ_TAIL, REQ_TAIL);
        q->tail_len = REQ_TAIL;
      } else {
        size_t keep = q->tail_len + len > REQ_TAIL ? REQ_TAIL - len : q->tail_len;
        memmove(q->tail, q->tail + q->tail_len - keep, keep);
        memcpy(q->tail + keep, p, len);
        q->tail_len = keep + len;
      }
    }
  }
  if (c->tls) {
    /* each call is encrypted and written at once: streamed chunks go out as they arrive */
    if (tls_conn_encrypt(c->tls, c->peer, bufs, n) != 0) {
      client_abort(c);
      return;
    }
    tls_flush(c);
    return;
  }
  int rc = stream_write((uv_stream_t *)&c->tcp, bufs, n, on_client_write, &queued);
  if (rc < 0) {
    ig_debug("client %s: write failed: %s", c->peer, uv_strerror(rc));
    client_abort(c);
    return;
  }
  if (queued) c->writes_pending++;
}

/* Writes the ciphertext the TLS connection has produced (records, handshake messages, alerts).
 * Returns 0, or -1 after aborting the connection on a write error. */
static int tls_flush(client_t *c) {
  char *data;
  size_t len = tls_conn_pending(c->tls, &data);
  if (len == 0) return 0;
  int queued = 0;
  uv_buf_t iov = uv_buf_init(data, (unsigned)len);
  int rc = stream_write((uv_stream_t *)&c->tcp, &iov, 1, on_client_write, &queued);
  tls_conn_consumed(c->tls); /* stream_write copied what it did not send */
  if (rc < 0) {
    ig_debug("client %s: write failed: %s", c->peer, uv_strerror(rc));
    client_abort(c);
    return -1;
  }
  if (queued) c->writes_pending++;
  return 0;
}

/* ---------------------------------------------------------------- request end */

/* Ends the current request: logs it, releases the upstream connection (back to its pool when it can
 * be reused), then either closes the connection or gets ready for the next request. */
void request_finish(client_t *c, int close_client) {
  if (c->closing) return;
  req_t *q = &c->req;
  int ka = q->keep_alive && !close_client && !gw.draining && !c->lst->closed;
  req_account(c);
  req_release(c, 1);
  req_clear(c);
  c->state = CS_HEAD;
  c->served = 1;
  c->up_paused = 0;
  if (!ka) {
    client_close_graceful(c);
    return;
  }
  if (!c->reading) {
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
  }
  if (c->in.len) {
    /* a pipelined request is already buffered: parse it on the next loop turn, not from inside
     * the upstream callback that got us here */
    c->resume_pending = 1;
    uv_timer_start(&c->timer, on_client_timer, 0, 0);
  } else {
    uv_timer_start(&c->timer, on_client_timer, gw.snap->cfg->client_timeout_ms, 0);
  }
}

/* Sends a complete local response (admin endpoints) and ends the request. */
int client_local_response(client_t *c, int status, const char *ctype, const char *body, size_t len) {
  req_t *q = &c->req;
  ig_buf_t *b = &c->tmp;
  ig_buf_reset(b);
  ig_buf_printf(b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status,
                ig_http_reason(status), ctype, len);
  if (!q->keep_alive)
    ig_buf_puts(b, "Connection: close\r\n");
  else if (q->minor == 0)
    ig_buf_puts(b, "Connection: keep-alive\r\n");
  ig_buf_puts(b, "\r\n");
  q->status = status;
  q->resp_started = 1;
  uv_buf_t iov[2] = {uv_buf_init(b->data, (unsigned)b->len), uv_buf_init((char *)body, (unsigned)len)};
  client_write(c, iov, q->is_head ? 1 : 2);
  request_finish(c, !q->keep_alive);
  return 0;
}

static const char *error_type(int status) {
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/* Sends an OpenAI-style error response and ends the request (closing when close is set). When the
 * response head has already gone out, the only honest signal left is closing the connection. */
void client_send_error(client_t *c, int status, const char *code, const char *msg, int close) {
  client_send_error_ex(c, status, error_type(status), code, msg, NULL, close);
}

void client_send_error_ex(client_t *c, int status, const char *type, const char *code, const char *msg,
                          const char *extra_headers, int close) {
  if (c->closing) return;
  req_t *q = &c->req;
  if (q->resp_started) {
    client_abort(c);
    return;
  }
  if (!c->active) {
    c->active = 1;
    q->t_start_us = ig_now_us();
  }
  if (close || c->lst->closed) q->keep_alive = 0; /* a removed listener's connection closes after */
  if (!q->keep_alive) close = 1;
  if (q->up) upstream_detach(q->up, 0);
  q->up = NULL;
  ig_buf_reset(&c->tmp);
  ig_http_write_error(&c->tmp, status, type, code, msg, close);
  if (extra_headers) {
    /* after the status line */
    const char *eol = memchr(c->tmp.data, '\n', c->tmp.len);
    if (eol) {
      size_t at = (size_t)(eol + 1 - c->tmp.data), n = strlen(extra_headers);
      ig_buf_reserve(&c->tmp, n);
      memmove(c->tmp.data + at + n, c->tmp.data + at, c->tmp.len - at);
      memcpy(c->tmp.data + at, extra_headers, n);
      c->tmp.len += n;
      c->tmp.data[c->tmp.len] = '\0';
    }
  }
  q->status = status;
  q->resp_started = 1;
  if (!q->t_first_us) q->t_first_us = ig_now_us();
  uv_buf_t iov = uv_buf_init(c->tmp.data, (unsigned)c->tmp.len);
  client_write(c, &iov, 1);
  request_finish(c, close);
}

/* ---------------------------------------------------------------- forwarded head */

static void buf_add(ig_buf_t *b, const char *p, size_t n) {
  ig_buf_append(b, p, n);
}
#define BUF_LIT(b, s) buf_add((b), (s), sizeof(s) - 1)

/* Hop-by-hop and framing headers that a proxy must not forward as is. */
static int is_hop_header(const char *n, size_t len) {
  switch (len) {
  case 2:
    return strncasecmp(n, "te", 2) == 0;
  case 6:
    return strncasecmp(n, "expect", 6) == 0;
  case 7:
    return strncasecmp(n, "trailer", 7) == 0 || strncasecmp(n, "upgrade", 7) == 0;
  case 10:
    return strncasecmp(n, "connection", 10) == 0 || strncasecmp(n, "keep-alive", 10) == 0;
  case 14:
    return strncasecmp(n, "content-length", 14) == 0;
  case 17:
    return strncasecmp(n, "transfer-encoding", 17) == 0;
  default:
    break;
  }
  return len > 6 && strncasecmp(n, "proxy-", 6) == 0;
}

/* Whether a header is listed in the Connection header (and is therefore hop-by-hop too). */
static int listed_in_connection(const ig_http_header_t *conn, const char *n, size_t len) {
  if (!conn || len >= 64) return 0;
  char name[64];
  memcpy(name, n, len);
  name[len] = '\0';
  return ig_http_value_has_token(conn->value, conn->value_len, name);
}

static void copy_trunc(char *dst, size_t cap, const char *src, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static void gen_request_id(char *out) {
  static const char hex[] = "0123456789abcdef";
  uint64_t a = ig_rng_next(&gw.rng), b = ig_rng_next(&gw.rng);
  for (int i = 0; i < 16; i++) {
    out[i] = hex[(a >> (i * 4)) & 15];
    out[16 + i] = hex[(b >> (i * 4)) & 15];
  }
  out[32] = '\0';
}

/* Writes the request line and the end-to-end headers to c->fwd, adding X-Forwarded-For and
 * X-Request-Id. Content-Length and the blank line are added once the body is known. */
static void build_forward_head(client_t *c, const ig_http_request_t *r) {
  ig_buf_t *b = &c->fwd;
  req_t *q = &c->req;
  ig_buf_reset(b);
  ig_buf_reserve(b, 256 + r->target_len);
  buf_add(b, r->method, r->method_len);
  BUF_LIT(b, " ");
  buf_add(b, r->target, r->target_len);
  BUF_LIT(b, " HTTP/1.1\r\n");
  const ig_http_header_t *conn = NULL;
  for (size_t i = 0; i < r->num_headers; i++)
    if (ig_strncaseeq(r->headers[i].name, r->headers[i].name_len, "connection")) conn = &r->headers[i];
  int xff = 0, have_host = 0;
  /* a route with API keys consumes the client's Authorization unless told to pass it on */
  const ig_route_cfg_t *rt = q->snap && q->route >= 0 ? &q->snap->cfg->routes[q->route] : NULL;
  int drop_auth = rt && rt->api_keys_file && !rt->forward_authorization;
  const ig_header_filter_cfg_t *f = q->hdr_req; /* read the client's headers, forward the filtered */
  for (size_t i = 0; i < r->num_headers; i++) {
    const ig_http_header_t *h = &r->headers[i];
    if (is_hop_header(h->name, h->name_len)) continue;
    if (drop_auth && h->name_len == 13 && strncasecmp(h->name, "authorization", 13) == 0) continue;
    if (conn && listed_in_connection(conn, h->name, h->name_len)) continue;
    if (h->name_len == 15 && strncasecmp(h->name, "x-forwarded-for", 15) == 0) {
      xff = 1;
      if (f && hdr_filter_drops(f, h->name, h->name_len)) continue;
      BUF_LIT(b, "X-Forwarded-For: ");
      buf_add(b, h->value, h->value_len);
      BUF_LIT(b, ", ");
      ig_buf_puts(b, c->peer);
      BUF_LIT(b, "\r\n");
      xff = 1;
      continue;
    }
    if (h->name_len == 12 && strncasecmp(h->name, "x-request-id", 12) == 0) {
      if (q->reqid[0] || h->value_len == 0 || h->value_len >= sizeof q->reqid) continue;
      memcpy(q->reqid, h->value, h->value_len);
      q->reqid[h->value_len] = '\0';
    }
    if (h->name_len == 4 && strncasecmp(h->name, "host", 4) == 0) have_host = 1;
    if (h->name_len == 31 && strncasecmp(h->name, "x-gateway-inference-fairness-id", 31) == 0)
      copy_trunc(q->fairness, sizeof q->fairness, h->value, h->value_len);
    if (h->name_len == 28 && strncasecmp(h->name, "x-gateway-model-name-rewrite", 28) == 0) {
      int pool = q->be && q->be->cfg->policy == IG_LB_INFERENCE;
      if (pool && (h->value_len == 0 || h->value_len >= sizeof q->rewrite)) {
        q->pending_status = 400;
        q->pending_code = "invalid_model";
        q->pending_msg = "x-gateway-model-name-rewrite must name a model (at most 256 bytes)";
      } else if (pool) {
        copy_trunc(q->rewrite, sizeof q->rewrite, h->value, h->value_len);
      }
    }
    if (h->name_len == 23 && strncasecmp(h->name, "x-infergate-criticality", 23) == 0) {
      if (ig_strncaseeq(h->value, h->value_len, "critical"))
        q->hdr_crit = IG_CRIT_CRITICAL;
      else if (ig_strncaseeq(h->value, h->value_len, "standard"))
        q->hdr_crit = IG_CRIT_STANDARD;
      else if (ig_strncaseeq(h->value, h->value_len, "sheddable"))
        q->hdr_crit = IG_CRIT_SHEDDABLE;
    }
    if (f && hdr_filter_drops(f, h->name, h->name_len)) continue;
    buf_add(b, h->name, h->name_len);
    BUF_LIT(b, ": ");
    buf_add(b, h->value, h->value_len);
    BUF_LIT(b, "\r\n");
  }
  if (f) {
    /* the filter has the last word on the headers the gateway adds itself */
    if (hdr_filter_drops(f, "x-forwarded-for", 15)) xff = 1;
    if (hdr_filter_sets(f, "host")) have_host = 1;
    hdr_filter_append(f, b);
  }
  if (!xff) {
    BUF_LIT(b, "X-Forwarded-For: ");
    ig_buf_puts(b, c->peer);
    BUF_LIT(b, "\r\n");
  }
  if (!q->reqid[0]) {
    gen_request_id(q->reqid);
    if (!f || !hdr_filter_drops(f, "x-request-id", 12)) {
      BUF_LIT(b, "X-Request-Id: ");
      ig_buf_puts(b, q->reqid);
      BUF_LIT(b, "\r\n");
    }
  }
  if (!have_host && q->be && q->be->n_eps) {
    BUF_LIT(b, "Host: ");
    ig_buf_puts(b, q->be->eps[0]->name);
    BUF_LIT(b, "\r\n");
  }
}

/* ---------------------------------------------------------------- request start */

static void set_pending(req_t *q, int status, const char *code, const char *msg) {
  q->pending_status = status;
  q->pending_code = code;
  q->pending_msg = msg;
}

/* Sends the error decided at head time (401 carries the Bearer challenge). */
static void send_pending(client_t *c, int close) {
  req_t *q = &c->req;
  if (q->pending_status == 401)
    client_send_error_ex(c, 401, "invalid_request_error", q->pending_code, q->pending_msg,
                         "WWW-Authenticate: Bearer\r\n", close);
  else
    client_send_error(c, q->pending_status, q->pending_code, q->pending_msg, close);
}

/* API keys of route ri (issue #9): sets a pending 401 unless the request carries one bearer key of the
 * route. Every key is compared, in constant time (auth.c). */
static void check_api_key(client_t *c, const ig_http_request_t *r, size_t ri) {
  req_t *q = &c->req;
  const auth_keys_t *k = q->snap->auth ? &q->snap->auth[ri] : NULL;
  if (!k || !k->active) return;
  const ig_http_header_t *auth = NULL;
  int n = 0;
  for (size_t i = 0; i < r->num_headers; i++)
    if (ig_strncaseeq(r->headers[i].name, r->headers[i].name_len, "authorization")) {
      auth = &r->headers[i];
      n++;
    }
  if (n == 1 && auth_check(k, auth->value, auth->value_len)) return;
  set_pending(q, 401, "invalid_api_key",
              n == 0 ? "You didn't provide an API key. Send it in the Authorization header: Bearer YOUR_KEY."
                     : "Incorrect API key provided.");
  char series[400];
  size_t o = put(series, sizeof series, 0, "infergate_auth_failures_total{route=\"", 0);
  o = put(series, sizeof series, o, q->snap->cfg->routes[ri].name, 1);
  put(series, sizeof series, o, "\"}", 0);
  stats_inc(series, 1);
}

/* Picks one of the route's backends by weight; *ref is the reference taken. */
static backend_rt_t *route_backend(snapshot_t *s, const ig_route_cfg_t *rt, const ig_backend_ref_t **ref) {
  if (rt->n_backends == 0) return NULL;
  size_t k = 0;
  if (rt->n_backends > 1) {
    uint64_t total = 0;
    for (size_t i = 0; i < rt->n_backends; i++)
      total += rt->backends[i].weight;
    if (total) {
      uint64_t x = ig_rng_next(&gw.rng) % total;
      for (k = 0; k + 1 < rt->n_backends; k++) {
        if (x < rt->backends[k].weight) break;
        x -= rt->backends[k].weight;
      }
    }
  }
  size_t bi = rt->backends[k].backend_index;
  *ref = &rt->backends[k];
  return bi < s->cfg->n_backends ? &s->backends[bi] : NULL;
}

/* Whether the request target is in origin form ("/path?query"), or "*" for OPTIONS. A reverse proxy
 * refuses absolute and authority forms (and relative junk): they would reach the backend unrouted. */
static int origin_form(const ig_http_request_t *r) {
  if (r->target_len >= 1 && r->target[0] == '/') return 1;
  return r->target_len == 1 && r->target[0] == '*' && r->method_len == 7 &&
         memcmp(r->method, "OPTIONS", 7) == 0;
}

/* The time a request head has to arrive completely: the smaller of timeouts.header (0: unset) and
 * timeouts.client. */
static unsigned head_timeout_ms(void) {
  const ig_config_t *cfg = gw.snap->cfg;
  unsigned h = cfg->header_timeout_ms;
  return h && h < cfg->client_timeout_ms ? h : cfg->client_timeout_ms;
}

/* Tries to parse a request head from c->in. Returns 1 when the state moved on (body, local answer),
 * 0 when more input is needed or the connection is closing. */
static int start_request(client_t *c) {
  if (c->lst->closed) {
    /* the listener was removed by a reload: its routes are gone, so close without an answer, as a
     * server does with a keep-alive connection it no longer serves (the client retries elsewhere) */
    client_close_graceful(c);
    return 0;
  }
  snapshot_t *snap = gw.snap;
  const ig_config_t *cfg = snap->cfg;
  ig_http_limits_t lim = {cfg->max_header_bytes, cfg->max_headers};
  ig_http_request_t r;
  int n = ig_http_parse_request(c->in.data, c->in.len, &r, gw.hdrs, gw.n_hdrs, &lim);
  req_t *q = &c->req;
  if (n == IG_EAGAIN) {
    if (c->in.len <= cfg->max_header_bytes) return 0;
    n = IG_ETOOBIG;
  }
  c->active = 1;
  q->t_start_us = ig_now_us();
  q->route = -1;
  q->hdr_crit = -1;
  if (n == IG_ETOOBIG) {
    client_send_error(c, 431, "request_header_too_large", "request header fields too large", 1);
    return 0;
  }
  if (n < 0) {
    client_send_error(c, 400, "bad_request", "malformed HTTP request", 1);
    return 0;
  }
  if (!origin_form(&r)) {
    client_send_error(c, 400, "bad_request", "request target must be an absolute path (origin form)", 1);
    return 0;
  }
  size_t head_len = (size_t)n;
  q->minor = r.minor_version;
  q->keep_alive = r.keep_alive && !gw.draining;
  copy_trunc(q->method, sizeof q->method, r.method, r.method_len);
  copy_trunc(q->path, sizeof q->path, r.target, r.target_len);
  q->is_head = r.method_len == 4 && memcmp(r.method, "HEAD", 4) == 0;
  q->has_body_method = (r.method_len == 4 && memcmp(r.method, "POST", 4) == 0) ||
                       (r.method_len == 3 && memcmp(r.method, "PUT", 3) == 0) ||
                       (r.method_len == 5 && memcmp(r.method, "PATCH", 5) == 0);
  if (c->lst->kind == LST_ADMIN) {
    int has_body = r.chunked || r.content_length > 0;
    if (has_body) q->keep_alive = 0;
    admin_handle(c, &r); /* r points into c->in: consume only afterwards */
    ig_buf_consume(&c->in, head_len);
    return !c->closing;
  }
  q->snap = snapshot_ref(snap);
  if (r.chunked) {
    q->chunked = 1;
    ig_chunked_init(&q->dec);
  } else {
    q->body_left = r.content_length > 0 ? r.content_length : 0;
    if ((uint64_t)q->body_left > cfg->max_body_bytes) {
      client_send_error(c, 413, "request_too_large", "request body too large", 1);
      return 0;
    }
  }
  long li = c->lst->li;
  if (li >= 0)
    q->route = ig_route_match(cfg, (size_t)li, r.host, r.host_len, r.method, r.method_len, r.target,
                              r.path_len, r.headers, r.num_headers);
  if (q->route < 0) {
    set_pending(q, 404, "route_not_found", "no route matches this request");
  } else {
    const ig_route_cfg_t *rt = &cfg->routes[q->route];
    const ig_backend_ref_t *ref = NULL;
    q->be = route_backend(snap, rt, &ref);
    q->hdr_req = ref && ref->request_headers ? ref->request_headers : rt->request_headers;
    q->hdr_resp = ref && ref->response_headers ? ref->response_headers : rt->response_headers;
    if (rt->n_backends == 0) /* every backendRef names nothing (--kube): Gateway API asks for 500 */
      set_pending(q, 500, "backend_not_found", "no backend of this route exists");
    else if (!q->be || q->be->n_eps == 0)
      set_pending(q, 503, "no_healthy_upstream", "no endpoint available for this route");
    if (rt->timeout_ms) q->deadline_ms = ig_now_ms() + rt->timeout_ms;
    check_api_key(c, &r, (size_t)q->route); /* before anything about the backends is told */
  }
  if (!q->pending_status) build_forward_head(c, &r);
  int expects_body = q->chunked || q->body_left > 0;
  if (r.expect_continue && expects_body && c->in.len == head_len) {
    if (q->pending_status) {
      /* a final status instead of 100: the client may or may not send the body, so close after */
      ig_buf_consume(&c->in, head_len);
      send_pending(c, 1);
      return 0;
    }
    if (r.minor_version >= 1) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      uv_buf_t iov = uv_buf_init((char *)cont, sizeof cont - 1);
      uint64_t saved = q->bytes_out;
      client_write(c, &iov, 1);
      q->bytes_out = saved;
      if (c->closing) return 0;
    }
  }
  ig_buf_consume(&c->in, head_len);
  c->state = CS_BODY;
  uv_timer_start(&c->timer, on_client_timer, cfg->client_timeout_ms, 0);
  return 1;
}

/* Completes a request whose body has been read: answer a pending error, or forward it. */
static void dispatch(client_t *c) {
  req_t *q = &c->req;
  uv_timer_stop(&c->timer);
  if (q->pending_status) {
    send_pending(c, 0);
    return;
  }
  int inference = q->be->cfg->policy == IG_LB_INFERENCE;
  if (inference && pool_prepare(c)) return;
  if (c->body.len || q->has_body_method) {
    char line[48];
    int n = snprintf(line, sizeof line, "Content-Length: %zu\r\n\r\n", c->body.len);
    buf_add(&c->fwd, line, (size_t)n);
  } else {
    BUF_LIT(&c->fwd, "\r\n");
  }
  if (inference && pool_admit(c)) return; /* queued, or answered */
  request_send(c);
}

void request_send(client_t *c) {
  req_t *q = &c->req;
  uv_timer_stop(&c->timer);
  c->state = CS_UPSTREAM;
  q->counted = 1;
  gw.inflight++;
  stats_request_sent(c);
  upstream_start(c, NULL, 0);
}

/* Bounds the wait of a queued request (its TTL). */
void client_queue_timer(client_t *c, uint64_t ms) {
  uv_timer_start(&c->timer, on_client_timer, ms ? ms : 1, 0);
}

/* Moves body bytes from c->in to c->body (decoding chunked framing). Returns 1 when the body is
 * complete and the request moved on, 0 when more input is needed or the connection is closing. */
static int read_body(client_t *c) {
  req_t *q = &c->req;
  size_t max = q->snap->cfg->max_body_bytes;
  int keep = !q->pending_status;
  if (!q->chunked) {
    size_t take = c->in.len < (uint64_t)q->body_left ? c->in.len : (size_t)q->body_left;
    if (take) {
      if (keep) ig_buf_append(&c->body, c->in.data, take);
      ig_buf_consume(&c->in, take);
      q->body_left -= (int64_t)take;
    }
    if (q->body_left > 0) return 0;
  } else {
    size_t off = 0, seen = 0;
    int done = 0;
    while (off < c->in.len) {
      size_t used = 0, dlen = 0;
      const char *data = NULL;
      int rc = ig_chunked_next(&q->dec, c->in.data + off, c->in.len - off, &used, &data, &dlen);
      if (rc < 0 && rc != IG_EAGAIN) {
        client_send_error(c, 400, "bad_request", "malformed chunked request body", 1);
        return 0;
      }
      off += used;
      if (dlen) {
        seen += dlen;
        if (c->body.len + seen > max || q->dec.total > max) {
          client_send_error(c, 413, "request_too_large", "request body too large", 1);
          return 0;
        }
        if (keep) ig_buf_append(&c->body, data, dlen);
      }
      if (rc == 1) {
        done = 1;
        break;
      }
      if (rc == IG_EAGAIN || (used == 0 && dlen == 0)) break;
    }
    ig_buf_consume(&c->in, off);
    if (!done) return 0;
  }
  dispatch(c);
  return 1;
}

/* Runs the state machine over the buffered input until it needs more bytes or waits on upstream. */
static void client_process(client_t *c) {
  while (!c->closing) {
    if (c->state == CS_HEAD) {
      if (c->in.len == 0) return;
      if (!start_request(c)) return;
    } else if (c->state == CS_BODY) {
      if (!read_body(c)) return;
    } else {
      return;
    }
  }
}

/* ---------------------------------------------------------------- callbacks */

static void on_client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  client_t *c = h->data;
  (void)hint;
  req_t *q = &c->req;
  c->into_body = 0;
  if (c->tls) {
    /* ciphertext: decrypted into c->in right away, so one buffer serves every connection */
    static char cipher[READ_CHUNK];
    buf->base = cipher;
    buf->len = sizeof cipher;
    return;
  }
  if (c->state == CS_BODY && !q->chunked && !q->pending_status && c->in.len == 0 && q->body_left > 0) {
    /* the rest of a Content-Length body goes straight to where it is forwarded from */
    size_t want = q->body_left < READ_CHUNK ? (size_t)q->body_left : READ_CHUNK;
    ig_buf_reserve(&c->body, want);
    buf->base = c->body.data + c->body.len;
    buf->len = want;
    c->into_body = 1;
    return;
  }
  if (c->state == CS_LINGER) ig_buf_reset(&c->in);
  ig_buf_reserve(&c->in, 16384);
  buf->base = c->in.data + c->in.len;
  buf->len = c->in.cap - c->in.len - 1;
}

/* New bytes are in c->in: bound pipelined input while a response is under way, else parse. */
static void client_input(client_t *c) {
  if (c->state == CS_UPSTREAM || c->state == CS_QUEUED) {
    /* pipelined bytes wait; keep watching the socket (to see the client leave) but bound them */
    if (c->in.len > gw.snap->cfg->max_header_bytes + 65536) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->reading = 0;
    }
    return;
  }
  client_process(c);
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  client_t *c = s->data;
  if (c->closing) return;
  if (nread < 0) {
    /* EOF or error: a finished connection, or a client that went away mid-request */
    client_abort(c);
    return;
  }
  if (nread == 0) return;
  if (c->tls) {
    client_tls_read(c, buf->base, (size_t)nread);
    return;
  }
  if (c->state == CS_LINGER) {
    ig_buf_reset(&c->in);
    return;
  }
  if (c->state == CS_BODY) /* a body that keeps arriving is not a stalled one */
    uv_timer_start(&c->timer, on_client_timer, gw.snap->cfg->client_timeout_ms, 0);
  if (c->into_body) {
    c->into_body = 0;
    c->body.len += (size_t)nread;
    c->body.data[c->body.len] = '\0';
    c->req.body_left -= nread;
    client_process(c);
    return;
  }
  if (c->state == CS_HEAD && c->in.len == 0 && c->served && c->lst->kind != LST_ADMIN)
    uv_timer_start(&c->timer, on_client_timer, head_timeout_ms(), 0); /* the next head starts: bound it */
  c->in.len += (size_t)nread;
  c->in.data[c->in.len] = '\0';
  client_input(c);
}

/* TLS: decrypts what was read into c->in, sends what the handshake answers, and goes on like a plain
 * read with the plaintext. A failed handshake (plain HTTP to a TLS port included) closes quietly. */
static void client_tls_read(client_t *c, const char *p, size_t n) {
  size_t before = c->in.len;
  int rc = tls_conn_feed(c->tls, c->peer, p, n, &c->in);
  if (tls_flush(c) != 0) return;
  if (rc < 0) {
    client_abort(c);
    return;
  }
  if (c->in.len == before) return;
  if (c->state == CS_LINGER) {
    ig_buf_reset(&c->in);
    return;
  }
  if (c->state == CS_BODY)
    uv_timer_start(&c->timer, on_client_timer, gw.snap->cfg->client_timeout_ms, 0);
  if (c->state == CS_HEAD && before == 0 && c->served)
    uv_timer_start(&c->timer, on_client_timer, head_timeout_ms(), 0);
  client_input(c);
}

static void on_client_timer(uv_timer_t *t) {
  client_t *c = t->data;
  if (c->closing) return;
  if (c->resume_pending) {
    c->resume_pending = 0;
    if (c->state == CS_HEAD) uv_timer_start(&c->timer, on_client_timer, head_timeout_ms(), 0);
    client_process(c);
    return;
  }
  switch (c->state) {
  case CS_HEAD:
    if (c->in.len == 0 && c->served) {
      client_abort(c); /* idle keep-alive connection */
      return;
    }
    client_send_error(c, 408, "request_timeout", "timed out reading the request", 1);
    return;
  case CS_BODY:
    client_send_error(c, 408, "request_timeout", "timed out reading the request body", 1);
    return;
  case CS_QUEUED:
    pool_queue_timeout(c);
    return;
  case CS_UPSTREAM:
    ig_warn("client %s: not reading its response, closing", c->peer);
    client_abort(c);
    return;
  case CS_LINGER:
    client_abort(c);
    return;
  }
}

/* Accepts a connection on an HTTP or admin listener. */
void client_accept(listener_t *l) {
  client_t *c = IG_NEW(client_t);
  uv_tcp_init(gw.loop, &c->tcp);
  c->tcp.data = c;
  c->nhandles = 1;
  if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp) != 0) {
    c->closing = 1;
    c->lst = l;
    l->refs++;
    c->nhandles = 1;
    uv_close((uv_handle_t *)&c->tcp, on_client_close);
    return;
  }
  c->lst = l;
  l->refs++;
  uv_timer_init(gw.loop, &c->timer);
  c->timer.data = c;
  c->nhandles = 2;
  c->req.route = -1;
  if (l->kind == LST_ADMIN) {
    list_insert_tail(&gw.admin_clients, &c->link);
  } else {
    list_insert_tail(&gw.clients, &c->link);
    gw.n_clients++;
    if (gw.n_clients > gw.snap->cfg->max_connections) {
      stats_inc("infergate_connections_rejected_total", 1);
      client_abort(c);
      return;
    }
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  strcpy(c->peer, "-");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    else
      uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
  }
  if (l->tls && !(c->tls = tls_conn_new(l->tls))) {
    ig_warn("listener %s: cannot set up TLS for %s", l->name, c->peer);
    client_abort(c);
    return;
  }
  c->state = CS_HEAD;
  c->reading = 1;
  uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
  /* a new connection owes its first request head within the header timeout (admin: client timeout) */
  unsigned first_ms = l->kind == LST_ADMIN ? gw.snap->cfg->client_timeout_ms : head_timeout_ms();
  uv_timer_start(&c->timer, on_client_timer, first_ms, 0);
}

/* Drain: close connections that sit idle between requests; busy ones close after their response. */
void clients_drain(void) {
  for (link_t *l = gw.clients.next; l != &gw.clients;) {
    client_t *c = container_of(l, client_t, link);
    l = l->next;
    if (c->state == CS_HEAD && c->in.len == 0 && c->writes_pending == 0) client_abort(c);
  }
}

/* Whether c sits between requests: no request head started, nothing left to write. */
static int client_idle(const client_t *c) {
  return !c->closing && c->state == CS_HEAD && c->in.len == 0 && c->writes_pending == 0 && !c->resume_pending;
}

void clients_close_idle_of(const listener_t *l) {
  link_t *heads[2] = {&gw.clients, &gw.admin_clients};
  for (int i = 0; i < 2; i++)
    for (link_t *p = heads[i]->next; p != heads[i];) {
      client_t *c = container_of(p, client_t, link);
      p = p->next;
      if (c->lst == l && client_idle(c)) client_close_graceful(c); /* FIN (and close_notify), no answer */
    }
}

/* Closes every client connection now (end of drain, or forced stop). */
void clients_close_all(int admin_too) {
  for (link_t *l = gw.clients.next; l != &gw.clients;) {
    client_t *c = container_of(l, client_t, link);
    l = l->next;
    client_abort(c);
  }
  if (!admin_too) return;
  for (link_t *l = gw.admin_clients.next; l != &gw.admin_clients;) {
    client_t *c = container_of(l, client_t, link);
    l = l->next;
    client_abort(c);
  }
}

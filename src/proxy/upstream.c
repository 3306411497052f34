/* Upstream side of the HTTP proxy: keep-alive connection pools per endpoint (LIFO idle lists with
 * stale-connection detection), sending the forwarded request, and streaming the response back to the
 * client chunk by chunk as it arrives, with backpressure when the client reads slowly. Endpoints of a
 * backend with `tls` are reached over TLS (tls.c, memory BIOs over the same libuv stream) and their
 * certificate is verified; the outcome of every exchange feeds the endpoint's circuit breaker. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"

typedef enum { FAIL_CONNECT, FAIL_CONNECT_TIMEOUT, FAIL_RESET, FAIL_TIMEOUT, FAIL_PROTO, FAIL_TLS } fail_t;

static void upstream_fail(upconn_t *up, fail_t why);
static void on_up_timer(uv_timer_t *t);
static void on_up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_up_close(uv_handle_t *h) {
  upconn_t *up = h->data;
  if (--up->nhandles) return;
  endpoint_t *ep = up->ep;
  ep->conn_refs--;
  endpoint_maybe_free(ep);
  ig_buf_free(&up->in);
  tls_conn_free(up->tls);
  free(up);
}

/* Reports the outcome of up's exchange to its endpoint's circuit breaker (once per exchange), and
 * logs and counts an ejection. */
static void brk_report(upconn_t *up, const backend_rt_t *be, int ok) {
  if (up->brk_done) return;
  up->brk_done = 1;
  breaker_opts_t o;
  breaker_opts_of(be ? be->cfg : NULL, &o);
  endpoint_t *ep = up->ep;
  int rc = breaker_on_result(&ep->brk, &o, ok, up->brk_trial, ig_now_ms());
  up->brk_trial = 0;
  if (rc > 0) {
    ig_warn("endpoint %s ejected for %llu ms by the circuit breaker (%s)", ep->name,
            (unsigned long long)(ep->brk.until_ms - ig_now_ms()),
            ep->brk.ejections > 1 ? "half-open trial failed" : "consecutive failures");
    char series[160];
    snprintf(series, sizeof series, "infergate_endpoint_ejections_total{endpoint=\"%s\"}", ep->name);
    stats_inc(series, 1);
  } else if (rc < 0) {
    ig_info("endpoint %s recovered: circuit breaker closed", ep->name);
  }
}

/* The exchange ended without an outcome for the breaker (client gone, reuse): a trial may be retried. */
static void brk_abandon(upconn_t *up) {
  if (up->brk_trial && !up->brk_done) breaker_on_abandon(&up->ep->brk, 1);
  up->brk_trial = 0;
  up->brk_done = 1;
}

/* The pod has answered up's request (its first response byte) or the exchange ended: its prompt no
 * longer waits for prefill there. */
static void up_answered(upconn_t *up) {
  if (!up->prefill) return;
  up->ep->pod->sp.prefill -= up->prefill;
  up->prefill = 0;
  endpoint_touch(up->ep);
}

/* Takes up's request off its endpoint's counts. */
static void up_uncount(upconn_t *up) {
  if (!up->counted) return;
  up_answered(up);
  up->ep->inflight--;
  if (up->ep->pod) up->ep->pod->sp.done++; /* its batch slot is free before the next scrape says so */
  endpoint_touch(up->ep);
  if (up->lora_id && up->ep->pod) ig_sched_lora_flight_add(&up->ep->pod->flight, up->lora_id, -1);
  up->lora_id = 0;
  up->counted = 0;
}

/* Closes an upstream connection (never returned to a pool) and detaches it from its request. */
void upconn_close(upconn_t *up) {
  if (up->state == US_CLOSED) return;
  if (up->state == US_IDLE) {
    list_remove(&up->link);
    up->ep->n_idle--;
  }
  up->state = US_CLOSED;
  brk_abandon(up);
  up_uncount(up);
  if (up->c) up->c->req.up = NULL;
  up->c = NULL;
  uv_close((uv_handle_t *)&up->tcp, on_up_close);
  uv_close((uv_handle_t *)&up->timer, on_up_close);
}

/* Detaches a connection from its request: back to the endpoint's idle list when the exchange ended
 * cleanly and the pool has room, else closed. */
void upstream_detach(upconn_t *up, int reuse) {
  if (up->state == US_CLOSED) return;
  if (up->c) up->c->req.up = NULL;
  up->c = NULL;
  brk_abandon(up);
  up_uncount(up);
  endpoint_t *ep = up->ep;
  /* reusable only after a clean exchange: response complete, nothing extra read, and the request
   * fully written (a backend may answer before it has read the whole body) */
  if (!reuse || !up->keep_alive || up->state != US_BODY || up->in.len || gw.draining || ep->snap_refs == 0 ||
      ep->n_idle >= up->max_idle || uv_stream_get_write_queue_size((uv_stream_t *)&up->tcp) > 0) {
    upconn_close(up);
    return;
  }
  up->state = US_IDLE;
  up->reused = 1;
  if (up->paused) {
    up->paused = 0;
    uv_read_start((uv_stream_t *)&up->tcp, on_up_alloc, on_up_read);
  }
  list_insert_head(&ep->idle, &up->link);
  ep->n_idle++;
  unsigned idle = POOL_IDLE_MS;
  if (up->idle_timeout_ms && up->idle_timeout_ms < idle) idle = up->idle_timeout_ms;
  uv_timer_start(&up->timer, on_up_timer, idle, 0);
}

/* Arms the connection timer for the current phase, bounded by the route's whole-request deadline. */
static void up_arm_timer(upconn_t *up, unsigned ms) {
  client_t *c = up->c;
  if (c && c->req.deadline_ms) {
    uint64_t now = ig_now_ms();
    uint64_t left = c->req.deadline_ms > now ? c->req.deadline_ms - now : 1;
    if (!ms || left < ms) ms = (unsigned)left;
  }
  if (ms)
    uv_timer_start(&up->timer, on_up_timer, ms, 0);
  else
    uv_timer_stop(&up->timer);
}

void upstream_resume(upconn_t *up) {
  if (up->state == US_CLOSED || !up->paused) return;
  up->paused = 0;
  uv_read_start((uv_stream_t *)&up->tcp, on_up_alloc, on_up_read);
  up_arm_timer(up, up->idle_timeout_ms);
}

/* ---------------------------------------------------------------- response */

static void buf_add(ig_buf_t *b, const char *p, size_t n) {
  ig_buf_append(b, p, n);
}
#define BUF_LIT(b, s) buf_add((b), (s), sizeof(s) - 1)

static int is_hop_response_header(const char *n, size_t len) {
  switch (len) {
  case 2:
    return strncasecmp(n, "te", 2) == 0;
  case 7:
    return strncasecmp(n, "trailer", 7) == 0 || strncasecmp(n, "upgrade", 7) == 0;
  case 10:
    return strncasecmp(n, "connection", 10) == 0 || strncasecmp(n, "keep-alive", 10) == 0;
  default:
    break;
  }
  return len > 6 && strncasecmp(n, "proxy-", 6) == 0;
}

/* Appends "x-gateway-destination-endpoint-served: ip:port" (the endpoint's resolved address) for a
 * response from an inference-pool endpoint. */
static void add_served_header(ig_buf_t *b, const endpoint_t *ep) {
  char ip[64] = "";
  if (ep->resolved && ep->addr.ss_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)&ep->addr, ip, sizeof ip);
    snprintf(ip + strlen(ip), sizeof ip - strlen(ip), ":%d", ep->port);
  } else if (ep->resolved && ep->addr.ss_family == AF_INET6) {
    ip[0] = '[';
    uv_ip6_name((const struct sockaddr_in6 *)&ep->addr, ip + 1, sizeof ip - 1);
    snprintf(ip + strlen(ip), sizeof ip - strlen(ip), "]:%d", ep->port);
  }
  BUF_LIT(b, "x-gateway-destination-endpoint-served: ");
  ig_buf_puts(b, ip[0] ? ip : ep->name);
  BUF_LIT(b, "\r\n");
}

/* Builds the client's response head in c->fwd (the forwarded request head is no longer needed) and
 * decides the framing on both sides. */
static void build_response_head(upconn_t *up, const ig_http_response_t *res) {
  client_t *c = up->c;
  req_t *q = &c->req;
  ig_buf_t *b = &c->fwd;
  up->keep_alive = res->keep_alive;
  up->rechunk = up->dechunk = 0;
  if (q->is_head || res->status == 204 || res->status == 304) {
    up->framing = FR_NONE;
  } else if (res->chunked) {
    up->framing = FR_CHUNKED;
    ig_chunked_init(&up->dec);
    if (q->minor == 0) up->dechunk = 1; /* HTTP/1.0 clients do not know chunked */
  } else if (res->content_length >= 0) {
    up->framing = FR_LENGTH;
    up->left = res->content_length;
  } else {
    up->framing = FR_CLOSE;
    up->keep_alive = 0;
    if (q->minor >= 1) up->rechunk = 1;
  }
  if (up->dechunk || (up->framing == FR_CLOSE && !up->rechunk)) q->keep_alive = 0;
  if (gw.draining || c->lst->closed) q->keep_alive = 0; /* closing after this response */
  ig_buf_reset(b);
  char line[32];
  int n = snprintf(line, sizeof line, "HTTP/1.1 %03d ", res->status);
  buf_add(b, line, (size_t)n);
  buf_add(b, res->reason, res->reason_len);
  BUF_LIT(b, "\r\n");
  const ig_header_filter_cfg_t *f = q->hdr_resp; /* ResponseHeaderModifier of the route, if any */
  for (size_t i = 0; i < res->num_headers; i++) {
    const ig_http_header_t *h = &res->headers[i];
    if (is_hop_response_header(h->name, h->name_len)) continue;
    if (f && hdr_filter_drops(f, h->name, h->name_len)) continue;
    if (up->dechunk && h->name_len == 17 && strncasecmp(h->name, "transfer-encoding", 17) == 0) continue;
    buf_add(b, h->name, h->name_len);
    BUF_LIT(b, ": ");
    buf_add(b, h->value, h->value_len);
    BUF_LIT(b, "\r\n");
  }
  if (f) hdr_filter_append(f, b);
  if (up->rechunk) BUF_LIT(b, "Transfer-Encoding: chunked\r\n");
  if (!q->keep_alive)
    BUF_LIT(b, "Connection: close\r\n");
  else if (q->minor == 0)
    BUF_LIT(b, "Connection: keep-alive\r\n");
  if (q->last_ep && q->be && q->be->cfg->policy == IG_LB_INFERENCE &&
      (!f || !hdr_filter_drops(f, "x-gateway-destination-endpoint-served", 37)))
    add_served_header(b, q->last_ep);
  BUF_LIT(b, "\r\n");
  q->status = res->status;
  q->resp_started = 1;
}

/* Forwards the response body bytes in up->in[off..] (plus the response head when with_head) in one
 * write, and finishes the request when the body is complete. */
static void up_pump(upconn_t *up, size_t off, int with_head) {
  client_t *c = up->c;
  req_t *q = &c->req;
  uv_buf_t iov[4];
  unsigned n = 0;
  char line[24];
  if (with_head) iov[n++] = uv_buf_init(c->fwd.data, (unsigned)c->fwd.len);
  const char *p = up->in.data + off;
  size_t avail = up->in.len - off, used = 0;
  int done = 0;
  switch (up->framing) {
  case FR_NONE:
    done = 1;
    if (avail) up->keep_alive = 0;
    break;
  case FR_LENGTH:
    used = avail < (uint64_t)up->left ? avail : (size_t)up->left;
    up->left -= (int64_t)used;
    if (used) iov[n++] = uv_buf_init((char *)p, (unsigned)used);
    if (up->left == 0) {
      done = 1;
      if (avail > used) up->keep_alive = 0;
    }
    break;
  case FR_CHUNKED: {
    if (up->dechunk) ig_buf_reset(&c->tmp);
    while (used < avail) {
      size_t cons = 0, dlen = 0;
      const char *data = NULL;
      int rc = ig_chunked_next(&up->dec, p + used, avail - used, &cons, &data, &dlen);
      if (rc < 0 && rc != IG_EAGAIN) {
        ig_warn("upstream %s: malformed chunked response", up->ep->name);
        upstream_fail(up, FAIL_PROTO);
        return;
      }
      used += cons;
      if (dlen && up->dechunk) ig_buf_append(&c->tmp, data, dlen);
      if (rc == 1) {
        done = 1;
        if (avail > used) up->keep_alive = 0;
        break;
      }
      if (rc == IG_EAGAIN || (cons == 0 && dlen == 0)) break;
    }
    if (up->dechunk) {
      if (c->tmp.len) iov[n++] = uv_buf_init(c->tmp.data, (unsigned)c->tmp.len);
    } else if (used) {
      iov[n++] = uv_buf_init((char *)p, (unsigned)used);
    }
    break;
  }
  case FR_CLOSE:
    used = avail;
    if (used && up->rechunk) {
      int k = snprintf(line, sizeof line, "%zx\r\n", used);
      iov[n++] = uv_buf_init(line, (unsigned)k);
      iov[n++] = uv_buf_init((char *)p, (unsigned)used);
      iov[n++] = uv_buf_init("\r\n", 2);
    } else if (used) {
      iov[n++] = uv_buf_init((char *)p, (unsigned)used);
    }
    break;
  }
  if (used || done) {
    if (!q->t_first_us) q->t_first_us = ig_now_us();
    up_answered(up);
  }
  if (n) client_write(c, iov, n);
  if (!up->c) return; /* the client went away while we wrote */
  if (done) {
    if (avail > used) up->keep_alive = 0; /* bytes after the response: the connection is unusable */
    ig_buf_reset(&up->in);
    uv_timer_stop(&up->timer);
    request_finish(c, 0);
    return;
  }
  ig_buf_consume(&up->in, off + used);
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WQ_HIGH) {
    /* slow client: stop reading the backend until the client catches up */
    up->paused = 1;
    c->up_paused = 1;
    uv_read_stop((uv_stream_t *)&up->tcp);
    uv_timer_stop(&up->timer);
    client_stall_timer(c);
  } else {
    up_arm_timer(up, up->idle_timeout_ms);
  }
}

/* Parses the response head; returns the head length, 0 when more input is needed, -1 when the
 * request failed (handled). Interim 1xx responses are dropped. */
static long up_parse_head(upconn_t *up) {
  const ig_config_t *cfg = up->c->req.snap->cfg;
  ig_http_limits_t lim = {cfg->max_header_bytes, cfg->max_headers};
  for (;;) {
    ig_http_response_t res;
    int n = ig_http_parse_response(up->in.data, up->in.len, &res, gw.hdrs, gw.n_hdrs, &lim);
    if (n == IG_EAGAIN) return 0;
    if (n < 0) {
      ig_warn("upstream %s: malformed response head (%s)", up->ep->name, ig_strerror(n));
      upstream_fail(up, FAIL_PROTO);
      return -1;
    }
    if (res.status >= 100 && res.status < 200) {
      if (res.status == 101) {
        upstream_fail(up, FAIL_PROTO);
        return -1;
      }
      ig_buf_consume(&up->in, (size_t)n);
      continue;
    }
    build_response_head(up, &res);
    return n;
  }
}

static void on_up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  upconn_t *up = h->data;
  (void)hint;
  if (up->tls) {
    /* ciphertext: decrypted into up->in at once, so one buffer serves every connection */
    static char cipher[READ_CHUNK];
    buf->base = cipher;
    buf->len = sizeof cipher;
    return;
  }
  ig_buf_reserve(&up->in, READ_CHUNK);
  buf->base = up->in.data + up->in.len;
  buf->len = up->in.cap - up->in.len - 1;
}

static void up_send(upconn_t *up);
static int up_tls_flush(upconn_t *up);
static void up_on_eof(upconn_t *up, int err);
static void up_on_data(upconn_t *up);

/* TLS: decrypts what was read into up->in, sends what the handshake answers, finishes the handshake
 * (then sends the request), and goes on like a plain read with the plaintext. */
static void up_tls_read(upconn_t *up, const char *p, size_t n) {
  size_t before = up->in.len;
  int rc = tls_conn_feed(up->tls, up->ep->name, p, n, &up->in);
  if (up_tls_flush(up) != 0) return;
  if (up->state == US_IDLE || !up->c) {
    /* post-handshake messages (session tickets) are fine on an idle connection; data or a close is not */
    if (rc < 0 || up->in.len != before) upconn_close(up);
    return;
  }
  if (up->state == US_CONNECTING) {
    if (rc < 0) {
      const char *verr = tls_conn_verify_error(up->tls);
      if (verr)
        ig_warn("upstream %s: TLS certificate verification failed: %s", up->ep->name, verr);
      else
        ig_warn("upstream %s: TLS handshake failed: %s", up->ep->name, tls_conn_last_error(up->tls));
      upstream_fail(up, FAIL_TLS);
      return;
    }
    if (!tls_conn_established(up->tls)) return;
    ig_buf_reset(&up->in); /* nothing is expected before the request */
    up_send(up);
    return;
  }
  if (up->in.len != before) {
    up->got_bytes = 1;
    up_on_data(up);
    if (up->state == US_CLOSED || !up->c) return;
  }
  if (rc == IG_ECLOSED) up_on_eof(up, UV_EOF);
  else if (rc < 0) up_on_eof(up, UV_EPROTO);
}

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  upconn_t *up = s->data;
  if (up->state == US_CLOSED || nread == 0) return;
  if (up->tls && nread > 0) {
    up_tls_read(up, buf->base, (size_t)nread);
    return;
  }
  if (up->state == US_IDLE || !up->c) {
    upconn_close(up); /* the backend closed (or spoke on) an idle connection: it is stale */
    return;
  }
  if (up->state == US_CONNECTING) {
    upstream_fail(up, up->tls ? FAIL_TLS : FAIL_RESET); /* closed during the TLS handshake */
    return;
  }
  if (nread < 0) {
    up_on_eof(up, (int)nread);
    return;
  }
  up->in.len += (size_t)nread;
  up->in.data[up->in.len] = '\0';
  up->got_bytes = 1;
  up_on_data(up);
}

/* The upstream closed the connection (or it failed with err) while a request was on it. */
static void up_on_eof(upconn_t *up, int err) {
  client_t *c = up->c;
  if (up->state == US_BODY && up->framing == FR_CLOSE) {
    if (up->rechunk) {
      uv_buf_t last = uv_buf_init("0\r\n\r\n", 5);
      client_write(c, &last, 1);
      if (!up->c) return;
    }
    up->keep_alive = 0;
    request_finish(c, !c->req.keep_alive);
    return;
  }
  if (up->state == US_BODY) {
    ig_warn("upstream %s closed mid-response (%s)", up->ep->name, uv_strerror(err));
    client_abort(c); /* the client sees a truncated body / closed connection */
    return;
  }
  upstream_fail(up, FAIL_RESET);
}

/* New plaintext response bytes are in up->in. */
static void up_on_data(upconn_t *up) {
  if (up->state == US_WAIT_HEAD) {
    long n = up_parse_head(up);
    if (n <= 0) return;
    up->state = US_BODY;
    brk_report(up, up->c->req.be, up->c->req.status < 500); /* 5xx counts as a failure */
    up_pump(up, (size_t)n, 1);
    return;
  }
  if (up->state == US_BODY) up_pump(up, 0, 0);
}

/* ---------------------------------------------------------------- request */

static void on_up_write(uv_write_t *req, int status) {
  upconn_t *up = req->handle->data;
  stream_write_done(req);
  if (status < 0 && up->state != US_CLOSED && up->c && up->state == US_WAIT_HEAD)
    upstream_fail(up, FAIL_RESET);
}

/* Writes the ciphertext the TLS connection has produced (tls_conn_flush). Returns 0, or -1 after
 * failing the exchange (or closing an idle connection) on a write error. */
static int up_tls_flush(upconn_t *up) {
  if (tls_conn_flush(up->tls, (uv_stream_t *)&up->tcp, on_up_write) == 0) return 0;
  if (up->c && up->state != US_IDLE)
    upstream_fail(up, up->state == US_CONNECTING ? FAIL_TLS : FAIL_RESET);
  else
    upconn_close(up);
  return -1;
}

/* Writes bufs to the upstream (encrypted on TLS connections). Returns 0 or a negative error. */
static int up_write(upconn_t *up, const uv_buf_t *bufs, unsigned n) {
  if (up->tls) return tls_conn_send(up->tls, (uv_stream_t *)&up->tcp, bufs, n, on_up_write);
  int queued = 0;
  return stream_write((uv_stream_t *)&up->tcp, bufs, n, on_up_write, &queued);
}

/* Sends the forwarded request (head + body) and waits for the response head. */
static void up_send(upconn_t *up) {
  client_t *c = up->c;
  uv_buf_t iov[2] = {uv_buf_init(c->fwd.data, (unsigned)c->fwd.len),
                     uv_buf_init(c->body.data, (unsigned)c->body.len)};
  up->state = US_WAIT_HEAD;
  up->got_bytes = 0;
  int rc = up_write(up, iov, c->body.len ? 2 : 1);
  if (rc < 0) {
    upstream_fail(up, FAIL_RESET);
    return;
  }
  up_arm_timer(up, c->req.be->cfg->response_timeout_ms);
}

static void on_up_connect(uv_connect_t *req, int status) {
  upconn_t *up = req->data;
  if (up->state == US_CLOSED) return;
  if (status < 0) {
    ig_debug("upstream %s: connect failed: %s", up->ep->name, uv_strerror(status));
    upstream_fail(up, FAIL_CONNECT);
    return;
  }
  uv_tcp_nodelay(&up->tcp, 1);
  uv_read_start((uv_stream_t *)&up->tcp, on_up_alloc, on_up_read);
  if (!up->c) {
    upconn_close(up);
    return;
  }
  if (up->tls) {
    /* send the ClientHello; the request follows once the handshake is done (under connect_timeout) */
    up_tls_flush(up);
    return;
  }
  up_send(up);
}

static void on_up_timer(uv_timer_t *t) {
  upconn_t *up = t->data;
  switch (up->state) {
  case US_CONNECTING:
    upstream_fail(up, FAIL_CONNECT_TIMEOUT);
    return;
  case US_WAIT_HEAD:
    upstream_fail(up, FAIL_TIMEOUT);
    return;
  case US_BODY:
    ig_warn("upstream %s: response stalled, aborting", up->ep->name);
    if (up->c) {
      client_abort(up->c);
      return;
    }
    upconn_close(up);
    return;
  case US_IDLE:
    upconn_close(up);
    return;
  case US_CLOSED:
    return;
  }
}

static upconn_t *pool_get(endpoint_t *ep) {
  if (list_empty(&ep->idle)) return NULL;
  upconn_t *up = container_of(ep->idle.next, upconn_t, link);
  list_remove(&up->link);
  ep->n_idle--;
  up->state = US_WAIT_HEAD;
  uv_timer_stop(&up->timer);
  return up;
}

/* Assigns an upstream connection for c's request (pooled, or a new one) and sends the request.
 * exclude: an endpoint to avoid (a retry after a failed connect). fresh: reconnect to the endpoint
 * of the last attempt instead of reusing a pooled connection (retry after a stale one). */
void upstream_start(client_t *c, const endpoint_t *exclude, int fresh) {
  req_t *q = &c->req;
  backend_rt_t *be = q->be;
  endpoint_t *ep;
  if (fresh && q->last_ep)
    ep = (endpoint_t *)q->last_ep;
  else if (be->cfg->policy == IG_LB_INFERENCE)
    ep = pool_pick(be, q, exclude);
  else
    ep = be->lb->pick(be, exclude);
  if (!ep) {
    if (be->n_eps && lb_unusable_reason(be, NULL, 0, ig_now_ms()) == LB_NONE_AT_CAP)
      client_send_error_ex(c, 503, "server_error", "endpoint_capacity",
                           "every endpoint is at its max_streams_per_endpoint; retry later", "Retry-After: 1\r\n", 0);
    else if (be->n_eps)
      client_send_error(c, 503, "no_healthy_upstream", "every endpoint is ejected by the circuit breaker", 0);
    else
      client_send_error(c, 503, "no_healthy_upstream", "no endpoint available", 0);
    return;
  }
  q->last_ep = ep;
  upconn_t *up = fresh ? NULL : pool_get(ep);
  int pooled = up != NULL;
  if (!up) {
    tls_conn_t *tls = NULL;
    if (be->tls_ctx && ep->tls_key && !(tls = tls_conn_new_client(be->tls_ctx, ep->host, be->cfg->tls->server_name, ep->name))) {
      ig_warn("upstream %s: cannot set up TLS", ep->name);
      client_send_error(c, 502, "upstream_tls_error", "could not set up TLS to the upstream", 0);
      return;
    }
    up = IG_NEW(upconn_t);
    up->ep = ep;
    up->tls = tls;
    ep->conn_refs++;
    uv_tcp_init(gw.loop, &up->tcp);
    uv_timer_init(gw.loop, &up->timer);
    up->tcp.data = up->timer.data = up;
    up->creq.data = up;
    up->nhandles = 2;
    up->state = US_CONNECTING;
  }
  up->brk_done = 0;
  up->brk_trial = (unsigned)breaker_on_pick(&ep->brk, ig_now_ms());
  up->c = c;
  q->up = up;
  up->counted = 1;
  ep->inflight++;
  up->prefill = ep->pod ? pod_prefill_estimate(&ep->pod->sp, c->body.len, q->prefix_hit) : 0;
  if (up->prefill) ep->pod->sp.prefill += up->prefill;
  endpoint_touch(ep);
  /* the adapter's count on the pod, for telling slot waits from queueing (ig_sched_lora_blocked) */
  up->lora_id = ep->pod && ig_sched_lora_flight_add(&ep->pod->flight, q->lora_id, 1) == 0 ? q->lora_id : 0;
  up->idle_timeout_ms = be->cfg->idle_timeout_ms;
  up->max_idle = be->cfg->max_idle_conns;
  up->paused = 0;
  if (pooled) {
    up_send(up);
    return;
  }
  int rc = uv_tcp_connect(&up->creq, &up->tcp, (const struct sockaddr *)&ep->addr, on_up_connect);
  if (rc < 0) {
    ig_debug("upstream %s: connect failed: %s", ep->name, uv_strerror(rc));
    upstream_fail(up, FAIL_CONNECT);
    return;
  }
  up_arm_timer(up, be->cfg->connect_timeout_ms);
}

/* Handles a failed exchange: retry when nothing reached the client yet and a retry is allowed (one
 * other endpoint after a failed connect; one fresh connection after a stale pooled one), else an
 * error response (502 / 504), or closing the client when the response had already started. */
static void upstream_fail(upconn_t *up, fail_t why) {
  client_t *c = up->c;
  int reused = up->reused, got = up->got_bytes;
  endpoint_t *ep = up->ep;
  /* a stale pooled connection says nothing about the endpoint (it is retried fresh) */
  int stale = why == FAIL_RESET && reused && !got && c && c->req.stale_retries == 0;
  if (c && !stale && up->state != US_BODY) brk_report(up, c->req.be, 0);
  upconn_close(up);
  if (!c || c->closing) return;
  req_t *q = &c->req;
  if (q->resp_started) {
    client_abort(c);
    return;
  }
  switch (why) {
  case FAIL_RESET:
    if (reused && !got && q->stale_retries == 0) {
      q->stale_retries++;
      upstream_start(c, NULL, 1);
      return;
    }
    client_send_error(c, 502, "upstream_reset", "upstream closed the connection before responding", 0);
    return;
  case FAIL_CONNECT:
  case FAIL_CONNECT_TIMEOUT:
  case FAIL_TLS:
    if (q->ep_retries == 0 && q->be->n_eps > 1) {
      q->ep_retries++;
      upstream_start(c, ep, 0);
      return;
    }
    if (why == FAIL_TLS)
      client_send_error(c, 502, "upstream_tls_error",
                        "TLS to the upstream failed (certificate verification or handshake)", 0);
    else if (why == FAIL_CONNECT)
      client_send_error(c, 502, "upstream_connect_failed", "could not connect to an upstream endpoint", 0);
    else
      client_send_error(c, 504, "upstream_timeout", "timed out connecting to an upstream endpoint", 0);
    return;
  case FAIL_TIMEOUT:
    client_send_error(c, 504, "upstream_timeout", "upstream did not respond in time", 0);
    return;
  case FAIL_PROTO:
    client_send_error(c, 502, "bad_upstream_response", "invalid response from upstream", 0);
    return;
  }
}

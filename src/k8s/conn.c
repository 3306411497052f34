/* One HTTP/1.1 request per connection to the API server ("Connection: close"), plain or TLS. TLS
 * runs OpenSSL over memory BIOs: socket bytes go into the read BIO, SSL_read gives plaintext, and
 * whatever OpenSSL wants to send is drained from the write BIO onto the socket. */
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_internal.h"

#define MAX_HEAD 65536

static void on_close(uv_handle_t *h) {
  kconn_t *c = h->data;
  if (--c->nhandles > 0) return;
  if (c->ssl) SSL_free(c->ssl);
  ig_buf_free(&c->req);
  ig_buf_free(&c->in);
  free(c);
}

/* Ends the request: calls done (unless cancelled) and closes the handles. */
static void finish(kconn_t *c, int err) {
  if (c->done) return;
  c->done = 1;
  if (!c->cancelled && c->cbs->done) c->cbs->done(c, err);
  uv_close((uv_handle_t *)&c->tcp, on_close);
  uv_close((uv_handle_t *)&c->timer, on_close);
}

void kconn_cancel(kconn_t *c) {
  if (!c || c->done) return;
  c->cancelled = 1;
  finish(c, IG_ECLOSED);
}

static void on_write(uv_write_t *w, int status) {
  (void)status; /* a failed write shows up as a read error or EOF */
  free(w);
}

/* Writes n raw bytes to the socket (a copy is queued). */
static int raw_write(kconn_t *c, const char *p, size_t n) {
  uv_write_t *w = ig_malloc(sizeof *w + n);
  char *copy = (char *)(w + 1);
  memcpy(copy, p, n);
  uv_buf_t b = uv_buf_init(copy, (unsigned)n);
  int r = uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (r != 0) free(w);
  return r;
}

/* Sends whatever OpenSSL has queued in its write BIO. */
static int tls_flush(kconn_t *c) {
  BIO *wb = SSL_get_wbio(c->ssl);
  char tmp[16384];
  int n;
  while ((n = BIO_read(wb, tmp, sizeof tmp)) > 0)
    if (raw_write(c, tmp, (size_t)n) != 0) return IG_EIO;
  return 0;
}

/* Sends the request (plaintext, or through TLS once the handshake is done). */
static int send_request(kconn_t *c) {
  if (!c->req.len) return 0;
  int r;
  if (c->ssl) {
    r = SSL_write(c->ssl, c->req.data, (int)c->req.len) > 0 ? tls_flush(c) : IG_EIO;
  } else {
    r = raw_write(c, c->req.data, c->req.len) == 0 ? 0 : IG_EIO;
  }
  ig_buf_reset(&c->req);
  return r;
}

/* Consumes plaintext response bytes in c->in. Returns 1 when the response is complete, 0 for
 * more, or an IG_E* error. */
static int consume(kconn_t *c) {
  if (!c->have_head) {
    ig_http_header_t hdrs[64];
    ig_http_response_t res;
    ig_http_limits_t lim = {MAX_HEAD, 64};
    int n = ig_http_parse_response(c->in.data, c->in.len, &res, hdrs, 64, &lim);
    if (n == IG_EAGAIN) return 0;
    if (n < 0) return n;
    if (res.status >= 100 && res.status < 200) { /* interim */
      ig_buf_consume(&c->in, (size_t)n);
      return consume(c);
    }
    c->have_head = 1;
    c->status = res.status;
    c->chunked = res.chunked;
    c->left = res.chunked ? 0 : res.content_length;
    ig_chunked_init(&c->dec);
    ig_buf_consume(&c->in, (size_t)n);
    if (c->cbs->head) c->cbs->head(c, c->status);
    if (c->done) return 1;
    if (!c->chunked && c->left == 0) return 1;
  }
  while (c->in.len && !c->done) {
    if (c->chunked) {
      size_t used = 0, dl = 0;
      const char *d = NULL;
      int r = ig_chunked_next(&c->dec, c->in.data, c->in.len, &used, &d, &dl);
      if (r == IG_EAGAIN) return 0;
      if (r < 0) return r;
      /* the data points into c->in: hand it over before consuming */
      if (dl && c->cbs->data) c->cbs->data(c, d, dl);
      ig_buf_consume(&c->in, used);
      if (r == 1) return 1;
    } else {
      size_t n = c->in.len;
      if (c->left >= 0 && (uint64_t)n > (uint64_t)c->left) n = (size_t)c->left;
      if (c->cbs->data) c->cbs->data(c, c->in.data, n);
      ig_buf_consume(&c->in, n);
      if (c->left >= 0) {
        c->left -= (int64_t)n;
        if (c->left == 0) return 1;
      }
    }
  }
  return c->done ? 1 : 0;
}

static void plain_input(kconn_t *c, const char *p, size_t n) {
  ig_buf_append(&c->in, p, n);
  if (!c->have_head && c->in.len > MAX_HEAD) {
    finish(c, IG_ETOOBIG);
    return;
  }
  int r = consume(c);
  if (r != 0) finish(c, r < 0 ? r : 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h;
  (void)hint;
  b->base = ig_malloc(65536);
  b->len = 65536;
}

static void on_timeout(uv_timer_t *t) {
  kconn_t *c = t->data;
  ig_debug("k8s: request to %s:%d timed out", c->t->host, c->t->port);
  finish(c, IG_ETIMEDOUT);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  kconn_t *c = s->data;
  if (nread < 0) {
    free(b->base);
    /* a body without length ends at close */
    finish(c, c->have_head && !c->chunked && c->left < 0 && nread == UV_EOF ? 0 : IG_ECLOSED);
    return;
  }
  if (c->idle_reset && nread > 0) uv_timer_again(&c->timer);
  if (!c->ssl) {
    if (nread > 0) plain_input(c, b->base, (size_t)nread);
    free(b->base);
    return;
  }
  BIO_write(SSL_get_rbio(c->ssl), b->base, (int)nread);
  free(b->base);
  if (!c->handshaken) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        unsigned long oe = ERR_get_error();
        char msg[256];
        ERR_error_string_n(oe, msg, sizeof msg);
        long vr = SSL_get_verify_result(c->ssl);
        ig_warn("k8s: TLS handshake with %s:%d failed: %s%s%s", c->t->host, c->t->port, msg,
                vr != X509_V_OK ? "; " : "", vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
        ERR_clear_error();
        finish(c, IG_ECONNECT);
        return;
      }
      if (tls_flush(c) != 0) finish(c, IG_EIO);
      return;
    }
    c->handshaken = 1;
    if (tls_flush(c) != 0 || send_request(c) != 0) {
      finish(c, IG_EIO);
      return;
    }
  }
  char tmp[16384];
  for (int i = 0; i < 100000 && !c->done; i++) {
    int n = SSL_read(c->ssl, tmp, sizeof tmp);
    if (n > 0) {
      plain_input(c, tmp, (size_t)n);
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN) {
      finish(c, c->have_head && !c->chunked && c->left < 0 ? 0 : IG_ECLOSED);
    } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      ERR_clear_error();
      finish(c, IG_EIO);
    }
    break;
  }
  if (!c->done && tls_flush(c) != 0) finish(c, IG_EIO);
}

static void on_connect(uv_connect_t *req, int status) {
  kconn_t *c = req->data;
  if (c->done) return;
  if (status != 0) {
    ig_debug("k8s: connect to %s:%d: %s", c->t->host, c->t->port, uv_strerror(status));
    finish(c, IG_ECONNECT);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (!c->ssl) {
    if (send_request(c) != 0) finish(c, IG_EIO);
    return;
  }
  int r = SSL_do_handshake(c->ssl);
  (void)r;
  if (tls_flush(c) != 0) finish(c, IG_EIO);
}

/* Sets up the TLS session: SNI and the certificate name (or IP) check against the target host. */
static int tls_setup(kconn_t *c) {
  c->ssl = SSL_new(c->t->ssl_ctx);
  if (!c->ssl) return IG_EIO;
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  if (!rb || !wb) {
    BIO_free(rb);
    BIO_free(wb);
    return IG_EIO;
  }
  SSL_set_bio(c->ssl, rb, wb);
  SSL_set_connect_state(c->ssl);
  X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
  const char *name = c->t->tls_name ? c->t->tls_name : c->t->host;
  if (c->t->insecure) {
    if (!c->t->tls_name && X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1) SSL_set_tlsext_host_name(c->ssl, name);
    if (c->t->tls_name) SSL_set_tlsext_host_name(c->ssl, name);
  } else if (X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1) {
    SSL_set_tlsext_host_name(c->ssl, name);
    if (SSL_set1_host(c->ssl, name) != 1) return IG_EIO;
  }
  return 0;
}

kconn_t *kconn_start(const kconn_target_t *t, const char *method, const char *path, const char *headers,
                     const char *body, size_t body_len, unsigned timeout_ms, int idle_reset,
                     const kconn_cbs_t *cbs, void *data) {
  kconn_t *c = IG_NEW(kconn_t);
  c->t = t;
  c->cbs = cbs;
  c->data = data;
  c->timeout_ms = timeout_ms;
  c->idle_reset = idle_reset;
  c->left = -1;
  ig_buf_init(&c->req);
  ig_buf_init(&c->in);
  int v6 = strchr(t->host, ':') != NULL;
  ig_buf_printf(&c->req, "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: infergate\r\n"
                "Accept: application/json\r\nConnection: close\r\n",
                method, path, v6 ? "[" : "", t->host, v6 ? "]" : "", t->port);
  if (headers) ig_buf_puts(&c->req, headers);
  if (body) ig_buf_printf(&c->req, "Content-Length: %zu\r\n", body_len);
  ig_buf_puts(&c->req, "\r\n");
  if (body) ig_buf_append(&c->req, body, body_len);
  uv_tcp_init(t->loop, &c->tcp);
  uv_timer_init(t->loop, &c->timer);
  c->tcp.data = c->timer.data = c->creq.data = c;
  c->nhandles = 2;
  uv_timer_start(&c->timer, on_timeout, timeout_ms, timeout_ms);
  int r = t->ssl_ctx ? tls_setup(c) : 0;
  if (r == 0) r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&t->addr, on_connect) ? IG_ECONNECT : 0;
  if (r != 0) {
    /* report asynchronously-safe: callers expect done after start returns, so defer through the
     * timer */
    uv_timer_start(&c->timer, on_timeout, 0, 0);
  }
  return c;
}

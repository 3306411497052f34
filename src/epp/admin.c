/* The picker's Prometheus endpoint: GET /metrics (text exposition 0.0.4) and GET /healthz over
 * HTTP/1.1, one request per connection (the answer closes it). Also the listen helper shared with
 * the gRPC listeners. */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "epp.h"

#define HEAD_MAX 16384

typedef struct {
  epp_link_t link; /* in adm.conns until closed */
  uv_tcp_t tcp;
  ig_buf_t in;
  int answered;
} aconn_t;

static struct {
  uv_loop_t *loop;
  epp_t *e;
  uv_tcp_t tcp;
  epp_link_t conns;
  int open;
} adm;

int epp_listen(uv_loop_t *loop, uv_tcp_t *tcp, const char *addr, uv_connection_cb cb, const char *what) {
  char host[256];
  int port;
  if (ig_parse_hostport(addr, host, sizeof host, &port) != 0) {
    ig_error("epp: bad %s address '%s' (want HOST:PORT)", what, addr);
    return UV_EINVAL;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char ports[16];
  snprintf(ports, sizeof ports, "%d", port);
  if (getaddrinfo(host[0] ? host : NULL, ports, &hints, &res) != 0 || !res) {
    ig_error("epp: cannot resolve %s address '%s'", what, addr);
    return UV_EINVAL;
  }
  int rc = uv_tcp_bind(tcp, res->ai_addr, 0);
  freeaddrinfo(res);
  if (rc == 0) rc = uv_listen((uv_stream_t *)tcp, 511, cb);
  if (rc != 0) {
    ig_error("epp: cannot listen for %s on %s: %s", what, addr, uv_strerror(rc));
    return rc;
  }
  ig_info("epp: %s listening on %s", what, addr);
  return 0;
}

static void on_closed(uv_handle_t *h) {
  aconn_t *a = h->data;
  ig_buf_free(&a->in);
  free(a);
}

static void aclose(aconn_t *a) {
  epp_list_del(&a->link);
  if (!uv_is_closing((uv_handle_t *)&a->tcp)) uv_close((uv_handle_t *)&a->tcp, on_closed);
}

typedef struct {
  uv_write_t req;
  ig_buf_t out;
  aconn_t *a;
} awrite_t;

static void on_written(uv_write_t *req, int status) {
  awrite_t *w = (awrite_t *)req;
  ig_buf_free(&w->out);
  aclose(w->a);
  free(w);
}

static void respond(aconn_t *a, int status, const char *ctype, const char *body, size_t len, int head_only) {
  awrite_t *w = IG_NEW(awrite_t);
  w->a = a;
  ig_buf_init(&w->out);
  ig_buf_printf(&w->out,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                status, ig_http_reason(status), ctype, len);
  if (!head_only) ig_buf_append(&w->out, body, len);
  uv_buf_t b = uv_buf_init(w->out.data, (unsigned)w->out.len);
  a->answered = 1;
  uv_read_stop((uv_stream_t *)&a->tcp);
  if (uv_write(&w->req, (uv_stream_t *)&a->tcp, &b, 1, on_written) != 0) {
    ig_buf_free(&w->out);
    free(w);
    aclose(a);
  }
}

static void handle(aconn_t *a, const ig_http_request_t *r) {
  int is_head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
  int is_get = r->method_len == 3 && memcmp(r->method, "GET", 3) == 0;
  if (!is_get && !is_head) {
    static const char m[] = "method not allowed\n";
    respond(a, 405, "text/plain", m, sizeof m - 1, 0);
    return;
  }
  if (r->path_len == 8 && memcmp(r->target, "/metrics", 8) == 0) {
    epp_metrics_refresh(adm.e);
    ig_buf_t body;
    ig_buf_init(&body);
    ig_registry_render(adm.e->reg, &body);
    respond(a, 200, "text/plain; version=0.0.4", body.data ? body.data : "", body.len, is_head);
    ig_buf_free(&body);
  } else if (r->path_len == 8 && memcmp(r->target, "/healthz", 8) == 0) {
    const char *m = adm.e->serving ? "ok\n" : "not serving\n";
    respond(a, adm.e->serving ? 200 : 503, "text/plain", m, strlen(m), is_head);
  } else {
    static const char m[] = "not found\n";
    respond(a, 404, "text/plain", m, sizeof m - 1, is_head);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char rb[4096];
  buf->base = rb;
  buf->len = sizeof rb;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  aconn_t *a = st->data;
  if (a->answered) return;
  if (nread < 0) {
    aclose(a);
    return;
  }
  ig_buf_append(&a->in, buf->base, (size_t)nread);
  ig_http_header_t hdrs[64];
  ig_http_request_t r;
  ig_http_limits_t lim = {HEAD_MAX, 64};
  int n = ig_http_parse_request(a->in.data, a->in.len, &r, hdrs, 64, &lim);
  if (n == IG_EAGAIN) return;
  if (n < 0) {
    static const char m[] = "bad request\n";
    respond(a, n == IG_ETOOBIG ? 431 : 400, "text/plain", m, sizeof m - 1, 0);
    return;
  }
  handle(a, &r);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  aconn_t *a = IG_NEW(aconn_t);
  ig_buf_init(&a->in);
  uv_tcp_init(adm.loop, &a->tcp);
  a->tcp.data = a;
  epp_list_add(&adm.conns, &a->link);
  if (uv_accept(server, (uv_stream_t *)&a->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read) != 0)
    aclose(a);
}

int epp_admin_start(uv_loop_t *loop, epp_t *e, const char *addr) {
  adm.loop = loop;
  adm.e = e;
  epp_list_init(&adm.conns);
  uv_tcp_init(loop, &adm.tcp);
  adm.open = 1;
  return epp_listen(loop, &adm.tcp, addr, on_connection, "metrics");
}

void epp_admin_stop(void) {
  if (!adm.open) return;
  adm.open = 0;
  uv_close((uv_handle_t *)&adm.tcp, NULL);
  while (adm.conns.next != &adm.conns)
    aclose(epp_container_of(adm.conns.next, aconn_t, link));
}

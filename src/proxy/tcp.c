/* TCP (L4) listeners: splice each accepted connection to an endpoint of the listener's backend
 * (round-robin), both directions, with backpressure and half-close: EOF on one side becomes a
 * shutdown of the other, and the pair closes once both directions are finished. */
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define TCP_BUF 16384

typedef struct tcpconn tcpconn_t;

/* The upstream socket of one connect attempt (a retry makes a new one). */
typedef struct {
  uv_tcp_t tcp;
  uv_connect_t creq;
  tcpconn_t *tc;
} tcpside_t;

struct tcpconn {
  link_t link; /* in gw.tcpconns */
  uv_tcp_t a;  /* client */
  tcpside_t *b;
  uv_timer_t timer;
  uv_shutdown_t sh_a, sh_b;
  int nhandles, closing, connected, tries;
  unsigned a_eof : 1, b_eof : 1, a_shut : 1, b_shut : 1, a_paused : 1, b_paused : 1;
  listener_t *lst;
  snapshot_t *snap;
  backend_rt_t *be;
  endpoint_t *ep;
  char buf_a[TCP_BUF], buf_b[TCP_BUF];
};

static void tcp_close(tcpconn_t *tc);
static void on_tc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void tc_unref(tcpconn_t *tc) {
  if (--tc->nhandles) return;
  snapshot_release(tc->snap);
  listener_unref(tc->lst);
  free(tc);
  gw_check_drained();
}

static void on_tc_close(uv_handle_t *h) {
  tc_unref(h->data);
}

static void on_side_close(uv_handle_t *h) {
  tcpside_t *s = container_of((uv_tcp_t *)h, tcpside_t, tcp);
  tcpconn_t *tc = s->tc;
  free(s);
  tc_unref(tc);
}

static void tcp_close(tcpconn_t *tc) {
  if (tc->closing) return;
  tc->closing = 1;
  list_remove(&tc->link);
  gw.n_tcp--;
  if (tc->connected && tc->ep) {
    tc->ep->inflight--;
    endpoint_touch(tc->ep);
  }
  uv_close((uv_handle_t *)&tc->a, on_tc_close);
  uv_close((uv_handle_t *)&tc->timer, on_tc_close);
  if (tc->b) uv_close((uv_handle_t *)&tc->b->tcp, on_side_close);
  tc->b = NULL;
}

static uv_stream_t *peer_of(tcpconn_t *tc, uv_stream_t *s) {
  return s == (uv_stream_t *)&tc->a ? (uv_stream_t *)&tc->b->tcp : (uv_stream_t *)&tc->a;
}

static void maybe_done(tcpconn_t *tc) {
  if (tc->a_eof && tc->b_eof && tc->a_shut && tc->b_shut) tcp_close(tc);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  tcpconn_t *tc = req->data;
  if (tc->closing) return;
  if (status < 0) {
    tcp_close(tc);
    return;
  }
  if (req == &tc->sh_b)
    tc->b_shut = 1; /* b's write side done after a's EOF */
  else
    tc->a_shut = 1;
  maybe_done(tc);
}

static void tc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  tcpconn_t *tc = h->data;
  if ((uv_tcp_t *)h == &tc->a)
    *buf = uv_buf_init(tc->buf_a, TCP_BUF);
  else
    *buf = uv_buf_init(tc->buf_b, TCP_BUF);
}

static tcpconn_t *conn_of(uv_stream_t *s) {
  return s->data;
}

static void on_tc_write(uv_write_t *req, int status) {
  uv_stream_t *dst = req->handle;
  stream_write_done(req);
  tcpconn_t *tc = conn_of(dst);
  if (tc->closing) return;
  if (status < 0) {
    tcp_close(tc);
    return;
  }
  if (uv_stream_get_write_queue_size(dst) >= WQ_LOW) return;
  uv_stream_t *src = peer_of(tc, dst);
  int is_a = src == (uv_stream_t *)&tc->a;
  if (is_a && tc->a_paused && !tc->a_eof) {
    tc->a_paused = 0;
    uv_read_start(src, tc_alloc, on_tc_read);
  }
  if (!is_a && tc->b_paused && !tc->b_eof) {
    tc->b_paused = 0;
    uv_read_start(src, tc_alloc, on_tc_read);
  }
}

static void on_tc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tcpconn_t *tc = conn_of(s);
  if (tc->closing || nread == 0) return;
  int is_a = s == (uv_stream_t *)&tc->a;
  uv_stream_t *dst = peer_of(tc, s);
  if (nread == UV_EOF) {
    uv_read_stop(s);
    uv_shutdown_t *sh = is_a ? &tc->sh_b : &tc->sh_a;
    sh->data = tc;
    if (is_a)
      tc->a_eof = 1;
    else
      tc->b_eof = 1;
    if (uv_shutdown(sh, dst, on_shutdown) != 0) tcp_close(tc);
    return;
  }
  if (nread < 0) {
    tcp_close(tc);
    return;
  }
  uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
  int queued;
  if (stream_write(dst, &b, 1, on_tc_write, &queued) < 0) {
    tcp_close(tc);
    return;
  }
  if (uv_stream_get_write_queue_size(dst) > WQ_HIGH) {
    uv_read_stop(s);
    if (is_a)
      tc->a_paused = 1;
    else
      tc->b_paused = 1;
  }
  if (tc->be->cfg->idle_timeout_ms) uv_timer_again(&tc->timer);
}

static void tcp_connect_next(tcpconn_t *tc);

static void on_tc_timer(uv_timer_t *t) {
  tcpconn_t *tc = t->data;
  if (tc->closing) return;
  if (!tc->connected && tc->tries < 2 && tc->be->n_eps > 1) {
    tcp_connect_next(tc);
    return;
  }
  tcp_close(tc);
}

static void on_tc_connect(uv_connect_t *req, int status) {
  tcpside_t *s = req->data;
  tcpconn_t *tc = s->tc;
  if (tc->closing || s != tc->b) return; /* a cancelled earlier attempt */
  if (status < 0) {
    ig_debug("tcp upstream %s: %s", tc->ep->name, uv_strerror(status));
    if (tc->tries < 2 && tc->be->n_eps > 1) {
      tcp_connect_next(tc);
      return;
    }
    tcp_close(tc);
    return;
  }
  tc->connected = 1;
  tc->ep->inflight++;
  endpoint_touch(tc->ep);
  uv_tcp_nodelay(&s->tcp, 1);
  unsigned idle = tc->be->cfg->idle_timeout_ms;
  if (idle)
    uv_timer_start(&tc->timer, on_tc_timer, idle, idle);
  else
    uv_timer_stop(&tc->timer);
  uv_read_start((uv_stream_t *)&tc->a, tc_alloc, on_tc_read);
  uv_read_start((uv_stream_t *)&s->tcp, tc_alloc, on_tc_read);
}

/* Starts a connect to the next endpoint (round-robin, skipping the one that just failed). */
static void tcp_connect_next(tcpconn_t *tc) {
  endpoint_t *prev = tc->ep;
  if (tc->b) {
    uv_close((uv_handle_t *)&tc->b->tcp, on_side_close);
    tc->b = NULL;
  }
  tc->tries++;
  tc->ep = lb_for_policy(IG_LB_ROUND_ROBIN)->pick(tc->be, prev);
  tcpside_t *s = IG_NEW(tcpside_t);
  s->tc = tc;
  uv_tcp_init(gw.loop, &s->tcp);
  s->tcp.data = tc;
  s->creq.data = s;
  tc->nhandles++;
  tc->b = s;
  int rc = uv_tcp_connect(&s->creq, &s->tcp, (const struct sockaddr *)&tc->ep->addr, on_tc_connect);
  if (rc < 0) {
    tcp_close(tc);
    return;
  }
  uv_timer_start(&tc->timer, on_tc_timer, tc->be->cfg->connect_timeout_ms, 0);
}

void tcp_accept(listener_t *l) {
  tcpconn_t *tc = IG_NEW(tcpconn_t);
  uv_tcp_init(gw.loop, &tc->a);
  tc->a.data = tc;
  uv_timer_init(gw.loop, &tc->timer);
  tc->timer.data = tc;
  tc->nhandles = 2;
  tc->lst = l;
  l->refs++;
  tc->snap = snapshot_ref(gw.snap);
  list_insert_tail(&gw.tcpconns, &tc->link);
  gw.n_tcp++;
  if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&tc->a) != 0 || l->li < 0) {
    tcp_close(tc);
    return;
  }
  const ig_listener_cfg_t *lc = &tc->snap->cfg->listeners[l->li];
  if (lc->tcp_backend_index >= tc->snap->cfg->n_backends) {
    tcp_close(tc);
    return;
  }
  tc->be = &tc->snap->backends[lc->tcp_backend_index];
  if (tc->be->n_eps == 0) {
    tcp_close(tc);
    return;
  }
  uv_tcp_nodelay(&tc->a, 1);
  tcp_connect_next(tc);
}

void tcp_close_all(void) {
  for (link_t *p = gw.tcpconns.next; p != &gw.tcpconns;) {
    tcpconn_t *tc = container_of(p, tcpconn_t, link);
    p = p->next;
    tcp_close(tc);
  }
}

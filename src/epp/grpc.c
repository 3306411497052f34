/* gRPC over HTTP/2 cleartext: nghttp2 server sessions fed from libuv sockets. Serves
 *   /envoy.service.ext_proc.v3.ExternalProcessor/Process  (bidirectional stream; ext_proc port only)
 *   /grpc.health.v1.Health/Check and /grpc.health.v1.Health/Watch (both ports).
 * A call's messages are deframed (5-byte prefix: compressed flag + big-endian length) and handed to
 * the ext_proc state machine or the health service; their answers are queued in the stream's output
 * buffer, which an nghttp2 data provider drains into DATA frames, and the call ends with grpc-status
 * trailers. Bad input never kills the process: a bad frame ends its call with an error status, a bad
 * connection preface or HTTP/2 protocol error closes that connection only. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epp.h"

#define EXTPROC_PATH "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
#define CHECK_PATH "/grpc.health.v1.Health/Check"
#define WATCH_PATH "/grpc.health.v1.Health/Watch"
#define EXTPROC_SERVICE "envoy.service.ext_proc.v3.ExternalProcessor"

#define WRITE_HIGH (1u << 20) /* stop reading a connection with this much unsent output */
#define WRITE_LOW (256u << 10)
#define MAX_STREAMS 1024
#define STREAM_WINDOW (1u << 20)
#define CONN_WINDOW (16u << 20)
#define CONN_IN_MAX (64u << 20) /* partial messages buffered per connection, all streams together */

/* gRPC status codes used here. */
enum { GS_OK = 0, GS_INVALID_ARGUMENT = 3, GS_NOT_FOUND = 5, GS_RESOURCE_EXHAUSTED = 8, GS_UNIMPLEMENTED = 12,
       GS_INTERNAL = 13 };

enum { K_NONE, K_EXTPROC, K_CHECK, K_WATCH };

typedef struct conn {
  epp_link_t link; /* in srv.conns */
  uv_tcp_t tcp;
  nghttp2_session *sess;
  epp_link_t streams;
  int extproc; /* accepted on the ext_proc port */
  size_t wpending;
  size_t in_bytes; /* sum of the streams' undeframed input */
  unsigned reading : 1, closing : 1, want_flush : 1;
} conn_t;

typedef struct {
  epp_link_t link; /* in conn.streams */
  conn_t *c;
  int32_t id;
  int kind;
  unsigned ct_ok : 1, started : 1, closing : 1, client_done : 1, failed : 1, answered : 1, watch_known : 1,
      path_long : 1, ep_init : 1;
  char path[96];
  ig_buf_t in;  /* received bytes not yet deframed */
  ig_buf_t out; /* framed messages not yet given to nghttp2 */
  size_t out_off;
  int status;
  char msg[96];
  epp_stream_t ep;
} gstream_t;

typedef struct {
  uv_tcp_t tcp;
  int extproc;
  int open;
} glisten_t;

static struct {
  uv_loop_t *loop;
  epp_t *e;
  glisten_t lst[2];
  epp_link_t conns;
  int inited;
  uv_timer_t flush_timer; /* flushes connections that got output outside their own reads (deliver) */
} srv;

static char rbuf[65536]; /* one loop thread: reads are consumed before the next one */

static void conn_flush(conn_t *c);
static void conn_close(conn_t *c);

/* ---------------------------------------------------------------- streams */

/* Drops a stream's undeframed input (and its share of the connection's input budget). */
static void drop_input(gstream_t *s) {
  s->c->in_bytes -= s->in.len;
  ig_buf_free(&s->in);
}

static void stream_free(gstream_t *s) {
  epp_list_del(&s->link);
  drop_input(s);
  if (s->ep_init) epp_stream_end(srv.e, &s->ep);
  ig_buf_free(&s->out);
  free(s);
}

static void kick(gstream_t *s) {
  if (s->started) nghttp2_session_resume_data(s->c->sess, s->id);
}

static nghttp2_nv mknv(const char *name, const char *value) {
  nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), NGHTTP2_NV_FLAG_NONE};
  return nv;
}

static void submit_trailers(gstream_t *s) {
  char code[16];
  snprintf(code, sizeof code, "%d", s->status);
  nghttp2_nv nva[2] = {mknv("grpc-status", code), mknv("grpc-message", s->msg)};
  nghttp2_submit_trailer(s->c->sess, s->id, nva, s->msg[0] ? 2 : 1);
}

/* Drains the output buffer into DATA frames; ends with trailers once the call is finished. */
static ssize_t read_out(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                        nghttp2_data_source *src, void *ud) {
  gstream_t *s = src->ptr;
  size_t avail = s->out.len - s->out_off;
  size_t n = avail < length ? avail : length;
  if (n) {
    memcpy(buf, s->out.data + s->out_off, n);
    s->out_off += n;
  }
  if (s->out_off == s->out.len) {
    s->out_off = 0;
    if (s->out.cap > (256u << 10))
      ig_buf_free(&s->out);
    else
      ig_buf_reset(&s->out);
    if (s->closing) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      submit_trailers(s);
      return (ssize_t)n;
    }
    if (n == 0) return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

/* Sends the response headers and attaches the output buffer as the body. */
static void start_response(gstream_t *s) {
  nghttp2_nv nva[2] = {mknv(":status", "200"), mknv("content-type", "application/grpc")};
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = read_out;
  if (nghttp2_submit_response(s->c->sess, s->id, nva, 2, &prd) == 0) s->started = 1;
}

/* Ends the call with status (after the queued messages); before any response this is a
 * Trailers-Only response. */
static void finish(gstream_t *s, int status, const char *msg) {
  if (s->closing) return;
  s->closing = 1;
  s->status = status;
  snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "");
  if (s->started) {
    kick(s);
    return;
  }
  char code[16];
  snprintf(code, sizeof code, "%d", status);
  nghttp2_nv nva[4] = {mknv(":status", "200"), mknv("content-type", "application/grpc"),
                       mknv("grpc-status", code), mknv("grpc-message", s->msg)};
  nghttp2_submit_response(s->c->sess, s->id, nva, s->msg[0] ? 4 : 3, NULL);
}

/* Ends the call with an error status and ignores its further input. */
static void fail(gstream_t *s, int status, const char *reason, const char *msg) {
  s->failed = 1;
  drop_input(s);
  char l[64];
  snprintf(l, sizeof l, "reason=\"%s\"", reason);
  ig_metric_add(srv.e->m_grpc_errors, l, 1);
  ig_debug("epp: stream %d: %s", s->id, msg);
  finish(s, status, msg);
}

/* ---------------------------------------------------------------- health */

static int health_known(const char *service) {
  return service[0] == '\0' || strcmp(service, EXTPROC_SERVICE) == 0;
}

static void health_append(gstream_t *s, int known) {
  Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  if (!known)
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
  else
    r.status = srv.e->serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                              : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
  epp_frame_message(&s->out, &r.base);
}

static void health_message(gstream_t *s, const uint8_t *msg, size_t len) {
  if (s->answered) return; /* one request message per call */
  Grpc__Health__V1__HealthCheckRequest *rq = grpc__health__v1__health_check_request__unpack(NULL, len, msg);
  if (!rq) {
    fail(s, GS_INTERNAL, "bad_message", "cannot decode HealthCheckRequest");
    return;
  }
  int known = health_known(rq->service ? rq->service : "");
  grpc__health__v1__health_check_request__free_unpacked(rq, NULL);
  s->answered = 1;
  if (s->kind == K_CHECK) {
    if (!known) {
      fail(s, GS_NOT_FOUND, "unknown_service", "unknown service");
      return;
    }
    health_append(s, 1);
    finish(s, GS_OK, NULL);
    return;
  }
  s->watch_known = known;
  health_append(s, known);
  kick(s);
}

void epp_grpc_health_changed(void) {
  if (!srv.inited) return;
  for (epp_link_t *l = srv.conns.next, *next; l != &srv.conns; l = next) {
    next = l->next; /* conn_flush may close c */
    conn_t *c = epp_container_of(l, conn_t, link);
    for (epp_link_t *k = c->streams.next; k != &c->streams; k = k->next) {
      gstream_t *s = epp_container_of(k, gstream_t, link);
      if (s->kind == K_WATCH && s->answered && !s->closing) {
        health_append(s, s->watch_known);
        kick(s);
      }
    }
    conn_flush(c);
  }
}

/* ---------------------------------------------------------------- messages */

static void on_message(gstream_t *s, const uint8_t *msg, size_t len) {
  if (s->kind == K_EXTPROC) {
    int rc = epp_stream_recv(srv.e, &s->ep, msg, len, &s->out);
    if (rc == IG_EPARSE)
      fail(s, GS_INTERNAL, "bad_message", "cannot decode ProcessingRequest");
    else if (rc < 0)
      fail(s, GS_INVALID_ARGUMENT, "bad_message", "ProcessingRequest without a request");
    else
      kick(s);
  } else {
    health_message(s, msg, len);
  }
}

/* Deframes and handles every complete message in buf[0..len). Returns the bytes consumed (whole
 * messages), or -1 when the call failed (its input is dropped). */
static ssize_t deframe(gstream_t *s, const uint8_t *buf, size_t len) {
  size_t off = 0;
  while (!s->failed && !s->closing) {
    size_t mlen = 0;
    int rc = epp_grpc_next(buf + off, len - off, EPP_MSG_MAX, &mlen);
    if (rc == 0) break;
    if (rc == IG_ENOTSUP) {
      fail(s, GS_UNIMPLEMENTED, "compressed", "compressed messages are not supported");
      return -1;
    }
    if (rc == IG_ETOOBIG) {
      fail(s, GS_RESOURCE_EXHAUSTED, "too_large", "message larger than 4 MiB");
      return -1;
    }
    if (rc < 0) {
      fail(s, GS_INTERNAL, "bad_frame", "bad message frame");
      return -1;
    }
    on_message(s, buf + off + 5, mlen);
    off += 5 + mlen;
  }
  return s->failed ? -1 : (ssize_t)off;
}

/* Keeps the incomplete tail data[0..len) of the input in s->in. Once a message's length prefix is
 * there, the buffer is sized for the whole message, so its DATA frames are appended without moving
 * it again; a large announced length is believed only up to 4 times what arrived (or 256 KiB), so
 * a peer cannot make us reserve much more than it sent. */
static void keep_input(gstream_t *s, const uint8_t *data, size_t len) {
  ig_buf_append(&s->in, data, len);
  s->c->in_bytes += len;
  size_t mlen = 0;
  if (s->in.len >= 5 && epp_grpc_next((const uint8_t *)s->in.data, s->in.len, EPP_MSG_MAX, &mlen) == 0) {
    const uint8_t *h = (const uint8_t *)s->in.data;
    size_t want = 5 + (((size_t)h[1] << 24) | ((size_t)h[2] << 16) | ((size_t)h[3] << 8) | h[4]);
    size_t limit = 4 * s->in.len > (256u << 10) ? 4 * s->in.len : (256u << 10);
    if (want > limit) want = limit;
    if (want > s->in.len) ig_buf_reserve(&s->in, want - s->in.len);
  }
}

/* Handles a DATA chunk of the call: complete messages are handled where they are (not copied) when
 * nothing is pending; what is left of an incomplete message waits in s->in. */
static void process_input(gstream_t *s, const uint8_t *data, size_t len) {
  if (!s->in.len) {
    ssize_t used = deframe(s, data, len);
    if (used < 0 || s->closing) return;
    if ((size_t)used < len) keep_input(s, data + used, len - (size_t)used);
    return;
  }
  keep_input(s, data, len);
  ssize_t used = deframe(s, (const uint8_t *)s->in.data, s->in.len);
  if (used <= 0) return;
  s->c->in_bytes -= (size_t)used;
  ig_buf_consume(&s->in, (size_t)used);
}

/* The client ended its side of the call. */
static void client_done(gstream_t *s) {
  s->client_done = 1;
  if (s->failed || s->closing) return;
  switch (s->kind) {
  case K_EXTPROC:
    if (s->in.len)
      fail(s, GS_INTERNAL, "truncated", "the stream ended inside a message");
    else
      finish(s, GS_OK, NULL);
    break;
  case K_CHECK:
    if (!s->answered) fail(s, GS_INVALID_ARGUMENT, "bad_message", "no HealthCheckRequest");
    break;
  default:
    break; /* Watch stays open until the client cancels */
  }
}

/* The request headers are complete: route the call by :path. */
static void dispatch(gstream_t *s) {
  conn_t *c = s->c;
  if (!s->ct_ok) {
    nghttp2_nv nva[1] = {mknv(":status", "415")};
    s->closing = s->failed = 1;
    nghttp2_submit_response(c->sess, s->id, nva, 1, NULL);
    return;
  }
  if (!s->path_long && c->extproc && strcmp(s->path, EXTPROC_PATH) == 0) {
    s->kind = K_EXTPROC;
    epp_stream_init(&s->ep);
    s->ep_init = 1;
    s->ep.out = &s->out; /* a parked request is answered later (queue.c, deliver) */
    s->ep.owner = s;
  } else if (!s->path_long && strcmp(s->path, CHECK_PATH) == 0) {
    s->kind = K_CHECK;
  } else if (!s->path_long && strcmp(s->path, WATCH_PATH) == 0) {
    s->kind = K_WATCH;
  } else {
    fail(s, GS_UNIMPLEMENTED, "unknown_method", "unknown method");
    return;
  }
  start_response(s);
}

/* ---------------------------------------------------------------- nghttp2 callbacks */

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *ud) {
  conn_t *c = ud;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  gstream_t *s = IG_NEW(gstream_t);
  s->c = c;
  s->id = frame->hd.stream_id;
  ig_buf_init(&s->in);
  ig_buf_init(&s->out);
  epp_list_add(&c->streams, &s->link);
  nghttp2_session_set_stream_user_data(sess, s->id, s);
  return 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  gstream_t *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
  if (!s) return 0;
  if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
    if (valuelen >= sizeof s->path) {
      s->path_long = 1;
    } else {
      memcpy(s->path, value, valuelen);
      s->path[valuelen] = '\0';
    }
  } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
    s->ct_ok = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
               (valuelen == 16 || value[16] == '+' || value[16] == ';');
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *ud) {
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  gstream_t *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
  if (!s) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) dispatch(s);
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) client_done(s);
  return 0;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *ud) {
  gstream_t *s = nghttp2_session_get_stream_user_data(sess, id);
  if (!s || s->kind == K_NONE || s->failed || s->closing) return 0;
  if (s->c->in_bytes + len > CONN_IN_MAX) {
    fail(s, GS_RESOURCE_EXHAUSTED, "conn_memory", "too much unprocessed input on this connection");
    return 0;
  }
  process_input(s, data, len);
  return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t error_code, void *ud) {
  gstream_t *s = nghttp2_session_get_stream_user_data(sess, id);
  if (s) stream_free(s);
  return 0;
}

/* After our END_STREAM, a call the client has not finished is reset with NO_ERROR (RFC 9113 8.1). */
static int on_frame_send(nghttp2_session *sess, const nghttp2_frame *frame, void *ud) {
  if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  gstream_t *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
  if (s && !s->client_done) nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
  return 0;
}

/* ---------------------------------------------------------------- connections */

typedef struct {
  uv_write_t req;
  conn_t *c;
  char *data;
  size_t len;
} wreq_t;

static void maybe_done(conn_t *c) {
  if (!c->closing && c->wpending == 0 && !nghttp2_session_want_read(c->sess) &&
      !nghttp2_session_want_write(c->sess))
    conn_close(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  conn_t *c = w->c;
  c->wpending -= w->len;
  free(w->data);
  free(w);
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (!c->reading && c->wpending < WRITE_LOW) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  }
  maybe_done(c);
}

/* What one flush of c will write, about: the streams' queued output (no more than the peer's
 * connection window lets through) plus DATA frame heads and room for headers and control frames. */
static size_t flush_estimate(conn_t *c) {
  size_t n = 0;
  for (epp_link_t *k = c->streams.next; k != &c->streams; k = k->next) {
    gstream_t *s = epp_container_of(k, gstream_t, link);
    n += s->out.len - s->out_off;
  }
  int32_t win = nghttp2_session_get_remote_window_size(c->sess);
  if (win >= 0 && n > (size_t)win) n = (size_t)win;
  if (n > WRITE_HIGH) n = WRITE_HIGH;
  return n + n / 16384 * 9 + 1024;
}

/* Serializes what nghttp2 has to send and writes it. The buffer is sized once from the queued
 * output, so large bodies are not moved by repeated growth. */
static void conn_flush(conn_t *c) {
  if (c->closing) return;
  ig_buf_t out;
  ig_buf_init(&out);
  ig_buf_reserve(&out, flush_estimate(c));
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->sess, &data);
    if (n < 0) {
      ig_buf_free(&out);
      conn_close(c);
      return;
    }
    if (n == 0) break;
    ig_buf_append(&out, data, (size_t)n);
  }
  if (out.len) {
    wreq_t *w = IG_NEW(wreq_t);
    w->c = c;
    w->data = out.data;
    w->len = out.len;
    uv_buf_t b = uv_buf_init(out.data, (unsigned)out.len);
    c->wpending += out.len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
      c->wpending -= w->len;
      free(w->data);
      free(w);
      conn_close(c);
      return;
    }
    if (c->reading && c->wpending > WRITE_HIGH) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->reading = 0;
    }
  } else {
    ig_buf_free(&out);
  }
  maybe_done(c);
}

static void on_conn_closed(uv_handle_t *h) {
  free(h->data);
}

static void conn_close(conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  epp_list_del(&c->link);
  nghttp2_session_del(c->sess);
  c->sess = NULL;
  while (c->streams.next != &c->streams)
    stream_free(epp_container_of(c->streams.next, gstream_t, link));
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  buf->base = rbuf;
  buf->len = sizeof rbuf;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = st->data;
  if (c->closing) return;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0) return;
  ssize_t rv = nghttp2_session_mem_recv(c->sess, (const uint8_t *)buf->base, (size_t)nread);
  if (rv < 0) {
    ig_debug("epp: closing connection: %s", nghttp2_strerror((int)rv));
    conn_flush(c); /* a GOAWAY may be queued */
    conn_close(c);
    return;
  }
  conn_flush(c);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  glisten_t *l = server->data;
  conn_t *c = IG_NEW(conn_t);
  epp_list_init(&c->streams);
  c->extproc = l->extproc;
  uv_tcp_init(srv.loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  int rv = nghttp2_session_server_new(&c->sess, cbs, c);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  epp_list_add(&srv.conns, &c->link);
  nghttp2_settings_entry iv[2] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
                                  {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW}};
  nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  c->reading = 1;
  conn_flush(c);
}

/* ---------------------------------------------------------------- start / stop */

/* Writes out what deliver queued, from the loop (never from inside an nghttp2 callback). */
static void on_flush_timer(uv_timer_t *t) {
  (void)t;
  for (epp_link_t *l = srv.conns.next, *next; l != &srv.conns; l = next) {
    next = l->next; /* conn_flush may close c */
    conn_t *c = epp_container_of(l, conn_t, link);
    if (!c->want_flush) continue;
    c->want_flush = 0;
    conn_flush(c);
  }
}

/* epp_t.deliver: the ext_proc stream owner got output outside its own messages (a parked request was
 * answered). It may run inside another stream's callbacks, so the connection is flushed from the loop. */
static void deliver(void *owner) {
  gstream_t *s = owner;
  kick(s);
  s->c->want_flush = 1;
  uv_timer_start(&srv.flush_timer, on_flush_timer, 0, 0);
}

int epp_grpc_start(uv_loop_t *loop, epp_t *e, const char *grpc_addr, const char *health_addr) {
  srv.loop = loop;
  srv.e = e;
  epp_list_init(&srv.conns);
  srv.inited = 1;
  uv_timer_init(loop, &srv.flush_timer);
  e->deliver = deliver;
  const char *addrs[2] = {grpc_addr, health_addr};
  const char *what[2] = {"ext_proc gRPC", "gRPC health"};
  for (int i = 0; i < 2; i++) {
    if (!addrs[i]) continue;
    glisten_t *l = &srv.lst[i];
    l->extproc = i == 0;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    l->open = 1;
    int rc = epp_listen(loop, &l->tcp, addrs[i], on_connection, what[i]);
    if (rc != 0) return rc;
  }
  return 0;
}

void epp_grpc_stop(void) {
  if (!srv.inited) return;
  for (int i = 0; i < 2; i++) {
    if (!srv.lst[i].open) continue;
    srv.lst[i].open = 0;
    uv_close((uv_handle_t *)&srv.lst[i].tcp, NULL);
  }
  while (srv.conns.next != &srv.conns) {
    conn_t *c = epp_container_of(srv.conns.next, conn_t, link);
    nghttp2_session_terminate_session(c->sess, NGHTTP2_NO_ERROR);
    conn_flush(c); /* GOAWAY goes out (uv_write tries at once) */
    conn_close(c);
  }
  uv_close((uv_handle_t *)&srv.flush_timer, NULL);
  srv.e->deliver = NULL;
  srv.inited = 0;
}

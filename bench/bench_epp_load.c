/* bench_epp_load: an Envoy stand-in that loads an ext_proc server (`infergate epp`) and measures the
 * latency each pick adds, plus a trivial ext_proc server to measure the same client against.
 *
 * Client (default mode): N HTTP/2 connections (nghttp2 client sessions on one libuv loop), C
 * concurrent ExternalProcessor/Process calls per connection. Each call is one HTTP request as Envoy
 * would process it: request_headers (POST /v1/completions, JSON, x-request-id, protocol_config with
 * the body mode), the body (one message with end_of_stream, or streamed in --chunk sized messages),
 * then the picker's answer is awaited: the destination header (header mutation
 * x-gateway-destination-endpoint) and, in full-duplex mode, the body streamed back up to its
 * end_of_stream. Optionally (--response) response_headers and a response body follow, answered the
 * same way. Then the client half-closes and waits for the grpc-status trailers.
 *
 * Pick latency: from the moment the last byte of the last body message is handed to the HTTP/2
 * session to the moment the request side is complete (the answer Envoy needs before it can forward
 * the request upstream). Bodies: 64 distinct prompts of exactly --body-bytes bytes, round robin.
 *
 * Null server (--serve-null HOST:PORT): answers every message at once, without buffering or
 * picking: request headers get a HeadersResponse with a fixed destination header and metadata (in
 * full-duplex mode at once, before the body), body chunks are echoed (full duplex) or answered with
 * the same destination (buffered). It decodes and encodes every message like any processor must, so
 * `picker - null` is the latency the picker adds.
 *
 *   bench_epp_load --addr 127.0.0.1:9002 --conns 16 --streams 4 --body-bytes 4096 --requests 20000
 *   bench_epp_load --serve-null 127.0.0.1:9102
 */
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../bench/bench.h"
#include "epp.h"

#define PROCESS_PATH "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
#define VARIANTS 64
#define WINDOW (16u << 20)
#define CONN_WINDOW (256u << 20)
#define NULL_DEST "10.0.0.1:8000"

typedef Envoy__Service__ExtProc__V3__ProcessingResponse presp_t;
typedef Envoy__Service__ExtProc__V3__HeadersResponse headers_resp_t;
typedef Envoy__Service__ExtProc__V3__BodyResponse body_resp_t;

/* ================================================================ shared HTTP/2 connection glue */

typedef struct h2conn {
  uv_tcp_t tcp;
  nghttp2_session *sess;
  size_t wpending;
  int closing;
  void (*on_close)(struct h2conn *); /* called once, before the handle closes */
} h2conn_t;

typedef struct {
  uv_write_t req;
  char *data;
  size_t len;
  h2conn_t *c;
} wreq_t;

static char rbuf[256 << 10];

static void h2_close(h2conn_t *c);

static void h2_freed(uv_handle_t *h) {
  free(h->data);
}

static void h2_close(h2conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->on_close) c->on_close(c);
  nghttp2_session_del(c->sess);
  c->sess = NULL;
  uv_close((uv_handle_t *)&c->tcp, h2_freed);
}

static void h2_written(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  w->c->wpending -= w->len;
  if (status < 0) h2_close(w->c);
  free(w->data);
  free(w);
}

/* Writes everything nghttp2 has to send in one uv_write. Closes the connection on error. */
static void h2_flush(h2conn_t *c) {
  if (c->closing) return;
  ig_buf_t out;
  ig_buf_init(&out);
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->sess, &data);
    if (n < 0) {
      ig_buf_free(&out);
      h2_close(c);
      return;
    }
    if (n == 0) break;
    ig_buf_append(&out, data, (size_t)n);
  }
  if (!out.len) {
    ig_buf_free(&out);
    if (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess) && !c->wpending)
      h2_close(c);
    return;
  }
  wreq_t *w = IG_NEW(wreq_t);
  w->c = c;
  w->data = out.data;
  w->len = out.len;
  c->wpending += out.len;
  uv_buf_t b = uv_buf_init(out.data, (unsigned)out.len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, h2_written) != 0) {
    c->wpending -= w->len;
    free(w->data);
    free(w);
    h2_close(c);
  }
}

static void h2_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  buf->base = rbuf;
  buf->len = sizeof rbuf;
}

static void h2_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  h2conn_t *c = st->data;
  if (c->closing) return;
  if (nread < 0) {
    h2_close(c);
    return;
  }
  if (nread == 0) return;
  if (nghttp2_session_mem_recv(c->sess, (const uint8_t *)buf->base, (size_t)nread) < 0) {
    h2_flush(c);
    h2_close(c);
    return;
  }
  h2_flush(c);
}

static nghttp2_nv mknv(const char *name, const char *value) {
  nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), NGHTTP2_NV_FLAG_NONE};
  return nv;
}

/* Resolves "HOST:PORT" (first address). Returns 0 or IG_EINVAL. */
static int resolve(const char *addr, struct sockaddr_storage *out) {
  char host[256], ports[16];
  int port;
  if (ig_parse_hostport(addr, host, sizeof host, &port) != 0) return IG_EINVAL;
  snprintf(ports, sizeof ports, "%d", port);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host[0] ? host : "127.0.0.1", ports, &hints, &res) != 0 || !res) return IG_EINVAL;
  memcpy(out, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

/* ---- message helpers ---- */

static epp_hv_t *hv(epp_hv_t *h, const char *key, const char *value) {
  envoy__config__core__v3__header_value__init(h);
  h->key = (char *)key;
  h->raw_value.data = (uint8_t *)value;
  h->raw_value.len = strlen(value);
  return h;
}

/* The value of header key in a header mutation (NULL when absent). */
static const char *hmut_get(const epp_hmut_t *m, const char *key) {
  if (!m) return NULL;
  for (size_t i = 0; i < m->n_set_headers; i++) {
    const epp_hvo_t *o = m->set_headers[i];
    if (!o || !o->header || !o->header->key || strcmp(o->header->key, key) != 0) continue;
    return o->header->raw_value.len ? "raw" : (o->header->value ? o->header->value : "");
  }
  return NULL;
}

/* ================================================================ null server */

typedef struct {
  h2conn_t h;
  epp_link_t streams;
} nconn_t;

typedef struct {
  epp_link_t link; /* in nconn_t.streams */
  int32_t id;
  int req_mode, resp_mode;
  unsigned started : 1, closing : 1, ok_ct : 1;
  ig_buf_t in, out;
  size_t out_off;
} nstream_t;

static uv_loop_t *loop;

/* Appends one ProcessingResponse of case which (msg: the case's message) to out. */
static void null_emit(ig_buf_t *out, int which, void *msg, epp_struct_t *meta) {
  presp_t r = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__INIT;
  r.response_case = (Envoy__Service__ExtProc__V3__ProcessingResponse__ResponseCase)which;
  r.request_headers = msg; /* every member of the union is a pointer */
  r.dynamic_metadata = meta;
  epp_frame_message(out, &r.base);
}

/* Emits a CommonResponse-carrying answer of case which; with_dest adds the destination header and the
 * envoy.lb metadata (a fixed endpoint), body (when not NULL) a streamed body chunk. */
static void null_answer(ig_buf_t *out, int which, int with_dest, const ProtobufCBinaryData *body, int eos) {
  epp_hvo_t o = ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__INIT;
  epp_hv_t h;
  epp_hvo_t *op = &o;
  epp_hmut_t hm = ENVOY__SERVICE__EXT_PROC__V3__HEADER_MUTATION__INIT;
  epp_common_t c = ENVOY__SERVICE__EXT_PROC__V3__COMMON_RESPONSE__INIT;
  Envoy__Service__ExtProc__V3__StreamedBodyResponse sb =
      ENVOY__SERVICE__EXT_PROC__V3__STREAMED_BODY_RESPONSE__INIT;
  Envoy__Service__ExtProc__V3__BodyMutation bm;
  envoy__service__ext_proc__v3__body_mutation__init(&bm);
  epp_value_t inner = GOOGLE__PROTOBUF__VALUE__INIT, outer = GOOGLE__PROTOBUF__VALUE__INIT;
  Google__Protobuf__Struct__FieldsEntry fi = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
                                        fo = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
  Google__Protobuf__Struct__FieldsEntry *fip = &fi, *fop = &fo;
  epp_struct_t si = GOOGLE__PROTOBUF__STRUCT__INIT, so = GOOGLE__PROTOBUF__STRUCT__INIT;
  epp_struct_t *meta = NULL;
  if (with_dest) {
    o.header = hv(&h, EPP_HDR_DEST, NULL_DEST);
    hm.set_headers = &op;
    hm.n_set_headers = 1;
    c.header_mutation = &hm;
    inner.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    inner.string_value = NULL_DEST;
    fi.key = EPP_META_KEY;
    fi.value = &inner;
    si.fields = &fip;
    si.n_fields = 1;
    outer.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
    outer.struct_value = &si;
    fo.key = EPP_META_NS;
    fo.value = &outer;
    so.fields = &fop;
    so.n_fields = 1;
    meta = &so;
  }
  if (body) {
    sb.body = *body;
    sb.end_of_stream = eos != 0;
    bm.mutation_case = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_STREAMED_RESPONSE;
    bm.streamed_response = &sb;
    c.body_mutation = &bm;
  }
  headers_resp_t hr = ENVOY__SERVICE__EXT_PROC__V3__HEADERS_RESPONSE__INIT;
  body_resp_t br = ENVOY__SERVICE__EXT_PROC__V3__BODY_RESPONSE__INIT;
  hr.response = &c;
  br.response = &c;
  int is_headers = which == ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS ||
                   which == ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_HEADERS;
  null_emit(out, which, is_headers ? (void *)&hr : (void *)&br, meta);
}

/* Answers one decoded ProcessingRequest at once. */
static void null_message(nstream_t *s, const epp_preq_t *rq) {
  if (rq->protocol_config && s->req_mode < 0) {
    s->req_mode = (int)rq->protocol_config->request_body_mode;
    s->resp_mode = (int)rq->protocol_config->response_body_mode;
  }
  if (s->req_mode < 0) s->req_mode = s->resp_mode = EPP_MODE_FULL_DUPLEX;
  Envoy__Service__ExtProc__V3__TrailersResponse tr = ENVOY__SERVICE__EXT_PROC__V3__TRAILERS_RESPONSE__INIT;
  switch (rq->request_case) {
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_HEADERS: {
    int last = (rq->request_headers && rq->request_headers->end_of_stream) || s->req_mode == EPP_MODE_NONE;
    null_answer(&s->out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS,
                last || s->req_mode == EPP_MODE_FULL_DUPLEX, NULL, 0);
    break;
  }
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_BODY:
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_BODY: {
    int req = rq->request_case == ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_BODY;
    const epp_body_t *b = req ? rq->request_body : rq->response_body;
    int mode = req ? s->req_mode : s->resp_mode, eos = b && b->end_of_stream;
    int which = req ? ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY
                    : ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_BODY;
    ProtobufCBinaryData empty = {0, NULL};
    if (mode == EPP_MODE_FULL_DUPLEX) {
      /* echoed in chunks of at most EPP_CHUNK_MAX bytes, as the protocol wants (and the picker does) */
      const ProtobufCBinaryData *all = b ? &b->body : &empty;
      size_t off = 0;
      do {
        ProtobufCBinaryData part = {all->len - off > EPP_CHUNK_MAX ? EPP_CHUNK_MAX : all->len - off,
                                    all->data + off};
        off += part.len;
        null_answer(&s->out, which, 0, &part, eos && off == all->len);
      } while (off < all->len);
    } else if (eos || mode != EPP_MODE_BUFFERED)
      null_answer(&s->out, which, req && eos, NULL, 0);
    break;
  }
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_HEADERS:
    null_answer(&s->out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_HEADERS, 0,
                NULL, 0);
    break;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_TRAILERS:
    null_emit(&s->out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_TRAILERS, &tr,
              NULL);
    break;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_TRAILERS:
    null_emit(&s->out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_TRAILERS, &tr,
              NULL);
    break;
  default:
    break;
  }
}

static ssize_t null_read_out(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                             nghttp2_data_source *src, void *ud) {
  nstream_t *s = src->ptr;
  size_t avail = s->out.len - s->out_off, n = avail < length ? avail : length;
  memcpy(buf, s->out.data + s->out_off, n);
  s->out_off += n;
  if (s->out_off == s->out.len) {
    s->out_off = 0;
    ig_buf_reset(&s->out);
    if (s->closing) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_nv tr[1] = {mknv("grpc-status", "0")};
      nghttp2_submit_trailer(sess, id, tr, 1);
      return (ssize_t)n;
    }
    if (n == 0) return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

static int null_begin_headers(nghttp2_session *sess, const nghttp2_frame *f, void *ud) {
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  nconn_t *c = ud;
  nstream_t *s = IG_NEW(nstream_t);
  epp_list_add(&c->streams, &s->link);
  s->id = f->hd.stream_id;
  s->req_mode = s->resp_mode = -1;
  ig_buf_init(&s->in);
  ig_buf_init(&s->out);
  nghttp2_session_set_stream_user_data(sess, s->id, s);
  return 0;
}

static int null_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *ud) {
  nstream_t *s = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
  if (!s || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)) return 0;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    nghttp2_nv nva[2] = {mknv(":status", "200"), mknv("content-type", "application/grpc")};
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = null_read_out};
    if (nghttp2_submit_response(sess, s->id, nva, 2, &prd) == 0) s->started = 1;
  }
  if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->started) {
    s->closing = 1;
    nghttp2_session_resume_data(sess, s->id);
  }
  return 0;
}

static int null_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                     void *ud) {
  nstream_t *s = nghttp2_session_get_stream_user_data(sess, id);
  if (!s || s->closing) return 0;
  ig_buf_append(&s->in, data, len);
  size_t off = 0, mlen;
  int rc;
  while ((rc = epp_grpc_next((const uint8_t *)s->in.data + off, s->in.len - off, EPP_MSG_MAX, &mlen)) == 1) {
    epp_preq_t *rq = envoy__service__ext_proc__v3__processing_request__unpack(
        NULL, mlen, (const uint8_t *)s->in.data + off + 5);
    if (rq) {
      null_message(s, rq);
      envoy__service__ext_proc__v3__processing_request__free_unpacked(rq, NULL);
    }
    off += 5 + mlen;
  }
  if (rc < 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  ig_buf_consume(&s->in, off);
  if (s->out.len && s->started) nghttp2_session_resume_data(sess, id);
  return 0;
}

static void nstream_free(nstream_t *s) {
  epp_list_del(&s->link);
  ig_buf_free(&s->in);
  ig_buf_free(&s->out);
  free(s);
}

static int null_stream_close(nghttp2_session *sess, int32_t id, uint32_t code, void *ud) {
  nstream_t *s = nghttp2_session_get_stream_user_data(sess, id);
  if (!s) return 0;
  nghttp2_session_set_stream_user_data(sess, id, NULL);
  nstream_free(s);
  return 0;
}

/* nghttp2_session_del calls no close callbacks: free the streams still open. */
static void null_conn_closing(h2conn_t *h) {
  nconn_t *c = (nconn_t *)h;
  while (c->streams.next != &c->streams)
    nstream_free(epp_container_of(c->streams.next, nstream_t, link));
}

static void null_accept(uv_stream_t *server, int status) {
  if (status < 0) return;
  nconn_t *c = IG_NEW(nconn_t);
  epp_list_init(&c->streams);
  uv_tcp_init(loop, &c->h.tcp);
  c->h.tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->h.tcp) != 0) {
    uv_close((uv_handle_t *)&c->h.tcp, h2_freed);
    return;
  }
  uv_tcp_nodelay(&c->h.tcp, 1);
  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, null_begin_headers);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, null_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, null_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, null_stream_close);
  nghttp2_session_server_new(&c->h.sess, cbs, c);
  nghttp2_session_callbacks_del(cbs);
  c->h.on_close = null_conn_closing;
  nghttp2_settings_entry iv[2] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1024},
                                  {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20}};
  nghttp2_submit_settings(c->h.sess, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(c->h.sess, NGHTTP2_FLAG_NONE, 0, 16u << 20);
  uv_read_start((uv_stream_t *)&c->h.tcp, h2_alloc, h2_read);
  h2_flush(&c->h);
}

static void on_stop_signal(uv_signal_t *h, int sig) {
  uv_stop(h->loop);
}

/* Closes every handle left on the loop (connections through h2_close). */
static void close_all(uv_handle_t *h, void *arg) {
  if (uv_is_closing(h)) return;
  if (h->type == UV_TCP && h->data)
    h2_close(h->data);
  else
    uv_close(h, NULL);
}

/* Runs the null ext_proc server until SIGTERM/SIGINT. */
static int serve_null(const char *addr) {
  uv_tcp_t lst;
  uv_tcp_init(loop, &lst);
  lst.data = NULL;
  int rc = epp_listen(loop, &lst, addr, null_accept, "null ext_proc") != 0 ? 2 : 0;
  uv_signal_t sig[2];
  if (rc == 0) {
    for (int i = 0; i < 2; i++) {
      uv_signal_init(loop, &sig[i]);
      sig[i].data = NULL;
      uv_signal_start(&sig[i], on_stop_signal, i ? SIGINT : SIGTERM);
    }
    fprintf(stderr, "bench_epp_load: null ext_proc server on %s\n", addr);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  uv_walk(loop, close_all, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  return rc;
}

/* ================================================================ client */

enum { E_IMMEDIATE, E_GRPC, E_NODEST, E_RESET, E_TIMEOUT, E_BADMSG, E_CONN, E_N };
static const char *err_names[E_N] = {
    "immediate_response", "grpc_status", "no_destination", "reset", "timeout", "bad_message", "connection"};

typedef struct {
  const char *addr, *model;
  unsigned conns, streams;
  size_t body_bytes, chunk;
  uint64_t requests, warmup;
  double duration_s, timeout_s;
  int mode; /* EPP_MODE_FULL_DUPLEX or EPP_MODE_BUFFERED */
  int response, json, hist;
  const char *label;
} opts_t;

typedef struct {
  const uint8_t *p;
  size_t len;
} seg_t;

struct cconn;

typedef struct {
  struct cconn *c;
  int32_t id; /* 0: the slot is free */
  uint64_t seq;
  ig_buf_t hdr; /* this call's framed request_headers message */
  seg_t *segs;
  size_t n_segs, cap_segs, seg, seg_off, last_body_seg;
  int eof; /* half-close once segs are drained */
  ig_buf_t in;
  uint64_t t_start, t_sent, t_done;
  size_t echoed;
  unsigned got_dest : 1, req_done : 1, resp_hdr : 1, resp_done : 1, failed : 1, measured : 1;
  int err, imm_status, grpc_status;
} call_t;

typedef struct cconn {
  h2conn_t h;
  unsigned idx;
  int connected;
  uv_connect_t creq;
  call_t *calls;
} cconn_t;

static struct {
  opts_t o;
  cconn_t **conns;
  ig_buf_t bodies[VARIANTS]; /* framed body messages of each variant, back to back */
  size_t *chunk_ends;        /* per variant: end offsets of each framed chunk */
  size_t n_chunks;
  ig_buf_t resp_msgs; /* framed response_headers + response_body */
  size_t resp_split;
  uint64_t started, completed, in_flight, ok, errors[E_N];
  uint64_t imm_status[6]; /* by hundreds */
  uint64_t t_measure, t_end, deadline;
  int measuring, stopping;
  ig_bench_samples_t lat;
  uv_timer_t tick;
  struct sockaddr_storage sa;
} cl;

static void call_start(cconn_t *c, call_t *k);

static void seg_add(call_t *k, const void *p, size_t len) {
  if (k->n_segs == k->cap_segs) {
    k->cap_segs = k->cap_segs ? k->cap_segs * 2 : 16;
    k->segs = ig_realloc(k->segs, k->cap_segs * sizeof *k->segs);
  }
  k->segs[k->n_segs].p = p;
  k->segs[k->n_segs].len = len;
  k->n_segs++;
}

static ssize_t call_read_out(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                             nghttp2_data_source *src, void *ud) {
  call_t *k = src->ptr;
  size_t n = 0;
  while (n < length && k->seg < k->n_segs) {
    seg_t *sg = &k->segs[k->seg];
    size_t take = sg->len - k->seg_off;
    if (take > length - n) take = length - n;
    memcpy(buf + n, sg->p + k->seg_off, take);
    n += take;
    k->seg_off += take;
    if (k->seg_off == sg->len) {
      if (k->seg == k->last_body_seg && !k->t_sent) k->t_sent = ig_now_us();
      k->seg++;
      k->seg_off = 0;
    }
  }
  if (k->seg == k->n_segs) {
    if (k->eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return (ssize_t)n;
    }
    if (n == 0) return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

static void call_fail(call_t *k, int err) {
  if (k->failed) return;
  k->failed = 1;
  k->err = err;
}

/* Half-closes the call (after what is queued). */
static void call_end(call_t *k) {
  k->eof = 1;
  nghttp2_session_resume_data(k->c->h.sess, k->id);
}

/* The request side is complete: record the time, go on with the response side or end the call. */
static void request_done(call_t *k) {
  k->req_done = 1;
  k->t_done = ig_now_us();
  if (!k->got_dest) call_fail(k, E_NODEST);
  if (k->failed || !cl.o.response) {
    call_end(k);
    return;
  }
  seg_add(k, cl.resp_msgs.data, cl.resp_msgs.len);
  nghttp2_session_resume_data(k->c->h.sess, k->id);
}

static void response_done(call_t *k) {
  k->resp_done = 1;
  call_end(k);
}

/* Handles one ProcessingResponse of a call. */
static void call_message(call_t *k, const presp_t *r) {
  int duplex = cl.o.mode == EPP_MODE_FULL_DUPLEX;
  const epp_common_t *c = NULL;
  switch (r->response_case) {
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_IMMEDIATE_RESPONSE: {
    int st =
        r->immediate_response && r->immediate_response->status ? (int)r->immediate_response->status->code : 0;
    k->imm_status = st;
    call_fail(k, E_IMMEDIATE);
    call_end(k);
    return;
  }
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS:
    c = r->request_headers ? r->request_headers->response : NULL;
    if (c && hmut_get(c->header_mutation, EPP_HDR_DEST)) k->got_dest = 1;
    return;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY:
    c = r->request_body ? r->request_body->response : NULL;
    if (k->req_done) return;
    if (c && hmut_get(c->header_mutation, EPP_HDR_DEST)) k->got_dest = 1;
    if (duplex) {
      const Envoy__Service__ExtProc__V3__StreamedBodyResponse *sb =
          c && c->body_mutation ? c->body_mutation->streamed_response : NULL;
      if (!sb) {
        call_fail(k, E_BADMSG);
        call_end(k);
        return;
      }
      k->echoed += sb->body.len;
      if (sb->end_of_stream) request_done(k);
    } else {
      request_done(k);
    }
    return;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_HEADERS:
    k->resp_hdr = 1;
    return;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_BODY:
    c = r->response_body ? r->response_body->response : NULL;
    if (duplex) {
      const Envoy__Service__ExtProc__V3__StreamedBodyResponse *sb =
          c && c->body_mutation ? c->body_mutation->streamed_response : NULL;
      if (sb && sb->end_of_stream) response_done(k);
    } else {
      response_done(k);
    }
    return;
  default:
    return;
  }
}

static void print_progress_error(const call_t *k) {
  static int shown;
  if (shown++ >= 3) return;
  if (k->err == E_IMMEDIATE)
    fprintf(stderr, "bench_epp_load: call %llu: immediate response %d\n", (unsigned long long)k->seq,
            k->imm_status);
  else
    fprintf(stderr, "bench_epp_load: call %llu: %s (grpc-status %d)\n", (unsigned long long)k->seq,
            err_names[k->err], k->grpc_status);
}

static void maybe_finish(void);

/* The stream is closed: account the call and start the next one on this slot. */
static void call_closed(call_t *k, int conn_gone) {
  cconn_t *c = k->c;
  if (!k->failed) {
    if (conn_gone)
      call_fail(k, E_CONN);
    else if (k->grpc_status != 0)
      call_fail(k, E_GRPC);
    else if (!k->req_done || (cl.o.response && !k->resp_done))
      call_fail(k, E_RESET);
  }
  cl.in_flight--;
  cl.completed++;
  if (k->measured) {
    if (k->failed) {
      cl.errors[k->err]++;
      if (k->err == E_IMMEDIATE && k->imm_status >= 100 && k->imm_status < 600)
        cl.imm_status[k->imm_status / 100]++;
      print_progress_error(k);
    } else {
      cl.ok++;
      ig_bench_samples_add(&cl.lat, (double)(k->t_done - k->t_sent) / 1000.0);
    }
  }
  if (!cl.measuring && cl.completed >= cl.o.warmup) {
    cl.measuring = 1;
    cl.t_measure = ig_now_us();
    if (cl.o.duration_s > 0) cl.deadline = cl.t_measure + (uint64_t)(cl.o.duration_s * 1e6);
  }
  k->id = 0;
  ig_buf_free(&k->in);
  if (!conn_gone && !c->h.closing) call_start(c, k);
  maybe_finish();
}

/* Whether another call may start now. */
static int may_start(void) {
  if (cl.stopping) return 0;
  if (cl.o.duration_s > 0) return !cl.measuring || ig_now_us() < cl.deadline;
  return cl.started < cl.o.warmup + cl.o.requests;
}

static void call_start(cconn_t *c, call_t *k) {
  if (!may_start()) return;
  uint64_t seq = cl.started++;
  k->got_dest = k->req_done = k->resp_hdr = k->resp_done = k->failed = 0;
  k->measured = cl.measuring || seq >= cl.o.warmup;
  k->seq = seq;
  k->err = 0;
  k->imm_status = 0;
  k->grpc_status = 0;
  k->echoed = 0;
  k->t_sent = k->t_done = 0;
  k->eof = 0;
  k->n_segs = k->seg = k->seg_off = 0;
  ig_buf_init(&k->in);

  /* request_headers, packed per call (x-request-id changes) */
  char rid[32], clen[24];
  snprintf(rid, sizeof rid, "bench-%llu", (unsigned long long)seq);
  snprintf(clen, sizeof clen, "%zu", cl.o.body_bytes);
  epp_hv_t hvs[8];
  epp_hv_t *hp[8] = {hv(&hvs[0], ":method", "POST"),
                     hv(&hvs[1], ":path", "/v1/completions"),
                     hv(&hvs[2], ":authority", "gateway.example"),
                     hv(&hvs[3], ":scheme", "http"),
                     hv(&hvs[4], "content-type", "application/json"),
                     hv(&hvs[5], "content-length", clen),
                     hv(&hvs[6], "x-request-id", rid),
                     hv(&hvs[7], "user-agent", "bench_epp_load")};
  Envoy__Config__Core__V3__HeaderMap hm = ENVOY__CONFIG__CORE__V3__HEADER_MAP__INIT;
  hm.headers = hp;
  hm.n_headers = 8;
  epp_headers_t h = ENVOY__SERVICE__EXT_PROC__V3__HTTP_HEADERS__INIT;
  h.headers = &hm;
  Envoy__Service__ExtProc__V3__ProtocolConfiguration pc =
      ENVOY__SERVICE__EXT_PROC__V3__PROTOCOL_CONFIGURATION__INIT;
  pc.request_body_mode =
      (Envoy__Extensions__Filters__Http__ExtProc__V3__ProcessingMode__BodySendMode)cl.o.mode;
  pc.response_body_mode =
      (Envoy__Extensions__Filters__Http__ExtProc__V3__ProcessingMode__BodySendMode)cl.o.mode;
  epp_preq_t rq = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__INIT;
  rq.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_HEADERS;
  rq.request_headers = &h;
  rq.protocol_config = &pc;
  ig_buf_reset(&k->hdr);
  epp_frame_message(&k->hdr, &rq.base);
  seg_add(k, k->hdr.data, k->hdr.len);
  const ig_buf_t *b = &cl.bodies[seq % VARIANTS];
  size_t prev = 0;
  for (size_t i = 0; i < cl.n_chunks; i++) {
    size_t end = cl.chunk_ends[i];
    seg_add(k, b->data + prev, end - prev);
    prev = end;
  }
  k->last_body_seg = k->n_segs - 1;

  nghttp2_nv nva[6] = {mknv(":method", "POST"),
                       mknv(":scheme", "http"),
                       mknv(":path", PROCESS_PATH),
                       mknv(":authority", cl.o.addr),
                       mknv("content-type", "application/grpc"),
                       mknv("te", "trailers")};
  nghttp2_data_provider prd = {.source.ptr = k, .read_callback = call_read_out};
  int32_t id = nghttp2_submit_request(c->h.sess, NULL, nva, 6, &prd, k);
  if (id < 0) {
    fprintf(stderr, "bench_epp_load: cannot start a stream: %s\n", nghttp2_strerror(id));
    cl.stopping = 1;
    return;
  }
  k->id = id;
  k->t_start = ig_now_us();
  cl.in_flight++;
}

static int cl_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud) {
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  call_t *k = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
  if (!k) return 0;
  if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
    char v[16];
    size_t n = valuelen < sizeof v - 1 ? valuelen : sizeof v - 1;
    memcpy(v, value, n);
    v[n] = '\0';
    k->grpc_status = atoi(v);
  } else if (namelen == 7 && memcmp(name, ":status", 7) == 0 &&
             !(valuelen == 3 && memcmp(value, "200", 3) == 0)) {
    k->grpc_status = -1;
  }
  return 0;
}

static int cl_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud) {
  call_t *k = nghttp2_session_get_stream_user_data(sess, id);
  if (!k) return 0;
  ig_buf_append(&k->in, data, len);
  size_t off = 0, mlen;
  int rc;
  while ((rc = epp_grpc_next((const uint8_t *)k->in.data + off, k->in.len - off, EPP_MSG_MAX, &mlen)) == 1) {
    presp_t *r = envoy__service__ext_proc__v3__processing_response__unpack(
        NULL, mlen, (const uint8_t *)k->in.data + off + 5);
    off += 5 + mlen;
    if (!r) {
      call_fail(k, E_BADMSG);
      call_end(k);
      break;
    }
    call_message(k, r);
    envoy__service__ext_proc__v3__processing_response__free_unpacked(r, NULL);
  }
  if (rc < 0) {
    call_fail(k, E_BADMSG);
    nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    off = k->in.len;
  }
  ig_buf_consume(&k->in, off);
  return 0;
}

static int cl_stream_close(nghttp2_session *sess, int32_t id, uint32_t code, void *ud) {
  call_t *k = nghttp2_session_get_stream_user_data(sess, id);
  if (!k || k->id != id) return 0;
  nghttp2_session_set_stream_user_data(sess, id, NULL);
  call_closed(k, 0);
  return 0;
}

/* The connection is going away: every call still open on it ends with a connection error. */
static void cl_conn_closing(h2conn_t *h) {
  cconn_t *c = (cconn_t *)h;
  cl.conns[c->idx] = NULL; /* freed with the handle */
  c->connected = 0;
  for (unsigned i = 0; i < cl.o.streams; i++) {
    call_t *k = &c->calls[i];
    if (k->id) {
      if (!cl.stopping) {
        fprintf(stderr, "bench_epp_load: connection %u lost\n", c->idx);
        cl.stopping = 1;
      }
      call_closed(k, 1);
    }
    ig_buf_free(&k->hdr);
    ig_buf_free(&k->in);
    free(k->segs);
  }
  free(c->calls);
}

static void cl_connected(uv_connect_t *req, int status) {
  cconn_t *c = req->data;
  if (status < 0) {
    fprintf(stderr, "bench_epp_load: cannot connect to %s: %s\n", cl.o.addr, uv_strerror(status));
    cl.stopping = 1;
    cl.errors[E_CONN]++;
    h2_close(&c->h);
    return;
  }
  c->connected = 1;
  uv_tcp_nodelay(&c->h.tcp, 1);
  nghttp2_settings_entry iv[2] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                  {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW}};
  nghttp2_submit_settings(c->h.sess, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(c->h.sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
  uv_read_start((uv_stream_t *)&c->h.tcp, h2_alloc, h2_read);
  for (unsigned i = 0; i < cl.o.streams; i++)
    call_start(c, &c->calls[i]);
  h2_flush(&c->h);
}

static int all_closed(void) {
  for (unsigned i = 0; i < cl.o.conns; i++)
    if (cl.conns[i] && !cl.conns[i]->h.closing) return 0;
  return 1;
}

/* Once nothing is in flight and nothing may start, notes the end time; the next tick closes the
 * connections (not from inside an nghttp2 callback). */
static void maybe_finish(void) {
  if (cl.in_flight || may_start()) return;
  if (!cl.t_end) cl.t_end = ig_now_us();
}

/* After the end: closes every connection (GOAWAY first), then the timer. */
static void close_conns(void) {
  for (unsigned i = 0; i < cl.o.conns; i++) {
    cconn_t *c = cl.conns[i];
    if (!c || c->h.closing) continue;
    if (c->connected) {
      nghttp2_session_terminate_session(c->h.sess, NGHTTP2_NO_ERROR);
      h2_flush(&c->h);
    }
    h2_close(&c->h);
  }
  if (all_closed() && !uv_is_closing((uv_handle_t *)&cl.tick)) uv_close((uv_handle_t *)&cl.tick, NULL);
}

/* Every 20 ms: time out calls that take too long, end a --duration run, flush what was queued. */
static void on_tick(uv_timer_t *t) {
  if (cl.t_end) {
    close_conns();
    return;
  }
  uint64_t now = ig_now_us(), limit = (uint64_t)(cl.o.timeout_s * 1e6);
  for (unsigned i = 0; i < cl.o.conns; i++) {
    cconn_t *c = cl.conns[i];
    if (!c || c->h.closing || !c->connected) continue;
    for (unsigned j = 0; j < cl.o.streams; j++) {
      call_t *k = &c->calls[j];
      if (k->id && !k->failed && now - k->t_start > limit) {
        call_fail(k, E_TIMEOUT);
        nghttp2_submit_rst_stream(c->h.sess, NGHTTP2_FLAG_NONE, k->id, NGHTTP2_CANCEL);
      }
    }
    h2_flush(&c->h);
  }
  maybe_finish();
}

static void on_signal(uv_signal_t *h, int sig) {
  cl.stopping = 1;
  uv_signal_stop(h);
  uv_close((uv_handle_t *)h, NULL);
  maybe_finish();
}

/* Builds the 64 body variants (framed, split into chunks) and the response messages. */
static void build_messages(void) {
  const opts_t *o = &cl.o;
  size_t chunk = o->chunk && o->mode == EPP_MODE_FULL_DUPLEX ? o->chunk : o->body_bytes;
  cl.n_chunks = (o->body_bytes + chunk - 1) / chunk;
  if (!cl.n_chunks) cl.n_chunks = 1;
  cl.chunk_ends = ig_calloc(cl.n_chunks, sizeof *cl.chunk_ends);
  static const char words[] = "the quick brown fox jumps over the lazy dog while the model server waits ";
  ig_buf_t body;
  ig_buf_init(&body);
  for (unsigned v = 0; v < VARIANTS; v++) {
    ig_buf_reset(&body);
    ig_buf_printf(&body, "{\"model\":\"%s\",\"max_tokens\":16,\"prompt\":\"variant %02u: ", o->model, v);
    size_t tail = 2; /* "} */
    size_t wi = 0;
    while (body.len + tail < o->body_bytes) {
      char ch = words[wi++ % (sizeof words - 1)];
      ig_buf_append(&body, &ch, 1);
    }
    ig_buf_puts(&body, "\"}");
    ig_buf_init(&cl.bodies[v]);
    for (size_t i = 0, off = 0; i < cl.n_chunks; i++) {
      size_t n = body.len - off < chunk ? body.len - off : chunk;
      if (i == cl.n_chunks - 1) n = body.len - off;
      epp_body_t hb = ENVOY__SERVICE__EXT_PROC__V3__HTTP_BODY__INIT;
      hb.body.data = (uint8_t *)body.data + off;
      hb.body.len = n;
      hb.end_of_stream = i == cl.n_chunks - 1;
      epp_preq_t rq = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__INIT;
      rq.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_BODY;
      rq.request_body = &hb;
      epp_frame_message(&cl.bodies[v], &rq.base);
      cl.chunk_ends[i] = cl.bodies[v].len;
      off += n;
    }
  }
  ig_buf_free(&body);

  epp_hv_t hvs[2];
  epp_hv_t *hp[2] = {hv(&hvs[0], ":status", "200"), hv(&hvs[1], "content-type", "application/json")};
  Envoy__Config__Core__V3__HeaderMap hm = ENVOY__CONFIG__CORE__V3__HEADER_MAP__INIT;
  hm.headers = hp;
  hm.n_headers = 2;
  epp_headers_t h = ENVOY__SERVICE__EXT_PROC__V3__HTTP_HEADERS__INIT;
  h.headers = &hm;
  epp_preq_t rq = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__INIT;
  rq.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_HEADERS;
  rq.response_headers = &h;
  ig_buf_init(&cl.resp_msgs);
  epp_frame_message(&cl.resp_msgs, &rq.base);
  static const char rbody[] =
      "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"ok\","
      "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":1000,"
      "\"completion_tokens\":16,\"total_tokens\":1016}}";
  epp_body_t hb = ENVOY__SERVICE__EXT_PROC__V3__HTTP_BODY__INIT;
  hb.body.data = (uint8_t *)rbody;
  hb.body.len = sizeof rbody - 1;
  hb.end_of_stream = 1;
  epp_preq_t rb = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__INIT;
  rb.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_BODY;
  rb.response_body = &hb;
  epp_frame_message(&cl.resp_msgs, &rb.base);
}

static void print_hist(ig_bench_samples_t *s) {
  /* log2 buckets from 25 us */
  size_t counts[24] = {0};
  for (size_t i = 0; i < s->n; i++) {
    double us = s->v[i] * 1000.0;
    int b = 0;
    for (double lim = 25; us > lim && b < 23; lim *= 2)
      b++;
    counts[b]++;
  }
  printf("latency histogram (ms, upper bound: count):\n");
  double lim = 0.025;
  for (int b = 0; b < 24; b++, lim *= 2) {
    if (!counts[b]) continue;
    printf("  <= %9.3f%s %8zu\n", lim, b == 23 ? "+" : " ", counts[b]);
  }
}

static int report(void) {
  const opts_t *o = &cl.o;
  ig_bench_summary_t sm;
  ig_bench_summarize(&cl.lat, &sm);
  uint64_t errs = 0;
  for (int i = 0; i < E_N; i++)
    errs += cl.errors[i];
  double wall = cl.measuring && cl.t_end > cl.t_measure ? (double)(cl.t_end - cl.t_measure) / 1e6 : 0;
  double rate = wall > 0 ? (double)cl.ok / wall : 0;
  const char *mode = o->mode == EPP_MODE_FULL_DUPLEX ? "duplex" : "buffered";
  if (o->json) {
    printf("{\"label\":\"%s\",\"addr\":\"%s\",\"conns\":%u,\"streams\":%u,\"body_bytes\":%zu,\"chunk\":%zu,"
           "\"mode\":\"%s\",\"response\":%d,\"ok\":%llu,\"errors\":%llu,\"wall_s\":%.3f,\"picks_per_s\":%.1f,"
           "\"mean_ms\":%.4f,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f",
           o->label ? o->label : "", o->addr, o->conns, o->streams, o->body_bytes, o->chunk, mode,
           o->response, (unsigned long long)cl.ok, (unsigned long long)errs, wall, rate, sm.mean, sm.p50,
           sm.p90, sm.p99, sm.max);
    for (int i = 0; i < E_N; i++)
      if (cl.errors[i]) printf(",\"err_%s\":%llu", err_names[i], (unsigned long long)cl.errors[i]);
    printf("}\n");
  } else {
    printf("bench_epp_load: %s conns=%u streams=%u body=%zu B chunk=%zu mode=%s%s\n", o->addr, o->conns,
           o->streams, o->body_bytes, o->chunk, mode, o->response ? " +response" : "");
    printf("picks: %llu ok, %llu errors in %.3f s: %.0f picks/s\n", (unsigned long long)cl.ok,
           (unsigned long long)errs, wall, rate);
    printf("pick latency ms: mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", sm.mean, sm.p50, sm.p90,
           sm.p99, sm.max);
    for (int i = 0; i < E_N; i++)
      if (cl.errors[i]) printf("  errors %s: %llu\n", err_names[i], (unsigned long long)cl.errors[i]);
    for (int i = 1; i < 6; i++)
      if (cl.imm_status[i])
        printf("  immediate responses %dxx: %llu\n", i, (unsigned long long)cl.imm_status[i]);
    if (o->hist) print_hist(&cl.lat);
  }
  if (cl.errors[E_CONN] || cl.ok == 0) return 1;
  return 0;
}

static int run_client(void) {
  if (resolve(cl.o.addr, &cl.sa) != 0) {
    fprintf(stderr, "bench_epp_load: bad --addr '%s' (want HOST:PORT)\n", cl.o.addr);
    return 2;
  }
  build_messages();
  ig_bench_samples_init(&cl.lat);
  cl.conns = ig_calloc(cl.o.conns, sizeof *cl.conns);
  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, cl_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cl_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cl_stream_close);
  for (unsigned i = 0; i < cl.o.conns; i++) {
    cconn_t *c = IG_NEW(cconn_t);
    c->idx = i;
    c->calls = ig_calloc(cl.o.streams, sizeof *c->calls);
    for (unsigned j = 0; j < cl.o.streams; j++) {
      c->calls[j].c = c;
      ig_buf_init(&c->calls[j].hdr);
    }
    cl.conns[i] = c;
    uv_tcp_init(loop, &c->h.tcp);
    c->h.tcp.data = c;
    c->h.on_close = cl_conn_closing;
    nghttp2_session_client_new(&c->h.sess, cbs, c);
    c->creq.data = c;
    if (uv_tcp_connect(&c->creq, &c->h.tcp, (const struct sockaddr *)&cl.sa, cl_connected) != 0) {
      fprintf(stderr, "bench_epp_load: cannot connect to %s\n", cl.o.addr);
      return 2;
    }
  }
  nghttp2_session_callbacks_del(cbs);
  if (cl.o.warmup == 0) {
    cl.measuring = 1;
    cl.t_measure = ig_now_us();
    if (cl.o.duration_s > 0) cl.deadline = cl.t_measure + (uint64_t)(cl.o.duration_s * 1e6);
  }
  uv_timer_init(loop, &cl.tick);
  uv_timer_start(&cl.tick, on_tick, 20, 20);
  uv_signal_t sig;
  uv_signal_init(loop, &sig);
  uv_signal_start(&sig, on_signal, SIGINT);
  uv_unref((uv_handle_t *)&sig);
  uv_run(loop, UV_RUN_DEFAULT);
  if (!uv_is_closing((uv_handle_t *)&sig)) uv_close((uv_handle_t *)&sig, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  int rc = report();
  free(cl.conns);
  for (unsigned v = 0; v < VARIANTS; v++)
    ig_buf_free(&cl.bodies[v]);
  ig_buf_free(&cl.resp_msgs);
  free(cl.chunk_ends);
  ig_bench_samples_free(&cl.lat);
  return rc;
}

/* ================================================================ main */

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_epp_load [--addr HOST:PORT] [--conns N] [--streams C] [--body-bytes B] [--chunk B]\n"
          "                      [--requests N | --duration S] [--warmup N] [--model NAME]\n"
          "                      [--mode duplex|buffered] [--response] [--timeout S] [--json] [--label L] "
          "[--hist]\n"
          "       bench_epp_load --serve-null HOST:PORT\n"
          "Acts as Envoy's ext_proc filter against an ext_proc server and reports picks/s and the pick\n"
          "latency (last body byte sent -> request side answered) percentiles. Defaults: --addr\n"
          "127.0.0.1:9002 --conns 1 --streams 1 --body-bytes 4096 --requests 2000 --model llama3 --mode "
          "duplex.\n");
}

static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || *end || v < min || v > max || s[0] == '-') return IG_EINVAL;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
      {"addr", required_argument, 0, 'a'},     {"conns", required_argument, 0, 'c'},
      {"streams", required_argument, 0, 's'},  {"body-bytes", required_argument, 0, 'b'},
      {"chunk", required_argument, 0, 'k'},    {"requests", required_argument, 0, 'n'},
      {"duration", required_argument, 0, 'd'}, {"warmup", required_argument, 0, 'w'},
      {"model", required_argument, 0, 'm'},    {"mode", required_argument, 0, 'M'},
      {"response", no_argument, 0, 'r'},       {"timeout", required_argument, 0, 't'},
      {"json", no_argument, 0, 'j'},           {"label", required_argument, 0, 'l'},
      {"hist", no_argument, 0, 'H'},           {"serve-null", required_argument, 0, 'S'},
      {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
  opts_t *o = &cl.o;
  o->addr = "127.0.0.1:9002";
  o->model = "llama3";
  o->conns = o->streams = 1;
  o->body_bytes = 4096;
  o->requests = 2000;
  o->warmup = (uint64_t)-1;
  o->timeout_s = 10;
  o->mode = EPP_MODE_FULL_DUPLEX;
  const char *serve = NULL;
  int ch;
  uint64_t v;
  int li = 0;
  while ((ch = getopt_long(argc, argv, "h", lo, &li)) != -1) {
    int bad = 0;
    switch (ch) {
    case 'a':
      o->addr = optarg;
      break;
    case 'c':
      bad = parse_uint(optarg, 1, 1024, &v);
      o->conns = (unsigned)v;
      break;
    case 's':
      bad = parse_uint(optarg, 1, 1000, &v);
      o->streams = (unsigned)v;
      break;
    case 'b':
      bad = parse_uint(optarg, 16, 4u << 20, &v);
      o->body_bytes = (size_t)v;
      break;
    case 'k':
      bad = parse_uint(optarg, 0, 4u << 20, &v);
      o->chunk = (size_t)v;
      break;
    case 'n':
      bad = parse_uint(optarg, 1, 1000000000, &o->requests);
      break;
    case 'w':
      bad = parse_uint(optarg, 0, 1000000000, &o->warmup);
      break;
    case 'm':
      o->model = optarg;
      bad = strlen(optarg) == 0 || strlen(optarg) > 200 || strpbrk(optarg, "\"\\") != NULL;
      break;
    case 'd':
      o->duration_s = strtod(optarg, NULL);
      bad = !(o->duration_s > 0 && o->duration_s < 86400);
      break;
    case 't':
      o->timeout_s = strtod(optarg, NULL);
      bad = !(o->timeout_s > 0 && o->timeout_s < 3600);
      break;
    case 'M':
      if (strcmp(optarg, "duplex") == 0)
        o->mode = EPP_MODE_FULL_DUPLEX;
      else if (strcmp(optarg, "buffered") == 0)
        o->mode = EPP_MODE_BUFFERED;
      else
        bad = 1;
      break;
    case 'r':
      o->response = 1;
      break;
    case 'j':
      o->json = 1;
      break;
    case 'l':
      o->label = optarg;
      break;
    case 'H':
      o->hist = 1;
      break;
    case 'S':
      serve = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
    if (bad) {
      fprintf(stderr, "bench_epp_load: bad value '%s' for --%s\n", optarg, lo[li].name);
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    usage(stderr);
    return 2;
  }
  if (o->body_bytes < 64 + strlen(o->model)) o->body_bytes = 64 + strlen(o->model);
  if (o->warmup == (uint64_t)-1) o->warmup = (uint64_t)o->conns * o->streams * 4;
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t lp;
  uv_loop_init(&lp);
  loop = &lp;
  int rc = serve ? serve_null(serve) : run_client();
  uv_loop_close(loop);
  return rc;
}

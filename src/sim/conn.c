/* Simulator HTTP/1.1 connections: read, parse heads and bodies (Content-Length or chunked), hand
 * complete requests to the API layer, write responses, keep-alive and pipelining (one request at a
 * time per connection). */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define MAX_HEAD_BYTES 16384
#define MAX_BODY_BYTES (16u << 20)
#define MAX_HEADERS 64
#define READ_CHUNK 65536

typedef struct {
  uv_write_t w;
  ig_sim_conn_t *c;
  char *data;
} wreq_t;

static void conn_process(ig_sim_conn_t *c);

static void on_closed(uv_handle_t *h) {
  ig_sim_conn_t *c = h->data;
  ig_buf_free(&c->in);
  free(c);
}

void ig_sim_conn_close(ig_sim_conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  ig_sim_pod_t *pod = c->pod;
  if (c->prev) c->prev->next = c->next;
  else pod->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  if (c->req) {
    ig_sim_req_t *r = c->req;
    c->req = NULL;
    r->conn = NULL;
    ig_sim_req_free(r);
  }
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_write(uv_write_t *w, int status) {
  wreq_t *wr = (wreq_t *)w;
  ig_sim_conn_t *c = wr->c;
  free(wr->data);
  free(wr);
  c->pending_writes--;
  if (c->closing) return;
  if (status < 0) {
    ig_sim_conn_close(c);
    return;
  }
  if (c->pending_writes == 0 && c->close_after_write) ig_sim_conn_close(c);
}

void ig_sim_conn_send(ig_sim_conn_t *c, ig_buf_t *out) {
  if (c->closing || out->len == 0) {
    ig_buf_free(out);
    return;
  }
  wreq_t *wr = IG_NEW(wreq_t);
  wr->c = c;
  wr->data = out->data;
  uv_buf_t b = uv_buf_init(out->data, (unsigned)out->len);
  ig_buf_init(out); /* the write request owns the bytes now */
  c->pending_writes++;
  int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc) {
    c->pending_writes--;
    free(wr->data);
    free(wr);
    ig_sim_conn_close(c);
  }
}

void ig_sim_conn_done(ig_sim_conn_t *c, int close) {
  c->busy = 0;
  if (c->closing) return;
  if (close) {
    c->close_after_write = 1;
    c->busy = 1; /* parse nothing more */
    if (c->pending_writes == 0) ig_sim_conn_close(c);
    return;
  }
  if (!c->in_process) conn_process(c); /* else the running loop picks up the next request */
}

/* Answers a framing error and closes the connection. */
static void fail_conn(ig_sim_conn_t *c, int status, const char *msg) {
  ig_buf_t out;
  ig_buf_init(&out);
  ig_http_write_error(&out, status, "invalid_request_error", NULL, msg, 1);
  ig_sim_conn_send(c, &out);
  ig_sim_conn_done(c, 1);
}

/* Decodes a chunked body at p[0..n) into body. Returns 1 with *used set when complete, 0 when more
 * input is needed, or a negative IG_E* code. */
static int decode_chunked(const char *p, size_t n, ig_buf_t *body, size_t *used) {
  ig_chunked_decoder_t d;
  ig_chunked_init(&d);
  size_t off = 0;
  for (;;) {
    size_t consumed = 0, dlen = 0;
    const char *data = NULL;
    int rc = ig_chunked_next(&d, p + off, n - off, &consumed, &data, &dlen);
    if (rc < 0 && rc != IG_EAGAIN) return rc;
    if (dlen) {
      if (body->len + dlen > MAX_BODY_BYTES) return IG_ETOOBIG;
      ig_buf_append(body, data, dlen);
    }
    off += consumed;
    if (rc == 1) {
      *used = off;
      return 1;
    }
    if (rc == IG_EAGAIN || (consumed == 0 && dlen == 0)) return 0;
  }
}

/* Parses and dispatches buffered requests while the connection is free. */
static void conn_process(ig_sim_conn_t *c) {
  while (!c->busy && !c->closing && c->in.len > 0) {
    ig_http_request_t req;
    ig_http_header_t hdrs[MAX_HEADERS];
    int rc = ig_http_parse_request(c->in.data, c->in.len, &req, hdrs, MAX_HEADERS, NULL);
    if (rc == IG_EAGAIN) {
      if (c->in.len > MAX_HEAD_BYTES) fail_conn(c, 431, "request head too large");
      return;
    }
    if (rc == IG_ETOOBIG) {
      fail_conn(c, 431, "request head too large");
      return;
    }
    if (rc < 0) {
      fail_conn(c, 400, "malformed HTTP request");
      return;
    }
    size_t head = (size_t)rc, total;
    ig_buf_t chunked;
    ig_buf_init(&chunked);
    const char *body;
    size_t body_len;
    if (req.chunked) {
      size_t used = 0;
      int drc = decode_chunked(c->in.data + head, c->in.len - head, &chunked, &used);
      if (drc < 0) {
        ig_buf_free(&chunked);
        fail_conn(c, drc == IG_ETOOBIG ? 413 : 400, drc == IG_ETOOBIG ? "request body too large"
                                                                        : "malformed chunked body");
        return;
      }
      if (drc == 0) {
        ig_buf_free(&chunked);
        if (c->in.len - head > MAX_BODY_BYTES + 65536) {
          fail_conn(c, 413, "request body too large");
          return;
        }
        goto need_more;
      }
      body = chunked.data ? chunked.data : "";
      body_len = chunked.len;
      total = head + used;
    } else {
      uint64_t cl = req.content_length > 0 ? (uint64_t)req.content_length : 0;
      if (cl > MAX_BODY_BYTES) {
        fail_conn(c, 413, "request body too large");
        return;
      }
      if (c->in.len - head < cl) goto need_more;
      body = c->in.data + head;
      body_len = (size_t)cl;
      total = head + (size_t)cl;
    }
    c->busy = 1;
    c->sent_continue = 0;
    c->in_process = 1;
    ig_sim_api_handle(c, &req, body, body_len);
    c->in_process = 0;
    ig_buf_free(&chunked);
    if (c->closing) return;
    ig_buf_consume(&c->in, total);
    continue;

  need_more:
    if (req.expect_continue && !c->sent_continue) {
      ig_buf_t out;
      ig_buf_init(&out);
      ig_buf_puts(&out, "HTTP/1.1 100 Continue\r\n\r\n");
      ig_sim_conn_send(c, &out);
      c->sent_continue = 1;
    }
    return;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ig_sim_conn_t *c = h->data;
  (void)suggested;
  ig_buf_reserve(&c->in, READ_CHUNK);
  buf->base = c->in.data + c->in.len;
  buf->len = c->in.cap - c->in.len - 1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ig_sim_conn_t *c = s->data;
  (void)buf;
  if (nread < 0) {
    ig_sim_conn_close(c);
    return;
  }
  if (nread == 0 || c->closing) return;
  c->in.len += (size_t)nread;
  c->in.data[c->in.len] = '\0';
  if (c->in.len > MAX_BODY_BYTES + 2 * MAX_HEAD_BYTES) {
    ig_sim_conn_close(c); /* a client flooding a busy connection */
    return;
  }
  if (!c->busy) conn_process(c); /* else parsed when the response in progress is done */
}

void ig_sim_on_connection(uv_stream_t *server, int status) {
  ig_sim_pod_t *pod = server->data;
  if (status < 0 || pod->sim->stopping) return;
  ig_sim_conn_t *c = IG_NEW(ig_sim_conn_t);
  c->pod = pod;
  ig_buf_init(&c->in);
  uv_tcp_init(pod->sim->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->next = pod->conns;
  if (pod->conns) pod->conns->prev = c;
  pod->conns = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

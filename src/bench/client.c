/* The load-generating HTTP/1.1 client of infergate bench, on libuv.
 *
 * Requests come either from a closed loop (a fixed number of workers, each sending its next request
 * when the previous one ends) or from an open loop (Poisson arrivals at a given rate, whatever the
 * server's pace; Poisson, or gamma gaps for burstier or smoother traffic). Each request uses one connection
 * at a time; connections are kept alive and reused from an idle list. A request that fails on a reused
 * connection before any response byte (the server closed it while idle) is retried once on a fresh
 * connection, like browsers do.
 *
 * Lifetimes: a req lives from issue to finish(); a conn lives until its close callback. The bytes
 * being written belong to the conn, so a request may finish (timeout, early error response) while
 * its write is still pending. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <jansson.h>

#include "bench.h"
#include "infergate/http.h"
#include "infergate/oai.h"

#define TICK_MS 20
#define PROGRESS_NS (250ull * 1000 * 1000) /* at most 4 progress lines a second */
#define READ_BUF (64 * 1024)
#define MAX_ERROR_BODY (64 * 1024)

typedef struct run run_t;
typedef struct conn conn_t;
typedef struct req req_t;

enum { FR_LENGTH, FR_CHUNKED, FR_CLOSE };

struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  run_t *run;
  req_t *req;    /* request being served, NULL when idle */
  ig_buf_t in;   /* received bytes not yet consumed */
  ig_buf_t wire; /* bytes being written */
  int connected, writing, closing, used;
  conn_t *prev, *next; /* idle list */
};

struct req {
  run_t *run;
  conn_t *conn;
  size_t rec; /* index in res->recs (the array may move) */
  ig_buf_t wire;
  uint64_t start_ns, deadline_ns;
  int retried;
  /* response state */
  size_t got; /* response bytes received */
  int head_done, status, keep_alive, framing, is_sse;
  uint64_t remaining;
  ig_chunked_decoder_t ch;
  ig_bench_sse_t sse;
  ig_buf_t body;      /* non-SSE body (bounded) */
  req_t *prev, *next; /* in-flight list */
};

struct run {
  uv_loop_t loop;
  const ig_bench_opts_t *o;
  const ig_bench_wl_t *wl;
  ig_bench_result_t *res;
  struct sockaddr_storage addr;
  uv_timer_t tick, arrive;
  uv_signal_t sigint, sigterm;
  ig_rng_t arr_rng;
  uint64_t t0_ns, next_arrival_ns, last_end_ns;
  uint64_t issued;
  size_t inflight;
  size_t n_ok, n_failed, n_shed; /* finished requests, for the progress line */
  uint64_t last_progress_ns;
  int progress_shown;
  req_t *reqs;  /* in flight */
  conn_t *idle; /* idle keep-alive connections */
  int stopping, shut;
  char rbuf[READ_BUF];
};

static void issue(run_t *r);
static void conn_write(conn_t *c);
static void process(conn_t *c, uint64_t now);

static double ms_between(uint64_t a_ns, uint64_t b_ns) {
  return (double)(int64_t)(b_ns - a_ns) / 1e6;
}

/* ---- connections -------------------------------------------------------------------------- */

static void idle_remove(conn_t *c) {
  run_t *r = c->run;
  if (c->prev)
    c->prev->next = c->next;
  else if (r->idle == c)
    r->idle = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

/* Close callback: the last moment anything may refer to the connection. */
static void on_conn_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  ig_buf_free(&c->in);
  ig_buf_free(&c->wire);
  free(c);
}

/* Closes c (it must not be serving a request any more). */
static void conn_close(conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  idle_remove(c);
  c->req = NULL;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* Rewrites the progress line on stderr (a terminal: the caller checked) in place. */
static void progress(run_t *r, uint64_t now) {
  double el = (double)(now - r->t0_ns) / 1e9;
  fprintf(stderr,
          "\rbench: sent %" PRIu64
          "  done %zu  errors %zu  shed %zu  in flight %zu  %.1f req/s  elapsed %.1f s\033[K",
          r->issued, r->n_ok, r->n_failed, r->n_shed, r->inflight, el > 0 ? (double)r->n_ok / el : 0.0, el);
  fflush(stderr);
  r->last_progress_ns = now;
  r->progress_shown = 1;
}

/* Closes every handle the run owns, so uv_run returns once the pending closes are done. */
static void shutdown_run(run_t *r) {
  if (r->shut) return;
  r->shut = 1;
  if (r->progress_shown) { /* clear the line: the summary follows on stdout */
    fputs("\r\033[K", stderr);
    fflush(stderr);
  }
  uv_close((uv_handle_t *)&r->tick, NULL);
  uv_close((uv_handle_t *)&r->arrive, NULL);
  uv_close((uv_handle_t *)&r->sigint, NULL);
  uv_close((uv_handle_t *)&r->sigterm, NULL);
  while (r->idle)
    conn_close(r->idle);
}

/* Whether one more request may be sent now; flips the run into stopping mode when not. */
static int may_issue(run_t *r, uint64_t now) {
  const ig_bench_opts_t *o = r->o;
  if (r->stopping) return 0;
  if ((o->requests && r->issued >= o->requests) ||
      (o->duration_s > 0 && (double)(now - r->t0_ns) >= o->duration_s * 1e9)) {
    r->stopping = 1;
    return 0;
  }
  return 1;
}

/* Ends the run when nothing more will be sent and nothing is in flight. */
static void check_done(run_t *r) {
  if (r->stopping && !r->inflight) shutdown_run(r);
}

/* ---- finishing a request ------------------------------------------------------------------ */

/* Extracts an error message from an OpenAI error body, if any (caller frees). */
static char *error_message(const ig_buf_t *body) {
  json_t *root = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
  char *out = NULL;
  json_t *err = json_object_get(root, "error");
  json_t *msg = json_is_object(err) ? json_object_get(err, "message") : err;
  if (json_is_string(msg)) {
    const char *m = json_string_value(msg);
    size_t n = json_string_length(msg);
    if (n > 200) { /* cut at a UTF-8 character boundary */
      n = 200;
      while (n && ((unsigned char)m[n] & 0xC0) == 0x80)
        n--;
    }
    out = ig_strndup(m, n);
  }
  json_decref(root);
  return out;
}

/* Output tokens of a non-streamed completion: usage.completion_tokens, else the estimate from
 * the returned text. Returns -1 when the body is not JSON. */
static int64_t body_output_tokens(const ig_buf_t *body) {
  json_t *root = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return -1;
  }
  int64_t n = 0;
  json_t *ct = json_object_get(json_object_get(root, "usage"), "completion_tokens");
  if (json_is_integer(ct)) {
    n = json_integer_value(ct);
  } else {
    json_t *c = json_array_get(json_object_get(root, "choices"), 0);
    json_t *t = json_object_get(c, "text");
    if (!json_is_string(t)) t = json_object_get(json_object_get(c, "message"), "content");
    if (json_is_string(t)) n = (int64_t)ig_oai_count_tokens(json_string_value(t), json_string_length(t));
  }
  json_decref(root);
  return n;
}

static void set_error(ig_bench_record_t *rec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(ig_bench_record_t *rec, const char *fmt, ...) {
  if (rec->error) return;
  ig_buf_t b;
  ig_buf_init(&b);
  va_list ap;
  va_start(ap, fmt);
  ig_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  rec->error = b.data;
}

/* Records the outcome of a complete response into the request's record. */
static void judge(req_t *q, uint64_t now) {
  run_t *r = q->run;
  ig_bench_record_t *rec = &r->res->recs[q->rec];
  rec->status = q->status;
  rec->e2e_ms = ms_between(q->start_ns, now);
  if (q->status == 429) {
    char *m = error_message(&q->body);
    rec->shed = 1;
    set_error(rec, "HTTP 429%s%s", m ? ": " : "", m ? m : "");
    free(m);
    return;
  }
  if (q->status < 200 || q->status > 299) {
    char *m = error_message(&q->body);
    set_error(rec, "HTTP %d%s%s", q->status, m ? ": " : "", m ? m : "");
    free(m);
    return;
  }
  if (q->is_sse) {
    ig_bench_sse_t *s = &q->sse;
    rec->chunks = s->token_events;
    rec->output_tokens = s->usage_completion >= 0 ? s->usage_completion : (int64_t)s->token_events;
    if (s->usage_prompt >= 0) rec->prompt_tokens = (uint32_t)s->usage_prompt;
    if (s->token_events) rec->ttft_ms = ms_between(q->start_ns, s->first_token_us * 1000);
    if (s->n_itl) rec->itl_ms_mean = s->itl_sum_ms / (double)s->n_itl;
    if (s->error)
      set_error(rec, "error in stream: %s", s->error);
    else if (s->overflow)
      set_error(rec, "malformed stream: line too long");
    else if (!s->done)
      set_error(rec, "stream ended without [DONE]");
  } else {
    int64_t n = body_output_tokens(&q->body);
    if (n < 0) set_error(rec, "response body is not JSON");
    rec->output_tokens = n < 0 ? 0 : n;
    rec->ttft_ms = rec->e2e_ms; /* without streaming the first token arrives with the last */
  }
  if (q->is_sse && rec->ttft_ms >= 0 && rec->output_tokens > 1)
    rec->tpot_ms = (rec->e2e_ms - rec->ttft_ms) / (double)(rec->output_tokens - 1);
  if (!rec->error) {
    rec->ok = 1;
    for (size_t i = 0; i < q->sse.n_itl; i++)
      ig_bench_samples_add(&r->res->itl, q->sse.itl_ms[i]);
  }
}

/* Ends request q: unlinks it, frees it, and hands its connection back (reuse when reusable is set
 * and the connection is in a clean state, else close). Sends the next request in closed loop. */
static void finish(req_t *q, int reusable, uint64_t now) {
  run_t *r = q->run;
  conn_t *c = q->conn;
  ig_bench_record_t *rec = &r->res->recs[q->rec];
  if (rec->e2e_ms < 0) rec->e2e_ms = ms_between(q->start_ns, now);
  if (rec->status == 0) rec->status = q->status;
  r->last_end_ns = now;
  if (rec->ok)
    r->n_ok++;
  else if (rec->shed)
    r->n_shed++;
  else
    r->n_failed++;
  if (c) {
    c->req = NULL;
    ig_buf_reset(&c->in);
    if (reusable && !c->writing && !c->closing && !r->stopping) {
      c->used = 1;
      c->next = r->idle;
      if (r->idle) r->idle->prev = c;
      r->idle = c;
    } else {
      conn_close(c);
    }
  }
  if (q->prev)
    q->prev->next = q->next;
  else
    r->reqs = q->next;
  if (q->next) q->next->prev = q->prev;
  r->inflight--;
  ig_buf_free(&q->wire);
  ig_buf_free(&q->body);
  ig_bench_sse_free(&q->sse);
  free(q);
  if (!r->o->rate && may_issue(r, now)) issue(r);
  check_done(r);
}

static void fail(req_t *q, uint64_t now, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(req_t *q, uint64_t now, const char *fmt, ...) {
  ig_bench_record_t *rec = &q->run->res->recs[q->rec];
  if (!rec->error) {
    ig_buf_t b;
    ig_buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    ig_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    rec->error = b.data;
  }
  finish(q, 0, now);
}

/* ---- I/O ---------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn_t *c = h->data;
  buf->base = c->run->rbuf;
  buf->len = sizeof c->run->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void conn_open(run_t *r, req_t *q);

/* Starts q over on a fresh connection (after a reused one turned out to be dead). */
static void retry(req_t *q) {
  conn_close(q->conn); /* also detaches it from q's side */
  q->conn = NULL;
  q->retried = 1;
  conn_open(q->run, q);
}

static void on_connect(uv_connect_t *cr, int status) {
  conn_t *c = cr->data;
  if (c->closing) return;
  req_t *q = c->req;
  uint64_t now = uv_hrtime();
  if (status < 0) {
    if (q)
      fail(q, now, "connect: %s", uv_strerror(status));
    else
      conn_close(c);
    return;
  }
  c->connected = 1;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (q)
    conn_write(c);
  else
    conn_close(c);
}

/* Opens a new connection for q. */
static void conn_open(run_t *r, req_t *q) {
  conn_t *c = IG_NEW(conn_t);
  c->run = r;
  ig_buf_init(&c->in);
  ig_buf_init(&c->wire);
  uv_tcp_init(&r->loop, &c->tcp);
  c->tcp.data = c;
  c->creq.data = c;
  c->wreq.data = c;
  c->req = q;
  q->conn = c;
  r->res->connections++;
  uv_tcp_nodelay(&c->tcp, 1);
  int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&r->addr, on_connect);
  if (rc < 0) fail(q, uv_hrtime(), "connect: %s", uv_strerror(rc));
}

/* A connection that broke (EOF or error) while serving its request. */
static void conn_broken(conn_t *c, ssize_t err, uint64_t now) {
  req_t *q = c->req;
  if (!q) {
    conn_close(c);
    return;
  }
  if (q->head_done && q->framing == FR_CLOSE && err == UV_EOF) {
    judge(q, now);
    finish(q, 0, now);
    return;
  }
  if (!q->got && c->used && !q->retried) {
    retry(q);
    return;
  }
  const char *why = err == UV_EOF ? "connection closed" : uv_strerror((int)err);
  if (!q->head_done)
    fail(q, now, "%s before the response", why);
  else
    fail(q, now, "%s mid-response (HTTP %d)", why, q->status);
}

static void on_written(uv_write_t *w, int status) {
  conn_t *c = w->data;
  c->writing = 0;
  if (c->closing) return;
  if (status < 0) {
    conn_broken(c, status, uv_hrtime());
    return;
  }
}

static void conn_write(conn_t *c) {
  req_t *q = c->req;
  ig_buf_reset(&c->wire);
  ig_buf_append(&c->wire, q->wire.data, q->wire.len);
  uv_buf_t b = uv_buf_init(c->wire.data, (unsigned)c->wire.len);
  c->writing = 1;
  int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rc < 0) {
    c->writing = 0;
    conn_broken(c, rc, uv_hrtime());
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (c->closing) return;
  uint64_t now = uv_hrtime();
  if (nread < 0) {
    conn_broken(c, nread, now);
    return;
  }
  if (nread == 0) return;
  if (!c->req) { /* unsolicited bytes on an idle connection: it is out of step */
    conn_close(c);
    return;
  }
  c->req->got += (size_t)nread;
  ig_buf_append(&c->in, buf->base, (size_t)nread);
  process(c, now);
}

/* Body bytes of the response to q. */
static void on_body(req_t *q, const char *p, size_t n, uint64_t now) {
  if (q->is_sse) {
    ig_bench_sse_feed(&q->sse, p, n, now / 1000);
  } else if (q->body.len < MAX_ERROR_BODY) {
    size_t room = MAX_ERROR_BODY - q->body.len;
    ig_buf_append(&q->body, p, n < room ? n : room);
  }
}

/* Parses what arrived on c for its request: the head, then the body in its framing. */
static void process(conn_t *c, uint64_t now) {
  req_t *q = c->req;
  const char *in = c->in.data;
  size_t len = c->in.len, off = 0;
  int complete = 0;
  while (!q->head_done) {
    ig_http_response_t res;
    ig_http_header_t hdrs[64];
    int rc = ig_http_parse_response(in + off, len - off, &res, hdrs, 64, NULL);
    if (rc == IG_EAGAIN) goto keep;
    if (rc < 0) {
      fail(q, now, "malformed response head: %s", ig_strerror(rc));
      return;
    }
    off += (size_t)rc;
    if (res.status >= 100 && res.status < 200) continue; /* interim response */
    q->head_done = 1;
    q->status = res.status;
    q->keep_alive = res.keep_alive;
    if (res.status == 204 || res.status == 304) {
      q->framing = FR_LENGTH;
      q->remaining = 0;
    } else if (res.chunked) {
      q->framing = FR_CHUNKED;
      ig_chunked_init(&q->ch);
    } else if (res.content_length >= 0) {
      q->framing = FR_LENGTH;
      q->remaining = (uint64_t)res.content_length;
    } else {
      q->framing = FR_CLOSE;
      q->keep_alive = 0;
    }
    const ig_http_header_t *ct = ig_http_header_find(hdrs, res.num_headers, "content-type");
    int json = ct && ct->value_len >= 16 && ig_strncaseeq(ct->value, 16, "application/json");
    q->is_sse = res.status >= 200 && res.status <= 299 && q->run->o->stream && !json;
    if (q->framing == FR_LENGTH && q->remaining == 0) complete = 1;
  }
  while (!complete && off < len) {
    if (q->framing == FR_CHUNKED) {
      size_t used = 0, dlen = 0;
      const char *d = NULL;
      int rc = ig_chunked_next(&q->ch, in + off, len - off, &used, &d, &dlen);
      if (rc == IG_EAGAIN) break;
      if (rc < 0) {
        fail(q, now, "malformed chunked body");
        return;
      }
      if (dlen) on_body(q, d, dlen, now);
      off += used;
      if (rc == 1)
        complete = 1;
      else if (!used)
        break;
    } else if (q->framing == FR_LENGTH) {
      size_t take = len - off < q->remaining ? len - off : (size_t)q->remaining;
      on_body(q, in + off, take, now);
      off += take;
      q->remaining -= take;
      if (!q->remaining) complete = 1;
    } else {
      on_body(q, in + off, len - off, now);
      off = len;
    }
  }
  if (complete) {
    int clean = off == len; /* bytes beyond the response mean the connection is out of step */
    judge(q, now);
    finish(q, q->keep_alive && clean, now);
    return;
  }
keep:
  ig_buf_consume(&c->in, off);
}

/* ---- issuing ------------------------------------------------------------------------------ */

static void build_wire(run_t *r, req_t *q, const ig_bench_item_t *it) {
  const ig_bench_opts_t *o = r->o;
  ig_buf_t body;
  ig_buf_init(&body);
  ig_bench_body(&body, it, o->chat, o->stream);
  ig_buf_printf(&q->wire,
                "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: infergate-bench\r\n"
                "Content-Type: application/json\r\nAccept: %s\r\nContent-Length: %zu\r\n",
                o->path, o->hostport, o->stream ? "text/event-stream" : "application/json", body.len);
  if (it->class_name && r->wl->cfg.n_models != 3)
    ig_buf_printf(&q->wire, "x-infergate-criticality: %s\r\n", it->class_name);
  for (size_t i = 0; i < o->n_headers; i++)
    ig_buf_printf(&q->wire, "%s\r\n", o->headers[i]);
  ig_buf_puts(&q->wire, "\r\n");
  ig_buf_append(&q->wire, body.data, body.len);
  ig_buf_free(&body);
}

/* Sends the next request of the workload. */
static void issue(run_t *r) {
  ig_bench_result_t *res = r->res;
  uint64_t now = uv_hrtime();
  ig_bench_item_t it;
  ig_bench_wl_item(r->wl, r->issued, &it);
  if (res->n == res->cap) {
    res->cap = res->cap ? res->cap * 2 : 256;
    res->recs = ig_realloc(res->recs, res->cap * sizeof *res->recs);
  }
  ig_bench_record_t *rec = &res->recs[res->n];
  memset(rec, 0, sizeof *rec);
  rec->id = it.id;
  rec->prompt_tokens = it.prompt_tokens;
  rec->max_tokens = it.max_tokens;
  rec->output_tokens = 0;
  rec->start_ms = ms_between(r->t0_ns, now);
  rec->ttft_ms = rec->e2e_ms = rec->tpot_ms = rec->itl_ms_mean = -1;
  rec->model = it.model;
  rec->class_name = it.class_name;
  rec->group = it.group;

  req_t *q = IG_NEW(req_t);
  q->run = r;
  q->rec = res->n++;
  q->start_ns = now;
  q->deadline_ns = now + (uint64_t)(r->o->timeout_s * 1e9);
  ig_buf_init(&q->wire);
  ig_buf_init(&q->body);
  ig_bench_sse_init(&q->sse);
  build_wire(r, q, &it);
  ig_bench_item_free(&it);
  q->next = r->reqs;
  if (r->reqs) r->reqs->prev = q;
  r->reqs = q;
  r->inflight++;
  r->issued++;

  conn_t *c = r->idle;
  if (c) {
    idle_remove(c);
    c->req = q;
    q->conn = c;
    conn_write(c);
  } else {
    conn_open(r, q);
  }
}

/* Open loop: sends every arrival that is due, then sleeps until the next one. */
static void on_arrive(uv_timer_t *t) {
  run_t *r = t->data;
  uint64_t now = uv_hrtime();
  while (r->next_arrival_ns <= now && may_issue(r, now)) {
    issue(r);
    double k = r->o->burstiness > 0 ? r->o->burstiness : 1.0;
    r->next_arrival_ns += (uint64_t)(ig_bench_gamma_gap(&r->arr_rng, r->o->rate, k) * 1e9);
    now = uv_hrtime();
  }
  if (r->shut) return;
  if (may_issue(r, now)) {
    uint64_t wait_ms = r->next_arrival_ns > now ? (r->next_arrival_ns - now + 999999) / 1000000 : 0;
    uv_timer_start(&r->arrive, on_arrive, wait_ms, 0);
  }
  check_done(r);
}

/* Fails every request in flight with the given reason. */
static void fail_all(run_t *r, const char *why) {
  uint64_t now = uv_hrtime();
  while (r->reqs)
    fail(r->reqs, now, "%s", why);
}

/* Periodic: request timeouts and the duration bound. */
static void on_tick(uv_timer_t *t) {
  run_t *r = t->data;
  uint64_t now = uv_hrtime();
  may_issue(r, now);
  /* Restart the scan after each failure: finishing may send a new request (closed loop). */
  for (int again = 1; again && !r->shut;) {
    again = 0;
    for (req_t *q = r->reqs; q; q = q->next)
      if (now >= q->deadline_ns) {
        fail(q, now, "timeout after %.1f s", r->o->timeout_s);
        again = 1;
        break;
      }
  }
  if (r->o->progress && !r->shut && now - r->last_progress_ns >= PROGRESS_NS) progress(r, now);
  check_done(r);
}

static void on_signal(uv_signal_t *s, int signum) {
  run_t *r = s->data;
  r->res->interrupted = 1;
  r->stopping = 1;
  fail_all(r, "interrupted");
  check_done(r);
}

static int resolve(run_t *r) {
  struct addrinfo hints = {0};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char port[16];
  snprintf(port, sizeof port, "%d", r->o->port);
  uv_getaddrinfo_t gr;
  int rc = uv_getaddrinfo(&r->loop, &gr, NULL, r->o->host, port, &hints);
  if (rc < 0 || !gr.addrinfo) {
    fprintf(stderr, "bench: cannot resolve %s: %s\n", r->o->host, uv_strerror(rc));
    return IG_ECONNECT;
  }
  memcpy(&r->addr, gr.addrinfo->ai_addr, gr.addrinfo->ai_addrlen);
  uv_freeaddrinfo(gr.addrinfo);
  return 0;
}

int ig_bench_run(const ig_bench_opts_t *o, const ig_bench_wl_t *wl, ig_bench_result_t *res) {
  memset(res, 0, sizeof *res);
  ig_bench_samples_init(&res->itl);
  run_t *r = IG_NEW(run_t);
  int rc = 0;
  r->o = o;
  r->wl = wl;
  r->res = res;
  uv_loop_init(&r->loop);
  if ((rc = resolve(r)) < 0) goto out;
  signal(SIGPIPE, SIG_IGN); /* a peer reset surfaces as EPIPE from write instead */
  ig_rng_seed(&r->arr_rng, o->seed ^ 0xA5A5A5A5A5A5A5A5ULL);
  uv_timer_init(&r->loop, &r->tick);
  uv_timer_init(&r->loop, &r->arrive);
  uv_signal_init(&r->loop, &r->sigint);
  uv_signal_init(&r->loop, &r->sigterm);
  r->tick.data = r->arrive.data = r->sigint.data = r->sigterm.data = r;
  uv_signal_start(&r->sigint, on_signal, SIGINT);
  uv_signal_start(&r->sigterm, on_signal, SIGTERM);
  uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
  r->t0_ns = r->last_end_ns = r->last_progress_ns = uv_hrtime();
  if (o->rate > 0) {
    r->next_arrival_ns = r->t0_ns;
    uv_timer_start(&r->arrive, on_arrive, 0, 0);
  } else {
    for (uint32_t i = 0; i < o->concurrency && may_issue(r, r->t0_ns); i++)
      issue(r);
    check_done(r);
  }
  uv_run(&r->loop, UV_RUN_DEFAULT);
  res->wall_s = (double)(r->last_end_ns - r->t0_ns) / 1e9;
out:
  uv_run(&r->loop, UV_RUN_DEFAULT);
  uv_loop_close(&r->loop);
  free(r);
  return rc;
}

void ig_bench_result_free(ig_bench_result_t *res) {
  for (size_t i = 0; i < res->n; i++)
    free(res->recs[i].error);
  free(res->recs);
  ig_bench_samples_free(&res->itl);
  memset(res, 0, sizeof *res);
}

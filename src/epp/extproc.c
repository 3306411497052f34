/* The ext_proc message state machine: one epp_stream_t per gRPC Process stream (one HTTP request
 * through Envoy). Pure: decoded ProcessingRequest in, gRPC-framed ProcessingResponse bytes out.
 *
 * Request path. Headers are remembered. The pick is made at the end of the request: on headers with
 * end_of_stream, or on the body chunk with end_of_stream (or request trailers). How it is answered
 * depends on the body send mode Envoy announces in protocol_config (or the --body-mode default):
 *  - FULL_DUPLEX_STREAMED (the GIE setup): the headers answer is held back until the body is complete;
 *    then a HeadersResponse carrying the destination header and dynamic metadata, followed by the
 *    body (rewritten or not) streamed back in chunks of at most EPP_CHUNK_MAX bytes;
 *  - BUFFERED and the others: headers are answered at once (CONTINUE); the BodyResponse that answers
 *    the last chunk carries the destination header, the metadata and, when the model was rewritten,
 *    BodyMutation.body;
 *  - NONE (no body will come): the pick is made on the headers.
 * With flow control on (--queue-ttl, queue.c), a request the pool has no room for is parked instead:
 * nothing is answered until its turn comes (epp_stream_resume writes the answer to the stream's own
 * output buffer, s->out) or its time runs out.
 * Errors become an ImmediateResponse with an OpenAI error body: 400 (bad JSON, no model), 404 (unknown
 * model), 413 (body over max_body_bytes), 429 (shed, queue full), 503 (no allowed endpoint, waited too
 * long in the queue).
 * Response path. response_headers get x-gateway-destination-endpoint-served; body chunks are echoed
 * (full duplex) or acknowledged; the pick is released at the end of the response or of the stream. */
#include <string.h>

#include "epp.h"

#define SHED_MSG "the pool is saturated; sheddable request rejected"

typedef Envoy__Service__ExtProc__V3__HeadersResponse headers_resp_t;
typedef Envoy__Service__ExtProc__V3__BodyResponse body_resp_t;
typedef Envoy__Service__ExtProc__V3__TrailersResponse trailers_resp_t;
typedef Envoy__Service__ExtProc__V3__ImmediateResponse immediate_t;
typedef Envoy__Service__ExtProc__V3__BodyMutation body_mut_t;
typedef Envoy__Service__ExtProc__V3__StreamedBodyResponse streamed_t;

/* ---------------------------------------------------------------- framing */

void epp_frame_message(ig_buf_t *out, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  ig_buf_reserve(out, 5 + n + 1);
  uint8_t *p = (uint8_t *)out->data + out->len;
  p[0] = 0;
  p[1] = (uint8_t)(n >> 24);
  p[2] = (uint8_t)(n >> 16);
  p[3] = (uint8_t)(n >> 8);
  p[4] = (uint8_t)n;
  protobuf_c_message_pack(m, p + 5);
  out->len += 5 + n;
  out->data[out->len] = '\0';
}

int epp_grpc_next(const uint8_t *buf, size_t len, size_t max, size_t *mlen) {
  if (len < 1) return 0;
  if (buf[0] == 1) return IG_ENOTSUP;
  if (buf[0] != 0) return IG_EPARSE;
  if (len < 5) return 0;
  size_t n = ((size_t)buf[1] << 24) | ((size_t)buf[2] << 16) | ((size_t)buf[3] << 8) | buf[4];
  if (n > max) return IG_ETOOBIG;
  if (len - 5 < n) return 0;
  *mlen = n;
  return 1;
}

/* ---------------------------------------------------------------- message building */

static void *zalloc(ig_arena_t *a, size_t n) {
  void *p = ig_arena_alloc(a, n);
  memset(p, 0, n);
  return p;
}

static epp_hmut_t *hmut_new(ig_arena_t *a, size_t cap) {
  epp_hmut_t *m = zalloc(a, sizeof *m);
  envoy__service__ext_proc__v3__header_mutation__init(m);
  m->set_headers = zalloc(a, cap * sizeof *m->set_headers);
  return m;
}

/* Adds "key: value" (overwriting an existing header) to m; strings must outlive the packing. */
static void hmut_set(ig_arena_t *a, epp_hmut_t *m, const char *key, const char *value) {
  epp_hvo_t *o = zalloc(a, sizeof *o);
  envoy__config__core__v3__header_value_option__init(o);
  epp_hv_t *h = zalloc(a, sizeof *h);
  envoy__config__core__v3__header_value__init(h);
  h->key = (char *)key;
  h->raw_value.data = (uint8_t *)value;
  h->raw_value.len = strlen(value);
  o->header = h;
  o->append_action = ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD;
  m->set_headers[m->n_set_headers++] = o;
}

static epp_common_t *common_new(ig_arena_t *a) {
  epp_common_t *c = zalloc(a, sizeof *c);
  envoy__service__ext_proc__v3__common_response__init(c);
  return c;
}

/* A Struct {key: value} where value is filled by the caller. */
static epp_struct_t *struct1(ig_arena_t *a, const char *key, epp_value_t **value) {
  epp_struct_t *s = zalloc(a, sizeof *s);
  google__protobuf__struct__init(s);
  Google__Protobuf__Struct__FieldsEntry *f = zalloc(a, sizeof *f);
  google__protobuf__struct__fields_entry__init(f);
  epp_value_t *v = zalloc(a, sizeof *v);
  google__protobuf__value__init(v);
  f->key = (char *)key;
  f->value = v;
  s->fields = zalloc(a, sizeof *s->fields);
  s->fields[0] = f;
  s->n_fields = 1;
  *value = v;
  return s;
}

/* dynamic_metadata {"envoy.lb": {"x-gateway-destination-endpoint": list}}. */
static epp_struct_t *dest_metadata(ig_arena_t *a, const char *list) {
  epp_value_t *outer, *inner;
  epp_struct_t *top = struct1(a, EPP_META_NS, &outer);
  epp_struct_t *ns = struct1(a, EPP_META_KEY, &inner);
  outer->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
  outer->struct_value = ns;
  inner->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
  inner->string_value = (char *)list;
  return top;
}

static headers_resp_t *headers_resp(ig_arena_t *a, epp_common_t *c) {
  headers_resp_t *h = zalloc(a, sizeof *h);
  envoy__service__ext_proc__v3__headers_response__init(h);
  h->response = c;
  return h;
}

static body_resp_t *body_resp(ig_arena_t *a, epp_common_t *c) {
  body_resp_t *b = zalloc(a, sizeof *b);
  envoy__service__ext_proc__v3__body_response__init(b);
  b->response = c;
  return b;
}

/* A BodyResponse carrying one streamed chunk (full-duplex mode). */
static body_resp_t *streamed_chunk(ig_arena_t *a, const char *data, size_t len, int eos) {
  streamed_t *s = zalloc(a, sizeof *s);
  envoy__service__ext_proc__v3__streamed_body_response__init(s);
  s->body.data = (uint8_t *)data;
  s->body.len = len;
  s->end_of_stream = eos != 0;
  body_mut_t *m = zalloc(a, sizeof *m);
  envoy__service__ext_proc__v3__body_mutation__init(m);
  m->mutation_case = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_STREAMED_RESPONSE;
  m->streamed_response = s;
  epp_common_t *c = common_new(a);
  c->body_mutation = m;
  return body_resp(a, c);
}

static void emit(ig_buf_t *out, epp_presp_t *r) {
  epp_frame_message(out, &r->base);
}

static void emit_case(ig_buf_t *out, Envoy__Service__ExtProc__V3__ProcessingResponse__ResponseCase which,
                      void *msg, epp_struct_t *meta) {
  epp_presp_t r = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__INIT;
  r.response_case = which;
  r.request_headers = msg; /* every member of the union is a pointer */
  r.dynamic_metadata = meta;
  emit(out, &r);
}

/* Streams body back in chunks of at most EPP_CHUNK_MAX bytes; the last carries eos. */
static void emit_streamed_body(ig_arena_t *a, ig_buf_t *out, const char *body, size_t len, int eos) {
  size_t off = 0;
  do {
    size_t n = len - off > EPP_CHUNK_MAX ? EPP_CHUNK_MAX : len - off;
    int last = off + n >= len;
    emit_case(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY,
              streamed_chunk(a, body ? body + off : "", n, last && eos), NULL);
    off += n;
  } while (off < len);
}

static const char *error_type(int status) {
  return status >= 500 ? "server_error" : "invalid_request_error";
}

/* ---------------------------------------------------------------- metrics */

static void labels_model(ig_buf_t *b, const char *model, const char *target) {
  ig_buf_puts(b, "model_name=\"");
  ig_prom_label_escape(b, model);
  ig_buf_puts(b, "\",target_model_name=\"");
  ig_prom_label_escape(b, target);
  ig_buf_puts(b, "\"");
}

static void count_error(epp_t *e, const epp_stream_t *s, int status) {
  ig_buf_t l;
  ig_buf_init(&l);
  labels_model(&l, s->model, s->target);
  ig_buf_printf(&l, ",error_code=\"%d\"", status);
  ig_metric_add(e->m_errors, l.data, 1);
  ig_buf_free(&l);
}

static void running_add(epp_t *e, const epp_stream_t *s, double d) {
  ig_buf_t l;
  ig_buf_init(&l);
  ig_buf_puts(&l, "model_name=\"");
  ig_prom_label_escape(&l, s->model);
  ig_buf_puts(&l, "\"");
  ig_metric_add(e->m_running, l.data, d);
  ig_buf_free(&l);
}

/* The pod answered the stream's request (or the exchange ended): its prompt no longer waits there. */
static void answered(epp_t *e, epp_stream_t *s) {
  if (!s->prefill) return;
  epp_pods_answered(e, epp_stream_ep(e, s), s->prefill);
  s->prefill = 0;
}

/* Gives back the stream's pick (once). */
static void release(epp_t *e, epp_stream_t *s) {
  if (!s->picked) return;
  answered(e, s);
  s->picked = 0;
  epp_release(e, epp_stream_ep(e, s), s->lora_id);
  s->lora_id = 0;
  running_add(e, s, -1);
}

/* ---------------------------------------------------------------- request path */

/* Answers the request with a local response and ends the exchange. */
static void send_immediate(epp_t *e, epp_stream_t *s, ig_buf_t *out, int status, const char *code,
                           const char *msg) {
  ig_arena_t a;
  ig_arena_init(&a, 2048);
  ig_buf_t body;
  ig_buf_init(&body);
  ig_buf_puts(&body, "{\"error\":{\"message\":\"");
  ig_json_escape(&body, msg, strlen(msg));
  ig_buf_printf(&body, "\",\"type\":\"%s\",\"param\":null,\"code\":\"", error_type(status));
  ig_json_escape(&body, code, strlen(code));
  ig_buf_puts(&body, "\"}}\n");

  Envoy__Type__V3__HttpStatus st = ENVOY__TYPE__V3__HTTP_STATUS__INIT;
  st.code = (Envoy__Type__V3__StatusCode)status;
  epp_hmut_t *h = hmut_new(&a, 2);
  hmut_set(&a, h, "content-type", "application/json");
  if (status == 429) hmut_set(&a, h, "retry-after", "1");
  immediate_t im = ENVOY__SERVICE__EXT_PROC__V3__IMMEDIATE_RESPONSE__INIT;
  im.status = &st;
  im.headers = h;
  im.body.data = (uint8_t *)body.data;
  im.body.len = body.len;
  char details[96];
  snprintf(details, sizeof details, "infergate_epp_%s", code);
  im.details = details;
  if (!s->observe)
    emit_case(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_IMMEDIATE_RESPONSE, &im, NULL);
  count_error(e, s, status);
  s->done = 1;
  ig_buf_free(&body);
  ig_arena_free(&a);
}

/* Resolves the model of the request body body[0..len) like the gateway does (InferenceModel, weighted
 * target, default model). scan/rc: the result of the one ig_oai_scan of the body (finish_request).
 * Fills s->model/target, *crit, and *rewritten (the new body, when it changed). Returns 0, or an HTTP
 * status with an immediate response already sent. */
static int resolve_model(epp_t *e, epp_stream_t *s, ig_buf_t *out, const char *body, size_t len,
                         const ig_oai_req_t *sc, int rc, ig_criticality_t *crit, ig_buf_t *rewritten, int *changed) {
  const ig_config_t *cfg = e->cfg;
  *crit = IG_CRIT_STANDARD;
  *changed = 0;
  if (len == 0) return 0; /* e.g. GET /v1/models: nothing to resolve */
  if (rc == IG_ETOOBIG) {
    send_immediate(e, s, out, 400, "invalid_model", "the model name is too long");
    return 400;
  }
  if (rc < 0) {
    send_immediate(e, s, out, 400, "invalid_json", "the request body is not a valid JSON object");
    return 400;
  }
  const char *model;
  if (sc->has_model)
    model = sc->model;
  else if (cfg->default_model)
    model = cfg->default_model;
  else {
    send_immediate(e, s, out, 400, "missing_model", "you must provide a model parameter");
    return 400;
  }
  snprintf(s->model, sizeof s->model, "%s", model);
  const ig_model_cfg_t *m = ig_config_find_model(cfg, s->model, strlen(s->model));
  if (m && m->pool_index != e->pool_index) m = NULL;
  const char *target = s->model;
  if (m) {
    *crit = m->criticality;
    target = ig_config_pick_target(m, &e->rng);
  } else if (e->pool_has_models) {
    ig_buf_t msg;
    ig_buf_init(&msg);
    ig_buf_printf(&msg, "The model `%s` does not exist.", s->model);
    snprintf(s->target, sizeof s->target, "%s", s->model);
    send_immediate(e, s, out, 404, "model_not_found", msg.data);
    ig_buf_free(&msg);
    return 404;
  }
  snprintf(s->target, sizeof s->target, "%s", target);
  if (sc->has_model && strcmp(s->target, sc->model) == 0) return 0;
  rc = sc->has_model ? ig_oai_rewrite_model(body, len, sc, s->target, rewritten)
                     : ig_oai_insert_model(body, len, s->target, rewritten);
  if (rc < 0) {
    send_immediate(e, s, out, 400, "invalid_json", "cannot rewrite the model of this request body");
    return 400;
  }
  *changed = 1;
  return 0;
}

/* Reads the subset hint from request metadata, when Envoy sent one. */
static void read_subset(epp_stream_t *s, const Envoy__Config__Core__V3__Metadata *md) {
  if (!md || s->has_subset) return;
  for (size_t i = 0; i < md->n_filter_metadata; i++) {
    const Envoy__Config__Core__V3__Metadata__FilterMetadataEntry *fe = md->filter_metadata[i];
    if (!fe || !fe->key || strcmp(fe->key, EPP_HINT_NS) != 0 || !fe->value) continue;
    for (size_t j = 0; j < fe->value->n_fields; j++) {
      const Google__Protobuf__Struct__FieldsEntry *f = fe->value->fields[j];
      if (!f || !f->key || strcmp(f->key, EPP_HINT_KEY) != 0 || !f->value) continue;
      const epp_value_t *v = f->value;
      s->has_subset = 1;
      if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE && v->list_value) {
        const Google__Protobuf__ListValue *l = v->list_value;
        s->subset = ig_arena_alloc(&s->arena, (l->n_values + 1) * sizeof *s->subset);
        for (size_t k = 0; k < l->n_values; k++) {
          const epp_value_t *it = l->values[k];
          if (it && it->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE && it->string_value)
            s->subset[s->n_subset++] = ig_arena_strndup(&s->arena, it->string_value, strlen(it->string_value));
        }
      } else if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE && v->string_value) {
        /* a comma-separated string is accepted too */
        const char *p = v->string_value;
        size_t cap = 1;
        for (const char *q = p; *q; q++)
          cap += *q == ',';
        s->subset = ig_arena_alloc(&s->arena, cap * sizeof *s->subset);
        while (*p) {
          while (*p == ' ' || *p == ',')
            p++;
          size_t n = strcspn(p, ", ");
          if (n) s->subset[s->n_subset++] = ig_arena_strndup(&s->arena, p, n);
          p += n;
        }
      }
      return;
    }
  }
}

/* Keeps a copy of the request headers (values from raw_value when set, else value). */
static void read_headers(epp_stream_t *s, const epp_headers_t *h) {
  if (!h || !h->headers || h->headers->n_headers == 0) return;
  const Envoy__Config__Core__V3__HeaderMap *m = h->headers;
  s->hdrs = ig_arena_alloc(&s->arena, m->n_headers * sizeof *s->hdrs);
  for (size_t i = 0; i < m->n_headers; i++) {
    const epp_hv_t *v = m->headers[i];
    if (!v || !v->key) continue;
    ig_http_header_t *d = &s->hdrs[s->n_hdrs++];
    d->name_len = strlen(v->key);
    d->name = ig_arena_strndup(&s->arena, v->key, d->name_len);
    const char *val = v->raw_value.len ? (const char *)v->raw_value.data : (v->value ? v->value : "");
    d->value_len = v->raw_value.len ? v->raw_value.len : strlen(val);
    d->value = ig_arena_strndup(&s->arena, val, d->value_len);
  }
}

static int is_duplex(int mode) {
  return mode == EPP_MODE_FULL_DUPLEX;
}

/* The prompt text for the scheduler's prefix affinity, when the profile scores prefixes: decoded like
 * the gateway's (src/proxy/pool.c hashes the decoded text cut to what the prefix index uses), so the
 * same request hashes to the same blocks in both; only that leading part is decoded. sc: the scan of
 * bd[0..bl) (valid). */
static void prompt_of(epp_t *e, const char *bd, size_t bl, const ig_oai_req_t *sc, ig_buf_t *prompt) {
  if (!e->uses_prefix || !e->sched || !bl || sc->prompt_kind == IG_OAI_PROMPT_NONE) return;
  const ig_sched_opts_t *o = ig_sched_opts(e->sched);
  size_t cap = o->prefix_block_chars * o->prefix_max_blocks;
  if (ig_oai_prompt_text_max(bd, bl, sc, cap, prompt) != 0) ig_buf_reset(prompt);
}

/* What goes on once the request is resolved: the body to forward (rewritten when changed), whether a
 * body phase happened (so in full-duplex mode the body is streamed back) and whether it ended the
 * request (no trailers follow). */
typedef struct {
  ig_criticality_t crit;
  const char *body;
  size_t blen;
  int changed, has_body, eos;
} fwd_t;

/* Picks an endpoint for the resolved request and answers it (destination header and metadata, the
 * body), or answers it with a local error. Returns IG_EAGAIN, with nothing written, when may_wait and
 * the request is to wait for a pod with room (the caller parks it); else 0. */
static int pick_and_answer(epp_t *e, epp_stream_t *s, ig_buf_t *out, const fwd_t *fw, const ig_buf_t *prompt,
                           int may_wait, uint64_t t0) {
  epp_pick_req_t rq = {.model = s->model, .target = s->target, .crit = fw->crit, .has_subset = s->has_subset,
                       .subset = s->subset, .n_subset = s->n_subset, .body_len = fw->blen};
  /* no InferenceModel names the pool: the model must be served by a pod (discovered models) */
  if (epp_disc_subset(e, s->target, &rq.disc, &rq.n_disc) == IG_ENOENT) {
    ig_buf_t msg;
    ig_buf_init(&msg);
    ig_buf_printf(&msg, "The model `%s` does not exist.", s->model);
    send_immediate(e, s, out, 404, "model_not_found", msg.data);
    ig_buf_free(&msg);
    return 0;
  }
  if (prompt->len) {
    rq.prompt = prompt->data;
    rq.prompt_len = prompt->len;
  }
  epp_pick_t pk;
  int rc = epp_pick(e, &rq, &pk, may_wait);
  if (rc == IG_EAGAIN) return IG_EAGAIN;
  ig_metric_observe(e->m_sched_dur, NULL, (double)(ig_now_us() - t0) / 1e6);
  if (rc == IG_EFULL) {
    send_immediate(e, s, out, 429, "request_shed", SHED_MSG);
    return 0;
  }
  if (rc < 0) {
    send_immediate(e, s, out, 503, "no_endpoint",
                   s->has_subset ? "no endpoint of the pool is allowed by the subset hint"
                                 : "the pool has no endpoint");
    return 0;
  }
  s->picked = 1;
  s->ep = pk.order[0];
  s->lora_id = pk.lora_id;
  s->prefill = pk.prefill;
  s->ep_gen = e->gen;
  snprintf(s->ep_addr, sizeof s->ep_addr, "%s", e->eps[s->ep].addr);
  running_add(e, s, 1);
  {
    ig_buf_t l;
    ig_buf_init(&l);
    labels_model(&l, s->model, s->target);
    ig_metric_add(e->m_requests, l.data, 1);
    ig_buf_reset(&l);
    ig_buf_puts(&l, "endpoint=\"");
    ig_prom_label_escape(&l, e->eps[s->ep].addr);
    ig_buf_puts(&l, "\"");
    ig_metric_add(e->m_picks, l.data, 1);
    ig_buf_free(&l);
  }

  /* The answer: destination header and metadata. When the body changed in buffered mode the
   * content-length must match the new body (Envoy rejects the mutation otherwise); in full-duplex
   * mode Envoy drops content-length itself and streams the body. */
  ig_arena_t a;
  ig_arena_init(&a, 4096);
  ig_buf_t list;
  ig_buf_init(&list);
  for (size_t i = 0; i < pk.n; i++)
    ig_buf_printf(&list, "%s%s", i ? "," : "", e->eps[pk.order[i]].addr);
  char clen[32];
  const char *body = fw->body;
  size_t blen = fw->blen;
  snprintf(clen, sizeof clen, "%zu", blen);
  epp_hmut_t *hm = hmut_new(&a, 2);
  hmut_set(&a, hm, EPP_HDR_DEST, e->eps[s->ep].addr);
  if (fw->changed && !(fw->has_body && is_duplex(s->req_mode))) hmut_set(&a, hm, "content-length", clen);
  epp_common_t *c = common_new(&a);
  c->header_mutation = hm;
  epp_struct_t *meta = dest_metadata(&a, list.data);
  ig_debug("epp: model=%s target=%s -> %s", s->model, s->target, list.data);

  if (!s->observe) {
    if (!s->headers_answered) {
      /* headers-only request, NONE mode, or full duplex (headers held back until now) */
      emit_case(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS,
                headers_resp(&a, c), meta);
      s->headers_answered = 1;
      if (fw->has_body && is_duplex(s->req_mode)) {
        /* one allocation for every chunk's frame (5 + message overhead each) */
        ig_buf_reserve(out, blen + (blen / EPP_CHUNK_MAX + 1) * 64);
        emit_streamed_body(&a, out, body, blen, fw->eos);
      }
    } else if (fw->has_body) {
      if (fw->changed) {
        body_mut_t *bm = zalloc(&a, sizeof *bm);
        envoy__service__ext_proc__v3__body_mutation__init(bm);
        bm->mutation_case = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_BODY;
        bm->body.data = (uint8_t *)body;
        bm->body.len = blen;
        c->body_mutation = bm;
      }
      emit_case(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY, body_resp(&a, c),
                meta);
    }
  }
  ig_buf_free(&list);
  ig_arena_free(&a);
  return 0;
}

/* Keeps the request in the stream (the body to forward into s->body) and parks it in the queue; a
 * full queue answers 429. */
static void park(epp_t *e, epp_stream_t *s, ig_buf_t *out, const fwd_t *fw, ig_buf_t *nb) {
  if (fw->changed) {
    ig_buf_t t = s->body;
    s->body = *nb;
    *nb = t;
  } else if (fw->body != s->body.data) { /* the only body message: used where it was until now */
    ig_buf_reset(&s->body);
    ig_buf_append(&s->body, fw->body ? fw->body : "", fw->blen);
  }
  s->crit = (int)fw->crit;
  s->park_changed = fw->changed != 0;
  s->park_has_body = fw->has_body != 0;
  s->park_eos = fw->eos != 0;
  if (epp_queue_park(e, s, ig_sched_crit_priority((ig_sched_crit_t)fw->crit)) != 0) {
    send_immediate(e, s, out, 429, "queue_full", "the pool is saturated and its queue is full; retry later");
    ig_buf_free(&s->body);
  }
}

/* The end of the request: resolve the model, pick, and answer (or park the stream until a pod has
 * room, --queue-ttl). The request body is bd[0..bl): the accumulated s->body, or the only body message
 * itself (not copied). The body is scanned once; the scan serves the model resolution and the prompt
 * spans. has_body: a body phase happened (so in full-duplex mode the body is streamed back); eos: the
 * body ends the request (no trailers follow). */
static void finish_request(epp_t *e, epp_stream_t *s, ig_buf_t *out, const char *bd, size_t bl, int has_body,
                           int eos) {
  if (s->body_done) return; /* the request phase ends once: a late request_headers (after trailers) must not
                             * pick a second time */
  s->body_done = 1;
  uint64_t t0 = ig_now_us();
  ig_buf_t nb, prompt;
  ig_buf_init(&nb);
  ig_buf_init(&prompt);
  fwd_t fw = {.has_body = has_body, .eos = eos};
  ig_oai_req_t scan;
  int scan_rc = bl ? ig_oai_scan(bd, bl, &scan) : IG_EINVAL;
  if (resolve_model(e, s, out, bd, bl, &scan, scan_rc, &fw.crit, &nb, &fw.changed) != 0) goto out;
  if (scan_rc == 0) prompt_of(e, bd, bl, &scan, &prompt);
  fw.body = fw.changed ? nb.data : bd;
  fw.blen = fw.changed ? nb.len : bl;
  int may_wait = e->queue && s->out && !s->observe;
  if (pick_and_answer(e, s, out, &fw, &prompt, may_wait, t0) == IG_EAGAIN) {
    park(e, s, out, &fw, &nb);
    ig_buf_free(&nb);
    ig_buf_free(&prompt);
    return; /* the body stays with the parked stream */
  }
out:
  ig_buf_free(&nb);
  ig_buf_free(&prompt);
  /* the request body is no longer needed */
  ig_buf_free(&s->body);
}

/* An empty TrailersResponse of the given case (request or response trailers). */
typedef Envoy__Service__ExtProc__V3__ProcessingResponse__ResponseCase resp_case_t;

static void emit_trailers(ig_buf_t *out, resp_case_t which) {
  trailers_resp_t t = ENVOY__SERVICE__EXT_PROC__V3__TRAILERS_RESPONSE__INIT;
  emit_case(out, which, &t, NULL);
}

/* The request trailers' answer (after the request's, which a parked stream has not given yet). */
static void answer_trailers(epp_stream_t *s, ig_buf_t *out) {
  if (s->done || s->observe) return;
  emit_trailers(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_TRAILERS);
}

void epp_stream_resume(epp_t *e, epp_stream_t *s) {
  ig_buf_t prompt;
  ig_buf_init(&prompt);
  ig_oai_req_t scan;
  if (s->body.len && ig_oai_scan(s->body.data, s->body.len, &scan) == 0)
    prompt_of(e, s->body.data, s->body.len, &scan, &prompt);
  fwd_t fw = {.crit = (ig_criticality_t)s->crit, .body = s->body.data, .blen = s->body.len,
              .changed = s->park_changed, .has_body = s->park_has_body, .eos = s->park_eos};
  pick_and_answer(e, s, s->out, &fw, &prompt, 0, ig_now_us());
  if (s->park_trailers) answer_trailers(s, s->out);
  ig_buf_free(&prompt);
  ig_buf_free(&s->body);
}

void epp_stream_expired(epp_t *e, epp_stream_t *s) {
  send_immediate(e, s, s->out, 503, "queue_timeout", "timed out waiting for a model server with capacity");
  ig_buf_free(&s->body);
}

void epp_stream_shed(epp_t *e, epp_stream_t *s) {
  send_immediate(e, s, s->out, 429, "request_shed", SHED_MSG);
  ig_buf_free(&s->body);
}

void epp_stream_evicted(epp_t *e, epp_stream_t *s) {
  send_immediate(e, s, s->out, 429, "queue_full",
                 "evicted from the queue by a request of higher priority; retry later");
  ig_buf_free(&s->body);
}

static void set_modes(epp_t *e, epp_stream_t *s, const epp_preq_t *rq) {
  if (rq->protocol_config && s->req_mode < 0) {
    s->req_mode = (int)rq->protocol_config->request_body_mode;
    s->resp_mode = (int)rq->protocol_config->response_body_mode;
  }
  if (s->req_mode < 0) s->req_mode = e->opts.default_mode;
  if (s->resp_mode < 0) s->resp_mode = e->opts.default_mode;
}

static void on_request_headers(epp_t *e, epp_stream_t *s, const epp_headers_t *h, ig_buf_t *out) {
  if (s->got_headers) return; /* a second request_headers on one stream: ignore */
  s->got_headers = 1;
  read_headers(s, h);
  if ((h && h->end_of_stream) || s->req_mode == EPP_MODE_NONE) {
    finish_request(e, s, out, NULL, 0, 0, 1);
    return;
  }
  if (is_duplex(s->req_mode)) return; /* answered with the pick once the body is complete */
  ig_arena_t a;
  ig_arena_init(&a, 512);
  if (!s->observe)
    emit_case(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS,
              headers_resp(&a, common_new(&a)), NULL);
  s->headers_answered = 1;
  ig_arena_free(&a);
}

/* Sizes the body buffer once before the first chunk is stored: content-length when the request
 * headers had one (bounded by max_body_bytes), else room for a few chunks; the buffer then grows by
 * doubling, so chunks are appended without moving the body more than about once. */
static void body_reserve(epp_t *e, epp_stream_t *s, size_t first) {
  size_t want = 0;
  for (size_t i = 0; i < s->n_hdrs; i++) {
    const ig_http_header_t *h = &s->hdrs[i];
    if (h->name_len != 14 || memcmp(h->name, "content-length", 14) != 0) continue;
    size_t v = 0, k = 0;
    while (k < h->value_len && h->value[k] >= '0' && h->value[k] <= '9' && v <= e->max_body)
      v = v * 10 + (size_t)(h->value[k++] - '0');
    if (k == h->value_len && k > 0) want = v;
    break;
  }
  if (want < first || want > e->max_body) want = first * 4 < e->max_body ? first * 4 : e->max_body;
  ig_buf_reserve(&s->body, want);
}

static void on_request_body(epp_t *e, epp_stream_t *s, const epp_body_t *b, ig_buf_t *out) {
  s->got_headers = 1;
  if (s->done || s->body_done) return; /* after a local reply or the pick: nothing to add */
  size_t n = b ? b->body.len : 0;
  if (n > e->max_body || s->body.len > e->max_body - n) {
    send_immediate(e, s, out, 413, "request_too_large", "the request body is too large");
    ig_buf_free(&s->body);
    return;
  }
  s->n_chunks++;
  if (b && b->end_of_stream && s->body.len == 0) {
    /* the whole body in one message (Envoy's usual case): used where it is, never copied */
    finish_request(e, s, out, n ? (const char *)b->body.data : NULL, n, 1, 1);
    return;
  }
  if (n) {
    if (!s->body.cap) body_reserve(e, s, n);
    ig_buf_append(&s->body, b->body.data, n);
  }
  if (b && b->end_of_stream) {
    finish_request(e, s, out, s->body.data, s->body.len, 1, 1);
    return;
  }
  /* More chunks to come. Non-duplex streamed modes want an answer per chunk (the body goes on
   * unchanged); full duplex and buffered modes do not. */
  if (!is_duplex(s->req_mode) && s->req_mode != EPP_MODE_BUFFERED && !s->observe) {
    ig_arena_t a;
    ig_arena_init(&a, 512);
    emit_case(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY,
              body_resp(&a, common_new(&a)), NULL);
    ig_arena_free(&a);
  }
}

static void on_request_trailers(epp_t *e, epp_stream_t *s, ig_buf_t *out) {
  if (!s->done && !s->body_done)
    finish_request(e, s, out, s->body.data, s->body.len, s->n_chunks > 0 || is_duplex(s->req_mode), 0);
  if (s->qnode) { /* parked: answered after the request (epp_stream_resume) */
    s->park_trailers = 1;
    return;
  }
  answer_trailers(s, out);
}

/* ---------------------------------------------------------------- response path */

static void on_response_headers(epp_t *e, epp_stream_t *s, const epp_headers_t *h, ig_buf_t *out) {
  ig_arena_t a;
  ig_arena_init(&a, 1024);
  epp_common_t *c = common_new(&a);
  if (s->ep != (size_t)-1 && s->ep_addr[0]) { /* echo the endpoint this request was sent to */
    epp_hmut_t *hm = hmut_new(&a, 1);
    hmut_set(&a, hm, EPP_HDR_SERVED, s->ep_addr);
    c->header_mutation = hm;
  }
  if (!s->observe)
    emit_case(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_HEADERS,
              headers_resp(&a, c), NULL);
  ig_arena_free(&a);
  if (h && h->end_of_stream) release(e, s);
}

static void on_response_body(epp_t *e, epp_stream_t *s, const epp_body_t *b, ig_buf_t *out) {
  int eos = b && b->end_of_stream;
  if (b && b->body.len) answered(e, s); /* the first token has come */
  if (!s->observe) {
    ig_arena_t a;
    ig_arena_init(&a, 512);
    if (is_duplex(s->resp_mode)) {
      body_resp_t *r = streamed_chunk(&a, b ? (const char *)b->body.data : "", b ? b->body.len : 0, eos);
      emit_case(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_BODY, r, NULL);
    } else {
      emit_case(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_BODY,
                body_resp(&a, common_new(&a)), NULL);
    }
    ig_arena_free(&a);
  }
  if (eos) release(e, s);
}

static void on_response_trailers(epp_t *e, epp_stream_t *s, ig_buf_t *out) {
  if (!s->observe)
    emit_trailers(out, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_TRAILERS);
  release(e, s);
}

/* ---------------------------------------------------------------- entry points */

void epp_stream_init(epp_stream_t *s) {
  memset(s, 0, sizeof *s);
  s->req_mode = s->resp_mode = -1;
  s->ep = (size_t)-1;
  ig_arena_init(&s->arena, 1024);
  ig_buf_init(&s->body);
}

int epp_stream_handle(epp_t *e, epp_stream_t *s, const epp_preq_t *rq, ig_buf_t *out) {
  if (!s->counted) {
    s->counted = 1;
    ig_metric_add(e->m_streams, NULL, 1);
    ig_metric_add(e->m_streams_active, NULL, 1);
  }
  set_modes(e, s, rq);
  s->observe = rq->observability_mode != 0;
  read_subset(s, rq->metadata_context);
  switch (rq->request_case) {
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_HEADERS:
    if (!s->done) on_request_headers(e, s, rq->request_headers, out);
    return 0;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_BODY:
    on_request_body(e, s, rq->request_body, out);
    return 0;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_TRAILERS:
    if (!s->done) on_request_trailers(e, s, out);
    return 0;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_HEADERS:
    on_response_headers(e, s, rq->response_headers, out);
    return 0;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_BODY:
    on_response_body(e, s, rq->response_body, out);
    return 0;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_TRAILERS:
    on_response_trailers(e, s, out);
    return 0;
  default:
    return IG_EINVAL;
  }
}

int epp_stream_recv(epp_t *e, epp_stream_t *s, const uint8_t *msg, size_t len, ig_buf_t *out) {
  epp_preq_t *rq = envoy__service__ext_proc__v3__processing_request__unpack(NULL, len, msg);
  if (!rq) return IG_EPARSE;
  int rc = epp_stream_handle(e, s, rq, out);
  envoy__service__ext_proc__v3__processing_request__free_unpacked(rq, NULL);
  return rc;
}

void epp_stream_end(epp_t *e, epp_stream_t *s) {
  epp_queue_cancel(e, s);
  release(e, s);
  if (s->counted) ig_metric_add(e->m_streams_active, NULL, -1);
  s->counted = 0;
  ig_buf_free(&s->body);
  ig_arena_free(&s->arena);
}

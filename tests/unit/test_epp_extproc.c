#define _GNU_SOURCE /* memmem */
/* The ext_proc state machine of src/epp/extproc.c and the picker of src/epp/pick.c: decoded
 * ProcessingRequest messages in, decoded ProcessingResponse messages checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "epp.h"

static const char *yaml = "listeners: [{name: l, address: \"127.0.0.1:1\"}]\n"
                          "limits: {max_body_bytes: 300000}\n"
                          "pools:\n"
                          "  - name: p\n"
                          "    endpoints: [\"10.0.0.1:8000\", \"10.0.0.2:8000\", \"10.0.0.3:8000\"]\n"
                          "  - name: other\n"
                          "    endpoints: [\"10.9.0.1:8000\"]\n"
                          "models:\n"
                          "  - {name: m, pool: p}\n"
                          "  - name: chat\n"
                          "    pool: p\n"
                          "    targets: [{name: lora-a, weight: 1}]\n"
                          "  - {name: batch, pool: p, criticality: Sheddable}\n"
                          "  - {name: elsewhere, pool: other}\n";

static epp_t E;

static void setup_epp(const char *y, const char *pool, unsigned shed) {
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_string("test.yaml", y, strlen(y), &cfg, &errs);
  if (rc != 0) ig_config_errors_print(&errs, stderr);
  ig_config_errors_free(&errs);
  assert_int_equal(rc, 0);
  epp_opts_t o = {.default_mode = EPP_MODE_FULL_DUPLEX, .shed_inflight = shed, .seed = 7};
  assert_int_equal(epp_init(&E, cfg, pool, &o), 0);
}

static int setup(void **state) {
  (void)state;
  setup_epp(yaml, "p", 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  epp_free(&E);
  return 0;
}

/* ---- building requests ---- */

typedef struct {
  epp_preq_t rq;
  epp_headers_t h;
  epp_body_t b;
  Envoy__Config__Core__V3__HeaderMap map;
  Envoy__Service__ExtProc__V3__ProtocolConfiguration pc;
} req_t;

static void req_headers(req_t *r, int eos, int mode) {
  envoy__service__ext_proc__v3__processing_request__init(&r->rq);
  envoy__service__ext_proc__v3__http_headers__init(&r->h);
  envoy__config__core__v3__header_map__init(&r->map);
  envoy__service__ext_proc__v3__protocol_configuration__init(&r->pc);
  r->h.headers = &r->map;
  r->h.end_of_stream = eos != 0;
  r->rq.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_HEADERS;
  r->rq.request_headers = &r->h;
  if (mode >= 0) {
    r->pc.request_body_mode = (Envoy__Extensions__Filters__Http__ExtProc__V3__ProcessingMode__BodySendMode)mode;
    r->pc.response_body_mode =
        (Envoy__Extensions__Filters__Http__ExtProc__V3__ProcessingMode__BodySendMode)mode;
    r->rq.protocol_config = &r->pc;
  }
}

static void req_body(req_t *r, int response, const char *data, size_t len, int eos) {
  envoy__service__ext_proc__v3__processing_request__init(&r->rq);
  envoy__service__ext_proc__v3__http_body__init(&r->b);
  r->b.body.data = (uint8_t *)data;
  r->b.body.len = len;
  r->b.end_of_stream = eos != 0;
  if (response) {
    r->rq.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_BODY;
    r->rq.response_body = &r->b;
  } else {
    r->rq.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_BODY;
    r->rq.request_body = &r->b;
  }
}

static void req_resp_headers(req_t *r, int eos) {
  req_headers(r, eos, -1);
  r->rq.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_HEADERS;
  r->rq.response_headers = &r->h;
}

/* ---- running and decoding ---- */

#define MAXR 16
typedef struct {
  epp_presp_t *r[MAXR];
  size_t n;
} resps_t;

static void resps_free(resps_t *rs) {
  for (size_t i = 0; i < rs->n; i++)
    envoy__service__ext_proc__v3__processing_response__free_unpacked(rs->r[i], NULL);
  rs->n = 0;
}

/* Handles rq on s and decodes every framed response into rs (freed first). */
static void run(epp_stream_t *s, const epp_preq_t *rq, resps_t *rs) {
  resps_free(rs);
  ig_buf_t out;
  ig_buf_init(&out);
  assert_int_equal(epp_stream_handle(&E, s, rq, &out), 0);
  size_t off = 0;
  while (off < out.len) {
    size_t mlen = 0;
    assert_int_equal(epp_grpc_next((const uint8_t *)out.data + off, out.len - off, EPP_MSG_MAX, &mlen), 1);
    assert_true(rs->n < MAXR);
    rs->r[rs->n] =
        envoy__service__ext_proc__v3__processing_response__unpack(NULL, mlen, (const uint8_t *)out.data + off + 5);
    assert_non_null(rs->r[rs->n]);
    rs->n++;
    off += 5 + mlen;
  }
  ig_buf_free(&out);
}

static const char *hm_get(const epp_hmut_t *m, const char *key, char *buf, size_t cap) {
  if (!m) return NULL;
  for (size_t i = 0; i < m->n_set_headers; i++) {
    const epp_hv_t *h = m->set_headers[i]->header;
    if (h && h->key && !strcmp(h->key, key)) {
      size_t n = h->raw_value.len < cap - 1 ? h->raw_value.len : cap - 1;
      memcpy(buf, h->raw_value.data, n);
      buf[n] = '\0';
      return buf;
    }
  }
  return NULL;
}

static const epp_common_t *common_of(const epp_presp_t *r) {
  switch (r->response_case) {
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS:
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_HEADERS:
    return r->request_headers->response;
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY:
  case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_BODY:
    return r->request_body->response;
  default:
    return NULL;
  }
}

static const char *dest_of(const epp_presp_t *r, char *buf, size_t cap) {
  const epp_common_t *c = common_of(r);
  return c ? hm_get(c->header_mutation, EPP_HDR_DEST, buf, cap) : NULL;
}

/* dynamic_metadata["envoy.lb"]["x-gateway-destination-endpoint"] or NULL. */
static const char *meta_dest(const epp_presp_t *r) {
  const epp_struct_t *s = r->dynamic_metadata;
  if (!s) return NULL;
  for (size_t i = 0; i < s->n_fields; i++) {
    if (strcmp(s->fields[i]->key, EPP_META_NS) != 0) continue;
    const epp_value_t *v = s->fields[i]->value;
    assert_int_equal(v->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    for (size_t j = 0; j < v->struct_value->n_fields; j++)
      if (!strcmp(v->struct_value->fields[j]->key, EPP_META_KEY))
        return v->struct_value->fields[j]->value->string_value;
  }
  return NULL;
}

static int immediate_status(const epp_presp_t *r) {
  if (r->response_case != ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_IMMEDIATE_RESPONSE) return 0;
  return (int)r->immediate_response->status->code;
}

/* ---- tests ---- */

static void test_framing(void **state) {
  (void)state;
  size_t n = 0;
  const uint8_t ok[] = {0, 0, 0, 0, 2, 8, 1};
  assert_int_equal(epp_grpc_next(ok, 0, 100, &n), 0);
  assert_int_equal(epp_grpc_next(ok, 4, 100, &n), 0);
  assert_int_equal(epp_grpc_next(ok, 6, 100, &n), 0);
  assert_int_equal(epp_grpc_next(ok, 7, 100, &n), 1);
  assert_int_equal(n, 2);
  const uint8_t comp[] = {1, 0, 0, 0, 2, 8, 1};
  assert_int_equal(epp_grpc_next(comp, 7, 100, &n), IG_ENOTSUP);
  const uint8_t bad[] = {7, 0, 0, 0, 0};
  assert_int_equal(epp_grpc_next(bad, 5, 100, &n), IG_EPARSE);
  const uint8_t big[] = {0, 0x00, 0x40, 0x00, 0x01};
  assert_int_equal(epp_grpc_next(big, 5, EPP_MSG_MAX, &n), IG_ETOOBIG);
  const uint8_t max[] = {0, 0x00, 0x40, 0x00, 0x00};
  assert_int_equal(epp_grpc_next(max, 5, EPP_MSG_MAX, &n), 0);
}

static void test_headers_only(void **state) {
  (void)state;
  epp_stream_t s;
  epp_stream_init(&s);
  req_t r;
  resps_t rs = {0};
  char b[128];
  req_headers(&r, 1, -1);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 1);
  assert_int_equal(rs.r[0]->response_case, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS);
  assert_string_equal(dest_of(rs.r[0], b, sizeof b), "10.0.0.1:8000");
  assert_string_equal(meta_dest(rs.r[0]), "10.0.0.1:8000,10.0.0.2:8000,10.0.0.3:8000");
  assert_int_equal(E.eps[0].inflight, 1);
  /* response headers echo the endpoint; end of stream releases the pick */
  req_resp_headers(&r, 1);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 1);
  const epp_common_t *c = common_of(rs.r[0]);
  assert_non_null(c);
  assert_string_equal(hm_get(c->header_mutation, EPP_HDR_SERVED, b, sizeof b), "10.0.0.1:8000");
  assert_int_equal(E.eps[0].inflight, 0);
  resps_free(&rs);
  epp_stream_end(&E, &s);
}

static void test_full_duplex_streamed(void **state) {
  (void)state;
  epp_stream_t s;
  epp_stream_init(&s);
  req_t r;
  resps_t rs = {0};
  char b[128];
  /* a body of ~150 KB in three chunks */
  ig_buf_t body;
  ig_buf_init(&body);
  ig_buf_puts(&body, "{\"model\":\"m\",\"prompt\":\"");
  while (body.len < 150000)
    ig_buf_puts(&body, "abcdefghij");
  ig_buf_puts(&body, "\"}");
  req_headers(&r, 0, EPP_MODE_FULL_DUPLEX);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 0); /* held back until the body is complete */
  size_t cut[] = {0, 1000, 90000, body.len};
  for (int i = 0; i < 3; i++) {
    req_body(&r, 0, body.data + cut[i], cut[i + 1] - cut[i], i == 2);
    run(&s, &r.rq, &rs);
    if (i < 2) assert_int_equal(rs.n, 0);
  }
  assert_int_equal(rs.n, 1 + 3); /* headers + ceil(150025 / 62000) chunks */
  assert_int_equal(rs.r[0]->response_case, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS);
  assert_string_equal(dest_of(rs.r[0], b, sizeof b), "10.0.0.1:8000");
  assert_non_null(meta_dest(rs.r[0]));
  ig_buf_t got;
  ig_buf_init(&got);
  for (size_t i = 1; i < rs.n; i++) {
    assert_int_equal(rs.r[i]->response_case, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY);
    const Envoy__Service__ExtProc__V3__BodyMutation *m = common_of(rs.r[i])->body_mutation;
    assert_int_equal(m->mutation_case, ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_STREAMED_RESPONSE);
    assert_true(m->streamed_response->body.len <= EPP_CHUNK_MAX);
    assert_int_equal(m->streamed_response->end_of_stream, i == rs.n - 1);
    ig_buf_append(&got, m->streamed_response->body.data, m->streamed_response->body.len);
  }
  assert_int_equal(got.len, body.len);
  assert_memory_equal(got.data, body.data, body.len);
  /* the response body is echoed in full-duplex mode */
  req_body(&r, 1, "data: x\n\n", 9, 1);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 1);
  const Envoy__Service__ExtProc__V3__BodyMutation *m = common_of(rs.r[0])->body_mutation;
  assert_int_equal(m->mutation_case, ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_STREAMED_RESPONSE);
  assert_int_equal(m->streamed_response->body.len, 9);
  assert_true(m->streamed_response->end_of_stream);
  assert_int_equal(E.eps[0].inflight, 0);
  ig_buf_free(&got);
  ig_buf_free(&body);
  resps_free(&rs);
  epp_stream_end(&E, &s);
}

/* A body in chunks after request headers with a content-length (right, too small, too large,
 * garbage): the body buffer is sized from it, and the body comes back whole and unchanged. */
static void test_chunks_content_length(void **state) {
  (void)state;
  static const char *clens[] = {NULL, "exact", "10", "299999", "12x", "99999999999999999999"};
  ig_buf_t body;
  ig_buf_init(&body);
  ig_buf_puts(&body, "{\"model\":\"m\",\"prompt\":\"");
  while (body.len < 100000)
    ig_buf_puts(&body, "abc\\n\\u00e9 ");
  ig_buf_puts(&body, "\"}");
  char exact[32];
  snprintf(exact, sizeof exact, "%zu", body.len);
  for (size_t t = 0; t < sizeof clens / sizeof clens[0]; t++) {
    epp_stream_t s;
    epp_stream_init(&s);
    req_t r;
    resps_t rs = {0};
    req_headers(&r, 0, EPP_MODE_FULL_DUPLEX);
    epp_hv_t hv;
    epp_hv_t *hvp[1] = {&hv};
    envoy__config__core__v3__header_value__init(&hv);
    const char *cl = clens[t] && !strcmp(clens[t], "exact") ? exact : clens[t];
    if (cl) {
      hv.key = "content-length";
      hv.raw_value.data = (uint8_t *)cl;
      hv.raw_value.len = strlen(cl);
      r.map.headers = hvp;
      r.map.n_headers = 1;
    }
    run(&s, &r.rq, &rs);
    assert_int_equal(rs.n, 0);
    size_t off = 0, step = 7000 + 3000 * t;
    while (off < body.len) {
      size_t n = body.len - off < step ? body.len - off : step;
      req_body(&r, 0, body.data + off, n, off + n == body.len);
      run(&s, &r.rq, &rs);
      off += n;
    }
    assert_true(rs.n >= 2);
    ig_buf_t got;
    ig_buf_init(&got);
    for (size_t i = 1; i < rs.n; i++)
      ig_buf_append(&got, common_of(rs.r[i])->body_mutation->streamed_response->body.data,
                    common_of(rs.r[i])->body_mutation->streamed_response->body.len);
    assert_int_equal(got.len, body.len);
    assert_memory_equal(got.data, body.data, body.len);
    ig_buf_free(&got);
    resps_free(&rs);
    epp_stream_end(&E, &s);
  }
  ig_buf_free(&body);
}

static void test_buffered_rewrite(void **state) {
  (void)state;
  epp_stream_t s;
  epp_stream_init(&s);
  req_t r;
  resps_t rs = {0};
  char b[128];
  req_headers(&r, 0, EPP_MODE_BUFFERED);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 1); /* CONTINUE at once */
  assert_int_equal(rs.r[0]->response_case, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS);
  assert_null(dest_of(rs.r[0], b, sizeof b));
  const char *body = "{\"model\": \"chat\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
  req_body(&r, 0, body, strlen(body), 1);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 1);
  assert_int_equal(rs.r[0]->response_case, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY);
  const epp_common_t *c = common_of(rs.r[0]);
  assert_string_equal(dest_of(rs.r[0], b, sizeof b), "10.0.0.1:8000");
  assert_non_null(meta_dest(rs.r[0]));
  assert_int_equal(c->body_mutation->mutation_case, ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_BODY);
  const char *want = "{\"model\": \"lora-a\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
  assert_int_equal(c->body_mutation->body.len, strlen(want));
  assert_memory_equal(c->body_mutation->body.data, want, strlen(want));
  char cl[32];
  snprintf(cl, sizeof cl, "%zu", strlen(want));
  assert_string_equal(hm_get(c->header_mutation, "content-length", b, sizeof b), cl);
  resps_free(&rs);
  epp_stream_end(&E, &s);
  assert_int_equal(E.eps[0].inflight, 0); /* released on stream end */
}

/* One request in full-duplex mode with the given body; returns the immediate status (0 if none). */
static int one_request(const char *body, resps_t *rs) {
  epp_stream_t s;
  epp_stream_init(&s);
  req_t r;
  req_headers(&r, 0, -1);
  run(&s, &r.rq, rs);
  req_body(&r, 0, body, strlen(body), 1);
  run(&s, &r.rq, rs);
  epp_stream_end(&E, &s);
  assert_true(rs->n >= 1);
  return immediate_status(rs->r[0]);
}

static void test_errors(void **state) {
  (void)state;
  resps_t rs = {0};
  assert_int_equal(one_request("{\"model\":\"nope\"}", &rs), 404);
  const Envoy__Service__ExtProc__V3__ImmediateResponse *im = rs.r[0]->immediate_response;
  const char *want = "The model `nope` does not exist.";
  assert_non_null(memmem(im->body.data, im->body.len, want, strlen(want)));
  assert_non_null(memmem(im->body.data, im->body.len, "\"code\":\"model_not_found\"", 24));
  char b[64];
  assert_string_equal(hm_get(im->headers, "content-type", b, sizeof b), "application/json");
  assert_int_equal(one_request("{\"model\":\"elsewhere\"}", &rs), 404); /* a model of another pool */
  assert_int_equal(one_request("{\"prompt\":\"x\"}", &rs), 400);
  assert_int_equal(one_request("{\"model\":", &rs), 400);
  assert_int_equal(one_request("[1,2]", &rs), 400);
  assert_int_equal(one_request("{\"model\":\"m\"}", &rs), 0);
  for (size_t i = 0; i < E.n_eps; i++)
    assert_int_equal(E.eps[i].inflight, 0);
  resps_free(&rs);
}

static void test_default_model(void **state) {
  (void)state;
  static const char *y2 = "listeners: [{name: l, address: \"127.0.0.1:1\"}]\n"
                          "default_model: chat\n"
                          "pools: [{name: p, endpoints: [\"10.0.0.1:8000\"]}]\n"
                          "models: [{name: chat, pool: p, targets: [{name: lora-a, weight: 1}]}]\n";
  setup_epp(y2, NULL, 0); /* NULL: the only pool */
  epp_stream_t s;
  epp_stream_init(&s);
  req_t r;
  resps_t rs = {0};
  req_headers(&r, 0, EPP_MODE_BUFFERED);
  run(&s, &r.rq, &rs);
  const char *body = "{ \"prompt\": \"x\"}";
  req_body(&r, 0, body, strlen(body), 1);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 1);
  const epp_common_t *c = common_of(rs.r[0]);
  assert_non_null(c->body_mutation);
  const char *want = "{\"model\":\"lora-a\", \"prompt\": \"x\"}";
  assert_int_equal(c->body_mutation->body.len, strlen(want));
  assert_memory_equal(c->body_mutation->body.data, want, strlen(want));
  resps_free(&rs);
  epp_stream_end(&E, &s);
  epp_free(&E);
}

static void test_body_too_large(void **state) {
  (void)state;
  epp_stream_t s;
  epp_stream_init(&s);
  req_t r;
  resps_t rs = {0};
  req_headers(&r, 0, -1);
  run(&s, &r.rq, &rs);
  char *big = calloc(1, 200000);
  memset(big, ' ', 200000);
  req_body(&r, 0, big, 200000, 0);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 0);
  req_body(&r, 0, big, 200000, 0);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 1);
  assert_int_equal(immediate_status(rs.r[0]), 413);
  req_body(&r, 0, big, 10, 1); /* ignored after the local reply */
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 0);
  free(big);
  epp_stream_end(&E, &s);
}

/* Sets a subset hint on r's request from a NULL-terminated list. */
static void with_subset(req_t *r, const char **list, Envoy__Config__Core__V3__Metadata *md,
                        Envoy__Config__Core__V3__Metadata__FilterMetadataEntry *fe, epp_struct_t *st,
                        Google__Protobuf__Struct__FieldsEntry *f, epp_value_t *lv, Google__Protobuf__ListValue *l,
                        epp_value_t *items, epp_value_t **itemp) {
  static Envoy__Config__Core__V3__Metadata__FilterMetadataEntry *fep[1];
  static Google__Protobuf__Struct__FieldsEntry *fp[1];
  envoy__config__core__v3__metadata__init(md);
  envoy__config__core__v3__metadata__filter_metadata_entry__init(fe);
  google__protobuf__struct__init(st);
  google__protobuf__struct__fields_entry__init(f);
  google__protobuf__value__init(lv);
  google__protobuf__list_value__init(l);
  size_t n = 0;
  for (; list[n]; n++) {
    google__protobuf__value__init(&items[n]);
    items[n].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    items[n].string_value = (char *)list[n];
    itemp[n] = &items[n];
  }
  l->values = itemp;
  l->n_values = n;
  lv->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
  lv->list_value = l;
  f->key = EPP_HINT_KEY;
  f->value = lv;
  fp[0] = f;
  st->fields = fp;
  st->n_fields = 1;
  fe->key = EPP_HINT_NS;
  fe->value = st;
  fep[0] = fe;
  md->filter_metadata = fep;
  md->n_filter_metadata = 1;
  r->rq.metadata_context = md;
}

static int subset_request(const char **list, resps_t *rs) {
  Envoy__Config__Core__V3__Metadata md;
  Envoy__Config__Core__V3__Metadata__FilterMetadataEntry fe;
  epp_struct_t st;
  Google__Protobuf__Struct__FieldsEntry f;
  epp_value_t lv, items[4], *itemp[4];
  Google__Protobuf__ListValue l;
  epp_stream_t s;
  epp_stream_init(&s);
  req_t r;
  req_headers(&r, 1, -1);
  with_subset(&r, list, &md, &fe, &st, &f, &lv, &l, items, itemp);
  run(&s, &r.rq, rs);
  epp_stream_end(&E, &s);
  assert_int_equal(rs->n, 1);
  return immediate_status(rs->r[0]);
}

static void test_subset_hint(void **state) {
  (void)state;
  resps_t rs = {0};
  char b[128];
  const char *only3[] = {"10.0.0.3:8000", NULL};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(subset_request(only3, &rs), 0);
    assert_string_equal(dest_of(rs.r[0], b, sizeof b), "10.0.0.3:8000");
    assert_string_equal(meta_dest(rs.r[0]), "10.0.0.3:8000");
  }
  const char *two[] = {"10.0.0.2:8000", "10.0.0.1:8000", "1.2.3.4:5", NULL};
  assert_int_equal(subset_request(two, &rs), 0);
  const char *d = dest_of(rs.r[0], b, sizeof b);
  assert_true(!strcmp(d, "10.0.0.1:8000") || !strcmp(d, "10.0.0.2:8000"));
  assert_int_equal(strlen(meta_dest(rs.r[0])), strlen("10.0.0.1:8000,10.0.0.2:8000"));
  const char *none[] = {"1.2.3.4:5", NULL};
  assert_int_equal(subset_request(none, &rs), 503);
  const char *empty[] = {NULL};
  assert_int_equal(subset_request(empty, &rs), 503);
  resps_free(&rs);
}

/* No pod has scraped metrics (none scraped in unit tests, or the pool went quiet): least outstanding
 * over our own in-flight picks, like the gateway's blind-pool fallback. */
static void test_least_outstanding(void **state) {
  (void)state;
  assert_int_equal(epp_pods_fill(&E, ig_now_ms()), 0);
  epp_stream_t s[6];
  resps_t rs = {0};
  req_t r;
  char b[128];
  int count[3] = {0};
  for (int i = 0; i < 6; i++) {
    epp_stream_init(&s[i]);
    req_headers(&r, 1, -1);
    run(&s[i], &r.rq, &rs);
    const char *d = dest_of(rs.r[0], b, sizeof b);
    count[d[7] - '1']++;
  }
  for (int i = 0; i < 3; i++) {
    assert_int_equal(count[i], 2);
    assert_int_equal(E.eps[i].inflight, 2);
  }
  /* finish two on the same endpoint: it becomes the least loaded */
  epp_stream_end(&E, &s[1]);
  epp_stream_end(&E, &s[4]);
  epp_stream_t t;
  epp_stream_init(&t);
  req_headers(&r, 1, -1);
  run(&t, &r.rq, &rs);
  assert_string_equal(dest_of(rs.r[0], b, sizeof b), "10.0.0.2:8000");
  epp_stream_end(&E, &t);
  for (int i = 0; i < 6; i++)
    if (i != 1 && i != 4) epp_stream_end(&E, &s[i]);
  for (int i = 0; i < 3; i++)
    assert_int_equal(E.eps[i].inflight, 0);
  resps_free(&rs);
}

/* The picker runs the gateway's scheduler with the pool's profile. */
static void test_sched_profile(void **state) {
  (void)state;
  assert_non_null(E.sched);
  assert_string_equal(ig_sched_profile_name(E.sched), "default");
  assert_true(E.uses_prefix);
  epp_free(&E);
  static const char *y = "listeners: [{name: l, address: \"127.0.0.1:1\"}]\n"
                         "pools:\n"
                         "  - name: p\n"
                         "    scheduler: round-robin\n"
                         "    endpoints: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n";
  setup_epp(y, NULL, 0);
  assert_string_equal(ig_sched_profile_name(E.sched), "round-robin");
  assert_false(E.uses_prefix);
  assert_int_equal(E.pods[0].batch_slots, 0);
  /* the pool's batch size reaches the scheduler's pods (the batch-slot filter) */
  epp_free(&E);
  static const char *z = "listeners: [{name: l, address: \"127.0.0.1:1\"}]\n"
                         "pools:\n"
                         "  - name: p\n"
                         "    scheduling: {batch_slots: 8}\n"
                         "    endpoints: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n";
  setup_epp(z, NULL, 0);
  epp_pods_fill(&E, ig_now_ms());
  assert_int_equal(E.pods[0].batch_slots, 8);
  assert_int_equal(E.pods[1].batch_slots, 8);
}

static void test_shed(void **state) {
  (void)state;
  epp_free(&E);
  setup_epp(yaml, "p", 1);
  resps_t rs = {0};
  epp_stream_t s[3];
  req_t r;
  for (int i = 0; i < 3; i++) { /* one in flight on each endpoint */
    epp_stream_init(&s[i]);
    req_headers(&r, 1, -1);
    run(&s[i], &r.rq, &rs);
    assert_int_equal(immediate_status(rs.r[0]), 0);
  }
  assert_int_equal(one_request("{\"model\":\"batch\"}", &rs), 429);
  char b[32];
  assert_string_equal(hm_get(rs.r[0]->immediate_response->headers, "retry-after", b, sizeof b), "1");
  assert_int_equal(one_request("{\"model\":\"m\"}", &rs), 0); /* Standard is not shed */
  epp_stream_end(&E, &s[0]);
  assert_int_equal(one_request("{\"model\":\"batch\"}", &rs), 0);
  for (int i = 1; i < 3; i++)
    epp_stream_end(&E, &s[i]);
  resps_free(&rs);
}

static void test_bad_messages(void **state) {
  (void)state;
  epp_stream_t s;
  epp_stream_init(&s);
  ig_buf_t out;
  ig_buf_init(&out);
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
  assert_int_equal(epp_stream_recv(&E, &s, junk, sizeof junk, &out), IG_EPARSE);
  epp_preq_t rq = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__INIT;
  assert_int_equal(epp_stream_handle(&E, &s, &rq, &out), IG_EINVAL);
  assert_int_equal(out.len, 0);
  /* observability mode: nothing is answered */
  req_t r;
  req_headers(&r, 1, -1);
  r.rq.observability_mode = 1;
  assert_int_equal(epp_stream_handle(&E, &s, &r.rq, &out), 0);
  assert_int_equal(out.len, 0);
  ig_buf_free(&out);
  epp_stream_end(&E, &s);
}

static void test_trailers(void **state) {
  (void)state;
  epp_stream_t s;
  epp_stream_init(&s);
  req_t r;
  resps_t rs = {0};
  req_headers(&r, 0, EPP_MODE_FULL_DUPLEX);
  run(&s, &r.rq, &rs);
  req_body(&r, 0, "{\"model\":\"m\"}", 13, 0);
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 0);
  envoy__service__ext_proc__v3__processing_request__init(&r.rq);
  Envoy__Service__ExtProc__V3__HttpTrailers tr = ENVOY__SERVICE__EXT_PROC__V3__HTTP_TRAILERS__INIT;
  r.rq.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_TRAILERS;
  r.rq.request_trailers = &tr;
  run(&s, &r.rq, &rs);
  assert_int_equal(rs.n, 3); /* headers, body (not end of stream), trailers */
  assert_false(common_of(rs.r[1])->body_mutation->streamed_response->end_of_stream);
  assert_int_equal(rs.r[2]->response_case, ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_TRAILERS);
  resps_free(&rs);
  epp_stream_end(&E, &s);
}

/* Found by fuzz_epp_extproc: trailers before any headers end the request phase; a request_headers
 * arriving after that must not pick a second time (the first pick would never be given back). */
static void test_headers_after_trailers(void **state) {
  (void)state;
  epp_stream_t s;
  epp_stream_init(&s);
  req_t r;
  resps_t rs = {0};
  envoy__service__ext_proc__v3__processing_request__init(&r.rq);
  Envoy__Service__ExtProc__V3__HttpTrailers tr = ENVOY__SERVICE__EXT_PROC__V3__HTTP_TRAILERS__INIT;
  r.rq.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_TRAILERS;
  r.rq.request_trailers = &tr;
  run(&s, &r.rq, &rs);
  size_t held = 0;
  for (size_t i = 0; i < E.n_eps; i++) held += E.eps[i].inflight;
  assert_true(held <= 1);
  req_headers(&r, 1, -1);
  run(&s, &r.rq, &rs);
  size_t held2 = 0;
  for (size_t i = 0; i < E.n_eps; i++) held2 += E.eps[i].inflight;
  assert_int_equal(held2, held); /* no second pick */
  resps_free(&rs);
  epp_stream_end(&E, &s);
  for (size_t i = 0; i < E.n_eps; i++) assert_int_equal(E.eps[i].inflight, 0);
}

static void test_init_errors(void **state) {
  (void)state;
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  assert_int_equal(ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &errs), 0);
  epp_t e2;
  epp_opts_t o = {.default_mode = EPP_MODE_FULL_DUPLEX};
  assert_int_equal(epp_init(&e2, cfg, "missing", &o), IG_ENOENT); /* cfg freed */
  assert_int_equal(ig_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &errs), 0);
  assert_int_equal(epp_init(&e2, cfg, NULL, &o), IG_ENOENT); /* two pools: must choose */
  ig_config_errors_free(&errs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_framing),
      cmocka_unit_test_setup_teardown(test_headers_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_duplex_streamed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chunks_content_length, setup, teardown),
      cmocka_unit_test_setup_teardown(test_buffered_rewrite, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
      cmocka_unit_test(test_default_model),
      cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
      cmocka_unit_test_setup_teardown(test_subset_hint, setup, teardown),
      cmocka_unit_test_setup_teardown(test_least_outstanding, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sched_profile, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_trailers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_headers_after_trailers, setup, teardown),
      cmocka_unit_test(test_init_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Simulator OpenAI surface: /v1/completions, /v1/chat/completions (stream and non-stream),
 * /v1/models, LoRA load/unload, /health, /metrics, failure injection and OpenAI-style errors. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/oai.h"
#include "sim.h"

#define MAX_TOKENS_LIMIT 1000000

void ig_sim_write_response(ig_buf_t *out, int status, const char *ctype, const char *body, size_t len,
                           int close) {
  ig_buf_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                ig_http_reason(status), ctype, len, close ? "Connection: close\r\n" : "");
  ig_buf_append(out, body, len);
}

static const char *error_type(int status) {
  switch (status) {
  case 400: return "BadRequestError";
  case 401: return "AuthenticationError";
  case 403: return "PermissionDeniedError";
  case 404: return "NotFoundError";
  case 429: return "RateLimitError";
  default: return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

/* Answers an OpenAI error and finishes the exchange. */
static void reply_error(ig_sim_conn_t *c, int keep_alive, int status, const char *code, const char *msg) {
  ig_buf_t out;
  ig_buf_init(&out);
  ig_http_write_error(&out, status, error_type(status), code, msg, !keep_alive);
  ig_sim_conn_send(c, &out);
  ig_sim_conn_done(c, !keep_alive);
}

static void reply(ig_sim_conn_t *c, int keep_alive, int status, const char *ctype, const char *body, size_t len) {
  ig_buf_t out;
  ig_buf_init(&out);
  ig_sim_write_response(&out, status, ctype, body, len, !keep_alive);
  ig_sim_conn_send(c, &out);
  ig_sim_conn_done(c, !keep_alive);
}

/* Answers with a JSON document (takes the reference). */
static void reply_json(ig_sim_conn_t *c, int keep_alive, int status, json_t *doc) {
  char *s = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  reply(c, keep_alive, status, "application/json", s, strlen(s));
  free(s);
}

static int path_is(const ig_http_request_t *req, const char *path) {
  size_t n = strlen(path);
  return req->path_len == n && !memcmp(req->target, path, n);
}

static int method_is(const ig_http_request_t *req, const char *m) {
  size_t n = strlen(m);
  return req->method_len == n && !memcmp(req->method, m, n);
}

void ig_sim_req_free(ig_sim_req_t *r) {
  if (r->seq.state == IG_SIM_SEQ_WAITING || r->seq.state == IG_SIM_SEQ_RUNNING)
    ig_sim_engine_abort(&r->pod->eng, &r->seq);
  ig_sim_seq_free(&r->seq);
  ig_buf_free(&r->text);
  free(r->model);
  free(r);
}

/* ---- generation ------------------------------------------------------------------------------- */

/* Appends one SSE event "data: <json>\n\n" as a chunk (or raw when not chunked). */
static void sse_event(ig_buf_t *out, int chunked, const char *data, size_t len) {
  size_t n = len + 8;
  if (chunked) ig_chunked_begin_chunk(out, n);
  ig_buf_append(out, "data: ", 6);
  ig_buf_append(out, data, len);
  ig_buf_append(out, "\n\n", 2);
  if (chunked) ig_chunked_end_chunk(out);
}

static void usage_json(ig_buf_t *b, const ig_sim_req_t *r) {
  ig_buf_printf(b,
                "{\"prompt_tokens\":%u,\"total_tokens\":%u,\"completion_tokens\":%u,"
                "\"prompt_tokens_details\":{\"cached_tokens\":%u}}",
                r->seq.prompt_tokens, r->seq.prompt_tokens + r->sent, r->sent, r->seq.cached_tokens);
}

static void chunk_head(ig_buf_t *b, const ig_sim_req_t *r) {
  ig_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%llu,\"model\":\"", r->id,
                r->chat ? "chat.completion.chunk" : "text_completion", (unsigned long long)r->created);
  ig_json_escape(b, r->model, strlen(r->model));
  ig_buf_puts(b, "\",");
}

/* Writes the streamed chunk of token i (and the tail when done). */
static void stream_token(ig_sim_req_t *r, const char *tok, int done) {
  ig_buf_t out, ev;
  ig_buf_init(&out);
  ig_buf_init(&ev);
  chunk_head(&ev, r);
  const char *fin = done ? "\"length\"" : "null";
  if (r->chat)
    ig_buf_printf(&ev,
                  "\"choices\":[{\"index\":0,\"delta\":{%s\"content\":\"%s\"},\"logprobs\":null,"
                  "\"finish_reason\":%s}]}",
                  r->sent == 1 ? "\"role\":\"assistant\"," : "", tok, fin);
  else
    ig_buf_printf(&ev,
                  "\"choices\":[{\"index\":0,\"text\":\"%s\",\"logprobs\":null,\"finish_reason\":%s,"
                  "\"stop_reason\":null}]}",
                  tok, fin);
  sse_event(&out, r->chunked_out, ev.data, ev.len);
  if (done) {
    if (r->include_usage) {
      ig_buf_reset(&ev);
      chunk_head(&ev, r);
      ig_buf_puts(&ev, "\"choices\":[],\"usage\":");
      usage_json(&ev, r);
      ig_buf_puts(&ev, "}");
      sse_event(&out, r->chunked_out, ev.data, ev.len);
    }
    sse_event(&out, r->chunked_out, "[DONE]", 6);
    if (r->chunked_out) ig_chunked_last(&out);
  }
  ig_buf_free(&ev);
  ig_sim_conn_send(r->conn, &out);
}

/* Writes the whole non-streamed response. */
static void reply_full(ig_sim_req_t *r) {
  ig_buf_t b;
  ig_buf_init(&b);
  ig_buf_printf(&b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%llu,\"model\":\"", r->id,
                r->chat ? "chat.completion" : "text_completion", (unsigned long long)r->created);
  ig_json_escape(&b, r->model, strlen(r->model));
  if (r->chat)
    ig_buf_printf(&b,
                  "\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
                  "\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null}],\"usage\":",
                  r->text.data ? r->text.data : "");
  else
    ig_buf_printf(&b,
                  "\",\"choices\":[{\"index\":0,\"text\":\"%s\",\"logprobs\":null,\"finish_reason\":\"length\","
                  "\"stop_reason\":null}],\"usage\":",
                  r->text.data ? r->text.data : "");
  usage_json(&b, r);
  ig_buf_puts(&b, "}");
  ig_buf_t out;
  ig_buf_init(&out);
  ig_sim_write_response(&out, 200, "application/json", b.data, b.len, !r->keep_alive);
  ig_buf_free(&b);
  ig_sim_conn_send(r->conn, &out);
}

/* Delivers one token: a streamed event, or text accumulated for the final body; finishes the exchange
 * when done, and plays --die-after-tokens on streams. */
void ig_sim_api_emit(void *ud, ig_sim_seq_t *seq, int done) {
  ig_sim_pod_t *pod = ud;
  ig_sim_req_t *r = seq->user;
  ig_sim_conn_t *c = r->conn;
  const char *tok = ig_sim_token_text(r->sent++); /* token texts need no JSON escaping */
  if (r->stream) {
    stream_token(r, tok, done);
  } else {
    ig_buf_puts(&r->text, tok);
    if (done) reply_full(r);
  }
  if (done) {
    int keep = r->keep_alive;
    c->req = NULL;
    ig_sim_req_free(r);
    ig_sim_conn_done(c, !keep);
    return;
  }
  const ig_sim_options_t *o = &pod->sim->opt;
  if (r->stream && o->die_pod == pod->index && r->sent >= o->die_tokens) {
    /* chaos: drop the connection mid-stream, after the tokens written so far went out */
    c->req = NULL;
    ig_sim_req_free(r);
    ig_sim_conn_done(c, 1);
  }
}

/* Reads an optional positive integer field; returns 0 (absent: *out unchanged) or -1 when invalid. */
static int get_count(json_t *root, const char *key, json_int_t lo, json_int_t hi, json_int_t *out) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) return -1;
  *out = json_integer_value(v);
  return 0;
}

/* Token-id prompts ("prompt": [1, 2, 3] or [[1, 2], [3]]) carry no text: each id becomes 4 characters
 * so that counting and prefix hashing still work. */
static void token_ids_text(json_t *v, ig_buf_t *out) {
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    if (json_is_integer(e))
      ig_buf_printf(out, "%04llx", (unsigned long long)(json_integer_value(e) & 0xffff));
    else if (json_is_array(e))
      token_ids_text(e, out);
  }
}

/* POST /v1/completions and /v1/chat/completions: validates the body (400), resolves the model (404),
 * applies --fail-rate (500), queues the sequence (429 when the queue is full) and, for streams, sends
 * the response head at once; tokens follow from ig_sim_api_emit. */
static void handle_generate(ig_sim_conn_t *c, const ig_http_request_t *req, const char *body, size_t len,
                            int chat) {
  ig_sim_pod_t *pod = c->pod;
  ig_sim_t *sim = pod->sim;
  int keep = req->keep_alive;
  char msg[512];
  json_error_t jerr;
  json_t *root = NULL;
  ig_sim_req_t *r = NULL;
  ig_buf_t text;
  ig_buf_init(&text);

  if (sim->opt.fail_rate > 0 && ig_rng_double(&sim->rng) < sim->opt.fail_rate) {
    reply_error(c, keep, 500, NULL, "Simulated failure (--fail-rate).");
    goto out;
  }
  root = json_loadb(body, len, 0, &jerr);
  if (!root || !json_is_object(root)) {
    snprintf(msg, sizeof msg, "Invalid JSON body: %s", root ? "not an object" : jerr.text);
    reply_error(c, keep, 400, NULL, msg);
    goto out;
  }
  json_t *m = json_object_get(root, "model");
  if (m && !json_is_string(m)) {
    reply_error(c, keep, 400, NULL, "'model' must be a string.");
    goto out;
  }
  const char *model = m ? json_string_value(m) : sim->opt.model;
  int lora = -1;
  if (strcmp(model, sim->opt.model) != 0 && (lora = ig_sim_engine_find_adapter(&pod->eng, model)) < 0) {
    ig_buf_t em;
    ig_buf_init(&em);
    ig_buf_printf(&em, "The model `%.256s` does not exist.", model);
    reply_error(c, keep, 404, "model_not_found", em.data);
    ig_buf_free(&em);
    goto out;
  }
  json_t *p = json_object_get(root, chat ? "messages" : "prompt");
  if (chat ? !json_is_array(p) || json_array_size(p) == 0
           : !(json_is_string(p) || (json_is_array(p) && json_array_size(p) > 0))) {
    reply_error(c, keep, 400, NULL,
                chat ? "'messages' must be a non-empty array." : "'prompt' must be a string or a non-empty array.");
    goto out;
  }
  json_int_t max_tokens = 16, n = 1;
  if (get_count(root, "max_tokens", 1, MAX_TOKENS_LIMIT, &max_tokens) ||
      (chat && get_count(root, "max_completion_tokens", 1, MAX_TOKENS_LIMIT, &max_tokens))) {
    reply_error(c, keep, 400, NULL, "'max_tokens' must be an integer between 1 and 1000000.");
    goto out;
  }
  if (get_count(root, "n", 1, 1, &n)) {
    reply_error(c, keep, 400, NULL, "Only n = 1 is supported.");
    goto out;
  }
  json_t *st = json_object_get(root, "stream");
  if (st && !json_is_boolean(st) && !json_is_null(st)) {
    reply_error(c, keep, 400, NULL, "'stream' must be a boolean.");
    goto out;
  }
  ig_oai_req_t scan;
  if (ig_oai_scan(body, len, &scan) != 0 || ig_oai_prompt_text(body, len, &scan, &text) != 0) {
    reply_error(c, keep, 400, NULL, "Could not read the prompt.");
    goto out;
  }
  if (!chat && json_is_array(p)) token_ids_text(p, &text);

  r = IG_NEW(ig_sim_req_t);
  r->pod = pod;
  r->chat = chat;
  r->stream = json_is_true(st);
  r->include_usage = json_is_true(json_object_get(json_object_get(root, "stream_options"), "include_usage"));
  r->keep_alive = keep;
  r->chunked_out = req->minor_version >= 1;
  r->model = ig_strdup(model);
  r->created = ig_wall_us() / 1000000;
  snprintf(r->id, sizeof r->id, "%s-%d-%llu", chat ? "chatcmpl" : "cmpl", pod->index,
           (unsigned long long)++pod->next_id);
  ig_buf_init(&r->text);
  ig_sim_seq_init(&r->seq, text.data ? text.data : "", text.len, (uint32_t)max_tokens, lora, model);
  r->seq.user = r;
  int rc = ig_sim_engine_submit(&pod->eng, &r->seq, ig_sim_pod_now(pod));
  if (rc == IG_EFULL) {
    reply_error(c, keep, 429, "rate_limit_exceeded", "The waiting queue is full; retry later.");
    goto out;
  }
  if (rc == IG_ETOOBIG) {
    snprintf(msg, sizeof msg,
             "This model's maximum context length is %u tokens. However, you requested %llu tokens (%u in the "
             "messages, %llu in the completion). Please reduce the length of the messages or completion.",
             pod->eng.cfg.max_model_len, (unsigned long long)r->seq.prompt_tokens + (unsigned long long)max_tokens,
             r->seq.prompt_tokens, (unsigned long long)max_tokens);
    reply_error(c, keep, 400, NULL, msg);
    goto out;
  }
  if (rc) {
    reply_error(c, keep, 404, "model_not_found", "The model does not exist.");
    goto out;
  }
  r->conn = c;
  c->req = r;
  r = NULL;
  if (c->req->stream) {
    ig_buf_t out;
    ig_buf_init(&out);
    if (c->req->chunked_out)
      ig_buf_printf(&out,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
                    "Transfer-Encoding: chunked\r\n%s\r\n",
                    keep ? "" : "Connection: close\r\n");
    else
      ig_buf_puts(&out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                        "Cache-Control: no-cache\r\nConnection: close\r\n\r\n");
    if (!c->req->chunked_out) c->req->keep_alive = 0;
    ig_sim_conn_send(c, &out);
  }
  ig_sim_pod_kick(pod);

out:
  if (r) ig_sim_req_free(r);
  json_decref(root);
  ig_buf_free(&text);
}

/* ---- models and adapters ---------------------------------------------------------------------- */

static json_t *model_card(ig_sim_pod_t *pod, const char *id, const char *root, const char *parent) {
  return json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:I,s:[]}", "id", id, "object", "model", "created",
                   (json_int_t)pod->sim->start_wall_s, "owned_by", "vllm", "root", root, "parent",
                   parent ? json_string(parent) : json_null(), "max_model_len", (json_int_t)pod->eng.cfg.max_model_len,
                   "permission");
}

/* GET /v1/models: the base model and the registered adapters (parent = base model). */
static void handle_models(ig_sim_conn_t *c, int keep) {
  ig_sim_pod_t *pod = c->pod;
  const char *base = pod->sim->opt.model;
  json_t *data = json_array();
  json_array_append_new(data, model_card(pod, base, base, NULL));
  for (int i = 0; i < pod->eng.n_adapters; i++) {
    ig_sim_adapter_t *a = &pod->eng.adapters[i];
    if (a->registered) json_array_append_new(data, model_card(pod, a->name, a->path, base));
  }
  reply_json(c, keep, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

/* POST /v1/load_lora_adapter (load = 1) and /v1/unload_lora_adapter, vLLM's bodies and answers. */
static void handle_lora(ig_sim_conn_t *c, int keep, const char *body, size_t len, int load) {
  ig_sim_pod_t *pod = c->pod;
  char msg[512];
  json_error_t jerr;
  json_t *root = json_loadb(body, len, 0, &jerr);
  json_t *jn = root ? json_object_get(root, "lora_name") : NULL;
  json_t *jp = root ? json_object_get(root, "lora_path") : NULL;
  if (!root || !json_is_object(root)) {
    snprintf(msg, sizeof msg, "Invalid JSON body: %s", root ? "not an object" : jerr.text);
    reply_error(c, keep, 400, NULL, msg);
    goto out;
  }
  if (!json_is_string(jn) || json_string_length(jn) == 0 || json_string_length(jn) > 256 ||
      strlen(json_string_value(jn)) != json_string_length(jn) || (jp && !json_is_string(jp))) {
    reply_error(c, keep, 400, NULL, "'lora_name' (and 'lora_path') must be non-empty strings.");
    goto out;
  }
  const char *name = json_string_value(jn);
  if (!strcmp(name, pod->sim->opt.model)) {
    reply_error(c, keep, 400, NULL, "The base model cannot be loaded or unloaded as an adapter.");
    goto out;
  }
  int idx = -1, rc;
  if (load) {
    rc = ig_sim_engine_add_adapter(&pod->eng, name, jp ? json_string_value(jp) : name, &idx);
    if (rc == IG_EEXIST) {
      snprintf(msg, sizeof msg, "The lora adapter '%s' has already been loaded.", name);
      reply_error(c, keep, 400, NULL, msg);
      goto out;
    }
    if (rc) {
      reply_error(c, keep, 400, NULL, "Too many LoRA adapters.");
      goto out;
    }
    ig_sim_engine_load_adapter(&pod->eng, idx); /* takes a free slot when there is one */
    snprintf(msg, sizeof msg, "Success: LoRA adapter '%s' added successfully.", name);
  } else {
    if (ig_sim_engine_remove_adapter(&pod->eng, name) != 0) {
      snprintf(msg, sizeof msg, "The lora adapter '%s' cannot be found.", name);
      reply_error(c, keep, 404, NULL, msg);
      goto out;
    }
    snprintf(msg, sizeof msg, "Success: LoRA adapter '%s' removed successfully.", name);
  }
  reply(c, keep, 200, "text/plain; charset=utf-8", msg, strlen(msg));
  ig_sim_pod_kick(pod); /* a freed slot may let waiting requests run */
out:
  json_decref(root);
}

/* ---- dispatch --------------------------------------------------------------------------------- */

/* X-Return-Error: <status> forces an error answer (4xx/5xx); other values are ignored. */
static int forced_status(const ig_http_request_t *req) {
  const ig_http_header_t *h = ig_http_header_find(req->headers, req->num_headers, "x-return-error");
  if (!h || h->value_len == 0 || h->value_len > 3) return 0;
  int v = 0;
  for (size_t i = 0; i < h->value_len; i++) {
    if (h->value[i] < '0' || h->value[i] > '9') return 0;
    v = v * 10 + (h->value[i] - '0');
  }
  return v >= 400 && v <= 599 ? v : 0;
}

void ig_sim_api_handle(ig_sim_conn_t *c, const ig_http_request_t *req, const char *body, size_t len) {
  ig_sim_pod_t *pod = c->pod;
  int keep = req->keep_alive;
  int get = method_is(req, "GET"), post = method_is(req, "POST");

  if (path_is(req, "/health")) {
    if (!get) goto bad_method;
    reply(c, keep, 200, "text/plain", "", 0);
    return;
  }
  if (path_is(req, "/metrics")) {
    if (!get) goto bad_method;
    ig_buf_t b;
    ig_buf_init(&b);
    ig_sim_metrics_render(pod, &b);
    reply(c, keep, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
    ig_buf_free(&b);
    return;
  }
  int forced = forced_status(req);
  if (forced) {
    char msg[96];
    snprintf(msg, sizeof msg, "Simulated error %d (X-Return-Error).", forced);
    reply_error(c, keep, forced, NULL, msg);
    return;
  }
  if (path_is(req, "/v1/models")) {
    if (!get) goto bad_method;
    handle_models(c, keep);
  } else if (path_is(req, "/v1/completions") || path_is(req, "/v1/chat/completions")) {
    if (!post) goto bad_method;
    handle_generate(c, req, body, len, path_is(req, "/v1/chat/completions"));
  } else if (path_is(req, "/v1/load_lora_adapter") || path_is(req, "/v1/unload_lora_adapter")) {
    if (!post) goto bad_method;
    handle_lora(c, keep, body, len, path_is(req, "/v1/load_lora_adapter"));
  } else {
    reply_error(c, keep, 404, NULL, "Not Found");
  }
  return;

bad_method:
  reply_error(c, keep, 405, NULL, "Method Not Allowed");
}

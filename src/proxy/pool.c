/* Inference pools: model-aware routing (the body's "model" picks an InferenceModel, a weighted target
 * and the criticality; the body is rewritten when the target differs) and the one place where an
 * endpoint of a pool is chosen, so that the scheduler can plug in here. */
#include <string.h>

#include "proxy.h"

/* The endpoint for a request to a pool. For now least-request over the pool's endpoints; the
 * scheduler (queue, KV cache, prefix affinity, criticality in r) replaces this body. */
endpoint_t *pool_pick(backend_rt_t *be, req_t *r, const endpoint_t *exclude) {
  (void)r;
  return lb_for_policy(IG_LB_LEAST_REQUEST)->pick(be, exclude);
}

/* Picks a target of m by weight (all weights 0 or no targets: the model name itself). */
static const char *pick_target(const ig_model_cfg_t *m) {
  if (m->n_targets == 0) return m->model_name;
  uint64_t total = 0;
  for (size_t i = 0; i < m->n_targets; i++)
    total += m->targets[i].weight;
  if (total == 0) return m->targets[ig_rng_next(&gw.rng) % m->n_targets].name;
  uint64_t x = ig_rng_next(&gw.rng) % total;
  for (size_t i = 0; i < m->n_targets; i++) {
    if (x < m->targets[i].weight) return m->targets[i].name;
    x -= m->targets[i].weight;
  }
  return m->targets[m->n_targets - 1].name;
}

/* Writes body with a "model" member inserted first (for a body that has none: default_model). */
static int insert_model(const char *body, size_t len, const char *model, ig_buf_t *out) {
  size_t i = 0;
  while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
    i++;
  if (i >= len || body[i] != '{') return IG_EINVAL;
  size_t j = i + 1;
  while (j < len && (body[j] == ' ' || body[j] == '\t' || body[j] == '\r' || body[j] == '\n'))
    j++;
  ig_buf_puts(out, "{\"model\":\"");
  ig_json_escape(out, model, strlen(model));
  ig_buf_puts(out, j < len && body[j] == '}' ? "\"" : "\",");
  ig_buf_append(out, body + i + 1, len - i - 1);
  return 0;
}

int pool_prepare(client_t *c) {
  req_t *q = &c->req;
  const ig_config_t *cfg = q->snap->cfg;
  backend_rt_t *be = q->be;
  if (strcmp(q->method, "POST") != 0 || c->body.len == 0) return 0; /* e.g. GET /v1/models */
  ig_oai_req_t scan;
  int rc = ig_oai_scan(c->body.data, c->body.len, &scan);
  if (rc == IG_ETOOBIG) {
    client_send_error(c, 400, "invalid_model", "the model name is too long", 0);
    return 1;
  }
  if (rc < 0) {
    client_send_error(c, 400, "invalid_json", "the request body is not a valid JSON object", 0);
    return 1;
  }
  const char *model;
  if (scan.has_model) {
    model = scan.model;
  } else if (cfg->default_model) {
    model = cfg->default_model;
  } else {
    client_send_error(c, 400, "missing_model", "you must provide a model parameter", 0);
    return 1;
  }
  snprintf(q->model, sizeof q->model, "%s", model);
  const ig_model_cfg_t *m = ig_config_find_model(cfg, q->model, strlen(q->model));
  if (m && m->pool_index != be->index) m = NULL;
  const char *target = q->model;
  q->criticality = IG_CRIT_STANDARD;
  if (m) {
    q->criticality = m->criticality;
    target = pick_target(m);
  } else if (be->has_models) {
    ig_buf_t msg;
    ig_buf_init(&msg);
    ig_buf_printf(&msg, "The model `%s` does not exist.", q->model);
    client_send_error(c, 404, "model_not_found", msg.data, 0);
    ig_buf_free(&msg);
    return 1;
  }
  snprintf(q->target, sizeof q->target, "%s", target);
  if (scan.has_model && strcmp(q->target, scan.model) == 0) return 0;
  ig_buf_reset(&c->tmp);
  rc = scan.has_model ? ig_oai_rewrite_model(c->body.data, c->body.len, &scan, q->target, &c->tmp)
                      : insert_model(c->body.data, c->body.len, q->target, &c->tmp);
  if (rc < 0) {
    client_send_error(c, 400, "invalid_json", "cannot rewrite the model of this request body", 0);
    return 1;
  }
  ig_buf_t t = c->body;
  c->body = c->tmp;
  c->tmp = t;
  return 0;
}

/* Config snapshot lifetime, error lists, lookups, and HTTPRoute-style route matching. */
#define _GNU_SOURCE
#include "infergate/config.h"

#include "config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


/* Frees everything a route owns and zeroes it (shared with the manifest loader, which drops
 * half-built routes). */
void ig_config_route_clear(ig_route_cfg_t *r) {
  free(r->name);
  for (size_t j = 0; j < r->n_hostnames; j++)
    free(r->hostnames[j]);
  free(r->hostnames);
  for (size_t j = 0; j < r->n_listeners; j++)
    free(r->listeners[j]);
  free(r->listeners);
  for (size_t j = 0; j < r->n_matches; j++) {
    ig_match_cfg_t *m = &r->matches[j];
    free(m->path);
    free(m->method);
    for (size_t k = 0; k < m->n_headers; k++) {
      free(m->headers[k].name);
      free(m->headers[k].value);
    }
    free(m->headers);
  }
  free(r->matches);
  for (size_t j = 0; j < r->n_backends; j++) {
    free(r->backends[j].backend);
    ig_config_header_filter_free(r->backends[j].request_headers);
    ig_config_header_filter_free(r->backends[j].response_headers);
  }
  free(r->backends);
  free(r->api_keys_file);
  ig_config_header_filter_free(r->request_headers);
  ig_config_header_filter_free(r->response_headers);
  memset(r, 0, sizeof *r);
}
/* Releases a snapshot and everything it owns. Takes NULL, and partial snapshots (NULL fields,
 * counts covering only the filled entries), so every load error path can use it. */
void ig_config_free(ig_config_t *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < cfg->n_listeners; i++) {
    free(cfg->listeners[i].name);
    free(cfg->listeners[i].host);
    free(cfg->listeners[i].tcp_backend);
    ig_tls_cfg_t *t = cfg->listeners[i].tls;
    if (t) {
      for (size_t j = 0; j < t->n_certificates; j++) {
        for (size_t k = 0; k < t->certificates[j].n_hostnames; k++)
          free(t->certificates[j].hostnames[k]);
        free(t->certificates[j].hostnames);
        free(t->certificates[j].cert);
        free(t->certificates[j].key);
      }
      free(t->certificates);
      free(t->cert);
      free(t->key);
      free(t->cert_pem);
      free(t->key_pem);
      free(t);
    }
  }
  free(cfg->listeners);
  for (size_t i = 0; i < cfg->n_backends; i++) {
    ig_backend_cfg_t *b = &cfg->backends[i];
    free(b->name);
    for (size_t j = 0; j < b->n_endpoints; j++)
      free(b->endpoints[j].host);
    free(b->endpoints);
    free(b->metrics_path);
    free(b->scheduler);
    if (b->tls) {
      free(b->tls->ca_file);
      free(b->tls->server_name);
      free(b->tls->cert_file);
      free(b->tls->key_file);
      free(b->tls);
    }
  }
  free(cfg->backends);
  for (size_t i = 0; i < cfg->n_routes; i++)
    ig_config_route_clear(&cfg->routes[i]);
  free(cfg->routes);
  for (size_t i = 0; i < cfg->n_models; i++) {
    ig_model_cfg_t *m = &cfg->models[i];
    free(m->model_name);
    free(m->pool);
    for (size_t j = 0; j < m->n_targets; j++)
      free(m->targets[j].name);
    free(m->targets);
  }
  free(cfg->models);
  for (size_t i = 0; i < cfg->n_objectives; i++) {
    free(cfg->objectives[i].name);
    free(cfg->objectives[i].pool);
  }
  free(cfg->objectives);
  free(cfg->admin_host);
  free(cfg->default_model);
  free(cfg->access_log);
  free(cfg->source);
  free(cfg);
}

void ig_config_errors_free(ig_config_errors_t *errs) {
  if (!errs) return;
  for (size_t i = 0; i < errs->n; i++) {
    free(errs->v[i].file);
    free(errs->v[i].message);
  }
  free(errs->v);
  errs->v = NULL;
  errs->n = 0;
}

void ig_config_errors_print(const ig_config_errors_t *errs, void *f) {
  FILE *out = f;
  for (size_t i = 0; i < errs->n; i++) {
    const ig_config_error_t *e = &errs->v[i];
    if (e->line > 0)
      fprintf(out, "%s:%d:%d: error: %s\n", e->file, e->line, e->column, e->message);
    else
      fprintf(out, "%s: error: %s\n", e->file, e->message);
  }
}

long ig_config_find_backend(const ig_config_t *cfg, const char *name) {
  for (size_t i = 0; i < cfg->n_backends; i++)
    if (cfg->backends[i].name && !strcmp(cfg->backends[i].name, name)) return (long)i;
  return -1;
}

const ig_model_cfg_t *ig_config_find_model(const ig_config_t *cfg, const char *model, size_t len) {
  for (size_t i = 0; i < cfg->n_models; i++) {
    const char *n = cfg->models[i].model_name;
    if (n && strlen(n) == len && !memcmp(n, model, len)) return &cfg->models[i];
  }
  return NULL;
}

const ig_objective_cfg_t *ig_config_find_objective(const ig_config_t *cfg, size_t pool_index,
                                                   const char *name, size_t len) {
  for (size_t i = 0; i < cfg->n_objectives; i++) {
    const ig_objective_cfg_t *o = &cfg->objectives[i];
    if (o->pool_index == pool_index && o->name && strlen(o->name) == len && !memcmp(o->name, name, len))
      return o;
  }
  return NULL;
}

ig_criticality_t ig_config_priority_band(int priority) {
  return priority > 0 ? IG_CRIT_CRITICAL : priority < 0 ? IG_CRIT_SHEDDABLE : IG_CRIT_STANDARD;
}

int ig_config_criticality_priority(ig_criticality_t crit) {
  return crit == IG_CRIT_CRITICAL ? 1 : crit == IG_CRIT_SHEDDABLE ? -1 : 0;
}

/* ---- route matching ---------------------------------------------------------------------------- */

enum { HOST_NONE_MATCH = 0, HOST_ANY = 1, HOST_WILDCARD = 2, HOST_EXACT = 3 };

/* How well route r's hostnames match host: 3 exact, 2 wildcard (*len = characters of the suffix
 * matched, so "*.a.example.com" beats "*.example.com"), 1 the route names no hostnames, 0 no match. */
static int host_rank(const ig_route_cfg_t *r, const char *host, size_t hl, size_t *len) {
  int best = HOST_NONE_MATCH;
  *len = 0;
  if (r->n_hostnames == 0) return HOST_ANY;
  for (size_t i = 0; i < r->n_hostnames; i++) {
    const char *h = r->hostnames[i];
    size_t n = strlen(h);
    if (h[0] == '*') {
      /* "*.example.com" needs at least one label before ".example.com" */
      const char *suffix = h + 1;
      size_t sl = n - 1;
      if (hl > sl && !strncasecmp(host + hl - sl, suffix, sl) && best < HOST_EXACT &&
          (best < HOST_WILDCARD || sl > *len)) {
        best = HOST_WILDCARD;
        *len = sl;
      }
    } else if (hl == n && !strncasecmp(host, h, n)) {
      best = HOST_EXACT;
      *len = n;
    }
  }
  return best;
}

/* Segment-wise prefix match; a trailing '/' on the prefix is ignored. Returns the prefix length
 * that counts for precedence, or -1. */
static long prefix_match(const char *prefix, const char *path, size_t pl) {
  size_t n = strlen(prefix);
  while (n > 1 && prefix[n - 1] == '/')
    n--;
  if (n == 1) return 1; /* "/" matches everything */
  if (pl < n || memcmp(path, prefix, n)) return -1;
  if (pl > n && path[n] != '/') return -1;
  return (long)n;
}

static int headers_match(const ig_match_cfg_t *m, const ig_http_header_t *hdrs, size_t n_hdrs) {
  for (size_t i = 0; i < m->n_headers; i++) {
    const ig_header_match_cfg_t *want = &m->headers[i];
    size_t vl = strlen(want->value);
    int found = 0;
    for (size_t j = 0; j < n_hdrs && !found; j++)
      found = ig_strncaseeq(hdrs[j].name, hdrs[j].name_len, want->name) && hdrs[j].value_len == vl &&
              !memcmp(hdrs[j].value, want->value, vl);
    if (!found) return 0;
  }
  return 1;
}

/* The precedence key of a matching rule, compared field by field, larger wins. */
typedef struct {
  int host_rank;
  size_t host_len;
  int exact;
  long path_len;
  int method;
  size_t headers;
} rank_t;

static int rank_cmp(const rank_t *a, const rank_t *b) {
#define CMP(f)                                                                                               \
  if (a->f != b->f) return a->f > b->f ? 1 : -1;
  CMP(host_rank)
  CMP(host_len)
  CMP(exact)
  CMP(path_len)
  CMP(method)
  CMP(headers)
#undef CMP
  return 0;
}

static int attached(const ig_config_t *cfg, const ig_route_cfg_t *r, size_t li) {
  if (r->n_listeners == 0) return 1;
  const char *name = cfg->listeners[li].name;
  for (size_t i = 0; i < r->n_listeners; i++)
    if (name && !strcmp(r->listeners[i], name)) return 1;
  return 0;
}

/* Scores one match of a route against the request; returns 0 when it does not match. */
static int match_one(const ig_match_cfg_t *m, const char *method, size_t method_len, const char *path,
                     size_t path_len, const ig_http_header_t *hdrs, size_t n_hdrs, rank_t *rk) {
  const char *mpath = m->path ? m->path : "/";
  if (m->path_type == IG_PATH_EXACT) {
    if (strlen(mpath) != path_len || memcmp(mpath, path, path_len)) return 0;
    rk->exact = 1;
    rk->path_len = (long)path_len;
  } else {
    long pl = prefix_match(mpath, path, path_len);
    if (pl < 0) return 0;
    rk->exact = 0;
    rk->path_len = pl;
  }
  if (m->method) {
    if (!method || strlen(m->method) != method_len || memcmp(m->method, method, method_len)) return 0;
    rk->method = 1;
  } else {
    rk->method = 0;
  }
  if (!headers_match(m, hdrs, n_hdrs)) return 0;
  rk->headers = m->n_headers;
  return 1;
}

long ig_route_match(const ig_config_t *cfg, size_t li, const char *host, size_t host_len, const char *method,
                    size_t method_len, const char *path, size_t path_len, const ig_http_header_t *hdrs,
                    size_t n_hdrs) {
  if (!cfg || li >= cfg->n_listeners || cfg->listeners[li].protocol != IG_PROTO_HTTP) return -1;
  if (!host) host_len = 0;
  /* The Host value may still carry a port or a trailing dot; neither takes part in matching. */
  if (host_len && host[0] != '[') {
    const char *colon = memchr(host, ':', host_len);
    if (colon && !memchr(colon + 1, ':', host_len - (size_t)(colon + 1 - host)))
      host_len = (size_t)(colon - host);
  }
  while (host_len && host[host_len - 1] == '.')
    host_len--;
  if (!path) path_len = 0;
  const char *q = path_len ? memchr(path, '?', path_len) : NULL;
  if (q) path_len = (size_t)(q - path);
  if (path_len == 0) {
    path = "/";
    path_len = 1;
  }
  static const ig_match_cfg_t match_all = {IG_PATH_PREFIX, "/", NULL, NULL, 0};
  long best = -1;
  rank_t best_rank = {0};
  for (size_t i = 0; i < cfg->n_routes; i++) {
    const ig_route_cfg_t *r = &cfg->routes[i];
    if (!attached(cfg, r, li)) continue;
    rank_t rk = {0};
    rk.host_rank = host_rank(r, host, host_len, &rk.host_len);
    if (rk.host_rank == HOST_NONE_MATCH) continue;
    size_t nm = r->n_matches ? r->n_matches : 1;
    for (size_t j = 0; j < nm; j++) {
      const ig_match_cfg_t *m = r->n_matches ? &r->matches[j] : &match_all;
      if (!match_one(m, method, method_len, path, path_len, hdrs, n_hdrs, &rk)) continue;
      /* strictly better only: ties keep the route defined first */
      if (best < 0 || rank_cmp(&rk, &best_rank) > 0) {
        best = (long)i;
        best_rank = rk;
      }
    }
  }
  return best;
}

const char *ig_config_pick_target(const ig_model_cfg_t *m, ig_rng_t *rng) {
  if (m->n_targets == 0) return m->model_name;
  uint64_t total = 0;
  for (size_t i = 0; i < m->n_targets; i++)
    total += m->targets[i].weight;
  if (total == 0) return m->targets[ig_rng_next(rng) % m->n_targets].name;
  uint64_t x = ig_rng_next(rng) % total;
  for (size_t i = 0; i < m->n_targets; i++) {
    if (x < m->targets[i].weight) return m->targets[i].name;
    x -= m->targets[i].weight;
  }
  return m->targets[m->n_targets - 1].name;
}

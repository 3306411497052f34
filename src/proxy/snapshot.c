/* Runtime snapshots: a loaded config plus per-backend endpoint lists, refcounted so that a request
 * keeps the snapshot it started with across reloads. Endpoints live in a registry keyed by host:port
 * and are shared between snapshots, so keep-alive pools and in-flight counts survive a reload. */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

/* Resolves host:port into ep->addr: numeric first, then the system resolver (load time only). */
static int endpoint_resolve(endpoint_t *ep) {
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ep->addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ep->addr;
  if (uv_ip4_addr(ep->host, ep->port, a4) == 0) return 0;
  if (uv_ip6_addr(ep->host, ep->port, a6) == 0) return 0;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char port[16];
  snprintf(port, sizeof port, "%d", ep->port);
  if (getaddrinfo(ep->host, port, &hints, &res) != 0 || !res) return IG_ENOENT;
  memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

/* Returns the registry endpoint for host:port reached with TLS settings tls_key (NULL: plain),
 * creating it; takes a snapshot reference. */
static endpoint_t *endpoint_get(const char *host, int port, const char *tls_key) {
  for (link_t *l = gw.endpoints.next; l != &gw.endpoints; l = l->next) {
    endpoint_t *ep = container_of(l, endpoint_t, reg);
    if (ep->port == port && strcmp(ep->host, host) == 0 && !ep->tls_key == !tls_key &&
        (!tls_key || strcmp(ep->tls_key, tls_key) == 0)) {
      ep->snap_refs++;
      return ep;
    }
  }
  endpoint_t *ep = IG_NEW(endpoint_t);
  ep->host = ig_strdup(host);
  ep->port = port;
  ep->tls_key = tls_key ? ig_strdup(tls_key) : NULL;
  if (strchr(host, ':'))
    snprintf(ep->name, sizeof ep->name, "[%s]:%d", host, port);
  else
    snprintf(ep->name, sizeof ep->name, "%s:%d", host, port);
  ep->resolved = endpoint_resolve(ep) == 0;
  list_init(&ep->idle);
  ep->snap_refs = 1;
  list_insert_tail(&gw.endpoints, &ep->reg);
  return ep;
}

/* Frees an endpoint once neither snapshots nor connections point at it. */
void endpoint_maybe_free(endpoint_t *ep) {
  if (ep->snap_refs || ep->conn_refs) return;
  list_remove(&ep->reg);
  breaker_forget(&ep->brk);
  pod_free(ep->pod);
  free(ep->tls_key);
  free(ep->host);
  free(ep);
}

/* Closes every idle keep-alive connection of ep. */
void endpoint_close_idle(endpoint_t *ep) {
  while (!list_empty(&ep->idle)) {
    upconn_t *up = container_of(ep->idle.next, upconn_t, link);
    upconn_close(up);
  }
}

void endpoints_close_all_idle(void) {
  for (link_t *l = gw.endpoints.next; l != &gw.endpoints;) {
    endpoint_t *ep = container_of(l, endpoint_t, reg);
    l = l->next;
    ep->conn_refs++; /* keep ep alive while its connections close */
    endpoint_close_idle(ep);
    if (gw.stopping) scrape_stop(ep);
    ep->conn_refs--;
  }
}

static void endpoint_put(endpoint_t *ep) {
  if (--ep->snap_refs == 0) {
    ep->conn_refs++;
    endpoint_close_idle(ep);
    ep->conn_refs--;
    endpoint_maybe_free(ep);
  }
}

/* Sets be->tls_ctx for be->cfg->tls: the current snapshot's context of a backend with the same
 * settings and unchanged files (no CA or key parse per rebuild), else a new one. Returns 0, or
 * IG_ECONFIG (logged) when the context cannot be built. */
static int backend_tls_ctx(backend_rt_t *be) {
  be->tls_id = tls_client_ctx_id(be->cfg->tls);
  const snapshot_t *prev = gw.snap;
  for (size_t i = 0; prev && i < prev->n_backends; i++) {
    const backend_rt_t *o = &prev->backends[i];
    if (!o->tls_ctx || !o->tls_id || strcmp(o->tls_id, be->tls_id) != 0) continue;
    if ((be->tls_ctx = tls_client_ctx_ref(o->tls_ctx))) return 0;
  }
  be->tls_ctx = tls_client_ctx_new(be->cfg->tls, be->cfg->name);
  return be->tls_ctx ? 0 : IG_ECONFIG;
}

int snapshot_new(ig_config_t *cfg, snapshot_t **out) {
  snapshot_t *s = IG_NEW(snapshot_t);
  s->refs = 1;
  s->gen = ++gw.gen;
  s->cfg = cfg;
  s->backends = ig_calloc(cfg->n_backends ? cfg->n_backends : 1, sizeof(backend_rt_t));
  s->n_backends = cfg->n_backends;
  int rc = 0;
  for (size_t i = 0; i < cfg->n_backends; i++) {
    backend_rt_t *be = &s->backends[i];
    be->cfg = &cfg->backends[i];
    be->index = i;
    be->lb = lb_for_policy(be->cfg->policy);
    be->n_eps = be->cfg->n_endpoints;
    be->eps = ig_calloc(be->n_eps ? be->n_eps : 1, sizeof(endpoint_t *));
    char *tls_key = NULL;
    if (be->cfg->tls) {
      tls_key = tls_client_key(be->cfg->tls);
      if (backend_tls_ctx(be) != 0) rc = IG_ECONFIG;
    }
    for (size_t j = 0; j < be->n_eps; j++) {
      be->eps[j] = endpoint_get(be->cfg->endpoints[j].host, be->cfg->endpoints[j].port, tls_key);
      if (!be->eps[j]->resolved) {
        ig_error("backend %s: cannot resolve endpoint %s", be->cfg->name, be->eps[j]->name);
        rc = IG_ECONFIG;
      }
    }
    free(tls_key);
    for (size_t m = 0; m < cfg->n_models; m++)
      if (cfg->models[m].pool_index == i) be->has_models = 1;
    if (be->cfg->policy == IG_LB_INFERENCE) {
      for (size_t j = 0; j < be->n_eps; j++) {
        if (!be->eps[j]->resolved) continue;
        be->eps[j]->scrape_refs++;
        scrape_start(be->eps[j], be->cfg);
      }
      be->pool = pool_new(be);
    }
  }
  for (size_t i = 0; i < cfg->n_routes; i++) {
    if (!cfg->routes[i].api_keys_file) continue;
    if (!s->auth) s->auth = ig_calloc(cfg->n_routes, sizeof *s->auth);
    if (auth_keys_load(cfg->routes[i].api_keys_file, &s->auth[i]) != 0) rc = IG_ECONFIG;
  }
  if (rc) {
    for (size_t i = 0; s->auth && i < cfg->n_routes; i++)
      auth_keys_free(&s->auth[i]);
    free(s->auth);
    s->auth = NULL;
    s->cfg = NULL; /* the caller keeps ownership on failure */
    snapshot_release(s);
    *out = NULL;
    return rc;
  }
  *out = s;
  return 0;
}

void snapshot_release(snapshot_t *s) {
  if (!s || --s->refs) return;
  for (size_t i = 0; i < s->n_backends; i++) {
    backend_rt_t *be = &s->backends[i];
    if (be->pool) pool_free(be->pool);
    for (size_t j = 0; j < be->n_eps; j++) {
      endpoint_t *ep = be->eps[j];
      if (!ep) continue;
      if (be->cfg && be->cfg->policy == IG_LB_INFERENCE && ep->resolved && ep->scrape_refs &&
          --ep->scrape_refs == 0)
        scrape_stop(ep);
      endpoint_put(ep);
    }
    free(be->eps);
    tls_client_ctx_free(be->tls_ctx); /* connections hold their own reference */
    free(be->tls_id);
  }
  free(s->backends);
  if (s->auth) {
    size_t n = s->cfg ? s->cfg->n_routes : 0;
    for (size_t i = 0; i < n; i++)
      auth_keys_free(&s->auth[i]);
    free(s->auth);
  }
  if (s->cfg) ig_config_free(s->cfg);
  free(s);
}

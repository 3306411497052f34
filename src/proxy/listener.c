/* Listeners: HTTP, TCP (L4) and admin sockets, reconciled against each configuration snapshot so that
 * a reload opens new addresses, closes removed ones and keeps the sockets that did not change. */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

static void on_listener_close(uv_handle_t *h) {
  listener_unref(h->data);
}

void listener_unref(listener_t *l) {
  if (--l->refs) return;
  tls_srv_release(l->tls);
  free(l->name);
  free(l);
}

/* Stops listening on l. Its client connections that sit idle between requests are closed; the others
 * finish the request under way and then close (request_finish), and a request that starts on one later
 * closes it without an answer (the listener's routes are gone). */
static void listener_close(listener_t *l) {
  if (l->closed) return;
  l->closed = 1;
  l->li = -1;
  list_remove(&l->link);
  uv_close((uv_handle_t *)&l->tcp, on_listener_close);
  if (l->kind != LST_TCP) clients_close_idle_of(l);
}

/* Enforces limits.max_connections_per_ip on the client just accepted on l (the tail of gw.clients):
 * counts the open HTTP client connections from the same peer address and closes the new one, with a
 * rate-limited log line and a counter, when that is over the cap. A linear scan: accepts are rare next
 * to requests, and the connection total is bounded by limits.max_connections. */
static void enforce_per_ip(listener_t *l, const link_t *tail_before) {
  unsigned cap = gw.snap->cfg->max_connections_per_ip;
  if (cap == 0 || list_empty(&gw.clients) || gw.clients.prev == tail_before) return; /* none added */
  client_t *c = container_of(gw.clients.prev, client_t, link);
  if (c->lst != l || c->closing || strcmp(c->peer, "-") == 0) return;
  unsigned n = 0;
  for (link_t *p = gw.clients.next; p != &gw.clients; p = p->next) {
    const client_t *o = container_of(p, client_t, link);
    if (!o->closing && strcmp(o->peer, c->peer) == 0 && ++n > cap) break;
  }
  if (n <= cap) return;
  static uint64_t last_log_ms;
  static uint64_t suppressed;
  uint64_t now = ig_now_ms();
  if (now - last_log_ms >= 1000) {
    ig_warn("listener %s: %s has %u connections open (limits.max_connections_per_ip), closing the new one"
            " (%llu more since the last line)",
            l->name, c->peer, cap, (unsigned long long)suppressed);
    last_log_ms = now;
    suppressed = 0;
  } else {
    suppressed++;
  }
  stats_inc("infergate_connections_rejected_total", 1);
  client_abort(c);
}

static void on_connection(uv_stream_t *server, int status) {
  listener_t *l = server->data;
  if (status < 0) {
    ig_warn("listener %s: accept failed: %s", l->name, uv_strerror(status));
    return;
  }
  if (l->closed) return;
  if (l->kind == LST_TCP)
    tcp_accept(l);
  else {
    const link_t *tail = gw.clients.prev;
    client_accept(l);
    if (l->kind == LST_HTTP) enforce_per_ip(l, tail);
  }
}

static int resolve_bind(const char *host, int port, struct sockaddr_storage *ss) {
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  if (getaddrinfo(host, p, &hints, &res) != 0 || !res) return UV_EINVAL;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

/* Creates, binds and starts a listener. Returns NULL (logged) when the address cannot be used. */
static listener_t *listener_open(int kind, const char *name, const char *host, int port) {
  struct sockaddr_storage ss;
  int rc = resolve_bind(host, port, &ss);
  if (rc) {
    ig_error("listener %s: cannot resolve %s", name, host);
    return NULL;
  }
  listener_t *l = IG_NEW(listener_t);
  l->kind = kind;
  l->name = ig_strdup(name);
  snprintf(l->host, sizeof l->host, "%s", host);
  l->port = port;
  l->refs = 1;
  l->li = -1;
  uv_tcp_init(gw.loop, &l->tcp);
  l->tcp.data = l;
  rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
  if (rc) {
    ig_error("listener %s: cannot listen on %s:%d: %s", name, host, port, uv_strerror(rc));
    l->closed = 1;
    uv_close((uv_handle_t *)&l->tcp, on_listener_close);
    return NULL;
  }
  ig_info("listening on %s:%d (%s)", host, port,
          kind == LST_ADMIN ? "admin"
          : kind == LST_TCP ? "tcp"
                            : "http");
  return l;
}

static listener_t *find_open(int kind, const char *host, int port) {
  for (link_t *p = gw.listeners.next; p != &gw.listeners; p = p->next) {
    listener_t *l = container_of(p, listener_t, link);
    if (l->kind == kind && l->port == port && strcmp(l->host, host) == 0) return l;
  }
  return NULL;
}

int listeners_reconcile(const ig_config_t *cfg, const char *admin_override) {
  size_t want = cfg->n_listeners + 1;
  listener_t **keep = ig_calloc(want, sizeof *keep); /* listener for each wanted entry */
  int *fresh = ig_calloc(want, sizeof *fresh);
  tls_srv_t **tls = ig_calloc(want, sizeof *tls); /* new certificates of each TLS listener */
  int rc = 0;
  /* certificates first: a file that went bad since the check keeps the running configuration */
  for (size_t i = 0; i < cfg->n_listeners && rc == 0; i++) {
    const ig_listener_cfg_t *lc = &cfg->listeners[i];
    if (lc->protocol != IG_PROTO_HTTP || !lc->tls) continue;
    const listener_t *prev = find_open(LST_HTTP, lc->host, lc->port); /* unchanged certificates stay */
    rc = tls_srv_new(lc->tls, lc->name, prev ? prev->tls : NULL, &tls[i]);
  }
  char ahost[256];
  int aport = 0;
  const char *admin_host = NULL;
  if (admin_override) {
    if (ig_parse_hostport(admin_override, ahost, sizeof ahost, &aport) == 0) admin_host = ahost;
  } else if (cfg->admin_host) {
    admin_host = cfg->admin_host;
    aport = cfg->admin_port;
  }
  for (size_t i = 0; i < want && rc == 0; i++) {
    int kind;
    const char *host, *name;
    int port;
    if (i < cfg->n_listeners) {
      const ig_listener_cfg_t *lc = &cfg->listeners[i];
      kind = lc->protocol == IG_PROTO_TCP ? LST_TCP : LST_HTTP;
      host = lc->host;
      port = lc->port;
      name = lc->name;
    } else {
      if (!admin_host) continue;
      kind = LST_ADMIN;
      host = admin_host;
      port = aport;
      name = "admin";
    }
    listener_t *l = find_open(kind, host, port);
    for (size_t j = 0; l && j < i; j++)
      if (keep[j] == l) l = NULL; /* the same address twice: the config checker reports it */
    if (!l) {
      l = listener_open(kind, name, host, port);
      if (!l) {
        rc = IG_EIO;
        break;
      }
      fresh[i] = 1;
    }
    keep[i] = l;
  }
  if (rc) {
    for (size_t i = 0; i < want; i++)
      if (fresh[i] && keep[i]) {
        keep[i]->closed = 1;
        uv_close((uv_handle_t *)&keep[i]->tcp, on_listener_close);
      }
    for (size_t i = 0; i < want; i++)
      tls_srv_release(tls[i]);
    free(keep);
    free(fresh);
    free(tls);
    return rc;
  }
  /* close what is no longer wanted, then adopt the new set */
  for (link_t *p = gw.listeners.next; p != &gw.listeners;) {
    listener_t *l = container_of(p, listener_t, link);
    p = p->next;
    int wanted = 0;
    for (size_t i = 0; i < want; i++)
      if (keep[i] == l) wanted = 1;
    if (!wanted) {
      ig_info("closing listener %s (%s:%d)", l->name, l->host, l->port);
      listener_close(l);
    }
  }
  for (size_t i = 0; i < want; i++) {
    listener_t *l = keep[i];
    if (!l) continue;
    if (fresh[i]) list_insert_tail(&gw.listeners, &l->link);
    l->li = i < cfg->n_listeners ? (long)i : -1;
    tls_srv_release(l->tls); /* connections keep the certificates they started with */
    l->tls = tls[i];
    tls[i] = NULL;
    if (i < cfg->n_listeners && strcmp(l->name, cfg->listeners[i].name) != 0) {
      free(l->name);
      l->name = ig_strdup(cfg->listeners[i].name);
    }
  }
  free(keep);
  free(fresh);
  free(tls);
  return 0;
}

void listeners_close_all(int keep_admin) {
  for (link_t *p = gw.listeners.next; p != &gw.listeners;) {
    listener_t *l = container_of(p, listener_t, link);
    p = p->next;
    if (keep_admin && l->kind == LST_ADMIN) continue;
    listener_close(l);
  }
}

/* Admin listener (/healthz, /readyz, /metrics, /debug/pools), request counters and the access log.
 * Counters are a small open-addressing table keyed by the full Prometheus series text; it is the seam
 * where the shared metrics registry (include/infergate/metrics.h) will plug in. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy.h"

typedef struct {
  char *key;
  size_t key_len;
  uint64_t hash;
  uint64_t val;
} stat_t;

static stat_t *tab;
static size_t tab_cap, tab_n;

static void tab_grow(void) {
  size_t ncap = tab_cap ? tab_cap * 2 : 64;
  stat_t *nt = ig_calloc(ncap, sizeof *nt);
  for (size_t i = 0; i < tab_cap; i++) {
    if (!tab[i].key) continue;
    size_t j = tab[i].hash & (ncap - 1);
    while (nt[j].key)
      j = (j + 1) & (ncap - 1);
    nt[j] = tab[i];
  }
  free(tab);
  tab = nt;
  tab_cap = ncap;
}

/* Adds n to the counter named by a full series ("name{label=\"v\"}"), creating it at 0. */
void stats_inc(const char *series, uint64_t n) {
  size_t len = strlen(series);
  uint64_t h = ig_hash64(series, len, IG_HASH_SEED);
  if ((tab_n + 1) * 2 > tab_cap) tab_grow();
  size_t j = h & (tab_cap - 1);
  while (tab[j].key) {
    if (tab[j].hash == h && tab[j].key_len == len && memcmp(tab[j].key, series, len) == 0) {
      tab[j].val += n;
      return;
    }
    j = (j + 1) & (tab_cap - 1);
  }
  tab[j].key = ig_strndup(series, len);
  tab[j].key_len = len;
  tab[j].hash = h;
  tab[j].val = n;
  tab_n++;
}

void stats_free(void) {
  for (size_t i = 0; i < tab_cap; i++)
    free(tab[i].key);
  free(tab);
  tab = NULL;
  tab_cap = tab_n = 0;
  stats_registry_free();
  pools_free_globals();
}

static int cmp_stat(const void *a, const void *b) {
  return strcmp((*(const stat_t *const *)a)->key, (*(const stat_t *const *)b)->key);
}

/* Length of the metric name part of a series. */
static size_t name_len(const char *k) {
  const char *b = strchr(k, '{');
  return b ? (size_t)(b - k) : strlen(k);
}

/* Renders every counter and the live gauges in the Prometheus text format. */
static void render_metrics(ig_buf_t *out) {
  stat_t **v = ig_malloc((tab_n ? tab_n : 1) * sizeof *v);
  size_t n = 0;
  for (size_t i = 0; i < tab_cap; i++)
    if (tab[i].key) v[n++] = &tab[i];
  qsort(v, n, sizeof *v, cmp_stat);
  const char *prev = NULL;
  size_t prev_len = 0;
  for (size_t i = 0; i < n; i++) {
    size_t nl = name_len(v[i]->key);
    if (!prev || nl != prev_len || memcmp(prev, v[i]->key, nl) != 0) {
      ig_buf_printf(out, "# TYPE %.*s counter\n", (int)nl, v[i]->key);
      prev = v[i]->key;
      prev_len = nl;
    }
    ig_buf_printf(out, "%s %llu\n", v[i]->key, (unsigned long long)v[i]->val);
  }
  free(v);
  ig_buf_printf(out, "# TYPE infergate_ready gauge\ninfergate_ready %d\n", gw.ready && !gw.draining);
  ig_buf_printf(out, "# TYPE infergate_draining gauge\ninfergate_draining %d\n", gw.draining);
  ig_buf_printf(out, "# TYPE infergate_client_connections gauge\ninfergate_client_connections %zu\n",
                gw.n_clients);
  ig_buf_printf(out, "# TYPE infergate_tcp_connections gauge\ninfergate_tcp_connections %zu\n", gw.n_tcp);
  ig_buf_printf(out, "# TYPE infergate_requests_in_flight gauge\ninfergate_requests_in_flight %llu\n",
                (unsigned long long)gw.inflight);
  ig_buf_printf(out, "# TYPE infergate_config_generation gauge\ninfergate_config_generation %llu\n",
                (unsigned long long)gw.snap->gen);
  ig_buf_puts(out, "# TYPE infergate_endpoint_in_flight gauge\n");
  for (link_t *l = gw.endpoints.next; l != &gw.endpoints; l = l->next) {
    endpoint_t *ep = container_of(l, endpoint_t, reg);
    ig_buf_printf(out, "infergate_endpoint_in_flight{endpoint=\"%s\"} %u\n", ep->name, ep->inflight);
  }
  ig_buf_puts(out, "# TYPE infergate_endpoint_idle_connections gauge\n");
  for (link_t *l = gw.endpoints.next; l != &gw.endpoints; l = l->next) {
    endpoint_t *ep = container_of(l, endpoint_t, reg);
    ig_buf_printf(out, "infergate_endpoint_idle_connections{endpoint=\"%s\"} %zu\n", ep->name, ep->n_idle);
  }
  stats_render(out);
}

/* Answers a request on the admin listener. */
void admin_handle(client_t *c, const ig_http_request_t *r) {
  const char *p = r->target;
  size_t pl = r->path_len;
  int get = (r->method_len == 3 && memcmp(r->method, "GET", 3) == 0) ||
            (r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0);
  if (get && pl == 8 && memcmp(p, "/healthz", 8) == 0) {
    client_local_response(c, 200, "text/plain", "ok\n", 3);
  } else if (get && pl == 7 && memcmp(p, "/readyz", 7) == 0) {
    if (gw.ready && !gw.draining)
      client_local_response(c, 200, "text/plain", "ready\n", 6);
    else
      client_local_response(c, 503, "text/plain", gw.draining ? "draining\n" : "starting\n",
                            gw.draining ? 9 : 9);
  } else if (get && pl == 8 && memcmp(p, "/metrics", 8) == 0) {
    ig_buf_t out;
    ig_buf_init(&out);
    render_metrics(&out);
    client_local_response(c, 200, "text/plain; version=0.0.4", out.data, out.len);
    ig_buf_free(&out);
  } else if (get && pl == 12 && memcmp(p, "/debug/pools", 12) == 0) {
    ig_buf_t out;
    ig_buf_init(&out);
    pools_debug_json(&out);
    client_local_response(c, 200, "application/json", out.data, out.len);
    ig_buf_free(&out);
  } else {
    client_local_response(c, 404, "text/plain", "not found\n", 10);
  }
}

/* ---------------------------------------------------------------- access log */

int access_log_open(const char *path) {
  access_log_close();
  if (!path) return 0;
  if (strcmp(path, "-") == 0) {
    gw.access_log = stdout;
  } else {
    gw.access_log = fopen(path, "a");
    if (!gw.access_log) {
      ig_error("cannot open access log %s", path);
      return IG_EIO;
    }
  }
  setvbuf(gw.access_log, NULL, _IOLBF, 0);
  return 0;
}

void access_log_close(void) {
  if (gw.access_log && gw.access_log != stdout) fclose(gw.access_log);
  if (gw.access_log == stdout) fflush(stdout);
  gw.access_log = NULL;
}

/* One line per request: time, route, model, target, endpoint, status, bytes, duration, TTFT, then
 * method, path and request id; "-" when a field does not apply. */
void access_log_write(const client_t *c, const char *endpoint) {
  if (!gw.access_log) return;
  const req_t *q = &c->req;
  uint64_t now = ig_now_us();
  uint64_t wall = ig_wall_us();
  time_t sec = (time_t)(wall / 1000000u);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char ts[40];
  size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + tl, sizeof ts - tl, ".%03uZ", (unsigned)((wall / 1000u) % 1000u));
  const char *route = "-";
  if (q->snap && q->route >= 0) route = q->snap->cfg->routes[q->route].name;
  double dur = q->t_start_us ? (double)(now - q->t_start_us) / 1000.0 : 0.0;
  char ttft[32] = "-";
  if (q->t_first_us && q->t_start_us)
    snprintf(ttft, sizeof ttft, "%.3f", (double)(q->t_first_us - q->t_start_us) / 1000.0);
  fprintf(gw.access_log,
          "%s route=%s model=%s target=%s endpoint=%s status=%d bytes=%llu duration_ms=%.3f ttft_ms=%s "
          "method=%s path=%s client=%s request_id=%s\n",
          ts, route, q->model[0] ? q->model : "-", q->target[0] ? q->target : "-", endpoint, q->status,
          (unsigned long long)q->bytes_out, dur, ttft, q->method[0] ? q->method : "-",
          q->path[0] ? q->path : "-", c->peer, q->reqid[0] ? q->reqid : "-");
}

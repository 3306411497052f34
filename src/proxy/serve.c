/* `infergate serve`: command line, quick-start config, the event loop, SIGHUP reload (refcounted
 * snapshots, listeners reconciled) and SIGTERM graceful drain. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infergate/cmd.h"
#include "proxy.h"

gw_t gw;

static uv_loop_t loop;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t drain_timer;
static char *access_log_cfg; /* the config's access_log currently open (when not overridden) */

static void usage(FILE *f) {
  fprintf(f, "usage: infergate serve -c FILE [--log-level LEVEL] [--access-log PATH|-]\n"
             "       infergate serve --listen HOST:PORT [--admin HOST:PORT]\n"
             "                       (--backend HOST:PORT[,HOST:PORT...] [--policy "
             "round-robin|random|least-request]\n"
             "                        | --pool HOST:PORT[,HOST:PORT...] [--model NAME]...)\n"
             "                       [--log-level debug|info|warn|error] [--access-log PATH|-]\n"
             "\n"
             "The quick start (no -c) proxies every path to the backend or pool. SIGHUP reloads the file,\n"
             "SIGTERM drains (stop accepting, finish in-flight requests) and exits 0.\n");
}

/* Appends s as a double-quoted YAML scalar. */
static void yaml_quote(ig_buf_t *b, const char *s, size_t n) {
  ig_buf_puts(b, "\"");
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\') ig_buf_puts(b, "\\");
    ig_buf_append(b, &s[i], 1);
  }
  ig_buf_puts(b, "\"");
}

/* Appends a YAML flow list of the comma-separated items of csv. */
static void yaml_list(ig_buf_t *b, const char *csv) {
  ig_buf_puts(b, "[");
  const char *p = csv;
  int first = 1;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n) {
      if (!first) ig_buf_puts(b, ", ");
      yaml_quote(b, p, n);
      first = 0;
    }
    p += n;
    if (*p == ',') p++;
  }
  ig_buf_puts(b, "]");
}

/* The quick-start configuration: one listener, optional admin, one backend (or pool) and a catch-all
 * route, as native YAML so that it goes through the same validation as a file. */
static void quick_yaml(ig_buf_t *y, const char *listen, const char *admin, const char *backend,
                       const char *pool, const char *policy, char **models, size_t n_models) {
  ig_buf_puts(y, "listeners:\n  - name: main\n    address: ");
  yaml_quote(y, listen, strlen(listen));
  ig_buf_puts(y, "\n");
  if (admin) {
    ig_buf_puts(y, "admin:\n  address: ");
    yaml_quote(y, admin, strlen(admin));
    ig_buf_puts(y, "\n");
  }
  if (pool) {
    ig_buf_puts(y, "pools:\n  - name: default\n    endpoints: ");
    yaml_list(y, pool);
  } else {
    ig_buf_puts(y, "backends:\n  - name: default\n    endpoints: ");
    yaml_list(y, backend);
    if (policy) {
      ig_buf_puts(y, "\n    policy: ");
      yaml_quote(y, policy, strlen(policy));
    }
  }
  ig_buf_puts(y, "\n");
  if (n_models) {
    ig_buf_puts(y, "models:\n");
    for (size_t i = 0; i < n_models; i++) {
      ig_buf_puts(y, "  - name: ");
      yaml_quote(y, models[i], strlen(models[i]));
      ig_buf_puts(y, "\n    pool: default\n");
    }
  }
  ig_buf_puts(y, "routes:\n  - name: default\n    backend: default\n");
}

static void ensure_hdrs(const ig_config_t *cfg) {
  size_t want = cfg->max_headers ? cfg->max_headers : 100;
  if (want <= gw.n_hdrs) return;
  gw.hdrs = ig_realloc(gw.hdrs, want * sizeof *gw.hdrs);
  gw.n_hdrs = want;
}

/* Opens the access log named by the command line, else by the config (reopened when it changes). */
static void apply_access_log(const ig_config_t *cfg) {
  if (gw.access_log_path) {
    if (!gw.access_log) access_log_open(gw.access_log_path);
    return;
  }
  const char *want = cfg->access_log;
  if ((!want && !access_log_cfg) || (want && access_log_cfg && strcmp(want, access_log_cfg) == 0)) return;
  free(access_log_cfg);
  access_log_cfg = want ? ig_strdup(want) : NULL;
  if (want)
    access_log_open(want);
  else
    access_log_close();
}

/* ---------------------------------------------------------------- stop, drain, reload */

static void on_signal_close(uv_handle_t *h) {
  (void)h;
}

/* Closes everything so that the loop ends (after a drain, or when forced). */
static void final_stop(void) {
  if (gw.stopping) return;
  gw.stopping = 1;
  listeners_close_all(0);
  clients_close_all(1);
  tcp_close_all();
  endpoints_close_all_idle();
  uv_close((uv_handle_t *)&sig_term, on_signal_close);
  uv_close((uv_handle_t *)&sig_int, on_signal_close);
  uv_close((uv_handle_t *)&sig_hup, on_signal_close);
  uv_close((uv_handle_t *)&drain_timer, on_signal_close);
}

void gw_check_drained(void) {
  if (!gw.draining || gw.stopping) return;
  if (gw.n_clients || gw.n_tcp) return;
  ig_info("drained, exiting");
  final_stop();
}

static void on_drain_timeout(uv_timer_t *t) {
  (void)t;
  ig_warn("drain timeout: closing %zu connection(s) still open", gw.n_clients + gw.n_tcp);
  final_stop();
}

/* Graceful drain: stop accepting, report not ready, close idle connections, let in-flight requests
 * finish (bounded by timeouts.drain), then stop. */
static void drain_start(void) {
  unsigned ms = gw.snap->cfg->drain_timeout_ms;
  ig_info("draining: %zu connection(s), %llu request(s) in flight, timeout %u ms", gw.n_clients + gw.n_tcp,
          (unsigned long long)gw.inflight, ms);
  gw.draining = 1;
  gw.ready = 0;
  listeners_close_all(1);
  clients_drain();
  endpoints_close_all_idle();
  uv_timer_start(&drain_timer, on_drain_timeout, ms, 0);
  gw_check_drained();
}

/* SIGHUP: load the file again; on any error keep the running config. New requests get the new
 * snapshot; requests in flight keep theirs until they end. */
static void reload(void) {
  if (!gw.config_path) {
    ig_warn("SIGHUP: no configuration file to reload (quick start)");
    return;
  }
  if (gw.draining) return;
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  if (ig_config_load(gw.config_path, &cfg, &errs) != 0) {
    for (size_t i = 0; i < errs.n; i++) {
      const ig_config_error_t *e = &errs.v[i];
      ig_error("%s:%d:%d: %s", e->file, e->line, e->column, e->message);
    }
    ig_error("reload of %s failed (%zu error(s)): keeping the running configuration", gw.config_path, errs.n);
    ig_config_errors_free(&errs);
    stats_inc("infergate_config_reloads_total{result=\"failure\"}", 1);
    return;
  }
  ig_config_errors_free(&errs);
  snapshot_t *s = NULL;
  if (snapshot_new(cfg, &s) != 0) {
    ig_config_free(cfg);
    ig_error("reload of %s failed: keeping the running configuration", gw.config_path);
    stats_inc("infergate_config_reloads_total{result=\"failure\"}", 1);
    return;
  }
  if (listeners_reconcile(cfg, gw.admin_override) != 0) {
    snapshot_release(s);
    ig_error("reload of %s failed: cannot open the new listeners; keeping the running configuration",
             gw.config_path);
    stats_inc("infergate_config_reloads_total{result=\"failure\"}", 1);
    return;
  }
  ensure_hdrs(cfg);
  snapshot_t *old = gw.snap;
  gw.snap = s;
  snapshot_release(old);
  apply_access_log(cfg);
  stats_inc("infergate_config_reloads_total{result=\"success\"}", 1);
  ig_info("configuration reloaded from %s (generation %llu)", gw.config_path, (unsigned long long)s->gen);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  if (signum == SIGHUP) {
    reload();
    return;
  }
  if (!gw.draining)
    drain_start();
  else
    final_stop(); /* a second signal: stop now */
}

/* ---------------------------------------------------------------- entry point */

/* Takes the value of option a (from "--opt=value" or the next argument). */
static const char *opt_value(int argc, char **argv, int *i, const char *a) {
  const char *eq = strchr(a, '=');
  if (a[0] == '-' && a[1] == '-' && eq) return eq + 1;
  if (*i + 1 >= argc) {
    fprintf(stderr, "infergate serve: %s needs a value\n", a);
    return NULL;
  }
  return argv[++*i];
}

static int opt_is(const char *a, const char *name) {
  size_t n = strlen(name);
  return strncmp(a, name, n) == 0 && (a[n] == '\0' || (a[n] == '=' && name[1] == '-'));
}

int ig_cmd_serve(int argc, char **argv) {
  const char *config = NULL, *listen = NULL, *admin = NULL, *backend = NULL, *pool = NULL, *policy = NULL;
  const char *level = NULL, *alog = NULL;
  char **models = ig_calloc((size_t)argc + 1, sizeof *models);
  size_t n_models = 0;
  int rc = 2;
  ig_buf_t yaml;
  ig_buf_init(&yaml);
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], **dst = NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      rc = 0;
      goto out;
    }
    if (!strcmp(a, "-c") || opt_is(a, "--config"))
      dst = &config;
    else if (opt_is(a, "--listen"))
      dst = &listen;
    else if (opt_is(a, "--admin"))
      dst = &admin;
    else if (opt_is(a, "--backend"))
      dst = &backend;
    else if (opt_is(a, "--pool"))
      dst = &pool;
    else if (opt_is(a, "--policy"))
      dst = &policy;
    else if (opt_is(a, "--log-level"))
      dst = &level;
    else if (opt_is(a, "--access-log"))
      dst = &alog;
    else if (opt_is(a, "--model")) {
      const char *v = opt_value(argc, argv, &i, a);
      if (!v) goto out;
      models[n_models++] = (char *)v;
      continue;
    } else {
      fprintf(stderr, "infergate serve: unknown option '%s'\n", a);
      usage(stderr);
      goto out;
    }
    if (!(*dst = opt_value(argc, argv, &i, a))) goto out;
  }
  if (level) {
    ig_log_level_t lv;
    if (ig_log_level_parse(level, &lv) != 0) {
      fprintf(stderr, "infergate serve: unknown log level '%s' (debug, info, warn, error)\n", level);
      goto out;
    }
    ig_log_set_level(lv);
  }
  if (policy && (!lb_find(policy) || !strcmp(policy, "inference"))) {
    fprintf(stderr, "infergate serve: unknown policy '%s' (round-robin, random, least-request)\n", policy);
    goto out;
  }
  if (config) {
    if (listen || backend || pool || n_models || policy) {
      fprintf(stderr,
              "infergate serve: -c cannot be combined with --listen/--backend/--pool/--model/--policy\n");
      goto out;
    }
    if (ig_config_load(config, &cfg, &errs) != 0) {
      ig_config_errors_print(&errs, stderr);
      fprintf(stderr, "infergate serve: %s: %zu error(s)\n", config, errs.n);
      rc = 1;
      goto out;
    }
  } else {
    if (!listen || (!backend && !pool) || (backend && pool)) {
      fprintf(stderr, "infergate serve: need -c FILE, or --listen with one of --backend / --pool\n");
      usage(stderr);
      goto out;
    }
    if (n_models && !pool) {
      fprintf(stderr, "infergate serve: --model needs --pool\n");
      goto out;
    }
    quick_yaml(&yaml, listen, admin, backend, pool, policy, models, n_models);
    if (ig_config_load_string("command line", yaml.data, yaml.len, &cfg, &errs) != 0) {
      ig_config_errors_print(&errs, stderr);
      rc = 2;
      goto out;
    }
  }

  signal(SIGPIPE, SIG_IGN);
  memset(&gw, 0, sizeof gw);
  uv_loop_init(&loop);
  gw.loop = &loop;
  list_init(&gw.listeners);
  list_init(&gw.endpoints);
  list_init(&gw.clients);
  list_init(&gw.admin_clients);
  list_init(&gw.tcpconns);
  const char *seed = getenv("INFERGATE_SEED");
  ig_rng_seed(&gw.rng, seed ? strtoull(seed, NULL, 10) : (ig_wall_us() ^ ((uint64_t)getpid() << 32)));
  gw.config_path = config ? ig_strdup(config) : NULL;
  gw.admin_override = config && admin ? ig_strdup(admin) : NULL;
  gw.access_log_path = alog ? ig_strdup(alog) : NULL;
  rc = 1;
  if (snapshot_new(cfg, &gw.snap) != 0) goto out_loop;
  cfg = NULL; /* owned by the snapshot */
  ensure_hdrs(gw.snap->cfg);
  apply_access_log(gw.snap->cfg);
  if (listeners_reconcile(gw.snap->cfg, gw.admin_override) != 0) goto out_loop;
  uv_signal_init(&loop, &sig_term);
  uv_signal_init(&loop, &sig_int);
  uv_signal_init(&loop, &sig_hup);
  uv_timer_init(&loop, &drain_timer);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_signal_start(&sig_hup, on_signal, SIGHUP);
  gw.ready = 1;
  ig_info("serving (%zu listener(s), %zu backend(s), %zu route(s))", gw.snap->cfg->n_listeners,
          gw.snap->cfg->n_backends, gw.snap->cfg->n_routes);
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = 0;

out_loop:
  if (!gw.stopping) {
    /* startup failed: close whatever was opened */
    gw.stopping = 1;
    listeners_close_all(0);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  snapshot_release(gw.snap);
  gw.snap = NULL;
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) ig_warn("event loop closed with handles still open");
  stats_free();
  access_log_close();
  free(access_log_cfg);
  access_log_cfg = NULL;
  free(gw.hdrs);
  free(gw.config_path);
  free(gw.admin_override);
  free(gw.access_log_path);
out:
  if (cfg) ig_config_free(cfg);
  ig_config_errors_free(&errs);
  ig_buf_free(&yaml);
  free(models);
  return rc;
}

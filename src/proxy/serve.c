/* `infergate serve`: command line, quick-start config, the event loop, SIGHUP reload (refcounted
 * snapshots, listeners reconciled) and SIGTERM graceful drain. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infergate/cmd.h"
#ifdef IG_HAVE_K8S
#include "infergate/k8s.h"
#endif
#include "proxy.h"

gw_t gw;

static uv_loop_t loop;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t drain_timer;
static char *access_log_cfg; /* the config's access_log currently open (when not overridden) */

/* Kubernetes modes: --manifests PATH (reloaded on SIGHUP) or --kube (the API server, watched). */
static int manifests_mode, kube_mode;
static ig_manifest_opts_t mopts;
static ig_manifest_port_t *mports;
static char (*mport_names)[128];
#ifdef IG_HAVE_K8S
static ig_k8s_t *kube;
#endif

static void usage(FILE *f) {
  fprintf(f, "usage: infergate serve -c FILE [--log-level LEVEL] [--access-log PATH|-]\n"
             "       infergate serve (--manifests PATH | --kube [--kube-api URL] [--namespace NS]\n"
             "                        [--kubeconfig FILE [--kube-context NAME]]\n"
             "                        [--kube-token-file FILE] [--kube-ca FILE] [--write-status]\n"
             "                        [--controller-name NAME] [--leader-elect [--leader-elect-lease-name N]\n"
             "                        [--leader-elect-namespace NS] [--leader-elect-lease-duration SECONDS]])\n"
             "                       [--listen-host HOST] [--port LISTENER=PORT]... [--port-offset N]\n"
             "                       [--admin HOST:PORT] [--gateway-class NAME]\n"
             "       infergate serve --listen HOST:PORT [--admin HOST:PORT]\n"
             "                       (--backend HOST:PORT[,HOST:PORT...] [--policy "
             "round-robin|random|least-request]\n"
             "                        | --pool HOST:PORT[,HOST:PORT...] [--model NAME]...\n"
             "                          [--engine vllm|vllm-v0|sglang|trtllm] [--profile NAME]\n"
             "                          [--discovery-interval DURATION] [--scrape-interval DURATION]\n"
             "                          [--batch-slots N])\n"
             "                       [--log-level debug|info|warn|error] [--access-log PATH|-]\n"
             "\n"
             "The quick start (no -c) proxies every path to the backend or pool. --model (repeatable)\n"
             "names the models the pool serves (others get 404); without it, the models and LoRA\n"
             "adapters of each pod are discovered from its GET /v1/models every DURATION (default 5s)\n"
             "and requests go only to pods serving their model; their metrics are scraped every\n"
             "--scrape-interval (default 50ms). --engine is the pods' metrics dialect\n"
             "(default vllm); --profile the scheduler profile: default, gie, round-robin, random,\n"
             "least-request (docs/scheduling.md); --batch-slots the pods' batch size (vLLM --max-num-seqs),\n"
             "so requests go where they start at once and Critical ones find a free slot. --manifests reads\n"
             "Kubernetes resources (Gateway, HTTPRoute, TCPRoute, InferencePool, InferenceModel, Pods,\n"
             "Endpoints) from a file or directory; --kube watches them on the API server (in a Pod:\n"
             "the service account; see docs/kubernetes.md); with --write-status it writes InferenceModel\n"
             "InferencePool, Gateway and HTTPRoute status back (controller NAME, default\n"
             "infergate.io/gateway-controller); with --leader-elect only the replica holding the Lease\n"
             "(default infergate-status-writer, 15 s) writes status; every replica serves traffic.\n"
             "SIGHUP reloads the file or manifests,\n"
             "SIGTERM drains (stop accepting, finish in-flight requests) and exits 0.\n");
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
#ifdef IG_HAVE_K8S
  ig_k8s_stop(kube);
  kube = NULL;
#endif
  listeners_close_all(0);
  clients_close_all(1);
  tcp_close_all();
  endpoints_close_all_idle();
  uv_close((uv_handle_t *)&sig_term, on_signal_close);
  uv_close((uv_handle_t *)&sig_int, on_signal_close);
  uv_close((uv_handle_t *)&sig_hup, on_signal_close);
  uv_close((uv_handle_t *)&drain_timer, on_signal_close);
  discovery_stop();
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
  unsigned ms = gw.snap ? gw.snap->cfg->drain_timeout_ms : 0; /* --kube before the first config */
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

/* Swaps in cfg (owned; freed on failure): a new snapshot, listeners reconciled. New requests get it;
 * requests in flight keep theirs until they end. On failure the running configuration stays.
 * Returns 0 or an IG_E* code (logged). */
static int install(ig_config_t *cfg, const char *what) {
  snapshot_t *s = NULL;
  if (snapshot_new(cfg, &s) != 0) {
    ig_config_free(cfg);
    ig_error("%s failed: keeping the running configuration", what);
    return IG_ECONFIG;
  }
  if (listeners_reconcile(cfg, gw.admin_override) != 0) {
    snapshot_release(s);
    ig_error("%s failed: cannot open the new listeners; keeping the running configuration", what);
    return IG_EIO;
  }
  ensure_hdrs(cfg);
  snapshot_t *old = gw.snap;
  gw.snap = s;
  snapshot_release(old);
  apply_access_log(cfg);
  return 0;
}

/* Logs errors (one line each) of a failed load. */
static void log_errors(const ig_config_errors_t *errs) {
  for (size_t i = 0; i < errs->n; i++) {
    const ig_config_error_t *e = &errs->v[i];
    ig_error("%s:%d:%d: %s", e->file, e->line, e->column, e->message);
  }
}

/* Loads the configuration of the current mode from its file or directory (the native file, or the
 * manifests with their notes printed as warnings). Returns 0 with *out, or IG_ECONFIG with errs. */
static int load_current(ig_config_t **out, ig_config_errors_t *errs) {
  if (!manifests_mode) return ig_config_load(gw.config_path, out, errs);
  ig_manifest_notes_t notes = {0};
  mopts.notes = &notes;
  int rc = ig_config_load_manifests(gw.config_path, &mopts, out, errs);
  mopts.notes = NULL;
  ig_config_notes_print(&notes, stderr);
  ig_config_notes_free(&notes);
  return rc;
}

/* SIGHUP: load the file (or manifests) again; on any error keep the running config. */
static void reload(void) {
  if (kube_mode) {
    ig_info("SIGHUP: --kube follows the API server; nothing to reload");
    return;
  }
  if (!gw.config_path) {
    ig_warn("SIGHUP: no configuration file to reload (quick start)");
    return;
  }
  if (gw.draining) return;
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  if (load_current(&cfg, &errs) != 0) {
    log_errors(&errs);
    ig_error("reload of %s failed (%zu error(s)): keeping the running configuration", gw.config_path, errs.n);
    ig_config_errors_free(&errs);
    stats_inc("infergate_config_reloads_total{result=\"failure\"}", 1);
    return;
  }
  ig_config_errors_free(&errs);
  char what[300];
  snprintf(what, sizeof what, "reload of %s", gw.config_path);
  if (install(cfg, what) != 0) {
    stats_inc("infergate_config_reloads_total{result=\"failure\"}", 1);
    return;
  }
  stats_inc("infergate_config_reloads_total{result=\"success\"}", 1);
  ig_info("configuration reloaded from %s (generation %llu)", gw.config_path, (unsigned long long)gw.snap->gen);
}

#ifdef IG_HAVE_K8S
/* --kube: the watcher rendered a changed store; build it like a reload and write status back. */
static void on_kube_change(void *data, const char *text, size_t len) {
  (void)data;
  if (gw.draining || gw.stopping) return;
  ig_manifest_notes_t notes = {0};
  ig_config_errors_t errs = {0};
  ig_config_t *cfg = NULL;
  mopts.notes = &notes;
  int rc = ig_config_load_manifests_string("kube", text, len, &mopts, &cfg, &errs);
  mopts.notes = NULL;
  ig_config_notes_print(&notes, stderr);
  int first = gw.snap == NULL;
  if (rc != 0) {
    log_errors(&errs);
    ig_error("configuration from the API server has %zu error(s): %s", errs.n,
             first ? "not serving yet" : "keeping the running configuration");
    stats_inc("infergate_config_reloads_total{result=\"failure\"}", 1);
    goto out;
  }
  if (install(cfg, first ? "first configuration from the API server" : "update from the API server") != 0) {
    stats_inc("infergate_config_reloads_total{result=\"failure\"}", 1);
    goto out;
  }
  if (first) {
    gw.ready = 1;
    ig_info("serving (%zu listener(s), %zu backend(s), %zu route(s), %zu model(s)) from the API server",
            gw.snap->cfg->n_listeners, gw.snap->cfg->n_backends, gw.snap->cfg->n_routes, gw.snap->cfg->n_models);
  } else {
    stats_inc("infergate_config_reloads_total{result=\"success\"}", 1);
    ig_info("configuration updated from the API server (generation %llu)", (unsigned long long)gw.snap->gen);
  }
  if (kube) ig_k8s_report(kube, &notes);
out:
  ig_config_errors_free(&errs);
  ig_config_notes_free(&notes);
}
#endif

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
  const char *level = NULL, *alog = NULL, *engine = NULL, *profile = NULL, *disc_iv = NULL, *slots = NULL;
  const char *scrape_iv = NULL;
  const char *manifests = NULL, *listen_host = NULL, *port_offset = NULL, *gclass = NULL;
  const char *kube_api = NULL, *ns = NULL, *token_file = NULL, *kube_ca = NULL, *controller = NULL;
  const char *kubeconfig = NULL, *kube_ctx = NULL, *lease_name = NULL, *lease_ns = NULL, *lease_dur = NULL;
  int kube_flag = 0, write_status = 0, leader_elect = 0;
  char **models = ig_calloc((size_t)argc + 1, sizeof *models);
  size_t n_models = 0;
  manifests_mode = kube_mode = 0;
  memset(&mopts, 0, sizeof mopts);
  mports = ig_calloc((size_t)argc + 1, sizeof *mports);
  mport_names = ig_calloc((size_t)argc + 1, sizeof *mport_names);
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
    else if (opt_is(a, "--engine"))
      dst = &engine;
    else if (opt_is(a, "--profile"))
      dst = &profile;
    else if (opt_is(a, "--discovery-interval"))
      dst = &disc_iv;
    else if (opt_is(a, "--scrape-interval"))
      dst = &scrape_iv;
    else if (opt_is(a, "--batch-slots"))
      dst = &slots;
    else if (opt_is(a, "--log-level"))
      dst = &level;
    else if (opt_is(a, "--access-log"))
      dst = &alog;
    else if (opt_is(a, "--manifests"))
      dst = &manifests;
    else if (opt_is(a, "--listen-host"))
      dst = &listen_host;
    else if (opt_is(a, "--port-offset"))
      dst = &port_offset;
    else if (opt_is(a, "--gateway-class"))
      dst = &gclass;
    else if (opt_is(a, "--kube-api"))
      dst = &kube_api;
    else if (opt_is(a, "--namespace"))
      dst = &ns;
    else if (opt_is(a, "--kube-token-file"))
      dst = &token_file;
    else if (opt_is(a, "--kube-ca"))
      dst = &kube_ca;
    else if (opt_is(a, "--controller-name"))
      dst = &controller;
    else if (opt_is(a, "--kubeconfig"))
      dst = &kubeconfig;
    else if (opt_is(a, "--kube-context"))
      dst = &kube_ctx;
    else if (opt_is(a, "--leader-elect-lease-name"))
      dst = &lease_name;
    else if (opt_is(a, "--leader-elect-namespace"))
      dst = &lease_ns;
    else if (opt_is(a, "--leader-elect-lease-duration"))
      dst = &lease_dur;
    else if (!strcmp(a, "--leader-elect")) {
      leader_elect = 1;
      continue;
    }
    else if (!strcmp(a, "--kube")) {
      kube_flag = 1;
      continue;
    } else if (!strcmp(a, "--write-status")) {
      write_status = 1;
      continue;
    } else if (opt_is(a, "--port")) {
      const char *v = opt_value(argc, argv, &i, a);
      if (!v) goto out;
      size_t k = mopts.n_ports;
      if (ig_config_manifest_port_parse(v, mport_names[k], sizeof mport_names[k], &mports[k].port) != 0) {
        fprintf(stderr, "infergate serve: --port wants LISTENER=PORT (PORT 1..65535), got '%s'\n", v);
        goto out;
      }
      mports[k].name = mport_names[k];
      mopts.n_ports++;
      continue;
    }    else if (opt_is(a, "--model")) {
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
  if (engine && strcmp(engine, "vllm") && strcmp(engine, "vllm-v0") && strcmp(engine, "sglang") &&
      strcmp(engine, "trtllm")) {
    fprintf(stderr, "infergate serve: unknown engine '%s' (vllm, vllm-v0, sglang, trtllm)\n", engine);
    goto out;
  }
  if (profile && !ig_sched_profile_exists(profile)) {
    fprintf(stderr, "infergate serve: unknown scheduler profile '%s' (default, gie, round-robin, random, "
                    "least-request)\n", profile);
    goto out;
  }
  if ((engine || profile || disc_iv || scrape_iv || slots) && !pool) {
    fprintf(stderr, "infergate serve: --engine, --profile, --discovery-interval, --scrape-interval and "
                    "--batch-slots go with --pool\n");
    goto out;
  }
  kube_mode = kube_flag || kube_api || ns || token_file || kube_ca || kubeconfig;
  if ((write_status || controller) && !kube_mode) {
    fprintf(stderr, "infergate serve: --write-status and --controller-name need --kube\n");
    goto out;
  }
  if (kube_ctx && !kubeconfig) {
    fprintf(stderr, "infergate serve: --kube-context needs --kubeconfig\n");
    goto out;
  }
  if ((lease_name || lease_ns || lease_dur) && !leader_elect) {
    fprintf(stderr, "infergate serve: --leader-elect-* options need --leader-elect\n");
    goto out;
  }
  if (leader_elect && !write_status) {
    fprintf(stderr, "infergate serve: --leader-elect elects the status writer; it needs --write-status\n");
    goto out;
  }
  unsigned lease_ms = 0;
  if (lease_dur) {
    char *end = NULL;
    long v = strtol(lease_dur, &end, 10);
    if (!*lease_dur || *end || v < 1 || v > 3600) {
      fprintf(stderr, "infergate serve: --leader-elect-lease-duration wants seconds (1..3600), got '%s'\n",
              lease_dur);
      goto out;
    }
    lease_ms = (unsigned)v * 1000;
  }
  if (controller) {
    size_t cl = strlen(controller);
    const char *sl = strchr(controller, '/');
    int bad = cl == 0 || cl > 253 || !sl || sl == controller || !sl[1];
    for (const char *p = controller; *p && !bad; p++)
      bad = (unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f;
    if (bad) {
      fprintf(stderr, "infergate serve: --controller-name wants DOMAIN/PATH (e.g. infergate.io/gateway-controller), "
                      "got '%s'\n", controller);
      goto out;
    }
  }
  manifests_mode = manifests || kube_mode;
  if (manifests_mode) {
    if (config || listen || backend || pool || n_models || policy) {
      fprintf(stderr, "infergate serve: --manifests/--kube cannot be combined with -c, --listen, --backend, "
                      "--pool, --model or --policy\n");
      goto out;
    }
    if (manifests && kube_mode) {
      fprintf(stderr, "infergate serve: give either --manifests PATH or --kube, not both\n");
      goto out;
    }
#ifndef IG_HAVE_K8S
    if (kube_mode) {
      fprintf(stderr, "infergate serve: --kube is not compiled in\n");
      goto out;
    }
#endif
    if (port_offset) {
      char *end = NULL;
      long v = strtol(port_offset, &end, 10);
      if (!*port_offset || *end || v < -65535 || v > 65535) {
        fprintf(stderr, "infergate serve: --port-offset wants an integer, got '%s'\n", port_offset);
        goto out;
      }
      mopts.port_offset = (int)v;
    }
    mopts.listen_host = listen_host;
    mopts.ports = mports;
    mopts.admin = admin;
    mopts.gateway_class = gclass;
    if (kube_mode) {
      mopts.default_namespace = ns; /* refined once the watcher knows its namespace */
      mopts.lenient_refs = 1;       /* a route to a missing pool is reported in its status, not fatal */
    }
    if (manifests) {
      ig_manifest_notes_t notes = {0};
      mopts.notes = &notes;
      int lrc = ig_config_load_manifests(manifests, &mopts, &cfg, &errs);
      mopts.notes = NULL;
      ig_config_notes_print(&notes, stderr);
      ig_config_notes_free(&notes);
      if (lrc != 0) {
        ig_config_errors_print(&errs, stderr);
        fprintf(stderr, "infergate serve: %s: %zu error(s)\n", manifests, errs.n);
        rc = 1;
        goto out;
      }
    }
  } else if (listen_host || port_offset || gclass || mopts.n_ports) {
    fprintf(stderr, "infergate serve: --listen-host, --port, --port-offset and --gateway-class need "
                    "--manifests or --kube\n");
    goto out;
  } else if (config) {
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
    ig_quick_cfg_t q = {.listen = listen, .admin = admin, .backend = backend, .pool = pool,
                        .policy = policy, .models = models, .n_models = n_models, .engine = engine,
                        .profile = profile, .discovery_interval = disc_iv, .batch_slots = slots,
                        .scrape_interval = scrape_iv};
    ig_config_quick_yaml(&yaml, &q);
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
  gw.config_path = config ? ig_strdup(config) : manifests ? ig_strdup(manifests) : NULL;
  gw.admin_override = config && admin ? ig_strdup(admin) : NULL;
  gw.access_log_path = alog ? ig_strdup(alog) : NULL;
  rc = 1;
  if (!kube_mode) {
    if (snapshot_new(cfg, &gw.snap) != 0) goto out_loop;
    cfg = NULL; /* owned by the snapshot */
    ensure_hdrs(gw.snap->cfg);
    apply_access_log(gw.snap->cfg);
    if (listeners_reconcile(gw.snap->cfg, gw.admin_override) != 0) goto out_loop;
  }
#ifdef IG_HAVE_K8S
  else {
    ig_k8s_opts_t ko;
    memset(&ko, 0, sizeof ko);
    ko.api_url = kube_api;
    ko.ns = ns;
    ko.token_file = token_file;
    ko.ca_file = kube_ca;
    ko.on_change = on_kube_change;
    ko.write_status = write_status;
    ko.controller_name = controller;
    ko.kubeconfig = kubeconfig;
    ko.context = kube_ctx;
    ko.leader_elect = leader_elect;
    ko.lease_name = lease_name;
    ko.lease_ns = lease_ns;
    ko.lease_duration_ms = lease_ms;
    if (ig_k8s_start(&loop, &ko, &kube) != 0) goto out_loop;
    mopts.default_namespace = ig_k8s_namespace(kube);
  }
#endif
  uv_signal_init(&loop, &sig_term);
  uv_signal_init(&loop, &sig_int);
  uv_signal_init(&loop, &sig_hup);
  uv_timer_init(&loop, &drain_timer);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_signal_start(&sig_hup, on_signal, SIGHUP);
  discovery_start(); /* pools that no model names learn their models from the pods */
  if (gw.snap) {
    gw.ready = 1;
    ig_info("serving (%zu listener(s), %zu backend(s), %zu route(s))", gw.snap->cfg->n_listeners,
            gw.snap->cfg->n_backends, gw.snap->cfg->n_routes);
  } else {
    ig_info("waiting for the first configuration from the API server");
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = 0;

out_loop:
  if (!gw.stopping) {
    /* startup failed: close whatever was opened */
    gw.stopping = 1;
#ifdef IG_HAVE_K8S
    ig_k8s_stop(kube);
    kube = NULL;
#endif
    listeners_close_all(0);
    discovery_stop();
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
  free(mports);
  free(mport_names);
  mports = NULL;
  mport_names = NULL;
  memset(&mopts, 0, sizeof mopts);
  return rc;
}

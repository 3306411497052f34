/* `infergate epp`: command line, configuration (a gateway YAML file and a pool name, or a quick-start
 * endpoint list), the event loop and SIGTERM/SIGINT shutdown. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epp.h"
#include "infergate/cmd.h"
#ifdef IG_HAVE_K8S
#include "infergate/k8s.h"
#endif

static void usage(FILE *f) {
  fprintf(f,
          "usage: infergate epp -c FILE [--pool NAME] [options]\n"
          "       infergate epp --manifests PATH [--pool NAME] [options]\n"
          "       infergate epp --kube --pool-name NAME [--kubeconfig FILE] [--kube-api URL]\n"
          "                     [--namespace NS] [--kube-token-file FILE] [--kube-ca FILE] [options]\n"
          "       infergate epp --endpoints HOST:PORT[,HOST:PORT...] [--model NAME]... [--default-model NAME]\n"
          "                     [options]\n"
          "\n"
          "Endpoint picker for Envoy-based gateways: serves Envoy's External Processing protocol\n"
          "(envoy.service.ext_proc.v3.ExternalProcessor/Process) over gRPC (h2c) and answers each request\n"
          "with the header x-gateway-destination-endpoint and envoy.lb dynamic metadata.\n"
          "\n"
          "options:\n"
          "  -c, --config FILE      gateway configuration (native YAML); its pools, models, default_model\n"
          "                         and limits.max_body_bytes are used\n"
          "  --manifests PATH       Kubernetes resources (YAML file or directory; the loader of `serve\n"
          "                         --manifests`): InferencePools, InferenceModels, Pods...; notes are\n"
          "                         printed as warnings\n"
          "  --kube                 watch InferencePools, InferenceModels, Pods and EndpointSlices on the\n"
          "                         API server (in a Pod: the service account; or --kubeconfig FILE\n"
          "                         [--kube-context NAME], --kube-api URL, --namespace NS,\n"
          "                         --kube-token-file FILE, --kube-ca FILE) and follow changes live\n"
          "  --pool NAME, --pool-name NAME\n"
          "                         the pool to pick from (default: the only inference pool of FILE);\n"
          "                         from manifests: NAME in the default namespace, else NAMESPACE/NAME\n"
          "  --endpoints LIST       quick start: one pool of these endpoints (no config file)\n"
          "  --model NAME           quick start: an InferenceModel served by the pool (repeatable);\n"
          "                         with none, the models and LoRA adapters of each pod are discovered\n"
          "                         from its GET /v1/models (any model is accepted until a pod answers)\n"
          "  --discovery-interval DURATION\n"
          "                         quick start: how often the pods' models are fetched (default 5s)\n"
          "  --scrape-interval DURATION\n"
          "                         quick start: how often the pods' metrics are scraped (default 50ms)\n"
          "  --default-model NAME   model for requests without one (else 400)\n"
          "  --engine E             quick start: metrics dialect of the endpoints: vllm (default),\n"
          "                         vllm-v0, sglang, trtllm\n"
          "  --profile NAME         quick start: scheduler profile: default, gie, round-robin, random,\n"
          "                         least-request (docs/scheduling.md)\n"
          "  --grpc HOST:PORT       ext_proc gRPC listener (default 127.0.0.1:9002)\n"
          "  --health HOST:PORT     gRPC health listener (default 127.0.0.1:9003; 'off' to disable)\n"
          "  --metrics HOST:PORT    Prometheus /metrics listener (default 127.0.0.1:9090; 'off' to disable)\n"
          "  --body-mode MODE       request body mode assumed when Envoy sends no protocol_config:\n"
          "                         full-duplex (default; FULL_DUPLEX_STREAMED), buffered, streamed, none\n"
          "  --shed-inflight N      shed Sheddable requests (429) when every endpoint has N picks in flight\n"
          "                         (default 0: never)\n"
          "  --queue-ttl MS         flow control: Critical/Standard requests on a saturated pool wait up to\n"
          "                         MS for a pod with room (then 503), their stream unanswered; raise\n"
          "                         Envoy's ext_proc message_timeout above MS (default 0: picked at once)\n"
          "  --seed N               seed of the weighted target choice\n"
          "  --log-level LEVEL      debug | info | warn | error (default info)\n"
          "\n"
          "SIGHUP reloads FILE or PATH (the last good configuration stays on errors); with --kube\n"
          "changes apply as they happen. SIGTERM / SIGINT stop.\n");
}

static int parse_mode(const char *s, int *out) {
  static const struct {
    const char *name;
    int mode;
  } modes[] = {{"full-duplex", EPP_MODE_FULL_DUPLEX}, {"full_duplex_streamed", EPP_MODE_FULL_DUPLEX},
               {"buffered", EPP_MODE_BUFFERED},       {"streamed", EPP_MODE_STREAMED},
               {"none", EPP_MODE_NONE}};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    if (!strcmp(s, modes[i].name)) {
      *out = modes[i].mode;
      return 0;
    }
  return IG_EINVAL;
}

static uv_signal_t sig_term, sig_int, sig_hup;
static epp_t *the_epp;
static int started; /* servers are up (with --kube: once the pool was found) */
static const char *src_config, *src_manifests; /* what SIGHUP reloads */
static const char *grpc_at, *health_at, *metrics_at;
static epp_opts_t run_opts;
static const char *run_pool;
#ifdef IG_HAVE_K8S
static ig_k8s_t *kube;
#endif

static void on_stop(uv_signal_t *h, int signum) {
  (void)h;
  ig_info("epp: signal %d, shutting down", signum);
#ifdef IG_HAVE_K8S
  ig_k8s_stop(kube);
  kube = NULL;
#endif
  if (started) {
    the_epp->serving = 0;
    epp_grpc_health_changed();
    epp_grpc_stop();
    epp_admin_stop();
    epp_scrape_stop(the_epp);
    epp_queue_stop(the_epp);
  }
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
  uv_close((uv_handle_t *)&sig_hup, NULL);
}

/* Loads the configuration from -c FILE or --manifests PATH. Returns 0 with *out, or an error printed. */
static int load_source(ig_config_t **out) {
  ig_config_errors_t errs = {0};
  int rc;
  if (src_config) {
    rc = ig_config_load(src_config, out, &errs);
  } else {
    ig_manifest_notes_t notes = {0};
    ig_manifest_opts_t mo = {.notes = &notes, .pools_only = 1};
    rc = ig_config_load_manifests(src_manifests, &mo, out, &errs);
    ig_config_notes_print(&notes, stderr);
    ig_config_notes_free(&notes);
  }
  if (rc != 0) ig_config_errors_print(&errs, stderr);
  ig_config_errors_free(&errs);
  return rc;
}

/* SIGHUP: reload the file or manifests; on any error the running configuration stays. */
static void on_hup(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  if (!src_config && !src_manifests) {
#ifdef IG_HAVE_K8S
    if (kube) {
      ig_info("epp: SIGHUP: --kube follows the API server; nothing to reload");
      return;
    }
#endif
    ig_info("epp: SIGHUP: no configuration file to reload (--endpoints)");
    return;
  }
  const char *what = src_config ? src_config : src_manifests;
  ig_config_t *cfg = NULL;
  if (load_source(&cfg) != 0) {
    ig_error("epp: reload of %s failed: keeping the running configuration", what);
    return;
  }
  if (epp_reconfigure(the_epp, cfg) != 0) {
    ig_error("epp: reload of %s: keeping the running configuration", what);
    return;
  }
  ig_info("epp: configuration reloaded from %s", what);
}

/* Starts the gRPC, health and metrics servers and the scrapers. Returns 0 or -1 (logged). */
static int servers_start(uv_loop_t *loop) {
  if (epp_grpc_start(loop, the_epp, grpc_at, health_at) != 0) return -1;
  if (metrics_at && epp_admin_start(loop, the_epp, metrics_at) != 0) return -1;
  epp_scrape_start(the_epp, loop);
  epp_queue_start(the_epp, loop);
  started = 1;
  ig_info("epp: picking from pool '%s' (%zu endpoints)", the_epp->pool->name, the_epp->n_eps);
  return 0;
}

#ifdef IG_HAVE_K8S
/* --kube: the watcher rendered a changed store. The first time the pool is found the servers start;
 * later changes reconfigure (a broken update keeps the last good configuration). */
static void on_kube_change(void *data, const char *text, size_t len) {
  uv_loop_t *loop = data;
  ig_manifest_notes_t notes = {0};
  ig_config_errors_t errs = {0};
  ig_config_t *cfg = NULL;
  ig_manifest_opts_t mo = {.notes = &notes, .pools_only = 1, .lenient_refs = 1,
                           .default_namespace = kube ? ig_k8s_namespace(kube) : NULL};
  int rc = ig_config_load_manifests_string("kube", text, len, &mo, &cfg, &errs);
  ig_config_notes_print(&notes, stderr);
  ig_config_notes_free(&notes);
  if (rc != 0) {
    ig_config_errors_print(&errs, stderr);
    ig_error("epp: configuration from the API server has %zu error(s): %s", errs.n,
             started ? "keeping the running configuration" : "not serving yet");
    ig_config_errors_free(&errs);
    return;
  }
  ig_config_errors_free(&errs);
  if (started) {
    if (epp_reconfigure(the_epp, cfg) != 0) ig_warn("epp: keeping the running configuration");
    return;
  }
  if (ig_config_find_backend(cfg, run_pool) < 0) {
    ig_info("epp: waiting for InferencePool '%s' on the API server", run_pool);
    ig_config_free(cfg);
    return;
  }
  if (epp_init(the_epp, cfg, run_pool, &run_opts) != 0) return;
  if (servers_start(loop) != 0) {
    ig_error("epp: cannot start the servers; stopping");
    uv_signal_t fake;
    fake.data = NULL;
    on_stop(&fake, SIGTERM);
  }
}
#endif

int ig_cmd_epp(int argc, char **argv) {
  const char *config = NULL, *manifests = NULL, *pool = NULL, *endpoints = NULL, *dflt = NULL;
  const char *kubeconfig = NULL, *kube_ctx = NULL, *kube_api = NULL, *kube_ns = NULL, *kube_tok = NULL,
             *kube_ca = NULL;
  int kube_flag = 0;
  const char *engine = NULL, *profile = NULL, *disc_iv = NULL, *scrape_iv = NULL;
  const char *grpc_addr = "127.0.0.1:9002", *health_addr = "127.0.0.1:9003", *metrics_addr = "127.0.0.1:9090";
  char **models = ig_calloc((size_t)argc + 1, sizeof *models);
  size_t n_models = 0;
  epp_opts_t opts = {.default_mode = EPP_MODE_FULL_DUPLEX};
  int rc = 2;
  ig_config_t *cfg = NULL;
  epp_t e;
  memset(&e, 0, sizeof e);
  uv_loop_t loop;
  int loop_ok = 0;
  ig_config_errors_t errs = {0};

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      rc = 0;
      goto out;
    }
#define NEED()                                                  \
  do {                                                          \
    if (!v) {                                                   \
      fprintf(stderr, "infergate epp: %s needs a value\n", a); \
      goto out;                                                 \
    }                                                           \
    i++;                                                        \
  } while (0)
    if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
      NEED();
      config = v;
    } else if (!strcmp(a, "--manifests")) {
      NEED();
      manifests = v;
    } else if (!strcmp(a, "--pool") || !strcmp(a, "--pool-name")) {
      NEED();
      pool = v;
    } else if (!strcmp(a, "--kube")) {
      kube_flag = 1;
    } else if (!strcmp(a, "--kubeconfig")) {
      NEED();
      kubeconfig = v;
    } else if (!strcmp(a, "--kube-context")) {
      NEED();
      kube_ctx = v;
    } else if (!strcmp(a, "--kube-api")) {
      NEED();
      kube_api = v;
    } else if (!strcmp(a, "--namespace")) {
      NEED();
      kube_ns = v;
    } else if (!strcmp(a, "--kube-token-file")) {
      NEED();
      kube_tok = v;
    } else if (!strcmp(a, "--kube-ca")) {
      NEED();
      kube_ca = v;
    } else if (!strcmp(a, "--endpoints")) {
      NEED();
      endpoints = v;
    } else if (!strcmp(a, "--model")) {
      NEED();
      models[n_models++] = (char *)v;
    } else if (!strcmp(a, "--default-model")) {
      NEED();
      dflt = v;
    } else if (!strcmp(a, "--engine")) {
      NEED();
      engine = v;
    } else if (!strcmp(a, "--profile")) {
      NEED();
      profile = v;
    } else if (!strcmp(a, "--discovery-interval")) {
      NEED();
      disc_iv = v;
    } else if (!strcmp(a, "--scrape-interval")) {
      NEED();
      scrape_iv = v;
    } else if (!strcmp(a, "--grpc")) {
      NEED();
      grpc_addr = v;
    } else if (!strcmp(a, "--health")) {
      NEED();
      health_addr = strcmp(v, "off") ? v : NULL;
    } else if (!strcmp(a, "--metrics")) {
      NEED();
      metrics_addr = strcmp(v, "off") ? v : NULL;
    } else if (!strcmp(a, "--body-mode")) {
      NEED();
      if (parse_mode(v, &opts.default_mode) != 0) {
        fprintf(stderr, "infergate epp: unknown body mode '%s'\n", v);
        goto out;
      }
    } else if (!strcmp(a, "--shed-inflight")) {
      NEED();
      char *end;
      unsigned long n = strtoul(v, &end, 10);
      if (*end || n > 1000000) {
        fprintf(stderr, "infergate epp: bad --shed-inflight '%s'\n", v);
        goto out;
      }
      opts.shed_inflight = (unsigned)n;
    } else if (!strcmp(a, "--queue-ttl")) {
      NEED();
      char *end;
      unsigned long long n = strtoull(v, &end, 10);
      if (*end || end == v || n > 3600000) {
        fprintf(stderr, "infergate epp: bad --queue-ttl '%s' (milliseconds, at most 3600000)\n", v);
        goto out;
      }
      opts.queue_ttl_ms = n;
    } else if (!strcmp(a, "--seed")) {
      NEED();
      opts.seed = strtoull(v, NULL, 10);
    } else if (!strcmp(a, "--log-level")) {
      NEED();
      ig_log_level_t lv;
      if (ig_log_level_parse(v, &lv) != 0) {
        fprintf(stderr, "infergate epp: unknown log level '%s'\n", v);
        goto out;
      }
      ig_log_set_level(lv);
    } else {
      fprintf(stderr, "infergate epp: unknown option '%s'\n\n", a);
      usage(stderr);
      goto out;
    }
#undef NEED
  }
  int kube_mode = kube_flag || kubeconfig || kube_api || kube_ns || kube_tok || kube_ca || kube_ctx;
  if ((config != NULL) + (manifests != NULL) + (endpoints != NULL) + (kube_mode != 0) != 1) {
    fprintf(stderr, "infergate epp: give one of -c FILE, --manifests PATH, --kube or --endpoints LIST\n\n");
    usage(stderr);
    goto out;
  }
  if (kube_mode && !pool) {
    fprintf(stderr, "infergate epp: --kube needs --pool-name NAME\n");
    goto out;
  }
  if (kube_ctx && !kubeconfig) {
    fprintf(stderr, "infergate epp: --kube-context needs --kubeconfig\n");
    goto out;
  }
#ifndef IG_HAVE_K8S
  if (kube_mode) {
    fprintf(stderr, "infergate epp: --kube is not compiled in\n");
    goto out;
  }
#endif
  if (endpoints && pool) {
    fprintf(stderr, "infergate epp: --pool goes with -c FILE or --manifests PATH\n");
    goto out;
  }
  if (!endpoints && (n_models || dflt || engine || profile || disc_iv || scrape_iv)) {
    fprintf(stderr, "infergate epp: --model, --default-model, --engine, --profile, --discovery-interval and "
                    "--scrape-interval go with --endpoints (the file has its own)\n");
    goto out;
  }
  if (profile && !ig_sched_profile_exists(profile)) {
    fprintf(stderr, "infergate epp: unknown scheduler profile '%s' (default, gie, round-robin, random, "
                    "least-request)\n", profile);
    goto out;
  }

  src_config = config;
  src_manifests = manifests;
  grpc_at = grpc_addr;
  health_at = health_addr;
  metrics_at = metrics_addr;
  run_opts = opts;
  run_pool = pool;
  started = 0;
  the_epp = &e;
  if (config || manifests) {
    rc = load_source(&cfg);
  } else if (endpoints) {
    ig_buf_t y;
    ig_buf_init(&y);
    ig_quick_cfg_t q = {.pool = endpoints, .models = models, .n_models = n_models, .default_model = dflt,
                        .engine = engine, .profile = profile, .discovery_interval = disc_iv,
                        .scrape_interval = scrape_iv};
    ig_config_quick_yaml(&y, &q);
    rc = ig_config_load_string("<command line>", y.data, y.len, &cfg, &errs);
    ig_buf_free(&y);
  } else {
    rc = 0;
  }
  if (rc != 0) {
    ig_config_errors_print(&errs, stderr);
    ig_config_errors_free(&errs);
    rc = 1;
    goto out;
  }
  ig_config_errors_free(&errs);
  rc = 1;
  if (cfg && epp_init(&e, cfg, endpoints ? "default" : pool, &opts) != 0) goto out; /* cfg is e's now */
  cfg = NULL;

  uv_loop_init(&loop);
  loop_ok = 1;
  signal(SIGPIPE, SIG_IGN);
  if (!kube_mode && servers_start(&loop) != 0) goto stop;
#ifdef IG_HAVE_K8S
  if (kube_mode) {
    ig_k8s_opts_t ko;
    memset(&ko, 0, sizeof ko);
    ko.api_url = kube_api;
    ko.ns = kube_ns;
    ko.token_file = kube_tok;
    ko.ca_file = kube_ca;
    ko.kubeconfig = kubeconfig;
    ko.context = kube_ctx;
    ko.pools_only = 1;
    ko.on_change = on_kube_change;
    ko.data = &loop;
    if (ig_k8s_start(&loop, &ko, &kube) != 0) goto stop;
    ig_info("epp: waiting for InferencePool '%s' from the API server", pool);
  }
#endif
  uv_signal_init(&loop, &sig_term);
  uv_signal_init(&loop, &sig_int);
  uv_signal_init(&loop, &sig_hup);
  uv_signal_start(&sig_term, on_stop, SIGTERM);
  uv_signal_start(&sig_int, on_stop, SIGINT);
  uv_signal_start(&sig_hup, on_hup, SIGHUP);
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = 0;
  goto out;
stop:
  epp_grpc_stop();
  epp_admin_stop();
  epp_scrape_stop(&e);
  epp_queue_stop(&e);
  uv_run(&loop, UV_RUN_DEFAULT);
out:
  if (loop_ok) {
    uv_run(&loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop) != 0) ig_warn("epp: event loop closed with handles open");
  }
  if (e.cfg || e.reg) epp_free(&e);
  free(models);
  return rc;
}

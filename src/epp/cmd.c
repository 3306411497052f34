/* `infergate epp`: command line, configuration (a gateway YAML file and a pool name, or a quick-start
 * endpoint list), the event loop and SIGTERM/SIGINT shutdown. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epp.h"
#include "infergate/cmd.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: infergate epp -c FILE [--pool NAME] [options]\n"
          "       infergate epp --manifests PATH [--pool NAME] [options]\n"
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
          "  --pool NAME            the pool to pick from (default: the only inference pool of FILE);\n"
          "                         from manifests: NAME in the default namespace, else NAMESPACE/NAME\n"
          "  --endpoints LIST       quick start: one pool of these endpoints (no config file)\n"
          "  --model NAME           quick start: an InferenceModel served by the pool (repeatable);\n"
          "                         with none, any model is accepted\n"
          "  --default-model NAME   model for requests without one (else 400)\n"
          "  --grpc HOST:PORT       ext_proc gRPC listener (default 127.0.0.1:9002)\n"
          "  --health HOST:PORT     gRPC health listener (default 127.0.0.1:9003; 'off' to disable)\n"
          "  --metrics HOST:PORT    Prometheus /metrics listener (default 127.0.0.1:9090; 'off' to disable)\n"
          "  --body-mode MODE       request body mode assumed when Envoy sends no protocol_config:\n"
          "                         full-duplex (default; FULL_DUPLEX_STREAMED), buffered, streamed, none\n"
          "  --shed-inflight N      shed Sheddable requests (429) when every endpoint has N picks in flight\n"
          "                         (default 0: never)\n"
          "  --seed N               seed of the weighted target choice\n"
          "  --log-level LEVEL      debug | info | warn | error (default info)\n");
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

static uv_signal_t sig_term, sig_int;
static epp_t *the_epp;

static void on_stop(uv_signal_t *h, int signum) {
  ig_info("epp: signal %d, shutting down", signum);
  the_epp->serving = 0;
  epp_grpc_health_changed();
  epp_grpc_stop();
  epp_admin_stop();
  epp_scrape_stop(the_epp);
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
}

int ig_cmd_epp(int argc, char **argv) {
  const char *config = NULL, *manifests = NULL, *pool = NULL, *endpoints = NULL, *dflt = NULL;
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
    } else if (!strcmp(a, "--pool")) {
      NEED();
      pool = v;
    } else if (!strcmp(a, "--endpoints")) {
      NEED();
      endpoints = v;
    } else if (!strcmp(a, "--model")) {
      NEED();
      models[n_models++] = (char *)v;
    } else if (!strcmp(a, "--default-model")) {
      NEED();
      dflt = v;
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
  if ((config != NULL) + (manifests != NULL) + (endpoints != NULL) != 1) {
    fprintf(stderr, "infergate epp: give one of -c FILE, --manifests PATH or --endpoints LIST\n\n");
    usage(stderr);
    goto out;
  }
  if (endpoints && pool) {
    fprintf(stderr, "infergate epp: --pool goes with -c FILE or --manifests PATH\n");
    goto out;
  }
  if (!endpoints && (n_models || dflt)) {
    fprintf(stderr, "infergate epp: --model and --default-model go with --endpoints (the file has its own)\n");
    goto out;
  }

  if (config) {
    rc = ig_config_load(config, &cfg, &errs);
  } else if (manifests) {
    ig_manifest_notes_t notes = {0};
    ig_manifest_opts_t mo = {.notes = &notes, .pools_only = 1};
    rc = ig_config_load_manifests(manifests, &mo, &cfg, &errs);
    ig_config_notes_print(&notes, stderr);
    ig_config_notes_free(&notes);
  } else {
    ig_buf_t y;
    ig_buf_init(&y);
    ig_quick_cfg_t q = {.pool = endpoints, .models = models, .n_models = n_models, .default_model = dflt};
    ig_config_quick_yaml(&y, &q);
    rc = ig_config_load_string("<command line>", y.data, y.len, &cfg, &errs);
    ig_buf_free(&y);
  }
  if (rc != 0) {
    ig_config_errors_print(&errs, stderr);
    ig_config_errors_free(&errs);
    rc = 1;
    goto out;
  }
  ig_config_errors_free(&errs);
  rc = 1;
  if (epp_init(&e, cfg, endpoints ? "default" : pool, &opts) != 0) goto out; /* cfg is e's now */
  the_epp = &e;

  uv_loop_init(&loop);
  loop_ok = 1;
  signal(SIGPIPE, SIG_IGN);
  if (epp_grpc_start(&loop, &e, grpc_addr, health_addr) != 0) goto stop;
  if (metrics_addr && epp_admin_start(&loop, &e, metrics_addr) != 0) goto stop;
  epp_scrape_start(&e, &loop);
  uv_signal_init(&loop, &sig_term);
  uv_signal_init(&loop, &sig_int);
  uv_signal_start(&sig_term, on_stop, SIGTERM);
  uv_signal_start(&sig_int, on_stop, SIGINT);
  ig_info("epp: picking from pool '%s' (%zu endpoints)", e.pool->name, e.n_eps);
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = 0;
  goto out;
stop:
  epp_grpc_stop();
  epp_admin_stop();
  epp_scrape_stop(&e);
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

/* `infergate check -c FILE` / `infergate check --manifests PATH`: load and validate a configuration
 * (native YAML, or Kubernetes manifests), print every error or a summary. */
#include <stdio.h>
#include <string.h>

#include "infergate/cmd.h"
#include "infergate/config.h"
#include "infergate/core.h"

static void usage(FILE *f) {
  fprintf(f, "usage: infergate check -c FILE\n"
             "       infergate check --manifests PATH\n"
             "\n"
             "Validates an infergate YAML configuration and prints every error as\n"
             "FILE:LINE:COLUMN: error: MESSAGE. Host names in addresses are resolved.\n"
             "\n"
             "options:\n"
             "  -c, --config FILE  the configuration file (a lone FILE argument works too)\n"
             "  --manifests PATH   Kubernetes manifests instead: a YAML file or a directory of\n"
             "                     *.yaml files (Gateway, HTTPRoute, TCPRoute, InferencePool,\n"
             "                     InferenceModel, Pods, Services, Endpoints); notes about\n"
             "                     resources that are not used are printed as warnings\n"
             "  -q, --quiet        print nothing when the file is valid\n"
             "  -h, --help         show this help\n"
             "\n"
             "exit status: 0 valid, 1 invalid or unreadable, 2 bad usage\n");
}

/* Parses the arguments, loads the file and reports. Returns the process exit status. */
int ig_cmd_check(int argc, char **argv) {
  const char *path = NULL, *manifests = NULL;
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      quiet = 1;
    } else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "infergate check: %s needs a file name\n", a);
        return 2;
      }
      path = argv[++i];
    } else if (!strncmp(a, "--config=", 9)) {
      path = a + 9;
    } else if (!strcmp(a, "--manifests")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "infergate check: %s needs a file or directory name\n", a);
        return 2;
      }
      manifests = argv[++i];
    } else if (!strncmp(a, "--manifests=", 12)) {
      manifests = a + 12;
    } else if (a[0] != '-' && !path) {
      path = a;
    } else {
      fprintf(stderr, "infergate check: unexpected argument '%s'\n\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (path && manifests) {
    fprintf(stderr, "infergate check: give either -c FILE or --manifests PATH, not both\n");
    return 2;
  }
  if (!path && !manifests) {
    fprintf(stderr, "infergate check: no configuration file given (-c FILE or --manifests PATH)\n\n");
    usage(stderr);
    return 2;
  }
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc;
  if (manifests) {
    ig_manifest_notes_t notes = {0};
    ig_manifest_opts_t opts = {0};
    opts.notes = &notes;
    path = manifests;
    rc = ig_config_load_manifests(manifests, &opts, &cfg, &errs);
    if (!quiet || rc != 0) ig_config_notes_print(&notes, stderr);
    ig_config_notes_free(&notes);
  } else {
    rc = ig_config_load(path, &cfg, &errs);
  }
  if (rc != 0) {
    ig_config_errors_print(&errs, stderr);
    fprintf(stderr, "%s: %zu error%s\n", path, errs.n, errs.n == 1 ? "" : "s");
    ig_config_errors_free(&errs);
    return 1;
  }
  size_t pools = 0;
  for (size_t i = 0; i < cfg->n_backends; i++)
    pools += cfg->backends[i].policy == IG_LB_INFERENCE;
  if (!quiet)
    printf("%s: ok (%zu listeners, %zu routes, %zu backends, %zu pools, %zu models)\n", path,
           cfg->n_listeners, cfg->n_routes, cfg->n_backends - pools, pools, cfg->n_models);
  ig_config_free(cfg);
  ig_config_errors_free(&errs);
  return 0;
}

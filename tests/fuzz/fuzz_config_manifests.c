/* libFuzzer driver: Kubernetes manifests (multi-document YAML) through the manifest loader must never
 * crash, hang or leak; a load yields a snapshot or at least one error. DNS is never used. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/config/config_internal.h"
#include "infergate/config.h"

static int fake_resolve(const char *host, char *out, size_t cap, const char **why) {
  unsigned char a[16];
  if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1) {
    snprintf(out, cap, "%s", host);
    return 0;
  }
  *why = "not resolved in the fuzzer";
  return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz-manifests-%d.yaml", (int)getpid());
  ig_config_set_resolver(fake_resolve);
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  ig_manifest_notes_t notes = {0};
  ig_manifest_opts_t opts = {0};
  opts.notes = &notes;
  int rc = ig_config_load_manifests(path, &opts, &cfg, &errs);
  if ((rc == 0) != (cfg != NULL)) abort();
  ig_config_free(cfg);
  ig_config_errors_free(&errs);
  ig_config_notes_free(&notes);
  return 0;
}

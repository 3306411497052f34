/* libFuzzer driver: ig_config_load_string on arbitrary bytes must never crash, hang or leak, and a
 * load either yields a snapshot or at least one error. Host names never reach DNS here. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/config/config_internal.h"
#include "infergate/config.h"

/* Numeric addresses resolve to themselves, "localhost" to 127.0.0.1, everything else fails. */
static int fake_resolve(const char *host, char *out, size_t cap, const char **why) {
  unsigned char a[16];
  if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1) {
    snprintf(out, cap, "%s", host);
    return 0;
  }
  if (!strcmp(host, "localhost")) {
    snprintf(out, cap, "127.0.0.1");
    return 0;
  }
  *why = "not resolved in the fuzzer";
  return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ig_config_set_resolver(fake_resolve);
  ig_config_t *cfg = NULL;
  ig_config_errors_t errs = {0};
  int rc = ig_config_load_string("fuzz.yaml", (const char *)data, size, &cfg, &errs);
  if ((rc == 0) != (cfg != NULL) || (rc == 0) != (errs.n == 0)) abort();
  if (cfg) {
    /* exercise the lookups on whatever loaded */
    for (size_t i = 0; i < cfg->n_listeners; i++)
      ig_route_match(cfg, i, "a.example.com", 13, "POST", 4, "/v1/chat/completions", 20, NULL, 0);
    ig_config_find_backend(cfg, "b");
    ig_config_find_model(cfg, "m", 1);
  }
  ig_config_free(cfg);
  ig_config_errors_free(&errs);
  return 0;
}

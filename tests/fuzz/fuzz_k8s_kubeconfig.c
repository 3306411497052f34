/* libFuzzer driver: kubeconfig text through the parser (current context, then a named one), and the
 * same bytes through the base64 decoder. Nothing may crash or leak; a parsed kubeconfig always has a
 * server and a context. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  char err[256];
  ig_k8s_kubeconfig_t kc;
  if (ig_k8s_kubeconfig_parse(p, size, "/base", NULL, &kc, err, sizeof err) == 0) {
    if (!kc.server || !kc.context) abort();
    ig_k8s_kubeconfig_free(&kc);
  }
  if (ig_k8s_kubeconfig_parse(p, size, NULL, "dev", &kc, err, sizeof err) == 0) ig_k8s_kubeconfig_free(&kc);
  if (size < 4096) {
    char *s = malloc(size + 1), *out = NULL;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t n = 0;
    if (ig_base64_decode(s, strlen(s), &out, &n) == 0) {
      if (n > size) abort();
      free(out);
    }
    free(s);
  }
  return 0;
}

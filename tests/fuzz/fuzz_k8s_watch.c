/* libFuzzer driver: a watch stream (newline-delimited JSON events) from the API server through the
 * line splitter and the event parser; also the API URL parser on the first line. Nothing may crash
 * or leak, and a parsed ADDED/MODIFIED/DELETED event always has a name. */
#include <stdint.h>
#include <stdlib.h>

#include "infergate/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  size_t off = 0;
  int first = 1;
  while (off < size) {
    size_t line_len = 0;
    long n = ig_k8s_line_next(p + off, size - off, &line_len);
    if (n <= 0) break;
    if (first && line_len < 256) {
      char url[256], host[256];
      int tls = 0, port = 0;
      for (size_t i = 0; i < line_len; i++) url[i] = p[off + i] ? p[off + i] : ' ';
      url[line_len] = '\0';
      ig_k8s_url_parse(url, &tls, host, sizeof host, &port);
      first = 0;
    }
    ig_k8s_event_t ev;
    if (ig_k8s_event_parse(p + off, line_len, &ev) == 0) {
      if (ev.type <= IG_K8S_DELETED && !ev.name) abort();
      ig_k8s_event_clear(&ev);
    }
    off += (size_t)n;
  }
  return 0;
}

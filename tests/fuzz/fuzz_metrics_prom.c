/* libFuzzer driver for the Prometheus text parser and engine extraction: every sample must lie inside
 * the input, label lookups must stay in bounds, extraction must succeed or say ENOENT for every
 * engine, and each sample re-rendered as `name{labels} value` must parse back to the same sample. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size ? size : 1);
  memcpy(buf, data, size);
  size_t pos = 0, last = 0;
  ig_prom_sample_t s, r;
  char val[64];
  ig_buf_t line;
  ig_buf_init(&line);
  while (ig_prom_next(buf, size, &pos, &s) == 1) {
    if (pos <= last || pos > size) abort();
    last = pos;
    if (s.name < buf || s.name + s.name_len > buf + size || s.name_len == 0) abort();
    if (s.labels && (s.labels < buf || s.labels + s.labels_len > buf + size)) abort();
    static const char *keys[] = {"model_name", "running_lora_adapters", "le", "a"};
    for (int k = 0; k < 4; k++) {
      int rc = ig_prom_label(&s, keys[k], val, (size_t)(k * 7));
      if (rc != IG_ENOENT && rc != IG_ETOOBIG && (rc < 0 || (size_t)rc >= (size_t)(k * 7))) abort();
    }
    ig_buf_reset(&line);
    ig_buf_append(&line, s.name, s.name_len);
    if (s.labels) {
      ig_buf_append(&line, "{", 1);
      ig_buf_append(&line, s.labels, s.labels_len);
      ig_buf_append(&line, "}", 1);
    }
    ig_buf_append(&line, " ", 1);
    ig_prom_format_value(&line, s.value);
    size_t p2 = 0;
    if (ig_prom_next(line.data, line.len, &p2, &r) != 1) abort();
    if (r.name_len != s.name_len || memcmp(r.name, s.name, s.name_len) != 0) abort();
    if ((r.labels == NULL) != (s.labels == NULL) || r.labels_len != s.labels_len) abort();
    if (!(r.value == s.value || (isnan(r.value) && isnan(s.value)))) abort();
  }
  ig_buf_free(&line);
  for (int e = IG_ENGINE_VLLM; e <= IG_ENGINE_TRTLLM; e++) {
    ig_pod_metrics_t m;
    int rc = ig_metrics_extract((ig_engine_t)e, buf, size, &m);
    if (rc != 0 && rc != IG_ENOENT) abort();
    if (m.n_running_loras < 0 || m.n_running_loras > IG_MAX_LORAS) abort();
    if (m.n_waiting_loras < 0 || m.n_waiting_loras > IG_MAX_LORAS) abort();
    for (int i = 0; i < m.n_running_loras; i++)
      if (strnlen(m.running_loras[i], IG_LORA_NAME_MAX) >= IG_LORA_NAME_MAX) abort();
  }
  free(buf);
  return 0;
}

/* libFuzzer driver for the Prometheus text parser and engine extraction: every sample must lie inside
 * the input, label lookups must stay in bounds, extraction must succeed or say ENOENT for every
 * engine, each sample re-rendered as `name{labels} value` must parse back to the same sample, and the
 * name-filtered iterator (ig_prom_next_in) must return exactly the samples of ig_prom_next whose name
 * is in its set (the engines' names plus names taken from the input). */
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

  /* ig_prom_next_in == ig_prom_next filtered by name */
  char owned[3][64];
  const char *names[IG_PROM_NAMES_MAX] = {"vllm:num_requests_waiting", "vllm:lora_requests_info", "up", "a",
                                          NULL, NULL, NULL, NULL};
  size_t n_names = 4;
  pos = 0;
  while (n_names < 7 && ig_prom_next(buf, size, &pos, &s) == 1) {
    size_t k = n_names - 4, l = s.name_len < 63 ? s.name_len : 63; /* a cut name tests prefixes too */
    memcpy(owned[k], s.name, l);
    owned[k][l] = '\0';
    names[n_names++] = owned[k];
  }
  ig_prom_names_t set;
  ig_prom_names_init(&set, names, n_names);
  size_t pa = 0, pb = 0, which = 0;
  for (;;) {
    int rb;
    size_t want = 0;
    while ((rb = ig_prom_next(buf, size, &pb, &r)) == 1) {
      for (want = 0; want < n_names; want++)
        if (names[want] && names[want][0] && ig_prom_name_is(&r, names[want])) break;
      if (want < n_names) break;
    }
    int ra = ig_prom_next_in(buf, size, &pa, &set, &s, &which);
    if (ra != rb) abort();
    if (!ra) break;
    if (which != want || s.name != r.name || s.name_len != r.name_len || s.labels != r.labels ||
        s.labels_len != r.labels_len || pa != pb || memcmp(&s.value, &r.value, sizeof s.value) != 0)
      abort();
  }

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

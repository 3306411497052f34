/* Scrape parsing micro-benchmark: what one metrics page costs the gateway's CPU once its bytes are in
 * memory, per engine dialect, on real simulator pages (tests/fuzz/corpus/metrics_prom/sim-*.txt,
 * captured from `infergate sim --engine E` under load) or on the files given.
 *
 *   bench_metrics_scrape [--iters N] [ENGINE:FILE ...]
 *
 * Cases, each timed in 9 batches of N/9 passes of the page (clock_gettime around a batch); the fastest
 * batch counts, as the others were slowed by whatever else ran on the machine:
 *   lines    memchr over the lines: the floor of any line-based parser (the baseline);
 *   samples  ig_prom_next over every sample of the page (labels and values parsed);
 *   generic  extraction the generic way: every sample parsed, names compared, labels looked up with
 *            ig_prom_label (what ig_metrics_extract did before its name filter);
 *   extract  ig_metrics_extract (what the scraper runs per scrape);
 *   http     ig_http_parse_response of a typical response head + ig_metrics_extract of the body.
 * Prints ns per page and the ratio against `lines` measured in the same run. Run from the repository
 * root (the default pages are read from there). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infergate/core.h"
#include "infergate/http.h"
#include "infergate/metrics.h"

#define MAX_PAGES 16
#define BATCHES 9

typedef struct {
  ig_engine_t engine;
  char *path;
  char *text;
  size_t len;
  char *resp; /* head + body, as the scraper reads it */
  size_t resp_len, head_len;
} page_t;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  ig_buf_t b;
  ig_buf_init(&b);
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) ig_buf_append(&b, tmp, n);
  fclose(f);
  *len = b.len;
  char *out = ig_malloc(b.len + 1);
  memcpy(out, b.data ? b.data : "", b.len);
  out[b.len] = '\0';
  ig_buf_free(&b);
  return out;
}

static volatile size_t sink; /* keeps the optimiser from dropping the measured work */

static void case_lines(const page_t *p) {
  size_t n = 0;
  const char *q = p->text, *end = p->text + p->len;
  while (q < end) {
    const char *nl = memchr(q, '\n', (size_t)(end - q));
    n++;
    q = nl ? nl + 1 : end;
  }
  sink += n;
}

static void case_samples(const page_t *p) {
  ig_prom_sample_t s;
  size_t pos = 0, n = 0;
  while (ig_prom_next(p->text, p->len, &pos, &s) == 1) n += s.name_len;
  sink += n;
}

/* The generic extraction: every sample parsed and compared by name (the pre-filter algorithm). */
static void case_generic(const page_t *p) {
  static const char *const names[][4] = {
      [IG_ENGINE_VLLM] = {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
                          "vllm:gpu_cache_usage_perc"},
      [IG_ENGINE_VLLM_V0] = {"vllm:num_requests_waiting", "vllm:num_requests_running",
                             "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"},
      [IG_ENGINE_SGLANG] = {"sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage", NULL},
      [IG_ENGINE_TRTLLM] = {"trtllm_num_requests_waiting", NULL, NULL, NULL},
  };
  ig_prom_sample_t s;
  size_t pos = 0;
  double acc = 0;
  char val[2048];
  int vllm = p->engine == IG_ENGINE_VLLM || p->engine == IG_ENGINE_VLLM_V0;
  while (ig_prom_next(p->text, p->len, &pos, &s) == 1) {
    for (int i = 0; i < 4; i++)
      if (names[p->engine][i] && ig_prom_name_is(&s, names[p->engine][i])) acc += s.value;
    if (vllm && ig_prom_name_is(&s, "vllm:lora_requests_info")) {
      acc += ig_prom_label(&s, "max_lora", val, sizeof val);
      acc += ig_prom_label(&s, "running_lora_adapters", val, sizeof val);
      acc += ig_prom_label(&s, "waiting_lora_adapters", val, sizeof val);
    } else if (vllm && ig_prom_name_is(&s, "vllm:cache_config_info")) {
      acc += ig_prom_label(&s, "block_size", val, sizeof val);
      acc += ig_prom_label(&s, "num_gpu_blocks", val, sizeof val);
    }
  }
  sink += (size_t)(isfinite(acc) ? 1 : 0);
}

static void case_extract(const page_t *p) {
  static ig_pod_metrics_t m; /* large: off the stack, as the scraper keeps it */
  sink += (size_t)ig_metrics_extract(p->engine, p->text, p->len, &m) + (size_t)m.has_kv;
}

static void case_http(const page_t *p) {
  static ig_pod_metrics_t m;
  ig_http_header_t hdrs[64];
  ig_http_limits_t lim = {16384, 64};
  ig_http_response_t res;
  int n = ig_http_parse_response(p->resp, p->resp_len, &res, hdrs, 64, &lim);
  if (n <= 0) abort();
  sink += (size_t)ig_metrics_extract(p->engine, p->resp + n, p->resp_len - (size_t)n, &m);
}

static const struct {
  const char *name;
  void (*fn)(const page_t *);
} cases[] = {
    {"lines", case_lines}, {"samples", case_samples}, {"generic", case_generic},
    {"extract", case_extract}, {"http", case_http},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static int add_page(page_t *pages, int *n, ig_engine_t engine, const char *path) {
  if (*n >= MAX_PAGES) return -1;
  page_t *p = &pages[*n];
  p->text = slurp(path, &p->len);
  if (!p->text) {
    fprintf(stderr, "bench_metrics_scrape: cannot read %s\n", path);
    return -1;
  }
  p->engine = engine;
  p->path = ig_strdup(path);
  ig_buf_t r;
  ig_buf_init(&r);
  ig_buf_printf(&r,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                "Content-Length: %zu\r\n\r\n",
                p->len);
  p->head_len = r.len;
  ig_buf_append(&r, p->text, p->len);
  p->resp = ig_malloc(r.len + 1);
  memcpy(p->resp, r.data, r.len);
  p->resp_len = r.len;
  ig_buf_free(&r);
  (*n)++;
  return 0;
}

int main(int argc, char **argv) {
  long iters = 20000;
  page_t pages[MAX_PAGES];
  int n = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
      iters = strtol(argv[++i], NULL, 10);
      if (iters < 1) iters = 1;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      printf("usage: bench_metrics_scrape [--iters N] [ENGINE:FILE ...]\n");
      return 0;
    } else {
      char *colon = strchr(argv[i], ':');
      ig_engine_t e;
      if (!colon) {
        fprintf(stderr, "bench_metrics_scrape: expected ENGINE:FILE, got %s\n", argv[i]);
        return 2;
      }
      *colon = '\0';
      if (ig_metrics_engine_parse(argv[i], &e) != 0 || add_page(pages, &n, e, colon + 1) != 0) return 2;
    }
  }
  if (n == 0) {
    static const struct {
      ig_engine_t e;
      const char *path;
    } defaults[] = {
        {IG_ENGINE_VLLM, "tests/fuzz/corpus/metrics_prom/sim-vllm.txt"},
        {IG_ENGINE_VLLM_V0, "tests/fuzz/corpus/metrics_prom/sim-vllm-v0.txt"},
        {IG_ENGINE_SGLANG, "tests/fuzz/corpus/metrics_prom/sim-sglang.txt"},
        {IG_ENGINE_TRTLLM, "tests/fuzz/corpus/metrics_prom/sim-trtllm.txt"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
      if (add_page(pages, &n, defaults[i].e, defaults[i].path) != 0) return 2;
  }

  printf("Scrape parsing, %ld passes per case, fastest of %d batches (ns per page; ratio vs memchr line scan in "
         "the same run)\n\n",
         iters, BATCHES);
  printf("| page | engine | bytes |");
  for (size_t c = 0; c < N_CASES; c++) printf(" %s ns |", cases[c].name);
  for (size_t c = 1; c < N_CASES; c++) printf(" %s vs lines |", cases[c].name);
  printf("\n|---|---|---:|");
  for (size_t c = 0; c < 2 * N_CASES - 1; c++) printf("---:|");
  printf("\n");
  for (int i = 0; i < n; i++) {
    const page_t *p = &pages[i];
    double ns[N_CASES];
    for (size_t c = 0; c < N_CASES; c++) {
      long per = iters / BATCHES > 0 ? iters / BATCHES : 1;
      for (long k = 0; k < per / 4 + 1; k++) cases[c].fn(p); /* warm caches */
      ns[c] = -1;
      for (int b = 0; b < BATCHES; b++) {
        double t0 = now_ns();
        for (long k = 0; k < per; k++) cases[c].fn(p);
        double t = (now_ns() - t0) / (double)per;
        if (ns[c] < 0 || t < ns[c]) ns[c] = t;
      }
    }
    const char *base = strrchr(p->path, '/');
    printf("| %s | %s | %zu |", base ? base + 1 : p->path, ig_metrics_engine_name(p->engine), p->len);
    for (size_t c = 0; c < N_CASES; c++) printf(" %.0f |", ns[c]);
    for (size_t c = 1; c < N_CASES; c++) printf(" %.2fx |", ns[c] / ns[0]);
    printf("\n");
  }
  for (int i = 0; i < n; i++) {
    free(pages[i].text);
    free(pages[i].resp);
    free(pages[i].path);
  }
  return 0;
}

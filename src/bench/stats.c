/* Sample sets and summaries for infergate bench. Percentiles use the nearest-rank method on the
 * sorted samples, so every reported percentile is a value that was actually observed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

void ig_bench_samples_init(ig_bench_samples_t *s) {
  memset(s, 0, sizeof *s);
}

void ig_bench_samples_free(ig_bench_samples_t *s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

void ig_bench_samples_add(ig_bench_samples_t *s, double x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 64;
    s->v = ig_realloc(s->v, s->cap * sizeof *s->v);
  }
  s->v[s->n++] = x;
  s->sorted = 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void ensure_sorted(ig_bench_samples_t *s) {
  if (!s->sorted && s->n > 1) qsort(s->v, s->n, sizeof *s->v, cmp_double);
  s->sorted = 1;
}

double ig_bench_percentile(ig_bench_samples_t *s, double p) {
  if (!s->n) return 0;
  ensure_sorted(s);
  if (p <= 0) return s->v[0];
  if (p >= 100) return s->v[s->n - 1];
  /* rank = ceil(p/100 * n); the small epsilon keeps exact products (e.g. 0.9 * 10) from rounding up */
  double r = ceil(p / 100.0 * (double)s->n - 1e-9);
  size_t rank = r < 1 ? 1 : (size_t)r;
  if (rank > s->n) rank = s->n;
  return s->v[rank - 1];
}

void ig_bench_summarize(ig_bench_samples_t *s, ig_bench_summary_t *out) {
  memset(out, 0, sizeof *out);
  if (!s->n) return;
  ensure_sorted(s);
  double sum = 0;
  for (size_t i = 0; i < s->n; i++)
    sum += s->v[i];
  double mean = sum / (double)s->n, var = 0;
  for (size_t i = 0; i < s->n; i++)
    var += (s->v[i] - mean) * (s->v[i] - mean);
  out->count = s->n;
  out->mean = mean;
  out->stddev = s->n > 1 ? sqrt(var / (double)(s->n - 1)) : 0;
  out->min = s->v[0];
  out->max = s->v[s->n - 1];
  out->p50 = ig_bench_percentile(s, 50);
  out->p90 = ig_bench_percentile(s, 90);
  out->p95 = ig_bench_percentile(s, 95);
  out->p99 = ig_bench_percentile(s, 99);
}

/* Sample sets and summaries for infergate bench. Percentiles use the nearest-rank method on the
 * sorted samples, so every reported percentile is a value that was actually observed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
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

/* ---- SLO and goodput ---------------------------------------------------------------------- */

int ig_bench_slo_any(const ig_bench_slo_t *slo) {
  return slo->ttft_ms > 0 || slo->tpot_ms > 0 || slo->e2e_ms > 0;
}

/* Parses one "NUMBER[us|ms|s]" duration into ms. */
static int parse_duration_ms(const char *v, size_t n, double *out) {
  char buf[64];
  if (!n || n >= sizeof buf) return IG_EINVAL;
  memcpy(buf, v, n);
  buf[n] = '\0';
  char *end;
  errno = 0;
  double x = strtod(buf, &end);
  if (end == buf || errno || !isfinite(x) || x <= 0) return IG_EINVAL;
  double scale;
  if (!*end || !strcmp(end, "ms"))
    scale = 1;
  else if (!strcmp(end, "s"))
    scale = 1000;
  else if (!strcmp(end, "us"))
    scale = 0.001;
  else
    return IG_EINVAL;
  *out = x * scale;
  return isfinite(*out) ? 0 : IG_EINVAL;
}

int ig_bench_slo_parse(const char *s, ig_bench_slo_t *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  const char *p = s;
  while (*p) {
    size_t n = strcspn(p, ",");
    const char *eq = memchr(p, '=', n);
    double *dst = NULL, ms;
    size_t kl = eq ? (size_t)(eq - p) : 0;
    if (eq && kl == 4 && !strncmp(p, "ttft", 4))
      dst = &out->ttft_ms;
    else if (eq && kl == 4 && !strncmp(p, "tpot", 4))
      dst = &out->tpot_ms;
    else if (eq && kl == 3 && !strncmp(p, "e2e", 3))
      dst = &out->e2e_ms;
    if (!dst) {
      snprintf(err, errcap, "'%.*s': expected ttft=, tpot= or e2e= followed by a duration", (int)n, p);
      return IG_EINVAL;
    }
    if (*dst > 0) {
      snprintf(err, errcap, "'%.*s' is given twice", (int)kl, p);
      return IG_EINVAL;
    }
    if (parse_duration_ms(eq + 1, n - kl - 1, &ms) < 0) {
      snprintf(err, errcap, "'%.*s': expected a positive duration such as 200ms, 1.5s or 500us", (int)n, p);
      return IG_EINVAL;
    }
    *dst = ms;
    p += n;
    if (*p == ',') {
      p++;
      if (!*p) break;
    }
  }
  if (!ig_bench_slo_any(out)) {
    snprintf(err, errcap, "empty SLO: give at least one of ttft=, tpot=, e2e=");
    return IG_EINVAL;
  }
  return 0;
}

int ig_bench_slo_met(const ig_bench_slo_t *slo, const ig_bench_record_t *r) {
  if (!r->ok) return 0;
  if (slo->ttft_ms > 0 && !(r->ttft_ms >= 0 && r->ttft_ms <= slo->ttft_ms)) return 0;
  if (slo->tpot_ms > 0 && r->tpot_ms > slo->tpot_ms) return 0; /* < 0: no TPOT, nothing to miss */
  if (slo->e2e_ms > 0 && !(r->e2e_ms >= 0 && r->e2e_ms <= slo->e2e_ms)) return 0;
  return 1;
}

void ig_bench_goodput(const ig_bench_slo_t *slo, const ig_bench_record_t *recs, size_t n, double wall_s,
                      ig_bench_goodput_t *out) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < n; i++)
    out->met += (size_t)ig_bench_slo_met(slo, &recs[i]);
  out->goodput = wall_s > 0 ? (double)out->met / wall_s : 0;
  out->fraction = n ? (double)out->met / (double)n : 0;
}

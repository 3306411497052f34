/* A small metrics registry for our own /metrics: counters, gauges and fixed-bucket histograms, series
 * keyed by a pre-rendered label string, rendered in the Prometheus text exposition format. */
#include "infergate/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *labels; /* pre-rendered, "" for none */
  uint64_t hash;
  double value;      /* counter/gauge value; histogram sum */
  uint64_t count;    /* histogram observations */
  uint64_t *buckets; /* histogram: per-bucket (not cumulative) counts, one per finite bound */
} series_t;

struct ig_metric {
  char *name;
  char *help;
  ig_metric_type_t type;
  double *bounds;
  size_t n_bounds;
  series_t *series; /* creation order */
  size_t n, cap;
  size_t *index; /* open addressing over series: slot holds series index + 1, 0 = empty */
  size_t index_cap;
};

struct ig_registry {
  ig_metric_t **v;
  size_t n, cap;
};

ig_registry_t *ig_registry_new(void) { return IG_NEW(ig_registry_t); }

static void series_free(series_t *s) {
  free(s->labels);
  free(s->buckets);
}

static void metric_free(ig_metric_t *m) {
  for (size_t i = 0; i < m->n; i++) series_free(&m->series[i]);
  free(m->series);
  free(m->index);
  free(m->bounds);
  free(m->name);
  free(m->help);
  free(m);
}

void ig_registry_free(ig_registry_t *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->n; i++) metric_free(reg->v[i]);
  free(reg->v);
  free(reg);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Finds or creates a metric; returns NULL when the name exists with another type. */
static ig_metric_t *reg_add(ig_registry_t *reg, const char *name, const char *help, ig_metric_type_t type) {
  for (size_t i = 0; i < reg->n; i++)
    if (strcmp(reg->v[i]->name, name) == 0) return reg->v[i]->type == type ? reg->v[i] : NULL;
  if (reg->n == reg->cap) {
    reg->cap = reg->cap ? reg->cap * 2 : 16;
    reg->v = ig_realloc(reg->v, reg->cap * sizeof *reg->v);
  }
  ig_metric_t *m = IG_NEW(ig_metric_t);
  m->name = ig_strdup(name);
  m->help = ig_strdup(help ? help : "");
  m->type = type;
  reg->v[reg->n++] = m;
  return m;
}

ig_metric_t *ig_registry_counter(ig_registry_t *reg, const char *name, const char *help) {
  return reg_add(reg, name, help, IG_METRIC_COUNTER);
}

ig_metric_t *ig_registry_gauge(ig_registry_t *reg, const char *name, const char *help) {
  return reg_add(reg, name, help, IG_METRIC_GAUGE);
}

ig_metric_t *ig_registry_histogram(ig_registry_t *reg, const char *name, const char *help, const double *bounds,
                                   size_t n) {
  size_t before = reg->n;
  ig_metric_t *m = reg_add(reg, name, help, IG_METRIC_HISTOGRAM);
  if (!m || reg->n == before) return m;
  /* keep finite bounds, sorted, without duplicates; +Inf is implicit */
  m->bounds = ig_malloc((n ? n : 1) * sizeof *m->bounds);
  for (size_t i = 0; i < n; i++)
    if (isfinite(bounds[i])) m->bounds[m->n_bounds++] = bounds[i];
  qsort(m->bounds, m->n_bounds, sizeof *m->bounds, cmp_double);
  size_t k = 0;
  for (size_t i = 0; i < m->n_bounds; i++)
    if (k == 0 || m->bounds[i] != m->bounds[k - 1]) m->bounds[k++] = m->bounds[i];
  m->n_bounds = k;
  return m;
}

static void index_insert(ig_metric_t *m, size_t si) {
  size_t mask = m->index_cap - 1;
  size_t slot = (size_t)m->series[si].hash & mask;
  while (m->index[slot]) slot = (slot + 1) & mask;
  m->index[slot] = si + 1;
}

static void index_rebuild(ig_metric_t *m, size_t cap) {
  free(m->index);
  m->index_cap = cap;
  m->index = ig_calloc(cap, sizeof *m->index);
  for (size_t i = 0; i < m->n; i++) index_insert(m, i);
}

/* Returns the series for labels, or NULL (create == 0) / a new zeroed series (create == 1). */
static series_t *series_get(ig_metric_t *m, const char *labels, int create) {
  if (!labels) labels = "";
  uint64_t h = ig_hash64(labels, strlen(labels), IG_HASH_SEED);
  if (m->index_cap) {
    size_t mask = m->index_cap - 1;
    for (size_t slot = (size_t)h & mask; m->index[slot]; slot = (slot + 1) & mask) {
      series_t *s = &m->series[m->index[slot] - 1];
      if (s->hash == h && strcmp(s->labels, labels) == 0) return s;
    }
  }
  if (!create) return NULL;
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 8;
    m->series = ig_realloc(m->series, m->cap * sizeof *m->series);
  }
  series_t *s = &m->series[m->n++];
  memset(s, 0, sizeof *s);
  s->labels = ig_strdup(labels);
  s->hash = h;
  if (m->type == IG_METRIC_HISTOGRAM) s->buckets = ig_calloc(m->n_bounds ? m->n_bounds : 1, sizeof *s->buckets);
  if (m->n * 2 > m->index_cap)
    index_rebuild(m, m->index_cap ? m->index_cap * 2 : 16);
  else
    index_insert(m, m->n - 1);
  return s;
}

void ig_metric_add(ig_metric_t *m, const char *labels, double v) {
  if (!m || m->type == IG_METRIC_HISTOGRAM) return;
  if (m->type == IG_METRIC_COUNTER && !(v >= 0)) return;
  series_get(m, labels, 1)->value += v;
}

void ig_metric_set(ig_metric_t *m, const char *labels, double v) {
  if (!m || m->type == IG_METRIC_HISTOGRAM) return;
  series_get(m, labels, 1)->value = v;
}

void ig_metric_observe(ig_metric_t *m, const char *labels, double v) {
  if (!m || m->type != IG_METRIC_HISTOGRAM || isnan(v)) return;
  series_t *s = series_get(m, labels, 1);
  /* first bucket whose upper bound is >= v (binary search); past the end = +Inf bucket only */
  size_t lo = 0, hi = m->n_bounds;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (v <= m->bounds[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  if (lo < m->n_bounds) s->buckets[lo]++;
  s->count++;
  s->value += v;
}

double ig_metric_get(const ig_metric_t *m, const char *labels) {
  if (!m) return 0;
  const series_t *s = series_get((ig_metric_t *)m, labels, 0);
  if (!s) return 0;
  return m->type == IG_METRIC_HISTOGRAM ? (double)s->count : s->value;
}

double ig_metric_sum(const ig_metric_t *m, const char *labels) {
  if (!m || m->type != IG_METRIC_HISTOGRAM) return 0;
  const series_t *s = series_get((ig_metric_t *)m, labels, 0);
  return s ? s->value : 0;
}

int ig_metric_remove(ig_metric_t *m, const char *labels) {
  if (!m) return IG_ENOENT;
  series_t *s = series_get(m, labels, 0);
  if (!s) return IG_ENOENT;
  size_t i = (size_t)(s - m->series);
  series_free(s);
  memmove(&m->series[i], &m->series[i + 1], (m->n - i - 1) * sizeof *m->series);
  m->n--;
  index_rebuild(m, m->index_cap); /* removals are rare; indexes shifted */
  return 0;
}

void ig_metric_clear(ig_metric_t *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n; i++) series_free(&m->series[i]);
  m->n = 0;
  if (m->index) memset(m->index, 0, m->index_cap * sizeof *m->index);
}

/* Appends `name{labels}` / `name{labels,extra}` / `name` (suffix appended to the name). */
static void put_series_name(ig_buf_t *out, const char *name, const char *suffix, const char *labels,
                            const char *extra) {
  ig_buf_puts(out, name);
  if (suffix) ig_buf_puts(out, suffix);
  int has_l = labels && *labels, has_e = extra && *extra;
  if (!has_l && !has_e) return;
  ig_buf_append(out, "{", 1);
  if (has_l) ig_buf_puts(out, labels);
  if (has_l && has_e) ig_buf_append(out, ",", 1);
  if (has_e) ig_buf_puts(out, extra);
  ig_buf_append(out, "}", 1);
}

/* HELP text escaping: backslash and newline. */
static void put_help(ig_buf_t *out, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      ig_buf_append(out, "\\\\", 2);
    else if (*s == '\n')
      ig_buf_append(out, "\\n", 2);
    else
      ig_buf_append(out, s, 1);
  }
}

static void render_histogram(const ig_metric_t *m, const series_t *s, ig_buf_t *out) {
  ig_buf_t le;
  ig_buf_init(&le);
  uint64_t cum = 0;
  for (size_t b = 0; b <= m->n_bounds; b++) {
    ig_buf_reset(&le);
    ig_buf_puts(&le, "le=\"");
    if (b < m->n_bounds) {
      cum += s->buckets[b];
      ig_prom_format_value(&le, m->bounds[b]);
    } else {
      cum = s->count;
      ig_buf_puts(&le, "+Inf");
    }
    ig_buf_append(&le, "\"", 1);
    put_series_name(out, m->name, "_bucket", s->labels, le.data);
    ig_buf_printf(out, " %llu\n", (unsigned long long)cum);
  }
  ig_buf_free(&le);
  put_series_name(out, m->name, "_sum", s->labels, NULL);
  ig_buf_append(out, " ", 1);
  ig_prom_format_value(out, s->value);
  ig_buf_append(out, "\n", 1);
  put_series_name(out, m->name, "_count", s->labels, NULL);
  ig_buf_printf(out, " %llu\n", (unsigned long long)s->count);
}

void ig_registry_render(const ig_registry_t *reg, ig_buf_t *out) {
  static const char *types[] = {"counter", "gauge", "histogram"};
  for (size_t i = 0; i < reg->n; i++) {
    const ig_metric_t *m = reg->v[i];
    ig_buf_printf(out, "# HELP %s ", m->name);
    put_help(out, m->help);
    ig_buf_printf(out, "\n# TYPE %s %s\n", m->name, types[m->type]);
    for (size_t j = 0; j < m->n; j++) {
      const series_t *s = &m->series[j];
      if (m->type == IG_METRIC_HISTOGRAM) {
        render_histogram(m, s, out);
        continue;
      }
      put_series_name(out, m->name, NULL, s->labels, NULL);
      ig_buf_append(out, " ", 1);
      ig_prom_format_value(out, s->value);
      ig_buf_append(out, "\n", 1);
    }
  }
}

/* infergate demo: reading bench results and rendering them (text table, SVG charts, HTML report).
 * Everything here is a pure function of its inputs, so the renderers are unit-tested. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

/* Eight distinguishable colours (Okabe-Ito plus two), one per target in order. */
static const char *const palette[] = {"#0072b2", "#e69f00", "#009e73", "#cc79a7",
                                      "#56b4e9", "#d55e00", "#000000", "#999999"};
#define PALETTE_N (sizeof palette / sizeof palette[0])

static double num(const json_t *o, const char *k) {
  const json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : 0.0;
}

static double pct(const json_t *sum, const char *obj, const char *k) {
  return num(json_object_get(sum, obj), k);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int ig_demo_result_from_json(ig_demo_result_t *r, const json_t *root) {
  const json_t *sum = json_object_get(root, "summary");
  if (!json_is_object(sum)) return IG_EPARSE;
  r->completed = (long)num(sum, "completed");
  r->failed = (long)num(sum, "failed");
  r->shed = (long)num(sum, "shed");
  r->sent = (long)num(sum, "requests_sent");
  r->req_s = num(sum, "request_throughput");
  r->tok_s = num(sum, "output_throughput");
  r->duration_s = num(sum, "duration_s");
  r->ttft_p50 = pct(sum, "ttft_ms", "p50");
  r->ttft_p90 = pct(sum, "ttft_ms", "p90");
  r->ttft_p99 = pct(sum, "ttft_ms", "p99");
  r->tpot_p90 = pct(sum, "tpot_ms", "p90");
  r->e2e_p90 = pct(sum, "e2e_ms", "p90");
  r->have_goodput = json_is_number(json_object_get(sum, "goodput"));
  r->goodput = num(sum, "goodput");
  r->goodput_fraction = num(sum, "goodput_fraction");
  json_decref(r->summary);
  r->summary = json_deep_copy(sum);

  free(r->ttft);
  free(r->done_s);
  r->ttft = r->done_s = NULL;
  r->n_ttft = r->n_done = 0;
  const json_t *reqs = json_object_get(root, "requests");
  size_t n = json_array_size(reqs);
  if (n) {
    r->ttft = ig_calloc(n, sizeof *r->ttft);
    r->done_s = ig_calloc(n, sizeof *r->done_s);
  }
  for (size_t i = 0; i < n; i++) {
    const json_t *q = json_array_get(reqs, i);
    if (!json_is_true(json_object_get(q, "ok"))) continue;
    const json_t *t = json_object_get(q, "ttft_ms");
    if (json_is_number(t)) r->ttft[r->n_ttft++] = json_number_value(t);
    const json_t *st = json_object_get(q, "start_ms"), *e2e = json_object_get(q, "e2e_ms");
    if (json_is_number(st) && json_is_number(e2e))
      r->done_s[r->n_done++] = (json_number_value(st) + json_number_value(e2e)) / 1000.0;
  }
  if (r->n_ttft) qsort(r->ttft, r->n_ttft, sizeof *r->ttft, cmp_double);
  if (r->n_done) qsort(r->done_s, r->n_done, sizeof *r->done_s, cmp_double);
  r->ran = 1;
  return 0;
}

void ig_demo_result_free(ig_demo_result_t *r) {
  free(r->error);
  free(r->ttft);
  free(r->done_s);
  json_decref(r->summary);
  const char *id = r->id, *name = r->name;
  memset(r, 0, sizeof *r);
  r->id = id;
  r->name = name;
}

double ig_demo_hit_pct(const ig_demo_result_t *r) {
  return r->cache_queries > 0 ? 100.0 * r->cache_hits / r->cache_queries : -1.0;
}

int ig_demo_slo_parse(const char *s, ig_demo_slo_t *out) {
  memset(out, 0, sizeof *out);
  if (!s || !*s) return IG_EINVAL;
  const char *p = s;
  for (;;) {
    const char *eq = strchr(p, '=');
    if (!eq) return IG_EINVAL;
    size_t kl = (size_t)(eq - p);
    double *dst = kl == 4 && !memcmp(p, "ttft", 4)   ? &out->ttft_ms
                  : kl == 4 && !memcmp(p, "tpot", 4) ? &out->tpot_ms
                  : kl == 3 && !memcmp(p, "e2e", 3)  ? &out->e2e_ms
                                                     : NULL;
    if (!dst || *dst > 0) return IG_EINVAL; /* unknown or repeated key */
    const char *v = eq + 1;
    if (!(*v >= '0' && *v <= '9') && *v != '.') return IG_EINVAL; /* no sign, no blank, no "inf" */
    size_t span = strspn(v, "0123456789.");
    char *end;
    double x = strtod(v, &end);
    if (end == v || end != v + span) return IG_EINVAL; /* plain decimals only: no hex, no exponent */
    if (!strncmp(end, "us", 2))
      x /= 1000.0, end += 2;
    else if (!strncmp(end, "ms", 2))
      end += 2;
    else if (*end == 's')
      x *= 1000.0, end += 1;
    if (!(x > 0) || !(x <= 1e9)) return IG_EINVAL; /* up to ~11 days; rejects inf and NaN */
    *dst = x;
    if (*end == '\0') return 0;
    if (*end != ',') return IG_EINVAL;
    p = end + 1;
  }
}

void ig_demo_slo_format(ig_buf_t *b, const ig_demo_slo_t *slo, double scale) {
  if (!(scale > 0)) scale = 1;
  const char *sep = "";
  const char *keys[3] = {"ttft", "tpot", "e2e"};
  double vals[3] = {slo->ttft_ms, slo->tpot_ms, slo->e2e_ms};
  for (int i = 0; i < 3; i++) {
    if (!(vals[i] > 0)) continue;
    /* plain decimals (the bench takes no exponents): ms with up to 3 decimals, or whole us below 1 ms */
    double ms = vals[i] / scale;
    if (ms >= 1) {
      char num[64];
      int k = snprintf(num, sizeof num, "%.3f", ms);
      while (k > 0 && num[k - 1] == '0')
        num[--k] = '\0';
      if (k > 0 && num[k - 1] == '.') num[--k] = '\0';
      ig_buf_printf(b, "%s%s=%sms", sep, keys[i], num);
    } else {
      double us = round(ms * 1000.0);
      ig_buf_printf(b, "%s%s=%.0fus", sep, keys[i], us < 1 ? 1.0 : us);
    }
    sep = ",";
  }
}

/* Matches a sample line of metric `name` (followed by '{' or a blank); returns its value's start. */
static const char *sample_value(const char *line, const char *end, const char *name) {
  size_t n = strlen(name);
  if ((size_t)(end - line) <= n || memcmp(line, name, n) != 0) return NULL;
  const char *p = line + n;
  if (*p == '{') {
    /* skip the label set; label values may hold '}' only inside quotes */
    int quoted = 0;
    for (p++; p < end; p++) {
      if (*p == '\\' && quoted) {
        p++;
        continue;
      }
      if (*p == '"') quoted = !quoted;
      if (*p == '}' && !quoted) break;
    }
    if (p >= end) return NULL;
    p++;
  }
  if (p >= end || (*p != ' ' && *p != '\t')) return NULL;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  return p < end ? p : NULL;
}

int ig_demo_parse_prefix_counters(const char *text, size_t len, double *hits, double *queries) {
  int have_h = 0, have_q = 0;
  *hits = *queries = 0;
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    if (*p != '#') {
      const char *v;
      char tmp[64];
      double *dst = NULL;
      if ((v = sample_value(p, le, "vllm:prefix_cache_hits_total")))
        dst = hits, have_h = 1;
      else if ((v = sample_value(p, le, "vllm:prefix_cache_queries_total")))
        dst = queries, have_q = 1;
      if (dst) {
        size_t k = (size_t)(le - v) < sizeof tmp - 1 ? (size_t)(le - v) : sizeof tmp - 1;
        memcpy(tmp, v, k);
        tmp[k] = '\0';
        char *e;
        double x = strtod(tmp, &e);
        if (e != tmp && isfinite(x)) *dst += x;
      }
    }
    p = nl ? nl + 1 : end;
  }
  return have_h && have_q ? 0 : IG_ENOENT;
}

void ig_demo_axis(double max, int want_ticks, ig_demo_axis_t *ax) {
  if (want_ticks < 1) want_ticks = 5;
  if (!(max > 0) || !isfinite(max)) max = 1;
  double raw = max / want_ticks;
  double mag = pow(10, floor(log10(raw)));
  double f = raw / mag;
  double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  ax->step = step;
  ax->max = ceil(max / step - 1e-9) * step;
  if (ax->max <= 0) ax->max = step;
  ax->decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  if (ax->decimals > 6) ax->decimals = 6;
}

void ig_demo_html_escape(ig_buf_t *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '&':
      ig_buf_puts(b, "&amp;");
      break;
    case '<':
      ig_buf_puts(b, "&lt;");
      break;
    case '>':
      ig_buf_puts(b, "&gt;");
      break;
    case '"':
      ig_buf_puts(b, "&quot;");
      break;
    case '\'':
      ig_buf_puts(b, "&#39;");
      break;
    default:
      ig_buf_append(b, s, 1);
    }
  }
}

/* ---------------------------------------------------------------- table */

/* The cells of one row, as strings, shared by the text and HTML tables. */
#define NCOLS 12
static const char *const col_names[NCOLS] = {"target",   "completed",    "errors+shed", "TTFT p50",
                                             "TTFT p90", "TPOT p90",     "E2E p90",     "req/s",
                                             "goodput",  "output tok/s", "prefix hit",  "TTFT p90 vs base"};

static void row_cells(const ig_demo_result_t *rows, size_t i, size_t n, size_t base, char cells[NCOLS][48]) {
  const ig_demo_result_t *r = &rows[i];
  snprintf(cells[0], 48, "%s", r->name ? r->name : r->id);
  if (!r->ran) {
    snprintf(cells[1], 48, "-");
    snprintf(cells[2], 48, "did not run");
    for (int c = 3; c < NCOLS; c++)
      snprintf(cells[c], 48, "-");
    return;
  }
  snprintf(cells[1], 48, "%ld", r->completed);
  snprintf(cells[2], 48, "%ld+%ld", r->failed, r->shed);
  snprintf(cells[3], 48, "%.1f ms", r->ttft_p50);
  snprintf(cells[4], 48, "%.1f ms", r->ttft_p90);
  snprintf(cells[5], 48, "%.2f ms", r->tpot_p90);
  snprintf(cells[6], 48, "%.0f ms", r->e2e_p90);
  snprintf(cells[7], 48, "%.2f", r->req_s);
  /* goodput: requests/s meeting the SLO, and the share of requests sent that did */
  if (r->have_goodput)
    snprintf(cells[8], 48, "%.2f (%.0f%%)", r->goodput, 100.0 * r->goodput_fraction);
  else
    snprintf(cells[8], 48, "-");
  snprintf(cells[9], 48, "%.0f", r->tok_s);
  double hit = ig_demo_hit_pct(r);
  if (hit >= 0)
    snprintf(cells[10], 48, "%.1f%%", hit);
  else
    snprintf(cells[10], 48, "-");
  if (base < n && rows[base].ran && rows[base].ttft_p90 > 0 && r->completed > 0)
    snprintf(cells[11], 48, "%.2fx", r->ttft_p90 / rows[base].ttft_p90);
  else
    snprintf(cells[11], 48, "-");
}

void ig_demo_table_text(ig_buf_t *b, const ig_demo_result_t *rows, size_t n, size_t base) {
  int w[NCOLS];
  char cells[NCOLS][48];
  for (int c = 0; c < NCOLS; c++)
    w[c] = (int)strlen(col_names[c]);
  for (size_t i = 0; i < n; i++) {
    row_cells(rows, i, n, base, cells);
    for (int c = 0; c < NCOLS; c++)
      if ((int)strlen(cells[c]) > w[c]) w[c] = (int)strlen(cells[c]);
  }
  for (int c = 0; c < NCOLS; c++)
    ig_buf_printf(b, c ? "  %*s" : "%-*s", w[c], col_names[c]);
  ig_buf_puts(b, "\n");
  for (size_t i = 0; i < n; i++) {
    row_cells(rows, i, n, base, cells);
    for (int c = 0; c < NCOLS; c++)
      ig_buf_printf(b, c ? "  %*s" : "%-*s", w[c], cells[c]);
    ig_buf_puts(b, "\n");
  }
}

static void table_html(ig_buf_t *b, const ig_demo_result_t *rows, size_t n, size_t base) {
  char cells[NCOLS][48];
  ig_buf_puts(b, "<table>\n<thead><tr>");
  for (int c = 0; c < NCOLS; c++) {
    ig_buf_puts(b, "<th>");
    ig_demo_html_escape(b, c == NCOLS - 1 && base < n ? "TTFT p90 vs " : col_names[c]);
    if (c == NCOLS - 1 && base < n) ig_demo_html_escape(b, rows[base].name);
    ig_buf_puts(b, "</th>");
  }
  ig_buf_puts(b, "</tr></thead>\n<tbody>\n");
  for (size_t i = 0; i < n; i++) {
    row_cells(rows, i, n, base, cells);
    ig_buf_printf(b, "<tr id=\"row-");
    ig_demo_html_escape(b, rows[i].id);
    ig_buf_puts(b, "\">");
    for (int c = 0; c < NCOLS; c++) {
      ig_buf_puts(b, c ? "<td>" : "<td class=\"name\">");
      if (c == 0)
        ig_buf_printf(b, "<span class=\"sw\" style=\"background:%s\"></span>", palette[i % PALETTE_N]);
      if (c == 2 && !rows[i].ran && rows[i].error) {
        ig_demo_html_escape(b, rows[i].error);
      } else {
        ig_demo_html_escape(b, cells[c]);
      }
      ig_buf_puts(b, "</td>");
    }
    ig_buf_puts(b, "</tr>\n");
  }
  ig_buf_puts(b, "</tbody>\n</table>\n");
}

/* ---------------------------------------------------------------- SVG charts */

typedef struct {
  int w, h;
  double x0, y0, pw, ph; /* plot area: left, top, width, height in px */
  ig_demo_axis_t ax, ay;
} frame_t;

static double fx(const frame_t *f, double x) {
  if (x < 0) x = 0;
  if (x > f->ax.max) x = f->ax.max;
  return f->x0 + f->pw * x / f->ax.max;
}

static double fy(const frame_t *f, double y) {
  if (y < 0) y = 0;
  if (y > f->ay.max) y = f->ay.max;
  return f->y0 + f->ph - f->ph * y / f->ay.max;
}

/* Opens an <svg> with axes, grid, ticks, labels and a legend of the n targets. */
static void frame_open(ig_buf_t *b, frame_t *f, const char *cls, const char *title, const char *xlabel,
                       const char *ylabel, const ig_demo_result_t *rows, size_t n) {
  double legend_w = 190;
  f->x0 = 64;
  f->y0 = 34;
  f->pw = f->w - f->x0 - legend_w - 16;
  if (f->pw < 100) f->pw = 100;
  f->ph = f->h - f->y0 - 52;
  if (f->ph < 60) f->ph = 60;
  ig_buf_printf(b,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"%s\" width=\"%d\" height=\"%d\" "
                "viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"sans-serif\" font-size=\"12\">\n",
                cls, f->w, f->h, f->w, f->h);
  ig_buf_puts(b, "<title>");
  ig_demo_html_escape(b, title);
  ig_buf_puts(b, "</title>\n");
  ig_buf_printf(b, "<text x=\"%.1f\" y=\"18\" font-size=\"14\" font-weight=\"bold\">", f->x0);
  ig_demo_html_escape(b, title);
  ig_buf_puts(b, "</text>\n<g class=\"axes\" stroke=\"#ccc\" stroke-width=\"1\">\n");
  /* grid lines at every tick */
  for (double t = 0; t <= f->ax.max + f->ax.step / 2; t += f->ax.step)
    ig_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fx(f, t), f->y0, fx(f, t),
                  f->y0 + f->ph);
  for (double t = 0; t <= f->ay.max + f->ay.step / 2; t += f->ay.step)
    ig_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->x0, fy(f, t),
                  f->x0 + f->pw, fy(f, t));
  ig_buf_printf(b,
                "</g>\n<g class=\"frame\" stroke=\"#333\" stroke-width=\"1\" fill=\"none\">"
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></g>\n",
                f->x0, f->y0, f->pw, f->ph);
  ig_buf_puts(b, "<g class=\"ticks\" fill=\"#333\">\n");
  for (double t = 0; t <= f->ax.max + f->ax.step / 2; t += f->ax.step)
    ig_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n", fx(f, t),
                  f->y0 + f->ph + 16, f->ax.decimals, t);
  for (double t = 0; t <= f->ay.max + f->ay.step / 2; t += f->ay.step)
    ig_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", f->x0 - 6, fy(f, t) + 4,
                  f->ay.decimals, t);
  ig_buf_puts(b, "</g>\n");
  ig_buf_printf(b, "<text class=\"xlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", f->x0 + f->pw / 2,
                f->y0 + f->ph + 38);
  ig_demo_html_escape(b, xlabel);
  ig_buf_printf(b,
                "</text>\n<text class=\"ylabel\" transform=\"translate(16 %.1f) rotate(-90)\" "
                "text-anchor=\"middle\">",
                f->y0 + f->ph / 2);
  ig_demo_html_escape(b, ylabel);
  ig_buf_puts(b, "</text>\n<g class=\"legend\">\n");
  double lx = f->x0 + f->pw + 16;
  for (size_t i = 0; i < n; i++) {
    double ly = f->y0 + 8 + 20.0 * (double)i;
    ig_buf_printf(b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>",
                  lx, ly, lx + 22, ly, palette[i % PALETTE_N]);
    ig_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">", lx + 28, ly + 4);
    ig_demo_html_escape(b, rows[i].name ? rows[i].name : rows[i].id);
    ig_buf_puts(b, "</text>\n");
  }
  ig_buf_puts(b, "</g>\n");
}

void ig_demo_svg_cdf(ig_buf_t *b, const ig_demo_result_t *rows, size_t n, int width, int height) {
  frame_t f = {.w = width, .h = height};
  /* x up to the largest p99, so that one target's tail does not squash every other curve */
  double xmax = 0;
  for (size_t i = 0; i < n; i++)
    if (rows[i].n_ttft) {
      double p99 = rows[i].ttft[(size_t)ceil(0.99 * (double)rows[i].n_ttft) - 1];
      if (p99 > xmax) xmax = p99;
    }
  ig_demo_axis(xmax * 1.05, 6, &f.ax);
  ig_demo_axis(1.0, 5, &f.ay);
  frame_open(b, &f, "chart-cdf", "TTFT distribution (CDF)",
             "time to first token (ms); axis ends past the largest p99", "fraction of requests", rows, n);
  ig_buf_printf(b,
                "<defs><clipPath id=\"clip-cdf\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>"
                "</clipPath></defs>\n<g class=\"series\" clip-path=\"url(#clip-cdf)\" fill=\"none\" "
                "stroke-width=\"2\">\n",
                f.x0, f.y0 - 2, f.pw + 2, f.ph + 4);
  for (size_t i = 0; i < n; i++) {
    const ig_demo_result_t *r = &rows[i];
    if (!r->n_ttft) continue;
    ig_buf_printf(b, "<polyline data-target=\"%s\" stroke=\"%s\" points=\"", r->id, palette[i % PALETTE_N]);
    /* a step function: at each sample the fraction rises from (k)/n to (k+1)/n */
    ig_buf_printf(b, "%.1f,%.1f", fx(&f, r->ttft[0]), fy(&f, 0));
    for (size_t k = 0; k < r->n_ttft; k++) {
      double x = fx(&f, r->ttft[k]);
      ig_buf_printf(b, " %.1f,%.1f %.1f,%.1f", x, fy(&f, (double)k / (double)r->n_ttft), x,
                    fy(&f, (double)(k + 1) / (double)r->n_ttft));
    }
    ig_buf_printf(b, " %.1f,%.1f\"/>\n", fx(&f, f.ax.max), fy(&f, 1));
  }
  ig_buf_puts(b, "</g>\n</svg>\n");
}

void ig_demo_svg_throughput(ig_buf_t *b, const ig_demo_result_t *rows, size_t n, int width, int height,
                            double bucket_s) {
  frame_t f = {.w = width, .h = height};
  double tmax = 0;
  for (size_t i = 0; i < n; i++)
    if (rows[i].n_done && rows[i].done_s[rows[i].n_done - 1] > tmax)
      tmax = rows[i].done_s[rows[i].n_done - 1];
  if (!(bucket_s > 0)) {
    ig_demo_axis_t a;
    ig_demo_axis(tmax / 30.0, 1, &a); /* about 30 buckets, of a round width */
    bucket_s = a.step < 0.25 ? 0.25 : a.step;
  }
  size_t nb = (size_t)ceil(tmax / bucket_s);
  if (nb == 0) nb = 1;
  if (nb > 100000) nb = 100000;
  /* counts[i * nb + k]: completions of target i in bucket k */
  size_t *counts = ig_calloc(n * nb + 1, sizeof *counts);
  double ymax = 0;
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < rows[i].n_done; k++) {
      double t = rows[i].done_s[k];
      size_t j = t > 0 ? (size_t)(t / bucket_s) : 0;
      if (j >= nb) j = nb - 1;
      counts[i * nb + j]++;
    }
    for (size_t j = 0; j < nb; j++)
      if ((double)counts[i * nb + j] / bucket_s > ymax) ymax = (double)counts[i * nb + j] / bucket_s;
  }
  ig_demo_axis(nb * bucket_s, 6, &f.ax);
  ig_demo_axis(ymax * 1.05, 5, &f.ay);
  char xlabel[96];
  snprintf(xlabel, sizeof xlabel, "seconds since the load started (buckets of %g s)", bucket_s);
  frame_open(b, &f, "chart-throughput", "Completed requests per second over time", xlabel, "requests/s", rows,
             n);
  ig_buf_puts(b, "<g class=\"series\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\">\n");
  for (size_t i = 0; i < n; i++) {
    if (!rows[i].n_done) continue;
    ig_buf_printf(b, "<polyline data-target=\"%s\" stroke=\"%s\" points=\"", rows[i].id,
                  palette[i % PALETTE_N]);
    for (size_t j = 0; j < nb; j++)
      ig_buf_printf(b, "%s%.1f,%.1f", j ? " " : "", fx(&f, ((double)j + 0.5) * bucket_s),
                    fy(&f, (double)counts[i * nb + j] / bucket_s));
    ig_buf_puts(b, "\"/>\n");
  }
  ig_buf_puts(b, "</g>\n</svg>\n");
  free(counts);
}

/* ---------------------------------------------------------------- HTML */

static void meta_row(ig_buf_t *b, const char *k, const char *v) {
  if (!v) return;
  ig_buf_puts(b, "<tr><th>");
  ig_demo_html_escape(b, k);
  ig_buf_puts(b, "</th><td><code>");
  ig_demo_html_escape(b, v);
  ig_buf_puts(b, "</code></td></tr>\n");
}

void ig_demo_html(ig_buf_t *b, const ig_demo_meta_t *m, const ig_demo_result_t *rows, size_t n, size_t base) {
  const char *title = m->title ? m->title : "infergate demo";
  ig_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
  ig_demo_html_escape(b, title);
  ig_buf_puts(b, "</title>\n<style>\n"
                 "body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}\n"
                 "table{border-collapse:collapse;margin:12px 0}\n"
                 "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;font-size:13px}\n"
                 "th{background:#f3f3f3}\ntd{white-space:nowrap}\nth:first-child,td.name{text-align:left}\n"
                 "table.meta th,table.meta td{text-align:left}\n"
                 ".sw{display:inline-block;width:10px;height:10px;margin-right:6px}\n"
                 "svg{display:block;margin:16px 0;background:#fff}\n"
                 "p.note{font-size:13px;color:#555}\n"
                 "</style>\n</head>\n<body>\n<h1>");
  ig_demo_html_escape(b, title);
  ig_buf_puts(b, "</h1>\n<p>The same seeded load was sent through each target in turn, each time to fresh "
                 "simulated vLLM pods (so no target inherits another's prefix cache).</p>\n");
  table_html(b, rows, n, base);
  ig_buf_puts(
      b, "<p class=\"note\">Latencies are wall-clock milliseconds measured by <code>infergate bench</code> "
         "(nearest-rank percentiles over successful requests)");
  if (m->time_scale > 0 && m->time_scale != 1)
    ig_buf_printf(b,
                  "; the pods ran simulated time %g times faster than wall time, so multiply by %g for "
                  "the equivalent on the simulated GPU",
                  m->time_scale, m->time_scale);
  ig_buf_puts(b,
              ". errors+shed: failed requests + requests answered 429. prefix hit: prefix-cache hit tokens / "
              "queried tokens, summed over the pods' <code>vllm:prefix_cache_*</code> counters.");
  if (m->slo) {
    ig_buf_puts(b, " goodput: successful requests per second that met every objective (");
    ig_demo_html_escape(b, m->slo);
    ig_buf_puts(b, "), and in parentheses their share of the requests sent.");
  }
  ig_buf_puts(b, "</p>\n");
  ig_demo_svg_cdf(b, rows, n, 960, 420);
  ig_demo_svg_throughput(b, rows, n, 960, 360, 0);
  ig_buf_puts(b, "<h2>Run</h2>\n<table class=\"meta\">\n");
  meta_row(b, "command", m->command);
  meta_row(b, "mode", m->mode);
  meta_row(b, "workload", m->workload);
  meta_row(b, "load (bench)", m->load);
  meta_row(b, "pods (sim)", m->sim);
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%d", m->pods);
  meta_row(b, "pods", tmp);
  snprintf(tmp, sizeof tmp, "%d", m->nproc);
  meta_row(b, "nproc", tmp);
  meta_row(b, "CPU", m->cpu);
  meta_row(b, "date", m->date);
  ig_buf_puts(b, "</table>\n</body>\n</html>\n");
}

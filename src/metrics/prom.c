/* Prometheus text exposition format: a pull-style zero-copy sample parser, label lookup and the value
 * formatting and escaping helpers the exporter shares. */
#include "infergate/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int is_blank(char c) { return c == ' ' || c == '\t'; }

static inline int is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static inline int is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

static const char *skip_blanks(const char *p, const char *end) {
  while (p < end && is_blank(*p)) p++;
  return p;
}

/* Reads one `name="value"` pair at *pp (leading blanks allowed) inside a label set ending at end.
 * Returns 1 with the name span and the raw (still escaped) value span and *pp after the closing quote,
 * or IG_EPARSE. Label names follow [a-zA-Z_][a-zA-Z0-9_]*. */
static int read_label(const char **pp, const char *end, const char **name, size_t *nlen, const char **val,
                      size_t *vlen) {
  const char *p = skip_blanks(*pp, end);
  const char *n = p;
  if (p >= end || !is_name_start(*p) || *p == ':') return IG_EPARSE;
  while (p < end && is_name_char(*p) && *p != ':') p++;
  *name = n;
  *nlen = (size_t)(p - n);
  p = skip_blanks(p, end);
  if (p >= end || *p != '=') return IG_EPARSE;
  p = skip_blanks(p + 1, end);
  if (p >= end || *p != '"') return IG_EPARSE;
  const char *v = ++p;
  for (;;) {
    if (p >= end) return IG_EPARSE;
    if (*p == '"') break;
    if (*p == '\\') {
      if (end - p < 2) return IG_EPARSE;
      p += 2;
    } else {
      p++;
    }
  }
  *val = v;
  *vlen = (size_t)(p - v);
  *pp = p + 1;
  return 1;
}

/* Parses the label set after '{' at p within a line ending at end. On success returns the position
 * after '}' and sets the raw span between the braces; returns NULL when malformed. A trailing comma
 * is allowed. */
static const char *parse_labels(const char *p, const char *end, const char **span, size_t *span_len) {
  const char *start = p;
  const char *n, *v;
  size_t nl, vl;
  for (;;) {
    p = skip_blanks(p, end);
    if (p >= end) return NULL;
    if (*p == '}') break;
    if (read_label(&p, end, &n, &nl, &v, &vl) != 1) return NULL;
    p = skip_blanks(p, end);
    if (p >= end) return NULL;
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p != '}') return NULL;
  }
  *span = start;
  *span_len = (size_t)(p - start);
  return p + 1;
}

/* Parses a sample value token: Go ParseFloat-like (decimal, exponents, +Inf/-Inf/Inf/NaN in any case).
 * Returns 0 or IG_EPARSE. */
static int parse_value(const char *p, size_t n, double *out) {
  char tmp[64];
  if (n == 0 || n >= sizeof tmp) return IG_EPARSE;
  /* fast path (Clinger): a decimal without exponent whose digits, read as an integer m, fit in 53
   * bits, with at most 22 fraction digits; m / 10^k is then correctly rounded, like strtod, because
   * both operands are exactly representable and IEEE division rounds once */
  {
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    int neg = 0, digits = 0, frac = -1;
    uint64_t m = 0;
    if (p[0] == '-' || p[0] == '+') neg = p[i++] == '-';
    for (; i < n; i++) {
      if (p[i] >= '0' && p[i] <= '9') {
        if (++digits > 19) break; /* 19 digits cannot overflow 64 bits */
        m = m * 10 + (uint64_t)(p[i] - '0');
        if (frac >= 0) frac++;
      } else if (p[i] == '.' && frac < 0) {
        frac = 0;
      } else {
        break;
      }
    }
    if (i == n && digits > 0 && digits <= 19 && m <= (1ull << 53) && frac <= 22) {
      double v = (double)m / pow10[frac > 0 ? frac : 0];
      *out = neg ? -v : v;
      return 0;
    }
  }
  memcpy(tmp, p, n);
  tmp[n] = '\0';
  /* strtod also takes "nan(...)" and hex floats, which Prometheus does not write */
  for (size_t i = 0; i < n; i++)
    if (tmp[i] == '(' || tmp[i] == 'x' || tmp[i] == 'X') return IG_EPARSE;
  char *e = NULL;
  double v = strtod(tmp, &e);
  if (e != tmp + n) return IG_EPARSE;
  *out = v;
  return 0;
}

/* Parses one non-comment line l[0..e). Returns 1 with *s filled, or 0 when the line is malformed. */
static int parse_line(const char *l, const char *e, ig_prom_sample_t *s) {
  const char *p = l;
  if (!is_name_start(*p)) return 0;
  while (p < e && is_name_char(*p)) p++;
  s->name = l;
  s->name_len = (size_t)(p - l);
  s->labels = NULL;
  s->labels_len = 0;
  p = skip_blanks(p, e);
  if (p < e && *p == '{') {
    p = parse_labels(p + 1, e, &s->labels, &s->labels_len);
    if (!p) return 0;
    p = skip_blanks(p, e);
  } else if (p == l + s->name_len) {
    return 0; /* name glued to something that is not a name character */
  }
  const char *v = p;
  while (p < e && !is_blank(*p)) p++;
  if (parse_value(v, (size_t)(p - v), &s->value)) return 0;
  p = skip_blanks(p, e);
  if (p < e) {
    /* optional timestamp: an integer number of milliseconds */
    if (*p == '-' || *p == '+') p++;
    const char *d = p;
    while (p < e && *p >= '0' && *p <= '9') p++;
    if (p == d) return 0;
    p = skip_blanks(p, e);
    if (p < e) return 0;
  }
  return 1;
}

/* Finds the line at *pos: sets [*l, *e) to it without leading and trailing blanks (and a trailing
 * "\r"), and advances *pos past its "\n". The caller checks *pos < len first. */
static inline void next_line(const char *buf, size_t len, size_t *pos, const char **l, const char **e) {
  const char *p = buf + *pos;
  const char *nl = memchr(p, '\n', len - *pos);
  const char *end = nl ? nl : buf + len;
  *pos = nl ? (size_t)(nl - buf) + 1 : len;
  while (end > p && (end[-1] == '\r' || is_blank(end[-1]))) end--;
  *l = skip_blanks(p, end);
  *e = end;
}

int ig_prom_next(const char *buf, size_t len, size_t *pos, ig_prom_sample_t *s) {
  while (*pos < len) {
    const char *l, *e;
    next_line(buf, len, pos, &l, &e);
    if (l >= e || *l == '#') continue;
    if (parse_line(l, e, s)) return 1;
  }
  return 0;
}

void ig_prom_names_init(ig_prom_names_t *set, const char *const *names, size_t n) {
  memset(set, 0, sizeof *set);
  if (n > IG_PROM_NAMES_MAX) n = IG_PROM_NAMES_MAX;
  set->n = n;
  for (size_t i = 0; i < n; i++) {
    set->name[i] = names[i];
    set->len[i] = names[i] ? strlen(names[i]) : 0;
    if (!set->len[i]) {
      set->mask[i] = 0;
      set->head[i] = ~(uint64_t)0; /* (w & 0) never equals it */
      continue;
    }
    size_t k = set->len[i] < 8 ? set->len[i] : 8;
    uint64_t h = 0, m = 0;
    memcpy(&h, names[i], k);
    memset(&m, 0xff, k);
    set->head[i] = h;
    set->mask[i] = m;
  }
}

/* The index in set of the metric name that starts line [l, e), or -1. The name is what parse_line
 * would take: the longest run of name characters from l. A first 8-byte comparison per name turns
 * most lines down without looking further; buf_end bounds the 8-byte load. */
static int name_in(const ig_prom_names_t *set, const char *l, const char *e, const char *buf_end) {
  uint64_t w = 0;
  memcpy(&w, l, buf_end - l >= 8 ? 8 : (size_t)(buf_end - l));
  size_t nlen = SIZE_MAX;
  for (size_t i = 0; i < set->n; i++) {
    if ((w & set->mask[i]) != set->head[i]) continue;
    if (nlen == SIZE_MAX) {
      const char *p = l;
      if (!is_name_start(*p)) return -1;
      while (p < e && is_name_char(*p)) p++;
      nlen = (size_t)(p - l);
    }
    if (nlen == set->len[i] && memcmp(l, set->name[i], nlen) == 0) return (int)i;
  }
  return -1;
}

int ig_prom_next_in(const char *buf, size_t len, size_t *pos, const ig_prom_names_t *set, ig_prom_sample_t *s,
                    size_t *which) {
  while (*pos < len) {
    const char *l = buf + *pos;
    const char *nl = memchr(l, '\n', len - *pos);
    const char *e = nl ? nl : buf + len;
    *pos = nl ? (size_t)(nl - buf) + 1 : len;
    l = skip_blanks(l, e);
    if (l >= e) continue;
    /* the name ends before any "\r" or blank, so the line end is trimmed only for a line that is
     * parsed: then [l, e) is exactly what ig_prom_next hands parse_line */
    int i = name_in(set, l, e, buf + len); /* "#" is no name character: comments never match */
    if (i < 0) continue;
    while (e > l && (e[-1] == '\r' || is_blank(e[-1]))) e--;
    if (parse_line(l, e, s)) {
      *which = (size_t)i;
      return 1;
    }
  }
  return 0;
}

int ig_prom_name_is(const ig_prom_sample_t *s, const char *name) {
  size_t n = strlen(name);
  return s->name_len == n && memcmp(s->name, name, n) == 0;
}

int ig_prom_label(const ig_prom_sample_t *s, const char *key, char *out, size_t cap) {
  if (!s->labels || !s->labels_len) return IG_ENOENT;
  const char *p = s->labels, *end = s->labels + s->labels_len;
  size_t klen = strlen(key);
  const char *n, *v;
  size_t nl, vl;
  while (read_label(&p, end, &n, &nl, &v, &vl) == 1) {
    if (nl == klen && memcmp(n, key, klen) == 0) {
      size_t o = 0;
      int over = 0;
      for (size_t i = 0; i < vl; i++) {
        char c = v[i];
        if (c == '\\' && i + 1 < vl) {
          char d = v[i + 1];
          if (d == '\\' || d == '"' || d == 'n') {
            c = d == 'n' ? '\n' : d;
            i++;
          }
        }
        if (o + 1 < cap)
          out[o] = c;
        else
          over = 1;
        o++;
      }
      if (cap) out[o < cap ? o : cap - 1] = '\0';
      if (over || o >= cap) return IG_ETOOBIG;
      return (int)o;
    }
    p = skip_blanks(p, end);
    if (p < end && *p == ',') p++;
  }
  return IG_ENOENT;
}

void ig_prom_label_escape(ig_buf_t *out, const char *s) {
  const char *run = s;
  for (; *s; s++) {
    const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
    if (!esc) continue;
    ig_buf_append(out, run, (size_t)(s - run));
    ig_buf_append(out, esc, 2);
    run = s + 1;
  }
  ig_buf_append(out, run, (size_t)(s - run));
}

void ig_prom_format_value(ig_buf_t *out, double v) {
  if (isnan(v)) {
    ig_buf_puts(out, "NaN");
    return;
  }
  if (isinf(v)) {
    ig_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  char tmp[40];
  snprintf(tmp, sizeof tmp, "%.15g", v);
  if (strtod(tmp, NULL) != v) snprintf(tmp, sizeof tmp, "%.17g", v);
  ig_buf_puts(out, tmp);
}

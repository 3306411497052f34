/* Error strings, allocation wrappers, logging and clocks. */
#define _GNU_SOURCE
#include "infergate/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *ig_strerror(int err) {
  switch (err) {
  case IG_OK: return "success";
#define X(name, msg) \
  case IG_##name: return msg;
    IG_ERRNO_MAP(X)
#undef X
  default: return "unknown error";
  }
}

static void oom(size_t n) {
  fprintf(stderr, "infergate: out of memory allocating %zu bytes\n", n);
  abort();
}

void *ig_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *ig_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom(n * size);
  return p;
}

void *ig_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

char *ig_strndup(const char *s, size_t n) {
  char *d = ig_malloc(n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *ig_strdup(const char *s) { return ig_strndup(s, strlen(s)); }

static ig_log_level_t log_level = IG_LOG_INFO;

void ig_log_set_level(ig_log_level_t level) { log_level = level; }

int ig_log_level_parse(const char *s, ig_log_level_t *out) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (ig_log_level_t)i;
      return 0;
    }
  return IG_EINVAL;
}

void ig_log(ig_log_level_t level, const char *fmt, ...) {
  static const char *tags[] = {"debug", "info", "warn", "error"};
  if (level < log_level) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* one write per line so concurrent processes do not interleave mid-line */
  fprintf(stderr, "infergate %s: %s\n", tags[level], msg);
}

uint64_t ig_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t ig_now_ms(void) { return ig_now_us() / 1000u; }

uint64_t ig_wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int ig_strncaseeq(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  return alen == blen && strncasecmp(a, b, alen) == 0;
}

int ig_parse_hostport(const char *s, char *host, size_t hostcap, int *port) {
  const char *colon, *h = s;
  size_t hl;
  if (*s == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':') return IG_EINVAL;
    h = s + 1;
    hl = (size_t)(end - h);
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return IG_EINVAL;
    hl = (size_t)(colon - s);
  }
  if (hl == 0 || hl >= hostcap) return IG_EINVAL;
  char *endp;
  long p = strtol(colon + 1, &endp, 10);
  if (*endp || colon[1] == '\0' || p < 1 || p > 65535) return IG_EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  *port = (int)p;
  return 0;
}

void ig_rng_seed(ig_rng_t *r, uint64_t seed) { r->s = seed ? seed : 0x9E3779B97F4A7C15ULL; }

uint64_t ig_rng_next(ig_rng_t *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double ig_rng_double(ig_rng_t *r) { return (double)(ig_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t ig_hash64(const void *p, size_t n, uint64_t seed) {
  const unsigned char *c = p;
  uint64_t h = seed;
  for (size_t i = 0; i < n; i++) {
    h ^= c[i];
    h *= 1099511628211ULL;
  }
  return h;
}

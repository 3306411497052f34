/* Native YAML configuration: a libyaml document walked into an ig_config_t, validated as it goes.
 * Every problem is collected with the file, line and column of the node at fault; nothing stops at
 * the first error. All strings and arrays of the snapshot are heap allocations released by
 * ig_config_free, which also takes the partial snapshot left on any error path. */
#define _GNU_SOURCE
#include "infergate/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <yaml.h>

#include "config_internal.h"
#include "filters.h"
#include "infergate/core.h"

#define MAX_ERRORS 200             /* per load; a note says when more were dropped */
#define MAX_DEPTH 32               /* the schema nests 6 deep; anything far deeper is rejected early */
#define MAX_FILE_BYTES (16u << 20) /* a config file larger than this is refused */
#define MAX_FIELDS 16              /* the most keys any mapping of the schema has */
#define MAX_MODEL_NAME 256
#define MAX_TARGETS 10
#define MAX_WEIGHT 1000000u
#define HOUR_MS 3600000ull
#define DAY_MS (24 * HOUR_MS)

typedef struct {
  yaml_document_t *doc;
  const char *file;
  ig_config_errors_t *errs;
  size_t first_err; /* index in errs of the first error of this load */
  int n_errors;
  int dropped; /* errors not recorded past MAX_ERRORS */
  ig_config_t *cfg;
} ctx_t;

static ig_config_resolver_fn resolver;

void ig_config_set_resolver(ig_config_resolver_fn fn) {
  resolver = fn;
}

/* ---- errors ------------------------------------------------------------------------------------ */

/* Appends one error at line:col (1-based; 0 = not tied to a line). Control bytes in the message (it
 * may quote user input) are replaced so the output stays one printable line. */
static void add_verror(ctx_t *c, int line, int col, const char *fmt, va_list ap) {
  if (c->n_errors >= MAX_ERRORS) {
    c->dropped++;
    return;
  }
  char msg[768];
  vsnprintf(msg, sizeof msg, fmt, ap);
  for (char *p = msg; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
  ig_config_errors_t *e = c->errs;
  e->v = ig_realloc(e->v, (e->n + 1) * sizeof *e->v);
  e->v[e->n].file = ig_strdup(c->file);
  e->v[e->n].line = line;
  e->v[e->n].column = col;
  e->v[e->n].message = ig_strdup(msg);
  e->n++;
  c->n_errors++;
}

static void err_mark(ctx_t *c, yaml_mark_t m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void err_mark(ctx_t *c, yaml_mark_t m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  add_verror(c, (int)m.line + 1, (int)m.column + 1, fmt, ap);
  va_end(ap);
}

/* The loader's sink for problems found by the shared YAML passes. */
static void yaml_err(void *ud, yaml_mark_t m, const char *msg) {
  err_mark(ud, m, "%s", msg);
}

static void err_at(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_at(ctx_t *c, const yaml_node_t *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (n)
    add_verror(c, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, fmt, ap);
  else
    add_verror(c, 0, 0, fmt, ap);
  va_end(ap);
}

static void err_file(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_file(ctx_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  add_verror(c, 0, 0, fmt, ap);
  va_end(ap);
}

static int err_cmp(const ig_config_error_t *a, const ig_config_error_t *b) {
  if (a->line != b->line) return a->line < b->line ? -1 : 1;
  if (a->column != b->column) return a->column < b->column ? -1 : 1;
  return 0;
}

/* Stable insertion sort of this load's errors by line, then column: the walk visits sections in
 * dependency order, the reader wants them in file order. */
static void sort_errors(ctx_t *c) {
  if (c->errs->n <= c->first_err) return;
  ig_config_error_t *v = c->errs->v + c->first_err;
  size_t n = c->errs->n - c->first_err;
  for (size_t i = 1; i < n; i++) {
    ig_config_error_t t = v[i];
    size_t j = i;
    while (j > 0 && err_cmp(&v[j - 1], &t) > 0) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = t;
  }
}

/* ---- nodes ------------------------------------------------------------------------------------- */

static yaml_node_t *node(ctx_t *c, int i) {
  return yaml_document_get_node(c->doc, i);
}

static int line_of(const yaml_node_t *n) {
  return (int)n->start_mark.line + 1;
}

static yaml_node_t *seq_at(ctx_t *c, const yaml_node_t *n, size_t i) {
  return node(c, n->data.sequence.items.start[i]);
}

/* Checks that n is a mapping whose keys are all in keys (NULL-terminated, at most MAX_FIELDS) and
 * stores each key's value node in vals (NULL when absent). Unknown, duplicate and non-string keys are
 * reported; returns -1 (after an error) when n is not a mapping at all. */
static int get_map(ctx_t *c, yaml_node_t *n, const char *what, const char *const *keys, yaml_node_t **vals) {
  size_t nk = 0;
  yaml_node_t *keyn[MAX_FIELDS];
  while (keys[nk]) {
    keyn[nk] = NULL;
    vals[nk++] = NULL;
  }
  if (n->type != YAML_MAPPING_NODE) {
    err_at(c, n, "expected a mapping for %s, got %s", what, ig_yaml_kind(n));
    return -1;
  }
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
    if (k->type != YAML_SCALAR_NODE) {
      err_at(c, k, "keys in %s must be strings, got %s", what, ig_yaml_kind(k));
      continue;
    }
    const char *ks = (const char *)k->data.scalar.value;
    size_t i = 0;
    while (i < nk && strcmp(keys[i], ks))
      i++;
    if (i == nk || strlen(ks) != k->data.scalar.length) {
      char expect[512];
      size_t off = 0;
      expect[0] = '\0';
      for (size_t j = 0; j < nk && off < sizeof expect; j++)
        off += (size_t)snprintf(expect + off, sizeof expect - off, "%s%s", j ? ", " : "", keys[j]);
      err_at(c, k, "unknown key '%.64s' in %s (expected one of: %s)", ks, what, expect);
      continue;
    }
    if (vals[i]) {
      err_at(c, k, "duplicate key '%s' in %s (first given at line %d)", ks, what, line_of(keyn[i]));
      continue;
    }
    keyn[i] = k;
    vals[i] = v;
  }
  return 0;
}

/* Reports a missing required key at the mapping that lacks it; returns v. */
static yaml_node_t *required(ctx_t *c, yaml_node_t *map, yaml_node_t *v, const char *key, const char *what) {
  if (!v) err_at(c, map, "missing required key '%s' in %s", key, what);
  return v;
}

/* ---- scalars ----------------------------------------------------------------------------------- */

/* Returns the text of a non-empty scalar, or NULL after an error (not a scalar, empty or null,
 * embedded NUL). The pointer lives as long as the document. */
static const char *str_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what) {
  if (n->type != YAML_SCALAR_NODE) {
    err_at(c, n, "expected a string for '%s' in %s, got %s", key, what, ig_yaml_kind(n));
    return NULL;
  }
  const char *s = (const char *)n->data.scalar.value;
  if (ig_yaml_is_null(n) || n->data.scalar.length == 0) {
    err_at(c, n, "'%s' in %s must not be empty", key, what);
    return NULL;
  }
  if (strlen(s) != n->data.scalar.length) {
    err_at(c, n, "'%s' in %s contains a NUL byte", key, what);
    return NULL;
  }
  return s;
}

/* Parses the leading decimal digits of s into *out, saturating at UINT64_MAX (so range checks
 * catch overflow); returns the number of digits. */
static int parse_digits(const char *s, uint64_t *out) {
  uint64_t v = 0;
  int n = 0;
  for (; isdigit((unsigned char)s[n]); n++)
    v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : v * 10 + (uint64_t)(s[n] - '0');
  *out = v;
  return n;
}

/* Formats a millisecond count with the largest unit that divides it exactly. */
static const char *fmt_ms(uint64_t ms, char *buf, size_t cap) {
  if (ms && ms % HOUR_MS == 0)
    snprintf(buf, cap, "%lluh", (unsigned long long)(ms / HOUR_MS));
  else if (ms && ms % 60000 == 0)
    snprintf(buf, cap, "%llum", (unsigned long long)(ms / 60000));
  else if (ms && ms % 1000 == 0)
    snprintf(buf, cap, "%llus", (unsigned long long)(ms / 1000));
  else
    snprintf(buf, cap, "%llums", (unsigned long long)ms);
  return buf;
}

static const char *fmt_bytes(uint64_t b, char *buf, size_t cap) {
  if (b && b % (1ull << 30) == 0)
    snprintf(buf, cap, "%lluGiB", (unsigned long long)(b >> 30));
  else if (b && b % (1ull << 20) == 0)
    snprintf(buf, cap, "%lluMiB", (unsigned long long)(b >> 20));
  else if (b && b % 1024 == 0)
    snprintf(buf, cap, "%lluKiB", (unsigned long long)(b >> 10));
  else
    snprintf(buf, cap, "%llu", (unsigned long long)b);
  return buf;
}

/* A plain non-negative integer in [min, max]; returns 0 or -1 after an error. */
static int uint_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what, uint64_t min, uint64_t max,
                   uint64_t *out) {
  const char *s = str_of(c, n, key, what);
  if (!s) return -1;
  uint64_t v;
  int d = parse_digits(s, &v);
  if (d == 0 || s[d]) {
    err_at(c, n, "invalid integer '%.64s' for '%s' in %s", s, key, what);
    return -1;
  }
  if (v < min || v > max) {
    err_at(c, n, "'%s' in %s is out of range: %.64s (expected %llu..%llu)", key, what, s,
           (unsigned long long)min, (unsigned long long)max);
    return -1;
  }
  *out = v;
  return 0;
}

/* A decimal number (digits, an optional fraction; no sign, exponent, inf or nan) in [min, max]; returns
 * 0 or -1 after an error. */
static int num_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what, double min, double max, double *out) {
  const char *s = str_of(c, n, key, what);
  if (!s) return -1;
  size_t i = 0, digits = 0;
  while (isdigit((unsigned char)s[i])) i++, digits++;
  if (s[i] == '.') {
    i++;
    while (isdigit((unsigned char)s[i])) i++, digits++;
  }
  if (!digits || s[i] || i > 32) {
    err_at(c, n, "invalid number '%.64s' for '%s' in %s", s, key, what);
    return -1;
  }
  double v = strtod(s, NULL);
  if (!(v >= min && v <= max)) {
    err_at(c, n, "'%s' in %s is out of range: %.64s (expected %g..%g)", key, what, s, min, max);
    return -1;
  }
  *out = v;
  return 0;
}

/* A signed integer (an optional '-' or '+', then digits) in [min, max]; returns 0 or -1 after an error. */
static int sint_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what, int64_t min, int64_t max,
                   int64_t *out) {
  const char *s = str_of(c, n, key, what);
  if (!s) return -1;
  int neg = s[0] == '-';
  const char *p = s + (s[0] == '-' || s[0] == '+');
  uint64_t v;
  int d = parse_digits(p, &v);
  if (d == 0 || p[d]) {
    err_at(c, n, "invalid integer '%.64s' for '%s' in %s", s, key, what);
    return -1;
  }
  if (v > (uint64_t)INT64_MAX || (neg ? -(int64_t)v < min : (int64_t)v > max)) {
    err_at(c, n, "'%s' in %s is out of range: %.64s (expected %lld..%lld)", key, what, s, (long long)min,
           (long long)max);
    return -1;
  }
  *out = neg ? -(int64_t)v : (int64_t)v;
  return 0;
}

/* A duration: integer with unit ms, s, m or h; a bare integer means milliseconds. */
static int dur_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what, uint64_t min, uint64_t max,
                  unsigned *out) {
  static const struct {
    const char *unit;
    uint64_t ms;
  } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", HOUR_MS}};
  const char *s = str_of(c, n, key, what);
  if (!s) return -1;
  uint64_t v;
  int d = parse_digits(s, &v);
  size_t u = 0;
  while (u < sizeof units / sizeof units[0] && strcmp(s + d, units[u].unit))
    u++;
  if (d == 0 || u == sizeof units / sizeof units[0]) {
    err_at(c, n, "invalid duration '%.64s' for '%s' in %s (expected e.g. 250ms, 2s, 1m, 1h)", s, key, what);
    return -1;
  }
  char a[32], b[32];
  if (v > max / units[u].ms || v * units[u].ms < min || v * units[u].ms > max) {
    err_at(c, n, "'%s' in %s is out of range: %.64s (expected %s..%s)", key, what, s,
           fmt_ms(min, a, sizeof a), fmt_ms(max, b, sizeof b));
    return -1;
  }
  *out = (unsigned)(v * units[u].ms);
  return 0;
}

/* A byte size: integer with an optional unit B, KB/MB/GB (powers of 1000) or KiB/MiB/GiB (powers
 * of 1024); units are case-insensitive. */
static int size_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what, uint64_t min, uint64_t max,
                   uint64_t *out) {
  static const struct {
    const char *unit;
    uint64_t mul;
  } units[] = {{"", 1},
               {"b", 1},
               {"kb", 1000},
               {"mb", 1000000},
               {"gb", 1000000000},
               {"kib", 1ull << 10},
               {"mib", 1ull << 20},
               {"gib", 1ull << 30}};
  const char *s = str_of(c, n, key, what);
  if (!s) return -1;
  uint64_t v;
  int d = parse_digits(s, &v);
  size_t u = 0;
  while (u < sizeof units / sizeof units[0] && strcasecmp(s + d, units[u].unit))
    u++;
  if (d == 0 || u == sizeof units / sizeof units[0]) {
    err_at(c, n, "invalid size '%.64s' for '%s' in %s (expected bytes, or e.g. 64KiB, 4MiB, 1GiB)", s, key,
           what);
    return -1;
  }
  char a[32], b[32];
  if (v > max / units[u].mul || v * units[u].mul < min || v * units[u].mul > max) {
    err_at(c, n, "'%s' in %s is out of range: %.64s (expected %s..%s bytes)", key, what, s,
           fmt_bytes(min, a, sizeof a), fmt_bytes(max, b, sizeof b));
    return -1;
  }
  *out = v * units[u].mul;
  return 0;
}

/* One of names (NULL-terminated); stores the index. */
static int enum_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what, const char *const *names,
                   int *out) {
  const char *s = str_of(c, n, key, what);
  if (!s) return -1;
  char expect[256];
  size_t off = 0;
  for (int i = 0; names[i]; i++) {
    if (!strcmp(s, names[i])) {
      *out = i;
      return 0;
    }
    off += (size_t)snprintf(expect + off, sizeof expect - off, "%s%s", i ? ", " : "", names[i]);
  }
  err_at(c, n, "invalid value '%.64s' for '%s' in %s (expected one of: %s)", s, key, what, expect);
  return -1;
}

/* Reports a non-list value; an absent or null one is fine. Returns 1 for a list to walk. */
static int is_list(ctx_t *c, yaml_node_t *n, const char *key, const char *what) {
  if (!ig_yaml_present(n)) return 0;
  if (n->type != YAML_SEQUENCE_NODE) {
    err_at(c, n, "expected a list for '%s' in %s, got %s", key, what, ig_yaml_kind(n));
    return 0;
  }
  return 1;
}

/* ---- addresses --------------------------------------------------------------------------------- */

/* Default resolver: numeric addresses as they are, else getaddrinfo with IPv4 first, then IPv6. */
static int resolve_default(const char *host, char *out, size_t cap, const char **why) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  if (getaddrinfo(host, NULL, &hints, &res) == 0) {
    freeaddrinfo(res);
    snprintf(out, cap, "%s", host);
    return 0;
  }
  static const int families[] = {AF_INET, AF_INET6};
  int first = 0;
  for (size_t i = 0; i < 2; i++) {
    hints.ai_flags = 0;
    hints.ai_family = families[i];
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
      if (!first) first = rc ? rc : EAI_NONAME;
      continue;
    }
    const void *addr = res->ai_family == AF_INET
                           ? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
                           : (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
    const char *ok = inet_ntop(res->ai_family, addr, out, (socklen_t)cap);
    freeaddrinfo(res);
    if (ok) return 0;
  }
  *why = gai_strerror(first);
  return -1;
}

int ig_config_resolve(const char *host, char *out, size_t cap, const char **why) {
  return resolver ? resolver(host, out, cap, why) : resolve_default(host, out, cap, why);
}

/* Host names: letters, digits, '-', '.', '_' ; at most 253 characters. */
static int valid_hostname(const char *h) {
  size_t n = strlen(h);
  if (n == 0 || n > 253) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '.' && h[i] != '_') return 0;
  return 1;
}

/* Parses "HOST:PORT" (or "[v6]:PORT"), checks and resolves the host; on success *host is a new
 * numeric address string. Returns 0 or -1 after an error at n. */
static int hostport_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what, char **host, int *port) {
  const char *s = str_of(c, n, key, what);
  if (!s) return -1;
  char h[256];
  if (ig_parse_hostport(s, h, sizeof h, port) != 0) {
    const char *colon = strrchr(s, ':');
    uint64_t v;
    int d = colon ? parse_digits(colon + 1, &v) : 0;
    if (colon && colon > s && d != 0 && !colon[1 + d] && (v < 1 || v > 65535))
      err_at(c, n, "port out of range in '%.64s' for '%s' in %s (expected 1..65535)", s, key, what);
    else
      err_at(c, n, "invalid address '%.64s' for '%s' in %s (expected HOST:PORT)", s, key, what);
    return -1;
  }
  unsigned char tmp[sizeof(struct in6_addr)];
  if (strchr(h, ':') ? inet_pton(AF_INET6, h, tmp) != 1 : !valid_hostname(h)) {
    err_at(c, n, "invalid host '%.64s' in '%s' of %s", h, key, what);
    return -1;
  }
  char num[INET6_ADDRSTRLEN + 1];
  const char *why = "unknown error";
  int rc = resolver ? resolver(h, num, sizeof num, &why) : resolve_default(h, num, sizeof num, &why);
  if (rc != 0) {
    err_at(c, n, "cannot resolve host '%.64s' in '%s' of %s: %s", h, key, what, why);
    return -1;
  }
  *host = ig_strdup(num);
  return 0;
}

/* ---- lookups during the walk ------------------------------------------------------------------- */

static long backend_index(const ig_config_t *cfg, const char *name) {
  for (size_t i = 0; i < cfg->n_backends; i++)
    if (cfg->backends[i].name && !strcmp(cfg->backends[i].name, name)) return (long)i;
  return -1;
}

static long listener_index(const ig_config_t *cfg, const char *name) {
  for (size_t i = 0; i < cfg->n_listeners; i++)
    if (cfg->listeners[i].name && !strcmp(cfg->listeners[i].name, name)) return (long)i;
  return -1;
}

/* ---- sections ---------------------------------------------------------------------------------- */

static const char *const policy_names[] = {"round-robin", "random", "least-request", NULL};
static const char *const engine_names[] = {"vllm", "vllm-v0", "sglang", "trtllm", NULL};
static const char *const scheduler_names[] = {"default",       "gie",    "round-robin",
                                              "least-request", "random", NULL};
static const char *const crit_names[] = {"Critical", "Standard", "Sheddable", NULL};
static const char *const proto_names[] = {"http", "tcp", NULL};

static const char *const backend_keys[] = {
    "name",         "policy",         "endpoints", "connect_timeout", "response_timeout",
    "idle_timeout", "max_idle_conns", "tls",       "max_streams_per_endpoint", "circuit_breaker", NULL};
static const char *const pool_keys[] = {
    "name",      "endpoints",       "engine",           "scrape_interval", "metrics_path",
    "scheduler", "connect_timeout", "response_timeout", "idle_timeout",    "max_idle_conns",
    "discovery_interval", "tls", "max_streams_per_endpoint", "circuit_breaker", "scheduling", NULL};

/* The value stored by get_map for key (which must be in keys). */
static yaml_node_t *field(const char *const *keys, yaml_node_t **v, const char *key) {
  for (size_t i = 0; keys[i]; i++)
    if (!strcmp(keys[i], key)) return v[i];
  return NULL;
}

/* ---- issue #9: upstream TLS, circuit breaker, API keys ----------------------------------------- */

/* A boolean: true/false (also yes/no, on/off); returns 0 or -1 after an error. */
static int bool_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what, int *out) {
  const char *s = str_of(c, n, key, what);
  if (!s) return -1;
  if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) {
    *out = 1;
    return 0;
  }
  if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) {
    *out = 0;
    return 0;
  }
  err_at(c, n, "'%s' in %s must be true or false, not '%.64s'", key, what, s);
  return -1;
}

/* A path to a file that must be readable now (it is read again on every activation). Returns a new
 * copy or NULL after an error. */
static char *readable_file_of(ctx_t *c, yaml_node_t *n, const char *key, const char *what) {
  const char *s = str_of(c, n, key, what);
  if (!s) return NULL;
  FILE *f = fopen(s, "r");
  if (!f) {
    err_at(c, n, "cannot read '%s' file '%s' of %s: %s", key, s, what, strerror(errno));
    return NULL;
  }
  fclose(f);
  return ig_strdup(s);
}

static void check_cert_key(ctx_t *c, yaml_node_t *cn, yaml_node_t *kn, const char *cert, const char *key);

enum { UT_ENABLED, UT_CA, UT_NAME, UT_VERIFY, UT_CERT, UT_KEY };
static const char *const upstream_tls_keys[] = {"enabled", "ca_file", "server_name", "verify",
                                                "cert_file", "key_file", NULL};

/* backends[].tls / pools[].tls: TLS to the endpoints, with verification unless verify: false. The CA
 * bundle must hold at least one PEM certificate; a client certificate needs its key (and they must
 * match). enabled: false (or an absent mapping) leaves b->tls NULL. */
static void parse_upstream_tls(ctx_t *c, yaml_node_t *n, ig_backend_cfg_t *b, const char *what) {
  yaml_node_t *v[MAX_FIELDS];
  char w[64];
  snprintf(w, sizeof w, "%s tls", what);
  if (get_map(c, n, w, upstream_tls_keys, v) != 0) return;
  int on = 1;
  if (ig_yaml_present(v[UT_ENABLED]) && bool_of(c, v[UT_ENABLED], "enabled", w, &on) != 0) return;
  if (!on) return;
  ig_upstream_tls_cfg_t *t = b->tls = IG_NEW(ig_upstream_tls_cfg_t);
  t->line = line_of(n);
  t->verify = 1;
  if (ig_yaml_present(v[UT_VERIFY])) bool_of(c, v[UT_VERIFY], "verify", w, &t->verify);
  if (ig_yaml_present(v[UT_CA]) && (t->ca_file = readable_file_of(c, v[UT_CA], "ca_file", w))) {
    FILE *f = fopen(t->ca_file, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    if (!x) err_at(c, v[UT_CA], "'ca_file' '%s' of %s holds no PEM certificate", t->ca_file, w);
    X509_free(x);
    ERR_clear_error();
  }
  const char *s;
  if (ig_yaml_present(v[UT_NAME]) && (s = str_of(c, v[UT_NAME], "server_name", w))) {
    if (s[0] == '\0' || strlen(s) > 253 || strpbrk(s, " \t/"))
      err_at(c, v[UT_NAME], "invalid 'server_name' '%.64s' in %s", s, w);
    else
      t->server_name = ig_strdup(s);
  }
  int has_cert = ig_yaml_present(v[UT_CERT]), has_key = ig_yaml_present(v[UT_KEY]);
  if (has_cert != has_key) {
    err_at(c, n, "%s needs both 'cert_file' and 'key_file' for a client certificate", w);
    return;
  }
  if (has_cert) {
    const char *cs = str_of(c, v[UT_CERT], "cert_file", w), *ks = str_of(c, v[UT_KEY], "key_file", w);
    if (!cs || !ks) return;
    t->cert_file = ig_strdup(cs);
    t->key_file = ig_strdup(ks);
    check_cert_key(c, v[UT_CERT], v[UT_KEY], cs, ks);
  }
}

enum { CB_ENABLED, CB_FAILURES, CB_BASE, CB_MAX };
static const char *const breaker_keys[] = {"enabled", "consecutive_failures", "base_ejection_time",
                                           "max_ejection_time", NULL};

/* backends[].circuit_breaker / pools[].circuit_breaker. */
static void parse_breaker(ctx_t *c, yaml_node_t *n, ig_backend_cfg_t *b, const char *what) {
  yaml_node_t *v[MAX_FIELDS];
  char w[64];
  snprintf(w, sizeof w, "%s circuit_breaker", what);
  if (get_map(c, n, w, breaker_keys, v) != 0) return;
  int on = 1;
  if (ig_yaml_present(v[CB_ENABLED]) && bool_of(c, v[CB_ENABLED], "enabled", w, &on) == 0)
    b->breaker_disabled = !on;
  uint64_t u;
  if (ig_yaml_present(v[CB_FAILURES]) && uint_of(c, v[CB_FAILURES], "consecutive_failures", w, 1, 1000000, &u) == 0)
    b->breaker_failures = (unsigned)u;
  if (ig_yaml_present(v[CB_BASE])) dur_of(c, v[CB_BASE], "base_ejection_time", w, 1, DAY_MS, &b->breaker_base_ms);
  if (ig_yaml_present(v[CB_MAX])) dur_of(c, v[CB_MAX], "max_ejection_time", w, 1, DAY_MS, &b->breaker_max_ms);
  if (b->breaker_base_ms && b->breaker_max_ms && b->breaker_max_ms < b->breaker_base_ms)
    err_at(c, v[CB_MAX], "'max_ejection_time' in %s is shorter than 'base_ejection_time'", w);
}

enum { ST_QUEUE, ST_KV, ST_STD, ST_RUN, ST_CRIT_SLOTS, ST_BATCH_SLOTS, ST_QUEUE_CAP, ST_WEIGHTS, ST_PREFILL };
static const char *const tuning_keys[] = {"queue_threshold", "kv_threshold",   "standard_queue_max",
                                          "queue_running_weight", "critical_slots", "batch_slots",
                                          "queue_capacity",  "weights",        "queue_prefill_tokens", NULL};
static const char *const weight_keys[] = {"queue", "kv", "prefix", "lora", NULL};

/* pools[].scheduling: thresholds and weights of the pool's scheduler (docs/configuration.md). */
static void parse_tuning(ctx_t *c, yaml_node_t *n, ig_backend_cfg_t *b, const char *what) {
  yaml_node_t *v[MAX_FIELDS], *w[MAX_FIELDS];
  char ws[64];
  snprintf(ws, sizeof ws, "%s scheduling", what);
  if (get_map(c, n, ws, tuning_keys, v) != 0) return;
  ig_sched_tuning_cfg_t *t = &b->tuning;
  static const struct {
    int key;
    double min, max;
    unsigned bit;
    size_t off;
  } nums[] = {
      {ST_QUEUE, 1, 1e6, IG_TUNE_QUEUE_THRESHOLD, offsetof(ig_sched_tuning_cfg_t, queue_threshold)},
      {ST_KV, 0.01, 1, IG_TUNE_KV_THRESHOLD, offsetof(ig_sched_tuning_cfg_t, kv_threshold)},
      {ST_STD, 0, 1e6, IG_TUNE_STANDARD_QUEUE_MAX, offsetof(ig_sched_tuning_cfg_t, standard_queue_max)},
      {ST_RUN, 0, 100, IG_TUNE_RUNNING_WEIGHT, offsetof(ig_sched_tuning_cfg_t, queue_running_weight)},
      {ST_CRIT_SLOTS, 0, 1e6, IG_TUNE_CRITICAL_SLOTS, offsetof(ig_sched_tuning_cfg_t, critical_slots)},
      {ST_PREFILL, 0, 1e9, IG_TUNE_PREFILL_TOKENS, offsetof(ig_sched_tuning_cfg_t, queue_prefill_tokens)},
  };
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    double d;
    if (ig_yaml_present(v[nums[i].key]) &&
        num_of(c, v[nums[i].key], tuning_keys[nums[i].key], ws, nums[i].min, nums[i].max, &d) == 0) {
      *(double *)((char *)t + nums[i].off) = d;
      t->set |= nums[i].bit;
    }
  }
  if (ig_yaml_present(v[ST_BATCH_SLOTS]))
    uint_of(c, v[ST_BATCH_SLOTS], "batch_slots", ws, 1, 1000000, &t->batch_slots);
  if (ig_yaml_present(v[ST_QUEUE_CAP]))
    uint_of(c, v[ST_QUEUE_CAP], "queue_capacity", ws, 1, 1000000, &t->queue_capacity);
  if (!ig_yaml_present(v[ST_WEIGHTS])) return;
  char ww[80];
  snprintf(ww, sizeof ww, "%s weights", ws);
  if (get_map(c, v[ST_WEIGHTS], ww, weight_keys, w) != 0) return;
  double *dst[] = {&t->w_queue, &t->w_kv, &t->w_prefix, &t->w_lora};
  static const unsigned bits[] = {IG_TUNE_W_QUEUE, IG_TUNE_W_KV, IG_TUNE_W_PREFIX, IG_TUNE_W_LORA};
  for (size_t i = 0; weight_keys[i]; i++)
    if (ig_yaml_present(w[i]) && num_of(c, w[i], weight_keys[i], ww, 0, 1000, dst[i]) == 0) t->set |= bits[i];
}

/* The options of issue #9 shared by backends and pools. */
static void parse_backend_security(ctx_t *c, const char *const *keys, yaml_node_t **v, ig_backend_cfg_t *b,
                                   const char *what) {
  yaml_node_t *n = field(keys, v, "tls");
  if (ig_yaml_present(n)) parse_upstream_tls(c, n, b, what);
  n = field(keys, v, "circuit_breaker");
  if (ig_yaml_present(n)) parse_breaker(c, n, b, what);
  uint64_t u;
  n = field(keys, v, "max_streams_per_endpoint");
  if (ig_yaml_present(n) && uint_of(c, n, "max_streams_per_endpoint", what, 0, 1000000, &u) == 0)
    b->max_streams_per_endpoint = (unsigned)u;
}

enum { AU_KEYS_FILE, AU_FORWARD };
static const char *const auth_keys[] = {"api_keys_file", "forward_authorization", NULL};

/* routes[].auth: bearer API keys from a file (one per line, '#' comments); the file must be readable
 * and hold at least one key. */
static void parse_auth(ctx_t *c, yaml_node_t *n, ig_route_cfg_t *r) {
  const char *w = "route auth";
  yaml_node_t *v[MAX_FIELDS];
  if (get_map(c, n, w, auth_keys, v) != 0) return;
  if (ig_yaml_present(v[AU_FORWARD])) bool_of(c, v[AU_FORWARD], "forward_authorization", w, &r->forward_authorization);
  if (!required(c, n, v[AU_KEYS_FILE], "api_keys_file", w)) return;
  char *path = readable_file_of(c, v[AU_KEYS_FILE], "api_keys_file", w);
  if (!path) return;
  FILE *f = fopen(path, "r");
  size_t keys = 0;
  char line[1024];
  while (f && fgets(line, sizeof line, f)) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p && *p != '#' && *p != '\n' && *p != '\r') keys++;
  }
  if (f) fclose(f);
  if (keys == 0) err_at(c, v[AU_KEYS_FILE], "'api_keys_file' '%s' holds no API key", path);
  r->api_keys_file = path;
}

/* The endpoint list of a backend or pool: required, non-empty, no duplicates. */
static void parse_endpoints(ctx_t *c, yaml_node_t *map, yaml_node_t *v, ig_backend_cfg_t *b,
                            const char *what) {
  if (!required(c, map, v, "endpoints", what)) return;
  if (ig_yaml_present(v) && !is_list(c, v, "endpoints", what)) return;
  if (!ig_yaml_present(v) || ig_yaml_seq_len(v) == 0) {
    err_at(c, v, "'endpoints' in %s must not be empty", what);
    return;
  }
  b->endpoints = ig_calloc(ig_yaml_seq_len(v), sizeof *b->endpoints);
  for (size_t i = 0; i < ig_yaml_seq_len(v); i++) {
    yaml_node_t *e = seq_at(c, v, i);
    char *host;
    int port;
    if (hostport_of(c, e, "endpoints", what, &host, &port) != 0) continue;
    size_t j = 0;
    while (j < b->n_endpoints && (b->endpoints[j].port != port || strcmp(b->endpoints[j].host, host)))
      j++;
    if (j < b->n_endpoints) {
      err_at(c, e, "duplicate endpoint '%s' in %s", (const char *)e->data.scalar.value, what);
      free(host);
      continue;
    }
    b->endpoints[b->n_endpoints].host = host;
    b->endpoints[b->n_endpoints++].port = port;
  }
}

/* backends: (pools == 0) or pools: (pools == 1); both land in cfg->backends, names unique across
 * the two. */
static void parse_backends(ctx_t *c, yaml_node_t *seq, int pools) {
  const char *what = pools ? "pool" : "backend";
  ig_config_t *cfg = c->cfg;
  if (!is_list(c, seq, pools ? "pools" : "backends", "the top level")) return;
  size_t n = ig_yaml_seq_len(seq);
  cfg->backends = ig_realloc(cfg->backends, (cfg->n_backends + n) * sizeof *cfg->backends);
  memset(cfg->backends + cfg->n_backends, 0, n * sizeof *cfg->backends);
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = seq_at(c, seq, i), *v[MAX_FIELDS];
    const char *const *keys = pools ? pool_keys : backend_keys;
    if (get_map(c, item, what, keys, v) != 0) continue;
#define F(key) field(keys, v, key)
    ig_backend_cfg_t *b = &cfg->backends[cfg->n_backends];
    b->file = cfg->source;
    b->line = line_of(item);
    b->policy = pools ? IG_LB_INFERENCE : IG_LB_ROUND_ROBIN;
    b->connect_timeout_ms = 2000;
    b->response_timeout_ms = 60000;
    b->idle_timeout_ms = 300000;
    b->max_idle_conns = 64;
    b->engine = IG_ENGINE_VLLM;
    if (pools) {
      b->scrape_interval_ms = 50;
      b->metrics_path = ig_strdup("/metrics");
      b->scheduler = ig_strdup("default");
      b->discovery_interval_ms = 5000;
    }
    const char *name;
    if (required(c, item, F("name"), "name", what) && (name = str_of(c, F("name"), "name", what))) {
      long dup = backend_index(cfg, name);
      if (dup >= 0)
        err_at(c, F("name"), "duplicate name '%s': already used by the %s at line %d", name,
               cfg->backends[dup].policy == IG_LB_INFERENCE ? "pool" : "backend", cfg->backends[dup].line);
      else
        b->name = ig_strdup(name);
    }
    cfg->n_backends++;
    parse_endpoints(c, item, F("endpoints"), b, what);
    if (ig_yaml_present(F("connect_timeout")))
      dur_of(c, F("connect_timeout"), "connect_timeout", what, 1, HOUR_MS, &b->connect_timeout_ms);
    if (ig_yaml_present(F("response_timeout")))
      dur_of(c, F("response_timeout"), "response_timeout", what, 1, DAY_MS, &b->response_timeout_ms);
    if (ig_yaml_present(F("idle_timeout")))
      dur_of(c, F("idle_timeout"), "idle_timeout", what, 1, DAY_MS, &b->idle_timeout_ms);
    uint64_t u;
    if (ig_yaml_present(F("max_idle_conns")) &&
        uint_of(c, F("max_idle_conns"), "max_idle_conns", what, 0, 100000, &u) == 0)
      b->max_idle_conns = (unsigned)u;
    parse_backend_security(c, keys, v, b, what);
    int e;
    if (!pools) {
      if (ig_yaml_present(F("policy")) && enum_of(c, F("policy"), "policy", what, policy_names, &e) == 0)
        b->policy = (ig_lb_policy_t)e;
      continue;
    }
    if (ig_yaml_present(F("engine")) && enum_of(c, F("engine"), "engine", what, engine_names, &e) == 0)
      b->engine = (ig_engine_t)e;
    if (ig_yaml_present(F("scrape_interval")))
      dur_of(c, F("scrape_interval"), "scrape_interval", what, 1, HOUR_MS, &b->scrape_interval_ms);
    if (ig_yaml_present(F("discovery_interval")))
      dur_of(c, F("discovery_interval"), "discovery_interval", what, 10, HOUR_MS, &b->discovery_interval_ms);
    const char *s;
    if (ig_yaml_present(F("metrics_path")) && (s = str_of(c, F("metrics_path"), "metrics_path", what))) {
      if (s[0] != '/')
        err_at(c, F("metrics_path"), "'metrics_path' in %s must start with '/'", what);
      else {
        free(b->metrics_path);
        b->metrics_path = ig_strdup(s);
      }
    }
    if (ig_yaml_present(F("scheduler")) && enum_of(c, F("scheduler"), "scheduler", what, scheduler_names, &e) == 0) {
      free(b->scheduler);
      b->scheduler = ig_strdup(scheduler_names[e]);
    }
    if (ig_yaml_present(F("scheduling"))) parse_tuning(c, F("scheduling"), b, what);
  }
}
#undef F

enum { L_NAME, L_ADDRESS, L_PROTOCOL, L_BACKEND, L_TLS };
static const char *const listener_keys[] = {"name", "address", "protocol", "backend", "tls", NULL};

static char *hostname_of(ctx_t *c, yaml_node_t *n, const char *what);

/* Loads a PEM certificate chain and private key with OpenSSL and checks that they belong together;
 * reports at the cert node cn or the key node kn what is wrong (unreadable file, not PEM, mismatched key). */
static void check_cert_key(ctx_t *c, yaml_node_t *cn, yaml_node_t *kn, const char *cert, const char *key) {
  const char *paths[2] = {cert, key}, *names[2] = {"cert", "key"};
  for (int i = 0; i < 2; i++) {
    FILE *f = fopen(paths[i], "r");
    if (!f) {
      err_at(c, i ? kn : cn, "cannot read TLS %s file '%s': %s", names[i], paths[i], strerror(errno));
      return;
    }
    fclose(f);
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    err_at(c, cn, "cannot create a TLS context to check '%s'", cert);
    return;
  }
  char why[256];
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    ERR_error_string_n(ERR_get_error(), why, sizeof why);
    err_at(c, cn, "TLS cert file '%s' holds no usable PEM certificate (%s)", cert, why);
  } else {
    EVP_PKEY *pk = NULL;
    FILE *f = fopen(key, "r");
    if (f) {
      pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
      fclose(f);
    }
    if (!pk) {
      ERR_error_string_n(ERR_get_error(), why, sizeof why);
      err_at(c, kn, "TLS key file '%s' holds no usable PEM private key (%s)", key, why);
    } else if (SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      ERR_error_string_n(ERR_get_error(), why, sizeof why);
      err_at(c, kn, "TLS key file '%s' does not match the certificate in '%s' (%s)", key, cert, why);
    }
    EVP_PKEY_free(pk);
  }
  ERR_clear_error();
  SSL_CTX_free(ctx);
}

enum { T_CERT, T_KEY, T_CERTIFICATES };
static const char *const tls_keys[] = {"cert", "key", "certificates", NULL};
enum { TC_HOSTNAMES, TC_CERT, TC_KEY };
static const char *const tls_cert_keys[] = {"hostnames", "cert", "key", NULL};

/* Parses a cert/key pair of map (value nodes cv, kv; NULL when absent) into *cert, *key and checks
 * them with OpenSSL. */
static void cert_pair_of(ctx_t *c, yaml_node_t *map, yaml_node_t *cv, yaml_node_t *kv, const char *what,
                         char **cert, char **key) {
  const char *cs = NULL, *ks = NULL;
  if (required(c, map, cv, "cert", what)) cs = str_of(c, cv, "cert", what);
  if (required(c, map, kv, "key", what)) ks = str_of(c, kv, "key", what);
  if (!cs || !ks) return;
  *cert = ig_strdup(cs);
  *key = ig_strdup(ks);
  check_cert_key(c, cv, kv, cs, ks);
}

/* listeners[].tls: the default certificate and the SNI certificates, checked with OpenSSL. */
static void parse_tls(ctx_t *c, yaml_node_t *n, ig_listener_cfg_t *l) {
  const char *what = "listener tls";
  yaml_node_t *v[MAX_FIELDS];
  if (get_map(c, n, what, tls_keys, v) != 0) return;
  ig_tls_cfg_t *t = l->tls = IG_NEW(ig_tls_cfg_t);
  t->line = line_of(n);
  cert_pair_of(c, n, v[T_CERT], v[T_KEY], what, &t->cert, &t->key);
  yaml_node_t *seq = v[T_CERTIFICATES];
  if (!ig_yaml_present(seq) || !is_list(c, seq, "certificates", what)) return;
  size_t k = ig_yaml_seq_len(seq);
  t->certificates = ig_calloc(k ? k : 1, sizeof *t->certificates);
  for (size_t i = 0; i < k; i++) {
    yaml_node_t *item = seq_at(c, seq, i), *w[MAX_FIELDS];
    const char *cwhat = "tls certificate";
    if (get_map(c, item, cwhat, tls_cert_keys, w) != 0) continue;
    ig_tls_cert_cfg_t *tc = &t->certificates[t->n_certificates++];
    tc->line = line_of(item);
    cert_pair_of(c, item, w[TC_CERT], w[TC_KEY], cwhat, &tc->cert, &tc->key);
    yaml_node_t *hs = w[TC_HOSTNAMES];
    if (!required(c, item, hs, "hostnames", cwhat) || !is_list(c, hs, "hostnames", cwhat)) continue;
    size_t nh = ig_yaml_seq_len(hs);
    if (nh == 0) {
      err_at(c, hs, "'hostnames' in %s must not be empty", cwhat);
      continue;
    }
    tc->hostnames = ig_calloc(nh, sizeof *tc->hostnames);
    for (size_t j = 0; j < nh; j++) {
      char *h = hostname_of(c, seq_at(c, hs, j), cwhat);
      if (h) tc->hostnames[tc->n_hostnames++] = h;
    }
  }
}

static void parse_listeners(ctx_t *c, yaml_node_t *root, yaml_node_t *seq) {
  const char *what = "listener";
  ig_config_t *cfg = c->cfg;
  if (!seq) {
    err_at(c, root, "missing required key 'listeners' at the top level");
    return;
  }
  if (ig_yaml_present(seq) && !is_list(c, seq, "listeners", "the top level")) return;
  if (!ig_yaml_present(seq) || ig_yaml_seq_len(seq) == 0) {
    err_at(c, seq, "'listeners' must not be empty");
    return;
  }
  size_t n = ig_yaml_seq_len(seq);
  cfg->listeners = ig_calloc(n, sizeof *cfg->listeners);
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = seq_at(c, seq, i), *v[MAX_FIELDS];
    if (get_map(c, item, what, listener_keys, v) != 0) continue;
    ig_listener_cfg_t *l = &cfg->listeners[cfg->n_listeners];
    l->file = cfg->source;
    l->line = line_of(item);
    const char *name;
    if (required(c, item, v[L_NAME], "name", what) && (name = str_of(c, v[L_NAME], "name", what))) {
      long dup = listener_index(cfg, name);
      if (dup >= 0)
        err_at(c, v[L_NAME], "duplicate listener name '%s' (first defined at line %d)", name,
               cfg->listeners[dup].line);
      else
        l->name = ig_strdup(name);
    }
    cfg->n_listeners++;
    if (required(c, item, v[L_ADDRESS], "address", what) &&
        hostport_of(c, v[L_ADDRESS], "address", what, &l->host, &l->port) == 0) {
      for (size_t j = 0; j + 1 < cfg->n_listeners; j++)
        if (cfg->listeners[j].host && cfg->listeners[j].port == l->port &&
            !strcmp(cfg->listeners[j].host, l->host)) {
          err_at(c, v[L_ADDRESS], "address '%s' is already used by the listener at line %d",
                 (const char *)v[L_ADDRESS]->data.scalar.value, cfg->listeners[j].line);
          break;
        }
    }
    int e;
    if (ig_yaml_present(v[L_PROTOCOL]) && enum_of(c, v[L_PROTOCOL], "protocol", what, proto_names, &e) == 0)
      l->protocol = (ig_listener_proto_t)e;
    if (l->protocol == IG_PROTO_HTTP) {
      if (ig_yaml_present(v[L_BACKEND])) err_at(c, v[L_BACKEND], "'backend' is only valid for tcp listeners");
      if (ig_yaml_present(v[L_TLS])) parse_tls(c, v[L_TLS], l);
      continue;
    }
    if (ig_yaml_present(v[L_TLS])) err_at(c, v[L_TLS], "'tls' is only valid for http listeners");
    const char *b;
    if (!required(c, item, v[L_BACKEND], "backend", "tcp listener") ||
        !(b = str_of(c, v[L_BACKEND], "backend", what)))
      continue;
    long bi = backend_index(cfg, b);
    if (bi < 0)
      err_at(c, v[L_BACKEND], "unknown backend '%s' in listener", b);
    else if (cfg->backends[bi].policy == IG_LB_INFERENCE)
      err_at(c, v[L_BACKEND], "tcp listener cannot use inference pool '%s' (pools need HTTP routing)", b);
    else {
      l->tcp_backend = ig_strdup(b);
      l->tcp_backend_index = (size_t)bi;
    }
  }
}

static const char *const admin_keys[] = {"address", NULL};

static void parse_admin(ctx_t *c, yaml_node_t *n) {
  yaml_node_t *v[MAX_FIELDS];
  ig_config_t *cfg = c->cfg;
  if (!ig_yaml_present(n) || get_map(c, n, "admin", admin_keys, v) != 0) return;
  if (!required(c, n, v[0], "address", "admin") ||
      hostport_of(c, v[0], "address", "admin", &cfg->admin_host, &cfg->admin_port))
    return;
  for (size_t j = 0; j < cfg->n_listeners; j++)
    if (cfg->listeners[j].host && cfg->listeners[j].port == cfg->admin_port &&
        !strcmp(cfg->listeners[j].host, cfg->admin_host)) {
      err_at(c, v[0], "admin address '%s' is already used by the listener at line %d",
             (const char *)v[0]->data.scalar.value, cfg->listeners[j].line);
      break;
    }
}

static const char *const limits_keys[] = {"max_header_bytes", "max_headers", "max_body_bytes",
                                          "max_connections", "max_connections_per_ip", NULL};

static void parse_limits(ctx_t *c, yaml_node_t *n) {
  yaml_node_t *v[MAX_FIELDS];
  ig_config_t *cfg = c->cfg;
  uint64_t u;
  if (!ig_yaml_present(n) || get_map(c, n, "limits", limits_keys, v) != 0) return;
  if (ig_yaml_present(v[0]) && size_of(c, v[0], "max_header_bytes", "limits", 256, 1u << 20, &u) == 0)
    cfg->max_header_bytes = (size_t)u;
  if (ig_yaml_present(v[1]) && uint_of(c, v[1], "max_headers", "limits", 1, 10000, &u) == 0)
    cfg->max_headers = (size_t)u;
  if (ig_yaml_present(v[2]) && size_of(c, v[2], "max_body_bytes", "limits", 1, 1ull << 30, &u) == 0)
    cfg->max_body_bytes = (size_t)u;
  if (ig_yaml_present(v[3]) && uint_of(c, v[3], "max_connections", "limits", 1, 1000000, &u) == 0)
    cfg->max_connections = (unsigned)u;
  if (ig_yaml_present(v[4]) && uint_of(c, v[4], "max_connections_per_ip", "limits", 0, 1000000, &u) == 0)
    cfg->max_connections_per_ip = (unsigned)u;
}

static const char *const timeouts_keys[] = {"client", "drain", "header", NULL};

static void parse_timeouts(ctx_t *c, yaml_node_t *n) {
  yaml_node_t *v[MAX_FIELDS];
  if (!ig_yaml_present(n) || get_map(c, n, "timeouts", timeouts_keys, v) != 0) return;
  if (ig_yaml_present(v[0])) dur_of(c, v[0], "client", "timeouts", 1, DAY_MS, &c->cfg->client_timeout_ms);
  if (ig_yaml_present(v[1])) dur_of(c, v[1], "drain", "timeouts", 0, HOUR_MS, &c->cfg->drain_timeout_ms);
  if (ig_yaml_present(v[2])) dur_of(c, v[2], "header", "timeouts", 1, DAY_MS, &c->cfg->header_timeout_ms);
}

static void parse_access_log(ctx_t *c, yaml_node_t *n) {
  const char *s;
  if (!ig_yaml_present(n) || !(s = str_of(c, n, "access_log", "the top level"))) return;
  if (!strcmp(s, "off") || !strcmp(s, "false") || !strcmp(s, "no")) return;
  c->cfg->access_log = ig_strdup(s);
}

enum { M_NAME, M_POOL, M_CRIT, M_TARGETS, M_PRIO };
static const char *const model_keys[] = {"name", "pool", "criticality", "targets", "priority", NULL};
static const char *const target_keys[] = {"name", "weight", NULL};

/* targets: <= 10 entries, unique names, weights on all or none (none = equal split). */
static void parse_targets(ctx_t *c, yaml_node_t *seq, ig_model_cfg_t *m) {
  const char *what = "target";
  if (!is_list(c, seq, "targets", "model")) return;
  size_t n = ig_yaml_seq_len(seq), weighted = 0;
  if (n > MAX_TARGETS) {
    err_at(c, seq, "too many targets in model: %zu (at most %d)", n, MAX_TARGETS);
    return;
  }
  m->targets = ig_calloc(n ? n : 1, sizeof *m->targets);
  yaml_node_t *first_weight = NULL, *first_unweighted = NULL;
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = seq_at(c, seq, i), *v[MAX_FIELDS];
    if (get_map(c, item, what, target_keys, v) != 0) continue;
    ig_target_cfg_t *t = &m->targets[m->n_targets++];
    const char *name;
    if (required(c, item, v[0], "name", what) && (name = str_of(c, v[0], "name", what))) {
      size_t j = 0;
      while (j + 1 < m->n_targets && (!m->targets[j].name || strcmp(m->targets[j].name, name)))
        j++;
      if (j + 1 < m->n_targets)
        err_at(c, v[0], "duplicate target '%s' in model", name);
      else
        t->name = ig_strdup(name);
    }
    t->weight = 1;
    if (ig_yaml_present(v[1])) {
      uint64_t w;
      weighted++;
      if (!first_weight) first_weight = v[1];
      if (uint_of(c, v[1], "weight", what, 1, MAX_WEIGHT, &w) == 0) t->weight = (unsigned)w;
    } else if (!first_unweighted) {
      first_unweighted = item;
    }
  }
  if (weighted && first_unweighted)
    err_at(c, first_unweighted, "target without 'weight': weights must be set on all targets or on none");
}

static void parse_models(ctx_t *c, yaml_node_t *seq) {
  const char *what = "model";
  ig_config_t *cfg = c->cfg;
  if (!is_list(c, seq, "models", "the top level")) return;
  size_t n = ig_yaml_seq_len(seq);
  cfg->models = ig_calloc(n ? n : 1, sizeof *cfg->models);
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = seq_at(c, seq, i), *v[MAX_FIELDS];
    if (get_map(c, item, what, model_keys, v) != 0) continue;
    ig_model_cfg_t *m = &cfg->models[cfg->n_models++];
    m->file = cfg->source;
    m->line = line_of(item);
    m->criticality = IG_CRIT_STANDARD;
    const char *name;
    if (required(c, item, v[M_NAME], "name", what) && (name = str_of(c, v[M_NAME], "name", what))) {
      size_t len = strlen(name), j = 0;
      while (j + 1 < cfg->n_models && (!cfg->models[j].model_name || strcmp(cfg->models[j].model_name, name)))
        j++;
      if (len > MAX_MODEL_NAME)
        err_at(c, v[M_NAME], "model name is too long: %zu characters (at most %d)", len, MAX_MODEL_NAME);
      else if (j + 1 < cfg->n_models)
        err_at(c, v[M_NAME], "duplicate model name '%s' (first defined at line %d)", name,
               cfg->models[j].line);
      else
        m->model_name = ig_strdup(name);
    }
    const char *pool;
    if (required(c, item, v[M_POOL], "pool", what) && (pool = str_of(c, v[M_POOL], "pool", what))) {
      long bi = backend_index(cfg, pool);
      if (bi < 0)
        err_at(c, v[M_POOL], "unknown pool '%s' in model", pool);
      else if (cfg->backends[bi].policy != IG_LB_INFERENCE)
        err_at(c, v[M_POOL], "'%s' is a backend, not an inference pool (declare it under 'pools')", pool);
      else {
        m->pool = ig_strdup(pool);
        m->pool_index = (size_t)bi;
      }
    }
    int e;
    int64_t prio = 0;
    if (ig_yaml_present(v[M_CRIT]) && ig_yaml_present(v[M_PRIO]))
      err_at(c, v[M_PRIO], "model has both 'criticality' and 'priority': give one of them");
    else if (ig_yaml_present(v[M_CRIT]) && enum_of(c, v[M_CRIT], "criticality", what, crit_names, &e) == 0)
      m->criticality = (ig_criticality_t)e;
    else if (ig_yaml_present(v[M_PRIO]) &&
             sint_of(c, v[M_PRIO], "priority", what, INT32_MIN, INT32_MAX, &prio) == 0)
      m->criticality = ig_config_priority_band((int)prio);
    /* both spellings end up as a priority and its band */
    if (ig_yaml_present(v[M_PRIO]) && !ig_yaml_present(v[M_CRIT]))
      m->priority = (int)prio;
    else
      m->priority = ig_config_criticality_priority(m->criticality);
    if (ig_yaml_present(v[M_TARGETS])) parse_targets(c, v[M_TARGETS], m);
  }
}

static const char *const objective_keys[] = {"name", "pool", "priority", NULL};

/* objectives: InferenceObjectives, {name, pool, priority}; names unique per pool. */
static void parse_objectives(ctx_t *c, yaml_node_t *seq) {
  const char *what = "objective";
  ig_config_t *cfg = c->cfg;
  if (!is_list(c, seq, "objectives", "the top level")) return;
  size_t n = ig_yaml_seq_len(seq);
  cfg->objectives = ig_calloc(n ? n : 1, sizeof *cfg->objectives);
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = seq_at(c, seq, i), *v[MAX_FIELDS];
    if (get_map(c, item, what, objective_keys, v) != 0) continue;
    ig_objective_cfg_t *o = &cfg->objectives[cfg->n_objectives++];
    o->file = cfg->source;
    o->line = line_of(item);
    const char *pool;
    if (required(c, item, v[1], "pool", what) && (pool = str_of(c, v[1], "pool", what))) {
      long bi = backend_index(cfg, pool);
      if (bi < 0)
        err_at(c, v[1], "unknown pool '%s' in objective", pool);
      else if (cfg->backends[bi].policy != IG_LB_INFERENCE)
        err_at(c, v[1], "'%s' is a backend, not an inference pool (declare it under 'pools')", pool);
      else {
        o->pool = ig_strdup(pool);
        o->pool_index = (size_t)bi;
      }
    }
    const char *name;
    if (required(c, item, v[0], "name", what) && (name = str_of(c, v[0], "name", what))) {
      size_t len = strlen(name), j = 0;
      const ig_objective_cfg_t *prev = cfg->objectives;
      while (j + 1 < cfg->n_objectives && (!prev[j].name || !o->pool || !prev[j].pool ||
                                           strcmp(prev[j].name, name) || strcmp(prev[j].pool, o->pool)))
        j++;
      if (len == 0 || len > MAX_MODEL_NAME)
        err_at(c, v[0], "objective name must be 1..%d characters", MAX_MODEL_NAME);
      else if (j + 1 < cfg->n_objectives)
        err_at(c, v[0], "duplicate objective '%s' in pool '%s' (first defined at line %d)", name, o->pool,
               cfg->objectives[j].line);
      else
        o->name = ig_strdup(name);
    }
    int64_t prio = 0;
    if (ig_yaml_present(v[2]) && sint_of(c, v[2], "priority", what, INT32_MIN, INT32_MAX, &prio) == 0)
      o->priority = (int)prio;
  }
}

static void parse_default_model(ctx_t *c, yaml_node_t *n) {
  const char *s;
  ig_config_t *cfg = c->cfg;
  if (!ig_yaml_present(n) || !(s = str_of(c, n, "default_model", "the top level"))) return;
  if (cfg->n_models) {
    size_t i = 0;
    while (i < cfg->n_models && (!cfg->models[i].model_name || strcmp(cfg->models[i].model_name, s)))
      i++;
    if (i == cfg->n_models) {
      err_at(c, n, "default_model '%s' is not one of the models", s);
      return;
    }
  }
  cfg->default_model = ig_strdup(s);
}

/* ---- routes ------------------------------------------------------------------------------------ */

enum { R_NAME, R_LISTENERS, R_HOSTNAMES, R_MATCHES, R_BACKENDS, R_BACKEND, R_TIMEOUT, R_AUTH, R_FILTERS };
static const char *const route_keys[] = {"name",    "listeners", "hostnames", "matches", "backends",
                                         "backend", "timeout",   "auth",      "filters", NULL};
static const char *const match_keys[] = {"path", "method", "headers", NULL};
static const char *const path_keys[] = {"type", "value", NULL};
static const char *const header_keys[] = {"name", "value", "type", NULL};
static const char *const ref_keys[] = {"name", "weight", "filters", NULL};
static const char *const path_types[] = {"PathPrefix", "Exact", NULL};
static const char *const methods[] = {"GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                      "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL};

/* Gateway API hostnames: DNS labels, optionally "*." in front; stored lower-cased. */
static char *hostname_of(ctx_t *c, yaml_node_t *n, const char *what) {
  const char *s = str_of(c, n, "hostnames", what);
  if (!s) return NULL;
  const char *h = !strncmp(s, "*.", 2) ? s + 2 : s;
  size_t len = strlen(h);
  int ok = len > 0 && len <= 253 && h[0] != '.' && h[len - 1] != '.' && !strstr(h, "..");
  for (size_t i = 0; ok && i < len; i++)
    ok = isalnum((unsigned char)h[i]) || h[i] == '-' || h[i] == '.';
  if (!ok) {
    err_at(c, n, "invalid hostname '%.64s' in %s (expected e.g. api.example.com or *.example.com)", s, what);
    return NULL;
  }
  char *out = ig_strdup(s);
  for (char *p = out; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  return out;
}

/* HTTP header field names are tokens. */
static int is_token(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return 0;
  return 1;
}

static void parse_path(ctx_t *c, yaml_node_t *n, ig_match_cfg_t *m) {
  const char *what = "match path";
  yaml_node_t *pv = n, *v[MAX_FIELDS];
  if (n->type == YAML_MAPPING_NODE) {
    get_map(c, n, what, path_keys, v);
    int e;
    if (ig_yaml_present(v[0]) && enum_of(c, v[0], "type", what, path_types, &e) == 0)
      m->path_type = (ig_path_match_t)e;
    pv = v[1];
    if (!ig_yaml_present(pv)) return; /* value defaults to "/" */
  }
  const char *s = str_of(c, pv, pv == n ? "path" : "value", pv == n ? "match" : what);
  if (!s) return;
  if (s[0] != '/') {
    err_at(c, pv, "path '%.64s' must start with '/'", s);
    return;
  }
  free(m->path);
  m->path = ig_strdup(s);
}

static void parse_headers(ctx_t *c, yaml_node_t *seq, ig_match_cfg_t *m) {
  const char *what = "header match";
  static const char *const types[] = {"Exact", NULL};
  if (!is_list(c, seq, "headers", "match")) return;
  size_t n = ig_yaml_seq_len(seq);
  m->headers = ig_calloc(n ? n : 1, sizeof *m->headers);
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = seq_at(c, seq, i), *v[MAX_FIELDS];
    if (get_map(c, item, what, header_keys, v) != 0) continue;
    const char *name = NULL, *value = NULL;
    int e;
    if (ig_yaml_present(v[2])) enum_of(c, v[2], "type", what, types, &e);
    if (required(c, item, v[0], "name", what) && (name = str_of(c, v[0], "name", what)) && !is_token(name)) {
      err_at(c, v[0], "invalid header name '%.64s' in header match", name);
      name = NULL;
    }
    /* an empty value is a legitimate match for an empty header */
    if (required(c, item, v[1], "value", what)) {
      if (v[1]->type != YAML_SCALAR_NODE ||
          strlen((const char *)v[1]->data.scalar.value) != v[1]->data.scalar.length)
        value = str_of(c, v[1], "value", what);
      else
        value = (const char *)v[1]->data.scalar.value;
    }
    if (!name || !value) continue;
    for (size_t j = 0; j < m->n_headers; j++)
      if (!strcasecmp(m->headers[j].name, name)) {
        err_at(c, v[0], "duplicate header match '%s'", name);
        name = NULL;
        break;
      }
    if (!name) continue;
    ig_header_match_cfg_t *h = &m->headers[m->n_headers++];
    h->name = ig_strdup(name);
    for (char *p = h->name; *p; p++)
      *p = (char)tolower((unsigned char)*p);
    h->value = ig_strdup(value);
  }
}

static void parse_matches(ctx_t *c, yaml_node_t *seq, ig_route_cfg_t *r) {
  const char *what = "match";
  if (!is_list(c, seq, "matches", "route")) return;
  size_t n = ig_yaml_seq_len(seq);
  r->matches = ig_calloc(n ? n : 1, sizeof *r->matches);
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = seq_at(c, seq, i), *v[MAX_FIELDS];
    if (get_map(c, item, what, match_keys, v) != 0) continue;
    ig_match_cfg_t *m = &r->matches[r->n_matches++];
    m->path_type = IG_PATH_PREFIX;
    m->path = ig_strdup("/");
    if (ig_yaml_present(v[0])) parse_path(c, v[0], m);
    const char *s;
    if (ig_yaml_present(v[1]) && (s = str_of(c, v[1], "method", what))) {
      char up[16];
      size_t k = 0;
      for (; s[k] && k < sizeof up - 1; k++)
        up[k] = (char)toupper((unsigned char)s[k]);
      up[k] = '\0';
      int j = 0;
      while (methods[j] && (s[k] || strcmp(methods[j], up)))
        j++;
      if (!methods[j])
        err_at(c, v[1],
               "invalid method '%.64s' in match (expected one of: GET, HEAD, POST, PUT, DELETE, CONNECT, "
               "OPTIONS, TRACE, PATCH)",
               s);
      else
        m->method = ig_strdup(methods[j]);
    }
    if (ig_yaml_present(v[2])) parse_headers(c, v[2], m);
  }
}

/* The filter parser's sinks: errors are the loader's; notes (an unsupported filter type) are logged
 * as warnings with the file position, since the native loader has no note list. */
static void filter_err(void *ud, const yaml_node_t *n, const char *msg) {
  err_at(ud, n, "%s", msg);
}

static void filter_note(void *ud, const yaml_node_t *n, const char *reason, const char *msg) {
  ctx_t *c = ud;
  ig_warn("%s:%d:%d: warning: %s [%s]", c->file, line_of(n), (int)n->start_mark.column + 1, msg, reason);
}

/* A `filters` list (Gateway API HTTPRouteFilter shape) into *req / *resp. */
static void parse_filters(ctx_t *c, yaml_node_t *seq, const char *path, ig_header_filter_cfg_t **req,
                          ig_header_filter_cfg_t **resp) {
  ig_filter_ctx_t fc = {c->doc, 1, path, filter_err, filter_note, c};
  ig_config_filters_parse(&fc, seq, req, resp);
}

static void parse_backend_refs(ctx_t *c, yaml_node_t *item, yaml_node_t *list, yaml_node_t *one,
                               ig_route_cfg_t *r) {
  ig_config_t *cfg = c->cfg;
  const char *what = "route backend";
  if (list && one) {
    err_at(c, one, "use either 'backend' or 'backends' in route, not both");
    return;
  }
  if (!list && !one) {
    err_at(c, item, "missing required key 'backends' (or 'backend') in route");
    return;
  }
  if (list && ig_yaml_present(list) && !is_list(c, list, "backends", "route")) return;
  size_t n = one ? 1 : ig_yaml_present(list) ? ig_yaml_seq_len(list) : 0;
  if (n == 0) {
    err_at(c, list, "'backends' in route must not be empty");
    return;
  }
  r->backends = ig_calloc(n, sizeof *r->backends);
  uint64_t total = 0;
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *ref = one ? one : seq_at(c, list, i), *v[MAX_FIELDS], *namev = ref;
    uint64_t w = 1;
    if (!one) {
      if (get_map(c, ref, what, ref_keys, v) != 0 || !required(c, ref, v[0], "name", what)) {
        bad = 1;
        continue;
      }
      namev = v[0];
      if (ig_yaml_present(v[1]) && uint_of(c, v[1], "weight", what, 0, MAX_WEIGHT, &w) != 0) bad = 1;
    }
    const char *name = str_of(c, namev, one ? "backend" : "name", one ? "route" : what);
    if (!name) {
      bad = 1;
      continue;
    }
    long bi = backend_index(cfg, name);
    if (bi < 0) {
      err_at(c, namev, "unknown backend or pool '%s' in route", name);
      bad = 1;
      continue;
    }
    ig_backend_ref_t *b = &r->backends[r->n_backends++];
    b->backend = ig_strdup(name);
    b->backend_index = (size_t)bi;
    b->weight = (unsigned)w;
    total += w;
    if (!one && ig_yaml_present(v[2])) {
      ig_header_filter_cfg_t *rq = NULL, *rs = NULL;
      parse_filters(c, v[2], "route backend filters", &rq, &rs);
      /* stored as the effective filters of this reference: the route's, then its own */
      if (rq) b->request_headers = ig_config_header_filter_compose(r->request_headers, rq);
      if (rs) b->response_headers = ig_config_header_filter_compose(r->response_headers, rs);
      ig_config_header_filter_free(rq);
      ig_config_header_filter_free(rs);
    }
  }
  if (!bad && total == 0) err_at(c, list, "all backend weights in route are 0: the route could send nothing");
}

static void parse_routes(ctx_t *c, yaml_node_t *seq) {
  const char *what = "route";
  ig_config_t *cfg = c->cfg;
  if (!is_list(c, seq, "routes", "the top level")) return;
  size_t n = ig_yaml_seq_len(seq);
  size_t n_http = 0;
  for (size_t i = 0; i < cfg->n_listeners; i++)
    n_http += cfg->listeners[i].protocol == IG_PROTO_HTTP;
  cfg->routes = ig_calloc(n ? n : 1, sizeof *cfg->routes);
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = seq_at(c, seq, i), *v[MAX_FIELDS];
    if (get_map(c, item, what, route_keys, v) != 0) continue;
    ig_route_cfg_t *r = &cfg->routes[cfg->n_routes++];
    r->file = cfg->source;
    r->line = line_of(item);
    const char *name;
    if (required(c, item, v[R_NAME], "name", what) && (name = str_of(c, v[R_NAME], "name", what))) {
      size_t j = 0;
      while (j + 1 < cfg->n_routes && (!cfg->routes[j].name || strcmp(cfg->routes[j].name, name)))
        j++;
      if (j + 1 < cfg->n_routes)
        err_at(c, v[R_NAME], "duplicate route name '%s' (first defined at line %d)", name,
               cfg->routes[j].line);
      else
        r->name = ig_strdup(name);
    }
    if (is_list(c, v[R_LISTENERS], "listeners", what)) {
      size_t k = ig_yaml_seq_len(v[R_LISTENERS]);
      r->listeners = ig_calloc(k ? k : 1, sizeof *r->listeners);
      for (size_t j = 0; j < k; j++) {
        yaml_node_t *ln = seq_at(c, v[R_LISTENERS], j);
        const char *l = str_of(c, ln, "listeners", what);
        if (!l) continue;
        long li = listener_index(cfg, l);
        if (li < 0)
          err_at(c, ln, "unknown listener '%s' in route", l);
        else if (cfg->listeners[li].protocol != IG_PROTO_HTTP)
          err_at(c, ln, "route cannot attach to tcp listener '%s' (tcp listeners take no routes)", l);
        else
          r->listeners[r->n_listeners++] = ig_strdup(l);
      }
    } else if (n_http == 0 && cfg->n_listeners > 0) {
      err_at(c, item, "route has no http listener to attach to (all listeners are tcp)");
    }
    if (is_list(c, v[R_HOSTNAMES], "hostnames", what)) {
      size_t k = ig_yaml_seq_len(v[R_HOSTNAMES]);
      r->hostnames = ig_calloc(k ? k : 1, sizeof *r->hostnames);
      for (size_t j = 0; j < k; j++) {
        char *h = hostname_of(c, seq_at(c, v[R_HOSTNAMES], j), "route");
        if (h) r->hostnames[r->n_hostnames++] = h;
      }
    }
    if (ig_yaml_present(v[R_MATCHES])) parse_matches(c, v[R_MATCHES], r);
    if (ig_yaml_present(v[R_FILTERS]))
      parse_filters(c, v[R_FILTERS], "route filters", &r->request_headers, &r->response_headers);
    parse_backend_refs(c, item, v[R_BACKENDS], v[R_BACKEND], r);
    if (ig_yaml_present(v[R_TIMEOUT])) dur_of(c, v[R_TIMEOUT], "timeout", what, 0, DAY_MS, &r->timeout_ms);
    if (ig_yaml_present(v[R_AUTH])) parse_auth(c, v[R_AUTH], r);
  }
}

/* ---- the document ------------------------------------------------------------------------------ */

enum {
  T_LISTENERS,
  T_ADMIN,
  T_LIMITS,
  T_TIMEOUTS,
  T_ACCESS_LOG,
  T_DEFAULT_MODEL,
  T_BACKENDS,
  T_POOLS,
  T_MODELS,
  T_ROUTES,
  T_OBJECTIVES
};
static const char *const top_keys[] = {"listeners",  "admin",         "limits",   "timeouts",
                                       "access_log", "default_model", "backends", "pools",
                                       "models",     "routes",        "objectives", NULL};

/* Walks the root mapping in dependency order: backends and pools first so that references from
 * listeners, models and routes can be checked where they are written. */
static void parse_root(ctx_t *c, yaml_node_t *root) {
  yaml_node_t *v[MAX_FIELDS];
  if (!root || ig_yaml_is_null(root)) {
    err_file(c, "empty configuration (expected a mapping with at least 'listeners')");
    return;
  }
  if (get_map(c, root, "the top level", top_keys, v) != 0) return;
  if (ig_yaml_present(v[T_BACKENDS])) parse_backends(c, v[T_BACKENDS], 0);
  if (ig_yaml_present(v[T_POOLS])) parse_backends(c, v[T_POOLS], 1);
  parse_listeners(c, root, v[T_LISTENERS]);
  parse_admin(c, v[T_ADMIN]);
  parse_limits(c, v[T_LIMITS]);
  parse_timeouts(c, v[T_TIMEOUTS]);
  parse_access_log(c, v[T_ACCESS_LOG]);
  if (ig_yaml_present(v[T_MODELS])) parse_models(c, v[T_MODELS]);
  if (ig_yaml_present(v[T_OBJECTIVES])) parse_objectives(c, v[T_OBJECTIVES]);
  parse_default_model(c, v[T_DEFAULT_MODEL]);
  if (ig_yaml_present(v[T_ROUTES])) parse_routes(c, v[T_ROUTES]);
}

/* The defaults of every global limit and timeout (config.h and docs/configuration.md list them);
 * shared with the manifest loader so both kinds of snapshot behave the same. */
void ig_config_set_defaults(ig_config_t *cfg) {
  cfg->max_header_bytes = 16384;
  cfg->max_headers = 100;
  cfg->max_body_bytes = 4u << 20;
  cfg->max_connections = 10000;
  cfg->client_timeout_ms = 60000;
  cfg->drain_timeout_ms = 10000;
  cfg->max_connections_per_ip = 256;
  cfg->header_timeout_ms = 10000;
}

static ig_config_t *config_new(const char *source) {
  ig_config_t *cfg = IG_NEW(ig_config_t);
  cfg->source = ig_strdup(source);
  ig_config_set_defaults(cfg);
  return cfg;
}

/* Ends a load: errors in file order, a note for dropped ones; the snapshot only when clean. */
static int finish(ctx_t *c, ig_config_t *cfg, ig_config_t **out) {
  sort_errors(c);
  if (c->dropped) {
    int dropped = c->dropped;
    c->n_errors = 0; /* let the note through the cap */
    err_file(c, "too many errors; %d more not shown", dropped);
    c->n_errors = MAX_ERRORS + 1;
  }
  if (c->n_errors) {
    ig_config_free(cfg);
    return IG_ECONFIG;
  }
  *out = cfg;
  return 0;
}

int ig_config_load_string(const char *name, const char *yaml, size_t len, ig_config_t **out,
                          ig_config_errors_t *errs) {
  ig_config_errors_t local = {0};
  ctx_t c = {0};
  ig_config_t *cfg = NULL;
  *out = NULL;
  c.file = name ? name : "<string>";
  c.errs = errs ? errs : &local;
  c.first_err = c.errs->n;
  if (ig_yaml_prescan(yaml ? yaml : "", yaml ? len : 0, MAX_DEPTH, 1, yaml_err, &c) == 0) {
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)(yaml ? yaml : ""), yaml ? len : 0);
    if (!yaml_parser_load(&p, &doc)) {
      ig_yaml_syntax_error(&p, yaml ? yaml : "", yaml ? len : 0, yaml_err, &c);
    } else {
      c.doc = &doc;
      c.cfg = cfg = config_new(c.file);
      parse_root(&c, yaml_document_get_root_node(&doc));
      yaml_document_delete(&doc);
    }
    yaml_parser_delete(&p);
  }
  int rc = finish(&c, cfg, out);
  ig_config_errors_free(&local);
  return rc;
}

int ig_config_load(const char *path, ig_config_t **out, ig_config_errors_t *errs) {
  ig_config_errors_t local = {0};
  ctx_t c = {0};
  ig_buf_t buf;
  *out = NULL;
  c.file = path;
  c.errs = errs ? errs : &local;
  c.first_err = c.errs->n;
  ig_buf_init(&buf);
  FILE *f = fopen(path, "rb");
  if (!f) {
    err_file(&c, "cannot open: %s", strerror(errno));
    goto fail;
  }
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    ig_buf_append(&buf, chunk, n);
    if (buf.len > MAX_FILE_BYTES) {
      err_file(&c, "file is larger than %u MiB", MAX_FILE_BYTES >> 20);
      goto fail;
    }
  }
  if (ferror(f)) {
    err_file(&c, "cannot read: %s", strerror(errno));
    goto fail;
  }
  fclose(f);
  int rc = ig_config_load_string(path, buf.data ? buf.data : "", buf.len, out, c.errs);
  ig_buf_free(&buf);
  ig_config_errors_free(&local);
  return rc;
fail:
  if (f) fclose(f);
  ig_buf_free(&buf);
  ig_config_errors_free(&local);
  return IG_ECONFIG;
}

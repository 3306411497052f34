/* HTTPRoute header filters (Gateway API HTTPHeaderFilter): parsing of the `filters` list shared by the
 * native and the manifest loaders, and the filter values' lifetime (free, copy, compose). */
#define _GNU_SOURCE
#include "filters.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"
#include "infergate/core.h"

#define MAX_FILTER_HEADERS 16 /* Gateway API: at most 16 entries in set, add and remove each */
#define MAX_NAME_LEN 256
#define MAX_VALUE_LEN 4096
#define MAX_FIELDS_FILTER 10

/* ---- values ------------------------------------------------------------------------------------ */

void ig_config_header_filter_free(ig_header_filter_cfg_t *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n_set; i++) {
    free(f->set[i].name);
    free(f->set[i].value);
  }
  free(f->set);
  for (size_t i = 0; i < f->n_add; i++) {
    free(f->add[i].name);
    free(f->add[i].value);
  }
  free(f->add);
  for (size_t i = 0; i < f->n_remove; i++)
    free(f->remove[i]);
  free(f->remove);
  free(f);
}

static void push_hv(ig_header_value_cfg_t **v, size_t *n, const char *name, const char *value) {
  *v = ig_realloc(*v, (*n + 1) * sizeof **v);
  (*v)[*n].name = ig_strdup(name);
  (*v)[*n].value = ig_strdup(value);
  (*n)++;
}

static void push_name(ig_header_filter_cfg_t *f, const char *name) {
  f->remove = ig_realloc(f->remove, (f->n_remove + 1) * sizeof *f->remove);
  char *s = ig_strdup(name);
  for (char *p = s; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  f->remove[f->n_remove++] = s;
}

ig_header_filter_cfg_t *ig_config_header_filter_copy(const ig_header_filter_cfg_t *f) {
  if (!f) return NULL;
  ig_header_filter_cfg_t *d = ig_calloc(1, sizeof *d);
  for (size_t i = 0; i < f->n_set; i++)
    push_hv(&d->set, &d->n_set, f->set[i].name, f->set[i].value);
  for (size_t i = 0; i < f->n_add; i++)
    push_hv(&d->add, &d->n_add, f->add[i].name, f->add[i].value);
  for (size_t i = 0; i < f->n_remove; i++)
    push_name(d, f->remove[i]);
  return d;
}

/* Whether f sets or removes name (so that it overrides whatever an earlier filter did to it). */
static int overrides(const ig_header_filter_cfg_t *f, const char *name) {
  for (size_t i = 0; i < f->n_set; i++)
    if (!strcasecmp(f->set[i].name, name)) return 1;
  for (size_t i = 0; i < f->n_remove; i++)
    if (!strcasecmp(f->remove[i], name)) return 1;
  return 0;
}

static int removes(const ig_header_filter_cfg_t *f, const char *name) {
  for (size_t i = 0; i < f->n_remove; i++)
    if (!strcasecmp(f->remove[i], name)) return 1;
  return 0;
}

ig_header_filter_cfg_t *ig_config_header_filter_compose(const ig_header_filter_cfg_t *first,
                                                        const ig_header_filter_cfg_t *second) {
  if (!first || !second) return ig_config_header_filter_copy(first ? first : second);
  ig_header_filter_cfg_t *d = ig_calloc(1, sizeof *d);
  /* what first does to a header second leaves alone survives; second's own operations follow */
  for (size_t i = 0; i < first->n_set; i++)
    if (!overrides(second, first->set[i].name)) push_hv(&d->set, &d->n_set, first->set[i].name, first->set[i].value);
  for (size_t i = 0; i < second->n_set; i++)
    push_hv(&d->set, &d->n_set, second->set[i].name, second->set[i].value);
  for (size_t i = 0; i < first->n_remove; i++)
    if (!overrides(second, first->remove[i])) push_name(d, first->remove[i]);
  for (size_t i = 0; i < second->n_remove; i++)
    push_name(d, second->remove[i]);
  for (size_t i = 0; i < first->n_add; i++)
    if (!overrides(second, first->add[i].name)) push_hv(&d->add, &d->n_add, first->add[i].name, first->add[i].value);
  for (size_t i = 0; i < second->n_add; i++)
    push_hv(&d->add, &d->n_add, second->add[i].name, second->add[i].value);
  return d;
}

int ig_config_header_filter_forbidden(const char *name, size_t len) {
  static const char *const hop[] = {"connection",        "keep-alive", "proxy-connection", "transfer-encoding",
                                    "te",                "trailer",    "upgrade",          "content-length",
                                    NULL};
  for (size_t i = 0; hop[i]; i++)
    if (strlen(hop[i]) == len && !strncasecmp(hop[i], name, len)) return 1;
  return 0;
}

/* ---- parsing ----------------------------------------------------------------------------------- */

typedef struct {
  const ig_filter_ctx_t *fc;
  int errors;
} pctx_t;

static void perr(pctx_t *p, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void perr(pctx_t *p, const yaml_node_t *n, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  p->errors++;
  p->fc->error(p->fc->ud, n, msg);
}

static void pnote(pctx_t *p, const yaml_node_t *n, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void pnote(pctx_t *p, const yaml_node_t *n, const char *reason, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  p->fc->note(p->fc->ud, n, reason, msg);
}

static yaml_node_t *pnode(pctx_t *p, int i) {
  return yaml_document_get_node(p->fc->doc, i);
}

static int key_is(const yaml_node_t *k, const char *s) {
  return k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(s) &&
         !memcmp(k->data.scalar.value, s, k->data.scalar.length);
}

/* Reads mapping n by keys into vals (NULL when absent). Unknown keys are errors when strict, else
 * notes; duplicates are errors. Returns -1 after an error when n is not a mapping. */
static int pfields(pctx_t *p, yaml_node_t *n, const char *path, const char *const *keys, yaml_node_t **vals) {
  size_t nk = 0;
  while (keys[nk])
    vals[nk++] = NULL;
  if (n->type != YAML_MAPPING_NODE) {
    perr(p, n, "%s: expected a mapping, got %s", path, ig_yaml_kind(n));
    return -1;
  }
  for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < n->data.mapping.pairs.top; q++) {
    yaml_node_t *k = pnode(p, q->key);
    size_t i = 0;
    while (i < nk && !key_is(k, keys[i]))
      i++;
    if (i == nk) {
      if (k->type != YAML_SCALAR_NODE)
        perr(p, k, "%s: keys must be strings, got %s", path, ig_yaml_kind(k));
      else if (p->fc->strict)
        perr(p, k, "%s: unknown key '%.64s'", path, (const char *)k->data.scalar.value);
      else
        pnote(p, k, "UnknownField", "%s: unknown field '%.64s' ignored", path, (const char *)k->data.scalar.value);
      continue;
    }
    if (vals[i]) {
      perr(p, k, "%s: duplicate key '%s' (first given at line %d)", path, keys[i], (int)vals[i]->start_mark.line + 1);
      continue;
    }
    vals[i] = pnode(p, q->value);
  }
  return 0;
}

static int is_token(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return 0;
  return 1;
}

/* A header name of a filter: a token of 1..256 characters, not hop-by-hop. NULL after an error. */
static const char *header_name(pctx_t *p, yaml_node_t *n, const char *path) {
  if (n->type != YAML_SCALAR_NODE || ig_yaml_is_null(n) || n->data.scalar.length == 0) {
    perr(p, n, "%s: expected a header name, got %s", path, n->type == YAML_SCALAR_NODE ? "an empty value" : ig_yaml_kind(n));
    return NULL;
  }
  const char *s = (const char *)n->data.scalar.value;
  if (strlen(s) != n->data.scalar.length || n->data.scalar.length > MAX_NAME_LEN || !is_token(s)) {
    perr(p, n, "%s: invalid header name '%.64s' (a token of at most %d characters)", path, s, MAX_NAME_LEN);
    return NULL;
  }
  if (ig_config_header_filter_forbidden(s, strlen(s))) {
    perr(p, n, "%s: header '%s' is hop-by-hop or framing and cannot be modified by a filter", path, s);
    return NULL;
  }
  return s;
}

/* A header value: 1..4096 bytes of visible characters, spaces and tabs (no CR, LF or other control
 * bytes: they would split the head). NULL after an error. */
static const char *header_value(pctx_t *p, yaml_node_t *n, const char *path) {
  if (n->type != YAML_SCALAR_NODE) {
    perr(p, n, "%s: expected a string, got %s", path, ig_yaml_kind(n));
    return NULL;
  }
  const char *s = (const char *)n->data.scalar.value;
  size_t len = n->data.scalar.length;
  if (len == 0 || len > MAX_VALUE_LEN || strlen(s) != len) {
    perr(p, n, "%s: must be 1..%d bytes", path, MAX_VALUE_LEN);
    return NULL;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
      perr(p, n, "%s: control character in header value", path);
      return NULL;
    }
  }
  if (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t') {
    perr(p, n, "%s: header value must not start or end with white space", path);
    return NULL;
  }
  return s;
}

/* set / add: lists of {name, value} with unique names. */
static void parse_hv_list(pctx_t *p, yaml_node_t *seq, const char *path, ig_header_value_cfg_t **v, size_t *n) {
  static const char *const keys[] = {"name", "value", NULL};
  char ipath[160];
  if (seq->type != YAML_SEQUENCE_NODE) {
    perr(p, seq, "%s: expected a list, got %s", path, ig_yaml_kind(seq));
    return;
  }
  size_t len = ig_yaml_seq_len(seq);
  if (len > MAX_FILTER_HEADERS) {
    perr(p, seq, "%s: at most %d headers", path, MAX_FILTER_HEADERS);
    return;
  }
  snprintf(ipath, sizeof ipath, "%.150s[]", path);
  for (size_t i = 0; i < len; i++) {
    yaml_node_t *item = pnode(p, seq->data.sequence.items.start[i]), *fv[4];
    if (pfields(p, item, ipath, keys, fv)) continue;
    char npath[192], vpath[192];
    snprintf(npath, sizeof npath, "%.160s.name", ipath);
    snprintf(vpath, sizeof vpath, "%.160s.value", ipath);
    if (!fv[0] || !fv[1]) {
      perr(p, item, "%s: missing required field '%s'", ipath, fv[0] ? "value" : "name");
      continue;
    }
    const char *name = header_name(p, fv[0], npath), *value = header_value(p, fv[1], vpath);
    if (!name || !value) continue;
    size_t j = 0;
    while (j < *n && strcasecmp((*v)[j].name, name))
      j++;
    if (j < *n) {
      perr(p, fv[0], "%s: header '%s' given twice", npath, name);
      continue;
    }
    push_hv(v, n, name, value);
  }
}

static void parse_remove(pctx_t *p, yaml_node_t *seq, const char *path, ig_header_filter_cfg_t *f) {
  if (seq->type != YAML_SEQUENCE_NODE) {
    perr(p, seq, "%s: expected a list, got %s", path, ig_yaml_kind(seq));
    return;
  }
  size_t len = ig_yaml_seq_len(seq);
  if (len > MAX_FILTER_HEADERS) {
    perr(p, seq, "%s: at most %d headers", path, MAX_FILTER_HEADERS);
    return;
  }
  char ipath[160];
  snprintf(ipath, sizeof ipath, "%.150s[]", path);
  for (size_t i = 0; i < len; i++) {
    yaml_node_t *item = pnode(p, seq->data.sequence.items.start[i]);
    const char *name = header_name(p, item, ipath);
    if (!name) continue;
    if (removes(f, name)) {
      perr(p, item, "%s: header '%s' given twice", ipath, name);
      continue;
    }
    push_name(f, name);
  }
}

/* One HTTPHeaderFilter mapping {set, add, remove} into a new filter. */
static ig_header_filter_cfg_t *parse_header_filter(pctx_t *p, yaml_node_t *n, const char *path) {
  static const char *const keys[] = {"set", "add", "remove", NULL};
  yaml_node_t *v[4];
  char sub[192];
  if (pfields(p, n, path, keys, v)) return NULL;
  ig_header_filter_cfg_t *f = ig_calloc(1, sizeof *f);
  if (ig_yaml_present(v[0])) {
    snprintf(sub, sizeof sub, "%.140s.set", path);
    parse_hv_list(p, v[0], sub, &f->set, &f->n_set);
  }
  if (ig_yaml_present(v[1])) {
    snprintf(sub, sizeof sub, "%.140s.add", path);
    parse_hv_list(p, v[1], sub, &f->add, &f->n_add);
  }
  if (ig_yaml_present(v[2])) {
    snprintf(sub, sizeof sub, "%.140s.remove", path);
    parse_remove(p, v[2], sub, f);
  }
  return f;
}

enum {
  F_TYPE,
  F_REQ,
  F_RESP,
  F_REDIRECT,
  F_REWRITE,
  F_MIRROR,
  F_EXT,
  F_CORS,
  F_AUTH,
};
static const char *const filter_keys[] = {"type",         "requestHeaderModifier", "responseHeaderModifier",
                                          "requestRedirect", "urlRewrite",         "requestMirror",
                                          "extensionRef", "cors",                  "externalAuth",
                                          NULL};
/* type values, in the order of filter_keys[1..] */
static const char *const filter_types[] = {"RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect",
                                           "URLRewrite",            "RequestMirror",          "ExtensionRef",
                                           "CORS",                  "ExternalAuth",           NULL};

int ig_config_filters_parse(const ig_filter_ctx_t *fc, yaml_node_t *seq, ig_header_filter_cfg_t **req,
                            ig_header_filter_cfg_t **resp) {
  pctx_t p = {fc, 0};
  char ipath[160];
  if (!ig_yaml_present(seq)) return 0;
  if (seq->type != YAML_SEQUENCE_NODE) {
    perr(&p, seq, "%s: expected a list, got %s", fc->path, ig_yaml_kind(seq));
    return p.errors;
  }
  snprintf(ipath, sizeof ipath, "%.100s[]", fc->path);
  for (size_t i = 0; i < ig_yaml_seq_len(seq); i++) {
    yaml_node_t *item = pnode(&p, seq->data.sequence.items.start[i]), *v[MAX_FIELDS_FILTER];
    if (pfields(&p, item, ipath, filter_keys, v)) continue;
    if (!ig_yaml_present(v[F_TYPE])) {
      perr(&p, item, "%s: missing required field 'type'", ipath);
      continue;
    }
    const char *t = v[F_TYPE]->type == YAML_SCALAR_NODE ? (const char *)v[F_TYPE]->data.scalar.value : "";
    int ti = 0;
    while (filter_types[ti] && strcmp(filter_types[ti], t))
      ti++;
    if (!filter_types[ti]) {
      perr(&p, v[F_TYPE],
           "%s.type: invalid value '%.64s' (expected one of: RequestHeaderModifier, ResponseHeaderModifier, "
           "RequestRedirect, URLRewrite, RequestMirror, ExtensionRef, CORS, ExternalAuth)",
           ipath, t);
      continue;
    }
    int field = ti + 1; /* the configuration field that goes with the type */
    for (int k = F_REQ; k <= F_AUTH; k++)
      if (k != field && v[k])
        perr(&p, v[k], "%s: field '%s' does not go with type %s", ipath, filter_keys[k], t);
    if (field != F_REQ && field != F_RESP) {
      pnote(&p, v[F_TYPE], "UnsupportedValue", "%s: filter type %s is not supported; the filter is ignored", ipath, t);
      continue;
    }
    ig_header_filter_cfg_t **dst = field == F_REQ ? req : resp;
    char sub[150];
    snprintf(sub, sizeof sub, "%.110s.%s", ipath, filter_keys[field]);
    if (!ig_yaml_present(v[field])) {
      perr(&p, item, "%s: missing required field '%s' for type %s", ipath, filter_keys[field], t);
      continue;
    }
    if (*dst) {
      perr(&p, v[F_TYPE], "%s: filter type %s given twice (at most one per list)", ipath, t);
      continue;
    }
    *dst = parse_header_filter(&p, v[field], sub);
  }
  return p.errors;
}

/* Pure parts of the Kubernetes client: the watch stream's line splitter, the watch event parser and
 * the API URL parser. No sockets, no loop: fed by the connection code and by the unit tests. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/core.h"
#include "infergate/k8s.h"

long ig_k8s_line_next(const char *buf, size_t len, size_t *line_len) {
  const char *nl = len ? memchr(buf, '\n', len) : NULL;
  if (!nl) return len > IG_K8S_MAX_LINE ? IG_ETOOBIG : IG_EAGAIN;
  size_t n = (size_t)(nl - buf);
  if (n > IG_K8S_MAX_LINE) return IG_ETOOBIG;
  *line_len = n && buf[n - 1] == '\r' ? n - 1 : n;
  return (long)n + 1;
}

void ig_k8s_event_clear(ig_k8s_event_t *ev) {
  if (ev->object) json_decref(ev->object);
  memset(ev, 0, sizeof *ev);
}

/* A string member of obj, or NULL. */
static const char *jstr(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

int ig_k8s_event_parse(const char *line, size_t len, ig_k8s_event_t *ev) {
  static const char *const names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};
  memset(ev, 0, sizeof *ev);
  json_error_t jerr;
  json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object(root)) goto fail;
  const char *type = jstr(root, "type");
  size_t t = 0;
  while (type && t < sizeof names / sizeof names[0] && strcmp(names[t], type))
    t++;
  if (!type || t == sizeof names / sizeof names[0]) goto fail;
  json_t *obj = json_object_get(root, "object");
  if (!json_is_object(obj)) goto fail;
  ev->type = (ig_k8s_event_type_t)t;
  ev->object = json_incref(obj);
  json_decref(root);
  root = NULL;
  json_t *meta = json_object_get(obj, "metadata");
  if (json_is_object(meta)) {
    ev->ns = jstr(meta, "namespace");
    ev->name = jstr(meta, "name");
    ev->rv = jstr(meta, "resourceVersion");
  }
  if (ev->type == IG_K8S_ERROR) {
    json_t *code = json_object_get(obj, "code");
    if (json_is_integer(code) && json_integer_value(code) > 0 && json_integer_value(code) < 1000)
      ev->code = (int)json_integer_value(code);
  } else if (ev->type != IG_K8S_BOOKMARK && (!ev->name || !*ev->name)) {
    goto fail;
  }
  return 0;
fail:
  if (root) json_decref(root);
  ig_k8s_event_clear(ev);
  return IG_EPARSE;
}

int ig_k8s_url_parse(const char *url, int *tls, char *host, size_t hostcap, int *port) {
  const char *p;
  if (!strncmp(url, "http://", 7)) {
    *tls = 0;
    p = url + 7;
    *port = 80;
  } else if (!strncmp(url, "https://", 8)) {
    *tls = 1;
    p = url + 8;
    *port = 443;
  } else {
    return IG_EINVAL;
  }
  size_t n = strcspn(p, "/");
  if (p[n] == '/' && p[n + 1] != '\0') return IG_EINVAL; /* no path prefix supported */
  const char *end = p + n, *colon = NULL, *hs = p, *he;
  if (*p == '[') {
    const char *rb = memchr(p, ']', n);
    if (!rb) return IG_EINVAL;
    hs = p + 1;
    he = rb;
    if (rb + 1 < end) {
      if (rb[1] != ':') return IG_EINVAL;
      colon = rb + 1;
    }
  } else {
    colon = memchr(p, ':', n);
    he = colon ? colon : end;
  }
  if (he == hs || (size_t)(he - hs) >= hostcap) return IG_EINVAL;
  if (colon) {
    if (colon + 1 == end || end - colon > 6) return IG_EINVAL;
    int v = 0;
    for (const char *q = colon + 1; q < end; q++) {
      if (*q < '0' || *q > '9') return IG_EINVAL;
      v = v * 10 + (*q - '0');
    }
    if (v < 1 || v > 65535) return IG_EINVAL;
    *port = v;
  }
  memcpy(host, hs, (size_t)(he - hs));
  host[he - hs] = '\0';
  return 0;
}

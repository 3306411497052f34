/* kubeconfig files (the format kubectl reads): the current context (or a named one) gives the cluster
 * (server URL, CA, insecure-skip-tls-verify, tls-server-name), the user (bearer token, token file,
 * client certificate and key, as files or base64 data) and the namespace. Pure: text in, a filled
 * struct out; relative file names are resolved against the kubeconfig's directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "infergate/core.h"
#include "infergate/k8s.h"

#define KC_MAX_TEXT (4u << 20)

typedef struct {
  yaml_document_t *doc;
  char *err;
  size_t errcap;
} kc_t;

static int kc_err(kc_t *k, const char *fmt, const char *a, const char *b) {
  snprintf(k->err, k->errcap, fmt, a ? a : "", b ? b : "");
  return IG_EINVAL;
}

/* The value of key in mapping node n, or NULL. */
static yaml_node_t *mget(kc_t *k, yaml_node_t *n, const char *key) {
  if (!n || n->type != YAML_MAPPING_NODE) return NULL;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *kn = yaml_document_get_node(k->doc, p->key);
    if (kn && kn->type == YAML_SCALAR_NODE && !strcmp((const char *)kn->data.scalar.value, key))
      return yaml_document_get_node(k->doc, p->value);
  }
  return NULL;
}

/* A scalar's text, or NULL (absent, empty "null" / "~", or not a scalar). */
static const char *scalar(yaml_node_t *n) {
  if (!n || n->type != YAML_SCALAR_NODE) return NULL;
  const char *s = (const char *)n->data.scalar.value;
  if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && (!*s || !strcmp(s, "null") || !strcmp(s, "~")))
    return NULL;
  return s;
}

/* The "inner" mapping of the entry of list (clusters, contexts, users) whose name is name. */
static yaml_node_t *named(kc_t *k, yaml_node_t *root, const char *list, const char *inner, const char *name) {
  yaml_node_t *seq = mget(k, root, list);
  if (!seq || seq->type != YAML_SEQUENCE_NODE) return NULL;
  for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
    yaml_node_t *e = yaml_document_get_node(k->doc, *it);
    const char *n = scalar(mget(k, e, "name"));
    if (n && !strcmp(n, name)) {
      yaml_node_t *in = mget(k, e, inner);
      return in && in->type == YAML_MAPPING_NODE ? in : NULL;
    }
  }
  return NULL;
}

/* A path from the kubeconfig: absolute as is, else relative to dir (new string). */
static char *path_of(const char *dir, const char *p) {
  if (p[0] == '/' || !dir || !*dir) return ig_strdup(p);
  size_t n = strlen(dir) + strlen(p) + 2;
  char *s = ig_malloc(n);
  snprintf(s, n, "%s/%s", dir, p);
  return s;
}

/* Decodes base64 field key of m into *data / *len (none: left NULL). */
static int data_field(kc_t *k, yaml_node_t *m, const char *key, char **data, size_t *len) {
  const char *s = scalar(mget(k, m, key));
  if (!s) return 0;
  if (ig_base64_decode(s, strlen(s), data, len) != 0 || *len == 0) return kc_err(k, "%s: invalid base64%s", key, NULL);
  return 0;
}

void ig_k8s_kubeconfig_free(ig_k8s_kubeconfig_t *kc) {
  free(kc->server);
  free(kc->tls_server_name);
  free(kc->ca_file);
  free(kc->ca_data);
  free(kc->token);
  free(kc->token_file);
  free(kc->cert_file);
  free(kc->cert_data);
  free(kc->key_file);
  free(kc->key_data);
  free(kc->ns);
  free(kc->context);
  memset(kc, 0, sizeof *kc);
}

/* Fills kc from the parsed document. */
static int from_doc(kc_t *k, const char *dir, const char *want_ctx, ig_k8s_kubeconfig_t *kc) {
  yaml_node_t *root = yaml_document_get_root_node(k->doc);
  if (!root || root->type != YAML_MAPPING_NODE) return kc_err(k, "not a kubeconfig (expected a mapping)%s%s", 0, 0);
  const char *ctx = want_ctx ? want_ctx : scalar(mget(k, root, "current-context"));
  if (!ctx) return kc_err(k, "no current-context (and no --kube-context given)%s%s", NULL, NULL);
  yaml_node_t *c = named(k, root, "contexts", "context", ctx);
  if (!c) return kc_err(k, "context '%.100s' is not in contexts[]%s", ctx, NULL);
  kc->context = ig_strdup(ctx);
  const char *cl = scalar(mget(k, c, "cluster")), *us = scalar(mget(k, c, "user"));
  const char *ns = scalar(mget(k, c, "namespace"));
  if (ns) kc->ns = ig_strdup(ns);
  if (!cl) return kc_err(k, "context '%.100s' names no cluster%s", ctx, NULL);
  yaml_node_t *cm = named(k, root, "clusters", "cluster", cl);
  if (!cm) return kc_err(k, "cluster '%.100s' (of context '%.100s') is not in clusters[]", cl, ctx);
  const char *server = scalar(mget(k, cm, "server"));
  if (!server) return kc_err(k, "cluster '%.100s' has no server%s", cl, NULL);
  kc->server = ig_strdup(server);
  size_t sl = strlen(kc->server);
  if (sl > 1 && kc->server[sl - 1] == '/') kc->server[sl - 1] = '\0';
  const char *s;
  if ((s = scalar(mget(k, cm, "tls-server-name")))) kc->tls_server_name = ig_strdup(s);
  if ((s = scalar(mget(k, cm, "insecure-skip-tls-verify"))))
    kc->insecure = !strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE");
  if ((s = scalar(mget(k, cm, "certificate-authority")))) kc->ca_file = path_of(dir, s);
  if (data_field(k, cm, "certificate-authority-data", &kc->ca_data, &kc->ca_data_len)) return IG_EINVAL;
  if (mget(k, cm, "proxy-url")) return kc_err(k, "cluster '%.100s': proxy-url is not supported%s", cl, NULL);
  if (!us) return 0; /* no credentials: anonymous */
  yaml_node_t *um = named(k, root, "users", "user", us);
  if (!um) return kc_err(k, "user '%.100s' (of context '%.100s') is not in users[]", us, ctx);
  if (mget(k, um, "exec") || mget(k, um, "auth-provider"))
    return kc_err(k, "user '%.100s': exec and auth-provider credentials are not supported (use a token, a "
                     "tokenFile or a client certificate)%s", us, NULL);
  if (mget(k, um, "username") || mget(k, um, "password"))
    return kc_err(k, "user '%.100s': basic authentication is not supported%s", us, NULL);
  if ((s = scalar(mget(k, um, "token")))) {
    if (strpbrk(s, "\r\n")) return kc_err(k, "user '%.100s': the token has a line break%s", us, NULL);
    kc->token = ig_strdup(s);
  }
  if ((s = scalar(mget(k, um, "tokenFile")))) kc->token_file = path_of(dir, s);
  if ((s = scalar(mget(k, um, "client-certificate")))) kc->cert_file = path_of(dir, s);
  if ((s = scalar(mget(k, um, "client-key")))) kc->key_file = path_of(dir, s);
  if (data_field(k, um, "client-certificate-data", &kc->cert_data, &kc->cert_data_len) ||
      data_field(k, um, "client-key-data", &kc->key_data, &kc->key_data_len))
    return IG_EINVAL;
  int has_cert = kc->cert_file || kc->cert_data, has_key = kc->key_file || kc->key_data;
  if (has_cert != has_key)
    return kc_err(k, "user '%.100s': a client certificate needs its key (and a key its certificate)%s", us, NULL);
  return 0;
}

int ig_k8s_kubeconfig_parse(const char *text, size_t len, const char *dir, const char *context,
                            ig_k8s_kubeconfig_t *kc, char *err, size_t errcap) {
  memset(kc, 0, sizeof *kc);
  kc_t k = {.err = err, .errcap = errcap};
  if (errcap) err[0] = '\0';
  yaml_parser_t p;
  yaml_document_t doc;
  if (len > KC_MAX_TEXT) return kc_err(&k, "the file is larger than 4 MiB%s%s", NULL, NULL);
  if (!yaml_parser_initialize(&p)) return kc_err(&k, "out of memory%s%s", NULL, NULL);
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  if (!yaml_parser_load(&p, &doc)) {
    char line[32];
    snprintf(line, sizeof line, "%zu", p.problem_mark.line + 1);
    int r = kc_err(&k, "YAML error at line %s: %s", line, p.problem ? p.problem : "invalid YAML");
    yaml_parser_delete(&p);
    return r;
  }
  k.doc = &doc;
  int rc = from_doc(&k, dir, context, kc);
  yaml_document_delete(&doc);
  yaml_parser_delete(&p);
  if (rc != 0) ig_k8s_kubeconfig_free(kc);
  return rc;
}

int ig_k8s_kubeconfig_load(const char *path, const char *context, ig_k8s_kubeconfig_t *kc, char *err,
                           size_t errcap) {
  memset(kc, 0, sizeof *kc);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errcap, "cannot open %s", path);
    return IG_EINVAL;
  }
  ig_buf_t b;
  ig_buf_init(&b);
  char tmp[8192];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0 && b.len <= KC_MAX_TEXT)
    ig_buf_append(&b, tmp, n);
  fclose(f);
  char *dir = ig_strdup(path), *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  else
    dir[0] = '\0';
  int rc = ig_k8s_kubeconfig_parse(b.data ? b.data : "", b.len, dir, context, kc, err, errcap);
  free(dir);
  ig_buf_free(&b);
  return rc;
}

/* TLS termination on HTTP listeners, and TLS to upstream endpoints (issue #9): one SSL_CTX per certificate of a listener, picked by
 * SNI, and a per-connection shim over memory BIOs so that client.c keeps reading and writing its libuv
 * stream: ciphertext read from the socket is fed in and plaintext comes out; plaintext to send is
 * encrypted into a memory BIO whose bytes are then written to the socket. TLS 1.2 minimum, server
 * cipher preference, no renegotiation, ALPN "http/1.1". The client side also drives the metrics scraper's
 * and model discovery's connections (tls_conn_pump / tls_conn_send / tls_conn_flush over a libuv stream). */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy.h"

typedef struct {
  SSL_CTX *ctx;
  char *id;         /* what ctx was loaded from (ctx_identity), NULL when unknown */
  char **hostnames; /* borrowed from nothing: owned copies */
  size_t n_hostnames;
} tls_cert_t;

struct tls_srv {
  unsigned refs; /* the listener + each connection */
  char *name;    /* listener name, for logs */
  SSL_CTX *def;  /* default certificate */
  char *def_id;  /* its identity (ctx_identity) */
  tls_cert_t *certs;
  size_t n_certs;
};

struct tls_conn {
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  tls_srv_t *srv;   /* server side: the listener's certificates; NULL on client connections */
  char name[80];    /* client connections: the upstream endpoint, for logs */
  char last_err[256]; /* OpenSSL's reason for the last failure */
};

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* ALPN: speak HTTP/1.1 when the client offers it; otherwise go on without ALPN. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  unsigned char *sel = NULL;
  unsigned char sel_len = 0;
  if (SSL_select_next_proto(&sel, &sel_len, alpn_http11, sizeof alpn_http11 - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  *outlen = sel_len;
  return SSL_TLSEXT_ERR_OK;
}

/* Whether name (lower-cased) matches the wildcard pattern "*.suffix": exactly one label in front. */
static int wildcard_match(const char *pat, const char *name) {
  if (strncmp(pat, "*.", 2) != 0) return 0;
  const char *suffix = pat + 1; /* ".example.com" */
  size_t sl = strlen(suffix), nl = strlen(name);
  if (nl <= sl || strcmp(name + nl - sl, suffix) != 0) return 0;
  return memchr(name, '.', nl - sl) == NULL;
}

/* Picks the context for an SNI hostname: an exact hostname first, then a wildcard, else the default. */
static SSL_CTX *pick_ctx(const tls_srv_t *s, const char *sni) {
  char name[256];
  size_t n = strlen(sni);
  if (n == 0 || n >= sizeof name) return s->def;
  for (size_t i = 0; i < n; i++)
    name[i] = (char)tolower((unsigned char)sni[i]);
  if (name[n - 1] == '.') n--;
  name[n] = '\0';
  for (size_t i = 0; i < s->n_certs; i++)
    for (size_t j = 0; j < s->certs[i].n_hostnames; j++)
      if (strcmp(s->certs[i].hostnames[j], name) == 0) return s->certs[i].ctx;
  for (size_t i = 0; i < s->n_certs; i++)
    for (size_t j = 0; j < s->certs[i].n_hostnames; j++)
      if (wildcard_match(s->certs[i].hostnames[j], name)) return s->certs[i].ctx;
  return s->def;
}

/* SNI: the connection's listener certificates come from the connection (SSL app data), not from the
 * context, because a context may be shared by the certificate sets of several reloads. */
static int on_sni(SSL *ssl, int *al, void *arg) {
  (void)al;
  (void)arg;
  const tls_conn_t *t = SSL_get_app_data(ssl);
  if (!t || !t->srv) return SSL_TLSEXT_ERR_OK;
  const tls_srv_t *s = t->srv;
  const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!sni) return SSL_TLSEXT_ERR_OK;
  SSL_CTX *ctx = pick_ctx(s, sni);
  if (ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

/* Creates one server context for a certificate chain and key (already checked at load time, but the
 * files may have changed since: errors are logged). */
static SSL_CTX *ctx_new(tls_srv_t *s, const char *cert, const char *key, const char *cert_pem, const char *key_pem) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
  SSL_CTX_set_tlsext_servername_callback(ctx, on_sni);
  if (cert_pem) {
    /* a certificate from a Secret (Gateway HTTPS listener): PEM text, checked at load time */
    char why[512];
    if (ig_config_tls_use_pem(ctx, cert_pem, key_pem ? key_pem : "", why, sizeof why) != 0) {
      ig_error("listener %s: cannot load the TLS certificate from its Secret: %s", s->name, why);
      SSL_CTX_free(ctx);
      return NULL;
    }
    return ctx;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    char why[256];
    ERR_error_string_n(ERR_get_error(), why, sizeof why);
    ig_error("listener %s: cannot load TLS certificate %s / key %s: %s", s->name, cert, key, why);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* Appends the identity of file path to b: its path, device, inode, size and modification time.
 * Returns 0, or -1 (nothing appended) when path is NULL or cannot be stat'ed. */
static int stamp_file(ig_buf_t *b, const char *path) {
  struct stat st;
  if (!path || stat(path, &st) != 0) return -1;
  ig_buf_printf(b, "%zu:%s|%llu:%llu:%lld:%lld.%09ld|", strlen(path), path, (unsigned long long)st.st_dev,
                (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                (long)st.st_mtim.tv_nsec);
  return 0;
}

/* Feeds "len:text|" to a digest (length-prefixed, so that two fields cannot run into each other). */
static int digest_field(EVP_MD_CTX *md, const char *text) {
  char len[32];
  int n = snprintf(len, sizeof len, "%zu:", strlen(text));
  return EVP_DigestUpdate(md, len, (size_t)n) == 1 && EVP_DigestUpdate(md, text, strlen(text)) == 1 &&
         EVP_DigestUpdate(md, "|", 1) == 1;
}

/* What a server context is loaded from, as the hex SHA-256 of: the PEM text of a certificate and key
 * from a Secret (hashed in place: the key is not copied), or the paths of the files with their size and
 * modification time. Two contexts with the same identity hold the same certificate and key. Returns a
 * new string (free it), or NULL when a file cannot be stat'ed (such a context is never reused). */
static char *ctx_identity(const char *cert, const char *key, const char *cert_pem, const char *key_pem) {
  ig_buf_t b;
  ig_buf_init(&b);
  char *id = NULL;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) goto out;
  if (cert_pem) {
    if (!digest_field(md, "pem") || !digest_field(md, cert_pem) || !digest_field(md, key_pem ? key_pem : ""))
      goto out;
  } else {
    ig_buf_puts(&b, "file|");
    if (stamp_file(&b, cert) != 0 || stamp_file(&b, key) != 0) goto out;
    if (!digest_field(md, b.data)) goto out;
  }
  if (EVP_DigestFinal_ex(md, out, &n) != 1) goto out;
  static const char hex[] = "0123456789abcdef";
  id = ig_malloc(2 * (size_t)n + 1);
  for (unsigned int i = 0; i < n; i++) {
    id[2 * i] = hex[out[i] >> 4];
    id[2 * i + 1] = hex[out[i] & 15];
  }
  id[2 * n] = '\0';
out:
  if (!id) ERR_clear_error();
  EVP_MD_CTX_free(md);
  ig_buf_free(&b);
  return id;
}

/* A server context of prev whose identity is id (a new reference), or NULL. */
static SSL_CTX *ctx_find(const tls_srv_t *prev, const char *id) {
  if (!prev || !id) return NULL;
  SSL_CTX *ctx = NULL;
  if (prev->def_id && strcmp(prev->def_id, id) == 0) ctx = prev->def;
  for (size_t i = 0; !ctx && i < prev->n_certs; i++)
    if (prev->certs[i].id && strcmp(prev->certs[i].id, id) == 0) ctx = prev->certs[i].ctx;
  if (ctx && SSL_CTX_up_ref(ctx) != 1) ctx = NULL;
  return ctx;
}

/* The server context for a certificate and key: prev's when it was loaded from the same text or the
 * same unchanged files (keeping its session cache and ticket keys, and sparing a key parse), else a
 * new one (NULL when it cannot be loaded, logged). *id receives its identity (owned, may be NULL). */
static SSL_CTX *ctx_get(tls_srv_t *s, const tls_srv_t *prev, const char *cert, const char *key,
                        const char *cert_pem, const char *key_pem, char **id) {
  *id = ctx_identity(cert, key, cert_pem, key_pem);
  SSL_CTX *ctx = ctx_find(prev, *id);
  if (ctx) {
    ig_debug("listener %s: certificate %s unchanged, keeping its TLS context", s->name,
             cert_pem ? "(Secret)" : cert);
    return ctx;
  }
  return ctx_new(s, cert, key, cert_pem, key_pem);
}

int tls_srv_new(const ig_tls_cfg_t *cfg, const char *listener, const tls_srv_t *prev, tls_srv_t **out) {
  *out = NULL;
  tls_srv_t *s = IG_NEW(tls_srv_t);
  s->refs = 1;
  s->name = ig_strdup(listener);
  s->certs = ig_calloc(cfg->n_certificates ? cfg->n_certificates : 1, sizeof *s->certs);
  if (!(s->def = ctx_get(s, prev, cfg->cert, cfg->key, cfg->cert_pem, cfg->key_pem, &s->def_id))) goto fail;
  for (size_t i = 0; i < cfg->n_certificates; i++) {
    const ig_tls_cert_cfg_t *cc = &cfg->certificates[i];
    tls_cert_t *t = &s->certs[s->n_certs++];
    t->hostnames = ig_calloc(cc->n_hostnames ? cc->n_hostnames : 1, sizeof *t->hostnames);
    for (size_t j = 0; j < cc->n_hostnames; j++)
      t->hostnames[t->n_hostnames++] = ig_strdup(cc->hostnames[j]);
    if (!(t->ctx = ctx_get(s, prev, cc->cert, cc->key, NULL, NULL, &t->id))) goto fail;
  }
  *out = s;
  return 0;
fail:
  tls_srv_release(s);
  return IG_ECONFIG;
}

void tls_srv_release(tls_srv_t *s) {
  if (!s || --s->refs) return;
  for (size_t i = 0; i < s->n_certs; i++) {
    SSL_CTX_free(s->certs[i].ctx);
    free(s->certs[i].id);
    for (size_t j = 0; j < s->certs[i].n_hostnames; j++)
      free(s->certs[i].hostnames[j]);
    free(s->certs[i].hostnames);
  }
  free(s->certs);
  SSL_CTX_free(s->def);
  free(s->def_id);
  free(s->name);
  free(s);
}

tls_conn_t *tls_conn_new(tls_srv_t *s) {
  SSL *ssl = SSL_new(s->def);
  if (!ssl) return NULL;
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  if (!rb || !wb) {
    BIO_free(rb);
    BIO_free(wb);
    SSL_free(ssl);
    return NULL;
  }
  BIO_set_mem_eof_return(rb, -1); /* an empty read BIO means "want more", not EOF */
  SSL_set_bio(ssl, rb, wb);
  SSL_set_accept_state(ssl);
  tls_conn_t *t = IG_NEW(tls_conn_t);
  t->ssl = ssl;
  t->rbio = rb;
  t->wbio = wb;
  t->srv = s;
  s->refs++; /* the SNI callback reads s while this connection handshakes */
  SSL_set_app_data(ssl, t);
  return t;
}

void tls_conn_free(tls_conn_t *t) {
  if (!t) return;
  SSL_free(t->ssl); /* frees both BIOs */
  tls_srv_release(t->srv);
  free(t);
}

/* Logs a failed TLS operation at debug level and clears OpenSSL's error queue. */
static void log_fail(tls_conn_t *t, const char *peer, const char *what, int err) {
  char why[256] = "";
  unsigned long e = ERR_get_error();
  if (e) ERR_error_string_n(e, why, sizeof why);
  snprintf(t->last_err, sizeof t->last_err, "%s", e ? why : "connection failed");
  if (t->srv)
    ig_debug("client %s on %s: TLS %s failed (ssl error %d) %s", peer, t->srv->name, what, err, why);
  else
    ig_debug("upstream %s: TLS %s failed (ssl error %d) %s", t->name, what, err, why);
  ERR_clear_error();
}

int tls_conn_feed(tls_conn_t *t, const char *peer, const char *in, size_t n, ig_buf_t *plain) {
  while (n) {
    int chunk = n > INT_MAX ? INT_MAX : (int)n;
    int w = BIO_write(t->rbio, in, chunk);
    if (w <= 0) return IG_EIO;
    in += w;
    n -= (size_t)w;
  }
  for (;;) {
    ig_buf_reserve(plain, 16384);
    size_t room = plain->cap - plain->len - 1;
    int r = SSL_read(t->ssl, plain->data + plain->len, room > INT_MAX ? INT_MAX : (int)room);
    if (r > 0) {
      plain->len += (size_t)r;
      plain->data[plain->len] = '\0';
      continue;
    }
    int err = SSL_get_error(t->ssl, r);
    if (err == SSL_ERROR_WANT_READ) return 0;
    if (err == SSL_ERROR_ZERO_RETURN) return IG_ECLOSED; /* close_notify */
    log_fail(t, peer, SSL_is_init_finished(t->ssl) ? "read" : "handshake", err);
    return IG_EPARSE;
  }
}

int tls_conn_encrypt(tls_conn_t *t, const char *peer, const uv_buf_t *bufs, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    const char *p = bufs[i].base;
    size_t left = bufs[i].len;
    while (left) {
      int chunk = left > (1u << 30) ? 1 << 30 : (int)left;
      int w = SSL_write(t->ssl, p, chunk);
      if (w <= 0) {
        log_fail(t, peer, "write", SSL_get_error(t->ssl, w));
        return IG_EIO;
      }
      p += w;
      left -= (size_t)w;
    }
  }
  return 0;
}

void tls_conn_close_notify(tls_conn_t *t) {
  if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
  ERR_clear_error();
}

size_t tls_conn_pending(tls_conn_t *t, char **data) {
  char *p = NULL;
  long n = BIO_get_mem_data(t->wbio, &p);
  *data = p;
  return n > 0 ? (size_t)n : 0;
}

void tls_conn_consumed(tls_conn_t *t) {
  (void)BIO_reset(t->wbio);
}

/* ---------------------------------------------------------------- client side (upstreams) */

/* Logs the OpenSSL error queue under what and clears it. */
static void log_ctx_error(const char *backend, const char *what, const char *path) {
  char why[256] = "";
  unsigned long e = ERR_get_error();
  if (e) ERR_error_string_n(e, why, sizeof why);
  ig_error("backend %s: %s %s: %s", backend, what, path ? path : "", why);
  ERR_clear_error();
}

SSL_CTX *tls_client_ctx_new(const ig_upstream_tls_cfg_t *cfg, const char *backend) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    log_ctx_error(backend, "cannot create a TLS client context", NULL);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof alpn_http11 - 1);
  if (cfg->ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
      log_ctx_error(backend, "cannot load the TLS CA file", cfg->ca_file);
      goto fail;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    log_ctx_error(backend, "cannot load the system CA store", NULL);
    goto fail;
  }
  if (cfg->cert_file && cfg->key_file &&
      (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1 ||
       SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
       SSL_CTX_check_private_key(ctx) != 1)) {
    log_ctx_error(backend, "cannot load the TLS client certificate", cfg->cert_file);
    goto fail;
  }
  if (cfg->verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    ig_warn("backend %s: TLS to its endpoints is NOT verified (tls.verify: false)", backend);
  }
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

void tls_client_ctx_free(SSL_CTX *ctx) {
  SSL_CTX_free(ctx);
}

SSL_CTX *tls_client_ctx_ref(SSL_CTX *ctx) {
  return ctx && SSL_CTX_up_ref(ctx) == 1 ? ctx : NULL;
}

char *tls_client_ctx_id(const ig_upstream_tls_cfg_t *cfg) {
  char *key = tls_client_key(cfg);
  ig_buf_t b;
  ig_buf_init(&b);
  ig_buf_puts(&b, key);
  free(key);
  ig_buf_puts(&b, "|");
  const char *files[3] = {cfg->ca_file, cfg->cert_file, cfg->key_file};
  for (int i = 0; i < 3; i++)
    if (files[i] && stamp_file(&b, files[i]) != 0) ig_buf_puts(&b, "?|"); /* unreadable: loading says why */
  char *id = ig_strdup(b.data);
  ig_buf_free(&b);
  return id;
}

/* Whether s is a numeric IPv4 or IPv6 address. */
static int is_ip(const char *s) {
  unsigned char a[16];
  return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

tls_conn_t *tls_conn_new_client(SSL_CTX *ctx, const char *host, const char *server_name, const char *name) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl) return NULL;
  const char *peer = server_name ? server_name : host;
  X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
  int ok;
  if (is_ip(peer)) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(vp, peer) == 1; /* no SNI for an address (RFC 6066) */
  } else {
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = X509_VERIFY_PARAM_set1_host(vp, peer, 0) == 1 && SSL_set_tlsext_host_name(ssl, peer) == 1;
  }
  BIO *rb = ok ? BIO_new(BIO_s_mem()) : NULL, *wb = ok ? BIO_new(BIO_s_mem()) : NULL;
  if (!rb || !wb) {
    BIO_free(rb);
    BIO_free(wb);
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
  }
  BIO_set_mem_eof_return(rb, -1);
  SSL_set_bio(ssl, rb, wb);
  SSL_set_connect_state(ssl);
  tls_conn_t *t = IG_NEW(tls_conn_t);
  t->ssl = ssl;
  t->rbio = rb;
  t->wbio = wb;
  snprintf(t->name, sizeof t->name, "%s", name);
  /* the ClientHello goes into the write BIO now; the caller sends it */
  int r = SSL_do_handshake(ssl);
  if (r <= 0 && SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) {
    log_fail(t, "-", "handshake", SSL_get_error(ssl, r));
    tls_conn_free(t);
    return NULL;
  }
  return t;
}

int tls_conn_established(const tls_conn_t *t) {
  return SSL_is_init_finished(t->ssl);
}

const char *tls_conn_last_error(const tls_conn_t *t) {
  return t->last_err[0] ? t->last_err : "unknown TLS error";
}

const char *tls_conn_verify_error(const tls_conn_t *t) {
  long v = SSL_get_verify_result(t->ssl);
  return v == X509_V_OK ? NULL : X509_verify_cert_error_string(v);
}

char *tls_client_key(const ig_upstream_tls_cfg_t *cfg) {
  ig_buf_t b;
  ig_buf_init(&b);
  ig_buf_printf(&b, "tls|%d|%s|%s|%s|%s", cfg->verify, cfg->ca_file ? cfg->ca_file : "",
                cfg->server_name ? cfg->server_name : "", cfg->cert_file ? cfg->cert_file : "",
                cfg->key_file ? cfg->key_file : "");
  char *s = ig_strdup(b.data);
  ig_buf_free(&b);
  return s;
}

/* ---------------------------------------------------------------- client I/O over a libuv stream */

void tls_conn_keep_buffers(tls_conn_t *t) {
  SSL_clear_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
}

int tls_conn_flush(tls_conn_t *t, uv_stream_t *s, uv_write_cb cb) {
  char *data;
  size_t len = tls_conn_pending(t, &data);
  if (len == 0) return 0;
  int queued = 0;
  uv_buf_t iov = uv_buf_init(data, (unsigned)len);
  int rc = stream_write(s, &iov, 1, cb, &queued);
  tls_conn_consumed(t); /* stream_write copied what it did not send */
  return rc < 0 ? IG_EIO : 0;
}

int tls_conn_send(tls_conn_t *t, uv_stream_t *s, const uv_buf_t *bufs, unsigned n, uv_write_cb cb) {
  if (tls_conn_encrypt(t, t->name, bufs, n) != 0) return IG_EIO;
  return tls_conn_flush(t, s, cb);
}

int tls_conn_pump(tls_conn_t *t, uv_stream_t *s, uv_write_cb cb, const char *in, size_t n, ig_buf_t *plain) {
  int rc = tls_conn_feed(t, t->name, in, n, plain);
  /* handshake records and alerts go out whatever the outcome */
  if (tls_conn_flush(t, s, cb) != 0) return IG_EIO;
  return rc;
}

void tls_conn_set_error(tls_conn_t *t, const char *why) {
  snprintf(t->last_err, sizeof t->last_err, "%s", why);
}

const char *tls_conn_failure(const tls_conn_t *t, char *buf, size_t n) {
  const char *verr = tls_conn_verify_error(t);
  if (verr)
    snprintf(buf, n, "TLS certificate verification failed: %s", verr);
  else
    snprintf(buf, n, "TLS handshake failed: %s", tls_conn_last_error(t));
  return buf;
}

int tls_warn_due(uint64_t *last_ms, uint64_t now_ms) {
  if (*last_ms && now_ms - *last_ms < TLS_WARN_EVERY_MS) return 0;
  *last_ms = now_ms ? now_ms : 1;
  return 1;
}

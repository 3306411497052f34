/* API-key authentication per route (issue #9): bearer tokens read from a file on every activation
 * (start, SIGHUP), kept only as SHA-256 digests and compared with CRYPTO_memcmp against every key,
 * so that neither the matching key nor the length of a guess shows in the time taken. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "proxy.h"

#define KEYS_FILE_MAX (16u << 20)

static int is_blank(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\r';
}

static void digest(const char *p, size_t n, unsigned char out[AUTH_DIGEST_LEN]) {
  unsigned int len = 0;
  if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != AUTH_DIGEST_LEN) {
    /* cannot happen with a working libcrypto; a digest no token can produce keeps it closed */
    memset(out, 0, AUTH_DIGEST_LEN);
  }
}

size_t auth_keys_parse(const char *text, size_t len, auth_keys_t *k) {
  memset(k, 0, sizeof *k);
  k->active = 1;
  size_t cap = 0;
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *e = eol ? eol : end;
    const char *a = p, *b = e;
    while (a < b && is_blank(*a)) a++;
    while (b > a && is_blank(b[-1])) b--;
    if (a < b && *a != '#') {
      if (k->n == cap) {
        cap = cap ? cap * 2 : 8;
        k->digests = ig_realloc(k->digests, cap * sizeof *k->digests);
      }
      digest(a, (size_t)(b - a), k->digests[k->n++]);
    }
    p = eol ? eol + 1 : end;
  }
  return k->n;
}

int auth_keys_load(const char *path, auth_keys_t *k) {
  memset(k, 0, sizeof *k);
  k->active = 1; /* fail closed: a route whose keys cannot be read admits nobody */
  FILE *f = fopen(path, "rb");
  if (!f) {
    ig_error("api_keys_file %s: %s", path, strerror(errno));
    return IG_EIO;
  }
  ig_buf_t b;
  ig_buf_init(&b);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= KEYS_FILE_MAX)
    ig_buf_append(&b, chunk, n);
  int bad = ferror(f) || b.len > KEYS_FILE_MAX;
  fclose(f);
  if (bad) {
    ig_error("api_keys_file %s: cannot read it (or larger than %u bytes)", path, KEYS_FILE_MAX);
    ig_buf_free(&b);
    return IG_EIO;
  }
  size_t got = auth_keys_parse(b.data ? b.data : "", b.len, k);
  /* the text held secrets: wipe it before it goes back to the allocator */
  if (b.data) OPENSSL_cleanse(b.data, b.cap);
  OPENSSL_cleanse(chunk, sizeof chunk);
  ig_buf_free(&b);
  if (got == 0) {
    ig_error("api_keys_file %s holds no API key", path);
    return IG_EIO;
  }
  return 0;
}

void auth_keys_free(auth_keys_t *k) {
  if (!k) return;
  free(k->digests);
  memset(k, 0, sizeof *k);
}

int auth_check(const auth_keys_t *k, const char *value, size_t len) {
  if (!k->active) return 1;
  if (!value || len < 7 || strncasecmp(value, "bearer", 6) != 0 || !is_blank(value[6])) return 0;
  const char *a = value + 7, *b = value + len;
  while (a < b && is_blank(*a)) a++;
  while (b > a && is_blank(b[-1])) b--;
  if (a == b) return 0;
  unsigned char d[AUTH_DIGEST_LEN];
  digest(a, (size_t)(b - a), d);
  int ok = 0;
  for (size_t i = 0; i < k->n; i++) /* no early exit: every key is compared */
    ok |= CRYPTO_memcmp(d, k->digests[i], AUTH_DIGEST_LEN) == 0;
  return ok;
}

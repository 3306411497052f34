/* Base64 decoding for PEM data in Kubernetes Secrets and kubeconfig files. */
#include "infergate/core.h"

#include <stdlib.h>

/* The 6-bit value of a character of the standard or the URL-safe alphabet, or -1. */
static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

int ig_base64_decode(const char *in, size_t n, char **out, size_t *out_len) {
  char *o = ig_malloc(n / 4 * 3 + 4);
  size_t len = 0;
  unsigned acc = 0;
  int bits = 0, pad = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      pad++;
      continue;
    }
    int v = b64val(c);
    if (v < 0 || pad) goto fail; /* nothing but padding after padding */
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[len++] = (char)((acc >> bits) & 0xff);
    }
  }
  if (pad > 2 || bits >= 6) goto fail; /* a lone 6-bit group cannot end a valid encoding */
  o[len] = '\0';
  *out = o;
  *out_len = len;
  return 0;
fail:
  free(o);
  *out = NULL;
  *out_len = 0;
  return IG_EINVAL;
}

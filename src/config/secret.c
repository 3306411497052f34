/* Certificates held in memory (Kubernetes Secrets of type kubernetes.io/tls): loading PEM text into an
 * OpenSSL context, for the manifest loader (validation) and the proxy's TLS listeners. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "config_internal.h"
#include "infergate/config.h"
#include "infergate/core.h"

static void why_ssl(char *why, size_t cap, const char *what) {
  char e[200];
  unsigned long code = ERR_peek_last_error();
  if (code)
    ERR_error_string_n(code, e, sizeof e);
  else
    snprintf(e, sizeof e, "no PEM block found");
  snprintf(why, cap, "%s (%s)", what, e);
  ERR_clear_error();
}

int ig_config_tls_use_pem(void *ssl_ctx, const char *cert_pem, const char *key_pem, char *why, size_t cap) {
  SSL_CTX *ctx = ssl_ctx;
  int rc = IG_ECONFIG;
  X509 *leaf = NULL;
  EVP_PKEY *pk = NULL;
  ERR_clear_error();
  BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
  if (!cb || !kb) {
    why_ssl(why, cap, "out of memory");
    goto out;
  }
  if (!(leaf = PEM_read_bio_X509_AUX(cb, NULL, NULL, NULL))) {
    why_ssl(why, cap, "tls.crt holds no PEM certificate");
    goto out;
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
    why_ssl(why, cap, "tls.crt: certificate refused");
    goto out;
  }
  SSL_CTX_clear_chain_certs(ctx);
  for (X509 *ca; (ca = PEM_read_bio_X509(cb, NULL, NULL, NULL));)
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      why_ssl(why, cap, "tls.crt: chain certificate refused");
      goto out;
    }
  ERR_clear_error(); /* the end of the chain reads as an error */
  if (!(pk = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL))) {
    why_ssl(why, cap, "tls.key holds no PEM private key");
    goto out;
  }
  if (SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    why_ssl(why, cap, "tls.key does not match the certificate in tls.crt");
    goto out;
  }
  rc = 0;
out:
  EVP_PKEY_free(pk);
  X509_free(leaf);
  BIO_free(cb);
  BIO_free(kb);
  return rc;
}

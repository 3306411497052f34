/* src/k8s private: one HTTP/1.1 request per connection (plain or TLS through OpenSSL memory BIOs),
 * shared by the LIST, WATCH and PATCH requests of the watcher. */
#ifndef IG_K8S_INTERNAL_H
#define IG_K8S_INTERNAL_H

#include <openssl/ssl.h>
#include <uv.h>

#include "infergate/core.h"
#include "infergate/http.h"
#include "infergate/k8s.h"

typedef struct kconn kconn_t;

/* Callbacks of a request. head: the response status is known (body callbacks follow). data: a run
 * of (de-chunked) body bytes. done: the request is over, err 0 when the body was complete, else an
 * IG_E* code; the connection is freed after done returns. None is called after kconn_cancel. */
typedef struct {
  void (*head)(kconn_t *c, int status);
  void (*data)(kconn_t *c, const char *p, size_t n);
  void (*done)(kconn_t *c, int err);
} kconn_cbs_t;

typedef struct {
  uv_loop_t *loop;
  SSL_CTX *ssl_ctx; /* NULL = plain http */
  const char *host; /* for the Host header, SNI and certificate checks */
  const char *tls_name; /* SNI and the certificate name instead of host (kubeconfig tls-server-name) */
  int insecure;         /* no certificate name check (the SSL_CTX does not verify either) */
  int port;
  struct sockaddr_storage addr;
} kconn_target_t;

struct kconn {
  const kconn_target_t *t;
  const kconn_cbs_t *cbs;
  void *data;     /* the caller's */
  unsigned timeout_ms; /* whole request; reset by body bytes when idle_reset */
  int idle_reset;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t creq;
  int nhandles;
  int done, cancelled;
  SSL *ssl;
  int handshaken;
  ig_buf_t req; /* request bytes to send once connected (and the TLS handshake is done) */
  ig_buf_t in;  /* response bytes not yet consumed */
  int have_head, status;
  int64_t left; /* content-length body left, -1 = until close */
  int chunked;
  ig_chunked_decoder_t dec;
};

/* Starts a request: method, path (with query), extra header lines (each "Name: value\r\n", may be
 * NULL), a body (may be NULL). Returns the connection (owned by itself; freed after done or cancel). */
kconn_t *kconn_start(const kconn_target_t *t, const char *method, const char *path, const char *headers,
                     const char *body, size_t body_len, unsigned timeout_ms, int idle_reset,
                     const kconn_cbs_t *cbs, void *data);
/* Aborts a request without calling its callbacks. */
void kconn_cancel(kconn_t *c);

/* ---- leader election (lease.c): a coordination.k8s.io/v1 Lease ---- */

typedef struct klease klease_t;
/* Adds the authorization header lines of the watcher to h. */
typedef void (*klease_auth_fn)(void *data, ig_buf_t *h);
/* Called when this replica becomes (leader 1) or stops being (0) the holder. */
typedef void (*klease_cb)(void *data, int leader);

/* Starts trying to hold Lease ns/name as identity: GET it every retry period; create it when absent;
 * take it when its holder has not renewed for duration_ms (as observed here, so clocks need not
 * agree); renew it while holding it. A PUT that loses a race (409) just waits for the next round.
 * Leadership is given up when no renewal succeeded for two thirds of the duration. */
klease_t *klease_start(const kconn_target_t *t, klease_auth_fn auth, void *auth_data, const char *ns,
                       const char *name, const char *identity, unsigned duration_ms, klease_cb cb, void *data);
/* Stops; the object frees itself once its handles are closed (run the loop). No callback after. */
/* Stops the election. A leader first releases the Lease (holderIdentity "", leaseDurationSeconds 1:
 * another replica takes over at once); closed(arg) is called once the release is answered (bounded
 * by the request timeout) and everything is freed. */
void klease_stop(klease_t *l, void (*closed)(void *arg), void *arg);
int klease_is_leader(const klease_t *l);

#endif

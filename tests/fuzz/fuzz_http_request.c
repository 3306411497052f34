/* libFuzzer driver for the request head parser: no crash, no read outside the input, and results
 * that agree with themselves (every prefix of a parsed head needs more input, the head alone parses
 * to the same length, pointers stay inside the buffer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/http.h"

#define CHECK(x)                                                                                             \
  do {                                                                                                       \
    if (!(x)) abort();                                                                                       \
  } while (0)

static int inside(const char *p, size_t n, const char *buf, size_t len) {
  return n == 0 || (p >= buf && p + n <= buf + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ig_http_header_t hdrs[32];
  ig_http_request_t req, req2;
  const char *buf = (const char *)data;
  /* small limits now and then so that the limit paths are reached too */
  ig_http_limits_t lim = {0, 0};
  if (size > 0 && data[0] == 'L') {
    lim.max_header_bytes = 64;
    lim.max_headers = 3;
  }
  int rc = ig_http_parse_request(buf, size, &req, hdrs, 32, &lim);
  CHECK(rc > 0 || rc == IG_EAGAIN || rc == IG_EPARSE || rc == IG_ETOOBIG);
  if (rc <= 0) return 0;
  CHECK((size_t)rc <= size);
  CHECK(req.method_len > 0 && inside(req.method, req.method_len, buf, (size_t)rc));
  CHECK(req.target_len > 0 && inside(req.target, req.target_len, buf, (size_t)rc));
  CHECK(req.path_len <= req.target_len);
  CHECK(req.minor_version == 0 || req.minor_version == 1);
  CHECK(req.num_headers <= 32);
  CHECK(!(req.chunked && req.content_length >= 0));
  CHECK(req.minor_version == 0 || req.host);
  if (req.host) CHECK(inside(req.host, req.host_len, buf, (size_t)rc));
  for (size_t i = 0; i < req.num_headers; i++) {
    const ig_http_header_t *h = &req.headers[i];
    CHECK(h->name_len > 0 && inside(h->name, h->name_len, buf, (size_t)rc));
    CHECK(inside(h->value, h->value_len, buf, (size_t)rc));
    CHECK(memchr(h->value, '\r', h->value_len) == NULL && memchr(h->value, '\n', h->value_len) == NULL);
    CHECK(ig_http_header_find(req.headers, req.num_headers, "x") != h || h->name_len == 1);
    (void)ig_http_value_has_token(h->value, h->value_len, "close");
  }
  /* the head alone parses the same; strict prefixes need more input */
  CHECK(ig_http_parse_request(buf, (size_t)rc, &req2, hdrs, 32, &lim) == rc);
  CHECK(ig_http_parse_request(buf, (size_t)rc - 1, &req2, hdrs, 32, &lim) == IG_EAGAIN);
  CHECK(ig_http_parse_request(buf, (size_t)rc / 2, &req2, hdrs, 32, &lim) == IG_EAGAIN);
  return 0;
}

/* libFuzzer driver for the response head parser: no crash, no read outside the input, and results
 * that agree with themselves. */
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
  ig_http_response_t res, res2;
  const char *buf = (const char *)data;
  ig_http_limits_t lim = {0, 0};
  if (size > 9 && data[9] == '1') { /* e.g. "HTTP/1.1 1xx": exercise small limits */
    lim.max_header_bytes = 64;
    lim.max_headers = 3;
  }
  int rc = ig_http_parse_response(buf, size, &res, hdrs, 32, &lim);
  CHECK(rc > 0 || rc == IG_EAGAIN || rc == IG_EPARSE || rc == IG_ETOOBIG);
  if (rc <= 0) return 0;
  CHECK((size_t)rc <= size);
  CHECK(res.status >= 100 && res.status <= 999);
  CHECK(res.minor_version == 0 || res.minor_version == 1);
  CHECK(inside(res.reason, res.reason_len, buf, (size_t)rc));
  CHECK(!(res.chunked && res.content_length >= 0));
  for (size_t i = 0; i < res.num_headers; i++) {
    const ig_http_header_t *h = &res.headers[i];
    CHECK(h->name_len > 0 && inside(h->name, h->name_len, buf, (size_t)rc));
    CHECK(inside(h->value, h->value_len, buf, (size_t)rc));
    CHECK(memchr(h->value, '\n', h->value_len) == NULL);
    (void)ig_http_value_has_token(h->value, h->value_len, "keep-alive");
  }
  CHECK(ig_http_parse_response(buf, (size_t)rc, &res2, hdrs, 32, &lim) == rc);
  CHECK(ig_http_parse_response(buf, (size_t)rc - 1, &res2, hdrs, 32, &lim) == IG_EAGAIN);
  CHECK(ig_http_parse_response(buf, (size_t)rc / 2, &res2, hdrs, 32, &lim) == IG_EAGAIN);
  return 0;
}

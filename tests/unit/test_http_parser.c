/* Unit tests for the HTTP/1.1 request and response head parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/http.h"

#define MAXH 64

/* Each parse works on an exact-size heap copy so that ASan catches any read past the end. The copy
 * stays alive until the next parse so the result's pointers can be checked. */
static char *g_copy;
static ig_http_header_t g_hdrs[MAXH];

static const char *copy_of(const char *s, size_t n) {
  free(g_copy);
  g_copy = malloc(n ? n : 1);
  assert_non_null(g_copy);
  memcpy(g_copy, s, n);
  return g_copy;
}

static int preq_n(const char *s, size_t n, ig_http_request_t *req, const ig_http_limits_t *lim) {
  return ig_http_parse_request(copy_of(s, n), n, req, g_hdrs, MAXH, lim);
}

static int preq(const char *s, ig_http_request_t *req) {
  return preq_n(s, strlen(s), req, NULL);
}

static int pres_n(const char *s, size_t n, ig_http_response_t *res) {
  return ig_http_parse_response(copy_of(s, n), n, res, g_hdrs, MAXH, NULL);
}

static int pres(const char *s, ig_http_response_t *res) {
  return pres_n(s, strlen(s), res);
}

static int teardown(void **state) {
  (void)state;
  free(g_copy);
  g_copy = NULL;
  return 0;
}

static void assert_span(const char *p, size_t n, const char *want) {
  assert_int_equal(n, strlen(want));
  assert_memory_equal(p, want, n);
}

static void test_simple_get(void **state) {
  (void)state;
  const char *s = "GET /v1/models?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent:  curl/8 \t\r\n"
                  "Accept:\r\n\r\n";
  ig_http_request_t req;
  assert_int_equal(preq(s, &req), (int)strlen(s));
  assert_span(req.method, req.method_len, "GET");
  assert_span(req.target, req.target_len, "/v1/models?x=1");
  assert_int_equal(req.path_len, strlen("/v1/models"));
  assert_int_equal(req.minor_version, 1);
  assert_int_equal(req.num_headers, 3);
  assert_ptr_equal(req.headers, g_hdrs);
  assert_span(req.headers[0].name, req.headers[0].name_len, "Host");
  assert_span(req.headers[1].value, req.headers[1].value_len, "curl/8");
  assert_span(req.headers[2].name, req.headers[2].name_len, "Accept");
  assert_int_equal(req.headers[2].value_len, 0);
  assert_span(req.host, req.host_len, "example.com");
  assert_int_equal(req.content_length, -1);
  assert_false(req.chunked);
  assert_true(req.keep_alive);
  assert_false(req.expect_continue);
  assert_false(req.upgrade);
}

static void test_post_framing(void **state) {
  (void)state;
  ig_http_request_t req;
  const char *s = "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 42\r\n"
                  "Expect: 100-Continue\r\n\r\n{\"model\":...";
  assert_int_equal(preq(s, &req), (int)(strstr(s, "\r\n\r\n") - s + 4));
  assert_int_equal(req.content_length, 42);
  assert_false(req.chunked);
  assert_true(req.expect_continue);
  assert_span(req.target, req.target_len, "/v1/chat/completions");
  assert_int_equal(req.path_len, req.target_len);

  s = "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
  assert_int_equal(preq(s, &req), (int)strlen(s));
  assert_true(req.chunked);
  assert_int_equal(req.content_length, -1);

  s = "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n";
  assert_int_equal(preq(s, &req), (int)strlen(s));
  assert_true(req.chunked);

  /* identical duplicates are one value */
  s = "POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n";
  assert_int_equal(preq(s, &req), (int)strlen(s));
  assert_int_equal(req.content_length, 7);

  s = "POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 9223372036854775807\r\n\r\n";
  assert_int_equal(preq(s, &req), (int)strlen(s));
  assert_int_equal(req.content_length, INT64_MAX);

  s = "POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n";
  assert_int_equal(preq(s, &req), (int)strlen(s));
  assert_int_equal(req.content_length, 0);
}

static void test_host_forms(void **state) {
  (void)state;
  static const struct {
    const char *value, *host;
  } ok[] = {
      {"example.com", "example.com"},
      {"example.com:8080", "example.com"},
      {"10.0.0.1:80", "10.0.0.1"},
      {"[::1]:8080", "[::1]"},
      {"[fe80::1%25eth0]", "[fe80::1%25eth0]"},
      {"example.com:", "example.com"},
      {"", ""},
  };
  static const char *bad[] = {"a b", "a:b", "[::1", "[]", "[::1]x", "user@host", "a/b", "h:80:90", "h:-1"};
  char s[256];
  ig_http_request_t req;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", ok[i].value);
    assert_int_equal(preq(s, &req), (int)strlen(s));
    assert_non_null(req.host);
    assert_span(req.host, req.host_len, ok[i].host);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad[i]);
    assert_int_equal(preq(s, &req), IG_EPARSE);
  }
  /* HTTP/1.0 needs no Host */
  assert_int_equal(preq("GET / HTTP/1.0\r\n\r\n", &req), 18);
  assert_null(req.host);
  assert_int_equal(req.minor_version, 0);
}

static void test_connection_flags(void **state) {
  (void)state;
  static const struct {
    const char *s;
    int keep_alive, upgrade;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 0},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0, 0},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", 0, 0},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", 0, 0},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", 1, 0},
      {"GET / HTTP/1.0\r\n\r\n", 0, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1, 1},
      {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", 1, 0},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", 1, 0},
  };
  ig_http_request_t req;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(preq(cases[i].s, &req), (int)strlen(cases[i].s));
    assert_int_equal(req.keep_alive, cases[i].keep_alive);
    assert_int_equal(req.upgrade, cases[i].upgrade);
  }
}

static void test_leading_crlf_and_obs_text(void **state) {
  (void)state;
  ig_http_request_t req;
  const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n";
  assert_int_equal(preq(s, &req), (int)strlen(s));
  assert_span(req.method, req.method_len, "GET");
  assert_span(req.headers[1].value, req.headers[1].value_len, "caf\xc3\xa9 \xff");
  /* methods are any token */
  s = "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n";
  assert_int_equal(preq(s, &req), (int)strlen(s));
  assert_span(req.method, req.method_len, "M-SEARCH");
}

/* Every error class of the request parser. */
static void test_request_errors(void **state) {
  (void)state;
  static const char *bad[] = {
      /* request line */
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
      " GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
      "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET / http/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.10\r\nHost: a\r\n\r\n",
      "GET /\r\n\r\n",
      "GET / HTTP/1.1\rHost: a\r\n\r\n",
      "\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
      /* bare LF anywhere */
      "GET / HTTP/1.1\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: 1\n\r\n",
      /* bad header lines */
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tfolded\r\n\r\n",
      "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX(Y: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nNo colon\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n",
      /* framing */
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      /* host */
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nX: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
  };
  ig_http_request_t req;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = preq(bad[i], &req);
    if (rc != IG_EPARSE) fail_msg("case %zu (%s): got %d", i, bad[i], rc);
  }
  /* NUL inside a value needs an explicit length */
  static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
  assert_int_equal(preq_n(nul, sizeof nul - 1, &req, NULL), IG_EPARSE);
  static const char nul2[] = "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n";
  assert_int_equal(preq_n(nul2, sizeof nul2 - 1, &req, NULL), IG_EPARSE);
}

/* Long values are scanned a word at a time: a bad byte at any position of a long value is still
 * found, while tabs and obs-text are accepted there. */
static void test_long_value_every_position(void **state) {
  (void)state;
  static const char bad_bytes[] = {'\0', '\x01', '\x08', '\n', '\x1f', '\x7f', '\r'};
  static const char good_bytes[] = {'\t', ' ', '\x80', '\xff', '~', '"'};
  char s[256];
  ig_http_request_t req;
  for (size_t pos = 0; pos < 40; pos++) {
    for (size_t b = 0; b < sizeof bad_bytes; b++) {
      int n = snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: a\r\nX: v%s\r\n\r\n",
                       "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN");
      s[31 + pos] = bad_bytes[b];
      int rc = preq_n(s, (size_t)n, &req, NULL);
      if (rc != IG_EPARSE) fail_msg("byte %#x at %zu: %d", bad_bytes[b], pos, rc);
    }
    for (size_t b = 0; b < sizeof good_bytes; b++) {
      int n = snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: a\r\nX: v%s\r\n\r\n",
                       "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN");
      s[31 + pos] = good_bytes[b];
      assert_int_equal(preq_n(s, (size_t)n, &req, NULL), n);
      assert_int_equal(req.headers[1].value_len, 51);
    }
  }
}

/* Garbage is rejected as soon as it is seen, without waiting for the end of the head. */
static void test_early_reject(void **state) {
  (void)state;
  ig_http_request_t req;
  assert_int_equal(preq("\x16\x03\x01\x02", &req), IG_EPARSE); /* a TLS ClientHello */
  assert_int_equal(preq("GET / HTTP/2", &req), IG_EPARSE);
  assert_int_equal(preq("GET / HTTP/1.1\r\nBad Name", &req), IG_EPARSE);
  assert_int_equal(preq("GET / HTTP/1.1\r\nX: 1\n", &req), IG_EPARSE);
  assert_int_equal(preq("", &req), IG_EAGAIN);
  assert_int_equal(preq("\r", &req), IG_EAGAIN);
  assert_int_equal(preq("GET / HTTP/1.1\r", &req), IG_EAGAIN);
}

static const char *valid_requests[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "POST /v1/completions?stream=1 HTTP/1.1\r\nHost: gw.example:8080\r\nContent-Type: application/json\r\n"
    "Content-Length: 17\r\nConnection: keep-alive\r\nX-Gateway-Inference-Objective:  premium \r\n\r\n",
    "PUT /x HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    "\r\nGET /a HTTP/1.0\r\nConnection: keep-alive\r\nX-Empty:\r\n\r\n",
};

/* Every strict prefix of a valid head needs more input; the whole head parses to its length, also
 * when a body or the next request follows. */
static void test_request_split_every_offset(void **state) {
  (void)state;
  ig_http_request_t req;
  for (size_t i = 0; i < sizeof valid_requests / sizeof valid_requests[0]; i++) {
    const char *s = valid_requests[i];
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
      int rc = preq_n(s, k, &req, NULL);
      if (rc != IG_EAGAIN) fail_msg("request %zu prefix %zu: got %d", i, k, rc);
    }
    assert_int_equal(preq_n(s, n, &req, NULL), (int)n);
    char more[1024];
    snprintf(more, sizeof more, "%s0123456789abcdefg", s);
    assert_int_equal(preq(more, &req), (int)n);
  }
}

static void test_pipelined(void **state) {
  (void)state;
  ig_http_request_t req;
  const char *a = "GET /first HTTP/1.1\r\nHost: a\r\n\r\n";
  const char *b = "POST /second HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc";
  char buf[512];
  snprintf(buf, sizeof buf, "%s%s", a, b);
  size_t n = strlen(buf);
  const char *copy = copy_of(buf, n);
  int rc = ig_http_parse_request(copy, n, &req, g_hdrs, MAXH, NULL);
  assert_int_equal(rc, (int)strlen(a));
  assert_span(req.target, req.target_len, "/first");
  int rc2 = ig_http_parse_request(copy + rc, n - (size_t)rc, &req, g_hdrs, MAXH, NULL);
  assert_int_equal(rc2, (int)(strlen(b) - 3));
  assert_span(req.target, req.target_len, "/second");
  assert_int_equal(req.content_length, 3);
}

static void test_limits(void **state) {
  (void)state;
  ig_http_request_t req;
  const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n";
  size_t n = strlen(s);
  ig_http_limits_t lim = {.max_header_bytes = n, .max_headers = 0};
  assert_int_equal(preq_n(s, n, &req, &lim), (int)n);
  lim.max_header_bytes = n - 1;
  assert_int_equal(preq_n(s, n, &req, &lim), IG_ETOOBIG);
  /* incomplete but already at the limit: cut off without waiting for the rest */
  assert_int_equal(preq_n(s, n - 1, &req, &lim), IG_ETOOBIG);
  assert_int_equal(preq_n(s, n - 2, &req, &lim), IG_EAGAIN);

  /* a slow drip of an endless header under the default limit (16 KiB) */
  size_t big = 100000;
  char *drip = malloc(big);
  assert_non_null(drip);
  memcpy(drip, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ", 32);
  memset(drip + 32, 'a', big - 32);
  assert_int_equal(preq_n(drip, 16383, &req, NULL), IG_EAGAIN);
  assert_int_equal(preq_n(drip, 16384, &req, NULL), IG_ETOOBIG);
  assert_int_equal(preq_n(drip, big, &req, NULL), IG_ETOOBIG);
  free(drip);

  /* header count: min(max_hdrs, lim->max_headers), default 100 */
  const char *three = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
  lim = (ig_http_limits_t){.max_header_bytes = 0, .max_headers = 3};
  assert_int_equal(preq_n(three, strlen(three), &req, &lim), (int)strlen(three));
  lim.max_headers = 2;
  assert_int_equal(preq_n(three, strlen(three), &req, &lim), IG_ETOOBIG);
  ig_http_header_t two[2];
  assert_int_equal(ig_http_parse_request(three, strlen(three), &req, two, 2, NULL), IG_ETOOBIG);
  assert_int_equal(ig_http_parse_request(three, strlen(three), &req, two, 0, NULL), IG_ETOOBIG);

  char many[8192];
  size_t off = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\nHost: a\r\n");
  static ig_http_header_t lots[200];
  for (int i = 0; i < 99; i++)
    off += (size_t)snprintf(many + off, sizeof many - off, "H%d: v\r\n", i);
  off += (size_t)snprintf(many + off, sizeof many - off, "\r\n");
  assert_int_equal(ig_http_parse_request(many, off, &req, lots, 200, NULL), (int)off);
  assert_int_equal(req.num_headers, 100);
  off -= 2;
  off += (size_t)snprintf(many + off, sizeof many - off, "One-More: v\r\n\r\n");
  assert_int_equal(ig_http_parse_request(many, off, &req, lots, 200, NULL), IG_ETOOBIG);
}

static void test_header_find_and_tokens(void **state) {
  (void)state;
  ig_http_request_t req;
  const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-Trace: 1\r\nx-trace: 2\r\nConnection: a, ,Close ,b\r\n\r\n";
  assert_true(preq(s, &req) > 0);
  const ig_http_header_t *h = ig_http_header_find(req.headers, req.num_headers, "X-TRACE");
  assert_non_null(h);
  assert_span(h->value, h->value_len, "1");
  assert_null(ig_http_header_find(req.headers, req.num_headers, "X-Trac"));
  assert_null(ig_http_header_find(req.headers, 0, "Host"));
  h = ig_http_header_find(req.headers, req.num_headers, "connection");
  assert_non_null(h);
  assert_true(ig_http_value_has_token(h->value, h->value_len, "close"));
  assert_true(ig_http_value_has_token(h->value, h->value_len, "A"));
  assert_true(ig_http_value_has_token(h->value, h->value_len, "b"));
  assert_false(ig_http_value_has_token(h->value, h->value_len, "clos"));
  assert_false(ig_http_value_has_token(h->value, h->value_len, ""));
  assert_false(ig_http_value_has_token("", 0, "close"));
  assert_true(ig_http_value_has_token("\tclose\t", 7, "close"));
  assert_false(ig_http_value_has_token("closed", 6, "close"));
}

static void test_response_basic(void **state) {
  (void)state;
  ig_http_response_t res;
  const char *s = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 12\r\n\r\n";
  assert_int_equal(pres(s, &res), (int)strlen(s));
  assert_int_equal(res.status, 200);
  assert_int_equal(res.minor_version, 1);
  assert_span(res.reason, res.reason_len, "OK");
  assert_int_equal(res.num_headers, 2);
  assert_int_equal(res.content_length, 12);
  assert_false(res.chunked);
  assert_true(res.keep_alive);

  s = "HTTP/1.1 404 Not  Found \r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  assert_int_equal(pres(s, &res), (int)strlen(s));
  assert_int_equal(res.status, 404);
  assert_span(res.reason, res.reason_len, "Not  Found ");
  assert_true(res.chunked);
  assert_int_equal(res.content_length, -1);
  assert_false(res.keep_alive);

  /* empty reason, with and without the space */
  assert_int_equal(pres("HTTP/1.1 204 \r\n\r\n", &res), 17);
  assert_int_equal(res.status, 204);
  assert_int_equal(res.reason_len, 0);
  assert_int_equal(pres("HTTP/1.1 204\r\n\r\n", &res), 16);
  assert_int_equal(res.reason_len, 0);
  assert_int_equal(res.content_length, -1);
  assert_false(res.chunked);

  /* 304/1xx: framing fields are reported as parsed; the caller knows there is no body */
  s = "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n";
  assert_int_equal(pres(s, &res), (int)strlen(s));
  assert_int_equal(res.content_length, 100);
  assert_int_equal(pres("HTTP/1.1 100 Continue\r\n\r\n", &res), 25);
  assert_int_equal(res.status, 100);
  assert_int_equal(res.content_length, -1);

  /* HTTP/1.0 */
  assert_int_equal(pres("HTTP/1.0 200 OK\r\n\r\n", &res), 19);
  assert_false(res.keep_alive);
  assert_int_equal(pres("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n", &res), 43);
  assert_true(res.keep_alive);

  /* a final coding other than chunked: body until close */
  s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
  assert_int_equal(pres(s, &res), (int)strlen(s));
  assert_false(res.chunked);
  assert_false(res.keep_alive);
  assert_int_equal(res.content_length, -1);
}

static void test_response_errors(void **state) {
  (void)state;
  static const char *bad[] = {
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 20x OK\r\n\r\n",
      "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/1.2 200 OK\r\n\r\n",
      "HTTP/2 200\r\n\r\n",
      "ICY 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\n\r\n",
      "HTTP/1.1 200 O\x01K\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
  };
  ig_http_response_t res;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = pres(bad[i], &res);
    if (rc != IG_EPARSE) fail_msg("case %zu (%s): got %d", i, bad[i], rc);
  }
}

static void test_response_split_every_offset(void **state) {
  (void)state;
  static const char *valid[] = {
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 503 \r\nRetry-After: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.0 204\r\n\r\n",
  };
  ig_http_response_t res;
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    size_t n = strlen(valid[i]);
    for (size_t k = 0; k < n; k++) {
      int rc = pres_n(valid[i], k, &res);
      if (rc != IG_EAGAIN) fail_msg("response %zu prefix %zu: got %d", i, k, rc);
    }
    assert_int_equal(pres_n(valid[i], n, &res), (int)n);
  }
  ig_http_limits_t lim = {.max_header_bytes = 20, .max_headers = 1};
  const char *s = "HTTP/1.1 200 OK\r\nA: 1\r\n\r\n";
  assert_int_equal(ig_http_parse_response(s, strlen(s), &res, g_hdrs, MAXH, &lim), IG_ETOOBIG);
  lim.max_header_bytes = 0;
  assert_int_equal(ig_http_parse_response(s, strlen(s), &res, g_hdrs, MAXH, &lim), (int)strlen(s));
  s = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
  assert_int_equal(ig_http_parse_response(s, strlen(s), &res, g_hdrs, MAXH, &lim), IG_ETOOBIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_simple_get, teardown),
      cmocka_unit_test_teardown(test_post_framing, teardown),
      cmocka_unit_test_teardown(test_host_forms, teardown),
      cmocka_unit_test_teardown(test_connection_flags, teardown),
      cmocka_unit_test_teardown(test_leading_crlf_and_obs_text, teardown),
      cmocka_unit_test_teardown(test_request_errors, teardown),
      cmocka_unit_test_teardown(test_long_value_every_position, teardown),
      cmocka_unit_test_teardown(test_early_reject, teardown),
      cmocka_unit_test_teardown(test_request_split_every_offset, teardown),
      cmocka_unit_test_teardown(test_pipelined, teardown),
      cmocka_unit_test_teardown(test_limits, teardown),
      cmocka_unit_test_teardown(test_header_find_and_tokens, teardown),
      cmocka_unit_test_teardown(test_response_basic, teardown),
      cmocka_unit_test_teardown(test_response_errors, teardown),
      cmocka_unit_test_teardown(test_response_split_every_offset, teardown),
  };
  return cmocka_run_group_tests_name("http_parser", tests, NULL, NULL);
}

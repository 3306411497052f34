/* Unit tests for reason phrases, JSON escaping and the OpenAI-style error response. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/http.h"

/* The test binary gets jansson only through the modules that use it (sim, bench, proxy); refer to it
 * weakly so this test also links when none of them is built yet, and fall back to a small strict
 * validator of our own. */
#pragma weak json_loads
#pragma weak json_object_get
#pragma weak json_string_value
#pragma weak json_delete

/* ---- minimal strict JSON validator (fallback) ---- */
static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
    p++;
  return p;
}

static const char *check_value(const char *p, int depth);

static const char *check_string(const char *p) {
  if (*p++ != '"') return NULL;
  for (;;) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    if (c == '\\') {
      p++;
      if (*p == 'u') {
        for (int i = 1; i <= 4; i++)
          if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NULL;
        p += 5;
      } else if (*p && strchr("\"\\/bfnrt", *p)) {
        p++;
      } else {
        return NULL;
      }
      continue;
    }
    if (c >= 0x80) { /* must be well-formed UTF-8 */
      int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : -1;
      if (n < 0 || c > 0xF4) return NULL;
      for (int i = 1; i <= n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80) return NULL;
      p += n + 1;
      continue;
    }
    p++;
  }
}

static const char *check_value(const char *p, int depth) {
  if (depth > 32) return NULL;
  p = skip_ws(p);
  if (*p == '"') return check_string(p);
  if (!strncmp(p, "null", 4)) return p + 4;
  if (!strncmp(p, "true", 4)) return p + 4;
  if (!strncmp(p, "false", 5)) return p + 5;
  if (*p == '{') {
    p = skip_ws(p + 1);
    if (*p == '}') return p + 1;
    for (;;) {
      if (!(p = check_string(skip_ws(p)))) return NULL;
      p = skip_ws(p);
      if (*p++ != ':') return NULL;
      if (!(p = check_value(p, depth + 1))) return NULL;
      p = skip_ws(p);
      if (*p == '}') return p + 1;
      if (*p++ != ',') return NULL;
    }
  }
  if (*p == '-' || (*p >= '0' && *p <= '9')) {
    char *end;
    strtod(p, &end);
    return end;
  }
  return NULL;
}

static int valid_json(const char *s, size_t n) {
  if (strlen(s) != n) return 0;
  const char *p = check_value(s, 0);
  return p && *skip_ws(p) == '\0';
}

/* ---- tests ---- */

static void test_reason(void **state) {
  (void)state;
  assert_string_equal(ig_http_reason(200), "OK");
  assert_string_equal(ig_http_reason(400), "Bad Request");
  assert_string_equal(ig_http_reason(404), "Not Found");
  assert_string_equal(ig_http_reason(413), "Content Too Large");
  assert_string_equal(ig_http_reason(429), "Too Many Requests");
  assert_string_equal(ig_http_reason(431), "Request Header Fields Too Large");
  assert_string_equal(ig_http_reason(502), "Bad Gateway");
  assert_string_equal(ig_http_reason(503), "Service Unavailable");
  assert_string_equal(ig_http_reason(504), "Gateway Timeout");
  assert_string_equal(ig_http_reason(100), "Continue");
  assert_string_equal(ig_http_reason(505), "HTTP Version Not Supported");
  assert_string_equal(ig_http_reason(418), "Unknown");
  assert_string_equal(ig_http_reason(799), "Unknown");
  assert_string_equal(ig_http_reason(-1), "Unknown");
}

static void escape_eq(const char *in, size_t n, const char *want) {
  ig_buf_t b;
  ig_buf_init(&b);
  ig_json_escape(&b, in, n);
  assert_int_equal(b.len, strlen(want));
  if (b.len) assert_memory_equal(b.data, want, b.len);
  ig_buf_free(&b);
}

#define ESC(in, want) escape_eq(in, sizeof(in) - 1, want)

static void test_json_escape(void **state) {
  (void)state;
  ESC("", "");
  ESC("plain text", "plain text");
  ESC("say \"hi\"", "say \\\"hi\\\"");
  ESC("a\\b", "a\\\\b");
  ESC("l1\nl2\r\n\t", "l1\\nl2\\r\\n\\t");
  ESC("\x01\x1f\b\f", "\\u0001\\u001f\\u0008\\u000c");
  ESC("nul\0end", "nul\\u0000end");
  ESC("/ and \x7f", "/ and \x7f");
  /* valid UTF-8 passes through */
  ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  /* invalid UTF-8 becomes U+FFFD, one per bad byte */
  ESC("a\xffz", "a\\ufffdz");
  ESC("\xc3", "\\ufffd");
  ESC("\xc0\xaf", "\\ufffd\\ufffd");                       /* overlong */
  ESC("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");            /* surrogate */
  ESC("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"); /* > U+10FFFF */
  ESC("\xe2\x82", "\\ufffd\\ufffd");                       /* truncated */
}

/* Parses the response with our own parser and checks the framing; returns the body. */
static const char *check_response(const ig_buf_t *b, int status, int close, size_t *body_len) {
  ig_http_response_t res;
  ig_http_header_t hdrs[16];
  int n = ig_http_parse_response(b->data, b->len, &res, hdrs, 16, NULL);
  assert_true(n > 0);
  assert_int_equal(res.status, status);
  assert_int_equal(res.minor_version, 1);
  assert_int_equal(res.reason_len, strlen(ig_http_reason(status)));
  assert_memory_equal(res.reason, ig_http_reason(status), res.reason_len);
  assert_int_equal(res.content_length, (int64_t)(b->len - (size_t)n));
  assert_int_equal(res.keep_alive, !close);
  const ig_http_header_t *ct = ig_http_header_find(hdrs, res.num_headers, "content-type");
  assert_non_null(ct);
  assert_true(ct->value_len == 16 && memcmp(ct->value, "application/json", 16) == 0);
  assert_int_equal(ig_http_header_find(hdrs, res.num_headers, "connection") != NULL, close);
  *body_len = b->len - (size_t)n;
  return b->data + n;
}

static void check_error_json(const char *body, size_t len, const char *message, const char *type,
                             const char *code) {
  assert_true(valid_json(body, len));
  if (!json_loads) return; /* jansson not linked into this binary */
  json_error_t err;
  json_t *root = json_loads(body, 0, &err);
  if (!root) fail_msg("jansson: %s in %.*s", err.text, (int)len, body);
  json_t *e = json_object_get(root, "error");
  assert_non_null(e);
  assert_true(json_is_object(e));
  json_t *m = json_object_get(e, "message");
  assert_true(json_is_string(m));
  if (message) assert_string_equal(json_string_value(m), message);
  json_t *t = json_object_get(e, "type");
  if (type)
    assert_string_equal(json_string_value(t), type);
  else
    assert_true(json_is_null(t));
  json_t *p = json_object_get(e, "param");
  assert_non_null(p);
  assert_true(json_is_null(p));
  json_t *c = json_object_get(e, "code");
  if (code)
    assert_string_equal(json_string_value(c), code);
  else
    assert_true(json_is_null(c));
  json_decref(root);
}

static void test_write_error(void **state) {
  (void)state;
  ig_buf_t b;
  size_t len;
  const char *body;

  ig_buf_init(&b);
  ig_http_write_error(&b, 404, "invalid_request_error", "model_not_found",
                      "The model `gpt-x` does not exist.", 0);
  body = check_response(&b, 404, 0, &len);
  check_error_json(body, len, "The model `gpt-x` does not exist.", "invalid_request_error",
                   "model_not_found");
  ig_buf_free(&b);

  /* appends after what is already there; Connection: close on request */
  ig_buf_init(&b);
  ig_buf_puts(&b, "HTTP/1.1 100 Continue\r\n\r\n");
  ig_http_write_error(&b, 429, "rate_limit_error", NULL, "pool \"p\" is saturated\nretry\tlater", 1);
  assert_memory_equal(b.data, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  ig_buf_consume(&b, 25);
  body = check_response(&b, 429, 1, &len);
  check_error_json(body, len, "pool \"p\" is saturated\nretry\tlater", "rate_limit_error", NULL);
  ig_buf_free(&b);

  /* NULL message: the reason phrase; NULL type and code: null */
  ig_buf_init(&b);
  ig_http_write_error(&b, 503, NULL, NULL, NULL, 0);
  body = check_response(&b, 503, 0, &len);
  check_error_json(body, len, "Service Unavailable", NULL, NULL);
  ig_buf_free(&b);

  /* hostile bytes in the message still give valid JSON */
  ig_buf_init(&b);
  ig_http_write_error(&b, 400, "invalid_request_error", "bad\"code", "\x01\x02\\\"\xff\xfe\xc3 </script>", 1);
  body = check_response(&b, 400, 1, &len);
  check_error_json(body, len, "\x01\x02\\\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd </script>",
                   "invalid_request_error", "bad\"code");
  ig_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reason),
      cmocka_unit_test(test_json_escape),
      cmocka_unit_test(test_write_error),
  };
  return cmocka_run_group_tests_name("http_write", tests, NULL, NULL);
}

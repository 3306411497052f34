/* Small HTTP writers: reason phrases, OpenAI-style error responses, JSON string escaping. */
#include "infergate/http.h"

#include <string.h>

/* Sorted by code for the binary search below. */
static const struct {
  int code;
  const char *phrase;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {499, "Client Closed Request"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *ig_http_reason(int status) {
  size_t lo = 0, hi = sizeof reasons / sizeof reasons[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (reasons[mid].code == status) return reasons[mid].phrase;
    if (reasons[mid].code < status)
      lo = mid + 1;
    else
      hi = mid;
  }
  return "Unknown";
}

/* Length of the valid UTF-8 sequence at s[0..n) (n > 0, s[0] >= 0x80), or 0 when it is not valid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF; /* bounds for the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return len;
}

/* Escapes ", \ and control characters; invalid UTF-8 becomes U+FFFD so that the output is always a
 * valid JSON string body whatever bytes a client sent. Safe runs are copied in one go. */
void ig_json_escape(ig_buf_t *out, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  size_t run = 0, i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      i++;
      continue;
    }
    size_t seq = 1;
    if (c >= 0x80 && (seq = utf8_seq_len(p + i, n - i)) > 0) {
      i += seq;
      continue;
    }
    ig_buf_append(out, s + run, i - run);
    switch (c) {
    case '"':
      ig_buf_append(out, "\\\"", 2);
      break;
    case '\\':
      ig_buf_append(out, "\\\\", 2);
      break;
    case '\n':
      ig_buf_append(out, "\\n", 2);
      break;
    case '\r':
      ig_buf_append(out, "\\r", 2);
      break;
    case '\t':
      ig_buf_append(out, "\\t", 2);
      break;
    default:
      if (c < 0x20) {
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        ig_buf_append(out, esc, 6);
      } else {
        ig_buf_append(out, "\\ufffd", 6);
      }
      break;
    }
    i++;
    run = i;
  }
  ig_buf_append(out, s + run, i - run);
}

/* Appends "key":"escaped" or "key":null. */
static void json_field(ig_buf_t *b, const char *key, const char *val) {
  ig_buf_printf(b, "\"%s\":", key);
  if (!val) {
    ig_buf_append(b, "null", 4);
    return;
  }
  ig_buf_append(b, "\"", 1);
  ig_json_escape(b, val, strlen(val));
  ig_buf_append(b, "\"", 1);
}

/* A NULL message becomes the reason phrase; a NULL type or code is written as null. */
void ig_http_write_error(ig_buf_t *out, int status, const char *type, const char *code, const char *message,
                         int close) {
  ig_buf_t body;
  ig_buf_init(&body);
  ig_buf_append(&body, "{\"error\":{", 10);
  json_field(&body, "message", message ? message : ig_http_reason(status));
  ig_buf_append(&body, ",", 1);
  json_field(&body, "type", type);
  ig_buf_append(&body, ",\"param\":null,", 14);
  json_field(&body, "code", code);
  ig_buf_append(&body, "}}\n", 3);

  ig_buf_printf(out,
                "HTTP/1.1 %d %s\r\n"
                "Content-Type: application/json\r\n"
                "Content-Length: %zu\r\n"
                "%s"
                "\r\n",
                status, ig_http_reason(status), body.len, close ? "Connection: close\r\n" : "");
  ig_buf_append(out, body.data, body.len);
  ig_buf_free(&body);
}

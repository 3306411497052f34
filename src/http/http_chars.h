/* Private to src/http: byte classes shared by the HTTP/1.1 parsers and the chunked decoder. */
#ifndef INFERGATE_HTTP_CHARS_H
#define INFERGATE_HTTP_CHARS_H

enum {
  IG_HC_TCHAR = 1,  /* token character (RFC 9110 5.6.2) */
  IG_HC_VALUE = 2,  /* field-vchar / SP / HTAB / obs-text: allowed inside a field value */
  IG_HC_TARGET = 4, /* VCHAR: allowed in a request-target */
  IG_HC_HEX = 8,    /* hex digit */
  IG_HC_HOST = 16,  /* reg-name character of a Host (unreserved / pct / sub-delims) */
};

/* One table lookup per byte instead of a chain of comparisons. */
extern const unsigned char ig_http_chars[256];

#define IG_HC_IS(c, cls) ((ig_http_chars[(unsigned char)(c)] & (cls)) != 0)

#endif

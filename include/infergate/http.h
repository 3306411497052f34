/* HTTP/1.1: zero-copy incremental parsers for request and response heads, chunked transfer coding
 * both ways, and small writers. The parsers are pure: input buffer in, offsets out; they never touch
 * sockets, so they can be fuzzed. */
#ifndef INFERGATE_HTTP_H
#define INFERGATE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "infergate/core.h"

typedef struct {
  const char *name;
  size_t name_len;
  const char *value; /* leading/trailing spaces and tabs trimmed */
  size_t value_len;
} ig_http_header_t;

typedef struct {
  size_t max_header_bytes; /* whole head incl. request line; 0 = default 16384 */
  size_t max_headers;      /* 0 = default 100 */
} ig_http_limits_t;

/* Parsed request head. Every pointer points into the caller's buffer. */
typedef struct {
  const char *method;
  size_t method_len;
  const char *target; /* request-target as sent (origin-form "/path?query" normally) */
  size_t target_len;
  size_t path_len;    /* length of target up to '?' or end */
  int minor_version;  /* 0 or 1 */
  ig_http_header_t *headers; /* = the array passed in */
  size_t num_headers;
  /* Derived from the headers: */
  int64_t content_length; /* -1 when absent */
  const char *host;       /* Host header value without port, NULL when absent */
  size_t host_len;
  unsigned chunked : 1;         /* Transfer-Encoding ends in chunked */
  unsigned keep_alive : 1;      /* HTTP/1.1 default on unless "Connection: close"; 1.0 needs keep-alive */
  unsigned expect_continue : 1; /* Expect: 100-continue */
  unsigned upgrade : 1;         /* Connection: upgrade + Upgrade header present */
} ig_http_request_t;

/* Parsed response head. */
typedef struct {
  int minor_version;
  int status;
  const char *reason;
  size_t reason_len;
  ig_http_header_t *headers;
  size_t num_headers;
  int64_t content_length; /* -1 when absent */
  unsigned chunked : 1;
  unsigned keep_alive : 1;
} ig_http_response_t;

/* Parses a request head from buf[0..len). hdrs is caller storage for up to max_hdrs headers
 * (the limit is min(max_hdrs, lim->max_headers)).
 * Returns the number of bytes of the head (through the blank line) on success, IG_EAGAIN when the
 * head is incomplete, IG_ETOOBIG when the head exceeds the limits (header bytes or count), or
 * IG_EPARSE when malformed: bad tokens, bare LF/CR in the wrong place, obs-fold, both
 * Content-Length and Transfer-Encoding, conflicting or invalid Content-Length, Transfer-Encoding
 * that does not end in chunked, HTTP version other than 1.0/1.1, missing Host in HTTP/1.1. */
int ig_http_parse_request(const char *buf, size_t len, ig_http_request_t *req, ig_http_header_t *hdrs,
                          size_t max_hdrs, const ig_http_limits_t *lim);

/* Parses a response head; same return convention as ig_http_parse_request. */
int ig_http_parse_response(const char *buf, size_t len, ig_http_response_t *res, ig_http_header_t *hdrs,
                           size_t max_hdrs, const ig_http_limits_t *lim);

/* Case-insensitive header lookup; returns the first match or NULL. */
const ig_http_header_t *ig_http_header_find(const ig_http_header_t *hdrs, size_t n, const char *name);

/* Case-insensitive check whether a comma-separated header value contains token (e.g. "close"). */
int ig_http_value_has_token(const char *value, size_t len, const char *token);

/* Incremental chunked-body decoder (pull style, does not modify the input). */
typedef struct {
  int state;
  uint64_t remaining; /* data bytes left in the current chunk */
  size_t line_len;    /* bytes seen on the current size/trailer line (bounded) */
  uint64_t total;     /* decoded body bytes so far */
} ig_chunked_decoder_t;

void ig_chunked_init(ig_chunked_decoder_t *d);

/* Consumes framing and at most one run of data from in[0..len).
 * On return *consumed is the number of input bytes used, and (*data, *data_len) is the run of body
 * data found (inside in; *data_len may be 0 when only framing was consumed).
 * Returns IG_OK (call again with the rest), 1 when the last chunk and trailers are complete (the
 * message ends at in + *consumed), IG_EAGAIN when nothing could be consumed without more input,
 * IG_EPARSE on malformed framing (bad hex, size overflow, missing CRLF, line over 4 KiB). */
int ig_chunked_next(ig_chunked_decoder_t *d, const char *in, size_t len, size_t *consumed, const char **data,
                    size_t *data_len);

/* Appends the chunk-size line for a chunk of n bytes ("%zx\r\n"); the caller appends the data and
 * then ig_chunked_end_chunk. n must be > 0. */
void ig_chunked_begin_chunk(ig_buf_t *out, size_t n);
void ig_chunked_end_chunk(ig_buf_t *out); /* "\r\n" */
void ig_chunked_last(ig_buf_t *out);      /* "0\r\n\r\n" */

/* Reason phrase for a status code ("OK", "Bad Request", ...; "Unknown" otherwise). */
const char *ig_http_reason(int status);

/* Appends a complete response with a JSON OpenAI-style error body:
 * {"error":{"message":...,"type":...,"param":null,"code":...}} with Content-Length, Content-Type
 * application/json, and "Connection: close" when close is set. message is JSON-escaped. */
void ig_http_write_error(ig_buf_t *out, int status, const char *type, const char *code, const char *message,
                         int close);

/* Appends s JSON-escaped (without quotes). */
void ig_json_escape(ig_buf_t *out, const char *s, size_t n);

#endif

/* HTTP/1.1 request and response head parsers (RFC 9112). Strict, zero-copy and stateless: every call
 * rescans the buffer from the start (like picohttpparser), so the caller simply calls again when more
 * bytes have arrived. Framing headers are checked here, once, so that no later stage can be fooled by
 * an ambiguous message (request smuggling). */
#include "infergate/http.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include "http_chars.h"

#define DEFAULT_MAX_HEADER_BYTES 16384
#define DEFAULT_MAX_HEADERS 100

/* Bit set per byte, see http_chars.h (generated: tchar=1, field value=2, VCHAR=4, hex=8, host=16). */
/* clang-format off */
const unsigned char ig_http_chars[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     2, 23,  6,  7, 23, 23, 23, 23, 22, 22, 23, 23, 22, 23, 23,  6,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31,  6, 22,  6, 22,  6,  6,
     6, 31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23,
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23,  6,  6,  6,  7, 23,
     7, 31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23,
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23,  6,  7,  6, 23,  0,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
};
/* clang-format on */

/* What the framing-relevant headers said; filled by scan_fields. */
typedef struct {
  int64_t content_length; /* -1 when absent */
  int te_seen;            /* a Transfer-Encoding header was present */
  int te_last_chunked;    /* its last coding is chunked */
  int host_count;
  const ig_http_header_t *host;
  int conn_close, conn_keep_alive, conn_upgrade;
  int upgrade_hdr;
  int expect_continue;
} fields_t;

/* Matches the literal lit at *pp. Returns IG_OK and advances, IG_EPARSE on a mismatch, or short_rc
 * when the input ends before the literal does. */
static int match_lit(const char **pp, const char *end, const char *lit, size_t n, int short_rc) {
  const char *p = *pp;
  for (size_t i = 0; i < n; i++, p++) {
    if (p == end) return short_rc;
    if (*p != lit[i]) return IG_EPARSE;
  }
  *pp = p;
  return IG_OK;
}

/* "HTTP/1.0" or "HTTP/1.1"; anything else (HTTP/2.0, HTTP/1.2, lower case) is malformed. */
static int parse_version(const char **pp, const char *end, int *minor, int short_rc) {
  int rc = match_lit(pp, end, "HTTP/1.", 7, short_rc);
  if (rc != IG_OK) return rc;
  if (*pp == end) return short_rc;
  if (**pp != '0' && **pp != '1') return IG_EPARSE;
  *minor = **pp - '0';
  (*pp)++;
  return IG_OK;
}

/* Returns the first byte at or after p that is not in class cls (or end); unrolled by eight. */
static inline const char *skip_class(const char *p, const char *end, unsigned cls) {
  while (end - p >= 8) {
    if (!IG_HC_IS(p[0], cls)) return p;
    if (!IG_HC_IS(p[1], cls)) return p + 1;
    if (!IG_HC_IS(p[2], cls)) return p + 2;
    if (!IG_HC_IS(p[3], cls)) return p + 3;
    if (!IG_HC_IS(p[4], cls)) return p + 4;
    if (!IG_HC_IS(p[5], cls)) return p + 5;
    if (!IG_HC_IS(p[6], cls)) return p + 6;
    if (!IG_HC_IS(p[7], cls)) return p + 7;
    p += 8;
  }
  while (p < end && IG_HC_IS(*p, cls))
    p++;
  return p;
}

/* Like skip_class(p, end, IG_HC_VALUE), eight bytes at a time: a word with no byte below 0x20 and no
 * DEL is all value bytes; a word with one (often the CR, or a tab) is finished byte by byte. */
static inline const char *skip_value(const char *p, const char *end) {
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  while (end - p >= 8) {
    uint64_t x, del;
    memcpy(&x, p, 8);
    del = x ^ (0x7fULL * ones);
    if (((x - 0x20ULL * ones) & ~x & highs) | ((del - ones) & ~del & highs)) break;
    p += 8;
  }
  return skip_class(p, end, IG_HC_VALUE);
}

/* Parses header lines up to and including the empty line. Every line must end in CRLF; a line that
 * starts with SP/HTAB (obs-fold), a space before the colon, an empty name, or CR/LF/NUL/CTL inside a
 * value is malformed. Values are trimmed of SP/HTAB on both ends. */
static int parse_headers(const char **pp, const char *end, ig_http_header_t *hdrs, size_t maxh, size_t *nh,
                         int short_rc) {
  const char *p = *pp;
  size_t n = 0;
  for (;;) {
    if (p == end) return short_rc;
    if (*p == '\r') {
      if (++p == end) return short_rc;
      if (*p != '\n') return IG_EPARSE;
      *pp = p + 1;
      *nh = n;
      return IG_OK;
    }
    const char *name = p;
    p = skip_class(p, end, IG_HC_TCHAR);
    if (p == end) return short_rc;
    if (p == name || *p != ':') return IG_EPARSE;
    if (n == maxh) return IG_ETOOBIG;
    size_t name_len = (size_t)(p - name);
    p++;
    while (p < end && (*p == ' ' || *p == '\t'))
      p++;
    const char *value = p;
    p = skip_value(p, end);
    if (p == end) return short_rc;
    if (*p != '\r') return IG_EPARSE;
    const char *vend = p;
    if (++p == end) return short_rc;
    if (*p != '\n') return IG_EPARSE;
    p++;
    while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
      vend--;
    hdrs[n].name = name;
    hdrs[n].name_len = name_len;
    hdrs[n].value = value;
    hdrs[n].value_len = (size_t)(vend - value);
    n++;
  }
}

/* Iterates the elements of a comma-separated list value: returns 1 with the next non-empty element
 * (OWS trimmed) in (*tok, *tok_len), or 0 at the end. *pp advances; end bounds the value. */
static int next_element(const char **pp, const char *end, const char **tok, size_t *tok_len) {
  const char *p = *pp;
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
      p++;
    if (p == end) {
      *pp = p;
      return 0;
    }
    const char *s = p;
    while (p < end && *p != ',')
      p++;
    const char *e = p;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    if (e > s) {
      *tok = s;
      *tok_len = (size_t)(e - s);
      *pp = p;
      return 1;
    }
  }
}

static int eq_nocase(const char *s, size_t n, const char *lit, size_t lit_len) {
  return n == lit_len && strncasecmp(s, lit, n) == 0;
}

/* Compares with a lower-case literal of letters, digits and '-'. OR-ing 0x20 folds case exactly for
 * such literals as long as s holds no control bytes, which parsed names and values never do. */
static inline int eq_lower(const char *s, size_t n, const char *lit, size_t lit_len) {
  if (n != lit_len) return 0;
  for (size_t i = 0; i < n; i++)
    if ((s[i] | 0x20) != lit[i]) return 0;
  return 1;
}

#define NAME_IS(h, lit) eq_lower((h)->name, (h)->name_len, lit, sizeof(lit) - 1)
#define TOKEN_IS(s, n, lit) eq_lower(s, n, lit, sizeof(lit) - 1)

/* Content-Length: 1*DIGIT that fits in int64; lists ("5, 5"), signs and spaces are malformed. */
static int parse_content_length(const char *v, size_t n, int64_t *out) {
  int64_t x = 0;
  if (n == 0) return IG_EPARSE;
  for (size_t i = 0; i < n; i++) {
    unsigned d = (unsigned char)v[i] - '0';
    if (d > 9) return IG_EPARSE;
    if (x > (INT64_MAX - (int64_t)d) / 10) return IG_EPARSE;
    x = x * 10 + (int64_t)d;
  }
  *out = x;
  return IG_OK;
}

/* Transfer-Encoding list: every coding name must be a token; chunked may only be the last coding of
 * the whole message (applying it twice, or anything after it, is malformed). Several headers form
 * one list. */
static int parse_transfer_encoding(const char *v, size_t n, fields_t *f) {
  const char *p = v, *end = v + n, *tok;
  size_t tok_len;
  while (next_element(&p, end, &tok, &tok_len)) {
    size_t i = 0;
    while (i < tok_len && IG_HC_IS(tok[i], IG_HC_TCHAR))
      i++;
    if (i == 0) return IG_EPARSE;
    size_t j = i;
    while (j < tok_len && (tok[j] == ' ' || tok[j] == '\t'))
      j++;
    if (j < tok_len && tok[j] != ';') return IG_EPARSE;
    if (f->te_last_chunked) return IG_EPARSE; /* something follows chunked */
    f->te_last_chunked = TOKEN_IS(tok, i, "chunked");
    if (f->te_last_chunked && j < tok_len) return IG_EPARSE; /* chunked takes no parameters */
  }
  f->te_seen = 1;
  return IG_OK;
}

/* Walks the headers once and records the framing and connection facts. */
static int scan_fields(const ig_http_header_t *hdrs, size_t n, fields_t *f) {
  memset(f, 0, sizeof *f);
  f->content_length = -1;
  for (size_t i = 0; i < n; i++) {
    const ig_http_header_t *h = &hdrs[i];
    int rc = IG_OK;
    switch (h->name_len) {
    case 4:
      if (NAME_IS(h, "host")) {
        f->host_count++;
        f->host = h;
      }
      break;
    case 6:
      if (NAME_IS(h, "expect")) f->expect_continue = TOKEN_IS(h->value, h->value_len, "100-continue");
      break;
    case 7:
      if (NAME_IS(h, "upgrade")) f->upgrade_hdr = 1;
      break;
    case 10:
      if (NAME_IS(h, "connection")) {
        const char *p = h->value, *end = h->value + h->value_len, *tok;
        size_t tok_len;
        while (next_element(&p, end, &tok, &tok_len)) {
          if (TOKEN_IS(tok, tok_len, "close"))
            f->conn_close = 1;
          else if (TOKEN_IS(tok, tok_len, "keep-alive"))
            f->conn_keep_alive = 1;
          else if (TOKEN_IS(tok, tok_len, "upgrade"))
            f->conn_upgrade = 1;
        }
      }
      break;
    case 14:
      if (NAME_IS(h, "content-length")) {
        int64_t cl;
        rc = parse_content_length(h->value, h->value_len, &cl);
        if (rc == IG_OK && f->content_length >= 0 && f->content_length != cl) rc = IG_EPARSE;
        if (rc == IG_OK) f->content_length = cl;
      }
      break;
    case 17:
      if (NAME_IS(h, "transfer-encoding")) rc = parse_transfer_encoding(h->value, h->value_len, f);
      break;
    default:
      break;
    }
    if (rc != IG_OK) return rc;
  }
  return IG_OK;
}

/* Host = uri-host [ ":" port ]; uri-host is a reg-name / IPv4 or an IP-literal in brackets (kept with
 * its brackets, "[::1]"). Sets *host_len to the length without the port. */
static int split_host(const char *v, size_t n, size_t *host_len) {
  size_t i = 0;
  if (n > 0 && v[0] == '[') {
    for (i = 1; i < n && v[i] != ']'; i++)
      if (!IG_HC_IS(v[i], IG_HC_HOST) && v[i] != ':') return IG_EPARSE;
    if (i == n || i == 1) return IG_EPARSE;
    i++;
  } else {
    while (i < n && IG_HC_IS(v[i], IG_HC_HOST))
      i++;
  }
  *host_len = i;
  if (i == n) return IG_OK;
  if (v[i] != ':') return IG_EPARSE;
  for (i++; i < n; i++)
    if (v[i] < '0' || v[i] > '9') return IG_EPARSE;
  return IG_OK;
}

/* The two limits in force, and where parsing must stop: a head that does not end within
 * max_header_bytes is too big, even when the rest has not arrived yet. */
static void head_limits(const char *buf, size_t len, const ig_http_limits_t *lim, size_t max_hdrs,
                        const char **end, size_t *maxh, int *short_rc) {
  size_t max_bytes = lim && lim->max_header_bytes ? lim->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
  size_t lim_hdrs = lim && lim->max_headers ? lim->max_headers : DEFAULT_MAX_HEADERS;
  if (max_bytes > INT_MAX) max_bytes = INT_MAX; /* the head length is returned as an int */
  *maxh = max_hdrs < lim_hdrs ? max_hdrs : lim_hdrs;
  if (len >= max_bytes) {
    *end = buf + max_bytes;
    *short_rc = IG_ETOOBIG;
  } else {
    *end = buf + len;
    *short_rc = IG_EAGAIN;
  }
}

int ig_http_parse_request(const char *buf, size_t len, ig_http_request_t *req, ig_http_header_t *hdrs,
                          size_t max_hdrs, const ig_http_limits_t *lim) {
  const char *p = buf, *end;
  size_t maxh, nh = 0;
  int short_rc, rc;
  fields_t f;

  head_limits(buf, len, lim, max_hdrs, &end, &maxh, &short_rc);
  memset(req, 0, sizeof *req);
  req->content_length = -1;
  req->headers = hdrs;

  /* RFC 9112 2.2: ignore empty lines (CRLF) before the request-line. */
  while (p < end && *p == '\r') {
    if (p + 1 == end) return short_rc;
    if (p[1] != '\n') return IG_EPARSE;
    p += 2;
  }

  /* method SP request-target SP HTTP-version CRLF, single spaces only. */
  req->method = p;
  while (p < end && IG_HC_IS(*p, IG_HC_TCHAR))
    p++;
  if (p == end) return short_rc;
  if (p == req->method || *p != ' ') return IG_EPARSE;
  req->method_len = (size_t)(p - req->method);
  req->target = ++p;
  p = skip_class(p, end, IG_HC_TARGET);
  if (p == end) return short_rc;
  if (p == req->target || *p != ' ') return IG_EPARSE;
  req->target_len = (size_t)(p - req->target);
  const char *q = memchr(req->target, '?', req->target_len);
  req->path_len = q ? (size_t)(q - req->target) : req->target_len;
  p++;
  if ((rc = parse_version(&p, end, &req->minor_version, short_rc)) != IG_OK) return rc;
  if ((rc = match_lit(&p, end, "\r\n", 2, short_rc)) != IG_OK) return rc;

  if ((rc = parse_headers(&p, end, hdrs, maxh, &nh, short_rc)) != IG_OK) return rc;
  req->num_headers = nh;

  if ((rc = scan_fields(hdrs, nh, &f)) != IG_OK) return rc;
  if (f.te_seen) {
    /* RFC 9112 6.1/6.3: TE in HTTP/1.0, TE with Content-Length, or a final coding other than
     * chunked cannot be framed safely. */
    if (req->minor_version == 0 || f.content_length >= 0 || !f.te_last_chunked) return IG_EPARSE;
    req->chunked = 1;
  }
  req->content_length = f.content_length;
  if (f.host_count > 1) return IG_EPARSE;
  if (f.host_count == 1) {
    if ((rc = split_host(f.host->value, f.host->value_len, &req->host_len)) != IG_OK) return rc;
    req->host = f.host->value;
  } else if (req->minor_version == 1) {
    return IG_EPARSE;
  }
  req->keep_alive = req->minor_version == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
  req->expect_continue = f.expect_continue;
  req->upgrade = f.conn_upgrade && f.upgrade_hdr;
  return (int)(p - buf);
}

int ig_http_parse_response(const char *buf, size_t len, ig_http_response_t *res, ig_http_header_t *hdrs,
                           size_t max_hdrs, const ig_http_limits_t *lim) {
  const char *p = buf, *end;
  size_t maxh, nh = 0;
  int short_rc, rc;
  fields_t f;

  head_limits(buf, len, lim, max_hdrs, &end, &maxh, &short_rc);
  memset(res, 0, sizeof *res);
  res->content_length = -1;
  res->headers = hdrs;

  /* HTTP-version SP 3DIGIT SP [reason] CRLF; the SP before an empty reason is often left out. */
  if ((rc = parse_version(&p, end, &res->minor_version, short_rc)) != IG_OK) return rc;
  if ((rc = match_lit(&p, end, " ", 1, short_rc)) != IG_OK) return rc;
  for (int i = 0; i < 3; i++, p++) {
    if (p == end) return short_rc;
    if (*p < '0' || *p > '9') return IG_EPARSE;
    res->status = res->status * 10 + (*p - '0');
  }
  if (res->status < 100) return IG_EPARSE;
  if (p == end) return short_rc;
  if (*p == ' ') {
    p++;
  } else if (*p != '\r') {
    return IG_EPARSE;
  }
  res->reason = p;
  while (p < end && IG_HC_IS(*p, IG_HC_VALUE))
    p++;
  res->reason_len = (size_t)(p - res->reason);
  if ((rc = match_lit(&p, end, "\r\n", 2, short_rc)) != IG_OK) return rc;

  if ((rc = parse_headers(&p, end, hdrs, maxh, &nh, short_rc)) != IG_OK) return rc;
  res->num_headers = nh;

  if ((rc = scan_fields(hdrs, nh, &f)) != IG_OK) return rc;
  res->keep_alive = res->minor_version == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
  if (f.te_seen) {
    if (res->minor_version == 0 || f.content_length >= 0) return IG_EPARSE;
    if (f.te_last_chunked) {
      res->chunked = 1;
    } else {
      res->keep_alive = 0; /* RFC 9112 6.3: the body runs until the server closes */
    }
  }
  res->content_length = f.content_length;
  return (int)(p - buf);
}

const ig_http_header_t *ig_http_header_find(const ig_http_header_t *hdrs, size_t n, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < n; i++)
    if (eq_nocase(hdrs[i].name, hdrs[i].name_len, name, len)) return &hdrs[i];
  return NULL;
}

int ig_http_value_has_token(const char *value, size_t len, const char *token) {
  const char *p = value, *end = value + len, *tok;
  size_t tok_len, want = strlen(token);
  while (next_element(&p, end, &tok, &tok_len))
    if (eq_nocase(tok, tok_len, token, want)) return 1;
  return 0;
}

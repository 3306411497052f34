/* OpenAI request bodies: a validating zero-copy JSON scanner for the top-level fields a gateway needs,
 * the in-place rewrite of "model", prompt text extraction and the token-count approximation.
 *
 * The scanner never builds a tree. Values the gateway does not care about are skipped by an iterative
 * validating skipper (strings with escapes and UTF-8 checks, RFC 8259 numbers, literals, nested
 * containers up to OAI_MAX_DEPTH levels), so the whole body is checked to be one JSON object. */
#include "infergate/oai.h"
#include "infergate/http.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OAI_MAX_DEPTH 64

/* ---- low-level JSON skipping ------------------------------------------------------------------ */

static inline const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

static inline int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reads 4 hex digits at p (the caller checked that 4 bytes are there); returns the value or -1. */
static inline long hex4(const char *p) {
  long v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hex_val(p[i]);
    if (h < 0) return -1;
    v = (v << 4) | h;
  }
  return v;
}

/* Length of the well-formed UTF-8 sequence starting with a byte >= 0x80 at p (no overlongs, no
 * encoded surrogates, nothing above U+10FFFF), or 0 when it is malformed or truncated. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *e) {
  unsigned c = p[0];
  size_t avail = (size_t)(e - p);
  if (c < 0xC2) return 0;
  if (c < 0xE0) return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c < 0xF0) {
    if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && p[1] >= 0xA0) return 0; /* UTF-16 surrogate */
    return 3;
  }
  if (c < 0xF5) {
    if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && p[1] >= 0x90) return 0; /* above U+10FFFF */
    return 4;
  }
  return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* True when none of the 8 bytes at p needs attention inside a string: no '"', no '\\', no control
 * character and no byte >= 0x80 (classic SWAR "has zero byte" / "has byte less than n" tests). */
static inline int plain8(const unsigned char *p) {
  uint64_t x;
  memcpy(&x, p, 8);
  uint64_t q = x ^ (ONES * '"');
  uint64_t b = x ^ (ONES * '\\');
  uint64_t special = ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((x - ONES * 0x20) & ~x) | x;
  return (special & HIGHS) == 0;
}

/* Skips a string; *pp points at the opening quote and is left after the closing quote. Validates
 * escapes (\uXXXX needs 4 hex digits; lone surrogates are accepted as RFC 8259 allows), rejects raw
 * control characters and malformed UTF-8. Returns 0 or IG_EPARSE. */
static int skip_string(const char **pp, const char *end) {
  const unsigned char *p = (const unsigned char *)*pp + 1;
  const unsigned char *e = (const unsigned char *)end;
  for (;;) {
    while (e - p >= 8 && plain8(p)) p += 8;
    while (p < e && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
    if (p >= e) return IG_EPARSE;
    unsigned c = *p;
    if (c == '"') {
      *pp = (const char *)p + 1;
      return 0;
    }
    if (c == '\\') {
      if (e - p < 2) return IG_EPARSE;
      switch (p[1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        p += 2;
        break;
      case 'u':
        if (e - p < 6 || hex4((const char *)p + 2) < 0) return IG_EPARSE;
        p += 6;
        break;
      default:
        return IG_EPARSE;
      }
      continue;
    }
    if (c < 0x20) return IG_EPARSE;
    size_t n = utf8_seq(p, e);
    if (!n) return IG_EPARSE;
    p += n;
  }
}

/* Skips an RFC 8259 number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?. What follows is checked by
 * the caller (so "01" fails there as trailing garbage). Returns 0 or IG_EPARSE. */
static int skip_number(const char **pp, const char *end) {
  const char *p = *pp;
  if (p < end && *p == '-') p++;
  if (p >= end) return IG_EPARSE;
  if (*p == '0') {
    p++;
  } else if (*p >= '1' && *p <= '9') {
    while (p < end && is_digit(*p)) p++;
  } else {
    return IG_EPARSE;
  }
  if (p < end && *p == '.') {
    p++;
    if (p >= end || !is_digit(*p)) return IG_EPARSE;
    while (p < end && is_digit(*p)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || !is_digit(*p)) return IG_EPARSE;
    while (p < end && is_digit(*p)) p++;
  }
  *pp = p;
  return 0;
}

static int skip_literal(const char **pp, const char *end, const char *lit, size_t n) {
  if ((size_t)(end - *pp) < n || memcmp(*pp, lit, n) != 0) return IG_EPARSE;
  *pp += n;
  return 0;
}

/* Skips one JSON value at *pp (no leading whitespace) that sits inside `depth` open containers, and
 * leaves *pp just after it. Iterative: a 64-bit stack records whether each open level is an object,
 * which is enough because the total nesting is capped at OAI_MAX_DEPTH. Returns 0 or IG_EPARSE. */
static int skip_value(const char **pp, const char *end, int depth) {
  const char *p = *pp;
  uint64_t objs = 0; /* bit i: level i (relative to this value) is an object */
  int d = 0;         /* open containers inside this value */
  int rc;

value:
  if (p >= end) return IG_EPARSE;
  switch (*p) {
  case '{':
  case '[': {
    int obj = *p == '{';
    if (depth + d + 1 > OAI_MAX_DEPTH) return IG_EPARSE;
    if (obj)
      objs |= 1ULL << d;
    else
      objs &= ~(1ULL << d);
    d++;
    p = skip_ws(p + 1, end);
    if (p < end && *p == (obj ? '}' : ']')) {
      p++;
      d--;
      goto after;
    }
    if (obj) goto key;
    goto value;
  }
  case '"':
    rc = skip_string(&p, end);
    break;
  case 't':
    rc = skip_literal(&p, end, "true", 4);
    break;
  case 'f':
    rc = skip_literal(&p, end, "false", 5);
    break;
  case 'n':
    rc = skip_literal(&p, end, "null", 4);
    break;
  default:
    rc = skip_number(&p, end);
    break;
  }
  if (rc) return rc;
  goto after;

key:
  if (p >= end || *p != '"') return IG_EPARSE;
  if ((rc = skip_string(&p, end))) return rc;
  p = skip_ws(p, end);
  if (p >= end || *p != ':') return IG_EPARSE;
  p = skip_ws(p + 1, end);
  goto value;

after:
  if (d == 0) {
    *pp = p;
    return 0;
  }
  p = skip_ws(p, end);
  if (p >= end) return IG_EPARSE;
  {
    int obj = (int)((objs >> (d - 1)) & 1);
    if (*p == ',') {
      p = skip_ws(p + 1, end);
      if (obj) goto key;
      goto value;
    }
    if (*p == (obj ? '}' : ']')) {
      p++;
      d--;
      goto after;
    }
  }
  return IG_EPARSE;
}

/* ---- decoding -------------------------------------------------------------------------------- */

static size_t put_utf8(unsigned long cp, char *o) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Decodes the escape sequence at s[0..n) (s[0] == '\\') into tmp (up to 4 bytes). Returns the
 * number of bytes written to tmp and sets *used to the raw bytes consumed. Surrogate pairs become one
 * 4-byte UTF-8 sequence; a lone surrogate becomes U+FFFD; malformed escapes (impossible after
 * skip_string) are copied through. Never reads outside s[0..n). */
static inline size_t decode_escape(const char *s, size_t n, char tmp[4], size_t *used) {
  if (n < 2) {
    tmp[0] = '\\';
    *used = 1;
    return 1;
  }
  char c = s[1];
  size_t i = 2;
  size_t clen = 1;
  switch (c) {
  case 'b': tmp[0] = '\b'; break;
  case 'f': tmp[0] = '\f'; break;
  case 'n': tmp[0] = '\n'; break;
  case 'r': tmp[0] = '\r'; break;
  case 't': tmp[0] = '\t'; break;
  case 'u': {
    long cp = n - i >= 4 ? hex4(s + i) : -1;
    if (cp < 0) {
      tmp[0] = 'u';
      break;
    }
    i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      long lo = (n - i >= 6 && s[i] == '\\' && s[i + 1] == 'u') ? hex4(s + i + 2) : -1;
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        i += 6;
      } else {
        cp = 0xFFFD;
      }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      cp = 0xFFFD;
    }
    clen = put_utf8((unsigned long)cp, tmp);
    break;
  }
  default: tmp[0] = c; break; /* '"', '\\', '/' */
  }
  *used = i;
  return clen;
}

/* Decodes the raw contents s[0..n) of a JSON string (between the quotes) into out, writing at most
 * cap bytes, and returns the full decoded length (which is never more than n). Escapes as in
 * decode_escape. Never reads outside s[0..n). */
static size_t json_unescape(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0, i = 0;
  char tmp[4];
  while (i < n) {
    size_t run = i;
    while (run < n && s[run] != '\\') run++;
    if (run > i) {
      if (o < cap) memcpy(out + o, s + i, run - i <= cap - o ? run - i : cap - o);
      o += run - i;
      i = run;
      if (i >= n) break;
    }
    /* s[i] == '\\' */
    size_t used;
    size_t clen = decode_escape(s + i, n - i, tmp, &used);
    i += used;
    for (size_t k = 0; k < clen; k++, o++)
      if (o < cap) out[o] = tmp[k];
  }
  return o;
}

/* True when one of the 8 bytes at p is '"' or '\\' (SWAR zero-byte test, exact as a whole). */
static inline int quote_or_bs8(const unsigned char *p) {
  uint64_t x;
  memcpy(&x, p, 8);
  uint64_t q = x ^ (ONES * '"');
  uint64_t b = x ^ (ONES * '\\');
  return ((((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS) != 0;
}

/* Decodes the JSON string whose raw contents start at *pp (just after the opening quote; the string
 * was validated by skip_string and closes before end) into out, at most cap bytes. Stops at the
 * closing quote (*closed = 1, *pp after it) or once cap bytes are written (*closed = 0; the last
 * escape may be cut inside its UTF-8 bytes, exactly where a truncation of the full decoding would
 * cut). Returns the bytes written. Only the part of the string that is decoded is read. */
static size_t unescape_prefix(const char **pp, const char *end, char *out, size_t cap, int *closed) {
  const char *p = *pp;
  size_t o = 0;
  char tmp[4];
  *closed = 0;
  while (o < cap && p < end) {
    size_t room = cap - o;
    const char *q = p, *lim = (size_t)(end - p) < room ? end : p + room;
    while (lim - q >= 8 && !quote_or_bs8((const unsigned char *)q)) q += 8;
    while (q < lim && *q != '"' && *q != '\\') q++;
    memcpy(out + o, p, (size_t)(q - p));
    o += (size_t)(q - p);
    p = q;
    if (o == cap || p >= end) break;
    if (*p == '"') {
      *closed = 1;
      p++;
      break;
    }
    size_t used;
    size_t clen = decode_escape(p, (size_t)(end - p), tmp, &used);
    p += used;
    for (size_t k = 0; k < clen && o < cap; k++)
      out[o++] = tmp[k];
  }
  *pp = p;
  return o;
}

/* Appends the decoded raw string contents s[0..n) to b. */
static void buf_unescape(ig_buf_t *b, const char *s, size_t n) {
  ig_buf_reserve(b, n);
  b->len += json_unescape(s, n, b->data + b->len, n);
  b->data[b->len] = '\0';
}

/* ---- object / array iteration ----------------------------------------------------------------- */

typedef struct {
  const char *p, *end;
  char close; /* '}' or ']' */
  int n;      /* members seen */
} jiter_t;

/* Starts iterating the container at p ('{' or '['). */
static int iter_open(jiter_t *it, const char *p, const char *end) {
  if (p >= end || (*p != '{' && *p != '[')) return IG_EPARSE;
  it->close = *p == '{' ? '}' : ']';
  it->p = p + 1;
  it->end = end;
  it->n = 0;
  return 0;
}

/* Advances to the next member. Returns 1 with it->p at the value (for objects key and klen give the raw
 * key between the quotes), 0 after the closing bracket was consumed, or IG_EPARSE. The caller must
 * move it->p past the value before the next call. */
static int iter_next(jiter_t *it, const char **key, size_t *klen) {
  const char *p = skip_ws(it->p, it->end);
  if (p >= it->end) return IG_EPARSE;
  if (it->n > 0) {
    if (*p == it->close) {
      it->p = p + 1;
      return 0;
    }
    if (*p != ',') return IG_EPARSE;
    p = skip_ws(p + 1, it->end);
  } else if (*p == it->close) {
    it->p = p + 1;
    return 0;
  }
  if (it->close == '}') {
    const char *k = p;
    int rc = skip_string(&p, it->end);
    if (rc) return rc;
    *key = k + 1;
    *klen = (size_t)(p - k - 2);
    p = skip_ws(p, it->end);
    if (p >= it->end || *p != ':') return IG_EPARSE;
    p = skip_ws(p + 1, it->end);
  }
  if (p >= it->end) return IG_EPARSE;
  it->n++;
  it->p = p;
  return 1;
}

/* Compares a raw key (possibly with escapes such as "mod\u0065l") against a plain name. */
static int key_is(const char *k, size_t kn, const char *name) {
  size_t nl = strlen(name);
  if (!memchr(k, '\\', kn)) return kn == nl && memcmp(k, name, nl) == 0;
  char tmp[32];
  size_t dl = json_unescape(k, kn, tmp, sizeof tmp);
  return dl == nl && dl <= sizeof tmp && memcmp(tmp, name, nl) == 0;
}

/* ---- scan ------------------------------------------------------------------------------------ */

enum { K_OTHER, K_MODEL, K_STREAM, K_STREAM_OPTIONS, K_MAX_TOKENS, K_MAX_COMPLETION_TOKENS, K_PROMPT, K_MESSAGES };

static int classify_key(const char *k, size_t kn) {
  static const struct {
    const char *name;
    int id;
  } keys[] = {
      {"model", K_MODEL},
      {"stream", K_STREAM},
      {"stream_options", K_STREAM_OPTIONS},
      {"max_tokens", K_MAX_TOKENS},
      {"max_completion_tokens", K_MAX_COMPLETION_TOKENS},
      {"prompt", K_PROMPT},
      {"messages", K_MESSAGES},
  };
  if (kn == 0 || kn > 160) return K_OTHER; /* fully \u-escaped names stay under 160 */
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (key_is(k, kn, keys[i].name)) return keys[i].id;
  return K_OTHER;
}

/* Interprets a validated JSON number span as a token limit: a non-negative integral value (100,
 * 100.0, 1e2), saturated at INT64_MAX; anything else (negative, fractional) gives -1. */
static int64_t number_to_limit(const char *s, size_t n) {
  size_t i = 0;
  int64_t v = 0;
  while (i < n && is_digit(s[i])) {
    int dg = s[i] - '0';
    v = v > (INT64_MAX - dg) / 10 ? INT64_MAX : v * 10 + dg;
    i++;
  }
  if (i == n && n > 0) return v;
  char tmp[64];
  if (n >= sizeof tmp) return -1;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  double d = strtod(tmp, NULL);
  if (!(d >= 0) || d != floor(d)) return -1;
  if (d >= 9.2e18) return INT64_MAX;
  return (int64_t)d;
}

/* Handles the value of "stream_options" (an object at depth 2): sets include_usage. */
static int scan_stream_options(const char **pp, const char *end, ig_oai_req_t *out) {
  jiter_t it;
  const char *k;
  size_t kn = 0;
  int rc;
  if ((rc = iter_open(&it, *pp, end))) return rc;
  int seen = 0;
  while ((rc = iter_next(&it, &k, &kn)) == 1) {
    if (!seen && key_is(k, kn, "include_usage")) {
      seen = 1;
      if (it.end - it.p >= 4 && memcmp(it.p, "true", 4) == 0) out->include_usage = 1;
    }
    if ((rc = skip_value(&it.p, end, 2))) return rc;
  }
  if (rc < 0) return rc;
  *pp = it.p;
  return 0;
}

int ig_oai_scan(const char *body, size_t len, ig_oai_req_t *out) {
  const char *end = body + len;
  const char *p = skip_ws(body, end);
  jiter_t it;
  const char *k = NULL;
  size_t kn = 0;
  int rc, toobig = 0;
  unsigned seen = 0; /* bit per K_* id: first key wins */
  int64_t mt = -1, mct = -1;

  out->has_model = 0;
  out->model[0] = '\0';
  out->model_len = out->model_raw_off = out->model_raw_len = 0;
  out->stream = -1;
  out->include_usage = 0;
  out->max_tokens = -1;
  out->prompt_kind = IG_OAI_PROMPT_NONE;
  out->prompt_off = out->prompt_len = 0;

  if (p >= end || *p != '{') return IG_EPARSE;
  iter_open(&it, p, end);
  while ((rc = iter_next(&it, &k, &kn)) == 1) {
    int id = classify_key(k, kn);
    int first = id != K_OTHER && !(seen & (1u << id));
    const char *v = it.p;
    seen |= 1u << id;
    if (!first) {
      if ((rc = skip_value(&it.p, end, 1))) return rc;
      continue;
    }
    switch (id) {
    case K_MODEL:
      if (v < end && *v == '"') {
        if ((rc = skip_string(&it.p, end))) return rc;
        size_t rawlen = (size_t)(it.p - v);
        size_t dl = json_unescape(v + 1, rawlen - 2, out->model, IG_OAI_MODEL_MAX);
        if (dl > IG_OAI_MODEL_MAX) {
          toobig = 1;
          dl = IG_OAI_MODEL_MAX;
        }
        out->model[dl] = '\0';
        out->model_len = dl;
        out->has_model = 1;
        out->model_raw_off = (size_t)(v - body);
        out->model_raw_len = rawlen;
        continue;
      }
      break; /* non-string model (null, number...): treated as absent */
    case K_STREAM:
      if (end - v >= 4 && memcmp(v, "true", 4) == 0) out->stream = 1;
      if (end - v >= 5 && memcmp(v, "false", 5) == 0) out->stream = 0;
      break;
    case K_STREAM_OPTIONS:
      if (v < end && *v == '{') {
        if ((rc = scan_stream_options(&it.p, end, out))) return rc;
        continue;
      }
      break;
    case K_MAX_TOKENS:
    case K_MAX_COMPLETION_TOKENS:
      if (v < end && (is_digit(*v) || *v == '-')) {
        if ((rc = skip_number(&it.p, end))) return rc;
        int64_t lim = number_to_limit(v, (size_t)(it.p - v));
        if (id == K_MAX_TOKENS)
          mt = lim;
        else
          mct = lim;
        continue;
      }
      break;
    case K_PROMPT:
    case K_MESSAGES:
      if ((rc = skip_value(&it.p, end, 1))) return rc;
      if (out->prompt_kind == IG_OAI_PROMPT_NONE &&
          ((id == K_PROMPT && (*v == '"' || *v == '[')) || (id == K_MESSAGES && *v == '['))) {
        out->prompt_kind = id == K_PROMPT ? IG_OAI_PROMPT_TEXT : IG_OAI_PROMPT_MESSAGES;
        out->prompt_off = (size_t)(v - body);
        out->prompt_len = (size_t)(it.p - v);
      }
      continue;
    default:
      break;
    }
    if ((rc = skip_value(&it.p, end, 1))) return rc;
  }
  if (rc < 0) return rc;
  if (skip_ws(it.p, end) != end) return IG_EPARSE;
  out->max_tokens = mct >= 0 ? mct : mt;
  return toobig ? IG_ETOOBIG : 0;
}

/* ---- rewrite --------------------------------------------------------------------------------- */

/* Appends s as the contents of a JSON string (quotes not included): '"', '\\' and control
 * characters escaped, everything else copied as is. */
static void json_escape(ig_buf_t *b, const char *s, size_t n) {
  static const char hexd[] = "0123456789abcdef";
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\') run++;
    ig_buf_append(b, s + i, run - i);
    if (run >= n) break;
    unsigned char c = (unsigned char)s[run];
    char e[6] = {'\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15]};
    switch (c) {
    case '"': ig_buf_append(b, "\\\"", 2); break;
    case '\\': ig_buf_append(b, "\\\\", 2); break;
    case '\n': ig_buf_append(b, "\\n", 2); break;
    case '\r': ig_buf_append(b, "\\r", 2); break;
    case '\t': ig_buf_append(b, "\\t", 2); break;
    case '\b': ig_buf_append(b, "\\b", 2); break;
    case '\f': ig_buf_append(b, "\\f", 2); break;
    default: ig_buf_append(b, e, 6); break;
    }
    i = run + 1;
  }
}

int ig_oai_rewrite_model(const char *body, size_t len, const ig_oai_req_t *scan, const char *new_model,
                         ig_buf_t *out) {
  if (!scan || !scan->has_model || !new_model) return IG_EINVAL;
  size_t off = scan->model_raw_off, rl = scan->model_raw_len;
  if (off > len || rl > len - off || rl < 2 || body[off] != '"' || body[off + rl - 1] != '"')
    return IG_EINVAL;
  size_t nl = strlen(new_model);
  ig_buf_reserve(out, len - rl + nl + 2);
  ig_buf_append(out, body, off);
  ig_buf_append(out, "\"", 1);
  json_escape(out, new_model, nl);
  ig_buf_append(out, "\"", 1);
  ig_buf_append(out, body + off + rl, len - off - rl);
  return 0;
}

/* ---- token counting and prompt text ----------------------------------------------------------- */

size_t ig_oai_count_tokens(const char *text, size_t len) {
  (void)text;
  return (len + 3) / 4;
}

typedef struct {
  ig_buf_t *out;
  int pieces;
  int limited; /* at most `left` more bytes are appended */
  size_t left;
} text_sink_t;

#define TEXT_FULL 1 /* the limit was reached: stop walking (not an error) */

/* Appends one JSON string (*pp at the opening quote) as a text piece, "\n"-separated. With a limit,
 * decodes only what fits and returns TEXT_FULL once the limit is reached. */
static int append_piece(text_sink_t *ts, const char **pp, const char *end) {
  const char *s = *pp;
  if (ts->limited) {
    if (ts->pieces++) {
      if (!ts->left) return TEXT_FULL;
      ig_buf_append(ts->out, "\n", 1);
      ts->left--;
    }
    if (!ts->left) return TEXT_FULL;
    size_t room = (size_t)(end - s) < ts->left ? (size_t)(end - s) : ts->left; /* decoded <= raw */
    ig_buf_reserve(ts->out, room);
    int closed;
    *pp = s + 1;
    size_t n = unescape_prefix(pp, end, ts->out->data + ts->out->len, room, &closed);
    ts->out->len += n;
    ts->out->data[ts->out->len] = '\0';
    ts->left -= n;
    if (closed) return 0;
    return ts->left ? IG_EPARSE : TEXT_FULL;
  }
  int rc = skip_string(pp, end);
  if (rc) return rc;
  if (ts->pieces++) ig_buf_append(ts->out, "\n", 1);
  buf_unescape(ts->out, s + 1, (size_t)(*pp - s - 2));
  return 0;
}

/* Appends the "text" of each content part object in the array at *pp. */
static int append_content_parts(text_sink_t *ts, const char **pp, const char *end) {
  jiter_t arr, obj;
  const char *k = NULL;
  size_t kn = 0;
  int rc;
  if ((rc = iter_open(&arr, *pp, end))) return rc;
  while ((rc = iter_next(&arr, &k, &kn)) == 1) {
    if (*arr.p != '{') {
      if ((rc = skip_value(&arr.p, end, 4))) return rc;
      continue;
    }
    iter_open(&obj, arr.p, end);
    int seen = 0;
    while ((rc = iter_next(&obj, &k, &kn)) == 1) {
      if (!seen && key_is(k, kn, "text")) {
        seen = 1;
        if (*obj.p == '"') {
          if ((rc = append_piece(ts, &obj.p, end))) return rc;
          continue;
        }
      }
      if ((rc = skip_value(&obj.p, end, 5))) return rc;
    }
    if (rc < 0) return rc;
    arr.p = obj.p;
  }
  if (rc < 0) return rc;
  *pp = arr.p;
  return 0;
}

/* The walk behind ig_oai_prompt_text and ig_oai_prompt_text_max (ts carries the limit). Returns 0,
 * TEXT_FULL or a negative code. */
static int prompt_text(const char *body, size_t len, const ig_oai_req_t *scan, text_sink_t *ts) {
  if (!scan) return IG_EINVAL;
  if (scan->prompt_kind == IG_OAI_PROMPT_NONE) return 0;
  if (scan->prompt_off > len || scan->prompt_len > len - scan->prompt_off || scan->prompt_len == 0)
    return IG_EINVAL;
  const char *p = body + scan->prompt_off, *end = p + scan->prompt_len;
  jiter_t arr, obj;
  const char *k = NULL;
  size_t kn = 0;
  int rc;

  if (scan->prompt_kind == IG_OAI_PROMPT_TEXT && *p == '"') return append_piece(ts, &p, end);
  if ((rc = iter_open(&arr, p, end))) return rc;
  while ((rc = iter_next(&arr, &k, &kn)) == 1) {
    if (scan->prompt_kind == IG_OAI_PROMPT_TEXT) {
      /* prompt array: strings are prompts; token-id arrays carry no text */
      if (*arr.p == '"')
        rc = append_piece(ts, &arr.p, end);
      else
        rc = skip_value(&arr.p, end, 2);
      if (rc) return rc;
      continue;
    }
    if (*arr.p != '{') {
      if ((rc = skip_value(&arr.p, end, 2))) return rc;
      continue;
    }
    iter_open(&obj, arr.p, end);
    int seen = 0;
    while ((rc = iter_next(&obj, &k, &kn)) == 1) {
      if (!seen && key_is(k, kn, "content")) {
        seen = 1;
        if (*obj.p == '"') {
          if ((rc = append_piece(ts, &obj.p, end))) return rc;
          continue;
        }
        if (*obj.p == '[') {
          if ((rc = append_content_parts(ts, &obj.p, end))) return rc;
          continue;
        }
      }
      if ((rc = skip_value(&obj.p, end, 3))) return rc;
    }
    if (rc < 0) return rc;
    arr.p = obj.p;
  }
  return rc < 0 ? rc : 0;
}

int ig_oai_prompt_text(const char *body, size_t len, const ig_oai_req_t *scan, ig_buf_t *out) {
  text_sink_t ts = {out, 0, 0, 0};
  return prompt_text(body, len, scan, &ts);
}

int ig_oai_prompt_text_max(const char *body, size_t len, const ig_oai_req_t *scan, size_t max, ig_buf_t *out) {
  text_sink_t ts = {out, 0, 1, max};
  int rc = prompt_text(body, len, scan, &ts);
  return rc == TEXT_FULL ? 0 : rc;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int ig_oai_insert_model(const char *body, size_t len, const char *model, ig_buf_t *out) {
  size_t i = 0;
  while (i < len && is_json_space(body[i]))
    i++;
  if (i >= len || body[i] != '{') return IG_EINVAL;
  size_t j = i + 1;
  while (j < len && is_json_space(body[j]))
    j++;
  ig_buf_puts(out, "{\"model\":\"");
  ig_json_escape(out, model, strlen(model));
  ig_buf_puts(out, j < len && body[j] == '}' ? "\"" : "\",");
  ig_buf_append(out, body + i + 1, len - i - 1);
  return 0;
}

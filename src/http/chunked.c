/* Chunked transfer coding (RFC 9112 7.1): an incremental pull-style decoder that keeps its whole
 * state in ig_chunked_decoder_t, so input may be split at any byte, and the encoder helpers. */
#include "infergate/http.h"

#include "http_chars.h"

#define MAX_LINE 4096            /* one chunk-size line (with extensions) or one trailer line, w/o CRLF */
#define MAX_TRAILERS 65536       /* the whole trailer section, not counting line ends */
#define MAX_CHUNK_SIZE INT64_MAX /* chunk sizes must fit in int64 for callers that use signed sizes */

enum {
  CK_SIZE0,   /* first hex digit of a chunk-size */
  CK_SIZE,    /* more hex digits, or ';' / BWS / CR */
  CK_SIZE_WS, /* BWS after the size: only more BWS or ';' may follow */
  CK_EXT,     /* chunk extensions, up to CR */
  CK_SIZE_LF, /* LF ending the chunk-size line */
  CK_DATA,    /* remaining bytes of chunk data */
  CK_DATA_CR, /* CRLF after chunk data */
  CK_DATA_LF,
  CK_TR_START, /* start of a trailer line, or the final CRLF */
  CK_TR_NAME,
  CK_TR_VALUE,
  CK_TR_LF,
  CK_END_LF, /* LF of the final empty line */
  CK_DONE,
  CK_ERROR,
};

void ig_chunked_init(ig_chunked_decoder_t *d) {
  d->state = CK_SIZE0;
  d->remaining = 0;
  d->line_len = 0;
  d->total = 0;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Advances the framing state machine by one byte. Returns IG_OK, 1 when the message is complete, or
 * IG_EPARSE. While reading a size line, d->remaining accumulates the size; in the trailer section it
 * counts trailer bytes. */
static int step(ig_chunked_decoder_t *d, unsigned char c) {
  int v;
  switch (d->state) {
  case CK_SIZE0:
    if ((v = hex_value(c)) < 0) return IG_EPARSE;
    d->remaining = (uint64_t)v;
    d->line_len = 1;
    d->state = CK_SIZE;
    return IG_OK;
  case CK_SIZE:
    if ((v = hex_value(c)) >= 0) {
      if (d->remaining > ((uint64_t)MAX_CHUNK_SIZE >> 4)) return IG_EPARSE;
      d->remaining = (d->remaining << 4) | (uint64_t)v;
    } else if (c == ';') {
      d->state = CK_EXT;
    } else if (c == ' ' || c == '\t') {
      d->state = CK_SIZE_WS;
    } else if (c == '\r') {
      d->state = CK_SIZE_LF;
      return IG_OK;
    } else {
      return IG_EPARSE;
    }
    break;
  case CK_SIZE_WS:
    if (c == ';')
      d->state = CK_EXT;
    else if (c != ' ' && c != '\t')
      return IG_EPARSE;
    break;
  case CK_EXT:
    /* Extensions are ignored, but bare CR/LF, NUL and other controls are not let through. */
    if (c == '\r') {
      d->state = CK_SIZE_LF;
      return IG_OK;
    }
    if (!IG_HC_IS(c, IG_HC_VALUE)) return IG_EPARSE;
    break;
  case CK_SIZE_LF:
    if (c != '\n') return IG_EPARSE;
    d->line_len = 0;
    d->state = d->remaining ? CK_DATA : CK_TR_START;
    return IG_OK;
  case CK_DATA_CR:
    if (c != '\r') return IG_EPARSE;
    d->state = CK_DATA_LF;
    return IG_OK;
  case CK_DATA_LF:
    if (c != '\n') return IG_EPARSE;
    d->state = CK_SIZE0;
    return IG_OK;
  case CK_TR_START:
    if (c == '\r') {
      d->state = CK_END_LF;
      return IG_OK;
    }
    if (!IG_HC_IS(c, IG_HC_TCHAR)) return IG_EPARSE; /* obs-fold, empty name, bare LF */
    d->state = CK_TR_NAME;
    d->line_len = 0;
    goto trailer;
  case CK_TR_NAME:
    if (c == ':')
      d->state = CK_TR_VALUE;
    else if (!IG_HC_IS(c, IG_HC_TCHAR))
      return IG_EPARSE;
    goto trailer;
  case CK_TR_VALUE:
    if (c == '\r') {
      d->state = CK_TR_LF;
      return IG_OK;
    }
    if (!IG_HC_IS(c, IG_HC_VALUE)) return IG_EPARSE;
    goto trailer;
  case CK_TR_LF:
    if (c != '\n') return IG_EPARSE;
    d->state = CK_TR_START;
    return IG_OK;
  case CK_END_LF:
    if (c != '\n') return IG_EPARSE;
    d->state = CK_DONE;
    return 1;
  default:
    return IG_EPARSE;
  }
  /* size-line states; CR and LF are not counted */
  if (++d->line_len > MAX_LINE) return IG_EPARSE;
  return IG_OK;
trailer: /* bytes of a trailer line without its CRLF; the section counts them as well */
  if (++d->line_len > MAX_LINE || ++d->remaining > MAX_TRAILERS) return IG_EPARSE;
  return IG_OK;
}

int ig_chunked_next(ig_chunked_decoder_t *d, const char *in, size_t len, size_t *consumed, const char **data,
                    size_t *data_len) {
  size_t i = 0;
  *consumed = 0;
  *data = NULL;
  *data_len = 0;
  if (d->state == CK_DONE) return 1;
  if (d->state == CK_ERROR) return IG_EPARSE;
  while (i < len) {
    if (d->state == CK_DATA) {
      size_t n = len - i;
      if ((uint64_t)n > d->remaining) n = (size_t)d->remaining;
      *data = in + i;
      *data_len = n;
      d->remaining -= n;
      d->total += n;
      if (d->remaining == 0) d->state = CK_DATA_CR;
      *consumed = i + n;
      return IG_OK;
    }
    int rc = step(d, (unsigned char)in[i++]);
    if (rc == 1) {
      *consumed = i;
      return 1;
    }
    if (rc != IG_OK) {
      d->state = CK_ERROR;
      *consumed = i - 1;
      return IG_EPARSE;
    }
  }
  *consumed = i;
  return i ? IG_OK : IG_EAGAIN;
}

void ig_chunked_begin_chunk(ig_buf_t *out, size_t n) {
  ig_buf_printf(out, "%zx\r\n", n);
}

void ig_chunked_end_chunk(ig_buf_t *out) {
  ig_buf_append(out, "\r\n", 2);
}

void ig_chunked_last(ig_buf_t *out) {
  ig_buf_append(out, "0\r\n\r\n", 5);
}

/* libFuzzer driver for the chunked decoder: decoding the input in one go and in random pieces (split
 * points derived from the input) must give the same outcome, the same bytes consumed and the same
 * body; and the encoder's output for the input decodes back to it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/http.h"

#define CHECK(x)                                                                                             \
  do {                                                                                                       \
    if (!(x)) abort();                                                                                       \
  } while (0)

typedef struct {
  int rc;
  size_t consumed;
  ig_buf_t body;
} outcome_t;

/* Decodes in[0..len); pieces grow by sizes drawn from rng (NULL: all at once), and each call sees an
 * exact-size heap copy of the pending bytes so that ASan catches any over-read. */
static outcome_t decode(const char *in, size_t len, ig_rng_t *rng) {
  outcome_t o = {IG_EAGAIN, 0, {0}};
  ig_chunked_decoder_t d;
  size_t avail = 0;
  ig_chunked_init(&d);
  ig_buf_init(&o.body);
  for (int guard = 0; guard < 1000000; guard++) {
    size_t left = len - o.consumed - avail;
    if (!rng)
      avail += left;
    else if (left)
      avail += 1 + (size_t)(ig_rng_next(rng) % (left < 16 ? left : 16));
    char *piece = malloc(avail ? avail : 1);
    CHECK(piece);
    memcpy(piece, in + o.consumed, avail);
    size_t used, dlen;
    const char *data;
    int rc = ig_chunked_next(&d, piece, avail, &used, &data, &dlen);
    CHECK(used <= avail);
    if (dlen) {
      CHECK(data >= piece && data + dlen <= piece + used);
      ig_buf_append(&o.body, data, dlen);
    }
    free(piece);
    o.consumed += used;
    avail -= used;
    CHECK(d.total == o.body.len);
    if (rc == 1 || rc == IG_EPARSE) {
      o.rc = rc;
      return o;
    }
    if (rc == IG_EAGAIN) {
      CHECK(used == 0);
      if (o.consumed + avail == len) return o;
    } else {
      CHECK(rc == IG_OK && used > 0);
    }
  }
  abort(); /* no progress */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  ig_rng_t rng;
  ig_rng_seed(&rng, ig_hash64(data, size, IG_HASH_SEED));

  outcome_t one = decode(in, size, NULL);
  for (int i = 0; i < 2; i++) {
    outcome_t split = decode(in, size, &rng);
    CHECK(split.rc == one.rc);
    CHECK(split.consumed == one.consumed);
    CHECK(split.body.len == one.body.len);
    CHECK(one.body.len == 0 || memcmp(split.body.data, one.body.data, one.body.len) == 0);
    ig_buf_free(&split.body);
  }
  ig_buf_free(&one.body);

  /* encoder round trip of the raw input */
  ig_buf_t enc;
  ig_buf_init(&enc);
  for (size_t off = 0; off < size;) {
    size_t n = 1 + (size_t)(ig_rng_next(&rng) % 64);
    if (n > size - off) n = size - off;
    ig_chunked_begin_chunk(&enc, n);
    ig_buf_append(&enc, in + off, n);
    ig_chunked_end_chunk(&enc);
    off += n;
  }
  ig_chunked_last(&enc);
  outcome_t rt = decode(enc.data, enc.len, &rng);
  CHECK(rt.rc == 1 && rt.consumed == enc.len && rt.body.len == size);
  CHECK(size == 0 || memcmp(rt.body.data, in, size) == 0);
  ig_buf_free(&rt.body);
  ig_buf_free(&enc);
  return 0;
}

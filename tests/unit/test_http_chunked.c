/* Unit tests for the chunked transfer-coding decoder and encoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/http.h"

typedef struct {
  int rc;          /* 1 (complete), IG_EAGAIN (input ran out) or IG_EPARSE */
  size_t consumed; /* input bytes used in total */
  ig_buf_t out;    /* decoded body */
  uint64_t total;  /* decoder's own count */
} result_t;

/* Feeds in[0..len) to a fresh decoder in pieces of at most `step` bytes (0 = all at once), each piece
 * an exact-size heap copy so that ASan sees any read past it; unconsumed bytes are carried over to the
 * next piece, as a connection buffer would. Stops at completion or error. */
static result_t decode(const char *in, size_t len, size_t step) {
  result_t r = {.rc = IG_EAGAIN};
  ig_chunked_decoder_t d;
  ig_chunked_init(&d);
  ig_buf_init(&r.out);
  size_t avail = 0; /* bytes of in[r.consumed..] handed to the decoder so far */
  for (;;) {
    if (step == 0) {
      avail = len - r.consumed;
    } else if (r.consumed + avail < len) {
      size_t add = len - r.consumed - avail;
      avail += add < step ? add : step;
    }
    char *piece = malloc(avail ? avail : 1);
    assert_non_null(piece);
    memcpy(piece, in + r.consumed, avail);
    size_t used = 0, dlen;
    const char *data;
    int rc = ig_chunked_next(&d, piece, avail, &used, &data, &dlen);
    assert_true(used <= avail);
    if (dlen) {
      assert_true(data >= piece && data + dlen <= piece + used);
      ig_buf_append(&r.out, data, dlen);
    }
    free(piece);
    r.consumed += used;
    avail -= used;
    r.total = d.total;
    if (rc == 1 || rc == IG_EPARSE) {
      r.rc = rc;
      return r;
    }
    if (rc == IG_EAGAIN) {
      assert_int_equal(used, 0);
      if (r.consumed + avail >= len) return r; /* all input seen, still incomplete */
    } else {
      assert_int_equal(rc, IG_OK);
      assert_true(used > 0);
    }
  }
}

static void check_ok(const char *in, size_t len, const char *body, size_t body_len, size_t msg_len) {
  size_t steps[] = {0, 1, 2, 3, 7, 64};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    result_t r = decode(in, len, steps[i]);
    if (r.rc != 1) fail_msg("step %zu: rc %d", steps[i], r.rc);
    assert_int_equal(r.consumed, msg_len);
    assert_int_equal(r.out.len, body_len);
    assert_int_equal(r.total, body_len);
    if (body_len) assert_memory_equal(r.out.data, body, body_len);
    ig_buf_free(&r.out);
  }
}

#define OK(in, body) check_ok(in, sizeof(in) - 1, body, sizeof(body) - 1, sizeof(in) - 1)

static void test_basic(void **state) {
  (void)state;
  OK("5\r\nhello\r\n0\r\n\r\n", "hello");
  OK("0\r\n\r\n", "");
  OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
  OK("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
  OK("005\r\nhello\r\n000\r\n\r\n", "hello");
  /* binary data, CRLF inside data is data */
  OK("4\r\n\r\n\0\xff\r\n0\r\n\r\n", "\r\n\0\xff");
}

static void test_extensions_and_trailers(void **state) {
  (void)state;
  OK("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello");
  OK("5 ; a=\"quoted ; \\\" string\";b\r\nhello\r\n0\r\n\r\n", "hello");
  OK("5\t;x\r\nhello\r\n0\r\n\r\n", "hello");
  OK("3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nY:\r\nZ: a b \r\n\r\n", "abc");
  OK("0\r\nServer-Timing: total;dur=12\r\n\r\n", "");
}

static void test_message_end(void **state) {
  (void)state;
  /* the next message is not consumed */
  const char in[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
  check_ok(in, sizeof in - 1, "abc", 3, strlen("3\r\nabc\r\n0\r\n\r\n"));

  /* after completion: 1 with nothing consumed; after an error: always IG_EPARSE */
  ig_chunked_decoder_t d;
  size_t used, dlen;
  const char *data;
  ig_chunked_init(&d);
  assert_int_equal(ig_chunked_next(&d, "", 0, &used, &data, &dlen), IG_EAGAIN);
  assert_int_equal(used, 0);
  assert_int_equal(ig_chunked_next(&d, "0\r\n\r\n", 5, &used, &data, &dlen), 1);
  assert_int_equal(used, 5);
  assert_int_equal(ig_chunked_next(&d, "xyz", 3, &used, &data, &dlen), 1);
  assert_int_equal(used, 0);
  assert_int_equal(dlen, 0);
  ig_chunked_init(&d);
  assert_int_equal(ig_chunked_next(&d, "zz", 2, &used, &data, &dlen), IG_EPARSE);
  assert_int_equal(ig_chunked_next(&d, "0\r\n\r\n", 5, &used, &data, &dlen), IG_EPARSE);

  /* one data run per call: framing first, then data up to the chunk end */
  ig_chunked_init(&d);
  const char two[] = "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n";
  assert_int_equal(ig_chunked_next(&d, two, sizeof two - 1, &used, &data, &dlen), IG_OK);
  assert_int_equal(used, 5);
  assert_int_equal(dlen, 2);
  assert_memory_equal(data, "ab", 2);
  /* framing only, input ends at the data */
  ig_chunked_init(&d);
  assert_int_equal(ig_chunked_next(&d, two, 3, &used, &data, &dlen), IG_OK);
  assert_int_equal(used, 3);
  assert_int_equal(dlen, 0);
  assert_int_equal(ig_chunked_next(&d, two + 3, 0, &used, &data, &dlen), IG_EAGAIN);
}

static void check_bad(const char *in, size_t len) {
  size_t steps[] = {0, 1, 5};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    result_t r = decode(in, len, steps[i]);
    if (r.rc != IG_EPARSE) fail_msg("'%.40s' step %zu: rc %d", in, steps[i], r.rc);
    ig_buf_free(&r.out);
  }
}

#define BAD(in) check_bad(in, sizeof(in) - 1)

static void test_errors(void **state) {
  (void)state;
  BAD("g\r\n");
  BAD("\r\n");
  BAD("-5\r\nhello\r\n0\r\n\r\n");
  BAD("+5\r\nhello\r\n0\r\n\r\n");
  BAD("0x5\r\nhello\r\n0\r\n\r\n");
  BAD(" 5\r\nhello\r\n0\r\n\r\n");
  BAD("5 \r\nhello\r\n0\r\n\r\n");
  BAD("5 x\r\nhello\r\n0\r\n\r\n");
  BAD("5\nhello\r\n0\r\n\r\n");
  BAD("5\rhello\r\n0\r\n\r\n");
  BAD("5\r\nhelloX\r\n0\r\n\r\n");
  BAD("5\r\nhello\n0\r\n\r\n");
  BAD("5\r\nhello\r\r0\r\n\r\n");
  BAD("5;a\nb\r\nhello\r\n0\r\n\r\n");
  BAD("5;a\x01\r\nhello\r\n0\r\n\r\n");
  BAD("5;a\rb\r\nhello\r\n0\r\n\r\n");
  BAD("0\r\n\n");
  BAD("0\r\n\r\r");
  BAD("0\r\n folded: x\r\n\r\n");
  BAD("0\r\nNoColon\r\n\r\n");
  BAD("0\r\n: empty\r\n\r\n");
  BAD("0\r\nX : 1\r\n\r\n");
  BAD("0\r\nX: 1\n\r\n");
  BAD("0\r\nX: a\x7f\r\n\r\n");
  /* size overflow: sizes must fit in int64 */
  BAD("8000000000000000\r\n");
  BAD("ffffffffffffffff\r\n");
  BAD("10000000000000000\r\n");
  BAD("00000000000000000000ffffffffffffffffff\r\n");
}

static void test_size_edges(void **state) {
  (void)state;
  /* the largest size is accepted; the body then simply runs out */
  result_t r = decode("7fffffffffffffff\r\nabc", 21, 0);
  assert_int_equal(r.rc, IG_EAGAIN);
  assert_int_equal(r.consumed, 21);
  assert_int_equal(r.out.len, 3);
  ig_buf_free(&r.out);

  /* size line (with extensions) up to 4 KiB is fine, longer is not */
  size_t n = 4096 + 64;
  char *in = malloc(n);
  assert_non_null(in);
  memset(in, 'x', n);
  memcpy(in, "1;", 2);
  memcpy(in + 4096, "\r\na\r\n0\r\n\r\n", 10);
  check_ok(in, 4106, "a", 1, 4106);
  memset(in, 'x', n);
  memcpy(in, "1;", 2);
  memcpy(in + 4097, "\r\na\r\n0\r\n\r\n", 10);
  check_bad(in, 4107);
  /* never-ending extension is cut off */
  memset(in, 'x', n);
  memcpy(in, "1;", 2);
  check_bad(in, n);
  /* trailer line over 4 KiB */
  memset(in, 'x', n);
  memcpy(in, "0\r\nX:", 5);
  check_bad(in, n);
  free(in);

  /* endless small trailer lines are bounded too (64 KiB in all) */
  size_t tn = 3 + 8 * 20000 + 2;
  char *t = malloc(tn);
  assert_non_null(t);
  memcpy(t, "0\r\n", 3);
  for (size_t i = 0; i < 20000; i++)
    memcpy(t + 3 + 8 * i, "X-A: 1\r\n", 8);
  memcpy(t + tn - 2, "\r\n", 2);
  check_bad(t, tn);
  /* while 100 of them are fine */
  memcpy(t + 3 + 8 * 100, "\r\n", 2);
  check_ok(t, 3 + 8 * 100 + 2, "", 0, 3 + 8 * 100 + 2);
  free(t);
}

/* Splits every valid message at every offset into two pieces, and also feeds it byte by byte. */
static void test_split_every_offset(void **state) {
  (void)state;
  static const char *msgs[] = {
      "5\r\nhello\r\n0\r\n\r\n",
      "1a;ext=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n3\r\n123\r\n0;e\r\nT: v\r\nU:w\r\n\r\n",
      "0\r\n\r\n",
  };
  static const char *bodies[] = {"hello", "abcdefghijklmnopqrstuvwxyz123", ""};
  for (size_t m = 0; m < 3; m++) {
    size_t n = strlen(msgs[m]);
    for (size_t k = 0; k <= n; k++) {
      ig_chunked_decoder_t d;
      ig_buf_t out;
      ig_chunked_init(&d);
      ig_buf_init(&out);
      /* first piece: [0, k), then the rest appended to what was not consumed */
      size_t pos = 0, end = k;
      int rc = IG_EAGAIN, rounds = 0;
      while (rc != 1) {
        assert_true(++rounds < 1000);
        size_t used, dlen;
        const char *data;
        rc = ig_chunked_next(&d, msgs[m] + pos, end - pos, &used, &data, &dlen);
        assert_true(rc == IG_OK || rc == 1 || rc == IG_EAGAIN);
        ig_buf_append(&out, data ? data : "", dlen);
        pos += used;
        if (rc == IG_EAGAIN) {
          assert_int_equal(end, k); /* only the first piece may run out */
          end = n;
        }
      }
      assert_int_equal(pos, n);
      assert_int_equal(out.len, strlen(bodies[m]));
      assert_memory_equal(out.data ? out.data : "", bodies[m], out.len);
      ig_buf_free(&out);
    }
    check_ok(msgs[m], n, bodies[m], strlen(bodies[m]), n);
  }
}

static void test_encoder_round_trip(void **state) {
  (void)state;
  ig_rng_t rng;
  ig_rng_seed(&rng, 42);
  for (int iter = 0; iter < 50; iter++) {
    size_t body_len = ig_rng_next(&rng) % 5000;
    char *body = malloc(body_len + 1);
    assert_non_null(body);
    for (size_t i = 0; i < body_len; i++)
      body[i] = (char)(ig_rng_next(&rng) & 0xff);
    ig_buf_t enc;
    ig_buf_init(&enc);
    for (size_t off = 0; off < body_len;) {
      size_t n = 1 + ig_rng_next(&rng) % 700;
      if (n > body_len - off) n = body_len - off;
      ig_chunked_begin_chunk(&enc, n);
      ig_buf_append(&enc, body + off, n);
      ig_chunked_end_chunk(&enc);
      off += n;
    }
    ig_chunked_last(&enc);
    size_t steps[] = {0, 1, 13};
    for (size_t s = 0; s < 3; s++) {
      result_t r = decode(enc.data, enc.len, steps[s]);
      assert_int_equal(r.rc, 1);
      assert_int_equal(r.consumed, enc.len);
      assert_int_equal(r.out.len, body_len);
      if (body_len) assert_memory_equal(r.out.data, body, body_len);
      ig_buf_free(&r.out);
    }
    ig_buf_free(&enc);
    free(body);
  }
  ig_buf_t b;
  ig_buf_init(&b);
  ig_chunked_begin_chunk(&b, 255);
  ig_chunked_end_chunk(&b);
  ig_chunked_last(&b);
  assert_string_equal(b.data, "ff\r\n\r\n0\r\n\r\n");
  ig_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_extensions_and_trailers),
      cmocka_unit_test(test_message_end),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_size_edges),
      cmocka_unit_test(test_split_every_offset),
      cmocka_unit_test(test_encoder_round_trip),
  };
  return cmocka_run_group_tests_name("http_chunked", tests, NULL, NULL);
}

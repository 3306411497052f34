/* Unit tests for the Kubernetes watch stream: line splitter, event parser, API URL parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/k8s.h"

/* Splits a stream fed in pieces of `step` bytes into lines, as the watcher does with its buffer;
 * returns the lines joined by '|'. */
static char *split(const char *in, size_t step) {
  ig_buf_t buf, out;
  ig_buf_init(&buf);
  ig_buf_init(&out);
  size_t len = strlen(in), fed = 0;
  while (fed < len) {
    size_t n = len - fed < step ? len - fed : step;
    ig_buf_append(&buf, in + fed, n);
    fed += n;
    size_t off = 0;
    for (int guard = 0; guard < 1000; guard++) {
      size_t ll = 0;
      long used = ig_k8s_line_next(buf.data + off, buf.len - off, &ll);
      if (used == IG_EAGAIN) break;
      assert_true(used > 0);
      if (out.len) ig_buf_puts(&out, "|");
      ig_buf_append(&out, buf.data + off, ll);
      off += (size_t)used;
    }
    ig_buf_consume(&buf, off);
  }
  ig_buf_free(&buf);
  char *r = ig_strdup(out.data ? out.data : "");
  ig_buf_free(&out);
  return r;
}

static void test_lines(void **state) {
  (void)state;
  const char *in = "{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}\npartial";
  for (size_t step = 1; step <= strlen(in); step++) {
    char *r = split(in, step);
    assert_string_equal(r, "{\"a\":1}|{\"b\":2}||{\"c\":3}");
    free(r);
  }
  size_t ll = 99;
  assert_int_equal(ig_k8s_line_next("", 0, &ll), IG_EAGAIN);
  assert_int_equal(ig_k8s_line_next("abc", 3, &ll), IG_EAGAIN);
  assert_int_equal(ig_k8s_line_next("\n", 1, &ll), 1);
  assert_int_equal(ll, 0);
  /* a line that never ends is refused once it passes the limit */
  size_t big = IG_K8S_MAX_LINE + 1;
  char *p = malloc(big);
  assert_non_null(p);
  memset(p, 'x', big);
  assert_int_equal(ig_k8s_line_next(p, big, &ll), IG_ETOOBIG);
  free(p);
}

static void test_events(void **state) {
  (void)state;
  ig_k8s_event_t ev;
  const char *a = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p1\",\"namespace\":"
                  "\"ns\",\"resourceVersion\":\"42\"}}}";
  assert_int_equal(ig_k8s_event_parse(a, strlen(a), &ev), 0);
  assert_int_equal(ev.type, IG_K8S_ADDED);
  assert_string_equal(ev.name, "p1");
  assert_string_equal(ev.ns, "ns");
  assert_string_equal(ev.rv, "42");
  assert_non_null(ev.object);
  ig_k8s_event_clear(&ev);

  const char *m = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"x\"}}}";
  assert_int_equal(ig_k8s_event_parse(m, strlen(m), &ev), 0);
  assert_int_equal(ev.type, IG_K8S_MODIFIED);
  assert_null(ev.ns);
  assert_null(ev.rv);
  ig_k8s_event_clear(&ev);

  const char *d = "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"7\"}}}";
  assert_int_equal(ig_k8s_event_parse(d, strlen(d), &ev), 0);
  assert_int_equal(ev.type, IG_K8S_DELETED);
  ig_k8s_event_clear(&ev);

  const char *b = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"99\"}}}";
  assert_int_equal(ig_k8s_event_parse(b, strlen(b), &ev), 0);
  assert_int_equal(ev.type, IG_K8S_BOOKMARK);
  assert_string_equal(ev.rv, "99");
  assert_null(ev.name);
  ig_k8s_event_clear(&ev);

  const char *e = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"Expired\","
                  "\"code\":410}}";
  assert_int_equal(ig_k8s_event_parse(e, strlen(e), &ev), 0);
  assert_int_equal(ev.type, IG_K8S_ERROR);
  assert_int_equal(ev.code, 410);
  ig_k8s_event_clear(&ev);

  static const char *const bad[] = {
      "",
      "not json",
      "[]",
      "{\"type\":\"ADDED\"}",
      "{\"type\":\"ADDED\",\"object\":[]}",
      "{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}",
      "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"\"}}}",
      "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":5}}}",
      "{\"type\":\"SYNC\",\"object\":{\"metadata\":{\"name\":\"a\"}}}",
      "{\"type\":7,\"object\":{\"metadata\":{\"name\":\"a\"}}}",
      "{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}",
      "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&ev, 0x5a, sizeof ev);
    assert_int_equal(ig_k8s_event_parse(bad[i], strlen(bad[i]), &ev), IG_EPARSE);
    assert_null(ev.object);
  }
  /* the length is honoured: the same bytes with trailing garbage outside len parse */
  const char *t = "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"q\"}}}GARBAGE";
  assert_int_equal(ig_k8s_event_parse(t, strlen(t) - 7, &ev), 0);
  ig_k8s_event_clear(&ev);
}

static void test_url(void **state) {
  (void)state;
  char host[64];
  int tls = -1, port = 0;
  assert_int_equal(ig_k8s_url_parse("http://127.0.0.1:8001", &tls, host, sizeof host, &port), 0);
  assert_int_equal(tls, 0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 8001);
  assert_int_equal(ig_k8s_url_parse("https://kubernetes.default.svc/", &tls, host, sizeof host, &port), 0);
  assert_int_equal(tls, 1);
  assert_string_equal(host, "kubernetes.default.svc");
  assert_int_equal(port, 443);
  assert_int_equal(ig_k8s_url_parse("https://[fd00::1]:6443", &tls, host, sizeof host, &port), 0);
  assert_string_equal(host, "fd00::1");
  assert_int_equal(port, 6443);
  static const char *const bad[] = {"",           "ftp://x",          "http://",          "http://:80",
                                    "http://h:0", "http://h:65536",   "http://h:8x",      "http://h:80/api",
                                    "https://[::1", "https://[::1]x", "http://h:1234567"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(ig_k8s_url_parse(bad[i], &tls, host, sizeof host, &port), IG_EINVAL);
  char small[4];
  assert_int_equal(ig_k8s_url_parse("http://longhost:1", &tls, small, sizeof small, &port), IG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lines),
      cmocka_unit_test(test_events),
      cmocka_unit_test(test_url),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* API keys (src/proxy/auth.c): parsing a keys file, and the bearer check over SHA-256 digests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy.h"

static int check(const auth_keys_t *k, const char *v) {
  return auth_check(k, v, v ? strlen(v) : 0);
}

static void test_parse(void **state) {
  (void)state;
  static const char text[] = "# comment\nsk-one\r\n  sk-two  \n\n\t# indented comment\nsk-#three\nlast";
  auth_keys_t k;
  assert_int_equal(auth_keys_parse(text, sizeof text - 1, &k), 4);
  assert_true(k.active);
  assert_true(check(&k, "Bearer sk-one"));
  assert_true(check(&k, "Bearer sk-two"));
  assert_true(check(&k, "Bearer sk-#three"));
  assert_true(check(&k, "Bearer last"));
  assert_false(check(&k, "Bearer # comment"));
  assert_false(check(&k, "Bearer comment"));
  auth_keys_free(&k);
  assert_int_equal(auth_keys_parse("", 0, &k), 0);
  assert_false(check(&k, "Bearer x"));
  auth_keys_free(&k);
}

static void test_check(void **state) {
  (void)state;
  static const char text[] = "sk-alpha\nsk-beta\n";
  auth_keys_t k;
  auth_keys_parse(text, sizeof text - 1, &k);
  assert_true(check(&k, "Bearer sk-alpha"));
  assert_true(check(&k, "bearer sk-beta"));
  assert_true(check(&k, "BEARER \t sk-beta \t"));
  assert_false(check(&k, NULL));
  assert_false(check(&k, ""));
  assert_false(check(&k, "Bearer"));
  assert_false(check(&k, "Bearer "));
  assert_false(check(&k, "Bearersk-alpha"));
  assert_false(check(&k, "Basic sk-alpha"));
  assert_false(check(&k, "Bearer sk-alph"));
  assert_false(check(&k, "Bearer sk-alphaa"));
  assert_false(check(&k, "Bearer sk-alpha sk-beta"));
  /* embedded NUL: the token is compared by length, not as a C string */
  assert_false(auth_check(&k, "Bearer sk-alpha\0x", 17));
  auth_keys_free(&k);
  /* a route without keys admits everyone */
  auth_keys_t none;
  memset(&none, 0, sizeof none);
  assert_true(check(&none, NULL));
}

static void test_load(void **state) {
  (void)state;
  auth_keys_t k;
  assert_int_equal(auth_keys_load("/nonexistent/keys.txt", &k), IG_EIO);
  assert_true(k.active); /* fails closed */
  assert_false(check(&k, "Bearer x"));
  auth_keys_free(&k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_check),
      cmocka_unit_test(test_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

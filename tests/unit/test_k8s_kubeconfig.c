/* Unit tests for the kubeconfig parser and its base64 decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/core.h"
#include "infergate/k8s.h"

static const char full[] =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: dev\n"
    "clusters:\n"
    "- name: prod\n"
    "  cluster:\n"
    "    server: https://prod.example.com:6443\n"
    "- name: devc\n"
    "  cluster:\n"
    "    server: https://10.0.0.1:6443/\n"
    "    certificate-authority-data: aGVsbG8gQ0E=\n"
    "    tls-server-name: kubernetes\n"
    "contexts:\n"
    "- name: prodctx\n"
    "  context: {cluster: prod, user: admin}\n"
    "- name: dev\n"
    "  context:\n"
    "    cluster: devc\n"
    "    user: dev-user\n"
    "    namespace: team-a\n"
    "users:\n"
    "- name: admin\n"
    "  user:\n"
    "    client-certificate: certs/admin.crt\n"
    "    client-key: /abs/admin.key\n"
    "    insecure: ignored\n"
    "- name: dev-user\n"
    "  user:\n"
    "    token: abc.def\n"
    "    tokenFile: tok\n";

static void test_current_context(void **state) {
  (void)state;
  ig_k8s_kubeconfig_t kc;
  char err[256];
  assert_int_equal(ig_k8s_kubeconfig_parse(full, strlen(full), "/etc/kube", NULL, &kc, err, sizeof err), 0);
  assert_string_equal(kc.context, "dev");
  assert_string_equal(kc.server, "https://10.0.0.1:6443"); /* trailing slash removed */
  assert_string_equal(kc.tls_server_name, "kubernetes");
  assert_int_equal(kc.ca_data_len, 8);
  assert_string_equal(kc.ca_data, "hello CA");
  assert_null(kc.ca_file);
  assert_string_equal(kc.token, "abc.def");
  assert_string_equal(kc.token_file, "/etc/kube/tok");
  assert_string_equal(kc.ns, "team-a");
  assert_int_equal(kc.insecure, 0);
  ig_k8s_kubeconfig_free(&kc);
}

static void test_named_context(void **state) {
  (void)state;
  ig_k8s_kubeconfig_t kc;
  char err[256];
  assert_int_equal(ig_k8s_kubeconfig_parse(full, strlen(full), "/home/u/.kube", "prodctx", &kc, err, sizeof err), 0);
  assert_string_equal(kc.server, "https://prod.example.com:6443");
  assert_string_equal(kc.cert_file, "/home/u/.kube/certs/admin.crt");
  assert_string_equal(kc.key_file, "/abs/admin.key");
  assert_null(kc.ns);
  assert_null(kc.token);
  ig_k8s_kubeconfig_free(&kc);
}

static void test_errors(void **state) {
  (void)state;
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"a: [", "YAML error"},
      {"- x\n", "not a kubeconfig"},
      {"clusters: []\n", "no current-context"},
      {"current-context: x\ncontexts: []\n", "context 'x' is not in contexts"},
      {"current-context: x\ncontexts: [{name: x, context: {user: u}}]\n", "names no cluster"},
      {"current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n", "cluster 'c'"},
      {"current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]\n",
       "has no server"},
      {"current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
       "clusters: [{name: c, cluster: {server: 'https://h', certificate-authority-data: '@@'}}]\n",
       "invalid base64"},
      {"current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
       "clusters: [{name: c, cluster: {server: 'https://h'}}]\n",
       "user 'u'"},
      {"current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
       "clusters: [{name: c, cluster: {server: 'https://h'}}]\nusers: [{name: u, user: {exec: {command: x}}}]\n",
       "not supported"},
      {"current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
       "clusters: [{name: c, cluster: {server: 'https://h'}}]\nusers: [{name: u, user: {client-key: k}}]\n",
       "needs its key"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ig_k8s_kubeconfig_t kc;
    char err[256];
    int rc = ig_k8s_kubeconfig_parse(cases[i].text, strlen(cases[i].text), NULL, NULL, &kc, err, sizeof err);
    if (rc != IG_EINVAL || !strstr(err, cases[i].want)) fail_msg("case %zu: rc %d err '%s'", i, rc, err);
    assert_null(kc.server);
  }
}

static void test_insecure_and_no_user(void **state) {
  (void)state;
  const char *t = "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
                  "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:8080', insecure-skip-tls-verify: true, "
                  "certificate-authority: ca.pem}}]\n";
  ig_k8s_kubeconfig_t kc;
  char err[256];
  assert_int_equal(ig_k8s_kubeconfig_parse(t, strlen(t), "", NULL, &kc, err, sizeof err), 0);
  assert_int_equal(kc.insecure, 1);
  assert_string_equal(kc.ca_file, "ca.pem");
  assert_null(kc.token);
  assert_null(kc.cert_file);
  ig_k8s_kubeconfig_free(&kc);
  assert_int_equal(ig_k8s_kubeconfig_load("/nonexistent/kubeconfig", NULL, &kc, err, sizeof err), IG_EINVAL);
  assert_non_null(strstr(err, "cannot open"));
}

static void test_base64(void **state) {
  (void)state;
  char *out;
  size_t n;
  assert_int_equal(ig_base64_decode("aGVsbG8=", strlen("aGVsbG8="), &out, &n), 0);
  assert_int_equal(n, 5);
  assert_string_equal(out, "hello");
  free(out);
  assert_int_equal(ig_base64_decode("aGVs\nbG8", strlen("aGVs\nbG8"), &out, &n), 0); /* no padding, a line break */
  assert_string_equal(out, "hello");
  free(out);
  assert_int_equal(ig_base64_decode("", strlen(""), &out, &n), 0);
  assert_int_equal(n, 0);
  free(out);
  assert_int_equal(ig_base64_decode("-_8=", strlen("-_8="), &out, &n), 0); /* URL-safe alphabet */
  assert_int_equal(n, 2);
  assert_int_equal((unsigned char)out[0], 0xfb);
  assert_int_equal((unsigned char)out[1], 0xff);
  free(out);
  static const char *const bad[] = {"a", "ab=c", "a!bc", "abcde", "ab==="};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(ig_base64_decode(bad[i], strlen(bad[i]), &out, &n), IG_EINVAL);
    assert_null(out);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_current_context), cmocka_unit_test(test_named_context), cmocka_unit_test(test_errors),
      cmocka_unit_test(test_insecure_and_no_user), cmocka_unit_test(test_base64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

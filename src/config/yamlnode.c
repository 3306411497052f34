/* Small YAML document helpers shared by the native config loader and the manifest loader. */
#include <string.h>

#include "config_internal.h"

int ig_yaml_is_null(const yaml_node_t *n) {
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *s = (const char *)n->data.scalar.value;
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

int ig_yaml_present(const yaml_node_t *n) {
  return n && !ig_yaml_is_null(n);
}

const char *ig_yaml_kind(const yaml_node_t *n) {
  if (ig_yaml_is_null(n)) return "null";
  switch (n->type) {
  case YAML_SCALAR_NODE:
    return "a scalar";
  case YAML_SEQUENCE_NODE:
    return "a list";
  case YAML_MAPPING_NODE:
    return "a mapping";
  default:
    return "nothing";
  }
}

size_t ig_yaml_seq_len(const yaml_node_t *n) {
  return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

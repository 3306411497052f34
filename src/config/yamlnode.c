/* Small YAML document helpers shared by the native config loader and the manifest loader. */
#include <stdarg.h>
#include <stdio.h>
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

/* Formats a problem and hands it to the caller's error sink. */
static void report(ig_yaml_err_fn err, void *ud, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(ig_yaml_err_fn err, void *ud, yaml_mark_t mark, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  err(ud, mark, msg);
}

void ig_yaml_syntax_error(const yaml_parser_t *p, const char *yaml, size_t len, ig_yaml_err_fn err, void *ud) {
  const char *problem = p->problem ? p->problem : "cannot parse the document";
  if (p->error == YAML_READER_ERROR) {
    /* reader errors (bad encoding, control bytes) carry a byte offset only: count lines and columns */
    yaml_mark_t m = {0, 0, 0};
    for (size_t i = 0; i < p->problem_offset && i < len; i++) {
      if (yaml[i] == '\n') {
        m.line++;
        m.column = 0;
      } else if (((unsigned char)yaml[i] & 0xc0) != 0x80) {
        m.column++;
      }
    }
    report(err, ud, m, "YAML: %s", problem);
    return;
  }
  if (p->context)
    report(err, ud, p->problem_mark, "YAML syntax error: %s (%s at line %d, column %d)", problem, p->context,
           (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
  else
    report(err, ud, p->problem_mark, "YAML syntax error: %s", problem);
}

int ig_yaml_prescan(const char *yaml, size_t len, int max_depth, int one_document, ig_yaml_err_fn err, void *ud) {
  yaml_parser_t p;
  yaml_event_t ev;
  int depth = 0, docs = 0, ok = 1, done = 0;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
  while (!done) {
    if (!yaml_parser_parse(&p, &ev)) {
      ig_yaml_syntax_error(&p, yaml, len, err, ud);
      ok = 0;
      break;
    }
    switch (ev.type) {
    case YAML_DOCUMENT_START_EVENT:
      if (one_document && ++docs == 2) {
        report(err, ud, ev.start_mark, "only one YAML document is allowed in a config file");
        ok = 0;
      }
      break;
    case YAML_ALIAS_EVENT:
      report(err, ud, ev.start_mark, "YAML aliases (*%.64s) are not supported; write the value out",
             (const char *)ev.data.alias.anchor);
      ok = 0;
      break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
      if (++depth > max_depth) {
        report(err, ud, ev.start_mark, "nesting is too deep (more than %d levels)", max_depth);
        ok = 0;
        done = 1;
      }
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      depth--;
      break;
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return ok ? 0 : -1;
}

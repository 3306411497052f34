/* The quick-start configuration (serve and epp without a file), written as native YAML so that it goes
 * through exactly the same loader and validation as a file. */
#include <stddef.h>
#include <string.h>

#include "infergate/config.h"

/* Appends s[0..n) as a double-quoted YAML scalar. */
static void yaml_quote(ig_buf_t *b, const char *s, size_t n) {
  ig_buf_puts(b, "\"");
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\') ig_buf_puts(b, "\\");
    ig_buf_append(b, &s[i], 1);
  }
  ig_buf_puts(b, "\"");
}

/* Appends a YAML flow list of the non-empty comma-separated items of csv. */
static void yaml_list(ig_buf_t *b, const char *csv) {
  ig_buf_puts(b, "[");
  const char *p = csv;
  int first = 1;
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n) {
      if (!first) ig_buf_puts(b, ", ");
      yaml_quote(b, p, n);
      first = 0;
    }
    p += n;
    if (*p == ',') p++;
  }
  ig_buf_puts(b, "]");
}

void ig_config_quick_yaml(ig_buf_t *y, const ig_quick_cfg_t *q) {
  ig_buf_puts(y, "listeners:\n  - name: main\n    address: ");
  /* the loader wants a listener; the epp opens none, so it passes NULL and gets a placeholder */
  yaml_quote(y, q->listen ? q->listen : "127.0.0.1:1", strlen(q->listen ? q->listen : "127.0.0.1:1"));
  ig_buf_puts(y, "\n");
  if (q->admin) {
    ig_buf_puts(y, "admin:\n  address: ");
    yaml_quote(y, q->admin, strlen(q->admin));
    ig_buf_puts(y, "\n");
  }
  if (q->pool) {
    ig_buf_puts(y, "pools:\n  - name: default\n    endpoints: ");
    yaml_list(y, q->pool);
    static const struct {
      const char *key;
      size_t off;
    } opt[] = {{"engine", offsetof(ig_quick_cfg_t, engine)},
               {"scheduler", offsetof(ig_quick_cfg_t, profile)},
               {"discovery_interval", offsetof(ig_quick_cfg_t, discovery_interval)},
               {"scrape_interval", offsetof(ig_quick_cfg_t, scrape_interval)}};
    for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
      const char *v = *(const char *const *)((const char *)q + opt[i].off);
      if (!v) continue;
      ig_buf_printf(y, "\n    %s: ", opt[i].key);
      yaml_quote(y, v, strlen(v));
    }
    if (q->batch_slots) {
      ig_buf_puts(y, "\n    scheduling:\n      batch_slots: ");
      yaml_quote(y, q->batch_slots, strlen(q->batch_slots));
    }
  } else {
    ig_buf_puts(y, "backends:\n  - name: default\n    endpoints: ");
    yaml_list(y, q->backend ? q->backend : "");
    if (q->policy) {
      ig_buf_puts(y, "\n    policy: ");
      yaml_quote(y, q->policy, strlen(q->policy));
    }
  }
  ig_buf_puts(y, "\n");
  if (q->n_models) {
    ig_buf_puts(y, "models:\n");
    for (size_t i = 0; i < q->n_models; i++) {
      ig_buf_puts(y, "  - name: ");
      yaml_quote(y, q->models[i], strlen(q->models[i]));
      ig_buf_puts(y, "\n    pool: default\n");
    }
  }
  if (q->default_model) {
    ig_buf_puts(y, "default_model: ");
    yaml_quote(y, q->default_model, strlen(q->default_model));
    ig_buf_puts(y, "\n");
  }
  if (q->listen) ig_buf_puts(y, "routes:\n  - name: default\n    backend: default\n");
}

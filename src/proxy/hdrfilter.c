/* HTTPRoute header filters (RequestHeaderModifier / ResponseHeaderModifier) applied while the proxy
 * copies a head: the copy skips the headers a filter drops, then the filter's own lines follow. A
 * request without filters pays one NULL test per header. */
#include <string.h>
#include <strings.h>

#include "proxy.h"

int hdr_filter_drops(const ig_header_filter_cfg_t *f, const char *name, size_t len) {
  for (size_t i = 0; i < f->n_remove; i++)
    if (strlen(f->remove[i]) == len && !strncasecmp(f->remove[i], name, len)) return 1;
  for (size_t i = 0; i < f->n_set; i++)
    if (strlen(f->set[i].name) == len && !strncasecmp(f->set[i].name, name, len)) return 1;
  return 0;
}

int hdr_filter_sets(const ig_header_filter_cfg_t *f, const char *name) {
  for (size_t i = 0; i < f->n_set; i++)
    if (!strcasecmp(f->set[i].name, name)) return 1;
  return 0;
}

static void put_line(ig_buf_t *b, const ig_header_value_cfg_t *h) {
  ig_buf_puts(b, h->name);
  ig_buf_append(b, ": ", 2);
  ig_buf_puts(b, h->value);
  ig_buf_append(b, "\r\n", 2);
}

void hdr_filter_append(const ig_header_filter_cfg_t *f, ig_buf_t *b) {
  for (size_t i = 0; i < f->n_set; i++)
    put_line(b, &f->set[i]);
  /* after every copied line: an added header follows the existing ones of its name */
  for (size_t i = 0; i < f->n_add; i++)
    put_line(b, &f->add[i]);
}

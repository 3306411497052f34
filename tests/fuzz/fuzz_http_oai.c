/* libFuzzer driver for the OpenAI body scanner: scan arbitrary input; when it is accepted, the prompt
 * text must extract, and a rewrite of the model to "x\"y" must re-scan with exactly that model and
 * the same other fields; the prompt text cut at a limit must be exactly the start of the full text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/oai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* copy so that reads past the end are caught by ASan */
  char *body = malloc(size ? size : 1);
  memcpy(body, data, size);
  ig_oai_req_t r, r2;
  int rc = ig_oai_scan(body, size, &r);
  if (rc != 0 && rc != IG_EPARSE && rc != IG_ETOOBIG) abort();
  if (rc == 0) {
    ig_buf_t t;
    ig_buf_init(&t);
    if (ig_oai_prompt_text(body, size, &r, &t) != 0) abort();
    if (t.len > size) abort();
    /* a limit derived from the input: 0, inside the text, or past its end */
    size_t max = size ? (size_t)data[0] * 3 % (t.len + 2) : 0;
    ig_buf_t cut;
    ig_buf_init(&cut);
    if (ig_oai_prompt_text_max(body, size, &r, max, &cut) != 0) abort();
    size_t want = max < t.len ? max : t.len;
    if (cut.len != want || (want && memcmp(cut.data, t.data, want) != 0)) abort();
    ig_buf_free(&cut);
    ig_buf_free(&t);
    if (r.has_model) {
      ig_buf_t out;
      ig_buf_init(&out);
      if (ig_oai_rewrite_model(body, size, &r, "x\"y", &out) != 0) abort();
      if (ig_oai_scan(out.data, out.len, &r2) != 0) abort();
      if (!r2.has_model || r2.model_len != 3 || memcmp(r2.model, "x\"y", 4) != 0) abort();
      if (r2.stream != r.stream || r2.include_usage != r.include_usage || r2.max_tokens != r.max_tokens ||
          r2.prompt_kind != r.prompt_kind || r2.prompt_len != r.prompt_len)
        abort();
      ig_buf_free(&out);
    }
  }
  free(body);
  return 0;
}

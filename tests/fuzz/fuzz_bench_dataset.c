/* libFuzzer driver: the ShareGPT dataset parser (infergate bench --dataset) on arbitrary files.
 * Checks its invariants: the counts add up, the cap holds, every kept entry has a prompt and at
 * least one answer token, and a failure leaves nothing allocated behind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/bench/bench.h"
#include "infergate/oai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t cap = data[0] % 4; /* 0 = no cap */
  data++;
  size--;
  ig_bench_dataset_t d;
  char err[256];
  int rc = ig_bench_dataset_parse(&d, "fuzz", (const char *)data, size, cap, err, sizeof err);
  if (rc < 0) {
    if (rc != IG_EPARSE || d.n || d.v || strncmp(err, "fuzz", 4)) abort();
    return 0;
  }
  if (!d.n || d.n > d.seen || d.seen != d.n + d.skipped || (cap && d.n > cap) || (d.truncated && d.n != cap))
    abort();
  for (size_t i = 0; i < d.n; i++) {
    const ig_bench_ds_entry_t *e = &d.v[i];
    if (!e->prompt || !e->prompt_len || e->output_tokens < 1 ||
        e->prompt_tokens != ig_oai_count_tokens(e->prompt, e->prompt_len) || e->prompt[e->prompt_len])
      abort();
  }
  ig_bench_dataset_free(&d);
  return 0;
}

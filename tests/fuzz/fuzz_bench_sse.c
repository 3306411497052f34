/* libFuzzer driver: the load generator's SSE reader must give the same counts however the stream
 * is cut into reads. The first byte of the input picks the cut size. */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/bench/bench.h"

static void feed(ig_bench_sse_t *s, const uint8_t *p, size_t n, size_t step) {
  for (size_t off = 0; off < n; off += step) {
    size_t k = n - off < step ? n - off : step;
    ig_bench_sse_feed(s, (const char *)p + off, k, off);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = (size_t)(data[0] % 17) + 1;
  data++;
  size--;
  ig_bench_sse_t whole, cut;
  ig_bench_sse_init(&whole);
  ig_bench_sse_init(&cut);
  feed(&whole, data, size, size ? size : 1);
  feed(&cut, data, size, step);
  if (whole.events != cut.events || whole.token_events != cut.token_events || whole.done != cut.done ||
      whole.usage_completion != cut.usage_completion || whole.overflow != cut.overflow)
    abort();
  ig_bench_sse_free(&whole);
  ig_bench_sse_free(&cut);
  return 0;
}

/* libFuzzer driver: gRPC-framed ProcessingRequest messages (arbitrary bytes) through one ext_proc
 * stream of the endpoint picker. It must never crash or leak, and every pick it takes is given back
 * when the stream ends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/epp/epp.h"

static const char yaml[] = "listeners: [{name: l, address: \"127.0.0.1:1\"}]\n"
                           "limits: {max_body_bytes: 65536}\n"
                           "pools:\n"
                           "  - name: p\n"
                           "    endpoints: [\"10.0.0.1:8000\", \"10.0.0.2:8000\"]\n"
                           "models:\n"
                           "  - {name: m, pool: p}\n"
                           "  - {name: chat, pool: p, targets: [{name: lora-a, weight: 1}]}\n"
                           "  - {name: batch, pool: p, criticality: Sheddable}\n";

static epp_t E;

static void setup_once(void) {
  static int done;
  if (done) return;
  ig_config_t *cfg = NULL;
  if (ig_config_load_string("fuzz.yaml", yaml, sizeof yaml - 1, &cfg, NULL) != 0) abort();
  epp_opts_t o = {.default_mode = EPP_MODE_FULL_DUPLEX, .shed_inflight = 4, .seed = 1};
  if (epp_init(&E, cfg, "p", &o) != 0) abort();
  ig_log_set_level(IG_LOG_ERROR);
  done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup_once();
  epp_stream_t s;
  epp_stream_init(&s);
  ig_buf_t out;
  ig_buf_init(&out);
  size_t off = 0;
  while (off < size) {
    size_t mlen = 0;
    int rc = epp_grpc_next(data + off, size - off, 1 << 20, &mlen);
    if (rc != 1) break; /* need more, or a bad frame: the server would end the call here */
    if (epp_stream_recv(&E, &s, data + off + 5, mlen, &out) != 0) break;
    off += 5 + mlen;
    ig_buf_reset(&out);
  }
  epp_stream_end(&E, &s);
  ig_buf_free(&out);
  for (size_t i = 0; i < E.n_eps; i++)
    if (E.eps[i].inflight != 0) abort();
  return 0;
}

/* libFuzzer driver for the scheduler: the input is a program of operations on a flow-control queue
 * (push, pop, expire, cancel) checked against a simple model, and of picks over a small pool whose
 * metrics, LoRA state and prompts come from the input, under every profile. Pushes and picks use
 * criticalities or integer priorities. Invariants: queue counts match the model, pops take from the
 * highest band, bands are sorted and add up, picks return distinct in-range indexes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/sched.h"

#define CHECK(x)                                                                                             \
  do {                                                                                                       \
    if (!(x)) abort();                                                                                       \
  } while (0)

#define NPODS 12
#define QCAP 8

typedef struct {
  const uint8_t *p;
  size_t n;
} in_t;

static unsigned byte(in_t *in) {
  if (!in->n) return 0;
  in->n--;
  return *in->p++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *profiles[] = {"default", "gie", "round-robin", "random", "least-request"};
  static const char *names[] = {"a", "b", "c", ""};
  in_t in = {data, size};
  ig_sched_t *s = ig_sched_new(profiles[byte(&in) % 5], byte(&in));
  ig_sched_queue_t *q = ig_sched_queue_new(QCAP);
  ig_sched_pod_t pods[NPODS];
  ig_sched_lora_t lora[NPODS];
  memset(pods, 0, sizeof pods);
  memset(lora, 0, sizeof lora);
  for (int i = 0; i < NPODS; i++) pods[i].prefix = ig_sched_prefix_new(1 + byte(&in));
  ig_sched_qnode_t *nodes[64] = {0};
  int slots[64];
  size_t len = 0;
  uint64_t now = 0;
  while (in.n) {
    unsigned op = byte(&in) % 6, a = byte(&in), b = byte(&in);
    now += a % 4;
    if (op == 0) { /* push */
      unsigned id = b % 64;
      if (nodes[id]) continue;
      void *ev = NULL;
      ig_sched_qnode_t *node;
      int rc = a & 0x80 ? ig_sched_queue_push_prio(q, &slots[id], (int)((a >> 2) % 11) - 5, names[b % 4],
                                                   strlen(names[b % 4]), now, a % 16, &node, &ev)
                        : ig_sched_queue_push(q, &slots[id], (ig_sched_crit_t)(a % 3), names[b % 4],
                                              strlen(names[b % 4]), now, a % 16, &node, &ev);
      CHECK(rc == 0 || rc == IG_EFULL);
      if (rc == 0) {
        nodes[id] = node;
        len++;
      }
      if (ev) {
        nodes[(int *)ev - slots] = NULL;
        len--;
      }
    } else if (op == 1) { /* pop */
      void *d;
      ig_sched_crit_t c = IG_SCHED_CRIT_STANDARD;
      int top = 0, p = 0, had = ig_sched_queue_top_priority(q, &top) == 0;
      size_t top_len = had ? ig_sched_queue_prio_len(q, top) : 0;
      int rc = a & 1 ? ig_sched_queue_pop_prio(q, now, &d, &p) : ig_sched_queue_pop(q, now, &d, &c);
      if (a & 1) c = ig_sched_priority_crit(p);
      CHECK((rc == IG_ENOENT) == !had);
      if (rc == IG_ENOENT) {
        CHECK(len == 0);
      } else {
        CHECK(d && nodes[(int *)d - slots]);
        nodes[(int *)d - slots] = NULL;
        len--;
        for (int band = 0; band < (int)c; band++) CHECK(ig_sched_queue_band_len(q, (ig_sched_crit_t)band) == 0);
        CHECK(ig_sched_queue_prio_len(q, top) == top_len - 1); /* from the highest band */
      }
    } else if (op == 2) { /* expire / cancel */
      void *d;
      if (a & 1) {
        while (ig_sched_queue_expire(q, now, &d) == 0) {
          nodes[(int *)d - slots] = NULL;
          len--;
        }
      } else if (nodes[b % 64]) {
        CHECK(ig_sched_queue_cancel(q, nodes[b % 64]) == &slots[b % 64]);
        nodes[b % 64] = NULL;
        len--;
      }
    } else if (op == 3) { /* a scrape of one pod */
      ig_sched_pod_t *p = &pods[a % NPODS];
      p->waiting = (double)(b % 16) - 1;
      p->running = b / 16;
      p->kv_usage = (double)byte(&in) / 200.0;
      p->has_metrics = b != 0;
      p->metrics_age_ms = byte(&in) * 4u;
      p->pending = 0;
      p->inflight = a / NPODS;
      if (b & 1) {
        ig_sched_lora_t *l = &lora[a % NPODS];
        l->max_lora = b % 5;
        l->n_running_loras = (int)(byte(&in) % 20) - 2;
        l->n_waiting_loras = (int)(byte(&in) % 3);
        strcpy(l->running_loras[0], names[b % 4]);
        p->lora = l;
      } else {
        p->lora = NULL;
      }
    } else { /* pick */
      size_t sub[4], order[NPODS + 2], k = 1 + a % (NPODS + 2);
      const char *prompt = (const char *)in.p;
      size_t plen = in.n < (size_t)b * 4 ? in.n : (size_t)b * 4;
      ig_sched_request_t r = {.model = names[a % 4], .crit = (ig_sched_crit_t)(b % 3), .prompt = prompt,
                              .prompt_len = plen, .priority = (int)(a % 7) - 3, .has_priority = (b & 0x40) != 0};
      if (op == 5) {
        for (int i = 0; i < 4; i++) sub[i] = byte(&in) % (NPODS + 3);
        r.subset = sub;
        r.n_subset = 1 + a % 4;
      }
      size_t n = 1 + b % NPODS;
      (void)ig_sched_admit(s, pods, n, &r, q);
      int rc = ig_sched_pick(s, pods, n, &r, order, &k);
      CHECK(rc == 0 || rc == IG_ENOENT || rc == IG_EFULL);
      if (rc == 0) {
        CHECK(k >= 1);
        for (size_t i = 0; i < k; i++) {
          CHECK(order[i] < n);
          for (size_t j = 0; j < i; j++) CHECK(order[i] != order[j]);
        }
      } else {
        CHECK(k == 0);
      }
    }
    CHECK(ig_sched_queue_len(q) == len);
    int bp[IG_SCHED_QUEUE_MAX_BANDS];
    size_t bl[IG_SCHED_QUEUE_MAX_BANDS], nb = ig_sched_queue_bands(q, bp, bl, IG_SCHED_QUEUE_MAX_BANDS), sum = 0;
    for (size_t i = 0; i < nb; i++) {
      CHECK(bl[i] > 0 && (i == 0 || bp[i] < bp[i - 1]));
      sum += bl[i];
    }
    CHECK(sum == len);
  }
  for (int i = 0; i < NPODS; i++) ig_sched_prefix_free(pods[i].prefix);
  ig_sched_queue_free(q);
  ig_sched_free(s);
  return 0;
}

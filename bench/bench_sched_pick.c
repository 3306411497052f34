/* Scheduler pick latency micro-benchmark: ig_sched_pick over pools of 10, 100 and 1,000 pods with
 * random but realistic pod states (queues, KV usage, fresh metrics, LoRA adapters, a warmed prefix
 * index) and 1 KB prompts that share system prompts (half of them for the base model, half for one of 8
 * adapters), for the profiles default, gie, least-request and
 * round-robin. Each pick is timed with clock_gettime; prints p50, p99 and mean per case and the ratio
 * against round-robin measured in the same run (the baseline).
 *
 *   bench_sched_pick [--iters N] [--seed S] [--pods N] [--profile NAME]
 *
 * --pods and --profile run one pool size / one case only (for profiling: a row's label, e.g. "default,
 * pick (unstamped)"); round-robin, the baseline, is always measured.
 *
 * Timing starts after iters / 10 + 100 untimed picks, and at least 10 per pod: the first picks of a
 * pod grow its prefix tables and the scheduler's caches of it, a start-up cost that a running gateway
 * has long paid (at 1,000 pods the first 10,000 picks have a p99 about 40% higher).
 *
 * Scrapes are simulated between picks, outside the timed region: before each pick, n/64 pods (in turn)
 * get new waiting, running and KV values and scrape time, pending reset to 0 and a new stamp
 * (ig_sched_pod_touch), as the proxy's scraper does, so that every pod is scraped once per 64 picks,
 * spread evenly as independent 50 ms scrapes are. The row "default" picks event-driven, as the gateway
 * and the picker do (ig_sched_pick_at: the scraped pods are reported with ig_sched_pods_changed, the
 * time passes 50 ms per 64 picks); "default, pick (stamped)" picks with ig_sched_pick, which reads a
 * line of every pod, and "default, pick (unstamped)" with ig_sched_pick over pods that are never
 * stamped (seq 0), so every pick derives everything from every pod. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infergate/core.h"
#include "infergate/sched.h"

#define N_SYSTEM 64      /* distinct system prompts (shared prefixes) */
#define SYSTEM_CHARS 768 /* shared part of each 1 KB prompt */
#define PROMPT_CHARS 1024
#define N_REQS 512 /* prepared requests, cycled */
#define N_ADAPTERS 8
#define SCRAPE_EVERY 64
#define SCRAPE_MS 50
#define BASE_MODEL "llama3"

typedef struct {
  const char *label, *profile;
  int stamped; /* the scraper stamps the pods (ig_sched_pod_touch) */
  int ev;      /* event-driven: ig_sched_pick_at, changes reported (ig_sched_pods_changed) */
} case_t;
static const case_t cases[] = {{"round-robin", "round-robin", 1, 0},
                               {"least-request", "least-request", 1, 0},
                               {"gie", "gie", 1, 0},
                               {"default", "default", 1, 1},
                               {"default, pick (stamped)", "default", 1, 0},
                               {"default, pick (unstamped)", "default", 0, 0}};
#define N_CASES (sizeof cases / sizeof cases[0])
static const size_t sizes[] = {10, 100, 1000};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

typedef struct {
  double p50, p99, mean; /* microseconds */
} result_t;

static char adapters[N_ADAPTERS][IG_SCHED_LORA_NAME_MAX];
static char systems[N_SYSTEM][SYSTEM_CHARS];

static void random_text(ig_rng_t *r, char *out, size_t n) {
  static const char alpha[] = "abcdefghijklmnopqrstuvwxyz      .,";
  for (size_t i = 0; i < n; i++)
    out[i] = alpha[ig_rng_next(r) % (sizeof alpha - 1)];
}

/* New scraped values for pod p at now_ms, as a scrape stores them. */
static void scrape(ig_rng_t *r, ig_sched_pod_t *p, int stamped, uint64_t now_ms) {
  p->waiting = (double)(ig_rng_next(r) % 8);
  p->running = (double)(ig_rng_next(r) % 48);
  p->kv_usage = ig_rng_double(r) * 0.95;
  p->pending = 0;
  p->scraped_ms = now_ms;
  if (stamped) ig_sched_pod_touch(p);
}

/* A pool of n pods in a random steady state; every pod's prefix index holds the blocks of a few
 * prompts built on the system prompts it has served. Free with pods_free. */
static ig_sched_pod_t *pods_new(size_t n, uint64_t seed, int stamped, ig_sched_lora_t **loras_out) {
  ig_rng_t r;
  ig_rng_seed(&r, seed);
  ig_sched_pod_t *pods = ig_calloc(n, sizeof *pods);
  ig_sched_lora_t *loras = ig_calloc(n, sizeof *loras);
  char prompt[PROMPT_CHARS];
  uint64_t hashes[IG_SCHED_PREFIX_MAX_BLOCKS];
  for (size_t i = 0; i < n; i++) {
    ig_sched_pod_t *p = &pods[i];
    p->id = i;
    p->has_metrics = 1;
    p->metrics_age_ms = ig_rng_next(&r) % 50;
    scrape(&r, p, stamped, SCRAPE_MS - p->metrics_age_ms);
    p->inflight = (unsigned)(ig_rng_next(&r) % 16);
    ig_sched_lora_t *l = &loras[i];
    l->max_lora = 4;
    l->n_running_loras = (int)(ig_rng_next(&r) % 4);
    for (int k = 0; k < l->n_running_loras; k++)
      snprintf(l->running_loras[k], IG_SCHED_LORA_NAME_MAX, "%s", adapters[ig_rng_next(&r) % N_ADAPTERS]);
    ig_sched_pod_set_lora(p, l); /* as the scraper does once per scrape */
    p->prefix = ig_sched_prefix_new(0);
    for (int k = 0; k < 16; k++) {
      const char *model = adapters[ig_rng_next(&r) % N_ADAPTERS];
      memcpy(prompt, systems[ig_rng_next(&r) % N_SYSTEM], SYSTEM_CHARS);
      random_text(&r, prompt + SYSTEM_CHARS, PROMPT_CHARS - SYSTEM_CHARS);
      size_t nh = ig_sched_prefix_hashes(model, prompt, PROMPT_CHARS, 0, hashes, IG_SCHED_PREFIX_MAX_BLOCKS);
      ig_sched_prefix_insert(p->prefix, hashes, nh);
    }
  }
  *loras_out = loras;
  return pods;
}

static void pods_free(ig_sched_pod_t *pods, ig_sched_lora_t *loras, size_t n) {
  for (size_t i = 0; i < n; i++)
    ig_sched_prefix_free(pods[i].prefix);
  free(pods);
  free(loras);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Times iters picks of one case over a fresh pool of n pods (same seed for every case). */
static int run_case(const case_t *cs, size_t n, size_t iters, uint64_t seed, char (*prompts)[PROMPT_CHARS],
                    const char **models, result_t *res) {
  const char *profile = cs->profile;
  ig_sched_lora_t *loras;
  ig_sched_pod_t *pods = pods_new(n, seed, cs->stamped, &loras);
  ig_sched_t *s = ig_sched_new(profile, seed ^ 0x5bd1e995u);
  ig_rng_t r;
  ig_rng_seed(&r, seed ^ 0x9e3779b9u);
  size_t per_pick = (n + SCRAPE_EVERY - 1) / SCRAPE_EVERY, next = 0;
  uint64_t *lat = ig_calloc(iters, sizeof *lat);
  int rc = 0;
  if (!s) {
    fprintf(stderr, "unknown profile %s\n", profile);
    rc = IG_EINVAL;
    goto out;
  }
  ig_sched_reserve(s, n);
  /* untimed picks first, at least 10 per pod: a pod's first picks grow its prefix tables and the
   * scheduler's caches of it (the steady state is what a running gateway sees) */
  size_t warm = iters / 10 + 100;
  if (warm < 10 * n) warm = 10 * n;
  double sum = 0;
  for (size_t i = 0; i < warm + iters; i++) {
    /* the time of this pick: every pod is scraped once per SCRAPE_EVERY picks, every SCRAPE_MS */
    uint64_t now = SCRAPE_MS + (uint64_t)i * SCRAPE_MS / SCRAPE_EVERY;
    for (size_t k = 0; k < per_pick; k++, next = (next + 1) % n) {
      scrape(&r, &pods[next], cs->stamped, now);
      if (cs->ev) ig_sched_pods_changed(s, next);
    }
    ig_sched_request_t req = {0};
    size_t j = i % N_REQS;
    req.model = models[j];
    req.crit = (ig_sched_crit_t)(i % 3);
    req.prompt = prompts[j];
    req.prompt_len = PROMPT_CHARS;
    size_t order[3], n_order = 3;
    uint64_t t0 = now_ns();
    int prc = cs->ev ? ig_sched_pick_at(s, pods, n, now, &req, order, &n_order)
                     : ig_sched_pick(s, pods, n, &req, order, &n_order);
    uint64_t dt = now_ns() - t0;
    if (prc < 0 && prc != IG_EFULL) {
      fprintf(stderr, "%s/%zu: pick failed: %d\n", profile, n, prc);
      rc = prc;
      goto out;
    }
    if (i >= warm) {
      lat[i - warm] = dt;
      sum += (double)dt;
    }
  }
  qsort(lat, iters, sizeof *lat, cmp_u64);
  res->p50 = (double)lat[iters / 2] / 1e3;
  res->p99 = (double)lat[(iters * 99) / 100] / 1e3;
  res->mean = sum / (double)iters / 1e3;
out:
  free(lat);
  ig_sched_free(s);
  pods_free(pods, loras, n);
  return rc;
}

int main(int argc, char **argv) {
  size_t iters = 20000;
  uint64_t seed = 42;
  size_t only_pods = 0;
  const char *only_prof = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
      iters = strtoul(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
      seed = strtoull(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "--pods") && i + 1 < argc) {
      only_pods = strtoul(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "--profile") && i + 1 < argc) {
      only_prof = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--iters N] [--seed S] [--pods N] [--profile NAME]\n", argv[0]);
      return 2;
    }
  }
  if (iters < 100) iters = 100;
  ig_rng_t r;
  ig_rng_seed(&r, seed);
  for (int i = 0; i < N_ADAPTERS; i++)
    snprintf(adapters[i], sizeof adapters[i], "lora-%d", i);
  for (int i = 0; i < N_SYSTEM; i++)
    random_text(&r, systems[i], SYSTEM_CHARS);
  char(*prompts)[PROMPT_CHARS] = ig_calloc(N_REQS, PROMPT_CHARS);
  const char *models[N_REQS];
  for (int i = 0; i < N_REQS; i++) {
    memcpy(prompts[i], systems[ig_rng_next(&r) % N_SYSTEM], SYSTEM_CHARS);
    random_text(&r, prompts[i] + SYSTEM_CHARS, PROMPT_CHARS - SYSTEM_CHARS);
    /* half the requests name the base model (in no pod's adapter list), half an adapter */
    uint64_t m = ig_rng_next(&r) % (2 * N_ADAPTERS);
    models[i] = m < N_ADAPTERS ? adapters[m] : BASE_MODEL;
  }
  printf("ig_sched_pick latency, %zu timed picks per case, 1 KB prompts, each pod scraped once per %d picks, "
         "seed %llu\n\n",
         iters, SCRAPE_EVERY, (unsigned long long)seed);
  printf("| pods | profile | p50 us | p99 us | mean us | mean vs round-robin | p99 vs round-robin |\n");
  printf("|---:|---|---:|---:|---:|---:|---:|\n");
  int rc = 0;
  for (size_t si = 0; si < N_SIZES; si++) {
    result_t res[N_CASES] = {{0}};
    if (only_pods && sizes[si] != only_pods) continue;
    for (size_t pi = 0; pi < N_CASES; pi++) {
      if (pi && only_prof && strcmp(only_prof, cases[pi].label)) continue;
      rc = run_case(&cases[pi], sizes[si], iters, seed + sizes[si], prompts, models, &res[pi]);
      if (rc < 0) goto out;
    }
    for (size_t pi = 0; pi < N_CASES; pi++)
      if (!pi || !only_prof || !strcmp(only_prof, cases[pi].label))
        printf("| %zu | %s | %.2f | %.2f | %.2f | %.1fx | %.1fx |\n", sizes[si], cases[pi].label, res[pi].p50,
               res[pi].p99, res[pi].mean, res[pi].mean / res[0].mean, res[pi].p99 / res[0].p99);
  }
out:
  free(prompts);
  return rc < 0 ? 1 : 0;
}

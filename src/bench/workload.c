/* Workload generation for infergate bench: request lengths, prompt text, models and classes, all
 * derived deterministically from the seed and the request number. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "infergate/http.h"
#include "infergate/oai.h"

/* Log-space spread of the sampled lengths: ShareGPT prompts are more dispersed than answers. */
#define INPUT_SIGMA 1.0
#define OUTPUT_SIGMA 0.8

const char *const ig_bench_class_names[3] = {"Critical", "Standard", "Sheddable"};

static const struct {
  const char *name;
  ig_bench_wl_kind_t kind;
} wl_names[] = {
    {"sharegpt", IG_BENCH_WL_SHAREGPT}, {"shared-prefix", IG_BENCH_WL_SHARED_PREFIX},
    {"lora-mix", IG_BENCH_WL_LORA_MIX}, {"criticality", IG_BENCH_WL_CRITICALITY},
    {"fixed", IG_BENCH_WL_FIXED},       {"dataset", IG_BENCH_WL_DATASET},
};

int ig_bench_wl_parse(const char *name, ig_bench_wl_kind_t *out) {
  for (size_t i = 0; i < sizeof wl_names / sizeof wl_names[0]; i++)
    if (!strcmp(name, wl_names[i].name)) {
      *out = wl_names[i].kind;
      return 0;
    }
  return IG_EINVAL;
}

const char *ig_bench_wl_name(ig_bench_wl_kind_t kind) {
  for (size_t i = 0; i < sizeof wl_names / sizeof wl_names[0]; i++)
    if (wl_names[i].kind == kind) return wl_names[i].name;
  return "?";
}

/* splitmix64 finalizer: spreads (seed, a, b) into an independent 64-bit stream seed. */
static uint64_t mix3(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t z = seed ^ (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Stream tags, so the same id yields unrelated draws for different purposes. */
enum { TAG_ITEM = 1, TAG_SYSTEM, TAG_QUESTION, TAG_ORDER };

void ig_bench_text(ig_buf_t *out, uint64_t seed, uint32_t tokens) {
  /* Consonant-vowel-consonant pseudo-words: readable, JSON-safe, and exactly 4 bytes per token. */
  static const char cons[] = "bcdfghjklmnprstvwz";
  static const char vow[] = "aeiou";
  ig_rng_t r;
  ig_rng_seed(&r, mix3(seed, 0x7e47, tokens));
  ig_buf_reserve(out, (size_t)tokens * IG_BENCH_CHARS_PER_TOKEN);
  for (uint32_t i = 0; i < tokens; i++) {
    uint64_t x = ig_rng_next(&r);
    char w[IG_BENCH_CHARS_PER_TOKEN] = {cons[x % (sizeof cons - 1)], vow[(x >> 16) % (sizeof vow - 1)],
                                        cons[(x >> 32) % (sizeof cons - 1)], ' '};
    ig_buf_append(out, w, sizeof w);
  }
}

/* Standard normal draw (Box-Muller, one of the pair). */
static double normal(ig_rng_t *r) {
  double u1 = 1.0 - ig_rng_double(r); /* (0, 1] so log is finite */
  double u2 = ig_rng_double(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double phi(double x) {
  return 0.5 * erfc(-x / sqrt(2.0));
}

/* Mean of a lognormal(mu, sigma) clamped to [a, b]:
 * a P(X < a) + b P(X > b) + E[X; a <= X <= b]. */
static double clamped_mean(double mu, double sigma, double a, double b) {
  double la = log(a), lb = log(b);
  double mid = exp(mu + sigma * sigma / 2) *
               (phi((lb - mu - sigma * sigma) / sigma) - phi((la - mu - sigma * sigma) / sigma));
  return a * phi((la - mu) / sigma) + b * (1.0 - phi((lb - mu) / sigma)) + mid;
}

double ig_bench_lognormal_mu(double mean, double sigma) {
  double a = IG_BENCH_LEN_MIN, b = IG_BENCH_LEN_MAX;
  /* The clamped mean increases with mu; bisect over a range wide enough to reach both ends. */
  double lo = log(a) - 6 * sigma, hi = log(b) + 6 * sigma;
  for (int i = 0; i < 100; i++) {
    double m = (lo + hi) / 2;
    if (clamped_mean(m, sigma, a, b) < mean)
      lo = m;
    else
      hi = m;
  }
  return (lo + hi) / 2;
}

uint32_t ig_bench_lognormal_len(ig_rng_t *rng, double mu, double sigma) {
  double x = exp(mu + sigma * normal(rng));
  if (!(x >= IG_BENCH_LEN_MIN)) return IG_BENCH_LEN_MIN; /* also catches NaN */
  if (x >= IG_BENCH_LEN_MAX) return IG_BENCH_LEN_MAX;
  return (uint32_t)(x + 0.5);
}

double ig_bench_exp_gap(ig_rng_t *rng, double rate) {
  return -log(1.0 - ig_rng_double(rng)) / rate;
}

/* Gamma(k, 1) draw: Marsaglia and Tsang's squeeze method for k >= 1; for k < 1 the boost
 * Gamma(k) = Gamma(k + 1) * U^(1/k). */
static double gamma_unit(ig_rng_t *r, double k) {
  if (k < 1) {
    double u = 1.0 - ig_rng_double(r); /* (0, 1] */
    return gamma_unit(r, k + 1) * pow(u, 1.0 / k);
  }
  double d = k - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = normal(r);
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    double u = 1.0 - ig_rng_double(r);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
  }
}

double ig_bench_gamma_gap(ig_rng_t *rng, double rate, double k) {
  if (k == 1.0) return ig_bench_exp_gap(rng, rate);
  return gamma_unit(rng, k) / (k * rate); /* scale 1/(k rate): mean 1/rate */
}

int ig_bench_wl_init(ig_bench_wl_t *w, const ig_bench_wl_config_t *cfg) {
  memset(w, 0, sizeof *w);
  w->cfg = *cfg;
  ig_bench_wl_config_t *c = &w->cfg;
  if (!c->model || !*c->model) {
    fprintf(stderr, "bench: a model name is needed (--model)\n");
    goto fail;
  }
  if (c->input_mean < 1 || c->output_mean < 1) {
    fprintf(stderr, "bench: input and output lengths must be >= 1\n");
    goto fail;
  }
  switch (c->kind) {
  case IG_BENCH_WL_SHARED_PREFIX: {
    if (!c->groups || !c->prompts_per_group || !c->system_len || !c->question_len) {
      fprintf(stderr,
              "bench: shared-prefix needs groups, prompts per group, system and question lengths >= 1\n");
      goto fail;
    }
    if ((uint64_t)c->groups * c->prompts_per_group > 10000000u) {
      fprintf(stderr, "bench: shared-prefix groups x prompts per group is too large (max 10000000)\n");
      goto fail;
    }
    w->n_order = (size_t)c->groups * c->prompts_per_group;
    w->order = ig_malloc(w->n_order * sizeof *w->order);
    for (size_t i = 0; i < w->n_order; i++)
      w->order[i] = (uint32_t)i;
    ig_rng_t r;
    ig_rng_seed(&r, mix3(c->seed, TAG_ORDER, 0));
    for (size_t i = w->n_order; i > 1; i--) { /* Fisher-Yates */
      size_t j = (size_t)(ig_rng_next(&r) % i);
      uint32_t t = w->order[i - 1];
      w->order[i - 1] = w->order[j];
      w->order[j] = t;
    }
    break;
  }
  case IG_BENCH_WL_LORA_MIX: {
    if (c->n_models < 1) {
      fprintf(stderr, "bench: lora-mix needs --models a,b,c (most popular first)\n");
      goto fail;
    }
    double s = c->zipf_s > 0 ? c->zipf_s : 1.0, total = 0;
    w->zipf_cdf = ig_malloc(c->n_models * sizeof *w->zipf_cdf);
    for (size_t k = 0; k < c->n_models; k++)
      w->zipf_cdf[k] = (total += 1.0 / pow((double)(k + 1), s));
    for (size_t k = 0; k < c->n_models; k++)
      w->zipf_cdf[k] /= total;
    break;
  }
  case IG_BENCH_WL_DATASET: {
    if (!c->dataset || !c->dataset->n || c->dataset->n > UINT32_MAX) {
      fprintf(stderr, "bench: the dataset workload needs a non-empty --dataset\n");
      goto fail;
    }
    /* a seeded shuffle, so a short run samples the whole file, not its first lines */
    w->n_order = c->dataset->n;
    w->order = ig_malloc(w->n_order * sizeof *w->order);
    for (size_t i = 0; i < w->n_order; i++)
      w->order[i] = (uint32_t)i;
    ig_rng_t r;
    ig_rng_seed(&r, mix3(c->seed, TAG_ORDER, 1));
    for (size_t i = w->n_order; i > 1; i--) {
      size_t j = (size_t)(ig_rng_next(&r) % i);
      uint32_t t = w->order[i - 1];
      w->order[i - 1] = w->order[j];
      w->order[j] = t;
    }
    break;
  }
  case IG_BENCH_WL_CRITICALITY:
    if (c->n_models != 0 && c->n_models != 3) {
      fprintf(stderr, "bench: criticality takes --models CRITICAL,STANDARD,SHEDDABLE (exactly 3) or none\n");
      goto fail;
    }
    break;
  default:
    break;
  }
  w->mu_in = ig_bench_lognormal_mu(c->input_mean, INPUT_SIGMA);
  w->mu_out = ig_bench_lognormal_mu(c->output_mean, OUTPUT_SIGMA);
  return 0;
fail:
  ig_bench_wl_free(w);
  return IG_EINVAL;
}

void ig_bench_wl_free(ig_bench_wl_t *w) {
  free(w->order);
  free(w->zipf_cdf);
  w->order = NULL;
  w->zipf_cdf = NULL;
}

/* Fills it->question (and nothing else) with a fresh prompt of n tokens. */
static void set_question(ig_bench_item_t *it, uint64_t seed, uint32_t n) {
  ig_buf_t b;
  ig_buf_init(&b);
  ig_bench_text(&b, seed, n);
  it->question = b.data;
  it->question_len = b.len;
}

void ig_bench_wl_item(const ig_bench_wl_t *w, uint64_t id, ig_bench_item_t *it) {
  const ig_bench_wl_config_t *c = &w->cfg;
  ig_rng_t r;
  ig_rng_seed(&r, mix3(c->seed, TAG_ITEM, id));
  memset(it, 0, sizeof *it);
  it->id = id;
  it->model = c->model;
  it->class_idx = -1;
  it->group = -1;
  switch (c->kind) {
  case IG_BENCH_WL_SHARED_PREFIX: {
    uint32_t idx = w->order[id % w->n_order];
    uint32_t g = idx / c->prompts_per_group;
    ig_buf_t b;
    ig_buf_init(&b);
    ig_bench_text(&b, mix3(c->seed, TAG_SYSTEM, g), c->system_len);
    it->system = b.data;
    it->system_len = b.len;
    set_question(it, mix3(c->seed, TAG_QUESTION, idx), c->question_len);
    it->max_tokens = c->output_mean;
    it->group = (int)g;
    break;
  }
  case IG_BENCH_WL_FIXED:
    set_question(it, mix3(c->seed, TAG_QUESTION, id), c->input_mean);
    it->max_tokens = c->output_mean;
    break;
  case IG_BENCH_WL_DATASET: {
    const ig_bench_ds_entry_t *e = &c->dataset->v[w->order[id % w->n_order]];
    it->question = ig_malloc(e->prompt_len + 1);
    memcpy(it->question, e->prompt, e->prompt_len + 1);
    it->question_len = e->prompt_len;
    it->max_tokens = e->output_tokens;
    break;
  }
  default: {
    uint32_t in = ig_bench_lognormal_len(&r, w->mu_in, INPUT_SIGMA);
    it->max_tokens = ig_bench_lognormal_len(&r, w->mu_out, OUTPUT_SIGMA);
    set_question(it, mix3(c->seed, TAG_QUESTION, id), in);
    if (c->kind == IG_BENCH_WL_LORA_MIX) {
      double u = ig_rng_double(&r);
      size_t k = 0;
      while (k + 1 < c->n_models && u >= w->zipf_cdf[k])
        k++;
      it->model = c->models[k];
    } else if (c->kind == IG_BENCH_WL_CRITICALITY) {
      it->class_idx = (int)(ig_rng_next(&r) % 3);
      it->class_name = ig_bench_class_names[it->class_idx];
      if (c->n_models == 3) it->model = c->models[it->class_idx];
    }
    break;
  }
  }
  if (!it->system) it->system = ig_strdup("");
  if (c->max_tokens_cap && it->max_tokens > c->max_tokens_cap) it->max_tokens = c->max_tokens_cap;
  it->prompt_tokens = (uint32_t)(ig_oai_count_tokens(it->system, it->system_len) +
                                 ig_oai_count_tokens(it->question, it->question_len));
}

void ig_bench_item_free(ig_bench_item_t *it) {
  free(it->system);
  free(it->question);
  it->system = it->question = NULL;
}

/* Appends one JSON string literal. */
static void put_str(ig_buf_t *out, const char *s, size_t n) {
  ig_buf_puts(out, "\"");
  ig_json_escape(out, s, n);
  ig_buf_puts(out, "\"");
}

void ig_bench_body(ig_buf_t *out, const ig_bench_item_t *it, int chat, int stream) {
  ig_buf_puts(out, "{\"model\":");
  put_str(out, it->model, strlen(it->model));
  if (chat) {
    ig_buf_puts(out, ",\"messages\":[");
    if (it->system_len) {
      ig_buf_puts(out, "{\"role\":\"system\",\"content\":");
      put_str(out, it->system, it->system_len);
      ig_buf_puts(out, "},");
    }
    ig_buf_puts(out, "{\"role\":\"user\",\"content\":");
    put_str(out, it->question, it->question_len);
    ig_buf_puts(out, "}]");
  } else {
    ig_buf_puts(out, ",\"prompt\":\"");
    ig_json_escape(out, it->system, it->system_len);
    ig_json_escape(out, it->question, it->question_len);
    ig_buf_puts(out, "\"");
  }
  ig_buf_printf(out, ",\"max_tokens\":%u", (unsigned)it->max_tokens);
  if (stream)
    ig_buf_puts(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
  else
    ig_buf_puts(out, ",\"stream\":false}");
}

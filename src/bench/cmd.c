/* `infergate bench`: options, the run, and the report (a table on stdout, optionally a JSON file
 * with the summary and every request). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "infergate/cmd.h"

#define MAX_MODELS 64

static const char usage_text[] =
    "usage: infergate bench --url http://HOST:PORT --model NAME [options]\n"
    "\n"
    "Load generator for OpenAI-compatible servers: reports TTFT, TPOT, ITL and E2E latency\n"
    "(mean, p50, p90, p99 in ms; nearest-rank percentiles over successful requests) and throughput.\n"
    "\n"
    "target:\n"
    "  --url URL              http://host[:port][/path]; a path is the endpoint unless --endpoint is given\n"
    "  --endpoint PATH        /v1/completions (default) or /v1/chat/completions\n"
    "  --model NAME           model name in every request (default: first of --models)\n"
    "  --header 'K: V'        extra request header (repeatable)\n"
    "  --stream | --no-stream SSE streaming with usage (default) or one JSON answer\n"
    "                         (without streaming TTFT = E2E, and TPOT/ITL are not measured)\n"
    "  --timeout S            per-request limit; also bounds the wait for in-flight requests at the end "
    "(60)\n"
    "load (choose one):\n"
    "  --rate R               open loop: Poisson arrivals at R requests/s\n"
    "  --arrival A            open loop arrivals: poisson (default) | gamma\n"
    "  --burstiness K         gamma shape K (implies --arrival gamma): gaps with mean 1/R and coefficient\n"
    "                         of variation 1/sqrt(K); K < 1 burstier than Poisson, K = 1 Poisson (1)\n"
    "  --concurrency C        closed loop: C requests in flight at all times (default 4)\n"
    "  --requests N           stop after N requests (default 100; shared-prefix: groups x prompts)\n"
    "  --duration S           stop sending after S seconds (with --requests: whichever comes first)\n"
    "workload:\n"
    "  --workload W           sharegpt (default) | shared-prefix | lora-mix | criticality | fixed\n"
    "  --input-mean N         prompt tokens: lognormal mean, clamped to [4, 4096] (250); fixed: exact\n"
    "  --output-mean N        max_tokens: lognormal mean (200); fixed and shared-prefix: exact (256)\n"
    "  --models a,b,c         lora-mix: models by popularity (Zipf, weight 1/rank);\n"
    "                         criticality: CRITICAL,STANDARD,SHEDDABLE models instead of the header\n"
    "                         x-infergate-criticality: Critical|Standard|Sheddable (1/3 each)\n"
    "  --groups G             shared-prefix groups (64)\n"
    "  --prompts-per-group K  shared-prefix prompts per group (16)\n"
    "  --system-len T         shared-prefix system prompt tokens, identical within a group (2048)\n"
    "  --question-len T       shared-prefix question tokens (128)\n"
    "  --seed S               workload and arrival seed (1); prompts are ~4 characters per token\n"
    "  --dataset FILE         replay a ShareGPT file (JSON Lines, or one JSON array as ShareGPT_V3):\n"
    "                         prompt = first human turn, max_tokens = tokens of the gpt turn after it;\n"
    "                         entries in a seeded shuffle (--seed); unusable entries are skipped and "
    "counted\n"
    "  --dataset-max N        read at most N usable entries of the file (10000; memory stays bounded)\n"
    "  --max-tokens N         cap every request's max_tokens (dataset answers can be long)\n"
    "output:\n"
    "  --json FILE            write {\"summary\": {...}, \"requests\": [...]} to FILE\n"
    "  --label NAME           label for this run in the table and the JSON\n"
    "  --slo ttft=200ms,tpot=50ms,e2e=10s\n"
    "                         objectives (any subset; us, ms or s): reports goodput, the successful\n"
    "                         requests per second meeting every one, and the fraction of requests sent\n"
    "  --progress | --no-progress\n"
    "                         a progress line on stderr, rewritten in place (default: when stderr is a\n"
    "                         terminal and CI is not set)\n";

typedef struct {
  ig_bench_opts_t o;
  ig_bench_wl_config_t wl;
  const char *url, *endpoint, *json_path, *label;
  char *models_buf;
  const char *models[MAX_MODELS];
  int have_output_mean, have_requests, have_workload;
  const char *dataset_path;
  uint64_t dataset_max;
  ig_bench_dataset_t dataset;
  ig_bench_slo_t slo;
  int arrival;  /* 0 unset, 1 poisson, 2 gamma */
  int progress; /* -1 auto */
  int have_burstiness;
} args_t;

/* Whether the environment says this is a CI job (no progress line there). */
static int in_ci(void) {
  const char *ci = getenv("CI");
  return ci && *ci && strcmp(ci, "false") && strcmp(ci, "0");
}

/* Parses a decimal number in [lo, hi]; returns 0 or IG_EINVAL with a message. */
static int num(const char *opt, const char *v, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (!*v || *end || errno || !isfinite(x) || x < lo || x > hi) {
    fprintf(stderr, "bench: %s: expected a number in [%g, %g], got '%s'\n", opt, lo, hi, v);
    return IG_EINVAL;
  }
  *out = x;
  return 0;
}

static int unum(const char *opt, const char *v, double lo, double hi, uint64_t *out) {
  double x;
  if (num(opt, v, lo, hi, &x) < 0) return IG_EINVAL;
  if (x != floor(x)) {
    fprintf(stderr, "bench: %s: expected a whole number, got '%s'\n", opt, v);
    return IG_EINVAL;
  }
  *out = (uint64_t)x;
  return 0;
}

/* Splits a comma-separated list in place into a->models. */
static int split_models(args_t *a, const char *v) {
  free(a->models_buf);
  a->models_buf = ig_strdup(v);
  a->wl.n_models = 0;
  for (char *save = NULL, *t = strtok_r(a->models_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ')
      t++;
    if (!*t) continue;
    if (a->wl.n_models == MAX_MODELS) {
      fprintf(stderr, "bench: --models: at most %d models\n", MAX_MODELS);
      return IG_EINVAL;
    }
    a->models[a->wl.n_models++] = t;
  }
  if (!a->wl.n_models) {
    fprintf(stderr, "bench: --models: empty list\n");
    return IG_EINVAL;
  }
  a->wl.models = a->models;
  return 0;
}

/* Splits --url into host, port and path. */
static int parse_url(args_t *a) {
  const char *u = a->url;
  if (!strncasecmp(u, "https://", 8)) {
    fprintf(stderr, "bench: https is not supported; point --url at a plain-HTTP listener\n");
    return IG_ENOTSUP;
  }
  if (strncasecmp(u, "http://", 7)) {
    fprintf(stderr, "bench: --url must start with http:// (got '%s')\n", u);
    return IG_EINVAL;
  }
  u += 7;
  size_t hl = strcspn(u, "/?#");
  const char *path = u + hl;
  if (!hl || hl >= sizeof a->o.hostport - 4) {
    fprintf(stderr, "bench: --url: bad host in '%s'\n", a->url);
    return IG_EINVAL;
  }
  char hp[sizeof a->o.hostport];
  memcpy(hp, u, hl);
  hp[hl] = '\0';
  int has_port = hp[0] == '[' ? strstr(hp, "]:") != NULL : strchr(hp, ':') != NULL;
  snprintf(a->o.hostport, sizeof a->o.hostport, "%s", hp);
  if (!has_port) strcat(hp, ":80");
  if (ig_parse_hostport(hp, a->o.host, sizeof a->o.host, &a->o.port) < 0) {
    fprintf(stderr, "bench: --url: bad host or port in '%s'\n", a->url);
    return IG_EINVAL;
  }
  const char *ep = a->endpoint;
  if (!ep) ep = (*path == '/' && path[1]) ? path : "/v1/completions";
  if (*ep != '/' || strlen(ep) >= sizeof a->o.path || strpbrk(ep, " \r\n\t")) {
    fprintf(stderr, "bench: bad endpoint path '%s'\n", ep);
    return IG_EINVAL;
  }
  snprintf(a->o.path, sizeof a->o.path, "%s", ep);
  a->o.chat = strstr(ep, "chat/completions") != NULL;
  return 0;
}

/* Parses argv into a. Returns 0, 1 for --help, or IG_EINVAL (message printed). */
static int parse_args(args_t *a, int argc, char **argv) {
  ig_bench_opts_t *o = &a->o;
  ig_bench_wl_config_t *w = &a->wl;
  double rate = 0;
  uint64_t conc = 0, u;
  o->stream = 1;
  o->timeout_s = 60;
  o->seed = 1;
  w->kind = IG_BENCH_WL_SHAREGPT;
  w->input_mean = 250;
  w->output_mean = 200;
  w->groups = 64;
  w->prompts_per_group = 16;
  w->system_len = 2048;
  w->question_len = 128;
  for (int i = 1; i < argc; i++) {
    char *arg = argv[i], *val = NULL;
    char name[64];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return 1;
    if (strncmp(arg, "--", 2)) {
      fprintf(stderr, "bench: unexpected argument '%s' (see --help)\n", arg);
      return IG_EINVAL;
    }
    /* --name=value or --name value */
    const char *eq = strchr(arg, '=');
    size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
    if (nl >= sizeof name) nl = sizeof name - 1;
    memcpy(name, arg, nl);
    name[nl] = '\0';
    if (!strcmp(name, "--stream") || !strcmp(name, "--no-stream")) {
      o->stream = name[2] == 's';
      continue;
    }
    if (!strcmp(name, "--progress") || !strcmp(name, "--no-progress")) {
      a->progress = name[2] == 'p';
      continue;
    }
    if (eq) {
      val = (char *)eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      fprintf(stderr, "bench: %s needs a value\n", name);
      return IG_EINVAL;
    }
#define IS(s) (!strcmp(name, s))
    int rc = 0;
    if (IS("--url"))
      a->url = val;
    else if (IS("--endpoint"))
      a->endpoint = val;
    else if (IS("--model"))
      w->model = val;
    else if (IS("--json"))
      a->json_path = val;
    else if (IS("--label"))
      a->label = val;
    else if (IS("--workload")) {
      if (ig_bench_wl_parse(val, &w->kind) < 0) {
        fprintf(stderr,
                "bench: unknown workload '%s' (sharegpt, shared-prefix, lora-mix, criticality, fixed)\n",
                val);
        rc = IG_EINVAL;
      }
      a->have_workload = 1;
    } else if (IS("--dataset"))
      a->dataset_path = val;
    else if (IS("--dataset-max"))
      rc = unum(name, val, 1, 1e8, &a->dataset_max);
    else if (IS("--max-tokens")) {
      rc = unum(name, val, 1, 1000000, &u);
      w->max_tokens_cap = (uint32_t)u;
    } else if (IS("--slo")) {
      char err[256];
      if ((rc = ig_bench_slo_parse(val, &a->slo, err, sizeof err)) < 0)
        fprintf(stderr, "bench: --slo: %s\n", err);
    } else if (IS("--arrival")) {
      if (!strcmp(val, "poisson"))
        a->arrival = 1;
      else if (!strcmp(val, "gamma"))
        a->arrival = 2;
      else {
        fprintf(stderr, "bench: --arrival: expected poisson or gamma, got '%s'\n", val);
        rc = IG_EINVAL;
      }
    } else if (IS("--burstiness")) {
      rc = num(name, val, 0.01, 1000, &o->burstiness);
      a->have_burstiness = 1;
    } else if (IS("--rate"))
      rc = num(name, val, 1e-6, 1e6, &rate);
    else if (IS("--concurrency"))
      rc = unum(name, val, 1, 100000, &conc);
    else if (IS("--requests")) {
      rc = unum(name, val, 1, 1e9, &o->requests);
      a->have_requests = 1;
    } else if (IS("--duration"))
      rc = num(name, val, 1e-3, 1e7, &o->duration_s);
    else if (IS("--timeout"))
      rc = num(name, val, 1e-3, 1e7, &o->timeout_s);
    else if (IS("--seed"))
      rc = unum(name, val, 0, 9007199254740992.0, &o->seed);
    else if (IS("--models"))
      rc = split_models(a, val);
    else if (IS("--header")) {
      const char *colon = strchr(val, ':');
      if (!colon || colon == val || strpbrk(val, "\r\n") || o->n_headers == IG_BENCH_MAX_HEADERS) {
        fprintf(stderr, "bench: --header wants 'Name: value' (at most %d), got '%s'\n", IG_BENCH_MAX_HEADERS,
                val);
        rc = IG_EINVAL;
      } else {
        o->headers[o->n_headers++] = val;
      }
    } else {
      uint32_t *dst = IS("--input-mean")          ? &w->input_mean
                      : IS("--output-mean")       ? &w->output_mean
                      : IS("--groups")            ? &w->groups
                      : IS("--prompts-per-group") ? &w->prompts_per_group
                      : IS("--system-len")        ? &w->system_len
                      : IS("--question-len")      ? &w->question_len
                                                  : NULL;
      if (!dst) {
        fprintf(stderr, "bench: unknown option '%s' (see --help)\n", name);
        return IG_EINVAL;
      }
      rc = unum(name, val, 1, 1000000, &u);
      *dst = (uint32_t)u;
      if (IS("--output-mean")) a->have_output_mean = 1;
    }
#undef IS
    if (rc < 0) return rc;
  }
  if (!a->url) {
    fprintf(stderr, "bench: --url is required (see --help)\n");
    return IG_EINVAL;
  }
  if (rate > 0 && conc) {
    fprintf(stderr, "bench: --rate and --concurrency exclude each other\n");
    return IG_EINVAL;
  }
  o->rate = rate;
  o->concurrency = rate > 0 ? 0 : conc ? (uint32_t)conc : 4;
  if ((a->arrival || a->have_burstiness) && rate <= 0) {
    fprintf(stderr, "bench: --arrival and --burstiness shape open-loop arrivals: they need --rate\n");
    return IG_EINVAL;
  }
  if (a->arrival == 1 && a->have_burstiness && o->burstiness != 1) {
    fprintf(stderr, "bench: --burstiness %g needs --arrival gamma (Poisson is burstiness 1)\n",
            o->burstiness);
    return IG_EINVAL;
  }
  if (!a->have_burstiness || a->arrival == 1) o->burstiness = 1;
  if (a->have_burstiness && !a->arrival) a->arrival = 2;
  if (!a->arrival) a->arrival = 1;
  if (a->dataset_path) {
    if (a->have_workload && w->kind != IG_BENCH_WL_DATASET && w->kind != IG_BENCH_WL_SHAREGPT) {
      fprintf(stderr, "bench: --dataset replays its own prompts; it does not combine with --workload %s\n",
              ig_bench_wl_name(w->kind));
      return IG_EINVAL;
    }
    w->kind = IG_BENCH_WL_DATASET;
  } else if (w->kind == IG_BENCH_WL_DATASET) {
    fprintf(stderr, "bench: the dataset workload needs --dataset FILE\n");
    return IG_EINVAL;
  }
  if (!a->dataset_max) a->dataset_max = IG_BENCH_DATASET_MAX_DEFAULT;
  o->progress = a->progress >= 0 ? a->progress : isatty(STDERR_FILENO) && !in_ci();
  if (!w->model && w->n_models) w->model = w->models[0];
  w->seed = o->seed;
  if (w->kind == IG_BENCH_WL_SHARED_PREFIX && !a->have_output_mean) w->output_mean = 256;
  if (!a->have_requests && o->duration_s <= 0)
    o->requests = w->kind == IG_BENCH_WL_SHARED_PREFIX ? (uint64_t)w->groups * w->prompts_per_group : 100;
  return parse_url(a);
}

/* ---- report ------------------------------------------------------------------------------- */

/* Requests of one criticality class or one model. */
typedef struct {
  const char *name; /* borrowed from the records */
  size_t sent, completed, failed, shed, slo_met;
  ig_bench_samples_t ttft, e2e;
  ig_bench_summary_t s_ttft, s_e2e;
} group_t;

typedef struct {
  group_t *v;
  size_t n;
} groups_t;

typedef struct {
  size_t sent, completed, failed, shed;
  uint64_t in_tokens, out_tokens;
  ig_bench_samples_t ttft, tpot, e2e;
  ig_bench_summary_t s_ttft, s_tpot, s_itl, s_e2e;
  int have_slo;
  ig_bench_goodput_t good;
  groups_t by_class, by_model;
} tally_t;

/* The group called name (created on first use). */
static group_t *group_get(groups_t *g, const char *name) {
  for (size_t i = 0; i < g->n; i++)
    if (!strcmp(g->v[i].name, name)) return &g->v[i];
  g->v = ig_realloc(g->v, (g->n + 1) * sizeof *g->v);
  group_t *x = &g->v[g->n++];
  memset(x, 0, sizeof *x);
  x->name = name;
  ig_bench_samples_init(&x->ttft);
  ig_bench_samples_init(&x->e2e);
  return x;
}

static void group_add(groups_t *g, const char *name, const ig_bench_record_t *r, const ig_bench_slo_t *slo) {
  group_t *x = group_get(g, name);
  x->sent++;
  if (r->shed) {
    x->shed++;
  } else if (!r->ok) {
    x->failed++;
  } else {
    x->completed++;
    if (r->ttft_ms >= 0) ig_bench_samples_add(&x->ttft, r->ttft_ms);
    ig_bench_samples_add(&x->e2e, r->e2e_ms);
  }
  if (slo) x->slo_met += (size_t)ig_bench_slo_met(slo, r);
}

static void groups_free(groups_t *g) {
  for (size_t i = 0; i < g->n; i++) {
    ig_bench_samples_free(&g->v[i].ttft);
    ig_bench_samples_free(&g->v[i].e2e);
  }
  free(g->v);
  memset(g, 0, sizeof *g);
}

static void tally(ig_bench_result_t *res, const ig_bench_slo_t *slo, tally_t *t) {
  memset(t, 0, sizeof *t);
  ig_bench_samples_init(&t->ttft);
  ig_bench_samples_init(&t->tpot);
  ig_bench_samples_init(&t->e2e);
  t->sent = res->n;
  t->have_slo = ig_bench_slo_any(slo);
  const ig_bench_slo_t *gs = t->have_slo ? slo : NULL;
  /* criticality classes in their fixed order, then any model seen */
  int any_class = 0;
  for (size_t i = 0; i < res->n && !any_class; i++)
    any_class = res->recs[i].class_name != NULL;
  for (size_t k = 0; any_class && k < 3; k++)
    group_get(&t->by_class, ig_bench_class_names[k]);
  for (size_t i = 0; i < res->n; i++) {
    const ig_bench_record_t *r = &res->recs[i];
    if (r->class_name) group_add(&t->by_class, r->class_name, r, gs);
    if (r->model) group_add(&t->by_model, r->model, r, gs);
  }
  for (size_t i = 0; i < t->by_class.n; i++) {
    ig_bench_summarize(&t->by_class.v[i].ttft, &t->by_class.v[i].s_ttft);
    ig_bench_summarize(&t->by_class.v[i].e2e, &t->by_class.v[i].s_e2e);
  }
  for (size_t i = 0; i < t->by_model.n; i++) {
    ig_bench_summarize(&t->by_model.v[i].ttft, &t->by_model.v[i].s_ttft);
    ig_bench_summarize(&t->by_model.v[i].e2e, &t->by_model.v[i].s_e2e);
  }
  if (t->have_slo) ig_bench_goodput(slo, res->recs, res->n, res->wall_s, &t->good);
  for (size_t i = 0; i < res->n; i++) {
    const ig_bench_record_t *r = &res->recs[i];
    if (r->shed) {
      t->shed++;
    } else if (!r->ok) {
      t->failed++;
    } else {
      t->completed++;
      t->in_tokens += r->prompt_tokens;
      t->out_tokens += (uint64_t)(r->output_tokens > 0 ? r->output_tokens : 0);
      if (r->ttft_ms >= 0) ig_bench_samples_add(&t->ttft, r->ttft_ms);
      if (r->tpot_ms >= 0) ig_bench_samples_add(&t->tpot, r->tpot_ms);
      ig_bench_samples_add(&t->e2e, r->e2e_ms);
    }
  }
  ig_bench_summarize(&t->ttft, &t->s_ttft);
  ig_bench_summarize(&t->tpot, &t->s_tpot);
  ig_bench_summarize(&res->itl, &t->s_itl);
  ig_bench_summarize(&t->e2e, &t->s_e2e);
}

static void tally_free(tally_t *t) {
  groups_free(&t->by_class);
  groups_free(&t->by_model);
  ig_bench_samples_free(&t->ttft);
  ig_bench_samples_free(&t->tpot);
  ig_bench_samples_free(&t->e2e);
}

static double per_s(double x, double wall) {
  return wall > 0 ? x / wall : 0;
}

/* Distinct error messages with their counts, as a JSON object {message: n}. */
static json_t *error_counts(const ig_bench_result_t *res) {
  json_t *m = json_object();
  for (size_t i = 0; i < res->n; i++) {
    const char *e = res->recs[i].error;
    if (!e) continue;
    json_t *c = json_object_get(m, e);
    json_object_set_new(m, e, json_integer(c ? json_integer_value(c) + 1 : 1));
  }
  return m;
}

static void print_table(const args_t *a, const ig_bench_result_t *res, const tally_t *t) {
  const ig_bench_opts_t *o = &a->o;
  printf("infergate bench%s%s: %s, ", a->label ? " " : "", a->label ? a->label : "",
         ig_bench_wl_name(a->wl.kind));
  if (o->rate > 0 && o->burstiness != 1)
    printf("rate %g req/s (gamma arrivals, burstiness %g)", o->rate, o->burstiness);
  else if (o->rate > 0)
    printf("rate %g req/s", o->rate);
  else
    printf("concurrency %u", o->concurrency);
  printf(", %s, http://%s%s, model %s\n", o->stream ? "stream" : "no-stream", o->hostport, o->path,
         a->wl.model);
  printf("requests  sent %zu  completed %zu  failed %zu  shed %zu  (connections %zu)%s\n", t->sent,
         t->completed, t->failed, t->shed, res->connections, res->interrupted ? "  [interrupted]" : "");
  printf("duration  %.2f s  req/s %.2f  output tok/s %.1f  input tok/s %.1f\n", res->wall_s,
         per_s((double)t->completed, res->wall_s), per_s((double)t->out_tokens, res->wall_s),
         per_s((double)t->in_tokens, res->wall_s));
  printf("%-12s %10s %10s %10s %10s %8s\n", "latency ms", "mean", "p50", "p90", "p99", "n");
  const struct {
    const char *name;
    const ig_bench_summary_t *s;
  } rows[] = {{"TTFT", &t->s_ttft}, {"TPOT", &t->s_tpot}, {"ITL", &t->s_itl}, {"E2E", &t->s_e2e}};
  for (size_t i = 0; i < 4; i++)
    printf("%-12s %10.2f %10.2f %10.2f %10.2f %8zu\n", rows[i].name, rows[i].s->mean, rows[i].s->p50,
           rows[i].s->p90, rows[i].s->p99, rows[i].s->count);
  if (a->dataset_path)
    printf("dataset   %s: %zu conversations used, %zu skipped%s\n", a->dataset_path, a->dataset.n,
           a->dataset.skipped, a->dataset.truncated ? " (stopped at --dataset-max)" : "");
  if (t->have_slo) {
    printf("goodput   %.2f req/s  %zu of %zu requests (%.1f%%) met the SLO (", t->good.goodput, t->good.met,
           t->sent, 100.0 * t->good.fraction);
    const char *sep = "";
    if (a->slo.ttft_ms > 0) printf("%sTTFT <= %g ms", sep, a->slo.ttft_ms), sep = ", ";
    if (a->slo.tpot_ms > 0) printf("%sTPOT <= %g ms", sep, a->slo.tpot_ms), sep = ", ";
    if (a->slo.e2e_ms > 0) printf("%sE2E <= %g ms", sep, a->slo.e2e_ms);
    printf(")\n");
  }
  /* per class (criticality) and per model (when several were asked for) */
  const groups_t *gl[2] = {&t->by_class, t->by_model.n > 1 ? &t->by_model : NULL};
  for (size_t k = 0; k < 2; k++) {
    if (!gl[k] || !gl[k]->n) continue;
    printf("%-16s %6s %6s %6s %6s %10s %10s %10s %10s%s\n", k ? "model" : "class", "sent", "done", "failed",
           "shed", "TTFT p50", "TTFT p90", "TTFT p99", "E2E p90", t->have_slo ? "   SLO met" : "");
    for (size_t i = 0; i < gl[k]->n; i++) {
      const group_t *g = &gl[k]->v[i];
      printf("%-16.16s %6zu %6zu %6zu %6zu %10.2f %10.2f %10.2f %10.2f", g->name, g->sent, g->completed,
             g->failed, g->shed, g->s_ttft.p50, g->s_ttft.p90, g->s_ttft.p99, g->s_e2e.p90);
      if (t->have_slo) printf(" %8.1f%%", g->sent ? 100.0 * (double)g->slo_met / (double)g->sent : 0.0);
      printf("\n");
    }
  }
  json_t *errs = error_counts(res);
  const char *k;
  json_t *v;
  int shown = 0;
  json_object_foreach(errs, k, v) {
    if (shown++ == 5) {
      printf("  ... %zu more distinct errors\n", json_object_size(errs) - 5);
      break;
    }
    printf("error  %" JSON_INTEGER_FORMAT " x %s\n", json_integer_value(v), k);
  }
  json_decref(errs);
  fflush(stdout);
}

static json_t *summary_json(const ig_bench_summary_t *s) {
  return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)s->count, "mean", s->mean,
                   "stddev", s->stddev, "min", s->min, "max", s->max, "p50", s->p50, "p90", s->p90, "p95",
                   s->p95, "p99", s->p99);
}

/* A JSON string, or a placeholder when s is not valid UTF-8 (argv can hold anything). */
static json_t *jstr(const char *s) {
  json_t *j = json_string(s);
  return j ? j : json_string("(invalid UTF-8)");
}

static json_t *opt_real(double x) {
  return x >= 0 ? json_real(x) : json_null();
}

/* {"NAME": {"sent", "completed", "failed", "shed", "ttft_ms": {...}, "e2e_ms": {...}}, ...}, or null. */
static json_t *groups_json(const groups_t *g, int have_slo) {
  if (!g->n) return json_null();
  json_t *o = json_object();
  for (size_t i = 0; i < g->n; i++) {
    const group_t *x = &g->v[i];
    json_t *j =
        json_pack("{s:I,s:I,s:I,s:I,s:o,s:o}", "sent", (json_int_t)x->sent, "completed",
                  (json_int_t)x->completed, "failed", (json_int_t)x->failed, "shed", (json_int_t)x->shed,
                  "ttft_ms", summary_json(&x->s_ttft), "e2e_ms", summary_json(&x->s_e2e));
    json_object_set_new(j, "slo_met", have_slo ? json_integer((json_int_t)x->slo_met) : json_null());
    json_object_set_new(o, x->name, j);
  }
  return o;
}

static json_t *opt_ms(double x) {
  return x > 0 ? json_real(x) : json_null();
}

static int write_json(const args_t *a, const ig_bench_result_t *res, const tally_t *t) {
  const ig_bench_opts_t *o = &a->o;
  json_t *sum = json_object();
  json_object_set_new(sum, "label", a->label ? jstr(a->label) : json_null());
  json_object_set_new(sum, "url", jstr(a->url));
  json_object_set_new(sum, "endpoint", json_string(o->path));
  json_object_set_new(sum, "model", jstr(a->wl.model));
  json_object_set_new(sum, "workload", json_string(ig_bench_wl_name(a->wl.kind)));
  json_object_set_new(sum, "mode", json_string(o->rate > 0 ? "rate" : "concurrency"));
  json_object_set_new(sum, "rate", o->rate > 0 ? json_real(o->rate) : json_null());
  json_object_set_new(sum, "concurrency", o->rate > 0 ? json_null() : json_integer(o->concurrency));
  json_object_set_new(sum, "stream", json_boolean(o->stream));
  json_object_set_new(sum, "seed", json_integer((json_int_t)o->seed));
  json_object_set_new(sum, "arrival",
                      o->rate > 0 ? json_string(a->arrival == 2 ? "gamma" : "poisson") : json_null());
  json_object_set_new(sum, "burstiness", o->rate > 0 ? json_real(o->burstiness) : json_null());
  json_object_set_new(sum, "max_tokens_cap",
                      a->wl.max_tokens_cap ? json_integer(a->wl.max_tokens_cap) : json_null());
  if (a->dataset_path)
    json_object_set_new(sum, "dataset",
                        json_pack("{s:o,s:s,s:I,s:I,s:b}", "path", jstr(a->dataset_path), "format",
                                  a->dataset.is_array ? "json" : "jsonl", "entries", (json_int_t)a->dataset.n,
                                  "skipped", (json_int_t)a->dataset.skipped, "truncated",
                                  a->dataset.truncated));
  else
    json_object_set_new(sum, "dataset", json_null());
  if (t->have_slo) {
    json_object_set_new(sum, "slo",
                        json_pack("{s:o,s:o,s:o}", "ttft_ms", opt_ms(a->slo.ttft_ms), "tpot_ms",
                                  opt_ms(a->slo.tpot_ms), "e2e_ms", opt_ms(a->slo.e2e_ms)));
    json_object_set_new(sum, "goodput", json_real(t->good.goodput));
    json_object_set_new(sum, "goodput_requests", json_integer((json_int_t)t->good.met));
    json_object_set_new(sum, "goodput_fraction", json_real(t->good.fraction));
  } else {
    json_object_set_new(sum, "slo", json_null());
    json_object_set_new(sum, "goodput", json_null());
    json_object_set_new(sum, "goodput_requests", json_null());
    json_object_set_new(sum, "goodput_fraction", json_null());
  }
  json_object_set_new(sum, "requests_sent", json_integer((json_int_t)t->sent));
  json_object_set_new(sum, "completed", json_integer((json_int_t)t->completed));
  json_object_set_new(sum, "failed", json_integer((json_int_t)t->failed));
  json_object_set_new(sum, "shed", json_integer((json_int_t)t->shed));
  json_object_set_new(sum, "connections", json_integer((json_int_t)res->connections));
  json_object_set_new(sum, "interrupted", json_boolean(res->interrupted));
  json_object_set_new(sum, "duration_s", json_real(res->wall_s));
  json_object_set_new(sum, "request_throughput", json_real(per_s((double)t->completed, res->wall_s)));
  json_object_set_new(sum, "output_throughput", json_real(per_s((double)t->out_tokens, res->wall_s)));
  json_object_set_new(sum, "input_throughput", json_real(per_s((double)t->in_tokens, res->wall_s)));
  json_object_set_new(sum, "total_input_tokens", json_integer((json_int_t)t->in_tokens));
  json_object_set_new(sum, "total_output_tokens", json_integer((json_int_t)t->out_tokens));
  json_object_set_new(sum, "percentile_method", json_string("nearest-rank"));
  json_object_set_new(sum, "ttft_ms", summary_json(&t->s_ttft));
  json_object_set_new(sum, "tpot_ms", summary_json(&t->s_tpot));
  json_object_set_new(sum, "itl_ms", summary_json(&t->s_itl));
  json_object_set_new(sum, "e2e_ms", summary_json(&t->s_e2e));
  json_t *codes = json_object();
  for (size_t i = 0; i < res->n; i++) {
    char k[16];
    snprintf(k, sizeof k, "%d", res->recs[i].status);
    json_t *c = json_object_get(codes, k);
    json_object_set_new(codes, k, json_integer(c ? json_integer_value(c) + 1 : 1));
  }
  json_object_set_new(sum, "status_counts", codes);
  json_object_set_new(sum, "errors", error_counts(res));
  json_object_set_new(sum, "by_class", groups_json(&t->by_class, t->have_slo));
  json_object_set_new(sum, "by_model", groups_json(&t->by_model, t->have_slo));

  json_t *reqs = json_array();
  for (size_t i = 0; i < res->n; i++) {
    const ig_bench_record_t *r = &res->recs[i];
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer((json_int_t)r->id));
    json_object_set_new(j, "status", json_integer(r->status));
    json_object_set_new(j, "ok", json_boolean(r->ok));
    json_object_set_new(j, "shed", json_boolean(r->shed));
    json_object_set_new(j, "error", r->error ? jstr(r->error) : json_null());
    json_object_set_new(j, "prompt_tokens", json_integer(r->prompt_tokens));
    json_object_set_new(j, "max_tokens", json_integer(r->max_tokens));
    json_object_set_new(j, "output_tokens", json_integer(r->output_tokens));
    json_object_set_new(j, "chunks", json_integer((json_int_t)r->chunks));
    json_object_set_new(j, "start_ms", json_real(r->start_ms));
    json_object_set_new(j, "ttft_ms", opt_real(r->ttft_ms));
    json_object_set_new(j, "tpot_ms", opt_real(r->tpot_ms));
    json_object_set_new(j, "e2e_ms", opt_real(r->e2e_ms));
    json_object_set_new(j, "itl_ms_mean", opt_real(r->itl_ms_mean));
    json_object_set_new(j, "model", jstr(r->model));
    json_object_set_new(j, "class", r->class_name ? json_string(r->class_name) : json_null());
    json_object_set_new(j, "group", r->group >= 0 ? json_integer(r->group) : json_null());
    if (t->have_slo) json_object_set_new(j, "slo_met", json_boolean(ig_bench_slo_met(&a->slo, r)));
    json_array_append_new(reqs, j);
  }
  json_t *root = json_pack("{s:o,s:o}", "summary", sum, "requests", reqs);
  int rc = json_dump_file(root, a->json_path, JSON_REAL_PRECISION(10));
  json_decref(root);
  if (rc < 0) {
    fprintf(stderr, "bench: cannot write %s: %s\n", a->json_path, strerror(errno));
    return IG_EIO;
  }
  return 0;
}

int ig_cmd_bench(int argc, char **argv) {
  args_t a;
  memset(&a, 0, sizeof a);
  a.progress = -1;
  ig_bench_wl_t wl;
  ig_bench_result_t res;
  int status = 2, rc = parse_args(&a, argc, argv);
  if (rc == 1) {
    fputs(usage_text, stdout);
    status = 0;
    goto out;
  }
  if (rc < 0) goto out;
  if (a.dataset_path) {
    char err[512];
    if (ig_bench_dataset_load(&a.dataset, a.dataset_path, a.dataset_max, err, sizeof err) < 0) {
      fprintf(stderr, "bench: --dataset %s\n", err);
      goto out;
    }
    a.wl.dataset = &a.dataset;
  }
  if (ig_bench_wl_init(&wl, &a.wl) < 0) goto out;
  status = 1;
  if (ig_bench_run(&a.o, &wl, &res) == 0) {
    tally_t t;
    tally(&res, &a.slo, &t);
    print_table(&a, &res, &t);
    status = a.json_path && write_json(&a, &res, &t) < 0 ? 1 : 0;
    tally_free(&t);
  }
  ig_bench_result_free(&res);
  ig_bench_wl_free(&wl);
out:
  ig_bench_dataset_free(&a.dataset);
  free(a.models_buf);
  return status;
}

/* `infergate bench`: options, the run, and the report (a table on stdout, optionally a JSON file
 * with the summary and every request). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    "output:\n"
    "  --json FILE            write {\"summary\": {...}, \"requests\": [...]} to FILE\n"
    "  --label NAME           label for this run in the table and the JSON\n";

typedef struct {
  ig_bench_opts_t o;
  ig_bench_wl_config_t wl;
  const char *url, *endpoint, *json_path, *label;
  char *models_buf;
  const char *models[MAX_MODELS];
  int have_output_mean, have_requests;
} args_t;

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
  if (!w->model && w->n_models) w->model = w->models[0];
  w->seed = o->seed;
  if (w->kind == IG_BENCH_WL_SHARED_PREFIX && !a->have_output_mean) w->output_mean = 256;
  if (!a->have_requests && o->duration_s <= 0)
    o->requests = w->kind == IG_BENCH_WL_SHARED_PREFIX ? (uint64_t)w->groups * w->prompts_per_group : 100;
  return parse_url(a);
}

/* ---- report ------------------------------------------------------------------------------- */

typedef struct {
  size_t sent, completed, failed, shed;
  uint64_t in_tokens, out_tokens;
  ig_bench_samples_t ttft, tpot, e2e;
  ig_bench_summary_t s_ttft, s_tpot, s_itl, s_e2e;
} tally_t;

static void tally(ig_bench_result_t *res, tally_t *t) {
  memset(t, 0, sizeof *t);
  ig_bench_samples_init(&t->ttft);
  ig_bench_samples_init(&t->tpot);
  ig_bench_samples_init(&t->e2e);
  t->sent = res->n;
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
  if (o->rate > 0)
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
  ig_bench_wl_t wl;
  ig_bench_result_t res;
  int status = 2, rc = parse_args(&a, argc, argv);
  if (rc == 1) {
    fputs(usage_text, stdout);
    status = 0;
    goto out;
  }
  if (rc < 0) goto out;
  if (ig_bench_wl_init(&wl, &a.wl) < 0) goto out;
  status = 1;
  if (ig_bench_run(&a.o, &wl, &res) == 0) {
    tally_t t;
    tally(&res, &t);
    print_table(&a, &res, &t);
    status = a.json_path && write_json(&a, &res, &t) < 0 ? 1 : 0;
    tally_free(&t);
  }
  ig_bench_result_free(&res);
  ig_bench_wl_free(&wl);
out:
  free(a.models_buf);
  return status;
}

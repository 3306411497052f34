/* infergate demo: fresh simulated pods + one target (nginx, HAProxy, infergate with each policy) +
 * the same seeded load, target after target; then a side-by-side table, an HTML report and JSON. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"
#include "infergate/cmd.h"

typedef enum { K_NGINX, K_HAPROXY, K_SERVE } kind_t;

typedef struct {
  const char *id;
  const char *name;
  kind_t kind;
  const char *policy; /* serve: --policy (NULL = inference pool); nginx: balancing directive or NULL */
} target_t;

/* In table order; the first one present is the baseline of the TTFT ratio. */
static const target_t targets[] = {
    {"nginx-rr", "nginx round-robin", K_NGINX, NULL},
    {"nginx-leastconn", "nginx least_conn", K_NGINX, "least_conn"},
    {"haproxy-leastconn", "HAProxy leastconn", K_HAPROXY, "leastconn"},
    {"infergate-rr", "infergate round-robin", K_SERVE, "round-robin"},
    {"infergate-lr", "infergate least-request", K_SERVE, "least-request"},
    {"infergate", "infergate inference pool", K_SERVE, NULL},
};
#define N_TARGETS (sizeof targets / sizeof targets[0])

#define MODEL "llama3"
#define LORAS "lora-sql,lora-chat,lora-code,lora-math,lora-law,lora-med"

/* Growable NULL-terminated argv of owned strings. */
typedef struct {
  char **v;
  size_t n, cap;
} argv_t;

static void av_push(argv_t *a, const char *s) {
  if (a->n + 2 > a->cap) {
    a->cap = a->cap ? a->cap * 2 : 32;
    a->v = ig_realloc(a->v, a->cap * sizeof *a->v);
  }
  a->v[a->n++] = ig_strdup(s);
  a->v[a->n] = NULL;
}

static void av_pushf(argv_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void av_pushf(argv_t *a, const char *fmt, ...) {
  ig_buf_t b;
  ig_buf_init(&b);
  va_list ap;
  va_start(ap, fmt);
  ig_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  av_push(a, b.data);
  ig_buf_free(&b);
}

static void av_free(argv_t *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
  memset(a, 0, sizeof *a);
}

/* Joins v[from..] with spaces, quoting words that need it (for display only). */
static void av_join(ig_buf_t *b, char *const *v, size_t from, size_t n) {
  for (size_t i = from; i < n; i++) {
    if (i > from) ig_buf_puts(b, " ");
    if (strpbrk(v[i], " \t\"'$\\;&|<>*?()")) {
      ig_buf_puts(b, "'");
      for (const char *p = v[i]; *p; p++)
        if (*p == '\'')
          ig_buf_puts(b, "'\\''");
        else
          ig_buf_append(b, p, 1);
      ig_buf_puts(b, "'");
    } else {
      ig_buf_puts(b, v[i]);
    }
  }
}

typedef struct {
  /* options */
  const char *mode;
  int pods;
  const char *workload;
  const char *report;
  const char *json;
  unsigned long seed;
  int keep_going;
  int verbose;
  const char *only;      /* --targets id,id */
  double rate_per_pod;   /* simulated requests per second per pod */
  double opt_time_scale; /* --time-scale, 0 = the mode's */
  int opt_groups;        /* --groups (shared-prefix), 0 = the mode's */
  const char *opt_slo;   /* --slo, in simulated time; NULL = the workload's default */
  /* derived */
  char self[PATH_MAX];
  char work[PATH_MAX];
  const char *nginx, *haproxy;
  argv_t sim_args;  /* after "sim --pods N --base-port P" */
  argv_t load_args; /* after "bench --url U" */
  double time_scale;
  ig_demo_slo_t slo;  /* in simulated ms; the bench gets it divided by time_scale */
  char slo_text[160]; /* the SLO in words, wall and simulated */
  long requests;
  double rate;
  /* live children */
  ig_demo_child_t sim, target, bench;
} demo_t;

static void usage(FILE *f) {
  fprintf(f,
          "usage: infergate demo [--quick|--full] [--pods N] [--workload W] [--report PATH] [--json PATH]\n"
          "                      [--seed S] [--rate-per-pod R] [--time-scale X] [--groups G] [--slo SPEC]\n"
          "                      [--keep-going] [--targets ID,ID...] [--verbose]\n"
          "\n"
          "Runs simulated vLLM pods, puts each target in front of FRESH pods in turn and sends the same\n"
          "seeded load through it with infergate bench; prints a side-by-side table and writes a\n"
          "self-contained HTML report (TTFT CDF, throughput over time).\n"
          "\n"
          "  --quick              ~30 s: 4 pods (unless --pods), a few dozen requests per target\n"
          "  --full               the long run: 1024 requests per target at simulated real time\n"
          "  --pods N             simulated pods per target (default 8; --quick 4)\n"
          "  --workload W         shared-prefix (default) | sharegpt | lora-mix | criticality\n"
          "  --report PATH        HTML report (default ./infergate-demo.html)\n"
          "  --json PATH          also write every target's bench summary and cache counters as JSON\n"
          "  --seed S             seed of the load and the pods (default 1)\n"
          "  --rate-per-pod R     offered load: R requests per simulated second per pod (default:\n"
          "                       shared-prefix 6 (--full 4), about 80%% of what round robin sustains on\n"
          "                       these pods; other workloads and --quick 2; criticality offers 1.5 times\n"
          "                       more, to overload the pods)\n"
          "  --time-scale X       pods run simulated time X times faster than wall time (default 2;\n"
          "                       --full 1); the load's rate follows\n"
          "  --groups G           shared-prefix groups of 16 prompts (default 64; --quick 8 groups of 4)\n"
          "  --slo SPEC           goodput objectives in simulated GPU time, e.g. ttft=500ms,tpot=50ms\n"
          "                       (the default; us, ms or s), divided by the time scale for the bench\n"
          "  --keep-going         a target that fails is reported and the others still run\n"
          "  --targets LIST       only these targets (ids below)\n"
          "  --verbose            print the child command lines\n"
          "\n"
          "targets: nginx-rr, nginx-leastconn, haproxy-leastconn (when nginx/haproxy are installed),\n"
          "         infergate-rr, infergate-lr (backend policies), infergate (inference pool, default\n"
          "         scheduler profile). Exit status: 0, 1 when a target failed, 2 on bad usage, 130 when\n"
          "         interrupted (every child is stopped first).\n");
}

/* Looks for an executable in PATH and the sbin directories (nginx and haproxy live there). */
static const char *find_exe(const char *name, char *out, size_t cap) {
  const char *path = getenv("PATH");
  char dirs[4096];
  snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/local/sbin:/sbin", path ? path : "/usr/bin:/bin");
  char *save = NULL;
  for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    if (!*d) continue;
    snprintf(out, cap, "%s/%s", d, name);
    if (access(out, X_OK) == 0) return out;
  }
  return NULL;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(p);
  return 0;
}

static void print_log_tail(const char *path, size_t max) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  long from = sz > (long)max ? sz - (long)max : 0;
  fseek(f, from, SEEK_SET);
  char buf[4096];
  size_t k;
  fprintf(stderr, "--- %s (last %ld bytes) ---\n", path, sz - from);
  while ((k = fread(buf, 1, sizeof buf, f)) > 0)
    fwrite(buf, 1, k, stderr);
  fclose(f);
}

/* Whether a child's log holds a sanitizer report (from a sanitized build of infergate). */
static int log_has_sanitizer_report(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[1024];
  int found = 0;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, "ERROR: AddressSanitizer") || strstr(line, "ERROR: LeakSanitizer") ||
            strstr(line, "runtime error:");
  fclose(f);
  return found;
}

/* Stops the run's children (bench, target, pods), then passes on any sanitizer report they wrote. */
static void stop_all(demo_t *d) {
  ig_demo_child_t *cs[] = {&d->bench, &d->target, &d->sim};
  ig_demo_stop(cs, 3, 5000);
  for (size_t i = 0; i < 3; i++)
    if (cs[i]->log[0] && log_has_sanitizer_report(cs[i]->log)) {
      fprintf(stderr, "infergate demo: %s reported a sanitizer error:\n", cs[i]->name);
      print_log_tail(cs[i]->log, 6000);
    }
}

static int spawn(demo_t *d, ig_demo_child_t *c, const char *name, argv_t *av, const char *tid) {
  char log[PATH_MAX + 128];
  snprintf(log, sizeof log, "%s/%s-%s.log", d->work, tid, name);
  if (d->verbose) {
    ig_buf_t b;
    ig_buf_init(&b);
    av_join(&b, av->v, 0, av->n);
    printf("    $ %s\n", b.data);
    ig_buf_free(&b);
    fflush(stdout);
  }
  return ig_demo_spawn(c, name, av->v, log);
}

/* Waits until port accepts connections, while child c lives. Returns 0, IG_ETIMEDOUT, IG_ECLOSED (the
 * child exited) or IG_EAGAIN (interrupted). */
static int wait_port(ig_demo_child_t *c, int port, int timeout_ms) {
  uint64_t deadline = ig_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    if (ig_demo_interrupted()) return IG_EAGAIN;
    if (ig_demo_port_open(port)) return 0;
    if (!ig_demo_alive(c)) return IG_ECLOSED;
    if (ig_now_ms() >= deadline) return IG_ETIMEDOUT;
    ig_demo_sleep_ms(25);
  }
}

static int write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "w");
  if (!f) return IG_EIO;
  size_t k = fwrite(data, 1, len, f);
  int rc = fclose(f);
  return k == len && rc == 0 ? 0 : IG_EIO;
}

/* nginx.conf for one run: foreground, one worker, every path in dir, keep-alive upstream, SSE unbuffered. */
static void nginx_conf(ig_buf_t *b, const char *dir, const target_t *t, int listen, int base, int pods) {
  ig_buf_puts(b, "worker_processes 1;\ndaemon off;\n");
  if (geteuid() == 0) {
    /* as root, workers would switch to nobody and could not enter the private temp dir */
    struct passwd *pw = getpwuid(geteuid());
    struct group *gr = getgrgid(getegid());
    if (pw && gr) ig_buf_printf(b, "user %s %s;\n", pw->pw_name, gr->gr_name);
  }
  ig_buf_printf(b, "pid %s/nginx.pid;\nerror_log %s/nginx-error.log warn;\n", dir, dir);
  ig_buf_puts(b, "events { worker_connections 4096; }\nhttp {\n  access_log off;\n");
  ig_buf_printf(b,
                "  client_body_temp_path %s/client_body;\n  proxy_temp_path %s/proxy;\n"
                "  fastcgi_temp_path %s/fastcgi;\n  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n",
                dir, dir, dir, dir, dir);
  ig_buf_puts(b, "  client_max_body_size 64m;\n  client_body_buffer_size 1m;\n  upstream pods {\n");
  if (t->policy) ig_buf_printf(b, "    %s;\n", t->policy);
  for (int i = 0; i < pods; i++)
    ig_buf_printf(b, "    server 127.0.0.1:%d max_fails=0;\n", base + i);
  ig_buf_puts(b, "    keepalive 64;\n  }\n  server {\n");
  ig_buf_printf(b, "    listen 127.0.0.1:%d;\n", listen);
  ig_buf_puts(b, "    location / {\n      proxy_pass http://pods;\n      proxy_http_version 1.1;\n"
                 "      proxy_set_header Connection \"\";\n      proxy_buffering off;\n"
                 "      proxy_read_timeout 300s;\n    }\n  }\n}\n");
}

/* haproxy.cfg for one run: one thread, HTTP mode, keep-alive to the pods, leastconn. */
static void haproxy_cfg(ig_buf_t *b, const target_t *t, int listen, int base, int pods) {
  ig_buf_puts(b, "global\n  nbthread 1\n  maxconn 4096\n\ndefaults\n  mode http\n  timeout connect 5s\n"
                 "  timeout client 300s\n  timeout server 300s\n  http-reuse always\n"
                 "  option http-no-delay\n\n" /* SSE: forward each small chunk at once */);
  ig_buf_printf(b, "frontend fe\n  bind 127.0.0.1:%d\n  default_backend pods\n\nbackend pods\n  balance %s\n",
                listen, t->policy ? t->policy : "roundrobin");
  for (int i = 0; i < pods; i++)
    ig_buf_printf(b, "  server p%d 127.0.0.1:%d\n", i, base + i);
}

/* Records why r did not run; prints the logs of the children that matter. */
static void target_failed(demo_t *d, ig_demo_result_t *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void target_failed(demo_t *d, ig_demo_result_t *r, const char *fmt, ...) {
  ig_buf_t b;
  ig_buf_init(&b);
  va_list ap;
  va_start(ap, fmt);
  ig_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  free(r->error);
  r->error = b.data;
  fprintf(stderr, "infergate demo: %s: %s\n", r->name, r->error);
  ig_demo_child_t *cs[] = {&d->sim, &d->target, &d->bench};
  for (size_t i = 0; i < 3; i++)
    if (cs[i]->log[0]) print_log_tail(cs[i]->log, 2000);
}

/* Runs one target end to end. Returns 0 (r filled, or r->error set) or IG_EAGAIN when interrupted. */
static int run_target(demo_t *d, const target_t *t, ig_demo_result_t *r) {
  int rc = 0;
  argv_t av = {0};
  ig_buf_t cfg, eps, metrics;
  ig_buf_init(&cfg);
  ig_buf_init(&eps);
  ig_buf_init(&metrics);
  memset(&d->sim, 0, sizeof d->sim);
  memset(&d->target, 0, sizeof d->target);
  memset(&d->bench, 0, sizeof d->bench);
  uint64_t t0 = ig_now_ms();

  int base = ig_demo_free_ports(d->pods), gw = ig_demo_free_ports(1);
  if (base < 0 || gw < 0) {
    target_failed(d, r, "no free ports");
    goto out;
  }
  /* fresh pods: no prefix cache, no LoRA residency carried over from the previous target */
  av_push(&av, d->self);
  av_push(&av, "sim");
  av_pushf(&av, "--pods=%d", d->pods);
  av_pushf(&av, "--base-port=%d", base);
  for (size_t i = 0; i < d->sim_args.n; i++)
    av_push(&av, d->sim_args.v[i]);
  if (spawn(d, &d->sim, "sim", &av, t->id) != 0) {
    target_failed(d, r, "cannot start the simulator");
    goto out;
  }
  av_free(&av);
  for (int i = 0; i < d->pods; i++) {
    int w = wait_port(&d->sim, base + i, 30000);
    if (w == IG_EAGAIN) goto interrupted;
    if (w) {
      target_failed(d, r, "simulated pod %d did not listen on port %d (%s)", i, base + i, ig_strerror(w));
      goto out;
    }
  }
  for (int i = 0; i < d->pods; i++)
    ig_buf_printf(&eps, "%s127.0.0.1:%d", i ? "," : "", base + i);

  char dir[PATH_MAX + 64];
  snprintf(dir, sizeof dir, "%s/%s", d->work, t->id);
  mkdir(dir, 0700);
  if (t->kind == K_NGINX) {
    char path[PATH_MAX + 96];
    snprintf(path, sizeof path, "%s/nginx.conf", dir);
    nginx_conf(&cfg, dir, t, gw, base, d->pods);
    if (write_file(path, cfg.data, cfg.len) != 0) {
      target_failed(d, r, "cannot write %s", path);
      goto out;
    }
    av_push(&av, d->nginx);
    av_push(&av, "-p");
    av_push(&av, dir);
    av_push(&av, "-c");
    av_push(&av, path);
    av_push(&av, "-e");
    av_pushf(&av, "%s/nginx-error.log", dir);
  } else if (t->kind == K_HAPROXY) {
    char path[PATH_MAX + 96];
    snprintf(path, sizeof path, "%s/haproxy.cfg", dir);
    haproxy_cfg(&cfg, t, gw, base, d->pods);
    if (write_file(path, cfg.data, cfg.len) != 0) {
      target_failed(d, r, "cannot write %s", path);
      goto out;
    }
    av_push(&av, d->haproxy);
    av_push(&av, "-db");
    av_push(&av, "-f");
    av_push(&av, path);
  } else {
    av_push(&av, d->self);
    av_push(&av, "serve");
    av_pushf(&av, "--listen=127.0.0.1:%d", gw);
    av_push(&av, "--log-level=warn");
    if (t->policy) {
      av_pushf(&av, "--backend=%s", eps.data);
      av_pushf(&av, "--policy=%s", t->policy);
    } else {
      av_pushf(&av, "--pool=%s", eps.data);
      av_push(&av, "--model=" MODEL);
      if (!strcmp(d->workload, "lora-mix")) {
        char names[] = LORAS, *save = NULL;
        for (char *m = strtok_r(names, ",", &save); m; m = strtok_r(NULL, ",", &save))
          av_pushf(&av, "--model=%s", m);
      }
    }
  }
  if (spawn(d, &d->target, "target", &av, t->id) != 0) {
    target_failed(d, r, "cannot start %s", av.v[0]);
    goto out;
  }
  av_free(&av);
  int w = wait_port(&d->target, gw, 30000);
  if (w == IG_EAGAIN) goto interrupted;
  if (w) {
    target_failed(d, r, "did not listen on port %d (%s)", gw, ig_strerror(w));
    goto out;
  }
  ig_demo_sleep_ms(300); /* the same settling time for every target; the pool gets its first scrape */

  char json_path[PATH_MAX + 64];
  snprintf(json_path, sizeof json_path, "%s/%s.json", d->work, t->id);
  av_push(&av, d->self);
  av_push(&av, "bench");
  av_pushf(&av, "--url=http://127.0.0.1:%d", gw);
  for (size_t i = 0; i < d->load_args.n; i++)
    av_push(&av, d->load_args.v[i]);
  av_pushf(&av, "--label=%s", t->id);
  av_pushf(&av, "--json=%s", json_path);
  if (spawn(d, &d->bench, "bench", &av, t->id) != 0) {
    target_failed(d, r, "cannot start the load generator");
    goto out;
  }
  av_free(&av);
  /* bounded: the load's own length, several times over, plus the per-request timeout */
  double expect_s = d->rate > 0 ? (double)d->requests / d->rate : 60.0;
  uint64_t deadline = ig_now_ms() + (uint64_t)(expect_s * 4000.0) + 120000;
  while (ig_demo_alive(&d->bench)) {
    if (ig_demo_interrupted()) goto interrupted;
    if (ig_now_ms() >= deadline) {
      target_failed(d, r, "the load did not finish in time");
      goto out;
    }
    if (!ig_demo_alive(&d->target)) break; /* bench will fail its requests; keep what it measured */
    ig_demo_sleep_ms(20);
  }
  if (!ig_demo_alive(&d->target) && t->kind == K_SERVE && ig_demo_alive(&d->bench)) {
    target_failed(d, r, "the target exited during the load");
    goto out;
  }
  {
    ig_demo_child_t *b1[] = {&d->bench};
    ig_demo_stop(b1, 1, 5000); /* reaps it (already exited unless the target died) */
  }
  /* the pods' own prefix-cache counters: how much prefill the routing saved */
  for (int i = 0; i < d->pods; i++) {
    ig_buf_reset(&metrics);
    double h, q;
    if (ig_demo_http_get(base + i, "/metrics", &metrics) == 0 &&
        ig_demo_parse_prefix_counters(metrics.data ? metrics.data : "", metrics.len, &h, &q) == 0) {
      r->cache_hits += h;
      r->cache_queries += q;
    }
  }
  json_error_t jerr;
  json_t *root = json_load_file(json_path, 0, &jerr);
  if (!root) {
    target_failed(d, r, "no bench results (%s)", jerr.text);
    goto out;
  }
  double hits = r->cache_hits, queries = r->cache_queries;
  if (ig_demo_result_from_json(r, root) != 0) {
    json_decref(root);
    target_failed(d, r, "malformed bench results");
    goto out;
  }
  json_decref(root);
  r->cache_hits = hits;
  r->cache_queries = queries;
  double hit = ig_demo_hit_pct(r);
  printf(
      "    completed %ld, failed %ld, shed %ld; TTFT p50 %.1f ms p90 %.1f ms; prefix hit %s%.1f%s (%.1f s)\n",
      r->completed, r->failed, r->shed, r->ttft_p50, r->ttft_p90, hit < 0 ? "n/a " : "", hit < 0 ? 0.0 : hit,
      hit < 0 ? "" : "%", (double)(ig_now_ms() - t0) / 1000.0);
  fflush(stdout);
  goto out;

interrupted:
  rc = IG_EAGAIN;
out:
  stop_all(d);
  av_free(&av);
  ig_buf_free(&cfg);
  ig_buf_free(&eps);
  ig_buf_free(&metrics);
  return rc;
}

/* Fills the sim and bench arguments for the mode and workload. */
static void plan(demo_t *d) {
  int quick = !strcmp(d->mode, "quick"), full = !strcmp(d->mode, "full");
  /* shared-prefix: DESIGN.md's 64 groups x 16 prompts (2048-token system prompt, 128-token question),
   * with shorter outputs outside --full so that six targets fit in about a minute */
  int groups = d->opt_groups > 0 ? d->opt_groups : quick ? 8 : 64, per = quick ? 4 : 16;
  int sys = quick ? 1024 : 2048, out = quick ? 32 : full ? 128 : 64, kv = quick ? 1200 : 3000;
  d->time_scale = d->opt_time_scale > 0 ? d->opt_time_scale : full ? 1 : 2;
  d->requests = (long)groups * per;
  /* Default load. shared-prefix: about 80% of what round robin sustains on these pods (measured ~7.3
   * requests per simulated second per pod with 64 output tokens, ~5.2 with --full's 128: most requests
   * it sends land on a pod without the group's prefix and cost a 2,176-token prefill), so prefill
   * queueing shows but no target is overloaded: 6, --full 4. Otherwise (and --quick, a smoke test) 2:
   * busy enough that routing matters. See docs/benchmarks.md. */
  if (!(d->rate_per_pod > 0))
    d->rate_per_pod = quick || strcmp(d->workload, "shared-prefix") ? 2.0 : full ? 4.0 : 6.0;
  double sim_rate = d->rate_per_pod * d->pods;
  if (!strcmp(d->workload, "criticality")) sim_rate *= 1.5; /* overload, so that Sheddable gets shed */
  d->rate = sim_rate * d->time_scale;

  argv_t *s = &d->sim_args;
  av_push(s, "--model=" MODEL);
  av_push(s, "--profile=llama3-8b-a100");
  av_pushf(s, "--kv-blocks=%d", kv);
  av_pushf(s, "--time-scale=%g", d->time_scale);
  av_pushf(s, "--seed=%lu", d->seed);
  if (!strcmp(d->workload, "lora-mix")) {
    av_push(s, "--lora=" LORAS);
    av_push(s, "--max-loras=2");
  }

  argv_t *l = &d->load_args;
  av_push(l, "--model=" MODEL);
  av_pushf(l, "--workload=%s", d->workload);
  if (!strcmp(d->workload, "shared-prefix")) {
    av_pushf(l, "--groups=%d", groups);
    av_pushf(l, "--prompts-per-group=%d", per);
    av_pushf(l, "--system-len=%d", sys);
    av_push(l, "--question-len=128");
  } else {
    av_pushf(l, "--requests=%ld", d->requests);
    if (!strcmp(d->workload, "lora-mix")) av_push(l, "--models=" MODEL "," LORAS);
  }
  av_pushf(l, "--output-mean=%d", out);
  av_pushf(l, "--rate=%g", d->rate);
  av_pushf(l, "--seed=%lu", d->seed);
  av_push(l, "--timeout=60");

  /* goodput objectives: simulated GPU time, the same for every workload for now (a TTFT a chat user
   * accepts and a reading-speed TPOT), measured in wall time, so divided by the time scale */
  static const struct {
    const char *workload, *slo;
  } slos[] = {{"shared-prefix", "ttft=500ms,tpot=50ms"},
              {"sharegpt", "ttft=500ms,tpot=50ms"},
              {"lora-mix", "ttft=500ms,tpot=50ms"},
              {"criticality", "ttft=500ms,tpot=50ms"}};
  const char *spec = d->opt_slo;
  for (size_t i = 0; !spec && i < sizeof slos / sizeof slos[0]; i++)
    if (!strcmp(slos[i].workload, d->workload)) spec = slos[i].slo;
  if (!spec || ig_demo_slo_parse(spec, &d->slo) != 0) memset(&d->slo, 0, sizeof d->slo); /* checked before */
  if (d->slo.ttft_ms > 0 || d->slo.tpot_ms > 0 || d->slo.e2e_ms > 0) {
    ig_buf_t b;
    ig_buf_init(&b);
    ig_buf_puts(&b, "--slo=");
    ig_demo_slo_format(&b, &d->slo, d->time_scale);
    av_push(l, b.data);
    /* in words: wall limits, then the simulated ones they stand for */
    ig_buf_reset(&b);
    const char *names[3] = {"TTFT", "TPOT", "E2E"};
    double v[3] = {d->slo.ttft_ms, d->slo.tpot_ms, d->slo.e2e_ms};
    const char *sep = "";
    for (int i = 0; i < 3; i++)
      if (v[i] > 0) ig_buf_printf(&b, "%s%s <= %g ms", sep, names[i], v[i] / d->time_scale), sep = ", ";
    if (d->time_scale != 1) {
      ig_buf_puts(&b, " wall (simulated ");
      sep = "";
      for (int i = 0; i < 3; i++)
        if (v[i] > 0) ig_buf_printf(&b, "%s%g ms", sep, v[i]), sep = " / ";
      ig_buf_printf(&b, " at time scale %g)", d->time_scale);
    }
    snprintf(d->slo_text, sizeof d->slo_text, "%s", b.data);
    ig_buf_free(&b);
  }
}

static void cpu_model(char *out, size_t cap) {
  snprintf(out, cap, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) != 0) continue;
    char *c = strchr(line, ':');
    if (!c) break;
    c++;
    while (*c == ' ' || *c == '\t')
      c++;
    c[strcspn(c, "\n")] = '\0';
    snprintf(out, cap, "%s", c);
    break;
  }
  fclose(f);
}

static json_t *jstr(const char *s) {
  json_t *j = s ? json_string(s) : json_null();
  return j ? j : json_string("(invalid UTF-8)");
}

static json_t *av_json(const argv_t *a) {
  json_t *arr = json_array();
  for (size_t i = 0; i < a->n; i++)
    json_array_append_new(arr, jstr(a->v[i]));
  return arr;
}

static int parse_args(demo_t *d, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    const char *eq = strchr(a, '=');
    char name[64];
    size_t nl = eq && a[0] == '-' && a[1] == '-' ? (size_t)(eq - a) : strlen(a);
    snprintf(name, sizeof name, "%.*s", (int)(nl < sizeof name - 1 ? nl : sizeof name - 1), a);
    int takes = !strcmp(name, "--pods") || !strcmp(name, "--workload") || !strcmp(name, "--report") ||
                !strcmp(name, "--json") || !strcmp(name, "--seed") || !strcmp(name, "--targets") ||
                !strcmp(name, "--rate-per-pod") || !strcmp(name, "--time-scale") ||
                !strcmp(name, "--groups") || !strcmp(name, "--slo");
    if (takes) {
      if (eq && nl == strlen(name))
        v = eq + 1;
      else if (i + 1 < argc)
        v = argv[++i];
      else {
        fprintf(stderr, "infergate demo: %s needs a value\n", name);
        return IG_EINVAL;
      }
    } else if (eq && a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "infergate demo: %s takes no value\n", name);
      return IG_EINVAL;
    }
    char *end;
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
      usage(stdout);
      return 1;
    } else if (!strcmp(name, "--quick") || !strcmp(name, "--full")) {
      d->mode = !strcmp(name, "--quick") ? "quick" : "full";
    } else if (!strcmp(name, "--keep-going")) {
      d->keep_going = 1;
    } else if (!strcmp(name, "--verbose") || !strcmp(name, "-v")) {
      d->verbose = 1;
    } else if (!strcmp(name, "--pods")) {
      long n = strtol(v, &end, 10);
      if (*end || end == v || n < 1 || n > 64) {
        fprintf(stderr, "infergate demo: --pods wants 1..64, got '%s'\n", v);
        return IG_EINVAL;
      }
      d->pods = (int)n;
    } else if (!strcmp(name, "--workload")) {
      if (strcmp(v, "shared-prefix") && strcmp(v, "sharegpt") && strcmp(v, "lora-mix") &&
          strcmp(v, "criticality")) {
        fprintf(
            stderr,
            "infergate demo: --workload wants shared-prefix, sharegpt, lora-mix or criticality, got '%s'\n",
            v);
        return IG_EINVAL;
      }
      d->workload = v;
    } else if (!strcmp(name, "--report")) {
      d->report = v;
    } else if (!strcmp(name, "--json")) {
      d->json = v;
    } else if (!strcmp(name, "--rate-per-pod")) {
      double x = strtod(v, &end);
      if (*end || end == v || !(x > 0 && x <= 1000)) {
        fprintf(stderr, "infergate demo: --rate-per-pod wants a number in (0, 1000], got '%s'\n", v);
        return IG_EINVAL;
      }
      d->rate_per_pod = x;
    } else if (!strcmp(name, "--time-scale")) {
      double x = strtod(v, &end);
      if (*end || end == v || !(x >= 0.1 && x <= 100)) {
        fprintf(stderr, "infergate demo: --time-scale wants a number in [0.1, 100], got '%s'\n", v);
        return IG_EINVAL;
      }
      d->opt_time_scale = x;
    } else if (!strcmp(name, "--groups")) {
      long g = strtol(v, &end, 10);
      if (*end || end == v || g < 1 || g > 4096) {
        fprintf(stderr, "infergate demo: --groups wants 1..4096, got '%s'\n", v);
        return IG_EINVAL;
      }
      d->opt_groups = (int)g;
    } else if (!strcmp(name, "--slo")) {
      ig_demo_slo_t tmp;
      if (ig_demo_slo_parse(v, &tmp) != 0) {
        fprintf(stderr,
                "infergate demo: --slo wants ttft=T,tpot=T,e2e=T (any of them, T > 0 in us, ms or s), got "
                "'%s'\n",
                v);
        return IG_EINVAL;
      }
      d->opt_slo = v;
    } else if (!strcmp(name, "--targets")) {
      d->only = v;
    } else if (!strcmp(name, "--seed")) {
      errno = 0;
      unsigned long s = strtoul(v, &end, 10);
      if (*end || end == v || errno || v[0] == '-') {
        fprintf(stderr, "infergate demo: --seed wants a non-negative integer, got '%s'\n", v);
        return IG_EINVAL;
      }
      d->seed = s;
    } else {
      fprintf(stderr, "infergate demo: unknown option '%s'\n", a);
      usage(stderr);
      return IG_EINVAL;
    }
  }
  return 0;
}

/* Whether target id is in the comma-separated list (NULL = all). */
static int selected(const char *list, const char *id) {
  if (!list) return 1;
  size_t n = strlen(id);
  for (const char *p = list; *p;) {
    const char *c = strchr(p, ',');
    size_t k = c ? (size_t)(c - p) : strlen(p);
    if (k == n && !memcmp(p, id, n)) return 1;
    p += k + (c ? 1 : 0);
  }
  return 0;
}

int ig_cmd_demo(int argc, char **argv) {
  demo_t d;
  memset(&d, 0, sizeof d);
  d.mode = "default";
  d.pods = -1;
  d.workload = "shared-prefix";
  d.report = "infergate-demo.html";
  d.seed = 1;
  d.rate_per_pod = 0; /* plan() picks the workload's default */
  int prc = parse_args(&d, argc, argv);
  if (prc) return prc > 0 ? 0 : 2;
  if (d.pods < 0) d.pods = !strcmp(d.mode, "quick") ? 4 : 8;
  if (d.only) {
    for (const char *p = d.only; *p;) {
      const char *c = strchr(p, ',');
      size_t k = c ? (size_t)(c - p) : strlen(p);
      int known = 0;
      for (size_t i = 0; i < N_TARGETS; i++)
        if (strlen(targets[i].id) == k && !memcmp(targets[i].id, p, k)) known = 1;
      if (!known) {
        fprintf(stderr, "infergate demo: unknown target '%.*s'\n", (int)k, p);
        return 2;
      }
      p += k + (c ? 1 : 0);
    }
  }

  ssize_t sl = readlink("/proc/self/exe", d.self, sizeof d.self - 1);
  if (sl <= 0) {
    fprintf(stderr, "infergate demo: cannot find my own binary (/proc/self/exe)\n");
    return 1;
  }
  d.self[sl] = '\0';
  char nginx[PATH_MAX], haproxy[PATH_MAX];
  d.nginx = find_exe("nginx", nginx, sizeof nginx);
  d.haproxy = find_exe("haproxy", haproxy, sizeof haproxy);

  const char *tmp = getenv("TMPDIR");
  snprintf(d.work, sizeof d.work, "%s/infergate-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(d.work)) {
    fprintf(stderr, "infergate demo: cannot create a temporary directory: %s\n", strerror(errno));
    return 1;
  }
  ig_demo_signals_install();
  plan(&d);

  ig_demo_result_t rows[N_TARGETS];
  const target_t *run[N_TARGETS];
  size_t n = 0, base = N_TARGETS;
  memset(rows, 0, sizeof rows);
  for (size_t i = 0; i < N_TARGETS; i++) {
    const target_t *t = &targets[i];
    if (!selected(d.only, t->id)) continue;
    if ((t->kind == K_NGINX && !d.nginx) || (t->kind == K_HAPROXY && !d.haproxy)) {
      printf("(skipping %s: %s is not installed)\n", t->name, t->kind == K_NGINX ? "nginx" : "haproxy");
      continue;
    }
    rows[n].id = t->id;
    rows[n].name = t->name;
    run[n++] = t;
  }
  for (size_t i = 0; i < n && base == N_TARGETS; i++)
    if (!strcmp(run[i]->id, "nginx-rr")) base = i;
  for (size_t i = 0; i < n && base == N_TARGETS; i++)
    if (!strcmp(run[i]->id, "infergate-rr")) base = i;
  if (base == N_TARGETS) base = n; /* no baseline among the selected targets */

  ig_buf_t line;
  ig_buf_init(&line);
  av_join(&line, d.load_args.v, 0, d.load_args.n);
  printf("infergate demo (%s): %d pods per target, workload %s, %zu targets\n", d.mode, d.pods, d.workload,
         n);
  printf("load: infergate bench %s\n", line.data);
  fflush(stdout);

  int status = 0;
  size_t done = 0;
  for (size_t i = 0; i < n; i++) {
    printf("==> [%zu/%zu] %s\n", i + 1, n, run[i]->name);
    fflush(stdout);
    if (run_target(&d, run[i], &rows[i]) == IG_EAGAIN) {
      fprintf(stderr, "infergate demo: interrupted; every child process was stopped\n");
      status = 130;
      break;
    }
    done = i + 1;
    if (!rows[i].ran) {
      status = 1;
      if (!d.keep_going) break;
    } else if (rows[i].completed == 0) {
      status = 1;
    }
  }
  if (status == 130) goto out;
  if (done < n) n = done; /* a failure without --keep-going: report what ran */

  ig_buf_t b;
  ig_buf_init(&b);
  ig_demo_table_text(&b, rows, n, base);
  printf("\n%s", b.data ? b.data : "");
  if (base < n)
    printf(
        "(latencies: wall ms; pods ran simulated time x%g; prefix hit = cached / queried prompt tokens over "
        "the pods; ratio vs %s)\n",
        d.time_scale, rows[base].name);
  if (d.slo_text[0])
    printf("(goodput: successful requests/s meeting %s; in parentheses, %% of requests sent)\n", d.slo_text);
  ig_buf_reset(&b);

  /* the report */
  ig_buf_t cmdline, simline;
  ig_buf_init(&cmdline);
  ig_buf_init(&simline);
  ig_buf_puts(&cmdline, "infergate ");
  av_join(&cmdline, argv, 0, (size_t)argc);
  ig_buf_printf(&simline, "infergate sim --pods=%d --base-port=PORT ", d.pods);
  av_join(&simline, d.sim_args.v, 0, d.sim_args.n);
  ig_buf_reset(&line);
  ig_buf_puts(&line, "infergate bench --url=http://127.0.0.1:PORT ");
  av_join(&line, d.load_args.v, 0, d.load_args.n);
  char cpu[256], date[64];
  cpu_model(cpu, sizeof cpu);
  time_t now = time(NULL);
  struct tm tmv;
  gmtime_r(&now, &tmv);
  strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tmv);
  int nproc = (int)sysconf(_SC_NPROCESSORS_ONLN);
  ig_demo_meta_t meta = {.title = "infergate demo",
                         .command = cmdline.data,
                         .workload = d.workload,
                         .mode = d.mode,
                         .load = line.data,
                         .sim = simline.data,
                         .cpu = cpu,
                         .nproc = nproc,
                         .pods = d.pods,
                         .time_scale = d.time_scale,
                         .slo = d.slo_text[0] ? d.slo_text : NULL,
                         .date = date};
  ig_demo_html(&b, &meta, rows, n, base);
  if (write_file(d.report, b.data, b.len) != 0) {
    fprintf(stderr, "infergate demo: cannot write %s: %s\n", d.report, strerror(errno));
    status = 1;
  } else {
    printf("report: %s\n", d.report);
  }
  ig_buf_free(&b);

  if (d.json) {
    json_t *root = json_object(), *arr = json_array();
    json_object_set_new(root, "command", jstr(cmdline.data));
    json_object_set_new(root, "mode", jstr(d.mode));
    json_object_set_new(root, "workload", jstr(d.workload));
    json_object_set_new(root, "pods", json_integer(d.pods));
    json_object_set_new(root, "seed", json_integer((json_int_t)d.seed));
    json_object_set_new(root, "time_scale", json_real(d.time_scale));
    json_object_set_new(root, "rate_per_pod", json_real(d.rate_per_pod));
    json_object_set_new(root, "rate", json_real(d.rate));
    json_object_set_new(root, "requests", json_integer(d.requests));
    json_object_set_new(root, "slo_simulated_ms",
                        json_pack("{s:o,s:o,s:o}", "ttft",
                                  d.slo.ttft_ms > 0 ? json_real(d.slo.ttft_ms) : json_null(), "tpot",
                                  d.slo.tpot_ms > 0 ? json_real(d.slo.tpot_ms) : json_null(), "e2e",
                                  d.slo.e2e_ms > 0 ? json_real(d.slo.e2e_ms) : json_null()));
    json_object_set_new(root, "sim_args", av_json(&d.sim_args));
    json_object_set_new(root, "bench_args", av_json(&d.load_args));
    json_object_set_new(root, "nproc", json_integer(nproc));
    json_object_set_new(root, "cpu", jstr(cpu));
    json_object_set_new(root, "date", jstr(date));
    json_object_set_new(root, "baseline", base < n ? jstr(rows[base].id) : json_null());
    for (size_t i = 0; i < n; i++) {
      const ig_demo_result_t *r = &rows[i];
      json_t *o = json_object();
      json_object_set_new(o, "id", jstr(r->id));
      json_object_set_new(o, "name", jstr(r->name));
      json_object_set_new(o, "ran", json_boolean(r->ran));
      json_object_set_new(o, "error", jstr(r->error));
      json_object_set_new(o, "summary", r->summary ? json_incref(r->summary) : json_null());
      double hit = ig_demo_hit_pct(r);
      json_object_set_new(o, "prefix_cache",
                          json_pack("{s:f,s:f,s:o}", "hits", r->cache_hits, "queries", r->cache_queries,
                                    "hit_rate", hit >= 0 ? json_real(hit / 100.0) : json_null()));
      json_object_set_new(o, "ttft_p90_ratio",
                          base < n && r->ran && rows[base].ran && rows[base].ttft_p90 > 0 && r->completed > 0
                              ? json_real(r->ttft_p90 / rows[base].ttft_p90)
                              : json_null());
      json_array_append_new(arr, o);
    }
    json_object_set_new(root, "targets", arr);
    if (json_dump_file(root, d.json, JSON_INDENT(2)) != 0) {
      fprintf(stderr, "infergate demo: cannot write %s\n", d.json);
      status = 1;
    }
    json_decref(root);
  }
  ig_buf_free(&cmdline);
  ig_buf_free(&simline);

out:
  ig_buf_free(&line);
  for (size_t i = 0; i < N_TARGETS; i++)
    ig_demo_result_free(&rows[i]);
  av_free(&d.sim_args);
  av_free(&d.load_args);
  if (status == 1 && !getenv("INFERGATE_DEMO_KEEP"))
    fprintf(stderr, "(set INFERGATE_DEMO_KEEP=1 to keep every child's log)\n");
  if (getenv("INFERGATE_DEMO_KEEP"))
    fprintf(stderr, "logs kept in %s\n", d.work);
  else
    nftw(d.work, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  fflush(stdout);
  return status;
}

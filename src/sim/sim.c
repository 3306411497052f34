/* infergate sim: N simulated model-server pods on consecutive ports, one libuv loop. Each pod owns an
 * engine; a per-pod timer ends each simulated step after step_us / time_scale of wall time, so an idle
 * pod costs nothing. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/cmd.h"
#include "sim.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: infergate sim [options]\n"
          "  --pods N                 pods to run (default 1), on ports P..P+N-1\n"
          "  --base-port P            first port (default 8000)\n"
          "  --host H                 listen address (default 127.0.0.1)\n"
          "  --model NAME             base model name (default llama3-8b)\n"
          "  --profile NAME           llama3-8b-h100 (default) | llama3-8b-a100\n"
          "  --engine E               metrics dialect: vllm (V1, default) | vllm-v0 | sglang | trtllm\n"
          "  --gauges G               live (default): running/waiting/KV as they are when scraped;\n"
          "                           step: as of the last step's end, as vLLM publishes them\n"
          "  --time-scale X           simulated time runs X times faster than wall time (default 1)\n"
          "  --max-loras K            LoRA slots per pod (default 4)\n"
          "  --lora a,b,c             adapters known at start (listed by /v1/models)\n"
          "  --max-waiting M          waiting queue bound, 429 beyond (default 1024)\n"
          "  --kv-blocks N            override the profile's KV blocks (16 tokens each)\n"
          "  --max-num-seqs N         override the profile's batch size limit\n"
          "  --max-batched-tokens N   override the profile's tokens per step limit\n"
          "  --fail-rate R            answer this fraction of generation requests with 500\n"
          "  --die-after-tokens I:N   pod I drops the connection after N tokens of each stream\n"
          "  --slow-pod I:F           pod I runs F times slower (repeatable)\n"
          "  --seed S                 random seed (default 1)\n"
          "  --help                   this text\n");
}

/* Parses a whole-string number; returns 0 or IG_EINVAL. */
static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end = NULL;
  if (!s || !*s) return IG_EINVAL;
  long long v = strtoll(s, &end, 10);
  if (*end || v < lo || v > hi) return IG_EINVAL;
  *out = v;
  return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out) {
  char *end = NULL;
  if (!s || !*s) return IG_EINVAL;
  double v = strtod(s, &end);
  if (*end || !isfinite(v) || v < lo || v > hi) return IG_EINVAL;
  *out = v;
  return 0;
}

/* Splits "I:X" at the colon. */
static int split_colon(const char *s, char *left, size_t cap, const char **right) {
  const char *colon = strchr(s, ':');
  if (!colon || (size_t)(colon - s) >= cap) return IG_EINVAL;
  memcpy(left, s, (size_t)(colon - s));
  left[colon - s] = '\0';
  *right = colon + 1;
  return 0;
}

typedef struct {
  int idx;
  double f;
} slow_t;

/* Parses argv into o. Returns 0, 1 for --help, or 2 after printing an error. */
static int parse_options(int argc, char **argv, ig_sim_options_t *o, slow_t *slow, int *nslow) {
  enum {
    O_PODS = 256, O_BASE, O_HOST, O_MODEL, O_PROFILE, O_ENGINE, O_SCALE, O_LORAS, O_LORA, O_WAITING,
    O_FAIL, O_SEED, O_DIE, O_SLOW, O_KV, O_SEQS, O_BATCHED, O_GAUGES, O_HELP
  };
  static const struct option longopts[] = {
      {"pods", required_argument, NULL, O_PODS},
      {"base-port", required_argument, NULL, O_BASE},
      {"host", required_argument, NULL, O_HOST},
      {"model", required_argument, NULL, O_MODEL},
      {"profile", required_argument, NULL, O_PROFILE},
      {"engine", required_argument, NULL, O_ENGINE},
      {"time-scale", required_argument, NULL, O_SCALE},
      {"max-loras", required_argument, NULL, O_LORAS},
      {"lora", required_argument, NULL, O_LORA},
      {"max-waiting", required_argument, NULL, O_WAITING},
      {"fail-rate", required_argument, NULL, O_FAIL},
      {"seed", required_argument, NULL, O_SEED},
      {"die-after-tokens", required_argument, NULL, O_DIE},
      {"slow-pod", required_argument, NULL, O_SLOW},
      {"gauges", required_argument, NULL, O_GAUGES},
      {"kv-blocks", required_argument, NULL, O_KV},
      {"max-num-seqs", required_argument, NULL, O_SEQS},
      {"max-batched-tokens", required_argument, NULL, O_BATCHED},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0},
  };
  int ch;
  int64_t v;
  char left[32];
  const char *right;
  optind = 1;
  opterr = 0;
  while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    const char *name = optind > 1 && optind - 1 < argc ? argv[optind - 1] : "?";
    switch (ch) {
    case O_PODS:
      if (parse_i64(optarg, 1, 4096, &v)) goto bad;
      o->pods = (int)v;
      break;
    case O_BASE:
      if (parse_i64(optarg, 1, 65535, &v)) goto bad;
      o->base_port = (int)v;
      break;
    case O_HOST: o->host = optarg; break;
    case O_MODEL:
      if (!*optarg || strlen(optarg) > 256) goto bad;
      o->model = optarg;
      break;
    case O_PROFILE:
      if (!ig_sim_profile_find(optarg)) goto bad;
      o->profile = optarg;
      break;
    case O_ENGINE:
      if (!strcmp(optarg, "vllm")) o->dialect = IG_SIM_VLLM;
      else if (!strcmp(optarg, "vllm-v0")) o->dialect = IG_SIM_VLLM_V0;
      else if (!strcmp(optarg, "sglang")) o->dialect = IG_SIM_SGLANG;
      else if (!strcmp(optarg, "trtllm")) o->dialect = IG_SIM_TRTLLM;
      else goto bad;
      break;
    case O_GAUGES:
      if (!strcmp(optarg, "step")) o->step_gauges = 1;
      else if (!strcmp(optarg, "live")) o->step_gauges = 0;
      else goto bad;
      break;
    case O_SCALE:
      if (parse_double(optarg, 1e-3, 1e6, &o->time_scale)) goto bad;
      break;
    case O_LORAS:
      if (parse_i64(optarg, 0, IG_SIM_MAX_ADAPTERS, &v)) goto bad;
      o->max_loras = (uint32_t)v;
      break;
    case O_LORA: o->loras = optarg; break;
    case O_WAITING:
      if (parse_i64(optarg, 1, 10000000, &v)) goto bad;
      o->max_waiting = (uint32_t)v;
      break;
    case O_FAIL:
      if (parse_double(optarg, 0, 1, &o->fail_rate)) goto bad;
      break;
    case O_SEED:
      if (parse_i64(optarg, 0, INT64_MAX, &v)) goto bad;
      o->seed = (uint64_t)v;
      break;
    case O_DIE:
      if (split_colon(optarg, left, sizeof left, &right) || parse_i64(left, 0, 4095, &v)) goto bad;
      o->die_pod = (int)v;
      if (parse_i64(right, 1, 1000000000, &v)) goto bad;
      o->die_tokens = (uint32_t)v;
      break;
    case O_SLOW:
      if (*nslow >= 64 || split_colon(optarg, left, sizeof left, &right) || parse_i64(left, 0, 4095, &v) ||
          parse_double(right, 1e-3, 1e6, &slow[*nslow].f))
        goto bad;
      slow[(*nslow)++].idx = (int)v;
      break;
    case O_KV:
      if (parse_i64(optarg, 1, 100000000, &o->kv_blocks)) goto bad;
      break;
    case O_SEQS:
      if (parse_i64(optarg, 1, 1000000, &o->max_num_seqs)) goto bad;
      break;
    case O_BATCHED:
      if (parse_i64(optarg, 1, 10000000, &o->max_batched_tokens)) goto bad;
      break;
    case O_HELP:
    case 'h': return 1;
    default:
      fprintf(stderr, "infergate sim: unknown option or missing value: %s\n", name);
      return 2;
    bad:
      fprintf(stderr, "infergate sim: invalid value for %s: '%s'\n", name, optarg ? optarg : "");
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "infergate sim: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (o->base_port + o->pods - 1 > 65535) {
    fprintf(stderr, "infergate sim: ports %d..%d out of range\n", o->base_port, o->base_port + o->pods - 1);
    return 2;
  }
  if (o->die_pod >= o->pods) {
    fprintf(stderr, "infergate sim: --die-after-tokens pod %d does not exist (pods are 0..%d)\n", o->die_pod,
            o->pods - 1);
    return 2;
  }
  for (int i = 0; i < *nslow; i++)
    if (slow[i].idx >= o->pods) {
      fprintf(stderr, "infergate sim: --slow-pod pod %d does not exist (pods are 0..%d)\n", slow[i].idx,
              o->pods - 1);
      return 2;
    }
  return 0;
}

/* ---- simulated clock and stepping ------------------------------------------------------------ */

uint64_t ig_sim_pod_now(ig_sim_pod_t *pod) {
  uint64_t wall = ig_now_us();
  double scale = pod->sim->opt.time_scale;
  if (pod->busy) {
    /* inside a step: interpolate, never past its end (the counters will be at its end) */
    double start = pod->target_wall_us - (double)pod->eng.step_us / scale;
    double el = ((double)wall - start) * scale;
    if (el < 0) el = 0;
    if (el > (double)pod->eng.step_us) el = (double)pod->eng.step_us;
    return pod->sim_us + (uint64_t)el;
  }
  return pod->sim_us + (uint64_t)((double)(wall - pod->wall_mark_us) * scale);
}

static void on_step_timer(uv_timer_t *t);

static void arm_timer(ig_sim_pod_t *pod, uint64_t wall) {
  double wait_us = pod->target_wall_us - (double)wall;
  uint64_t ms = wait_us <= 0 ? 0 : (uint64_t)ceil(wait_us / 1000.0);
  uv_timer_start(&pod->timer, on_step_timer, ms, 0);
}

void ig_sim_pod_kick(ig_sim_pod_t *pod) {
  if (pod->busy || pod->sim->stopping) return;
  uint64_t wall = ig_now_us();
  pod->sim_us += (uint64_t)((double)(wall - pod->wall_mark_us) * pod->sim->opt.time_scale);
  pod->wall_mark_us = wall;
  uint64_t us = ig_sim_engine_schedule(&pod->eng);
  if (!us) return;
  pod->busy = 1;
  pod->target_wall_us = (double)wall + (double)us / pod->sim->opt.time_scale;
  arm_timer(pod, wall);
}

/* Ends the step in flight, delivers its tokens and starts the next step. When the loop runs late,
 * several due steps are run in one go (bounded), and a large backlog is forgiven rather than
 * replayed as a burst; simulated time always advances by exactly the step durations. */
static void on_step_timer(uv_timer_t *t) {
  ig_sim_pod_t *pod = t->data;
  uint64_t wall = ig_now_us();
  for (int i = 0; i < 64; i++) {
    pod->sim_us += pod->eng.step_us;
    ig_sim_engine_complete(&pod->eng, pod->sim_us, ig_sim_api_emit, pod);
    pod->busy = 0;
    if (pod->sim->stopping) return;
    uint64_t us = ig_sim_engine_schedule(&pod->eng);
    if (!us) {
      pod->wall_mark_us = wall;
      return;
    }
    pod->busy = 1;
    if ((double)wall - pod->target_wall_us > 100000.0) pod->target_wall_us = (double)wall;
    pod->target_wall_us += (double)us / pod->sim->opt.time_scale;
    if (pod->target_wall_us > (double)wall) break;
  }
  arm_timer(pod, wall);
}

/* ---- lifecycle --------------------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void stop_all(ig_sim_t *sim) {
  if (sim->stopping) return;
  sim->stopping = 1;
  for (int i = 0; i < sim->npods; i++) {
    ig_sim_pod_t *pod = &sim->pods[i];
    while (pod->conns) ig_sim_conn_close(pod->conns); /* unlinks itself */
    if (!uv_is_closing((uv_handle_t *)&pod->listener)) uv_close((uv_handle_t *)&pod->listener, on_handle_closed);
    uv_timer_stop(&pod->timer);
    if (!uv_is_closing((uv_handle_t *)&pod->timer)) uv_close((uv_handle_t *)&pod->timer, on_handle_closed);
  }
  uv_close((uv_handle_t *)&sim->sigint, on_handle_closed);
  uv_close((uv_handle_t *)&sim->sigterm, on_handle_closed);
}

static void on_signal(uv_signal_t *s, int signum) {
  ig_sim_t *sim = s->data;
  ig_info("sim: signal %d, shutting down", signum);
  stop_all(sim);
}

/* Registers the --lora list on an engine. */
static int add_loras(ig_sim_engine_t *e, const char *list) {
  if (!list) return 0;
  const char *p = list;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (n > 0) {
      char *name = ig_strndup(p, n);
      int rc = ig_sim_engine_add_adapter(e, name, name, NULL);
      free(name);
      if (rc == IG_EFULL) return rc;
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

static int pod_start(ig_sim_t *sim, int i, const double *slowdown) {
  ig_sim_pod_t *pod = &sim->pods[i];
  pod->sim = sim;
  pod->index = i;
  pod->port = sim->opt.base_port + i;
  ig_sim_engine_config_t cfg = sim->ecfg;
  cfg.slowdown = slowdown[i];
  ig_sim_engine_init(&pod->eng, &cfg);
  pod->wall_mark_us = ig_now_us();
  uv_timer_init(sim->loop, &pod->timer);
  pod->timer.data = pod;
  uv_tcp_init(sim->loop, &pod->listener);
  pod->listener.data = pod;
  if (add_loras(&pod->eng, sim->opt.loras)) {
    fprintf(stderr, "infergate sim: more than %d adapters in --lora\n", IG_SIM_MAX_ADAPTERS);
    return IG_EINVAL;
  }
  struct sockaddr_storage ss;
  int rc;
  if (strchr(sim->opt.host, ':'))
    rc = uv_ip6_addr(sim->opt.host, pod->port, (struct sockaddr_in6 *)&ss);
  else
    rc = uv_ip4_addr(sim->opt.host, pod->port, (struct sockaddr_in *)&ss);
  if (rc) {
    fprintf(stderr, "infergate sim: bad --host '%s'\n", sim->opt.host);
    return IG_EINVAL;
  }
  rc = uv_tcp_bind(&pod->listener, (const struct sockaddr *)&ss, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&pod->listener, 511, ig_sim_on_connection);
  if (rc) {
    fprintf(stderr, "infergate sim: cannot listen on %s:%d: %s\n", sim->opt.host, pod->port, uv_strerror(rc));
    return IG_EIO;
  }
  return 0;
}

int ig_cmd_sim(int argc, char **argv) {
  ig_sim_t sim;
  memset(&sim, 0, sizeof sim);
  ig_sim_options_t *o = &sim.opt;
  o->host = "127.0.0.1";
  o->base_port = 8000;
  o->pods = 1;
  o->model = "llama3-8b";
  o->profile = "llama3-8b-h100";
  o->dialect = IG_SIM_VLLM;
  o->time_scale = 1.0;
  o->max_loras = 4;
  o->max_waiting = 1024;
  o->seed = 1;
  o->die_pod = -1;
  o->kv_blocks = o->max_num_seqs = o->max_batched_tokens = -1;
  slow_t slow[64];
  int nslow = 0, rc, status = 1;
  double *slowdown = NULL;

  rc = parse_options(argc, argv, o, slow, &nslow);
  if (rc == 1) {
    usage(stdout);
    return 0;
  }
  if (rc) return 2;

  ig_sim_engine_config_t *c = &sim.ecfg;
  c->prof = *ig_sim_profile_find(o->profile);
  if (o->kv_blocks > 0) c->prof.kv_blocks = (uint32_t)o->kv_blocks;
  if (o->max_num_seqs > 0) c->prof.max_num_seqs = (uint32_t)o->max_num_seqs;
  if (o->max_batched_tokens > 0) c->prof.max_batched_tokens = (uint32_t)o->max_batched_tokens;
  c->max_waiting = o->max_waiting;
  c->max_loras = o->max_loras;
  c->slowdown = 1.0;
  slowdown = ig_malloc((size_t)o->pods * sizeof *slowdown);
  for (int i = 0; i < o->pods; i++) slowdown[i] = 1.0;
  for (int i = 0; i < nslow; i++) slowdown[slow[i].idx] = slow[i].f;
  ig_rng_seed(&sim.rng, o->seed);
  sim.start_wall_s = ig_wall_us() / 1000000;

  sim.loop = ig_malloc(sizeof *sim.loop);
  uv_loop_init(sim.loop);
  sim.pods = ig_calloc((size_t)o->pods, sizeof *sim.pods);
  for (sim.npods = 0; sim.npods < o->pods; sim.npods++)
    if (pod_start(&sim, sim.npods, slowdown)) {
      sim.npods++;
      goto out;
    }
  uv_signal_init(sim.loop, &sim.sigint);
  uv_signal_init(sim.loop, &sim.sigterm);
  sim.sigint.data = sim.sigterm.data = &sim;
  uv_signal_start(&sim.sigint, on_signal, SIGINT);
  uv_signal_start(&sim.sigterm, on_signal, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  ig_info("sim: %d pod(s) of %s (%s) on %s:%d..%d, time scale %g", o->pods, o->model, o->profile, o->host,
          o->base_port, o->base_port + o->pods - 1, o->time_scale);
  uv_run(sim.loop, UV_RUN_DEFAULT);
  status = 0;

out:
  if (!sim.stopping) {
    /* startup failed: close what was opened (signals were not initialised yet) */
    sim.stopping = 1;
    for (int i = 0; i < sim.npods; i++) {
      uv_close((uv_handle_t *)&sim.pods[i].listener, on_handle_closed);
      uv_close((uv_handle_t *)&sim.pods[i].timer, on_handle_closed);
    }
  }
  uv_run(sim.loop, UV_RUN_DEFAULT); /* let close callbacks run */
  for (int i = 0; i < sim.npods; i++) ig_sim_engine_free(&sim.pods[i].eng);
  uv_loop_close(sim.loop);
  free(sim.loop);
  free(sim.pods);
  free(slowdown);
  return status;
}

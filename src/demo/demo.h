/* infergate demo: internal interfaces shared by the command, the child-process helpers and the
 * report renderers (pure functions, unit-tested in tests/unit/test_demo_*.c). */
#ifndef INFERGATE_DEMO_H
#define INFERGATE_DEMO_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "infergate/core.h"

/* One target's outcome: the bench summary figures plus the samples the charts need. */
typedef struct {
  const char *id;   /* stable short id ("nginx-rr"); not owned */
  const char *name; /* display name ("nginx round-robin"); not owned */
  int ran;          /* 1 when the bench JSON was read */
  char *error;      /* why the target did not run (owned), or NULL */
  long completed, failed, shed, sent;
  double ttft_p50, ttft_p90, ttft_p99, tpot_p90, e2e_p90;
  double req_s, tok_s, duration_s;
  int have_goodput;                 /* the bench ran with an SLO */
  double goodput, goodput_fraction; /* requests/s meeting it, and the fraction of requests sent */
  double cache_hits, cache_queries; /* summed over the pods; queries 0 = unknown */
  double *ttft;                     /* successful requests' TTFT in ms, sorted ascending (owned) */
  size_t n_ttft;
  double *done_s; /* completion times of successful requests, seconds from the run's start (owned) */
  size_t n_done;
  json_t *summary; /* the bench JSON "summary" object (owned reference), or NULL */
} ig_demo_result_t;

/* Fills r's figures from a bench JSON document ({"summary": ..., "requests": [...]}). Keeps r->id,
 * r->name. Returns 0, or IG_EPARSE when the document lacks a summary object. */
int ig_demo_result_from_json(ig_demo_result_t *r, const json_t *root);
/* Frees what r owns (not id/name) and zeroes the figures. */
void ig_demo_result_free(ig_demo_result_t *r);

/* Prefix-cache hit percentage of r, or -1 when the pods reported no queries. */
double ig_demo_hit_pct(const ig_demo_result_t *r);

/* Sums vllm:prefix_cache_hits_total and vllm:prefix_cache_queries_total over every series of a
 * Prometheus text exposition. Returns 0 when both counters were present, IG_ENOENT otherwise (the
 * sums then hold whatever was found). */
int ig_demo_parse_prefix_counters(const char *text, size_t len, double *hits, double *queries);

/* Request-level objectives in ms (<= 0: not set), as `infergate bench --slo` takes them. */
typedef struct {
  double ttft_ms, tpot_ms, e2e_ms;
} ig_demo_slo_t;

/* Parses "ttft=250ms,tpot=25ms,e2e=10s" (a non-empty subset, any order; units us, ms (bare number),
 * s; each value finite and > 0, each key at most once). Returns 0 or IG_EINVAL. */
int ig_demo_slo_parse(const char *s, ig_demo_slo_t *out);
/* Writes the SLO in bench syntax ("ttft=250ms,tpot=25ms") with every limit divided by scale (the
 * pods' time scale: simulated ms -> wall ms). */
void ig_demo_slo_format(ig_buf_t *b, const ig_demo_slo_t *slo, double scale);

/* A linear axis from 0: a "nice" maximum (1, 2 or 5 times a power of ten multiple of step) covering
 * max, split into ticks of step. max <= 0 or NaN gives the axis [0, 1]. */
typedef struct {
  double max;
  double step;
  int decimals; /* digits after the point that tick labels need */
} ig_demo_axis_t;
void ig_demo_axis(double max, int want_ticks, ig_demo_axis_t *ax);

/* Appends s to b with &, <, >, " and ' escaped for HTML text and attributes. */
void ig_demo_html_escape(ig_buf_t *b, const char *s);

/* The side-by-side table as fixed-width text (one header line, one line per result). base is the
 * index of the result the TTFT p90 ratio is relative to (or n for none). */
void ig_demo_table_text(ig_buf_t *b, const ig_demo_result_t *rows, size_t n, size_t base);

/* SVG charts (self-contained <svg> elements, width x height px): the TTFT CDF (one polyline per
 * target with successful requests) and completed requests per second over time (bucket_s wide
 * buckets; bucket_s <= 0 picks one). Targets without data get a legend entry but no line. */
void ig_demo_svg_cdf(ig_buf_t *b, const ig_demo_result_t *rows, size_t n, int width, int height);
void ig_demo_svg_throughput(ig_buf_t *b, const ig_demo_result_t *rows, size_t n, int width, int height,
                            double bucket_s);

/* What the report says about the run. Strings are not owned. */
typedef struct {
  const char *title;
  const char *command; /* the command line, shown verbatim */
  const char *workload;
  const char *mode; /* quick | default | full */
  const char *load; /* the bench load arguments */
  const char *sim;  /* the sim arguments */
  const char *cpu;  /* CPU model */
  int nproc;
  int pods;
  double time_scale;
  const char *slo; /* the goodput objectives in words, or NULL */
  const char *date;
} ig_demo_meta_t;

/* The whole self-contained HTML report (inline CSS, inline SVG, no scripts or external assets). */
void ig_demo_html(ig_buf_t *b, const ig_demo_meta_t *meta, const ig_demo_result_t *rows, size_t n,
                  size_t base);

/* ---------------------------------------------------------------- child processes (proc.c) */

/* A child process in its own process group (pgid = pid), with stdout and stderr sent to a log. */
typedef struct {
  pid_t pid; /* 0 when not running */
  int status;
  char name[64];
  char log[512];
} ig_demo_child_t;

/* Starts argv[0] (a path) with argv, stdin from /dev/null, stdout+stderr appended to logpath, in a
 * new process group, killed with SIGTERM if the demo dies. Returns 0 or IG_EIO. */
int ig_demo_spawn(ig_demo_child_t *c, const char *name, char *const argv[], const char *logpath);
/* 1 while the child runs; 0 once it exited (status in c->status, pid cleared). */
int ig_demo_alive(ig_demo_child_t *c);
/* Stops children: SIGTERM to each group, then SIGKILL to groups still alive after grace_ms, and reaps
 * every one. */
void ig_demo_stop(ig_demo_child_t **cs, size_t n, int grace_ms);
/* Installs SIGINT/SIGTERM/SIGHUP handlers that set the flag ig_demo_interrupted() reports. */
void ig_demo_signals_install(void);
int ig_demo_interrupted(void);
/* Sleeps ms milliseconds (returns early on a signal). */
void ig_demo_sleep_ms(int ms);

/* Blocking loopback helpers with bounded timeouts. */
int ig_demo_port_open(int port);
/* Finds n consecutive free TCP ports on 127.0.0.1; returns the first, or IG_EFULL. */
int ig_demo_free_ports(int n);
/* GET path from 127.0.0.1:port; appends the response body to out. Returns 0 on a 200, else IG_E*. */
int ig_demo_http_get(int port, const char *path, ig_buf_t *out);

#endif

/* infergate: subcommand dispatch only. */
#include <stdio.h>
#include <string.h>

#include "infergate/cmd.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command_t;

static int cmd_version(int argc, char **argv) {
  (void)argc;
  (void)argv;
  printf("infergate %s\n", IG_VERSION);
  return 0;
}

static const command_t commands[] = {
#ifdef IG_HAVE_PROXY
    {"serve", ig_cmd_serve, "run the gateway (-c FILE, or --listen/--backend quick start)"},
#endif
#ifdef IG_HAVE_CONFIG
    {"check", ig_cmd_check, "validate a configuration file and print every error with file:line"},
#endif
#ifdef IG_HAVE_SIM
    {"sim", ig_cmd_sim, "run simulated vLLM/SGLang model-server pods"},
#endif
#ifdef IG_HAVE_BENCH
    {"bench", ig_cmd_bench, "load generator: TTFT/TPOT/ITL/E2E percentiles and throughput"},
#endif
#ifdef IG_HAVE_EPP
    {"epp", ig_cmd_epp, "endpoint picker for Envoy-based gateways (ext_proc over gRPC)"},
#endif
#ifdef IG_HAVE_DEMO
    {"demo", ig_cmd_demo, "sim pods + gateway + load, side-by-side table"},
#endif
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: infergate <command> [options]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\nRun 'infergate <command> --help' for a command's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) return cmd_version(0, NULL);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "infergate: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}

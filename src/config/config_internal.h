/* Private to the config module (and its tests and fuzzer): a seam to replace host name resolution. */
#ifndef INFERGATE_CONFIG_INTERNAL_H
#define INFERGATE_CONFIG_INTERNAL_H

#include <stddef.h>
#include <yaml.h>

#include "infergate/config.h"

/* Resolves host (a host name or numeric address, NUL-terminated) into a numeric address string in
 * out[0..cap). Returns 0, or a non-zero value when the host cannot be resolved; *why then points at a
 * static description. */
typedef int (*ig_config_resolver_fn)(const char *host, char *out, size_t cap, const char **why);

/* Replaces the resolver used by ig_config_load*; NULL restores the default (getaddrinfo, IPv4 first).
 * Process-wide; meant for tests and fuzzers, which must not touch DNS. */
void ig_config_set_resolver(ig_config_resolver_fn fn);

/* Resolves host with the resolver ig_config_load* use (the test seam above, else getaddrinfo):
 * same contract as ig_config_resolver_fn. Shared with the manifest loader. */
int ig_config_resolve(const char *host, char *out, size_t cap, const char **why);

/* Sets every global limit and timeout of cfg to its default. */
void ig_config_set_defaults(ig_config_t *cfg);

/* Frees everything a route owns and zeroes it. */
void ig_config_route_clear(ig_route_cfg_t *r);


/* YAML document helpers shared by the native and the manifest loaders (yamlnode.c). */
/* A plain scalar "", "~" or "null" (any case YAML allows). */
int ig_yaml_is_null(const yaml_node_t *n);
/* An optional value counts as absent when missing or written as null. */
int ig_yaml_present(const yaml_node_t *n);
/* "null", "a scalar", "a list" or "a mapping", for error messages. */
const char *ig_yaml_kind(const yaml_node_t *n);
size_t ig_yaml_seq_len(const yaml_node_t *n);

/* Where a loader's YAML problems go: mark is libyaml's (0-based) position, msg the text. */
typedef void (*ig_yaml_err_fn)(void *ud, yaml_mark_t mark, const char *msg);
/* Reports libyaml's parse error with its position and context. */
void ig_yaml_syntax_error(const yaml_parser_t *p, const char *yaml, size_t len, ig_yaml_err_fn err, void *ud);
/* A first pass over the event stream of yaml[0..len): reports syntax errors, aliases (refused: they can
 * form cycles and multiply work), nesting deeper than max_depth and, with one_document, a second
 * document. Returns 0 when the text can be loaded and walked, -1 after reporting. */
int ig_yaml_prescan(const char *yaml, size_t len, int max_depth, int one_document, ig_yaml_err_fn err, void *ud);

#endif

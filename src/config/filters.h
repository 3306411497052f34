/* Private to the config module: the HTTPRoute `filters` list (Gateway API HTTPRouteFilter), parsed
 * the same way for the native YAML routes and the HTTPRoute manifests. */
#ifndef IG_CONFIG_FILTERS_H
#define IG_CONFIG_FILTERS_H

#include <yaml.h>

#include "infergate/config.h"

/* Where the parser reports: error for invalid values, note for what is read and not used (an
 * unsupported filter type, reason "UnsupportedValue"; an unknown field when not strict, reason
 * "UnknownField"). msg is a full sentence starting with the field path. */
typedef struct {
  yaml_document_t *doc;
  int strict;       /* unknown keys are errors (native YAML) instead of notes (manifests) */
  const char *path; /* field path of the list, e.g. "rules[].filters" */
  void (*error)(void *ud, const yaml_node_t *n, const char *msg);
  void (*note)(void *ud, const yaml_node_t *n, const char *reason, const char *msg);
  void *ud;
} ig_filter_ctx_t;

/* Parses the filters list seq: RequestHeaderModifier into *req, ResponseHeaderModifier into *resp
 * (new filters owned by the caller, or left NULL when absent). Other filter types are noted and
 * ignored. Returns the number of errors reported (then *req and *resp are still valid to free). */
int ig_config_filters_parse(const ig_filter_ctx_t *fc, yaml_node_t *seq, ig_header_filter_cfg_t **req,
                            ig_header_filter_cfg_t **resp);

#endif

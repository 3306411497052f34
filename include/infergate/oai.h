/* OpenAI request bodies: a fast zero-copy scanner for the top-level fields a gateway needs, the in-place
 * rewrite of "model", and the token-count approximation shared by the gateway, the simulator and the
 * load generator. */
#ifndef INFERGATE_OAI_H
#define INFERGATE_OAI_H

#include <stddef.h>
#include <stdint.h>

#include "infergate/core.h"

#define IG_OAI_MODEL_MAX 256

typedef enum { IG_OAI_PROMPT_NONE, IG_OAI_PROMPT_TEXT, IG_OAI_PROMPT_MESSAGES } ig_oai_prompt_kind_t;

typedef struct {
  int has_model;
  char model[IG_OAI_MODEL_MAX + 1]; /* decoded (JSON escapes resolved), NUL-terminated */
  size_t model_len;
  size_t model_raw_off; /* offset of the opening quote of the model string value in the body */
  size_t model_raw_len; /* length of the raw string value including both quotes */
  int stream;           /* -1 absent, 0 false, 1 true */
  int include_usage;    /* stream_options.include_usage is true */
  int64_t max_tokens;   /* max_tokens or max_completion_tokens; -1 when absent */
  ig_oai_prompt_kind_t prompt_kind;
  size_t prompt_off;    /* raw span of the JSON value of "prompt" or "messages" */
  size_t prompt_len;
} ig_oai_req_t;

/* Scans a JSON body for the top-level fields above without building a tree. Nested objects and
 * arrays are skipped (a "model" inside messages does not count). Duplicate top-level keys: the
 * first wins. Returns 0, or IG_EPARSE when the body is not a single well-formed JSON object
 * (trailing whitespace allowed), or IG_ETOOBIG when model is longer than IG_OAI_MODEL_MAX. */
int ig_oai_scan(const char *body, size_t len, ig_oai_req_t *out);

/* Writes body with the "model" value replaced by new_model (JSON-escaped) to out (appending).
 * scan must come from ig_oai_scan on the same body and have has_model set, else IG_EINVAL. */
int ig_oai_rewrite_model(const char *body, size_t len, const ig_oai_req_t *scan, const char *new_model,
                         ig_buf_t *out);

/* Writes body (a JSON object without a "model" member) with "model": model inserted first, to out
 * (appending); used when the gateway supplies the default model. IG_EINVAL when body is not an
 * object. */
int ig_oai_insert_model(const char *body, size_t len, const char *model, ig_buf_t *out);

/* Token-count approximation: ceil(bytes / 4) of the text, at least 1 for non-empty text. */
size_t ig_oai_count_tokens(const char *text, size_t len);

/* Appends the concatenated prompt text of a request to out: the decoded string value of "prompt"
 * (or each string of a prompt array), or for "messages" each message's string "content" (or the
 * "text" of content parts) joined by "\n". Used for token counting and prefix hashing. */
int ig_oai_prompt_text(const char *body, size_t len, const ig_oai_req_t *scan, ig_buf_t *out);

/* Same as ig_oai_prompt_text, but appends at most max bytes: exactly the first min(max, L) bytes of
 * what ig_oai_prompt_text appends (L bytes), cut at byte max even inside a UTF-8 sequence. Only the
 * part of the prompt that this needs is read, so scan must come from a successful ig_oai_scan of the
 * same body (the prompt is not validated again). For prefix hashing of long prompts. */
int ig_oai_prompt_text_max(const char *body, size_t len, const ig_oai_req_t *scan, size_t max, ig_buf_t *out);

#endif

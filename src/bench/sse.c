/* Server-sent events reader for OpenAI streaming responses: counts content events and takes
 * their arrival times, which give TTFT and the inter-token latencies. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

void ig_bench_sse_init(ig_bench_sse_t *s) {
  memset(s, 0, sizeof *s);
  ig_buf_init(&s->line);
  ig_buf_init(&s->data);
  s->usage_completion = -1;
  s->usage_prompt = -1;
}

void ig_bench_sse_free(ig_bench_sse_t *s) {
  ig_buf_free(&s->line);
  ig_buf_free(&s->data);
  free(s->itl_ms);
  free(s->error);
  s->itl_ms = NULL;
  s->error = NULL;
}

/* A choice carries content when it has a non-empty "text" (completions) or "delta.content"
 * (chat); reasoning models stream "delta.reasoning_content" first, which a user also sees. */
static int choice_has_content(json_t *choice) {
  json_t *t = json_object_get(choice, "text");
  if (json_is_string(t) && json_string_length(t) > 0) return 1;
  json_t *d = json_object_get(choice, "delta");
  if (!json_is_object(d)) return 0;
  static const char *const keys[] = {"content", "reasoning_content", "reasoning"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    json_t *c = json_object_get(d, keys[i]);
    if (json_is_string(c) && json_string_length(c) > 0) return 1;
  }
  return 0;
}

static void note_token(ig_bench_sse_t *s, uint64_t now_us) {
  if (s->token_events) {
    double gap = (double)(now_us - s->last_token_us) / 1000.0;
    if (s->n_itl == s->cap_itl) {
      s->cap_itl = s->cap_itl ? s->cap_itl * 2 : 64;
      s->itl_ms = ig_realloc(s->itl_ms, s->cap_itl * sizeof *s->itl_ms);
    }
    s->itl_ms[s->n_itl++] = gap;
    s->itl_sum_ms += gap;
  } else {
    s->first_token_us = now_us;
  }
  s->last_token_us = now_us;
  s->token_events++;
}

/* Classifies the gathered event data. */
static void dispatch(ig_bench_sse_t *s, uint64_t now_us) {
  const char *d = s->data.data;
  size_t n = s->data.len;
  if (n == 6 && !memcmp(d, "[DONE]", 6)) {
    s->done = 1;
    return;
  }
  s->events++;
  json_t *root = json_loadb(d, n, 0, NULL);
  if (!json_is_object(root)) {
    s->bad_events++;
    json_decref(root);
    return;
  }
  json_t *err = json_object_get(root, "error");
  if (err && !json_is_null(err) && !s->error) {
    json_t *msg = json_is_object(err) ? json_object_get(err, "message") : err;
    s->error = ig_strdup(json_is_string(msg) ? json_string_value(msg) : "error event in stream");
  }
  json_t *choices = json_object_get(root, "choices");
  size_t i;
  json_t *c;
  int content = 0;
  json_array_foreach(choices, i, c) content |= choice_has_content(c);
  if (content) note_token(s, now_us);
  json_t *usage = json_object_get(root, "usage");
  if (json_is_object(usage)) {
    json_t *ct = json_object_get(usage, "completion_tokens"), *pt = json_object_get(usage, "prompt_tokens");
    if (json_is_integer(ct)) s->usage_completion = json_integer_value(ct);
    if (json_is_integer(pt)) s->usage_prompt = json_integer_value(pt);
  }
  json_decref(root);
}

/* Handles one complete line (without its terminator). */
static void on_line(ig_bench_sse_t *s, const char *l, size_t n, uint64_t now_us) {
  if (!n) { /* blank line ends the event */
    if (s->has_data) dispatch(s, now_us);
    ig_buf_reset(&s->data);
    s->has_data = 0;
    return;
  }
  if (l[0] == ':') return; /* comment */
  const char *colon = memchr(l, ':', n);
  size_t flen = colon ? (size_t)(colon - l) : n;
  if (flen != 4 || memcmp(l, "data", 4)) return; /* event:, id:, retry: do not matter here */
  const char *v = colon ? colon + 1 : l + n;
  size_t vlen = (size_t)(l + n - v);
  if (vlen && *v == ' ') v++, vlen--;
  if (s->has_data) ig_buf_append(&s->data, "\n", 1);
  ig_buf_append(&s->data, v, vlen);
  s->has_data = 1;
}

int ig_bench_sse_feed(ig_bench_sse_t *s, const char *p, size_t n, uint64_t now_us) {
  if (s->overflow) return IG_ETOOBIG;
  size_t i = 0;
  while (i < n) {
    if (s->last_cr && p[i] == '\n') { /* the LF of a CRLF split from its CR */
      s->last_cr = 0;
      i++;
      continue;
    }
    s->last_cr = 0;
    /* find the end of the line within this piece */
    size_t j = i;
    while (j < n && p[j] != '\n' && p[j] != '\r')
      j++;
    if (j == n) { /* partial line: keep it */
      if (s->line.len + (n - i) > IG_BENCH_SSE_MAX_LINE) {
        s->overflow = 1;
        return IG_ETOOBIG;
      }
      ig_buf_append(&s->line, p + i, n - i);
      break;
    }
    if (s->line.len) {
      ig_buf_append(&s->line, p + i, j - i);
      on_line(s, s->line.data, s->line.len, now_us);
      ig_buf_reset(&s->line);
    } else {
      on_line(s, p + i, j - i, now_us);
    }
    s->last_cr = p[j] == '\r';
    i = j + 1;
  }
  return 0;
}

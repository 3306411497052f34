/* ShareGPT-format datasets for infergate bench --dataset: either JSON Lines (one object per line)
 * or one JSON array of objects (the original ShareGPT_V3 file), each object holding
 * "conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}, ...].
 *
 * The file is mapped, not read into memory, and parsing stops after max_entries usable entries, so a
 * large file costs no more memory than the entries kept. Entries that are valid JSON but not a usable
 * conversation are skipped and counted; a file that is not JSON at all is an error with file:line. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "infergate/oai.h"

#define JFLAGS (JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL)

static int is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t count_lines(const char *p, size_t n) {
  size_t k = 0;
  for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
    k++;
  return k;
}

static void set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t cap, const char *fmt, ...) {
  if (!err || !cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* The "from" of a turn: 1 for the user's side, 2 for the model's, 0 for anything else. */
static int turn_side(const json_t *turn) {
  const char *from = json_string_value(json_object_get(turn, "from"));
  if (!from) from = json_string_value(json_object_get(turn, "role"));
  if (!from) return 0;
  if (!strcmp(from, "human") || !strcmp(from, "user")) return 1;
  if (!strcmp(from, "gpt") || !strcmp(from, "assistant") || !strcmp(from, "chatgpt")) return 2;
  return 0;
}

static const json_t *turn_value(const json_t *turn) {
  const json_t *v = json_object_get(turn, "value");
  return json_is_string(v) ? v : json_object_get(turn, "content");
}

int ig_bench_dataset_entry(const json_t *obj, ig_bench_ds_entry_t *out) {
  memset(out, 0, sizeof *out);
  const json_t *conv = json_object_get(obj, "conversations");
  size_t n = json_array_size(conv);
  for (size_t i = 0; i < n; i++) {
    const json_t *turn = json_array_get(conv, i);
    if (turn_side(turn) != 1) continue;
    /* the first human turn, answered by the turn right after it */
    const json_t *q = turn_value(turn), *next = json_array_get(conv, i + 1);
    const json_t *a = next && turn_side(next) == 2 ? turn_value(next) : NULL;
    if (!json_is_string(q) || !json_is_string(a) || !json_string_length(q) || !json_string_length(a))
      return IG_EPARSE;
    size_t ql = json_string_length(q),
           out_tok = ig_oai_count_tokens(json_string_value(a), json_string_length(a));
    size_t in_tok = ig_oai_count_tokens(json_string_value(q), ql);
    if (in_tok > UINT32_MAX || out_tok > UINT32_MAX) return IG_EPARSE;
    out->prompt = ig_malloc(ql + 1);
    memcpy(out->prompt, json_string_value(q), ql);
    out->prompt[ql] = '\0';
    out->prompt_len = ql;
    out->prompt_tokens = (uint32_t)in_tok;
    out->output_tokens = (uint32_t)out_tok;
    return 0;
  }
  return IG_EPARSE;
}

/* Takes one parsed value as an entry (or counts it as skipped). Returns 1 when the cap is reached. */
static int take(ig_bench_dataset_t *d, const json_t *v, size_t max_entries) {
  ig_bench_ds_entry_t e;
  d->seen++;
  if (ig_bench_dataset_entry(v, &e) < 0) {
    d->skipped++;
    return 0;
  }
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 64;
    d->v = ig_realloc(d->v, d->cap * sizeof *d->v);
  }
  d->v[d->n++] = e;
  if (max_entries && d->n >= max_entries) {
    d->truncated = 1;
    return 1;
  }
  return 0;
}

/* JSON array: one element at a time, so only the kept entries are ever in memory. */
static int parse_array(ig_bench_dataset_t *d, const char *name, const char *p, size_t len, size_t off,
                       size_t max_entries, char *err, size_t errcap) {
  size_t line = 1 + count_lines(p, off);
  off++; /* '[' */
  for (int first = 1;; first = 0) {
    while (off < len && is_ws(p[off]))
      line += p[off++] == '\n';
    if (off < len && p[off] == ']') return 0;
    if (!first) {
      if (off >= len || p[off] != ',') {
        set_err(err, errcap, "%s:%zu: not a JSON array: expected ',' or ']'", name, line);
        return IG_EPARSE;
      }
      off++;
      while (off < len && is_ws(p[off]))
        line += p[off++] == '\n';
    }
    if (off >= len) {
      set_err(err, errcap, "%s:%zu: not a JSON array: unexpected end of file", name, line);
      return IG_EPARSE;
    }
    json_error_t je;
    json_t *v = json_loadb(p + off, len - off, JFLAGS, &je);
    if (!v) {
      set_err(err, errcap, "%s:%zu: not JSON: %s", name, line + (je.line > 0 ? (size_t)je.line - 1 : 0),
              je.text);
      return IG_EPARSE;
    }
    size_t used = je.position > 0 ? (size_t)je.position : 1;
    line += count_lines(p + off, used);
    off += used;
    int full = take(d, v, max_entries);
    json_decref(v);
    if (full) return 0;
  }
}

/* JSON Lines: one object per line; blank lines are ignored. A line that is not JSON is skipped,
 * unless it is the first one (then the file is not JSON Lines at all). */
static int parse_lines(ig_bench_dataset_t *d, const char *name, const char *p, size_t len, size_t max_entries,
                       char *err, size_t errcap) {
  size_t line = 0, off = 0;
  int parsed_any = 0;
  while (off < len) {
    const char *nl = memchr(p + off, '\n', len - off);
    size_t end = nl ? (size_t)(nl - p) : len, s = off, e = end;
    off = nl ? end + 1 : len;
    line++;
    while (s < e && is_ws(p[s]))
      s++;
    while (e > s && is_ws(p[e - 1]))
      e--;
    if (s == e) continue;
    json_error_t je;
    json_t *v = json_loadb(p + s, e - s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) {
      if (!parsed_any) {
        set_err(err, errcap, "%s:%zu: not JSON Lines (one JSON object per line): %s", name, line, je.text);
        return IG_EPARSE;
      }
      d->seen++;
      d->skipped++;
      continue;
    }
    parsed_any = 1;
    int full = take(d, v, max_entries);
    json_decref(v);
    if (full) return 0;
  }
  return 0;
}

int ig_bench_dataset_parse(ig_bench_dataset_t *d, const char *name, const char *data, size_t len,
                           size_t max_entries, char *err, size_t errcap) {
  memset(d, 0, sizeof *d);
  if (err && errcap) err[0] = '\0';
  size_t off = 0;
  if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) off = 3; /* UTF-8 byte order mark */
  while (off < len && is_ws(data[off]))
    off++;
  int rc;
  if (off >= len) {
    set_err(err, errcap, "%s:1: empty file", name);
    rc = IG_EPARSE;
  } else if (data[off] == '[') {
    d->is_array = 1;
    rc = parse_array(d, name, data, len, off, max_entries, err, errcap);
  } else if (data[off] == '{') {
    rc = parse_lines(d, name, data, len, max_entries, err, errcap);
  } else {
    set_err(err, errcap, "%s:%zu: not JSON or JSON Lines (expected '[' or '{')", name,
            1 + count_lines(data, off));
    rc = IG_EPARSE;
  }
  if (rc == 0 && !d->n) {
    set_err(err, errcap,
            "%s: no usable conversation (%zu entries skipped: each needs a human turn followed "
            "by a gpt turn, both non-empty strings)",
            name, d->skipped);
    rc = IG_EPARSE;
  }
  if (rc < 0) {
    size_t skipped = d->skipped;
    ig_bench_dataset_free(d);
    d->skipped = skipped;
  }
  return rc;
}

int ig_bench_dataset_load(ig_bench_dataset_t *d, const char *path, size_t max_entries, char *err,
                          size_t errcap) {
  memset(d, 0, sizeof *d);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    set_err(err, errcap, "%s: cannot open: %s", path, strerror(errno));
    return IG_EIO;
  }
  struct stat st;
  int rc = IG_EIO;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    set_err(err, errcap, "%s: not a regular file", path);
    goto out;
  }
  if (st.st_size == 0) {
    rc = ig_bench_dataset_parse(d, path, "", 0, max_entries, err, errcap);
    goto out;
  }
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED) {
    set_err(err, errcap, "%s: cannot map: %s", path, strerror(errno));
    goto out;
  }
  madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
  rc = ig_bench_dataset_parse(d, path, m, (size_t)st.st_size, max_entries, err, errcap);
  munmap(m, (size_t)st.st_size);
out:
  close(fd);
  return rc;
}

void ig_bench_dataset_free(ig_bench_dataset_t *d) {
  for (size_t i = 0; i < d->n; i++)
    free(d->v[i].prompt);
  free(d->v);
  memset(d, 0, sizeof *d);
}

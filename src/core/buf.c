/* Growable buffers and per-request arenas. */
#include "infergate/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ig_buf_init(ig_buf_t *b) { memset(b, 0, sizeof *b); }

void ig_buf_free(ig_buf_t *b) {
  free(b->data);
  ig_buf_init(b);
}

void ig_buf_reserve(ig_buf_t *b, size_t extra) {
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  b->data = ig_realloc(b->data, cap);
  b->cap = cap;
}

void ig_buf_append(ig_buf_t *b, const void *p, size_t n) {
  ig_buf_reserve(b, n);
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void ig_buf_puts(ig_buf_t *b, const char *s) { ig_buf_append(b, s, strlen(s)); }

void ig_buf_vprintf(ig_buf_t *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return;
  ig_buf_reserve(b, (size_t)n);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void ig_buf_printf(ig_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ig_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void ig_buf_consume(ig_buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  if (b->data) b->data[b->len] = '\0';
}

void ig_buf_reset(ig_buf_t *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

struct ig_arena_block {
  ig_arena_block_t *next;
  size_t used, cap;
  _Alignas(16) unsigned char mem[];
};

void ig_arena_init(ig_arena_t *a, size_t block_size) {
  a->head = NULL;
  a->block_size = block_size ? block_size : 4096;
}

void *ig_arena_alloc(ig_arena_t *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  ig_arena_block_t *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > a->block_size ? n : a->block_size;
    b = ig_malloc(sizeof *b + cap);
    b->used = 0;
    b->cap = cap;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->mem + b->used;
  b->used += n;
  return p;
}

char *ig_arena_strndup(ig_arena_t *a, const char *s, size_t n) {
  char *d = ig_arena_alloc(a, n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

void ig_arena_free(ig_arena_t *a) {
  ig_arena_block_t *b = a->head;
  while (b) {
    ig_arena_block_t *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
}

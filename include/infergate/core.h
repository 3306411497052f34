/* infergate core: error codes, allocation, logging, time, growable buffers, arenas. */
#ifndef INFERGATE_CORE_H
#define INFERGATE_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes: functions return 0 or a negative IG_E* value. */
#define IG_ERRNO_MAP(X)                                      \
  X(EAGAIN, "need more input")                               \
  X(EINVAL, "invalid argument")                              \
  X(EPARSE, "malformed input")                               \
  X(ETOOBIG, "too large")                                    \
  X(ENOENT, "not found")                                     \
  X(EEXIST, "already exists")                                \
  X(EIO, "input/output error")                               \
  X(ECONNECT, "connection failed")                           \
  X(ETIMEDOUT, "timed out")                                  \
  X(ECLOSED, "connection closed")                            \
  X(ENOTSUP, "not supported")                                \
  X(EFULL, "queue full")                                     \
  X(ECONFIG, "configuration error")

enum {
  IG_OK = 0,
#define X(name, msg) IG_##name,
  IG_E__FIRST = -100,
  IG_ERRNO_MAP(X)
#undef X
};

/* Returns a static message for an IG_E* code (or "success" for 0). */
const char *ig_strerror(int err);

/* Allocation: these abort with a message on failure, so callers never check. */
void *ig_malloc(size_t n);
void *ig_calloc(size_t n, size_t size);
void *ig_realloc(void *p, size_t n);
char *ig_strdup(const char *s);
char *ig_strndup(const char *s, size_t n);
#define IG_NEW(type) ((type *)ig_calloc(1, sizeof(type)))

/* Logging to stderr with a level filter. */
typedef enum { IG_LOG_DEBUG, IG_LOG_INFO, IG_LOG_WARN, IG_LOG_ERROR } ig_log_level_t;
void ig_log_set_level(ig_log_level_t level);
int ig_log_level_parse(const char *s, ig_log_level_t *out);
void ig_log(ig_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ig_debug(...) ig_log(IG_LOG_DEBUG, __VA_ARGS__)
#define ig_info(...) ig_log(IG_LOG_INFO, __VA_ARGS__)
#define ig_warn(...) ig_log(IG_LOG_WARN, __VA_ARGS__)
#define ig_error(...) ig_log(IG_LOG_ERROR, __VA_ARGS__)

/* Monotonic clock in microseconds / milliseconds; wall clock in microseconds. */
uint64_t ig_now_us(void);
uint64_t ig_now_ms(void);
uint64_t ig_wall_us(void);

/* Growable byte buffer. data is NUL-terminated after every append (not counted in len). */
typedef struct {
  char *data;
  size_t len;
  size_t cap;
} ig_buf_t;

void ig_buf_init(ig_buf_t *b);
void ig_buf_free(ig_buf_t *b);
void ig_buf_reserve(ig_buf_t *b, size_t extra);
void ig_buf_append(ig_buf_t *b, const void *p, size_t n);
void ig_buf_puts(ig_buf_t *b, const char *s);
void ig_buf_printf(ig_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ig_buf_vprintf(ig_buf_t *b, const char *fmt, va_list ap);
/* Drops the first n bytes (n <= len). */
void ig_buf_consume(ig_buf_t *b, size_t n);
void ig_buf_reset(ig_buf_t *b);

/* Arena: bump allocator freed in one go. Blocks are chained; large requests get their own block. */
typedef struct ig_arena_block ig_arena_block_t;
typedef struct {
  ig_arena_block_t *head;
  size_t block_size;
} ig_arena_t;

void ig_arena_init(ig_arena_t *a, size_t block_size);
void *ig_arena_alloc(ig_arena_t *a, size_t n);
char *ig_arena_strndup(ig_arena_t *a, const char *s, size_t n);
void ig_arena_free(ig_arena_t *a);

/* Small helpers. */
int ig_strncaseeq(const char *a, size_t alen, const char *b);
/* Parses "HOST:PORT" (IPv4/hostname, or [v6]:port). host is written NUL-terminated. */
int ig_parse_hostport(const char *s, char *host, size_t hostcap, int *port);
/* Deterministic 64-bit PRNG (splitmix64/xorshift) for tests and simulations. */
typedef struct { uint64_t s; } ig_rng_t;
void ig_rng_seed(ig_rng_t *r, uint64_t seed);
uint64_t ig_rng_next(ig_rng_t *r);
double ig_rng_double(ig_rng_t *r); /* [0,1) */
/* FNV-1a 64-bit hash, chainable by passing the previous hash as seed. */
uint64_t ig_hash64(const void *p, size_t n, uint64_t seed);
#define IG_HASH_SEED 1469598103934665603ULL
/* Decodes standard or URL-safe base64 from in[0..len) (white space skipped, padding optional) into a new
 * NUL-terminated buffer *out (free it) of *out_len bytes. Returns 0 or IG_EINVAL (then *out is NULL). */
int ig_base64_decode(const char *in, size_t len, char **out, size_t *out_len);

#endif

/* Per-pod prefix-cache index: an approximate LRU set of prompt block hashes.
 *
 * Two generations of open-addressing hash sets: inserts go to the current one; a lookup checks both;
 * when the current generation is full the previous one is dropped whole and the current one becomes
 * the previous. That keeps between capacity/2 and capacity of the most recently used hashes with O(1)
 * work per block and no per-entry links.
 *
 * Because a block hash chains over all earlier blocks and a request's whole chain is inserted into
 * one generation at once, a present block implies that every earlier block of its chain is present
 * in the same or a newer generation. The matched leading run is therefore found by binary search. */
#include <stdlib.h>
#include <string.h>

#include "infergate/sched.h"

#define MIN_SLOTS 16

typedef struct {
  uint64_t *slots; /* 0 = empty; keys are never 0 (see key_of) */
  size_t mask;     /* slots - 1 (a power of two) */
  size_t n;
} gen_t;

struct ig_sched_prefix {
  size_t capacity;
  size_t gen_cap;   /* entries per generation before it rotates */
  size_t max_slots; /* table size at which a generation stops growing */
  gen_t g[2];
  int cur;
};

static uint64_t key_of(uint64_t h) { return h ? h : 1; }

/* Slot index: FNV's low bits are weak, so mix before masking. */
static size_t slot_of(uint64_t key, size_t mask) {
  return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

static int gen_has(const gen_t *g, uint64_t key) {
  if (!g->n) return 0;
  for (size_t i = slot_of(key, g->mask);; i = (i + 1) & g->mask) {
    uint64_t v = g->slots[i];
    if (v == key) return 1;
    if (v == 0) return 0;
  }
}

/* Adds key without growth checks (the caller keeps the load at or below one half). */
static void gen_put(gen_t *g, uint64_t key) {
  for (size_t i = slot_of(key, g->mask);; i = (i + 1) & g->mask) {
    if (g->slots[i] == key) return;
    if (g->slots[i] == 0) {
      g->slots[i] = key;
      g->n++;
      return;
    }
  }
}

/* Doubles a generation's table, rehashing its keys. */
static void gen_grow(gen_t *g) {
  size_t old = g->mask + 1;
  uint64_t *os = g->slots;
  g->slots = ig_calloc(old * 2, sizeof *g->slots);
  g->mask = old * 2 - 1;
  g->n = 0;
  for (size_t i = 0; i < old; i++)
    if (os[i]) gen_put(g, os[i]);
  free(os);
}

static void gen_init(gen_t *g) {
  g->slots = ig_calloc(MIN_SLOTS, sizeof *g->slots);
  g->mask = MIN_SLOTS - 1;
  g->n = 0;
}

/* Creates an index; see sched.h. */
ig_sched_prefix_t *ig_sched_prefix_new(size_t capacity) {
  ig_sched_prefix_t *idx = IG_NEW(ig_sched_prefix_t);
  if (capacity == 0) capacity = IG_SCHED_PREFIX_DEFAULT_CAPACITY;
  idx->capacity = capacity;
  idx->gen_cap = capacity / 2 ? capacity / 2 : 1;
  idx->max_slots = MIN_SLOTS;
  while (idx->max_slots < idx->gen_cap * 2) idx->max_slots *= 2;
  gen_init(&idx->g[0]);
  gen_init(&idx->g[1]);
  return idx;
}

void ig_sched_prefix_free(ig_sched_prefix_t *idx) {
  if (!idx) return;
  free(idx->g[0].slots);
  free(idx->g[1].slots);
  free(idx);
}

void ig_sched_prefix_clear(ig_sched_prefix_t *idx) {
  for (int i = 0; i < 2; i++) {
    memset(idx->g[i].slots, 0, (idx->g[i].mask + 1) * sizeof(uint64_t));
    idx->g[i].n = 0;
  }
}

size_t ig_sched_prefix_size(const ig_sched_prefix_t *idx) { return idx->g[0].n + idx->g[1].n; }

/* Chained block hashes of a prompt; see sched.h. */
size_t ig_sched_prefix_hashes(const char *model, const char *prompt, size_t len, size_t block_chars,
                              uint64_t *out, size_t max) {
  if (!block_chars) block_chars = IG_SCHED_PREFIX_BLOCK_CHARS;
  if (!prompt) return 0;
  /* The model name seeds the chain: the same text sent to two models shares no cache. */
  uint64_t h = model ? ig_hash64(model, strlen(model), IG_HASH_SEED) : IG_HASH_SEED;
  size_t n = 0;
  for (size_t off = 0; n < max && len - off >= block_chars; off += block_chars) {
    h = ig_hash64(prompt + off, block_chars, h);
    out[n++] = h;
  }
  return n;
}

static int has(const ig_sched_prefix_t *idx, uint64_t h) {
  uint64_t key = key_of(h);
  return gen_has(&idx->g[idx->cur], key) || gen_has(&idx->g[!idx->cur], key);
}

/* Longest present leading run of h[0..n); binary search relies on the chain property (file comment). */
size_t ig_sched_prefix_match(const ig_sched_prefix_t *idx, const uint64_t *h, size_t n) {
  if (!idx || n == 0 || !has(idx, h[0])) return 0;
  if (has(idx, h[n - 1])) return n;
  size_t lo = 1, hi = n - 1; /* h[lo-1] present, h[hi] absent */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2; /* lo <= mid < hi */
    if (has(idx, h[mid]))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Drops the previous generation and starts a new current one in its storage. */
static void rotate(ig_sched_prefix_t *idx) {
  gen_t *old = &idx->g[!idx->cur];
  /* Shrink a big table back to the minimum so a cold pod does not keep a large empty table. */
  if (old->mask + 1 > MIN_SLOTS * 64 && idx->g[idx->cur].n < (old->mask + 1) / 16) {
    free(old->slots);
    gen_init(old);
  } else {
    memset(old->slots, 0, (old->mask + 1) * sizeof(uint64_t));
    old->n = 0;
  }
  idx->cur = !idx->cur;
}

/* Records a request's chain as most recently used; see sched.h. */
void ig_sched_prefix_insert(ig_sched_prefix_t *idx, const uint64_t *h, size_t n) {
  if (!idx || n == 0) return;
  /* Keep the chain in one generation (the binary search in match depends on it). */
  gen_t *g = &idx->g[idx->cur];
  if (g->n + n > idx->gen_cap && g->n > 0) {
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) missing += !gen_has(g, key_of(h[i]));
    if (g->n + missing > idx->gen_cap) {
      rotate(idx);
      g = &idx->g[idx->cur];
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (g->n >= idx->gen_cap) {
      /* a single chain longer than a generation (tiny capacity): keep its newest blocks */
      rotate(idx);
      g = &idx->g[idx->cur];
    }
    if ((g->n + 1) * 2 > g->mask + 1 && g->mask + 1 < idx->max_slots) gen_grow(g);
    gen_put(g, key_of(h[i]));
  }
}

/* Prefix-cache index: per pod, an approximate LRU set of prompt block hashes; per pool, an index of
 * chain heads over the pods, so that a pick finds the pods that share a request's first block with one
 * lookup instead of one lookup per pod.
 *
 * Per pod: two generations of open-addressing hash sets: inserts go to the current one; a lookup checks
 * both; when the current generation is full the previous one is dropped whole and the current one
 * becomes the previous. That keeps between capacity/2 and capacity of the most recently used hashes
 * with O(1) work per block and no per-entry links.
 *
 * Because a block hash chains over all earlier blocks and a request's whole chain is inserted into
 * one generation at once, a present block implies that every earlier block of its chain is present
 * in the same or a newer generation. The matched leading run is therefore found by binary search.
 *
 * Pool-wide (a "space", owned by a scheduler, see sched_internal.h): every pod attached to the space
 * has a slot; the space maps a chain head (the first hash of an inserted chain) to the slots of the
 * pods whose generations hold it, one entry per (generation, pod) that holds it. Each generation keeps
 * the list of heads it recorded, so dropping or clearing a generation removes exactly its entries: the
 * space is always an exact mirror of the pods' heads, and costs about 2 x 4 bytes per head plus a table
 * entry per distinct head (a head is one block in 16 for 1 KB prompts). A request's first block hash is
 * the head of the chains it can match, so a pod missing from the head's list matches 0 blocks. */
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

#define MIN_SLOTS 16
#define MIN_SPACE 64 /* head table slots */

typedef struct {
  uint64_t *slots; /* 0 = empty; keys are never 0 (see key_of) */
  size_t mask;     /* slots - 1 (a power of two) */
  size_t n;
} gen_t;

typedef struct {
  uint64_t *v; /* keys recorded as chain heads in a generation (each once) */
  size_t n, cap;
} heads_t;

struct ig_sched_prefix {
  size_t capacity;
  size_t gen_cap;   /* entries per generation before it rotates */
  size_t max_slots; /* table size at which a generation stops growing */
  gen_t g[2];
  heads_t heads[2];
  int cur;
  ig_sched_pspace_t *space; /* NULL = not attached */
  uint32_t slot;
};

static uint64_t key_of(uint64_t h) { return h ? h : 1; }

/* Slot index: mix before masking (keys of the tests and callers may have weak low bits). */
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

/* Adds key without growth checks (the caller keeps the load at or below one half). Returns 1 when
 * the key was new. */
static int gen_put(gen_t *g, uint64_t key) {
  for (size_t i = slot_of(key, g->mask);; i = (i + 1) & g->mask) {
    if (g->slots[i] == key) return 0;
    if (g->slots[i] == 0) {
      g->slots[i] = key;
      g->n++;
      return 1;
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

/* ---- the pool-wide head index (space) ---- */

/* An entry's slots: inline up to 2 (the common case: one pod, or one pod in both generations). */
static uint32_t *ent_slots(ig_sched_pspace_ent_t *e) { return e->cap <= 2 ? e->u.in : e->u.v; }

static size_t space_home(const ig_sched_pspace_t *sp, uint64_t key) { return slot_of(key, sp->mask); }

static ig_sched_pspace_ent_t *space_find(const ig_sched_pspace_t *sp, uint64_t key) {
  for (size_t i = space_home(sp, key);; i = (i + 1) & sp->mask) {
    ig_sched_pspace_ent_t *e = &sp->tab[i];
    if (e->key == key) return e;
    if (e->key == 0) return NULL;
  }
}

/* Slots of the pods holding key as a chain head (a slot may appear twice); *n = 0 when none. */
const uint32_t *ig_sched_pspace_find(const ig_sched_pspace_t *sp, uint64_t key, size_t *n) {
  ig_sched_pspace_ent_t *e = space_find(sp, key_of(key));
  *n = e ? e->n : 0;
  return e ? ent_slots(e) : NULL;
}

static void space_grow(ig_sched_pspace_t *sp) {
  size_t old = sp->mask + 1;
  ig_sched_pspace_ent_t *ot = sp->tab;
  sp->tab = ig_calloc(old * 2, sizeof *sp->tab);
  sp->mask = old * 2 - 1;
  for (size_t i = 0; i < old; i++) {
    if (!ot[i].key) continue;
    size_t j = space_home(sp, ot[i].key);
    while (sp->tab[j].key) j = (j + 1) & sp->mask;
    sp->tab[j] = ot[i];
  }
  free(ot);
}

/* Adds one (key, slot) entry. */
static void space_add(ig_sched_pspace_t *sp, uint64_t key, uint32_t slot) {
  if ((sp->n + 1) * 2 > sp->mask + 1) space_grow(sp);
  size_t i = space_home(sp, key);
  while (sp->tab[i].key && sp->tab[i].key != key) i = (i + 1) & sp->mask;
  ig_sched_pspace_ent_t *e = &sp->tab[i];
  if (!e->key) {
    e->key = key;
    e->n = 0;
    e->cap = 2;
    sp->n++;
  }
  if (e->n == e->cap) {
    uint32_t *v = ig_malloc((size_t)e->cap * 2 * sizeof *v);
    memcpy(v, ent_slots(e), e->n * sizeof *v);
    if (e->cap > 2) free(e->u.v);
    e->u.v = v;
    e->cap *= 2;
  }
  ent_slots(e)[e->n++] = slot;
}

/* Removes the entry at i, shifting later members of its probe run back (linear-probing deletion). */
static void space_erase(ig_sched_pspace_t *sp, size_t i) {
  if (sp->tab[i].cap > 2) free(sp->tab[i].u.v);
  sp->n--;
  for (size_t j = (i + 1) & sp->mask;; j = (j + 1) & sp->mask) {
    if (!sp->tab[j].key) break;
    size_t h = space_home(sp, sp->tab[j].key);
    /* move j into the hole at i unless its home lies cyclically in (i, j] */
    if (((j - h) & sp->mask) >= ((j - i) & sp->mask)) {
      sp->tab[i] = sp->tab[j];
      i = j;
    }
  }
  memset(&sp->tab[i], 0, sizeof sp->tab[i]);
}

/* Removes one (key, slot) entry (present by the mirror invariant). */
static void space_del(ig_sched_pspace_t *sp, uint64_t key, uint32_t slot) {
  size_t i = space_home(sp, key);
  while (sp->tab[i].key != key) {
    if (!sp->tab[i].key) return; /* not reached while the mirror is exact */
    i = (i + 1) & sp->mask;
  }
  ig_sched_pspace_ent_t *e = &sp->tab[i];
  uint32_t *v = ent_slots(e);
  for (uint32_t k = 0; k < e->n; k++) {
    if (v[k] != slot) continue;
    v[k] = v[--e->n];
    break;
  }
  if (e->n == 0) {
    space_erase(sp, i);
  } else if (e->cap > 2 && e->n <= 2) { /* back to inline storage */
    uint32_t a = v[0], b = v[1];
    free(v);
    e->cap = 2;
    e->u.in[0] = a;
    e->u.in[1] = b;
  }
}

/* Creates an empty space (the scheduler holds it). */
ig_sched_pspace_t *ig_sched_pspace_new(void) {
  ig_sched_pspace_t *sp = IG_NEW(ig_sched_pspace_t);
  sp->tab = ig_calloc(MIN_SPACE, sizeof *sp->tab);
  sp->mask = MIN_SPACE - 1;
  return sp;
}

static void space_free(ig_sched_pspace_t *sp) {
  for (size_t i = 0; i <= sp->mask; i++)
    if (sp->tab[i].key && sp->tab[i].cap > 2) free(sp->tab[i].u.v);
  free(sp->tab);
  free(sp->owner);
  free(sp->free_slots);
  free(sp);
}

/* The scheduler lets go of its space: freed now when no pod is attached, else when the last one
 * leaves (pods of an orphaned space move to the next scheduler that picks them). */
void ig_sched_pspace_release(ig_sched_pspace_t *sp) {
  if (!sp) return;
  if (!sp->members) {
    space_free(sp);
    return;
  }
  sp->orphan = 1;
}

static void heads_mirror(ig_sched_prefix_t *idx, int g, int add) {
  ig_sched_pspace_t *sp = idx->space;
  if (!sp) return;
  for (size_t i = 0; i < idx->heads[g].n; i++) {
    if (add)
      space_add(sp, idx->heads[g].v[i], idx->slot);
    else
      space_del(sp, idx->heads[g].v[i], idx->slot);
  }
}

/* Takes idx out of its space (its heads leave the space's table and its slot is freed). */
static void detach(ig_sched_prefix_t *idx) {
  ig_sched_pspace_t *sp = idx->space;
  if (!sp) return;
  heads_mirror(idx, 0, 0);
  heads_mirror(idx, 1, 0);
  sp->owner[idx->slot] = NULL;
  sp->free_slots[sp->n_free++] = idx->slot;
  sp->members--;
  sp->gen++;
  idx->space = NULL;
  if (sp->orphan && !sp->members) space_free(sp);
}

/* Moves idx into space sp (a no-op when it is there already); see sched_internal.h. */
void ig_sched_prefix_attach(ig_sched_prefix_t *idx, ig_sched_pspace_t *sp) {
  if (idx->space == sp) return;
  detach(idx);
  uint32_t slot;
  if (sp->n_free) {
    slot = sp->free_slots[--sp->n_free];
  } else {
    if (sp->n_owner == sp->cap_owner) {
      sp->cap_owner = sp->cap_owner ? sp->cap_owner * 2 : 64;
      sp->owner = ig_realloc(sp->owner, sp->cap_owner * sizeof *sp->owner);
      sp->free_slots = ig_realloc(sp->free_slots, sp->cap_owner * sizeof *sp->free_slots);
    }
    slot = sp->n_owner++;
  }
  sp->owner[slot] = idx;
  sp->members++;
  sp->gen++;
  idx->space = sp;
  idx->slot = slot;
  heads_mirror(idx, 0, 1);
  heads_mirror(idx, 1, 1);
}

ig_sched_pspace_t *ig_sched_prefix_space(const ig_sched_prefix_t *idx) { return idx->space; }
uint32_t ig_sched_prefix_slot(const ig_sched_prefix_t *idx) { return idx->slot; }

/* ---- per-pod index ---- */

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
  detach(idx);
  free(idx->g[0].slots);
  free(idx->g[1].slots);
  free(idx->heads[0].v);
  free(idx->heads[1].v);
  free(idx);
}

/* Empties generation g (its table keeps its size unless shrink) and its heads. */
static void gen_drop(ig_sched_prefix_t *idx, int g, int shrink) {
  gen_t *gen = &idx->g[g];
  heads_mirror(idx, g, 0);
  idx->heads[g].n = 0;
  if (shrink) {
    free(idx->heads[g].v);
    idx->heads[g].v = NULL;
    idx->heads[g].cap = 0;
    free(gen->slots);
    gen_init(gen);
  } else {
    memset(gen->slots, 0, (gen->mask + 1) * sizeof(uint64_t));
    gen->n = 0;
  }
}

void ig_sched_prefix_clear(ig_sched_prefix_t *idx) {
  gen_drop(idx, 0, 0);
  gen_drop(idx, 1, 0);
}

size_t ig_sched_prefix_size(const ig_sched_prefix_t *idx) { return idx->g[0].n + idx->g[1].n; }

/* Reads 8 bytes in host order without alignment requirements. */
static uint64_t load64(const char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Final avalanche (splitmix64): every input bit affects every output bit. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

/* Hash of one block chained on h: 8 bytes per step (a byte-wise FNV over 1 KB prompts was the largest
 * cost of a pick on small pools), the tail byte-wise, then a final mix. */
static uint64_t block_hash(const char *p, size_t n, uint64_t h) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    h ^= load64(p + i);
    h = (h << 29 | h >> 35) * 0x9E3779B97F4A7C15ULL;
  }
  for (; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001B3ULL;
  return mix64(h ^ n);
}

/* Chained block hashes of a prompt; see sched.h. */
size_t ig_sched_prefix_hashes(const char *model, const char *prompt, size_t len, size_t block_chars,
                              uint64_t *out, size_t max) {
  if (!block_chars) block_chars = IG_SCHED_PREFIX_BLOCK_CHARS;
  if (!prompt) return 0;
  /* The model name seeds the chain: the same text sent to two models shares no cache. The seed is
   * mixed so that it never equals a block hash by construction (a model name spelling out another
   * model's blocks). */
  uint64_t h = mix64(model ? ig_hash64(model, strlen(model), IG_HASH_SEED) : IG_HASH_SEED) ^ 0x5A17ED5EEDULL;
  size_t n = 0;
  for (size_t off = 0; n < max && len - off >= block_chars; off += block_chars) {
    h = block_hash(prompt + off, block_chars, h);
    out[n++] = h;
  }
  return n;
}

static int has(const ig_sched_prefix_t *idx, uint64_t h) {
  uint64_t key = key_of(h);
  return gen_has(&idx->g[idx->cur], key) || gen_has(&idx->g[!idx->cur], key);
}

/* Prefetches key's home slot in both generations. */
static void prefetch_key(const ig_sched_prefix_t *idx, uint64_t key) {
  for (int g = 0; g < 2; g++)
    if (idx->g[g].n) __builtin_prefetch(&idx->g[g].slots[slot_of(key, idx->g[g].mask)]);
}

/* See sched_internal.h: the first block, the last one and the binary search's first midpoint. */
void ig_sched_prefix_prefetch(const ig_sched_prefix_t *idx, const uint64_t *h, size_t n) {
  prefetch_key(idx, key_of(h[0]));
  if (n < 2) return;
  prefetch_key(idx, key_of(h[n - 1]));
  if (n > 2) prefetch_key(idx, key_of(h[1 + (n - 2) / 2]));
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

#define MANY_BATCH 32

/* Lockstep binary searches; see sched_internal.h. Every index takes exactly the steps of
 * ig_sched_prefix_match, so the answers are the same. */
void ig_sched_prefix_match_many(const ig_sched_prefix_t *const *idx, size_t m, const uint64_t *h, size_t n,
                                uint32_t *out) {
  size_t lo[MANY_BATCH], hi[MANY_BATCH], act[MANY_BATCH];
  for (size_t b = 0; b < m; b += MANY_BATCH) {
    size_t nb = m - b < MANY_BATCH ? m - b : MANY_BATCH, na = 0;
    for (size_t j = 0; j < nb; j++) ig_sched_prefix_prefetch(idx[b + j], h, n);
    for (size_t j = 0; j < nb; j++) {
      const ig_sched_prefix_t *x = idx[b + j];
      if (!has(x, h[0])) {
        out[b + j] = 0;
      } else if (has(x, h[n - 1])) {
        out[b + j] = (uint32_t)n;
      } else {
        lo[j] = 1;
        hi[j] = n - 1;
        act[na++] = j;
      }
    }
    while (na) {
      for (size_t a = 0; a < na; a++) {
        size_t j = act[a];
        if (lo[j] < hi[j]) prefetch_key(idx[b + j], key_of(h[lo[j] + (hi[j] - lo[j]) / 2]));
      }
      size_t keep = 0;
      for (size_t a = 0; a < na; a++) {
        size_t j = act[a];
        if (lo[j] < hi[j]) {
          size_t mid = lo[j] + (hi[j] - lo[j]) / 2;
          if (has(idx[b + j], h[mid]))
            lo[j] = mid + 1;
          else
            hi[j] = mid;
        }
        if (lo[j] < hi[j])
          act[keep++] = j;
        else
          out[b + j] = (uint32_t)lo[j];
      }
      na = keep;
    }
  }
}

/* Drops the previous generation and starts a new current one in its storage. */
static void rotate(ig_sched_prefix_t *idx) {
  int old = !idx->cur;
  gen_t *g = &idx->g[old];
  /* Shrink a big table back to the minimum so a cold pod does not keep a large empty table. */
  gen_drop(idx, old, g->mask + 1 > MIN_SLOTS * 64 && idx->g[idx->cur].n < (g->mask + 1) / 16);
  idx->cur = old;
}

/* Records key as a chain head of generation g (once per generation: the caller saw it new there). */
static void head_add(ig_sched_prefix_t *idx, int g, uint64_t key) {
  heads_t *hd = &idx->heads[g];
  if (hd->n == hd->cap) {
    hd->cap = hd->cap ? hd->cap * 2 : 8;
    hd->v = ig_realloc(hd->v, hd->cap * sizeof *hd->v);
  }
  hd->v[hd->n++] = key;
  if (idx->space) space_add(idx->space, key, idx->slot);
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
    if (gen_put(g, key_of(h[i])) && i == 0) head_add(idx, idx->cur, key_of(h[0]));
  }
}

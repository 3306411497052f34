/* Simulated inference engine: continuous batching, paged KV cache with prefix caching, preemption by
 * recompute, LoRA slots. Pure state machine; see engine.h for the calling protocol. */
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infergate/oai.h"

#define NONE UINT32_MAX

/* Profiles from DESIGN.md (BLIS fit on vLLM 0.8.4). The A100 profile keeps the H100 block count: both
 * cards have 80 GB, the model weights are identical (Llama 3 8B, ~16 GB in bf16) and the KV block size
 * is the same (16 tokens x 32 layers x 8 KV heads x 128 dims x 2 (K,V) x 2 bytes = 2 MiB), so the
 * memory left for KV at 0.9 utilisation is the same. */
static const ig_sim_profile_t profiles[] = {
    {"llama3-8b-h100", 5752.7, 17.25, 6.00, 29205, 8192, 1024},
    {"llama3-8b-a100", 16441.5, 47.84, 18.21, 29205, 2048, 256},
};

const ig_sim_profile_t *ig_sim_profile_find(const char *name) {
  for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
    if (!strcmp(profiles[i].name, name)) return &profiles[i];
  return NULL;
}

/* Histogram buckets as vLLM exports them. */
const double ig_sim_ttft_buckets[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                      1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const size_t ig_sim_ttft_nbuckets = sizeof ig_sim_ttft_buckets / sizeof ig_sim_ttft_buckets[0];
const double ig_sim_e2e_buckets[] = {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,  15.0,  20.0,
                                     30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
const size_t ig_sim_e2e_nbuckets = sizeof ig_sim_e2e_buckets / sizeof ig_sim_e2e_buckets[0];

static void hist_observe(ig_sim_hist_t *h, double v) {
  size_t i = 0;
  while (i < h->n && v > h->bounds[i]) i++;
  h->counts[i]++; /* i == n is the +Inf bucket */
  h->count++;
  h->sum += v;
}

const char *ig_sim_token_text(uint32_t i) {
  static const char *words[] = {" the", " cat", " sat", " on ", " a m", "at, ", " and", " saw",
                                " one", " red", " fox", " run", " far", " to ", " sea", ". So"};
  return words[i % (sizeof words / sizeof words[0])];
}

/* ---- sequences -------------------------------------------------------------------------------- */

void ig_sim_seq_init(ig_sim_seq_t *seq, const char *text, size_t len, uint32_t max_tokens, int lora,
                     const char *lora_name) {
  memset(seq, 0, sizeof *seq);
  size_t toks = ig_oai_count_tokens(text, len);
  seq->prompt_tokens = toks > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)toks;
  if (seq->prompt_tokens == 0) seq->prompt_tokens = 1; /* an empty prompt still has a BOS token */
  seq->max_tokens = max_tokens ? max_tokens : 1;
  seq->lora = lora;
  seq->n_hashes = (uint32_t)(len / IG_SIM_BLOCK_CHARS);
  if (seq->n_hashes) {
    seq->hashes = ig_malloc(seq->n_hashes * sizeof *seq->hashes);
    uint64_t h = IG_HASH_SEED;
    if (lora >= 0 && lora_name) h = ig_hash64(lora_name, strlen(lora_name), h);
    for (uint32_t j = 0; j < seq->n_hashes; j++) {
      h = ig_hash64(text + (size_t)j * IG_SIM_BLOCK_CHARS, IG_SIM_BLOCK_CHARS, h);
      seq->hashes[j] = h;
    }
  }
  seq->state = IG_SIM_SEQ_NEW;
}

void ig_sim_seq_free(ig_sim_seq_t *seq) {
  free(seq->hashes);
  free(seq->blocks);
  seq->hashes = NULL;
  seq->blocks = NULL;
  seq->n_hashes = seq->n_blocks = seq->cap_blocks = 0;
}

/* ---- KV block manager ------------------------------------------------------------------------- */

static uint32_t bucket_of(const ig_sim_engine_t *e, uint64_t h) {
  return (uint32_t)((h ^ (h >> 29)) & (e->nbuckets - 1));
}

static uint32_t cache_lookup(const ig_sim_engine_t *e, uint64_t h) {
  for (uint32_t id = e->buckets[bucket_of(e, h)]; id != NONE; id = e->blocks[id].hnext)
    if (e->blocks[id].hash == h) return id;
  return NONE;
}

static void cache_insert(ig_sim_engine_t *e, uint32_t id, uint64_t h) {
  uint32_t b = bucket_of(e, h);
  e->blocks[id].hash = h;
  e->blocks[id].hashed = 1;
  e->blocks[id].hnext = e->buckets[b];
  e->buckets[b] = id;
}

static void cache_remove(ig_sim_engine_t *e, uint32_t id) {
  uint32_t *pp = &e->buckets[bucket_of(e, e->blocks[id].hash)];
  while (*pp != NONE && *pp != id) pp = &e->blocks[*pp].hnext;
  if (*pp == id) *pp = e->blocks[id].hnext;
  e->blocks[id].hashed = 0;
  e->blocks[id].hnext = NONE;
}

static void free_unlink(ig_sim_engine_t *e, uint32_t id) {
  ig_sim_block_t *b = &e->blocks[id];
  if (b->lprev != NONE) e->blocks[b->lprev].lnext = b->lnext;
  else e->free_head = b->lnext;
  if (b->lnext != NONE) e->blocks[b->lnext].lprev = b->lprev;
  else e->free_tail = b->lprev;
  b->lprev = b->lnext = NONE;
  b->in_free = 0;
  e->n_free--;
}

/* Cached (hashed) blocks go to the tail so they are evicted last; plain blocks to the head. */
static void free_push(ig_sim_engine_t *e, uint32_t id) {
  ig_sim_block_t *b = &e->blocks[id];
  b->in_free = 1;
  e->n_free++;
  if (b->hashed) {
    b->lnext = NONE;
    b->lprev = e->free_tail;
    if (e->free_tail != NONE) e->blocks[e->free_tail].lnext = id;
    else e->free_head = id;
    e->free_tail = id;
  } else {
    b->lprev = NONE;
    b->lnext = e->free_head;
    if (e->free_head != NONE) e->blocks[e->free_head].lprev = id;
    else e->free_tail = id;
    e->free_head = id;
  }
}

/* Takes the least recently used free block, evicting its cached content. Caller checked n_free. */
static uint32_t block_alloc(ig_sim_engine_t *e) {
  uint32_t id = e->free_head;
  free_unlink(e, id);
  if (e->blocks[id].hashed) cache_remove(e, id);
  e->blocks[id].ref = 1;
  return id;
}

static void block_ref(ig_sim_engine_t *e, uint32_t id) {
  if (e->blocks[id].ref++ == 0) free_unlink(e, id);
}

static void block_unref(ig_sim_engine_t *e, uint32_t id) {
  if (--e->blocks[id].ref == 0) free_push(e, id);
}

static void seq_push_block(ig_sim_seq_t *s, uint32_t id) {
  if (s->n_blocks == s->cap_blocks) {
    s->cap_blocks = s->cap_blocks ? s->cap_blocks * 2 : 8;
    s->blocks = ig_realloc(s->blocks, s->cap_blocks * sizeof *s->blocks);
  }
  s->blocks[s->n_blocks++] = id;
}

/* Releases all blocks of s, last block first, so that the head of a prompt is evicted last. */
static void seq_release_blocks(ig_sim_engine_t *e, ig_sim_seq_t *s) {
  while (s->n_blocks) block_unref(e, s->blocks[--s->n_blocks]);
  s->n_reg = 0;
}

static uint32_t blocks_for(uint64_t tokens) {
  return (uint32_t)((tokens + IG_SIM_BLOCK_TOKENS - 1) / IG_SIM_BLOCK_TOKENS);
}

uint32_t ig_sim_engine_blocks_used(const ig_sim_engine_t *e) { return e->cfg.prof.kv_blocks - e->n_free; }

double ig_sim_engine_kv_usage(const ig_sim_engine_t *e) {
  return e->cfg.prof.kv_blocks ? (double)ig_sim_engine_blocks_used(e) / e->cfg.prof.kv_blocks : 0.0;
}

/* ---- queues ----------------------------------------------------------------------------------- */

static void q_unlink(ig_sim_seq_t **head, ig_sim_seq_t **tail, ig_sim_seq_t *s) {
  if (s->prev) s->prev->next = s->next;
  else *head = s->next;
  if (s->next) s->next->prev = s->prev;
  else *tail = s->prev;
  s->prev = s->next = NULL;
}

static void q_push_tail(ig_sim_seq_t **head, ig_sim_seq_t **tail, ig_sim_seq_t *s) {
  s->next = NULL;
  s->prev = *tail;
  if (*tail) (*tail)->next = s;
  else *head = s;
  *tail = s;
}

static void q_push_head(ig_sim_seq_t **head, ig_sim_seq_t **tail, ig_sim_seq_t *s) {
  s->prev = NULL;
  s->next = *head;
  if (*head) (*head)->prev = s;
  else *tail = s;
  *head = s;
}

/* ---- engine ----------------------------------------------------------------------------------- */

void ig_sim_engine_init(ig_sim_engine_t *e, const ig_sim_engine_config_t *cfg) {
  memset(e, 0, sizeof *e);
  e->cfg = *cfg;
  if (e->cfg.prof.kv_blocks == 0) e->cfg.prof.kv_blocks = 1;
  if (e->cfg.prof.max_batched_tokens == 0) e->cfg.prof.max_batched_tokens = 1;
  if (e->cfg.prof.max_num_seqs == 0) e->cfg.prof.max_num_seqs = 1;
  if (e->cfg.slowdown <= 0) e->cfg.slowdown = 1.0;
  uint64_t kv_tokens = (uint64_t)e->cfg.prof.kv_blocks * IG_SIM_BLOCK_TOKENS;
  if (e->cfg.max_model_len == 0) e->cfg.max_model_len = IG_SIM_DEFAULT_MODEL_LEN;
  if (e->cfg.max_model_len > kv_tokens) e->cfg.max_model_len = (uint32_t)kv_tokens; /* must fit in KV */
  uint32_t n = e->cfg.prof.kv_blocks;
  e->blocks = ig_calloc(n, sizeof *e->blocks);
  e->nbuckets = 16;
  while (e->nbuckets < n) e->nbuckets *= 2;
  e->buckets = ig_malloc(e->nbuckets * sizeof *e->buckets);
  for (uint32_t i = 0; i < e->nbuckets; i++) e->buckets[i] = NONE;
  e->free_head = e->free_tail = NONE;
  for (uint32_t i = 0; i < n; i++) {
    e->blocks[i].hnext = e->blocks[i].lprev = e->blocks[i].lnext = NONE;
    free_push(e, i);
  }
  e->stats.ttft.bounds = ig_sim_ttft_buckets;
  e->stats.ttft.n = ig_sim_ttft_nbuckets;
  e->stats.e2e.bounds = ig_sim_e2e_buckets;
  e->stats.e2e.n = ig_sim_e2e_nbuckets;
}

void ig_sim_engine_free(ig_sim_engine_t *e) {
  while (e->run_head) ig_sim_engine_abort(e, e->run_head);
  while (e->wait_head) ig_sim_engine_abort(e, e->wait_head);
  for (int i = 0; i < e->n_adapters; i++) {
    free(e->adapters[i].name);
    free(e->adapters[i].path);
  }
  free(e->blocks);
  free(e->buckets);
  memset(e, 0, sizeof *e);
}

static ig_sim_adapter_t *seq_adapter(ig_sim_engine_t *e, const ig_sim_seq_t *s) {
  return s->lora >= 0 && s->lora < e->n_adapters ? &e->adapters[s->lora] : NULL;
}

/* An unregistered adapter leaves its slot once nothing uses it. */
static void adapter_settle(ig_sim_adapter_t *a) {
  if (a && !a->registered && a->running == 0 && a->waiting == 0) a->resident = 0;
}

int ig_sim_engine_submit(ig_sim_engine_t *e, ig_sim_seq_t *seq, uint64_t now_us) {
  if (seq->lora >= 0 && (seq->lora >= e->n_adapters || !e->adapters[seq->lora].registered)) return IG_ENOENT;
  if ((uint64_t)seq->prompt_tokens + seq->max_tokens > e->cfg.max_model_len) return IG_ETOOBIG;
  if (e->cfg.max_waiting && e->n_waiting_new >= e->cfg.max_waiting) return IG_EFULL;
  seq->state = IG_SIM_SEQ_WAITING;
  seq->arrival_us = now_us;
  seq->computed = seq->generated = seq->scheduled = 0;
  q_push_tail(&e->wait_head, &e->wait_tail, seq);
  e->n_waiting++;
  e->n_waiting_new++;
  if (e->step_in_flight) e->arrived_in_step++;
  ig_sim_adapter_t *a = seq_adapter(e, seq);
  if (a) a->waiting++;
  return 0;
}

void ig_sim_engine_abort(ig_sim_engine_t *e, ig_sim_seq_t *seq) {
  ig_sim_adapter_t *a = seq_adapter(e, seq);
  if (seq->state == IG_SIM_SEQ_WAITING) {
    q_unlink(&e->wait_head, &e->wait_tail, seq);
    e->n_waiting--;
    if (!seq->admitted_once) e->n_waiting_new--;
    if (a) a->waiting--;
  } else if (seq->state == IG_SIM_SEQ_RUNNING) {
    q_unlink(&e->run_head, &e->run_tail, seq);
    e->n_running--;
    if (a) a->running--;
  } else {
    return;
  }
  seq_release_blocks(e, seq);
  seq->scheduled = 0;
  seq->state = IG_SIM_SEQ_DONE;
  e->stats.requests_aborted++;
  adapter_settle(a);
}

/* Moves the last running sequence back to the head of the waiting queue; its KV is dropped and will
 * be recomputed (its prompt blocks usually stay cached until evicted). */
static void preempt_last(ig_sim_engine_t *e) {
  ig_sim_seq_t *s = e->run_tail;
  ig_sim_adapter_t *a = seq_adapter(e, s);
  q_unlink(&e->run_head, &e->run_tail, s);
  e->n_running--;
  seq_release_blocks(e, s);
  s->computed = 0;
  s->scheduled = 0;
  s->preemptions++;
  s->state = IG_SIM_SEQ_WAITING;
  q_push_head(&e->wait_head, &e->wait_tail, s);
  e->n_waiting++;
  if (a) {
    a->running--;
    a->waiting++;
  }
  e->stats.preemptions++;
}

/* Grows s's block list to cover its computed tokens plus n more; returns 0 or IG_EFULL. */
static int seq_grow(ig_sim_engine_t *e, ig_sim_seq_t *s, uint32_t n) {
  uint32_t need = blocks_for((uint64_t)s->computed + n);
  if (need <= s->n_blocks) return 0;
  if (need - s->n_blocks > e->n_free) return IG_EFULL;
  while (s->n_blocks < need) seq_push_block(s, block_alloc(e));
  return 0;
}

uint32_t ig_sim_engine_slots_used(const ig_sim_engine_t *e) {
  uint32_t n = 0;
  for (int i = 0; i < e->n_adapters; i++) n += e->adapters[i].resident;
  return n;
}

int ig_sim_engine_load_adapter(ig_sim_engine_t *e, int idx) {
  if (idx < 0 || idx >= e->n_adapters) return IG_EINVAL;
  ig_sim_adapter_t *a = &e->adapters[idx];
  if (a->resident) return 0;
  if (ig_sim_engine_slots_used(e) >= e->cfg.max_loras) {
    /* evict the least recently used resident adapter without running sequences, preferring ones
     * nobody waits for */
    int victim = -1;
    for (int i = 0; i < e->n_adapters; i++) {
      ig_sim_adapter_t *c = &e->adapters[i];
      if (!c->resident || c->running) continue;
      if (victim < 0) {
        victim = i;
        continue;
      }
      ig_sim_adapter_t *v = &e->adapters[victim];
      if ((c->waiting == 0) > (v->waiting == 0) ||
          ((c->waiting == 0) == (v->waiting == 0) && c->last_used < v->last_used))
        victim = i;
    }
    if (victim < 0) return IG_EFULL;
    e->adapters[victim].resident = 0;
  }
  a->resident = 1;
  a->last_used = e->stats.steps;
  e->stats.lora_loads++;
  return 0;
}

int ig_sim_engine_find_adapter(const ig_sim_engine_t *e, const char *name) {
  for (int i = 0; i < e->n_adapters; i++)
    if (e->adapters[i].registered && !strcmp(e->adapters[i].name, name)) return i;
  return -1;
}

int ig_sim_engine_add_adapter(ig_sim_engine_t *e, const char *name, const char *path, int *idx) {
  int i = ig_sim_engine_find_adapter(e, name);
  if (i >= 0) {
    if (idx) *idx = i;
    return IG_EEXIST;
  }
  /* reuse the slot of a previously removed adapter of the same name, else a free entry */
  for (i = 0; i < e->n_adapters; i++)
    if (!e->adapters[i].registered && !strcmp(e->adapters[i].name, name)) break;
  if (i == e->n_adapters) {
    for (i = 0; i < e->n_adapters; i++) {
      ig_sim_adapter_t *c = &e->adapters[i];
      if (!c->registered && !c->resident && !c->running && !c->waiting) break;
    }
  }
  if (i == e->n_adapters) {
    if (e->n_adapters == IG_SIM_MAX_ADAPTERS) return IG_EFULL;
    e->n_adapters++;
  }
  ig_sim_adapter_t *a = &e->adapters[i];
  if (!a->name || strcmp(a->name, name)) {
    free(a->name);
    a->name = ig_strdup(name);
  }
  free(a->path);
  a->path = ig_strdup(path ? path : name);
  a->registered = 1;
  if (idx) *idx = i;
  return 0;
}

int ig_sim_engine_remove_adapter(ig_sim_engine_t *e, const char *name) {
  int i = ig_sim_engine_find_adapter(e, name);
  if (i < 0) return IG_ENOENT;
  e->adapters[i].registered = 0;
  adapter_settle(&e->adapters[i]);
  return 0;
}

/* Number of prompt blocks of s found in the prefix cache, capped so that at least one token is left
 * to compute (the last token must run through the model to sample the next one). */
static uint32_t prefix_hits(const ig_sim_engine_t *e, const ig_sim_seq_t *s, uint32_t num_tokens) {
  uint32_t hits = 0;
  while (hits < s->n_hashes && cache_lookup(e, s->hashes[hits]) != NONE) hits++;
  if ((uint64_t)hits * IG_SIM_BLOCK_TOKENS >= num_tokens) hits = (num_tokens - 1) / IG_SIM_BLOCK_TOKENS;
  return hits;
}

/* Tries to admit waiting sequence s with the remaining token budget. Returns the tokens scheduled
 * (> 0) or 0 when it cannot run now (LoRA slot or KV blocks). */
static uint32_t admit(ig_sim_engine_t *e, ig_sim_seq_t *s, uint32_t budget) {
  ig_sim_adapter_t *a = seq_adapter(e, s);
  if (a && !a->resident && ig_sim_engine_load_adapter(e, s->lora) != 0) return 0;
  uint32_t num_tokens = s->prompt_tokens + s->generated;
  uint32_t hits = prefix_hits(e, s, num_tokens);
  /* free blocks we can allocate = free blocks minus the cached free ones we are about to reuse */
  uint32_t cached_free = 0;
  for (uint32_t j = 0; j < hits; j++)
    if (e->blocks[cache_lookup(e, s->hashes[j])].ref == 0) cached_free++;
  uint32_t start = hits * IG_SIM_BLOCK_TOKENS;
  uint32_t n = num_tokens - start;
  if (n > budget) n = budget;
  uint32_t need = blocks_for((uint64_t)start + n) - hits;
  if (need > e->n_free - cached_free) return 0;

  for (uint32_t j = 0; j < hits; j++) {
    uint32_t id = cache_lookup(e, s->hashes[j]);
    block_ref(e, id);
    seq_push_block(s, id);
  }
  s->n_reg = hits;
  s->computed = start;
  if (!s->admitted_once) {
    s->admitted_once = 1;
    s->cached_tokens = start;
    e->n_waiting_new--;
    e->stats.prefix_queries += s->prompt_tokens;
    e->stats.prefix_hits += start;
  }
  seq_grow(e, s, n); /* cannot fail: checked above */
  q_unlink(&e->wait_head, &e->wait_tail, s);
  e->n_waiting--;
  q_push_tail(&e->run_head, &e->run_tail, s);
  e->n_running++;
  s->state = IG_SIM_SEQ_RUNNING;
  if (a) {
    a->waiting--;
    a->running++;
    a->last_used = e->stats.steps;
  }
  return n;
}

uint64_t ig_sim_engine_schedule(ig_sim_engine_t *e) {
  const ig_sim_profile_t *p = &e->cfg.prof;
  uint32_t budget = p->max_batched_tokens;
  uint64_t prefill = 0, decode = 0;
  int preempted = 0;

  /* running sequences first, in admission order; make room by preempting from the back */
  for (ig_sim_seq_t *s = e->run_head; s && budget > 0; s = s->next) {
    uint32_t left = s->prompt_tokens + s->generated - s->computed;
    uint32_t n = left < budget ? left : budget;
    int is_decode = s->generated > 0 && left == 1;
    int dropped_self = 0;
    while (seq_grow(e, s, n) != 0) {
      if (e->run_tail == s) dropped_self = 1;
      preempt_last(e);
      preempted = 1;
      if (dropped_self) break;
    }
    if (dropped_self) break;
    s->scheduled = n;
    budget -= n;
    if (is_decode) decode += n;
    else prefill += n;
  }

  /* then waiting ones (FCFS, skipping those whose LoRA cannot get a slot), unless we just preempted
   * (and still have work: an empty step would stall the pod) */
  if (!preempted || (prefill == 0 && decode == 0)) {
    ig_sim_seq_t *s = e->wait_head;
    while (s && budget > 0 && e->n_running < p->max_num_seqs) {
      ig_sim_seq_t *next = s->next;
      ig_sim_adapter_t *a = seq_adapter(e, s);
      uint32_t n = admit(e, s, budget);
      if (n == 0) {
        if (a && !a->resident) {
          s = next; /* LoRA slot busy: later requests may still run */
          continue;
        }
        break; /* out of KV blocks: keep FCFS order */
      }
      s->scheduled = n;
      budget -= n;
      prefill += n;
      s = next;
    }
  }

  if (prefill == 0 && decode == 0) return 0;
  e->step_in_flight = 1;
  double us = (p->b0 + p->b1 * (double)prefill + p->b2 * (double)decode) * e->cfg.slowdown;
  uint64_t r = (uint64_t)llround(us);
  e->step_us = r ? r : 1;
  return e->step_us;
}

/* Registers s's fully computed prompt blocks in the prefix cache. */
static void register_blocks(ig_sim_engine_t *e, ig_sim_seq_t *s) {
  uint32_t full = s->computed / IG_SIM_BLOCK_TOKENS;
  if (full > s->n_hashes) full = s->n_hashes;
  if (full > s->n_blocks) full = s->n_blocks;
  for (; s->n_reg < full; s->n_reg++) {
    uint32_t id = s->blocks[s->n_reg];
    if (!e->blocks[id].hashed && cache_lookup(e, s->hashes[s->n_reg]) == NONE)
      cache_insert(e, id, s->hashes[s->n_reg]);
  }
}

void ig_sim_engine_complete(ig_sim_engine_t *e, uint64_t now_us, ig_sim_emit_fn emit, void *ud) {
  if (!e->step_in_flight) return;
  e->step_in_flight = 0;
  e->stats.steps++;
  e->stats.busy_us += e->step_us;
  ig_sim_seq_t *next;
  for (ig_sim_seq_t *s = e->run_head; s; s = next) {
    next = s->next;
    if (!s->scheduled) continue;
    s->computed += s->scheduled;
    s->scheduled = 0;
    register_blocks(e, s);
    if (s->computed < s->prompt_tokens + s->generated) continue; /* chunked prefill goes on */
    if (s->generated == 0) {
      s->first_token_us = now_us;
      e->stats.prompt_tokens += s->prompt_tokens;
      hist_observe(&e->stats.ttft, (double)(now_us - s->arrival_us) / 1e6);
    }
    s->generated++;
    e->stats.generation_tokens++;
    int done = s->generated >= s->max_tokens;
    if (done) {
      ig_sim_adapter_t *a = seq_adapter(e, s);
      q_unlink(&e->run_head, &e->run_tail, s);
      e->n_running--;
      seq_release_blocks(e, s);
      s->state = IG_SIM_SEQ_DONE;
      e->stats.requests_finished++;
      hist_observe(&e->stats.e2e, (double)(now_us - s->arrival_us) / 1e6);
      if (a) {
        a->running--;
        a->last_used = e->stats.steps;
        adapter_settle(a);
      }
    }
    if (emit) emit(ud, s, done);
  }
  /* what the step leaves for the gauges: requests that arrived during it were not in its schedule */
  e->at_step_end.running = e->n_running;
  e->at_step_end.waiting = e->n_waiting > e->arrived_in_step ? e->n_waiting - e->arrived_in_step : 0;
  e->at_step_end.kv = ig_sim_engine_kv_usage(e);
  e->arrived_in_step = 0;
}

ig_sim_gauges_t ig_sim_engine_gauges(const ig_sim_engine_t *e, int per_step) {
  if (per_step && e->step_in_flight) return e->at_step_end;
  return (ig_sim_gauges_t){e->n_running, e->n_waiting, ig_sim_engine_kv_usage(e)};
}

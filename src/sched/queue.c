/* Flow-control queue: one band per distinct integer priority (higher first, at most
 * IG_SCHED_QUEUE_MAX_BANDS at a time), round-robin between fairness flows inside a band, per-request
 * deadlines and a fixed capacity with eviction of the lowest band. All memory is allocated at creation:
 * a node pool, a flow pool, a flow hash table, a deadline heap (each sized by the capacity) and the band
 * slots; a push allocates nothing. */
#include <stdlib.h>
#include <string.h>

#include "infergate/sched.h"

typedef struct flow flow_t;

struct ig_sched_qnode {
  void *data;
  uint64_t deadline;
  uint64_t seq; /* arrival order, for "newest" */
  flow_t *flow;
  ig_sched_qnode_t *prev, *next; /* FIFO inside the flow; next also links the free list */
  size_t heap_i;
  int prio; /* the priority it was pushed with (its band's, unless the bands ran out) */
  int live;
};

struct flow {
  uint64_t key; /* hash of the fairness id */
  int band; /* slot in q->bands */
  ig_sched_qnode_t *head, *tail;
  flow_t *prev, *next; /* ring of the band's active flows; next also links the free list */
};

typedef struct {
  flow_t *cursor; /* flow served next; NULL when the band is empty */
  size_t n;       /* queued requests; a band is live (in q->order) while n > 0 */
  int prio;
} band_t;

#define MAX_BANDS IG_SCHED_QUEUE_MAX_BANDS

struct ig_sched_queue {
  size_t cap, n;
  ig_sched_qnode_t *nodes, *free_nodes;
  flow_t *flows, *free_flows;
  flow_t **table; /* open addressing, linear probing, keyed by (band, key) */
  size_t tmask;
  ig_sched_qnode_t **heap; /* min-heap on (deadline, seq) */
  size_t heap_n;
  band_t bands[MAX_BANDS];
  unsigned char order[MAX_BANDS]; /* slots of the live bands, highest priority first */
  size_t n_live;
  unsigned char free_slots[MAX_BANDS]; /* a stack of the other slots */
  size_t n_free;
  size_t n_class[IG_SCHED_N_CRIT]; /* queued requests per class of their priority */
  uint64_t seq;
};

/* ---- priorities ---- */

int ig_sched_crit_priority(ig_sched_crit_t crit) {
  switch (crit) {
  case IG_SCHED_CRIT_CRITICAL: return IG_SCHED_PRIO_CRITICAL;
  case IG_SCHED_CRIT_SHEDDABLE: return IG_SCHED_PRIO_SHEDDABLE;
  default: return IG_SCHED_PRIO_STANDARD;
  }
}

ig_sched_crit_t ig_sched_priority_crit(int priority) {
  return priority > 0 ? IG_SCHED_CRIT_CRITICAL : priority < 0 ? IG_SCHED_CRIT_SHEDDABLE : IG_SCHED_CRIT_STANDARD;
}

int ig_sched_request_priority(const ig_sched_request_t *req) {
  return req->has_priority ? req->priority : ig_sched_crit_priority(req->crit);
}

/* ---- bands ---- */

/* Position in q->order of the live band of priority prio, or -1 with *pos set to where it would go
 * (the first live band of a lower priority). Binary search: order is sorted by priority, descending. */
static int band_find(const ig_sched_queue_t *q, int prio, size_t *pos) {
  size_t lo = 0, hi = q->n_live;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int p = q->bands[q->order[mid]].prio;
    if (p == prio) return (int)mid;
    if (p > prio)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (pos) *pos = lo;
  return -1;
}

/* The slot of the band a request of priority prio joins: its own (made live when new) or, when every
 * slot is live, the nearest band below it, else the lowest band. */
static int band_for(ig_sched_queue_t *q, int prio) {
  size_t pos = 0;
  int i = band_find(q, prio, &pos);
  if (i >= 0) return q->order[i];
  if (!q->n_free) return q->order[pos < q->n_live ? pos : q->n_live - 1];
  unsigned char slot = q->free_slots[--q->n_free];
  band_t *b = &q->bands[slot];
  b->cursor = NULL;
  b->n = 0;
  b->prio = prio;
  memmove(&q->order[pos + 1], &q->order[pos], q->n_live - pos);
  q->order[pos] = slot;
  q->n_live++;
  return slot;
}

/* Takes an emptied band out of the order and back to the free slots. */
static void band_release(ig_sched_queue_t *q, int slot) {
  int i = band_find(q, q->bands[slot].prio, NULL);
  if (i < 0) return; /* cannot happen: a band with requests is live */
  size_t at = (size_t)i;
  memmove(&q->order[at], &q->order[at + 1], q->n_live - at - 1);
  q->n_live--;
  q->free_slots[q->n_free++] = (unsigned char)slot;
}

/* ---- flow table ---- */

static size_t tslot(const ig_sched_queue_t *q, uint64_t key, int band) {
  uint64_t h = (key ^ ((uint64_t)band * 0xC2B2AE3D27D4EB4FULL)) * 0x9E3779B97F4A7C15ULL;
  return (size_t)(h >> 32) & q->tmask;
}

static flow_t **table_find(ig_sched_queue_t *q, uint64_t key, int band) {
  for (size_t i = tslot(q, key, band);; i = (i + 1) & q->tmask) {
    flow_t *f = q->table[i];
    if (!f || (f->key == key && f->band == band)) return &q->table[i];
  }
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void table_delete(ig_sched_queue_t *q, flow_t *f) {
  size_t i = (size_t)(table_find(q, f->key, f->band) - q->table);
  q->table[i] = NULL;
  for (size_t j = (i + 1) & q->tmask; q->table[j]; j = (j + 1) & q->tmask) {
    flow_t *g = q->table[j];
    size_t home = tslot(q, g->key, g->band);
    /* g may move into the hole at i when its home is not cyclically within (i, j]. */
    int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      q->table[i] = g;
      q->table[j] = NULL;
      i = j;
    }
  }
}

/* ---- deadline heap ---- */

static int heap_less(const ig_sched_qnode_t *a, const ig_sched_qnode_t *b) {
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(ig_sched_queue_t *q, size_t i, ig_sched_qnode_t *x) {
  q->heap[i] = x;
  x->heap_i = i;
}

static void heap_up(ig_sched_queue_t *q, size_t i) {
  ig_sched_qnode_t *x = q->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(x, q->heap[p])) break;
    heap_set(q, i, q->heap[p]);
    i = p;
  }
  heap_set(q, i, x);
}

static void heap_down(ig_sched_queue_t *q, size_t i) {
  ig_sched_qnode_t *x = q->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= q->heap_n) break;
    if (c + 1 < q->heap_n && heap_less(q->heap[c + 1], q->heap[c])) c++;
    if (!heap_less(q->heap[c], x)) break;
    heap_set(q, i, q->heap[c]);
    i = c;
  }
  heap_set(q, i, x);
}

static void heap_remove(ig_sched_queue_t *q, ig_sched_qnode_t *x) {
  size_t i = x->heap_i;
  ig_sched_qnode_t *last = q->heap[--q->heap_n];
  if (last == x) return;
  heap_set(q, i, last);
  heap_up(q, i);
  heap_down(q, last->heap_i);
}

/* ---- queue ---- */

/* Creates a queue; see sched.h. */
ig_sched_queue_t *ig_sched_queue_new(size_t capacity) {
  if (capacity == 0) capacity = 1;
  ig_sched_queue_t *q = IG_NEW(ig_sched_queue_t);
  q->cap = capacity;
  q->nodes = ig_calloc(capacity, sizeof *q->nodes);
  q->flows = ig_calloc(capacity, sizeof *q->flows);
  for (size_t i = capacity; i-- > 0;) {
    q->nodes[i].next = q->free_nodes;
    q->free_nodes = &q->nodes[i];
    q->flows[i].next = q->free_flows;
    q->free_flows = &q->flows[i];
  }
  size_t ts = 16;
  while (ts < capacity * 2) ts *= 2;
  q->table = ig_calloc(ts, sizeof *q->table);
  q->tmask = ts - 1;
  q->heap = ig_calloc(capacity, sizeof *q->heap);
  for (size_t i = MAX_BANDS; i-- > 0;) q->free_slots[q->n_free++] = (unsigned char)i;
  return q;
}

void ig_sched_queue_free(ig_sched_queue_t *q) {
  if (!q) return;
  free(q->nodes);
  free(q->flows);
  free(q->table);
  free(q->heap);
  free(q);
}

size_t ig_sched_queue_len(const ig_sched_queue_t *q) { return q->n; }
size_t ig_sched_queue_capacity(const ig_sched_queue_t *q) { return q->cap; }

size_t ig_sched_queue_band_len(const ig_sched_queue_t *q, ig_sched_crit_t crit) {
  if ((unsigned)crit >= IG_SCHED_N_CRIT) return 0;
  return q->n_class[crit];
}

size_t ig_sched_queue_prio_len(const ig_sched_queue_t *q, int priority) {
  int i = band_find(q, priority, NULL);
  return i < 0 ? 0 : q->bands[q->order[i]].n;
}

size_t ig_sched_queue_bands(const ig_sched_queue_t *q, int *prio, size_t *len, size_t max) {
  for (size_t i = 0; i < q->n_live && i < max; i++) {
    const band_t *b = &q->bands[q->order[i]];
    if (prio) prio[i] = b->prio;
    if (len) len[i] = b->n;
  }
  return q->n_live;
}

int ig_sched_queue_top_priority(const ig_sched_queue_t *q, int *priority) {
  if (!q || !q->n_live) return IG_ENOENT;
  *priority = q->bands[q->order[0]].prio;
  return 0;
}

uint64_t ig_sched_queue_next_deadline(const ig_sched_queue_t *q) {
  return q->heap_n ? q->heap[0]->deadline : UINT64_MAX;
}

/* Takes a flow out of its band's ring and back to the pool. */
static void flow_release(ig_sched_queue_t *q, flow_t *f) {
  band_t *b = &q->bands[f->band];
  if (f->next == f) {
    b->cursor = NULL;
  } else {
    f->prev->next = f->next;
    f->next->prev = f->prev;
    if (b->cursor == f) b->cursor = f->next;
  }
  table_delete(q, f);
  f->next = q->free_flows;
  q->free_flows = f;
}

/* Unlinks a node from its flow, the heap and the counts, and returns its data. */
static void *node_remove(ig_sched_queue_t *q, ig_sched_qnode_t *x) {
  flow_t *f = x->flow;
  if (x->prev)
    x->prev->next = x->next;
  else
    f->head = x->next;
  if (x->next)
    x->next->prev = x->prev;
  else
    f->tail = x->prev;
  if (!f->head) flow_release(q, f);
  heap_remove(q, x);
  if (--q->bands[f->band].n == 0) band_release(q, f->band);
  q->n_class[ig_sched_priority_crit(x->prio)]--;
  q->n--;
  void *data = x->data;
  x->live = 0;
  x->data = NULL;
  x->flow = NULL;
  x->prev = NULL;
  x->next = q->free_nodes;
  q->free_nodes = x;
  return data;
}

/* The newest request of a band (the latest arrival among the flows' tails), NULL when empty. */
static ig_sched_qnode_t *band_newest(const ig_sched_queue_t *q, int band) {
  flow_t *start = q->bands[band].cursor, *f = start;
  ig_sched_qnode_t *best = NULL;
  if (!f) return NULL;
  do {
    if (!best || f->tail->seq > best->seq) best = f->tail;
    f = f->next;
  } while (f != start);
  return best;
}

/* Removes the newest request of the lowest band below priority; see sched.h. */
int ig_sched_queue_evict_below(ig_sched_queue_t *q, int priority, void **data) {
  if (data) *data = NULL;
  if (!q || !q->n_live) return IG_ENOENT;
  int low = q->order[q->n_live - 1];
  if (q->bands[low].prio >= priority) return IG_ENOENT;
  void *d = node_remove(q, band_newest(q, low));
  if (data) *data = d;
  return 0;
}

/* Queues a request by priority; see sched.h. */
int ig_sched_queue_push_prio(ig_sched_queue_t *q, void *data, int priority, const char *fairness_id,
                             size_t fairness_id_len, uint64_t now_ms, uint64_t ttl_ms, ig_sched_qnode_t **node,
                             void **evicted) {
  if (node) *node = NULL;
  if (evicted) *evicted = NULL;
  if (!q || (!fairness_id && fairness_id_len)) return IG_EINVAL;
  if (q->n >= q->cap) {
    /* full, so some band is live: the lowest one gives way when it is below the newcomer */
    int low = q->order[q->n_live - 1];
    if (q->bands[low].prio >= priority) return IG_EFULL;
    void *ev = node_remove(q, band_newest(q, low));
    if (evicted) *evicted = ev;
  }
  int band = band_for(q, priority); /* after the eviction, which may have freed a slot */
  uint64_t key = ig_hash64(fairness_id ? fairness_id : "", fairness_id_len, IG_HASH_SEED);
  flow_t **slot = table_find(q, key, band);
  flow_t *f = *slot;
  if (!f) {
    f = q->free_flows; /* flows <= queued requests < capacity, so the pool has one */
    q->free_flows = f->next;
    memset(f, 0, sizeof *f);
    f->key = key;
    f->band = band;
    *slot = f;
    band_t *b = &q->bands[band];
    if (!b->cursor) {
      f->prev = f->next = f;
      b->cursor = f;
    } else {
      /* join at the end of the current round: just before the cursor */
      flow_t *c = b->cursor;
      f->next = c;
      f->prev = c->prev;
      c->prev->next = f;
      c->prev = f;
    }
  }
  ig_sched_qnode_t *x = q->free_nodes;
  q->free_nodes = x->next;
  memset(x, 0, sizeof *x);
  x->data = data;
  x->deadline = ttl_ms > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + ttl_ms;
  x->seq = ++q->seq;
  x->flow = f;
  x->prio = priority;
  x->live = 1;
  x->prev = f->tail;
  if (f->tail)
    f->tail->next = x;
  else
    f->head = x;
  f->tail = x;
  q->heap[q->heap_n] = x;
  x->heap_i = q->heap_n++;
  heap_up(q, x->heap_i);
  q->bands[band].n++;
  q->n_class[ig_sched_priority_crit(priority)]++;
  q->n++;
  if (node) *node = x;
  return 0;
}

/* Queues a request by criticality; see sched.h. */
int ig_sched_queue_push(ig_sched_queue_t *q, void *data, ig_sched_crit_t crit, const char *fairness_id,
                        size_t fairness_id_len, uint64_t now_ms, uint64_t ttl_ms, ig_sched_qnode_t **node,
                        void **evicted) {
  if (node) *node = NULL;
  if (evicted) *evicted = NULL;
  if ((unsigned)crit >= IG_SCHED_N_CRIT) return IG_EINVAL;
  return ig_sched_queue_push_prio(q, data, ig_sched_crit_priority(crit), fairness_id, fairness_id_len, now_ms,
                                  ttl_ms, node, evicted);
}

/* Takes the next request by band, then flow round-robin; see sched.h. */
int ig_sched_queue_pop_prio(ig_sched_queue_t *q, uint64_t now_ms, void **data, int *priority) {
  *data = NULL;
  if (!q->n_live) return IG_ENOENT;
  band_t *band = &q->bands[q->order[0]];
  flow_t *f = band->cursor;
  band->cursor = f->next; /* the next pop in this band serves the next flow */
  ig_sched_qnode_t *x = f->head;
  int expired = x->deadline <= now_ms;
  if (priority) *priority = x->prio;
  *data = node_remove(q, x);
  return expired ? IG_ETIMEDOUT : 0;
}

int ig_sched_queue_pop(ig_sched_queue_t *q, uint64_t now_ms, void **data, ig_sched_crit_t *crit) {
  int prio = 0;
  int rc = ig_sched_queue_pop_prio(q, now_ms, data, &prio);
  if (crit && rc != IG_ENOENT) *crit = ig_sched_priority_crit(prio);
  return rc;
}

/* Removes the request with the earliest deadline when it has passed; see sched.h. */
int ig_sched_queue_expire(ig_sched_queue_t *q, uint64_t now_ms, void **data) {
  *data = NULL;
  if (!q->heap_n || q->heap[0]->deadline > now_ms) return IG_ENOENT;
  *data = node_remove(q, q->heap[0]);
  return 0;
}

/* Removes a live request; see sched.h. */
void *ig_sched_queue_cancel(ig_sched_queue_t *q, ig_sched_qnode_t *node) {
  if (!q || !node || !node->live) return NULL;
  return node_remove(q, node);
}

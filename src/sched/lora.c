/* LoRA adapter names as small integer ids.
 *
 * A process-wide intern table maps an adapter name (at most IG_SCHED_LORA_NAME_MAX - 1 significant
 * characters, as strncmp over IG_SCHED_LORA_NAME_MAX compares them) to an id 1..MAX_IDS. The scraper
 * interns a pod's lists once per scrape; a pick looks the request's model up once and then compares
 * integers per pod. Id 0 means "not interned" (table full): such entries are compared by name, so the
 * answers are the same as comparing every name. A mutex guards the table (one gateway thread in
 * practice; the lock is uncontended). The table lives until the process exits. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sched_internal.h"

#define MAX_IDS 4096
#define TAB_SLOTS (MAX_IDS * 2) /* load at most 1/2 */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t *tab;                            /* slot -> id (0 = empty) */
static char (*id_names)[IG_SCHED_LORA_NAME_MAX];    /* id - 1 -> name */
static uint32_t n_ids;
static int overflowed; /* a name was left without an id (the table was full): lists may hold id 0 */

/* Significant length of a name: strncmp(.., IG_SCHED_LORA_NAME_MAX) looks at no more. */
static size_t name_len(const char *s) {
  const char *z = memchr(s, 0, IG_SCHED_LORA_NAME_MAX);
  return z ? (size_t)(z - s) : IG_SCHED_LORA_NAME_MAX;
}

/* Finds (insert = 0) or interns (insert = 1) name; returns its id or 0. Caller holds the lock. */
static uint32_t lookup(const char *name, int insert) {
  size_t len = name_len(name);
  if (!tab) {
    if (!insert) return 0;
    tab = ig_calloc(TAB_SLOTS, sizeof *tab);
    id_names = ig_calloc(MAX_IDS, sizeof *id_names);
  }
  uint64_t h = ig_hash64(name, len, IG_HASH_SEED);
  for (size_t i = (size_t)(h * 0x9E3779B97F4A7C15ULL >> 40) % TAB_SLOTS;; i = (i + 1) % TAB_SLOTS) {
    uint32_t id = tab[i];
    if (!id) {
      if (!insert) return 0;
      if (n_ids >= MAX_IDS) {
        __atomic_store_n(&overflowed, 1, __ATOMIC_RELAXED);
        return 0;
      }
      id = ++n_ids;
      memcpy(id_names[id - 1], name, len); /* the rest stays zero */
      tab[i] = id;
      return id;
    }
    const char *cand = id_names[id - 1];
    if (name_len(cand) == len && memcmp(cand, name, len) == 0) return id;
  }
}

/* Interns l's lists; see sched.h. */
void ig_sched_lora_intern(ig_sched_lora_t *l) {
  int nr = l->n_running_loras < 0 ? 0 : l->n_running_loras > IG_SCHED_MAX_LORAS ? IG_SCHED_MAX_LORAS
                                                                                 : l->n_running_loras;
  int nw = l->n_waiting_loras < 0 ? 0 : l->n_waiting_loras > IG_SCHED_MAX_LORAS ? IG_SCHED_MAX_LORAS
                                                                                 : l->n_waiting_loras;
  memset(l->running_ids, 0, sizeof l->running_ids);
  memset(l->waiting_ids, 0, sizeof l->waiting_ids);
  pthread_mutex_lock(&lock);
  for (int i = 0; i < nr; i++) l->running_ids[i] = lookup(l->running_loras[i], 1);
  for (int i = 0; i < nw; i++) l->waiting_ids[i] = lookup(l->waiting_loras[i], 1);
  pthread_mutex_unlock(&lock);
  l->running_mask = l->waiting_mask = 0;
  for (int i = 0; i < nr; i++) l->running_mask |= ig_sched_lora_bit(l->running_ids[i]);
  for (int i = 0; i < nw; i++) l->waiting_mask |= ig_sched_lora_bit(l->waiting_ids[i]);
  l->ids_valid = 1;
}

/* Interns l and copies its summary into p; see sched.h. */
void ig_sched_pod_set_lora(ig_sched_pod_t *p, ig_sched_lora_t *l) {
  p->lora = l;
  p->lora_hint = 0;
  if (!l) {
    if (p->seq) ig_sched_pod_touch(p);
    return;
  }
  ig_sched_lora_intern(l);
  p->lora_running_mask = l->running_mask;
  p->lora_waiting_mask = l->waiting_mask;
  p->lora_free = l->max_lora > 0 && l->n_running_loras < l->max_lora;
  p->lora_full = l->max_lora > 0 && l->n_running_loras >= l->max_lora;
  p->lora_hint = 1;
  if (p->seq) ig_sched_pod_touch(p);
}

/* The id of name, or 0 when it was never interned (then no interned entry equals it). */
uint32_t ig_sched_lora_id(const char *name) {
  if (!name) return 0;
  pthread_mutex_lock(&lock);
  uint32_t id = lookup(name, 0);
  pthread_mutex_unlock(&lock);
  return id;
}

int ig_sched_lora_unlisted(uint32_t id) { return id == 0 && !__atomic_load_n(&overflowed, __ATOMIC_RELAXED); }

uint32_t ig_sched_lora_register(const char *name) {
  if (!name || !*name) return 0;
  pthread_mutex_lock(&lock);
  uint32_t id = lookup(name, 1);
  pthread_mutex_unlock(&lock);
  return id;
}

/* 1 when model (id mid, from ig_sched_lora_id) is among names[0..n) / ids[0..n). */
int ig_sched_lora_has(const char names[][IG_SCHED_LORA_NAME_MAX], const uint32_t *ids, int n, const char *model,
                      uint32_t mid) {
  if (!model || n <= 0) return 0;
  if (n > IG_SCHED_MAX_LORAS) n = IG_SCHED_MAX_LORAS;
  if (!ids) return ig_sched_pod_has_lora(names, n, model);
  for (int i = 0; i < n; i++) {
    if (ids[i] ? ids[i] == mid : strncmp(names[i], model, IG_SCHED_LORA_NAME_MAX) == 0) return 1;
  }
  return 0;
}

/* ---- adapter slots: what we sent, and who waits for a slot ---- */

int ig_sched_lora_flight_add(ig_sched_lora_flight_t *f, uint32_t id, int delta) {
  if (!f || !id) return 0;
  int free_at = -1;
  for (int i = 0; i < IG_SCHED_LORA_TRACK; i++) {
    if (f->id[i] == id) {
      if (delta < 0 && f->n[i] < (unsigned)-delta) f->n[i] = 0;
      else f->n[i] = (unsigned)((int)f->n[i] + delta);
      if (!f->n[i]) f->id[i] = 0;
      return 0;
    }
    if (!f->id[i] && free_at < 0) free_at = i;
  }
  if (delta <= 0) return 0;
  if (free_at < 0) return IG_EFULL;
  f->id[free_at] = id;
  f->n[free_at] = (unsigned)delta;
  return 0;
}

static int has_id(const uint32_t *ids, int n, uint32_t id) {
  for (int i = 0; i < n; i++)
    if (ids[i] == id) return 1;
  return 0;
}

/* Clamps a list count to the array's size. */
static int list_count(int n) { return n < 0 ? 0 : n > IG_SCHED_MAX_LORAS ? IG_SCHED_MAX_LORAS : n; }

unsigned ig_sched_lora_blocked(const ig_sched_lora_t *l, const ig_sched_lora_flight_t *f) {
  if (!l || !f || !l->ids_valid || l->max_lora <= 0 || l->n_running_loras < l->max_lora) return 0;
  int nr = list_count(l->n_running_loras), nw = list_count(l->n_waiting_loras);
  unsigned blocked = 0;
  for (int i = 0; i < nw; i++) {
    uint32_t id = l->waiting_ids[i];
    if (!id || has_id(l->running_ids, nr, id) || has_id(l->waiting_ids, i, id)) continue;
    for (int j = 0; j < IG_SCHED_LORA_TRACK; j++)
      if (f->id[j] == id) blocked += f->n[j];
  }
  return blocked;
}

/* Appends (name, id) to one of l's lists when there is room; returns 1 when it did. */
static int list_append(char names[][IG_SCHED_LORA_NAME_MAX], uint32_t *ids, int *n, const char *name, uint32_t id) {
  if (*n < 0) *n = 0;
  if (*n >= IG_SCHED_MAX_LORAS) return 0;
  snprintf(names[*n], IG_SCHED_LORA_NAME_MAX, "%s", name);
  ids[*n] = id;
  ++*n;
  return 1;
}

int ig_sched_lora_note_sent(ig_sched_pod_t *p, ig_sched_lora_t *l, const char *model, uint32_t id) {
  if (!p || !l || !model || !id || !l->ids_valid || l->max_lora <= 0) return 0;
  int nr = list_count(l->n_running_loras), nw = list_count(l->n_waiting_loras);
  if (has_id(l->running_ids, nr, id)) return 0;
  int changed;
  if (l->n_running_loras < l->max_lora) {
    changed = list_append(l->running_loras, l->running_ids, &l->n_running_loras, model, id);
    if (changed) l->running_mask |= ig_sched_lora_bit(id);
  } else {
    if (has_id(l->waiting_ids, nw, id)) return 0;
    changed = list_append(l->waiting_loras, l->waiting_ids, &l->n_waiting_loras, model, id);
    if (changed) l->waiting_mask |= ig_sched_lora_bit(id);
  }
  if (!changed) return 0;
  if (p->lora == l) {
    p->lora_running_mask = l->running_mask;
    p->lora_waiting_mask = l->waiting_mask;
    p->lora_free = l->max_lora > 0 && l->n_running_loras < l->max_lora;
    p->lora_full = l->max_lora > 0 && l->n_running_loras >= l->max_lora;
    if (p->seq) ig_sched_pod_touch(p); /* picks remake what they derived (the adapter-slot flag) */
  }
  return 1;
}

/* Flow control for the endpoint picker (--queue-ttl MS): a Critical or Standard request that finds the
 * pool saturated for it waits, its ext_proc stream unanswered, in the scheduler's priority queue
 * (bands by priority, fairness by x-gateway-inference-fairness-id), as the gateway's requests do in
 * src/proxy/pool.c. The parked streams are answered in priority order while some pod has room for the
 * top priority (checked whenever a pick is given back and on a timer while any is parked, which also
 * sees each scrape), with a 503 once they have waited the TTL, or with a 429 when a more important
 * request needs the room of a full queue. While Critical requests are around, the pods keep headroom
 * for them as in the gateway (epp_reserve_critical: lower priorities wait rather than take the last
 * queue places or batch slots). Envoy waits for the answer only as long as its ext_proc
 * `message_timeout`: set it above the TTL. */
#include <string.h>

#include "epp.h"

#define RETRY_MS 10 /* how often parked streams are retried: scrapes land every 50 ms by default */

static void update_gauge(epp_t *e);

void epp_queue_init(epp_t *e) {
  if (!e->opts.queue_ttl_ms || !e->pool) return;
  size_t cap = ig_tuning_queue_capacity(&e->pool->tuning);
  if (e->queue && ig_sched_queue_capacity(e->queue) == cap) return;
  if (e->queue && ig_sched_queue_len(e->queue)) { /* parked streams hold its nodes */
    ig_warn("epp: the queue capacity changes from %zu to %zu once no request is parked",
            ig_sched_queue_capacity(e->queue), cap);
    return;
  }
  ig_sched_queue_free(e->queue);
  e->queue = ig_sched_queue_new(cap);
  update_gauge(e);
}

static void on_timer(uv_timer_t *t) {
  epp_queue_kick(t->data);
}

void epp_queue_start(epp_t *e, uv_loop_t *loop) {
  if (!e->queue || e->qtimer_on) return;
  uv_timer_init(loop, &e->qtimer);
  e->qtimer.data = e;
  e->qtimer_on = 1;
}

void epp_queue_stop(epp_t *e) {
  if (!e->qtimer_on) return;
  e->qtimer_on = 0;
  uv_close((uv_handle_t *)&e->qtimer, NULL);
}

void epp_queue_free(epp_t *e) {
  ig_sched_queue_free(e->queue);
  e->queue = NULL;
}

/* Runs the timer while streams are parked: soon (a retry after a pick was given back), else every
 * RETRY_MS. */
static void arm(epp_t *e, uint64_t after_ms) {
  if (!e->qtimer_on) return;
  if (!ig_sched_queue_len(e->queue)) {
    uv_timer_stop(&e->qtimer);
    return;
  }
  /* a running timer is left alone unless sooner is asked for: new arrivals must not push it back */
  if (after_ms && uv_is_active((uv_handle_t *)&e->qtimer)) return;
  uv_timer_start(&e->qtimer, on_timer, after_ms, RETRY_MS);
}

/* flow_control_queue_size{name, criticality}, as the gateway exports it. */
static void update_gauge(epp_t *e) {
  static const char *const names[3] = {"Critical", "Standard", "Sheddable"};
  if (!e->m_queue || !e->pool) return;
  ig_buf_t l;
  ig_buf_init(&l);
  for (int c = 0; c < 3; c++) {
    ig_buf_reset(&l);
    ig_buf_puts(&l, "name=\"");
    ig_prom_label_escape(&l, e->pool->name);
    ig_buf_printf(&l, "\",criticality=\"%s\"", names[c]);
    ig_metric_set(e->m_queue, l.data, (double)ig_sched_queue_band_len(e->queue, (ig_sched_crit_t)c));
  }
  ig_buf_free(&l);
}

static void deliver(epp_t *e, epp_stream_t *s) {
  if (e->deliver && s->owner) e->deliver(s->owner);
}

int epp_pressure_sustained(const epp_t *e, uint64_t now) {
  return ig_sched_pressure_sustained(e->pressure_ms, now, e->pool ? e->pool->scrape_interval_ms : 0);
}

/* The queue changed: no request of priority >= 0 parked, no pressure. */
static void track(epp_t *e) {
  int top;
  if (ig_sched_queue_top_priority(e->queue, &top) != 0 || top < 0) e->pressure_ms = 0;
  if (!ig_sched_queue_len(e->queue)) epp_queue_init(e); /* a new capacity left waiting by a reload */
  update_gauge(e);
}

/* Sheds the parked Sheddable streams (they could only go after those waiting) once the pressure is
 * sustained. */
static void shed_below(epp_t *e) {
  if (!epp_pressure_sustained(e, ig_now_ms())) return;
  void *v = NULL;
  while (ig_sched_queue_evict_below(e->queue, 0, &v) == 0 && v) {
    epp_stream_t *s = v;
    s->qnode = NULL;
    epp_stream_shed(e, s);
    deliver(e, s);
  }
}

int epp_queue_park(epp_t *e, epp_stream_t *s, int prio) {
  if (!e->queue || !s->out) return IG_EINVAL;
  const ig_http_header_t *fh = ig_http_header_find(s->hdrs, s->n_hdrs, "x-gateway-inference-fairness-id");
  const char *flow = fh ? fh->value : NULL;
  size_t flen = fh ? fh->value_len : 0;
  void *evicted = NULL;
  ig_sched_qnode_t *node = NULL;
  int rc = ig_sched_queue_push_prio(e->queue, s, prio, flow, flen, ig_now_ms(), e->opts.queue_ttl_ms, &node,
                                    &evicted);
  if (rc < 0) return IG_EFULL;
  s->qnode = node;
  if (evicted) {
    epp_stream_t *v = evicted;
    v->qnode = NULL;
    epp_stream_evicted(e, v);
    deliver(e, v);
  }
  if (prio >= 0 && !e->pressure_ms) e->pressure_ms = ig_now_ms() | 1;
  shed_below(e);
  track(e);
  arm(e, RETRY_MS);
  return 0;
}

void epp_queue_cancel(epp_t *e, epp_stream_t *s) {
  if (!s->qnode || !e->queue) return;
  ig_sched_queue_cancel(e->queue, s->qnode);
  s->qnode = NULL;
  track(e);
  arm(e, RETRY_MS);
}

void epp_queue_poke(epp_t *e) {
  if (e->queue && ig_sched_queue_len(e->queue)) arm(e, 0);
}

/* Whether the stream at the head of the queue (priority top) may be picked now: the pool is blind
 * (least outstanding decides), or some pod has room for that priority. */
static int room_for(epp_t *e, int top) {
  if (!e->sched || epp_pods_fill(e, ig_now_ms()) == 0) return 1;
  return !ig_sched_pool_full_for(e->sched, e->pods, e->n_eps, top, epp_reserve_critical(e, ig_now_ms()));
}

void epp_queue_kick(epp_t *e) {
  if (!e->queue) return;
  if (e->kicking) { /* an answer that ended a stream came back here */
    e->kick_again = 1;
    return;
  }
  e->kicking = 1;
  shed_below(e);
  do {
    e->kick_again = 0;
    void *data = NULL;
    while (ig_sched_queue_expire(e->queue, ig_now_ms(), &data) == 0 && data) {
      epp_stream_t *s = data;
      s->qnode = NULL;
      epp_stream_expired(e, s);
      deliver(e, s);
    }
    int top;
    while (ig_sched_queue_top_priority(e->queue, &top) == 0 && room_for(e, top)) {
      int rc = ig_sched_queue_pop_prio(e->queue, ig_now_ms(), &data, NULL);
      if (rc == IG_ENOENT || !data) break;
      epp_stream_t *s = data;
      s->qnode = NULL;
      if (rc == IG_ETIMEDOUT)
        epp_stream_expired(e, s);
      else
        epp_stream_resume(e, s);
      deliver(e, s);
    }
  } while (e->kick_again);
  e->kicking = 0;
  track(e);
  arm(e, RETRY_MS);
}

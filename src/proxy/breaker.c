/* Circuit breaker per endpoint (issue #9): consecutive failures (connect errors, timeouts, resets,
 * 5xx answers) eject an endpoint for a time that doubles with each ejection up to a maximum; when the
 * time is up one trial request may go (half-open), and its outcome closes the breaker or ejects the
 * endpoint again. Pure state machine: the caller passes the time and reports outcomes. */
#include "proxy.h"

#define BRK_DEFAULT_FAILURES 5
#define BRK_DEFAULT_BASE_MS 10000
#define BRK_DEFAULT_MAX_MS 300000

static size_t not_closed; /* breakers open or half-open (the gateway runs one loop thread) */

size_t breakers_not_closed(void) { return not_closed; }

/* Closes b (counted). */
static void close_breaker(breaker_t *b) {
  if (b->state != BRK_CLOSED && not_closed) not_closed--;
  b->state = BRK_CLOSED;
}

void breaker_forget(breaker_t *b) { close_breaker(b); }

void breaker_opts_of(const ig_backend_cfg_t *cfg, breaker_opts_t *o) {
  o->failures = cfg && cfg->breaker_failures ? cfg->breaker_failures : BRK_DEFAULT_FAILURES;
  o->base_ms = cfg && cfg->breaker_base_ms ? cfg->breaker_base_ms : BRK_DEFAULT_BASE_MS;
  o->max_ms = cfg && cfg->breaker_max_ms ? cfg->breaker_max_ms : BRK_DEFAULT_MAX_MS;
  if (o->max_ms < o->base_ms) o->max_ms = o->base_ms;
  if (cfg && cfg->breaker_disabled) o->failures = 0;
}

int breaker_allows(const breaker_t *b, uint64_t now_ms) {
  switch (b->state) {
  case BRK_CLOSED:
    return 1;
  case BRK_OPEN:
    return now_ms >= b->until_ms && !b->trial;
  case BRK_HALF_OPEN:
    return !b->trial;
  }
  return 1;
}

int breaker_on_pick(breaker_t *b, uint64_t now_ms) {
  if (b->state == BRK_OPEN && now_ms >= b->until_ms) b->state = BRK_HALF_OPEN;
  if (b->state != BRK_HALF_OPEN || b->trial) return 0;
  b->trial = 1;
  return 1;
}

/* Ejects for base * 2^(ejections - 1), at most max. */
static void eject(breaker_t *b, const breaker_opts_t *o, uint64_t now_ms) {
  b->ejections++;
  uint64_t t = o->base_ms;
  for (unsigned i = 1; i < b->ejections && t < o->max_ms; i++)
    t *= 2;
  if (t > o->max_ms) t = o->max_ms;
  if (b->state == BRK_CLOSED) not_closed++;
  b->state = BRK_OPEN;
  b->until_ms = now_ms + t;
  b->fails = 0;
  b->trial = 0;
  b->ejections_total++;
}

int breaker_on_result(breaker_t *b, const breaker_opts_t *o, int ok, int trial, uint64_t now_ms) {
  if (o->failures == 0) {
    /* breaker off for this backend: forget any state so the endpoint is never held back */
    if (b->state != BRK_CLOSED) {
      close_breaker(b);
      b->trial = 0;
      b->fails = 0;
      return -1;
    }
    b->fails = 0;
    return 0;
  }
  switch (b->state) {
  case BRK_CLOSED:
    if (ok) {
      b->fails = 0;
      return 0;
    }
    if (++b->fails < o->failures) return 0;
    eject(b, o, now_ms);
    return 1;
  case BRK_OPEN:
    return 0; /* late outcomes of requests sent before the ejection change nothing */
  case BRK_HALF_OPEN:
    if (!trial) return 0;
    if (ok) {
      close_breaker(b);
      b->fails = 0;
      b->ejections = 0;
      b->trial = 0;
      return -1;
    }
    eject(b, o, now_ms);
    return 1;
  }
  return 0;
}

void breaker_on_abandon(breaker_t *b, int trial) {
  if (trial && b->state == BRK_HALF_OPEN) b->trial = 0;
}

const char *breaker_state_name(const breaker_t *b, uint64_t now_ms) {
  if (b->state == BRK_CLOSED) return "closed";
  if (b->state == BRK_HALF_OPEN || now_ms >= b->until_ms) return "half-open";
  return "open";
}

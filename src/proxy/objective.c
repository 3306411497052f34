/* InferenceObjective selection (GIE): a request names its objective in the header
 * x-gateway-inference-objective; the objective's integer priority is then the request's priority in
 * admission and the flow-control queue, one band per distinct priority (pool.c passes it to the
 * scheduler as is; only its sign decides shedding). The header is read from
 * the forwarded head that client.c already built, so the request head needs no second parse. */
#include <string.h>
#include <strings.h>

#include "proxy.h"

#define OBJECTIVE_HEADER "x-gateway-inference-objective"

int objective_priority(const client_t *c, int *priority) {
  const req_t *q = &c->req;
  if (!q->snap || !q->be || !q->snap->cfg->n_objectives) return IG_ENOENT;
  const char *p = c->fwd.data, *end = p ? p + c->fwd.len : NULL;
  if (!p) return IG_ENOENT;
  const char *eol = memchr(p, '\n', (size_t)(end - p)); /* skip the request line */
  const size_t hl = sizeof OBJECTIVE_HEADER - 1;
  while (eol && eol + 1 < end) {
    p = eol + 1;
    eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    if (le > p && le[-1] == '\r') le--;
    if (le == p) break; /* end of the head */
    if ((size_t)(le - p) <= hl || p[hl] != ':' || strncasecmp(p, OBJECTIVE_HEADER, hl) != 0) continue;
    const char *v = p + hl + 1;
    while (v < le && (*v == ' ' || *v == '\t'))
      v++;
    const char *ve = le;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
      ve--;
    const ig_objective_cfg_t *o = ig_config_find_objective(q->snap->cfg, q->be->index, v, (size_t)(ve - v));
    if (!o) return IG_ENOENT;
    *priority = o->priority;
    return 0;
  }
  return IG_ENOENT;
}

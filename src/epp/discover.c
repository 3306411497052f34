/* Model discovery for the picker, the gateway's way (src/proxy/discovery.c): when no InferenceModel
 * names the pool (quick start without --model, or a file/manifests without models), every pod's
 * GET /v1/models is fetched periodically, a request goes only to the pods that list its model, and a
 * model that no pod lists gets 404 (pods never reached so far do not count; while no pod has
 * answered, any model is accepted). discovery.c walks the gateway's current snapshot: the picker
 * lends it a snapshot of its own, one backend over the picker's scraped endpoints (same indexes as
 * epp_t.eps), rebuilt on every reconfigure. The backend has no gateway pool (pool NULL): discovery
 * decides from the pool's configuration and has_models alone (discovery_enabled). Only in a process
 * where no gateway runs (gw.snap unset). */
#include <stdlib.h>
#include <string.h>

#include "../proxy/proxy.h"
#include "epp.h"

static struct {
  snapshot_t snap;
  backend_rt_t be;
  endpoint_t **eps;
  int started; /* discovery_start ran */
  int lent;    /* gw.snap points at snap */
} dsc;

void epp_disc_sync(epp_t *e) {
  if (!e->loop) return;
  int want = e->pool->policy == IG_LB_INFERENCE && !e->pool_has_models;
  if (!want && !dsc.started) return;
  if (!dsc.lent && gw.snap) return; /* a gateway runs in this process: its discovery is not ours */
  discovery_pool_free(&dsc.be);     /* endpoint indexes may have changed: rebuild the model index */
  dsc.eps = ig_realloc(dsc.eps, (e->n_eps ? e->n_eps : 1) * sizeof *dsc.eps);
  size_t k = 0;
  for (size_t i = 0; i < e->n_eps; i++) {
    if (!e->eps[i].scr) break; /* not expected once scraping started */
    dsc.eps[k++] = e->eps[i].scr;
  }
  dsc.be.cfg = e->pool;
  dsc.be.index = e->pool_index;
  dsc.be.eps = dsc.eps;
  dsc.be.n_eps = k == e->n_eps ? k : 0; /* indexes must match epp_t.eps */
  dsc.be.has_models = e->pool_has_models; /* with cfg: discovery_enabled(&dsc.be) == want */
  dsc.snap.refs = 1;
  dsc.snap.cfg = e->cfg;
  dsc.snap.backends = &dsc.be;
  dsc.snap.n_backends = 1;
  gw.snap = &dsc.snap;
  dsc.lent = 1;
  if (!dsc.started) {
    discovery_start();
    dsc.started = 1;
    ig_info("epp: no model named for pool '%s': models are discovered from the pods' /v1/models",
            e->pool->name);
  }
}

int epp_disc_subset(epp_t *e, const char *model, const size_t **subset, size_t *n) {
  *subset = NULL;
  *n = 0;
  if (!dsc.started || !model || !model[0]) return 0; /* discovery_subset checks discovery_enabled */
  return discovery_subset(&dsc.be, model, subset, n);
}

void epp_disc_stop(void) {
  if (!dsc.started) return;
  discovery_stop(); /* fetch handles close on the next loop run */
  dsc.started = 0;
}

void epp_disc_free(void) {
  epp_disc_stop();
  discovery_pool_free(&dsc.be);
  free(dsc.eps);
  if (dsc.lent) gw.snap = NULL;
  memset(&dsc, 0, sizeof dsc);
}

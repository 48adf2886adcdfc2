/* Agreement across ranks before training: every rank must see the same configuration, the same
 * data (split sizes, image shapes, class counts, the layout fingerprint of each split) and build
 * the same model, or the ranks would drift into different collectives later and hang (stale
 * node-local copies of the shards, a different --set on one rank). Rank 0's facts are
 * broadcast, every rank compares its own, and the first difference ends every rank with one
 * message naming the rank, the fact and both values. Collective; no state. */
#ifndef MPQ_RUN_AGREE_H
#define MPQ_RUN_AGREE_H

#include "config.h"
#include "data.h"
#include "models/graph.h"
#include "mpi/comm.h"

/* Compares, over the ranks: the effective configuration (a hash of its dump), for train and, when
 * non-NULL, val: samples, steps per epoch, local batch bound, image shape, class count and
 * fingerprint; the model's parameter and state counts. Returns 0 or MPQ_E_CONFIG (configuration)
 * / MPQ_E_FORMAT (data, model), agreed, with the message set on every rank. */
int mpq_run_agree(mpq_comm *c, const mpq_cfg *cfg, const mpq_source *train, const mpq_source *val,
                  const mpq_model *m);

#endif

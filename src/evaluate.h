/* Distributed evaluation: each rank runs its slice of every validation batch in eval mode (BN
 * running statistics), and the error count and cross-entropy are summed over the ranks. Used by
 * training (validation after each epoch) and by `mpq eval`. */
#ifndef MPQ_EVALUATE_H
#define MPQ_EVALUATE_H

#include "data.h"
#include "models/graph.h"
#include "mpi/comm.h"

/* x, y: buffers for one local batch of src (src->max_local_batch samples). Writes the error rate
 * and the mean cross-entropy over the whole split. Returns 0 or an agreed MPQ_E_*. */
int mpq_evaluate(mpq_comm *c, mpq_model *m, mpq_source *src, float *x, int *y, double *err,
                 double *ce);

#endif

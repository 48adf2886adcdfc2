/* Batch normalization over the channel axis of NHWC tensors (x viewed as (N, HW, C)).
 * Training: statistics of each group of n / n_groups consecutive samples (or, with s->reduce,
 * of the whole global batch across ranks), running statistics updated as
 * running = momentum * running + (1 - momentum) * batch (momentum 0.9, like nnabla; the running
 * variance takes the unbiased batch variance). Eval: running statistics.
 * gamma, beta in s->val/s->grad; running mean/var in s->state; xhat and the per-group
 * mean/inverse std are cached in the arena slice `cache` for backward. */
#ifndef MPQ_LAYERS_BN_H
#define MPQ_LAYERS_BN_H

#include "core/params.h"
#include "core/step.h"

typedef struct mpq_bn {
    int hw, c;
    float eps, momentum;
    mpq_slice gamma, beta; /* (C) trainable */
    mpq_slice mean, var;   /* (C) running statistics, in the state buffer */
    mpq_slice cache;       /* arena, mpq_bn_cache_floats(l, n, groups) floats; set by the plan */
} mpq_bn;

/* Sets the geometry, eps = 1e-5 and momentum = 0.9; the slices are set by the model builder. */
void mpq_bn_init(mpq_bn *l, int hw, int c);
size_t mpq_bn_cache_floats(const mpq_bn *l, int n, int n_groups);
size_t mpq_bn_ws_floats(const mpq_bn *l, int n, int n_groups);
/* Writes y (may alias x); in training also updates the running statistics in s->state. */
void mpq_bn_forward(const mpq_bn *l, const mpq_step *s, const float *x, float *y);
/* Writes dx (may alias dy); adds dL/dgamma, dL/dbeta (this rank's share) into s->grad. Training:
 * reads only the cache (x may be gone after an in-place forward); with s->reduce the two
 * per-channel sums of backward are reduced across ranks too (sync-BN; with n_groups > 1, group g
 * of every rank forms one statistics group). Eval (frozen statistics): reads x. */
void mpq_bn_backward(const mpq_bn *l, const mpq_step *s, const float *x, const float *dy,
                     float *dx);

#endif

/* Optimizers and learning-rate schedules as loops over the flat buffers (nnabla's semantics):
 * SGD with momentum (v = mom*v + lr*g; w -= v), Adam (nnabla: alpha_t = lr*sqrt(1-b2^t)/(1-b1^t),
 * w -= alpha_t * m / (sqrt(v) + eps)), weight decay g += rate * w. */
#ifndef MPQ_OPTIM_OPTIM_H
#define MPQ_OPTIM_OPTIM_H

#include <stddef.h>

#include "config.h"

/* g[i] += rate * w[i]. */
void mpq_weight_decay(size_t n, float rate, const float *w, float *g);
/* Momentum SGD over n floats; v is the velocity buffer. */
void mpq_sgd_step(size_t n, float lr, float momentum, float *w, const float *g, float *v);
/* Adam step number t (1-based) over n floats; m, v are the moment buffers. */
void mpq_adam_step(size_t n, float lr, float beta1, float beta2, float eps, long t, float *w,
                   const float *g, float *m, float *v);
/* The learning rate at global step `step` (0-based) for the schedule of c, with steps_per_epoch
 * steps per epoch (warmup linear from 0 over warmup_epochs, then the schedule). */
float mpq_lr_at(const mpq_cfg *c, long step, long steps_per_epoch);

#endif

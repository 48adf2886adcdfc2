/* Optimizers and learning-rate schedules as loops over the flat buffers (nnabla's semantics):
 * SGD with momentum (v = mom*v + lr*g; w -= v), Adam (nnabla: alpha_t = lr*sqrt(1-b2^t)/(1-b1^t),
 * w -= alpha_t * m / (sqrt(v) + eps)), weight decay g += rate * w. The caller owns every buffer;
 * loops are element-wise (results do not depend on the thread count) and use OpenMP threads for
 * n >= MPQ_OPTIM_OMP_MIN. */
#ifndef MPQ_OPTIM_OPTIM_H
#define MPQ_OPTIM_OPTIM_H

#include <stddef.h>

typedef enum mpq_lr_schedule {
    MPQ_LR_REFERENCE, /* 80/40/40 epochs at lr, lr/10, lr/100, scaled to `epochs` (4/8, 6/8) */
    MPQ_LR_STEP,      /* lr * lr_decay_factor^(number of lr_decay_epochs passed) */
    MPQ_LR_COSINE,    /* lr * 0.5 * (1 + cos(pi * t / T)) after warmup */
    MPQ_LR_CONSTANT,
} mpq_lr_schedule;

/* A learning-rate schedule (the configuration's initial_learning_rate, epochs, lr_schedule,
 * lr_decay_epochs, lr_decay_factor, warmup_epochs: mpq_cfg_schedule). */
typedef struct mpq_schedule {
    mpq_lr_schedule kind;
    double lr, epochs, warmup_epochs, decay_factor;
    const float *decay_epochs;
    int n_decay_epochs;
} mpq_schedule;

/* Loops over fewer elements run on the calling thread only. */
#define MPQ_OPTIM_OMP_MIN 32768

/* g[i] += rate * w[i] for i < n. */
void mpq_weight_decay(size_t n, float rate, const float *w, float *g);
/* Momentum SGD over n floats; v is the velocity buffer. Updates v[i] = momentum*v[i] + lr*g[i],
 * then w[i] -= v[i]. */
void mpq_sgd_step(size_t n, float lr, float momentum, float *w, const float *g, float *v);
/* Adam step number t (1-based) over n floats; m, v are the moment buffers (zero before t = 1).
 * Updates m, v, then w[i] -= alpha_t * m[i] / (sqrt(v[i]) + eps). */
void mpq_adam_step(size_t n, float lr, float beta1, float beta2, float eps, long t, float *w,
                   const float *g, float *m, float *v);
/* The learning rate at global step `step` (0-based) for the schedule of c, with steps_per_epoch
 * (> 0) steps per epoch. The epoch of a step is step / steps_per_epoch (a real number). Warmup:
 * W = round(warmup_epochs * steps_per_epoch) steps at lr * (step + 1) / W, then the schedule:
 * reference: lr while epoch < epochs/2, lr/10 while epoch < 3*epochs/4, then lr/100 (the
 * reference's 80/40/40 of 160); step: lr * lr_decay_factor^(number of lr_decay_epochs <= epoch);
 * cosine: lr/2 * (1 + cos(pi * t / T)), t = step - W, T = round(epochs * steps_per_epoch) - W,
 * 0 from t >= T on; constant: lr. */
float mpq_lr_at(const mpq_schedule *c, long step, long steps_per_epoch);

#endif

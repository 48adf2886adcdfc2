/* Adam over flat buffers, in the operation order of nnabla's Adam solver (float32 state; the bias
 * correction sqrt(1 - b2^t) / (1 - b1^t) in double, rounded to float, then times lr). The caller
 * owns the buffers; element-wise loops, so any thread count gives the same result. */
#include <math.h>

#include "optim/optim.h"

void mpq_adam_step(size_t n, float lr, float beta1, float beta2, float eps, long t, float *w,
                   const float *g, float *m, float *v)
{
    const float correction =
        (float)(sqrt(1.0 - pow((double)beta2, (double)t)) / (1.0 - pow((double)beta1, (double)t)));
    const float alpha_t = lr * correction;
#pragma omp parallel for simd schedule(static) if (n >= MPQ_OPTIM_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
        w[i] -= alpha_t * m[i] / (sqrtf(v[i]) + eps);
    }
}

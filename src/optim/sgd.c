/* Weight decay and momentum SGD over flat buffers, exactly as nnabla's Momentum solver
 * (v = momentum * v + lr * g; w = w - v) and its weight_decay (g += rate * w). The caller owns
 * the buffers; the loops are element-wise, so any thread count gives the same result. */
#include "optim/optim.h"

void mpq_weight_decay(size_t n, float rate, const float *w, float *g)
{
#pragma omp parallel for simd schedule(static) if (n >= MPQ_OPTIM_OMP_MIN)
    for (size_t i = 0; i < n; i++)
        g[i] += rate * w[i];
}

void mpq_sgd_step(size_t n, float lr, float momentum, float *w, const float *g, float *v)
{
#pragma omp parallel for simd schedule(static) if (n >= MPQ_OPTIM_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        v[i] = momentum * v[i] + lr * g[i];
        w[i] -= v[i];
    }
}

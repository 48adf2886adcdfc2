/* Nonlinearities: ReLU, ReLU6, or the unsigned activation quantizer that replaces them (the
 * reference's `nonl`). Elementwise over the (N, len) batch; y may alias x and dx may alias dy.
 * Nothing is cached: backward takes the layer input x again. The quantizer reads its two values
 * from s->val and adds their gradients into s->grad (deterministic sums, see quant/qcore.h);
 * the loops run on OpenMP threads for large batches. */
#include "layers/act.h"

/* Below this many elements a loop stays on the calling thread. */
#define PAR_MIN 32768

void mpq_act_forward(const mpq_act *l, const mpq_step *s, const float *x, float *y)
{
    const size_t len = (size_t)s->n * l->len;
    switch (l->kind) {
    case MPQ_ACT_RELU: /* max(0, x) */
#pragma omp parallel for simd schedule(static) if (len >= PAR_MIN)
        for (size_t i = 0; i < len; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case MPQ_ACT_RELU6: /* min(max(0, x), 6) */
#pragma omp parallel for simd schedule(static) if (len >= PAR_MIN)
        for (size_t i = 0; i < len; i++) {
            float v = x[i] > 0.0f ? x[i] : 0.0f;
            y[i] = v < 6.0f ? v : 6.0f;
        }
        break;
    case MPQ_ACT_QUANT:
        mpq_quant_forward(l->q, s->val, x, y, len);
        break;
    }
}

void mpq_act_backward(const mpq_act *l, const mpq_step *s, const float *x, const float *dy,
                      float *dx)
{
    const size_t len = (size_t)s->n * l->len;
    switch (l->kind) {
    case MPQ_ACT_RELU: /* passes where x > 0 */
#pragma omp parallel for simd schedule(static) if (len >= PAR_MIN)
        for (size_t i = 0; i < len; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case MPQ_ACT_RELU6: /* passes where 0 < x < 6 */
#pragma omp parallel for simd schedule(static) if (len >= PAR_MIN)
        for (size_t i = 0; i < len; i++) dx[i] = x[i] > 0.0f && x[i] < 6.0f ? dy[i] : 0.0f;
        break;
    case MPQ_ACT_QUANT:
        mpq_quant_backward(l->q, s->val, s->grad, x, dy, dx, len);
        break;
    }
}

/* The non-parametric nnabla quantizers (shared/spec/quantizers.md section 4), as the cfg methods
 * `fp`/`fp_relu` (F.fixed_point_quantize) and `pow2`/`pow2_relu` (F.pow2_quantize), both with
 * ste_fine_grained=True. Their (n, delta | m) are fixed, so there are no parameter gradients.
 * Works on caller-owned arrays; elementwise loops run on OpenMP threads. */
#include "quant/qcore.h"

#include "core/err.h"

/* F.fixed_point_quantize(x, sign, n, delta): spec.p = {n, delta}. */
typedef struct fpq {
    float delta, max, min;
} fpq;

static fpq fp_setup(const mpq_qspec *s)
{
    fpq k;
    int nb = (int)s->p[0] - (s->sign ? 1 : 0);
    k.delta = s->p[1];
    k.max = (float)((pow(2.0, nb) - 1.0) * (double)k.delta);
    k.min = s->sign ? -k.max : 0.0f;
    return k;
}

static void fp_forward(const mpq_qspec *s, const float *x, float *q, size_t len)
{
    const fpq k = fp_setup(s);
#pragma omp parallel for schedule(static) if (len >= MPQ_QPAR_MIN)
    for (size_t i = 0; i < len; i++) {
        float xi = x[i], y;
        if (xi > k.max) {
            y = k.max;
        } else if (xi < k.min) {
            y = k.min;
        } else {
            y = (float)floor((double)(fabsf(xi) / k.delta) + 0.5) * k.delta;
            y = xi < 0.0f ? -y : y;
        }
        q[i] = y;
    }
}

/* dq/dx = 1 on the closed interval [min, max]. */
static void fp_backward(const mpq_qspec *s, const float *x, const float *g, float *gx, size_t len)
{
    const fpq k = fp_setup(s);
#pragma omp parallel for simd schedule(static) if (len >= MPQ_QPAR_MIN)
    for (size_t i = 0; i < len; i++) gx[i] = (x[i] > k.max || x[i] < k.min) ? 0.0f : g[i];
}

/* F.pow2_quantize(x, sign, with_zero, n, m): spec.p = {n, m}. */
typedef struct p2q {
    float p_max, p_min, thr;
    int sign, with_zero;
} p2q;

static p2q p2_setup(const mpq_qspec *s)
{
    p2q k;
    int m = (int)s->p[1];
    k.sign = s->sign != 0;
    k.with_zero = s->with_zero != 0;
    int nb = (int)s->p[0] - k.sign - k.with_zero;
    k.p_max = (float)pow(2.0, m);
    k.p_min = (float)pow(2.0, m - ((1 << nb) - 1));
    k.thr = (float)((double)k.p_min * pow(2.0, -0.5));
    return k;
}

/* The unclipped pow(2, round(log2f(|x|))) of the kernel (0 for x = 0). */
static inline float p2_unclipped(float a)
{
    float q = mpq_qpow2_round_bits(a);
    if (q != 0.0f) return q;
    return (float)pow(2.0, (double)mpq_qround(log2f(a)));
}

static void p2_forward(const mpq_qspec *s, const float *x, float *q, size_t len)
{
    const p2q k = p2_setup(s);
#pragma omp parallel for schedule(static) if (len >= MPQ_QPAR_MIN)
    for (size_t i = 0; i < len; i++) {
        float a = fabsf(x[i]), y = p2_unclipped(a);
        if (y > k.p_max) y = k.p_max;
        else if (y < k.p_min && k.with_zero) y = a < k.thr ? 0.0f : k.p_min;
        else if (y < k.p_min) y = k.p_min;
        if (x[i] < 0.0f) y = k.sign ? -y : (k.with_zero ? 0.0f : k.p_min);
        q[i] = y;
    }
}

/* dq/dx = 0 where the unclipped value exceeds p_max or (unsigned) x < 0, else 1. */
static void p2_backward(const mpq_qspec *s, const float *x, const float *g, float *gx, size_t len)
{
    const p2q k = p2_setup(s);
#pragma omp parallel for schedule(static) if (len >= MPQ_QPAR_MIN)
    for (size_t i = 0; i < len; i++) {
        float c = p2_unclipped(fabsf(x[i])) > k.p_max ? 0.0f : 1.0f;
        if (!k.sign && x[i] < 0.0f) c = 0.0f;
        gx[i] = c * g[i];
    }
}

void mpq_fixed_forward(mpq_qmethod m, const mpq_qspec *s, const float *x, float *q, size_t len)
{
    MPQ_ASSERT(m == MPQ_QMETHOD_FP || m == MPQ_QMETHOD_POW2, "not a fixed quantizer: %d", (int)m);
    if (m == MPQ_QMETHOD_FP) fp_forward(s, x, q, len);
    else p2_forward(s, x, q, len);
}

void mpq_fixed_backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g,
                        float *gx, size_t len)
{
    MPQ_ASSERT(m == MPQ_QMETHOD_FP || m == MPQ_QMETHOD_POW2, "not a fixed quantizer: %d", (int)m);
    if (m == MPQ_QMETHOD_FP) fp_backward(s, x, g, gx, len);
    else p2_backward(s, x, g, gx, len);
}

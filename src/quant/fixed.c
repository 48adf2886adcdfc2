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

static void fp_forward_chunk(const void *kp, const float *x, float *q, size_t n)
{
    const fpq k = *(const fpq *)kp;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float xi = x[i];
        double w = (double)(fabsf(xi) / k.delta) + 0.5, r = (w + 0x1p52) - 0x1p52;
        double fl = r > w ? r - 1.0 : r;       /* floor(w) (w >= 0), vectorizable like mpq_qround */
        float y = (float)(w < 0x1p52 ? fl : w) * k.delta;
        y = xi < 0.0f ? -y : y;
        q[i] = xi > k.max ? k.max : (xi < k.min ? k.min : y);
    }
}

/* dq/dx = 1 on the closed interval [min, max]. */
static void fp_backward_chunk(const void *kp, const float *x, const float *g, float *gx, size_t n,
                              double acc[2])
{
    const fpq k = *(const fpq *)kp;
    (void)acc;
#pragma omp simd
    for (size_t i = 0; i < n; i++) gx[i] = (x[i] > k.max || x[i] < k.min) ? 0.0f : g[i];
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

/* u[j] = pow(2, round(log2f(|x[j]|))), the kernel's unclipped value (0 for x = 0), for a block:
 * the bit shortcut of qcore.h, then log2f where it abstains. */
static void p2_unclipped_block(const float *x, float *u, size_t m)
{
#pragma omp simd
    for (size_t j = 0; j < m; j++) u[j] = mpq_qpow2_round_bits(fabsf(x[j]));
    for (size_t j = 0; j < m; j++)
        if (u[j] < 0.0f)
            u[j] = (float)pow(2.0, (double)mpq_qround(log2f(fabsf(x[j]))));
}

static void p2_forward_chunk(const void *kp, const float *x, float *q, size_t n)
{
    const p2q k = *(const p2q *)kp;
    float u[MPQ_QBLOCK];
    for (size_t b = 0; b < n; b += MPQ_QBLOCK) {
        const size_t m = n - b < MPQ_QBLOCK ? n - b : MPQ_QBLOCK;
        const float *xb = x + b;
        float *qb = q + b;
        p2_unclipped_block(xb, u, m);
#pragma omp simd
        for (size_t j = 0; j < m; j++) {
            float low = (k.with_zero & (fabsf(xb[j]) < k.thr)) ? 0.0f : k.p_min; /* pruned? */
            float y = u[j] > k.p_max ? k.p_max : (u[j] < k.p_min ? low : u[j]);
            float neg = k.sign ? -y : (k.with_zero ? 0.0f : k.p_min);
            qb[j] = xb[j] < 0.0f ? neg : y;
        }
    }
}

/* dq/dx = 0 where the unclipped value exceeds p_max or (unsigned) x < 0, else 1. */
static void p2_backward_chunk(const void *kp, const float *x, const float *g, float *gx, size_t n,
                              double acc[2])
{
    const p2q k = *(const p2q *)kp;
    float u[MPQ_QBLOCK];
    (void)acc;
    for (size_t b = 0; b < n; b += MPQ_QBLOCK) {
        const size_t m = n - b < MPQ_QBLOCK ? n - b : MPQ_QBLOCK;
        const float *xb = x + b, *gb = g + b;
        float *gxb = gx + b;
        p2_unclipped_block(xb, u, m);
#pragma omp simd
        for (size_t j = 0; j < m; j++) {
            float c = ((u[j] > k.p_max) | (!k.sign & (xb[j] < 0.0f))) ? 0.0f : 1.0f;
            gxb[j] = c * gb[j];
        }
    }
}

void mpq_fixed_forward(mpq_qmethod m, const mpq_qspec *s, const float *x, float *q, size_t len)
{
    MPQ_ASSERT(m == MPQ_QMETHOD_FP || m == MPQ_QMETHOD_POW2, "not a fixed quantizer: %d", (int)m);
    if (m == MPQ_QMETHOD_FP) {
        fpq k = fp_setup(s);
        mpq_qforward_chunks(fp_forward_chunk, &k, x, q, len);
    } else {
        p2q k = p2_setup(s);
        mpq_qforward_chunks(p2_forward_chunk, &k, x, q, len);
    }
}

void mpq_fixed_backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g,
                        float *gx, size_t len)
{
    double unused[2];
    MPQ_ASSERT(m == MPQ_QMETHOD_FP || m == MPQ_QMETHOD_POW2, "not a fixed quantizer: %d", (int)m);
    if (m == MPQ_QMETHOD_FP) {
        fpq k = fp_setup(s);
        mpq_qbackward_chunks(fp_backward_chunk, &k, x, g, gx, len, unused);
    } else {
        p2q k = p2_setup(s);
        mpq_qbackward_chunks(p2_backward_chunk, &k, x, g, gx, len, unused);
    }
}

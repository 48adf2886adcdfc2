/* Power-of-two quantizers (shared/spec/quantizers.md section 3; Uhlich et al. 2020, cases
 * P1-P3): the core q = sign(x) * (xmin [I1] | 2^round(log2|x|) [I2] | xmax [I3]) with optional
 * pruning to zero below xmin/sqrt(2), its straight-through backward (the log-domain derivative
 * 2^round(log2|x|)/|x| inside the range), and the three parametrizations of (xmin, xmax).
 * Works on caller-owned arrays; elementwise loops run on OpenMP threads; parameter sums follow
 * the fixed chunking of qcore.h (deterministic for any thread count). */
#include "quant/qcore.h"

#include "core/err.h"

/* The core's scalars and what the chain rule back to (p0, p1) needs. */
typedef struct pcore {
    float xn, xq, thr;  /* core xmin, xmax (powers of two) and the pruning threshold xmin * S */
    float pw, f;        /* 2^nb; P1: xmin = f * xmax, P2: xmax = xmin * f */
    float c0, c1;       /* the clipped value that Q2 rounds, for p0 (P3) and the range value */
    int pass0, pass1;   /* clipS gradient masks of p0 and p1 */
    int sign, with_zero;
} pcore;

static pcore prepare(mpq_qmethod m, const mpq_qspec *s)
{
    pcore k = {0};
    k.sign = s->sign != 0;
    k.with_zero = s->with_zero != 0;
    switch (m) {
    case MPQ_QMETHOD_POW2_B_XMAX: /* P1: (n, xmax); xmin = xmax * 2^(1 - 2^nb) */
        k.pw = powf(2.0f, mpq_qvalue_bits(s->p[0], s, k.with_zero));
        k.c1 = mpq_qclip(s->p[1], s->xmax_min, s->xmax_max);
        k.xq = mpq_q2(k.c1);
        k.f = powf(2.0f, (k.pw * -1.0f) + 1.0f);
        k.xn = k.f * k.xq;
        k.pass0 = mpq_qclip_passes(s->p[0], s->n_min, s->n_max);
        k.pass1 = mpq_qclip_passes(s->p[1], s->xmax_min, s->xmax_max);
        break;
    case MPQ_QMETHOD_POW2_B_XMIN: /* P2: (n, xmin); xmax = xmin * 2^(2^nb - 1) */
        k.pw = powf(2.0f, mpq_qvalue_bits(s->p[0], s, k.with_zero));
        k.c1 = mpq_qclip(s->p[1], s->xmin_min, s->xmin_max);
        k.xn = mpq_q2(k.c1);
        k.f = powf(2.0f, k.pw + -1.0f);
        k.xq = k.xn * k.f;
        k.pass0 = mpq_qclip_passes(s->p[0], s->n_min, s->n_max);
        k.pass1 = mpq_qclip_passes(s->p[1], s->xmin_min, s->xmin_max);
        break;
    case MPQ_QMETHOD_POW2_XMIN_XMAX: /* P3: (xmin, xmax) */
        k.c0 = mpq_qclip(s->p[0], s->xmin_min, s->xmin_max);
        k.xn = mpq_q2(k.c0);
        k.c1 = mpq_qclip(s->p[1], s->xmax_min, s->xmax_max);
        k.xq = mpq_q2(k.c1);
        k.pass0 = mpq_qclip_passes(s->p[0], s->xmin_min, s->xmin_max);
        k.pass1 = mpq_qclip_passes(s->p[1], s->xmax_min, s->xmax_max);
        break;
    case MPQ_QMETHOD_NONE:
    case MPQ_QMETHOD_FP:
    case MPQ_QMETHOD_POW2:
    case MPQ_QMETHOD_FP_D_B:
    case MPQ_QMETHOD_FP_B_XMAX:
    case MPQ_QMETHOD_FP_D_XMAX:
        MPQ_ASSERT(0, "power-of-two quantizer called with method %d", (int)m);
    }
    k.thr = k.xn * MPQ_QS;
    return k;
}

/* Chain rule from the core's sums G_n = sum e_xmin, G_x = sum e_xmax to the learnable values. */
static void chain(mpq_qmethod m, const pcore *k, float gn, float gx, float gp[2])
{
    float g0 = 0.0f, g1 = 0.0f;
    switch (m) {
    case MPQ_QMETHOD_POW2_B_XMAX: {
        float g_xq = gx + gn * k->f;                    /* mul2(f, x_q): d/dx1 */
        g0 = (((((gn * k->xq) * k->f) * MPQ_QL2) * -1.0f) * k->pw) * MPQ_QL2;
        g1 = mpq_q2_grad(g_xq, k->c1, k->xq);
        break;
    }
    case MPQ_QMETHOD_POW2_B_XMIN: {
        float g_xn = gn + gx * k->f;                    /* mul2(x_n, f): d/dx0 */
        g0 = ((((gx * k->xn) * k->f) * MPQ_QL2) * k->pw) * MPQ_QL2;
        g1 = mpq_q2_grad(g_xn, k->c1, k->xn);
        break;
    }
    case MPQ_QMETHOD_POW2_XMIN_XMAX:
        g0 = mpq_q2_grad(gn, k->c0, k->xn);
        g1 = mpq_q2_grad(gx, k->c1, k->xq);
        break;
    case MPQ_QMETHOD_NONE:
    case MPQ_QMETHOD_FP:
    case MPQ_QMETHOD_POW2:
    case MPQ_QMETHOD_FP_D_B:
    case MPQ_QMETHOD_FP_B_XMAX:
    case MPQ_QMETHOD_FP_D_XMAX:
        break;
    }
    gp[0] = k->pass0 ? g0 : 0.0f;
    gp[1] = k->pass1 ? g1 : 0.0f;
}

/* x' = relu(x) for unsigned quantizers (nnabla: max(0, x)). */
static inline float relu(float x) { return x > 0.0f ? x : 0.0f; }

/* F.sign with alpha = 1: sign(0) = +1. */
static inline float sgn(float v) { return v < 0.0f ? -1.0f : 1.0f; }

/* a[j] = |x'| and qp[j] = Q2(a[j]) for one block. SIGN is a constant at each call site. */
static inline __attribute__((always_inline)) void
block_magnitudes(const float *x, float *a, float *qp, size_t m, int sign)
{
#pragma omp simd
    for (size_t j = 0; j < m; j++) a[j] = fabsf(sign ? x[j] : relu(x[j]));
    mpq_q2_block(a, qp, m);
}

/* The core's forward over one chunk: q = s * ((xmin I1 + qp I2) + xmax I3), where
 * I1 = [thr <= a < xmin] (with zero) or [a < xmin], I2 = [xmin <= a < xmax], I3 = [a >= xmax].
 * SIGN and WITH_ZERO are constants at each call site; the masks combine with & (not &&) so
 * that the loops have no branches and vectorize. */
static inline __attribute__((always_inline)) void
core_forward(const pcore *k, const float *x, float *q, size_t n, int sign, int with_zero)
{
    const float xn = k->xn, xq = k->xq, thr = k->thr;
    float a[MPQ_QBLOCK], qp[MPQ_QBLOCK];
    for (size_t b = 0; b < n; b += MPQ_QBLOCK) {
        const size_t m = n - b < MPQ_QBLOCK ? n - b : MPQ_QBLOCK;
        const float *xb = x + b;
        float *qb = q + b;
        block_magnitudes(xb, a, qp, m, sign);
#pragma omp simd
        for (size_t j = 0; j < m; j++) {
            float i1 = with_zero ? (float)((a[j] >= thr) & (a[j] < xn)) : (float)(a[j] < xn);
            float i2 = (float)((a[j] >= xn) & (a[j] < xq)), i3 = (float)(a[j] >= xq);
            float s = sgn(sign ? xb[j] : relu(xb[j]));
            qb[j] = s * (((xn * i1) + (qp[j] * i2)) + (xq * i3));
        }
    }
}

static void chunk_forward(const void *kp, const float *x, float *q, size_t n)
{
    const pcore *k = kp;
    if (k->sign && k->with_zero) core_forward(k, x, q, n, 1, 1);
    else if (k->sign) core_forward(k, x, q, n, 1, 0);
    else if (k->with_zero) core_forward(k, x, q, n, 0, 1);
    else core_forward(k, x, q, n, 0, 0);
}

/* The core's backward over one chunk: dq/dx = Q2'(a) on I2 (0 at x = 0: the reference's
 * 0 * (0/0) = NaN is mpq's one deviation), e_xmin = g s I1, e_xmax = g s I3. */
static inline __attribute__((always_inline)) void
core_backward(const pcore *k, const float *x, const float *g, float *gx, size_t n, int sign,
              int with_zero, double acc[2])
{
    const float xn = k->xn, xq = k->xq, thr = k->thr;
    float a[MPQ_QBLOCK], qp[MPQ_QBLOCK], e_n[MPQ_QBLOCK], e_x[MPQ_QBLOCK];
    for (size_t b = 0; b < n; b += MPQ_QBLOCK) {
        const size_t m = n - b < MPQ_QBLOCK ? n - b : MPQ_QBLOCK;
        const float *xb = x + b, *gb = g + b;
        float *gxb = gx + b;
        block_magnitudes(xb, a, qp, m, sign);
#pragma omp simd
        for (size_t j = 0; j < m; j++) {
            float xp = sign ? xb[j] : relu(xb[j]), aj = a[j];
            float i1 = with_zero ? (float)((aj >= thr) & (aj < xn)) : (float)(aj < xn);
            float i2 = (float)((aj >= xn) & (aj < xq)), i3 = (float)(aj >= xq);
            float g_in = gb[j] * sgn(xp);                   /* mul2(sx, .): no grad into sx */
            float t = ((((g_in * i2) * qp[j]) * MPQ_QL2) * MPQ_QC) / aj; /* Q2' of |x'| */
            t = xp < 0.0f ? -t : t;                          /* abs backward */
            if (sign) gxb[j] = aj == 0.0f ? 0.0f : t;        /* mpq's deviation at x = +-0 */
            else gxb[j] = xb[j] > 0.0f ? t : 0.0f;           /* relu backward */
            e_n[j] = g_in * i1;
            e_x[j] = g_in * i3;
        }
        mpq_qsum_block(acc, e_n, e_x, m);
    }
}

static void chunk_backward(const void *kp, const float *x, const float *g, float *gx, size_t n,
                           double acc[2])
{
    const pcore *k = kp;
    if (k->sign && k->with_zero) core_backward(k, x, g, gx, n, 1, 1, acc);
    else if (k->sign) core_backward(k, x, g, gx, n, 1, 0, acc);
    else if (k->with_zero) core_backward(k, x, g, gx, n, 0, 1, acc);
    else core_backward(k, x, g, gx, n, 0, 0, acc);
}

void mpq_pow2_forward(mpq_qmethod m, const mpq_qspec *s, const float *x, float *q, size_t len)
{
    pcore k = prepare(m, s);
    mpq_qforward_chunks(chunk_forward, &k, x, q, len);
}

void mpq_pow2_backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g,
                       float *gx, size_t len, float gp[2])
{
    pcore k = prepare(m, s);
    double sums[2];
    mpq_qbackward_chunks(chunk_backward, &k, x, g, gx, len, sums);
    chain(m, &k, (float)sums[0], (float)sums[1], gp);
}

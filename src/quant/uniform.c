/* Uniform quantizers (shared/spec/quantizers.md section 2; Uhlich et al. 2020, cases U1-U3):
 * the core q = d * round(clip(x, xmin, xmax) / d) with its straight-through backward, and the
 * three parametrizations deriving the core's (d, xmax) from their two learnable values.
 * Works on caller-owned arrays; elementwise loops run on OpenMP threads; parameter sums follow
 * the fixed chunking of qcore.h (deterministic for any thread count). */
#include "quant/uniform.h"

#include "core/err.h"

/* Dividing by d equals multiplying by 1/d bit for bit when d and d*d are normal powers of two
 * whose reciprocals are normal floats: both round the same real number. Q2 always returns a
 * power of two; only extreme bounds leave the division path. */
static int exact_recip(float d)
{
    int e;
    float mant = frexpf(d, &e);
    return mant == 0.5f && e >= -62 && e <= 63;
}

static mpq_ucore prepare(mpq_qmethod m, const mpq_qspec *s)
{
    mpq_ucore k = {0};
    switch (m) {
    case MPQ_QMETHOD_FP_D_B: /* U1: (n, d); xmax = d_q * (2^nb - 1) lies on the grid */
        k.pw = powf(2.0f, mpq_qvalue_bits(s->p[0], s, 0));
        k.den = k.pw - 1.0f;
        k.dc = mpq_qclip(s->p[1], s->d_min, s->d_max);
        k.d = mpq_q2(k.dc);
        k.xmax = k.d * k.den;
        k.pass0 = mpq_qclip_passes(s->p[0], s->n_min, s->n_max);
        k.pass1 = mpq_qclip_passes(s->p[1], s->d_min, s->d_max);
        break;
    case MPQ_QMETHOD_FP_B_XMAX: /* U2: (n, xmax); d = Q2(xmax / (2^nb - 1)) */
        k.pw = powf(2.0f, mpq_qvalue_bits(s->p[0], s, 0));
        k.den = k.pw - 1.0f;
        k.xc = mpq_qclip(s->p[1], s->xmax_min, s->xmax_max);
        k.ratio = k.xc / k.den;
        k.d = mpq_q2(k.ratio);
        k.xmax = k.xc;
        k.pass0 = mpq_qclip_passes(s->p[0], s->n_min, s->n_max);
        k.pass1 = mpq_qclip_passes(s->p[1], s->xmax_min, s->xmax_max);
        break;
    case MPQ_QMETHOD_FP_D_XMAX: /* U3: (d, xmax) */
        k.dc = mpq_qclip(s->p[0], s->d_min, s->d_max);
        k.d = mpq_q2(k.dc);
        k.xc = mpq_qclip(s->p[1], s->xmax_min, s->xmax_max);
        k.xmax = k.xc;
        k.pass0 = mpq_qclip_passes(s->p[0], s->d_min, s->d_max);
        k.pass1 = mpq_qclip_passes(s->p[1], s->xmax_min, s->xmax_max);
        break;
    case MPQ_QMETHOD_NONE:
    case MPQ_QMETHOD_FP:
    case MPQ_QMETHOD_POW2:
    case MPQ_QMETHOD_POW2_B_XMAX:
    case MPQ_QMETHOD_POW2_B_XMIN:
    case MPQ_QMETHOD_POW2_XMIN_XMAX:
        MPQ_ASSERT(0, "uniform quantizer called with method %d", (int)m);
    }
    k.sign = s->sign != 0;
    k.xmin = k.sign ? k.xmax * -1.0f : 0.0f;
    if (exact_recip(k.d)) {
        k.inv_d = 1.0f / k.d;
        k.inv_dd = 1.0f / (k.d * k.d);
    }
    return k;
}

/* Chain rule from the core's sums G_d = sum e_d, G_x = sum e_xmax to the learnable values. */
static void chain(mpq_qmethod m, const mpq_ucore *k, float gd, float gx, float gp[2])
{
    float g0 = 0.0f, g1 = 0.0f;
    switch (m) {
    case MPQ_QMETHOD_FP_D_B: {
        float g_dq = gd + gx * k->den;                 /* mul2(d, 2^nb - 1): d/d(d_q) */
        g0 = ((gx * k->d) * k->pw) * MPQ_QL2;          /* mul2 d/dx1, then r_pow_scalar */
        g1 = mpq_q2_grad(g_dq, k->dc, k->d);
        break;
    }
    case MPQ_QMETHOD_FP_B_XMAX: {
        float g_ratio = mpq_q2_grad(gd, k->ratio, k->d);
        g0 = ((g_ratio * ((-k->xc) / (k->den * k->den))) * k->pw) * MPQ_QL2; /* div2 d/dx1 */
        g1 = gx + g_ratio / k->den;                                          /* div2 d/dx0 */
        break;
    }
    case MPQ_QMETHOD_FP_D_XMAX:
        g0 = mpq_q2_grad(gd, k->dc, k->d);
        g1 = gx;
        break;
    case MPQ_QMETHOD_NONE:
    case MPQ_QMETHOD_FP:
    case MPQ_QMETHOD_POW2:
    case MPQ_QMETHOD_POW2_B_XMAX:
    case MPQ_QMETHOD_POW2_B_XMIN:
    case MPQ_QMETHOD_POW2_XMIN_XMAX:
        break;
    }
    gp[0] = k->pass0 ? g0 : 0.0f;
    gp[1] = k->pass1 ? g1 : 0.0f;
}

/* The core's forward over one chunk. SIGN (k.sign) and RECIP (multiplication by the exact
 * reciprocal instead of the division) are constants at each call site. */
static inline __attribute__((always_inline)) void
core_forward(const mpq_ucore *kp, const float *x, float *q, size_t n, int sign, int recip)
{
    const mpq_ucore k = *kp;
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        q[i] = mpq_ucore_forward(k, x[i], sign, recip);
}

static void chunk_forward(const void *kp, const float *x, float *q, size_t n)
{
    const mpq_ucore *k = kp;
    if (k->sign) {
        if (k->inv_d != 0.0f) core_forward(k, x, q, n, 1, 1);
        else core_forward(k, x, q, n, 1, 0);
    } else {
        if (k->inv_d != 0.0f) core_forward(k, x, q, n, 0, 1);
        else core_forward(k, x, q, n, 0, 0);
    }
}

/* The core's backward over one chunk: writes gx, adds the sums of e_d and e_xmax into acc.
 * SIGN and RECIP are constants at each call site. */
static inline __attribute__((always_inline)) void
core_backward(const mpq_ucore *kp, const float *x, const float *g, float *gx, size_t n, int sign,
              int recip, double acc[2])
{
    const mpq_ucore k = *kp;
    float e_d[MPQ_QBLOCK], e_x[MPQ_QBLOCK];
    for (size_t b = 0; b < n; b += MPQ_QBLOCK) {
        const size_t m = n - b < MPQ_QBLOCK ? n - b : MPQ_QBLOCK;
        const float *xb = x + b, *gb = g + b;
        float *gxb = gx + b;
#pragma omp simd
        for (size_t j = 0; j < m; j++)
            gxb[j] = mpq_ucore_backward(k, xb[j], gb[j], sign, recip, &e_d[j], &e_x[j]);
        mpq_qsum_block(acc, e_d, e_x, m);
    }
}

static void chunk_backward(const void *kp, const float *x, const float *g, float *gx, size_t n,
                           double acc[2])
{
    const mpq_ucore *k = kp;
    int recip = k->inv_d != 0.0f;
    if (k->sign && recip) core_backward(k, x, g, gx, n, 1, 1, acc);
    else if (k->sign) core_backward(k, x, g, gx, n, 1, 0, acc);
    else if (recip) core_backward(k, x, g, gx, n, 0, 1, acc);
    else core_backward(k, x, g, gx, n, 0, 0, acc);
}

int mpq_quant_ucore(const mpq_quant *q, const float *val, mpq_ucore *k)
{
    if (q->method != MPQ_QMETHOD_FP_D_B && q->method != MPQ_QMETHOD_FP_B_XMAX &&
        q->method != MPQ_QMETHOD_FP_D_XMAX)
        return 0;
    const mpq_qspec s = mpq_quant_spec(q, val);
    *k = prepare(q->method, &s);
    return 1;
}

void mpq_quant_ucore_grads(const mpq_quant *q, const mpq_ucore *k, double sum_ed, double sum_ex,
                           float *grad)
{
    float gp[2];
    chain(q->method, k, (float)sum_ed, (float)sum_ex, gp);
    grad[q->p.off] += gp[0];
    grad[q->p.off + 1] += gp[1];
}

float mpq_uniform_step(mpq_qmethod m, const mpq_qspec *s) { return prepare(m, s).d; }

void mpq_uniform_forward(mpq_qmethod m, const mpq_qspec *s, const float *x, float *q, size_t len)
{
    mpq_ucore k = prepare(m, s);
    mpq_qforward_chunks(chunk_forward, &k, x, q, len);
}

void mpq_uniform_backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g,
                          float *gx, size_t len, float gp[2])
{
    mpq_ucore k = prepare(m, s);
    double sums[2];
    mpq_qbackward_chunks(chunk_backward, &k, x, g, gx, len, sums);
    chain(m, &k, (float)sums[0], (float)sums[1], gp);
}

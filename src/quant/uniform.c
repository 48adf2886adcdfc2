/* Uniform quantizers (shared/spec/quantizers.md section 2; Uhlich et al. 2020, cases U1-U3):
 * the core q = d * round(clip(x, xmin, xmax) / d) with its straight-through backward, and the
 * three parametrizations deriving the core's (d, xmax) from their two learnable values.
 * Works on caller-owned arrays; elementwise loops run on OpenMP threads; parameter sums follow
 * the fixed chunking of qcore.h (deterministic for any thread count). */
#include "quant/qcore.h"

#include "core/err.h"

/* The core's scalars and what the chain rule back to (p0, p1) needs. xmin = -xmax (sign) or 0. */
typedef struct ucore {
    float d, xmax, xmin;
    float inv_d, inv_dd;  /* 1/d, 1/(d*d) when exact (see exact_recip), else 0 */
    float pw, den;        /* 2^nb and 2^nb - 1 (U1, U2) */
    float dc, xc, ratio;  /* clipped d (U1, U3), clipped xmax (U2, U3), xmax / den (U2) */
    int pass0, pass1;     /* clipS gradient masks of p0 and p1 */
    int sign;
} ucore;

/* Dividing by d equals multiplying by 1/d bit for bit when d and d*d are normal powers of two
 * whose reciprocals are normal floats: both round the same real number. Q2 always returns a
 * power of two; only extreme bounds leave the division path. */
static int exact_recip(float d)
{
    int e;
    float mant = frexpf(d, &e);
    return mant == 0.5f && e >= -62 && e <= 63;
}

static ucore prepare(mpq_qmethod m, const mpq_qspec *s)
{
    ucore k = {0};
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
static void chain(mpq_qmethod m, const ucore *k, float gd, float gx, float gp[2])
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

/* The core's forward over one chunk. RECIP (a constant at each call site) selects multiplication
 * by the exact reciprocal instead of the division. */
static inline __attribute__((always_inline)) void
core_forward(const ucore *k, const float *x, float *q, size_t n, int recip)
{
    const float d = k->d, inv_d = k->inv_d, xmin = k->xmin, xmax = k->xmax;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float c1 = x[i] > xmin ? x[i] : xmin;  /* maximum2(x, xmin) */
        float c2 = c1 < xmax ? c1 : xmax;      /* minimum2(c1, xmax) */
        q[i] = d * mpq_qround(recip ? c2 * inv_d : c2 / d);
    }
}

static void chunk_forward(const void *kp, const float *x, float *q, size_t n)
{
    const ucore *k = kp;
    if (k->inv_d != 0.0f) core_forward(k, x, q, n, 1);
    else core_forward(k, x, q, n, 0);
}

/* The core's backward over one chunk: writes gx, adds the sums of e_d and e_xmax into acc.
 * SIGN and RECIP are constants at each call site. */
static inline __attribute__((always_inline)) void
core_backward(const ucore *k, const float *x, const float *g, float *gx, size_t n, int sign,
              int recip, double acc[2])
{
    const float d = k->d, inv_d = k->inv_d, inv_dd = k->inv_dd, dd = k->d * k->d;
    const float xmin = k->xmin, xmax = k->xmax;
    float e_d[MPQ_QBLOCK], e_x[MPQ_QBLOCK];
    for (size_t b = 0; b < n; b += MPQ_QBLOCK) {
        const size_t m = n - b < MPQ_QBLOCK ? n - b : MPQ_QBLOCK;
        const float *xb = x + b, *gb = g + b;
        float *gxb = gx + b;
#pragma omp simd
        for (size_t j = 0; j < m; j++) {
            float xi = xb[j], gi = gb[j];
            float c1 = xi > xmin ? xi : xmin;
            float c2 = c1 < xmax ? c1 : xmax;
            float r = mpq_qround(recip ? c2 * inv_d : c2 / d);
            float g_r = gi * d;                                 /* mul2(d, r): d/dr */
            float g_c2 = recip ? g_r * inv_d : g_r / d;         /* div2: d/dx0 */
            float g_c1 = (float)(c1 < xmax) * g_c2;             /* minimum2: d/dx0 */
            float ex = (float)(c1 >= xmax) * g_c2;              /* minimum2: d/dx1 */
            if (sign) ex += ((float)(xi <= xmin) * g_c1) * -1.0f; /* maximum2 d/dx1, -xmax */
            e_d[j] = (gi * r) + (g_r * (recip ? (-c2) * inv_dd : (-c2) / dd));
            e_x[j] = ex;
            gxb[j] = (float)(xi > xmin) * g_c1;                 /* maximum2: d/dx0 */
        }
        mpq_qsum_block(acc, e_d, e_x, m);
    }
}

static void chunk_backward(const void *kp, const float *x, const float *g, float *gx, size_t n,
                           double acc[2])
{
    const ucore *k = kp;
    int recip = k->inv_d != 0.0f;
    if (k->sign && recip) core_backward(k, x, g, gx, n, 1, 1, acc);
    else if (k->sign) core_backward(k, x, g, gx, n, 1, 0, acc);
    else if (recip) core_backward(k, x, g, gx, n, 0, 1, acc);
    else core_backward(k, x, g, gx, n, 0, 0, acc);
}

float mpq_uniform_step(mpq_qmethod m, const mpq_qspec *s) { return prepare(m, s).d; }

void mpq_uniform_forward(mpq_qmethod m, const mpq_qspec *s, const float *x, float *q, size_t len)
{
    ucore k = prepare(m, s);
    mpq_qforward_chunks(chunk_forward, &k, x, q, len);
}

void mpq_uniform_backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g,
                          float *gx, size_t len, float gp[2])
{
    ucore k = prepare(m, s);
    double sums[2];
    mpq_qbackward_chunks(chunk_backward, &k, x, g, gx, len, sums);
    chain(m, &k, (float)sums[0], (float)sums[1], gp);
}

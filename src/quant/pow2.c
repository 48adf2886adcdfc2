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

/* The region masks of one element: I1 (to +-xmin), I2 (to +-2^round(log2 a)), I3 (to +-xmax). */
static inline __attribute__((always_inline)) void
masks(const pcore *k, float a, int with_zero, float *i1, float *i2, float *i3)
{
    *i1 = with_zero ? (float)(a >= k->thr && a < k->xn) : (float)(a < k->xn);
    *i2 = (float)(a >= k->xn && a < k->xq);
    *i3 = (float)(a >= k->xq);
}

/* x' = relu(x) for unsigned quantizers (nnabla: max(0, x)). */
static inline float relu(float x) { return x > 0.0f ? x : 0.0f; }

/* F.sign with alpha = 1: sign(0) = +1. */
static inline float sgn(float v) { return v < 0.0f ? -1.0f : 1.0f; }

static inline __attribute__((always_inline)) void
core_forward(const pcore *k, const float *x, float *q, size_t n, int sign, int with_zero)
{
#pragma omp parallel for schedule(static) if (n >= MPQ_QPAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float xp = sign ? x[i] : relu(x[i]), a = fabsf(xp), i1, i2, i3;
        masks(k, a, with_zero, &i1, &i2, &i3);
        q[i] = sgn(xp) * (((k->xn * i1) + (mpq_q2_elem(a) * i2)) + (k->xq * i3));
    }
}

static inline __attribute__((always_inline)) void
core_backward(const pcore *k, const float *x, const float *g, float *gx, size_t n, int sign,
              int with_zero, double acc[2])
{
    double sn = 0.0, sx = 0.0;
    for (size_t i = 0; i < n; i++) {
        float xp = sign ? x[i] : relu(x[i]), a = fabsf(xp), i1, i2, i3;
        masks(k, a, with_zero, &i1, &i2, &i3);
        float g_in = g[i] * sgn(xp);          /* mul2(sx, .): sx carries no gradient */
        float g_qp = g_in * i2;
        float t = (((g_qp * mpq_q2_elem(a)) * MPQ_QL2) * MPQ_QC) / a; /* Q2' of |x'| */
        t = xp < 0.0f ? -t : t;               /* abs backward */
        if (!sign) t = x[i] > 0.0f ? t : 0.0f; /* relu backward */
        else if (a == 0.0f) t = 0.0f;         /* the reference's 0 * (0/0) = NaN; mpq: 0 */
        gx[i] = t;
        sn += g_in * i1;
        sx += g_in * i3;
    }
    acc[0] += sn;
    acc[1] += sx;
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
    if (k.sign && k.with_zero) core_forward(&k, x, q, len, 1, 1);
    else if (k.sign) core_forward(&k, x, q, len, 1, 0);
    else if (k.with_zero) core_forward(&k, x, q, len, 0, 1);
    else core_forward(&k, x, q, len, 0, 0);
}

void mpq_pow2_backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g,
                       float *gx, size_t len, float gp[2])
{
    pcore k = prepare(m, s);
    double sums[2];
    mpq_qbackward_chunks(chunk_backward, &k, x, g, gx, len, sums);
    chain(m, &k, (float)sums[0], (float)sums[1], gp);
}

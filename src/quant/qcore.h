/* Private to src/quant/ and its tests (uniform.h, the fusable face of U1-U3, includes it): the
 * float32 primitives of shared/spec/quantizers.md section 1 (round half away from zero,
 * correctly rounded logf, the constants C, L2, S, the clip with strict-inequality gradient
 * masks, Q2 and its STE derivative), the chunking that keeps parameter-gradient sums
 * deterministic, and the entry points of the quantizer families. Everything here is pure: no
 * allocation, no global state. Bit-exactness relies on no FMA contraction (-ffp-contract=off,
 * which -std=c11 implies for GCC). */
#ifndef MPQ_QUANT_QCORE_H
#define MPQ_QUANT_QCORE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/quant.h"

#define MPQ_QC 0x1.715476p+0f  /* C  = (float)(1 / ln 2)   (0x3FB8AA3B) */
#define MPQ_QL2 0x1.62e43p-1f  /* L2 = logf(2)             (0x3F317218) */
#define MPQ_QS 0x1.6a09e6p-1f  /* S  = (float)(1 / sqrt 2) (0x3F3504F3) */

/* Elementwise work is cut into chunks that depend on len only (at most MPQ_QCHUNKS of at least
 * MPQ_QCHUNK_MIN elements); OpenMP threads take whole chunks once len >= MPQ_QPAR_MIN. Chunks
 * are walked in blocks of MPQ_QBLOCK elements whose temporaries stay in L1, so that the
 * elementwise math vectorizes and the parameter-gradient sums can run apart from it: each chunk
 * sums its blocks in order in double (mpq_qsum_block) and the chunk sums are added in chunk
 * order, so results do not depend on the number of threads. */
#define MPQ_QPAR_MIN 32768
#define MPQ_QCHUNKS 256
#define MPQ_QCHUNK_MIN 8192
#define MPQ_QBLOCK 256

static inline size_t mpq_qchunk_len(size_t len)
{
    size_t c = (len + MPQ_QCHUNKS - 1) / MPQ_QCHUNKS;
    return c < MPQ_QCHUNK_MIN ? MPQ_QCHUNK_MIN : c;
}

/* One chunk of a forward pass: writes q[0..n). */
typedef void (*mpq_qfwd_fn)(const void *k, const float *x, float *q, size_t n);
/* One chunk of a backward pass: writes gx[0..n) and adds its two parameter sums into acc. */
typedef void (*mpq_qbwd_fn)(const void *k, const float *x, const float *g, float *gx, size_t n,
                            double acc[2]);

static inline void mpq_qforward_chunks(mpq_qfwd_fn fn, const void *k, const float *x, float *q,
                                       size_t len)
{
    size_t cl = mpq_qchunk_len(len), nc = (len + cl - 1) / cl;
#pragma omp parallel for schedule(static) if (len >= MPQ_QPAR_MIN)
    for (size_t c = 0; c < nc; c++) {
        size_t lo = c * cl;
        fn(k, x + lo, q + lo, len - lo < cl ? len - lo : cl);
    }
}

/* sums[] = the two parameter sums over [0, len), chunk sums added in chunk order. */
static inline void mpq_qbackward_chunks(mpq_qbwd_fn fn, const void *k, const float *x,
                                        const float *g, float *gx, size_t len, double sums[2])
{
    size_t cl = mpq_qchunk_len(len), nc = (len + cl - 1) / cl;
    double part[MPQ_QCHUNKS][2];
#pragma omp parallel for schedule(static) if (len >= MPQ_QPAR_MIN)
    for (size_t c = 0; c < nc; c++) {
        size_t lo = c * cl;
        part[c][0] = part[c][1] = 0.0;
        fn(k, x + lo, g + lo, gx + lo, len - lo < cl ? len - lo : cl, part[c]);
    }
    sums[0] = sums[1] = 0.0;
    for (size_t c = 0; c < nc; c++) {
        sums[0] += part[c][0];
        sums[1] += part[c][1];
    }
}

/* acc[0] += sum e0[0..m), acc[1] += sum e1[0..m), in double: four interleaved partial sums each
 * (element j goes to lane j % 4, so the adds pipeline and vectorize), combined in a fixed order. */
static inline void mpq_qsum_block(double acc[2], const float *e0, const float *e1, size_t m)
{
    double s0[4] = {0.0, 0.0, 0.0, 0.0}, s1[4] = {0.0, 0.0, 0.0, 0.0};
    size_t j = 0;
    for (; j + 4 <= m; j += 4)
        for (int l = 0; l < 4; l++) {
            s0[l] += e0[j + l];
            s1[l] += e1[j + l];
        }
    for (; j < m; j++) {
        s0[j % 4] += e0[j];
        s1[j % 4] += e1[j];
    }
    acc[0] += (s0[0] + s0[1]) + (s0[2] + s0[3]);
    acc[1] += (s1[0] + s1[1]) + (s1[2] + s1[3]);
}

/* C roundf: half away from zero. Written with adds, compares and selects only, because the
 * default -ftrapping-math keeps GCC from vectorizing truncf or a float-to-int conversion.
 * Below 2^23, (a + 2^23) - 2^23 is a rounded to the nearest even integer, from which trunc(a)
 * and the half-away rounding follow exactly; from 2^23 on every float is an integer. */
static inline float mpq_qround(float v)
{
    float a = fabsf(v);
    float r = (a + 0x1p23f) - 0x1p23f;
    float t = r > a ? r - 1.0f : r;        /* trunc(a) */
    t = t + (a - t >= 0.5f ? 1.0f : 0.0f); /* a - t is exact */
    t = a < 0x1p23f ? t : a;               /* also keeps inf and NaN */
    return copysignf(t, v);
}

/* mpq_qround(v) for v >= +0 or NaN, in fewer operations (the unsigned quantizers' clipped
 * inputs): below 2^23 the nearest-even r differs from the half-away rounding only where v - r is
 * exactly 0.5; the same bits as mpq_qround. */
static inline float mpq_qround_nonneg(float v)
{
    float r = (v + 0x1p23f) - 0x1p23f;
    r = r + (v - r == 0.5f ? 1.0f : 0.0f); /* v - r is exact */
    return v < 0x1p23f ? r : v;            /* also keeps inf and NaN */
}

/* logf as the spec fixes it: the correctly rounded float of the natural log. */
static inline float mpq_qlogf(float v) { return (float)log((double)v); }

/* clipS(v; lo, hi) = minimum_scalar(maximum_scalar(v, lo), hi). */
static inline float mpq_qclip(float v, float lo, float hi)
{
    float t = v > lo ? v : lo;
    return t < hi ? t : hi;
}

/* Whether clipS passes the gradient: both inequalities strict (a value on a bound gets 0). */
static inline int mpq_qclip_passes(float v, float lo, float hi) { return v > lo && v < hi; }

/* bits(n; sign, extra) = round(clipS(n; n_min, n_max)) - sign - extra: the value bits. */
static inline float mpq_qvalue_bits(float n, const mpq_qspec *s, int extra)
{
    float nb = mpq_qround(mpq_qclip(n, s->n_min, s->n_max));
    if (s->sign) nb = nb + -1.0f;
    if (extra) nb = nb + -1.0f;
    return nb;
}

/* Q2(v) = 2 ** round(logf(v) * C) (the reference's quantize_pow2), for one scalar. */
static inline float mpq_q2(float v) { return powf(2.0f, mpq_qround(mpq_qlogf(v) * MPQ_QC)); }

/* Q2'(v) * g with Q2(v) = q: r_pow_scalar, round, mul_scalar(C), log backward in that order. */
static inline float mpq_q2_grad(float g, float v, float q)
{
    return (((g * q) * MPQ_QL2) * MPQ_QC) / v;
}

/* 2^round(log2 a) read off the bits of a >= 0, for a = 0 (giving 0) and for a normal below 2^127
 * whose mantissa is not within 2^-10 of sqrt(2): there log2 a is at least 1e-3 away from a
 * rounding tie while any float evaluation of log2 (logf * C, or log2f) errs by less than 4e-5,
 * so every such evaluation rounds alike. Returns -1 (never a result) where the caller must
 * evaluate its own formula: near the ties, subnormals, huge values, inf, NaN. */
#define MPQ_QSQRT2_MANT 3474675u /* floor((sqrt(2) - 1) * 2^23) */
#define MPQ_QTIE_WINDOW 8192u    /* 2^-10 in mantissa units */
static inline float mpq_qpow2_round_bits(float a)
{
    uint32_t u, e, m, r;
    memcpy(&u, &a, sizeof u);
    e = u >> 23;
    m = u & 0x7fffffu;
    r = (e << 23) + (m > MPQ_QSQRT2_MANT ? 0x800000u : 0u);
    if (e - 1u >= 253u ||
        (m + MPQ_QTIE_WINDOW >= MPQ_QSQRT2_MANT && m <= MPQ_QSQRT2_MANT + MPQ_QTIE_WINDOW))
        r = 0xbf800000u; /* -1.0f */
    if (u == 0u) r = 0u;
    memcpy(&a, &r, sizeof a);
    return a;
}

/* qp[j] = Q2(a[j]) for a block of a >= 0 (0 for a = 0): the bit shortcut (vectorized), then the
 * exact formula for the few elements it leaves (one rarely taken branch); bit-equal to mpq_q2
 * (tested exhaustively near the ties). */
static inline void mpq_q2_block(const float *a, float *qp, size_t m)
{
#pragma omp simd
    for (size_t j = 0; j < m; j++) qp[j] = mpq_qpow2_round_bits(a[j]);
    for (size_t j = 0; j < m; j++)
        if (qp[j] < 0.0f) qp[j] = mpq_q2(a[j]);
}

/* Entry points of the families. m selects the parametrization, s carries sign, with_zero, the
 * bounds and the two values p. Forward: q[i] = Q(x[i]). Backward: gx[i] = dQ/dx * g[i] (gx may
 * alias g) and gp[0..1] = the gradients of sum_i Q(x[i]) * g[i] with respect to p[0], p[1]. */
/* uniform.c: U1 parametric_fp_d_b, U2 parametric_fp_b_xmax, U3 parametric_fp_d_xmax */
void mpq_uniform_forward(mpq_qmethod m, const mpq_qspec *s, const float *x, float *q, size_t len);
void mpq_uniform_backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g,
                          float *gx, size_t len, float gp[2]);
/* The core's step d for the values s->p (what forward multiplies the rounded value by). */
float mpq_uniform_step(mpq_qmethod m, const mpq_qspec *s);
/* pow2.c: P1 parametric_pow2_b_xmax, P2 parametric_pow2_b_xmin, P3 parametric_pow2_xmin_xmax */
void mpq_pow2_forward(mpq_qmethod m, const mpq_qspec *s, const float *x, float *q, size_t len);
void mpq_pow2_backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g,
                       float *gx, size_t len, float gp[2]);
/* fixed.c: F.fixed_point_quantize (MPQ_QMETHOD_FP, p = {n, delta}) and F.pow2_quantize
 * (MPQ_QMETHOD_POW2, p = {n, m}); gp is left alone (no learnable values). */
void mpq_fixed_forward(mpq_qmethod m, const mpq_qspec *s, const float *x, float *q, size_t len);
void mpq_fixed_backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g,
                        float *gx, size_t len);

/* size.c: the inferred bitwidth n of spec section 6 for the values s->p, with bmin = s->n_min and
 * xmin clipped at xmin_max (the size model's bound). With gp != NULL, writes dn_in * dn/dp[i]
 * (through ceil/round as identity, the max-with-bmin gate, Q2' and the clip masks) to gp[i]. */
float mpq_qbits(mpq_qmethod m, const mpq_qspec *s, float xmin_max, float dn_in, float gp[2]);

#endif

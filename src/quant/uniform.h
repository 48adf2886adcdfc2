/* The uniform core q = d * round(clip(x, xmin, xmax) / d) of U1-U3 per element, inline: one
 * definition of its forward and straight-through backward, used by the chunk loops of uniform.c
 * and by layers that fuse the activation quantizer into their own passes over memory (BN), bit
 * for bit alike (but for the power-of-two backward's e_d, rounded once instead of twice). The
 * per-element gradient terms e_d, e_x are summed by the caller in an order of its own and handed
 * to mpq_quant_ucore_grads for the chain rule back to the learnable values. */
#ifndef MPQ_QUANT_UNIFORM_H
#define MPQ_QUANT_UNIFORM_H

#include "quant/qcore.h"

/* The core's scalars and what the chain rule back to (p0, p1) needs. xmin = -xmax (sign) or 0. */
typedef struct mpq_ucore {
    float d, xmax, xmin;
    float inv_d, inv_dd; /* 1/d, 1/(d*d) when exact (see uniform.c), else 0 */
    float pw, den;       /* 2^nb and 2^nb - 1 (U1, U2) */
    float dc, xc, ratio; /* clipped d (U1, U3), clipped xmax (U2, U3), xmax / den (U2) */
    int pass0, pass1;    /* clipS gradient masks of p0 and p1 */
    int sign;
} mpq_ucore;

/* The core for quantizer q with its values read from val. Returns 1 for U1-U3 (k filled), 0
 * for every other method (k untouched). */
int mpq_quant_ucore(const mpq_quant *q, const float *val, mpq_ucore *k);
/* Adds to grad[q->p] the learnable values' gradients given the sums over all elements of e_d
 * and e_x (from mpq_ucore_backward) for the core k of q. */
void mpq_quant_ucore_grads(const mpq_quant *q, const mpq_ucore *k, double sum_ed, double sum_ex,
                           float *grad);

/* round(c2 / d) of a clipped input; SIGN (k.sign, a constant at each call site) false: c2 is in
 * [0, xmax] (xmin = 0, and a NaN x clips to 0), so the shorter non-negative rounding gives the
 * same bits. */
static inline __attribute__((always_inline)) float mpq_ucore_round(const mpq_ucore k, float c2,
                                                                   const int sign, const int recip)
{
    const float v = recip ? c2 * k.inv_d : c2 / k.d;
    return sign ? mpq_qround(v) : mpq_qround_nonneg(v);
}

/* Q(x). SIGN is k.sign and RECIP (true only where k.inv_d != 0) multiplies by the exact
 * reciprocal instead of dividing, both constants at each call site. */
static inline __attribute__((always_inline)) float
mpq_ucore_forward(const mpq_ucore k, float x, const int sign, const int recip)
{
    float c1 = x > k.xmin ? x : k.xmin;   /* maximum2(x, xmin) */
    float c2 = c1 < k.xmax ? c1 : k.xmax; /* minimum2(c1, xmax) */
    return k.d * mpq_ucore_round(k, c2, sign, recip);
}

/* dQ/dx * g, the function graph's backward in the reference's order; writes the element's terms
 * of the gradients with respect to the core's d (e_d) and xmax (e_x). SIGN (k.sign) and RECIP are
 * constants at each call site; a caller that needs only the returned value lets the compiler
 * drop the rest. */
static inline __attribute__((always_inline)) float mpq_ucore_backward(const mpq_ucore k, float x,
                                                                      float g, const int sign,
                                                                      const int recip, float *e_d,
                                                                      float *e_x)
{
    float c1 = x > k.xmin ? x : k.xmin;
    float c2 = c1 < k.xmax ? c1 : k.xmax;
    float r = mpq_ucore_round(k, c2, sign, recip);
    float g_r = g * k.d;                                   /* mul2(d, r): d/dr */
    float g_c2 = recip ? g_r * k.inv_d : g_r / k.d;        /* div2: d/dx0 */
    float g_c1 = (float)(c1 < k.xmax) * g_c2;              /* minimum2: d/dx0 */
    float ex = (float)(c1 >= k.xmax) * g_c2;               /* minimum2: d/dx1 */
    if (sign) ex += ((float)(x <= k.xmin) * g_c1) * -1.0f; /* maximum2 d/dx1, -xmax */
    *e_d = (g * r) + (g_r * (recip ? (-c2) * k.inv_dd : (-c2) / (k.d * k.d)));
    *e_x = ex;
    return (float)(x > k.xmin) * g_c1; /* maximum2: d/dx0 */
}

/* mpq_ucore_backward(k, x, g, 0, 1, e_d, e_x) for an unsigned core (xmin = 0) whose step d is a
 * power of two (k.inv_d != 0) and whose xmax / d is below 2^23 (mpq_ucore_pow2), in fewer
 * operations: there g * d * (1/d) is g, d / d^2 is 1/d and each scaling by a power of two is
 * exact, so dQ/dx * g is the mask 0 < x < xmax times g and e_x the mask x >= xmax times g (the
 * same bits wherever g * d is a normal float: where a mask is 0 it gives 0 * g, the +-0 or NaN
 * of the reference's products), and e_d = g * r - g * v with v = c2 / d is taken as
 * g * (r - v), rounded once (r - v is exact: the nearest-even rn and v differ by at most 1/2,
 * and r - v is rn - v, or 1/2 where the tie rounds up), so the rounded r itself is not formed. */
static inline __attribute__((always_inline)) float
mpq_ucore_backward_pow2(const mpq_ucore k, float x, float g, float *e_d, float *e_x)
{
    float c1 = x > 0.0f ? x : 0.0f;
    float c2 = c1 < k.xmax ? c1 : k.xmax;
    float v = c2 * k.inv_d;
    float rn = (v + 0x1p23f) - 0x1p23f; /* v rounded to the nearest even (v < 2^23) */
    float u = rn - v;
    u = u == -0.5f ? 0.5f : u; /* r - v for the half-away r */
    /* where a mask is 0: 0 * g, formed once for both masks */
    float z = 0.0f * g;
    *e_d = g * u;
    *e_x = c1 >= k.xmax ? g : z;
    return (x > 0.0f) & (c1 < k.xmax) ? g : z;
}

/* Whether k's backward may take mpq_ucore_backward_pow2: unsigned, an exact reciprocal step (a
 * power of two) and xmax / d below 2^23 (a finite xmax). */
static inline int mpq_ucore_pow2(const mpq_ucore *k)
{
    return !k->sign && k->inv_d != 0.0f && k->xmax * k->inv_d < 0x1p23f;
}

#endif

/* Depthwise kernels (see dwk.h). Forward tiles hold P pixels x one channel vector in registers
 * over all taps (each tap: one weight vector, P input vectors); weight-gradient tiles hold up to
 * TBMAX taps x one channel vector over all pixels (each pixel: one gradient vector, one input
 * vector per tap). Tiles are instantiated for constant sizes (always-inlined bodies) so their
 * accumulators stay in registers; builds without AVX-512/AVX2 run the references. */
#include "kernels/dwk.h"

#include "kernels/simd.h"

void mpq_dwk_forward_ref(const mpq_dwk_taps *t, int pix, int c, const float *in,
                         ptrdiff_t in_ps, float *out, ptrdiff_t out_ps, int accumulate)
{
    for (int p = 0; p < pix; p++)
        for (int j = 0; j < c; j++) {
            float acc = accumulate ? out[p * out_ps + j] : 0.0f;
            for (int k = 0; k < t->n; k++)
                acc += in[p * in_ps + t->off[k] + j] * t->w[k][j];
            out[p * out_ps + j] = acc;
        }
}

void mpq_dwk_wgrad_ref(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                       const float *g, ptrdiff_t g_ps)
{
    for (int k = 0; k < t->n; k++)
        for (int j = 0; j < c; j++) {
            float acc = 0.0f;
            for (int p = 0; p < pix; p++)
                acc += in[p * in_ps + t->off[k] + j] * g[p * g_ps + j];
            t->dw[k][j] += acc;
        }
}

#ifdef VW

#define PMAX 8 /* forward pixels per tile */
#if NREG == 32
#define TBMAX 12 /* weight-gradient taps per tile */
#else
#define TBMAX 9
#endif

/* P pixels of one channel vector (lanes of m) at channel j0. */
ALWAYS_INLINE void fwd_tile(const int P, const int MASKED, const mpq_dwk_taps *t, int j0, vmask m,
                            const float *in, ptrdiff_t in_ps, float *out, ptrdiff_t out_ps,
                            int accumulate)
{
    vf acc[PMAX];
#pragma GCC unroll 8
    for (int p = 0; p < P; p++)
        acc[p] = VZERO();
    for (int k = 0; k < t->n; k++) {
        const vf w = MASKED ? VLOADM(t->w[k] + j0, m) : VLOAD(t->w[k] + j0);
        const float *ik = in + t->off[k] + j0;
#pragma GCC unroll 8
        for (int p = 0; p < P; p++)
            acc[p] = VFMA(MASKED ? VLOADM(ik + p * in_ps, m) : VLOAD(ik + p * in_ps), w, acc[p]);
    }
#pragma GCC unroll 8
    for (int p = 0; p < P; p++) {
        float *o = out + p * out_ps + j0;
        if (MASKED)
            VSTOREM(o, m, accumulate ? VADD(VLOADM(o, m), acc[p]) : acc[p]);
        else
            VSTORE(o, accumulate ? VADD(VLOAD(o), acc[p]) : acc[p]);
    }
}

/* Taps [k0, k0 + TB) of one channel vector, summed over the pixels. */
ALWAYS_INLINE void wgrad_tile(const int TB, const int MASKED, const mpq_dwk_taps *t, int k0,
                              int pix, int j0, vmask m, const float *in, ptrdiff_t in_ps,
                              const float *g, ptrdiff_t g_ps)
{
    vf acc[TBMAX];
    ptrdiff_t off[TBMAX];
#pragma GCC unroll 12
    for (int k = 0; k < TB; k++) {
        acc[k] = VZERO();
        off[k] = t->off[k0 + k] + j0;
    }
    for (int p = 0; p < pix; p++) {
        const vf gv = MASKED ? VLOADM(g + p * g_ps + j0, m) : VLOAD(g + p * g_ps + j0);
        const float *ip = in + p * in_ps;
#pragma GCC unroll 12
        for (int k = 0; k < TB; k++)
            acc[k] = VFMA(MASKED ? VLOADM(ip + off[k], m) : VLOAD(ip + off[k]), gv, acc[k]);
    }
#pragma GCC unroll 12
    for (int k = 0; k < TB; k++) {
        float *o = t->dw[k0 + k] + j0;
        if (MASKED)
            VSTOREM(o, m, VADD(VLOADM(o, m), acc[k]));
        else
            VSTORE(o, VADD(VLOAD(o), acc[k]));
    }
}

/* Plain and masked (channel tail) instances: masked stores of full vectors are slow on Zen 5. */
#define FWD(P)                                                                                    \
    static void fwd_##P(const mpq_dwk_taps *t, int j0, vmask m, const float *in, ptrdiff_t in_ps, \
                        float *out, ptrdiff_t out_ps, int accumulate)                              \
    {                                                                                              \
        fwd_tile(P, 0, t, j0, m, in, in_ps, out, out_ps, accumulate);                              \
    }                                                                                              \
    static void fwdm_##P(const mpq_dwk_taps *t, int j0, vmask m, const float *in,                 \
                         ptrdiff_t in_ps, float *out, ptrdiff_t out_ps, int accumulate)            \
    {                                                                                              \
        fwd_tile(P, 1, t, j0, m, in, in_ps, out, out_ps, accumulate);                              \
    }
#define WG(TB)                                                                                    \
    static void wg_##TB(const mpq_dwk_taps *t, int k0, int pix, int j0, vmask m, const float *in, \
                        ptrdiff_t in_ps, const float *g, ptrdiff_t g_ps)                           \
    {                                                                                              \
        wgrad_tile(TB, 0, t, k0, pix, j0, m, in, in_ps, g, g_ps);                                  \
    }                                                                                              \
    static void wgm_##TB(const mpq_dwk_taps *t, int k0, int pix, int j0, vmask m,                 \
                         const float *in, ptrdiff_t in_ps, const float *g, ptrdiff_t g_ps)         \
    {                                                                                              \
        wgrad_tile(TB, 1, t, k0, pix, j0, m, in, in_ps, g, g_ps);                                  \
    }
FWD(1) FWD(2) FWD(3) FWD(4) FWD(5) FWD(6) FWD(7) FWD(8)
WG(1) WG(2) WG(3) WG(4) WG(5) WG(6) WG(7) WG(8) WG(9)
#if TBMAX > 9
WG(10) WG(11) WG(12)
#endif

typedef void (*fwd_fn)(const mpq_dwk_taps *, int, vmask, const float *, ptrdiff_t, float *,
                       ptrdiff_t, int);
typedef void (*wg_fn)(const mpq_dwk_taps *, int, int, int, vmask, const float *, ptrdiff_t,
                      const float *, ptrdiff_t);
static const fwd_fn fwd_tab[2][PMAX + 1] = {
    {NULL, fwd_1, fwd_2, fwd_3, fwd_4, fwd_5, fwd_6, fwd_7, fwd_8},
    {NULL, fwdm_1, fwdm_2, fwdm_3, fwdm_4, fwdm_5, fwdm_6, fwdm_7, fwdm_8},
};
static const wg_fn wg_tab[2][TBMAX + 1] = {
    {NULL, wg_1, wg_2, wg_3, wg_4, wg_5, wg_6, wg_7, wg_8, wg_9,
#if TBMAX > 9
     wg_10, wg_11, wg_12
#endif
    },
    {NULL, wgm_1, wgm_2, wgm_3, wgm_4, wgm_5, wgm_6, wgm_7, wgm_8, wgm_9,
#if TBMAX > 9
     wgm_10, wgm_11, wgm_12
#endif
    },
};

void mpq_dwk_forward(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                     float *out, ptrdiff_t out_ps, int accumulate)
{
    for (int p0 = 0; p0 < pix; p0 += PMAX) { /* all channels of a tile: its inputs stay in L1 */
        const int np = pix - p0 < PMAX ? pix - p0 : PMAX;
        for (int j0 = 0; j0 < c; j0 += VW) {
            const int tail = c - j0 < VW;
            fwd_tab[tail][np](t, j0, VMASK(tail ? c - j0 : VW), in + p0 * in_ps, in_ps,
                              out + p0 * out_ps, out_ps, accumulate);
        }
    }
}

void mpq_dwk_wgrad(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                   const float *g, ptrdiff_t g_ps)
{
    if (pix < 1) return;
    const int blocks = (t->n + TBMAX - 1) / TBMAX;
    for (int j0 = 0; j0 < c; j0 += VW) {
        const int tail = c - j0 < VW;
        const vmask m = VMASK(tail ? c - j0 : VW);
        for (int b = 0, k0 = 0; b < blocks; b++) { /* balanced tap blocks */
            const int k1 = (int)((long)t->n * (b + 1) / blocks);
            wg_tab[tail][k1 - k0](t, k0, pix, j0, m, in, in_ps, g, g_ps);
            k0 = k1;
        }
    }
}

#else /* no SIMD kernels in this build */

void mpq_dwk_forward(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                     float *out, ptrdiff_t out_ps, int accumulate)
{
    mpq_dwk_forward_ref(t, pix, c, in, in_ps, out, out_ps, accumulate);
}

void mpq_dwk_wgrad(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                   const float *g, ptrdiff_t g_ps)
{
    mpq_dwk_wgrad_ref(t, pix, c, in, in_ps, g, g_ps);
}

#endif

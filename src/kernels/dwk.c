/* Depthwise kernels (see dwk.h). Forward tiles hold P pixels x one channel vector in registers
 * over all taps (each tap: one weight vector, P input vectors); weight-gradient tiles hold up to
 * TBMAX taps x one channel vector over all pixels (each pixel: one gradient vector, one input
 * vector per tap). Tiles are instantiated for constant sizes (always-inlined bodies) so their
 * accumulators stay in registers. A streaming forward (MPQ_DWK_STREAM) stores past the caches
 * and prefetches the next tile's input; the 3x3 weight gradient prefetches ahead of its row walk.
 * Builds without AVX-512/AVX2 run the references. */
#include "kernels/dwk.h"

#include "kernels/simd.h"

void mpq_dwk_forward_ref(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                         float *out, ptrdiff_t out_ps, int store, const mpq_dwk_stats *st)
{
    for (int p = 0; p < pix; p++)
        for (int j = 0; j < c; j++) {
            float acc = store == MPQ_DWK_ADD ? out[p * out_ps + j] : 0.0f;
            for (int k = 0; k < t->n; k++)
                acc += in[p * in_ps + t->off[k] + j] * t->w[k][j];
            out[p * out_ps + j] = acc;
            if (st) {
                const double d = (double)(acc - st->shift[j]);
                st->sums[j] += d;
                st->sums[c + j] += d * d;
            }
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

/* Prefetches lines [done, until) of a into L2. */
static void ahead_issue(mpq_dwk_ahead *a, size_t until)
{
    for (; a->done < until; a->done++) {
        const size_t i = a->done;
        __builtin_prefetch(i < a->lines[0] ? a->at[0] + 64 * i : a->at[1] + 64 * (i - a->lines[0]),
                           0, 2);
    }
}

void mpq_dwk_ahead_rest(mpq_dwk_ahead *a) { ahead_issue(a, a->lines[0] + a->lines[1]); }

#ifdef VW

/* Before a pixel tile: the lines up to its share. */
static void ahead_share(mpq_dwk_ahead *a)
{
    const size_t total = a->lines[0] + a->lines[1];
    a->tile++;
    ahead_issue(a, a->tile >= a->tiles ? total : total * a->tile / a->tiles);
}

#if NREG == 32
#define PMAX 12  /* forward pixels per tile */
#define TBMAX 12 /* weight-gradient taps per tile */
#else
#define PMAX 8
#define TBMAX 9
#endif
#define GMAX 3 /* taps per group */

/* Consecutive taps k0 .. k0+g-1 that read consecutive input pixels: tap k0 + i reads column
 * (desc ? g-1-i : i) of the group, column e at base + e * in_ps. A 3-wide kernel row is one group
 * at stride 1 (ascending in the forward, descending in the input gradient's tap lists), so a tile
 * loads each input vector of the row once for all its taps instead of once per tap. */
typedef struct tap_group {
    int k0, g, desc;
    ptrdiff_t base;
} tap_group;

/* Splits the taps into groups of at most GMAX (single taps where no neighbour fits); returns the
 * count. */
static int group_taps(const mpq_dwk_taps *t, ptrdiff_t in_ps, tap_group *gr)
{
    int n = 0;
    for (int k = 0; k < t->n;) {
        int g = 1, desc = 0;
        if (k + 1 < t->n && in_ps != 0 &&
            (t->off[k + 1] - t->off[k] == in_ps || t->off[k + 1] - t->off[k] == -in_ps)) {
            desc = t->off[k + 1] - t->off[k] < 0;
            const ptrdiff_t step = desc ? -in_ps : in_ps;
            while (g < GMAX && k + g < t->n && t->off[k + g] - t->off[k + g - 1] == step)
                g++;
        }
        gr[n++] = (tap_group){k, g, desc, desc ? t->off[k + g - 1] : t->off[k]};
        k += g;
    }
    return n;
}

/* acc[p] += the taps of group gr at pixel p, p < P, tap by tap in tap order (so the sums are
 * those of a tap-by-tap loop, bit for bit): the group's P + G - 1 input vectors are each loaded
 * once, in the order that keeps every pixel's taps in order. */
ALWAYS_INLINE void fwd_group(const int P, const int G, const int DESC, const int MASKED, vf *acc,
                             const mpq_dwk_taps *t, const tap_group *gr, int j0, vmask m,
                             const float *in, ptrdiff_t in_ps)
{
    vf w[GMAX];
#pragma GCC unroll 3
    for (int i = 0; i < G; i++)
        w[i] = MASKED ? VLOADM(t->w[gr->k0 + i] + j0, m) : VLOAD(t->w[gr->k0 + i] + j0);
    const float *ib = in + gr->base + j0;
#pragma GCC unroll 16
    for (int q = 0; q < P + G - 1; q++) {
        const int e = DESC ? P + G - 2 - q : q; /* column */
        const vf v = MASKED ? VLOADM(ib + e * in_ps, m) : VLOAD(ib + e * in_ps);
#pragma GCC unroll 3
        for (int i = 0; i < G; i++) {
            const int p = e - (DESC ? G - 1 - i : i);
            if (p >= 0 && p < P) acc[p] = VFMA(v, w[i], acc[p]);
        }
    }
}

/* P pixels of one channel vector (lanes of m) at channel j0 of c, over the tap groups; with st,
 * their statistics too. */
ALWAYS_INLINE void fwd_tile(const int P, const int MASKED, const mpq_dwk_taps *t,
                            const tap_group *gr, int ng, int j0, vmask m, const float *in,
                            ptrdiff_t in_ps, float *out, ptrdiff_t out_ps, int store, int c,
                            const mpq_dwk_stats *st)
{
    vf acc[PMAX];
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
        acc[p] = VZERO();
    for (int k = 0; k < ng; k++) {
        switch (gr[k].g * 2 + gr[k].desc) {
        case 2: /* a single tap (never descending) */
            fwd_group(P, 1, 0, MASKED, acc, t, &gr[k], j0, m, in, in_ps);
            break;
        case 4:
            fwd_group(P, 2, 0, MASKED, acc, t, &gr[k], j0, m, in, in_ps);
            break;
        case 5:
            fwd_group(P, 2, 1, MASKED, acc, t, &gr[k], j0, m, in, in_ps);
            break;
        case 6:
            fwd_group(P, 3, 0, MASKED, acc, t, &gr[k], j0, m, in, in_ps);
            break;
        default:
            fwd_group(P, 3, 1, MASKED, acc, t, &gr[k], j0, m, in, in_ps);
            break;
        }
    }
#pragma GCC unroll 16
    for (int p = 0; p < P; p++) {
        float *o = out + p * out_ps + j0; /* acc becomes the stored output */
        if (store == MPQ_DWK_ADD) acc[p] = VADD(MASKED ? VLOADM(o, m) : VLOAD(o), acc[p]);
        if (MASKED)
            VSTOREM(o, m, acc[p]);
        else if (store == MPQ_DWK_STREAM)
            VSTREAM(o, acc[p]);
        else
            VSTORE(o, acc[p]);
    }
    if (!st) return;
    const vf sh = MASKED ? VLOADM(st->shift + j0, m) : VLOAD(st->shift + j0);
    vf f1 = VZERO(), f2 = VZERO();
#pragma GCC unroll 16
    for (int p = 0; p < P; p++) {
        const vf d = VSUB(acc[p], sh);
        f1 = VADD(f1, d);
        f2 = VFMA(d, d, f2);
    }
    const vd s1[2] = {VWIDEN_LO(f1), VWIDEN_HI(f1)}, s2[2] = {VWIDEN_LO(f2), VWIDEN_HI(f2)};
    vstats_store(MASKED, st->sums + j0, c, s1, s2, c - j0);
}

/* Adds acc[k] into dw[k0 + k], k < TB. */
ALWAYS_INLINE void wgrad_store(const int TB, const int MASKED, const mpq_dwk_taps *t, int k0,
                               int j0, vmask m, const vf *acc)
{
#pragma GCC unroll 12
    for (int k = 0; k < TB; k++) {
        float *o = t->dw[k0 + k] + j0;
        if (MASKED)
            VSTOREM(o, m, VADD(VLOADM(o, m), acc[k]));
        else
            VSTORE(o, VADD(VLOAD(o), acc[k]));
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
    wgrad_store(TB, MASKED, t, k0, j0, m, acc);
}

#if NREG == 32
/* Pixels ahead that the weight gradient's row walk prefetches its gradient and input columns:
 * one channel vector of each pixel, a line every in_ps floats, which the hardware prefetchers do
 * not follow (bench_dw, batch 32, Zen 4: 56x56x144 backward 21.2-22.1 -> 17.5-17.7 ms, 28x28x192
 * 6.9-7.4 -> 5.8-5.9; 8 pixels ahead gained half of that, 48 no more). */
#define WG_PF_PIXELS 24

/* NG ascending groups of 3 taps (a 3 x 3 kernel's rows at stride 1) from tap k0 of one channel
 * vector, summed over the pixels in order (the sums of wgrad_tile, bit for bit): each group keeps
 * a window of its 3 input columns in registers and loads one new column per pixel, prefetching
 * WG_PF_PIXELS ahead. */
ALWAYS_INLINE void wgrad_rows3(const int NG, const int MASKED, const mpq_dwk_taps *t,
                               const tap_group *gr, int pix, int j0, vmask m, const float *in,
                               ptrdiff_t in_ps, const float *g, ptrdiff_t g_ps)
{
    /* constant bounds (NG <= 3): arrays sized by NG are variable-length to the compiler, which
     * then kept them in memory, storing every accumulator and window vector at every pixel */
    vf acc[3 * 3], win[3][3];
    const float *ib[3];
#pragma GCC unroll 4
    for (int r = 0; r < NG; r++) {
        ib[r] = in + gr[r].base + j0;
#pragma GCC unroll 3
        for (int e = 0; e < 2; e++)
            win[r][e + 1] = MASKED ? VLOADM(ib[r] + e * in_ps, m) : VLOAD(ib[r] + e * in_ps);
#pragma GCC unroll 3
        for (int i = 0; i < 3; i++)
            acc[3 * r + i] = VZERO();
    }
    for (int p = 0; p < pix; p++) {
        const vf gv = MASKED ? VLOADM(g + p * g_ps + j0, m) : VLOAD(g + p * g_ps + j0);
        __builtin_prefetch(g + (p + WG_PF_PIXELS) * g_ps + j0);
#pragma GCC unroll 4
        for (int r = 0; r < NG; r++)
            __builtin_prefetch(ib[r] + (p + 2 + WG_PF_PIXELS) * in_ps);
#pragma GCC unroll 4
        for (int r = 0; r < NG; r++) {
            const float *c2 = ib[r] + (p + 2) * in_ps;
            win[r][0] = win[r][1];
            win[r][1] = win[r][2];
            win[r][2] = MASKED ? VLOADM(c2, m) : VLOAD(c2);
#pragma GCC unroll 3
            for (int i = 0; i < 3; i++)
                acc[3 * r + i] = VFMA(win[r][i], gv, acc[3 * r + i]);
        }
    }
    wgrad_store(3 * NG, MASKED, t, gr[0].k0, j0, m, acc);
}
#endif

/* Plain and masked (channel tail) instances: masked stores of full vectors are slow on Zen 5. */
#define FWD(P)                                                                                     \
    static void fwd_##P(const mpq_dwk_taps *t, const tap_group *gr, int ng, int j0, vmask m,       \
                        const float *in, ptrdiff_t in_ps, float *out, ptrdiff_t out_ps, int store, \
                        int c, const mpq_dwk_stats *st)                                            \
    {                                                                                              \
        fwd_tile(P, 0, t, gr, ng, j0, m, in, in_ps, out, out_ps, store, c, st);                    \
    }                                                                                              \
    static void fwdm_##P(const mpq_dwk_taps *t, const tap_group *gr, int ng, int j0, vmask m,      \
                         const float *in, ptrdiff_t in_ps, float *out, ptrdiff_t out_ps,           \
                         int store, int c, const mpq_dwk_stats *st)                                \
    {                                                                                              \
        fwd_tile(P, 1, t, gr, ng, j0, m, in, in_ps, out, out_ps, store, c, st);                    \
    }
#define WG(TB)                                                                                     \
    static void wg_##TB(const mpq_dwk_taps *t, int k0, int pix, int j0, vmask m, const float *in,  \
                        ptrdiff_t in_ps, const float *g, ptrdiff_t g_ps)                           \
    {                                                                                              \
        wgrad_tile(TB, 0, t, k0, pix, j0, m, in, in_ps, g, g_ps);                                  \
    }                                                                                              \
    static void wgm_##TB(const mpq_dwk_taps *t, int k0, int pix, int j0, vmask m, const float *in, \
                         ptrdiff_t in_ps, const float *g, ptrdiff_t g_ps)                          \
    {                                                                                              \
        wgrad_tile(TB, 1, t, k0, pix, j0, m, in, in_ps, g, g_ps);                                  \
    }
#define WG_ROWS3(NG)                                                                               \
    static void wgr3_##NG(const mpq_dwk_taps *t, const tap_group *gr, int pix, int j0, vmask m,    \
                          const float *in, ptrdiff_t in_ps, const float *g, ptrdiff_t g_ps)        \
    {                                                                                              \
        wgrad_rows3(NG, 0, t, gr, pix, j0, m, in, in_ps, g, g_ps);                                 \
    }                                                                                              \
    static void wgr3m_##NG(const mpq_dwk_taps *t, const tap_group *gr, int pix, int j0, vmask m,   \
                           const float *in, ptrdiff_t in_ps, const float *g, ptrdiff_t g_ps)       \
    {                                                                                              \
        wgrad_rows3(NG, 1, t, gr, pix, j0, m, in, in_ps, g, g_ps);                                 \
    }
/* The instances end in no semicolon, which clang-format would run together (and indent what
 * follows): the typedefs after them end the unformatted block. */
/* clang-format off */
FWD(1) FWD(2) FWD(3) FWD(4) FWD(5) FWD(6) FWD(7) FWD(8)
WG(1) WG(2) WG(3) WG(4) WG(5) WG(6) WG(7) WG(8) WG(9)
#if NREG == 32
FWD(9) FWD(10) FWD(11) FWD(12)
WG(10) WG(11) WG(12)
WG_ROWS3(1) WG_ROWS3(2) WG_ROWS3(3)
#endif
typedef void (*fwd_fn)(const mpq_dwk_taps *, const tap_group *, int, int, vmask, const float *,
                       ptrdiff_t, float *, ptrdiff_t, int, int, const mpq_dwk_stats *);
typedef void (*wg_fn)(const mpq_dwk_taps *, int, int, int, vmask, const float *, ptrdiff_t,
                      const float *, ptrdiff_t);
/* clang-format on */
static const fwd_fn fwd_tab[2][PMAX + 1] = {
    {NULL, fwd_1, fwd_2, fwd_3, fwd_4, fwd_5, fwd_6, fwd_7, fwd_8,
#if NREG == 32
     fwd_9, fwd_10, fwd_11, fwd_12
#endif
    },
    {NULL, fwdm_1, fwdm_2, fwdm_3, fwdm_4, fwdm_5, fwdm_6, fwdm_7, fwdm_8,
#if NREG == 32
     fwdm_9, fwdm_10, fwdm_11, fwdm_12
#endif
    },
};
static const wg_fn wg_tab[2][TBMAX + 1] = {
    {NULL, wg_1, wg_2, wg_3, wg_4, wg_5, wg_6, wg_7, wg_8, wg_9,
#if NREG == 32
     wg_10, wg_11, wg_12
#endif
    },
    {NULL, wgm_1, wgm_2, wgm_3, wgm_4, wgm_5, wgm_6, wgm_7, wgm_8, wgm_9,
#if NREG == 32
     wgm_10, wgm_11, wgm_12
#endif
    },
};

/* Prefetches the input vectors at channel j0 that the forward tile of np pixels at `in` reads:
 * each group's np + g - 1 columns. Inlined: GCC takes a function whose only effects are
 * prefetches for one without effects, and drops its calls. */
ALWAYS_INLINE void prefetch_tile(const tap_group *gr, int ng, int np, const float *in,
                                 ptrdiff_t in_ps, int j0)
{
    for (int k = 0; k < ng; k++)
        for (int q = 0; q < np + gr[k].g - 1; q++)
            __builtin_prefetch(in + gr[k].base + j0 + q * in_ps);
}

int mpq_dwk_tile_pixels(void) { return PMAX; }

int mpq_dwk_forward(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                    float *out, ptrdiff_t out_ps, int store, const mpq_dwk_stats *st,
                    mpq_dwk_ahead *ahead)
{
    tap_group gr[MPQ_DWK_MAX_TAPS];
    const int ng = group_taps(t, in_ps, gr);
    const int prefetch = store == MPQ_DWK_STREAM; /* the tensors do not fit the caches */
    if (store == MPQ_DWK_STREAM && (c % VW || out_ps % VW || !vec_aligned(out)))
        store = MPQ_DWK_WRITE;               /* streams whole aligned vectors only */
    for (int p0 = 0; p0 < pix; p0 += PMAX) { /* all channels of a tile: its inputs stay in L1 */
        const int np = pix - p0 < PMAX ? pix - p0 : PMAX;
        if (ahead) ahead_share(ahead);
        for (int j0 = 0; j0 < c; j0 += VW) {
            const int tail = c - j0 < VW;
            if (prefetch && p0 + PMAX < pix) {
                const int next = pix - p0 - PMAX < PMAX ? pix - p0 - PMAX : PMAX;
                prefetch_tile(gr, ng, next, in + (p0 + PMAX) * in_ps, in_ps, j0);
            }
            fwd_tab[tail][np](t, gr, ng, j0, VMASK(tail ? c - j0 : VW), in + p0 * in_ps, in_ps,
                              out + p0 * out_ps, out_ps, store, c, st);
        }
    }
    if (store != MPQ_DWK_STREAM) return 0;
    _mm_sfence(); /* the streamed outputs reach memory before any later read */
    return 1;
}

#if NREG == 32
typedef void (*wgr3_fn)(const mpq_dwk_taps *, const tap_group *, int, int, vmask, const float *,
                        ptrdiff_t, const float *, ptrdiff_t);
static const wgr3_fn wgr3_tab[2][4] = {{NULL, wgr3_1, wgr3_2, wgr3_3},
                                       {NULL, wgr3m_1, wgr3m_2, wgr3m_3}};

/* Whether the taps are whole ascending groups of 3 (up to 3 of them: a 3 x 3 kernel at stride 1
 * away from the borders); *ng their count. */
static int rows_of_3(const mpq_dwk_taps *t, ptrdiff_t in_ps, tap_group *gr, int *ng)
{
    if (t->n == 0 || t->n > 9) return 0;
    *ng = group_taps(t, in_ps, gr);
    for (int k = 0; k < *ng; k++)
        if (gr[k].g != 3 || gr[k].desc) return 0;
    return 1;
}
#endif

void mpq_dwk_wgrad(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                   const float *g, ptrdiff_t g_ps)
{
    if (pix < 1) return;
#if NREG == 32
    tap_group gr[MPQ_DWK_MAX_TAPS];
    int ng;
    if (rows_of_3(t, in_ps, gr, &ng)) {
        for (int j0 = 0; j0 < c; j0 += VW) {
            const int tail = c - j0 < VW;
            wgr3_tab[tail][ng](t, gr, pix, j0, VMASK(tail ? c - j0 : VW), in, in_ps, g, g_ps);
        }
        return;
    }
#endif
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

int mpq_dwk_tile_pixels(void) { return 8; }

int mpq_dwk_forward(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                    float *out, ptrdiff_t out_ps, int store, const mpq_dwk_stats *st,
                    mpq_dwk_ahead *ahead)
{
    mpq_dwk_forward_ref(t, pix, c, in, in_ps, out, out_ps, store, st);
    if (ahead) mpq_dwk_ahead_rest(ahead);
    return 0;
}

void mpq_dwk_wgrad(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                   const float *g, ptrdiff_t g_ps)
{
    mpq_dwk_wgrad_ref(t, pix, c, in, in_ps, g, g_ps);
}

#endif

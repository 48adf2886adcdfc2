/* Direct convolution kernels (see dconv.h). The fast kernels keep a tile of output vectors in
 * registers for the whole reduction: forward tiles are P pixels x J channel vectors (each step
 * loads J weight vectors and broadcasts P inputs), weight-gradient tiles are A input channels of
 * one tap x J gradient vectors (each pixel loads J gradient vectors and broadcasts A inputs).
 * Tiles are instantiated for constant (P|A, J) through an always-inlined body, so accumulators
 * stay in registers. Forward tiles store past the caches where the geometry asks (g->stream)
 * and prefetch the next tile's input where the hardware prefetchers lose it (PF_MIN_PS).
 * AVX-512 (32 registers, 16 floats) or AVX2+FMA (16 registers, 8 floats); other builds run the
 * scalar references. No allocation; single-threaded (callers split work). */
#include "kernels/dconv.h"

#include <string.h>

#include "kernels/simd.h"

/* Offsets of row q (image q / rows, row q % rows) in the input and the output. */
static inline ptrdiff_t in_row(const mpq_dconv_geom *g, int q)
{
    return q < g->rows ? q * g->in_rs : (q / g->rows) * g->in_is + (q % g->rows) * g->in_rs;
}

static inline ptrdiff_t out_row(const mpq_dconv_geom *g, int q)
{
    return q < g->rows ? q * g->out_rs : (q / g->rows) * g->out_is + (q % g->rows) * g->out_rs;
}

static inline int all_rows(const mpq_dconv_geom *g)
{
    return (g->imgs > 1 ? g->imgs : 1) * g->rows;
}

/* Whether tap t reads input at row r of the block (the clip table's row range). */
static inline int tap_row_reads(const mpq_dconv_geom *g, int t, int r)
{
    if (!g->clip) return 1;
    const int ir = g->row0 + r % g->rows;
    return ir >= g->clip[4 * t] && ir < g->clip[4 * t + 1];
}

/* The pixels [*p0, *p1) at which tap t reads input. */
static inline void tap_pixels(const mpq_dconv_geom *g, int t, int *p0, int *p1)
{
    *p0 = g->clip && g->clip[4 * t + 2] > 0 ? g->clip[4 * t + 2] : 0;
    *p1 = g->clip && g->clip[4 * t + 3] < g->pix ? g->clip[4 * t + 3] : g->pix;
}

void mpq_dconv_forward_ref(const mpq_dconv_geom *g, const float *in, const float *w, float *out,
                           int accumulate)
{
    for (int r = 0; r < all_rows(g); r++)
        for (int p = 0; p < g->pix; p++) {
            float *op = out + out_row(g, r) + p * g->out_ps;
            for (int j = 0; j < g->nv; j++) {
                float acc = accumulate ? op[j] : 0.0f;
                for (int t = 0; t < g->n_taps; t++) {
                    int p0, p1;
                    tap_pixels(g, t, &p0, &p1);
                    if (!tap_row_reads(g, t, r) || p < p0 || p >= p1) continue;
                    const float *ip = in + (in_row(g, r) + p * g->in_ps + g->off[t]);
                    for (int k = 0; k < g->c; k++)
                        acc += ip[k] * w[((size_t)t * g->c + k) * g->nv + j];
                }
                op[j] = acc;
                if (g->sums) {
                    double *rs = g->sums + (size_t)r * 2 * g->nv;
                    const double d = (double)(acc - g->shift[j]);
                    rs[j] += d;
                    rs[g->nv + j] += d * d;
                }
            }
        }
}

void mpq_dconv_wgrad_ref(const mpq_dconv_geom *g, const float *in, const float *gy, float *dwt)
{
    for (int t = 0; t < g->n_taps; t++) {
        int p0, p1;
        tap_pixels(g, t, &p0, &p1);
        for (int k = 0; k < g->c; k++)
            for (int j = 0; j < g->nv; j++) {
                float acc = 0.0f;
                for (int r = 0; r < all_rows(g); r++)
                    for (int p = p0; p < p1 && tap_row_reads(g, t, r); p++)
                        acc += in[in_row(g, r) + p * g->in_ps + g->off[t] + k] *
                               gy[out_row(g, r) + p * g->out_ps + j];
                dwt[((size_t)t * g->c + k) * g->nv + j] += acc;
            }
    }
}

#ifdef VW

int mpq_dconv_vec(void) { return VW; }

/* Largest channel tile of the weight gradient for J vectors: A*J accumulators plus J vectors of
 * the shared operand, and one spare register for broadcasts. Forward tiles are at most
 * FWD_PMAX pixels x FWD_JMAX vectors: each pixel of a tile needs its own broadcast address, and
 * longer tiles run out of general-purpose registers, while short ones reload weights too often
 * (measured on Zen 5: 8 x 2 beats 16 x 1 by 20% on 32x32x16 layers and 4 x 4 by 35% on 8x8x64;
 * a reduction slice of FWD_KBLOCK_BYTES of weights stays in L1 across all tiles of a block). */
#if NREG == 32
#define PMAX1 16
#define PMAX2 12
#define PMAX3 8
#define PMAX4 6
#else
#define PMAX1 8
#define PMAX2 6
#define PMAX3 3
#define PMAX4 2
#endif
#define JMAX 4
#define FWD_PMAX 8
#define FWD_JMAX 2
#define FWD_KBLOCK_BYTES (24 * 1024)
/* The reduction channel count whose forward tiles are also compiled with the tap's channel loop
 * unrolled (16: CIFAR ResNets' first stage, where a tap's 16 steps left the loop's pointer
 * updates and per-tap setup a third of the time). */
#define FWD_KC 16
static const int pmax_of[JMAX + 1] = {0, PMAX1, PMAX2, PMAX3, PMAX4};

/* The slice of the reduction one pass of forward tiles covers: taps [t0, t1), channels [k0, k1)
 * of each; with prefetch, each tile also prefetches the slice's input of the tile after it. */
typedef struct kblock {
    int t0, t1, k0, k1;
    int prefetch;
} kblock;

/* Software prefetch of the next tile's input (measured on Zen 4, bench_conv, batch 32): the
 * hardware prefetchers lose track of a tile's interleaved pixel streams when each pixel spans
 * several lines and the input comes from memory once: 1x1 layers over 64+ channels with few
 * outputs (56x56 144->24 forward 14.2-15.0 -> 9.1 ms, 28x28 192->32 3.3-4.2 -> 3.0) and strided
 * layers (56x56 64->128 3x3 stride 2: 41 -> 36 ms); slower where a stride-1 kernel's taps or a
 * previous vector block already brought the input into cache (3x3 stride 1: +3-5%), and on
 * narrow pixels (32->16: +35%), so only the first vector block of such calls prefetches. */
#define PF_MIN_PS 64 /* floats between a tile's pixels */
#define LINE_FLOATS 16

/* Prefetches, at reduction step i of a pass over nk channels, line i / P of pixel i % P of the
 * next tile's input slice (nx: its first pixel at the slice's first channel): every line of
 * the slice over the pass's first P * lines steps. */
ALWAYS_INLINE void prefetch_next(const int P, const float *nx, ptrdiff_t ps, int i, int nk)
{
    const int line = i / P;
    if (line * LINE_FLOATS < nk) __builtin_prefetch(nx + (i % P) * ps + line * LINE_FLOATS);
}

/* One reduction step of a forward tile: acc[p][j] += input of pixel p x the J weight vectors at
 * wk; pixel p's input is it[p * ps] (src NULL) or src[p][k]. */
ALWAYS_INLINE void fwd_step(const int P, const int J, const int MASKED, vf acc[][FWD_JMAX],
                            const float *wk, const float *it, ptrdiff_t ps, const float *const *src,
                            int k, vmask last)
{
    vf wv[FWD_JMAX];
#pragma GCC unroll 4
    for (int j = 0; j < J; j++)
        wv[j] = j < J - 1 || !MASKED ? VLOAD(wk + j * VW) : VLOADM(wk + j * VW, last);
#pragma GCC unroll 16
    for (int p = 0; p < P; p++) {
        const vf b = VBCAST(src ? src[p][k] : it[p * ps]);
#pragma GCC unroll 4
        for (int j = 0; j < J; j++)
            acc[p][j] = VFMA(b, wv[j], acc[p][j]);
    }
}

/* What a forward tile adds to its row's statistics (mpq_dconv_geom): the sums of its `width`
 * channels, at sums and sums + nv, and their shifts. */
typedef struct tile_stats {
    double *sums;
    const float *shift;
    int width, nv;
} tile_stats;

/* Adds the statistics of a tile's outputs (acc, P x J vectors; the masked lanes of the last are
 * zero, their shifts too) into its row's sums: per vector, the sums over the P pixels of
 * d = out - shift and d * d in double registers, added to memory once. */
ALWAYS_INLINE void fwd_tile_stats(const int P, const int J, const int MASKED, vf acc[][FWD_JMAX],
                                  const tile_stats *st, vmask last)
{
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) {
        const int part = MASKED && j == J - 1;
        const vf sh = part ? VLOADM(st->shift + j * VW, last) : VLOAD(st->shift + j * VW);
        vd s1[2] = {VDZERO(), VDZERO()}, s2[2] = {VDZERO(), VDZERO()};
#pragma GCC unroll 16
        for (int p = 0; p < P; p++)
            vstats_add(acc[p][j], sh, s1, s2);
        const int n = st->width - j * VW;
        if (part)
            vstats_store(1, st->sums + j * VW, st->nv, s1, s2, n);
        else
            vstats_store(0, st->sums + j * VW, st->nv, s1, s2, n);
    }
}

/* How a forward tile stores its outputs: over them, added to them, or over them past the caches
 * (every vector of the tile aligned, none masked). */
enum { STORE_WRITE, STORE_ADD, STORE_STREAM };

/* P pixels x J vectors of one output row (at pixel stride out_ps), over the reduction slice kb;
 * the tile's first pixel is p0 of row ir of its image (for the clip table), its input starts at
 * in. The last vector covers the lanes of `last` only (channel tails). Each pixel's input comes
 * through its own pointer, which is g->zeros where the tap reads no input. */
ALWAYS_INLINE void fwd_tile(const int P, const int J, const int MASKED, const int KC,
                            const mpq_dconv_geom *g, const kblock *kb, int ir, int p0,
                            const float *in, const float *w, float *out, int store, vmask last,
                            const tile_stats *st)
{
    vf acc[FWD_PMAX][FWD_JMAX];
    const ptrdiff_t ps = g->in_ps, ops = g->out_ps;
    const int c = g->c, nv = g->nv;
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int j = 0; j < J; j++)
            acc[p][j] = VZERO();
    for (int t = kb->t0; t < kb->t1; t++) {
        int lo = 0, hi = P; /* the tile's pixels that read input */
        if (g->clip) {
            const int *cl = g->clip + 4 * t;
            if (ir < cl[0] || ir >= cl[1] || cl[3] <= p0 || cl[2] >= p0 + P) continue;
            lo = cl[2] - p0;
            hi = cl[3] - p0;
        }
        const float *wt = w + (size_t)t * c * nv;
        if (lo <= 0 && hi >= P) { /* every pixel reads input: one stride */
            const float *it = in + g->off[t];
            if (KC) { /* the whole tap unrolled, nv == J vectors: constant offsets only */
                const float *ip[FWD_PMAX];
#pragma GCC unroll 16
                for (int p = 0; p < P; p++)
                    ip[p] = it + p * ps;
#pragma GCC unroll 32
                for (int k = 0; k < KC; k++)
                    fwd_step(P, J, MASKED, acc, wt + (size_t)k * J * VW, NULL, 0, ip, k, last);
            } else {
                const int nk = kb->k1 - kb->k0;
                for (int k = kb->k0; k < kb->k1; k++) {
                    if (kb->prefetch) prefetch_next(P, it + P * ps + kb->k0, ps, k - kb->k0, nk);
                    fwd_step(P, J, MASKED, acc, wt + (size_t)k * nv, it + k, ps, NULL, k, last);
                }
            }
        } else {
            const float *src[FWD_PMAX];
#pragma GCC unroll 16
            for (int p = 0; p < P; p++)
                src[p] = p >= lo && p < hi ? in + (g->off[t] + p * ps) : g->zeros;
            for (int k = kb->k0; k < kb->k1; k++)
                fwd_step(P, J, MASKED, acc, wt + (size_t)k * nv, NULL, 0, src, k, last);
        }
    }
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) { /* acc becomes the stored output */
            float *o = out + p * ops + j * VW;
            if (j < J - 1 || !MASKED) {
                if (store == STORE_ADD) acc[p][j] = VADD(VLOAD(o), acc[p][j]);
                if (store == STORE_STREAM)
                    VSTREAM(o, acc[p][j]);
                else
                    VSTORE(o, acc[p][j]);
            } else {
                if (store == STORE_ADD) acc[p][j] = VADD(VLOADM(o, last), acc[p][j]);
                VSTOREM(o, last, acc[p][j]);
            }
        }
    if (st) fwd_tile_stats(P, J, MASKED, acc, st, last);
}

/* A channels (k0 .. k0+A of tap t: in is the block's input at channel k0) x J gradient vectors,
 * summed over the pixels of the block at which tap t reads input; the last vector covers the
 * lanes of `last` only. */
ALWAYS_INLINE void wgrad_tile(const int A, const int J, const int MASKED, const mpq_dconv_geom *g,
                              int t, const float *in, const float *gy, float *dwt, vmask last)
{
    vf acc[PMAX1][JMAX];
    int p0, p1;
    tap_pixels(g, t, &p0, &p1);
#pragma GCC unroll 16
    for (int a = 0; a < A; a++)
#pragma GCC unroll 4
        for (int j = 0; j < J; j++)
            acc[a][j] = VZERO();
    for (int r = 0; r < all_rows(g); r++) {
        if (!tap_row_reads(g, t, r)) continue;
        const float *ir = in + (in_row(g, r) + g->off[t]);
        const float *gr = gy + out_row(g, r);
        for (int p = p0; p < p1; p++) {
            const float *ip = ir + p * g->in_ps, *gp = gr + p * g->out_ps;
            vf gv[JMAX];
#pragma GCC unroll 4
            for (int j = 0; j < J; j++)
                gv[j] = j < J - 1 || !MASKED ? VLOAD(gp + j * VW) : VLOADM(gp + j * VW, last);
#pragma GCC unroll 16
            for (int a = 0; a < A; a++) {
                const vf b = VBCAST(ip[a]);
#pragma GCC unroll 4
                for (int j = 0; j < J; j++)
                    acc[a][j] = VFMA(b, gv[j], acc[a][j]);
            }
        }
    }
#pragma GCC unroll 16
    for (int a = 0; a < A; a++)
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) {
            float *o = dwt + (size_t)a * g->nv + j * VW;
            if (j < J - 1 || !MASKED)
                VSTORE(o, VADD(VLOAD(o), acc[a][j]));
            else
                VSTOREM(o, last, VADD(VLOADM(o, last), acc[a][j]));
        }
}

typedef void (*fwd_fn)(const mpq_dconv_geom *, const kblock *, int, int, const float *,
                       const float *, float *, int, vmask, const tile_stats *);
typedef void (*wgrad_fn)(const mpq_dconv_geom *, int, const float *, const float *, float *, vmask);

/* One function per tile shape: fwd_P_J (P pixels) and wg_A_J (A channels), each in a plain and
 * a masked (channel tail) version: masked stores of full vectors are slow on Zen 5. */
#define FWD(P, J)                                                                                  \
    static void fwd_##P##_##J(const mpq_dconv_geom *g, const kblock *kb, int ir, int p0,           \
                              const float *in, const float *w, float *out, int store, vmask last,  \
                              const tile_stats *st)                                                \
    {                                                                                              \
        fwd_tile(P, J, 0, 0, g, kb, ir, p0, in, w, out, store, last, st);                          \
    }                                                                                              \
    static void fwdm_##P##_##J(const mpq_dconv_geom *g, const kblock *kb, int ir, int p0,          \
                               const float *in, const float *w, float *out, int store, vmask last, \
                               const tile_stats *st)                                               \
    {                                                                                              \
        fwd_tile(P, J, 1, 0, g, kb, ir, p0, in, w, out, store, last, st);                          \
    }                                                                                              \
    static void fwdc_##P##_##J(const mpq_dconv_geom *g, const kblock *kb, int ir, int p0,          \
                               const float *in, const float *w, float *out, int store, vmask last, \
                               const tile_stats *st)                                               \
    {                                                                                              \
        fwd_tile(P, J, 0, FWD_KC, g, kb, ir, p0, in, w, out, store, last, st);                     \
    }
#define WG(A, J)                                                                                   \
    static void wg_##A##_##J(const mpq_dconv_geom *g, int t, const float *in, const float *gy,     \
                             float *dwt, vmask last)                                               \
    {                                                                                              \
        wgrad_tile(A, J, 0, g, t, in, gy, dwt, last);                                              \
    }                                                                                              \
    static void wgm_##A##_##J(const mpq_dconv_geom *g, int t, const float *in, const float *gy,    \
                              float *dwt, vmask last)                                              \
    {                                                                                              \
        wgrad_tile(A, J, 1, g, t, in, gy, dwt, last);                                              \
    }
#define FWD_J(J) FWD(1, J) FWD(2, J) FWD(3, J) FWD(4, J) FWD(5, J) FWD(6, J)
#define WG_6(J) WG(1, J) WG(2, J) WG(3, J) WG(4, J) WG(5, J) WG(6, J)
/* clang-format off: the instances end in no semicolon, which clang-format would run together */
FWD_J(1)
FWD_J(2)
WG_6(1)
WG_6(2)
FWD(7, 1)
FWD(8, 1)
WG(7, 1)
WG(8, 1)
#if NREG == 32
FWD(7, 2)
FWD(8, 2)
WG_6(3)
WG_6(4)
WG(7, 2)
WG(8, 2)
WG(9, 2)
WG(10, 2)
WG(11, 2)
WG(12, 2)
WG(7, 3)
WG(8, 3)
WG(9, 1)
WG(10, 1)
WG(11, 1)
WG(12, 1)
WG(13, 1)
WG(14, 1)
WG(15, 1)
WG(16, 1)
/* clang-format on */
static const wgrad_fn wg_tab[2][JMAX + 1][PMAX1 + 1] = {
    {
        {NULL},
        {NULL, wg_1_1, wg_2_1, wg_3_1, wg_4_1, wg_5_1, wg_6_1, wg_7_1, wg_8_1, wg_9_1, wg_10_1,
         wg_11_1, wg_12_1, wg_13_1, wg_14_1, wg_15_1, wg_16_1},
        {NULL, wg_1_2, wg_2_2, wg_3_2, wg_4_2, wg_5_2, wg_6_2, wg_7_2, wg_8_2, wg_9_2, wg_10_2,
         wg_11_2, wg_12_2},
        {NULL, wg_1_3, wg_2_3, wg_3_3, wg_4_3, wg_5_3, wg_6_3, wg_7_3, wg_8_3},
        {NULL, wg_1_4, wg_2_4, wg_3_4, wg_4_4, wg_5_4, wg_6_4},
    },
    {
        {NULL},
        {NULL, wgm_1_1, wgm_2_1, wgm_3_1, wgm_4_1, wgm_5_1, wgm_6_1, wgm_7_1, wgm_8_1, wgm_9_1,
         wgm_10_1, wgm_11_1, wgm_12_1, wgm_13_1, wgm_14_1, wgm_15_1, wgm_16_1},
        {NULL, wgm_1_2, wgm_2_2, wgm_3_2, wgm_4_2, wgm_5_2, wgm_6_2, wgm_7_2, wgm_8_2, wgm_9_2,
         wgm_10_2, wgm_11_2, wgm_12_2},
        {NULL, wgm_1_3, wgm_2_3, wgm_3_3, wgm_4_3, wgm_5_3, wgm_6_3, wgm_7_3, wgm_8_3},
        {NULL, wgm_1_4, wgm_2_4, wgm_3_4, wgm_4_4, wgm_5_4, wgm_6_4},
    },
};
#else
/* clang-format off */
WG(1, 3)
WG(2, 3)
WG(3, 3)
WG(1, 4)
WG(2, 4)
/* clang-format on */
static const wgrad_fn wg_tab[2][JMAX + 1][PMAX1 + 1] = {
    {
        {NULL},
        {NULL, wg_1_1, wg_2_1, wg_3_1, wg_4_1, wg_5_1, wg_6_1, wg_7_1, wg_8_1},
        {NULL, wg_1_2, wg_2_2, wg_3_2, wg_4_2, wg_5_2, wg_6_2},
        {NULL, wg_1_3, wg_2_3, wg_3_3},
        {NULL, wg_1_4, wg_2_4},
    },
    {
        {NULL},
        {NULL, wgm_1_1, wgm_2_1, wgm_3_1, wgm_4_1, wgm_5_1, wgm_6_1, wgm_7_1, wgm_8_1},
        {NULL, wgm_1_2, wgm_2_2, wgm_3_2, wgm_4_2, wgm_5_2, wgm_6_2},
        {NULL, wgm_1_3, wgm_2_3, wgm_3_3},
        {NULL, wgm_1_4, wgm_2_4},
    },
};
#endif
/* The forward tiles by J and P (one vector: up to 8 pixels; two: up to 8 with 32 registers, 6
 * with 16), plain, masked and with the unrolled 16-channel taps. */
#define FWD_ROW1(F)                                                                                \
    {                                                                                              \
        NULL, F##_1_1, F##_2_1, F##_3_1, F##_4_1, F##_5_1, F##_6_1, F##_7_1, F##_8_1               \
    }
#if NREG == 32
#define FWD_ROW2(F)                                                                                \
    {                                                                                              \
        NULL, F##_1_2, F##_2_2, F##_3_2, F##_4_2, F##_5_2, F##_6_2, F##_7_2, F##_8_2               \
    }
#else
#define FWD_ROW2(F)                                                                                \
    {                                                                                              \
        NULL, F##_1_2, F##_2_2, F##_3_2, F##_4_2, F##_5_2, F##_6_2                                 \
    }
#endif
static const fwd_fn fwd_tab[2][FWD_JMAX + 1][FWD_PMAX + 1] = {
    {{NULL}, FWD_ROW1(fwd), FWD_ROW2(fwd)},
    {{NULL}, FWD_ROW1(fwdm), FWD_ROW2(fwdm)},
};
static const fwd_fn fwdc_tab[FWD_JMAX + 1][FWD_PMAX + 1] = {{NULL}, FWD_ROW1(fwdc), FWD_ROW2(fwdc)};

/* Splits n into the fewest tiles of at most pmax, of balanced sizes: returns the tile size
 * (the last tile may be smaller). */
static int tile_size(int n, int pmax)
{
    const int tiles = (n + pmax - 1) / pmax;
    return (n + tiles - 1) / tiles;
}

/* Vector blocks: nvec vectors cover nv channels; the last one has `rem` lanes. */
static vmask block_mask(int j0, int J, int nvec, int rem)
{
    return VMASK(j0 + J == nvec ? rem : VW);
}

int mpq_dconv_forward(const mpq_dconv_geom *g, const float *in, const float *w, float *out,
                      int accumulate)
{
    const int nvec = (g->nv + VW - 1) / VW, rem = g->nv - (nvec - 1) * VW;
    const int prefetch = g->in_ps >= PF_MIN_PS && (g->n_taps == 1 || g->in_ps > g->c);
    int streamed = 0;
    for (int j0 = 0; j0 < nvec; j0 += FWD_JMAX) {
        const int J = nvec - j0 < FWD_JMAX ? nvec - j0 : FWD_JMAX;
        const int P = tile_size(g->pix, pmax_of[J] < FWD_PMAX ? pmax_of[J] : FWD_PMAX);
        const vmask last = block_mask(j0, J, nvec, rem);
        const int masked = j0 + J == nvec && rem < VW;
        /* reduction slices whose weights (J vectors per step) stay in L1 across the block */
        const int steps = FWD_KBLOCK_BYTES / (J * VW * (int)sizeof(float));
        const int taps = g->c <= steps ? steps / g->c : 1;
        const int kstep = g->c <= steps ? g->c : tile_size(g->c, steps);
        for (int t0 = 0; t0 < g->n_taps || t0 == 0; t0 += taps)
            for (int k0 = 0; k0 < g->c || k0 == 0; k0 += kstep) {
                const kblock kb = {t0, t0 + taps < g->n_taps ? t0 + taps : g->n_taps, k0,
                                   k0 + kstep < g->c ? k0 + kstep : g->c, prefetch && j0 == 0};
                const int acc = accumulate || t0 > 0 || k0 > 0;
                const int final = kb.t1 == g->n_taps && kb.k1 == g->c;
                /* streaming: whole outputs written once, every vector aligned and unmasked */
                const int stream = g->stream && final && !acc && !masked && g->out_ps % VW == 0;
                const fwd_fn *tab = g->nv == J * VW && g->c == FWD_KC && kb.k1 - kb.k0 == FWD_KC
                                        ? fwdc_tab[J]
                                        : fwd_tab[masked][J];
                for (int r = 0; r < all_rows(g); r++) {
                    const ptrdiff_t ir = in_row(g, r);
                    float *orow = out + out_row(g, r) + j0 * VW;
                    const int store =
                        !acc ? stream && vec_aligned(orow) ? STORE_STREAM : STORE_WRITE : STORE_ADD;
                    streamed |= store == STORE_STREAM;
                    const tile_stats st = {
                        g->sums ? g->sums + (size_t)r * 2 * g->nv + j0 * VW : NULL,
                        g->shift + j0 * VW, masked ? (J - 1) * VW + rem : J * VW, g->nv};
                    for (int p0 = 0; p0 < g->pix; p0 += P) {
                        const int np = g->pix - p0 < P ? g->pix - p0 : P;
                        tab[np](g, &kb, g->row0 + r % g->rows, p0, in + (ir + p0 * g->in_ps),
                                w + j0 * VW, orow + p0 * g->out_ps, store, last,
                                final && g->sums ? &st : NULL);
                    }
                }
            }
    }
    if (streamed) _mm_sfence(); /* the streamed outputs reach memory before any later read */
    return streamed;
}

void mpq_dconv_wgrad(const mpq_dconv_geom *g, const float *in, const float *gy, float *dwt)
{
    const int nvec = (g->nv + VW - 1) / VW, rem = g->nv - (nvec - 1) * VW;
    for (int j0 = 0; j0 < nvec; j0 += JMAX) {
        const int J = nvec - j0 < JMAX ? nvec - j0 : JMAX;
        const int A = tile_size(g->c, pmax_of[J]);
        const vmask last = block_mask(j0, J, nvec, rem);
        const int masked = j0 + J == nvec && rem < VW;
        for (int t = 0; t < g->n_taps; t++)
            for (int k0 = 0; k0 < g->c; k0 += A) {
                const int na = g->c - k0 < A ? g->c - k0 : A;
                wg_tab[masked][J][na](g, t, in + k0, gy + j0 * VW,
                                      dwt + ((size_t)t * g->c + k0) * g->nv + j0 * VW, last);
            }
    }
}

#else /* no SIMD kernels in this build */

int mpq_dconv_vec(void) { return 0; }

int mpq_dconv_forward(const mpq_dconv_geom *g, const float *in, const float *w, float *out,
                      int accumulate)
{
    mpq_dconv_forward_ref(g, in, w, out, accumulate);
    return 0;
}

void mpq_dconv_wgrad(const mpq_dconv_geom *g, const float *in, const float *gy, float *dwt)
{
    mpq_dconv_wgrad_ref(g, in, gy, dwt);
}

#endif

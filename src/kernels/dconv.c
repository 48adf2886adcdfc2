/* Direct convolution kernels (see dconv.h). The fast kernels keep a tile of output vectors in
 * registers for the whole reduction: forward tiles are P pixels x J channel vectors (each step
 * loads J weight vectors and broadcasts P inputs), weight-gradient tiles are A input channels of
 * one tap x J gradient vectors (each pixel loads J gradient vectors and broadcasts A inputs).
 * Tiles are instantiated for constant (P|A, J) through an always-inlined body, so accumulators
 * stay in registers. AVX-512 (32 registers, 16 floats) or AVX2+FMA (16 registers, 8 floats);
 * other builds run the scalar references. No allocation; single-threaded (callers split work). */
#include "kernels/dconv.h"

#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define VW 16
#define NREG 32
typedef __m512 vf;
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VBCAST(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm512_add_ps((a), (b))
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VW 8
#define NREG 16
typedef __m256 vf;
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VBCAST(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm256_add_ps((a), (b))
#endif

void mpq_dconv_forward_ref(const mpq_dconv_geom *g, const float *in, const float *w, float *out,
                           int accumulate)
{
    for (int r = 0; r < g->rows; r++)
        for (int p = 0; p < g->pix; p++) {
            const float *ip = in + r * g->in_rs + p * g->in_ps;
            float *op = out + r * g->out_rs + p * g->out_ps;
            for (int j = 0; j < g->nv; j++) {
                float acc = accumulate ? op[j] : 0.0f;
                for (int t = 0; t < g->n_taps; t++)
                    for (int k = 0; k < g->c; k++)
                        acc += ip[g->off[t] + k] * w[((size_t)t * g->c + k) * g->nv + j];
                op[j] = acc;
            }
        }
}

void mpq_dconv_wgrad_ref(const mpq_dconv_geom *g, const float *in, const float *gy, float *dwt)
{
    for (int t = 0; t < g->n_taps; t++)
        for (int k = 0; k < g->c; k++)
            for (int j = 0; j < g->nv; j++) {
                float acc = 0.0f;
                for (int r = 0; r < g->rows; r++)
                    for (int p = 0; p < g->pix; p++)
                        acc += in[r * g->in_rs + p * g->in_ps + g->off[t] + k] *
                               gy[r * g->out_rs + p * g->out_ps + j];
                dwt[((size_t)t * g->c + k) * g->nv + j] += acc;
            }
}

#ifdef VW

int mpq_dconv_vec(void) { return VW; }

/* Largest pixel (forward) or channel (weight gradient) tile for J vectors: P*J accumulators plus
 * J vectors of the shared operand, and one spare register for broadcasts. */
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
static const int pmax_of[JMAX + 1] = {0, PMAX1, PMAX2, PMAX3, PMAX4};

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* P pixels x J vectors of one output row: out (row stride ignored) at pixel stride ops. */
ALWAYS_INLINE void fwd_tile(const int P, const int J, const mpq_dconv_geom *g, const float *in,
                            const float *w, float *out, int accumulate)
{
    vf acc[PMAX1][JMAX];
    const ptrdiff_t ps = g->in_ps, ops = g->out_ps;
    const int c = g->c, nv = g->nv;
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int j = 0; j < J; j++)
            acc[p][j] = VZERO();
    for (int t = 0; t < g->n_taps; t++) {
        const float *it = in + g->off[t];
        const float *wt = w + (size_t)t * c * nv;
        for (int k = 0; k < c; k++) {
            vf wv[JMAX];
#pragma GCC unroll 4
            for (int j = 0; j < J; j++)
                wv[j] = VLOAD(wt + (size_t)k * nv + j * VW);
#pragma GCC unroll 16
            for (int p = 0; p < P; p++) {
                const vf b = VBCAST(it[p * ps + k]);
#pragma GCC unroll 4
                for (int j = 0; j < J; j++)
                    acc[p][j] = VFMA(b, wv[j], acc[p][j]);
            }
        }
    }
#pragma GCC unroll 16
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) {
            float *o = out + p * ops + j * VW;
            VSTORE(o, accumulate ? VADD(VLOAD(o), acc[p][j]) : acc[p][j]);
        }
}

/* A channels (k0 .. k0+A of tap t) x J gradient vectors, summed over the block's pixels. */
ALWAYS_INLINE void wgrad_tile(const int A, const int J, const mpq_dconv_geom *g, const float *in,
                              const float *gy, float *dwt)
{
    vf acc[PMAX1][JMAX];
#pragma GCC unroll 16
    for (int a = 0; a < A; a++)
#pragma GCC unroll 4
        for (int j = 0; j < J; j++)
            acc[a][j] = VZERO();
    for (int r = 0; r < g->rows; r++) {
        const float *ir = in + r * g->in_rs;
        const float *gr = gy + r * g->out_rs;
        for (int p = 0; p < g->pix; p++) {
            const float *ip = ir + p * g->in_ps, *gp = gr + p * g->out_ps;
            vf gv[JMAX];
#pragma GCC unroll 4
            for (int j = 0; j < J; j++)
                gv[j] = VLOAD(gp + j * VW);
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
            VSTORE(o, VADD(VLOAD(o), acc[a][j]));
        }
}

typedef void (*fwd_fn)(const mpq_dconv_geom *, const float *, const float *, float *, int);
typedef void (*wgrad_fn)(const mpq_dconv_geom *, const float *, const float *, float *);

/* One function per tile shape (P or A, J): fwd_P_J and wg_P_J. */
#define TILE(P, J)                                                                                \
    static void fwd_##P##_##J(const mpq_dconv_geom *g, const float *in, const float *w,          \
                              float *out, int accumulate)                                          \
    {                                                                                              \
        fwd_tile(P, J, g, in, w, out, accumulate);                                                 \
    }                                                                                              \
    static void wg_##P##_##J(const mpq_dconv_geom *g, const float *in, const float *gy,           \
                             float *dwt)                                                           \
    {                                                                                              \
        wgrad_tile(P, J, g, in, gy, dwt);                                                          \
    }
#define TILES_J(J) TILE(1, J) TILE(2, J)
TILES_J(1)
TILES_J(2)
TILES_J(3)
TILES_J(4)
#define TILES_3_6(J) TILE(3, J) TILE(4, J) TILE(5, J) TILE(6, J)
#if PMAX4 >= 6
TILES_3_6(1)
TILES_3_6(2)
TILES_3_6(3)
TILES_3_6(4)
TILE(7, 1) TILE(8, 1) TILE(7, 2) TILE(8, 2) TILE(7, 3) TILE(8, 3)
TILE(9, 1) TILE(10, 1) TILE(11, 1) TILE(12, 1) TILE(13, 1) TILE(14, 1) TILE(15, 1) TILE(16, 1)
TILE(9, 2) TILE(10, 2) TILE(11, 2) TILE(12, 2)
static const fwd_fn fwd_tab[JMAX + 1][PMAX1 + 1] = {
    {NULL},
    {NULL, fwd_1_1, fwd_2_1, fwd_3_1, fwd_4_1, fwd_5_1, fwd_6_1, fwd_7_1, fwd_8_1, fwd_9_1,
     fwd_10_1, fwd_11_1, fwd_12_1, fwd_13_1, fwd_14_1, fwd_15_1, fwd_16_1},
    {NULL, fwd_1_2, fwd_2_2, fwd_3_2, fwd_4_2, fwd_5_2, fwd_6_2, fwd_7_2, fwd_8_2, fwd_9_2,
     fwd_10_2, fwd_11_2, fwd_12_2},
    {NULL, fwd_1_3, fwd_2_3, fwd_3_3, fwd_4_3, fwd_5_3, fwd_6_3, fwd_7_3, fwd_8_3},
    {NULL, fwd_1_4, fwd_2_4, fwd_3_4, fwd_4_4, fwd_5_4, fwd_6_4},
};
static const wgrad_fn wg_tab[JMAX + 1][PMAX1 + 1] = {
    {NULL},
    {NULL, wg_1_1, wg_2_1, wg_3_1, wg_4_1, wg_5_1, wg_6_1, wg_7_1, wg_8_1, wg_9_1, wg_10_1,
     wg_11_1, wg_12_1, wg_13_1, wg_14_1, wg_15_1, wg_16_1},
    {NULL, wg_1_2, wg_2_2, wg_3_2, wg_4_2, wg_5_2, wg_6_2, wg_7_2, wg_8_2, wg_9_2, wg_10_2,
     wg_11_2, wg_12_2},
    {NULL, wg_1_3, wg_2_3, wg_3_3, wg_4_3, wg_5_3, wg_6_3, wg_7_3, wg_8_3},
    {NULL, wg_1_4, wg_2_4, wg_3_4, wg_4_4, wg_5_4, wg_6_4},
};
#else
TILE(3, 1) TILE(4, 1) TILE(5, 1) TILE(6, 1) TILE(7, 1) TILE(8, 1)
TILE(3, 2) TILE(4, 2) TILE(5, 2) TILE(6, 2) TILE(3, 3)
static const fwd_fn fwd_tab[JMAX + 1][PMAX1 + 1] = {
    {NULL},
    {NULL, fwd_1_1, fwd_2_1, fwd_3_1, fwd_4_1, fwd_5_1, fwd_6_1, fwd_7_1, fwd_8_1},
    {NULL, fwd_1_2, fwd_2_2, fwd_3_2, fwd_4_2, fwd_5_2, fwd_6_2},
    {NULL, fwd_1_3, fwd_2_3, fwd_3_3},
    {NULL, fwd_1_4, fwd_2_4},
};
static const wgrad_fn wg_tab[JMAX + 1][PMAX1 + 1] = {
    {NULL},
    {NULL, wg_1_1, wg_2_1, wg_3_1, wg_4_1, wg_5_1, wg_6_1, wg_7_1, wg_8_1},
    {NULL, wg_1_2, wg_2_2, wg_3_2, wg_4_2, wg_5_2, wg_6_2},
    {NULL, wg_1_3, wg_2_3, wg_3_3},
    {NULL, wg_1_4, wg_2_4},
};
#endif

/* Splits n into the fewest tiles of at most pmax, of balanced sizes: returns the tile size
 * (the last tile may be smaller). */
static int tile_size(int n, int pmax)
{
    const int tiles = (n + pmax - 1) / pmax;
    return (n + tiles - 1) / tiles;
}

void mpq_dconv_forward(const mpq_dconv_geom *g, const float *in, const float *w, float *out,
                       int accumulate)
{
    const int nvec = g->nv / VW;
    if (g->nv % VW) {
        mpq_dconv_forward_ref(g, in, w, out, accumulate);
        return;
    }
    for (int r = 0; r < g->rows; r++) {
        const float *ir = in + r * g->in_rs;
        float *orow = out + r * g->out_rs;
        for (int j0 = 0; j0 < nvec; j0 += JMAX) {
            const int J = nvec - j0 < JMAX ? nvec - j0 : JMAX;
            const int P = tile_size(g->pix, pmax_of[J]);
            for (int p0 = 0; p0 < g->pix; p0 += P) {
                const int np = g->pix - p0 < P ? g->pix - p0 : P;
                fwd_tab[J][np](g, ir + p0 * g->in_ps, w + j0 * VW, orow + p0 * g->out_ps + j0 * VW,
                               accumulate);
            }
        }
    }
}

void mpq_dconv_wgrad(const mpq_dconv_geom *g, const float *in, const float *gy, float *dwt)
{
    const int nvec = g->nv / VW;
    if (g->nv % VW) {
        mpq_dconv_wgrad_ref(g, in, gy, dwt);
        return;
    }
    for (int j0 = 0; j0 < nvec; j0 += JMAX) {
        const int J = nvec - j0 < JMAX ? nvec - j0 : JMAX;
        const int A = tile_size(g->c, pmax_of[J]);
        for (int t = 0; t < g->n_taps; t++)
            for (int k0 = 0; k0 < g->c; k0 += A) {
                const int na = g->c - k0 < A ? g->c - k0 : A;
                wg_tab[J][na](g, in + g->off[t] + k0, gy + j0 * VW,
                              dwt + ((size_t)t * g->c + k0) * g->nv + j0 * VW);
            }
    }
}

#else /* no SIMD kernels in this build */

int mpq_dconv_vec(void) { return 0; }

void mpq_dconv_forward(const mpq_dconv_geom *g, const float *in, const float *w, float *out,
                       int accumulate)
{
    mpq_dconv_forward_ref(g, in, w, out, accumulate);
}

void mpq_dconv_wgrad(const mpq_dconv_geom *g, const float *in, const float *gy, float *dwt)
{
    mpq_dconv_wgrad_ref(g, in, gy, dwt);
}

#endif

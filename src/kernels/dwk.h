/* Depthwise (per-channel) convolution kernels over NHWC pixels, the building blocks of
 * layers/dwconv.c: a list of taps, each an input offset and a row of c weights, is applied to
 * `pix` pixels at input stride in_ps, vectorized over the c channels (any c; the last vector is
 * masked). Each kernel has a scalar reference twin (_ref) with the same contract. No allocation,
 * no threads: callers split the rows. */
#ifndef MPQ_KERNELS_DWK_H
#define MPQ_KERNELS_DWK_H

#include <stddef.h>

#define MPQ_DWK_MAX_TAPS 64

typedef struct mpq_dwk_taps {
    int n;                            /* taps, at most MPQ_DWK_MAX_TAPS (0: outputs are zero) */
    ptrdiff_t off[MPQ_DWK_MAX_TAPS];  /* input offset of each tap, in floats */
    const float *w[MPQ_DWK_MAX_TAPS]; /* its c weights (forward) */
    float *dw[MPQ_DWK_MAX_TAPS];      /* its c weight gradients (mpq_dwk_wgrad) */
} mpq_dwk_taps;

/* How the forward stores out: written, added to, or, for tensors too large for the caches,
 * written past them (non-temporal stores, when c and out_ps are multiples of the vector width
 * and out is aligned to it, else written; the call then ends with a store fence) while each
 * pixel tile prefetches the next one's input (measured on Zen 4, bench_dw, batch 32: 56x56x144
 * forward 14.9-17.9 -> 10.5-10.8 ms, its backward 25.7-33.5 -> 20.3-20.4; prefetching in every
 * call cost cache-resident 14x14 layers 5-10%, hence only here). */
enum { MPQ_DWK_WRITE, MPQ_DWK_ADD, MPQ_DWK_STREAM };

/* The statistics of the outputs that a BN takes (layers/bn.h, mpq_bn_forward_sums): for each
 * channel j < c, sums[j] += d and sums[c + j] += d * d over the pixels, d = out - shift[j],
 * taken from the registers as the outputs are stored: summed in float over each pixel tile (at
 * most 12, like BN's own pass over a few rows), then in double (in an order fixed by pix and c;
 * measured on MobileNetV2, batch 32, Zen 4: the per-pixel double sums of the dense kernels cost
 * the depthwise forward 17 ms, these 7-10, against 22 for BN's pass over the outputs). */
typedef struct mpq_dwk_stats {
    double *sums;
    const float *shift;
} mpq_dwk_stats;

/* Lines that forward calls prefetch into L2 on the side, a share before each pixel tile: the
 * caller's next rows, so that they come from memory while these calls compute (see
 * layers/dwconv.c). The share of tile k of `tiles` is lines * k / tiles; mpq_dwk_ahead_rest
 * issues what is left. */
typedef struct mpq_dwk_ahead {
    const char *at[2];
    size_t lines[2]; /* 64-byte lines from at[i] */
    size_t done;     /* lines prefetched so far */
    size_t tile;     /* pixel tiles run so far */
    size_t tiles;    /* pixel tiles the calls will run (mpq_dwk_tile_pixels) */
} mpq_dwk_ahead;

void mpq_dwk_ahead_rest(mpq_dwk_ahead *a);

/* The pixels of the forward's register tiles. */
int mpq_dwk_tile_pixels(void);

/* out[p*out_ps + j] = (store == MPQ_DWK_ADD ? out[...] : 0) + sum_t in[p*in_ps + off[t] + j] *
 * w[t][j] for p < pix, j < c, and with st (else NULL) the statistics of out; with ahead (else
 * NULL), its lines' share of the tiles. Returns 1 when the outputs went past the caches, else 0. */
int mpq_dwk_forward(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                    float *out, ptrdiff_t out_ps, int store, const mpq_dwk_stats *st,
                    mpq_dwk_ahead *ahead);
void mpq_dwk_forward_ref(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                         float *out, ptrdiff_t out_ps, int store, const mpq_dwk_stats *st);

/* dw[t][j] += sum_{p < pix} in[p*in_ps + off[t] + j] * g[p*g_ps + j] for every tap t, j < c
 * (pixels summed in order per tap). */
void mpq_dwk_wgrad(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                   const float *g, ptrdiff_t g_ps);
void mpq_dwk_wgrad_ref(const mpq_dwk_taps *t, int pix, int c, const float *in, ptrdiff_t in_ps,
                       const float *g, ptrdiff_t g_ps);

#endif

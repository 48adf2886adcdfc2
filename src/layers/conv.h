/* 2-D convolution in NHWC (any kernel, stride, padding, groups), by one of two algorithms:
 * - im2col + BLIS sgemm: 1x1 stride-1 unpadded convolutions use x directly as the GEMM operand;
 *   im2col is chunked over output rows so the column buffer (s->ws) stays bounded;
 * - direct (kernels/dconv.h) over x in place, taps clipped at the borders (the padding is never
 *   copied): small channel counts (ResNet 3x3 layers), where BLIS's skinny GEMMs are weak; the
 *   input gradient runs as stride-1 convolutions of dy, one per stride phase (1x1 stride-1
 *   layers: band by band, right after each band's weight gradient, so dy is read from memory
 *   once).
 * x: (N, H, W, Cin)   W: (Cout, KH, KW, Cin/groups) read from s->wq   b: (Cout) or absent
 * y: (N, Ho, Wo, Cout) with Ho = (H + 2*ph - kh) / sh + 1. Depthwise layers use dwconv.h. */
#ifndef MPQ_LAYERS_CONV_H
#define MPQ_LAYERS_CONV_H

#include "core/params.h"
#include "core/step.h"

typedef enum mpq_conv_algo {
    MPQ_CONV_IM2COL, /* im2col (or x itself for 1x1) + BLIS sgemm */
    MPQ_CONV_DIRECT, /* direct kernels, taps clipped at the borders (groups == 1 only) */
} mpq_conv_algo;

typedef struct mpq_conv {
    mpq_conv_algo algo;     /* forward; chosen by mpq_conv_init, may be overridden before */
    mpq_conv_algo algo_bwd; /* backward;  sizing ws (either may run without the other) */
    int h, w, cin;          /* input, per sample */
    int ho, wo, cout;       /* output, per sample */
    int kh, kw, sh, sw, ph, pw, groups;
    mpq_slice weight;    /* (Cout, KH, KW, Cin/groups) */
    mpq_slice bias;      /* (Cout), n == 0: no bias */
    size_t stream_bytes; /* direct path: y (dx in backward) written past the caches from this
                            many bytes per step (MPQ_STREAM_BYTES, core/step.h) */
} mpq_conv;

/* Fills the geometry and picks the algorithms (weight and bias slices are set by the model
 * builder). Returns 0 or MPQ_E_ARG when the geometry is impossible (channels not divisible by
 * groups, empty output). */
int mpq_conv_init(mpq_conv *l, int h, int w, int cin, int cout, int kh, int kw, int sh, int sw,
                  int ph, int pw, int groups);
/* Whether the direct algorithm can run this geometry (groups == 1, at most MPQ_CONV_MAX_TAPS
 * kernel taps); it is fast when mpq_dconv_vec() divides Cout (and Cin, for the input gradient). */
#define MPQ_CONV_MAX_TAPS 64
int mpq_conv_direct_ok(const mpq_conv *l);
/* Scratch floats (s->ws) forward and backward need for a local batch of n. */
size_t mpq_conv_ws_floats(const mpq_conv *l, int n);
/* Writes y. */
void mpq_conv_forward(const mpq_conv *l, const mpq_step *s, const float *x, float *y);
/* Whether the forward can also sum the statistics of y for the BN that consumes it (the direct
 * algorithm: it sums each output row while the row's tiles are still in registers and L1). */
int mpq_conv_sums_ok(const mpq_conv *l);
/* Writes y and, for each sample i, sums[i * 2Cout + j] = sum over its pixels of
 * d = (double)(y - shift[j]) and sums[i * 2Cout + Cout + j] = sum of d * d (in an order fixed by
 * the layer and the batch: independent of the thread count). Needs mpq_conv_sums_ok(l). */
void mpq_conv_forward_sums(const mpq_conv *l, const mpq_step *s, const float *x, float *y,
                           const float *shift, double *sums);
/* Writes dx (NULL: not needed); adds dL/dW and dL/db into s->grad. */
void mpq_conv_backward(const mpq_conv *l, const mpq_step *s, const float *x, const float *dy,
                       float *dx);
/* The same, adding dL/dx into dx (for inputs with several consumers). */
void mpq_conv_backward_add(const mpq_conv *l, const mpq_step *s, const float *x, const float *dy,
                           float *dx);
/* Whether the backward can take dy from a row source (core/step.h, mpq_dy_src): 1x1 stride-1
 * layers on the direct algorithm, without bias. */
int mpq_conv_dy_rows_ok(const mpq_conv *l);
/* mpq_conv_backward (accumulate 0) or mpq_conv_backward_add (1) with dy written band by band
 * into the scratch, each band used for the weight and the input gradient while it is in the
 * caches, so dy never goes to memory (the BN that consumed y computes it, layers/bn.h,
 * mpq_bn_dx_rows). The same bits. Needs mpq_conv_dy_rows_ok(l). */
void mpq_conv_backward_rows(const mpq_conv *l, const mpq_step *s, const float *x,
                            const mpq_dy_src *src, float *dx, int accumulate);
/* Multiply-adds per sample (forward). */
double mpq_conv_macs(const mpq_conv *l);

#endif

/* Depthwise 2-D convolution in NHWC as a direct loop over channel vectors.
 * x: (N, H, W, C)   W: (C, KH, KW, 1) read from s->wq   b: (C) or absent   y: (N, Ho, Wo, C). */
#ifndef MPQ_LAYERS_DWCONV_H
#define MPQ_LAYERS_DWCONV_H

#include "core/params.h"
#include "core/step.h"

typedef struct mpq_dwconv {
    int h, w, c;
    int ho, wo;
    int kh, kw, sh, sw, ph, pw;
    mpq_slice weight;    /* (C, KH, KW, 1) */
    mpq_slice bias;      /* (C) or absent */
    size_t stream_bytes; /* y (dx in backward) written past the caches from this many bytes
                            per step (MPQ_STREAM_BYTES, core/step.h) */
} mpq_dwconv;

int mpq_dwconv_init(mpq_dwconv *l, int h, int w, int c, int kh, int kw, int sh, int sw, int ph,
                    int pw);
size_t mpq_dwconv_ws_floats(const mpq_dwconv *l, int n);
void mpq_dwconv_forward(const mpq_dwconv *l, const mpq_step *s, const float *x, float *y);
/* Writes y and, for each sample i, the statistics of y for the BN that consumes it:
 * sums[i * 2C + j] = sum over its pixels of d = y - shift[j] and sums[i * 2C + C + j] = sum of
 * d * d, taken from the kernels' registers as they write y (kernels/dwk.h: a few pixels in float,
 * then in double, in an order fixed by the layer and the batch: independent of the thread
 * count). Layers/bn.h, mpq_bn_forward_sums. */
void mpq_dwconv_forward_sums(const mpq_dwconv *l, const mpq_step *s, const float *x, float *y,
                             const float *shift, double *sums);
/* Writes dx (NULL: not needed); adds dL/dW, dL/db into s->grad. */
void mpq_dwconv_backward(const mpq_dwconv *l, const mpq_step *s, const float *x, const float *dy,
                         float *dx);
/* The same with dy made on demand (core/step.h, mpq_dy_src) a row at a time into a ring of rows
 * in the scratch, each row used for the weight and the input gradient while it is in the
 * caches, so dy never goes to memory (the BN that consumed y computes it, layers/bn.h,
 * mpq_bn_dx_rows). Each row is asked for once, but the rows before a part's first (of 16 fixed
 * row ranges) that its input gradient reads, asked for again. The same bits. */
void mpq_dwconv_backward_rows(const mpq_dwconv *l, const mpq_step *s, const float *x,
                              const mpq_dy_src *src, float *dx);
double mpq_dwconv_macs(const mpq_dwconv *l);

#endif

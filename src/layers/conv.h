/* 2-D convolution in NHWC (any kernel, stride, padding, groups) as im2col + BLIS sgemm.
 * x: (N, H, W, Cin)   W: (Cout, KH, KW, Cin/groups) read from s->wq   b: (Cout) or absent
 * y: (N, Ho, Wo, Cout) with Ho = (H + 2*ph - kh) / sh + 1.
 * 1x1 stride-1 unpadded convolutions use x directly as the GEMM operand; im2col is chunked over
 * output rows so the column buffer (s->ws) stays bounded. Depthwise layers use dwconv.h. */
#ifndef MPQ_LAYERS_CONV_H
#define MPQ_LAYERS_CONV_H

#include "core/params.h"
#include "core/step.h"

typedef struct mpq_conv {
    int h, w, cin;      /* input, per sample */
    int ho, wo, cout;   /* output, per sample */
    int kh, kw, sh, sw, ph, pw, groups;
    mpq_slice weight;   /* (Cout, KH, KW, Cin/groups) */
    mpq_slice bias;     /* (Cout), n == 0: no bias */
} mpq_conv;

/* Fills the geometry (weight and bias slices are set by the model builder). Returns 0 or MPQ_E_ARG when the
 * geometry is impossible (channels not divisible by groups, empty output). */
int mpq_conv_init(mpq_conv *l, int h, int w, int cin, int cout, int kh, int kw, int sh, int sw,
                  int ph, int pw, int groups);
/* Scratch floats (s->ws) forward and backward need for a local batch of n. */
size_t mpq_conv_ws_floats(const mpq_conv *l, int n);
/* Writes y. */
void mpq_conv_forward(const mpq_conv *l, const mpq_step *s, const float *x, float *y);
/* Writes dx (NULL: not needed); adds dL/dW and dL/db into s->grad. */
void mpq_conv_backward(const mpq_conv *l, const mpq_step *s, const float *x, const float *dy,
                       float *dx);
/* Multiply-adds per sample (forward). */
double mpq_conv_flops(const mpq_conv *l);

#endif

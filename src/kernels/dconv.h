/* Direct convolution kernels over NHWC inputs: the building blocks of the direct path of
 * layers/conv.c (forward, input gradient and weight gradient of small-channel convolutions, where
 * BLIS's skinny GEMMs are weak). A block is `rows` output rows of `pix` pixels; tap t of output
 * pixel (r, p) reads the `c` input channels at in + r*in_rs + p*in_ps + off[t]. Zero padding is
 * not stored: a clip table says, per tap, which rows and pixels read real input, and the others
 * read zeros (the padded input is never copied). The vectorized channel count `nv` is any count
 * (the last vector of a row is masked). Each kernel has a scalar reference twin (_ref) with the
 * same contract. No allocation, no threads: callers split blocks. */
#ifndef MPQ_KERNELS_DCONV_H
#define MPQ_KERNELS_DCONV_H

#include <stddef.h>

typedef struct mpq_dconv_geom {
    int rows, pix;            /* output rows, pixels per row */
    ptrdiff_t in_rs, in_ps;   /* input strides in floats: between rows, between pixels */
    ptrdiff_t out_rs, out_ps; /* output (forward) or output-gradient (weight gradient) strides */
    int imgs;                 /* blocks of `rows` rows (images; 0 counts as 1), at strides: */
    ptrdiff_t in_is, out_is;  /* between images, input and output */
    int n_taps;               /* kernel taps (may be 0: the output is zero) */
    const ptrdiff_t *off;     /* input offset of each tap, in floats */
    int c;                    /* reduction channels per tap */
    int nv;                   /* output channels (forward) or gradient channels (weights) */
    /* Clipping (clip NULL: every tap of every output reads input). Tap t reads input only at
     * rows whose row-in-image row0 + r % rows is in [clip[4t], clip[4t+1]) and at pixels in
     * [clip[4t+2], clip[4t+3]); elsewhere it reads zeros (`zeros`: at least c of them), never
     * the input. */
    const int *clip;
    int row0;
    const float *zeros;
    /* Statistics (forward; sums NULL: none): for output row r of the block (rows in order, image
     * by image), adds the sums over its pixels of d = (double)(out - shift[j]) and of d * d into
     * sums[r * 2nv + j] and sums[r * 2nv + nv + j], from the final outputs (tile by tile, in
     * a fixed order). */
    double *sums;
    const float *shift;
    /* Streaming (forward): nonzero lets outputs bypass the caches (non-temporal stores; see
     * mpq_dconv_forward), for outputs too large to be read back from cache. Same results. */
    int stream;
} mpq_dconv_geom;

/* The SIMD width of the kernels (16 with AVX-512, 8 with AVX2+FMA; nv that are multiples of it
 * need no masked tails), or 0 when the build has neither (the kernels then run the references;
 * callers prefer another algorithm). */
int mpq_dconv_vec(void);

/* out[r*out_rs + p*out_ps + j] = (accumulate ? out : 0)
 *     + sum_{t < n_taps, k < c} in[r*in_rs + p*in_ps + off[t] + k] * w[(t*c + k)*nv + j]
 * for r < imgs*rows, p < pix, j < nv, over the taps the clip table lets (r, p) read.
 * w: (n_taps, c, nv) row-major. Returns 1 when some outputs went past the caches (g->stream:
 * those of rows whose vectors are all aligned, written in one reduction slice, not accumulated,
 * no channel tail), else 0. */
int mpq_dconv_forward(const mpq_dconv_geom *g, const float *in, const float *w, float *out,
                      int accumulate);
void mpq_dconv_forward_ref(const mpq_dconv_geom *g, const float *in, const float *w, float *out,
                           int accumulate);

/* dwt[(t*c + k)*nv + j] += sum_{r < imgs*rows, p < pix} in[r*in_rs + p*in_ps + off[t] + k]
 *                                                  * gy[r*out_rs + p*out_ps + j]
 * over the (r, p) the clip table lets tap t read. dwt: (n_taps, c, nv) row-major, accumulated
 * (pixels summed in row-major order per tile). */
void mpq_dconv_wgrad(const mpq_dconv_geom *g, const float *in, const float *gy, float *dwt);
void mpq_dconv_wgrad_ref(const mpq_dconv_geom *g, const float *in, const float *gy, float *dwt);

#endif

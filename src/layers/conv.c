/* 2-D convolution in NHWC as chunked im2col + BLIS sgemm (see conv.h).
 * Column layout per output pixel: (groups, KH, KW, Cin/groups), so group g's patch is a
 * contiguous run of K = KH*KW*Cin/groups floats at offset g*K, in W's (KH, KW, Cin/g) order, and
 * each group is one strided GEMM over the whole chunk. Chunks are runs of output rows (n, oh) of
 * all samples, sized so the column buffer stays near CONV_COL_FLOATS; they live in s->ws.
 * No allocation. Threading: BLIS inside sgemm; OpenMP over pixels/rows in im2col/col2im, each
 * output element written by one thread in a fixed order (deterministic). */
#include "layers/conv.h"

#include <string.h>

#include "core/err.h"
#include "kernels/colsum.h"
#include "kernels/gemm.h"

enum { CONV_COL_FLOATS = 2 * 1024 * 1024 }; /* 8 MB column buffer per chunk */

int mpq_conv_init(mpq_conv *l, int h, int w, int cin, int cout, int kh, int kw, int sh, int sw,
                  int ph, int pw, int groups)
{
    memset(l, 0, sizeof *l);
    if (h < 1 || w < 1 || cin < 1 || cout < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 ||
        pw < 0 || groups < 1)
        return MPQ_FAIL(MPQ_E_ARG,
                        "conv: bad geometry (h %d w %d cin %d cout %d kernel %dx%d stride %dx%d "
                        "pad %dx%d groups %d)",
                        h, w, cin, cout, kh, kw, sh, sw, ph, pw, groups);
    if (cin % groups || cout % groups)
        return MPQ_FAIL(MPQ_E_ARG, "conv: cin %d and cout %d must be divisible by groups %d", cin,
                        cout, groups);
    if (h + 2 * ph < kh || w + 2 * pw < kw)
        return MPQ_FAIL(MPQ_E_ARG, "conv: kernel %dx%d larger than padded input %dx%d", kh, kw,
                        h + 2 * ph, w + 2 * pw);
    l->h = h, l->w = w, l->cin = cin, l->cout = cout;
    l->kh = kh, l->kw = kw, l->sh = sh, l->sw = sw, l->ph = ph, l->pw = pw, l->groups = groups;
    l->ho = (h + 2 * ph - kh) / sh + 1;
    l->wo = (w + 2 * pw - kw) / sw + 1;
    return MPQ_OK;
}

/* 1x1, stride 1, no padding: the input is the column matrix. */
static int is_direct(const mpq_conv *l)
{
    return l->kh == 1 && l->kw == 1 && l->sh == 1 && l->sw == 1 && l->ph == 0 && l->pw == 0;
}

/* Floats per output pixel in the column buffer (all groups). */
static size_t col_stride(const mpq_conv *l) { return (size_t)l->kh * l->kw * l->cin; }

/* Output rows (n, oh) per chunk: the budget split evenly over the chunks needed. */
static int chunk_rows(const mpq_conv *l, int n)
{
    const int total = n * l->ho;
    const size_t row = (size_t)l->wo * col_stride(l);
    size_t per = CONV_COL_FLOATS / row;
    if (per < 1) per = 1;
    if (per >= (size_t)total) return total;
    const int n_chunks = (int)(((size_t)total + per - 1) / per);
    return (total + n_chunks - 1) / n_chunks;
}

size_t mpq_conv_ws_floats(const mpq_conv *l, int n)
{
    if (is_direct(l) || n < 1) return 0;
    return (size_t)chunk_rows(l, n) * l->wo * col_stride(l);
}

double mpq_conv_flops(const mpq_conv *l)
{
    return (double)l->ho * l->wo * l->cout * l->kh * l->kw * (l->cin / l->groups);
}

/* Valid kernel columns [*k0, *k1) for output column ow (input column ow*sw - pw + kw in range). */
static void kw_range(const mpq_conv *l, int ow, int *k0, int *k1)
{
    const int iw0 = ow * l->sw - l->pw;
    *k0 = iw0 < 0 ? -iw0 : 0;
    *k1 = l->w - iw0 < l->kw ? l->w - iw0 : l->kw;
    if (*k1 < *k0) *k1 = *k0;
}

/* Copies and fills of a few channel vectors; empty fills (interior pixels) cost nothing. */
static inline void copy_floats(float *restrict d, const float *restrict s, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}

static inline void zero_floats(float *d, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        d[i] = 0.0f;
}

/* col (rows [r0, r1) x wo pixels, col_stride each) = patches of x. */
static void im2col(const mpq_conv *l, const float *x, int r0, int r1, float *col)
{
    const int cg = l->cin / l->groups;
    const size_t kt = col_stride(l), span = (size_t)l->kw * cg;
#pragma omp parallel for schedule(static)
    for (int r = r0; r < r1; r++) {
        const int n = r / l->ho, oh = r % l->ho;
        for (int ow = 0; ow < l->wo; ow++) {
            float *dst = col + ((size_t)(r - r0) * l->wo + ow) * kt;
            int k0, k1;
            kw_range(l, ow, &k0, &k1);
            const int iw = ow * l->sw - l->pw + k0; /* first valid input column */
            for (int kh = 0; kh < l->kh; kh++) {
                const int ih = oh * l->sh - l->ph + kh;
                const int valid = ih >= 0 && ih < l->h && k0 < k1;
                const float *src =
                    valid ? x + (((size_t)n * l->h + ih) * l->w + iw) * l->cin : NULL;
                for (int g = 0; g < l->groups; g++) {
                    float *d = dst + ((size_t)g * l->kh + kh) * span;
                    if (!valid) {
                        zero_floats(d, span);
                        continue;
                    }
                    zero_floats(d, (size_t)k0 * cg);
                    if (l->groups == 1)
                        copy_floats(d + (size_t)k0 * cg, src, (size_t)(k1 - k0) * cg);
                    else
                        for (int kw = k0; kw < k1; kw++)
                            copy_floats(d + (size_t)kw * cg,
                                        src + (size_t)(kw - k0) * l->cin + g * cg, (size_t)cg);
                    zero_floats(d + (size_t)k1 * cg, (size_t)(l->kw - k1) * cg);
                }
            }
        }
    }
}

/* dx += the patches in dcol (rows [r0, r1) of output rows), gathered per input row (n, ih) so
 * each dx element is updated by one thread, in (kh, ow, kw) order. */
static void col2im(const mpq_conv *l, const float *dcol, int r0, int r1, float *dx)
{
    const int cg = l->cin / l->groups;
    const size_t kt = col_stride(l);
    const int n0 = r0 / l->ho, n1 = (r1 - 1) / l->ho;
    const int tasks = (n1 - n0 + 1) * l->h;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tasks; t++) {
        const int n = n0 + t / l->h, ih = t % l->h;
        const int oh_lo = n == n0 ? r0 % l->ho : 0;
        const int oh_hi = n == n1 ? (r1 - 1) % l->ho : l->ho - 1;
        float *dxrow = dx + ((size_t)n * l->h + ih) * l->w * l->cin;
        for (int kh = 0; kh < l->kh; kh++) {
            const int th = ih + l->ph - kh;
            if (th < 0 || th % l->sh) continue;
            const int oh = th / l->sh;
            if (oh < oh_lo || oh > oh_hi) continue;
            for (int ow = 0; ow < l->wo; ow++) {
                const float *src = dcol + (((size_t)n * l->ho + oh - r0) * l->wo + ow) * kt;
                int k0, k1;
                kw_range(l, ow, &k0, &k1);
                if (k0 == k1) continue;
                float *d = dxrow + (size_t)(ow * l->sw - l->pw + k0) * l->cin;
                for (int g = 0; g < l->groups; g++) {
                    const float *sg = src + ((size_t)g * l->kh + kh) * l->kw * cg;
                    if (l->groups == 1) {
                        const size_t len = (size_t)(k1 - k0) * cg;
                        const float *ss = sg + (size_t)k0 * cg;
#pragma omp simd
                        for (size_t i = 0; i < len; i++)
                            d[i] += ss[i];
                    } else {
                        for (int kw = k0; kw < k1; kw++) {
                            float *dd = d + (size_t)(kw - k0) * l->cin + g * cg;
                            const float *ss = sg + (size_t)kw * cg;
#pragma omp simd
                            for (int i = 0; i < cg; i++)
                                dd[i] += ss[i];
                        }
                    }
                }
            }
        }
    }
}

/* y (m pixels, row stride cout) = col (m x K per group, row stride kt) W^T (+ b). */
static void gemm_forward(const mpq_conv *l, const float *wq, const float *b, const float *col,
                         size_t kt, int m, float *y)
{
    const int cog = l->cout / l->groups, k = l->kh * l->kw * (l->cin / l->groups);
    if (b) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < m; i++)
            memcpy(y + (size_t)i * l->cout, b, l->cout * sizeof *y);
    }
    for (int g = 0; g < l->groups; g++)
        mpq_sgemm(MPQ_N, MPQ_T, m, cog, k, 1.0f, col + (size_t)g * k, (int)kt,
                  wq + (size_t)g * cog * k, k, b ? 1.0f : 0.0f, y + (size_t)g * cog, l->cout);
}

void mpq_conv_forward(const mpq_conv *l, const mpq_step *s, const float *x, float *y)
{
    const float *wq = mpq_cat(s->wq, l->weight);
    const float *b = l->bias.n ? mpq_cat(s->wq, l->bias) : NULL;
    if (is_direct(l)) {
        gemm_forward(l, wq, b, x, (size_t)l->cin, s->n * l->h * l->w, y);
        return;
    }
    const int total = s->n * l->ho, rows = chunk_rows(l, s->n);
    MPQ_ASSERT(s->ws_floats >= mpq_conv_ws_floats(l, s->n), "conv: workspace too small");
    for (int r0 = 0; r0 < total; r0 += rows) {
        const int r1 = r0 + rows < total ? r0 + rows : total;
        im2col(l, x, r0, r1, s->ws);
        gemm_forward(l, wq, b, s->ws, col_stride(l), (r1 - r0) * l->wo,
                     y + (size_t)r0 * l->wo * l->cout);
    }
}

/* dW += dy^T col; if dcol: dcol = dy W (overwrites, may be col itself after dW is done). */
static void gemm_backward(const mpq_conv *l, const float *wq, float *dw, const float *dy,
                          const float *col, size_t kt, int m, float *dcol)
{
    const int cog = l->cout / l->groups, k = l->kh * l->kw * (l->cin / l->groups);
    for (int g = 0; g < l->groups; g++)
        mpq_sgemm(MPQ_T, MPQ_N, cog, k, m, 1.0f, dy + (size_t)g * cog, l->cout, col + (size_t)g * k,
                  (int)kt, 1.0f, dw + (size_t)g * cog * k, k);
    if (!dcol) return;
    for (int g = 0; g < l->groups; g++)
        mpq_sgemm(MPQ_N, MPQ_N, m, k, cog, 1.0f, dy + (size_t)g * cog, l->cout,
                  wq + (size_t)g * cog * k, k, 0.0f, dcol + (size_t)g * k, (int)kt);
}

void mpq_conv_backward(const mpq_conv *l, const mpq_step *s, const float *x, const float *dy,
                       float *dx)
{
    const float *wq = mpq_cat(s->wq, l->weight);
    float *dw = mpq_at(s->grad, l->weight);
    if (l->bias.n)
        mpq_colsum_add((size_t)s->n * l->ho * l->wo, l->cout, dy, (size_t)l->cout,
                       mpq_at(s->grad, l->bias));
    if (is_direct(l)) {
        gemm_backward(l, wq, dw, dy, x, (size_t)l->cin, s->n * l->h * l->w, dx);
        return;
    }
    const int total = s->n * l->ho, rows = chunk_rows(l, s->n);
    MPQ_ASSERT(s->ws_floats >= mpq_conv_ws_floats(l, s->n), "conv: workspace too small");
    if (dx) {
        const size_t len = (size_t)s->n * l->h * l->w * l->cin;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < len; i++)
            dx[i] = 0.0f;
    }
    for (int r0 = 0; r0 < total; r0 += rows) {
        const int r1 = r0 + rows < total ? r0 + rows : total;
        im2col(l, x, r0, r1, s->ws);
        gemm_backward(l, wq, dw, dy + (size_t)r0 * l->wo * l->cout, s->ws, col_stride(l),
                      (r1 - r0) * l->wo, dx ? s->ws : NULL);
        if (dx) col2im(l, s->ws, r0, r1, dx);
    }
}

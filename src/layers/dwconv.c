/* Depthwise 2-D convolution in NHWC as direct loops whose inner loop runs over channels
 * (see dwconv.h). The weights are first transposed into s->ws as (KH, KW, C) so every tap is a
 * contiguous channel vector. No allocation. Threading: OpenMP over output/input rows; dW and db
 * are summed over DW_PARTS fixed row ranges into partial buffers in s->ws, combined in part
 * order, so results do not depend on the thread count. */
#include "layers/dwconv.h"

#include <string.h>

#include "core/err.h"

enum { DW_PARTS = 16 };

int mpq_dwconv_init(mpq_dwconv *l, int h, int w, int c, int kh, int kw, int sh, int sw, int ph,
                    int pw)
{
    memset(l, 0, sizeof *l);
    if (h < 1 || w < 1 || c < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0)
        return MPQ_FAIL(MPQ_E_ARG,
                        "dwconv: bad geometry (h %d w %d c %d kernel %dx%d stride %dx%d pad %dx%d)",
                        h, w, c, kh, kw, sh, sw, ph, pw);
    if (h + 2 * ph < kh || w + 2 * pw < kw)
        return MPQ_FAIL(MPQ_E_ARG, "dwconv: kernel %dx%d larger than padded input %dx%d", kh, kw,
                        h + 2 * ph, w + 2 * pw);
    l->h = h, l->w = w, l->c = c;
    l->kh = kh, l->kw = kw, l->sh = sh, l->sw = sw, l->ph = ph, l->pw = pw;
    l->ho = (h + 2 * ph - kh) / sh + 1;
    l->wo = (w + 2 * pw - kw) / sw + 1;
    return MPQ_OK;
}

static size_t taps(const mpq_dwconv *l) { return (size_t)l->kh * l->kw; }

size_t mpq_dwconv_ws_floats(const mpq_dwconv *l, int n)
{
    /* transposed weights, then DW_PARTS partials of (dW (KH, KW, C), db (C)) */
    return taps(l) * l->c + DW_PARTS * (taps(l) + 1) * l->c;
}

double mpq_dwconv_flops(const mpq_dwconv *l)
{
    return (double)l->ho * l->wo * l->c * l->kh * l->kw;
}

/* wt (KH*KW, C) = W (C, KH*KW) transposed. */
static void transpose_weights(const mpq_dwconv *l, const float *w, float *wt)
{
    const size_t t = taps(l);
    for (int c = 0; c < l->c; c++)
        for (size_t k = 0; k < t; k++)
            wt[k * l->c + c] = w[(size_t)c * t + k];
}

/* Valid kernel range [*k0, *k1) for output position o (input o*s - p + k inside [0, size)). */
static void tap_range(int o, int s, int p, int k, int size, int *k0, int *k1)
{
    const int i0 = o * s - p;
    *k0 = i0 < 0 ? -i0 : 0;
    *k1 = size - i0 < k ? size - i0 : k;
    if (*k1 < *k0) *k1 = *k0;
}

void mpq_dwconv_forward(const mpq_dwconv *l, const mpq_step *s, const float *x, float *y)
{
    const int c = l->c;
    const float *b = l->bias.n ? mpq_cat(s->wq, l->bias) : NULL;
    float *wt = s->ws;
    MPQ_ASSERT(s->ws_floats >= mpq_dwconv_ws_floats(l, s->n), "dwconv: workspace too small");
    transpose_weights(l, mpq_cat(s->wq, l->weight), wt);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < s->n * l->ho; r++) {
        const int n = r / l->ho, oh = r % l->ho;
        int h0, h1;
        tap_range(oh, l->sh, l->ph, l->kh, l->h, &h0, &h1);
        for (int ow = 0; ow < l->wo; ow++) {
            float *yo = y + ((size_t)r * l->wo + ow) * c;
            int w0, w1;
            tap_range(ow, l->sw, l->pw, l->kw, l->w, &w0, &w1);
            for (int i = 0; i < c; i++)
                yo[i] = b ? b[i] : 0.0f;
            for (int kh = h0; kh < h1; kh++) {
                const int ih = oh * l->sh - l->ph + kh;
                for (int kw = w0; kw < w1; kw++) {
                    const int iw = ow * l->sw - l->pw + kw;
                    const float *xi = x + (((size_t)n * l->h + ih) * l->w + iw) * c;
                    const float *wk = wt + ((size_t)kh * l->kw + kw) * c;
#pragma omp simd
                    for (int i = 0; i < c; i++)
                        yo[i] += xi[i] * wk[i];
                }
            }
        }
    }
}

/* Partial p's dW (KH*KW, C) and db (C) over output rows [rows*p/P, rows*(p+1)/P). */
static void grad_part(const mpq_dwconv *l, int n_rows, int p, const float *x, const float *dy,
                      float *part)
{
    const int c = l->c;
    float *pdw = part, *pdb = part + taps(l) * c;
    memset(part, 0, (taps(l) + 1) * c * sizeof *part);
    const int r0 = (int)((long long)n_rows * p / DW_PARTS);
    const int r1 = (int)((long long)n_rows * (p + 1) / DW_PARTS);
    for (int r = r0; r < r1; r++) {
        const int n = r / l->ho, oh = r % l->ho;
        int h0, h1;
        tap_range(oh, l->sh, l->ph, l->kh, l->h, &h0, &h1);
        for (int ow = 0; ow < l->wo; ow++) {
            const float *g = dy + ((size_t)r * l->wo + ow) * c;
            int w0, w1;
            tap_range(ow, l->sw, l->pw, l->kw, l->w, &w0, &w1);
#pragma omp simd
            for (int i = 0; i < c; i++)
                pdb[i] += g[i];
            for (int kh = h0; kh < h1; kh++) {
                const int ih = oh * l->sh - l->ph + kh;
                for (int kw = w0; kw < w1; kw++) {
                    const int iw = ow * l->sw - l->pw + kw;
                    const float *xi = x + (((size_t)n * l->h + ih) * l->w + iw) * c;
                    float *dk = pdw + ((size_t)kh * l->kw + kw) * c;
#pragma omp simd
                    for (int i = 0; i < c; i++)
                        dk[i] += g[i] * xi[i];
                }
            }
        }
    }
}

/* dx row (n, ih) = sum over the taps that read it of dy * w, in (kh, kw) order. */
static void dx_row(const mpq_dwconv *l, const float *wt, const float *dy, int n, int ih, float *dx)
{
    const int c = l->c;
    float *row = dx + ((size_t)n * l->h + ih) * l->w * c;
    memset(row, 0, (size_t)l->w * c * sizeof *row);
    for (int kh = 0; kh < l->kh; kh++) {
        const int th = ih + l->ph - kh;
        if (th < 0 || th % l->sh || th / l->sh >= l->ho) continue;
        const int oh = th / l->sh;
        for (int iw = 0; iw < l->w; iw++) {
            float *d = row + (size_t)iw * c;
            for (int kw = 0; kw < l->kw; kw++) {
                const int tw = iw + l->pw - kw;
                if (tw < 0 || tw % l->sw || tw / l->sw >= l->wo) continue;
                const float *g = dy + (((size_t)n * l->ho + oh) * l->wo + tw / l->sw) * c;
                const float *wk = wt + ((size_t)kh * l->kw + kw) * c;
#pragma omp simd
                for (int i = 0; i < c; i++)
                    d[i] += g[i] * wk[i];
            }
        }
    }
}

void mpq_dwconv_backward(const mpq_dwconv *l, const mpq_step *s, const float *x, const float *dy,
                         float *dx)
{
    const int c = l->c, n_rows = s->n * l->ho;
    const size_t t = taps(l), part_len = (t + 1) * c;
    float *wt = s->ws, *parts = s->ws + t * c;
    float *dw = mpq_at(s->grad, l->weight);
    MPQ_ASSERT(s->ws_floats >= mpq_dwconv_ws_floats(l, s->n), "dwconv: workspace too small");
    transpose_weights(l, mpq_cat(s->wq, l->weight), wt);
#pragma omp parallel for schedule(static)
    for (int p = 0; p < DW_PARTS; p++)
        grad_part(l, n_rows, p, x, dy, parts + p * part_len);
    for (int p = 1; p < DW_PARTS; p++)
        for (size_t i = 0; i < part_len; i++)
            parts[i] += parts[p * part_len + i];
    for (int i = 0; i < c; i++)
        for (size_t k = 0; k < t; k++)
            dw[(size_t)i * t + k] += parts[k * c + i];
    if (l->bias.n) {
        float *db = mpq_at(s->grad, l->bias);
        for (int i = 0; i < c; i++)
            db[i] += parts[t * c + i];
    }
    if (!dx) return;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < s->n * l->h; r++)
        dx_row(l, wt, dy, r / l->h, r % l->h, dx);
}

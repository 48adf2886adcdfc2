/* Max and average pooling in NHWC (see pool.h). Windows are clipped to the input; max pooling
 * keeps the first maximum in (kh, kw) order, average pooling divides by KH*KW (padding counted).
 * No allocation, no scratch. Threading: OpenMP over output rows (forward) and over samples
 * (backward, each sample's dx written by one thread in a fixed order). */
#include "layers/pool.h"

#include <string.h>

#include "core/err.h"
#include "kernels/vecops.h"

enum { POOL_CBLOCK = 64 }; /* channels per block in max-pool backward (stack arrays) */

int mpq_pool_init(mpq_pool *l, mpq_pool_kind kind, int h, int w, int c, int kh, int kw, int sh,
                  int sw, int ph, int pw)
{
    memset(l, 0, sizeof *l);
    if (h < 1 || w < 1 || c < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0)
        return MPQ_FAIL(MPQ_E_ARG,
                        "pool: bad geometry (h %d w %d c %d kernel %dx%d stride %dx%d pad %dx%d)",
                        h, w, c, kh, kw, sh, sw, ph, pw);
    if (ph >= kh || pw >= kw)
        return MPQ_FAIL(MPQ_E_ARG, "pool: padding %dx%d must be smaller than the kernel %dx%d", ph,
                        pw, kh, kw);
    if (h + 2 * ph < kh || w + 2 * pw < kw)
        return MPQ_FAIL(MPQ_E_ARG, "pool: kernel %dx%d larger than padded input %dx%d", kh, kw,
                        h + 2 * ph, w + 2 * pw);
    l->kind = kind;
    l->h = h, l->w = w, l->c = c;
    l->kh = kh, l->kw = kw, l->sh = sh, l->sw = sw, l->ph = ph, l->pw = pw;
    l->ho = (h + 2 * ph - kh) / sh + 1;
    l->wo = (w + 2 * pw - kw) / sw + 1;
    return MPQ_OK;
}

int mpq_pool_init_global(mpq_pool *l, int h, int w, int c)
{
    return mpq_pool_init(l, MPQ_POOL_AVG, h, w, c, h, w, 1, 1, 0, 0);
}

/* The window of output (oh, ow) clipped to the input: rows [*h0, *h1), columns [*w0, *w1). */
static void window(const mpq_pool *l, int oh, int ow, int *h0, int *h1, int *w0, int *w1)
{
    const int ih = oh * l->sh - l->ph, iw = ow * l->sw - l->pw;
    *h0 = ih < 0 ? 0 : ih;
    *h1 = ih + l->kh < l->h ? ih + l->kh : l->h;
    *w0 = iw < 0 ? 0 : iw;
    *w1 = iw + l->kw < l->w ? iw + l->kw : l->w;
}

void mpq_pool_forward(const mpq_pool *l, const mpq_step *s, const float *x, float *y)
{
    const int c = l->c;
    const float inv_area = 1.0f / (float)(l->kh * l->kw);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < s->n * l->ho; r++) {
        const int n = r / l->ho, oh = r % l->ho;
        const float *xs = x + (size_t)n * l->h * l->w * c;
        for (int ow = 0; ow < l->wo; ow++) {
            float *yo = y + ((size_t)r * l->wo + ow) * c;
            int h0, h1, w0, w1;
            window(l, oh, ow, &h0, &h1, &w0, &w1);
            if (l->kind == MPQ_POOL_MAX)
                memcpy(yo, xs + ((size_t)h0 * l->w + w0) * c, (size_t)c * sizeof *yo);
            else
                memset(yo, 0, (size_t)c * sizeof *yo);
            for (int ih = h0; ih < h1; ih++)
                for (int iw = w0; iw < w1; iw++) {
                    const float *xi = xs + ((size_t)ih * l->w + iw) * c;
                    if (l->kind == MPQ_POOL_MAX) {
#pragma omp simd
                        for (int i = 0; i < c; i++)
                            yo[i] = xi[i] > yo[i] ? xi[i] : yo[i];
                    } else {
#pragma omp simd
                        for (int i = 0; i < c; i++)
                            yo[i] += xi[i];
                    }
                }
            if (l->kind == MPQ_POOL_AVG)
                for (int i = 0; i < c; i++)
                    yo[i] *= inv_area;
        }
    }
}

/* dxs (one sample) += dy of output (oh, ow) routed to the first maximum of its window: the
 * window position of each channel's maximum first, then a masked add at every position (both
 * loops vectorize; no scatter). */
static void max_route(const mpq_pool *l, const float *xs, const float *g, int oh, int ow,
                      float *dxs)
{
    const int c = l->c;
    int h0, h1, w0, w1;
    window(l, oh, ow, &h0, &h1, &w0, &w1);
    for (int c0 = 0; c0 < c; c0 += POOL_CBLOCK) {
        const int nb = c - c0 < POOL_CBLOCK ? c - c0 : POOL_CBLOCK;
        float best[POOL_CBLOCK];
        int arg[POOL_CBLOCK];
        memcpy(best, xs + ((size_t)h0 * l->w + w0) * c + c0, (size_t)nb * sizeof *best);
        memset(arg, 0, sizeof arg);
        int t = 0;
        for (int ih = h0; ih < h1; ih++)
            for (int iw = w0; iw < w1; iw++, t++) {
                const float *xi = xs + ((size_t)ih * l->w + iw) * c + c0;
#pragma omp simd
                for (int i = 0; i < nb; i++) {
                    const float v = xi[i];
                    const int gt = v > best[i];
                    best[i] = v > best[i] ? v : best[i];
                    arg[i] = gt ? t : arg[i];
                }
            }
        t = 0;
        for (int ih = h0; ih < h1; ih++)
            for (int iw = w0; iw < w1; iw++, t++) {
                float *d = dxs + ((size_t)ih * l->w + iw) * c + c0;
                const float *gi = g + c0;
#pragma omp simd
                for (int i = 0; i < nb; i++)
                    d[i] += mpq_keep_if(arg[i] == t, gi[i]);
            }
    }
}

/* dxs (one sample) += dy of output (oh, ow) / (KH*KW) over the window's input cells. */
static void avg_spread(const mpq_pool *l, const float *g, int oh, int ow, float *dxs)
{
    const int c = l->c;
    const float inv_area = 1.0f / (float)(l->kh * l->kw);
    int h0, h1, w0, w1;
    window(l, oh, ow, &h0, &h1, &w0, &w1);
    for (int ih = h0; ih < h1; ih++)
        for (int iw = w0; iw < w1; iw++) {
            float *d = dxs + ((size_t)ih * l->w + iw) * c;
#pragma omp simd
            for (int i = 0; i < c; i++)
                d[i] += g[i] * inv_area;
        }
}

void mpq_pool_backward(const mpq_pool *l, const mpq_step *s, const float *x, const float *dy,
                       float *dx)
{
    const size_t in_len = (size_t)l->h * l->w * l->c;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->n; n++) {
        float *dxs = dx + n * in_len;
        memset(dxs, 0, in_len * sizeof *dxs);
        for (int oh = 0; oh < l->ho; oh++)
            for (int ow = 0; ow < l->wo; ow++) {
                const float *g = dy + (((size_t)n * l->ho + oh) * l->wo + ow) * l->c;
                if (l->kind == MPQ_POOL_MAX)
                    max_route(l, x + n * in_len, g, oh, ow, dxs);
                else
                    avg_spread(l, g, oh, ow, dxs);
            }
    }
}

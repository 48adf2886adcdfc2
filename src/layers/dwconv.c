/* Depthwise 2-D convolution in NHWC (see dwconv.h) on the kernels of kernels/dwk.h: each output
 * row is an interior run of pixels whose taps all lie inside the input (one kernel call over the
 * run) and border pixels with their clipped tap lists; the input gradient runs per stride phase
 * as a direct sum over the output-gradient pixels that read each input pixel, row by row after
 * the weight gradient of the output rows that own them (dy read from memory once). The weights are
 * first transposed into s->ws as (KH, KW, C) so every tap is a contiguous channel vector.
 * No allocation. Threading: OpenMP over output/input rows; dW and db are summed over DW_PARTS
 * fixed row ranges into partial buffers in s->ws, combined in part order, so results do not
 * depend on the thread count. */
#include "layers/dwconv.h"

#include <string.h>

#include "core/err.h"
#include "kernels/colsum.h"
#include "kernels/dwk.h"

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
    if (kh * kw > MPQ_DWK_MAX_TAPS)
        return MPQ_FAIL(MPQ_E_ARG, "dwconv: kernel %dx%d has more than %d taps", kh, kw,
                        MPQ_DWK_MAX_TAPS);
    l->h = h, l->w = w, l->c = c;
    l->kh = kh, l->kw = kw, l->sh = sh, l->sw = sw, l->ph = ph, l->pw = pw;
    l->ho = (h + 2 * ph - kh) / sh + 1;
    l->wo = (w + 2 * pw - kw) / sw + 1;
    l->stream_bytes = MPQ_STREAM_BYTES;
    return MPQ_OK;
}

static size_t taps(const mpq_dwconv *l) { return (size_t)l->kh * l->kw; }

/* Floats of the transposed weights, rounded up so that what follows is 64-byte aligned. */
static size_t wt_floats(const mpq_dwconv *l) { return (taps(l) * l->c + 15) & ~(size_t)15; }

size_t mpq_dwconv_ws_floats(const mpq_dwconv *l, int n)
{
    /* transposed weights, then DW_PARTS partials of (dW (KH, KW, C), db (C)) in backward, or the
     * statistics of each output row (2C doubles) in forward */
    const size_t bwd = DW_PARTS * (taps(l) + 1) * l->c, fwd = 2 * (size_t)n * l->ho * 2 * l->c;
    return wt_floats(l) + (bwd > fwd ? bwd : fwd);
}

double mpq_dwconv_macs(const mpq_dwconv *l) { return (double)l->ho * l->wo * l->c * l->kh * l->kw; }

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

/* Output columns [*lo, *hi) whose kernel window lies inside the input. */
static void interior(int out, int in, int k, int st, int pad, int *lo, int *hi)
{
    *lo = (pad + st - 1) / st;
    *hi = in - k + pad >= 0 ? (in - k + pad) / st + 1 : 0;
    if (*lo > out) *lo = out;
    if (*hi > out) *hi = out;
    if (*hi < *lo) *hi = *lo;
}

/* Taps of kernel rows [h0, h1) and columns [w0, w1) for output row `oh` (input offsets relative
 * to the image, for output column 0); with parts, their gradient rows there. */
static void window_taps(const mpq_dwconv *l, const float *wt, float *dw, int oh, int h0, int h1,
                        int w0, int w1, mpq_dwk_taps *t)
{
    const int c = l->c, ih0 = oh * l->sh - l->ph;
    t->n = 0;
    for (int kh = h0; kh < h1; kh++)
        for (int kw = w0; kw < w1; kw++) {
            const size_t k = (size_t)kh * l->kw + kw;
            t->off[t->n] = ((ptrdiff_t)(ih0 + kh) * l->w + kw - l->pw) * c;
            t->w[t->n] = wt + k * c;
            t->dw[t->n] = dw ? dw + k * c : NULL;
            t->n++;
        }
}

/* Calls fn over the interior run and the border pixels of output row oh of one image. */
typedef void (*row_fn)(void *ctx, const mpq_dwk_taps *t, int ow0, int pix);

static void row_runs(const mpq_dwconv *l, const float *wt, float *dw, int oh, row_fn fn, void *ctx)
{
    mpq_dwk_taps t;
    int h0, h1, lo, hi;
    tap_range(oh, l->sh, l->ph, l->kh, l->h, &h0, &h1);
    interior(l->wo, l->w, l->kw, l->sw, l->pw, &lo, &hi);
    if (hi > lo) {
        window_taps(l, wt, dw, oh, h0, h1, 0, l->kw, &t);
        fn(ctx, &t, lo, hi - lo);
    }
    for (int ow = 0; ow < l->wo; ow++) {
        if (ow == lo) ow = hi;
        if (ow >= l->wo) break;
        int w0, w1;
        tap_range(ow, l->sw, l->pw, l->kw, l->w, &w0, &w1);
        window_taps(l, wt, dw, oh, h0, h1, w0, w1, &t);
        fn(ctx, &t, ow, 1);
    }
}

/* How the kernels store an output of per_sample floats per sample: past the caches when it is
 * large (mpq_dwconv.stream_bytes), else plainly. */
static int output_store(const mpq_dwconv *l, const mpq_step *s, size_t per_sample)
{
    return mpq_step_streams(s, per_sample, l->stream_bytes) ? MPQ_DWK_STREAM : MPQ_DWK_WRITE;
}

typedef struct fwd_ctx {
    const mpq_dwconv *l;
    const float *xs;
    float *yr;
    int store;               /* MPQ_DWK_* */
    const mpq_dwk_stats *st; /* the row's statistics, or NULL */
} fwd_ctx;

static void fwd_run(void *p, const mpq_dwk_taps *t, int ow0, int pix)
{
    const fwd_ctx *f = p;
    const int c = f->l->c;
    mpq_dwk_forward(t, pix, c, f->xs + (size_t)ow0 * f->l->sw * c, (ptrdiff_t)f->l->sw * c,
                    f->yr + (size_t)ow0 * c, c, f->store, f->st);
}

/* The forward; with sums, also the statistics of y per sample (mpq_dwconv_forward_sums): each
 * output row sums into its block of the scratch, then the rows of each sample are added in
 * order. */
static void forward(const mpq_dwconv *l, const mpq_step *s, const float *x, float *y,
                    const float *shift, double *sums)
{
    const int c = l->c;
    const float *b = l->bias.n ? mpq_cat(s->wq, l->bias) : NULL;
    float *wt = s->ws;
    double *rows = (double *)(void *)(s->ws + wt_floats(l)); /* 64-byte aligned */
    MPQ_ASSERT(s->ws_floats >= mpq_dwconv_ws_floats(l, s->n), "dwconv: workspace too small");
    transpose_weights(l, mpq_cat(s->wq, l->weight), wt);
    const int store = output_store(l, s, (size_t)l->ho * l->wo * c);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < s->n * l->ho; r++) {
        const mpq_dwk_stats st = {rows + (size_t)r * 2 * c, shift};
        fwd_ctx f = {l, x + (size_t)(r / l->ho) * l->h * l->w * c, y + (size_t)r * l->wo * c,
                     b ? MPQ_DWK_ADD : store, sums ? &st : NULL};
        if (b)
            for (int ow = 0; ow < l->wo; ow++)
                memcpy(f.yr + (size_t)ow * c, b, (size_t)c * sizeof *b);
        if (sums) memset(st.sums, 0, 2 * (size_t)c * sizeof *st.sums);
        row_runs(l, wt, NULL, r % l->ho, fwd_run, &f);
    }
    if (sums) mpq_colsum_blocks(s->n, l->ho, 2 * (size_t)c, rows, sums);
}

void mpq_dwconv_forward(const mpq_dwconv *l, const mpq_step *s, const float *x, float *y)
{
    forward(l, s, x, y, NULL, NULL);
}

void mpq_dwconv_forward_sums(const mpq_dwconv *l, const mpq_step *s, const float *x, float *y,
                             const float *shift, double *sums)
{
    MPQ_ASSERT(shift && sums, "dwconv: statistics need a shift and their buffer");
    forward(l, s, x, y, shift, sums);
}

typedef struct wg_ctx {
    const mpq_dwconv *l;
    const float *xs, *gr;
} wg_ctx;

static void wg_run(void *p, const mpq_dwk_taps *t, int ow0, int pix)
{
    const wg_ctx *w = p;
    const int c = w->l->c;
    mpq_dwk_wgrad(t, pix, c, w->xs + (size_t)ow0 * w->l->sw * c, (ptrdiff_t)w->l->sw * c,
                  w->gr + (size_t)ow0 * c, c);
}

/* dx row (n, ih): for each column phase rx, input column sw*b + rx takes the output-gradient
 * pixels (a + dr, b + dc) of the taps that read it, times their weights. */
static void dx_row(const mpq_dwconv *l, const float *wt, const float *dy, int n, int ih, int store,
                   float *dx)
{
    const int c = l->c, ry = ih % l->sh, a = ih / l->sh;
    const float *dys = dy + (size_t)n * l->ho * l->wo * c;
    float *row = dx + ((size_t)n * l->h + ih) * l->w * c;
    for (int rx = 0; rx < l->sw && rx < l->w; rx++) {
        const int nb = (l->w - rx + l->sw - 1) / l->sw;
        int dmin = 0, dmax = 0, any = 0;
        for (int kw = 0; kw < l->kw; kw++) {
            if ((rx + l->pw - kw) % l->sw) continue;
            const int d = (rx + l->pw - kw) / l->sw;
            dmin = any && dmin < d ? dmin : d;
            dmax = any && dmax > d ? dmax : d;
            any = 1;
        }
        int lo = -dmin > 0 ? -dmin : 0, hi = l->wo - dmax < nb ? l->wo - dmax : nb;
        if (hi < lo) hi = lo;
        for (int b0 = 0; b0 < nb;) {
            /* the interior run [lo, hi) as one call, the other columns one by one */
            const int run = b0 == lo && hi > lo ? hi - lo : 1;
            mpq_dwk_taps t;
            t.n = 0;
            for (int kh = 0; kh < l->kh; kh++) {
                if ((ry + l->ph - kh) % l->sh) continue;
                const int oh = a + (ry + l->ph - kh) / l->sh;
                if (oh < 0 || oh >= l->ho) continue;
                for (int kw = 0; kw < l->kw; kw++) {
                    if ((rx + l->pw - kw) % l->sw) continue;
                    const int dc = (rx + l->pw - kw) / l->sw;
                    if (run == 1 && (b0 + dc < 0 || b0 + dc >= l->wo)) continue;
                    t.off[t.n] = ((ptrdiff_t)oh * l->wo + dc) * c;
                    t.w[t.n] = wt + ((size_t)kh * l->kw + kw) * c;
                    t.n++;
                }
            }
            mpq_dwk_forward(&t, run, c, dys + (size_t)b0 * c, c,
                            row + ((size_t)b0 * l->sw + rx) * c, (ptrdiff_t)l->sw * c, store, NULL);
            b0 += run;
        }
    }
}

/* Partial p's dW (KH*KW, C) and db (C) over output rows [rows*p/P, rows*(p+1)/P); with dx, also
 * the input-gradient rows of each output row (input rows [sh*oh, sh*(oh + 1)), the last output
 * row of an image taking the rest) right after its weight gradient, while the rows of dy they
 * read are still in cache: dy comes from memory once. Every dx row is written by one part, as
 * `store` says (MPQ_DWK_*). */
static void grad_part(const mpq_dwconv *l, const float *wt, int n_rows, int p, const float *x,
                      const float *dy, float *part, float *dx, int store)
{
    const int c = l->c;
    float *pdb = part + taps(l) * c;
    memset(part, 0, (taps(l) + 1) * c * sizeof *part);
    const int r0 = (int)((long long)n_rows * p / DW_PARTS);
    const int r1 = (int)((long long)n_rows * (p + 1) / DW_PARTS);
    for (int r = r0; r < r1; r++) {
        wg_ctx w = {l, x + (size_t)(r / l->ho) * l->h * l->w * c, dy + (size_t)r * l->wo * c};
        row_runs(l, wt, part, r % l->ho, wg_run, &w);
        for (int ow = 0; ow < l->wo; ow++) {
            const float *g = w.gr + (size_t)ow * c;
#pragma omp simd
            for (int i = 0; i < c; i++)
                pdb[i] += g[i];
        }
        if (!dx) continue;
        const int oh = r % l->ho, ih1 = oh == l->ho - 1 ? l->h : (oh + 1) * l->sh;
        for (int ih = oh * l->sh; ih < ih1 && ih < l->h; ih++)
            dx_row(l, wt, dy, r / l->ho, ih, store, dx);
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
    const int store = output_store(l, s, (size_t)l->h * l->w * c);
#pragma omp parallel for schedule(static)
    for (int p = 0; p < DW_PARTS; p++)
        grad_part(l, wt, n_rows, p, x, dy, parts + p * part_len, dx, store);
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
}

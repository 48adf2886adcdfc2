/* Depthwise 2-D convolution in NHWC (see dwconv.h) on the kernels of kernels/dwk.h: each output
 * row is an interior run of pixels whose taps all lie inside the input (one kernel call over the
 * run) and border pixels with their clipped tap lists; the input gradient runs per stride phase
 * as a direct sum over the output-gradient pixels that read each input pixel, row by row after
 * the weight gradient of the output rows that own them (dy read from memory once, or made a row
 * at a time by its source into a ring of rows in the scratch). The weights are first transposed
 * into s->ws as (KH, KW, C) so every tap is a contiguous channel vector.
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

/* Floats of the DW_PARTS partials of (dW (KH, KW, C), db (C)), rounded up to 64 bytes. */
static size_t parts_floats(const mpq_dwconv *l)
{
    return (DW_PARTS * (taps(l) + 1) * l->c + 15) & ~(size_t)15;
}

static int dy_ring_rows(const mpq_dwconv *l);

size_t mpq_dwconv_ws_floats(const mpq_dwconv *l, int n)
{
    /* transposed weights, then in backward the partials and each part's ring of output-gradient
     * rows (mpq_dwconv_backward_rows), or in forward the statistics of each output row (2C
     * doubles) */
    const size_t bwd = parts_floats(l) + DW_PARTS * (size_t)dy_ring_rows(l) * l->wo * l->c;
    const size_t fwd = 2 * (size_t)n * l->ho * 2 * l->c;
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

/* The lines that the next output row reads first from memory (the input rows it adds to this
 * row's; in backward also the output-gradient rows its input gradient adds) go to L2 along this
 * row's forward tiles (mpq_dwk_ahead), so that they arrive while this row computes: row by row
 * in address order, far ahead of their use, where the hardware prefetchers see only the
 * kernels' pixel-strided walks (and the kernels' own prefetch of their next tile then finds them
 * in L2). Measured on Zen 4, batch 32, one thread, three interleaved pairs, forward: 112x112x32
 * 8.4-10.9 -> 6.5-7.6 ms, 112x112x96 stride 2 18.2-20.2 -> 13.1-14.6, 56x56x144 10.1-12.3 ->
 * 6.5-7.3, 28x28x192 3.8-4.5 -> 2.3-2.6; backward: 112x112x96 stride 2 29.9-31.0 ->
 * 19.6-22.3, 56x56x144 stride 2 11.1-12.3 -> 7.0-8.3, and at stride 1 (once the weight
 * gradient kept its accumulators in registers; before, it lost there) 112x112x32 16.1-16.9 ->
 * 11.9-12.4, 56x56x144 15.8-16.4 -> 12.2-13.8, 28x28x192 5.6-5.7 -> 4.3-4.6, the 14x14 and 7x7
 * layers unchanged. Only for tensors past the caches (the streamed ones). */

/* Rows [r0, r1) of one image's tensor of rows of `row` floats as the lines a->at[i]. */
static void ahead_rows(mpq_dwk_ahead *a, int i, const float *image, int r0, int r1, size_t row)
{
    a->at[i] = (const char *)(image + (size_t)r0 * row);
    a->lines[i] = r1 > r0 ? ((size_t)(r1 - r0) * row * sizeof(float) + 63) / 64 : 0;
}

/* Input rows [*a, *b) that output row oh reads (clipped to the image). */
static void input_rows(const mpq_dwconv *l, int oh, int *a, int *b)
{
    const int a0 = oh * l->sh - l->ph, b0 = a0 + l->kh;
    *a = a0 > 0 ? a0 : 0;
    *b = b0 < l->h ? b0 : l->h;
}

/* The input rows that output row r + 1 (of all n * ho rows) adds to those of row r, as a->at[0],
 * to be spread over `tiles` pixel tiles. */
static void ahead_input(const mpq_dwconv *l, int n, int r, const float *x, size_t tiles,
                        mpq_dwk_ahead *a)
{
    *a = (mpq_dwk_ahead){.tiles = tiles};
    if (r + 1 >= n * l->ho) return;
    const int oh = (r + 1) % l->ho;
    int a1, b1;
    input_rows(l, oh, &a1, &b1);
    if (oh > 0) { /* the same image: only what row r did not read */
        int a0, b0;
        input_rows(l, oh - 1, &a0, &b0);
        if (a1 < b0) a1 = b0;
    }
    ahead_rows(a, 0, x + (size_t)((r + 1) / l->ho) * l->h * l->w * l->c, a1, b1,
               (size_t)l->w * l->c);
}

/* The pixel tiles of `runs` forward calls over `pix` pixels. */
static size_t tiles_of(int runs, int pix)
{
    const int tile = mpq_dwk_tile_pixels();
    return pix > 0 ? (size_t)runs * (size_t)((pix + tile - 1) / tile) : 0;
}

typedef struct fwd_ctx {
    const mpq_dwconv *l;
    const float *xs;
    float *yr;
    int store;               /* MPQ_DWK_* */
    const mpq_dwk_stats *st; /* the row's statistics, or NULL */
    mpq_dwk_ahead *ahead;    /* the next row's lines (interior runs), or NULL */
} fwd_ctx;

static void fwd_run(void *p, const mpq_dwk_taps *t, int ow0, int pix)
{
    const fwd_ctx *f = p;
    const int c = f->l->c;
    mpq_dwk_forward(t, pix, c, f->xs + (size_t)ow0 * f->l->sw * c, (ptrdiff_t)f->l->sw * c,
                    f->yr + (size_t)ow0 * c, c, f->store, f->st, pix > 1 ? f->ahead : NULL);
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
    int lo, hi; /* the interior run: the pixel tiles the next row's lines are spread over */
    interior(l->wo, l->w, l->kw, l->sw, l->pw, &lo, &hi);
    const size_t row_tiles = tiles_of(1, hi - lo);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < s->n * l->ho; r++) {
        const mpq_dwk_stats st = {rows + (size_t)r * 2 * c, shift};
        mpq_dwk_ahead a;
        fwd_ctx f = {l,
                     x + (size_t)(r / l->ho) * l->h * l->w * c,
                     y + (size_t)r * l->wo * c,
                     b ? MPQ_DWK_ADD : store,
                     sums ? &st : NULL,
                     NULL};
        if (store == MPQ_DWK_STREAM) {
            ahead_input(l, s->n, r, x, row_tiles, &a);
            f.ahead = &a;
        }
        if (b)
            for (int ow = 0; ow < l->wo; ow++)
                memcpy(f.yr + (size_t)ow * c, b, (size_t)c * sizeof *b);
        if (sums) memset(st.sums, 0, 2 * (size_t)c * sizeof *st.sums);
        row_runs(l, wt, NULL, r % l->ho, fwd_run, &f);
        if (f.ahead) mpq_dwk_ahead_rest(&a);
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

/* The last output-gradient row that the input-gradient rows of output row oh read. */
static int dx_last_dy_row(const mpq_dwconv *l, int oh)
{
    const int ih_last = (oh == l->ho - 1 ? l->h : (oh + 1) * l->sh) - 1;
    const int last = (ih_last + l->ph) / l->sh;
    return last < l->ho - 1 ? last : l->ho - 1;
}

/* The output-gradient rows [*q0, *q1] that the backward of output row oh reads: row oh for its
 * weight gradient; with dx, also those its input-gradient rows read (input row ih takes the rows
 * q with q * sh - ph + kh = ih). */
static void dy_rows_of(const mpq_dwconv *l, int oh, int with_dx, int *q0, int *q1)
{
    *q0 = *q1 = oh;
    if (!with_dx) return;
    const int a = oh * l->sh + l->ph - l->kh + 1, first = a > 0 ? (a + l->sh - 1) / l->sh : 0;
    const int last = dx_last_dy_row(l, oh);
    if (first < *q0) *q0 = first;
    if (last > *q1) *q1 = last;
}

/* The most output-gradient rows that one output row's backward reads at once. */
static int dy_ring_rows(const mpq_dwconv *l)
{
    int most = 1;
    for (int oh = 0; oh < l->ho; oh++) {
        int q0, q1;
        dy_rows_of(l, oh, 1, &q0, &q1);
        if (q1 - q0 + 1 > most) most = q1 - q0 + 1;
    }
    return most;
}

/* Where a part's backward reads dy: the whole tensor, or rows made on demand (src) into a ring
 * of `slots` rows, row q of image `img` in slot q % slots, rows up to next - 1 made. */
typedef struct dy_view {
    const float *dy; /* (N, Ho, Wo, C), or NULL: src */
    const mpq_dy_src *src;
    float *ring;
    int slots, img, next;
} dy_view;

/* Image i's dy as the kernels index it: row q at (row_slot(v, q) * Wo) * C. */
static const float *dy_image(const mpq_dwconv *l, const dy_view *v, int i)
{
    return v->dy ? v->dy + (size_t)i * l->ho * l->wo * l->c : v->ring;
}

static int row_slot(const dy_view *v, int q) { return v->dy ? q : q % v->slots; }

/* Makes rows [q0, q1] of image i's dy ready (from the source: the ones not in the ring yet). */
static void dy_ready(const mpq_dwconv *l, dy_view *v, int i, int q0, int q1)
{
    if (v->dy) return;
    MPQ_ASSERT(q1 - q0 < v->slots, "dwconv: %d dy rows for a ring of %d", q1 - q0 + 1, v->slots);
    if (i != v->img || v->next < q0) v->img = i, v->next = q0;
    const size_t row = (size_t)l->wo * l->c;
    for (; v->next <= q1; v->next++) {
        const size_t p0 = ((size_t)i * l->ho + v->next) * l->wo;
        v->src->rows(v->src->ctx, p0, p0 + l->wo, v->ring + (size_t)row_slot(v, v->next) * row);
    }
}

/* dx row (n, ih): for each column phase rx, input column sw*b + rx takes the output-gradient
 * pixels (a + dr, b + dc) of the taps that read it, times their weights. */
static void dx_row(const mpq_dwconv *l, const float *wt, const dy_view *v, int n, int ih, int store,
                   float *dx, mpq_dwk_ahead *next)
{
    const int c = l->c, ry = ih % l->sh, a = ih / l->sh;
    const float *dys = dy_image(l, v, n);
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
                    t.off[t.n] = ((ptrdiff_t)row_slot(v, oh) * l->wo + dc) * c;
                    t.w[t.n] = wt + ((size_t)kh * l->kw + kw) * c;
                    t.n++;
                }
            }
            mpq_dwk_forward(&t, run, c, dys + (size_t)b0 * c, c,
                            row + ((size_t)b0 * l->sw + rx) * c, (ptrdiff_t)l->sw * c, store, NULL,
                            run > 1 ? next : NULL);
            b0 += run;
        }
    }
}

/* Partial p's dW (KH*KW, C) and db (C) over output rows [rows*p/P, rows*(p+1)/P); with dx, also
 * the input-gradient rows of each output row (input rows [sh*oh, sh*(oh + 1)), the last output
 * row of an image taking the rest) right after its weight gradient, while the rows of dy they
 * read are still in cache: dy comes from memory once (or from its source, each row once but the
 * rows before the part's first that its dx rows read). Every dx row is written by one part, as
 * `store` says (MPQ_DWK_*). */
static void grad_part(const mpq_dwconv *l, const float *wt, int n_rows, int p, const float *x,
                      dy_view *v, float *part, float *dx, int store)
{
    const int c = l->c;
    float *pdb = part + taps(l) * c;
    memset(part, 0, (taps(l) + 1) * c * sizeof *part);
    const int r0 = (int)((long long)n_rows * p / DW_PARTS);
    const int r1 = (int)((long long)n_rows * (p + 1) / DW_PARTS);
    for (int r = r0; r < r1; r++) {
        const int i = r / l->ho, oh = r % l->ho;
        int q0, q1;
        dy_rows_of(l, oh, dx != NULL, &q0, &q1);
        dy_ready(l, v, i, q0, q1);
        const float *dys = dy_image(l, v, i);
        wg_ctx w = {l, x + (size_t)i * l->h * l->w * c, dys + (size_t)row_slot(v, oh) * l->wo * c};
        row_runs(l, wt, part, oh, wg_run, &w);
        for (int ow = 0; ow < l->wo; ow++) {
            const float *g = w.gr + (size_t)ow * c;
#pragma omp simd
            for (int k = 0; k < c; k++)
                pdb[k] += g[k];
        }
        if (!dx) continue;
        const int ih1 = oh == l->ho - 1 ? l->h : (oh + 1) * l->sh;
        mpq_dwk_ahead a, *next = NULL;
        /* the next row's x and dy lines */
        if (store == MPQ_DWK_STREAM && r + 1 < r1) {
            const int oh1 = (r + 1) % l->ho;
            /* spread over the interior runs of this row's input-gradient rows */
            ahead_input(l, n_rows / l->ho, r, x,
                        tiles_of((ih1 - oh * l->sh) * l->sw, l->w / l->sw - l->pw), &a);
            if (v->dy)
                ahead_rows(&a, 1, dy_image(l, v, (r + 1) / l->ho),
                           oh1 > 0 ? dx_last_dy_row(l, oh1 - 1) + 1 : 0, dx_last_dy_row(l, oh1) + 1,
                           (size_t)l->wo * c);
            next = &a;
        }
        for (int ih = oh * l->sh; ih < ih1 && ih < l->h; ih++)
            dx_row(l, wt, v, i, ih, store, dx, next);
        if (next) mpq_dwk_ahead_rest(next);
    }
}

/* The backward with dy from memory or (dy NULL) from src. */
static void backward(const mpq_dwconv *l, const mpq_step *s, const float *x, const float *dy,
                     const mpq_dy_src *src, float *dx)
{
    const int c = l->c, n_rows = s->n * l->ho, slots = dy_ring_rows(l);
    const size_t t = taps(l), part_len = (t + 1) * c;
    float *wt = s->ws, *parts = s->ws + wt_floats(l), *rings = parts + parts_floats(l);
    float *dw = mpq_at(s->grad, l->weight);
    MPQ_ASSERT(s->ws_floats >= mpq_dwconv_ws_floats(l, s->n), "dwconv: workspace too small");
    transpose_weights(l, mpq_cat(s->wq, l->weight), wt);
    const int store = output_store(l, s, (size_t)l->h * l->w * c);
#pragma omp parallel for schedule(static)
    for (int p = 0; p < DW_PARTS; p++) {
        dy_view v = {dy, src, rings + (size_t)p * slots * l->wo * c, slots, -1, 0};
        grad_part(l, wt, n_rows, p, x, &v, parts + p * part_len, dx, store);
    }
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

void mpq_dwconv_backward(const mpq_dwconv *l, const mpq_step *s, const float *x, const float *dy,
                         float *dx)
{
    backward(l, s, x, dy, NULL, dx);
}

void mpq_dwconv_backward_rows(const mpq_dwconv *l, const mpq_step *s, const float *x,
                              const mpq_dy_src *src, float *dx)
{
    MPQ_ASSERT(src && src->rows, "dwconv: dy by rows needs a source");
    backward(l, s, x, NULL, src, dx);
}

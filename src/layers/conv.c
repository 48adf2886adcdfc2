/* 2-D convolution in NHWC (see conv.h).
 * im2col path: column layout per output pixel (groups, KH, KW, Cin/groups), so group g's patch
 * is a contiguous run of K = KH*KW*Cin/groups floats at offset g*K, in W's (KH, KW, Cin/g) order,
 * and each group is one strided GEMM over the whole chunk. Chunks are runs of output rows (n, oh)
 * of all samples, sized so the column buffer stays near CONV_COL_FLOATS; they live in s->ws.
 * Direct path: the kernels read x and dy in place, clipping the taps at the borders (the padding
 * is never copied); s->ws holds a row of zeros, the repacked weights and, in backward, the
 * weight-gradient partial sums of fixed sample ranges (at most CONV_PARTS, each of at least
 * CONV_PART_PIXELS output pixels) and, for 1x1 stride-1 layers, a band of dy per range (when dy
 * comes from a row source).
 * No allocation. Threading: BLIS inside sgemm; OpenMP over output rows (each output element
 * written by one thread) and over the fixed sample ranges, whose partial weight gradients are
 * added in range order: results do not depend on the thread count. */
#include "layers/conv.h"

#include <omp.h>
#include <string.h>

#include "core/err.h"
#include "kernels/colsum.h"
#include "kernels/dconv.h"
#include "kernels/gemm.h"

enum {
    CONV_COL_FLOATS = 2 * 1024 * 1024,    /* 8 MB column buffer per chunk */
    CONV_PARTS = 16,                      /* sample ranges of the direct weight gradient, */
    CONV_PART_PIXELS = 256,               /* each with at least this many output pixels */
    CONV_BAND_FLOATS = 48 * 1024,         /* floats of outputs (or input + gradient) per band */
    CONV_DIRECT_MAX_KC = 160 * 1024,      /* larger weight tensors run as BLIS GEMMs, */
    CONV_DIRECT_MAX_KC_SMALL = 96 * 1024, /* backward on images under CONV_BIG_IMAGE pixels, */
    CONV_DIRECT_MAX_KC_FWD = 640 * 1024,  /* forward on larger images */
    CONV_BIG_IMAGE = 14 * 14,
};

/* 1x1, stride 1, no padding: the input is the column matrix. */
static int is_direct(const mpq_conv *l)
{
    return l->kh == 1 && l->kw == 1 && l->sh == 1 && l->sw == 1 && l->ph == 0 && l->pw == 0;
}

int mpq_conv_direct_ok(const mpq_conv *l)
{
    return l->groups == 1 && l->kh * l->kw <= MPQ_CONV_MAX_TAPS;
}

/* The direct kernels win where the GEMMs are skinny: few channels, or small images (measured
 * on Zen 5, interleaved per layer against BLIS: every ResNet layer up to 128 channels and the
 * MobileNetV2 1x1 layers up to 576 x 160 both ways; forward also on 14x14 ResNet-18 layers of
 * 256 channels). Large weight tensors go to BLIS, whose blocking keeps them in cache; the
 * direct weight gradient keeps partial sums of the whole tensor. */
static mpq_conv_algo pick_algo(const mpq_conv *l, int backward)
{
    if (!mpq_dconv_vec() || !mpq_conv_direct_ok(l)) return MPQ_CONV_IM2COL;
    const size_t kc = (size_t)l->kh * l->kw * l->cin * l->cout;
    const int big_image = l->ho * l->wo >= CONV_BIG_IMAGE;
    const size_t limit = backward ? (big_image ? CONV_DIRECT_MAX_KC : CONV_DIRECT_MAX_KC_SMALL)
                                  : (big_image ? CONV_DIRECT_MAX_KC_FWD : CONV_DIRECT_MAX_KC);
    return kc <= limit ? MPQ_CONV_DIRECT : MPQ_CONV_IM2COL;
}

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
    l->algo = pick_algo(l, 0);
    l->algo_bwd = pick_algo(l, 1);
    l->stream_bytes = MPQ_STREAM_BYTES;
    return MPQ_OK;
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

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Direct-path scratch: [zeros (what clipped taps read) | repacked W | weight-gradient partials
 * (backward) or per-row statistics sums (forward) | the output gradient of a band per sample
 * range (backward of 1x1 stride-1 layers, when it comes from a row source)]. */
typedef struct direct_ws {
    float *zeros, *wpack, *parts, *stage;
    double *rows;
    size_t stage_floats; /* per sample range */
} direct_ws;

/* Sample ranges of the direct weight gradient: a function of the batch and the layer only. */
static int wgrad_parts(const mpq_conv *l, int n)
{
    const long long pixels = (long long)n * l->ho * l->wo;
    long long parts = pixels / CONV_PART_PIXELS;
    if (parts > CONV_PARTS) parts = CONV_PARTS;
    if (parts > n) parts = n;
    return parts < 1 ? 1 : (int)parts;
}

/* Work items of the direct kernels over n images of `rows` output rows: several whole images, or
 * a band of rows of one image, so an item's outputs (or inputs and gradients) stay near
 * CONV_BAND_FLOATS and the weights of a reduction slice are reused across it; items are cut
 * smaller until there are `want` of them (or they are single rows). */
typedef struct bands {
    int imgs, rows;       /* per item */
    int row_items, total; /* items per image block, items in all */
} bands;

static bands make_bands(int n, int rows, size_t row_floats, int want)
{
    bands b;
    const size_t per_img = (size_t)rows * row_floats;
    b.imgs = per_img >= CONV_BAND_FLOATS ? 1 : (int)(CONV_BAND_FLOATS / per_img);
    b.rows =
        b.imgs > 1 || row_floats >= CONV_BAND_FLOATS ? rows : (int)(CONV_BAND_FLOATS / row_floats);
    if (b.imgs > n) b.imgs = n;
    if (b.rows > rows) b.rows = rows;
    for (;;) {
        b.row_items = (rows + b.rows - 1) / b.rows;
        b.total = (n + b.imgs - 1) / b.imgs * b.row_items;
        if (b.total >= want) break;
        if (b.imgs > 1)
            b.imgs = (b.imgs + 1) / 2;
        else if (b.rows > 1)
            b.rows = (b.rows + 1) / 2;
        else
            break;
    }
    return b;
}

/* Item k of b (over images [0, n)): its first image and row, and the geometry's counts. */
static void band_item(const bands *b, int n, int rows, int k, int *i0, int *r0, mpq_dconv_geom *g)
{
    *i0 = k / b->row_items * b->imgs;
    *r0 = k % b->row_items * b->rows;
    g->imgs = n - *i0 < b->imgs ? n - *i0 : b->imgs;
    g->rows = rows - *r0 < b->rows ? rows - *r0 : b->rows;
    g->row0 = *r0;
}

/* The weight gradient's bands of a sample range of np samples: input and gradient rows. */
static bands wgrad_bands(const mpq_conv *l, int np)
{
    return make_bands(np, l->ho, (size_t)l->wo * l->cout + (size_t)l->sh * l->w * l->cin, 1);
}

/* Floats of the direct path's scratch blocks in sz; their sum. The third block holds the
 * weight-gradient partials in backward, the per-row statistics sums (doubles) in forward; the
 * fourth, in backward of 1x1 stride-1 layers, the largest band of dy of each sample range. */
static size_t direct_sizes(const mpq_conv *l, int n, int backward, size_t sz[4])
{
    const size_t kc = (size_t)l->kh * l->kw * l->cin * l->cout;
    const int parts = wgrad_parts(l, n);
    sz[0] = round16((size_t)(l->cin > l->cout ? l->cin : l->cout));
    sz[1] = round16(kc);
    sz[2] = backward ? (size_t)parts * round16(kc) : round16((size_t)n * l->ho * 4 * l->cout);
    sz[3] = 0;
    if (backward && is_direct(l)) {
        const bands b = wgrad_bands(l, (n + parts - 1) / parts);
        sz[3] = (size_t)parts * round16((size_t)b.imgs * b.rows * l->wo * l->cout);
    }
    return sz[0] + sz[1] + sz[2] + sz[3];
}

static direct_ws direct_views(const mpq_conv *l, const mpq_step *s, int backward)
{
    size_t sz[4];
    MPQ_ASSERT(s->ws_floats >= direct_sizes(l, s->n, backward, sz), "conv: workspace too small");
    direct_ws v;
    v.zeros = s->ws;
    v.wpack = v.zeros + sz[0];
    v.parts = v.wpack + sz[1];
    v.rows = (double *)(void *)v.parts; /* 64-byte aligned: s->ws is, sz[0..1] are round16 */
    v.stage = v.parts + sz[2];
    v.stage_floats = sz[3] / (size_t)wgrad_parts(l, s->n);
    memset(v.zeros, 0, sz[0] * sizeof *v.zeros);
    return v;
}

static size_t algo_ws(const mpq_conv *l, mpq_conv_algo a, int n, int backward)
{
    size_t sz[4];
    if (a == MPQ_CONV_DIRECT) return direct_sizes(l, n, backward, sz);
    if (is_direct(l)) return 0;
    return (size_t)chunk_rows(l, n) * l->wo * col_stride(l);
}

size_t mpq_conv_ws_floats(const mpq_conv *l, int n)
{
    if (n < 1) return 0;
    const size_t f = algo_ws(l, l->algo, n, 0), b = algo_ws(l, l->algo_bwd, n, 1);
    return f > b ? f : b;
}

double mpq_conv_macs(const mpq_conv *l)
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

/* ---- direct path ---------------------------------------------------------------------------- */

/* The outputs o in [*lo, *hi) of an axis (out outputs, stride st) whose input o*st + d lies in
 * [0, in). */
static void reading_range(int in, int out, int st, int d, int *lo, int *hi)
{
    *lo = d >= 0 ? 0 : (-d + st - 1) / st;
    *hi = in - 1 - d < 0 ? 0 : (in - 1 - d) / st + 1;
    if (*hi > out) *hi = out;
    if (*lo > *hi) *lo = *hi;
}

/* Forward geometry over the unpadded input, for one output row: taps (kh, kw) of (KH, KW, Cin)
 * at input offset (kh - ph, kw - pw), clipped where they fall in the padding (clip: 4 ints per
 * tap; the geometry's clip stays NULL when no tap ever does). */
static mpq_dconv_geom fwd_geom(const mpq_conv *l, const float *zeros, ptrdiff_t *off, int *clip)
{
    int clipped = 0;
    for (int kh = 0; kh < l->kh; kh++)
        for (int kw = 0; kw < l->kw; kw++) {
            const int t = kh * l->kw + kw, *c = clip + 4 * t;
            off[t] = ((ptrdiff_t)(kh - l->ph) * l->w + kw - l->pw) * l->cin;
            reading_range(l->h, l->ho, l->sh, kh - l->ph, clip + 4 * t, clip + 4 * t + 1);
            reading_range(l->w, l->wo, l->sw, kw - l->pw, clip + 4 * t + 2, clip + 4 * t + 3);
            clipped |= c[0] > 0 || c[1] < l->ho || c[2] > 0 || c[3] < l->wo;
        }
    return (mpq_dconv_geom){.rows = 1,
                            .pix = l->wo,
                            .in_rs = (ptrdiff_t)l->sh * l->w * l->cin,
                            .in_ps = (ptrdiff_t)l->sw * l->cin,
                            .out_rs = (ptrdiff_t)l->wo * l->cout,
                            .out_ps = l->cout,
                            .imgs = 1,
                            .in_is = (ptrdiff_t)l->h * l->w * l->cin,
                            .out_is = (ptrdiff_t)l->ho * l->wo * l->cout,
                            .n_taps = l->kh * l->kw,
                            .off = off,
                            .c = l->cin,
                            .nv = l->cout,
                            .clip = clipped ? clip : NULL,
                            .zeros = zeros};
}

/* wt (K, Cout) = W (Cout, K)^T. */
static void transpose(int rows, int cols, const float *a, float *t)
{
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < rows; i++)
            t[(size_t)j * rows + i] = a[(size_t)i * cols + j];
}

/* The direct forward; with sums, also the statistics of y per sample (mpq_conv_forward_sums):
 * each band sums its rows into the per-row block of the scratch, then the rows of each sample are
 * added in order. */
static void forward_direct(const mpq_conv *l, const mpq_step *s, const float *x, float *y,
                           const float *shift, double *sums)
{
    const direct_ws v = direct_views(l, s, 0);
    const float *b = l->bias.n ? mpq_cat(s->wq, l->bias) : NULL;
    const int k = l->kh * l->kw * l->cin;
    const size_t row_sums = 2 * (size_t)l->cout;
    const bands bd = make_bands(s->n, l->ho, (size_t)l->wo * l->cout, 4 * omp_get_max_threads());
    ptrdiff_t off[MPQ_CONV_MAX_TAPS];
    int clip[4 * MPQ_CONV_MAX_TAPS];
    transpose(l->cout, k, mpq_cat(s->wq, l->weight), v.wpack);
    mpq_dconv_geom g0 = fwd_geom(l, v.zeros, off, clip);
    g0.shift = shift;
    g0.stream = mpq_step_streams(s, (size_t)l->ho * l->wo * l->cout, l->stream_bytes);
#pragma omp parallel for schedule(static)
    for (int it = 0; it < bd.total; it++) {
        mpq_dconv_geom g = g0;
        int i, oh;
        band_item(&bd, s->n, l->ho, it, &i, &oh, &g);
        const size_t row = (size_t)i * l->ho + oh; /* an item's rows are consecutive */
        float *yr = y + row * l->wo * l->cout;
        if (b)
            for (int p = 0; p < g.imgs * g.rows * l->wo; p++)
                copy_floats(yr + (size_t)p * l->cout, b, (size_t)l->cout);
        if (sums) {
            g.sums = v.rows + row * row_sums;
            memset(g.sums, 0, (size_t)g.imgs * g.rows * row_sums * sizeof *g.sums);
        }
        mpq_dconv_forward(&g, x + ((size_t)i * l->h + (size_t)oh * l->sh) * l->w * l->cin, v.wpack,
                          yr, b != NULL);
    }
    if (sums) mpq_colsum_blocks(s->n, l->ho, row_sums, v.rows, sums);
}

/* The input gradient's geometry (one phase of nb input pixels per row at the input's stride,
 * nt taps of dy): a forward over dy with the phase's packed weights (taps, Cout, Cin); bands set
 * imgs, rows and row0. A 1x1 stride-1 layer is one phase of one tap, W itself its weights. */
static mpq_dconv_geom dgrad_geom(const mpq_conv *l, const mpq_step *s, int nb, int nt,
                                 const ptrdiff_t *off, const int *clip, const float *zeros)
{
    return (mpq_dconv_geom){.rows = 1,
                            .pix = nb,
                            .in_rs = (ptrdiff_t)l->wo * l->cout,
                            .in_ps = l->cout,
                            .out_rs = (ptrdiff_t)l->sh * l->w * l->cin,
                            .out_ps = (ptrdiff_t)l->sw * l->cin,
                            .imgs = 1,
                            .in_is = (ptrdiff_t)l->ho * l->wo * l->cout,
                            .out_is = (ptrdiff_t)l->h * l->w * l->cin,
                            .n_taps = nt,
                            .off = off,
                            .c = l->cout,
                            .nv = l->cin,
                            .clip = clip,
                            .zeros = zeros,
                            .stream =
                                mpq_step_streams(s, (size_t)l->h * l->w * l->cin, l->stream_bytes)};
}

/* dW += dy^T (patches of x): fixed sample ranges into partials, added in order into the first,
 * which is then transposed into dW. With dx (1x1 stride-1 layers, is_direct), each band's input
 * gradient is written (accumulate 0) or added (1) right after its weight gradient, so dy comes
 * from memory once; with src (dy NULL), each band of dy is first written by src into the sample
 * range's stage, and never goes to memory. */
static void wgrad_direct(const mpq_conv *l, const mpq_step *s, const direct_ws *v, const float *x,
                         const float *dy, const mpq_dy_src *src, float *dx, int accumulate)
{
    const size_t kc = (size_t)l->kh * l->kw * l->cin * l->cout, stride = round16(kc);
    const int n = s->n, parts = wgrad_parts(l, n);
    ptrdiff_t off[MPQ_CONV_MAX_TAPS];
    int clip[4 * MPQ_CONV_MAX_TAPS];
    const mpq_dconv_geom g0 = fwd_geom(l, v->zeros, off, clip);
    const ptrdiff_t dx_off = 0;
    const mpq_dconv_geom gd0 = dgrad_geom(l, s, l->w, 1, &dx_off, NULL, v->zeros);
    const float *w = mpq_cat(s->wq, l->weight);
    MPQ_ASSERT((!dx && !src) || is_direct(l),
               "conv: the band-wise input gradient is for 1x1 layers");
#pragma omp parallel for schedule(static)
    for (int p = 0; p < parts; p++) {
        float *part = v->parts + (size_t)p * stride;
        const int p0 = n * p / parts, np = n * (p + 1) / parts - p0;
        const bands bd = wgrad_bands(l, np);
        float *stage = src ? v->stage + (size_t)p * v->stage_floats : NULL;
        zero_floats(part, kc);
        for (int it = 0; it < bd.total; it++) {
            mpq_dconv_geom g = g0;
            int i, r0;
            band_item(&bd, np, l->ho, it, &i, &r0, &g);
            i += p0;
            const size_t px = ((size_t)i * l->ho + r0) * l->wo; /* the band's first dy pixel */
            const float *dyb = dy ? dy + px * l->cout : stage;
            if (src) {
                const size_t np_ = (size_t)g.imgs * g.rows * l->wo;
                MPQ_ASSERT(np_ * l->cout <= v->stage_floats, "conv: band past its stage");
                src->rows(src->ctx, px, px + np_, stage);
            }
            mpq_dconv_wgrad(&g, x + ((size_t)i * l->h + (size_t)r0 * l->sh) * l->w * l->cin, dyb,
                            part);
            if (dx) {
                mpq_dconv_geom gd = gd0;
                gd.imgs = g.imgs, gd.rows = g.rows, gd.row0 = g.row0;
                mpq_dconv_forward(&gd, dyb, w, dx + ((size_t)i * l->h + r0) * l->w * l->cin,
                                  accumulate);
            }
        }
    }
    enum { SPAN = 4096 };
#pragma omp parallel for schedule(static)
    for (size_t j0 = 0; j0 < kc; j0 += SPAN) {
        const size_t j1 = j0 + SPAN < kc ? j0 + SPAN : kc;
        for (int q = 1; q < parts; q++) {
            float *restrict sum = v->parts;
            const float *restrict part = v->parts + (size_t)q * stride;
#pragma omp simd
            for (size_t j = j0; j < j1; j++)
                sum[j] += part[j];
        }
    }
    float *dw = mpq_at(s->grad, l->weight);
    const int k = l->kh * l->kw * l->cin;
#pragma omp parallel for schedule(static)
    for (int co = 0; co < l->cout; co++)
        for (int j = 0; j < k; j++)
            dw[(size_t)co * k + j] += v->parts[(size_t)j * l->cout + co];
}

/* The taps of stride phase (ry, rx) of the input gradient: input pixel (sh*a + ry, sw*b + rx)
 * takes the output gradient at (a, b) + (dyo, dxo) of each tap where that lies in dy, times
 * W[:, kh, kw, :]. Writes the offsets, the clip table (nb pixels per row, na rows) and the packed
 * weights (taps, Cout, Cin); returns the tap count. */
static int dx_phase(const mpq_conv *l, int ry, int rx, int na, int nb, const float *w,
                    ptrdiff_t *off, int *clip, float *wb)
{
    int nt = 0;
    const int kin = l->kh * l->kw * l->cin;
    for (int kh = 0; kh < l->kh; kh++) {
        if ((ry + l->ph - kh) % l->sh) continue;
        const int dyo = (ry + l->ph - kh) / l->sh;
        for (int kw = 0; kw < l->kw; kw++) {
            if ((rx + l->pw - kw) % l->sw) continue;
            const int dxo = (rx + l->pw - kw) / l->sw;
            off[nt] = ((ptrdiff_t)dyo * l->wo + dxo) * l->cout;
            reading_range(l->ho, na, 1, dyo, clip + 4 * nt, clip + 4 * nt + 1);
            reading_range(l->wo, nb, 1, dxo, clip + 4 * nt + 2, clip + 4 * nt + 3);
            for (int co = 0; co < l->cout; co++)
                copy_floats(wb + ((size_t)nt * l->cout + co) * l->cin,
                            w + (size_t)co * kin + ((size_t)kh * l->kw + kw) * l->cin,
                            (size_t)l->cin);
            nt++;
        }
    }
    return nt;
}

/* dx = the transposed convolution of dy, phase by phase (each dx element written once). */
static void dgrad_direct(const mpq_conv *l, const mpq_step *s, const direct_ws *v, const float *dy,
                         float *dx, int accumulate)
{
    const float *w = mpq_cat(s->wq, l->weight);
    float *wb = v->wpack;
    for (int ry = 0; ry < l->sh && ry < l->h; ry++)
        for (int rx = 0; rx < l->sw && rx < l->w; rx++) {
            ptrdiff_t off[MPQ_CONV_MAX_TAPS];
            int clip[4 * MPQ_CONV_MAX_TAPS];
            const int na = (l->h - ry + l->sh - 1) / l->sh, nb = (l->w - rx + l->sw - 1) / l->sw;
            const int nt = dx_phase(l, ry, rx, na, nb, w, off, clip, wb);
            if (nt == 0 && accumulate) continue; /* no tap reaches this phase: dx += 0 */
            const mpq_dconv_geom g0 = dgrad_geom(l, s, nb, nt, off, clip, v->zeros);
            const bands bd = make_bands(s->n, na, (size_t)nb * l->cin, 4 * omp_get_max_threads());
#pragma omp parallel for schedule(static)
            for (int it = 0; it < bd.total; it++) {
                mpq_dconv_geom g = g0;
                int i, a;
                band_item(&bd, s->n, na, it, &i, &a, &g);
                mpq_dconv_forward(&g, dy + ((size_t)i * l->ho + a) * l->wo * l->cout, wb,
                                  dx + (((size_t)i * l->h + (size_t)a * l->sh + ry) * l->w + rx) *
                                           l->cin,
                                  accumulate);
            }
            wb += (size_t)nt * l->cout * l->cin;
        }
}

static void backward_direct(const mpq_conv *l, const mpq_step *s, const float *x, const float *dy,
                            float *dx, int accumulate)
{
    const direct_ws v = direct_views(l, s, 1);
    if (is_direct(l)) {
        wgrad_direct(l, s, &v, x, dy, NULL, dx, accumulate);
        return;
    }
    wgrad_direct(l, s, &v, x, dy, NULL, NULL, 0);
    if (dx) dgrad_direct(l, s, &v, dy, dx, accumulate);
}

/* ---- entry points ---------------------------------------------------------------------------- */

void mpq_conv_forward(const mpq_conv *l, const mpq_step *s, const float *x, float *y)
{
    const float *wq = mpq_cat(s->wq, l->weight);
    const float *b = l->bias.n ? mpq_cat(s->wq, l->bias) : NULL;
    if (l->algo == MPQ_CONV_DIRECT) {
        forward_direct(l, s, x, y, NULL, NULL);
        return;
    }
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

int mpq_conv_sums_ok(const mpq_conv *l) { return l->algo == MPQ_CONV_DIRECT; }

void mpq_conv_forward_sums(const mpq_conv *l, const mpq_step *s, const float *x, float *y,
                           const float *shift, double *sums)
{
    MPQ_ASSERT(mpq_conv_sums_ok(l) && shift && sums, "conv: statistics need the direct forward");
    forward_direct(l, s, x, y, shift, sums);
}

/* dW += dy^T col; if dcol: dcol = dy W (overwrites, may be col itself after dW is done). */
static void gemm_backward(const mpq_conv *l, const float *wq, float *dw, const float *dy,
                          const float *col, size_t kt, int m, float *dcol, int accumulate)
{
    const int cog = l->cout / l->groups, k = l->kh * l->kw * (l->cin / l->groups);
    for (int g = 0; g < l->groups; g++)
        mpq_sgemm(MPQ_T, MPQ_N, cog, k, m, 1.0f, dy + (size_t)g * cog, l->cout, col + (size_t)g * k,
                  (int)kt, 1.0f, dw + (size_t)g * cog * k, k);
    if (!dcol) return;
    for (int g = 0; g < l->groups; g++)
        mpq_sgemm(MPQ_N, MPQ_N, m, k, cog, 1.0f, dy + (size_t)g * cog, l->cout,
                  wq + (size_t)g * cog * k, k, accumulate ? 1.0f : 0.0f, dcol + (size_t)g * k,
                  (int)kt);
}

/* Backward with dx written (accumulate 0) or added to (1). */
static void backward(const mpq_conv *l, const mpq_step *s, const float *x, const float *dy,
                     float *dx, int accumulate)
{
    const float *wq = mpq_cat(s->wq, l->weight);
    float *dw = mpq_at(s->grad, l->weight);
    if (l->bias.n)
        mpq_colsum_add((size_t)s->n * l->ho * l->wo, l->cout, dy, (size_t)l->cout,
                       mpq_at(s->grad, l->bias));
    if (l->algo_bwd == MPQ_CONV_DIRECT) {
        backward_direct(l, s, x, dy, dx, accumulate);
        return;
    }
    if (is_direct(l)) {
        gemm_backward(l, wq, dw, dy, x, (size_t)l->cin, s->n * l->h * l->w, dx, accumulate);
        return;
    }
    const int total = s->n * l->ho, rows = chunk_rows(l, s->n);
    MPQ_ASSERT(s->ws_floats >= mpq_conv_ws_floats(l, s->n), "conv: workspace too small");
    if (dx && !accumulate) {
        const size_t len = (size_t)s->n * l->h * l->w * l->cin;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < len; i++)
            dx[i] = 0.0f;
    }
    for (int r0 = 0; r0 < total; r0 += rows) {
        const int r1 = r0 + rows < total ? r0 + rows : total;
        im2col(l, x, r0, r1, s->ws);
        gemm_backward(l, wq, dw, dy + (size_t)r0 * l->wo * l->cout, s->ws, col_stride(l),
                      (r1 - r0) * l->wo, dx ? s->ws : NULL, 0);
        if (dx) col2im(l, s->ws, r0, r1, dx);
    }
}

void mpq_conv_backward(const mpq_conv *l, const mpq_step *s, const float *x, const float *dy,
                       float *dx)
{
    backward(l, s, x, dy, dx, 0);
}

void mpq_conv_backward_add(const mpq_conv *l, const mpq_step *s, const float *x, const float *dy,
                           float *dx)
{
    backward(l, s, x, dy, dx, 1);
}

int mpq_conv_dy_rows_ok(const mpq_conv *l)
{
    return l->algo_bwd == MPQ_CONV_DIRECT && is_direct(l) && !l->bias.n;
}

void mpq_conv_backward_rows(const mpq_conv *l, const mpq_step *s, const float *x,
                            const mpq_dy_src *src, float *dx, int accumulate)
{
    MPQ_ASSERT(mpq_conv_dy_rows_ok(l), "conv: dy by rows needs a 1x1 stride-1 direct backward");
    const direct_ws v = direct_views(l, s, 1);
    wgrad_direct(l, s, &v, x, NULL, src, dx, accumulate);
}

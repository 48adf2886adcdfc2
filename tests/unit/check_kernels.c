/* kernels: per-column reductions against naive double loops (every op, a row stride wider than
 * the columns, more columns than one block, fewer rows than parts), their independence of the
 * thread count, the BLIS kernel-set selection, and the direct and depthwise convolution kernels
 * against their scalar twins (pixel and channel tails, vector-block tails, strides, reduction
 * slices, several images, no taps, accumulation, long tap lists). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/colsum.h"
#include "kernels/dconv.h"
#include "kernels/dwk.h"
#include "kernels/gemm.h"
#include "testutil.h"

enum { ROWS = 1003, COLS = 70, LD = 75 };

static void naive(mpq_colsum_op op, size_t rows, const float *a, const float *b,
                  const double *shift, double *out)
{
    for (int j = 0; j < COLS; j++) {
        double acc = 0.0;
        for (size_t i = 0; i < rows; i++) {
            const double v = a[i * LD + j];
            acc += op == MPQ_COLSUM_SUM     ? v
                   : op == MPQ_COLSUM_SQDEV ? (v - shift[j]) * (v - shift[j])
                                            : v * b[i * LD + j];
        }
        out[j] = acc;
    }
}

START_TEST(test_kernels_colsum_matches_naive)
{
    float *a = malloc(sizeof(float) * ROWS * LD), *b = malloc(sizeof(float) * ROWS * LD);
    double shift[COLS], out[COLS], ref[COLS];
    mpq_test_fill_uniform(a, (size_t)ROWS * LD, -1, 3, 1);
    mpq_test_fill_uniform(b, (size_t)ROWS * LD, -2, 2, 2);
    for (int j = 0; j < COLS; j++)
        shift[j] = 0.01 * j;
    const size_t rows[3] = {ROWS, 5, 0};
    for (int r = 0; r < 3; r++)
        for (int op = MPQ_COLSUM_SUM; op <= MPQ_COLSUM_DOT; op++) {
            mpq_colsum(op, rows[r], COLS, a, b, LD, shift, out);
            naive(op, rows[r], a, b, shift, ref);
            for (int j = 0; j < COLS; j++)
                ck_assert_msg(fabs(out[j] - ref[j]) <= 1e-9 * (1.0 + fabs(ref[j])),
                              "op %d rows %zu col %d: %.15g vs %.15g", op, rows[r], j, out[j],
                              ref[j]);
        }
    free(a), free(b);
}
END_TEST

START_TEST(test_kernels_colsum_is_independent_of_threads)
{
    float *a = malloc(sizeof(float) * ROWS * LD), *b = malloc(sizeof(float) * ROWS * LD);
    double shift[COLS] = {0.5}, one[COLS], two[COLS];
    mpq_test_fill_uniform(a, (size_t)ROWS * LD, -1, 3, 3);
    mpq_test_fill_uniform(b, (size_t)ROWS * LD, -1, 1, 4);
    for (int op = MPQ_COLSUM_SUM; op <= MPQ_COLSUM_DOT; op++) {
        mpq_gemm_set_threads(1);
        mpq_colsum(op, ROWS, COLS, a, b, LD, shift, one);
        mpq_gemm_set_threads(2);
        mpq_colsum(op, ROWS, COLS, a, b, LD, shift, two);
        ck_assert_mem_eq(one, two, sizeof one);
    }
    mpq_gemm_set_threads(1);
    free(a), free(b);
}
END_TEST

START_TEST(test_kernels_colsum_add_accumulates)
{
    float *a = malloc(sizeof(float) * ROWS * LD);
    float out[COLS];
    double ref[COLS];
    mpq_test_fill_uniform(a, (size_t)ROWS * LD, -1, 1, 5);
    for (int j = 0; j < COLS; j++)
        out[j] = 1.5f;
    mpq_colsum_add(ROWS, COLS, a, LD, out);
    naive(MPQ_COLSUM_SUM, ROWS, a, NULL, NULL, ref);
    for (int j = 0; j < COLS; j++)
        ck_assert_double_eq_tol(out[j], 1.5 + ref[j], 1e-4);
    free(a);
}
END_TEST

START_TEST(test_kernels_gemm_uses_fast_kernels_on_avx512_amd)
{
    const char *arch = mpq_gemm_arch();
    ck_assert_ptr_nonnull(arch);
#if defined(__x86_64__) && defined(__GNUC__)
    if (!getenv("BLIS_ARCH_TYPE") && __builtin_cpu_is("amd") && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        ck_assert_str_eq(arch, "skx");
#endif
    ck_assert_str_ne(arch, "");
}
END_TEST

/* One direct-convolution case: imgs x rows x pix outputs, taps on a 3-wide window of an input
 * with pixel stride ps * c, nv = nv_vecs vectors + nv_tail channels; clipped: a clip table (rows
 * 1.. of their images) cuts rows and pixels off the taps, one tap reads nothing, and every input
 * no unclipped tap reads is NaN, so a kernel that reads past the table fails. */
typedef struct dconv_case {
    int rows, pix, ps, c, n_taps, nv_vecs, nv_tail, imgs, clipped;
} dconv_case;

/* The clip table of a clipped case: tap t drops the first image row (t % 3 == 0), the last
 * (t % 3 == 2), two leading pixels (t / 3 odd), the last pixel (t odd); tap 4 reads nothing. */
static void dconv_clip(int rows, int pix, int n_taps, int row0, int *clip)
{
    for (int t = 0; t < n_taps; t++) {
        int *c = clip + 4 * t;
        c[0] = row0 + (t % 3 == 0);
        c[1] = row0 + rows - (t % 3 == 2);
        c[2] = t / 3 % 2 ? 2 : 0;
        c[3] = t == 4 ? 0 : pix - t % 2;
    }
}

/* in[i] = NaN wherever no (row, pixel, tap) of g that the clip table keeps reads. */
static void poison_unread(const mpq_dconv_geom *g, float *in, size_t nin)
{
    unsigned char *read = calloc(nin, 1);
    const int imgs = g->imgs ? g->imgs : 1;
    for (int r = 0; r < imgs * g->rows; r++) {
        const ptrdiff_t row = (r / g->rows) * g->in_is + (r % g->rows) * g->in_rs;
        const int ir = g->row0 + r % g->rows;
        for (int t = 0; t < g->n_taps; t++) {
            const int *c = g->clip + 4 * t;
            for (int p = c[2]; p < c[3] && ir >= c[0] && ir < c[1]; p++)
                memset(read + row + p * g->in_ps + g->off[t], 1, (size_t)g->c);
        }
    }
    for (size_t i = 0; i < nin; i++)
        if (!read[i]) in[i] = NAN;
    free(read);
}

static void check_dconv(const dconv_case *k, uint64_t seed)
{
    const int v = mpq_dconv_vec() ? mpq_dconv_vec() : 4, nv = k->nv_vecs * v + k->nv_tail;
    const int wp = (k->pix - 1) * k->ps + 3, hp = k->rows + 2, imgs = k->imgs ? k->imgs : 1;
    ptrdiff_t off[9];
    int clip[4 * 9];
    for (int t = 0; t < k->n_taps; t++)
        off[t] = ((ptrdiff_t)(t / 3) * wp + t % 3) * k->c;
    dconv_clip(k->rows, k->pix, k->n_taps, 1, clip);
    float *zeros = calloc((size_t)k->c, sizeof *zeros);
    const mpq_dconv_geom g = {.rows = k->rows,
                              .pix = k->pix,
                              .in_rs = (ptrdiff_t)wp * k->c,
                              .in_ps = (ptrdiff_t)k->ps * k->c,
                              .out_rs = (ptrdiff_t)(k->pix + 1) * nv, /* a gap between rows */
                              .out_ps = nv,
                              .imgs = k->imgs,
                              .in_is = (ptrdiff_t)(hp + 1) * wp * k->c, /* and images */
                              .out_is = (ptrdiff_t)(k->rows + 1) * (k->pix + 1) * nv,
                              .n_taps = k->n_taps,
                              .off = off,
                              .c = k->c,
                              .nv = nv,
                              .clip = k->clipped ? clip : NULL,
                              .row0 = 1,
                              .zeros = zeros};
    const size_t nin = (size_t)imgs * (hp + 1) * wp * k->c;
    const size_t nw = (size_t)(k->n_taps ? k->n_taps : 1) * k->c * nv;
    const size_t nout = (size_t)imgs * (k->rows + 1) * (k->pix + 1) * nv;
    float *in = malloc(nin * sizeof *in), *w = malloc(nw * sizeof *w);
    float *o1 = malloc(nout * sizeof *o1), *o2 = malloc(nout * sizeof *o2);
    float *d1 = malloc(nw * sizeof *d1), *d2 = malloc(nw * sizeof *d2);
    mpq_test_fill_uniform(in, nin, -1, 1, seed);
    mpq_test_fill_uniform(w, nw, -1, 1, seed + 1);
    if (k->clipped) poison_unread(&g, in, nin);
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        mpq_test_fill_uniform(o1, nout, -1, 1, seed + 2);
        memcpy(o2, o1, nout * sizeof *o2);
        mpq_dconv_forward(&g, in, w, o1, accumulate);
        mpq_dconv_forward_ref(&g, in, w, o2, accumulate);
        ck_assert(mpq_ck_allclose(o1, o2, nout, 1e-4f, 1e-4f, "dconv forward"));
    }
    /* streamed (into 64-byte aligned memory): the same outputs, bitwise; streaming takes the
     * rows written whole in one reduction slice, so never an accumulated output or a tail */
    const size_t nal = (nout * sizeof(float) + 63) / 64 * 64;
    float *o3 = aligned_alloc(64, nal);
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        mpq_test_fill_uniform(o1, nout, -1, 1, seed + 5);
        memcpy(o3, o1, nout * sizeof *o3);
        mpq_dconv_geom gst = g;
        gst.stream = 1;
        ck_assert_int_eq(mpq_dconv_forward(&g, in, w, o1, accumulate), 0);
        const int streamed = mpq_dconv_forward(&gst, in, w, o3, accumulate);
        ck_assert_mem_eq(o1, o3, nout * sizeof *o1);
        if (accumulate || k->nv_tail || !mpq_dconv_vec()) ck_assert_int_eq(streamed, 0);
        if (!accumulate && !k->nv_tail && k->n_taps && k->c * k->n_taps <= 144 && mpq_dconv_vec())
            ck_assert_int_eq(streamed, 1); /* one reduction slice */
    }
    free(o3);
    /* the statistics of the final outputs, row by row, against the reference's */
    const size_t nsum = (size_t)imgs * k->rows * 2 * nv;
    double *s1 = calloc(nsum, sizeof *s1), *s2 = calloc(nsum, sizeof *s2);
    float *shift = malloc((size_t)nv * sizeof *shift);
    mpq_test_fill_uniform(shift, (size_t)nv, -0.5f, 0.5f, seed + 4);
    mpq_dconv_geom gs = g;
    gs.shift = shift;
    gs.sums = s1;
    mpq_dconv_forward(&gs, in, w, o1, 0);
    gs.sums = s2;
    mpq_dconv_forward_ref(&gs, in, w, o2, 0);
    for (size_t i = 0; i < nsum; i++)
        ck_assert_msg(fabs(s1[i] - s2[i]) <= 1e-4 * (1.0 + fabs(s2[i])),
                      "dconv sums [%zu]: %.9g, reference %.9g", i, s1[i], s2[i]);
    free(s1), free(s2), free(shift);
    mpq_test_fill_uniform(d1, nw, -1, 1, seed + 3);
    memcpy(d2, d1, nw * sizeof *d2);
    mpq_dconv_wgrad(&g, in, o1, d1);
    mpq_dconv_wgrad_ref(&g, in, o1, d2);
    ck_assert(mpq_ck_allclose(d1, d2, nw, 1e-4f, 1e-4f, "dconv wgrad"));
    free(in), free(w), free(o1), free(o2), free(d1), free(d2), free(zeros);
}

START_TEST(test_kernels_dconv_matches_reference)
{
    /*                         rows pix ps    c taps nv tail imgs clipped */
    static const dconv_case cases[] = {
        {3, 13, 1, 16, 9, 1, 0, 1, 0}, /* pixel tails, J = 1 */
        {2, 7, 2, 5, 9, 3, 0, 1, 0},   /* stride 2, odd channels, J = 2 + 1 */
        {1, 17, 1, 3, 9, 5, 0, 1, 0},  /* stem-like c = 3, weight-gradient J = 4 + 1 */
        {2, 9, 1, 37, 4, 2, 0, 1, 0},  /* channel tails of the weight gradient */
        {2, 5, 1, 400, 2, 2, 0, 1, 0}, /* reduction split inside a tap */
        {3, 11, 1, 24, 9, 4, 0, 1, 0}, /* reduction split across taps */
        {2, 6, 1, 8, 0, 2, 0, 1, 0},   /* no taps: zeros (or the accumulated output) */
        {2, 9, 1, 24, 1, 1, 3, 1, 0},  /* masked output tail (1x1-like) */
        {1, 5, 1, 7, 9, 0, 5, 1, 0},   /* fewer outputs than one vector */
        {2, 7, 1, 16, 9, 5, 7, 3, 0},  /* several images, J = 2 + 2 + tail */
        {4, 19, 1, 16, 9, 2, 0, 2, 1}, /* clipped: edge tiles, rows, a tap reading nothing */
        {3, 9, 2, 24, 9, 1, 5, 1, 1},  /* clipped, stride 2, reduction split across taps */
        {2, 33, 1, 5, 9, 3, 3, 3, 1},  /* clipped, several images, J = 2 + tail */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_dconv(&cases[i], 100 + 10 * i);
}
END_TEST

/* Depthwise kernels: pix pixels at stride ps * c, n_taps taps on a kw-wide window (kw <= 5),
 * listed row by row, each row's columns left to right or, with desc, right to left (the order of
 * the input gradient's tap lists): at stride 1 the kernels take each row's taps as groups that
 * share input loads. Outputs written, added to and streamed past the caches. */
static void check_dwk(int pix, int ps, int c, int n_taps, int kw, int desc, uint64_t seed)
{
    const int wp = (pix - 1) * ps + 5, rows = (n_taps + kw - 1) / kw + 1;
    const size_t nin = (size_t)rows * wp * c, nout = (size_t)pix * (c + 3);
    float *in = malloc(nin * sizeof *in), *w = malloc(((size_t)n_taps + 1) * c * sizeof *w);
    float *o1 = malloc(nout * sizeof *o1), *o2 = malloc(nout * sizeof *o2);
    float *d1 = malloc(((size_t)n_taps + 1) * c * sizeof *d1);
    float *d2 = malloc(((size_t)n_taps + 1) * c * sizeof *d2);
    mpq_dwk_taps t1, t2;
    t1.n = t2.n = n_taps;
    for (int k = 0; k < n_taps; k++) {
        const int col = desc ? kw - 1 - k % kw : k % kw;
        t1.off[k] = t2.off[k] = ((ptrdiff_t)(k / kw) * wp + col) * c;
        t1.w[k] = t2.w[k] = w + (size_t)k * c;
        t1.dw[k] = d1 + (size_t)k * c;
        t2.dw[k] = d2 + (size_t)k * c;
    }
    mpq_test_fill_uniform(in, nin, -1, 1, seed);
    mpq_test_fill_uniform(w, ((size_t)n_taps + 1) * c, -1, 1, seed + 1);
    /* with the outputs' statistics too (added to what the sums hold): those of the outputs */
    double *sm1 = malloc(2 * (size_t)c * sizeof *sm1), *sm2 = malloc(2 * (size_t)c * sizeof *sm2);
    float *shift = malloc((size_t)c * sizeof *shift);
    mpq_test_fill_uniform(shift, (size_t)c, -0.5f, 0.5f, seed + 4);
    for (int store = MPQ_DWK_WRITE; store <= MPQ_DWK_ADD; store++)
        for (int stats = 0; stats < 2; stats++) {
            mpq_test_fill_uniform(o1, nout, -1, 1, seed + 2);
            memcpy(o2, o1, nout * sizeof *o2);
            for (int j = 0; j < 2 * c; j++)
                sm1[j] = sm2[j] = 0.25 * j;
            const mpq_dwk_stats st1 = {sm1, shift}, st2 = {sm2, shift};
            ck_assert_int_eq(mpq_dwk_forward(&t1, pix, c, in, (ptrdiff_t)ps * c, o1, c + 3, store,
                                             stats ? &st1 : NULL, NULL),
                             0);
            mpq_dwk_forward_ref(&t2, pix, c, in, (ptrdiff_t)ps * c, o2, c + 3, store,
                                stats ? &st2 : NULL);
            ck_assert(mpq_ck_allclose(o1, o2, nout, 1e-5f, 1e-5f, "dwk forward"));
            for (int j = 0; j < c && stats; j++) { /* of o1, as stored (a few pixels in float) */
                double s1 = 0.25 * j, s2 = 0.25 * (c + j), a1 = 0.0;
                for (int p = 0; p < pix; p++) {
                    const double d = (double)(o1[(size_t)p * (c + 3) + j] - shift[j]);
                    s1 += d, s2 += d * d, a1 += fabs(d);
                }
                ck_assert_msg(fabs(sm1[j] - s1) <= 1e-6 * (1.0 + a1) &&
                                  fabs(sm1[c + j] - s2) <= 1e-6 * (1.0 + s2),
                              "dwk stats c=%d channel %d: %.17g %.17g, want %.17g %.17g", c, j,
                              sm1[j], sm1[c + j], s1, s2);
            }
        }
    free(sm1), free(sm2), free(shift);
    /* streamed, into aligned pixels (out_ps = c): bitwise the written outputs; whole aligned
     * vectors only (c a multiple of the vector width), else written; prefetching two regions
     * on the side (the input and the weights), all of their lines by the call's last tile */
    const size_t nal = ((size_t)pix * c * sizeof(float) + 63) / 64 * 64;
    float *s1 = aligned_alloc(64, nal), *s2 = aligned_alloc(64, nal);
    mpq_dwk_forward(&t1, pix, c, in, (ptrdiff_t)ps * c, s1, c, MPQ_DWK_WRITE, NULL, NULL);
    const int v = mpq_dconv_vec(), tile = mpq_dwk_tile_pixels();
    mpq_dwk_ahead a = {{(const char *)in, (const char *)w},
                       {nin * sizeof *in / 64, (size_t)n_taps * c * sizeof *w / 64},
                       0,
                       0,
                       (size_t)((pix + tile - 1) / tile)};
    ck_assert_int_eq(
        mpq_dwk_forward(&t1, pix, c, in, (ptrdiff_t)ps * c, s2, c, MPQ_DWK_STREAM, NULL, &a),
        v && c % v == 0);
    ck_assert_mem_eq(s1, s2, (size_t)pix * c * sizeof *s1);
    ck_assert_uint_eq(a.done, a.lines[0] + a.lines[1]);
    free(s1), free(s2);
    mpq_test_fill_uniform(d1, ((size_t)n_taps + 1) * c, -1, 1, seed + 3);
    memcpy(d2, d1, ((size_t)n_taps + 1) * c * sizeof *d2);
    mpq_dwk_wgrad(&t1, pix, c, in, (ptrdiff_t)ps * c, o1, c + 3);
    mpq_dwk_wgrad_ref(&t2, pix, c, in, (ptrdiff_t)ps * c, o1, c + 3);
    ck_assert(mpq_ck_allclose(d1, d2, ((size_t)n_taps + 1) * c, 1e-4f, 1e-4f, "dwk wgrad"));
    free(in), free(w), free(o1), free(o2), free(d1), free(d2);
}

START_TEST(test_kernels_dwk_matches_reference)
{
    check_dwk(19, 1, 37, 9, 5, 0, 200); /* pixel and channel tails */
    check_dwk(8, 2, 32, 6, 5, 0, 210);  /* stride 2, aligned channels */
    check_dwk(3, 1, 5, 25, 5, 0,
              220); /* 5x5 taps in several blocks, fewer channels than a vector */
    check_dwk(1, 1, 16, 0, 5, 0, 230); /* no taps */
    check_dwk(11, 1, 144, 13, 5, 0, 240);
    check_dwk(29, 1, 37, 9, 3, 0, 250);  /* 3x3 rows at stride 1: groups of 3, tiles and tails */
    check_dwk(13, 1, 144, 6, 3, 0, 260); /* two rows of 3 */
    check_dwk(29, 1, 40, 9, 3, 1, 270);  /* right to left: descending groups */
    check_dwk(7, 1, 16, 4, 2, 1, 280);   /* descending groups of 2 (stride-2 input gradient) */
    check_dwk(5, 2, 16, 9, 3, 0, 290);   /* stride 2: no groups */
}
END_TEST

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_kernels_colsum_matches_naive);
    tcase_add_test(tc, test_kernels_colsum_is_independent_of_threads);
    tcase_add_test(tc, test_kernels_colsum_add_accumulates);
    tcase_add_test(tc, test_kernels_gemm_uses_fast_kernels_on_avx512_amd);
    tcase_add_test(tc, test_kernels_dconv_matches_reference);
    tcase_add_test(tc, test_kernels_dwk_matches_reference);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(kernels_suite); }

/* conv: both algorithms (im2col/sgemm and the direct kernels) against a direct double-precision
 * reference on odd shapes (strides, padding, groups, the 1x1 path, 7x7, rectangular kernels, the
 * chunked im2col path; for the direct path vector-aligned and unaligned channels, every stride
 * phase of the input gradient, more samples than weight-gradient parts), central-difference
 * gradients of x, W and b, accumulation into grad, outputs streamed past the caches, independence
 * of the thread count, exact
 * workspace size, the automatic algorithm choice, and geometry validation. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "kernels/dconv.h"
#include "kernels/gemm.h"
#include "layers/conv.h"
#include "layertest.h"
#include "testutil.h"

typedef struct conv_case {
    int n, h, w, cin, cout, kh, kw, sh, sw, ph, pw, groups, bias;
    int direct; /* 0: the algorithms mpq_conv_init picks, 1: direct, -1: im2col, 2: direct
                   forward and im2col backward, -2: the reverse */
} conv_case;

typedef struct fixture {
    conv_case c;
    mpq_conv l;
    mpq_step s;
    size_t nx, ny, nw, nb, nws;
    float *x, *y, *r, *dx, *val, *grad, *ws;
} fixture;

static const float GRAD0 = 0.25f; /* grad is pre-filled: backward must add to it */

static void fixture_init(fixture *f, const conv_case *c, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->c = *c;
    ck_assert_int_eq(mpq_conv_init(&f->l, c->h, c->w, c->cin, c->cout, c->kh, c->kw, c->sh, c->sw,
                                   c->ph, c->pw, c->groups),
                     0);
    if (c->direct) {
        f->l.algo = c->direct > 0 ? MPQ_CONV_DIRECT : MPQ_CONV_IM2COL;
        f->l.algo_bwd = c->direct == 1 || c->direct == -2 ? MPQ_CONV_DIRECT : MPQ_CONV_IM2COL;
    }
    f->nx = (size_t)c->n * c->h * c->w * c->cin;
    f->ny = (size_t)c->n * f->l.ho * f->l.wo * c->cout;
    f->nw = (size_t)c->cout * c->kh * c->kw * (c->cin / c->groups);
    f->nb = c->bias ? (size_t)c->cout : 0;
    f->l.weight = (mpq_slice){0, f->nw};
    f->l.bias = (mpq_slice){f->nw, f->nb};
    f->nws = mpq_conv_ws_floats(&f->l, c->n);
    f->x = malloc(f->nx * sizeof(float));
    f->dx = aligned_alloc(64, (f->nx * sizeof(float) + 63) / 64 * 64); /* streamable */
    f->y = aligned_alloc(64, (f->ny * sizeof(float) + 63) / 64 * 64);
    f->r = malloc(f->ny * sizeof(float));
    /* 16 floats of slack: BLIS 0.9 may read (never write) a little past a small C with beta 1 */
    f->val = calloc(f->nw + f->nb + 16, sizeof(float));
    f->grad = calloc(f->nw + f->nb + 16, sizeof(float));
    f->ws = mpq_test_guarded_alloc(f->nws);
    mpq_test_fill_uniform(f->x, f->nx, -1, 1, seed);
    mpq_test_fill_uniform(f->r, f->ny, -1, 1, seed + 1);
    mpq_test_fill_uniform(f->val, f->nw + f->nb, -1, 1, seed + 2);
    for (size_t i = 0; i < f->nw + f->nb; i++)
        f->grad[i] = GRAD0;
    f->s = (mpq_step){.val = f->val,
                      .wq = f->val,
                      .grad = f->grad,
                      .ws = f->ws,
                      .ws_floats = f->nws,
                      .n = c->n,
                      .n_groups = 1,
                      .training = 1};
}

static void fixture_free(fixture *f)
{
    ck_assert(mpq_test_guard_ok(f->ws, f->nws, "conv ws"));
    free(f->x), free(f->dx), free(f->y), free(f->r), free(f->val), free(f->grad), free(f->ws);
}

/* Direct convolution in double. y: forward output; with dy: dx, dw, db (each may be NULL)
 * accumulate the backward. Returns the multiply-adds per sample (padded taps included). */
static double conv_ref(const fixture *f, const float *x, double *y, const float *dy, double *dx,
                       double *dw, double *db)
{
    const conv_case *c = &f->c;
    const mpq_conv *l = &f->l;
    const float *w = f->val, *b = c->bias ? f->val + f->nw : NULL;
    const int cg = c->cin / c->groups, cog = c->cout / c->groups;
    double macs = 0.0;
    for (int n = 0; n < c->n; n++)
        for (int oh = 0; oh < l->ho; oh++)
            for (int ow = 0; ow < l->wo; ow++)
                for (int o = 0; o < c->cout; o++) {
                    const size_t yi = (((size_t)n * l->ho + oh) * l->wo + ow) * c->cout + o;
                    const int g = o / cog;
                    double acc = b ? b[o] : 0.0;
                    if (dy && db) db[o] += dy[yi];
                    for (int kh = 0; kh < c->kh; kh++)
                        for (int kw = 0; kw < c->kw; kw++)
                            for (int ci = 0; ci < cg; ci++) {
                                const int ih = oh * c->sh - c->ph + kh,
                                          iw = ow * c->sw - c->pw + kw;
                                if (n == 0) macs += 1.0;
                                if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
                                const size_t xi =
                                    (((size_t)n * c->h + ih) * c->w + iw) * c->cin + g * cg + ci;
                                const size_t wi = (((size_t)o * c->kh + kh) * c->kw + kw) * cg + ci;
                                acc += (double)x[xi] * w[wi];
                                if (dy && dx) dx[xi] += (double)dy[yi] * w[wi];
                                if (dy && dw) dw[wi] += (double)dy[yi] * x[xi];
                            }
                    if (y) y[yi] = acc;
                }
    return macs;
}

static float *to_float(const double *d, size_t n, float add)
{
    float *f = malloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)(d[i] + add);
    return f;
}

/* Forward, backward (into grad pre-filled with GRAD0) and the reference agree. */
static void check_against_ref(const conv_case *c, uint64_t seed, float tol)
{
    fixture f;
    fixture_init(&f, c, seed);
    double *y = calloc(f.ny, sizeof *y), *dx = calloc(f.nx, sizeof *dx);
    double *dw = calloc(f.nw + f.nb + 1, sizeof *dw);
    const double macs = conv_ref(&f, f.x, y, f.r, dx, dw, f.nb ? dw + f.nw : NULL);
    ck_assert_double_eq_tol(mpq_conv_macs(&f.l), macs, 0.5);

    mpq_conv_forward(&f.l, &f.s, f.x, f.y);
    float *yf = to_float(y, f.ny, 0.0f), *dxf = to_float(dx, f.nx, 0.0f);
    float *gf = to_float(dw, f.nw + f.nb, GRAD0);
    ck_assert(mpq_ck_allclose(f.y, yf, f.ny, tol, tol, "conv y"));
    mpq_conv_backward(&f.l, &f.s, f.x, f.r, f.dx);
    ck_assert(mpq_ck_allclose(f.dx, dxf, f.nx, tol, tol, "conv dx"));
    ck_assert(mpq_ck_allclose(f.grad, gf, f.nw, tol, tol, "conv dW"));
    ck_assert(mpq_ck_allclose(f.grad + f.nw, gf + f.nw, f.nb, tol, tol, "conv db"));

    /* without dx: the same parameter gradients, added once more */
    for (size_t i = 0; i < f.nw + f.nb; i++)
        f.grad[i] = GRAD0;
    mpq_conv_backward(&f.l, &f.s, f.x, f.r, NULL);
    ck_assert(mpq_ck_allclose(f.grad, gf, f.nw + f.nb, tol, tol, "conv dW (dx NULL)"));
    free(y), free(dx), free(dw), free(yf), free(dxf), free(gf);
    fixture_free(&f);
}

static double probe_loss(void *ctx)
{
    fixture *f = ctx;
    mpq_conv_forward(&f->l, &f->s, f->x, f->y);
    return mpq_test_dot(f->y, f->r, f->ny);
}

/* Central differences of L = sum(y * r) for every element of x, W and b. The layer is linear in
 * each of them, so a large step has no truncation error. */
static void check_fd(const conv_case *c, uint64_t seed)
{
    fixture f;
    fixture_init(&f, c, seed);
    for (size_t i = 0; i < f.nw + f.nb; i++)
        f.grad[i] = 0.0f;
    probe_loss(&f);
    mpq_conv_backward(&f.l, &f.s, f.x, f.r, f.dx);
    ck_assert_int_eq(mpq_test_gradcheck(probe_loss, &f, f.x, f.nx, f.dx, 0.5f, 1e-3, 1e-3, "dx"),
                     0);
    ck_assert_int_eq(
        mpq_test_gradcheck(probe_loss, &f, f.val, f.nw + f.nb, f.grad, 0.5f, 1e-3, 1e-3, "dW,db"),
        0);
    fixture_free(&f);
}

/*                                    n  h  w cin cout kh kw sh sw ph pw  g bias direct */
static const conv_case CASE_S2P1 = {2, 7, 5, 3, 5, 3, 3, 2, 2, 1, 1, 1, 1, -1};
static const conv_case CASE_GROUPS = {2, 7, 5, 6, 4, 3, 3, 1, 1, 1, 1, 2, 1, -1};
static const conv_case CASE_DW_LIKE = {2, 6, 5, 4, 8, 3, 3, 2, 1, 1, 1, 4, 0, -1};
static const conv_case CASE_1X1 = {2, 7, 5, 6, 5, 1, 1, 1, 1, 0, 0, 1, 1, -1};
static const conv_case CASE_1X1_G3 = {2, 7, 5, 6, 6, 1, 1, 1, 1, 0, 0, 3, 0, -1};
static const conv_case CASE_1X1_S2 = {2, 7, 5, 3, 5, 1, 1, 2, 2, 0, 0, 1, 1, -1};
static const conv_case CASE_7X7 = {2, 9, 7, 3, 4, 7, 7, 2, 2, 3, 3, 1, 0, -1};
static const conv_case CASE_RECT = {3, 6, 7, 2, 3, 3, 2, 2, 1, 1, 0, 1, 1, -1};
static const conv_case CASE_CHUNK = {15, 8, 8, 256, 4, 3, 3, 1, 1, 1, 1, 1, 1, -1};
static const conv_case CASE_CHUNK_G = {15, 8, 8, 256, 8, 3, 3, 1, 1, 1, 1, 4, 0, -1};
/* direct path: ResNet-like 3x3 layers on odd images, stride 2 (four input-gradient phases),
 * J = 1..4(+1) vector blocks, pixel tails, the stem (Cin 3), 7x7/2, rectangular, 1x1/2, and
 * unaligned channels (reference kernels) */
static const conv_case D_S1 = {3, 7, 9, 16, 16, 3, 3, 1, 1, 1, 1, 1, 0, 1};
static const conv_case D_S2 = {2, 9, 8, 16, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1};
static const conv_case D_WIDE = {2, 5, 19, 32, 80, 3, 3, 1, 1, 1, 1, 1, 0, 1};
static const conv_case D_J3 = {2, 6, 5, 48, 48, 3, 3, 1, 1, 0, 2, 1, 1, 1};
static const conv_case D_STEM = {2, 11, 10, 3, 16, 3, 3, 1, 1, 1, 1, 1, 0, 1};
static const conv_case D_7X7 = {2, 13, 12, 3, 64, 7, 7, 2, 2, 3, 3, 1, 0, 1};
static const conv_case D_RECT = {2, 7, 6, 16, 16, 3, 2, 2, 1, 1, 0, 1, 1, 1};
static const conv_case D_1X1S2 = {2, 7, 7, 32, 16, 1, 1, 2, 2, 0, 0, 1, 0, 1};
static const conv_case D_ODD = {2, 6, 7, 5, 6, 3, 3, 2, 1, 1, 1, 1, 1, 1};
static const conv_case D_PARTS = {19, 4, 5, 16, 16, 3, 3, 1, 1, 1, 1, 1, 0, 1};
static const conv_case D_1X1 = {3, 5, 7, 24, 40, 1, 1, 1, 1, 0, 0, 1, 1, 1};
static const conv_case D_BIG = {1, 40, 40, 16, 32, 3, 3, 1, 1, 1, 1, 1, 0, 1};
static const conv_case D_FD = {2, 5, 4, 16, 16, 3, 3, 2, 1, 1, 1, 1, 1, 1};
static const conv_case D_AS_IM2COL = {2, 9, 8, 16, 32, 3, 3, 2, 2, 1, 1, 1, 1, -1};

START_TEST(test_conv_matches_reference_stride2_pad1) { check_against_ref(&CASE_S2P1, 10, 1e-4f); }
END_TEST

START_TEST(test_conv_matches_reference_groups)
{
    check_against_ref(&CASE_GROUPS, 20, 1e-4f);
    check_against_ref(&CASE_DW_LIKE, 21, 1e-4f);
}
END_TEST

START_TEST(test_conv_matches_reference_1x1)
{
    fixture f;
    fixture_init(&f, &CASE_1X1, 0);
    ck_assert_uint_eq(f.nws, 0); /* the direct path needs no column buffer */
    fixture_free(&f);
    check_against_ref(&CASE_1X1, 30, 1e-4f);
    check_against_ref(&CASE_1X1_G3, 31, 1e-4f);
    check_against_ref(&CASE_1X1_S2, 32, 1e-4f);
}
END_TEST

START_TEST(test_conv_matches_reference_7x7_and_rectangular)
{
    check_against_ref(&CASE_7X7, 40, 1e-4f);
    check_against_ref(&CASE_RECT, 41, 1e-4f);
}
END_TEST

START_TEST(test_conv_chunked_im2col_matches_reference)
{
    fixture f;
    fixture_init(&f, &CASE_CHUNK, 0);
    const size_t full = (size_t)CASE_CHUNK.n * f.l.ho * f.l.wo * 9 * CASE_CHUNK.cin;
    ck_assert_uint_lt(f.nws, full); /* more than one chunk */
    ck_assert_uint_ne(f.nws % ((size_t)f.l.ho * f.l.wo * 9 * CASE_CHUNK.cin),
                      0); /* spans samples */
    fixture_free(&f);
    check_against_ref(&CASE_CHUNK, 50, 1e-3f);
    mpq_gemm_set_threads(2);
    check_against_ref(&CASE_CHUNK_G, 51, 1e-3f);
    mpq_gemm_set_threads(1);
}
END_TEST

START_TEST(test_conv_direct_matches_reference)
{
    check_against_ref(&D_S1, 80, 1e-4f);
    check_against_ref(&D_S2, 81, 1e-4f);
    check_against_ref(&D_WIDE, 82, 1e-4f);
    check_against_ref(&D_J3, 83, 1e-4f);
    check_against_ref(&D_STEM, 84, 1e-4f);
    check_against_ref(&D_7X7, 85, 1e-4f);
    check_against_ref(&D_RECT, 86, 1e-4f);
    check_against_ref(&D_1X1S2, 87, 1e-4f);
    check_against_ref(&D_ODD, 88, 1e-4f);
    check_against_ref(&D_PARTS, 89, 1e-4f);
    check_against_ref(&D_1X1, 93, 1e-4f);       /* no clipped taps, masked channel tails */
    check_against_ref(&D_BIG, 94, 1e-4f);       /* row bands inside an image */
    check_against_ref(&D_AS_IM2COL, 81, 1e-4f); /* the same layer through BLIS */
}
END_TEST

/* y, dx and dW of a fixture's last run, kept to compare a later run with. */
typedef struct results {
    float *y, *dx, *g;
} results;

static results results_keep(const fixture *f)
{
    results r = {malloc(f->ny * sizeof(float)), malloc(f->nx * sizeof(float)),
                 malloc(f->nw * sizeof(float))};
    memcpy(r.y, f->y, f->ny * sizeof *r.y);
    memcpy(r.dx, f->dx, f->nx * sizeof *r.dx);
    memcpy(r.g, f->grad, f->nw * sizeof *r.g);
    return r;
}

/* The fixture's y, dx and dW are bitwise those kept in r (freed). */
static void results_check_same(const fixture *f, results *r)
{
    ck_assert_mem_eq(r->y, f->y, f->ny * sizeof *r->y);
    ck_assert_mem_eq(r->dx, f->dx, f->nx * sizeof *r->dx);
    ck_assert_mem_eq(r->g, f->grad, f->nw * sizeof *r->g);
    free(r->y), free(r->dx), free(r->g);
}

/* Forward, dx and dW of one case with 1 and 2 threads: bitwise equal. */
START_TEST(test_conv_direct_is_independent_of_threads)
{
    fixture f;
    fixture_init(&f, &D_PARTS, 90);
    results first;
    for (int t = 1; t <= 2; t++) {
        mpq_gemm_set_threads(t);
        for (size_t i = 0; i < f.nw; i++)
            f.grad[i] = 0.0f;
        mpq_conv_forward(&f.l, &f.s, f.x, f.y);
        mpq_conv_backward(&f.l, &f.s, f.x, f.r, f.dx);
        if (t == 1) first = results_keep(&f);
    }
    mpq_gemm_set_threads(1);
    results_check_same(&f, &first);
    fixture_free(&f);
}
END_TEST

/* dy from a row source gives mpq_conv_backward's and mpq_conv_backward_add's bits (dx and dW),
 * each pixel asked for once, on 1 and 2 threads; from one image in several bands to many images
 * per band, several sample ranges; layers with bias or not 1x1 stride 1 cannot take it. */
START_TEST(test_conv_backward_rows_matches_backward)
{
    static const conv_case cases[] = {
        {3, 5, 7, 24, 40, 1, 1, 1, 1, 0, 0, 1, 0, 1},   /* several images per band */
        {2, 40, 44, 16, 48, 1, 1, 1, 1, 0, 0, 1, 0, 1}, /* an image in several bands */
        {37, 8, 8, 16, 16, 1, 1, 1, 1, 0, 0, 1, 0, 1},  /* many sample ranges */
    };
    for (int k = 0; k < 3; k++)
        for (int t = 1; t <= 2; t++) {
            fixture f;
            fixture_init(&f, &cases[k], 300 + k);
            ck_assert(mpq_conv_dy_rows_ok(&f.l));
            mpq_gemm_set_threads(t);
            for (int add = 0; add < 2; add++) {
                float *dx0 = malloc(f.nx * sizeof *dx0), *g0 = malloc(f.nw * sizeof *g0);
                mpq_test_fill_uniform(f.dx, f.nx, -1, 1, 400 + k);
                memcpy(dx0, f.dx, f.nx * sizeof *dx0);
                memcpy(g0, f.grad, f.nw * sizeof *g0);
                if (add)
                    mpq_conv_backward_add(&f.l, &f.s, f.x, f.r, f.dx);
                else
                    mpq_conv_backward(&f.l, &f.s, f.x, f.r, f.dx);
                float *dx1 = malloc(f.nx * sizeof *dx1), *g1 = malloc(f.nw * sizeof *g1);
                memcpy(dx1, f.dx, f.nx * sizeof *dx1);
                memcpy(g1, f.grad, f.nw * sizeof *g1);
                memcpy(f.dx, dx0, f.nx * sizeof *dx0);
                memcpy(f.grad, g0, f.nw * sizeof *g0);
                const size_t pixels = f.ny / cases[k].cout;
                mpq_test_rows d = {f.r, cases[k].cout, calloc(pixels, sizeof(int))};
                const mpq_dy_src src = {mpq_test_rows_fill, &d};
                mpq_conv_backward_rows(&f.l, &f.s, f.x, &src, f.dx, add);
                ck_assert_mem_eq(f.dx, dx1, f.nx * sizeof *dx1);
                ck_assert_mem_eq(f.grad, g1, f.nw * sizeof *g1);
                size_t not_once = 0; /* each pixel asked for exactly once */
                for (size_t p = 0; p < pixels; p++)
                    not_once += d.asked[p] != 1;
                ck_assert_uint_eq(not_once, 0);
                free(d.asked);
                free(dx0), free(g0), free(dx1), free(g1);
            }
            mpq_gemm_set_threads(1);
            fixture_free(&f);
        }
    fixture f;
    fixture_init(&f, &D_1X1, 310); /* with bias */
    ck_assert(!mpq_conv_dy_rows_ok(&f.l));
    fixture_free(&f);
    fixture_init(&f, &D_1X1S2, 311);
    ck_assert(!mpq_conv_dy_rows_ok(&f.l));
    fixture_free(&f);
}
END_TEST

/* mpq_conv_forward_sums: y bitwise that of mpq_conv_forward, each sample's sums equal to those
 * of d = (double)(y - shift) over its pixels in any order (to rounding), and the same bits on 1
 * and 2 threads. */
static void check_sums(const conv_case *c, uint64_t seed)
{
    fixture f;
    fixture_init(&f, c, seed);
    ck_assert(mpq_conv_sums_ok(&f.l));
    const int co = c->cout, hw = f.l.ho * f.l.wo;
    float *y0 = malloc(f.ny * sizeof *y0), *shift = malloc((size_t)co * sizeof *shift);
    double *sums = malloc((size_t)c->n * 2 * co * sizeof *sums);
    double *sums1 = malloc((size_t)c->n * 2 * co * sizeof *sums1);
    mpq_test_fill_uniform(shift, (size_t)co, -0.5f, 0.5f, seed + 7);
    mpq_conv_forward(&f.l, &f.s, f.x, y0);
    for (int t = 1; t <= 2; t++) {
        mpq_gemm_set_threads(t);
        mpq_conv_forward_sums(&f.l, &f.s, f.x, f.y, shift, sums);
        if (t == 1) memcpy(sums1, sums, (size_t)c->n * 2 * co * sizeof *sums1);
    }
    mpq_gemm_set_threads(1);
    ck_assert_mem_eq(y0, f.y, f.ny * sizeof *y0);
    ck_assert_mem_eq(sums1, sums, (size_t)c->n * 2 * co * sizeof *sums);
    ck_assert(mpq_test_sums_match(f.y, c->n, hw, co, shift, sums, 1e-9));
    free(y0), free(shift), free(sums), free(sums1);
    fixture_free(&f);
}

START_TEST(test_conv_forward_sums_match_the_output)
{
    check_sums(&D_S1, 120);   /* vector-aligned channels */
    check_sums(&D_ODD, 121);  /* stride 2, bias, masked channel tails */
    check_sums(&D_BIG, 122);  /* row bands inside an image */
    check_sums(&D_WIDE, 123); /* the reduction split into slices (only the final one sums) */
    check_sums(&D_1X1, 124);
}
END_TEST

START_TEST(test_conv_picks_direct_for_skinny_products)
{
    mpq_conv l;
    const int v = mpq_dconv_vec();
    const mpq_conv_algo d = v ? MPQ_CONV_DIRECT : MPQ_CONV_IM2COL;
    ck_assert_int_eq(mpq_conv_init(&l, 32, 32, 16, 16, 3, 3, 1, 1, 1, 1, 1), 0);
    ck_assert_int_eq(l.algo, d);
    ck_assert_int_eq(l.algo_bwd, d);
    ck_assert_int_eq(mpq_conv_init(&l, 32, 32, 3, 16, 3, 3, 1, 1, 1, 1, 1), 0);
    ck_assert_int_eq(l.algo, d);
    ck_assert_int_eq(mpq_conv_init(&l, 56, 56, 144, 24, 1, 1, 1, 1, 0, 0, 1), 0);
    ck_assert_int_eq(l.algo_bwd, d); /* unaligned 1x1: masked tails */
    ck_assert_int_eq(mpq_conv_init(&l, 14, 14, 256, 256, 3, 3, 1, 1, 1, 1, 1), 0);
    ck_assert_int_eq(l.algo, d);                   /* 14x14: direct forward, */
    ck_assert_int_eq(l.algo_bwd, MPQ_CONV_IM2COL); /* BLIS weight gradient */
    ck_assert_int_eq(mpq_conv_init(&l, 7, 7, 512, 512, 3, 3, 1, 1, 1, 1, 1), 0);
    ck_assert_int_eq(l.algo, MPQ_CONV_IM2COL); /* large weights: BLIS */
    ck_assert_int_eq(l.algo_bwd, MPQ_CONV_IM2COL);
    ck_assert_int_eq(mpq_conv_init(&l, 8, 8, 16, 16, 3, 3, 1, 1, 1, 1, 2), 0);
    ck_assert_int_eq(l.algo, MPQ_CONV_IM2COL); /* groups */
    ck_assert(!mpq_conv_direct_ok(&l));
}
END_TEST

/* Direct forward with the BLIS backward and the reverse: both match the reference. */
START_TEST(test_conv_mixed_algorithms_match_reference)
{
    conv_case c = D_S2;
    c.direct = 2;
    check_against_ref(&c, 91, 1e-4f);
    c.direct = -2;
    check_against_ref(&c, 92, 1e-4f);
}
END_TEST

START_TEST(test_conv_gradients_match_central_differences)
{
    check_fd(&CASE_S2P1, 60);
    check_fd(&CASE_GROUPS, 61);
    check_fd(&CASE_DW_LIKE, 62);
    check_fd(&CASE_1X1, 63);
    check_fd(&CASE_1X1_G3, 64);
    check_fd(&CASE_1X1_S2, 65);
    check_fd(&CASE_7X7, 66);
    check_fd(&CASE_RECT, 67);
    check_fd(&D_FD, 68);
    check_fd(&D_ODD, 69);
}
END_TEST

START_TEST(test_conv_backward_adds_into_grad)
{
    fixture f;
    fixture_init(&f, &CASE_GROUPS, 70);
    for (size_t i = 0; i < f.nw + f.nb; i++)
        f.grad[i] = 0.0f;
    mpq_conv_forward(&f.l, &f.s, f.x, f.y);
    mpq_conv_backward(&f.l, &f.s, f.x, f.r, NULL);
    float *once = malloc((f.nw + f.nb) * sizeof *once),
          *twice = malloc((f.nw + f.nb) * sizeof *twice);
    for (size_t i = 0; i < f.nw + f.nb; i++)
        once[i] = 2.0f * f.grad[i];
    mpq_conv_backward(&f.l, &f.s, f.x, f.r, NULL);
    memcpy(twice, f.grad, (f.nw + f.nb) * sizeof *twice);
    ck_assert(mpq_ck_allclose(twice, once, f.nw + f.nb, 1e-5f, 1e-5f, "grad after two backwards"));
    free(once), free(twice);
    fixture_free(&f);
}
END_TEST

/* mpq_conv_backward_add: dx += the input gradient, the parameter gradients as usual (direct,
 * im2col and 1x1 paths). */
START_TEST(test_conv_backward_add_accumulates_dx)
{
    const conv_case *cases[3] = {&D_S2, &D_AS_IM2COL, &CASE_1X1};
    for (int k = 0; k < 3; k++) {
        fixture f;
        fixture_init(&f, cases[k], 100 + k);
        float *base = malloc(f.nx * sizeof *base), *ref = malloc(f.nx * sizeof *ref);
        mpq_test_fill_uniform(base, f.nx, -1, 1, 7);
        mpq_conv_forward(&f.l, &f.s, f.x, f.y);
        mpq_conv_backward(&f.l, &f.s, f.x, f.r, f.dx);
        for (size_t i = 0; i < f.nx; i++)
            ref[i] = base[i] + f.dx[i];
        memcpy(f.dx, base, f.nx * sizeof *base);
        mpq_conv_backward_add(&f.l, &f.s, f.x, f.r, f.dx);
        ck_assert(mpq_ck_allclose(f.dx, ref, f.nx, 1e-5f, 1e-5f, "conv dx added"));
        free(base), free(ref);
        fixture_free(&f);
    }
}
END_TEST

/* Outputs streamed past the caches (stream_bytes 0: every direct output; aligned channels, so
 * the kernels do stream): y, dx written and dx added, and dW bitwise those of the cached path,
 * for a 1x1 layer (the input gradient band by band after the weight gradient) and a stride-2
 * 3x3 layer (by stride phases). */
START_TEST(test_conv_streamed_outputs_are_bitwise_the_same)
{
    /*                             n  h  w cin cout kh kw sh sw ph pw  g bias direct */
    static const conv_case pw = {3, 5, 7, 32, 48, 1, 1, 1, 1, 0, 0, 1, 0, 1};
    const conv_case *cases[2] = {&pw, &D_S2};
    for (int k = 0; k < 2; k++)
        for (int add = 0; add < 2; add++) {
            fixture f;
            fixture_init(&f, cases[k], 110 + k);
            ck_assert_uint_eq(f.l.stream_bytes, MPQ_STREAM_BYTES);
            results cached;
            for (int streamed = 0; streamed < 2; streamed++) {
                f.l.stream_bytes = streamed ? 0 : MPQ_STREAM_BYTES;
                for (size_t i = 0; i < f.nw; i++)
                    f.grad[i] = GRAD0;
                mpq_test_fill_uniform(f.dx, f.nx, -1, 1, 9);
                mpq_conv_forward(&f.l, &f.s, f.x, f.y);
                (add ? mpq_conv_backward_add : mpq_conv_backward)(&f.l, &f.s, f.x, f.r, f.dx);
                if (!streamed) cached = results_keep(&f);
            }
            results_check_same(&f, &cached);
            fixture_free(&f);
        }
}
END_TEST

START_TEST(test_conv_init_rejects_bad_geometry)
{
    mpq_conv l;
    ck_assert_int_eq(mpq_conv_init(&l, 8, 8, 6, 4, 3, 3, 1, 1, 1, 1, 4), MPQ_E_ARG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "groups"));
    ck_assert_int_eq(mpq_conv_init(&l, 2, 8, 4, 4, 5, 3, 1, 1, 1, 1, 1), MPQ_E_ARG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "larger"));
    ck_assert_int_eq(mpq_conv_init(&l, 8, 8, 4, 4, 3, 3, 0, 1, 1, 1, 1), MPQ_E_ARG);
    ck_assert_int_eq(mpq_conv_init(&l, 8, 8, 4, 4, 3, 3, 1, 1, -1, 1, 1), MPQ_E_ARG);
    ck_assert_int_eq(mpq_conv_init(&l, 8, 6, 4, 4, 3, 3, 2, 2, 1, 1, 2), MPQ_OK);
    ck_assert_int_eq(l.ho, 4);
    ck_assert_int_eq(l.wo, 3);
}
END_TEST

static Suite *conv_suite(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("conv");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_conv_matches_reference_stride2_pad1);
    tcase_add_test(tc, test_conv_matches_reference_groups);
    tcase_add_test(tc, test_conv_matches_reference_1x1);
    tcase_add_test(tc, test_conv_matches_reference_7x7_and_rectangular);
    tcase_add_test(tc, test_conv_chunked_im2col_matches_reference);
    tcase_add_test(tc, test_conv_direct_matches_reference);
    tcase_add_test(tc, test_conv_direct_is_independent_of_threads);
    tcase_add_test(tc, test_conv_backward_rows_matches_backward);
    tcase_add_test(tc, test_conv_forward_sums_match_the_output);
    tcase_add_test(tc, test_conv_picks_direct_for_skinny_products);
    tcase_add_test(tc, test_conv_mixed_algorithms_match_reference);
    tcase_add_test(tc, test_conv_gradients_match_central_differences);
    tcase_add_test(tc, test_conv_backward_adds_into_grad);
    tcase_add_test(tc, test_conv_backward_add_accumulates_dx);
    tcase_add_test(tc, test_conv_streamed_outputs_are_bitwise_the_same);
    tcase_add_test(tc, test_conv_init_rejects_bad_geometry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(conv_suite); }

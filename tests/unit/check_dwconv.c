/* dwconv: the direct NHWC depthwise layer against a double-precision reference (strides,
 * asymmetric kernels and padding, input rows past the last output row's stride, channel counts
 * off the vector width; every dx element written), central-difference gradients of x, W and b,
 * accumulation into grad, bitwise independence of the thread count, outputs streamed past the
 * caches, exact workspace size, and geometry validation. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "kernels/gemm.h"
#include "layers/dwconv.h"
#include "layertest.h"
#include "testutil.h"

typedef struct dw_case {
    int n, h, w, c, kh, kw, sh, sw, ph, pw, bias;
} dw_case;

typedef struct fixture {
    dw_case c;
    mpq_dwconv l;
    mpq_step s;
    size_t nx, ny, nw, nb, nws;
    float *x, *y, *r, *dx, *val, *grad, *ws;
} fixture;

static const float GRAD0 = -0.5f;

static void fixture_init(fixture *f, const dw_case *c, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->c = *c;
    ck_assert_int_eq(
        mpq_dwconv_init(&f->l, c->h, c->w, c->c, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw), 0);
    f->nx = (size_t)c->n * c->h * c->w * c->c;
    f->ny = (size_t)c->n * f->l.ho * f->l.wo * c->c;
    f->nw = (size_t)c->c * c->kh * c->kw;
    f->nb = c->bias ? (size_t)c->c : 0;
    f->l.weight = (mpq_slice){0, f->nw};
    f->l.bias = (mpq_slice){f->nw, f->nb};
    f->nws = mpq_dwconv_ws_floats(&f->l, c->n);
    f->x = malloc(f->nx * sizeof(float));
    f->dx = aligned_alloc(64, (f->nx * sizeof(float) + 63) / 64 * 64); /* streamable */
    f->y = aligned_alloc(64, (f->ny * sizeof(float) + 63) / 64 * 64);
    f->r = malloc(f->ny * sizeof(float));
    f->val = malloc((f->nw + f->nb) * sizeof(float));
    f->grad = malloc((f->nw + f->nb) * sizeof(float));
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
    ck_assert(mpq_test_guard_ok(f->ws, f->nws, "dwconv ws"));
    free(f->x), free(f->dx), free(f->y), free(f->r), free(f->val), free(f->grad), free(f->ws);
}

/* Direct depthwise convolution in double; with dy, accumulates dx, dw, db. */
static void dw_ref(const fixture *f, double *y, const float *dy, double *dx, double *dw, double *db)
{
    const dw_case *c = &f->c;
    const float *w = f->val, *b = c->bias ? f->val + f->nw : NULL;
    for (int n = 0; n < c->n; n++)
        for (int oh = 0; oh < f->l.ho; oh++)
            for (int ow = 0; ow < f->l.wo; ow++)
                for (int ch = 0; ch < c->c; ch++) {
                    const size_t yi = (((size_t)n * f->l.ho + oh) * f->l.wo + ow) * c->c + ch;
                    double acc = b ? b[ch] : 0.0;
                    if (b) db[ch] += dy[yi];
                    for (int kh = 0; kh < c->kh; kh++)
                        for (int kw = 0; kw < c->kw; kw++) {
                            const int ih = oh * c->sh - c->ph + kh, iw = ow * c->sw - c->pw + kw;
                            if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
                            const size_t xi = (((size_t)n * c->h + ih) * c->w + iw) * c->c + ch;
                            const size_t wi = ((size_t)ch * c->kh + kh) * c->kw + kw;
                            acc += (double)f->x[xi] * w[wi];
                            dx[xi] += (double)dy[yi] * w[wi];
                            dw[wi] += (double)dy[yi] * f->x[xi];
                        }
                    y[yi] = acc;
                }
}

static float *to_float(const double *d, size_t n, float add)
{
    float *f = malloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)(d[i] + add);
    return f;
}

static void check_against_ref(const dw_case *c, uint64_t seed)
{
    fixture f;
    fixture_init(&f, c, seed);
    double *y = calloc(f.ny, sizeof *y), *dx = calloc(f.nx, sizeof *dx);
    double *dw = calloc(f.nw + f.nb + 1, sizeof *dw);
    dw_ref(&f, y, f.r, dx, dw, dw + f.nw);
    ck_assert_double_eq_tol(mpq_dwconv_macs(&f.l), (double)f.l.ho * f.l.wo * c->c * c->kh * c->kw,
                            0.5);
    float *yf = to_float(y, f.ny, 0.0f), *dxf = to_float(dx, f.nx, 0.0f);
    float *gf = to_float(dw, f.nw + f.nb, GRAD0);
    mpq_dwconv_forward(&f.l, &f.s, f.x, f.y);
    ck_assert(mpq_ck_allclose(f.y, yf, f.ny, 1e-5f, 1e-5f, "dwconv y"));
    for (size_t i = 0; i < f.nx; i++) /* every dx element must be written */
        f.dx[i] = NAN;
    mpq_dwconv_backward(&f.l, &f.s, f.x, f.r, f.dx);
    ck_assert(mpq_ck_allclose(f.dx, dxf, f.nx, 1e-5f, 1e-5f, "dwconv dx"));
    ck_assert(mpq_ck_allclose(f.grad, gf, f.nw + f.nb, 1e-4f, 1e-4f, "dwconv dW,db"));
    for (size_t i = 0; i < f.nw + f.nb; i++)
        f.grad[i] = GRAD0;
    mpq_dwconv_backward(&f.l, &f.s, f.x, f.r, NULL);
    ck_assert(mpq_ck_allclose(f.grad, gf, f.nw + f.nb, 1e-4f, 1e-4f, "dwconv dW,db (dx NULL)"));
    free(y), free(dx), free(dw), free(yf), free(dxf), free(gf);
    fixture_free(&f);
}

static double probe_loss(void *ctx)
{
    fixture *f = ctx;
    mpq_dwconv_forward(&f->l, &f->s, f->x, f->y);
    return mpq_test_dot(f->y, f->r, f->ny);
}

static void check_fd(const dw_case *c, uint64_t seed)
{
    fixture f;
    fixture_init(&f, c, seed);
    for (size_t i = 0; i < f.nw + f.nb; i++)
        f.grad[i] = 0.0f;
    probe_loss(&f);
    mpq_dwconv_backward(&f.l, &f.s, f.x, f.r, f.dx);
    ck_assert_int_eq(mpq_test_gradcheck(probe_loss, &f, f.x, f.nx, f.dx, 0.5f, 1e-4, 1e-4, "dx"),
                     0);
    ck_assert_int_eq(
        mpq_test_gradcheck(probe_loss, &f, f.val, f.nw + f.nb, f.grad, 0.5f, 1e-4, 1e-4, "dW,db"),
        0);
    fixture_free(&f);
}

/*                               n  h  w   c kh kw sh sw ph pw bias */
static const dw_case CASE_S2 = {2, 7, 5, 5, 3, 3, 2, 2, 1, 1, 1};
static const dw_case CASE_RECT = {3, 6, 7, 19, 5, 3, 1, 2, 2, 1, 0};
static const dw_case CASE_WIDE = {1, 4, 3, 70, 3, 3, 1, 1, 1, 1, 1};
static const dw_case CASE_BIG = {40, 8, 8, 33, 3, 3, 1, 1, 1, 1, 1}; /* rows > partial count */
/* input rows past the last output row's stride (6, 7; 7 read by no tap), and a padding so wide
 * that the last output row's stride starts past the input */
static const dw_case CASE_TAIL_ROWS = {3, 8, 6, 16, 3, 3, 2, 2, 0, 0, 0};
static const dw_case CASE_WIDE_PAD = {2, 5, 5, 16, 3, 3, 2, 1, 2, 2, 1};

START_TEST(test_dwconv_matches_reference)
{
    check_against_ref(&CASE_S2, 1);
    check_against_ref(&CASE_RECT, 2);
    check_against_ref(&CASE_WIDE, 3);
    check_against_ref(&CASE_BIG, 4);
    check_against_ref(&CASE_TAIL_ROWS, 5);
    check_against_ref(&CASE_WIDE_PAD, 6);
}
END_TEST

START_TEST(test_dwconv_gradients_match_central_differences)
{
    check_fd(&CASE_S2, 11);
    check_fd(&CASE_RECT, 12);
    check_fd(&CASE_WIDE, 13);
}
END_TEST

/* y, dx and the parameter gradients of a fixture's last run, kept to compare a later run with. */
typedef struct results {
    float *y, *dx, *g;
} results;

static results results_keep(const fixture *f)
{
    const size_t np = f->nw + f->nb;
    results r = {malloc(f->ny * sizeof(float)), malloc(f->nx * sizeof(float)),
                 malloc(np * sizeof(float))};
    memcpy(r.y, f->y, f->ny * sizeof *r.y);
    memcpy(r.dx, f->dx, f->nx * sizeof *r.dx);
    memcpy(r.g, f->grad, np * sizeof *r.g);
    return r;
}

/* The fixture's y, dx and parameter gradients are bitwise those kept in r (freed). */
static void results_check_same(const fixture *f, results *r)
{
    ck_assert_mem_eq(r->y, f->y, f->ny * sizeof *r->y);
    ck_assert_mem_eq(r->dx, f->dx, f->nx * sizeof *r->dx);
    ck_assert_mem_eq(r->g, f->grad, (f->nw + f->nb) * sizeof *r->g);
    free(r->y), free(r->dx), free(r->g);
}

/* A forward and a backward with the gradients reset to GRAD0 first. */
static void run_layer(fixture *f)
{
    for (size_t i = 0; i < f->nw + f->nb; i++)
        f->grad[i] = GRAD0;
    mpq_dwconv_forward(&f->l, &f->s, f->x, f->y);
    mpq_dwconv_backward(&f->l, &f->s, f->x, f->r, f->dx);
}

START_TEST(test_dwconv_is_independent_of_threads)
{
    fixture f;
    fixture_init(&f, &CASE_BIG, 20);
    mpq_gemm_set_threads(1);
    run_layer(&f);
    results one = results_keep(&f);
    mpq_gemm_set_threads(2);
    run_layer(&f);
    mpq_gemm_set_threads(1);
    results_check_same(&f, &one);
    fixture_free(&f);
}
END_TEST

/* mpq_dwconv_forward_sums: y bitwise that of mpq_dwconv_forward, each sample's sums equal to
 * those of d = y - shift over its pixels (to float rounding: the kernels add a few pixels in
 * float), the same bits on 1 and 2 threads: with channel tails, strides 1 and 2, bias, streamed
 * outputs. */
static void check_sums(const dw_case *c, size_t stream_bytes, uint64_t seed)
{
    fixture f;
    fixture_init(&f, c, seed);
    f.l.stream_bytes = stream_bytes;
    const size_t ns = (size_t)c->n * 2 * c->c;
    float *y0 = malloc(f.ny * sizeof *y0), *shift = malloc((size_t)c->c * sizeof *shift);
    double *sums = malloc(ns * sizeof *sums), *sums1 = malloc(ns * sizeof *sums1);
    mpq_test_fill_uniform(shift, (size_t)c->c, -0.5f, 0.5f, seed + 7);
    mpq_dwconv_forward(&f.l, &f.s, f.x, y0);
    for (int t = 1; t <= 2; t++) {
        mpq_gemm_set_threads(t);
        mpq_dwconv_forward_sums(&f.l, &f.s, f.x, f.y, shift, sums);
        if (t == 1) memcpy(sums1, sums, ns * sizeof *sums1);
    }
    mpq_gemm_set_threads(1);
    ck_assert_mem_eq(y0, f.y, f.ny * sizeof *y0);
    ck_assert_mem_eq(sums1, sums, ns * sizeof *sums);
    ck_assert(mpq_test_sums_match(f.y, c->n, f.l.ho * f.l.wo, c->c, shift, sums, 1e-6));
    free(y0), free(shift), free(sums), free(sums1);
    fixture_free(&f);
}

START_TEST(test_dwconv_forward_sums_match_the_output)
{
    static const dw_case streamed = {3, 9, 10, 32, 3, 3, 1, 1, 1, 1, 0};
    check_sums(&CASE_S2, MPQ_STREAM_BYTES, 60);
    check_sums(&CASE_RECT, MPQ_STREAM_BYTES, 61);
    check_sums(&CASE_BIG, MPQ_STREAM_BYTES, 62);
    check_sums(&CASE_WIDE_PAD, MPQ_STREAM_BYTES, 63);
    check_sums(&streamed, 0, 64);
}
END_TEST

/* Outputs streamed past the caches (stream_bytes 0; 32 channels: whole aligned vectors): y, dx
 * and the parameter gradients bitwise those of the cached path, at strides 1 and 2. */
START_TEST(test_dwconv_streamed_outputs_are_bitwise_the_same)
{
    /*                             n  h  w   c kh kw sh sw ph pw bias */
    static const dw_case s1 = {3, 6, 7, 32, 3, 3, 1, 1, 1, 1, 0};
    static const dw_case s2 = {2, 8, 7, 32, 3, 3, 2, 2, 1, 1, 1};
    const dw_case *cases[2] = {&s1, &s2};
    for (int k = 0; k < 2; k++) {
        fixture f;
        fixture_init(&f, cases[k], 30 + k);
        ck_assert_uint_eq(f.l.stream_bytes, MPQ_STREAM_BYTES);
        run_layer(&f);
        results cached = results_keep(&f);
        f.l.stream_bytes = 0;
        run_layer(&f);
        results_check_same(&f, &cached);
        fixture_free(&f);
    }
}
END_TEST

/* dy from a row source gives mpq_dwconv_backward's bits (dx, dW, db; dx NULL too) on 1 and 2
 * threads: strides 1 and 2, kernels of 3 and 5 rows, input rows past the last output row's
 * stride, wide padding, more rows than parts, streamed dx. Every pixel is asked for, and again
 * only for the rows before a part's first that its dx rows read (at most KH - 1 per part). */
START_TEST(test_dwconv_backward_rows_matches_backward)
{
    static const dw_case streamed = {3, 9, 10, 32, 3, 3, 1, 1, 1, 1, 0};
    const dw_case *cases[] = {&CASE_S2,        &CASE_RECT,     &CASE_WIDE, &CASE_BIG,
                              &CASE_TAIL_ROWS, &CASE_WIDE_PAD, &streamed};
    for (int k = 0; k < 7; k++)
        for (int t = 1; t <= 2; t++)
            for (int with_dx = 1; with_dx >= 0; with_dx--) {
                fixture f;
                fixture_init(&f, cases[k], 70 + k);
                if (cases[k] == &streamed) f.l.stream_bytes = 0;
                const size_t np = f.nw + f.nb, pixels = f.ny / cases[k]->c;
                mpq_gemm_set_threads(t);
                run_layer(&f);
                if (!with_dx) { /* the weight gradients alone */
                    for (size_t i = 0; i < np; i++)
                        f.grad[i] = GRAD0;
                    mpq_dwconv_backward(&f.l, &f.s, f.x, f.r, NULL);
                }
                results whole = results_keep(&f);
                for (size_t i = 0; i < np; i++)
                    f.grad[i] = GRAD0;
                for (size_t i = 0; i < f.nx; i++)
                    f.dx[i] = with_dx ? NAN : whole.dx[i];
                mpq_test_rows d = {f.r, cases[k]->c, calloc(pixels, sizeof(int))};
                const mpq_dy_src src = {mpq_test_rows_fill, &d};
                mpq_dwconv_backward_rows(&f.l, &f.s, f.x, &src, with_dx ? f.dx : NULL);
                mpq_gemm_set_threads(1);
                results_check_same(&f, &whole);
                size_t extra = 0;
                for (size_t p = 0; p < pixels; p++) {
                    ck_assert_int_ge(d.asked[p], 1);
                    extra += (size_t)d.asked[p] - 1;
                }
                const size_t most = with_dx ? 16 * (size_t)(cases[k]->kh - 1) * f.l.wo : 0;
                ck_assert_msg(extra <= most, "case %d: %zu pixels asked again (at most %zu)", k,
                              extra, most);
                free(d.asked);
                fixture_free(&f);
            }
}
END_TEST

START_TEST(test_dwconv_init_rejects_bad_geometry)
{
    mpq_dwconv l;
    ck_assert_int_eq(mpq_dwconv_init(&l, 2, 8, 4, 5, 3, 1, 1, 1, 1), MPQ_E_ARG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "larger"));
    ck_assert_int_eq(mpq_dwconv_init(&l, 8, 8, 0, 3, 3, 1, 1, 1, 1), MPQ_E_ARG);
    ck_assert_int_eq(mpq_dwconv_init(&l, 8, 8, 4, 3, 3, 1, 0, 1, 1), MPQ_E_ARG);
    ck_assert_int_eq(mpq_dwconv_init(&l, 7, 8, 4, 3, 3, 2, 2, 1, 1), MPQ_OK);
    ck_assert_int_eq(l.ho, 4);
    ck_assert_int_eq(l.wo, 4);
}
END_TEST

static Suite *dwconv_suite(void)
{
    Suite *s = suite_create("dwconv");
    TCase *tc = tcase_create("dwconv");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_dwconv_matches_reference);
    tcase_add_test(tc, test_dwconv_gradients_match_central_differences);
    tcase_add_test(tc, test_dwconv_is_independent_of_threads);
    tcase_add_test(tc, test_dwconv_streamed_outputs_are_bitwise_the_same);
    tcase_add_test(tc, test_dwconv_forward_sums_match_the_output);
    tcase_add_test(tc, test_dwconv_backward_rows_matches_backward);
    tcase_add_test(tc, test_dwconv_init_rejects_bad_geometry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(dwconv_suite); }

/* pool: max (first maximum wins, padding ignored) and average (padding counted) pooling and
 * global average pooling against a double-precision reference on odd shapes, central-difference
 * gradients (max pooling on inputs without ties), tie routing, and geometry validation. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "layers/pool.h"
#include "layertest.h"
#include "testutil.h"

typedef struct pool_case {
    mpq_pool_kind kind;
    int n, h, w, c, kh, kw, sh, sw, ph, pw;
} pool_case;

typedef struct fixture {
    mpq_pool l;
    mpq_step s;
    size_t nx, ny;
    float *x, *y, *r, *dx;
} fixture;

static void fixture_init(fixture *f, const pool_case *c, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    ck_assert_int_eq(
        mpq_pool_init(&f->l, c->kind, c->h, c->w, c->c, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw),
        0);
    f->nx = (size_t)c->n * c->h * c->w * c->c;
    f->ny = (size_t)c->n * f->l.ho * f->l.wo * c->c;
    f->x = malloc(f->nx * sizeof(float));
    f->dx = malloc(f->nx * sizeof(float));
    f->y = malloc(f->ny * sizeof(float));
    f->r = malloc(f->ny * sizeof(float));
    /* distinct inputs 0.01 apart (a shuffled ramp): no ties, so max pooling is differentiable */
    for (size_t i = 0; i < f->nx; i++)
        f->x[i] = 0.01f * (float)((i * 7919) % f->nx);
    mpq_test_fill_uniform(f->r, f->ny, -1, 1, seed);
    f->s = (mpq_step){.n = c->n, .n_groups = 1, .training = 1};
}

static void fixture_free(fixture *f) { free(f->x), free(f->dx), free(f->y), free(f->r); }

/* Reference pooling in double: y and dx (+= routed dy). */
static void pool_ref(const fixture *f, int n_samples, double *y, double *dx)
{
    const mpq_pool *l = &f->l;
    for (int n = 0; n < n_samples; n++)
        for (int oh = 0; oh < l->ho; oh++)
            for (int ow = 0; ow < l->wo; ow++)
                for (int c = 0; c < l->c; c++) {
                    const size_t yi = (((size_t)n * l->ho + oh) * l->wo + ow) * l->c + c;
                    double acc = 0.0, best = 0.0;
                    size_t at = 0;
                    int seen = 0;
                    for (int kh = 0; kh < l->kh; kh++)
                        for (int kw = 0; kw < l->kw; kw++) {
                            const int ih = oh * l->sh - l->ph + kh, iw = ow * l->sw - l->pw + kw;
                            if (ih < 0 || ih >= l->h || iw < 0 || iw >= l->w) continue;
                            const size_t xi = (((size_t)n * l->h + ih) * l->w + iw) * l->c + c;
                            acc += f->x[xi];
                            if (!seen || f->x[xi] > best) best = f->x[xi], at = xi;
                            seen = 1;
                        }
                    if (l->kind == MPQ_POOL_MAX) {
                        y[yi] = best;
                        dx[at] += f->r[yi];
                    } else {
                        const double area = (double)l->kh * l->kw;
                        y[yi] = acc / area;
                        for (int kh = 0; kh < l->kh; kh++)
                            for (int kw = 0; kw < l->kw; kw++) {
                                const int ih = oh * l->sh - l->ph + kh;
                                const int iw = ow * l->sw - l->pw + kw;
                                if (ih < 0 || ih >= l->h || iw < 0 || iw >= l->w) continue;
                                dx[(((size_t)n * l->h + ih) * l->w + iw) * l->c + c] +=
                                    f->r[yi] / area;
                            }
                    }
                }
}

static void check_against_ref(fixture *f)
{
    double *y = calloc(f->ny, sizeof *y), *dx = calloc(f->nx, sizeof *dx);
    float *yf = malloc(f->ny * sizeof *yf), *dxf = malloc(f->nx * sizeof *dxf);
    pool_ref(f, f->s.n, y, dx);
    for (size_t i = 0; i < f->ny; i++)
        yf[i] = (float)y[i];
    for (size_t i = 0; i < f->nx; i++)
        dxf[i] = (float)dx[i];
    mpq_pool_forward(&f->l, &f->s, f->x, f->y);
    ck_assert(mpq_ck_allclose(f->y, yf, f->ny, 1e-6f, 1e-6f, "pool y"));
    mpq_pool_backward(&f->l, &f->s, f->x, f->r, f->dx);
    ck_assert(mpq_ck_allclose(f->dx, dxf, f->nx, 1e-6f, 1e-6f, "pool dx"));
    free(y), free(dx), free(yf), free(dxf);
}

static double probe_loss(void *ctx)
{
    fixture *f = ctx;
    mpq_pool_forward(&f->l, &f->s, f->x, f->y);
    return mpq_test_dot(f->y, f->r, f->ny);
}

static const pool_case CASES[] = {
    {MPQ_POOL_MAX, 2, 7, 5, 3, 3, 3, 2, 2, 1, 1},  {MPQ_POOL_AVG, 2, 7, 5, 3, 3, 3, 2, 2, 1, 1},
    {MPQ_POOL_MAX, 2, 7, 5, 3, 2, 2, 2, 2, 0, 0},  {MPQ_POOL_AVG, 2, 7, 5, 3, 3, 3, 1, 1, 1, 1},
    {MPQ_POOL_MAX, 2, 4, 5, 70, 3, 2, 1, 2, 1, 0}, {MPQ_POOL_AVG, 2, 4, 5, 70, 3, 2, 1, 2, 1, 0},
};
enum { N_CASES = sizeof CASES / sizeof CASES[0] };

START_TEST(test_pool_matches_reference)
{
    for (int i = 0; i < N_CASES; i++) {
        fixture f;
        fixture_init(&f, &CASES[i], (uint64_t)i);
        check_against_ref(&f);
        fixture_free(&f);
    }
}
END_TEST

START_TEST(test_pool_global_average_matches_reference)
{
    fixture f;
    memset(&f, 0, sizeof f);
    fixture_init(&f, &CASES[1], 0); /* buffers big enough; geometry replaced below */
    ck_assert_int_eq(mpq_pool_init_global(&f.l, 7, 5, 3), 0);
    ck_assert_int_eq(f.l.ho, 1);
    ck_assert_int_eq(f.l.wo, 1);
    f.ny = (size_t)f.s.n * 3;
    check_against_ref(&f);
    fixture_free(&f);
}
END_TEST

START_TEST(test_pool_gradients_match_central_differences)
{
    for (int i = 0; i < N_CASES; i++) {
        fixture f;
        fixture_init(&f, &CASES[i], 100 + (uint64_t)i);
        probe_loss(&f);
        mpq_pool_backward(&f.l, &f.s, f.x, f.r, f.dx);
        /* max: steps below half the gap between inputs, so no window changes its maximum;
         * average: linear, so a large step has no truncation error */
        const float eps = CASES[i].kind == MPQ_POOL_MAX ? 2e-3f : 0.5f;
        ck_assert_int_eq(
            mpq_test_gradcheck(probe_loss, &f, f.x, f.nx, f.dx, eps, 1e-3, 1e-3, "pool dx"), 0);
        fixture_free(&f);
    }
}
END_TEST

START_TEST(test_pool_max_ties_go_to_the_first_maximum)
{
    const pool_case c = {MPQ_POOL_MAX, 1, 3, 3, 2, 2, 2, 1, 1, 0, 0};
    fixture f;
    fixture_init(&f, &c, 7);
    for (size_t i = 0; i < f.nx; i++)
        f.x[i] = 1.0f;
    check_against_ref(&f); /* the reference routes ties to the first cell in (kh, kw) order */
    /* window (0,0) -> input (0,0); (0,1) -> (0,1); (1,0) -> (1,0); (1,1) -> (1,1) */
    for (int ch = 0; ch < 2; ch++)
        for (int p = 0; p < 9; p++) {
            const int ih = p / 3, iw = p % 3;
            const float want = ih < 2 && iw < 2 ? f.r[(ih * 2 + iw) * 2 + ch] : 0.0f;
            ck_assert_float_eq(f.dx[p * 2 + ch], want);
        }
    fixture_free(&f);
}
END_TEST

START_TEST(test_pool_init_rejects_bad_geometry)
{
    mpq_pool l;
    ck_assert_int_eq(mpq_pool_init(&l, MPQ_POOL_MAX, 8, 8, 4, 2, 2, 2, 2, 2, 0), MPQ_E_ARG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "padding"));
    ck_assert_int_eq(mpq_pool_init(&l, MPQ_POOL_AVG, 2, 8, 4, 3, 3, 1, 1, 0, 0), MPQ_E_ARG);
    ck_assert_int_eq(mpq_pool_init(&l, MPQ_POOL_AVG, 8, 8, 4, 3, 3, 0, 1, 0, 0), MPQ_E_ARG);
    ck_assert_int_eq(mpq_pool_init(&l, MPQ_POOL_MAX, 112, 112, 64, 3, 3, 2, 2, 1, 1), MPQ_OK);
    ck_assert_int_eq(l.ho, 56);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_pool_matches_reference);
    tcase_add_test(tc, test_pool_global_average_matches_reference);
    tcase_add_test(tc, test_pool_gradients_match_central_differences);
    tcase_add_test(tc, test_pool_max_ties_go_to_the_first_maximum);
    tcase_add_test(tc, test_pool_init_rejects_bad_geometry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(pool_suite); }

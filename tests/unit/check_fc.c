/* fc: y = x W^T + b against a double-precision reference (with and without bias), central-
 * difference gradients of x, W and b, and accumulation into grad. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "layers/fc.h"
#include "layertest.h"
#include "testutil.h"

enum { N = 3, CIN = 7, COUT = 5 };
static const float GRAD0 = 0.75f;

typedef struct fixture {
    mpq_fc l;
    mpq_step s;
    size_t np;
    float x[N * CIN], y[N * COUT], r[N * COUT], dx[N * CIN];
    float val[COUT * CIN + COUT], grad[COUT * CIN + COUT];
} fixture;

static void fixture_init(fixture *f, int bias, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    mpq_fc_init(&f->l, CIN, COUT);
    f->l.weight = (mpq_slice){0, COUT * CIN};
    f->l.bias = (mpq_slice){COUT * CIN, bias ? COUT : 0};
    f->np = COUT * CIN + (bias ? COUT : 0);
    mpq_test_fill_uniform(f->x, N * CIN, -1, 1, seed);
    mpq_test_fill_uniform(f->r, N * COUT, -1, 1, seed + 1);
    mpq_test_fill_uniform(f->val, COUT * CIN + COUT, -1, 1, seed + 2);
    for (size_t i = 0; i < COUT * CIN + COUT; i++)
        f->grad[i] = GRAD0;
    f->s = (mpq_step){
        .val = f->val, .wq = f->val, .grad = f->grad, .n = N, .n_groups = 1, .training = 1};
}

START_TEST(test_fc_matches_reference)
{
    for (int bias = 0; bias <= 1; bias++) {
        fixture f;
        float y[N * COUT], dx[N * CIN], grad[COUT * CIN + COUT];
        fixture_init(&f, bias, 1 + (uint64_t)bias);
        for (int i = 0; i < COUT * CIN + COUT; i++)
            grad[i] = GRAD0;
        for (int i = 0; i < N; i++)
            for (int o = 0; o < COUT; o++) {
                double acc = bias ? f.val[COUT * CIN + o] : 0.0;
                for (int k = 0; k < CIN; k++)
                    acc += (double)f.x[i * CIN + k] * f.val[o * CIN + k];
                y[i * COUT + o] = (float)acc;
                if (bias) grad[COUT * CIN + o] += f.r[i * COUT + o];
            }
        for (int o = 0; o < COUT; o++)
            for (int k = 0; k < CIN; k++) {
                double acc = 0.0;
                for (int i = 0; i < N; i++)
                    acc += (double)f.r[i * COUT + o] * f.x[i * CIN + k];
                grad[o * CIN + k] += (float)acc;
            }
        for (int i = 0; i < N; i++)
            for (int k = 0; k < CIN; k++) {
                double acc = 0.0;
                for (int o = 0; o < COUT; o++)
                    acc += (double)f.r[i * COUT + o] * f.val[o * CIN + k];
                dx[i * CIN + k] = (float)acc;
            }
        mpq_fc_forward(&f.l, &f.s, f.x, f.y);
        ck_assert(mpq_ck_allclose(f.y, y, N * COUT, 1e-5f, 1e-5f, "fc y"));
        mpq_fc_backward(&f.l, &f.s, f.x, f.r, f.dx);
        ck_assert(mpq_ck_allclose(f.dx, dx, N * CIN, 1e-5f, 1e-5f, "fc dx"));
        ck_assert(mpq_ck_allclose(f.grad, grad, COUT * CIN + COUT, 1e-5f, 1e-5f, "fc dW,db"));
    }
}
END_TEST

static double probe_loss(void *ctx)
{
    fixture *f = ctx;
    mpq_fc_forward(&f->l, &f->s, f->x, f->y);
    return mpq_test_dot(f->y, f->r, N * COUT);
}

START_TEST(test_fc_gradients_match_central_differences)
{
    for (int bias = 0; bias <= 1; bias++) {
        fixture f;
        fixture_init(&f, bias, 10 + (uint64_t)bias);
        memset(f.grad, 0, sizeof f.grad);
        probe_loss(&f);
        mpq_fc_backward(&f.l, &f.s, f.x, f.r, f.dx);
        ck_assert_int_eq(
            mpq_test_gradcheck(probe_loss, &f, f.x, N * CIN, f.dx, 0.5f, 1e-4, 1e-4, "fc dx"), 0);
        ck_assert_int_eq(
            mpq_test_gradcheck(probe_loss, &f, f.val, f.np, f.grad, 0.5f, 1e-4, 1e-4, "fc dW,db"),
            0);
        if (!bias) ck_assert_float_eq(f.grad[COUT * CIN], 0.0f); /* absent bias untouched */
    }
}
END_TEST

START_TEST(test_fc_backward_adds_into_grad)
{
    fixture f;
    float once[COUT * CIN + COUT];
    fixture_init(&f, 1, 20);
    memset(f.grad, 0, sizeof f.grad);
    mpq_fc_backward(&f.l, &f.s, f.x, f.r, NULL);
    for (int i = 0; i < COUT * CIN + COUT; i++)
        once[i] = 2.0f * f.grad[i];
    mpq_fc_backward(&f.l, &f.s, f.x, f.r, NULL);
    ck_assert(mpq_ck_allclose(f.grad, once, COUT * CIN + COUT, 1e-6f, 1e-6f, "fc grad twice"));
}
END_TEST

static Suite *fc_suite(void)
{
    Suite *s = suite_create("fc");
    TCase *tc = tcase_create("fc");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_fc_matches_reference);
    tcase_add_test(tc, test_fc_gradients_match_central_differences);
    tcase_add_test(tc, test_fc_backward_adds_into_grad);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(fc_suite); }

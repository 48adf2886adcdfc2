/* eltwise: residual add (also in place), channel zero-padding and its adjoint backward, and the
 * learnable scale layer (central differences of x and the scalar, accumulation into grad,
 * independence of the thread count). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "layers/eltwise.h"
#include "layertest.h"
#include "testutil.h"

START_TEST(test_eltwise_add_sums_and_may_alias)
{
    enum { LEN = 1001 };
    float a[LEN], b[LEN], y[LEN];
    mpq_test_fill_uniform(a, LEN, -1, 1, 1);
    mpq_test_fill_uniform(b, LEN, -1, 1, 2);
    mpq_add_forward(LEN, a, b, y);
    for (int i = 0; i < LEN; i++)
        ck_assert_float_eq(y[i], a[i] + b[i]);
    mpq_add_forward(LEN, a, b, a); /* y aliases a */
    ck_assert_mem_eq(a, y, sizeof y);
}
END_TEST

START_TEST(test_eltwise_chanpad_pads_and_backward_is_its_adjoint)
{
    enum { N = 2, HW = 5, CIN = 3, COUT = 8 };
    float x[N * HW * CIN], y[N * HW * COUT], r[N * HW * COUT], dx[N * HW * CIN];
    mpq_test_fill_uniform(x, N * HW * CIN, -1, 1, 3);
    mpq_test_fill_uniform(r, N * HW * COUT, -1, 1, 4);
    mpq_chanpad_forward(N, HW, CIN, COUT, x, y);
    for (int p = 0; p < N * HW; p++)
        for (int c = 0; c < COUT; c++)
            ck_assert_float_eq(y[p * COUT + c], c < CIN ? x[p * CIN + c] : 0.0f);
    mpq_chanpad_backward(N, HW, CIN, COUT, r, dx);
    ck_assert_double_eq_tol(mpq_test_dot(y, r, N * HW * COUT), mpq_test_dot(x, dx, N * HW * CIN),
                            1e-9);
    for (int p = 0; p < N * HW; p++)
        for (int c = 0; c < CIN; c++)
            ck_assert_float_eq(dx[p * CIN + c], r[p * COUT + c]);
}
END_TEST

enum { LEN = 4099 };

typedef struct scale_fixture {
    mpq_slice sc;
    mpq_step s;
    float val[2], grad[2];
    float x[LEN], y[LEN], r[LEN], dx[LEN];
} scale_fixture;

static void scale_init(scale_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->sc = (mpq_slice){1, 1};
    f->val[1] = 1.7f;
    f->grad[1] = 0.5f;
    mpq_test_fill_uniform(f->x, LEN, -1, 1, 5);
    mpq_test_fill_uniform(f->r, LEN, -1, 1, 6);
    f->s = (mpq_step){
        .val = f->val, .wq = f->val, .grad = f->grad, .n = 1, .n_groups = 1, .training = 1};
}

static double scale_loss(void *ctx)
{
    scale_fixture *f = ctx;
    mpq_scale_forward(f->sc, &f->s, LEN, f->x, f->y);
    return mpq_test_dot(f->y, f->r, LEN);
}

START_TEST(test_eltwise_scale_gradients_match_central_differences)
{
    static scale_fixture f;
    scale_init(&f);
    scale_loss(&f);
    for (int i = 0; i < LEN; i++)
        ck_assert_float_eq(f.y[i], 1.7f * f.x[i]);
    mpq_scale_backward(f.sc, &f.s, LEN, f.x, f.r, f.dx);
    ck_assert_float_eq(f.grad[0], 0.0f);
    f.grad[1] -= 0.5f; /* pre-filled: backward adds */
    ck_assert_int_eq(mpq_test_gradcheck(scale_loss, &f, f.x, LEN, f.dx, 0.5f, 1e-4, 1e-4, "dx"), 0);
    ck_assert_int_eq(
        mpq_test_gradcheck(scale_loss, &f, f.val + 1, 1, f.grad + 1, 0.5f, 1e-3, 1e-4, "dscale"),
        0);
}
END_TEST

START_TEST(test_eltwise_scale_is_independent_of_threads)
{
    static scale_fixture f;
    scale_init(&f);
    mpq_gemm_set_threads(1);
    mpq_scale_backward(f.sc, &f.s, LEN, f.x, f.r, f.dx);
    const float one = f.grad[1];
    f.grad[1] = 0.5f;
    mpq_gemm_set_threads(2);
    mpq_scale_backward(f.sc, &f.s, LEN, f.x, f.r, NULL);
    mpq_gemm_set_threads(1);
    ck_assert_mem_eq(&one, &f.grad[1], sizeof one);
}
END_TEST

static Suite *eltwise_suite(void)
{
    Suite *s = suite_create("eltwise");
    TCase *tc = tcase_create("eltwise");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_eltwise_add_sums_and_may_alias);
    tcase_add_test(tc, test_eltwise_chanpad_pads_and_backward_is_its_adjoint);
    tcase_add_test(tc, test_eltwise_scale_gradients_match_central_differences);
    tcase_add_test(tc, test_eltwise_scale_is_independent_of_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(eltwise_suite); }

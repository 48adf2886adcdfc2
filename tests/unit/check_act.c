/* The activation layer (src/layers/act.c): ReLU and ReLU6 forward values and backward against
 * central differences away from the kinks (and the kinks themselves), and the quantized
 * activation: forward equals mpq_quantize with the unsigned spec, backward writes the spec's
 * dq/dx and adds mpq_quantize_backward's parameter gradients into s->grad, for any thread count. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "layers/act.h"
#include "mpq.h"
#include "qsettings.h"
#include "testutil.h"

enum { NS = 2, LEN = 50 };

static double act_loss(const mpq_act *l, const mpq_step *s, const float *x, const float *r)
{
    float y[NS * LEN];
    double acc = 0.0;
    mpq_act_forward(l, s, x, y);
    for (int i = 0; i < NS * LEN; i++) acc += (double)y[i] * r[i];
    return acc;
}

START_TEST(test_act_relu_and_relu6_match_finite_differences)
{
    mpq_step s = {.n = NS};
    float x[NS * LEN], r[NS * LEN], dx[NS * LEN], y[NS * LEN];
    mpq_test_fill_uniform(x, NS * LEN, -3.0f, 9.0f, 1);
    mpq_test_fill_uniform(r, NS * LEN, -1.0f, 1.0f, 2);
    for (int i = 0; i < NS * LEN; i++) /* keep 2 eps away from the kinks at 0 and 6 */
        if (fabsf(x[i]) < 0.01f || fabsf(x[i] - 6.0f) < 0.01f) x[i] += 0.05f;
    for (int kind = MPQ_ACT_RELU; kind <= MPQ_ACT_RELU6; kind++) {
        mpq_act l = {.kind = (mpq_act_kind)kind, .len = LEN};
        mpq_act_forward(&l, &s, x, y);
        for (int i = 0; i < NS * LEN; i++) {
            float want = x[i] > 0.0f ? x[i] : 0.0f;
            if (kind == MPQ_ACT_RELU6 && want > 6.0f) want = 6.0f;
            ck_assert_float_eq(y[i], want);
        }
        mpq_act_backward(&l, &s, x, r, dx);
        for (int i = 0; i < NS * LEN; i++) {
            const float eps = 1e-3f, x0 = x[i];
            x[i] = x0 + eps;
            double up = act_loss(&l, &s, x, r);
            x[i] = x0 - eps;
            double dn = act_loss(&l, &s, x, r);
            x[i] = x0;
            ck_assert_double_eq_tol(dx[i], (up - dn) / (2.0 * eps), 1e-3);
        }
    }
}
END_TEST

START_TEST(test_act_kinks_and_in_place)
{
    mpq_step s = {.n = 1};
    float x[5] = {0.0f, -0.0f, 6.0f, -1.0f, 7.0f}, dy[5] = {1, 1, 1, 1, 1}, dx[5];
    mpq_act relu = {.kind = MPQ_ACT_RELU, .len = 5}, relu6 = {.kind = MPQ_ACT_RELU6, .len = 5};
    mpq_act_backward(&relu, &s, x, dy, dx);
    ck_assert(dx[0] == 0.0f && dx[1] == 0.0f && dx[2] == 1.0f && dx[3] == 0.0f && dx[4] == 1.0f);
    mpq_act_backward(&relu6, &s, x, dy, dx);
    ck_assert(dx[0] == 0.0f && dx[2] == 0.0f && dx[4] == 0.0f);
    mpq_act_forward(&relu6, &s, x, x); /* in place */
    ck_assert(x[0] == 0.0f && x[2] == 6.0f && x[3] == 0.0f && x[4] == 6.0f);
}
END_TEST

START_TEST(test_act_quantized_equals_unsigned_quantizer)
{
    static const char *methods[] = {"fp_relu", "pow2_relu", "parametric_fp_b_xmax_relu",
                                    "parametric_fp_d_xmax_relu", "parametric_fp_d_b_relu",
                                    "parametric_pow2_b_xmax_relu", "parametric_pow2_b_xmin_relu",
                                    "parametric_pow2_xmin_xmax_relu"};
    enum { N = 3, L = 20000, T = N * L };
    float *x = malloc(T * sizeof *x), *dy = malloc(T * sizeof *x), *y = malloc(T * sizeof *x);
    float *yr = malloc(T * sizeof *x), *dx = malloc(T * sizeof *x), *dxr = malloc(T * sizeof *x);
    ck_assert(x && dy && y && yr && dx && dxr);
    mpq_test_fill_uniform(x, T, -2.0f, 3.0f, 3);
    mpq_test_fill_uniform(dy, T, -1.0f, 1.0f, 4);
    for (size_t k = 0; k < sizeof methods / sizeof *methods; k++) {
        mpq_qsettings st = mpq_test_qsettings(methods[k], 1);
        float val[4] = {0, 0, 0, 0}, grad1[4] = {0, 0.25f, -0.5f, 0}, grad2[4], gp[2];
        mpq_quant q;
        mpq_act l = {.kind = MPQ_ACT_QUANT, .len = L, .q = &q};
        mpq_step s = {.n = N, .val = val, .grad = grad1};
        ck_assert_int_eq(mpq_quant_setup(&q, &st, 1, L), 0);
        q.p = (mpq_slice){1, (size_t)mpq_qmethod_n_params(q.method)};
        mpq_quant_init_values(&q, &st, st.stepsize, val);
        if (q.p.n) val[1] *= 1.3f; /* off the initial grid */
        mpq_qspec spec = mpq_quant_spec(&q, val);
        ck_assert(spec.sign == 0);
        ck_assert_int_eq(spec.with_zero, strstr(methods[k], "pow2") != NULL);
        ck_assert_int_eq(mpq_quantize(&spec, T, x, yr), 0);
        ck_assert_int_eq(mpq_quantize_backward(&spec, T, x, dy, dxr, gp), 0);
        mpq_act_forward(&l, &s, x, y);
        ck_assert_msg(memcmp(y, yr, T * sizeof *y) == 0, "%s: forward differs", methods[k]);
        memcpy(grad2, grad1, sizeof grad1);
        omp_set_num_threads(1);
        mpq_act_backward(&l, &s, x, dy, dx);
        ck_assert_msg(memcmp(dx, dxr, T * sizeof *dx) == 0, "%s: dx differs", methods[k]);
        if (q.p.n) {
            ck_assert(grad1[1] == 0.25f + gp[0] && grad1[2] == -0.5f + gp[1]);
            ck_assert(gp[0] != 0.0f || gp[1] != 0.0f);
        } else {
            ck_assert(grad1[1] == 0.25f && grad1[2] == -0.5f);
        }
        ck_assert(grad1[0] == 0.0f && grad1[3] == 0.0f);
        s.grad = grad2; /* the same with two threads: bit-identical */
        omp_set_num_threads(2);
        mpq_act_backward(&l, &s, x, dy, dxr);
        omp_set_num_threads(1);
        ck_assert_mem_eq(grad1, grad2, sizeof grad1);
        ck_assert_mem_eq(dx, dxr, T * sizeof *dx);
    }
    free(x);
    free(dy);
    free(y);
    free(yr);
    free(dx);
    free(dxr);
}
END_TEST

static Suite *act_suite(void)
{
    Suite *s = suite_create("act");
    TCase *tc = tcase_create("act");
    tcase_add_test(tc, test_act_relu_and_relu6_match_finite_differences);
    tcase_add_test(tc, test_act_kinks_and_in_place);
    tcase_add_test(tc, test_act_quantized_equals_unsigned_quantizer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(act_suite); }

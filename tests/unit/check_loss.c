/* loss: softmax cross-entropy against a double-precision reference, stability for huge logits,
 * error counting with the first arg-max on ties, and the backward against central differences
 * of the summed loss (scaled). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/loss.h"
#include "layertest.h"
#include "testutil.h"

enum { N = 6, K = 11 };

START_TEST(test_loss_matches_reference)
{
    float z[N * K], prob[N * K];
    int labels[N], wrong = -1, ref_wrong = 0;
    double ref = 0.0;
    mpq_test_fill_uniform(z, N * K, -3, 3, 1);
    for (int i = 0; i < N; i++)
        labels[i] = (i * 5) % K;
    for (int i = 0; i < N; i++) {
        double sum = 0.0;
        int arg = 0;
        for (int j = 0; j < K; j++)
            sum += exp((double)z[i * K + j]);
        for (int j = 1; j < K; j++)
            if (z[i * K + j] > z[i * K + arg]) arg = j;
        ref += log(sum) - z[i * K + labels[i]];
        ref_wrong += arg != labels[i];
        for (int j = 0; j < K; j++)
            prob[i * K + j] = (float)(exp((double)z[i * K + j]) / sum);
    }
    float got[N * K];
    const double loss = mpq_softmax_ce_forward(N, K, z, labels, got, &wrong);
    ck_assert_double_eq_tol(loss, ref, 1e-9 * fabs(ref));
    ck_assert_int_eq(wrong, ref_wrong);
    ck_assert(mpq_ck_allclose(got, prob, N * K, 1e-6f, 1e-7f, "softmax"));
    ck_assert_double_eq_tol(mpq_softmax_ce_forward(N, K, z, labels, NULL, NULL), ref,
                            1e-9 * fabs(ref)); /* prob and n_wrong are optional */
}
END_TEST

START_TEST(test_loss_is_stable_for_huge_logits)
{
    float z[N * K], big[N * K], prob[N * K];
    int labels[N] = {0, 1, 2, 3, 4, 5}, w1, w2;
    mpq_test_fill_uniform(z, N * K, -3, 3, 2);
    for (int i = 0; i < N * K; i++)
        big[i] = z[i] + (i / K % 2 ? 3e4f : -3e4f);
    const double a = mpq_softmax_ce_forward(N, K, z, labels, NULL, &w1);
    const double b = mpq_softmax_ce_forward(N, K, big, labels, prob, &w2);
    ck_assert(isfinite(b));
    ck_assert_double_eq_tol(a, b, 1e-2); /* shifts are exact only up to float spacing at 3e4 */
    ck_assert_int_eq(w1, w2);
    for (int i = 0; i < N * K; i++)
        ck_assert(isfinite(prob[i]));
}
END_TEST

START_TEST(test_loss_counts_errors_with_first_argmax)
{
    const float z[3 * 3] = {1, 3, 3, 1, 3, 3, 2, 2, 2};
    const int right[3] = {1, 1, 0}, wrong_labels[3] = {2, 0, 1};
    int wrong;
    mpq_softmax_ce_forward(3, 3, z, right, NULL, &wrong);
    ck_assert_int_eq(wrong, 0);
    mpq_softmax_ce_forward(3, 3, z, wrong_labels, NULL, &wrong);
    ck_assert_int_eq(wrong, 3);
    const double l = mpq_softmax_ce_forward(1, 3, z + 6, right + 2, NULL, NULL);
    ck_assert_double_eq_tol(l, log(3.0), 1e-12);
}
END_TEST

typedef struct loss_ctx {
    float z[N * K];
    int labels[N];
} loss_ctx;

static double summed_loss(void *ctx)
{
    loss_ctx *c = ctx;
    return mpq_softmax_ce_forward(N, K, c->z, c->labels, NULL, NULL);
}

START_TEST(test_loss_backward_matches_central_differences)
{
    loss_ctx c;
    float prob[N * K], g[N * K], g4[N * K];
    mpq_test_fill_uniform(c.z, N * K, -2, 2, 3);
    for (int i = 0; i < N; i++)
        c.labels[i] = (i * 3 + 1) % K;
    mpq_softmax_ce_forward(N, K, c.z, c.labels, prob, NULL);
    mpq_softmax_ce_backward(N, K, prob, c.labels, 1.0f, g);
    ck_assert_int_eq(mpq_test_gradcheck(summed_loss, &c, c.z, N * K, g, 1e-2f, 1e-4, 1e-3, "dz"),
                     0);
    mpq_softmax_ce_backward(N, K, prob, c.labels, 0.25f, g4);
    for (int i = 0; i < N * K; i++)
        ck_assert_float_eq_tol(g4[i], 0.25f * g[i], 1e-7f);
}
END_TEST

static Suite *loss_suite(void)
{
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("loss");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_loss_matches_reference);
    tcase_add_test(tc, test_loss_is_stable_for_huge_logits);
    tcase_add_test(tc, test_loss_counts_errors_with_first_argmax);
    tcase_add_test(tc, test_loss_backward_matches_central_differences);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(loss_suite); }

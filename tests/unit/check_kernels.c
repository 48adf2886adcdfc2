/* kernels: per-column reductions against naive double loops (every op, a row stride wider than
 * the columns, more columns than one block, fewer rows than parts), their independence of the
 * thread count, and the BLIS kernel-set selection. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/colsum.h"
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

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_kernels_colsum_matches_naive);
    tcase_add_test(tc, test_kernels_colsum_is_independent_of_threads);
    tcase_add_test(tc, test_kernels_colsum_add_accumulates);
    tcase_add_test(tc, test_kernels_gemm_uses_fast_kernels_on_avx512_amd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

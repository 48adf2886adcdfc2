/* The one door to BLIS: single-precision GEMM with row-major strides, so callers never see
 * BLIS types, its non-const pointers or its thread settings. */
#ifndef MPQ_KERNELS_GEMM_H
#define MPQ_KERNELS_GEMM_H

#include <stddef.h>

typedef enum mpq_trans { MPQ_N = 0, MPQ_T = 1 } mpq_trans;

/* C = alpha * op(A) op(B) + beta * C, row-major: op(A) is (m, k), op(B) is (k, n), C is (m, n).
 * lda/ldb/ldc are row strides of the stored matrices (A stored (m,k) if ta == MPQ_N, else (k,m)).
 * beta == 0 overwrites C (NaNs in C are not propagated). */
void mpq_sgemm(mpq_trans ta, mpq_trans tb, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* Naive reference with the same contract (tests). */
void mpq_sgemm_ref(mpq_trans ta, mpq_trans tb, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* Sets the number of threads BLIS uses in this process (and OpenMP's default). */
void mpq_gemm_set_threads(int n_threads);
/* The name of the kernel set BLIS runs with ("skx", "zen3", "generic", ...), for logs. */
const char *mpq_gemm_arch(void);

#endif

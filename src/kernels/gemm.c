/* BLIS-backed sgemm (the only file that includes blis.h) and its naive reference twin.
 * Before BLIS's first call, pick_arch() works around BLIS 0.9's CPU detection, which maps AMD
 * CPUs newer than Zen 3 (Zen 4/5, with AVX-512) to its slow `generic` kernels (~13 GFLOP/s per core
 * instead of ~100): it selects the AVX-512 `skx` kernels through BLIS_ARCH_TYPE unless the user
 * set that variable. Threading: BLIS's own OpenMP threads, count set by mpq_gemm_set_threads. */
#include "kernels/gemm.h"

#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_once_t arch_once = PTHREAD_ONCE_INIT;

static void pick_arch(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    char id[16];
    __builtin_cpu_init();
    if (getenv("BLIS_ARCH_TYPE") || !__builtin_cpu_is("amd")) return;
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq") ||
        !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl"))
        return;
    snprintf(id, sizeof id, "%d", (int)BLIS_ARCH_SKX);
    setenv("BLIS_ARCH_TYPE", id, 0);
#endif
}

static void init_blis(void)
{
    pick_arch();
    bli_init();
}

/* Every entry into BLIS goes through here first. */
static void blis_ready(void) { pthread_once(&arch_once, init_blis); }

void mpq_sgemm(mpq_trans ta, mpq_trans tb, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
    blis_ready();
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
        return;
    }
    /* Row-major with row stride ld: rs = ld, cs = 1. */
    bli_sgemm(ta == MPQ_T ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
              tb == MPQ_T ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, lda, 1,
              (float *)b, ldb, 1, &beta, c, ldc, 1);
}

void mpq_sgemm_ref(mpq_trans ta, mpq_trans tb, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++) {
                float av = ta == MPQ_T ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = tb == MPQ_T ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += (double)av * bv;
            }
            float *cij = &c[(size_t)i * ldc + j];
            *cij = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *cij));
        }
}

void mpq_gemm_set_threads(int n_threads)
{
    if (n_threads < 1) n_threads = 1;
    blis_ready();
    bli_thread_set_num_threads(n_threads);
    omp_set_num_threads(n_threads);
}

const char *mpq_gemm_arch(void)
{
    blis_ready();
    return bli_arch_string(bli_arch_query_id());
}

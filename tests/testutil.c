/* Shared test helpers; see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "mpi/comm.h"

void mpq_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    mpq_rng r;
    mpq_rng_seed(&r, seed, 0, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * mpq_rng_uniform(&r);
}

void mpq_test_sample_sums(const float *t, int n, int hw, int c, const float *shift, double *sums)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            double s1 = 0.0, s2 = 0.0;
            for (int p = 0; p < hw; p++) {
                const double d = (double)(t[((size_t)i * hw + p) * c + j] - shift[j]);
                s1 += d;
                s2 += d * d;
            }
            sums[(size_t)i * 2 * c + j] = s1;
            sums[(size_t)i * 2 * c + c + j] = s2;
        }
}

int mpq_test_sums_match(const float *t, int n, int hw, int c, const float *shift,
                        const double *sums, double tol)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            double s1 = 0.0, s2 = 0.0, a1 = 0.0; /* and the sum of |d| */
            for (int p = 0; p < hw; p++) {
                const double d = (double)(t[((size_t)i * hw + p) * c + j] - shift[j]);
                s1 += d, s2 += d * d, a1 += fabs(d);
            }
            const double *got = sums + (size_t)i * 2 * c;
            if (fabs(got[j] - s1) <= tol * (1.0 + a1) && fabs(got[c + j] - s2) <= tol * (1.0 + s2))
                continue;
            fprintf(stderr, "sample %d channel %d: sums %.17g %.17g, want %.17g %.17g\n", i, j,
                    got[j], got[c + j], s1, s2);
            return 0;
        }
    return 1;
}

int mpq_ck_allclose(const float *a, const float *b, size_t n, float rtol, float atol,
                    const char *label)
{
    size_t first = n, worst = 0;
    double maxdiff = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        int bad = !(d <= atol + rtol * fabs((double)b[i]));
        if (bad && first == n) first = i;
        if (d > maxdiff || (bad && isnan(d))) {
            maxdiff = d;
            worst = i;
        }
    }
    if (first == n) return 1;
    fprintf(stderr,
            "%s: mismatch at %zu: got %.9g expected %.9g; max |diff| %.3g at %zu (%.9g vs %.9g)\n",
            label, first, a[first], b[first], maxdiff, worst, a[worst], b[worst]);
    return 0;
}

char *mpq_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    if (!path) return NULL;
    snprintf(path, 4096, "%s/mpq-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

void mpq_test_rmtree(const char *path)
{
    char cmd[4200];
    if (!path || !*path || strstr(path, "mpq-test-") == NULL) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

int mpq_test_main(struct Suite *(*make)(void))
{
    SRunner *sr = srunner_create(make());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int mpq_test_main_mpi(int *argc, char ***argv, struct Suite *(*make)(void), struct mpq_comm **comm,
                      char **tmp)
{
    long failed;
    if (mpq_comm_init(argc, argv, comm) < 0) {
        fprintf(stderr, "%s\n", mpq_errmsg());
        return EXIT_FAILURE;
    }
    const int rank = mpq_comm_rank(*comm);
    mpq_log_set_quiet(1);
    *tmp = rank == 0 ? mpq_test_tmpdir() : NULL;
    MPQ_ASSERT(rank != 0 || *tmp, "cannot make a temporary directory (TMPDIR?)");
    MPQ_ASSERT(mpq_comm_bcast_string(*comm, tmp, 0) == MPQ_OK, "%s", mpq_errmsg());
    SRunner *sr = srunner_create(make());
    srunner_set_fork_status(sr, CK_NOFORK); /* MPI is running: no fork() */
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    MPQ_ASSERT(mpq_comm_allreduce_sum_long(*comm, &failed, 1) == MPQ_OK, "%s", mpq_errmsg());
    mpq_comm_barrier(*comm); /* every rank is done with the directory */
    if (rank == 0) mpq_test_rmtree(*tmp);
    free(*tmp);
    mpq_comm_finalize(*comm);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Helpers shared by the Check suites: seeded fills and a closeness check that prints the first
 * mismatch and the largest difference (llm.c's check_tensor, made to fail). */
#ifndef MPQ_TESTS_TESTUTIL_H
#define MPQ_TESTS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Fills x with uniform values in [lo, hi) from the stream (seed, 0, 0) of core/rng.h. */
void mpq_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
/* BN's per-sample statistics sums of t (n samples of hw pixels x c channels), computed plainly:
 * sums[i * 2c + j] and sums[i * 2c + c + j] = the sums over sample i's pixels, in order, of
 * d = (double)(t - shift[j]) and of d * d. */
void mpq_test_sample_sums(const float *t, int n, int hw, int c, const float *shift, double *sums);
/* Whether sums (as mpq_test_sample_sums lays them out) equal t's within tol relative to the sums
 * of |d| and d * d (1e-9: the same sums in double in another order; 1e-6: partial sums of a few
 * terms in float); prints the first mismatch. */
int mpq_test_sums_match(const float *t, int n, int hw, int c, const float *shift,
                        const double *sums, double tol);
/* 1 if |a[i] - b[i]| <= atol + rtol * |b[i]| for all i; else prints label, the first mismatch and
 * the maximum difference to stderr and returns 0. */
int mpq_ck_allclose(const float *a, const float *b, size_t n, float rtol, float atol,
                    const char *label);
/* A fresh temporary directory (mkdtemp under TMPDIR or /tmp), malloc'ed path. */
char *mpq_test_tmpdir(void);
/* rm -rf of a directory made by mpq_test_tmpdir. */
void mpq_test_rmtree(const char *path);

struct mpq_comm;
struct Suite;
/* The one main of every suite that runs without MPI: runs make()'s suite (forking per test, as
 * Check does by default) and returns EXIT_SUCCESS when no test failed. */
int mpq_test_main(struct Suite *(*make)(void));
/* The one main of every suite that needs MPI, on one rank (trainer, checkpoints) or several
 * (mpiexec): starts MPI once (*comm is set before make() builds the suite), makes a temporary
 * directory that all ranks share (*tmp: made by rank 0, broadcast, removed afterwards), runs the
 * suite without fork(), and combines the failure counts over the ranks, so that every rank
 * returns the same EXIT_SUCCESS or EXIT_FAILURE. */
int mpq_test_main_mpi(int *argc, char ***argv, struct Suite *(*make)(void), struct mpq_comm **comm,
                      char **tmp);

#endif

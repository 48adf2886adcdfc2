/* Tests of mpi/: error agreement, bucketed gradient averaging, deterministic tree sums and rank
 * binding. Runs under mpiexec on 1, 2, 3 and 4 ranks, in Check's no-fork mode. Every rank reaches
 * every collective of a test before its first ck_assert; the shared main (testutil.h) combines the
 * verdicts. */
#include <check.h>
#include <math.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "mpi/comm.h"
#include "testutil.h"

static mpq_comm *comm;
static int rank, size;

/* The reductions against values computed here: sums and maxima over ranks of rank-dependent
 * values (a negative one, so a max is never a sum or a min), and long sums. */
START_TEST(test_comm_reductions_sum_and_max)
{
    double v[3] = {1.0 + rank, -2.0 * rank - 1.0, rank == size - 1 ? 7.5 : 0.25};
    double w[3] = {v[0], v[1], v[2]};
    long l[2] = {rank, 3};
    ck_assert_int_eq(mpq_comm_allreduce_max_double(comm, v, 3), 0);
    ck_assert_int_eq(mpq_comm_allreduce_sum_double(comm, w, 3), 0);
    ck_assert_int_eq(mpq_comm_allreduce_sum_long(comm, l, 2), 0);
    ck_assert(v[0] == (double)size);
    ck_assert(v[1] == -1.0);
    ck_assert(v[2] == 7.5);
    ck_assert(w[0] == size * (size + 1) / 2.0);
    ck_assert(w[1] == -(double)size * size);
    ck_assert(w[2] == 7.5 + 0.25 * (size - 1));
    ck_assert_int_eq(l[0], (long)size * (size - 1) / 2);
    ck_assert_int_eq(l[1], 3L * size);
}
END_TEST

START_TEST(test_comm_agree_shares_failing_rank_message)
{
    char want[64], msg_one[2048], msg_two[2048];
    mpq_err_clear();
    int rc_ok = mpq_comm_agree(comm, MPQ_OK);

    /* The last rank fails; everybody must learn its code and message. */
    int rc = MPQ_OK;
    if (rank == size - 1) rc = MPQ_FAIL(MPQ_E_IO, "disk on fire on rank %d", rank);
    int rc_one = mpq_comm_agree(comm, rc);
    snprintf(msg_one, sizeof msg_one, "%s", mpq_errmsg());

    /* Rank 0 fails mildly, the last rank worse: the worse code wins, with its own message. */
    mpq_err_clear();
    rc = MPQ_OK;
    if (rank == 0) rc = MPQ_FAIL(MPQ_E_IO, "mild trouble");
    if (rank == size - 1) rc = MPQ_FAIL(MPQ_E_CONFIG, "bad key on rank %d", rank);
    int rc_two = mpq_comm_agree(comm, rc);
    snprintf(msg_two, sizeof msg_two, "%s", mpq_errmsg());

    ck_assert_int_eq(rc_ok, MPQ_OK);
    ck_assert_int_eq(rc_one, MPQ_E_IO);
    snprintf(want, sizeof want, "disk on fire on rank %d", size - 1);
    ck_assert_msg(strstr(msg_one, want), "rank %d got message '%s'", rank, msg_one);
    ck_assert_int_eq(rc_two, MPQ_E_CONFIG);
    if (rank == 0 && size > 1) {
        ck_assert_msg(strstr(msg_two, "mild trouble"), "rank 0 lost its own message: '%s'",
                      msg_two);
    } else {
        snprintf(want, sizeof want, "bad key on rank %d", size - 1);
        ck_assert_msg(strstr(msg_two, want), "rank %d got message '%s'", rank, msg_two);
    }
}
END_TEST

/* Layer boundaries of a fake backward pass: a decreasing list of offsets ending at 0. They
 * differ between ranks on purpose: buckets must start in the same order anyway. */
static int fake_layers(size_t n, int round, size_t *cuts)
{
    mpq_rng r;
    int k = 0;
    size_t off = n;
    mpq_rng_seed(&r, 99, (uint64_t)rank, (uint64_t)round);
    while (off > 0) {
        size_t step = 1 + (size_t)mpq_rng_below(&r, n / 5 + 1);
        off = step >= off ? 0 : off - step;
        cuts[k++] = off;
    }
    return k;
}

/* One gradsync instance over two steps. The buffer starts as NaN and each fake layer writes its
 * gradients only when backward reaches it, after ready() of the layers behind it: a bucket
 * started before it was final would carry a NaN or a stale value into the result. Returns 1 if
 * both steps give the mean of MPI_Allreduce, with the expected byte count. */
static int gradsync_case(size_t n, size_t bucket, int use_ready, int in_place)
{
    float *grad = malloc(n * sizeof *grad), *mine = malloc(n * sizeof *mine);
    float *ref = malloc(n * sizeof *ref);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    mpq_gradsync *g = NULL;
    int ok = grad && mine && ref && cuts;
    int rc = ok ? mpq_gradsync_create(comm, grad, n, bucket, in_place, &g) : MPQ_E_NOMEM;
    ok = ok && rc == MPQ_OK;
    for (int round = 0; round < 2; round++) {
        char label[96];
        double wait = -1.0, bytes = -1.0;
        if (!ok) break; /* create failed the same way on every rank */
        mpq_test_fill_uniform(mine, n, -1.0f, 1.0f, 1000u + 7u * (uint64_t)rank + (uint64_t)round);
        memcpy(ref, mine, n * sizeof *ref);
        MPI_Allreduce(MPI_IN_PLACE, ref, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        for (size_t i = 0; i < n; i++)
            ref[i] *= 1.0f / (float)size;
        for (size_t i = 0; i < n; i++)
            grad[i] = NAN;
        size_t end = n;
        int k = use_ready ? fake_layers(n, round, cuts) : 0;
        for (int j = 0; j < k; j++) {
            memcpy(grad + cuts[j], mine + cuts[j], (end - cuts[j]) * sizeof *grad);
            mpq_gradsync_progress(g);
            mpq_gradsync_ready(g, cuts[j]);
            mpq_gradsync_progress(g);
            end = cuts[j];
        }
        if (end > 0) memcpy(grad, mine, end * sizeof *grad);
        rc = mpq_gradsync_finish(g);
        mpq_gradsync_stats(g, &wait, &bytes);
        /* Two ranks add in one order whatever the algorithm; four may associate differently. */
        const float tol = size <= 2 ? 0.0f : 1e-6f;
        snprintf(label, sizeof label,
                 "gradsync n=%zu bucket=%zu ready=%d in_place=%d round=%d rank=%d", n, bucket,
                 use_ready, in_place, round, rank);
        ok = ok && rc == MPQ_OK && mpq_ck_allclose(grad, ref, n, tol, tol, label);
        ok = ok && wait >= 0.0 && bytes == (size > 1 ? (double)(n * sizeof(float)) : 0.0);
    }
    mpq_gradsync_free(g);
    free(grad);
    free(mine);
    free(ref);
    free(cuts);
    return ok;
}

START_TEST(test_comm_gradsync_averages_like_allreduce)
{
    static const size_t cases[][2] = {
        {1000, 1},    {1000, 7},    {1000, 256},    {1000, 333}, /* 333: tiny front merged */
        {1000, 1000}, {1000, 5000}, {100003, 4096}, {100003, 25000},
    };
    int ok = 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int use_ready = 0; use_ready < 2; use_ready++)
            for (int in_place = 0; in_place < 2; in_place++)
                ok &= gradsync_case(cases[c][0], cases[c][1], use_ready, in_place);
    mpq_gradsync *g = NULL;
    float x = 0.0f;
    int rc_empty = mpq_gradsync_create(comm, &x, 0, 16, 0, &g);
    int rc_nobucket = mpq_gradsync_create(comm, &x, 1, 0, 0, &g);
    ck_assert_msg(ok, "gradsync differs from the allreduce mean on rank %d", rank);
    ck_assert_int_eq(rc_empty, MPQ_E_ARG);
    ck_assert_int_eq(rc_nobucket, MPQ_E_ARG);
}
END_TEST

/* Shard s of a test vector: values of widely spread magnitude, so the association of the sum
 * shows in the bits. Depends only on (s, i), not on the rank that owns the shard. */
static void fill_shard(float *x, size_t n, int s)
{
    mpq_rng r;
    mpq_rng_seed(&r, 5, (uint64_t)s, 0);
    for (size_t i = 0; i < n; i++) {
        float u = 2.0f * mpq_rng_uniform(&r) - 1.0f;
        x[i] = ldexpf(u, (int)mpq_rng_below(&r, 41) - 20);
    }
}

/* The serial tree the distributed sum must reproduce: first m/2 shards left, the rest right. */
static float tree_ref(float *const *all, int lo, int m, size_t i)
{
    if (m == 1) return all[lo][i];
    return tree_ref(all, lo, m / 2, i) + tree_ref(all, lo + m / 2, m - m / 2, i);
}

static double tree_ref_double(double *const *all, int lo, int m, size_t i)
{
    if (m == 1) return all[lo][i];
    return tree_ref_double(all, lo, m / 2, i) + tree_ref_double(all, lo + m / 2, m - m / 2, i);
}

static int valid_shards(int v) { return (size & (size - 1)) == 0 && v % size == 0; }

/* Distributed float and double tree sums of v shards against the serial tree, bit for bit, and
 * once more with the result written over the first local shard. Returns 1 if all match. */
static int tree_case(int v, size_t n, int *order_matters)
{
    const int m = v / size;
    float **all = calloc((size_t)v, sizeof *all), *out = malloc(n * sizeof *out);
    float *ref = malloc(n * sizeof *ref), *seq = malloc(n * sizeof *seq);
    double **alld = calloc((size_t)v, sizeof *alld), *outd = malloc(n * sizeof *outd);
    int ok = all && alld && out && ref && seq && outd;
    for (int s = 0; ok && s < v; s++) {
        all[s] = malloc(n * sizeof *all[s]);
        alld[s] = malloc(n * sizeof *alld[s]);
        ok = all[s] && alld[s];
        if (ok) fill_shard(all[s], n, s);
        for (size_t i = 0; ok && i < n; i++)
            alld[s][i] = (double)all[s][i] * (1.0 + 1e-9 * s);
    }
    MPQ_ASSERT(ok, "out of memory in the test");
    int rc = mpq_comm_tree_sum(comm, all + rank * m, m, v, n, out);
    int rcd = mpq_comm_tree_sum_double(comm, alld + rank * m, m, v, n, outd);
    int rc_alias = mpq_comm_tree_sum(comm, all + rank * m, m, v, n, all[rank * m]);
    ok = rc == MPQ_OK && rcd == MPQ_OK && rc_alias == MPQ_OK;
    ok = ok && memcmp(all[rank * m], out, n * sizeof *out) == 0;
    /* all[rank * m] now holds the aliased result; rebuild it before forming the references. */
    fill_shard(all[rank * m], n, rank * m);
    for (size_t i = 0; i < n; i++) {
        ref[i] = tree_ref(all, 0, v, i);
        seq[i] = 0.0f;
        for (int s = 0; s < v; s++)
            seq[i] += all[s][i];
        ok = ok && tree_ref_double(alld, 0, v, i) == outd[i];
    }
    ok = ok && memcmp(out, ref, n * sizeof *out) == 0;
    if (v > 2 && memcmp(seq, ref, n * sizeof *seq) != 0) *order_matters = 1;
    for (int s = 0; s < v; s++) {
        free(all[s]);
        free(alld[s]);
    }
    free(all);
    free(alld);
    free(out);
    free(ref);
    free(seq);
    free(outd);
    return ok;
}

START_TEST(test_comm_tree_sum_is_bit_identical_to_serial_tree)
{
    static const struct {
        int v;
        size_t n;
    } cases[] = {
        {4, 10000}, {8, 4097}, {6, 333}, {1, 50}, {12, 999}, {4, ((size_t)1 << 20) + 17},
    };
    int ok = 1, order_matters = 0, bad_args = 1, valid = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (valid_shards(cases[c].v)) {
            valid++;
            ok &= tree_case(cases[c].v, cases[c].n, &order_matters);
        } else { /* every rank refuses the same way, without communicating */
            float x = 1.0f, *px = &x, out;
            bad_args &= mpq_comm_tree_sum(comm, &px, 1, cases[c].v, 1, &out) == MPQ_E_ARG;
            bad_args &= strstr(mpq_errmsg(), "power of two dividing") != NULL;
        }
    }
    ck_assert_msg(ok, "tree sum differs from the serial tree on rank %d of %d", rank, size);
    ck_assert_int_eq(valid > 0, (size & (size - 1)) == 0);
    if (valid) ck_assert_msg(order_matters, "test data too tame: sequential sum == tree sum");
    ck_assert_msg(bad_args, "tree sum accepted a rank count that is no power of two dividing V");
}
END_TEST

START_TEST(test_comm_bind_reports_threads_and_disjoint_cores)
{
    char line[512], line3[512], line_env[512], want[64];
    const char *old = getenv("OMP_NUM_THREADS");
    char *saved = old ? strdup(old) : NULL;
    int t3 = mpq_comm_bind(comm, 3, line3, sizeof line3);
    setenv("OMP_NUM_THREADS", "2", 1);
    int t_env = mpq_comm_bind(comm, 0, line_env, sizeof line_env);
    unsetenv("OMP_NUM_THREADS");
    int t = mpq_comm_bind(comm, 0, line, sizeof line);
    if (saved) setenv("OMP_NUM_THREADS", saved, 1);
    free(saved);

    /* Bound ranks of one node must hold disjoint, non-empty CPU sets. */
    MPI_Comm node;
    int local_rank, local_size, bound = strstr(line, "not bound") == NULL, all_bound;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_size(node, &local_size);
    MPI_Allreduce(&bound, &all_bound, 1, MPI_INT, MPI_MIN, node);
    cpu_set_t mine;
    CPU_ZERO(&mine);
    int aff = sched_getaffinity(0, sizeof mine, &mine);
    cpu_set_t *sets = malloc((size_t)local_size * sizeof *sets);
    MPQ_ASSERT(sets, "out of memory in the test");
    MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, sets, (int)sizeof mine, MPI_BYTE, node);
    MPI_Comm_free(&node);
    int disjoint = 1;
    for (int i = 0; i < local_size && all_bound; i++) {
        disjoint &= CPU_COUNT(&sets[i]) > 0;
        for (int j = i + 1; j < local_size; j++) {
            cpu_set_t both;
            CPU_AND(&both, &sets[i], &sets[j]);
            disjoint &= CPU_COUNT(&both) == 0;
        }
    }
    free(sets);

    ck_assert_int_eq(aff, 0);
    ck_assert_int_eq(t3, 3);
    ck_assert_int_eq(t_env, 2);
    ck_assert_int_ge(t, 1);
    snprintf(want, sizeof want, "rank %d host ", rank);
    ck_assert_msg(strstr(line, want) == line, "binding line: '%s'", line);
    snprintf(want, sizeof want, "threads %d", t);
    ck_assert_msg(strstr(line, want) && strstr(line, "cores ["), "binding line: '%s'", line);
    ck_assert_msg(strstr(line3, "threads 3") && strstr(line_env, "threads 2"), "lines '%s' '%s'",
                  line3, line_env);
    if (!bound) ck_assert_int_eq(t, 1);
    if (bound) ck_assert_int_le(t, CPU_COUNT(&mine));
    ck_assert_msg(disjoint, "ranks of one node share cores although all are bound");
}
END_TEST

static Suite *comm_suite(void)
{
    rank = mpq_comm_rank(comm); /* MPI runs: comm is set */
    size = mpq_comm_size(comm);
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("comm");
    tcase_add_test(tc, test_comm_reductions_sum_and_max);
    tcase_add_test(tc, test_comm_agree_shares_failing_rank_message);
    tcase_add_test(tc, test_comm_gradsync_averages_like_allreduce);
    tcase_add_test(tc, test_comm_tree_sum_is_bit_identical_to_serial_tree);
    tcase_add_test(tc, test_comm_bind_reports_threads_and_disjoint_cores);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    char *tmp;
    return mpq_test_main_mpi(&argc, &argv, comm_suite, &comm, &tmp);
}

/* Performance model: the bucket cut, the allreduce algorithms and their costs, the compute
 * interpolation and the step prediction against values computed by hand; the profile file
 * round trip and its errors. No timings are asserted. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buckets.h"
#include "core/err.h"
#include "perf/model.h"
#include "perf/profile.h"
#include "testutil.h"

#define TOL 1e-12

/* alpha 10 us, 1 GB/s on the wire, 10 GB/s CPU sum */
static const mpq_net net = {"test", 1e-5, 1e-9, 1e-10, 0};

START_TEST(test_perf_buckets_cut_like_gradsync)
{
    size_t off, n;
    ck_assert_uint_eq(mpq_buckets_count(1000, 300, 1 << 30), 4); /* remainder 100 >= 75 stays */
    mpq_buckets_range(1000, 300, 4, 0, &off, &n);
    ck_assert_uint_eq(off, 700);
    ck_assert_uint_eq(n, 300);
    mpq_buckets_range(1000, 300, 4, 3, &off, &n);
    ck_assert_uint_eq(off, 0);
    ck_assert_uint_eq(n, 100);
    ck_assert_uint_eq(mpq_buckets_count(1000, 330, 1 << 30), 3); /* remainder 10 joins */
    mpq_buckets_range(1000, 330, 3, 2, &off, &n);
    ck_assert_uint_eq(off, 0);
    ck_assert_uint_eq(n, 340);
    ck_assert_uint_eq(mpq_buckets_count(1000, 330, 335), 4); /* merged one would be too big */
    ck_assert_uint_eq(mpq_buckets_count(5, 100, 1 << 30), 1);
}
END_TEST

START_TEST(test_perf_iallreduce_algorithm_choice)
{
    ck_assert_int_eq(mpq_perf_iallreduce_alg(2, 1e6, 0), MPQ_ALLREDUCE_BINOMIAL);
    ck_assert_int_eq(mpq_perf_iallreduce_alg(8, 1e6, 1), MPQ_ALLREDUCE_BINOMIAL);  /* in place */
    ck_assert_int_eq(mpq_perf_iallreduce_alg(8, 1000, 0), MPQ_ALLREDUCE_BINOMIAL); /* < 64 KiB */
    ck_assert_int_eq(mpq_perf_iallreduce_alg(8, 1e6, 0), MPQ_ALLREDUCE_RABENSEIFNER);
    ck_assert_int_eq(mpq_perf_iallreduce_alg(5, 1e6, 0), MPQ_ALLREDUCE_RABENSEIFNER);
    /* 16384 floats < 32768, the largest power of two <= p */
    ck_assert_int_eq(mpq_perf_iallreduce_alg(32768, 65536, 0), MPQ_ALLREDUCE_RING);
}
END_TEST

START_TEST(test_perf_allreduce_costs_by_hand)
{
    ck_assert_int_eq(mpq_perf_allreduce_rounds(MPQ_ALLREDUCE_BINOMIAL, 8), 6);
    ck_assert_int_eq(mpq_perf_allreduce_rounds(MPQ_ALLREDUCE_RING, 8), 14);
    ck_assert_int_eq(mpq_perf_allreduce_rounds(MPQ_ALLREDUCE_RECURSIVE_DOUBLING, 5), 3);
    ck_assert_int_eq(mpq_perf_allreduce_rounds(MPQ_ALLREDUCE_RABENSEIFNER, 1), 0);
    /* p = 8, L = 3, n = 1e6 bytes: nb = 1e-3 s, ng = 1e-4 s */
    ck_assert_double_eq_tol(mpq_perf_allreduce_s(MPQ_ALLREDUCE_BINOMIAL, 8, 1e6, &net),
                            3 * (2e-5 + 2e-3 + 1e-4), TOL);
    ck_assert_double_eq_tol(mpq_perf_allreduce_s(MPQ_ALLREDUCE_RECURSIVE_DOUBLING, 8, 1e6, &net),
                            3.33e-3, TOL);
    ck_assert_double_eq_tol(mpq_perf_allreduce_s(MPQ_ALLREDUCE_RING, 8, 1e6, &net), 1.9775e-3, TOL);
    ck_assert_double_eq_tol(mpq_perf_allreduce_s(MPQ_ALLREDUCE_RABENSEIFNER, 8, 1e6, &net),
                            1.8975e-3, TOL);
    /* p = 3: L = 2 */
    ck_assert_double_eq_tol(mpq_perf_allreduce_s(MPQ_ALLREDUCE_BINOMIAL, 3, 1e6, &net), 4.24e-3,
                            TOL);
    ck_assert_double_eq_tol(mpq_perf_allreduce_s(MPQ_ALLREDUCE_RING, 1, 1e6, &net), 0.0, TOL);
    /* the CPU part: the sums only, or everything when the CPU copies */
    ck_assert_double_eq_tol(mpq_perf_allreduce_cpu_s(MPQ_ALLREDUCE_BINOMIAL, 8, 1e6, &net), 3e-4,
                            TOL);
    mpq_net shm = net;
    shm.cpu_copies = 1;
    ck_assert_double_eq_tol(mpq_perf_allreduce_cpu_s(MPQ_ALLREDUCE_BINOMIAL, 8, 1e6, &shm), 6.36e-3,
                            TOL);
}
END_TEST

static mpq_profile make_profile(int batch, double f, double b, double u)
{
    static size_t off[4] = {750000, 500000, 250000, 0};
    static double t[4] = {0.05, 0.1, 0.15, 0.2};
    mpq_profile p = {.image = 32,
                     .batch = batch,
                     .threads = 1,
                     .params_floats = 1000000,
                     .state_floats = 1000,
                     .forward_s = f,
                     .backward_s = b,
                     .update_s = u,
                     .n_ready = 4,
                     .ready_off = off,
                     .ready_s = t};
    snprintf(p.model, sizeof p.model, "t");
    return p;
}

START_TEST(test_perf_compute_interpolates_and_extrapolates)
{
    mpq_profile p[3] = {make_profile(64, 4, 7, 0.5), make_profile(16, 1, 2, 0.5),
                        make_profile(32, 2, 3.5, 0.5)};
    double f, b, u;
    mpq_perf_compute(p, 3, 24, &f, &b, &u);
    ck_assert_double_eq_tol(f, 1.5, TOL);
    ck_assert_double_eq_tol(b, 2.75, TOL);
    ck_assert_double_eq_tol(u, 0.5, TOL);
    mpq_perf_compute(p, 3, 32, &f, &b, &u);
    ck_assert_double_eq_tol(b, 3.5, TOL);
    mpq_perf_compute(p, 3, 8, &f, &b, &u); /* below: along 16..32 */
    ck_assert_double_eq_tol(f, 0.5, TOL);
    ck_assert_double_eq_tol(b, 1.25, TOL);
    mpq_perf_compute(p, 3, 128, &f, &b, &u); /* above: along 32..64 */
    ck_assert_double_eq_tol(f, 8, TOL);
    ck_assert_double_eq_tol(b, 14, TOL);
    mpq_perf_compute(p + 1, 1, 32, &f, &b, &u); /* one profile: in proportion */
    ck_assert_double_eq_tol(f, 2, TOL);
    ck_assert_double_eq_tol(b, 4, TOL);
    ck_assert_double_eq_tol(u, 0.5, TOL);
}
END_TEST

/* 2 nodes x 1 rank x 1 thread on 1 core, batch 10, buckets of 1e6 bytes, in place, async */
static mpq_perf_job two_nodes(void)
{
    return (mpq_perf_job){.nodes = 2,
                          .ranks_per_node = 1,
                          .threads = 1,
                          .cores_per_node = 1,
                          .batch_per_rank = 10,
                          .bucket_bytes = 1e6,
                          .in_place = 1,
                          .async_progress = 1,
                          .compute_speedup = 1};
}

START_TEST(test_perf_step_by_hand)
{
    /* 1e6 floats in 4 buckets of 1e6 bytes, ready at 0.05, 0.1, 0.15, 0.2 s of a 0.2 s backward;
     * 2 ranks: binomial, L = 1: 2a + 2nb + ng = 2.12e-3 s each, so only the last one's is left
     * after backward */
    mpq_profile p = make_profile(10, 0.1, 0.2, 0.01);
    mpq_perf_job job = two_nodes();
    mpq_perf_step st;
    ck_assert_int_eq(mpq_perf_predict(&p, 1, &net, &job, &st), 0);
    ck_assert_int_eq(st.ranks, 2);
    ck_assert_int_eq(st.buckets, 4);
    ck_assert_int_eq(st.alg, MPQ_ALLREDUCE_BINOMIAL);
    ck_assert_double_eq_tol(st.bytes, 4e6, TOL);
    ck_assert_double_eq_tol(st.compute_s, 0.3, TOL);
    ck_assert_double_eq_tol(st.allreduce_s, 8.48e-3, TOL);
    ck_assert_double_eq_tol(st.exposed_s, 2.12e-3, TOL);
    /* 2 agreements (4 B), BN state (8000 B), shard sums (32 B), timing row (56 B), each
     * a + nb + ng; the 1/R pass over 4e6 bytes at 1e-10 s/B */
    ck_assert_double_eq_tol(st.sync_s, 4.589056e-4, TOL);
    ck_assert_double_eq_tol(st.step_s, 0.3125789056, TOL);
    ck_assert_double_eq_tol(st.images_s, 20 / 0.3125789056, 1e-9);
    ck_assert_double_eq_tol(st.efficiency, 0.31 / 0.3125789056, 1e-12);

    /* a slow wire (10 MB/s): each bucket 0.20012 s, queued behind the previous one */
    mpq_net slow = net;
    slow.byte_s = 1e-7;
    ck_assert_int_eq(mpq_perf_predict(&p, 1, &slow, &job, &st), 0);
    ck_assert_double_eq_tol(st.exposed_s, 0.05 + 4 * 0.20012 - 0.2, TOL);

    /* progress only at MPI calls: each bucket's 2 rounds (1.06e-3 s each) -- round 2 waits for
     * the next ready event (0.1, 0.15, 0.2), the last bucket's for the final wait:
     * 0.05 + r -> 0.1 + r | 0.1 + 2r -> 0.15 + r | 0.15 + 2r -> 0.2 + r | 0.2 + 3r */
    job.async_progress = 0;
    ck_assert_int_eq(mpq_perf_predict(&p, 1, &net, &job, &st), 0);
    ck_assert_double_eq_tol(st.exposed_s, 3 * 1.06e-3, TOL);
    ck_assert_double_eq_tol(st.allreduce_s, 8.48e-3, TOL);
    job.async_progress = 1;

    /* the CPU moves the bytes: nothing is hidden */
    mpq_net shm = net;
    shm.cpu_copies = 1;
    ck_assert_int_eq(mpq_perf_predict(&p, 1, &shm, &job, &st), 0);
    ck_assert_double_eq_tol(st.exposed_s, 8.48e-3, TOL);

    /* 2 ranks on 1 core: compute and the ready times twice as long */
    job.nodes = 1;
    job.ranks_per_node = 2;
    ck_assert_int_eq(mpq_perf_predict(&p, 1, &net, &job, &st), 0);
    ck_assert_double_eq_tol(st.oversubscription, 2.0, TOL);
    ck_assert_double_eq_tol(st.compute_s, 0.6, TOL);
    ck_assert_double_eq_tol(st.update_s, 0.02, TOL);
    ck_assert_double_eq_tol(st.exposed_s, 2.12e-3, TOL);

    /* one rank: no communication at all */
    job.ranks_per_node = 1;
    ck_assert_int_eq(mpq_perf_predict(&p, 1, &net, &job, &st), 0);
    ck_assert_double_eq_tol(st.step_s, 0.31, TOL);
    ck_assert_double_eq_tol(st.efficiency, 1.0, TOL);
}
END_TEST

START_TEST(test_perf_predict_rejects_bad_jobs)
{
    mpq_profile p = make_profile(10, 0.1, 0.2, 0.01);
    mpq_perf_job job = two_nodes();
    job.threads = 2; /* the profile has 1 */
    mpq_perf_step st;
    ck_assert_int_eq(mpq_perf_predict(&p, 1, &net, &job, &st), MPQ_E_ARG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "--threads 2"));
    job.threads = 1;
    job.batch_per_rank = 0;
    ck_assert_int_eq(mpq_perf_predict(&p, 1, &net, &job, &st), MPQ_E_ARG);
    ck_assert_int_eq(mpq_perf_predict(&p, 0, &net, &job, &st), MPQ_E_ARG);
    mpq_net n;
    ck_assert_int_eq(mpq_net_preset("hdr200", 1e-10, &n), 0);
    ck_assert_double_eq_tol(n.byte_s, 1.0 / 24e9, 1e-20);
    ck_assert_int_eq(mpq_net_preset("10gbe", 1e-10, &n), MPQ_E_ARG);
}
END_TEST

START_TEST(test_perf_profile_round_trip_and_errors)
{
    char path[] = "/tmp/mpq_perf_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    mpq_profile p = make_profile(10, 0.1, 0.2, 0.01), q;
    ck_assert_int_eq(mpq_profile_write(&p, path), 0);
    ck_assert_int_eq(mpq_profile_read(path, &q), 0);
    ck_assert_str_eq(q.model, "t");
    ck_assert_int_eq(q.batch, 10);
    ck_assert_uint_eq(q.params_floats, 1000000);
    ck_assert_uint_eq(q.state_floats, 1000);
    ck_assert_double_eq_tol(q.backward_s, 0.2, TOL);
    ck_assert_int_eq(q.n_ready, 4);
    ck_assert_uint_eq(q.ready_off[1], 500000);
    ck_assert_double_eq_tol(q.ready_s[3], 0.2, TOL);
    mpq_profile_free(&q);

    FILE *f = fopen(path, "a"); /* a later event at a higher offset */
    fprintf(f, "ready 900000 0.3\n");
    fclose(f);
    ck_assert_int_eq(mpq_profile_read(path, &q), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "backwards"));
    f = fopen(path, "w");
    fprintf(f, "model t\nbatch x\n");
    fclose(f);
    ck_assert_int_eq(mpq_profile_read(path, &q), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), ":2: bad value for 'batch'"));
    f = fopen(path, "w");
    fprintf(f, "model t\nbatches 3\n");
    fclose(f);
    ck_assert_int_eq(mpq_profile_read(path, &q), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "unknown key 'batches'"));
    unlink(path);
    ck_assert_int_eq(mpq_profile_read(path, &q), MPQ_E_IO);
}
END_TEST

START_TEST(test_perf_timeline_keeps_offsets_and_order)
{
    mpq_timeline tl;
    mpq_profile p = {0};
    ck_assert_int_eq(mpq_timeline_init(&tl, 8, 3), 0);
    ck_assert_int_eq(mpq_timeline_to_profile(&tl, &p), MPQ_E_ARG); /* nothing recorded */
    for (int k = 0; k < 3; k++) {
        mpq_timeline_begin(&tl);
        mpq_timeline_ready(&tl, 90);
        mpq_timeline_ready(&tl, 40);
        mpq_timeline_ready(&tl, 0);
        mpq_timeline_end(&tl);
    }
    ck_assert_int_eq(mpq_timeline_to_profile(&tl, &p), 0);
    ck_assert_int_eq(p.n_ready, 3);
    ck_assert_uint_eq(p.ready_off[0], 90);
    ck_assert_uint_eq(p.ready_off[2], 0);
    ck_assert(p.ready_s[0] >= 0 && p.ready_s[1] >= p.ready_s[0] && p.ready_s[2] >= p.ready_s[1]);
    mpq_profile_free(&p);
    mpq_timeline_free(&tl);

    ck_assert_int_eq(mpq_timeline_init(&tl, 8, 2), 0); /* passes that disagree */
    mpq_timeline_begin(&tl);
    mpq_timeline_ready(&tl, 50);
    mpq_timeline_end(&tl);
    mpq_timeline_begin(&tl);
    mpq_timeline_ready(&tl, 10);
    mpq_timeline_end(&tl);
    ck_assert_int_eq(mpq_timeline_to_profile(&tl, &p), MPQ_E_ARG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "different"));
    mpq_timeline_free(&tl);
}
END_TEST

static Suite *perf_suite(void)
{
    Suite *s = suite_create("perf");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, test_perf_buckets_cut_like_gradsync);
    tcase_add_test(tc, test_perf_iallreduce_algorithm_choice);
    tcase_add_test(tc, test_perf_allreduce_costs_by_hand);
    tcase_add_test(tc, test_perf_compute_interpolates_and_extrapolates);
    tcase_add_test(tc, test_perf_step_by_hand);
    tcase_add_test(tc, test_perf_predict_rejects_bad_jobs);
    suite_add_tcase(s, tc);
    tc = tcase_create("profile");
    tcase_add_test(tc, test_perf_profile_round_trip_and_errors);
    tcase_add_test(tc, test_perf_timeline_keeps_offsets_and_order);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(perf_suite); }

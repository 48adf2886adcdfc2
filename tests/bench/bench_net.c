/* Network measurements for the performance model (run: mpiexec -n P tests/bench/bench_net
 * [MAX_BYTES [BUCKET_MBYTES GRAD_FLOATS...]]): a ping-pong between ranks 0 and 1 (half the round
 * trip: latency alpha and bandwidth), the CPU cost of the sum (MPI_Reduce_local), sweeps of
 * MPI_Iallreduce + MPI_Wait over message sizes as mpi/gradsync issues them (into a second buffer,
 * its default, and in place: Open MPI picks its algorithm by that), each next to the model's
 * prediction (perf/model.h) from the fitted alpha, bandwidth and sum rate, and, for each
 * GRAD_FLOATS, mpq_gradsync averaging a gradient buffer of that many floats in buckets of
 * BUCKET_MBYTES alone (no compute: the allreduce time of one training step), both ways. Prints CSV
 * "test,ranks,bytes,seconds,predicted_s" and "# key value" lines with the fit. Times are
 * medians over repetitions of the slowest rank; one thread per rank; owns its buffers. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "mpi/comm.h"
#include "perf/model.h"
#include "perf/profile.h"

#define MAX_REPS 200

/* repetitions for a message of `bytes`: about 0.1 s of a 1 GB/s transport, 5..MAX_REPS */
static int reps_for(double bytes)
{
    double r = 1e8 / (bytes + 1e4);
    return r < 5 ? 5 : r > MAX_REPS ? MAX_REPS : (int)r;
}

/* Half the round trip of `bytes` between ranks 0 and 1 (median); the others wait. */
static double pingpong(char *buf, int bytes, int rank)
{
    double t[MAX_REPS];
    int reps = reps_for(bytes);
    for (int k = -2; k < reps; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Send(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
        }
        if (k >= 0) t[k] = 0.5 * (MPI_Wtime() - t0);
    }
    double m = mpq_median(t, reps);
    MPI_Bcast(&m, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return m;
}

/* Seconds of MPI_Reduce_local (sum) over n floats on this rank (median). */
static double reduce_local(const float *a, float *b, int n)
{
    double t[MAX_REPS];
    int reps = reps_for(4.0 * n);
    for (int k = -1; k < reps; k++) {
        double t0 = MPI_Wtime();
        MPI_Reduce_local(a, b, n, MPI_FLOAT, MPI_SUM);
        if (k >= 0) t[k] = MPI_Wtime() - t0;
    }
    return mpq_median(t, reps);
}

/* MPI_Iallreduce + MPI_Wait of n floats from buf into sum (NULL: in place), as gradsync issues a
 * bucket: the slowest rank's time, median over repetitions. */
static double iallreduce(float *buf, float *sum, int n)
{
    double t[MAX_REPS];
    int reps = reps_for(4.0 * n);
    for (int k = -2; k < reps; k++) {
        MPI_Request req;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (sum)
            MPI_Iallreduce(buf, sum, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        else
            MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (k >= 0) t[k] = dt;
    }
    return mpq_median(t, reps);
}

/* mpq_gradsync over n floats in buckets of bucket_floats: every bucket ready at once, then
 * finish, as a step whose backward took no time (median of the slowest rank). */
static double gradsync_alone(mpq_comm *c, size_t n, size_t bucket_floats, int in_place)
{
    double t[MAX_REPS], wait, bytes;
    int reps = reps_for(4.0 * (double)n);
    float *g = calloc(n, sizeof *g);
    mpq_gradsync *gs = NULL;
    MPQ_ASSERT(g, "out of memory");
    MPQ_ASSERT(mpq_gradsync_create(c, g, n, bucket_floats, in_place, &gs) == MPQ_OK, "%s", mpq_errmsg());
    for (int k = -2; k < reps; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        mpq_gradsync_ready(gs, 0);
        MPQ_ASSERT(mpq_gradsync_finish(gs) == MPQ_OK, "%s", mpq_errmsg());
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (k >= 0) t[k] = dt;
    }
    mpq_gradsync_stats(gs, &wait, &bytes);
    mpq_gradsync_free(gs);
    free(g);
    return mpq_median(t, reps);
}

int main(int argc, char **argv)
{
    mpq_comm *c;
    if (mpq_comm_init(&argc, &argv, &c) != MPQ_OK) {
        fprintf(stderr, "%s\n", mpq_errmsg());
        return EXIT_FAILURE;
    }
    const int rank = mpq_comm_rank(c), p = mpq_comm_size(c);
    long max_bytes = argc > 1 ? atol(argv[1]) : 16L << 20;
    if (max_bytes < 1024 || max_bytes > (1L << 30)) {
        if (rank == 0) fprintf(stderr, "bench_net: MAX_BYTES must be in [1024, 2^30]\n");
        mpq_comm_finalize(c);
        return 2;
    }
    float *a = malloc((size_t)max_bytes), *b = malloc((size_t)max_bytes);
    MPQ_ASSERT(a && b, "out of memory");
    for (long i = 0; i < max_bytes / 4; i++)
        a[i] = b[i] = 1e-3f * (float)(i % 1000);
    if (rank == 0) printf("test,ranks,bytes,seconds,predicted_s\n");

    /* ping-pong: latency from the small messages (up to 512 B), bandwidth from the two largest */
    double small = 0, big0 = 0, big1 = 0;
    long b0 = max_bytes / 4, b1 = max_bytes;
    for (long bytes = 8; p > 1 && bytes <= max_bytes; bytes *= 4) {
        double t = pingpong((char *)a, (int)bytes, rank);
        if (bytes <= 512 && (bytes == 8 || t < small)) small = t; /* the least disturbed */
        if (rank == 0) printf("pingpong,2,%ld,%.9f,\n", bytes, t);
    }
    if (p > 1) {
        big0 = pingpong((char *)a, (int)b0, rank);
        big1 = pingpong((char *)a, (int)b1, rank);
    }
    double red = reduce_local(a, b, (int)(max_bytes / 4));
    if (rank == 0) printf("reduce_local,1,%ld,%.9f,\n", max_bytes, red);
    mpq_net net = {.name = "measured",
                   .alpha_s = small,
                   .byte_s = big1 > big0 ? (big1 - big0) / (double)(b1 - b0) : 1e-12,
                   .reduce_byte_s = red / (double)max_bytes};
    MPI_Bcast(&net.reduce_byte_s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);

    for (int in_place = 0; in_place < 2; in_place++)
        for (long bytes = 1024; p > 1 && bytes <= max_bytes; bytes *= 4) {
            double t = iallreduce(a, in_place ? NULL : b, (int)(bytes / 4));
            mpq_allreduce_alg alg = mpq_perf_iallreduce_alg(p, (double)bytes, in_place);
            if (rank == 0)
                printf("iallreduce%s,%d,%ld,%.9f,%.9f\n", in_place ? "_in_place" : "", p, bytes,
                       t, mpq_perf_allreduce_s(alg, p, (double)bytes, &net));
        }
    if (rank == 0 && p > 1)
        printf("# alpha_us %.3f\n# gbytes_s %.4f\n# algorithm %s\n# algorithm_in_place %s\n",
               1e6 * net.alpha_s, 1e-9 / net.byte_s,
               mpq_allreduce_alg_name(mpq_perf_iallreduce_alg(p, 4e6, 0)),
               mpq_allreduce_alg_name(mpq_perf_iallreduce_alg(p, 4e6, 1)));
    if (rank == 0) printf("# reduce_gbytes_s %.4f\n", 1e-9 / net.reduce_byte_s);
    const double bucket_mbytes = argc > 2 ? atof(argv[2]) : 4.0;
    for (int i = 3; i < argc && p > 1; i++) {
        size_t n = (size_t)atol(argv[i]), bucket = (size_t)(bucket_mbytes * 1e6 / sizeof(float));
        MPQ_ASSERT(n > 0 && bucket > 0, "bench_net: bad GRAD_FLOATS '%s' or BUCKET_MBYTES",
                   argv[i]);
        for (int in_place = 0; in_place < 2; in_place++) {
            double t = gradsync_alone(c, n, bucket, in_place);
            if (rank == 0)
                printf("gradsync%s,%d,%zu,%.9f,\n", in_place ? "_in_place" : "", p, 4 * n, t);
        }
    }
    free(a);
    free(b);
    mpq_comm_finalize(c);
    return EXIT_SUCCESS;
}

/* Gradient allreduce benchmark (run: mpiexec -n 2 tests/bench/bench_allreduce [iters]).
 * For a ResNet-20-sized (1.1 MB) and a ResNet-18-sized (45 MB) float buffer it reports plain
 * MPI_Allreduce against mpq_gradsync (bucketed MPI_Iallreduce), alone and overlapped with a
 * simulated backward pass (compute in chunks, ready() per fake layer, with and without progress
 * calls between chunks), and the fraction of communication the overlap hides. Owns its buffers;
 * one thread per rank. Timings are the maximum over ranks, averaged over iterations. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "mpi/comm.h"

#define LAYERS 20       /* fake layers of the backward pass */
#define CHUNKS 8        /* compute chunks per layer, progress() between them */
#define SPIN_FLOATS 4096

static float spin_buf[SPIN_FLOATS];

/* Compute-bound stand-in for a backward kernel: reps passes over a cache-resident array. */
static void spin(long reps)
{
    for (long r = 0; r < reps; r++)
        for (int i = 0; i < SPIN_FLOATS; i++) spin_buf[i] = spin_buf[i] * 0.9999f + 0.0001f;
}

static double max_over_ranks(double t)
{
    double m;
    MPI_Allreduce(&t, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return m;
}

/* Spin repetitions per second on this core (agreed: the slowest rank's rate). */
static double spin_rate(void)
{
    long reps = 256;
    double t;
    for (;;) {
        double t0 = MPI_Wtime();
        spin(reps);
        t = max_over_ranks(MPI_Wtime() - t0);
        if (t > 0.05) break;
        reps *= 2;
    }
    return (double)reps / t;
}

static double time_plain(float *buf, size_t n, int iters)
{
    double sum = 0.0;
    for (int it = -1; it < iters; it++) { /* it = -1: warm-up */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t = max_over_ranks(MPI_Wtime() - t0);
        if (it >= 0) sum += t;
    }
    return sum / iters;
}

/* One simulated step: LAYERS layers from the end of the buffer, each computing reps_per_layer
 * spin repetitions in CHUNKS pieces (progress between them if asked), then ready(). g == NULL:
 * compute only. Returns the step time (max over ranks, mean over iters) and the finish wait. */
static double time_step(mpq_gradsync *g, size_t n, long reps_per_layer, int progress, int iters,
                        double *wait_out)
{
    double sum = 0.0, wait_sum = 0.0;
    for (int it = -1; it < iters; it++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int l = LAYERS - 1; l >= 0; l--) {
            for (int k = 0; k < CHUNKS; k++) {
                spin(reps_per_layer / CHUNKS);
                if (g && progress) mpq_gradsync_progress(g);
            }
            if (g) mpq_gradsync_ready(g, n / LAYERS * (size_t)l);
        }
        double wait = 0.0, bytes;
        if (g) {
            MPQ_ASSERT(mpq_gradsync_finish(g) == MPQ_OK, "%s", mpq_errmsg());
            mpq_gradsync_stats(g, &wait, &bytes);
        }
        double t = max_over_ranks(MPI_Wtime() - t0);
        wait = max_over_ranks(wait);
        if (it >= 0) {
            sum += t;
            wait_sum += wait;
        }
    }
    if (wait_out) *wait_out = wait_sum / iters;
    return sum / iters;
}

int main(int argc, char **argv)
{
    mpq_comm *c;
    if (mpq_comm_init(&argc, &argv, &c) != MPQ_OK) {
        fprintf(stderr, "%s\n", mpq_errmsg());
        return EXIT_FAILURE;
    }
    const int rank = mpq_comm_rank(c), iters = argc > 1 ? atoi(argv[1]) : 10;
    static const struct { const char *name; size_t floats; } bufs[] = {
        {"resnet20 1.1MB", 272474},
        {"resnet18 45MB", 11689512},
    };
    const size_t buckets[] = {(size_t)1 << 16, (size_t)1 << 18, (size_t)1 << 20, 0};
    const double rate = spin_rate();
    if (rank == 0)
        printf("%d ranks, %d iterations; compute = 1.5 x plain allreduce time, %d layers x %d "
               "chunks\n%-15s %9s | %9s %7s %7s | %8s %8s %8s %7s %8s %7s\n",
               mpq_comm_size(c), iters, LAYERS, CHUNKS, "buffer", "bucket", "plain ms",
               "GB/s", "sync ms", "comp ms", "step+pr", "wait+pr", "hid+pr", "step-pr",
               "hid-pr");
    for (size_t b = 0; b < sizeof bufs / sizeof bufs[0]; b++) {
        const size_t n = bufs[b].floats;
        float *grad = calloc(n, sizeof *grad);
        MPQ_ASSERT(grad, "out of memory");
        const double plain = time_plain(grad, n, iters);
        const long reps_per_layer = (long)(1.5 * plain * rate / LAYERS);
        const double compute = time_step(NULL, n, reps_per_layer, 0, iters, NULL);
        for (size_t k = 0; k < sizeof buckets / sizeof buckets[0]; k++) {
            const size_t bucket = buckets[k] ? buckets[k] : n; /* 0: one bucket */
            mpq_gradsync *g;
            MPQ_ASSERT(mpq_gradsync_create(c, grad, n, bucket, &g) == MPQ_OK, "%s", mpq_errmsg());
            double wait_pr, wait_np;
            const double alone = time_step(g, n, 0, 1, iters, NULL);
            const double with_pr = time_step(g, n, reps_per_layer, 1, iters, &wait_pr);
            const double no_pr = time_step(g, n, reps_per_layer, 0, iters, &wait_np);
            mpq_gradsync_free(g);
            if (rank == 0)
                printf("%-15s %9zu | %9.3f %7.2f %7.3f | %8.3f %8.3f %8.3f %6.0f%% %8.3f %6.0f%%\n",
                       bufs[b].name, bucket, plain * 1e3, (double)n * 4 / plain / 1e9,
                       alone * 1e3, compute * 1e3, with_pr * 1e3, wait_pr * 1e3,
                       100.0 * (1.0 - (with_pr - compute) / alone), no_pr * 1e3,
                       100.0 * (1.0 - (no_pr - compute) / alone));
        }
        free(grad);
    }
    if (rank == 0)
        printf("GB/s: buffer bytes / plain time. sync: gradsync without compute. step: compute "
               "with gradsync,\n+pr with progress calls between chunks, -pr without; hid: "
               "1 - (step - comp) / sync.\n");
    mpq_comm_finalize(c);
    return EXIT_SUCCESS;
}

/* Gradient allreduce benchmark (run: mpiexec -n 2 tests/bench/bench_allreduce [iters]).
 * For a ResNet-20-sized (1.1 MB) and a ResNet-18-sized (45 MB) float buffer it reports plain
 * MPI_Allreduce against mpq_gradsync (bucketed MPI_Iallreduce), alone and overlapped with a
 * simulated backward pass (COMPUTE_RATIO x the sync time, in chunks, ready() per fake layer, with
 * and without progress calls between chunks), and the fraction of communication overlap hides. Owns its buffers;
 * one thread per rank. Each time is the maximum over ranks; the table shows medians over
 * iterations, all modes interleaved within each iteration. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "mpi/comm.h"
#include "perf/profile.h"

#define LAYERS 20 /* fake layers of the backward pass */
#define CHUNKS 8  /* compute chunks per layer, progress() between them */
#define SPIN_FLOATS 4096
#define COMPUTE_RATIO 4.0 /* simulated backward time / bucketed sync time */

static float spin_buf[SPIN_FLOATS];

/* Compute-bound stand-in for a backward kernel: reps passes over a cache-resident array. */
static void spin(long reps)
{
    for (long r = 0; r < reps; r++)
        for (int i = 0; i < SPIN_FLOATS; i++)
            spin_buf[i] = spin_buf[i] * 0.9999f + 0.0001f;
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

enum { PLAIN, SYNC_ALONE, COMPUTE, STEP_PROGRESS, STEP_NO_PROGRESS, WAIT_PROGRESS, NMODES };

/* One simulated step: LAYERS layers from the end of the buffer, each computing reps_per_layer
 * spin repetitions in CHUNKS pieces (progress between them if asked), then ready(). g == NULL:
 * compute only. Returns the step time; *wait receives the time spent in finish. */
static double run_step(mpq_gradsync *g, size_t n, long reps_per_layer, int progress, double *wait)
{
    double t0 = MPI_Wtime(), bytes;
    for (int l = LAYERS - 1; l >= 0; l--) {
        for (int k = 0; k < CHUNKS; k++) {
            spin(reps_per_layer / CHUNKS);
            if (g && progress) mpq_gradsync_progress(g);
        }
        if (g) mpq_gradsync_ready(g, n / LAYERS * (size_t)l);
    }
    *wait = 0.0;
    if (g) {
        MPQ_ASSERT(mpq_gradsync_finish(g) == MPQ_OK, "%s", mpq_errmsg());
        mpq_gradsync_stats(g, wait, &bytes);
    }
    return MPI_Wtime() - t0;
}

/* Every mode once per iteration, interleaved so that load changes hit all of them alike; each
 * time is the maximum over ranks; med[mode] receives the median over iterations. */
static void measure(mpq_gradsync *g, float *grad, size_t n, long reps_per_layer, int iters,
                    double med[NMODES])
{
    double *t = malloc((size_t)iters * NMODES * sizeof *t), wait;
    MPQ_ASSERT(t, "out of memory");
    for (int it = -1; it < iters; it++) { /* it = -1: warm-up */
        double row[NMODES];
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, grad, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        row[PLAIN] = MPI_Wtime() - t0;
        MPI_Barrier(MPI_COMM_WORLD);
        row[SYNC_ALONE] = run_step(g, n, 0, 1, &wait);
        MPI_Barrier(MPI_COMM_WORLD);
        row[COMPUTE] = run_step(NULL, n, reps_per_layer, 0, &wait);
        MPI_Barrier(MPI_COMM_WORLD);
        row[STEP_PROGRESS] = run_step(g, n, reps_per_layer, 1, &row[WAIT_PROGRESS]);
        MPI_Barrier(MPI_COMM_WORLD);
        row[STEP_NO_PROGRESS] = run_step(g, n, reps_per_layer, 0, &wait);
        MPI_Allreduce(MPI_IN_PLACE, row, NMODES, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        for (int m = 0; it >= 0 && m < NMODES; m++)
            t[m * iters + it] = row[m];
    }
    for (int m = 0; m < NMODES; m++)
        med[m] = mpq_median(t + m * iters, iters);
    free(t);
}

int main(int argc, char **argv)
{
    mpq_comm *c;
    if (mpq_comm_init(&argc, &argv, &c) != MPQ_OK) {
        fprintf(stderr, "%s\n", mpq_errmsg());
        return EXIT_FAILURE;
    }
    const int rank = mpq_comm_rank(c), iters = argc > 1 && atoi(argv[1]) > 0 ? atoi(argv[1]) : 20;
    static const struct {
        const char *name;
        size_t floats;
    } bufs[] = {
        {"resnet20 1.1MB", 272474},
        {"resnet18 45MB", 11689512},
    };
    const size_t buckets[] = {(size_t)1 << 16, (size_t)1 << 18, (size_t)1 << 20, 0};
    const double rate = spin_rate();
    if (rank == 0)
        printf("%d ranks, %d iterations (medians); compute = %.0f x bucketed sync, %d layers x "
               "%d chunks\n%-15s %9s | %8s %6s | %8s %6s | %8s %8s %8s %6s | %8s %6s\n",
               mpq_comm_size(c), iters, COMPUTE_RATIO, LAYERS, CHUNKS, "buffer", "bucket", "plain ms", "GB/s",
               "sync ms", "GB/s", "comp ms", "step+pr", "wait+pr", "hid+pr", "step-pr", "hid-pr");
    for (size_t b = 0; b < sizeof bufs / sizeof bufs[0]; b++) {
        const size_t n = bufs[b].floats;
        const double mb = (double)n * sizeof(float) / 1e9;
        float *grad = calloc(n, sizeof *grad);
        MPQ_ASSERT(grad, "out of memory");
        /* a first estimate of the bucketed sync alone (default bucket) sizes the compute: the
         * plain MPI_Allreduce can be far slower than it (Open MPI's choice for large buffers) */
        double first[5], wait;
        mpq_gradsync *g0;
        MPQ_ASSERT(mpq_gradsync_create(c, grad, n, (size_t)1 << 20, 0, &g0) == MPQ_OK, "%s",
                   mpq_errmsg());
        for (int it = 0; it < 5; it++) {
            MPI_Barrier(MPI_COMM_WORLD);
            first[it] = max_over_ranks(run_step(g0, n, 0, 1, &wait));
        }
        mpq_gradsync_free(g0);
        const double sync = mpq_median(first, 5);
        const long reps_per_layer = (long)(COMPUTE_RATIO * sync * rate / LAYERS) + CHUNKS;
        for (size_t k = 0; k < sizeof buckets / sizeof buckets[0]; k++) {
            const size_t bucket = buckets[k] ? buckets[k] : n; /* 0: one bucket */
            double med[NMODES];
            mpq_gradsync *g;
            MPQ_ASSERT(mpq_gradsync_create(c, grad, n, bucket, 0, &g) == MPQ_OK, "%s", mpq_errmsg());
            measure(g, grad, n, reps_per_layer, iters, med);
            mpq_gradsync_free(g);
            const double exposed_pr = med[STEP_PROGRESS] - med[COMPUTE];
            const double exposed_np = med[STEP_NO_PROGRESS] - med[COMPUTE];
            if (rank == 0)
                printf("%-15s %9zu | %8.3f %6.2f | %8.3f %6.2f | %8.3f %8.3f %8.3f %5.0f%% | "
                       "%8.3f %5.0f%%\n",
                       bufs[b].name, bucket, med[PLAIN] * 1e3, mb / med[PLAIN],
                       med[SYNC_ALONE] * 1e3, mb / med[SYNC_ALONE], med[COMPUTE] * 1e3,
                       med[STEP_PROGRESS] * 1e3, med[WAIT_PROGRESS] * 1e3,
                       100.0 * (1.0 - exposed_pr / med[SYNC_ALONE]), med[STEP_NO_PROGRESS] * 1e3,
                       100.0 * (1.0 - exposed_np / med[SYNC_ALONE]));
        }
        free(grad);
    }
    if (rank == 0)
        printf("GB/s: buffer bytes / time. sync: gradsync without compute. step: compute with "
               "gradsync,\n+pr with progress calls between chunks, -pr without; wait: time in "
               "finish; hid: 1 - (step - comp) / sync.\n");
    mpq_comm_finalize(c);
    return EXIT_SUCCESS;
}

/* The performance model of a data-parallel training step: step time = compute per rank (measured
 * profiles, perf/profile.h, interpolated in the local batch, slowed when ranks x threads exceed
 * the cores) + the gradient allreduce that overlap does not hide + the small blocking reductions
 * the trainer does every step. The gradient buckets are cut as mpi/gradsync cuts them
 * (core/buckets.h), become ready at the measured backward timeline, are issued in order and
 * serialized on the network; each costs the allreduce algorithm Open MPI 4.1 picks for it, and
 * without asynchronous progress each of its rounds starts only at the next MPI call.
 * Pure arithmetic on caller-owned structs; no state. */
#ifndef MPQ_PERF_MODEL_H
#define MPQ_PERF_MODEL_H

#include <stddef.h>

#include "perf/profile.h"

/* A network (or a shared-memory transport) as the model sees it. */
typedef struct mpq_net {
    char name[32];
    double alpha_s;       /* latency of one message (half a ping-pong round trip) */
    double byte_s;        /* seconds per byte on the wire: 1 / bandwidth */
    double reduce_byte_s; /* seconds per byte of the sum (MPI_Reduce_local) on a rank's CPU */
    int cpu_copies;       /* 1: the CPU moves the bytes (shared memory, TCP between processes of
                           * one host): moving them takes compute time, nothing overlaps */
} mpq_net;

typedef enum mpq_allreduce_alg {
    MPQ_ALLREDUCE_BINOMIAL,           /* binomial reduce to rank 0, then binomial broadcast */
    MPQ_ALLREDUCE_RECURSIVE_DOUBLING, /* log2 p exchanges of the whole vector */
    MPQ_ALLREDUCE_RING,               /* reduce-scatter + allgather around a ring */
    MPQ_ALLREDUCE_RABENSEIFNER,       /* recursive-halving reduce-scatter + doubling allgather */
} mpq_allreduce_alg;

const char *mpq_allreduce_alg_name(mpq_allreduce_alg a);

/* The algorithm of Open MPI 4.1's MPI_Iallreduce (coll/libnbc, default settings) for a sum over
 * p ranks of `bytes` bytes: binomial if p < 4, bytes < 64 KiB or in place (mpi/gradsync reduces
 * in place), else Rabenseifner (when the count is at least the largest power of two below p). */
mpq_allreduce_alg mpq_perf_iallreduce_alg(int p, double bytes, int in_place);

/* Seconds of one allreduce of `bytes` over p ranks, L = ceil(log2 p), n = bytes, a = alpha,
 * b = byte_s, g = reduce_byte_s:
 *   binomial            L (2a + 2nb + ng)
 *   recursive doubling  L (a + nb + ng)
 *   ring                2(p-1) a + 2 (p-1)/p n b + (p-1)/p n g
 *   Rabenseifner        2 L a + 2 (p-1)/p n b + (p-1)/p n g
 * 0 for p <= 1. With cpu_copies the wire time is CPU time too (see mpq_perf_allreduce_cpu_s). */
double mpq_perf_allreduce_s(mpq_allreduce_alg a, int p, double bytes, const mpq_net *net);
/* The rounds of messages the algorithm sends one after another on a rank's critical path:
 * binomial and Rabenseifner 2L, recursive doubling L, ring 2(p-1); 0 for p <= 1. */
int mpq_perf_allreduce_rounds(mpq_allreduce_alg a, int p);
/* The part of mpq_perf_allreduce_s that occupies the rank's CPU (cannot overlap compute): the
 * reduction terms, plus the wire terms when net->cpu_copies. */
double mpq_perf_allreduce_cpu_s(mpq_allreduce_alg a, int p, double bytes, const mpq_net *net);

/* Compute of one step at local batch `batch`: forward, backward and update seconds interpolated
 * linearly between the profiles (any order) with the nearest batches, extrapolated along the
 * nearest segment (proportionally to the batch for forward/backward with a single profile), never
 * below 1% of the nearest profile. Writes the three times. */
void mpq_perf_compute(const mpq_profile *prof, int n_prof, int batch, double *forward_s,
                      double *backward_s, double *update_s);

typedef struct mpq_perf_job {
    int nodes, ranks_per_node, threads; /* threads per rank */
    int cores_per_node;                 /* ranks x threads above this share the cores */
    int batch_per_rank;
    double bucket_bytes;    /* bucket_mbytes * 1e6 (0: one bucket) */
    int in_place;           /* 1: gradsync's in-place MPI_Iallreduce */
    int async_progress;     /* 0: an allreduce advances a round only when the rank calls MPI
                             * (mpq: after each layer that owns parameters, then in the final
                             * wait); 1: rounds advance by themselves (a progress thread,
                             * offloaded collectives) */
    double compute_speedup; /* a node this much faster than the profiled one (1) */
} mpq_perf_job;

typedef struct mpq_perf_step {
    int ranks;
    int buckets;
    mpq_allreduce_alg alg;                  /* of the largest bucket */
    double oversubscription;                /* max(1, ranks_per_node x threads / cores_per_node) */
    double forward_s, backward_s, update_s; /* slowed by oversubscription, sped up by speedup */
    double compute_s;   /* forward + backward (what timing.csv calls compute_s) */
    double allreduce_s; /* the gradient buckets' allreduces back to back */
    double exposed_s;   /* what of them ends after backward ends, + their CPU part */
    double sync_s;      /* per-step blocking reductions and the 1/R scaling pass */
    double step_s;      /* compute + exposed + sync + update */
    double bytes;       /* gradient bytes allreduced per step */
    double images_s;    /* ranks x batch_per_rank / step_s */
    double efficiency;  /* images_s / (ranks x one rank's images/s without oversubscription) */
} mpq_perf_step;

/* Predicts one step of job on net from n_prof profiles of one model at one thread count.
 * Returns 0, or MPQ_E_ARG (no profiles, profiles of different models or thread counts, a
 * thread count other than job->threads, a nonpositive size in job). */
int mpq_perf_predict(const mpq_profile *prof, int n_prof, const mpq_net *net,
                     const mpq_perf_job *job, mpq_perf_step *out);

/* The named networks of the cluster tables (25gbe, 100gbe, hdr200), with the CPU reduction cost
 * reduce_byte_s. Returns 0 or MPQ_E_ARG for an unknown name. */
int mpq_net_preset(const char *name, double reduce_byte_s, mpq_net *out);

#endif

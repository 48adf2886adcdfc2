/* One training step of one rank: the step `mpq train` runs and `mpq bench` measures. It reads
 * this rank's slice of the global batch from a source, runs forward, loss and backward on each
 * micro-batch (one normally; V/R virtual shards in deterministic mode) with the gradient buckets
 * allreduced while backward goes on, averages the BN running statistics over the replicas, then
 * adds the size penalties (identical on every rank, so after the averaging), weight decay, the
 * reference's quantizer-gradient clipping, the optimizer update and the quantizer projections.
 * The stepper owns its batch, gradient and statistics buffers; the model and the source are the
 * caller's. */
#ifndef MPQ_TRAIN_STEP_H
#define MPQ_TRAIN_STEP_H

#include "config.h"
#include "data.h"
#include "models/graph.h"
#include "mpi/comm.h"
#include "perf/profile.h"
#include "quant/size.h"
#include "train/threadtune.h"

/* How the global batch is cut: each rank runs `micro` micro-batches of `micro_n` samples; the
 * metrics of a step are summed over n_shards = micro * ranks units. */
typedef struct mpq_batching {
    int micro, micro_n, n_shards;
} mpq_batching;

typedef struct mpq_step_stats {
    double ce, err; /* mean cross-entropy and error over the global batch */
    mpq_size_terms size;
    double loss;                             /* ce + lambda2 * loss2 + lambda3 * loss3 */
    double t_compute, t_data, t_comm, bytes; /* this rank's seconds, bytes allreduced */
    double t_forward, t_backward, t_update;  /* parts of t_compute and the update's seconds */
} mpq_step_stats;

typedef struct mpq_trainstep {
    const mpq_cfg *cfg;
    mpq_comm *comm;
    mpq_model *m;
    mpq_batching b;
    mpq_budget budget;
    int rank, n_ranks;
    float *xb; /* the local batch (micro * micro_n samples, or more: see init) */
    int *yb;
    float *prob;      /* softmax of one micro-batch */
    float **gbuf;     /* deterministic mode: one gradient buffer per micro-batch */
    float **sbuf;     /* deterministic mode: one BN-state buffer per micro-batch */
    float *state0;    /* deterministic mode: the BN state at the start of the step */
    double *state_d;  /* BN state as doubles for the replica average */
    mpq_gradsync *gs; /* bucketed allreduce (several ranks, not deterministic), or NULL */
    mpq_timeline *timeline; /* when set (`mpq bench --timeline`): records every backward pass */
    mpq_threadtune threads; /* this rank's compute thread count (threads_adapt) */
    int threads_now;        /* the count the kernels are set to */
} mpq_trainstep;

/* The batching of cfg on n_ranks ranks. Returns 0 or MPQ_E_CONFIG naming the keys. */
int mpq_batching_of(const mpq_cfg *cfg, int n_ranks, mpq_batching *b);

/* Sets s up for model m (built and planned for at least b.micro_n samples) with buffers for local
 * batches of up to max_local samples (at least micro * micro_n). The thread count set before
 * (mpq_gemm_set_threads) is the most the steps use; with threads_adapt they may use fewer. Returns 0 or MPQ_E_*; free s
 * with mpq_trainstep_free either way. */
int mpq_trainstep_init(mpq_trainstep *s, const mpq_cfg *cfg, mpq_comm *comm, mpq_model *m,
                       const mpq_batching *b, int max_local);
void mpq_trainstep_free(mpq_trainstep *s);

/* Collective: trains global step `step` (0-based; Adam's bias correction uses step + 1) with
 * learning rate lr on the next batch of src. A read error on any rank fails every rank; a
 * non-finite loss fails with MPQ_E_NUMERIC before any update. Returns 0 or an agreed MPQ_E_*. */
int mpq_trainstep_run(mpq_trainstep *s, mpq_source *src, float lr, long step, mpq_step_stats *st);

#endif

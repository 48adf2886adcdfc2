/* Everything mpq does with MPI, behind an opaque handle: world setup, broadcast, agreement on
 * errors, reductions, the bucketed nonblocking gradient allreduce, the sync-BN reducer and rank
 * binding. Only files in mpi/ include mpi.h. A process calls mpq_comm_init once. */
#ifndef MPQ_MPI_COMM_H
#define MPQ_MPI_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/step.h"

typedef struct mpq_comm mpq_comm;

/* MPI_Init_thread (FUNNELED), log rank, abort hook -> MPI_Abort. Returns 0 or MPQ_E_MPI. */
int mpq_comm_init(int *argc, char ***argv, mpq_comm **out);
/* MPI_Finalize; NULL is a no-op. */
void mpq_comm_finalize(mpq_comm *c);
int mpq_comm_rank(const mpq_comm *c);
int mpq_comm_size(const mpq_comm *c);
double mpq_comm_wtime(void);
/* Writes the world communicator (an MPI_Comm) to *mpi_comm_out, which must point to an MPI_Comm:
 * for io/'s parallel HDF5 (MPI-IO), since files outside mpi/ and io/ cannot name the type. */
void mpq_comm_get_mpi(const mpq_comm *c, void *mpi_comm_out);

/* Collective agreement on an error: every rank passes its rc; every rank gets the minimum, and a
 * rank whose own rc was >= 0 while another failed gets, as its own message (mpq_errmsg), the
 * message of the lowest rank that failed with that code, prefixed "rank:<r>: ". A failing rank
 * keeps its own message. Returns the agreed rc. */
int mpq_comm_agree(mpq_comm *c, int rc);
void mpq_comm_barrier(mpq_comm *c);
int mpq_comm_bcast(mpq_comm *c, void *buf, size_t bytes, int root);
/* Broadcasts a NUL-terminated malloc'ed string from root; others receive a malloc'ed copy. */
int mpq_comm_bcast_string(mpq_comm *c, char **s, int root);
int mpq_comm_allreduce_sum_double(mpq_comm *c, double *buf, size_t n);
int mpq_comm_allreduce_max_double(mpq_comm *c, double *buf, size_t n);
int mpq_comm_allreduce_sum_long(mpq_comm *c, long *buf, size_t n);
/* A reducer for sync-BN (sums doubles over all ranks). Valid while c lives. */
const mpq_reducer *mpq_comm_reducer(mpq_comm *c);

/* Deterministic sum over V virtual shards (deterministic = true, virtual_shards = V): rank r of
 * R owns shards [r*V/R, (r+1)*V/R) and passes their n-element vectors in shard_bufs (read only;
 * n_local_shards must be V/R and n the same on every rank, else the job aborts). All V vectors
 * are added in one fixed binary tree over the shard index (a run of m shards is split into its
 * first m/2 and last m - m/2, left operand first): this rank's subtree locally, then recursive
 * doubling over MPI_Sendrecv along the same tree. out (n elements, may alias a shard buffer)
 * receives the full sum on every rank, with the same bits for every power-of-two R dividing V.
 * Collective. Returns 0, MPQ_E_ARG (R not a power of two dividing V), MPQ_E_NOMEM or MPQ_E_MPI. */
int mpq_comm_tree_sum(mpq_comm *c, float *const *shard_bufs, int n_local_shards, int v, size_t n,
                      float *out);
/* The same for doubles (BN statistics, metrics). */
int mpq_comm_tree_sum_double(mpq_comm *c, double *const *shard_bufs, int n_local_shards, int v,
                             size_t n, double *out);

/* Bucketed, overlapped gradient averaging over the whole flat gradient buffer (weights, BN
 * affine, quantizer parameters: everything). Buckets are contiguous runs of about bucket_floats
 * cut from the END of the buffer backwards (the order backward finishes them); a front remainder
 * under a quarter bucket joins its neighbour. Collective create/free (duplicates the world
 * communicator); grad stays owned by the caller and must outlive g. in_place 0: the sums land in
 * a second buffer of n_floats that g owns (allocated with more than one rank), which lets Open MPI
 * use Rabenseifner's allreduce instead of a binomial tree; 1: no second buffer. */
typedef struct mpq_gradsync mpq_gradsync;
int mpq_gradsync_create(mpq_comm *c, float *grad, size_t n_floats, size_t bucket_floats,
                        int in_place, mpq_gradsync **out);
/* Backward has finished grad[off, n_floats): starts MPI_Iallreduce (sum) of every
 * bucket lying wholly inside it that has not started yet, in bucket order, so the part of
 * grad before off may still be written. Offsets only ever shrink within a step. */
void mpq_gradsync_ready(mpq_gradsync *g, size_t off);
/* Drives progress of the allreduces in flight (MPI_Testsome); cheap, call between compute
 * chunks: Open MPI does not progress them otherwise. */
void mpq_gradsync_progress(mpq_gradsync *g);
/* Starts what is left, waits for all, multiplies grad by 1/R; then every bucket is cleared for
 * the next step. With one rank only the scaling (by 1) remains. Returns 0 or MPQ_E_MPI (the first
 * MPI failure of the step, from ready/progress/finish). */
int mpq_gradsync_finish(mpq_gradsync *g);
/* Seconds spent in finish and bytes handed to allreduces (0 with one rank), since the last
 * call; resets them. */
void mpq_gradsync_stats(mpq_gradsync *g, double *wait_s, double *bytes);
void mpq_gradsync_free(mpq_gradsync *g);

/* Binds this rank (hwloc, whole process) to its share of the node's cores: the cores are divided
 * into local_size contiguous runs, local rank i taking run i. With more node-local ranks than
 * cores nothing is bound (ranks share the cores). Chooses the thread count: requested > 0 wins,
 * then OMP_NUM_THREADS, then the cores in the share (1 when oversubscribed). Writes the binding
 * line "rank r host h cores [list] threads t" (plus the reason when not bound) into line (if
 * non-NULL) and logs it as a warning when binding was impossible. Not collective.
 * Returns the thread count (>= 1). */
int mpq_comm_bind(mpq_comm *c, int requested, char *line, size_t line_bytes);

#endif

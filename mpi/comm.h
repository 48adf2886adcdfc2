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
/* Ranks on this node and this rank's index among them (shared-memory split). */
int mpq_comm_local_rank(const mpq_comm *c);
int mpq_comm_local_size(const mpq_comm *c);
double mpq_comm_wtime(void);

/* Collective agreement on an error: every rank passes its rc; every rank gets the minimum, and a
 * rank whose own rc was 0 while another failed gets the failing rank's message as its own
 * (mpq_errmsg), prefixed by that rank. Returns the agreed rc. */
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

/* Bucketed, overlapped gradient averaging over the whole flat gradient buffer.
 * Buckets are contiguous runs of about bucket_floats from the END of the buffer backwards (the
 * order backward finishes them). */
typedef struct mpq_gradsync mpq_gradsync;
int mpq_gradsync_create(mpq_comm *c, float *grad, size_t n_floats, size_t bucket_floats,
                        mpq_gradsync **out);
/* Backward has finished grad[off, n_floats): start the allreduce of every bucket inside it. */
void mpq_gradsync_ready(mpq_gradsync *g, size_t off);
/* Drives progress of the allreduces in flight (MPI_Test); cheap, call between compute chunks. */
void mpq_gradsync_progress(mpq_gradsync *g);
/* Starts what is left, waits for all, divides by the rank count. Returns 0 or MPQ_E_MPI. */
int mpq_gradsync_finish(mpq_gradsync *g);
/* Seconds spent waiting in finish, bytes reduced, since the last call; resets them. */
void mpq_gradsync_stats(mpq_gradsync *g, double *wait_s, double *bytes);
void mpq_gradsync_free(mpq_gradsync *g);

/* Binds this rank (hwloc) to its share of the node's cores and chooses the thread count:
 * requested > 0 wins, then OMP_NUM_THREADS, then cores / ranks-per-node. Prints the binding
 * line "rank r host h cores [..] threads t" on every rank into line (if non-NULL).
 * Returns the thread count (>= 1). */
int mpq_comm_bind(mpq_comm *c, int requested, char *line, size_t line_bytes);

#endif

/* The cut of a flat gradient buffer into allreduce buckets: one rule shared by mpi/gradsync (which
 * allreduces them) and the performance model (src/perf/, which predicts their cost). Pure
 * arithmetic on sizes; no memory, no state. */
#ifndef MPQ_CORE_BUCKETS_H
#define MPQ_CORE_BUCKETS_H

#include <stddef.h>

/* Buckets of a buffer of n_floats (> 0) with buckets of bucket_floats (> 0): runs of bucket_floats
 * cut from the END of the buffer backwards (the order backward finishes them); a front remainder
 * under a quarter bucket joins its neighbour if the merged bucket stays within max_floats.
 * Returns the number of buckets (>= 1). */
size_t mpq_buckets_count(size_t n_floats, size_t bucket_floats, size_t max_floats);
/* Bucket i of nb (from mpq_buckets_count with the same sizes): bucket 0 ends the buffer, bucket
 * nb-1 starts it at offset 0. Writes its first float's offset and its length. */
void mpq_buckets_range(size_t n_floats, size_t bucket_floats, size_t nb, size_t i, size_t *off,
                       size_t *n);

#endif

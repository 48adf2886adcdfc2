/* The cut of a flat gradient buffer into allreduce buckets (see buckets.h). */
#include "core/buckets.h"

size_t mpq_buckets_count(size_t n_floats, size_t bucket_floats, size_t max_floats)
{
    size_t nb = (n_floats + bucket_floats - 1) / bucket_floats;
    size_t rem = n_floats - (nb - 1) * bucket_floats;
    if (nb > 1 && rem < bucket_floats / 4 && bucket_floats + rem <= max_floats) nb--;
    return nb;
}

void mpq_buckets_range(size_t n_floats, size_t bucket_floats, size_t nb, size_t i, size_t *off,
                       size_t *n)
{
    size_t end = n_floats - i * bucket_floats;
    *off = i == nb - 1 ? 0 : end - bucket_floats;
    *n = end - *off;
}

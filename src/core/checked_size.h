/* Overflow-checked size arithmetic for sizes that come from files (HDF5 extents, IDX and JPEG
 * headers, record counts): every product or sum of such sizes goes through these, and a caller
 * that gets -1 reports the file and the field instead of allocating a wrapped-around size.
 * Header only; no state. */
#ifndef MPQ_CORE_CHECKED_SIZE_H
#define MPQ_CORE_CHECKED_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* *out = a * b; returns 0, or -1 when the product does not fit (then *out is SIZE_MAX). */
static inline int mpq_size_mul(size_t *out, size_t a, size_t b)
{
    if (__builtin_mul_overflow(a, b, out)) {
        *out = SIZE_MAX;
        return -1;
    }
    return 0;
}

/* *out = a + b; returns 0, or -1 when the sum does not fit (then *out is SIZE_MAX). */
static inline int mpq_size_add(size_t *out, size_t a, size_t b)
{
    if (__builtin_add_overflow(a, b, out)) {
        *out = SIZE_MAX;
        return -1;
    }
    return 0;
}

/* The product of n extents (1 for n = 0; unsigned long long is HDF5's hsize_t), each at most
 * limit; returns 0 or -1 when an extent exceeds limit or the product does not fit in size_t or
 * exceeds limit. */
static inline int mpq_size_product(size_t *out, const unsigned long long *dims, int n,
                                   size_t limit)
{
    size_t p = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] > limit || mpq_size_mul(&p, p, (size_t)dims[i]) < 0 || p > limit) {
            *out = SIZE_MAX;
            return -1;
        }
    }
    *out = p;
    return 0;
}

#endif

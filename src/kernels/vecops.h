/* Small inline helpers for loops that must vectorize. GCC (12) does not if-convert a float
 * select on a float comparison (the comparison may trap), so such loops stay scalar; a bit mask
 * keeps them vectorized with the same results. Header only, no state. */
#ifndef MPQ_KERNELS_VECOPS_H
#define MPQ_KERNELS_VECOPS_H

#include <stdint.h>
#include <string.h>

/* d if keep (0 or 1), else +0.0f. */
static inline float mpq_keep_if(int keep, float d)
{
    uint32_t u;
    memcpy(&u, &d, sizeof u);
    u &= (uint32_t)0 - (uint32_t)keep;
    memcpy(&d, &u, sizeof d);
    return d;
}

#endif

/* FNV-1a, 64 bits: a cheap, stable hash of bytes for fingerprints (the layout of a data split,
 * a configuration) and content checks (a tensor's values). Not cryptographic: it detects bit rot
 * and honest mismatches, not tampering. Pure functions, no state. */
#ifndef MPQ_CORE_HASH_H
#define MPQ_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define MPQ_HASH_INIT 1469598103934665603ull

/* Continues hash h over n bytes at p; start with MPQ_HASH_INIT. */
static inline uint64_t mpq_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Continues h over a 64-bit integer (its value, independent of the host's byte order). */
static inline uint64_t mpq_hash_u64(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        h = (h ^ ((v >> (8 * i)) & 0xffu)) * 1099511628211ull;
    return h;
}

#endif

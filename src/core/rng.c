/* splitmix64 keyed hashing and xoshiro256** streams. Pure functions of their keys. */
#include "core/rng.h"

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t mpq_rng_hash(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t x = seed;
    uint64_t h = splitmix(&x);
    x = h ^ a;
    h = splitmix(&x);
    x = h ^ b;
    return splitmix(&x);
}

void mpq_rng_seed(mpq_rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t x = mpq_rng_hash(seed, a, b);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mpq_rng_u64(mpq_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float mpq_rng_uniform(mpq_rng *r) { return (float)(mpq_rng_u64(r) >> 40) * 0x1.0p-24f; }

uint64_t mpq_rng_below(mpq_rng *r, uint64_t n)
{
    /* Lemire's multiply-shift; the tiny bias (< n / 2^64) is irrelevant here. */
    return (uint64_t)(((unsigned __int128)mpq_rng_u64(r) * n) >> 64);
}

void mpq_rng_permutation(uint64_t seed, uint64_t a, uint64_t b, size_t n, int64_t *perm)
{
    mpq_rng r;
    mpq_rng_seed(&r, seed, a, b);
    for (size_t i = 0; i < n; i++) perm[i] = (int64_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)mpq_rng_below(&r, i);
        int64_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

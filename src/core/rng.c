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

/* One xoshiro256** step of the state s. */
static inline uint64_t next(uint64_t *s)
{
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

static inline float uniform_of(uint64_t v) { return (float)(v >> 40) * 0x1.0p-24f; }

uint64_t mpq_rng_u64(mpq_rng *r) { return next(r->s); }

float mpq_rng_uniform(mpq_rng *r) { return uniform_of(next(r->s)); }

void mpq_rng_uniform_fill(mpq_rng *r, float *out, size_t n)
{
    uint64_t s[4] = {r->s[0], r->s[1], r->s[2], r->s[3]};
    for (size_t i = 0; i < n; i++)
        out[i] = uniform_of(next(s));
    for (int i = 0; i < 4; i++)
        r->s[i] = s[i];
}

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

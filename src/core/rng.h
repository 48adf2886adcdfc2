/* Counter-based randomness: every random stream is a pure function of (seed, a, b), so weight
 * initialisation, the epoch permutation and each sample's augmentation do not depend on the rank
 * count, the thread count or the order in which they are drawn. No global state. */
#ifndef MPQ_CORE_RNG_H
#define MPQ_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct mpq_rng {
    uint64_t s[4]; /* xoshiro256** state */
} mpq_rng;

/* A well-mixed 64-bit hash of three words (splitmix64 finaliser chain). */
uint64_t mpq_rng_hash(uint64_t seed, uint64_t a, uint64_t b);
/* Seeds a stream keyed by (seed, a, b): e.g. (seed, epoch, sample index). */
void mpq_rng_seed(mpq_rng *r, uint64_t seed, uint64_t a, uint64_t b);
uint64_t mpq_rng_u64(mpq_rng *r);
/* Uniform float in [0, 1) with 24 random bits. */
float mpq_rng_uniform(mpq_rng *r);
/* out[i] = the next n draws of mpq_rng_uniform, with the state kept in registers. */
void mpq_rng_uniform_fill(mpq_rng *r, float *out, size_t n);
/* Uniform integer in [0, n). */
uint64_t mpq_rng_below(mpq_rng *r, uint64_t n);
/* Writes a permutation of 0..n-1 that depends only on (seed, a, b) (Fisher-Yates). */
void mpq_rng_permutation(uint64_t seed, uint64_t a, uint64_t b, size_t n, int64_t *perm);

/* Stream identifiers for the first key word, so distinct uses never share a stream. */
enum {
    MPQ_RNG_STREAM_INIT = 1,      /* weight initialisation: (seed, INIT, tensor index) */
    MPQ_RNG_STREAM_PERM = 2,      /* epoch permutation: (seed, PERM, epoch) */
    MPQ_RNG_STREAM_AUGMENT = 3,   /* augmentation: key b = epoch * 2^32 + sample index */
    MPQ_RNG_STREAM_SYNTHETIC = 4, /* synthetic data sets */
};

#endif

/* Small inline helpers for loops that must vectorize. GCC (12) does not if-convert a float
 * select on a float comparison (the comparison may trap), so such loops stay scalar; a bit mask
 * keeps them vectorized with the same results. And streamed stores for loops that GCC
 * vectorizes but will not store past the caches (it ignores OpenMP's nontemporal clause).
 * Header only, no state. */
#ifndef MPQ_KERNELS_VECOPS_H
#define MPQ_KERNELS_VECOPS_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX__)
#include <immintrin.h>
#endif

/* d if keep (0 or 1), else +0.0f. */
static inline float mpq_keep_if(int keep, float d)
{
    uint32_t u;
    memcpy(&u, &d, sizeof u);
    u &= (uint32_t)0 - (uint32_t)keep;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Floats of one streamed store: a 64-byte line. */
enum { MPQ_STREAM_FLOATS = 16 };

/* Whether n floats at p can be written line by line with mpq_stream_line. */
static inline int mpq_stream_ok(const float *p, size_t n)
{
    return ((uintptr_t)p & 63) == 0 && n % MPQ_STREAM_FLOATS == 0;
}

/* Stores the MPQ_STREAM_FLOATS floats of t at dst (64-byte aligned) past the caches
 * (non-temporal stores; plain stores in builds without AVX). A loop with constant bounds that
 * fills t keeps it in registers. The thread that made such stores orders them before other
 * threads' reads with mpq_stream_fence(). */
static inline void mpq_stream_line(float *dst, const float *t)
{
#if defined(__AVX512F__)
    _mm512_stream_ps(dst, _mm512_loadu_ps(t));
#elif defined(__AVX__)
    _mm256_stream_ps(dst, _mm256_loadu_ps(t));
    _mm256_stream_ps(dst + 8, _mm256_loadu_ps(t + 8));
#else
    memcpy(dst, t, MPQ_STREAM_FLOATS * sizeof *t);
#endif
}

static inline void mpq_stream_fence(void)
{
#if defined(__AVX__)
    _mm_sfence();
#endif
}

#endif

/* Private to src/kernels: the vector type and operations of the SIMD kernels, for AVX-512
 * (VW = 16 floats, 32 registers) or AVX2+FMA (VW = 8, 16 registers); VW stays undefined in other
 * builds, whose kernels fall back to their scalar references. Masked loads read zeros in the
 * lanes off the mask and never touch memory there; masked stores leave those lanes alone.
 * VSTREAM stores a vector at an address aligned to its size past the caches (non-temporal); a
 * kernel that uses it ends with _mm_sfence(). */
#ifndef MPQ_KERNELS_SIMD_H
#define MPQ_KERNELS_SIMD_H

#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define VW 16
#define NREG 32
typedef __m512 vf;
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSTREAM(p, v) _mm512_stream_ps((p), (v)) /* p aligned to VW floats */
#define VBCAST(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSUB(a, b) _mm512_sub_ps((a), (b))
typedef __mmask16 vmask;
#define VMASK(n) ((__mmask16)((1u << (n)) - 1u))
#define VLOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define VSTOREM(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
/* doubles: VW / 2 per vector; the low and high halves of a float vector widened */
typedef __m512d vd;
#define VDZERO() _mm512_setzero_pd()
#define VDADD(a, b) _mm512_add_pd((a), (b))
#define VDFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define VDLOAD(p) _mm512_loadu_pd(p)
#define VDSTORE(p, v) _mm512_storeu_pd((p), (v))
#define VWIDEN_LO(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define VWIDEN_HI(v)                                                                               \
    _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VW 8
#define NREG 16
typedef __m256 vf;
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSTREAM(p, v) _mm256_stream_ps((p), (v))
#define VBCAST(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VSUB(a, b) _mm256_sub_ps((a), (b))
typedef __m256i vmask;
#define VMASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VLOADM(p, m) _mm256_maskload_ps((p), (m))
#define VSTOREM(p, m, v) _mm256_maskstore_ps((p), (m), (v))
typedef __m256d vd;
#define VDZERO() _mm256_setzero_pd()
#define VDADD(a, b) _mm256_add_pd((a), (b))
#define VDFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define VDLOAD(p) _mm256_loadu_pd(p)
#define VDSTORE(p, v) _mm256_storeu_pd((p), (v))
#define VWIDEN_LO(v) _mm256_cvtps_pd(_mm256_castps256_ps128(v))
#define VWIDEN_HI(v) _mm256_cvtps_pd(_mm256_extractf128_ps((v), 1))
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

#ifdef VW
/* Whether p is aligned to a whole vector (VSTREAM's requirement). */
ALWAYS_INLINE int vec_aligned(const float *p)
{
    return ((uintptr_t)p & (VW * sizeof(float) - 1)) == 0;
}

/* The statistics a BN takes from a kernel's output vectors (layers/bn.h, mpq_bn_forward_sums):
 * with d = v - shift (in float), s1 += d and s2 += d * d in double, VW / 2 lanes in each of the
 * two halves. */
ALWAYS_INLINE void vstats_add(vf v, vf shift, vd s1[2], vd s2[2])
{
    const vf d = VSUB(v, shift);
    const vd lo = VWIDEN_LO(d), hi = VWIDEN_HI(d);
    s1[0] = VDADD(s1[0], lo);
    s1[1] = VDADD(s1[1], hi);
    s2[0] = VDFMA(lo, lo, s2[0]);
    s2[1] = VDFMA(hi, hi, s2[1]);
}

/* sums[q] += lane q of lo, hi (the VW doubles in order); only q < n when PART. */
ALWAYS_INLINE void vstats_add_doubles(const int PART, double *sums, vd lo, vd hi, int n)
{
    if (!PART) {
        VDSTORE(sums, VDADD(VDLOAD(sums), lo));
        VDSTORE(sums + VW / 2, VDADD(VDLOAD(sums + VW / 2), hi));
        return;
    }
    double t[VW];
    VDSTORE(t, lo);
    VDSTORE(t + VW / 2, hi);
    for (int q = 0; q < n; q++)
        sums[q] += t[q];
}

/* The sums of vstats_add added to memory: s1 at sums, s2 at sums + nv (the first n lanes when
 * PART). */
ALWAYS_INLINE void vstats_store(const int PART, double *sums, int nv, const vd s1[2],
                                const vd s2[2], int n)
{
    vstats_add_doubles(PART, sums, s1[0], s1[1], n);
    vstats_add_doubles(PART, sums + nv, s2[0], s2[1], n);
}
#endif

#endif

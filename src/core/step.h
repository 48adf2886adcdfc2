/* What every layer's forward and backward receives: the flat buffers of one model replica and the
 * size of the local batch. Layers read values from `val` (weights of conv/fc from `wq`, the
 * quantized copy with the same offsets), write their outputs, and ADD into `grad`.
 * Statistics that mix samples (BN) are formed per group of n / n_groups consecutive samples
 * (ghost batches; 1 group normally) and, when `reduce` is set, summed across ranks (sync-BN). */
#ifndef MPQ_CORE_STEP_H
#define MPQ_CORE_STEP_H

#include <stddef.h>

/* A cross-replica sum over a small vector of doubles, provided by mpi/ for sync-BN.
 * sum() replaces buf[0..n) by its elementwise sum over all ranks; returns 0 or MPQ_E_*. */
typedef struct mpq_reducer {
    void *ctx;
    int (*sum)(void *ctx, double *buf, size_t n);
} mpq_reducer;

typedef struct mpq_step {
    const float *val;   /* trainable values */
    const float *wq;    /* conv/fc weights and biases after their quantizer (== val if none) */
    float *grad;        /* gradients, same layout as val; layers add into it */
    float *state;       /* non-trainable values (BN running statistics) */
    float *arena;       /* activation arena: layer caches live here (slices set by the plan) */
    float *ws;          /* scratch shared by all layers, at least ws_floats */
    size_t ws_floats;
    int n;              /* samples in the local batch */
    int n_groups;       /* BN statistics groups; divides n */
    int training;       /* 1: batch statistics, running-stat update, caches for backward */
    const mpq_reducer *reduce; /* sync-BN across ranks, or NULL */
} mpq_step;

/* A layer's output gradient made on demand, a band of pixels at a time (by the BN that consumes
 * the output, layers/bn.h, mpq_bn_dx_rows): rows(ctx, p0, p1, out) writes dL/dy of pixels
 * [p0, p1) (p = (i * Ho + oh) * Wo + ow; C floats each) into out; it is called from any thread. */
typedef struct mpq_dy_src {
    void (*rows)(const void *ctx, size_t p0, size_t p1, float *out);
    const void *ctx;
} mpq_dy_src;

/* Layer outputs of at least this many bytes per step (the whole local batch) are written past
 * the caches (non-temporal stores): they cannot be read back from cache anyway, and plain stores
 * would first read every line from memory. Measured on MobileNetV2 (batch 32, one thread, 32 MB
 * L3): its expanded 112x112 and 56x56 tensors (58-154 MB per step) write 1.3-1.6x faster
 * streamed; tensors of a few MB, which the next layer reads from L3, stay cached. Layers keep
 * the threshold per layer (stream_bytes) so tests can lower it; results never depend on it. */
#define MPQ_STREAM_BYTES ((size_t)16 << 20)

/* Whether a layer output of per_sample floats per sample is written past the caches. */
static inline int mpq_step_streams(const mpq_step *s, size_t per_sample, size_t stream_bytes)
{
    return (size_t)s->n * per_sample * sizeof(float) >= stream_bytes;
}

#endif

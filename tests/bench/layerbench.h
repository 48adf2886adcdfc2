/* What the one-layer benchmarks (bench_bn, bench_conv, bench_dw) share: checked allocations, the
 * fixed input patterns, a layer's activation buffers, and best-of timing. The caller owns what
 * these return. */
#ifndef MPQ_TESTS_BENCH_LAYERBENCH_H
#define MPQ_TESTS_BENCH_LAYERBENCH_H

#include <stddef.h>

/* n zeroed floats, 64-byte aligned; exits with a message naming the size when memory is short. */
float *mpq_bench_floats(size_t n);

/* A layer's input x and its gradient dx (nx floats), output y and its gradient dy (ny). */
typedef struct mpq_bench_io {
    float *x, *y, *dy, *dx;
} mpq_bench_io;

/* Allocates the four; x and dy hold fixed patterns in [-1, 1). Release with mpq_bench_io_free. */
mpq_bench_io mpq_bench_io_alloc(size_t nx, size_t ny);
void mpq_bench_io_free(mpq_bench_io *b);

/* w[i] = a fixed pattern in [-0.5, 0.5) for i < n. */
void mpq_bench_weights(float *w, size_t n);

/* The best seconds over `rounds` rounds of one forward(ctx) and one backward(ctx) each. */
void mpq_bench_best(int rounds, void (*forward)(const void *), void (*backward)(const void *),
                    const void *ctx, double *tf, double *tb);

#endif

/* The one-layer benchmarks' shared pieces (see layerbench.h). */
#include "layerbench.h"

#include <omp.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/params.h"

float *mpq_bench_floats(size_t n)
{
    float *p = mpq_alloc_floats(n);
    MPQ_ASSERT(p, "bench: cannot allocate %zu floats", n);
    return p;
}

mpq_bench_io mpq_bench_io_alloc(size_t nx, size_t ny)
{
    mpq_bench_io b = {mpq_bench_floats(nx), mpq_bench_floats(ny), mpq_bench_floats(ny),
                      mpq_bench_floats(nx)};
    for (size_t i = 0; i < nx; i++)
        b.x[i] = (float)((i * 2654435761u) % 1000u) / 500.0f - 1.0f;
    for (size_t i = 0; i < ny; i++)
        b.dy[i] = (float)((i * 40503u) % 100u) / 50.0f - 1.0f;
    return b;
}

void mpq_bench_io_free(mpq_bench_io *b)
{
    free(b->x), free(b->y), free(b->dy), free(b->dx);
    *b = (mpq_bench_io){0};
}

void mpq_bench_weights(float *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        w[i] = (float)((i * 7u) % 11u) / 11.0f - 0.5f;
}

void mpq_bench_best(int rounds, void (*forward)(const void *), void (*backward)(const void *),
                    const void *ctx, double *tf, double *tb)
{
    *tf = *tb = 1e30;
    for (int r = 0; r < rounds; r++) {
        const double t0 = omp_get_wtime();
        forward(ctx);
        const double t1 = omp_get_wtime();
        backward(ctx);
        const double t2 = omp_get_wtime();
        if (t1 - t0 < *tf) *tf = t1 - t0;
        if (t2 - t1 < *tb) *tb = t2 - t1;
    }
}

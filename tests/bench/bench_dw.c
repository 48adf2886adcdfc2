/* The depthwise layer alone (run: tests/bench/bench_dw [N H W C STRIDE]...; no arguments:
 * MobileNetV2's 3x3 depthwise shapes at batch 32): the forward and the backward (weight
 * gradient and input gradient) of one layer on one thread. Prints CSV
 * "n,h,w,c,stride,forward_ms,backward_ms,forward_gbs,backward_gbs": the best of several calls,
 * and the bytes each must move at least (forward: x read, y written; backward: x and dy read, dx
 * written) per second, to set against the machine's streaming bandwidth. Owns its buffers. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "layers/dwconv.h"

enum { ROUNDS = 5 };

static float *floats(size_t n)
{
    float *p = mpq_alloc_floats(n);
    MPQ_ASSERT(p, "bench_dw: cannot allocate %zu floats", n);
    return p;
}

static void run_shape(int n, int h, int w, int c, int stride)
{
    mpq_dwconv l;
    MPQ_ASSERT(n > 0 && !mpq_dwconv_init(&l, h, w, c, 3, 3, stride, stride, 1, 1),
               "bench_dw: bad shape %d x %d x %d x %d stride %d", n, h, w, c, stride);
    l.weight = (mpq_slice){0, (size_t)c * 9};
    const size_t nx = (size_t)n * h * w * c, ny = (size_t)n * l.ho * l.wo * c;
    const size_t nws = mpq_dwconv_ws_floats(&l, n);
    float *val = floats((size_t)c * 9), *grad = floats((size_t)c * 9), *ws = floats(nws);
    float *x = floats(nx), *y = floats(ny), *dy = floats(ny), *dx = floats(nx);
    for (size_t i = 0; i < (size_t)c * 9; i++)
        val[i] = (float)((i * 7u) % 11u) / 11.0f - 0.5f;
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)((i * 2654435761u) % 1000u) / 500.0f - 1.0f;
    for (size_t i = 0; i < ny; i++)
        dy[i] = (float)((i * 40503u) % 100u) / 50.0f - 1.0f;
    const mpq_step s = {
        .val = val, .wq = val, .grad = grad, .ws = ws, .ws_floats = nws, .n = n, .training = 1};
    double tf = 1e30, tb = 1e30;
    for (int k = 0; k < ROUNDS; k++) {
        double t0 = omp_get_wtime();
        mpq_dwconv_forward(&l, &s, x, y);
        double t1 = omp_get_wtime();
        mpq_dwconv_backward(&l, &s, x, dy, dx);
        double t2 = omp_get_wtime();
        if (t1 - t0 < tf) tf = t1 - t0;
        if (t2 - t1 < tb) tb = t2 - t1;
    }
    const double bf = 4.0 * (double)(nx + ny), bb = 4.0 * (double)(2 * nx + ny);
    printf("%d,%d,%d,%d,%d,%.2f,%.2f,%.1f,%.1f\n", n, h, w, c, stride, tf * 1e3, tb * 1e3,
           bf / tf / 1e9, bb / tb / 1e9);
    free(val), free(grad), free(ws), free(x), free(y), free(dy), free(dx);
}

int main(int argc, char **argv)
{
    omp_set_num_threads(1);
    printf("n,h,w,c,stride,forward_ms,backward_ms,forward_gbs,backward_gbs\n");
    if (argc > 1) {
        MPQ_ASSERT((argc - 1) % 5 == 0, "usage: bench_dw [N H W C STRIDE]...");
        for (int i = 1; i < argc; i += 5)
            run_shape(atoi(argv[i]), atoi(argv[i + 1]), atoi(argv[i + 2]), atoi(argv[i + 3]),
                      atoi(argv[i + 4]));
        return 0;
    }
    static const int shapes[][4] = {{112, 32, 1}, {112, 96, 2}, {56, 144, 1}, {56, 144, 2},
                                    {28, 192, 1}, {28, 192, 2}, {14, 384, 1}, {14, 576, 1},
                                    {14, 576, 2}, {7, 960, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        run_shape(32, shapes[i][0], shapes[i][0], shapes[i][1], shapes[i][2]);
    return 0;
}

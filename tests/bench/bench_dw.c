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
#include "layerbench.h"
#include "layers/dwconv.h"

enum { ROUNDS = 5 };

typedef struct bench {
    mpq_dwconv l;
    mpq_step s;
    mpq_bench_io io;
} bench;

static void forward(const void *p)
{
    const bench *b = p;
    mpq_dwconv_forward(&b->l, &b->s, b->io.x, b->io.y);
}

static void backward(const void *p)
{
    const bench *b = p;
    mpq_dwconv_backward(&b->l, &b->s, b->io.x, b->io.dy, b->io.dx);
}

static void run_shape(int n, int h, int w, int c, int stride)
{
    bench b;
    MPQ_ASSERT(n > 0 && !mpq_dwconv_init(&b.l, h, w, c, 3, 3, stride, stride, 1, 1),
               "bench_dw: bad shape %d x %d x %d x %d stride %d", n, h, w, c, stride);
    const size_t nw = (size_t)c * 9, nws = mpq_dwconv_ws_floats(&b.l, n);
    const size_t nx = (size_t)n * h * w * c, ny = (size_t)n * b.l.ho * b.l.wo * c;
    b.l.weight = (mpq_slice){0, nw};
    float *val = mpq_bench_floats(nw), *grad = mpq_bench_floats(nw), *ws = mpq_bench_floats(nws);
    mpq_bench_weights(val, nw);
    b.io = mpq_bench_io_alloc(nx, ny);
    b.s = (mpq_step){
        .val = val, .wq = val, .grad = grad, .ws = ws, .ws_floats = nws, .n = n, .training = 1};
    double tf, tb;
    mpq_bench_best(ROUNDS, forward, backward, &b, &tf, &tb);
    const double bf = 4.0 * (double)(nx + ny), bb = 4.0 * (double)(2 * nx + ny);
    printf("%d,%d,%d,%d,%d,%.2f,%.2f,%.1f,%.1f\n", n, h, w, c, stride, tf * 1e3, tb * 1e3,
           bf / tf / 1e9, bb / tb / 1e9);
    free(val), free(grad), free(ws);
    mpq_bench_io_free(&b.io);
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
    static const int shapes[][3] = {{112, 32, 1}, {112, 96, 2}, {56, 144, 1}, {56, 144, 2},
                                    {28, 192, 1}, {28, 192, 2}, {14, 384, 1}, {14, 576, 1},
                                    {14, 576, 2}, {7, 960, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        run_shape(32, shapes[i][0], shapes[i][0], shapes[i][1], shapes[i][2]);
    return 0;
}

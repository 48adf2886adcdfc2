/* One convolution alone (run: tests/bench/bench_conv [N H W CIN COUT K STRIDE]...; no arguments:
 * ResNet-20's 3x3 shapes at batch 128): the forward and the backward (weight and input
 * gradients) of one layer with padding K / 2, on one thread, by each algorithm (im2col + BLIS,
 * and the direct kernels where they apply; the one mpq_conv_init picks is marked). Prints CSV
 * "n,h,w,cin,cout,k,stride,algo,picked,forward_ms,backward_ms,forward_gflops,backward_gflops":
 * the best of several calls. Owns its buffers. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "layerbench.h"
#include "layers/conv.h"

enum { ROUNDS = 7 };

typedef struct bench {
    mpq_conv l;
    mpq_step s;
    mpq_bench_io io;
} bench;

static void forward(const void *p)
{
    const bench *b = p;
    mpq_conv_forward(&b->l, &b->s, b->io.x, b->io.y);
}

static void backward(const void *p)
{
    const bench *b = p;
    mpq_conv_backward(&b->l, &b->s, b->io.x, b->io.dy, b->io.dx);
}

static void run_algo(int n, int h, int w, int cin, int cout, int k, int stride, mpq_conv_algo algo)
{
    bench b;
    MPQ_ASSERT(n > 0 &&
                   !mpq_conv_init(&b.l, h, w, cin, cout, k, k, stride, stride, k / 2, k / 2, 1),
               "bench_conv: bad shape");
    const int picked = b.l.algo == algo && b.l.algo_bwd == algo;
    b.l.algo = b.l.algo_bwd = algo;
    const size_t nw = (size_t)cout * k * k * cin, nws = mpq_conv_ws_floats(&b.l, n);
    b.l.weight = (mpq_slice){0, nw};
    float *val = mpq_bench_floats(nw), *grad = mpq_bench_floats(nw), *ws = mpq_bench_floats(nws);
    mpq_bench_weights(val, nw);
    b.io = mpq_bench_io_alloc((size_t)n * h * w * cin, (size_t)n * b.l.ho * b.l.wo * cout);
    b.s = (mpq_step){
        .val = val, .wq = val, .grad = grad, .ws = ws, .ws_floats = nws, .n = n, .training = 1};
    double tf, tb;
    mpq_bench_best(ROUNDS, forward, backward, &b, &tf, &tb);
    const double flop = 2.0 * n * mpq_conv_macs(&b.l);
    printf("%d,%d,%d,%d,%d,%d,%d,%s,%d,%.2f,%.2f,%.1f,%.1f\n", n, h, w, cin, cout, k, stride,
           algo == MPQ_CONV_DIRECT ? "direct" : "im2col", picked, tf * 1e3, tb * 1e3,
           flop / tf / 1e9, 2.0 * flop / tb / 1e9);
    free(val), free(grad), free(ws);
    mpq_bench_io_free(&b.io);
}

static void run_shape(int n, int h, int w, int cin, int cout, int k, int stride)
{
    run_algo(n, h, w, cin, cout, k, stride, MPQ_CONV_IM2COL);
    mpq_conv l;
    if (!mpq_conv_init(&l, h, w, cin, cout, k, k, stride, stride, k / 2, k / 2, 1) &&
        mpq_conv_direct_ok(&l))
        run_algo(n, h, w, cin, cout, k, stride, MPQ_CONV_DIRECT);
}

int main(int argc, char **argv)
{
    omp_set_num_threads(1);
    printf("n,h,w,cin,cout,k,stride,algo,picked,forward_ms,backward_ms,forward_gflops,"
           "backward_gflops\n");
    if (argc > 1) {
        MPQ_ASSERT((argc - 1) % 7 == 0, "usage: bench_conv [N H W CIN COUT K STRIDE]...");
        for (int i = 1; i < argc; i += 7)
            run_shape(atoi(argv[i]), atoi(argv[i + 1]), atoi(argv[i + 2]), atoi(argv[i + 3]),
                      atoi(argv[i + 4]), atoi(argv[i + 5]), atoi(argv[i + 6]));
        return 0;
    }
    static const int shapes[][5] = {{32, 16, 16, 3, 1}, {32, 16, 32, 3, 2}, {16, 32, 32, 3, 1},
                                    {16, 32, 64, 3, 2}, {8, 64, 64, 3, 1},  {32, 3, 16, 3, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        run_shape(128, shapes[i][0], shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3],
                  shapes[i][4]);
    return 0;
}

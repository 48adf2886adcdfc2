/* BN's passes alone (run: tests/bench/bench_bn [N HW C KIND]...; no arguments: ResNet-20's three
 * BN shapes at batch 128, and each again at a batch that keeps the tensors in L2): the training
 * forward (statistics and output) and backward (both passes) of one BN fused with its activation
 * (KIND: relu, relu6, none, or uq: the default activation quantizer, parametric_fp_d_xmax_relu,
 * computed in BN's loops), and backward's pass 1 alone (its sums, what runs before a convolution
 * takes pass 2 band by band), on one thread. Prints CSV
 * "n,hw,c,kind,forward_ns_per_element,backward_ns_per_element,pass1_ns_per_element": the best of
 * several repetitions of about 50 M elements each. The pair of a shape and its L2-resident twin
 * tells whether the passes are bound by memory or by their code. Owns its buffers. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/err.h"
#include "layerbench.h"
#include "layers/bn.h"
#include "quant/quant.h"

enum { ROUNDS = 5 };

/* One BN's buffers and step. */
typedef struct bench {
    mpq_bn l;
    const mpq_act *act;
    mpq_step s;
    mpq_bench_io io;
} bench;

static void forward(const bench *b) { mpq_bn_forward(&b->l, b->act, &b->s, b->io.x, b->io.y); }
static void backward(const bench *b)
{
    mpq_bn_backward(&b->l, b->act, &b->s, b->io.x, b->io.dy, b->io.dx);
}
static void pass1(const bench *b) { mpq_bn_backward_sums(&b->l, b->act, &b->s, b->io.x, b->io.dy); }

/* The best over ROUNDS rounds of the seconds per call of fn, reps calls a round. */
static double best_of(int reps, void (*fn)(const bench *), const bench *b)
{
    double best = 1e30;
    for (int k = 0; k < ROUNDS; k++) {
        const double t0 = omp_get_wtime();
        for (int r = 0; r < reps; r++)
            fn(b);
        const double t = (omp_get_wtime() - t0) / reps;
        if (t < best) best = t;
    }
    return best;
}

static void run_shape(int n, int hw, int c, const char *kind)
{
    MPQ_ASSERT(n > 0 && hw > 0 && c > 0, "bench_bn: bad shape %d x %d x %d", n, hw, c);
    const int uq = !strcmp(kind, "uq");
    MPQ_ASSERT(uq || !strcmp(kind, "relu") || !strcmp(kind, "relu6") || !strcmp(kind, "none"),
               "bench_bn: unknown kind '%s' (relu, relu6, none, uq)", kind);
    bench b;
    mpq_bn_init(&b.l, hw, c);
    b.l.gamma = (mpq_slice){0, (size_t)c};
    b.l.beta = (mpq_slice){(size_t)c, (size_t)c};
    b.l.mean = (mpq_slice){0, (size_t)c};
    b.l.var = (mpq_slice){(size_t)c, (size_t)c};
    const size_t nx = (size_t)n * hw * c, ncache = mpq_bn_cache_floats(&b.l, n, 1);
    const size_t nws = mpq_bn_ws_floats(&b.l, n, 1);
    b.l.cache = (mpq_slice){0, ncache};
    float *val = mpq_bench_floats(2 * (size_t)c + 2), *grad = mpq_bench_floats(2 * (size_t)c + 2);
    float *state = mpq_bench_floats(2 * (size_t)c), *arena = mpq_bench_floats(ncache);
    float *ws = mpq_bench_floats(nws);
    b.io = mpq_bench_io_alloc(nx, nx);
    for (int i = 0; i < c; i++) {
        val[i] = 1.0f + 0.01f * (float)i, val[c + i] = 0.1f, grad[i] = grad[c + i] = 0.0f;
        state[i] = 0.0f, state[c + i] = 1.0f;
    }
    mpq_act act = {.kind = strcmp(kind, "relu6") ? MPQ_ACT_RELU : MPQ_ACT_RELU6,
                   .len = (size_t)hw * c};
    mpq_quant q;
    if (uq) {
        mpq_cfg cfg;
        mpq_cfg_defaults(&cfg);
        snprintf(cfg.aq.method, sizeof cfg.aq.method, "%s", "parametric_fp_d_xmax_relu");
        MPQ_ASSERT(!mpq_quant_setup(&q, &cfg.aq, 1, act.len), "bench_bn: quantizer setup");
        q.p = (mpq_slice){2 * (size_t)c, 2};
        mpq_quant_init_values(&q, &cfg.aq, cfg.aq.stepsize, val);
        act = (mpq_act){.kind = MPQ_ACT_QUANT, .len = act.len, .q = &q};
    }
    b.act = strcmp(kind, "none") ? &act : NULL;
    b.s = (mpq_step){.val = val,
                     .wq = val,
                     .grad = grad,
                     .state = state,
                     .arena = arena,
                     .ws = ws,
                     .ws_floats = nws,
                     .n = n,
                     .n_groups = 1,
                     .training = 1};
    const int reps = (int)(50e6 / (double)nx) + 1;
    forward(&b); /* warm, and the cache that backward reads */
    const double tf = best_of(reps, forward, &b), tb = best_of(reps, backward, &b);
    const double ts = best_of(reps, pass1, &b);
    printf("%d,%d,%d,%s,%.3f,%.3f,%.3f\n", n, hw, c, kind, tf * 1e9 / (double)nx,
           tb * 1e9 / (double)nx, ts * 1e9 / (double)nx);
    free(val), free(grad), free(state), free(arena), free(ws);
    mpq_bench_io_free(&b.io);
}

int main(int argc, char **argv)
{
    omp_set_num_threads(1);
    printf("n,hw,c,kind,forward_ns_per_element,backward_ns_per_element,pass1_ns_per_element\n");
    if (argc > 1) {
        MPQ_ASSERT((argc - 1) % 4 == 0, "usage: bench_bn [N HW C KIND]...");
        for (int i = 1; i < argc; i += 4)
            run_shape(atoi(argv[i]), atoi(argv[i + 1]), atoi(argv[i + 2]), argv[i + 3]);
        return 0;
    }
    static const int shapes[][3] = {{128, 1024, 16}, {128, 256, 32}, {128, 64, 64},
                                    {4, 1024, 16},   {4, 256, 32},   {4, 64, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        run_shape(shapes[i][0], shapes[i][1], shapes[i][2], "relu");
    return 0;
}

/* `mpq bench`: images/s of full training steps and of forward-only steps on synthetic data, the
 * model's multiply-adds (2 FLOPs each), the achieved GFLOP/s against the BLIS sgemm peak measured
 * in the same run, peak resident memory, and the time per layer kind. Medians of timed steps after
 * a warm-up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "config.h"
#include "core/err.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "layers/loss.h"
#include "models/models.h"
#include "optim/optim.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpq bench --model M [--batch N] [--quant METHOD] [--threads T] [--steps K]\n"
            "                 [--size S] [--json]\n"
            "  M: resnet20 (32x32x3 input, 10 classes), resnet18, mobilenetv2 (224x224x3, 1000)\n"
            "  METHOD: a weight quantizer (e.g. parametric_fp_d_xmax); activations get its\n"
            "          _relu twin. Default: float.\n");
}

static double now(void) { return mpq_comm_wtime(); }

/* CPU seconds of the whole process (all threads): a busy, shared machine stretches the wall
 * time of a step but hardly its CPU time. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GFLOP/s of a large square sgemm with the current thread count. */
static double sgemm_peak(void)
{
    const int n = 1536;
    float *a = mpq_alloc_floats((size_t)n * n), *b = mpq_alloc_floats((size_t)n * n);
    float *c = mpq_alloc_floats((size_t)n * n);
    double best = 0.0;
    if (!a || !b || !c) goto out;
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 1e-3f * (float)(i % 1000);
    for (int r = 0; r < 4; r++) {
        double t0 = now();
        mpq_sgemm(MPQ_N, MPQ_N, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * (double)n / (now() - t0) / 1e9;
        if (r > 0 && g > best) best = g;
    }
out:
    free(a);
    free(b);
    free(c);
    return best;
}

int mpq_cli_bench(mpq_comm *c, int argc, char **argv)
{
    const char *model = NULL, *quant = "";
    int batch = 0, threads = 0, steps = 10, size = 0, json = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            batch = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--quant") && i + 1 < argc) {
            quant = argv[++i];
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            size = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "mpq bench: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!model || steps < 1) {
        usage(stderr);
        return 2;
    }
    int imagenet = strcmp(model, "resnet18") == 0 || strcmp(model, "mobilenetv2") == 0;
    if (!size) size = imagenet ? 224 : 32;
    if (!batch) batch = imagenet ? 32 : 128;
    char line[256];
    threads = mpq_comm_bind(c, threads, line, sizeof line);
    mpq_gemm_set_threads(threads);

    mpq_cfg cfg;
    mpq_cfg_defaults(&cfg);
    snprintf(cfg.wq.method, sizeof cfg.wq.method, "%s", quant);
    if (*quant && strcmp(quant, "none"))
        snprintf(cfg.aq.method, sizeof cfg.aq.method, "%s_relu", quant);
    mpq_model m;
    mpq_model_desc d = {model, "b", 0};
    mpq_model_init(&m, size, size, 3, imagenet ? 1000 : 10, &cfg.wq, &cfg.aq, 0.9f);
    rc = mpq_model_build(&m, &d);
    if (rc == 0) rc = mpq_model_plan(&m, batch);
    if (rc < 0) {
        mpq_model_free(&m);
        return mpq_cli_report("bench", rc);
    }
    mpq_model_init_values(&m, 1, 0);
    size_t in_len = (size_t)batch * size * size * 3, nf = m.params.n_floats;
    int *labels = calloc((size_t)batch, sizeof *labels);
    float *prob = mpq_alloc_floats((size_t)batch * m.num_classes);
    double *t_train = calloc((size_t)steps, sizeof(double)), *t_fwd = calloc((size_t)steps, 8);
    if (!labels || !prob || !t_train || !t_fwd) {
        rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
        goto out;
    }
    mpq_rng r;
    mpq_rng_seed(&r, 1, MPQ_RNG_STREAM_SYNTHETIC, 0);
    float *x = mpq_model_input(&m);
    for (size_t i = 0; i < in_len; i++) x[i] = 2.0f * mpq_rng_uniform(&r) - 1.0f;
    for (int i = 0; i < batch; i++) labels[i] = (int)mpq_rng_below(&r, (uint64_t)m.num_classes);

    mpq_step s = mpq_model_step(&m, batch, 1);
    double cpu_train = 0.0;            /* CPU seconds of the timed training steps */
    for (int k = -2; k < steps; k++) { /* two warm-up steps */
        if (k == 0) {
            mpq_model_reset_times(&m);
            cpu_train = cpu_now();
        }
        double t0 = now();
        int wrong;
        memset(m.params.grad, 0, nf * sizeof(float));
        mpq_model_forward(&m, &s);
        mpq_softmax_ce_forward(batch, m.num_classes, mpq_model_logits(&m), labels, prob, &wrong);
        mpq_softmax_ce_backward(batch, m.num_classes, prob, labels, 1.0f / batch,
                                mpq_model_dlogits(&m));
        mpq_model_backward(&m, &s, NULL, NULL);
        mpq_weight_decay(nf, 2e-4f, m.params.val, m.params.grad);
        mpq_sgd_step(nf, 1e-3f, 0.9f, m.params.val, m.params.grad, m.params.opt[0]);
        mpq_model_project(&m);
        if (k >= 0) t_train[k] = now() - t0;
    }
    cpu_train = cpu_now() - cpu_train;
    double fwd_cls[MPQ_CLASSES], bwd_cls[MPQ_CLASSES];
    mpq_model_class_times(&m, fwd_cls, bwd_cls);
    mpq_step se = mpq_model_step(&m, batch, 0);
    for (int k = -1; k < steps; k++) {
        double t0 = now();
        mpq_model_forward(&m, &se);
        if (k >= 0) t_fwd[k] = now() - t0;
    }
    double peak = sgemm_peak();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double train_ips = batch / median(t_train, steps), fwd_ips = batch / median(t_fwd, steps);
    double train_ips_cpu = (double)batch * steps / cpu_train; /* per CPU second: per busy core */
    double macs_img = mpq_model_macs(&m);                     /* forward multiply-adds per image */
    double gflop_img = 2.0 * macs_img / 1e9;                  /* a multiply-add is 2 FLOPs */
    double achieved = 3.0 * gflop_img * train_ips, achieved_fwd = gflop_img * fwd_ips;
    if (mpq_comm_rank(c) != 0) goto out;
    if (json) {
        printf("{\"model\": \"%s\", \"batch\": %d, \"quant\": \"%s\", \"threads\": %d, "
               "\"train_images_per_s\": %.2f, \"train_images_per_cpu_s\": %.2f, "
               "\"forward_images_per_s\": %.2f, "
               "\"m_multiply_adds_per_image\": %.1f, \"gflops_per_image\": %.4f, "
               "\"achieved_gflops\": %.2f, "
               "\"forward_gflops\": %.2f, \"peak_gflops\": %.2f, \"peak_rss_mb\": %.1f}\n",
               model, batch, *quant ? quant : "float", threads, train_ips, train_ips_cpu, fwd_ips,
               macs_img / 1e6, gflop_img, achieved, achieved_fwd, peak, ru.ru_maxrss / 1024.0);
    } else {
        printf("%s\n", line);
        printf("model %s  batch %d  input %dx%dx3  quant %s  threads %d\n", model, batch, size,
               size, *quant ? quant : "float", threads);
        printf("training : %8.2f img/s  (median of %d steps, %.3f s/step); %.2f img per CPU "
               "second\n",
               train_ips, steps, batch / train_ips, train_ips_cpu);
        printf("forward  : %8.2f img/s\n", fwd_ips);
        printf("work     : %.1f M multiply-adds = %.3f GFLOP per image forward (x3 for a "
               "training step)\n",
               macs_img / 1e6, gflop_img);
        printf("achieved : %.1f GFLOP/s training, %.1f GFLOP/s forward\n", achieved, achieved_fwd);
        printf("sgemm    : %.1f GFLOP/s peak (1536^3, %d threads) -> training %.0f%%, forward "
               "%.0f%% of peak\n",
               peak, threads, 100.0 * achieved / peak, 100.0 * achieved_fwd / peak);
        printf("memory   : %.1f MB peak resident\n", ru.ru_maxrss / 1024.0);
        printf("time per layer kind (ms per training step): forward / backward\n");
        for (int k = 0; k < MPQ_CLASSES; k++)
            printf("  %-12s %9.2f %9.2f\n", mpq_layer_class_name((mpq_layer_class)k),
                   1e3 * fwd_cls[k] / steps, 1e3 * bwd_cls[k] / steps);
    }
out:
    free(labels);
    free(prob);
    free(t_train);
    free(t_fwd);
    mpq_model_free(&m);
    return rc < 0 ? mpq_cli_report("bench", rc) : 0;
}

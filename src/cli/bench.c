/* `mpq bench`: images/s of the trainer's own training step (train/step.h: data, forward, loss,
 * backward, size model and penalties, weight decay, quantizer-gradient clipping, optimizer,
 * projections; under mpirun with the gradient allreduce) and of forward-only steps on synthetic
 * data, the model's multiply-adds, the achieved GFLOP/s against the BLIS sgemm peak measured in
 * the same run, peak resident memory, and the time per layer kind. Medians of timed steps after
 * a warm-up. With --quant the budgets are the model's homogeneous sizes at the initial bitwidths
 * (as the paper's budgets are), so the clipping and the penalties run as in a budgeted run;
 * --cfg benches an experiment of a .cfg file as it is (its data replaced by synthetic data). With
 * --timeline FILE it also writes the step's profile for the performance model (perf/profile.h):
 * forward, backward and update seconds and when each gradient run became final in backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "config.h"
#include "core/args.h"
#include "core/clock.h"
#include "core/err.h"
#include "kernels/gemm.h"
#include "models/models.h"
#include "optim/optim.h"
#include "perf/profile.h"
#include "train.h"
#include "train/step.h"

static const char usage[] =
    "usage: mpq bench --model M [--batch N] [--quant METHOD] [--threads T] [--steps K]\n"
    "                 [--size S] [--set key=value]... [--json] [--timeline FILE]\n"
    "       mpq bench --cfg FILE EXPERIMENT [--set key=value]... [--steps K] [--json]\n"
    "  M: resnet20 (32x32x3 input, 10 classes), resnet18, mobilenetv2 (224x224x3, 1000)\n"
    "  METHOD: a weight quantizer (e.g. parametric_fp_d_xmax); activations get its _relu\n"
    "          twin, and the budgets are the initial homogeneous sizes. Default: float\n"
    "          (none quantized; also --quant float or --quant none).\n"
    "  The step is the trainer's (mpq train): under mpirun the global batch N is split\n"
    "  over the ranks and the gradients are allreduced.\n"
    "  --timeline FILE: the step profile for `mpq predict` (forward, backward, update\n"
    "          seconds; when each gradient run is final during backward)\n";

typedef struct bench_opts {
    const char *model, *quant, *cfg[2], *timeline;
    int batch, threads, steps, size, json;
    mpq_strlist sets;
} bench_opts;

/* GFLOP/s of a large square sgemm with the current thread count. */
static double sgemm_peak(void)
{
    const int n = 1536;
    float *a = mpq_alloc_floats((size_t)n * n), *b = mpq_alloc_floats((size_t)n * n);
    float *c = mpq_alloc_floats((size_t)n * n);
    double best = 0.0;
    if (!a || !b || !c) goto out;
    for (size_t i = 0; i < (size_t)n * n; i++)
        a[i] = b[i] = 1e-3f * (float)(i % 1000);
    for (int r = 0; r < 4; r++) {
        double t0 = mpq_comm_wtime();
        mpq_sgemm(MPQ_N, MPQ_N, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * (double)n / (mpq_comm_wtime() - t0) / 1e9;
        if (r > 0 && g > best) best = g;
    }
out:
    free(a);
    free(b);
    free(c);
    return best;
}

/* The configuration benched: an experiment of a file, or the defaults with --model/--quant; the
 * data is synthetic of the model's input size, enough samples for every step. */
static int bench_config(mpq_comm *c, const bench_opts *o, mpq_cfg *cfg)
{
    char *text = NULL, generated[1024];
    const char *path = o->cfg[0], *experiment = o->cfg[1];
    if (path) {
        MPQ_TRY(mpq_cli_read_text(c, path, &text));
    } else {
        int imagenet = !strcmp(o->model, "resnet18") || !strcmp(o->model, "mobilenetv2");
        int size = o->size ? o->size : imagenet ? 224 : 32;
        snprintf(generated, sizeof generated,
                 "[BENCH]\nmodel = %s\nshortcut_type = b\nsynthetic_height = %d\n"
                 "synthetic_width = %d\nnum_classes = %d\nbatch_size = %d\naugment = none\n"
                 "w_quantize = %s\na_quantize = %s%s\n",
                 o->model, size, size, imagenet ? 1000 : 10,
                 o->batch   ? o->batch
                 : imagenet ? 32
                            : 128,
                 o->quant, o->quant, *o->quant ? "_relu" : "");
        path = "(mpq bench)";
        experiment = "BENCH";
    }
    int rc =
        mpq_cli_parse_cfg(c, text ? text : generated, path, experiment, o->sets.v, o->sets.n, cfg);
    free(text);
    MPQ_TRY(rc);
    if (o->batch) cfg->batch_size = o->batch;
    if (o->threads) cfg->threads = o->threads;
    snprintf(cfg->train_data, sizeof cfg->train_data, "synthetic");
    cfg->synthetic_samples = cfg->batch_size * (o->steps + 4);
    return MPQ_OK;
}

/* Budgets at the sizes of the initial bitwidths (the paper's homogeneous-size budgets). */
static void homogeneous_budgets(mpq_trainstep *s)
{
    mpq_size_terms now;
    mpq_budget none = s->budget;
    none.target_w_kbytes = none.target_a_kbytes = -1.0f;
    mpq_model_size(s->m, &none, NULL, &now);
    if (s->budget.target_w_kbytes <= 0) s->budget.target_w_kbytes = (float)now.kbytes_w;
    if (s->budget.target_a_kbytes <= 0) s->budget.target_a_kbytes = (float)now.kbytes_a;
}

typedef struct bench_result {
    double train_ips, fwd_ips, gflop_img, peak, fwd_cls[MPQ_CLASSES], bwd_cls[MPQ_CLASSES];
    double train_ips_cpu; /* images per CPU second of the timed steps: per busy core */
    double budget_w, budget_a;
    int threads_end, thread_switches; /* the step's thread count at the end (threads_adapt) */
    mpq_profile prof; /* forward, backward, update medians; the timeline with --timeline */
} bench_result;

/* The medians of the step's parts (t: steps x {forward, backward, update}) and, when recorded,
 * the backward timeline into r->prof; rank 0 writes it to path. */
static int write_profile(mpq_comm *c, const mpq_cfg *cfg, const mpq_model *m,
                         const mpq_timeline *tl, double *t, int steps, const char *path,
                         bench_result *r)
{
    mpq_profile *p = &r->prof;
    p->image = cfg->synthetic_height;
    p->batch = cfg->batch_size / mpq_comm_size(c);
    p->threads = cfg->threads;
    p->params_floats = m->params.n_floats;
    p->state_floats = m->state.n_floats;
    snprintf(p->model, sizeof p->model, "%s", cfg->model);
    p->forward_s = mpq_median(t, steps);
    p->backward_s = mpq_median(t + steps, steps);
    p->update_s = mpq_median(t + 2 * (size_t)steps, steps);
    if (!path) return MPQ_OK;
    MPQ_TRY(mpq_timeline_to_profile(tl, p));
    return mpq_comm_rank(c) == 0 ? mpq_profile_write(p, path) : MPQ_OK;
}

/* Times `steps` training steps (after two warm-up steps) and `steps` forward-only passes. */
static int run_bench(mpq_comm *c, const mpq_cfg *cfg, int steps, int quantized,
                     const char *timeline, bench_result *r)
{
    mpq_timeline tl;
    double *t_part = calloc(3 * (size_t)steps, sizeof(double)); /* forward, backward, update */
    mpq_source *src = NULL;
    mpq_model m;
    mpq_trainstep s;
    mpq_batching b;
    mpq_step_stats st;
    double *t_train = calloc((size_t)steps, sizeof(double));
    double *t_fwd = calloc((size_t)steps, sizeof(double));
    memset(&m, 0, sizeof m);
    memset(&s, 0, sizeof s);
    memset(&tl, 0, sizeof tl);
    int rc = t_train && t_fwd && t_part ? MPQ_OK : MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    if (rc == 0) rc = mpq_batching_of(cfg, mpq_comm_size(c), &b);
    if (rc == 0)
        rc = mpq_train_source_open(cfg, "synthetic", 1, mpq_comm_rank(c), mpq_comm_size(c), &src);
    if (rc == 0)
        rc = mpq_train_model_build(cfg, src->info.h, src->info.w, src->info.c, cfg->num_classes,
                                   b.micro_n, &m);
    if (rc == 0) mpq_model_init_values(&m, (unsigned long)cfg->seed, 0);
    if (rc == 0) rc = mpq_trainstep_init(&s, cfg, c, &m, &b, src->max_local_batch);
    if (rc == 0 && timeline) rc = mpq_timeline_init(&tl, m.n_nodes, steps);
    rc = mpq_comm_agree(c, rc);
    if (rc == 0 && quantized) homogeneous_budgets(&s);
    r->budget_w = s.budget.target_w_kbytes;
    r->budget_a = s.budget.target_a_kbytes;
    float lr = cfg->initial_learning_rate;
    double cpu0 = 0.0;
    for (int k = -2; k < steps && rc == 0; k++) {
        if (k == 0) mpq_model_reset_times(&m);
        if (k == 0 && timeline) s.timeline = &tl;
        /* CPU time of all threads: a busy, shared machine stretches the wall time of a step but
         * hardly its CPU time */
        if (k == 0) cpu0 = mpq_clock_s(CLOCK_PROCESS_CPUTIME_ID);
        double t0 = mpq_comm_wtime();
        rc = mpq_trainstep_run(&s, src, lr, k + 2, &st);
        if (k < 0) continue;
        t_train[k] = mpq_comm_wtime() - t0;
        t_part[k] = st.t_forward;
        t_part[steps + k] = st.t_backward;
        t_part[2 * steps + k] = st.t_update;
    }
    r->train_ips_cpu = (double)cfg->batch_size / mpq_comm_size(c) * steps /
                       (mpq_clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0);
    r->threads_end = s.threads.cur;
    r->thread_switches = s.threads.switches;
    mpq_gemm_set_threads(s.threads.max); /* forward and peak: on every thread */
    if (rc == 0) rc = write_profile(c, cfg, &m, &tl, t_part, steps, timeline, r);
    if (rc == 0) {
        mpq_model_class_times(&m, r->fwd_cls, r->bwd_cls);
        mpq_step se = mpq_model_step(&m, b.micro_n, 0);
        for (int k = -1; k < steps; k++) {
            double t0 = mpq_comm_wtime();
            mpq_model_forward(&m, &se);
            if (k >= 0) t_fwd[k] = mpq_comm_wtime() - t0;
        }
        r->peak = sgemm_peak();
        r->train_ips = cfg->batch_size / mpq_median(t_train, steps);
        r->fwd_ips = b.micro_n / mpq_median(t_fwd, steps);
        r->gflop_img = 2.0 * mpq_model_macs(&m) / 1e9; /* a multiply-add is 2 FLOP */
    }
    mpq_trainstep_free(&s);
    mpq_model_free(&m);
    mpq_source_free(src);
    free(t_train);
    free(t_fwd);
    free(t_part);
    mpq_timeline_free(&tl);
    return rc;
}

static void print_result(const mpq_cfg *cfg, const bench_result *r, int steps, int threads,
                         int ranks, const char *bind, int json)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *quant = *cfg->wq.method ? cfg->wq.method : "float";
    double per_rank = r->train_ips / ranks;
    double achieved = 3.0 * r->gflop_img * per_rank, achieved_fwd = r->gflop_img * r->fwd_ips;
    if (json) {
        printf("{\"model\": \"%s\", \"batch\": %d, \"quant\": \"%s\", \"threads\": %d, "
               "\"ranks\": %d, \"train_images_per_s\": %.2f, \"train_images_per_cpu_s\": %.2f, "
               "\"forward_images_per_s\": %.2f, \"m_multiply_adds_per_image\": %.1f, "
               "\"gflops_per_image\": %.4f, \"achieved_gflops\": %.2f, "
               "\"forward_gflops\": %.2f, \"peak_gflops\": %.2f, \"peak_rss_mb\": %.1f, "
               "\"budget_w_kbytes\": %.3f, \"budget_a_kbytes\": %.3f, \"threads_end\": %d, "
               "\"thread_switches\": %d}\n",
               cfg->model, cfg->batch_size, quant, threads, ranks, r->train_ips, r->train_ips_cpu,
               r->fwd_ips, r->gflop_img / 2e-3, r->gflop_img, achieved, achieved_fwd, r->peak,
               ru.ru_maxrss / 1024.0, r->budget_w, r->budget_a, r->threads_end, r->thread_switches);
        return;
    }
    printf("%s\n", bind);
    printf("model %s  batch %d  input %dx%dx%d  quant %s  %d rank(s) x %d thread(s)\n", cfg->model,
           cfg->batch_size, cfg->synthetic_height, cfg->synthetic_width, cfg->synthetic_channels,
           quant, ranks, threads);
    if (r->budget_w > 0 || r->budget_a > 0)
        printf("budgets  : W %.2f KB, A %.2f KB (size model, penalties and clipping in the step)\n",
               r->budget_w, r->budget_a);
    printf("training : %8.2f img/s  (the trainer's step; median, %.3f s/step); %.2f img per CPU "
           "second per rank\n",
           r->train_ips, cfg->batch_size / r->train_ips, r->train_ips_cpu);
    printf("forward  : %8.2f img/s per rank\n", r->fwd_ips);
    if (r->thread_switches)
        printf("threads  : the step ended on %d of %d thread(s) after %d change(s) "
               "(threads_adapt: fewer ran faster)\n",
               r->threads_end, threads, r->thread_switches);
    printf("phases   : forward %.4f s, backward %.4f s, update %.4f s per training step\n",
           r->prof.forward_s, r->prof.backward_s, r->prof.update_s);
    printf("work     : %.1f M multiply-adds/image forward (%.3f GFLOP; x3 for a training step)\n",
           r->gflop_img / 2e-3, r->gflop_img);
    printf("achieved : %.1f GFLOP/s training, %.1f GFLOP/s forward (per rank)\n", achieved,
           achieved_fwd);
    printf("sgemm    : %.1f GFLOP/s peak (1536^3, %d threads) -> training %.0f%%, forward "
           "%.0f%% of peak\n",
           r->peak, threads, 100.0 * achieved / r->peak, 100.0 * achieved_fwd / r->peak);
    printf("memory   : %.1f MB peak resident\n", ru.ru_maxrss / 1024.0);
    printf("time per layer kind (ms per training step): forward / backward\n");
    for (int k = 0; k < MPQ_CLASSES; k++)
        printf("  %-12s %9.2f %9.2f\n", mpq_layer_class_name((mpq_layer_class)k),
               1e3 * r->fwd_cls[k] / steps, 1e3 * r->bwd_cls[k] / steps);
}

int mpq_cli_bench(mpq_comm *c, int argc, char **argv)
{
    const char *set_v[128];
    bench_opts o = {.quant = "", .steps = 10, .sets = {set_v, 0, 128}};
    const mpq_opt opts[] = {
        {"model", MPQ_OPT_STR, &o.model, 0, 0},       {"quant", MPQ_OPT_STR, &o.quant, 0, 0},
        {"batch", MPQ_OPT_INT, &o.batch, 1, 1 << 20}, {"threads", MPQ_OPT_INT, &o.threads, 1, 1024},
        {"steps", MPQ_OPT_INT, &o.steps, 1, 1 << 20}, {"size", MPQ_OPT_INT, &o.size, 8, 4096},
        {"json", MPQ_OPT_FLAG, &o.json, 0, 0},        {"set", MPQ_OPT_LIST, &o.sets, 0, 0},
        {"cfg", MPQ_OPT_PAIR, o.cfg, 0, 0},           {"timeline", MPQ_OPT_STR, &o.timeline, 0, 0},
    };
    mpq_argspec spec = {"mpq bench", usage, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0};
    int n_pos, rc = mpq_args_parse(&spec, argc, argv, &n_pos);
    if (rc) return rc == 1 ? 0 : rc;
    if (!o.model == !o.cfg[0])
        return mpq_args_usage_error(&spec, "give either --model or --cfg FILE EXPERIMENT");
    if (!strcmp(o.quant, "none") || !strcmp(o.quant, "float")) o.quant = "";

    mpq_cfg cfg;
    rc = bench_config(c, &o, &cfg);
    if (rc < 0) return mpq_cli_report("bench", rc);
    char bind[256];
    int threads = mpq_comm_bind(c, cfg.threads, bind, sizeof bind);
    mpq_gemm_set_threads(threads);
    bench_result r;
    memset(&r, 0, sizeof r);
    rc = run_bench(c, &cfg, o.steps, !o.cfg[0] && *o.quant, o.timeline, &r);
    if (rc == 0 && mpq_comm_rank(c) == 0)
        print_result(&cfg, &r, o.steps, threads, mpq_comm_size(c), bind, o.json);
    mpq_profile_free(&r.prof);
    return rc < 0 ? mpq_cli_report("bench", rc) : 0;
}

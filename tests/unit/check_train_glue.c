/* The trainer's glue against values known in advance, never one run against another alone: one
 * SGD step under a budget moves d and xmax by at most lr * |d| (the reference's clipping of the
 * quantizer gradients, with either budget) and its loss is loss1 plus the weighted penalties;
 * the first step's loss1 and train_err are the initial model's on the first batch; weight decay
 * reaches the weights and, only with decay_quant_params, the quantizer parameters, by exactly lr *
 * weight_decay * value; the first Adam step moves each parameter by lr; the lr column of steps.csv
 * is the schedule's value at every step (warmup, step decay, the reference's, cosine, and after a
 * resume); a resume from a mid-epoch checkpoint continues steps.csv, results.csv and validation.csv
 * exactly; validation counts every sample of a split that is not a multiple of the batch (the error
 * equals the one of each sample evaluated alone) and results.csv's train_err is the mean over each
 * epoch's steps, a partial last epoch too; the states validated within the budgets and the best
 * of them follow the reference's rule along a trajectory that crosses the budget. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/err.h"
#include "data.h"
#include "io/ckpt.h"
#include "mpi/comm.h"
#include "quant/quant.h"
#include "testutil.h"
#include "train.h"
#include "trainfix.h"

static mpq_comm *comm;
static char *tmp;

/* Trains experiment of text into <tmp>/<outdir> and fails the test on an error. */
static void train_ok(const char *text, const char *experiment, const char *outdir,
                     const char *resume, mpq_train_result *r)
{
    int rc = trainfix_run(comm, tmp, text, experiment, outdir, resume, r);
    ck_assert_msg(rc == 0, "[%s]: %s", experiment, mpq_errmsg());
}

static void cfg_ok(const char *text, const char *experiment, const char *outdir, mpq_cfg *c)
{
    int rc = trainfix_cfg(text, experiment, tmp, outdir, c);
    ck_assert_msg(rc == 0, "[%s]: %s", experiment, mpq_errmsg());
}

/* Trains the one-step section `name` of text into <tmp>/<name>: *c is its configuration, m0 (if
 * not NULL) the model before the step and m1 the model after it (its final checkpoint). */
static void train_one_step(const char *text, const char *name, mpq_cfg *c, mpq_model *m0,
                           mpq_model *m1)
{
    mpq_train_result r;
    cfg_ok(text, name, name, c);
    train_ok(text, name, name, NULL, &r);
    ck_assert_int_eq(r.steps, 1);
    if (m0) trainfix_initial_model(c, 1, m0);
    trainfix_checkpoint_model(comm, c, 1, 1, m1);
}

/* One sample's logits z (k classes) and label y: adds its cross-entropy to *ce; returns 1 if the
 * first arg-max is not y. */
static int score(const float *z, int k, int y, double *ce)
{
    int arg = 0;
    double sum = 0.0;
    for (int j = 1; j < k; j++)
        if (z[j] > z[arg]) arg = j;
    for (int j = 0; j < k; j++)
        sum += exp((double)z[j] - z[arg]);
    *ce += log(sum) + z[arg] - z[y];
    return arg != y;
}

/* ---- clipping of the quantizer gradients ---------------------------------------------------- */

/* One plain SGD step (momentum 0, no decay) under budgets far below the model's size, so the
 * penalty gradients of d and xmax are large: both budgets, or only one (either turns clipping
 * on). */
static const char clip_cfg[] =
    "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\n"
    "synthetic_samples = 32\nsynthetic_height = 8\nsynthetic_width = 8\n"
    "batch_size = 16\nmax_steps = 1\nseed = 5\noptimizer = sgd\n"
    "momentum = 0\nweight_decay = 0\nlr_schedule = constant\n"
    "initial_learning_rate = 0.01\n"
    "w_quantize = parametric_fp_d_xmax\n"
    "a_quantize = parametric_fp_d_xmax_relu\n"
    "initial_cost_lambda2 = 0.2\ninitial_cost_lambda3 = 0.3\n"
    "[CLIP]\ntarget_weight_kbytes = 0.5\ntarget_activation_kbytes = 0.05\n"
    "[CLIP_W]\ntarget_weight_kbytes = 0.5\n"
    "[CLIP_A]\ntarget_activation_kbytes = 0.05\n";

/* The step of section `name`: every d and xmax moved by at most lr * d (d before the step), many
 * by exactly that; steps.csv's loss is loss1 + lambda2 * loss2 + lambda3 * loss3. */
static void check_clipped_step(const char *name)
{
    mpq_cfg c;
    mpq_model m0, m1;
    train_one_step(clip_cfg, name, &c, &m0, &m1);
    const double lr = c.initial_learning_rate;
    int checked = 0, at_bound = 0;
    for (int i = 0; i < m0.n_quants; i++) {
        const mpq_quant *q = &m0.quants[i];
        if (q->method != MPQ_QMETHOD_FP_D_XMAX) continue;
        const double lim = m0.params.val[q->p.off]; /* |g_d|, |g_xmax| <= d before the step */
        for (int j = 0; j < 2; j++) {
            double before = m0.params.val[q->p.off + j], after = m1.params.val[q->p.off + j];
            double moved = fabs(after - before), bound = lr * lim;
            double slack = 4.0 * FLT_EPSILON * (fabs(before) + bound);
            ck_assert_msg(moved <= bound + slack,
                          "[%s] quantizer %d (%s), %s: moved by %.9g, more than lr * d = %.9g",
                          name, i, q->is_act ? "activation" : "weight", j ? "xmax" : "d", moved,
                          bound);
            at_bound += fabs(moved - bound) <= slack;
            checked++;
        }
    }
    ck_assert_int_eq(checked, 2 * m0.n_quants);
    /* the penalty pushes many gradients past the limit: those parameters move by exactly lr*d */
    ck_assert_msg(at_bound >= 8, "[%s] only %d of %d parameters moved by lr * d", name, at_bound,
                  checked);
    double v[10];
    ck_assert_int_eq(trainfix_read_csv(tmp, name, "steps.csv", 10, v, 1), 1);
    double want = v[4] + c.initial_cost_lambda2 * v[5] + c.initial_cost_lambda3 * v[6];
    ck_assert_msg(fabs(v[3] - want) <= 1e-6 * want,
                  "[%s] loss %.9g, loss1 + l2 * loss2 + l3 * "
                  "loss3 = %.9g",
                  name, v[3], want);
    ck_assert(v[c.target_weight_kbytes > 0 ? 5 : 6] > 0.0); /* the penalty is active */
    mpq_model_free(&m0);
    mpq_model_free(&m1);
}

START_TEST(test_glue_budget_step_moves_d_and_xmax_at_most_lr_times_d)
{
    check_clipped_step("CLIP");
    check_clipped_step("CLIP_W");
    check_clipped_step("CLIP_A");
}
END_TEST

/* ---- the metrics of a step ------------------------------------------------------------------ */

/* The first step's loss1 and train_err in steps.csv are those of the initial model on the first
 * batch of the epoch's order (training-mode BN), computed here sample by sample. */
START_TEST(test_glue_first_step_metrics_are_the_initial_models_on_the_first_batch)
{
    mpq_cfg c;
    mpq_model m;
    mpq_train_result r;
    mpq_source *train;
    cfg_ok(clip_cfg, "CLIP", "METRICS", &c);
    train_ok(clip_cfg, "CLIP", "METRICS", NULL, &r);
    const int n = c.batch_size;
    trainfix_initial_model(&c, n, &m);
    ck_assert_int_eq(mpq_train_source_open(&c, "synthetic", 1, 0, 1, &train), 0);
    int *y = calloc((size_t)n, sizeof *y), got = 0;
    ck_assert_int_eq(train->ops->seek(train, 0, 0), 0);
    ck_assert_int_eq(train->ops->next(train, mpq_model_input(&m), y, &got), 0);
    ck_assert_int_eq(got, n);
    mpq_step s = mpq_model_step(&m, n, 1);
    mpq_model_forward(&m, &s);
    int wrong = 0;
    double ce = 0.0;
    for (int i = 0; i < n; i++) {
        wrong += score(mpq_model_logits(&m) + (size_t)i * m.num_classes, m.num_classes, y[i], &ce);
    }
    free(y);
    mpq_source_free(train);
    mpq_model_free(&m);
    double v[10];
    ck_assert_int_eq(trainfix_read_csv(tmp, "METRICS", "steps.csv", 10, v, 1), 1);
    ck_assert_msg(v[7] == (double)wrong / n, "train_err %.9g, expected %d/%d", v[7], wrong, n);
    ck_assert_msg(fabs(v[4] - ce / n) <= 1e-6 * (ce / n), "loss1 %.9g, expected %.9g", v[4],
                  ce / n);
    ck_assert_int_gt(wrong, 0);
}
END_TEST

/* ---- which parameters weight decay reaches ------------------------------------------------- */

/* One plain SGD step, no budget (no clipping), without decay and with decay on all parameters or
 * on all but the quantizers' (strict_bools: 'false' reads as false, not as the reference's
 * Python bool() of the string). */
static const char decay_cfg[] = "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\n"
                                "synthetic_samples = 32\nsynthetic_height = 8\n"
                                "synthetic_width = 8\nbatch_size = 16\nmax_steps = 1\nseed = 6\n"
                                "optimizer = sgd\nmomentum = 0\nlr_schedule = constant\n"
                                "initial_learning_rate = 0.1\nstrict_bools = true\n"
                                "w_quantize = parametric_fp_d_xmax\n"
                                "a_quantize = parametric_fp_d_xmax_relu\n"
                                "[NONE]\nweight_decay = 0\n"
                                "[ALL]\nweight_decay = 0.1\ndecay_quant_params = true\n"
                                "[NOT_QUANT]\nweight_decay = 0.1\ndecay_quant_params = false\n";

/* Compares the step with decay (section `name`) to the one without: the same gradient, so
 * w_decay - w_none = -lr * weight_decay * w0 where decay applies and exactly 0 elsewhere. */
static void check_decay(const char *name, int quant_decays, const mpq_model *m0,
                        const mpq_model *none)
{
    mpq_cfg c;
    mpq_model m1;
    train_one_step(decay_cfg, name, &c, NULL, &m1);
    const double rate = (double)c.initial_learning_rate * c.weight_decay;
    int kinds_decayed[MPQ_PKIND_STATE + 1] = {0}, quant_checked = 0, quant_projected = 0;
    for (int i = 0; i < m0->params.n_info; i++) {
        const mpq_param_info *p = &m0->params.info[i];
        int decays = p->kind != MPQ_PKIND_QUANT || quant_decays;
        for (size_t k = p->s.off; k < p->s.off + p->s.n; k++) {
            double w0 = m0->params.val[k], wn = none->params.val[k], wd = m1.params.val[k];
            double expect = decays ? -rate * w0 : 0.0;
            double tol = decays ? 8.0 * FLT_EPSILON * (fabs(w0) + fabs(wn)) : 0.0;
            if (p->kind == MPQ_PKIND_QUANT && decays) {
                /* the projection onto the quantizer's range (the same in both runs) may stop
                 * the move at a bound: then both runs end on the same value */
                quant_checked++;
                if (wd == wn) {
                    quant_projected++;
                    continue;
                }
            }
            ck_assert_msg(fabs((wd - wn) - expect) <= tol,
                          "[%s] %s[%zu] (kind %d): w0 %.9g, without decay %.9g, with %.9g; "
                          "expected a difference of %.9g",
                          name, p->name, k - p->s.off, p->kind, w0, wn, wd, expect);
            if (w0 != 0.0 && decays) kinds_decayed[p->kind]++;
        }
    }
    ck_assert_int_gt(kinds_decayed[MPQ_PKIND_WEIGHT], 1000);
    ck_assert_int_gt(kinds_decayed[MPQ_PKIND_BN], 10);
    if (quant_decays) {
        ck_assert_int_gt(kinds_decayed[MPQ_PKIND_QUANT], 0);
        ck_assert_msg(quant_projected <= quant_checked / 4,
                      "[%s] %d of %d quantizer parameters "
                      "stopped at a bound",
                      name, quant_projected, quant_checked);
    }
    mpq_model_free(&m1);
}

START_TEST(test_glue_weight_decay_reaches_quantizers_only_when_configured)
{
    mpq_cfg c;
    mpq_model m0, none;
    train_one_step(decay_cfg, "NONE", &c, &m0, &none);
    check_decay("ALL", 1, &m0, &none);
    check_decay("NOT_QUANT", 0, &m0, &none);
    mpq_model_free(&m0);
    mpq_model_free(&none);
}
END_TEST

/* ---- the first Adam step ---------------------------------------------------------------- */

/* One Adam step, float model, no decay: m = (1 - b1) g, v = (1 - b2) g^2 and the step
 * lr * sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + eps) = lr * g / (|g| + eps / sqrt(1 - b2)). */
static const char adam_cfg[] = "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\n"
                               "synthetic_samples = 32\nsynthetic_height = 8\n"
                               "synthetic_width = 8\nbatch_size = 16\nmax_steps = 1\nseed = 12\n"
                               "optimizer = adam\nweight_decay = 0\nlr_schedule = constant\n"
                               "initial_learning_rate = 0.001\n[ADAM]\n";

START_TEST(test_glue_first_adam_step_moves_each_parameter_by_lr)
{
    mpq_cfg c;
    mpq_model m0, m1;
    train_one_step(adam_cfg, "ADAM", &c, &m0, &m1);
    const double lr = c.initial_learning_rate;
    size_t n = m0.params.n_floats, full = 0;
    for (size_t i = 0; i < n; i++) {
        double moved = fabs((double)m1.params.val[i] - m0.params.val[i]);
        double slack = 4.0 * FLT_EPSILON * fabs(m0.params.val[i]) + 1e-6 * lr;
        ck_assert_msg(moved <= lr + slack, "parameter %zu moved by %.9g > lr %.9g", i, moved, lr);
        full += fabs(moved - lr) <= 1e-3 * lr + slack; /* |g| >> eps / sqrt(1 - b2) */
    }
    ck_assert_msg(full >= n * 9 / 10, "%zu of %zu parameters moved by lr", full, n);
    mpq_model_free(&m0);
    mpq_model_free(&m1);
}
END_TEST

/* ---- the learning rate of every step -------------------------------------------------------- */

/* 64 samples in batches of 16: 4 steps per epoch, 6 epochs (24 steps). */
static const char lr_cfg[] =
    "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\nsynthetic_samples = 64\n"
    "synthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\nepochs = 6\nseed = 7\n"
    "initial_learning_rate = 0.04\nweight_decay = 0\ncheckpoint_every_steps = 5\n"
    "keep_checkpoints = 0\n"
    "[WARM_COSINE]\nlr_schedule = cosine\nwarmup_epochs = 1.5\n"
    "[WARM_STEP]\nlr_schedule = step\nwarmup_epochs = 0.5\nlr_decay_epochs = 1.75, 3, 4.5\n"
    "lr_decay_factor = 0.5\n"
    "[REFERENCE]\nlr_schedule = reference\n";

/* The schedule of optim.h written out for the sections of lr_cfg: W = warmup_epochs * 4 warmup
 * steps at lr * (step + 1) / W, then the section's schedule at epoch = step / 4. */
static double schedule_lr(const char *name, long step)
{
    const double lr = 0.04, spe = 4.0, epochs = 6.0, epoch = step / spe;
    if (!strcmp(name, "WARM_COSINE")) {
        const double warm = 6.0; /* 1.5 epochs */
        if (step < warm) return lr * (step + 1) / warm;
        return 0.5 * lr * (1.0 + cos(M_PI * (step - warm) / (epochs * spe - warm)));
    }
    if (!strcmp(name, "WARM_STEP")) {
        if (step < 2) return lr * (step + 1) / 2.0; /* 0.5 epochs */
        return lr * pow(0.5, (epoch >= 1.75) + (epoch >= 3.0) + (epoch >= 4.5));
    }
    /* the reference's: lr to half the epochs, lr/10 to three quarters, then lr/100 */
    return epoch < 3.0 ? lr : epoch < 4.5 ? lr / 10.0 : lr / 100.0;
}

/* Every row of <outdir>/steps.csv from first_step on has the schedule's lr of its step; returns
 * the number of rows. */
static int check_lr_column(const char *name, const char *outdir, long first_step)
{
    enum { COLS = 10, MAX_ROWS = 64 };
    double v[COLS * MAX_ROWS];
    int rows = trainfix_read_csv(tmp, outdir, "steps.csv", COLS, v, MAX_ROWS);
    for (int i = 0; i < rows; i++) {
        long step = (long)v[i * COLS];
        double want = (float)schedule_lr(name, step), got = v[i * COLS + 2];
        ck_assert_int_eq(step, first_step + i);
        ck_assert_int_eq((long)v[i * COLS + 1], step / 4);
        ck_assert_msg(fabs(got - want) <= 1e-6 * want,
                      "[%s] %s: step %ld has lr %.9g, the "
                      "schedule %.9g",
                      name, outdir, step, got, want);
    }
    return rows;
}

START_TEST(test_glue_steps_csv_lr_is_the_schedule_at_every_step)
{
    static const char *const names[] = {"WARM_COSINE", "WARM_STEP", "REFERENCE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        mpq_train_result r;
        char ckpt[4200], dir[4200], resumed[64];
        train_ok(lr_cfg, names[i], names[i], NULL, &r);
        ck_assert_int_eq(check_lr_column(names[i], names[i], 0), 24);
        /* resumed mid-schedule (after step 10, mid-epoch, in warmup's tail or between decays) */
        snprintf(dir, sizeof dir, "%s/%s", tmp, names[i]);
        mpq_ckpt_path(dir, 10, ckpt, sizeof ckpt);
        snprintf(resumed, sizeof resumed, "%s_RESUMED", names[i]);
        train_ok(lr_cfg, names[i], resumed, ckpt, &r);
        ck_assert_int_eq(check_lr_column(names[i], resumed, 10), 14);
    }
}
END_TEST

/* ---- resume from a mid-epoch checkpoint ----------------------------------------------------- */

/* 4 steps per epoch, checkpoints every 3 steps (3, 6 and 9 are mid-epoch), validation data, a
 * budget the model meets (validations between epoch ends, at most one per 2 steps), momentum,
 * warmup and cosine. */
static const char resume_cfg[] =
    "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\nval_data = synthetic\n"
    "synthetic_samples = 64\nsynthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\n"
    "val_batch_size = 16\nepochs = 3\nseed = 8\ninitial_learning_rate = 0.05\n"
    "lr_schedule = cosine\nwarmup_epochs = 0.5\n"
    "w_quantize = parametric_fp_d_xmax\na_quantize = parametric_fp_d_xmax_relu\n"
    "target_weight_kbytes = 1000\ntarget_activation_kbytes = 100\n"
    "budget_validate_every_steps = 2\ncheckpoint_every_steps = 3\nkeep_checkpoints = 0\n"
    "[MIDEPOCH]\n";

/* The data lines of <tmp>/<dir>/<name>, each cut after `fields` fields (all: 0), from the first
 * line whose step (first field) is at least from_step; at most cap lines of up to 511 bytes. */
static int read_lines(const char *dir, const char *name, int fields, long from_step,
                      char lines[][512], int cap)
{
    char path[4200], line[512];
    snprintf(path, sizeof path, "%s/%s/%s", tmp, dir, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (strtol(line, NULL, 10) < from_step) continue;
        ck_assert_int_lt(n, cap);
        char *p = line;
        for (int k = 0; fields > 0 && k < fields && p; k++)
            p = strchr(p + (k > 0), ',');
        if (fields > 0 && p) *p = '\0';
        snprintf(lines[n++], 512, "%s", line);
    }
    fclose(f);
    return n;
}

/* The lines of `file` from step from_step on are the same in <tmp>/MIDEPOCH and <tmp>/resumed. */
static void check_same_lines(const char *resumed, const char *file, int fields, long from_step)
{
    static char a[64][512], b[64][512];
    int na = read_lines("MIDEPOCH", file, fields, from_step, a, 64);
    int nb = read_lines(resumed, file, fields, from_step, b, 64);
    ck_assert_int_gt(na, 0);
    ck_assert_msg(na == nb, "%s/%s: %d lines uninterrupted, %d resumed", resumed, file, na, nb);
    for (int i = 0; i < na; i++)
        ck_assert_msg(!strcmp(a[i], b[i]), "%s/%s line %d: uninterrupted '%s', resumed '%s'",
                      resumed, file, i + 1, a[i], b[i]);
}

START_TEST(test_glue_resume_mid_epoch_reproduces_every_column)
{
    mpq_train_result r, rr;
    char dir[4200], ckpt[4200], resumed[64];
    train_ok(resume_cfg, "MIDEPOCH", "MIDEPOCH", NULL, &r);
    snprintf(dir, sizeof dir, "%s/MIDEPOCH", tmp);
    for (long at = 3; at < 12; at += 3) {
        mpq_ckpt_path(dir, at, ckpt, sizeof ckpt);
        mpq_ckpt_info in;
        ck_assert_int_eq(mpq_ckpt_read_info(comm, ckpt, &in), 0);
        ck_assert_int_eq(in.step_in_epoch, at % 4); /* mid-epoch: the running sums are not 0 */
        ck_assert_int_eq(in.epoch_n, at % 4);
        ck_assert(in.epoch_err > 0.0);
        mpq_ckpt_info_free(&in);
        snprintf(resumed, sizeof resumed, "MIDEPOCH_AT_%ld", at);
        train_ok(resume_cfg, "MIDEPOCH", resumed, ckpt, &rr);
        check_same_lines(resumed, "steps.csv", 0, at);
        check_same_lines(resumed, "validation.csv", 0, at);
        /* every column but the last (seconds, wall time) of every epoch's row */
        check_same_lines(resumed, "results.csv", 11, 0);
        ck_assert(r.checksum == rr.checksum);
        ck_assert(r.best_val_err == rr.best_val_err);
        ck_assert(r.train_err == rr.train_err);
    }
}
END_TEST

/* ---- validation covers every sample --------------------------------------------------------- */

/* 44 training samples (2 steps of 16 per epoch; 3 steps, so the last epoch has one), 11
 * validation samples in batches of 4 (4 + 4 + 3). */
static const char val_cfg[] = "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\n"
                              "val_data = synthetic\nsynthetic_samples = 44\n"
                              "synthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\n"
                              "val_batch_size = 4\nmax_steps = 3\nseed = 10\n"
                              "initial_learning_rate = 0.05\n[PARTIAL]\n";

START_TEST(test_glue_validation_counts_every_sample_of_a_partial_last_batch)
{
    mpq_cfg c;
    mpq_model m;
    mpq_train_result r;
    mpq_source *val;
    cfg_ok(val_cfg, "PARTIAL", "PARTIAL", &c);
    train_ok(val_cfg, "PARTIAL", "PARTIAL", NULL, &r);
    /* the state validated after the last step, each validation sample evaluated alone */
    trainfix_checkpoint_model(comm, &c, 3, 1, &m);
    c.val_batch_size = 1;
    ck_assert_int_eq(mpq_train_source_open(&c, "synthetic", 0, 0, 1, &val), 0);
    const long n = val->info.n_samples;
    ck_assert_int_eq(n, 11);
    ck_assert_int_eq(val->steps_per_epoch, n);
    size_t len = (size_t)m.in_h * m.in_w * m.in_c;
    float *x = malloc(len * sizeof *x);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(val->ops->seek(val, 0, 0), 0);
    int wrong = 0, wrong_in_last_batch = 0;
    double ce = 0.0;
    for (long i = 0; i < n; i++) {
        int y, got = 0;
        ck_assert_int_eq(val->ops->next(val, x, &y, &got), 0);
        ck_assert_int_eq(got, 1);
        mpq_step s = mpq_model_step(&m, 1, 0);
        memcpy(mpq_model_input(&m), x, len * sizeof *x);
        mpq_model_forward(&m, &s);
        int w = score(mpq_model_logits(&m), m.num_classes, y, &ce);
        wrong += w;
        if (i >= 8) wrong_in_last_batch += w;
    }
    free(x);
    mpq_source_free(val);
    mpq_model_free(&m);
    /* the last batch (3 samples) decides the result only if something in it is misclassified */
    ck_assert_int_gt(wrong_in_last_batch, 0);
    ck_assert_msg(r.val_err == (double)wrong / (double)n, "val err %.9g, expected %d/%ld",
                  r.val_err, wrong, n);
    double v[2 * 8];
    ck_assert_int_eq(trainfix_read_csv(tmp, "PARTIAL", "validation.csv", 8, v, 2), 2);
    ck_assert_int_eq((long)v[8], 2);
    ck_assert_msg(fabs(v[8 + 2] - r.val_err) <= 1e-8, "validation.csv: val_err %.9g", v[8 + 2]);
    ck_assert_msg(fabs(v[8 + 3] - ce / n) <= 1e-4 * (ce / n), "val loss %.9g, expected %.9g",
                  v[8 + 3], ce / n);
    /* results.csv: each epoch's train_err is the mean over its steps (1 in the last epoch) */
    double st[3 * 10], res[2 * 12];
    ck_assert_int_eq(trainfix_read_csv(tmp, "PARTIAL", "steps.csv", 10, st, 3), 3);
    ck_assert_int_eq(trainfix_read_csv(tmp, "PARTIAL", "results.csv", 12, res, 2), 2);
    ck_assert_msg(fabs(res[1] - (st[7] + st[10 + 7]) / 2) <= 1e-8, "epoch 1 train_err %.9g",
                  res[1]);
    ck_assert_msg(fabs(res[12 + 1] - st[20 + 7]) <= 1e-8, "epoch 2 train_err %.9g", res[12 + 1]);
    ck_assert_msg(fabs(res[12 + 2] - r.val_err) <= 1e-8, "results.csv val_err %.9g", res[12 + 2]);
    ck_assert_int_eq((long)res[0], 2);
    ck_assert_int_eq((long)res[12], 3);
}
END_TEST

/* ---- validation within the budgets, and the best state -------------------------------------- */

/* A weight budget below the initial size and a strong penalty: the learned bitwidths shrink, so
 * the states cross the budget during the run, and back (an epoch end over it between states
 * within it). [CROSS] validates states within the budgets at most every 7 steps (step 10, 7
 * after the last validation within them, not 3 after the epoch end over them), [CROSS_EPOCHS]
 * only at epoch ends (so the best state is saved there). */
static const char traj_cfg[] =
    "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\nval_data = synthetic\n"
    "synthetic_samples = 64\nsynthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\n"
    "val_batch_size = 16\nepochs = 4\nseed = 11\ninitial_learning_rate = 0.05\n"
    "w_quantize = parametric_fp_d_xmax\na_quantize = parametric_fp_d_xmax_relu\n"
    "target_weight_kbytes = 99\ninitial_cost_lambda2 = 1\n"
    "[CROSS]\nbudget_validate_every_steps = 7\n"
    "[CROSS_EPOCHS]\nbudget_validate_every_steps = 0\n";

/* Section `name` of traj_cfg: validation.csv has the epoch ends and the steps the rule picks
 * from the sizes in steps.csv (within the budget, and `every` steps after the last validation
 * within it), best flags on the strict improvements within the budget, and params_best.h5 is
 * the last best state. */
static void check_trajectory(const char *name)
{
    enum { SCOLS = 10, VCOLS = 8, MAX_ROWS = 64 };
    static double s[SCOLS * MAX_ROWS], v[VCOLS * MAX_ROWS];
    mpq_cfg c;
    mpq_train_result r;
    cfg_ok(traj_cfg, name, name, &c);
    train_ok(traj_cfg, name, name, NULL, &r);
    int steps = trainfix_read_csv(tmp, name, "steps.csv", SCOLS, s, MAX_ROWS);
    int vals = trainfix_read_csv(tmp, name, "validation.csv", VCOLS, v, MAX_ROWS);
    const long spe = 4, every = c.budget_validate_every_steps;
    const double target = c.target_weight_kbytes;
    ck_assert_int_eq(steps, 16);
    /* the rule, from the sizes: steps.csv's kbytes_w of step k+1 is the size after step k */
    int row = 0, n_within = 0, ends_over = 0;
    long last_within = -1, best_step = -1;
    double best = NAN;
    for (long k = 0; k < steps; k++) {
        int epoch_end = (k + 1) % spe == 0;
        int within = k + 1 < steps ? s[(k + 1) * SCOLS + 8] <= target : -1;
        int due =
            !epoch_end && every > 0 && within == 1 && (last_within < 0 || k - last_within >= every);
        n_within += within == 1;
        ends_over += epoch_end && within == 0;
        if (!epoch_end && !due) continue;
        ck_assert_msg(row < vals, "[%s] step %ld is not in validation.csv", name, k);
        const double *w = v + (size_t)row++ * VCOLS;
        ck_assert_msg((long)w[0] == k, "[%s] validation.csv row %d is step %ld, expected %ld", name,
                      row, (long)w[0], k);
        ck_assert_int_eq((long)w[1], k / spe + 1);
        if (within >= 0) {
            ck_assert_int_eq((int)w[6], within);
            ck_assert_msg(w[4] == s[(k + 1) * SCOLS + 8], "[%s] step %ld: kbytes_w %.9g vs %.9g",
                          name, k, w[4], s[(k + 1) * SCOLS + 8]);
        }
        int is_best = w[6] == 1 && (isnan(best) || w[2] < best);
        ck_assert_msg((int)w[7] == is_best, "[%s] step %ld: best flag %d, expected %d", name, k,
                      (int)w[7], is_best);
        if (is_best) best = w[2], best_step = k;
        if (w[6] == 1) last_within = k;
    }
    ck_assert_int_eq(row, vals);
    /* the trajectory is worth testing: an epoch end over the budget, states within it */
    ck_assert_int_gt(ends_over, 0);
    ck_assert_int_gt(n_within, 2);
    ck_assert(best_step >= 0);
    ck_assert(r.best_val_err == best);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s/%s", tmp, name, MPQ_CKPT_BEST);
    mpq_ckpt_info in;
    ck_assert_int_eq(mpq_ckpt_read_info(comm, path, &in), 0);
    ck_assert_int_eq(in.step, best_step + 1);
    mpq_ckpt_info_free(&in);
}

START_TEST(test_glue_budget_validations_and_best_state_follow_the_trajectory)
{
    check_trajectory("CROSS");
    check_trajectory("CROSS_EPOCHS");
}
END_TEST

/* One test case per concern, so that CK_RUN_CASE=<name> runs one (jobs/mutate.sh does). */
static Suite *glue_suite(void)
{
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"clip", test_glue_budget_step_moves_d_and_xmax_at_most_lr_times_d},
        {"metrics", test_glue_first_step_metrics_are_the_initial_models_on_the_first_batch},
        {"decay", test_glue_weight_decay_reaches_quantizers_only_when_configured},
        {"adam", test_glue_first_adam_step_moves_each_parameter_by_lr},
        {"lr", test_glue_steps_csv_lr_is_the_schedule_at_every_step},
        {"resume", test_glue_resume_mid_epoch_reproduces_every_column},
        {"validation", test_glue_validation_counts_every_sample_of_a_partial_last_batch},
        {"budget", test_glue_budget_validations_and_best_state_follow_the_trajectory},
    };
    Suite *s = suite_create("train_glue");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(int argc, char **argv) { return mpq_test_main_mpi(&argc, &argv, glue_suite, &comm, &tmp); }

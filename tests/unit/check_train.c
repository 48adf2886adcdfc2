/* The trainer, single process: a ResNet-20 overfits a small synthetic set, the same seed gives a
 * bit-identical steps.csv, states within the budgets are validated between epoch ends (as the
 * reference does) and the best of them is kept, and every experiment section of a
 * reference-style .cfg (float, fixed fp/pow2, the six parametric methods, budgets, scale_layer,
 * Adam) trains a few steps; quant_log_every_steps logs the values and gradients the updates
 * used. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/err.h"
#include "core/log.h"
#include "health.h"
#include "mpi/comm.h"
#include "testutil.h"
#include "train.h"
#include "trainfix.h"

static mpq_comm *comm;
static char *tmp;

static int run(const char *text, const char *experiment, const char *outdir, mpq_train_result *r)
{
    return trainfix_run(comm, tmp, text, experiment, outdir, NULL, r);
}

static const char overfit_cfg[] = "[DEFAULT]\n"
                                   "model = resnet20\n"
                                   "shortcut_type = b\n"
                                   "train_data = synthetic\n"
                                   "synthetic_samples = 64\n"
                                   "synthetic_height = 12\n"
                                   "synthetic_width = 12\n"
                                   "synthetic_channels = 3\n"
                                   "batch_size = 32\n"
                                   "initial_learning_rate = 0.05\n"
                                   "lr_schedule = constant\n"
                                   "epochs = 50\n"
                                   "seed = 3\n"
                                   "[OVERFIT]\n";

START_TEST(test_train_resnet20_overfits_small_set)
{
    mpq_train_result r;
    int rc = run(overfit_cfg, "OVERFIT", "overfit", &r);
    ck_assert_msg(rc == 0, "%s", mpq_errmsg());
    ck_assert_int_eq(r.steps, 100);
    ck_assert_msg(r.last_loss < r.first_loss / 10, "loss %g -> %g", r.first_loss, r.last_loss);
}
END_TEST

START_TEST(test_train_same_seed_gives_identical_steps_csv)
{
    mpq_train_result r;
    char p1[4200], p2[4200];
    const char *text = "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\nsynthetic_samples = 64\n"
                       "synthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\n"
                       "initial_learning_rate = 0.05\nmax_steps = 6\nseed = 9\n"
                       "w_quantize = parametric_fp_d_xmax\na_quantize = parametric_fp_d_xmax_relu\n"
                       "target_weight_kbytes = 50\ntarget_activation_kbytes = 0.5\n[A]\n";
    ck_assert_int_eq(run(text, "A", "det1", &r), 0);
    ck_assert_int_eq(run(text, "A", "det2", &r), 0);
    snprintf(p1, sizeof p1, "%s/det1/steps.csv", tmp);
    snprintf(p2, sizeof p2, "%s/det2/steps.csv", tmp);
    char *a = trainfix_slurp(p1), *b = trainfix_slurp(p2);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_gt(strlen(a), 100);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
}
END_TEST

/* A .cfg in the reference's style: [DEFAULT] plus one section per method. */
static const char reference_cfg[] =
    "[DEFAULT]\n"
    "num_layers = 20\n"
    "shortcut_type = b\n"
    "initial_learning_rate = 0.01\n"
    "w_bitwidth = 4\n"
    "a_bitwidth = 4\n"
    "train_data = synthetic\n"
    "val_data = synthetic\n"
    "synthetic_samples = 32\n"
    "synthetic_height = 8\n"
    "synthetic_width = 8\n"
    "batch_size = 16\n"
    "val_batch_size = 8\n"
    "max_steps = 2\n"
    "[FP32] # float baseline\n"
    "[FP_W4A4]\nw_quantize = fp\na_quantize = fp_relu\n"
    "[POW2_W4A4]\nw_quantize = pow2\na_quantize = pow2_relu\n"
    "[U1]\nw_quantize = parametric_fp_d_b\na_quantize = parametric_fp_d_b_relu\n"
    "[U2]\nw_quantize = parametric_fp_b_xmax\na_quantize = parametric_fp_b_xmax_relu\n"
    "[U3]\nw_quantize = parametric_fp_d_xmax\na_quantize = parametric_fp_d_xmax_relu\n"
    "[P1]\nw_quantize = parametric_pow2_b_xmax\na_quantize = parametric_pow2_b_xmax_relu\n"
    "[P2]\nw_quantize = parametric_pow2_b_xmin\na_quantize = parametric_pow2_b_xmin_relu\n"
    "[P3]\nw_quantize = parametric_pow2_xmin_xmax\na_quantize = parametric_pow2_xmin_xmax_relu\n"
    "[U3_W_ONLY]\nw_quantize = parametric_fp_d_xmax\n"
    "[U3_BUDGET]\nw_quantize = parametric_fp_d_xmax\na_quantize = parametric_fp_d_xmax_relu\n"
    "target_weight_kbytes = 70.1\ntarget_activation_kbytes = 8.1\n"
    "[P3_BUDGET_SUM]\nw_quantize = parametric_pow2_xmin_xmax\n"
    "a_quantize = parametric_pow2_xmin_xmax_relu\ntarget_weight_kbytes = 70.1\n"
    "target_activation_kbytes = 92.1\ntarget_activation_type = sum\n"
    "[U3_SCALE]\nw_quantize = parametric_fp_d_xmax\nscale_layer = True\n"
    "[U3_ADAM]\nw_quantize = parametric_fp_d_xmax\na_quantize = parametric_fp_d_xmax_relu\n"
    "optimizer = adam\ninitial_learning_rate = 0.001\n";

START_TEST(test_train_every_reference_section_trains)
{
    char *names = mpq_cfg_list_experiments(reference_cfg);
    ck_assert_ptr_nonnull(names);
    int count = 0;
    for (char *name = strtok(names, "\n"); name; name = strtok(NULL, "\n")) {
        mpq_train_result r;
        int rc = run(reference_cfg, name, name, &r);
        ck_assert_msg(rc == 0, "[%s]: %s", name, mpq_errmsg());
        ck_assert_int_eq(r.steps, 2);
        ck_assert_msg(isfinite(r.last_loss), "[%s]: loss %g", name, r.last_loss);
        ck_assert_msg(r.val_err >= 0.0 && r.val_err <= 1.0, "[%s]: val err %g", name, r.val_err);
        count++;
    }
    free(names);
    ck_assert_int_eq(count, 14);
}
END_TEST

/* validation.csv of a run: the steps validated, their within_budget flags, and the lowest
 * val_err among the states within the budgets. Returns the number of rows. */
static int read_validations(const char *dir, long steps[], int within[], int cap, double *best)
{
    char path[4200], line[512];
    snprintf(path, sizeof path, "%s/%s/validation.csv", tmp, dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "step,epoch,val_err,val_loss,kbytes_w,kbytes_a,within_budget,best\n");
    int n = 0;
    *best = NAN;
    while (fgets(line, sizeof line, f)) {
        long step, epoch;
        double err, ce, kw, ka;
        int in, is_best;
        ck_assert_int_eq(sscanf(line, "%ld,%ld,%lg,%lg,%lg,%lg,%d,%d", &step, &epoch, &err, &ce,
                                &kw, &ka, &in, &is_best),
                         8);
        ck_assert_int_lt(n, cap);
        steps[n] = step;
        within[n++] = in;
        if (in && (isnan(*best) || err < *best)) *best = err;
    }
    fclose(f);
    return n;
}

static int file_exists(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s/%s", tmp, dir, name);
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* 2 epochs of 4 steps; the budgets are met at every step (or never, in [OVER]). */
static const char budget_cfg[] =
    "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\nval_data = synthetic\n"
    "synthetic_samples = 64\nsynthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\n"
    "val_batch_size = 16\nepochs = 2\ninitial_learning_rate = 0.05\nseed = 4\n"
    "w_quantize = parametric_fp_d_xmax\na_quantize = parametric_fp_d_xmax_relu\n"
    "target_weight_kbytes = 1000\ntarget_activation_kbytes = 100\n"
    "[EVERY1]\nbudget_validate_every_steps = 1\n"
    "[EVERY3]\nbudget_validate_every_steps = 3\n"
    "[EPOCHS]\nbudget_validate_every_steps = 0\n"
    "[OVER]\ntarget_weight_kbytes = 0.01\n"
    "[ACT_ONLY]\ntarget_weight_kbytes = -1\n";

START_TEST(test_train_validates_steps_within_budget)
{
    const struct {
        const char *name;
        int n;
        long steps[8];
        int within;
    } cases[] = {
        {"EVERY1", 8, {0, 1, 2, 3, 4, 5, 6, 7}, 1},
        {"EVERY3", 4, {0, 3, 6, 7}, 1}, /* epoch ends (3, 7) always, others 3 steps apart */
        {"EPOCHS", 2, {3, 7}, 1},
        {"OVER", 2, {3, 7}, 0},     /* never within: only the epoch ends, no best state */
        {"ACT_ONLY", 2, {3, 7}, 1}, /* the reference needs a weight budget between epoch ends */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mpq_train_result r;
        long steps[16];
        int within[16];
        double best;
        int rc = run(budget_cfg, cases[c].name, cases[c].name, &r);
        ck_assert_msg(rc == 0, "[%s]: %s", cases[c].name, mpq_errmsg());
        int n = read_validations(cases[c].name, steps, within, 16, &best);
        ck_assert_int_eq(n, cases[c].n);
        for (int i = 0; i < n; i++) {
            ck_assert_int_eq(steps[i], cases[c].steps[i]);
            ck_assert_int_eq(within[i], cases[c].within);
        }
        if (cases[c].within) {
            ck_assert_msg(best == r.best_val_err, "[%s]: best %g vs %g", cases[c].name, best,
                          r.best_val_err);
            ck_assert(file_exists(cases[c].name, "params_best.h5"));
        } else {
            ck_assert(isnan(r.best_val_err));
            ck_assert(!file_exists(cases[c].name, "params_best.h5"));
        }
    }
}
END_TEST

/* Row `row` (-1: the last) of <tmp>/<dir>/<file> (a quantizer history: "epoch,<name>,..."):
 * its values after the epoch column into v. Returns how many. */
static int read_history_row(const char *dir, const char *file, int row, float *v, int cap)
{
    char path[4200], line[8192], last[8192] = "";
    snprintf(path, sizeof path, "%s/%s/%s", tmp, dir, file);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f)); /* header */
    for (int r = 0; fgets(line, sizeof line, f); r++)
        if (row < 0 || r == row) snprintf(last, sizeof last, "%s", line);
    fclose(f);
    int n = 0;
    for (char *p = strchr(last, ','); p && n < cap; p = strchr(p + 1, ','))
        v[n++] = strtof(p + 1, NULL);
    return n;
}

/* A chained experiment (weightfile = another quantized run's params_best.h5, as the reference's
 * *_FT runs): its quantizers start from the file's values (step 0 of its histories equals the
 * last row of the first run's, whose state params_best.h5 holds), not from find_delta; a float
 * run's file gives a model with scale_layer the scale 1. */
START_TEST(test_train_chained_weightfile_keeps_quantizer_values)
{
    static const char base[] =
        "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\nval_data = synthetic\n"
        "synthetic_samples = 32\nsynthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\n"
        "val_batch_size = 16\nmax_steps = 2\ninitial_learning_rate = 0.05\nseed = 6\n"
        "w_quantize = parametric_fp_d_xmax\na_quantize = parametric_fp_d_xmax_relu\n"
        "scale_layer = True\n"
        "[FLOAT]\nw_quantize = None\na_quantize = None\nscale_layer =\n"
        "[INIT]\nweightfile = %s/chain-FLOAT/params_best.h5\n"
        "[FT]\nweightfile = %s/chain-INIT/params_best.h5\ninitial_learning_rate = 0.01\n";
    static const char *const runs[] = {"FLOAT", "INIT", "FT"};
    static const char *const hist[] = {"res_d_w.csv", "res_max_w.csv", "res_d_a.csv",
                                       "res_max_a.csv"};
    char *text = malloc(sizeof base + 2 * strlen(tmp));
    sprintf(text, base, tmp, tmp);
    for (int i = 0; i < 3; i++) {
        mpq_train_result r;
        char dir[64];
        snprintf(dir, sizeof dir, "chain-%s", runs[i]);
        int rc = run(text, runs[i], dir, &r);
        ck_assert_msg(rc == 0, "[%s]: %s", runs[i], mpq_errmsg());
        ck_assert(file_exists(dir, "params_best.h5"));
    }
    for (size_t h = 0; h < sizeof hist / sizeof hist[0]; h++) {
        float parent[64], child[64];
        int n = read_history_row("chain-INIT", hist[h], -1, parent, 64);
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(read_history_row("chain-FT", hist[h], 0, child, 64), n);
        for (int i = 0; i < n; i++)
            ck_assert_msg(parent[i] == child[i], "%s column %d: %a vs %a", hist[h], i,
                          (double)parent[i], (double)child[i]);
    }
    free(text);
}
END_TEST

/* The quantizer of the model named `name`, or -1. */
static int quant_index(const mpq_model *m, const char *name)
{
    for (int i = 0; i < m->n_quants; i++)
        if (!strcmp(m->qinfo[i].name, name)) return i;
    return -1;
}

/* quant_log_every_steps = 2 over 5 steps: quant.csv has rows after steps 0, 2 and 4 (the last),
 * one per learnable value and one with the bitwidth of every quantizer; after step 0 each value
 * is its initial value minus lr times the logged gradient, projected into its bounds (SGD from
 * zero momentum: the logged gradient is the one the update used), and after the last step the
 * values and bitwidths are those of the final checkpoint. Off (the default): no quant.csv. */
START_TEST(test_train_quant_log_values_and_gradients)
{
    static const char text[] =
        "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\nsynthetic_samples = 32\n"
        "synthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\nmax_steps = 5\n"
        "initial_learning_rate = 0.05\nlr_schedule = constant\nseed = 4\n"
        "checkpoint_every_steps = 5\nw_quantize = parametric_fp_d_b\n"
        "a_quantize = parametric_fp_d_xmax_relu\nquant_log_every_steps = 2\n[Q]\n"
        "[OFF]\nquant_log_every_steps = 0\n";
    mpq_train_result r;
    ck_assert_msg(run(text, "Q", "qlog", &r) == 0, "%s", mpq_errmsg());
    mpq_cfg c;
    mpq_model m0, m5;
    ck_assert_int_eq(trainfix_cfg(text, "Q", tmp, "qlog", &c), 0);
    trainfix_initial_model(&c, 16, &m0);
    trainfix_checkpoint_model(comm, &c, 5, 16, &m5);
    int per_step = 0, n_q = 0;
    for (int i = 0; i < m0.n_quants; i++)
        if (m0.quants[i].method != MPQ_QMETHOD_NONE) {
            per_step += mpq_qmethod_n_params(m0.quants[i].method) + 1;
            n_q++;
        }
    ck_assert_int_gt(per_step, 20);

    char path[4200], *text_csv, *save = NULL;
    snprintf(path, sizeof path, "%s/qlog/quant.csv", tmp);
    text_csv = trainfix_slurp(path);
    ck_assert_ptr_nonnull(text_csv);
    int rows[5] = {0}, checked_sgd = 0, checked_final = 0, nonzero_grads = 0;
    char *line = strtok_r(text_csv, "\n", &save);
    ck_assert_str_eq(line, "step,quantizer,side,param,value,grad");
    while ((line = strtok_r(NULL, "\n", &save))) {
        long step;
        char name[128], side, param[32];
        double value, grad = NAN;
        int n = sscanf(line, "%ld,%127[^,],%c,%31[^,],%lf,%lf", &step, name, &side, param, &value,
                       &grad);
        ck_assert_msg(n >= 5 && step >= 0 && step < 5, "bad line '%s'", line);
        rows[step]++;
        int qi = quant_index(&m0, name);
        ck_assert_msg(qi >= 0, "unknown quantizer in '%s'", line);
        const mpq_quant *q = &m0.quants[qi];
        ck_assert_int_eq(side, q->is_act ? 'a' : 'w');
        if (!strcmp(param, "bits")) {
            ck_assert_int_eq(n, 5);
            if (step == 4) {
                ck_assert_double_eq(value, mpq_quant_bitwidth(&m5.quants[qi], m5.params.val));
                checked_final++;
            }
            continue;
        }
        ck_assert_int_eq(n, 6);
        int k = !strcmp(param, mpq_qmethod_param_name(q->method, 0)) ? 0 : 1;
        ck_assert_str_eq(param, mpq_qmethod_param_name(q->method, k));
        size_t at = q->p.off + (size_t)k;
        if (step == 0) { /* the SGD step from the initial value, then the projection */
            float *v = m0.params.val;
            float keep[2] = {v[q->p.off], v[q->p.off + 1]};
            v[at] = (float)((double)v[at] - 0.05 * grad);
            mpq_quant_project(q, v);
            double want = (double)v[at];
            v[q->p.off] = keep[0];
            v[q->p.off + 1] = keep[1];
            ck_assert_msg(fabs(value - want) <= 1e-6 * (1.0 + fabs(want)),
                          "%s %s: %.9g, want %.9g (%.9g - 0.05 * %.9g, projected)", name, param,
                          value, want, (double)keep[k], grad);
            checked_sgd++;
            nonzero_grads += grad != 0.0;
        }
        if (step == 4) {
            ck_assert_double_eq((float)value, m5.params.val[at]);
            checked_final++;
        }
    }
    ck_assert_int_eq(rows[0], per_step);
    ck_assert_int_eq(rows[1], 0);
    ck_assert_int_eq(rows[2], per_step);
    ck_assert_int_eq(rows[3], 0);
    ck_assert_int_eq(rows[4], per_step);
    ck_assert_int_eq(checked_final, per_step);
    ck_assert_int_eq(checked_sgd, per_step - n_q);
    ck_assert_int_gt(2 * nonzero_grads, checked_sgd); /* the check above is not vacuous */
    free(text_csv);
    mpq_model_free(&m0);
    mpq_model_free(&m5);

    ck_assert_int_eq(run(text, "OFF", "qlog-off", &r), 0);
    ck_assert(file_exists("qlog-off", "steps.csv"));
    ck_assert(!file_exists("qlog-off", "quant.csv"));
}
END_TEST

START_TEST(test_train_diverging_run_stops_with_message)
{
    mpq_train_result r;
    const char *text = "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\nsynthetic_samples = 32\n"
                       "synthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\n"
                       "initial_learning_rate = 1e30\nmax_steps = 20\n[NAN]\n";
    int rc = run(text, "NAN", "nan", &r);
    ck_assert_int_eq(rc, MPQ_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "diverged"));
}
END_TEST

/* The trainer's NaN/Inf check: due every check_finite_every_steps steps and at the end, agreed
 * over the ranks, naming the experiment, the step and the tensor; a fresh start over an earlier
 * run's checkpoints is refused. */
START_TEST(test_train_finite_check_names_the_tensor)
{
    mpq_cfg c;
    mpq_model m;
    ck_assert_int_eq(mpq_cfg_parse_text("[F]\nmodel = resnet20\ncheck_finite_every_steps = 4\n",
                                        "f.cfg", "F", &c),
                     0);
    ck_assert_int_eq(mpq_train_model_build(&c, 8, 8, 3, 10, 2, &m), 0);
    mpq_model_init_values(&m, 1, 0);
    ck_assert_int_eq(mpq_health_check_step(comm, &c, &m, 4, 0), 0);
    int i = mpq_params_find(&m.params, "res2/layer1/basicblock1/bn/beta");
    ck_assert_int_ge(i, 0);
    m.params.val[m.params.info[i].s.off + 2] = -INFINITY;
    ck_assert_int_eq(mpq_health_check_step(comm, &c, &m, 3, 0), 0); /* not due */
    ck_assert_int_eq(mpq_health_check_step(comm, &c, &m, 8, 0), MPQ_E_NUMERIC);
    ck_assert_msg(strstr(mpq_errmsg(), "[F] after step 8: parameter tensor "
                                       "'res2/layer1/basicblock1/bn/beta' holds -inf at element 2"),
                  "%s", mpq_errmsg());
    ck_assert_int_eq(mpq_health_check_step(comm, &c, &m, 9, 1), MPQ_E_NUMERIC); /* the end */
    c.check_finite_every_steps = 0;
    ck_assert_int_eq(mpq_health_check_step(comm, &c, &m, 8, 0), 0);
    mpq_model_free(&m);

    mpq_train_result r;
    const char *text = "[DEFAULT]\nmodel = resnet20\ntrain_data = synthetic\nsynthetic_samples = 32\n"
                       "synthetic_height = 8\nsynthetic_width = 8\nbatch_size = 16\nmax_steps = 1\n"
                       "checkpoint_every_steps = 1\n[AGAIN]\n";
    ck_assert_int_eq(run(text, "AGAIN", "again", &r), 0);
    ck_assert_int_eq(run(text, "AGAIN", "again", &r), MPQ_E_CONFIG);
    ck_assert_msg(strstr(mpq_errmsg(), "--resume auto") && strstr(mpq_errmsg(), "--restart"), "%s",
                  mpq_errmsg());
}
END_TEST

static Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_train_resnet20_overfits_small_set);
    tcase_add_test(tc, test_train_same_seed_gives_identical_steps_csv);
    tcase_add_test(tc, test_train_every_reference_section_trains);
    tcase_add_test(tc, test_train_validates_steps_within_budget);
    tcase_add_test(tc, test_train_chained_weightfile_keeps_quantizer_values);
    tcase_add_test(tc, test_train_diverging_run_stops_with_message);
    tcase_add_test(tc, test_train_finite_check_names_the_tensor);
    suite_add_tcase(s, tc);
    TCase *tq = tcase_create("quant_log"); /* CK_RUN_CASE=quant_log runs it alone */
    tcase_set_timeout(tq, 300);
    tcase_add_test(tq, test_train_quant_log_values_and_gradients);
    suite_add_tcase(s, tq);
    return s;
}

int main(int argc, char **argv)
{
    return mpq_test_main_mpi(&argc, &argv, train_suite, &comm, &tmp);
}

/* `mpq inspect FILE [--config]`: what a checkpoint, parameter file or exported model holds: its
 * run position, the layer table (method, parameters, bitwidth, elements, KB) with totals against
 * the budgets, and the metric history. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/args.h"
#include "core/err.h"
#include "io/export.h"
#include "report.h"
#include "train.h"

static const char usage[] =
    "usage: mpq inspect FILE [--config]\n"
    "Prints the step, epoch and data position of a checkpoint (or params_best.h5, or\n"
    "an exported model), its layer table with totals against the budgets, and its\n"
    "metric history; --config also prints the stored configuration.\n";

static void print_header(const char *file, const mpq_ckpt_info *in)
{
    printf("%s: %s of experiment [%s], model %s (%dx%dx%d inputs, %d classes)\n", file, in->kind,
           in->experiment, in->model, in->in_h, in->in_w, in->in_c, in->num_classes);
    printf("step %ld: epoch %ld, step %ld of %ld in it (next data position); seed %ld; "
           "written by %d rank(s); optimizer %s, lr %.6g\n",
           in->step, in->epoch, in->step_in_epoch, in->steps_per_epoch, in->seed, in->n_ranks,
           in->optimizer, in->lr);
    if (!isnan(in->best_val_err))
        printf("best validation error within budget: %.2f%%\n", 100.0 * in->best_val_err);
}

static void print_history(const mpq_ckpt_info *in)
{
    printf("metric history (%d row(s)):\n%s\n", in->history_rows, in->history_columns);
    for (int r = 0; r < in->history_rows; r++)
        for (int k = 0; k < in->history_cols; k++)
            printf("%.9g%s", in->history[(size_t)r * in->history_cols + k],
                   k + 1 < in->history_cols ? "," : "\n");
}

static int print_export(mpq_comm *c, const char *file)
{
    mpq_export_entry *e;
    int n, packed, fold_bn;
    MPQ_TRY(mpq_export_table(c, file, &e, &n, &packed, &fold_bn));
    double kb = 0.0;
    if (mpq_comm_rank(c) == 0) {
        printf("%-52s %-8s %-26s %5s %6s %10s %9s %s\n", "tensor", "kind", "method", "bits",
               "stored", "elements", "KB", "step / exp_min");
        for (int i = 0; i < n; i++) {
            printf("%-52s %-8s %-26s %5d %6d %10ld %9.2f ", e[i].name, e[i].kind, e[i].method,
                   e[i].bits, e[i].stored_bits, e[i].elements, e[i].kbytes);
            if (!strcmp(e[i].kind, "uniform"))
                printf("%.6g", e[i].step);
            else if (!strcmp(e[i].kind, "pow2"))
                printf("2^%d", e[i].exp_min);
            printf("%s\n", e[i].folded ? "  (BN folded)" : "");
            if (strcmp(e[i].kind, "float")) kb += e[i].kbytes;
        }
        printf("quantized weights: %.2f KB at the learned bitwidths%s%s\n", kb,
               packed ? ", bit-packed" : "", fold_bn ? ", BN folded" : "");
    }
    free(e);
    return MPQ_OK;
}

int mpq_cli_inspect(mpq_comm *c, int argc, char **argv)
{
    const char *file = NULL;
    int config = 0, rank = mpq_comm_rank(c), rc, n_pos;
    const mpq_opt opts[] = {{"config", MPQ_OPT_FLAG, &config, 0, 0}};
    mpq_argspec spec = {"mpq inspect", usage, opts, 1, &file, 1};
    rc = mpq_args_parse(&spec, argc, argv, &n_pos);
    if (rc) return rc == 1 ? 0 : rc;
    if (!file) return mpq_args_usage_error(&spec, "FILE is needed");
    mpq_ckpt_info info;
    rc = mpq_ckpt_read_info(c, file, &info);
    if (rc < 0) return mpq_cli_report("inspect", rc);
    if (rank == 0) print_header(file, &info);
    if (!strcmp(info.kind, "export")) {
        rc = print_export(c, file);
    } else {
        mpq_cli_model lm;
        rc = mpq_cli_model_load(c, file, NULL, 0, 0, 0, 0, 1, &lm);
        if (rc == 0 && rank == 0) {
            mpq_budget budget = mpq_train_budget(&lm.cfg);
            mpq_report_table(stdout, &lm.m, &budget);
        }
        mpq_cli_model_free(&lm);
    }
    if (rc == 0 && rank == 0) {
        print_history(&info);
        if (config) printf("configuration:\n%s", info.config);
    }
    mpq_ckpt_info_free(&info);
    return rc < 0 ? mpq_cli_report("inspect", rc) : 0;
}

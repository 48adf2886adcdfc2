/* `mpq train --cfg FILE EXPERIMENT [--set key=value]... [--resume auto|FILE]`: rank 0 reads the
 * .cfg file and broadcasts its bytes, every rank parses the same text, errors are agreed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config.h"
#include "core/args.h"
#include "core/err.h"
#include "train.h"

static const char usage[] =
    "usage: mpq train --cfg FILE EXPERIMENT [--set key=value]... [--resume auto|FILE | --restart]\n"
    "       mpq train --cfg FILE --list        (the experiments of FILE)\n"
    "       mpq train --cfg FILE --list-paths  (per experiment, DEFAULT first: name,\n"
    "                 output_dir, weightfile, w_quantize, tab-separated, '-' if empty)\n"
    "       mpq train --help-keys              (every configuration key)\n"
    "Trains EXPERIMENT (a section of FILE; keys missing there come from [DEFAULT]).\n"
    "--resume auto: continue from the newest checkpoint in <output_dir>/checkpoints\n"
    "               (or start at step 0 if there is none); --resume FILE: from FILE.\n"
    "Without --resume, an output_dir holding checkpoints of an earlier run is refused;\n"
    "--restart starts at step 0 anyway and removes them.\n"
    "SIGUSR1/SIGTERM: checkpoint at the next step and exit with status 75.\n"
    "Run distributed with `mpirun -np N mpq train ...`.\n";

/* Rank 0 prints "name<TAB>output_dir<TAB>weightfile<TAB>w_quantize" of one experiment, '-' for
 * an empty value. Returns 0 or the parse error. */
static int print_path(mpq_comm *c, const char *text, const char *cfg_path, const char *name,
                      const char *const *sets, int n_sets)
{
    mpq_cfg cfg;
    int rc = mpq_cli_parse_cfg(c, text, cfg_path, name, sets, n_sets, &cfg);
    if (rc == MPQ_E_CONFIG && !strcmp(name, "DEFAULT")) /* e.g. no model in [DEFAULT] */
        rc = mpq_cfg_parse_text(text, cfg_path, name, &cfg);
    if (rc < 0) return rc;
    if (mpq_comm_rank(c) == 0)
        printf("%s\t%s\t%s\t%s\n", name, cfg.output_dir[0] ? cfg.output_dir : "-",
               cfg.weightfile[0] ? cfg.weightfile : "-", cfg.wq.method[0] ? cfg.wq.method : "-");
    return 0;
}

/* DEFAULT, then every experiment of names (newline-separated): what jobs/chain.sh needs to follow
 * the weightfile chains. */
static int print_paths(mpq_comm *c, const char *text, const char *cfg_path, char *names,
                       const char *const *sets, int n_sets)
{
    char *save = NULL;
    MPQ_TRY(print_path(c, text, cfg_path, "DEFAULT", sets, n_sets));
    for (char *n = strtok_r(names, "\n", &save); n; n = strtok_r(NULL, "\n", &save))
        MPQ_TRY(print_path(c, text, cfg_path, n, sets, n_sets));
    return 0;
}

/* The final state's accuracy on val_data (never a selected state's) and sizes against the budgets;
 * then the best validated state within the budgets, which that split chose. */
static void print_final(const mpq_cfg *cfg, const mpq_train_result *res)
{
    int budgets = cfg->target_weight_kbytes > 0 || cfg->target_activation_kbytes > 0;
    if (res->val_err == res->val_err) {
        printf("val_data accuracy %.2f%% (error %.2f%%) of the final state",
               100.0 * (1.0 - res->val_err), 100.0 * res->val_err);
        if (res->best_val_err == res->best_val_err)
            printf("; best validated state%s: %.2f%%", budgets ? " within the budgets" : "",
                   100.0 * (1.0 - res->best_val_err));
        else /* no validation ended within the budgets */
            printf("; no validated state within the budgets");
        printf("\n");
    }
    printf("weights %.2f KB", res->size.kbytes_w);
    if (cfg->target_weight_kbytes > 0) printf(" (budget %.2f KB)", cfg->target_weight_kbytes);
    printf(", activations %.2f KB (%s", res->size.kbytes_a, cfg->target_activation_type);
    if (cfg->target_activation_kbytes > 0)
        printf("; budget %.2f KB", cfg->target_activation_kbytes);
    printf(")");
    if (budgets)
        printf(": the final state is %s",
               res->within_budget ? "within the budgets" : "NOT within the budgets");
    printf("\n");
}

int mpq_cli_train(mpq_comm *c, int argc, char **argv)
{
    const char *cfg_path = NULL, *experiment = NULL, *resume = NULL, *set_v[128];
    mpq_strlist sets = {set_v, 0, 128};
    int list = 0, paths = 0, help_keys = 0, restart = 0, rank = mpq_comm_rank(c), rc = MPQ_OK, n_pos;
    const mpq_opt opts[] = {
        {"cfg", MPQ_OPT_STR, &cfg_path, 0, 0},         {"set", MPQ_OPT_LIST, &sets, 0, 0},
        {"resume", MPQ_OPT_STR, &resume, 0, 0},        {"list", MPQ_OPT_FLAG, &list, 0, 0},
        {"list-paths", MPQ_OPT_FLAG, &paths, 0, 0},    {"help-keys", MPQ_OPT_FLAG, &help_keys, 0, 0},
        {"restart", MPQ_OPT_FLAG, &restart, 0, 0},
    };
    mpq_argspec spec = {"mpq train", usage, opts, (int)(sizeof opts / sizeof opts[0]),
                        &experiment, 1};
    rc = mpq_args_parse(&spec, argc, argv, &n_pos);
    if (rc) return rc == 1 ? 0 : rc;
    if (paths) list = 1;
    if (help_keys) {
        if (rank == 0) mpq_cfg_print_keys(stdout);
        return 0;
    }
    if (!cfg_path || (!experiment && !list))
        return mpq_args_usage_error(&spec, "--cfg FILE and an EXPERIMENT (or --list) are needed");
    if (restart && resume) return mpq_args_usage_error(&spec, "--restart and --resume exclude each other");

    char *text = NULL;
    rc = mpq_cli_read_text(c, cfg_path, &text);
    if (rc < 0) return mpq_cli_report("train", rc);
    if (list) {
        char *names = mpq_cfg_list_experiments(text);
        if (paths && names)
            rc = print_paths(c, text, cfg_path, names, sets.v, sets.n);
        else if (rank == 0 && names)
            printf("%s", names);
        free(names);
        free(text);
        return rc < 0 ? mpq_cli_report("train", rc) : 0;
    }

    mpq_cfg cfg;
    rc = mpq_cli_parse_cfg(c, text, cfg_path, experiment, sets.v, sets.n, &cfg);
    if (rc < 0) {
        free(text);
        return mpq_cli_report("train", rc);
    }
    mpq_train_opts o = {.resume = resume, .restart = restart};
    mpq_train_result res;
    rc = mpq_train(c, &cfg, &o, &res);
    free(text);
    if (rc == MPQ_E_INTERRUPTED) { /* not an error: the job is requeued and resumes */
        if (rank == 0) fprintf(stderr, "mpq train: %s\n", mpq_errmsg());
        return rc;
    }
    if (rc < 0) return mpq_cli_report("train", rc);
    if (rank == 0) {
        printf("done: %ld steps in %.1f s (%.0f img/s); final loss %.4f (first %.4f)\n", res.steps,
               res.seconds, res.images_per_s, res.last_loss, res.first_loss);
        print_final(&cfg, &res);
    }
    return 0;
}

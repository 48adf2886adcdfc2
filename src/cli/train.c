/* `mpq train --cfg FILE EXPERIMENT [--set key=value]... [--resume auto|FILE]`: rank 0 reads the
 * .cfg file and broadcasts its bytes, every rank parses the same text, errors are agreed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config.h"
#include "core/err.h"
#include "train.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mpq train --cfg FILE EXPERIMENT [--set key=value]... [--resume auto|FILE]\n"
               "       mpq train --cfg FILE --list        (the experiments of FILE)\n"
               "       mpq train --help-keys              (every configuration key)\n"
               "Trains EXPERIMENT (a section of FILE; keys missing there come from [DEFAULT]).\n"
               "--resume auto: continue from the newest checkpoint in <output_dir>/checkpoints\n"
               "               (or start at step 0 if there is none); --resume FILE: from FILE.\n"
               "SIGUSR1/SIGTERM: checkpoint at the next step and exit with status 75.\n"
               "Run distributed with `mpirun -np N mpq train ...`.\n");
}

int mpq_cli_train(mpq_comm *c, int argc, char **argv)
{
    const char *cfg_path = NULL, *experiment = NULL, *resume = NULL;
    const char *sets[128];
    int n_sets = 0, list = 0, rank = mpq_comm_rank(c), rc = MPQ_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (rank == 0) usage(stdout);
            return 0;
        } else if (!strcmp(a, "--help-keys")) {
            if (rank == 0) mpq_cfg_print_keys(stdout);
            return 0;
        } else if (!strcmp(a, "--list")) {
            list = 1;
        } else if (!strcmp(a, "--cfg") && i + 1 < argc) {
            cfg_path = argv[++i];
        } else if (!strcmp(a, "--set") && i + 1 < argc && n_sets < 128) {
            sets[n_sets++] = argv[++i];
        } else if (!strcmp(a, "--resume") && i + 1 < argc) {
            resume = argv[++i];
        } else if (a[0] != '-' && !experiment) {
            experiment = a;
        } else {
            if (rank == 0) {
                fprintf(stderr, "mpq train: unexpected argument '%s'\n", a);
                usage(stderr);
            }
            return 2;
        }
    }
    if (!cfg_path || (!experiment && !list)) {
        if (rank == 0) usage(stderr);
        return 2;
    }

    char *text = NULL;
    rc = mpq_cli_read_text(c, cfg_path, &text);
    if (rc < 0) return mpq_cli_report("train", rc);
    if (list) {
        char *names = mpq_cfg_list_experiments(text);
        if (rank == 0 && names) printf("%s", names);
        free(names);
        free(text);
        return 0;
    }

    mpq_cfg cfg;
    rc = mpq_cli_parse_cfg(c, text, cfg_path, experiment, sets, n_sets, &cfg);
    if (rc < 0) {
        free(text);
        return mpq_cli_report("train", rc);
    }
    mpq_train_opts o = {.resume = resume};
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
        if (res.val_err == res.val_err && res.best_val_err == res.best_val_err)
            printf("test accuracy %.2f%% (error %.2f%%); best within budget: %.2f%%\n",
                   100.0 * (1.0 - res.val_err), 100.0 * res.val_err,
                   100.0 * (1.0 - res.best_val_err));
        else if (res.val_err == res.val_err) /* no epoch ended within the budgets */
            printf("test accuracy %.2f%% (error %.2f%%); no epoch ended within the budgets\n",
                   100.0 * (1.0 - res.val_err), 100.0 * res.val_err);
        printf("weights %.2f KB, activations %.2f KB (%s)\n", res.size.kbytes_w,
               res.size.kbytes_a, cfg.target_activation_type);
    }
    return 0;
}

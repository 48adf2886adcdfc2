/* `mpq eval`: the error of a checkpoint, parameter file or exported model on a split, evaluated
 * distributed (each rank a slice of every batch, counts reduced; src/evaluate.h). The model and
 * its configuration come from the file, or from --cfg (then the file may also be an nnabla
 * parameter file, and defaults to the configuration's weightfile). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/args.h"
#include "core/err.h"
#include "evaluate.h"
#include "train.h"

static const char usage[] =
    "usage: mpq eval FILE [--data DIR|synthetic] [--batch N]\n"
    "       mpq eval --cfg CFG EXPERIMENT [--set key=value]... [FILE] [--data DIR]\n"
    "                [--batch N]\n"
    "Evaluates FILE (a checkpoint, params_best.h5 or an exported model; with --cfg\n"
    "also an nnabla parameter file, default: the configuration's weightfile) on the\n"
    "split DIR (default: the configuration's val_data). Distributed under mpirun.\n";

int mpq_cli_eval(mpq_comm *c, int argc, char **argv)
{
    const char *file = NULL, *cfg_pair[2] = {NULL, NULL}, *data = NULL, *set_v[128];
    mpq_strlist sets = {set_v, 0, 128};
    int batch = 0, rank = mpq_comm_rank(c), rc, n_pos;
    const mpq_opt opts[] = {
        {"cfg", MPQ_OPT_PAIR, cfg_pair, 0, 0},
        {"set", MPQ_OPT_LIST, &sets, 0, 0},
        {"data", MPQ_OPT_STR, &data, 0, 0},
        {"batch", MPQ_OPT_INT, &batch, 1, 1 << 24},
    };
    mpq_argspec spec = {"mpq eval", usage, opts, (int)(sizeof opts / sizeof opts[0]), &file, 1};
    rc = mpq_args_parse(&spec, argc, argv, &n_pos);
    if (rc) return rc == 1 ? 0 : rc;
    const char *cfg_path = cfg_pair[0], *experiment = cfg_pair[1];
    if (!file && !cfg_path)
        return mpq_args_usage_error(&spec, "FILE or --cfg CFG EXPERIMENT is needed");

    mpq_cfg cfg;
    mpq_ckpt_info info;
    mpq_cli_model lm;
    mpq_source *src = NULL;
    float *x = NULL;
    int *y = NULL;
    char *text = NULL;
    memset(&lm, 0, sizeof lm);
    memset(&info, 0, sizeof info);
    if (cfg_path) { /* the configuration decides the model */
        rc = mpq_cli_read_text(c, cfg_path, &text);
        if (rc == 0) rc = mpq_cli_parse_cfg(c, text, cfg_path, experiment, sets.v, sets.n, &cfg);
        if (rc == 0 && !file && !*cfg.weightfile)
            rc = mpq_comm_agree(c, MPQ_FAIL(MPQ_E_CONFIG,
                                            "[%s] no FILE and no weightfile to "
                                            "evaluate",
                                            cfg.experiment));
        if (rc == 0 && !file) file = cfg.weightfile;
    } else { /* the file's own configuration */
        rc = mpq_ckpt_read_info(c, file, &info);
        if (rc == 0)
            rc = mpq_comm_agree(c, mpq_cfg_parse_stored(info.config, file, info.experiment, &cfg));
    }
    if (rc < 0) goto out;
    if (batch > 0) cfg.val_batch_size = batch;
    if (!data) data = cfg.val_data;
    if (!*data) {
        rc = mpq_comm_agree(c,
                            MPQ_FAIL(MPQ_E_CONFIG, "no split to evaluate on ---> HINT: pass "
                                                   "--data DIR (a shard directory, or synthetic)"));
        goto out;
    }
    rc = mpq_comm_agree(c, mpq_train_source_open(&cfg, data, 0, rank, mpq_comm_size(c), &src));
    if (rc < 0) goto out;
    const mpq_data_info *in = &src->info;
    int classes = cfg.num_classes > 0 ? cfg.num_classes : in->num_classes;
    rc = mpq_cli_model_load(c, file, cfg_path ? &cfg : NULL, in->h, in->w, in->c, classes,
                            src->max_local_batch, &lm);
    if (rc == 0 && (lm.m.in_h != in->h || lm.m.in_w != in->w || lm.m.in_c != in->c))
        rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s' takes %dx%dx%d inputs but '%s' holds %dx%dx%d images",
                      file, lm.m.in_h, lm.m.in_w, lm.m.in_c, data, in->h, in->w, in->c);
    rc = mpq_comm_agree(c, rc);
    if (rc < 0) goto out;
    size_t len = (size_t)in->h * in->w * in->c;
    x = mpq_alloc_floats((size_t)src->max_local_batch * len);
    y = calloc((size_t)src->max_local_batch, sizeof *y);
    rc = mpq_comm_agree(c, x && y ? MPQ_OK : MPQ_FAIL(MPQ_E_NOMEM, "out of memory"));
    double err = 0.0, ce = 0.0;
    if (rc == 0) rc = mpq_evaluate(c, &lm.m, src, x, y, &err, &ce);
    if (rc == 0 && rank == 0) {
        mpq_size_terms size;
        mpq_budget budget = mpq_train_budget(&lm.cfg);
        mpq_model_size(&lm.m, &budget, NULL, &size);
        printf("%s on %s: %ld samples, %d rank(s)\n", file, data, in->n_samples, mpq_comm_size(c));
        printf("accuracy %.4f%%  error %.4f%%  cross-entropy %.6f\n", 100.0 * (1.0 - err),
               100.0 * err, ce);
        if (!lm.is_export)
            printf("weights %.2f KB, activations %.2f KB (%s)\n", size.kbytes_w, size.kbytes_a,
                   budget.act_sum ? "sum" : "max");
    }
out:
    free(x);
    free(y);
    free(text);
    mpq_source_free(src);
    mpq_cli_model_free(&lm);
    mpq_ckpt_info_free(&info);
    return rc < 0 ? mpq_cli_report("eval", rc) : 0;
}

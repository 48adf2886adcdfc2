/* `mpq export FILE -o MODEL.h5 [--pack] [--fold-bn]`: a checkpoint or parameter file as integer
 * codes at the learned bitwidths (io/export.h), written collectively. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/args.h"
#include "core/err.h"
#include "io/export.h"

static const char usage[] =
    "usage: mpq export FILE -o MODEL.h5 [--pack] [--fold-bn]\n"
    "Writes the quantized weights of FILE (a checkpoint or params_best.h5) as integer\n"
    "codes in the smallest integer type holding each tensor's learned bitwidth, with\n"
    "the step sizes / exponents that dequantize them, and the true packed size.\n"
    "  --pack     bit-pack the codes at their bitwidth\n"
    "  --fold-bn  fold each BN that follows a convolution into per-channel scales and\n"
    "             a bias (default: keep BN, which reproduces the accuracy exactly)\n";

int mpq_cli_export(mpq_comm *c, int argc, char **argv)
{
    const char *file = NULL, *out = NULL;
    mpq_export_opts o = {0, 0};
    int rank = mpq_comm_rank(c), rc, n_pos;
    const mpq_opt opts[] = {
        {"o", MPQ_OPT_STR, &out, 0, 0},
        {"pack", MPQ_OPT_FLAG, &o.pack, 0, 0},
        {"fold-bn", MPQ_OPT_FLAG, &o.fold_bn, 0, 0},
    };
    mpq_argspec spec = {"mpq export", usage, opts, (int)(sizeof opts / sizeof opts[0]), &file, 1};
    rc = mpq_args_parse(&spec, argc, argv, &n_pos);
    if (rc) return rc == 1 ? 0 : rc;
    if (!file || !out) return mpq_args_usage_error(&spec, "FILE and -o MODEL.h5 are needed");
    mpq_cli_model lm;
    double kb = 0.0;
    rc = mpq_cli_model_load(c, file, NULL, 0, 0, 0, 0, 1, &lm);
    if (rc == 0 && lm.is_export)
        rc = MPQ_FAIL(MPQ_E_ARG, "'%s' is already an exported model", file);
    rc = mpq_comm_agree(c, rc);
    if (rc == 0) rc = mpq_export_write(c, out, &lm.m.view, &lm.info, &o, &kb);
    if (rc == 0 && rank == 0)
        printf("exported %s (step %ld) to %s: weights %.2f KB at the learned bitwidths%s%s\n", file,
               lm.info.step, out, kb, o.pack ? ", bit-packed" : "", o.fold_bn ? ", BN folded" : "");
    mpq_cli_model_free(&lm);
    return rc < 0 ? mpq_cli_report("export", rc) : 0;
}

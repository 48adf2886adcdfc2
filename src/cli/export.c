/* `mpq export FILE -o MODEL.h5 [--pack] [--fold-bn]`: a checkpoint or parameter file as integer
 * codes at the learned bitwidths (io/export.h), written collectively. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/err.h"
#include "io/export.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mpq export FILE -o MODEL.h5 [--pack] [--fold-bn]\n"
               "Writes the quantized weights of FILE (a checkpoint or params_best.h5) as integer\n"
               "codes in the smallest integer type holding each tensor's learned bitwidth, with\n"
               "the step sizes / exponents that dequantize them, and the true packed size.\n"
               "  --pack     bit-pack the codes at their bitwidth\n"
               "  --fold-bn  fold each BN that follows a convolution into per-channel scales and\n"
               "             a bias (default: keep BN, which reproduces the accuracy exactly)\n");
}

int mpq_cli_export(mpq_comm *c, int argc, char **argv)
{
    const char *file = NULL, *out = NULL;
    mpq_export_opts o = {0, 0};
    int rank = mpq_comm_rank(c), rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (rank == 0) usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--pack")) {
            o.pack = 1;
        } else if (!strcmp(a, "--fold-bn")) {
            o.fold_bn = 1;
        } else if (a[0] != '-' && !file) {
            file = a;
        } else {
            if (rank == 0) {
                fprintf(stderr, "mpq export: unexpected argument '%s'\n", a);
                usage(stderr);
            }
            return 2;
        }
    }
    if (!file || !out) {
        if (rank == 0) usage(stderr);
        return 2;
    }
    mpq_cli_model lm;
    double kb = 0.0;
    rc = mpq_cli_model_load(c, file, NULL, 0, 0, 0, 0, 1, &lm);
    if (rc == 0 && lm.is_export)
        rc = MPQ_FAIL(MPQ_E_ARG, "'%s' is already an exported model", file);
    rc = mpq_comm_agree(c, rc);
    if (rc == 0) rc = mpq_export_write(c, out, &lm.m, &lm.info, &o, &kb);
    if (rc == 0 && rank == 0)
        printf("exported %s (step %ld) to %s: weights %.2f KB at the learned bitwidths%s%s\n", file,
               lm.info.step, out, kb, o.pack ? ", bit-packed" : "", o.fold_bn ? ", BN folded" : "");
    mpq_cli_model_free(&lm);
    return rc < 0 ? mpq_cli_report("export", rc) : 0;
}

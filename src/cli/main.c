/* The `mpq` command: dispatches verbs (prep, train, eval, export, inspect, bench, predict). MPI
 * is started once here for every verb; only main() exits. Exit status: 0 ok, 1 failure, 2 usage, 75
 * (EX_TEMPFAIL) when training stopped on a signal after writing a checkpoint (jobs requeue). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/err.h"
#include "mpi/comm.h"

#define MPQ_EXIT_INTERRUPTED 75 /* sysexits.h EX_TEMPFAIL: try again (requeue and resume) */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpq VERB [options]      (mpq VERB --help for details)\n"
            "\n"
            "  prep {idx|cifar10|imagefolder} ...   raw data -> HDF5 shards\n"
            "  train --cfg FILE EXPERIMENT [--set key=value]... [--resume auto|FILE]\n"
            "  eval ...        evaluate a checkpoint or an exported model on a split\n"
            "  export ...      integer codes at the learned bitwidths\n"
            "  inspect FILE    the layer table of a checkpoint\n"
            "  bench ...       images/s, GFLOP/s and the BLIS sgemm peak\n"
            "  predict ...     the performance model: images/s on N nodes of a network\n"
            "\n"
            "Run distributed as `mpirun -np N mpq train ...` or through jobs/*.sbatch.\n");
}

static const mpq_cli_cmd verbs[] = {
    {"prep", mpq_cli_prep},       {"train", mpq_cli_train},     {"eval", mpq_cli_eval},
    {"export", mpq_cli_export},   {"inspect", mpq_cli_inspect}, {"bench", mpq_cli_bench},
    {"predict", mpq_cli_predict},
};

int main(int argc, char **argv)
{
    mpq_comm *comm = NULL;
    int rc;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const mpq_cli_cmd *verb = mpq_cli_find(verbs, sizeof verbs / sizeof verbs[0], argv[1]);
    if (!verb) {
        fprintf(stderr, "mpq: unknown verb '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    if (mpq_comm_init(&argc, &argv, &comm) < 0) {
        fprintf(stderr, "mpq: %s\n", mpq_errmsg());
        return 1;
    }
    rc = verb->run(comm, argc - 1, argv + 1);
    mpq_comm_finalize(comm);
    return rc == 0 ? 0 : rc == 2 ? 2 : rc == MPQ_E_INTERRUPTED ? MPQ_EXIT_INTERRUPTED : 1;
}

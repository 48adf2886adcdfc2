/* `mpq prep {idx|cifar10|imagefolder} ...`: raw data sets -> HDF5 shard splits. Dispatches to the
 * converters of io/prep.h, which parse their own options; every rank takes part (imagefolder
 * shares the work, the others run on rank 0), and rank 0 prints a failure. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/err.h"
#include "io/prep.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mpq prep FORMAT [options]     (mpq prep FORMAT --help for details)\n"
               "\n"
               "  idx --images F --labels F -o DIR [--shards K] [--skip N] [--limit N] [--stats-from DIR]\n"
               "        MNIST-like IDX files (gzip or plain) -> one split\n"
               "  cifar10 --dir D -o DIR [--shards K]\n"
               "        CIFAR-10 binary batches -> DIR/train, DIR/val\n"
               "  imagefolder --dir D -o DIR --size S [--shards K] [--classes FILE]\n"
               "        class folders of JPEG files -> one split of S x S images (mpirun shares "
               "the work)\n");
}

static const mpq_cli_cmd formats[] = {
    {"idx", mpq_prep_idx_main},
    {"cifar10", mpq_prep_cifar10_main},
    {"imagefolder", mpq_prep_imagefolder_main},
};

int mpq_cli_prep(mpq_comm *c, int argc, char **argv)
{
    const int root = mpq_comm_rank(c) == 0;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (root) usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const mpq_cli_cmd *format = mpq_cli_find(formats, sizeof formats / sizeof formats[0], argv[1]);
    if (!format) {
        if (root) {
            fprintf(stderr, "mpq prep: unknown format '%s'\n", argv[1]);
            usage(stderr);
        }
        return 2;
    }
    int rc = format->run(c, argc - 1, argv + 1);
    return rc < 0 && root ? mpq_cli_report("prep", rc) : rc;
}

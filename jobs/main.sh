#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds mpq, converts Fashion-MNIST to
# HDF5 shards and trains a mixed-precision ResNet-20 (learned step sizes and ranges of weights
# and activations under memory budgets) on 2 MPI ranks. Prints the test accuracy, the learned
# per-layer bitwidths, the sizes against the budgets and the path of the bitwidth picture.
set -euo pipefail
cd "$(dirname "$0")/.."
bash jobs/install-deps.sh
bash jobs/build.sh
bash jobs/prep-fashion-mnist.sh
. jobs/env.sh
ranks=${MPQ_RANKS:-2}
exec mpirun -np "$ranks" --bind-to none build/mpq train --cfg configs/fashion_mnist.cfg \
    "${MPQ_EXPERIMENT:-MAIN}" "$@"

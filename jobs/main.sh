#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds mpq, converts Fashion-MNIST to
# HDF5 shards and trains a ResNet-20 on 2 MPI ranks the paper's way: a short float phase
# ([MAIN_FLOAT] of configs/fashion_mnist.cfg), then learned mixed precision ([MAIN]: learned step
# sizes and ranges of weights and activations) under memory budgets, starting from the float
# phase's final state (jobs/main-train.sh); both phases validate on 5000 training images held out
# from training. Prints the learned per-layer bitwidths, the sizes against the budgets, the path
# of the bitwidth picture and, last, the test accuracy of the float phase's final state and of
# the mixed-precision state the held-out split chose among those within both budgets.
# What a user edits: MPQ_RANKS (default 2); extra arguments go to both `mpq train` runs, e.g.
# `bash jobs/main.sh --set max_steps=100` (see jobs/main-train.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash jobs/install-deps.sh
bash jobs/build.sh
FMNIST_HELDOUT=5000 bash jobs/prep-fashion-mnist.sh
bash jobs/main-train.sh "$@"

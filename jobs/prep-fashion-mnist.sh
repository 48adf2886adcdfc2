#!/usr/bin/env bash
# Converts Debian's dataset-fashion-mnist (IDX, gzip) into HDF5 shards under data/fashion-mnist/
# (train with its own statistics, test normalised with the train statistics; with FMNIST_HELDOUT=N
# also a validation split held out from the training images). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
. jobs/env.sh
src=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
out=${FMNIST_OUT:-data/fashion-mnist}
[ -f "$src/train-images-idx3-ubyte.gz" ] || {
    echo "prep-fashion-mnist.sh: $src has no Fashion-MNIST ---> HINT: apt-get install dataset-fashion-mnist" >&2
    exit 1; }
"$mpq" prep idx --images "$src/train-images-idx3-ubyte.gz" --labels "$src/train-labels-idx1-ubyte.gz" \
    -o "$out/train" --shards 4
"$mpq" prep idx --images "$src/t10k-images-idx3-ubyte.gz" --labels "$src/t10k-labels-idx1-ubyte.gz" \
    -o "$out/test" --shards 1 --stats-from "$out/train"
# FMNIST_HELDOUT=N (e.g. 5000): also a validation split of the last N training images, held out
# for model selection (never the test set), train-heldout/ with the other 60000 - N, and
# test-heldout/: the test images normalised with train-heldout's statistics (what a network
# trained on train-heldout is tested on).
heldout=${FMNIST_HELDOUT:-0}
if [ "$heldout" -gt 0 ]; then
    "$mpq" prep idx --images "$src/train-images-idx3-ubyte.gz" \
        --labels "$src/train-labels-idx1-ubyte.gz" -o "$out/train-heldout" --shards 4 \
        --limit $((60000 - heldout))
    "$mpq" prep idx --images "$src/train-images-idx3-ubyte.gz" \
        --labels "$src/train-labels-idx1-ubyte.gz" -o "$out/val-heldout" --shards 1 \
        --skip $((60000 - heldout)) --stats-from "$out/train-heldout"
    "$mpq" prep idx --images "$src/t10k-images-idx3-ubyte.gz" \
        --labels "$src/t10k-labels-idx1-ubyte.gz" -o "$out/test-heldout" --shards 1 \
        --stats-from "$out/train-heldout"
fi

#!/usr/bin/env bash
# Converts Debian's dataset-fashion-mnist (IDX, gzip) into HDF5 shards under data/fashion-mnist/
# (train with its own statistics, test normalised with the train statistics). Idempotent.
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

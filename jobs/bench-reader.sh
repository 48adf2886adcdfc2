#!/usr/bin/env bash
# Reader benchmark: the reader's images/s per thread for 32x32 data and for 256x256 data read as
# 224x224 ImageNet crops, with each augmentation (tests/io/bench_reader), then whether training
# ever waits on it: ResNet-20 on a 32x32x3 split (CIFAR augmentation, batch 128), and ResNet-18 and
# MobileNetV2 on a 256x256x3 split read as 224x224 random-resized crops (ImageNet augmentation,
# the default views, batch 32) train on T ranks x 1 thread, and the data wait per step (max over
# ranks, from timing.csv, steps after the first) is reported as mean and max.
#   bash jobs/bench-reader.sh [STEPS]          (T = number of cores, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12}
. jobs/env.sh
make -C build -s tests/io/bench_reader >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "reader alone (one thread, no prefetch):"
build/tests/io/bench_reader
build/tests/io/bench_reader --make "$tmp/s32" 8192 32 4 10
build/tests/io/bench_reader --make "$tmp/s256" 1024 256 4 1000
cat > "$tmp/r.cfg" <<CFG
[DEFAULT]
max_steps = $steps
initial_learning_rate = 0.01
strict_bools = true
progress = false
threads = 1
[resnet20]
model = resnet20
shortcut_type = b
train_data = $tmp/s32
augment = cifar
batch_size = 128
[resnet18]
model = resnet18
train_data = $tmp/s256
augment = imagenet
batch_size = 32
[mobilenetv2]
model = mobilenetv2
train_data = $tmp/s256
augment = imagenet
batch_size = 32
CFG
echo
echo "training on $cores ranks x 1 thread, data wait per step (prefetching reader):"
printf '%-11s %-10s %9s %12s %14s %14s\n' model augment img/s compute_s data_wait_mean data_wait_max
for model in resnet20 resnet18 mobilenetv2; do
    out="$tmp/$model"
    mpirun -np "$cores" --bind-to none "$mpq" train --cfg "$tmp/r.cfg" "$model" \
        --set "output_dir=$out" > "$out.log" 2>&1 || { cat "$out.log"; exit 1; }
    awk -F, -v m="$model" -v a="$(sed -n "/^\[$model\]/,/^\[/s/^augment = //p" "$tmp/r.cfg")" '
        NR > 2 { n++; c += $2; d += $3; if ($3 > dmax) dmax = $3; r += $7 }
        END { printf "%-11s %-10s %9.1f %12.4f %12.1f us %11.1f us\n", m, a, r / n, c / n,
              1e6 * d / n, 1e6 * dmax }' "$out/timing.csv"
done

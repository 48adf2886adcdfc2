#!/usr/bin/env bash
# Data-parallel benchmark on one node: trains ResNet-20 (32x32, batch 128) and ResNet-18
# (224x224, batch 32) on synthetic data as 1 rank x T threads and as T ranks x 1 thread, and
# reports images/s (median step), the time per step spent computing, waiting for communication
# (all of it, and the part overlap did not hide), the bytes allreduced per step, next to
# a plain MPI_Allreduce of the same size (tests/bench/bench_allreduce); the 2-rank layout also
# runs in deterministic mode (virtual_shards = T, fixed-tree sums) to show what that mode costs.
#   bash jobs/bench-ranks.sh [STEPS]          (T = number of cores, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12}
. jobs/env.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/b.cfg" <<CFG
[DEFAULT]
train_data = synthetic
synthetic_channels = 3
max_steps = $steps
initial_learning_rate = 0.01
strict_bools = true
progress = false
[resnet20]
model = resnet20
shortcut_type = b
synthetic_samples = 2048
synthetic_height = 32
synthetic_width = 32
batch_size = 128
[resnet18]
model = resnet18
synthetic_samples = 512
synthetic_height = 224
synthetic_width = 224
batch_size = 32
CFG
# median of a timing.csv column over the steps after the first two (warm-up)
median() { awk -F, -v c="$2" 'NR > 3 { print $c }' "$1" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-9s %-30s %8s %9s %9s %9s %9s %8s\n' model layout img/s compute_s data_s comm_wait \
    exposed MB/step
for model in resnet20 resnet18; do
    for layout in "1 $cores default" "$cores 1 default" "$cores 1 deterministic"; do
        set -- $layout
        out="$tmp/$model-$1x$2-$3"
        det=(); [ "$3" = default ] || det=(--set deterministic=true --set "virtual_shards=$cores")
        mpirun -np "$1" --bind-to none "$mpq" train --cfg "$tmp/b.cfg" "$model" \
            --set "output_dir=$out" --set "threads=$2" "${det[@]}" > "$out.log" 2>&1 ||
            { cat "$out.log"; exit 1; }
        printf '%-9s %-30s %8.1f %9.4f %9.4f %9.4f %9.4f %8.2f\n' "$model" "$1 rank x $2 thr, $3" \
            "$(median "$out/timing.csv" 7)" "$(median "$out/timing.csv" 2)" \
            "$(median "$out/timing.csv" 3)" "$(median "$out/timing.csv" 4)" \
            "$(median "$out/timing.csv" 5)" \
            "$(awk -v b="$(median "$out/timing.csv" 6)" 'BEGIN { print b / 1e6 }')"
    done
done
echo "seconds per step (medians; max over ranks except exposed: the communication wait of the"
echo "last rank to arrive, i.e. what overlap did not hide; comm_wait - exposed is load imbalance)"
if [ -x build/tests/bench/bench_allreduce ]; then
    echo; echo "plain MPI_Allreduce vs bucketed overlapped allreduce (2 ranks):"
    mpirun -np 2 --bind-to none build/tests/bench/bench_allreduce 2>&1 | tail -n 20
fi

#!/usr/bin/env bash
# Data-parallel benchmark on one node: trains ResNet-20 (32x32, batch 128) and ResNet-18
# (224x224, batch 32) on synthetic data as 1 rank x T threads and as T ranks x 1 thread, and
# reports images/s (median step), the time per step spent computing and waiting for
# communication that overlap did not hide, the bytes allreduced per step and their rate, next to
# a plain MPI_Allreduce of the same size (tests/bench/bench_allreduce).
#   bash jobs/bench-ranks.sh [STEPS]          (T = number of cores, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12}
cores=${MPQ_CORES:-$(nproc)}
mpq=${MPQ:-build/mpq}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/b.cfg" <<CFG
[DEFAULT]
train_data = synthetic
synthetic_channels = 3
max_steps = $steps
initial_learning_rate = 0.01
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
printf '%-9s %-16s %9s %10s %10s %10s %12s\n' model layout img/s compute_s comm_wait_s data_wait_s MB/step
for model in resnet20 resnet18; do
    for layout in "1 $cores" "$cores 1"; do
        set -- $layout
        out="$tmp/$model-$1x$2"
        mpirun -np "$1" --bind-to none "$mpq" train --cfg "$tmp/b.cfg" "$model" \
            --set "output_dir=$out" --set "threads=$2" > "$out.log" 2>&1 || { cat "$out.log"; exit 1; }
        printf '%-9s %-16s %9.1f %10.4f %10.4f %10.4f %12.2f\n' "$model" "$1 rank x $2 thr" \
            "$(median "$out/timing.csv" 6)" "$(median "$out/timing.csv" 2)" \
            "$(median "$out/timing.csv" 4)" "$(median "$out/timing.csv" 3)" \
            "$(awk -v b="$(median "$out/timing.csv" 5)" 'BEGIN { print b / 1e6 }')"
    done
done
if [ -x build/tests/bench/bench_allreduce ]; then
    echo; echo "plain MPI_Allreduce vs bucketed overlapped allreduce (2 ranks):"
    mpirun -np 2 --bind-to none build/tests/bench/bench_allreduce 2>&1 | tail -n 20
fi

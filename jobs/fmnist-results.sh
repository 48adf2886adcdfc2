#!/usr/bin/env bash
# The Fashion-MNIST runs behind docs/results.md: each experiment of configs/fashion_mnist.cfg
# given on the command line (default: FP32, then the *_INIT runs that start from it) trains on
# 2 ranks; a summary line per run (best test error within the budgets, sizes, wall-clock time) is
# appended to runs/fmnist-results.txt. Expects the shards of jobs/prep-fashion-mnist.sh.
#   bash jobs/fmnist-results.sh [EXPERIMENT...] [-- --set key=value...]   (MPQ=binary, default build/mpq)
set -euo pipefail
cd "$(dirname "$0")/.."
exps=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do exps+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#exps[@]} -gt 0 ] || exps=(FP32 FIXED_W4A4_INIT HOMOGENEOUS_W4A4_INIT MIXED_BUDGET_INIT MIXED_BUDGET_SUM_INIT)
. jobs/env.sh
mkdir -p runs
for e in "${exps[@]}"; do
    start=$(date +%s)
    mpirun -np "${MPQ_RANKS:-2}" --bind-to none "$mpq" train --cfg configs/fashion_mnist.cfg "$e" \
        --set progress=false "$@" > "runs/fmnist-$e.log" 2>&1
    secs=$(( $(date +%s) - start ))
    summary=$(grep -E '^(test accuracy|weights )' "runs/fmnist-$e.log" | tr '\n' ' ')
    echo "$e: ${secs} s wall-clock; $summary" | tee -a runs/fmnist-results.txt
done

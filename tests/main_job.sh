#!/usr/bin/env bash
# The README's main job as jobs/main.sh trains it (jobs/main-train.sh on configs/fashion_mnist.cfg),
# on 2 ranks and tiny synthetic data of Fashion-MNIST's shape (2 steps per epoch, the configured
# epochs): [MAIN_FLOAT] trains, [MAIN] starts from MAIN_FLOAT's final checkpoint (not from a state
# chosen by validation) and trains under its budgets; the trainer reports the final state's
# accuracy and its sizes against both budgets and the picture, and the job's last lines give the
# test accuracy of MAIN_FLOAT's final state and of the MAIN state the validation split chose
# within the budgets, each as `mpq eval` computes it for that file. A second run of the job works (it starts over), and
# --result final without a checkpoint to start from is an error naming the directory.
set -euo pipefail
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
export MPQ="${top_builddir:?set by make check}/mpq" MPQ_TEST_DATA=synthetic
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# the README's configuration with a weight budget that 6 steps from 4-bit weights can meet (the
# job reports the state the held-out split chose within the budgets, so one must exist)
sed 's/^target_weight_kbytes = 132\.1$/target_weight_kbytes = 140/' \
    "${top_srcdir:?set by make check}/configs/fashion_mnist.cfg" > fmnist.cfg
grep -q '^target_weight_kbytes = 140$' fmnist.cfg || { echo "FAIL: no MAIN weight budget to edit"; exit 1; }
export MPQ_CFG=$tmp/fmnist.cfg
fail() {
    echo "FAIL: $*"
    exit 1
}
sets=()
for kv in train_data=synthetic val_data=synthetic synthetic_samples=16 synthetic_height=28 \
    synthetic_width=28 synthetic_channels=1 num_classes=10 batch_size=8 val_batch_size=8 \
    threads=1 progress=false; do
    sets+=(--set "$kv")
done
job() { MPQ_RANKS=2 bash "$top_srcdir/jobs/main-train.sh" "${sets[@]}" "$@"; }

for run in 1 2; do # the second run starts over in the same directories
    job > "run$run.log" 2>&1 || { cat "run$run.log"; fail "main job, run $run"; }
done
log=run2.log
grep -q '^chain: \[MAIN_FLOAT\] done$' $log || fail "no MAIN_FLOAT run"
grep -q '^chain: \[MAIN\] done$' $log || fail "no MAIN run"

# MAIN starts from MAIN_FLOAT's final state: the checkpoint after its last step (2 epochs x 2)
steps=$(tail -n 1 runs/fmnist-main-float/steps.csv | cut -d, -f1)
[ "$steps" = 3 ] || fail "MAIN_FLOAT's last step is '$steps', expected 3 (4 steps)"
final=runs/fmnist-main-float/checkpoints/ckpt-000000004.h5
grep -q "^chain: \[MAIN\] .*--set weightfile=$final\$" $log ||
    fail "MAIN did not start from $final: $(grep '^chain: \[MAIN\] mpirun' $log)"
[ "$(tail -n 1 runs/fmnist-main/steps.csv | cut -d, -f1)" = 5 ] || fail "MAIN did not train 6 steps"

# the trainer's report of MAIN: final state's accuracy, sizes against both budgets, picture
grep -Eq '^val_data accuracy [0-9.]+% \(error [0-9.]+%\) of the final state' $log ||
    fail "no final-state accuracy line"
grep -Eq '^weights [0-9.]+ KB \(budget 140\.00 KB\), activations [0-9.]+ KB \(sum; budget 70\.44 KB\): the final state is (NOT )?within the budgets$' $log ||
    fail "no sizes against the budgets: $(grep '^weights ' $log)"
grep -q '^bitwidth picture: runs/fmnist-main/bitwidth.svg$' $log || fail "no picture line"
[ -s runs/fmnist-main/bitwidth.svg ] || fail "no picture"

# the job's summary: the float phase's final state and the held-out-chosen MAIN state on the
# test split (synthetic here), each as `mpq eval` computes it for that file
acc() { # acc EXPERIMENT FILE: what mpq eval says of FILE on the test split
    "$MPQ" eval --cfg "$MPQ_CFG" "$1" "$2" --data synthetic "${sets[@]}" 2>&1 |
        sed -n 's/^accuracy \([0-9.]*\)%.*/\1/p' | awk '{ printf "%.2f%%", $1 }'
}
want=$(acc MAIN_FLOAT "$final")
grep -Eq "^MAIN_FLOAT final state: test accuracy $want \([0-9.]+% on the held-out split\)$" $log ||
    fail "float summary is not mpq eval's $want: $(grep '^MAIN_FLOAT final' $log)"
if [ -f runs/fmnist-main/params_best.h5 ]; then
    want=$(acc MAIN runs/fmnist-main/params_best.h5)
    grep -Eq "^MAIN state chosen on the held-out split within both budgets \(step [0-9]+, epoch [0-9]+\): test accuracy $want \([0-9.]+% held-out\), weights [0-9.]+ KB, activations [0-9.]+ KB$" $log ||
        fail "mixed summary is not mpq eval's $want: $(grep '^MAIN state' $log)"
else
    fail "MAIN has no state within both budgets (params_best.h5)"
fi

# --result final needs the parent's checkpoint: none written -> an error naming the directory
if MPQ_RANKS=1 bash "$top_srcdir/jobs/main-train.sh" "${sets[@]}" \
    --set checkpoint_every_minutes=0 > nockpt.log 2>&1; then
    fail "chain without a checkpoint to start from succeeded"
fi
grep -q 'no checkpoint in runs/fmnist-main-float/checkpoints ' nockpt.log || {
    cat nockpt.log
    fail "no error naming the missing checkpoint"
}
echo "main job: MAIN_FLOAT -> MAIN from $final, report and summary checked, rerun ok"

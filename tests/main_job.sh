#!/usr/bin/env bash
# The README's main job as jobs/main.sh trains it (jobs/main-train.sh on configs/fashion_mnist.cfg),
# on 2 ranks and tiny synthetic data of Fashion-MNIST's shape (2 steps per epoch, the configured
# epochs): [MAIN_FLOAT] trains, [MAIN] starts from MAIN_FLOAT's final checkpoint (not from a state
# chosen by validation) and trains under its budgets; the trainer reports the final state's
# accuracy and its sizes against both budgets and the picture, and the job's last lines give each
# phase's accuracy as the trainer printed it. A second run of the job works (it starts over), and
# --result final without a checkpoint to start from is an error naming the directory.
set -euo pipefail
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
export MPQ="${top_builddir:?set by make check}/mpq" MPQ_CFG="${top_srcdir:?set by make check}/configs/fashion_mnist.cfg"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
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
grep -Eq '^test accuracy [0-9.]+% \(error [0-9.]+%\) of the final state' $log ||
    fail "no final-state accuracy line"
grep -Eq '^weights [0-9.]+ KB \(budget 132\.10 KB\), activations [0-9.]+ KB \(sum; budget 70\.44 KB\): the final state is (NOT )?within the budgets$' $log ||
    fail "no sizes against the budgets: $(grep '^weights ' $log)"
grep -q '^bitwidth picture: runs/fmnist-main/bitwidth.svg$' $log || fail "no picture line"
[ -s runs/fmnist-main/bitwidth.svg ] || fail "no picture"

# the job's summary: each phase's accuracy equals what its trainer printed for its final state
mapfile -t printed < <(sed -n 's/^test accuracy \([0-9.]*%\) .* of the final state.*/\1/p' $log)
[ "${#printed[@]}" = 2 ] || fail "expected 2 trainer accuracy lines, got ${#printed[@]}"
grep -Eq "^MAIN_FLOAT +2 epoch\(s\): test accuracy ${printed[0]} \(final state\)" $log ||
    fail "float summary differs from the trainer's ${printed[0]}: $(grep '^MAIN_FLOAT ' $log)"
grep -Eq "^MAIN +3 epoch\(s\): test accuracy ${printed[1]} \(final state\)" $log ||
    fail "mixed summary differs from the trainer's ${printed[1]}: $(grep '^MAIN ' $log)"

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

#!/usr/bin/env bash
# The training of the README's main job (jobs/main.sh runs it after install, build and prep; the
# test tests/main_job.sh runs it on synthetic data): [MAIN_FLOAT] of the .cfg file, a short float
# phase, then [MAIN], learned mixed precision under the budgets, starting from MAIN_FLOAT's final
# state (its newest checkpoint: jobs/chain.sh --result final), on MPQ_RANKS MPI ranks. Each phase
# starts over in its own output_dir (--restart), so a second run works. Prints, after the
# trainer's own report (bitwidth table, sizes against the budgets, picture), the test accuracy of
# MAIN_FLOAT's final state and of the MAIN state that the held-out validation split chose among
# those within both budgets (nonzero exit when none was); the test split is read only then
# (MPQ_TEST_DATA, default data/fashion-mnist/test-heldout). Writes into the current directory's runs/.
# What a user edits: MPQ_RANKS (default 2), MPQ_CFG (default configs/fashion_mnist.cfg) and MPQ
# (the binary, default build/mpq); arguments go to both `mpq train` runs (e.g. --set
# max_steps=100; not output_dir or --resume: the phases need their own directories and start over).
set -euo pipefail
here=$(dirname "$0")
. "$here/env.sh"
cfg=${MPQ_CFG:-configs/fashion_mnist.cfg}
LAUNCH="mpirun -np ${MPQ_RANKS:-2} --bind-to none" MPQ=$mpq \
    bash "$here/chain.sh" --result final "$cfg" MAIN_FLOAT --restart "$@"

# The test split is looked at only here, after training: MAIN_FLOAT's final state (its newest
# checkpoint) and MAIN's state chosen on the held-out validation split among those within both
# budgets (params_best.h5; validation.csv's last row marked best), never a state chosen on it.
dirs=$("$mpq" train --cfg "$cfg" --list-paths "$@")
dir_of() { awk -F'\t' -v e="$1" '$1 == e { print $2 }' <<< "$dirs"; }
test_accuracy() { # test_accuracy EXPERIMENT FILE [--set k=v]...: "X.XX%" of FILE on the test split
    local exp=$1 file=$2 out acc
    shift 2
    out=$(mpirun -np "${MPQ_RANKS:-2}" --bind-to none "$mpq" eval --cfg "$cfg" "$exp" "$file" \
        --data "$test_data" "$@" 2>&1) || { echo "$out" >&2; return 1; }
    acc=$(sed -n 's/^accuracy \([0-9.]*\)%.*/\1/p' <<< "$out")
    [ -n "$acc" ] || { echo "$out" >&2; echo "main-train.sh: no accuracy from mpq eval" >&2; return 1; }
    awk -v a="$acc" 'BEGIN { printf "%.2f%%", a }'
}
test_data=${MPQ_TEST_DATA:-data/fashion-mnist/test-heldout}
float_dir=$(dir_of MAIN_FLOAT) main_dir=$(dir_of MAIN)
float_ckpt=$(newest_ckpt "$float_dir/checkpoints")
float_acc=$(test_accuracy MAIN_FLOAT "$float_ckpt" "$@")
echo
echo "MAIN_FLOAT final state: test accuracy $float_acc" \
    "($(awk -F, 'END { printf "%.2f%%", 100 * (1 - $3) }' "$float_dir/results.csv") on the" \
    "held-out split)"
best=$(awk -F, 'NR > 1 && $8 == 1 { row = $0 } END { print row }' "$main_dir/validation.csv")
if [ -z "$best" ] || [ ! -f "$main_dir/params_best.h5" ]; then
    echo "MAIN: no validated state was within both budgets (validation.csv has none marked best)"
    exit 1
fi
IFS=, read -r step epoch verr _ kw ka _ <<< "$best"
main_acc=$(test_accuracy MAIN "$main_dir/params_best.h5" "$@")
echo "MAIN state chosen on the held-out split within both budgets (step $((step + 1)), epoch" \
    "$epoch): test accuracy $main_acc" \
    "($(awk -v e="$verr" 'BEGIN { printf "%.2f%%", 100 * (1 - e) }') held-out)," \
    "$(awk -v w="$kw" -v a="$ka" 'BEGIN { printf "weights %.2f KB, activations %.2f KB", w, a }')"

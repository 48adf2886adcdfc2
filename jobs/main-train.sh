#!/usr/bin/env bash
# The training of the README's main job (jobs/main.sh runs it after install, build and prep; the
# test tests/main_job.sh runs it on synthetic data): [MAIN_FLOAT] of the .cfg file, a short float
# phase, then [MAIN], learned mixed precision under the budgets, starting from MAIN_FLOAT's final
# state (its newest checkpoint: jobs/chain.sh --result final), on MPQ_RANKS MPI ranks. Each phase
# starts over in its own output_dir (--restart), so a second run works. Prints, after the
# trainer's own report (bitwidth table, sizes against the budgets, picture), the test accuracy of
# both phases' final states from their results.csv. Writes into the current directory's runs/.
# What a user edits: MPQ_RANKS (default 2), MPQ_CFG (default configs/fashion_mnist.cfg) and MPQ
# (the binary, default build/mpq); arguments go to both `mpq train` runs (e.g. --set
# max_steps=100; not output_dir or --resume: the phases need their own directories and start over).
set -euo pipefail
here=$(dirname "$0")
. "$here/env.sh"
cfg=${MPQ_CFG:-configs/fashion_mnist.cfg}
LAUNCH="mpirun -np ${MPQ_RANKS:-2} --bind-to none" MPQ=$mpq \
    bash "$here/chain.sh" --result final "$cfg" MAIN_FLOAT --restart "$@"

# The last row of each phase's results.csv: its final state, never a state chosen by validation.
dirs=$("$mpq" train --cfg "$cfg" --list-paths "$@")
echo
for phase in MAIN_FLOAT MAIN; do
    dir=$(awk -F'\t' -v e="$phase" '$1 == e { print $2 }' <<< "$dirs")
    awk -F, -v e="$phase" 'NR > 1 { n = $10; err = $3; w = $8; a = $9 }
        END { if (!n) { print e ": no epoch in " FILENAME; exit 1 }
              printf "%-10s %g epoch(s): test accuracy %.2f%% (final state), weights %.2f KB, " \
                     "activations %.2f KB\n", e, n, 100 * (1 - err), w, a }' "$dir/results.csv"
done

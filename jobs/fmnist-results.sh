#!/usr/bin/env bash
# The runs behind docs/results.md and the page itself (Fashion-MNIST, ResNet-20, 2 ranks):
#   bash jobs/fmnist-results.sh [all|prep|float|table1|table2|table3|page]...   (default: all)
#   prep    the shards with a held-out validation split (FMNIST_HELDOUT=5000 training images)
#   float   [FP32] of configs/fashion_mnist_results.cfg: the float checkpoint every quantized row
#           starts from (params_best.h5: the best epoch on the held-out split, never the test set)
#   table1  the parametrizations U1-U3, P1-P3: learned bitwidths under a 70 KB weight budget
#           (seeds SEEDS), fixed 2- and 4-bit weights (bits FIXED_BITS, seeds FIXED_SEEDS)
#   table2  mixed against homogeneous at 2- and 3-bit weights, 4-bit activations (seeds SEEDS)
#   table3  the max-type activation budget: the reference's penalty and `each` (seeds SEEDS)
#   page    docs/results.md and its pictures from the committed summaries in docs/data/fmnist/
#   EXP:SEED  one row (e.g. L2_U3:2), for running rows in another order than the tables'
#   all     prep, float, then for each seed of SEEDS the three tables, then page
# Each quantized row fine-tunes FP32's params_best.h5 with the schedule of the cfg's [DEFAULT]
# (epochs, cosine from 0.03); its final state (the last checkpoint) is then evaluated on the
# test split. A row already in docs/data/fmnist/rows.csv is not run again (FORCE=1: run it).
# Run outputs go to runs/fmnist-results/<EXPERIMENT>-s<SEED>/ (not committed); the small
# summaries the page needs are copied to docs/data/fmnist/ (committed).
# What a user edits: SEEDS (default "1 2"), FIXED_SEEDS (default "1"), FIXED_BITS (default
# "2 4"), MPQ_RANKS (default 2), FMNIST_HELDOUT (default 5000), MPQ (default build/mpq).
set -euo pipefail
cd "$(dirname "$0")/.."
. jobs/env.sh
cfg=configs/fashion_mnist_results.cfg
root=runs/fmnist-results
out=docs/data/fmnist
test_split=data/fashion-mnist/test-heldout
seeds=${SEEDS:-1 2}
fixed_seeds=${FIXED_SEEDS-1}
fixed_bits=${FIXED_BITS:-2 4}
launch=(mpirun -np "${MPQ_RANKS:-2}" --bind-to none)
rows_header="experiment,seed,steps,test_err,heldout_err,kbytes_w,kbytes_a,within_budget,seconds"

params=(U1 U2 U3 P1 P2 P3)
table1_learned=(L2_U1 L2_U2 L2_U3 L2_P1 L2_P2 L2_P3)
table2=(HOMFIX_W2A4 HOMLR_W2A4 MIXED_W2A4 HOMFIX_W3A4 HOMLR_W3A4 MIXED_W3A4)
table3=(MAX_FIRST MAX_EACH)

die() { echo "fmnist-results.sh: $*" >&2; exit 1; }

prep() { FMNIST_HELDOUT=${FMNIST_HELDOUT:-5000} bash jobs/prep-fashion-mnist.sh; }

# The value of column $2 (by header name) in the last data line of csv $1.
last_col() {
    awk -F, -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
        { v = $c } END { if (!c) exit 1; print v }' "$1"
}

# Replaces (or adds) the line of experiment $1, seed $2 in rows.csv by $3, sorted.
put_row() {
    local f=$out/rows.csv tmp
    mkdir -p "$out"
    tmp=$(mktemp)
    { echo "$rows_header"
      { [ -f "$f" ] && tail -n +2 "$f" | awk -F, -v e="$1" -v s="$2" '!($1 == e && $2 == s)'
        echo "$3"; } | sort -t, -k1,1 -k2,2n; } > "$tmp"
    mv "$tmp" "$f"
}

have_row() { [ -z "${FORCE:-}" ] && [ -f "$out/rows.csv" ] && grep -q "^$1,$2," "$out/rows.csv"; }

float() {
    local dir=$root/FP32
    have_row FP32 1 && { echo "FP32: done"; return 0; }
    if [ -n "${FORCE:-}" ] || [ ! -f "$dir/params_best.h5" ]; then
        mkdir -p "$root"
        "${launch[@]}" "$mpq" train --cfg "$cfg" FP32 --restart --set "output_dir=$dir" \
            --set progress=false > "$root/FP32.log" 2>&1 || die "FP32 failed: see $root/FP32.log"
    fi
    mkdir -p "$out"
    cp "$dir/results.csv" "$out/fp32-results.csv"
    row FP32 1 "$dir" "$dir/params_best.h5" \
        "$(awk -F, 'NR > 1 { s += $NF } END { printf "%.0f", s }' "$dir/results.csv")"
}

# Evaluates the state $4 of run directory $3 (experiment $1, seed $2, $5 seconds of training)
# on the test split and records its line; its held-out error and sizes are those of the
# validation of that state in validation.csv (the best one for FP32, else the last).
row() {
    local exp=$1 seed=$2 dir=$3 state=$4 secs=$5 ev test_err heldout steps kw ka within pick
    [ -f "$state" ] || die "$exp: no state '$state'"
    ev=$("${launch[@]}" "$mpq" eval "$state" --data "$test_split") || die "$exp: eval failed"
    echo "$ev" > "$dir/test-eval.txt"
    test_err=$(echo "$ev" | sed -n 's/^accuracy .*error \([0-9.]*\)%.*/\1/p')
    [ -n "$test_err" ] || die "$exp: no error in the output of mpq eval ($dir/test-eval.txt)"
    pick=$dir/validation.csv
    if [ "$exp" = FP32 ]; then # the best validation (the state params_best.h5 holds)
        pick=$(mktemp)
        awk -F, 'NR == 1 || $NF == 1' "$dir/validation.csv" > "$pick"
    fi
    heldout=$(awk -v e="$(last_col "$pick" val_err)" 'BEGIN { printf "%.4f", 100 * e }')
    steps=$(( $(last_col "$pick" step) + 1 ))
    kw=$(last_col "$pick" kbytes_w)
    ka=$(last_col "$pick" kbytes_a)
    within=$(last_col "$pick" within_budget)
    [ "$exp" = FP32 ] && rm -f "$pick"
    put_row "$exp" "$seed" "$exp,$seed,$steps,$test_err,$heldout,$kw,$ka,$within,$secs"
    echo "$exp seed $seed: test error $test_err %, held-out error $heldout %, W $kw KB," \
        "A $ka KB, within the budgets: $within, $secs s"
}

# quant.csv, smaller for committing: the weight quantizers every 4th step (and the last), 4 digits.
thin_quant() {
    awk -F, -v OFS=, 'NR == 1 { print; next } { last = $1 } $3 == "w" { r[NR] = $0; s[NR] = $1 }
        END { for (i = 2; i <= NR; i++) if (i in r && (s[i] % 4 == 0 || s[i] == last)) {
                  split(r[i], f, ",")
                  g = f[6] == "" ? "" : sprintf("%.4g", f[6])
                  print f[1], f[2], f[3], f[4], sprintf("%.4g", f[5]), g } }' "$1"
}

# Fine-tunes experiment $1 with seed $2 from the float checkpoint; keeps the summaries.
run() {
    local exp=$1 seed=$2 dir=$root/$1-s$2 start
    if have_row "$exp" "$seed"; then echo "$exp seed $seed: done"; return 0; fi
    [ -f "$root/FP32/params_best.h5" ] || die "no float checkpoint: run 'float' first"
    start=$(date +%s)
    "${launch[@]}" "$mpq" train --cfg "$cfg" "$exp" --restart --set "seed=$seed" \
        --set "output_dir=$dir" --set "weightfile=$root/FP32/params_best.h5" \
        --set progress=false > "$dir.log" 2>&1 || die "$exp seed $seed failed: see $dir.log"
    row "$exp" "$seed" "$dir" "$(ls "$dir"/checkpoints/ckpt-*.h5 | tail -n 1)" \
        $(( $(date +%s) - start ))
    if [ "$seed" = 1 ]; then
        mkdir -p "$out/curves" "$out/bitwidth"
        [ -f "$dir/quant.csv" ] && thin_quant "$dir/quant.csv" > "$out/curves/$exp.csv"
        case $exp in MIXED_*|MAX_*|L2_*) cp "$dir/bitwidth.svg" "$out/bitwidth/$exp.svg" ;; esac
        case $exp in MAX_*) # the sizes per step (table 3's picture)
            awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i }
                { print $c["step"] "," $c["kbytes_w"] "," $c["kbytes_a"] "," $c["loss3"] }' \
                "$dir/steps.csv" > "$out/curves/$exp-steps.csv" ;;
        esac
    fi
    return 0
}


table1() {
    local s e b
    for s in $seeds; do for e in "${table1_learned[@]}"; do run "$e" "$s"; done; done
    for s in $fixed_seeds; do for b in $fixed_bits; do for e in "${params[@]}"; do
        run "W${b}_$e" "$s"; done; done; done
}
table2() { local s e; for s in $seeds; do for e in "${table2[@]}"; do run "$e" "$s"; done; done; }
table3() { local s e; for s in $seeds; do for e in "${table3[@]}"; do run "$e" "$s"; done; done; }

page() { python3 jobs/fmnist-page.py "$cfg" "$out" docs/results.md; }

# (one function, called on the last line: editing this file while it runs does not affect the run)
main() {
    [ $# -gt 0 ] || set -- all
    for what in "$@"; do
        case $what in
            prep|float|table1|table2|table3|page) "$what" ;;
            [A-Z]*:[0-9]*) run "${what%%:*}" "${what#*:}" ;;
            all)
                prep
                float
                all_seeds=$seeds
                for seeds in $all_seeds; do
                    fixed_seeds_now=$fixed_seeds
                    case " $fixed_seeds_now " in
                        *" $seeds "*) fixed_seeds=$seeds ;;
                        *) fixed_seeds= ;;
                    esac
                    table1
                    table2
                    table3
                    fixed_seeds=$fixed_seeds_now
                done
                seeds=$all_seeds
                page ;;
            *) die "unknown step '$what' (all, prep, float, table1, table2, table3 or page)" ;;
        esac
    done
}

main "$@"; exit

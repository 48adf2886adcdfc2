#!/usr/bin/env bash
# The runs behind docs/results.md and the page itself (Fashion-MNIST, ResNet-20, 2 ranks):
#   bash jobs/fmnist-results.sh [all|prep|float|table1|table2|table3|page]...   (default: all)
#   prep    the shards with a held-out validation split (FMNIST_HELDOUT=5000 training images)
#   float   [FP32] of configs/fashion_mnist_results.cfg: the float checkpoint every quantized row
#           starts from (params_best.h5: the best epoch on the held-out split, never the test set)
#           and [FT_FP32], the control: that checkpoint fine-tuned with the rows' schedule, in float
#   table1  the parametrizations U1-U3, P1-P3: learned bitwidths under a 70 KB weight budget
#           (seeds SEEDS), fixed 2- and 4-bit weights (bits FIXED_BITS, seeds FIXED_SEEDS)
#   table2  mixed against homogeneous at 2- and 3-bit weights, 4-bit activations (seeds SEEDS)
#   table3  the max-type activation budget: the reference's penalty and `each`, activations
#           starting at 8 bits and at the reference's 4 (seeds SEEDS)
#   page    docs/results.md and its pictures from the committed summaries in docs/data/fmnist/
#   EXP:SEED  one row (e.g. L2_U3:2), for running rows in another order than the tables'
#   recal:EXP:SEED  the row's final state with its BN statistics re-estimated (RECAL_STEPS steps
#           at learning rate 0, default 50), evaluated again: recal.csv
#   all     prep, float, then for each seed of SEEDS the three tables, then recal of the rows
#           in RECAL (default: the rows the committed page re-evaluates, "W2_U3:2 L2_U3:2
#           W2_U3:1 W4_P2:2"), then page
# The layer table of each row's final state (mpq inspect: every quantizer's values and bits) goes
# to docs/data/fmnist/final/.
# Each quantized row fine-tunes FP32's params_best.h5 with the schedule of the cfg's [DEFAULT]
# (epochs, cosine from 0.03); its final state (the last checkpoint) is then evaluated on the
# test split. A row already in docs/data/fmnist/rows.csv is not run again (FORCE=1: run it).
# Run outputs go to runs/fmnist-results/<EXPERIMENT>-s<SEED>/ (not committed); the small
# summaries the page needs are copied to docs/data/fmnist/ (committed).
# What a user edits: SEEDS (default "1 2"), FIXED_SEEDS (default "1 2"), FIXED_BITS (default
# "2 4"), MPQ_RANKS (default 2), FMNIST_HELDOUT (default 5000), MPQ (default build/mpq).
set -euo pipefail
cd "$(dirname "$0")/.."
. jobs/env.sh
cfg=configs/fashion_mnist_results.cfg
root=runs/fmnist-results
out=docs/data/fmnist
test_split=data/fashion-mnist/test-heldout
seeds=${SEEDS:-1 2}
fixed_seeds=${FIXED_SEEDS-1 2}
fixed_bits=${FIXED_BITS:-2 4}
launch=(mpirun -np "${MPQ_RANKS:-2}" --bind-to none)
rows_header="experiment,seed,steps,test_err,heldout_err,kbytes_w,kbytes_a,within_budget,seconds"

params=(U1 U2 U3 P1 P2 P3)
table1_learned=(L2_U1 L2_U2 L2_U3 L2_P1 L2_P2 L2_P3)
table2=(HOMFIX_W2A4 HOMLR_W2A4 MIXED_W2A4 HOMFIX_W3A4 HOMLR_W3A4 MIXED_W3A4)
table3=(MAX_FIRST MAX_EACH MAX_FIRST_A4 MAX_EACH_A4)

die() { echo "fmnist-results.sh: $*" >&2; exit 1; }

prep() { FMNIST_HELDOUT=${FMNIST_HELDOUT:-5000} bash jobs/prep-fashion-mnist.sh; }

# The value of column $2 (by header name) in the last data line of csv $1.
last_col() {
    awk -F, -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
        { v = $c } END { if (!c) exit 1; print v }' "$1"
}

# Replaces (or adds) the line of experiment $2, seed $3 in csv $1 (header $4) by $5, sorted.
put_line() {
    local f=$1 tmp
    mkdir -p "$(dirname "$f")"
    tmp=$(mktemp)
    { echo "$4"
      { [ -f "$f" ] && tail -n +2 "$f" | awk -F, -v e="$2" -v s="$3" '!($1 == e && $2 == s)'
        echo "$5"; } | sort -t, -k1,1 -k2,2n; } > "$tmp"
    mv "$tmp" "$f"
}

# The error in % that `mpq eval` of state $1 on split $2 prints (its output also goes to file $3
# when given); dies naming the state when eval fails or prints no error.
eval_error() {
    local ev err
    ev=$("${launch[@]}" "$mpq" eval "$1" --data "$2") || die "mpq eval '$1' on $2 failed"
    [ -z "${3:-}" ] || echo "$ev" > "$3"
    err=$(echo "$ev" | sed -n 's/^accuracy .*error \([0-9.]*\)%.*/\1/p')
    [ -n "$err" ] || die "no error in the output of mpq eval '$1' on $2:"$'\n'"$ev"
    echo "$err"
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
    run FT_FP32 1 # the control: the same fine-tuning schedule without quantizers
}

# Evaluates the state $4 of run directory $3 (experiment $1, seed $2, $5 seconds of training)
# on the test split and records its line; its held-out error and sizes are those of the
# validation of that state in validation.csv (the best one for FP32, else the last).
row() {
    local exp=$1 seed=$2 dir=$3 state=$4 secs=$5 test_err heldout steps kw ka within pick
    [ -f "$state" ] || die "$exp: no state '$state'"
    test_err=$(eval_error "$state" "$test_split" "$dir/test-eval.txt")
    mkdir -p "$out/final"
    "$mpq" inspect "$state" > "$out/final/$exp-s$seed.txt" ||
        die "$exp: mpq inspect '$state' failed"
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
    put_line "$out/rows.csv" "$exp" "$seed" "$rows_header" \
        "$exp,$seed,$steps,$test_err,$heldout,$kw,$ka,$within,$secs"
    echo "$exp seed $seed: test error $test_err %, held-out error $heldout %, W $kw KB," \
        "A $ka KB, within the budgets: $within, $secs s"
}

# quant.csv, smaller for committing: the weight quantizers every 8th step (and the last), 4 digits.
thin_quant() {
    awk -F, -v OFS=, 'NR == 1 { print; next } { last = $1 } $3 == "w" { r[NR] = $0; s[NR] = $1 }
        END { for (i = 2; i <= NR; i++) if (i in r && (s[i] % 8 == 0 || s[i] == last)) {
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
    row "$exp" "$seed" "$dir" "$(newest_ckpt "$dir/checkpoints")" $(( $(date +%s) - start ))
    if [ "$seed" = 1 ]; then
        mkdir -p "$out/curves" "$out/bitwidth"
        [ -f "$dir/quant.csv" ] && thin_quant "$dir/quant.csv" > "$out/curves/$exp.csv"
        case $exp in MIXED_*|MAX_*|L2_*) cp "$dir/bitwidth.svg" "$out/bitwidth/$exp.svg" ;; esac
    fi
    case $exp in MAX_*) # the sizes per step (table 3: the picture is seed 1's)
        mkdir -p "$out/curves"
        local f=$out/curves/$exp-steps.csv
        [ "$seed" = 1 ] || f=$out/curves/$exp-s$seed-steps.csv
        awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i }
            { print $c["step"] "," $c["kbytes_w"] "," $c["kbytes_a"] "," $c["loss3"] }' \
            "$dir/steps.csv" > "$f" ;;
    esac
    return 0
}


# The diagnosis of a row whose final state trains well but evaluates badly: the final state's BN
# running statistics re-estimated on the current weights by RECAL_STEPS training steps at learning
# rate 0 (the parameters, quantizers included, stay as they are; only the running statistics
# move), then evaluated on the held-out and test splits; a line per row in recal.csv.
recal() {
    local exp=$1 seed=$2 dir=$root/$1-s$2 rdir=$root/$1-s$2-recal state terr herr
    state=$(newest_ckpt "$dir/checkpoints")
    [ -n "$state" ] || die "recal $exp seed $seed: no checkpoint in $dir (run the row first)"
    "${launch[@]}" "$mpq" train --cfg "$cfg" "$exp" --restart --set "seed=$seed" \
        --set "output_dir=$rdir" --set "weightfile=$state" --set initial_learning_rate=0 \
        --set "max_steps=${RECAL_STEPS:-50}" --set progress=false > "$rdir.log" 2>&1 ||
        die "recal $exp seed $seed failed: see $rdir.log"
    state=$(newest_ckpt "$rdir/checkpoints")
    terr=$(eval_error "$state" "$test_split")
    herr=$(eval_error "$state" "${test_split%/*}/val-heldout")
    put_line "$out/recal.csv" "$exp" "$seed" "experiment,seed,recal_steps,test_err,heldout_err" \
        "$exp,$seed,${RECAL_STEPS:-50},$terr,$herr"
    echo "$exp seed $seed, BN statistics re-estimated: test error $terr %, held-out error $herr %"
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
            recal:[A-Z]*:[0-9]*) what=${what#recal:}; recal "${what%%:*}" "${what#*:}" ;;
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
                for r in ${RECAL-W2_U3:2 L2_U3:2 W2_U3:1 W4_P2:2}; do
                    recal "${r%%:*}" "${r#*:}"
                done
                page ;;
            *) die "unknown step '$what' (all, prep, float, table1, table2, table3, page," \
                   "EXP:SEED or recal:EXP:SEED)" ;;
        esac
    done
}

main "$@"; exit

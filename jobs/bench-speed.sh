#!/usr/bin/env bash
# The speed matrix of the compute core: `mpq bench` for ResNet-20 (batch 128), ResNet-18 and
# MobileNetV2 (224x224, batch 32), float and with learned-step fake quantization
# (parametric_fp_d_xmax on weights and activations), on 1 and 2 threads. The matrix is run ROUNDS
# times over, so that a float row and its quantized twin are measured minutes apart at most. Each
# row prints the median over the rounds next to the images/s the framework must reach (README,
# "Speed"); then the cost of quantization per model and thread count, 1 - quant / float, from
# the best round of each (noise on a shared machine only ever slows a run down), with the cost
# of every round in brackets (target: at most 7%). The JSON of every run is kept in
# runs/bench-speed.jsonl. Run it on an otherwise idle node: the numbers are only as quiet as it.
#   bash jobs/bench-speed.sh [STEPS [ROUNDS]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5}
rounds=${2:-3}
. jobs/env.sh
mkdir -p runs
out=runs/bench-speed.jsonl
: > "$out"
# model batch quant threads target-img/s
targets="resnet20 128 float 1 300
resnet20 128 float 2 570
resnet20 128 parametric_fp_d_xmax 1 285
resnet20 128 parametric_fp_d_xmax 2 530
resnet18 32 float 1 8.5
resnet18 32 float 2 16
resnet18 32 parametric_fp_d_xmax 1 8.0
resnet18 32 parametric_fp_d_xmax 2 15
mobilenetv2 32 float 1 12
mobilenetv2 32 float 2 21
mobilenetv2 32 parametric_fp_d_xmax 1 11
mobilenetv2 32 parametric_fp_d_xmax 2 19"
field() { sed -n "s/.*\"$2\": \([0-9.e+-]*\).*/\1/p" <<< "$1"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A train fwd fwdgf peak rss
for ((r = 1; r <= rounds; r++)); do
    echo "round $r of $rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    while read -r model batch quant thr target; do
        q=(); [ "$quant" = float ] || q=(--quant "$quant")
        json=$("$mpq" bench --model "$model" --batch "$batch" --threads "$thr" --steps "$steps" \
            "${q[@]}" --json)
        echo "$json" >> "$out"
        key="$model $quant $thr"
        train[$key]+=" $(field "$json" train_images_per_s)"
        fwd[$key]+=" $(field "$json" forward_images_per_s)"
        fwdgf[$key]+=" $(field "$json" forward_gflops)"
        peak[$key]+=" $(field "$json" peak_gflops)"
        rss[$key]+=" $(field "$json" peak_rss_mb)"
    done <<< "$targets"
done
printf '%-11s %-20s %3s %9s %7s %9s %8s %8s %6s %7s\n' model quant thr train_i/s target \
    fwd_i/s fwd_GF/s peak_GF fwd/pk rss_MB
while read -r model batch quant thr target; do
    key="$model $quant $thr"
    t=$(median <<< "${train[$key]}") f=$(median <<< "${fwdgf[$key]}")
    p=$(median <<< "${peak[$key]}")
    printf '%-11s %-20s %3s %9.1f %7s %9.1f %8.1f %8.1f %5.0f%% %7.0f %s\n' "$model" "$quant" \
        "$thr" "$t" "$target" "$(median <<< "${fwd[$key]}")" "$f" "$p" \
        "$(awk -v a="$f" -v b="$p" 'BEGIN { print 100 * a / b }')" \
        "$(median <<< "${rss[$key]}")" \
        "$(awk -v a="$t" -v b="$target" 'BEGIN { print (a >= b) ? "met" : "BELOW" }')"
done <<< "$targets"
echo "cost of quantization (1 - quant / float of the best rounds; each round's in brackets;"
echo "target at most 7%):"
for model in resnet20 resnet18 mobilenetv2; do
    for thr in 1 2; do
        awk -v m="$model" -v t="$thr" -v f="${train[$model float $thr]}" \
            -v q="${train[$model parametric_fp_d_xmax $thr]}" 'BEGIN {
            nf = split(f, fv, " "); split(q, qv, " "); bf = bq = 0; each = ""
            for (i = 1; i <= nf; i++) {
                if (fv[i] > bf) bf = fv[i]
                if (qv[i] > bq) bq = qv[i]
                each = each sprintf("%s%.1f%%", i > 1 ? " " : "", 100 * (1 - qv[i] / fv[i]))
            }
            c = 100 * (1 - bq / bf)
            printf "  %-11s %s thread(s): %5.1f%% %-5s [%s]\n", m, t, c, (c <= 7) ? "met" : "ABOVE", each }'
    done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

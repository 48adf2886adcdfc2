#!/usr/bin/env bash
# The speed matrix of the compute core: `mpq bench` (the trainer's own step) for ResNet-20 (batch
# 128), ResNet-18 and MobileNetV2 (224x224, batch 32), float and with learned-step fake
# quantization (parametric_fp_d_xmax on weights and activations), on 1 and 2 threads, next to
# the same float training step in PyTorch (jobs/torch-step.py) where python3 can import torch.
# The matrix is run ROUNDS times over, so that a float row, its quantized twin and the reference
# are measured minutes apart at most. Each row prints the medians over the rounds: training
# images/s, training GFLOP/s (3x the forward's multiply-adds x 2), the BLIS sgemm peak measured
# in the same run and the training's fraction of it (issue 19's targets: ResNet-20 80%,
# MobileNetV2 50%), the forward's fraction, mpq / PyTorch, peak memory, and the thread count the
# step ended on (threads_adapt lowers it when a core is shared: "2>1"). Then the cost of
# quantization per model and thread count, 1 - quant / float of the medians, with each round's in
# brackets (target: at most 7%). Every run's JSON is kept in runs/bench-speed.jsonl. The numbers
# are only as quiet as the machine: run it on an otherwise idle node. A user edits STEPS, ROUNDS,
# and PYTHON (an interpreter with torch) if the default ones lack it.
#   bash jobs/bench-speed.sh [STEPS [ROUNDS]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5}
rounds=${2:-3}
. jobs/env.sh
mkdir -p runs
out=runs/bench-speed.jsonl
: > "$out"
py=
for cand in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$cand" -c 'import torch' 2> /dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || echo "no python3 with torch (python3-torch): the PyTorch column stays empty"
# model batch quant threads target-fraction-of-peak(% or -)
rows="resnet20 128 float 1 80
resnet20 128 float 2 80
resnet20 128 parametric_fp_d_xmax 1 80
resnet20 128 parametric_fp_d_xmax 2 80
resnet18 32 float 1 -
resnet18 32 float 2 -
resnet18 32 parametric_fp_d_xmax 1 -
resnet18 32 parametric_fp_d_xmax 2 -
mobilenetv2 32 float 1 50
mobilenetv2 32 float 2 50
mobilenetv2 32 parametric_fp_d_xmax 1 50
mobilenetv2 32 parametric_fp_d_xmax 2 50"
field() { sed -n "s/.*\"$2\": \"*\([0-9.e+-]*\).*/\1/p" <<< "$1"; }
median() { tr ' ' '\n' | sort -g | awk 'NF { v[++n] = $1 } END {
    if (n == 0) print "nan"; else print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "nan") printf "%.2f", a / b; else print "-" }'; }
declare -A train gf peak fwdgf rss ends torch
for ((r = 1; r <= rounds; r++)); do
    echo "round $r of $rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    while read -r model batch quant thr target; do
        q=(); [ "$quant" = float ] || q=(--quant "$quant")
        json=$("$mpq" bench --model "$model" --batch "$batch" --threads "$thr" --steps "$steps" \
            "${q[@]}" --json)
        echo "$json" >> "$out"
        key="$model $quant $thr"
        train[$key]+=" $(field "$json" train_images_per_s)"
        gf[$key]+=" $(field "$json" achieved_gflops)"
        fwdgf[$key]+=" $(field "$json" forward_gflops)"
        peak[$key]+=" $(field "$json" peak_gflops)"
        rss[$key]+=" $(field "$json" peak_rss_mb)"
        ends[$key]+=" $(field "$json" threads_end)"
        if [ -n "$py" ] && [ "$quant" = float ]; then
            json=$("$py" jobs/torch-step.py "$model" "$batch" "$thr" "$steps")
            echo "$json" >> "$out"
            torch[$model $thr]+=" $(field "$json" train_images_per_s)"
        fi
    done <<< "$rows"
done
printf '%-11s %-20s %4s %9s %7s %7s %6s %7s %6s %9s %7s %7s\n' model quant thr train_i/s \
    GF/s peak_GF %peak target fwd%pk torch_i/s mpq/pt rss_MB
while read -r model batch quant thr target; do
    key="$model $quant $thr"
    t=$(median <<< "${train[$key]}") g=$(median <<< "${gf[$key]}") p=$(median <<< "${peak[$key]}")
    f=$(median <<< "${fwdgf[$key]}") e=$(median <<< "${ends[$key]}")
    pt=$(median <<< "${torch[$model $thr]:-}")
    frac=$(awk -v a="$g" -v b="$p" 'BEGIN { printf "%.0f", 100 * a / b }')
    verdict=-
    [ "$target" = - ] || verdict="$target% $([ "$frac" -ge "$target" ] && echo met || echo BELOW)"
    printf '%-11s %-20s %4s %9.1f %7.1f %7.1f %5s%% %7s %5.0f%% %9s %7s %7.0f\n' "$model" "$quant" \
        "$thr$([ "$e" = "$thr" ] || echo ">$e")" "$t" "$g" "$p" "$frac" "$verdict" \
        "$(awk -v a="$f" -v b="$p" 'BEGIN { print 100 * a / b }')" "${pt/nan/-}" "$(ratio "$t" "$pt")" \
        "$(median <<< "${rss[$key]}")"
done <<< "$rows"
echo "cost of quantization (1 - quant / float of the medians; each round's in brackets;"
echo "target at most 7%):"
for model in resnet20 resnet18 mobilenetv2; do
    for thr in 1 2; do
        awk -v m="$model" -v t="$thr" -v f="${train[$model float $thr]}" \
            -v q="${train[$model parametric_fp_d_xmax $thr]}" \
            -v mf="$(median <<< "${train[$model float $thr]}")" \
            -v mq="$(median <<< "${train[$model parametric_fp_d_xmax $thr]}")" 'BEGIN {
            nf = split(f, fv, " "); split(q, qv, " "); each = ""
            for (i = 1; i <= nf; i++)
                each = each sprintf("%s%.1f%%", i > 1 ? " " : "", 100 * (1 - qv[i] / fv[i]))
            c = 100 * (1 - mq / mf)
            printf "  %-11s %s thread(s): %5.1f%% %-5s [%s]\n", m, t, c, (c <= 7) ? "met" : "ABOVE", each }'
    done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

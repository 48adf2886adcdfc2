#!/usr/bin/env bash
# The speed matrix of the compute core: `mpq bench` (the trainer's own step) for ResNet-20 (batch
# 128), ResNet-18 and MobileNetV2 (224x224, batch 32), float and with learned-step fake
# quantization (parametric_fp_d_xmax on weights and activations), on 1 and 2 threads, next to
# the same float training step in PyTorch (jobs/torch-step.py) where python3 can import torch.
# The matrix is run ROUNDS times over; in each round a float row and its quantized twin run back
# to back (the twin first in every other round, so that the machine's drift within a pair falls
# on either side alike), then the reference. Each row prints the medians over the rounds: training
# images/s, training GFLOP/s (3x the forward's multiply-adds x 2), the training's fraction of the
# BLIS sgemm peak measured in the same run (issue 19's targets: ResNet-20 80%,
# MobileNetV2 50%), the forward's fraction, mpq / PyTorch, peak memory, and the thread count the
# step ended on (threads_adapt lowers it when a core is shared: "2>1"). Then the cost of
# quantization per model and thread count: the median over the rounds of 1 - quant / float, each
# round's in brackets (target: at most 7%). Every run's JSON is kept in runs/bench-speed.jsonl. The numbers
# are only as quiet as the machine: run it on an otherwise idle node. A user edits STEPS, ROUNDS,
# and PYTHON (an interpreter with torch) if the default ones lack it.
#   bash jobs/bench-speed.sh [STEPS [ROUNDS]]
#   bash jobs/bench-speed.sh --summary      (the tables again, from runs/bench-speed.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5}
rounds=${2:-3}
. jobs/env.sh
mkdir -p runs
out=runs/bench-speed.jsonl
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
if [ "${1:-}" != --summary ]; then
    : > "$out"
    for ((r = 1; r <= rounds; r++)); do
        echo "round $r of $rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        order=(float parametric_fp_d_xmax)
        ((r % 2)) || order=(parametric_fp_d_xmax float)
        # the rows' model, batch and threads, each once
        while read -r model batch thr; do
            for quant in "${order[@]}"; do
                q=(); [ "$quant" = float ] || q=(--quant "$quant")
                "$mpq" bench --model "$model" --batch "$batch" --threads "$thr" \
                    --steps "$steps" "${q[@]}" --json >> "$out"
            done
            if [ -n "$py" ]; then
                "$py" jobs/torch-step.py "$model" "$batch" "$thr" "$steps" >> "$out"
            fi
        done < <(awk '!seen[$1 " " $2 " " $4]++ { print $1, $2, $4 }' <<< "$rows")
    done
fi
# the summary, from the JSON lines (in round order)
declare -A train gf frac fwdfrac rss ends torch
while read -r json; do
    model=$(sed -n 's/.*"model": "\([a-z0-9]*\)".*/\1/p' <<< "$json")
    thr=$(field "$json" threads)
    if [[ $json == *'"torch"'* ]]; then
        torch[$model $thr]+=" $(field "$json" train_images_per_s)"
        continue
    fi
    key="$model $(sed -n 's/.*"quant": "\([a-z_]*\)".*/\1/p' <<< "$json") $thr"
    p=$(field "$json" peak_gflops)
    train[$key]+=" $(field "$json" train_images_per_s)"
    gf[$key]+=" $(field "$json" achieved_gflops)"
    frac[$key]+=" $(awk -v a="$(field "$json" achieved_gflops)" -v b="$p" 'BEGIN { print 100 * a / b }')"
    fwdfrac[$key]+=" $(awk -v a="$(field "$json" forward_gflops)" -v b="$p" 'BEGIN { print 100 * a / b }')"
    rss[$key]+=" $(field "$json" peak_rss_mb)"
    ends[$key]+=" $(field "$json" threads_end)"
done < "$out"
printf '%-11s %-20s %4s %9s %7s %6s %8s %6s %9s %7s %7s\n' model quant thr train_i/s \
    GF/s %peak target fwd%pk torch_i/s mpq/pt rss_MB
while read -r model batch quant thr target; do
    key="$model $quant $thr"
    t=$(median <<< "${train[$key]:-}") fr=$(median <<< "${frac[$key]:-}")
    e=$(median <<< "${ends[$key]:-}") pt=$(median <<< "${torch[$model $thr]:-}")
    verdict=-
    [ "$target" = - ] || verdict="$target% $(awk -v a="$fr" -v b="$target" \
        'BEGIN { print (a >= b) ? "met" : "BELOW" }')"
    printf '%-11s %-20s %4s %9.1f %7.1f %5.0f%% %8s %5.0f%% %9s %7s %7.0f\n' "$model" "$quant" \
        "$thr$([ "$e" = "$thr" ] || echo ">$e")" "$t" "$(median <<< "${gf[$key]:-}")" "$fr" \
        "$verdict" "$(median <<< "${fwdfrac[$key]:-}")" "${pt/nan/-}" "$(ratio "$t" "$pt")" \
        "$(median <<< "${rss[$key]:-}")"
done <<< "$rows"
echo "cost of quantization (1 - quant / float per round, the float and quantized runs of a"
echo "round back to back; the median, each round's in brackets; target at most 7%):"
for model in resnet20 resnet18 mobilenetv2; do
    for thr in 1 2; do
        each=$(awk -v f="${train[$model float $thr]:-}" -v q="${train[$model parametric_fp_d_xmax $thr]:-}" \
            'BEGIN { n = split(f, fv, " "); split(q, qv, " ")
                     for (i = 1; i <= n; i++) printf "%.1f ", 100 * (1 - qv[i] / fv[i]) }')
        c=$(median <<< "$each")
        printf '  %-11s %s thread(s): %5.1f%% %-5s [%s]\n' "$model" "$thr" "$c" \
            "$(awk -v c="$c" 'BEGIN { print (c <= 7) ? "met" : "ABOVE" }')" "${each% }"
    done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

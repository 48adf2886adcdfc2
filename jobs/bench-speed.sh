#!/usr/bin/env bash
# The speed matrix of the compute core: `mpq bench` for ResNet-20 (batch 128), ResNet-18 and
# MobileNetV2 (224x224, batch 32), float and with learned-step fake quantization
# (parametric_fp_d_xmax on weights and activations), on 1 and 2 threads. Prints one row per run
# next to the images/s the framework must reach (README, "Speed"); the JSON of every run is kept in
# runs/bench-speed.jsonl. Run it on an otherwise idle node: the numbers are only as quiet as it.
#   bash jobs/bench-speed.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5}
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
printf '%-11s %-20s %3s %9s %7s %9s %8s %8s %6s %7s\n' model quant thr train_i/s target \
    fwd_i/s fwd_GF/s peak_GF fwd/pk rss_MB
while read -r model batch quant thr target; do
    q=(); [ "$quant" = float ] || q=(--quant "$quant")
    json=$("$mpq" bench --model "$model" --batch "$batch" --threads "$thr" --steps "$steps" \
        "${q[@]}" --json)
    echo "$json" >> "$out"
    train=$(field "$json" train_images_per_s)
    peak=$(field "$json" peak_gflops)
    fwdgf=$(field "$json" forward_gflops)
    printf '%-11s %-20s %3s %9.1f %7s %9.1f %8.1f %8.1f %5.0f%% %7.0f %s\n' "$model" "$quant" "$thr" \
        "$train" "$target" "$(field "$json" forward_images_per_s)" "$fwdgf" "$peak" \
        "$(awk -v a="$fwdgf" -v b="$peak" 'BEGIN { print 100 * a / b }')" \
        "$(field "$json" peak_rss_mb)" \
        "$(awk -v a="$train" -v b="$target" 'BEGIN { print (a >= b) ? "met" : "BELOW" }')"
done <<< "$targets"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

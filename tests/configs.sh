#!/usr/bin/env bash
# Every section of every file in configs/, and of tests/reference_style.cfg (written as the
# reference's own files are), starts training: one step on tiny synthetic data of the file's
# shape (28x28x1 Fashion-MNIST, 32x32x3 CIFAR-10, 224x224x3 ImageNet), run by jobs/chain.sh --all
# so that a section whose weightfile is another section's result starts from that section's
# result (a float run's parameters for *_INIT, a quantized run's, quantizer values included, for
# *_FT); a weightfile from outside the file is replaced by a float checkpoint made first (FP32, or
# [DEFAULT] when the file has no FP32). Checks: every run trains its step, and where a chained
# file has *_FT sections some run starts from a file's quantizer values.
set -euo pipefail
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
mpq="${top_builddir:?set by make check}/mpq"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
passed=0
failed=0
: "${top_srcdir:?set by make check}"
for cfg in "$top_srcdir"/configs/*.cfg "$top_srcdir"/tests/reference_style.cfg; do
    name=$(basename "$cfg" .cfg)
    case "$name" in
        fashion*) shape="synthetic_height=28 synthetic_width=28 synthetic_channels=1 num_classes=10" ;;
        cifar* | reference*) shape="synthetic_height=32 synthetic_width=32 synthetic_channels=3 num_classes=10" ;;
        *) shape="synthetic_height=224 synthetic_width=224 synthetic_channels=3 num_classes=1000" ;;
    esac
    # a checkpoint after the step: what chained sections start from (a run under budget has no
    # params_best.h5 after one step)
    common="train_data=synthetic val_data=synthetic synthetic_samples=8 batch_size=4 val_batch_size=4
            max_steps=1 progress=false threads=1 checkpoint_every_minutes=0 checkpoint_every_steps=1"
    sets=()
    for kv in $shape $common; do sets+=(--set "$kv"); done
    float=FP32
    experiments=$("$mpq" train --cfg "$cfg" --list)
    grep -qx FP32 <<< "$experiments" || float=DEFAULT
    if ! "$mpq" train --cfg "$cfg" "$float" "${sets[@]}" --set "output_dir=$tmp/$name-float" \
        > "$tmp/float.log" 2>&1; then
        cat "$tmp/float.log"
        echo "FAIL $name [$float]"
        exit 1
    fi
    best="$tmp/$name-float/params_best.h5"
    [ -f "$best" ] || { echo "FAIL $name: no $best"; exit 1; }
    runs=$(MPQ="$mpq" bash "$top_srcdir/jobs/chain.sh" --dry-run --all "$cfg" "${sets[@]}" |
        sed -n 's/.*: \([0-9]*\) run(s)$/\1/p')
    if MPQ="$mpq" bash "$top_srcdir/jobs/chain.sh" --all --root "$tmp/$name" --external "$best" \
        --result checkpoints/ckpt-000000001.h5 "$cfg" "${sets[@]}" > "$tmp/chain.log" 2>&1; then :; fi
    done_runs=$(grep -c '^chain: \[.*\] done$' "$tmp/chain.log" || true)
    one_step=$(grep -c '^done: 1 steps' "$tmp/chain.log" || true)
    kept=$(grep -c "and [1-9][0-9]* quantizers' values" "$tmp/chain.log" || true)
    if [ "$done_runs" -ne "$runs" ] || [ "$one_step" -ne "$runs" ]; then
        echo "FAIL $name: $done_runs of $runs runs done, $one_step trained a step:"
        tail -8 "$tmp/chain.log"
        failed=$((failed + runs - done_runs))
    elif grep -q '_FT\]' "$cfg" && [ "$kept" -eq 0 ]; then
        echo "FAIL $name: no *_FT run started from a file's quantizer values"
        failed=$((failed + 1))
    fi
    passed=$((passed + done_runs))
    echo "$name: $done_runs sections trained in chain order ($kept started from quantizer values)"
done
echo "configs: $passed sections trained, $failed failed"
[ "$failed" -eq 0 ]

#!/bin/sh
# Every section of every file in configs/ starts training: one step on tiny synthetic data of the
# file's shape (28x28x1 Fashion-MNIST, 32x32x3 CIFAR-10, 224x224x3 ImageNet), with the
# weightfile of the *_INIT experiments pointing at a float checkpoint made first.
set -u
mpq="$top_builddir/mpq"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
passed=0
failed=0
for cfg in "$top_srcdir"/configs/*.cfg; do
    name=$(basename "$cfg" .cfg)
    case "$name" in
        fashion*) shape="synthetic_height=28 synthetic_width=28 synthetic_channels=1 num_classes=10" ;;
        cifar*) shape="synthetic_height=32 synthetic_width=32 synthetic_channels=3 num_classes=10" ;;
        *) shape="synthetic_height=224 synthetic_width=224 synthetic_channels=3 num_classes=1000" ;;
    esac
    common="train_data=synthetic val_data=synthetic synthetic_samples=8 batch_size=4 val_batch_size=4
            max_steps=1 progress=false threads=1 checkpoint_every_minutes=0"
    sets=""
    for kv in $shape $common; do sets="$sets --set $kv"; done
    # the float checkpoint the *_INIT experiments start from (every file has an FP32 baseline)
    # shellcheck disable=SC2086
    "$mpq" train --cfg "$cfg" FP32 $sets --set "output_dir=$tmp/$name-float" \
        > "$tmp/float.log" 2>&1 || { cat "$tmp/float.log"; echo "FAIL $name [FP32]"; exit 1; }
    best="$tmp/$name-float/params_best.h5"
    [ -f "$best" ] || { echo "FAIL $name: no $best"; exit 1; }
    for exp in $("$mpq" train --cfg "$cfg" --list); do
        # sections with a weightfile load the float checkpoint made above
        wf=""
        if sed -n "/^\[$exp\]/,/^\[/p" "$cfg" | grep -q '^weightfile'; then wf="$best"; fi
        # shellcheck disable=SC2086
        if "$mpq" train --cfg "$cfg" "$exp" $sets --set "output_dir=$tmp/$name-$exp" \
               --set "weightfile=$wf" > "$tmp/run.log" 2>&1 &&
           grep -q '^done: 1 steps' "$tmp/run.log"; then
            passed=$((passed + 1))
        else
            echo "FAIL $name [$exp]:"; tail -5 "$tmp/run.log"; failed=$((failed + 1))
        fi
    done
    echo "$name: sections checked"
done
echo "configs: $passed sections trained, $failed failed"
[ "$failed" -eq 0 ]

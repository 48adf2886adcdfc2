#!/bin/sh
# End to end on real JPEG files, ImageNet style, on 2 MPI ranks (tests/mpirun.sh):
#  1. tests/system/make_jpegs writes class folders of JPEGs made from Fashion-MNIST (Debian's
#     dataset-fashion-mnist), upscaled to ImageNet-like sizes and aspect ratios;
#  2. `mpq prep imagefolder` converts them under mpirun (train, then val with --stats-from);
#  3. ResNet-18 and MobileNetV2 train a few steps on 224x224 random-resized crops with learned
#     quantizers (step size and range) under the paper's budgets, checkpointing; a run cut at half
#     the steps and resumed gives the uninterrupted run's steps.csv exactly;
#  4. `mpq eval` of the checkpoint on 2 ranks, `mpq export` and `mpq eval` of the export.
# ResNet-18 (1000 outputs, as on ImageNet) must print "224x224x3 input" and "1814.1 M
# multiply-adds per sample" on its model line.
# Tiny batches keep it to a few minutes on 2 cores. FASHION_MNIST_DIR overrides the data path.
set -eu
mpq="$top_builddir/mpq"
make_jpegs="$top_builddir/tests/system/make_jpegs"
fm="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
if [ ! -f "$fm/train-images-idx3-ubyte.gz" ]; then
    echo "SKIP: no Fashion-MNIST in $fm (apt-get install dataset-fashion-mnist; jobs/install-deps.sh)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
mpirun2() { MPQ_TEST_RANKS=2 sh "$top_srcdir/tests/mpirun.sh" "$@"; }
pass() { echo "PASS $1"; }
flunk() { echo "FAIL $1"; fail=1; }
# step LOG COMMAND...: runs a command into LOG, shows the log and stops on failure
step() {
    log=$1
    shift
    "$@" > "$log" 2>&1 || { cat "$log"; echo "FAIL: $*"; exit 1; }
}

# 1. JPEGs: 60 training images (images 0..59), 20 validation images (the test set's 0..19)
mkdir -p "$tmp/jpeg"
step "$tmp/jpeg.log" "$make_jpegs" "$fm/train-images-idx3-ubyte.gz" \
    "$fm/train-labels-idx1-ubyte.gz" "$tmp/jpeg/train" 0 60
step "$tmp/jpeg.log" "$make_jpegs" "$fm/t10k-images-idx3-ubyte.gz" \
    "$fm/t10k-labels-idx1-ubyte.gz" "$tmp/jpeg/val" 0 20
ls "$tmp/jpeg/val" > "$tmp/classes.txt"
n_train=$(find "$tmp/jpeg/train" -name '*.jpg' | wc -l)
[ "$n_train" -eq 60 ] && pass "60 training JPEGs written" || flunk "JPEGs: $n_train"

# 2. shards: short side 256, centre square, 2 ranks
step "$tmp/prep-train.log" mpirun2 "$mpq" prep imagefolder --dir "$tmp/jpeg/train" \
    -o "$tmp/data/train" --size 256 --shards 4
if [ "$(ls "$tmp/jpeg/train" | wc -l)" -eq "$(wc -l < "$tmp/classes.txt")" ]; then
    step "$tmp/prep-val.log" mpirun2 "$mpq" prep imagefolder --dir "$tmp/jpeg/val" \
        -o "$tmp/data/val" --size 256 --shards 2 --classes "$tmp/classes.txt" \
        --stats-from "$tmp/data/train"
else
    flunk "the 60 training images do not cover the classes of the validation images"
fi
grep -q "60 images 256x256x3" "$tmp/prep-train.log" && pass "prep imagefolder: 60 images" ||
    { cat "$tmp/prep-train.log"; flunk "prep imagefolder train"; }

cat > "$tmp/t.cfg" <<CFG
[DEFAULT]
train_data = $tmp/data/train
val_data = $tmp/data/val
augment = imagenet
crop_size = 224
val_resize = 256
batch_size = 4
val_batch_size = 10
epochs = 1
max_steps = 4
optimizer = momentum
initial_learning_rate = 0.01
w_quantize = parametric_fp_d_xmax
a_quantize = parametric_fp_d_xmax_relu
target_activation_type = max
budget_validate_every_steps = 0
checkpoint_every_steps = 2
checkpoint_every_minutes = 0
progress = false
threads = 1
[resnet18]
model = resnet18
num_classes = 1000
target_weight_kbytes = 5703.09
target_activation_kbytes = 392
[mobilenetv2]
model = mobilenetv2
target_weight_kbytes = 1694.71
target_activation_kbytes = 588
CFG

# 3.-4. per model
for model in resnet18 mobilenetv2; do
    full="$tmp/$model-full" half="$tmp/$model-half"
    step "$full.log" mpirun2 "$mpq" train --cfg "$tmp/t.cfg" "$model" --set "output_dir=$full"
    step "$half.log" mpirun2 "$mpq" train --cfg "$tmp/t.cfg" "$model" --set "output_dir=$half" \
        --set max_steps=2
    step "$half-resume.log" mpirun2 "$mpq" train --cfg "$tmp/t.cfg" "$model" \
        --set "output_dir=$half" --resume auto
    grep -q "^model $model: 224x224x3 input" "$full.log" && pass "$model trains on 224x224x3" ||
        flunk "$model model line: $(grep '^model' "$full.log")"
    grep -q "resuming from .*ckpt-000000002.h5" "$half-resume.log" &&
        pass "$model resumed from step 2" || flunk "$model did not resume"
    [ "$(wc -l < "$full/steps.csv")" -eq 5 ] && pass "$model: 4 steps" || flunk "$model steps"
    if cmp -s "$full/steps.csv" "$half/steps.csv"; then
        pass "$model: steps.csv of 2 + resume + 2 == 4 steps"
    else
        flunk "$model: resumed steps.csv differs"
        diff "$full/steps.csv" "$half/steps.csv" | head
    fi
    ckpt="$full/checkpoints/ckpt-000000004.h5"
    step "$tmp/$model-eval.log" mpirun2 "$mpq" eval "$ckpt" --data "$tmp/data/val"
    grep -q "20 samples, 2 rank(s)" "$tmp/$model-eval.log" &&
        grep -q "^accuracy [0-9.]*%  error [0-9.]*%  cross-entropy [0-9]" "$tmp/$model-eval.log" &&
        pass "$model: mpq eval of the checkpoint" || { cat "$tmp/$model-eval.log"; flunk "eval"; }
    step "$tmp/$model-export.log" mpirun2 "$mpq" export "$ckpt" -o "$tmp/$model-export.h5"
    step "$tmp/$model-eval-export.log" mpirun2 "$mpq" eval "$tmp/$model-export.h5" \
        --data "$tmp/data/val"
    grep -q "^accuracy [0-9.]*%" "$tmp/$model-eval-export.log" &&
        pass "$model: mpq export, and mpq eval of the export" ||
        { cat "$tmp/$model-eval-export.log"; flunk "eval of the export"; }
done
grep -q "1814.1 M multiply-adds per sample" "$tmp/resnet18-full.log" &&
    pass "ResNet-18: 1814.1 M multiply-adds per sample" ||
    flunk "ResNet-18 model line: $(grep '^model' "$tmp/resnet18-full.log")"
exit $fail

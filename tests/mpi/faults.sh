#!/usr/bin/env bash
# Fault injection with the real `mpq` binary on 2 ranks (tests/mpirun.sh). Each fault must end
# every rank with a message and a nonzero exit status within a time bound, and the newest complete
# checkpoint must still load and resume to exactly the steps.csv of an uninterrupted run:
#  - ranks that see different data (two shard directories behind one relative train_data path,
#    as stale node-local copies would be) or a different --set: one message, no hang;
#  - a full disk (a small tmpfs as output_dir) at a checkpoint, at params_best.h5 and at an
#    export, each with the free-space check and without it (MPQ_TEST_SKIP_RESERVE=1, so the
#    write fails inside parallel HDF5, which either reports it or leaves the ranks in different
#    collectives until the save watchdog, MPQ_SAVE_TIMEOUT_S=20, ends them): the earlier files
#    stay intact;
#  - one rank killed with SIGKILL mid-step and mid-save;
#  - a shard truncated mid-epoch; a shard removed before a resume;
#  - a corrupted newest checkpoint: eval refuses it naming the tensor, --resume auto falls back to
#    the previous one with a warning;
#  - SIGTERM to mpiexec at random moments while checkpoints are written (FAULTS_ROUNDS rounds,
#    default 20), then resume to the end.
# The tmpfs parts need root (mount); without it they are skipped with a note. Edit FAULTS_ROUNDS
# or BOUND_S (seconds a faulty job may take to end) in the environment.
set -euo pipefail
mpq="$top_builddir/mpq"
rounds=${FAULTS_ROUNDS:-20}
bound=${BOUND_S:-60}
tmp=$(mktemp -d)
mnt="$tmp/mnt"
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
    rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
pass() { echo "PASS $*"; }
bad() { echo "FAIL $*"; fail=1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
within() { awk -v s="$1" -v b="$bound" 'BEGIN { exit !(s < b) }'; }
mpirun() { MPQ_TEST_RANKS=${RANKS:-2} sh "$top_srcdir/tests/mpirun.sh" "$@"; }
train() { mpirun "$mpq" train --cfg "$tmp/t.cfg" "$@"; }
# expect_fail LOG STATUS SECONDS PATTERN WHAT: a clean failure (status 1) in time with the message
expect_fail() {
    if [ "$2" -eq 1 ] && within "$3" && grep -q -- "$4" "$1"; then
        pass "$5: exit 1 in $3 s: $(grep -m1 -o 'error: .*' "$1" | cut -c1-150)"
    else
        bad "$5: exit $2 in $3 s"
        tail -20 "$1"
    fi
}
same_steps() { # same_steps DIR WHAT: DIR/steps.csv equals the uninterrupted run's
    if cmp -s "$tmp/ref/steps.csv" "$1/steps.csv"; then
        pass "$2: steps.csv equals the uninterrupted run's"
    else
        bad "$2: steps.csv differs"
        diff "$tmp/ref/steps.csv" "$1/steps.csv" | head -5 || true
    fi
}
newest() { # the newest complete checkpoint of run directory $1, or nothing
    [ -d "$1/checkpoints" ] || return 0
    find "$1/checkpoints" -name 'ckpt-*.h5' | sort | tail -1
}
loads() { # loads CKPT WHAT: the checkpoint loads completely (every tensor, checksums) in eval
    if [ -n "$1" ] && mpirun "$mpq" eval "$1" --data synthetic > "$tmp/eval.log" 2>&1; then
        pass "$2: $(basename "$1") loads"
    else
        bad "$2: newest complete checkpoint '$1' does not load"
        tail -5 "$tmp/eval.log"
    fi
}
resume_to_end() { # resume_to_end DIR WHAT: --resume auto finishes and matches the reference
    if train T --set "output_dir=$1" --resume auto >> "$1.resume.log" 2>&1; then
        same_steps "$1" "$2"
    else
        bad "$2: resume failed"
        tail -10 "$1.resume.log"
    fi
}
. "$top_srcdir/tests/testlib.sh" # launcher, wait_for
be32() {
    printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))"
    printf "\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"
}
shards() { # shards DIR SEED: 128 8x8 grey images in 4 shards (IDX files through `mpq prep idx`)
    local raw="$tmp/raw$2"
    mkdir -p "$raw"
    { printf '\000\000\010\003'; be32 128; be32 8; be32 8
      LC_ALL=C awk -v s="$2" 'BEGIN { srand(s); for (i = 0; i < 8192; i++)
                                      printf "%c", int(rand() * 200) + 20 }'; } > "$raw/img.idx"
    { printf '\000\000\010\001'; be32 128
      LC_ALL=C awk -v s="$2" 'BEGIN { srand(s + 7); for (i = 0; i < 128; i++)
                                      printf "%c", int(rand() * 10) }'; } > "$raw/lab.idx"
    "$mpq" prep idx --images "$raw/img.idx" --labels "$raw/lab.idx" -o "$1" --shards 4 \
        > "$raw/prep.log" 2>&1 || { cat "$raw/prep.log"; exit 1; }
}
tiny_cfg "$tmp/t.cfg" T epochs=100 initial_learning_rate=0.02 checkpoint_every_steps=2 \
    optimizer=momentum target_weight_kbytes=1000 target_activation_kbytes=-1
train T --set "output_dir=$tmp/ref" > "$tmp/ref.log" 2>&1 || { cat "$tmp/ref.log"; exit 1; }
ckpt_bytes=$(stat -c %s "$tmp/ref/checkpoints/ckpt-000000008.h5")
best_bytes=$(stat -c %s "$tmp/ref/params_best.h5")

# ---- ranks that disagree
shards "$tmp/node0/data" 1
shards "$tmp/node1/data" 2
run_mpmd() { # run_mpmd LOG DIR0 DIR1 [args of rank 1]: one rank in each working directory
    local log=$1 d0=$2 d1=$3
    shift 3
    local s
    s=$(now)
    status=0
    timeout 300 mpiexec --oversubscribe --bind-to none \
        -n 1 -wdir "$d0" "$mpq" train --cfg "$tmp/t.cfg" T --set train_data=data \
        --set val_data=None --set "output_dir=$tmp/mpmd" : \
        -n 1 -wdir "$d1" "$mpq" train --cfg "$tmp/t.cfg" T --set train_data=data \
        --set val_data=None --set "output_dir=$tmp/mpmd" "$@" > "$log" 2>&1 || status=$?
    secs=$(since "$s")
}
run_mpmd "$tmp/data.log" "$tmp/node0" "$tmp/node1"
expect_fail "$tmp/data.log" "$status" "$secs" \
    "rank 1 sees other data .* the layout fingerprint .* of train_data 'data'" \
    "different shards behind one train_data path"
run_mpmd "$tmp/set.log" "$tmp/node0" "$tmp/node0" --set seed=5
expect_fail "$tmp/set.log" "$status" "$secs" "rank 1 sees other .* effective configuration" \
    "a --set on one rank only"

# ---- a full disk at each kind of save
if [ "$(id -u)" -eq 0 ] && mkdir -p "$mnt" && mount -t tmpfs -o size=1m tmpfs "$mnt" 2>/dev/null; then
    umount "$mnt"
    full_disk() { # full_disk KIB KIND SKIP PATTERN [train args...]
        local kib=$1 kind=$2 skip=$3 pat=$4 s
        shift 4
        mount -t tmpfs -o "size=${kib}k" tmpfs "$mnt"
        s=$(now)
        status=0
        MPQ_TEST_SKIP_RESERVE=$skip MPQ_SAVE_TIMEOUT_S=20 train T --set "output_dir=$mnt/o" "$@" \
            > "$tmp/full.log" 2>&1 || status=$?
        secs=$(since "$s")
        expect_fail "$tmp/full.log" "$status" "$secs" "$pat" \
            "disk full at $kind (free-space check $([ "$skip" = 1 ] && echo off || echo on))"
    }
    for skip in 0 1; do
        # a checkpoint: the first fits, the second does not
        full_disk $((2 * ckpt_bytes / 1024 - 64)) "a checkpoint" $skip \
            "saving checkpoint '.*ckpt-000000004.h5'\|writing '.*ckpt-000000004.h5.tmp' has not finished" \
            --set val_data=None
        loads "$(newest "$mnt/o")" "after a full disk at a checkpoint"
        rm -rf "$tmp/resumed"
        cp -r "$mnt/o" "$tmp/resumed"
        umount "$mnt"
        resume_to_end "$tmp/resumed" "resumed after a full disk at a checkpoint"
        # params_best.h5: the first fits, its replacement does not; the first stays intact
        full_disk $((2 * best_bytes / 1024 - 64)) "params_best.h5" $skip \
            "saving checkpoint '.*params_best.h5'\|writing '.*params_best.h5.tmp' has not finished" \
            --set checkpoint_every_steps=0 --set checkpoint_every_minutes=0
        "$mpq" inspect "$mnt/o/params_best.h5" > "$tmp/inspect.log" 2>&1 || true
        if grep -q "^step 1:" "$tmp/inspect.log"; then
            pass "the earlier params_best.h5 (step 1) is intact"
        else bad "params_best.h5 damaged"; fi
        umount "$mnt"
        # an export over an earlier export of the same size
        mpirun "$mpq" export "$tmp/ref/checkpoints/ckpt-000000008.h5" -o "$tmp/model.h5" \
            > "$tmp/export.log" 2>&1 || { cat "$tmp/export.log"; exit 1; }
        mount -t tmpfs -o "size=$(($(stat -c %s "$tmp/model.h5") * 3 / 2048))k" tmpfs "$mnt"
        cp "$tmp/model.h5" "$mnt/model.h5"
        s=$(now)
        status=0
        MPQ_TEST_SKIP_RESERVE=$skip MPQ_SAVE_TIMEOUT_S=20 mpirun "$mpq" export \
            "$tmp/ref/checkpoints/ckpt-000000008.h5" -o "$mnt/model.h5" > "$tmp/full.log" 2>&1 ||
            status=$?
        expect_fail "$tmp/full.log" "$status" "$(since "$s")" \
            "exporting '.*model.h5'\|writing '.*model.h5.tmp' has not finished" \
            "disk full at an export (free-space check $([ "$skip" = 1 ] && echo off || echo on))"
        if cmp -s "$tmp/model.h5" "$mnt/model.h5" && [ -z "$(find "$mnt" -name '*.tmp*')" ]; then
            pass "the earlier export is intact, no temporary left"
        else bad "the earlier export changed or a temporary was left"; fi
        umount "$mnt"
    done
else
    echo "SKIP full-disk faults: mounting a tmpfs needs root"
fi

# ---- one rank killed mid-step and mid-save
kill_rank() { # kill_rank DIR WAIT_FILE WHAT [env]: SIGKILL to one rank once WAIT_FILE exists
    local d=$1 file=$2 what=$3 s
    shift 3
    env "$@" MPQ_TEST_RANKS=2 sh "$top_srcdir/tests/mpirun.sh" "$mpq" train --cfg "$tmp/t.cfg" T \
        --set "output_dir=$d" > "$d.log" 2>&1 &
    pid=$!
    if ! wait_for 120 test -e "$file"; then
        bad "$what: $file never appeared"
        tail "$d.log"
        return
    fi
    kill -KILL "$(pgrep -P "$(launcher "$pid")" | tail -1)"
    s=$(now)
    status=0
    wait "$pid" || status=$?
    pid=
    secs=$(since "$s")
    if [ "$status" -ne 0 ] && within "$secs"; then
        pass "$what: the job ended in $secs s (exit $status)"
    else bad "$what: exit $status after $secs s"; fi
    loads "$(newest "$d")" "$what"
    resume_to_end "$d" "$what"
}
kill_rank "$tmp/kstep" "$tmp/kstep/checkpoints/ckpt-000000002.h5" "a rank killed mid-step"
kill_rank "$tmp/ksave" "$tmp/ksave/checkpoints/ckpt-000000004.h5.tmp" "a rank killed mid-save" \
    MPQ_TEST_SAVE_DELAY_MS=3000

# ---- a shard that goes bad mid-epoch, one that is gone at resume
shards "$tmp/sh/data" 3
train T --set "train_data=$tmp/sh/data" --set val_data=None --set max_steps=200 \
    --set "output_dir=$tmp/sh/o" > "$tmp/sh.log" 2>&1 &
pid=$!
wait_for 120 test -e "$tmp/sh/o/checkpoints/ckpt-000000002.h5" || { tail "$tmp/sh.log"; exit 1; }
: > "$tmp/sh/data/shard-00002.h5"
s=$(now)
status=0
wait "$pid" || status=$?
pid=
expect_fail "$tmp/sh.log" "$status" "$(since "$s")" "shard '.*shard-00002.h5' changed while training" \
    "a shard truncated mid-epoch"
rm "$tmp/sh/data/shard-00002.h5"
s=$(now)
status=0
train T --set "train_data=$tmp/sh/data" --set val_data=None --set max_steps=200 \
    --set "output_dir=$tmp/sh/o" --resume auto > "$tmp/sh2.log" 2>&1 || status=$?
expect_fail "$tmp/sh2.log" "$status" "$(since "$s")" "steps per epoch" \
    "a shard removed before a resume (the checkpoint's data no longer fits)"

# ---- a corrupted newest checkpoint
cp -r "$tmp/ref" "$tmp/corrupt"
c8="$tmp/corrupt/checkpoints/ckpt-000000008.h5"
w=/params/res1/layer1/basicblock1/quantized_conv/W
off=$(h5dump -p -H -d "$w" "$c8" | sed -n 's/.*OFFSET \([0-9]*\).*/\1/p')
printf '\377\377\377\377' | dd of="$c8" bs=1 seek=$((off + 400)) conv=notrunc status=none
status=0
mpirun "$mpq" eval "$c8" > "$tmp/eval_bad.log" 2>&1 || status=$?
expect_fail "$tmp/eval_bad.log" "$status" 0 "tensor '$w' does not match its stored checksum" \
    "eval of a corrupted checkpoint"
train T --set "output_dir=$tmp/corrupt" --resume auto > "$tmp/corrupt.log" 2>&1 ||
    { bad "resume over a corrupted newest checkpoint failed"; tail "$tmp/corrupt.log"; }
if grep -q "skipping checkpoint: .*ckpt-000000008.h5.*does not match its stored checksum" \
    "$tmp/corrupt.log" && grep -q "resuming from .*ckpt-000000006.h5" "$tmp/corrupt.log"; then
    pass "--resume auto skips the corrupted newest checkpoint with a warning, resumes at step 6"
else bad "--resume auto over a corrupted checkpoint"; grep -i 'skip\|resum' "$tmp/corrupt.log"; fi
same_steps "$tmp/corrupt" "resumed from the checkpoint before the corrupted one"

# ---- SIGTERM to mpiexec at random moments while checkpoints are written
d="$tmp/term"
tiny_cfg "$tmp/t.cfg" TERM shortcut_type=None val_data=None val_batch_size=100 w_quantize=None \
    a_quantize=None target_weight_kbytes=-1 target_activation_kbytes=-1 optimizer=momentum \
    initial_learning_rate=0.1 epochs=100 max_steps=16 checkpoint_every_steps=1 keep_checkpoints=2
train TERM --set "output_dir=$tmp/term_ref" > "$tmp/term_ref.log" 2>&1 ||
    { cat "$tmp/term_ref.log"; exit 1; }
in_save=0
worst=0
done_early=0
for i in $(seq 1 "$rounds"); do
    touch "$tmp/round"
    MPQ_TEST_SAVE_DELAY_MS=300 MPQ_TEST_RANKS=2 sh "$top_srcdir/tests/mpirun.sh" -x \
        MPQ_TEST_SAVE_DELAY_MS "$mpq" train --cfg "$tmp/t.cfg" TERM --set "output_dir=$d" \
        --resume auto >> "$d.log" 2>&1 &
    pid=$!
    sleep "$(awk -v i="$i" 'BEGIN { srand(i); printf "%.2f", 1.5 + 3 * rand() }')"
    kill -TERM "$(launcher "$pid")" 2>/dev/null || true
    s=$(now)
    status=0
    wait "$pid" || status=$?
    pid=
    secs=$(since "$s")
    worst=$(awk -v a="$worst" -v b="$secs" 'BEGIN { print (b > a ? b : a) }')
    if [ "$status" -eq 0 ]; then done_early=1; break; fi
    [ -n "$(find "$d/checkpoints" -name '*.tmp' -newer "$tmp/round" 2>/dev/null)" ] &&
        in_save=$((in_save + 1))
    c=$(newest "$d")
    if [ -n "$c" ] && ! "$mpq" inspect "$c" > /dev/null 2>&1; then
        bad "SIGTERM round $i: newest checkpoint $c does not open"
    fi
done
if within "$worst"; then pass "SIGTERM: every job ended within $worst s ($in_save kill(s) left a save unfinished)"
else bad "SIGTERM: a job took $worst s to end"; fi
loads "$(newest "$d")" "after $i SIGTERM round(s)"
if [ "$done_early" -eq 0 ]; then
    train TERM --set "output_dir=$d" --resume auto >> "$d.log" 2>&1 ||
        { bad "final resume after SIGTERM rounds"; tail "$d.log"; }
fi
if cmp -s "$tmp/term_ref/steps.csv" "$d/steps.csv"; then
    pass "after $i SIGTERM rounds the resumed steps.csv equals the uninterrupted run's"
else bad "steps.csv after SIGTERM rounds"; diff "$tmp/term_ref/steps.csv" "$d/steps.csv" | head -5; fi
exit $fail

#!/bin/sh
# Checkpoints under failure, with the real `mpq` binary on 2 ranks (tests/mpirun.sh):
#  - ranks killed with SIGKILL while a save waits before its rename (MPQ_TEST_SAVE_DELAY_MS)
#    leave the previous checkpoint loadable, and --resume auto continues from it to the same
#    steps.csv as an uninterrupted run;
#  - SIGUSR1 after the ranks report their handlers: a checkpoint and exit status 75, and
#    --resume auto continues without duplicate or missing steps;
#  - `mpq eval` of a checkpoint and of its export (plain and bit-packed) give the same accuracy;
#    `mpq inspect` shows both;
#  - a checkpoint as the weightfile of another run.
set -eu
mpq="$top_builddir/mpq"
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
. "$top_srcdir/tests/testlib.sh" # wait_for, launcher
mpirun() { MPQ_TEST_RANKS=${RANKS:-2} sh "$top_srcdir/tests/mpirun.sh" "$mpq" "$@"; }
train() { # train DIR [args...]: a training run that must succeed
    d=$1
    shift
    mpirun train --cfg "$tmp/t.cfg" T --set "output_dir=$tmp/$d" "$@" >> "$tmp/$d.log" 2>&1 ||
        { cat "$tmp/$d.log"; exit 1; }
}
tiny_cfg "$tmp/t.cfg" T epochs=100 initial_learning_rate=0.02 checkpoint_every_steps=2 \
    optimizer=momentum target_weight_kbytes=-1 target_activation_kbytes=-1

# ---- SIGKILL in the middle of a save
train full
MPQ_TEST_SAVE_DELAY_MS=3000 mpirun train --cfg "$tmp/t.cfg" T --set "output_dir=$tmp/kill" \
    > "$tmp/kill.log" 2>&1 &
pid=$!
ck="$tmp/kill/checkpoints"
if ! wait_for 60 test -f "$ck/ckpt-000000002.h5" ||
    ! wait_for 60 test -f "$ck/ckpt-000000004.h5.tmp"; then
    echo "FAIL the delayed save did not start"; cat "$tmp/kill.log"; exit 1
fi
pkill -KILL -P "$(launcher "$pid")" # the ranks
wait "$pid" || true
pid=
if [ -f "$ck/ckpt-000000004.h5" ]; then echo "FAIL the killed save was completed"; fail=1; fi
if "$mpq" inspect "$ck/ckpt-000000002.h5" > "$tmp/inspect.log" 2>&1 &&
    grep -q "^step 2:" "$tmp/inspect.log"; then
    echo "PASS the previous checkpoint is intact after SIGKILL during a save"
else echo "FAIL previous checkpoint"; cat "$tmp/inspect.log"; fail=1; fi
train kill --resume auto
if grep -q "resuming from .*ckpt-000000002.h5" "$tmp/kill.log"; then
    echo "PASS --resume auto picked step 2"
else echo "FAIL --resume auto"; fail=1; fi
if cmp -s "$tmp/full/steps.csv" "$tmp/kill/steps.csv"; then
    echo "PASS steps.csv after the crash == uninterrupted"
else
    echo "FAIL steps.csv after the crash"; diff "$tmp/full/steps.csv" "$tmp/kill/steps.csv" | head
    fail=1
fi
ls "$ck" | grep -q tmp && { echo "FAIL a temporary was left"; fail=1; }

# ---- SIGUSR1
mpirun train --cfg "$tmp/t.cfg" T --set "output_dir=$tmp/sig" --set max_steps=100000 \
    --set checkpoint_every_steps=0 > "$tmp/sig.log" 2>&1 &
pid=$!
wait_for 60 grep -q "signal handlers installed on 2 rank" "$tmp/sig.log" ||
    { cat "$tmp/sig.log"; exit 1; }
kill -USR1 "$(launcher "$pid")" # mpiexec forwards it to the ranks
status=0
wait "$pid" || status=$?
pid=
if [ "$status" -eq 75 ] && grep -q "stopped by SIGUSR1 after step" "$tmp/sig.log"; then
    echo "PASS SIGUSR1: checkpoint and exit status 75"
else echo "FAIL SIGUSR1: status $status"; tail -20 "$tmp/sig.log"; fail=1; fi
last=$(ls "$tmp/sig/checkpoints" | tail -1)
s=$(echo "$last" | sed 's/ckpt-0*\([0-9]*\)\.h5/\1/')
train sig --resume auto --set max_steps=$((s + 3)) --set checkpoint_every_steps=0
if cut -d, -f1 "$tmp/sig/steps.csv" | tail -n +2 |
    awk -v n=$((s + 3)) '$1 != NR - 1 { bad = 1 } END { exit bad || NR != n }'; then
    echo "PASS resumed after SIGUSR1 at step $s: steps 0..$((s + 2)) once each"
else echo "FAIL steps after SIGUSR1"; fail=1; fi

# ---- export and eval
c="$tmp/full/checkpoints/ckpt-000000008.h5"
mpirun eval "$c" > "$tmp/eval_ckpt.log" 2>&1 || { cat "$tmp/eval_ckpt.log"; exit 1; }
for pack in "" --pack; do
    mpirun export "$c" -o "$tmp/model$pack.h5" $pack > "$tmp/export.log" 2>&1 ||
        { cat "$tmp/export.log"; exit 1; }
    mpirun eval "$tmp/model$pack.h5" > "$tmp/eval_export.log" 2>&1 ||
        { cat "$tmp/eval_export.log"; exit 1; }
    a=$(grep '^accuracy' "$tmp/eval_ckpt.log"); b=$(grep '^accuracy' "$tmp/eval_export.log")
    if [ -n "$a" ] && [ "$a" = "$b" ]; then
        echo "PASS export $pack evaluates like its checkpoint ($a)"
    else echo "FAIL export $pack: '$a' vs '$b'"; fail=1; fi
done
if "$mpq" inspect "$tmp/model--pack.h5" |
    grep -q "quantized weights: .* KB at the learned bitwidths, bit-packed" &&
    "$mpq" inspect "$c" | grep -q "^weights: .* KB"
then echo "PASS inspect shows the layer tables"; else echo "FAIL inspect"; fail=1; fi

# ---- the best parameters within budget as another run's weightfile (its quantizer values kept)
best="$tmp/full/params_best.h5"
train wf --set "weightfile=$best" --set max_steps=1
if grep -q "weightfile .*loaded .* tensors and [1-9][0-9]* quantizers' values (mpq layout)" "$tmp/wf.log" &&
    "$mpq" inspect "$best" | grep -q "params_best.h5: params of experiment"
then echo "PASS params_best.h5 as weightfile"
else echo "FAIL weightfile"; cat "$tmp/wf.log"; fail=1; fi
exit $fail

#!/bin/sh
# Exact resume with the real `mpq` binary (tests/mpirun.sh, oversubscribed on small machines):
#  - 2N steps in one run vs N steps, then --resume auto for N more: identical steps.csv, final
#    parameters and results.csv rows (but the seconds column), on 1 rank and on 2 ranks;
#  - a 2-rank deterministic checkpoint resumed on 1 and on 4 ranks: steps.csv bit-identical to
#    the uninterrupted run;
#  - sync_bn: a 2-rank checkpoint resumed on 1 rank matches the 2-rank run within 1e-4;
#  - checkpoint_every_minutes on rank 0's clock: 2 ranks agree on every save (no hang);
#  - a diverging run (NaN/Inf) stops with a message and writes no checkpoint of a non-finite state;
#  - a checkpoint of another configuration is refused, naming the key.
set -eu
mpq="$top_builddir/mpq"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
# run RANKS EXPERIMENT DIR [args...]
run() {
    n=$1 e=$2 d=$3
    shift 3
    MPQ_TEST_RANKS=$n sh "$top_srcdir/tests/mpirun.sh" "$mpq" train --cfg "$tmp/t.cfg" "$e" \
        --set "output_dir=$tmp/$d" "$@" >> "$tmp/$d.log" 2>&1 || { cat "$tmp/$d.log"; exit 1; }
}
same() { # same FILE_A FILE_B WHAT
    if cmp -s "$1" "$2"; then echo "PASS $3"; else echo "FAIL $3"; diff "$1" "$2" | head; fail=1; fi
}
checksum() { grep 'parameter checksum' "$1" | tail -1; }
no_seconds() { cut -d, -f1-11 "$1"; }
cp "$top_srcdir/tests/mpi/tiny.cfg" "$tmp/t.cfg"

for n in 1 2; do
    run $n PLAIN full$n
    run $n PLAIN half$n --set max_steps=4
    run $n PLAIN half$n --resume auto
    grep -q "resuming from .*ckpt-000000004.h5" "$tmp/half$n.log" ||
        { echo "FAIL no resume"; fail=1; }
    same "$tmp/full$n/steps.csv" "$tmp/half$n/steps.csv" \
        "$n rank(s): steps.csv of 4 + resume + 4 == 8 steps"
    no_seconds "$tmp/full$n/results.csv" > "$tmp/a.csv"
    no_seconds "$tmp/half$n/results.csv" > "$tmp/b.csv"
    same "$tmp/a.csv" "$tmp/b.csv" "$n rank(s): results.csv rows"
    a=$(checksum "$tmp/full$n.log"); b=$(checksum "$tmp/half$n.log")
    if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "PASS $n rank(s): final parameters ($a)"
    else echo "FAIL $n rank(s): final parameters '$a' vs '$b'"; fail=1; fi
    if [ "$(wc -l < "$tmp/half$n/timing.csv")" -eq 9 ]; then echo "PASS timing.csv has 8 rows"
    else echo "FAIL timing.csv rows"; cat "$tmp/half$n/timing.csv"; fail=1; fi
done

run 2 DET detfull
run 2 DET det2 --set max_steps=4
for n in 1 4; do
    mkdir -p "$tmp/det$n/checkpoints"
    cp "$tmp/det2/checkpoints/ckpt-000000004.h5" "$tmp/det$n/checkpoints/"
    cp "$tmp/det2/steps.csv" "$tmp/det$n/steps.csv"
    run $n DET det$n --resume auto
    same "$tmp/detfull/steps.csv" "$tmp/det$n/steps.csv" \
        "deterministic: 2-rank checkpoint resumed on $n rank(s) is bit-identical"
    a=$(checksum "$tmp/detfull.log"); b=$(checksum "$tmp/det$n.log")
    if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "PASS deterministic final parameters on $n rank(s)"
    else echo "FAIL deterministic final parameters '$a' vs '$b'"; fail=1; fi
done

run 2 SYNC syncfull
run 2 SYNC sync1 --set max_steps=4
run 1 SYNC sync1 --resume "$tmp/sync1/checkpoints/ckpt-000000004.h5"
if awk -F, 'NR == FNR { if (FNR > 1) l[$1] = $4; next }
            FNR > 1 { d = $4 - l[$1]; if (d < 0) d = -d; r = d / (l[$1] < 0 ? -l[$1] : l[$1]);
                      if (r > worst) worst = r; n++ }
            END { printf "sync-BN resumed on 1 rank: %d steps, worst relative loss " \
                         "difference %.3g\n", n, worst; exit !(n == 8 && worst <= 1e-4) }' \
       "$tmp/syncfull/steps.csv" "$tmp/sync1/steps.csv"
then echo "PASS sync-BN: 2-rank checkpoint resumed on 1 rank within tolerance"
else echo "FAIL sync-BN resume"; fail=1; fi

run 2 PLAIN timed --set max_steps=3 --set checkpoint_every_steps=0 \
    --set checkpoint_every_minutes=0.00001 --set keep_checkpoints=0
if [ "$(ls "$tmp/timed/checkpoints" | tr '\n' ' ')" = \
     "ckpt-000000001.h5 ckpt-000000002.h5 ckpt-000000003.h5 " ]; then
    echo "PASS time-based checkpoints after every step on 2 ranks"
else echo "FAIL time-based checkpoints"; ls "$tmp/timed/checkpoints"; fail=1; fi

if MPQ_TEST_RANKS=2 sh "$top_srcdir/tests/mpirun.sh" "$mpq" train --cfg "$tmp/t.cfg" PLAIN \
    --set "output_dir=$tmp/nan" --set optimizer=sgd --set initial_learning_rate=1e30 \
    --set checkpoint_every_steps=1 > "$tmp/nan.log" 2>&1; then
    echo "FAIL a diverging run succeeded"; fail=1
elif ! grep -q "training diverged\|is -\?inf after step\|is nan after step" "$tmp/nan.log"; then
    echo "FAIL divergence message"; cat "$tmp/nan.log"; fail=1
else
    newest=$(ls "$tmp/nan/checkpoints" | tail -1)
    if [ -z "$newest" ] ||
        "$mpq" eval "$tmp/nan/checkpoints/$newest" | grep -q "^accuracy.*cross-entropy [0-9]"
    then
        echo "PASS a diverging run stops and its checkpoints hold finite states ($newest)"
    else echo "FAIL the checkpoint $newest of a diverging run"; fail=1; fi
fi

if MPQ_TEST_RANKS=1 sh "$top_srcdir/tests/mpirun.sh" "$mpq" train --cfg "$tmp/t.cfg" PLAIN \
    --set "output_dir=$tmp/half1" --set batch_size=64 --resume auto > "$tmp/bad.log" 2>&1; then
    echo "FAIL a checkpoint of another batch_size was accepted"; fail=1
elif grep -q "batch_size is 32 there and 64 here" "$tmp/bad.log"; then
    echo "PASS another configuration is refused with what differs"
else echo "FAIL refusal message"; cat "$tmp/bad.log"; fail=1; fi
exit $fail

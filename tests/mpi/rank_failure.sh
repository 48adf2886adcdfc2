#!/bin/sh
# An error on one rank only (its batch of step 3 cannot be read) ends every rank within seconds,
# with the failing rank's message and a nonzero exit status, instead of leaving rank 0 waiting in
# a collective.
set -u
mpq="$top_builddir/mpq"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$top_srcdir/tests/testlib.sh" # tiny_cfg
tiny_cfg "$tmp/t.cfg" FAIL shortcut_type=None val_data=None val_batch_size=100 w_quantize=None \
    a_quantize=None target_weight_kbytes=-1 target_activation_kbytes=-1 optimizer=momentum \
    initial_learning_rate=0.1 epochs=160 batch_size=16 max_steps=50 checkpoint_every_steps=0
start=$(date +%s)
MPQ_TEST_FAIL_RANK=1 MPQ_TEST_FAIL_STEP=3 MPQ_TEST_RANKS=2 timeout 60 \
    sh "$top_srcdir/tests/mpirun.sh" -x MPQ_TEST_FAIL_RANK -x MPQ_TEST_FAIL_STEP \
    "$mpq" train --cfg "$tmp/t.cfg" FAIL --set "output_dir=$tmp/out" > "$tmp/log" 2>&1
status=$?
secs=$(( $(date +%s) - start ))
cat "$tmp/log"
fail=0
if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then echo "FAIL exit status $status"; fail=1; fi
grep -q "rank 1: cannot read its batch of step 3" "$tmp/log" || { echo "FAIL no message"; fail=1; }
if [ "$(grep -c '^step ' "$tmp/log")" -gt 3 ]; then echo "FAIL trained past the error"; fail=1; fi
[ "$fail" -eq 0 ] && echo "PASS all ranks ended with rank 1's message in ${secs} s (exit $status)"
exit $fail

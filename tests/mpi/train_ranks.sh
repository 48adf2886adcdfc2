#!/bin/sh
# Multi-rank training with the real `mpq` binary (oversubscribed on small machines):
#  - deterministic = true, virtual_shards = 4: steps.csv and the final parameters are
#    bit-identical on 1, 2 and 4 ranks, with quantizers and budgets on;
#  - sync_bn = true with a fixed global batch: 20 steps' losses on 2 ranks match 1 rank within a
#    relative 1e-4;
#  - default mode: every step, every rank holds bit-identical parameters (check_replicas).
set -eu
mpq="$top_builddir/mpq"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ranks() { MPQ_TEST_RANKS=$1 sh "$top_srcdir/tests/mpirun.sh" "$mpq" train --cfg "$tmp/t.cfg" "$2" \
          --set "output_dir=$tmp/$3" > "$tmp/$3.log" 2>&1 || { cat "$tmp/$3.log"; exit 1; }; }
. "$top_srcdir/tests/testlib.sh" # tiny_cfg
# tiny.cfg with 256 12x12 images, a 40 KB weight budget, no validation and no checkpoints
run="synthetic_samples=256 synthetic_height=12 synthetic_width=12 target_weight_kbytes=40
     initial_learning_rate=0.05 val_data=None val_batch_size=100 epochs=160 optimizer=momentum
     checkpoint_every_steps=0"
# shellcheck disable=SC2086 # $run: one word per key
tiny_cfg "$tmp/t.cfg" RDET $run max_steps=6 deterministic=true virtual_shards=4
# shellcheck disable=SC2086
tiny_cfg "$tmp/t.cfg" RSYNC $run max_steps=20 sync_bn=true
# shellcheck disable=SC2086
tiny_cfg "$tmp/t.cfg" RLOCAL $run max_steps=6 check_replicas=true
fail=0
for n in 1 2 4; do ranks $n RDET det$n; done
for n in 2 4; do
    if cmp -s "$tmp/det1/steps.csv" "$tmp/det$n/steps.csv"; then echo "PASS deterministic steps.csv 1 == $n ranks"
    else echo "FAIL deterministic steps.csv differs between 1 and $n ranks"; diff "$tmp/det1/steps.csv" "$tmp/det$n/steps.csv" | head; fail=1; fi
    a=$(grep 'parameter checksum' "$tmp/det1.log"); b=$(grep 'parameter checksum' "$tmp/det$n.log")
    if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "PASS deterministic final parameters 1 == $n ranks ($a)"
    else echo "FAIL final parameters differ: '$a' vs '$b'"; fail=1; fi
done
ranks 1 RSYNC sync1
ranks 2 RSYNC sync2
if awk -F, 'NR == FNR { if (FNR > 1) l[$1] = $4; next }
            FNR > 1 { d = $4 - l[$1]; if (d < 0) d = -d; r = d / (l[$1] < 0 ? -l[$1] : l[$1]);
                      if (r > worst) worst = r; n++ }
            END { printf "sync-BN: %d steps, worst relative loss difference %.3g\n", n, worst;
                  exit !(n == 20 && worst <= 1e-4) }' "$tmp/sync1/steps.csv" "$tmp/sync2/steps.csv"
then echo "PASS sync-BN 2 ranks match 1 rank"; else echo "FAIL sync-BN losses differ"; fail=1; fi
ranks 2 RLOCAL local2
echo "PASS replicas bit-identical after every step (2 ranks, local BN)"
exit $fail

#!/usr/bin/env bash
# The scaling study end to end, small: jobs/scaling.sh on ResNet-20 over shared memory, 1 and
# 2 ranks, weak and strong scaling, 2 rounds of 5 steps at 16x16. Checks that scaling.csv has
# the header the docs describe and one row per (mode, ranks): positive measured and predicted
# images/s, 2 rounds with the median inside their spread, the batch per rank of the mode, the
# gradient bytes with 2 ranks and none with 1; the network file with both allreduce sweeps and
# both gradsync rows; an SVG with the measured points and the model's dashed lines. Timings are
# not judged (no timed tests). Nothing to edit.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi # automake may run it with sh
set -euo pipefail
top_builddir=${top_builddir:-$(pwd)}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

MPQ=$(readlink -f "$top_builddir/mpq") BENCH_NET=$(readlink -f "$top_builddir/tests/bench/bench_net") \
    MODELS=resnet20 RANKS="1 2" TRANSPORTS=shm MODES="strong weak" ROUNDS=2 MAX_STEPS=5 WARMUP=1 \
    GLOBAL_BATCH_resnet20=16 BATCH_PER_RANK_resnet20=8 IMAGE_resnet20=16 \
    bash "$top_srcdir/jobs/scaling.sh" "$tmp/study" > "$tmp/log" 2>&1 ||
    { cat "$tmp/log"; fail "jobs/scaling.sh failed"; }
csv=$tmp/study/scaling.csv
head -n 1 "$csv" | grep -qx 'model,mode,transport,nodes,ranks,threads,batch_per_rank,images_s,efficiency,compute_s,data_wait_s,comm_wait_s,exposed_comm_s,allreduce_s,bytes_per_step,oversubscribed,predicted_images_s,predicted_efficiency,model_error_pct,rounds,images_s_min,images_s_max' ||
    fail "scaling.csv header: $(head -n 1 "$csv")"
[ "$(tail -n +2 "$csv" | wc -l)" -eq 4 ] || fail "expected 4 rows: $(cat "$csv")"
awk -F, 'NR > 1 {
    key = $2 " r" $5
    if (!($8 > 0 && $17 > 0)) { print key ": images/s " $8 ", predicted " $17; bad = 1 }
    if ($20 != 2) { print key ": rounds " $20; bad = 1 }
    if (!($21 <= $8 && $8 <= $22)) { print key ": median " $8 " outside " $21 ".." $22; bad = 1 }
    if ($5 == 1 && ($9 != "1.000" || $15 != 0)) { print key ": one rank, eff " $9 ", bytes " $15; bad = 1 }
    if ($5 == 2 && $15 <= 0) { print key ": no gradient bytes"; bad = 1 }
    want = ($2 == "strong") ? 16 / $5 : 8
    if ($7 != want) { print key ": batch per rank " $7 ", want " want; bad = 1 }
} END { exit bad }' "$csv" || fail "bad rows in scaling.csv"
net=$tmp/study/net-shm-r2.csv
for t in pingpong iallreduce iallreduce_in_place gradsync gradsync_in_place; do
    grep -q "^$t,2," "$net" || fail "$net has no $t rows"
done
svg=$tmp/study/scaling.svg
grep -q '<svg' "$svg" && grep -q '</svg>' "$svg" || fail "scaling.svg is not an SVG"
[ "$(grep -c '<circle' "$svg")" -ge 4 ] || fail "scaling.svg: fewer than 4 measured points"
grep -q 'stroke-dasharray' "$svg" || fail "scaling.svg: no dashed model line"
echo "ok: scaling study, 4 rows, 2 rounds each, network sweeps both ways, SVG drawn"

#!/usr/bin/env bash
# Shared cores: `mpq bench` (ResNet-20, batch 128, 1 rank x 2 threads) on a quiet machine, then
# with another process busy on one of its cores (a shell loop pinned with taskset), with the
# thread-count tuner on (threads_adapt = true, the default) and off. The rounds are interleaved
# so that each contended run sits next to a quiet one; it prints the median images/s of each
# over the rounds, the ratios contended / quiet (the issue's target: at least 0.5), and the thread
# count the tuned step ended on. The busy core changes from round to round (round r: core
# (r - 1) mod cores), and the ratios are also given per busy core: cores of one machine need not
# run alike (on the development machine core 0 ran 1.3x slower than core 1, so the tuned run,
# which keeps only the core left free, depends on which one that is). A user edits STEPS, ROUNDS,
# BUSY_CORE (one core for every round instead); MODEL, BATCH and THREADS pick another row.
#   bash jobs/bench-contention.sh [STEPS [ROUNDS]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12}
rounds=${2:-3}
. jobs/env.sh
model=${MODEL:-resnet20} batch=${BATCH:-128} threads=${THREADS:-2}
cores=$(nproc)
hog=
stop_hog() { if [ -n "$hog" ]; then kill "$hog" 2> /dev/null || true; wait "$hog" 2> /dev/null || true; hog=; fi; }
trap stop_hog EXIT
field() { sed -n "s/.*\"$2\": \([0-9.e+-]*\).*/\1/p" <<< "$1"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bench() {
    "$mpq" bench --model "$model" --batch "$batch" --threads "$threads" --steps "$steps" --json "$@"
}
declare -A ips ends per
for ((r = 1; r <= rounds; r++)); do
    busy_core=${BUSY_CORE:-$(((r - 1) % cores))}
    for mode in quiet tuned untuned; do
        set=()
        [ "$mode" = untuned ] && set=(--set threads_adapt=false)
        if [ "$mode" != quiet ]; then
            taskset -c "$busy_core" sh -c 'while :; do :; done' &
            hog=$!
            sleep 0.5
        fi
        json=$(bench "${set[@]}")
        stop_hog
        ips[$mode]+=" $(field "$json" train_images_per_s)"
        per[$mode,$busy_core]+=" $(field "$json" train_images_per_s)"
        ends[$mode]+=" $(field "$json" threads_end)"
        echo "round $r $mode (busy core $busy_core): $(field "$json" train_images_per_s) img/s," \
            "ended on $(field "$json" threads_end) thread(s) (load $(cut -d' ' -f1 /proc/loadavg))"
    done
done
q=$(median <<< "${ips[quiet]}") t=$(median <<< "${ips[tuned]}") u=$(median <<< "${ips[untuned]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "$model batch $batch, 1 rank x $threads threads, a busy loop on one core; medians of $rounds rounds:"
printf '  quiet                        %8.1f img/s\n' "$q"
printf '  busy core, threads_adapt on  %8.1f img/s  ratio %s  (threads at the end:%s)\n' "$t" \
    "$(ratio "$t" "$q")" "${ends[tuned]}"
printf '  busy core, threads_adapt off %8.1f img/s  ratio %s\n' "$u" "$(ratio "$u" "$q")"
for ((c = 0; c < cores; c++)); do
    [ -n "${per[quiet,$c]:-}" ] || continue
    qc=$(median <<< "${per[quiet,$c]}") tc=$(median <<< "${per[tuned,$c]}")
    uc=$(median <<< "${per[untuned,$c]}")
    echo "  busy core $c (rounds:$(wc -w <<< "${per[quiet,$c]}")): quiet $qc, tuned $tc (ratio" \
        "$(ratio "$tc" "$qc")), untuned $uc (ratio $(ratio "$uc" "$qc"))"
done
echo "target: ratio at least 0.5 with threads_adapt on"

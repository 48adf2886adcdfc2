#!/usr/bin/env bash
# Shared cores: `mpq bench` (ResNet-20, batch 128, 1 rank x 2 threads) on a quiet machine, then
# with another process busy on one of its cores (a shell loop pinned with taskset), with the
# thread-count tuner on (threads_adapt = true, the default) and off. The rounds are interleaved
# so that each contended run sits next to a quiet one; it prints the median images/s of each
# over the rounds, the ratios contended / quiet (the issue's target: at least 0.5), and the thread
# count the tuned step ended on. A user edits STEPS, ROUNDS and the busy core (BUSY_CORE, default
# the last core); MODEL, BATCH and THREADS pick another row.
#   bash jobs/bench-contention.sh [STEPS [ROUNDS]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12}
rounds=${2:-3}
. jobs/env.sh
model=${MODEL:-resnet20} batch=${BATCH:-128} threads=${THREADS:-2}
busy_core=${BUSY_CORE:-$(($(nproc) - 1))}
hog=
stop_hog() { if [ -n "$hog" ]; then kill "$hog" 2> /dev/null || true; wait "$hog" 2> /dev/null || true; hog=; fi; }
trap stop_hog EXIT
field() { sed -n "s/.*\"$2\": \([0-9.e+-]*\).*/\1/p" <<< "$1"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bench() {
    "$mpq" bench --model "$model" --batch "$batch" --threads "$threads" --steps "$steps" --json "$@"
}
declare -A ips ends
for ((r = 1; r <= rounds; r++)); do
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
        ends[$mode]+=" $(field "$json" threads_end)"
        echo "round $r $mode: $(field "$json" train_images_per_s) img/s, ended on" \
            "$(field "$json" threads_end) thread(s) (load $(cut -d' ' -f1 /proc/loadavg))"
    done
done
q=$(median <<< "${ips[quiet]}") t=$(median <<< "${ips[tuned]}") u=$(median <<< "${ips[untuned]}")
echo "$model batch $batch, 1 rank x $threads threads, a busy loop on core $busy_core; medians of $rounds rounds:"
printf '  quiet                        %8.1f img/s\n' "$q"
printf '  busy core, threads_adapt on  %8.1f img/s  ratio %.2f  (threads at the end:%s)\n' "$t" \
    "$(awk -v a="$t" -v b="$q" 'BEGIN { print a / b }')" "${ends[tuned]}"
printf '  busy core, threads_adapt off %8.1f img/s  ratio %.2f\n' "$u" \
    "$(awk -v a="$u" -v b="$q" 'BEGIN { print a / b }')"
echo "target: ratio at least 0.5 with threads_adapt on"

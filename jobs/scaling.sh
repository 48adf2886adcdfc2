#!/usr/bin/env bash
# Scaling study: trains each model with the real training step (`mpq train` on synthetic data,
# MAX_STEPS steps, the first WARMUP dropped) over a list of rank counts, threads per rank and
# transports, for strong scaling (fixed global batch) and weak scaling (fixed batch per rank),
# and sets each measured row beside the performance model's prediction (`mpq predict`), which
# is calibrated in the same run: one-rank step profiles with the backward timeline (`mpq bench
# --timeline`) at the row's batch per rank, taken right before and after each run, and per
# transport the latency, bandwidth and allreduce sweeps of tests/bench/bench_net.
#   bash jobs/scaling.sh [OUT_DIR]            (default runs/scaling; the committed study: docs/data/scaling/)
# Writes OUT_DIR/scaling.csv, OUT_DIR/scaling.svg (jobs/scaling-svg.awk), OUT_DIR/net-*.csv
# (ping-pong, sum rate, allreduce sweeps with the model's times), OUT_DIR/profiles/rows/*, and
# the runs' logs and timing.csv files under OUT_DIR/runs/.
# What a user edits: the environment variables below (defaults in brackets).
#   MODELS [resnet20 resnet18]   RANKS [1 2 4]   THREADS [1]   TRANSPORTS [shm tcp]
#   MODES [strong weak]          MAX_STEPS [10]  WARMUP [2]    BUCKET_MBYTES [4]
#   ROUNDS [3]: every row is measured this many times, in rounds over all rows, each time right
#   between one-rank profiles at its local batch; scaling.csv has the median round (and the
#   spread), the median prediction and the median of the rounds' model errors
#   QUANT [parametric_fp_d_xmax] (weights; activations get its _relu twin; none: float)
#   per model M: IMAGE_M (input height = width), CLASSES_M, GLOBAL_BATCH_M (strong scaling),
#   BATCH_PER_RANK_M (weak scaling); see the defaults below.
#   MPQ_CORES [all]: the cores the ranks share; NODES_PREFIX [mpqsc], NODES_SUBNET [10.202.1]:
#   the namespace "nodes" of the tcp transport (jobs/nodes.sh; needs root and iproute2).
# Transports: shm = one node, ranks over shared memory (btl self,vader); tcp = one rank per
# network-namespace node, every message over TCP (btl self,tcp). On a machine with fewer cores
# than ranks x threads the rows are marked oversubscribed (and the model slows compute so).
set -euo pipefail
# the value of KEY_MODEL (per-model settings below): of KEY MODEL
of() { local v="$1_$2"; echo "${!v}"; }
cd "$(dirname "$0")/.."
root=$(pwd)
. jobs/env.sh
mpq=$(readlink -f "$mpq")
bench_net=$(readlink -f "${BENCH_NET:-$root/build/tests/bench/bench_net}")
out=$(mkdir -p "${1:-runs/scaling}" && cd "${1:-runs/scaling}" && pwd)
models=${MODELS:-resnet20 resnet18}
rank_list=${RANKS:-1 2 4}
thread_list=${THREADS:-1}
transports=${TRANSPORTS:-shm tcp}
modes=${MODES:-strong weak}
steps=${MAX_STEPS:-10}
rounds=${ROUNDS:-3}
warmup=${WARMUP:-2}
bucket=${BUCKET_MBYTES:-4}
quant=${QUANT:-parametric_fp_d_xmax}
prefix=${NODES_PREFIX:-mpqsc}
subnet=${NODES_SUBNET:-10.202.1}
: "${IMAGE_resnet20:=32}" "${CLASSES_resnet20:=10}" "${GLOBAL_BATCH_resnet20:=128}"
: "${BATCH_PER_RANK_resnet20:=32}"
: "${IMAGE_resnet18:=64}" "${CLASSES_resnet18:=1000}" "${GLOBAL_BATCH_resnet18:=32}"
: "${BATCH_PER_RANK_resnet18:=8}"
: "${IMAGE_mobilenetv2:=64}" "${CLASSES_mobilenetv2:=1000}" "${GLOBAL_BATCH_mobilenetv2:=32}"
: "${BATCH_PER_RANK_mobilenetv2:=8}"
[ "$steps" -gt "$((warmup + 2))" ] || { echo "scaling.sh: MAX_STEPS must exceed WARMUP + 2" >&2; exit 2; }
for f in "$mpq" "$bench_net"; do
    [ -x "$f" ] || { echo "scaling.sh: $f missing ---> HINT: bash jobs/build.sh" >&2; exit 1; }
done
max_ranks=$(printf '%s\n' $rank_list | sort -n | tail -n 1)
mkdir -p "$out/profiles" "$out/runs"

nodes_up=0
cleanup() { if [ "$nodes_up" = 1 ]; then bash jobs/nodes.sh down --prefix "$prefix" || true; fi; }
trap cleanup EXIT

# Runs PROGRAM ARGS... on R ranks over TRANSPORT: launch TRANSPORT R PROGRAM ARGS...
launch() {
    local transport=$1 r=$2
    shift 2
    local yield=()
    if [ $((r * ${threads:-1})) -gt "$cores" ]; then yield=(--mca mpi_yield_when_idle 1); fi
    case $transport in
        shm) mpirun -np "$r" --bind-to none "${yield[@]}" "$@" ;;
        tcp) env -u OMPI_MCA_btl bash jobs/nodes.sh mpirun --prefix "$prefix" -n "$r" -N 1 \
                 -- "$@" ;;
        *) echo "scaling.sh: unknown transport '$transport' (shm, tcp)" >&2; return 2 ;;
    esac
}

# The value of "# KEY value" in a bench_net output file.
fit() { awk -v k="$2" '$1 == "#" && $2 == k { print $3 }' "$1"; }

# median of column C of a timing.csv over the steps after the warm-up
median() {
    awk -F, -v c="$2" -v w="$warmup" 'NR > 1 + w { print $c }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

qargs=()
[ "$quant" = none ] || qargs=(--quant "$quant")
# the gradient of each model (everything trainable, quantizer parameters included), in floats,
# for bench_net: from a one-step profile at batch 2 (the gradient's size does not depend on the
# batch; the rows are predicted from profiles taken next to each run, below)
grad_floats=$(for m in $models; do
    p="$out/profiles/$m-gradient.txt"
    "$mpq" bench --model "$m" --batch 2 --size "$(of IMAGE "$m")" --threads 1 "${qargs[@]}" \
        --steps 1 --timeline "$p" > "$p.log" 2>&1 || { cat "$p.log" >&2; exit 1; }
    awk '$1 == "params_floats" { print $2; exit }' "$p"
done | sort -u)
for transport in $transports; do
    if [ "$transport" = tcp ] && [ "$nodes_up" = 0 ]; then
        bash jobs/nodes.sh up "$max_ranks" --prefix "$prefix" --subnet "$subnet"
        nodes_up=1
    fi
    echo "== $transport: ping-pong, sum rate, allreduce sweep (bench_net), $(date -u +%H:%M:%S) UTC"
    threads=1
    for r in $rank_list; do
        [ "$r" -gt 1 ] || continue
        launch "$transport" "$r" "$bench_net" $((16 << 20)) "$bucket" $grad_floats \
            > "$out/net-$transport-r$r.csv" 2>&1 ||
            { cat "$out/net-$transport-r$r.csv"; exit 1; }
    done
    two=$(printf '%s\n' $rank_list | awk '$1 > 1' | sort -n | head -n 1)
    [ -n "$two" ] || continue
    nf="$out/net-$transport-r$two.csv"
    echo "$transport: alpha $(fit "$nf" alpha_us) us, $(fit "$nf" gbytes_s) GB/s," \
        "sum $(fit "$nf" reduce_gbytes_s) GB/s"
done

# Profiles model M at local batch B into FILE (one rank, the backward timeline): the compute a row
# is predicted from, measured right before and right after the row, because this machine's speed
# drifts by up to 20% within minutes (the same step at 0.26 and 0.31 s a minute apart, and
# whichever of two back-to-back runs comes second slower by about 10%).
profile() {
    "$mpq" bench --model "$1" --batch "$2" --size "$(of IMAGE "$1")" --threads "$threads" \
        "${qargs[@]}" --steps 5 --timeline "$3" > "$3.log" 2>&1 || { cat "$3.log"; exit 1; }
}

# Trains one row (model m, mode, transport, r ranks, threads, local batch b; round k), predicts it
# from profiles taken just before and just after (the mean of the two predictions), and appends
# the row to $raw.
measure_row() {
    local m=$1 mode=$2 transport=$3 r=$4 b=$5 k=$6
    local run="$out/runs/$m-$mode-$transport-r$r-t$threads" prow
    prow="$out/profiles/rows/$m-$mode-$transport-r$r-t$threads-round$k"
    profile "$m" "$b" "$prow.before.txt"
    rm -rf "$run"
    cat > "$run.cfg" <<CFG
[scaling]
model = $m
shortcut_type = b
num_classes = $(of CLASSES "$m")
train_data = synthetic
synthetic_height = $(of IMAGE "$m")
synthetic_width = $(of IMAGE "$m")
synthetic_samples = $((b * r * (steps + 1)))
batch_size = $((b * r))
max_steps = $steps
initial_learning_rate = 0.01
w_quantize = $([ "$quant" = none ] && echo "" || echo "$quant")
a_quantize = $([ "$quant" = none ] && echo "" || echo "${quant}_relu")
threads = $threads
bucket_mbytes = $bucket
checkpoint_every_minutes = 0
progress = false
output_dir = $run
CFG
    launch "$transport" "$r" "$mpq" train --cfg "$run.cfg" scaling > "$run.log" 2>&1 ||
        { cat "$run.log"; exit 1; }
    profile "$m" "$b" "$prow.after.txt"
    local tf="$run/timing.csv" allr=0 nodes=1 over=no
    [ "$r" -eq 1 ] || allr=$(awk -F, -v n="$(median "$tf" 6)" \
        '$1 == "gradsync" && $3 == n { print $4 }' "$out/net-$transport-r$r.csv")
    # the model for this row: all ranks on this machine's cores
    local row first when
    for when in before after; do
        local args=(predict --timeline "$prow.$when.txt" "${netargs[@]}" --nodes 1
                    --ranks-per-node "$r" --threads "$threads" --cores "$cores"
                    --batch-per-rank "$b" --bucket-mbytes "$bucket")
        # once, an MPI singleton start crashed here (SIGSEGV) on the loaded machine: say so, retry
        "$mpq" "${args[@]}" > "$prow.$when.predict" 2>&1 ||
            { echo "scaling.sh: mpq ${args[*]} failed, retrying:" >&2; cat "$prow.$when.predict" >&2
              "$mpq" "${args[@]}" > "$prow.$when.predict"; }
        IFS=, read -r -a row < <(tail -n 1 "$prow.$when.predict")
        [ "$when" = after ] || first=${row[15]}
    done
    row[15]=$(awk -v a="$first" -v b="${row[15]}" 'BEGIN { printf "%.2f", (a + b) / 2 }')
    [ "$transport" = shm ] || nodes=$r
    [ $((r * threads)) -le "$cores" ] || over=yes
    printf '%s,%s,%s,%d,%d,%d,%d,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%d\n' "$m" "$mode" \
        "$transport" "$nodes" "$r" "$threads" "$b" "$(median "$tf" 7)" \
        "$(median "$tf" 2)" "$(median "$tf" 3)" "$(median "$tf" 4)" \
        "$(median "$tf" 5)" "$allr" "$(median "$tf" 6)" "$over" "${row[15]}" "${row[8]}" \
        "${row[7]}" "$k" >> "$raw"
    tail -n 1 "$raw"
}

raw="$out/raw.csv"
mkdir -p "$out/profiles/rows"
echo "model,mode,transport,nodes,ranks,threads,batch_per_rank,images_s,compute_s,data_wait_s,comm_wait_s,exposed_comm_s,allreduce_s,bytes_per_step,oversubscribed,predicted_images_s,predicted_exposed_s,predicted_allreduce_s,round" > "$raw"
for k in $(seq 1 "$rounds"); do
    echo "== round $k of $rounds, $(date -u +%H:%M:%S) UTC"
    for transport in $transports; do
        two=$(printf '%s\n' $rank_list | awk '$1 > 1' | sort -n | head -n 1)
        netargs=(--alpha-us 1 --gbytes-s 1) # one rank: the network does not matter
        if [ -n "$two" ]; then
            nf="$out/net-$transport-r$two.csv"
            # on one machine the CPUs move every byte, over shared memory and veth TCP alike
            netargs=(--alpha-us "$(fit "$nf" alpha_us)" --gbytes-s "$(fit "$nf" gbytes_s)"
                     --reduce-gbytes-s "$(fit "$nf" reduce_gbytes_s)" --cpu-copies)
        fi
        for m in $models; do
            g=$(of GLOBAL_BATCH "$m") w=$(of BATCH_PER_RANK "$m")
            for threads in $thread_list; do
                for mode in $modes; do
                    for r in $rank_list; do
                        if [ "$mode" = strong ]; then
                            [ $((g % r)) -eq 0 ] || continue
                            measure_row "$m" "$mode" "$transport" "$r" $((g / r)) "$k"
                        else
                            measure_row "$m" "$mode" "$transport" "$r" "$w" "$k"
                        fi
                    done
                done
            done
        done
    done
done

# Per row (model, mode, transport, ranks, threads): the round with the median images/s gives the
# measured columns, the predictions are the median over the rounds, the model's error is the
# median of the rounds' errors (each round's prediction against the run measured next to it);
# efficiency against the same model, mode, transport and threads on one rank, measured and
# predicted.
awk -F, -v OFS=, '
    function sort(a, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    }
    function med(a, n) { sort(a, n); return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    NR == 1 { next }
    { k = $1 SUBSEP $2 SUBSEP $3 SUBSEP $5 SUBSEP $6
      if (!(k in n)) order[++nk] = k
      i = ++n[k]; line[k, i] = $0; ips[k, i] = $8; pred[k, i] = $16
      err[k, i] = $8 > 0 && $16 > 0 ? 100 * ($16 - $8) / $8 : 0 }
    END {
        print "model,mode,transport,nodes,ranks,threads,batch_per_rank,images_s,efficiency,compute_s,data_wait_s,comm_wait_s,exposed_comm_s,allreduce_s,bytes_per_step,oversubscribed,predicted_images_s,predicted_efficiency,model_error_pct,rounds,images_s_min,images_s_max"
        for (j = 1; j <= nk; j++) {
            k = order[j]; c = n[k]
            delete a; for (i = 1; i <= c; i++) a[i] = ips[k, i]
            m = med(a, c); lo = a[1]; hi = a[c]
            pick = 1; for (i = 1; i <= c; i++) if (ips[k, i] == a[int((c + 1) / 2)]) pick = i
            delete a; for (i = 1; i <= c; i++) a[i] = pred[k, i]; p = med(a, c)
            delete a; for (i = 1; i <= c; i++) a[i] = err[k, i]; e = med(a, c)
            split(line[k, pick], f, ",")
            meas[k] = m; pr[k] = p; row[k] = line[k, pick]; lo_[k] = lo; hi_[k] = hi
            merr[k] = e; cnt[k] = c
            split(k, kk, SUBSEP); g = kk[1] SUBSEP kk[2] SUBSEP kk[3] SUBSEP kk[5]
            if (kk[4] == 1) { one[g] = m; pone[g] = p }
        }
        for (j = 1; j <= nk; j++) {
            k = order[j]; split(row[k], f, ","); split(k, kk, SUBSEP)
            g = kk[1] SUBSEP kk[2] SUBSEP kk[3] SUBSEP kk[5]
            e = (g in one) ? sprintf("%.3f", meas[k] / (f[5] * one[g])) : ""
            pe = (g in pone) && pone[g] > 0 ? sprintf("%.3f", pr[k] / (f[5] * pone[g])) : ""
            print f[1], f[2], f[3], f[4], f[5], f[6], f[7], meas[k], e, f[9], f[10], f[11], \
                  f[12], f[13], f[14], f[15], sprintf("%.2f", pr[k]), pe, \
                  sprintf("%.1f", merr[k]), cnt[k], lo_[k], hi_[k]
        }
    }' "$raw" > "$out/scaling.csv"
awk -f jobs/scaling-svg.awk "$out/scaling.csv" > "$out/scaling.svg"
echo "== $(date -u +%H:%M:%S) UTC: $out/scaling.csv, $out/scaling.svg"
column -s, -t < "$out/scaling.csv" 2>/dev/null || cat "$out/scaling.csv"

#!/usr/bin/env bash
# Predicts a cluster: images/s and efficiency of data-parallel training on 8 to 1024 nodes (one
# rank per node) for ResNet-20, ResNet-18 and MobileNetV2 on 25 GbE, 100 GbE and InfiniBand HDR
# (the published figures of `mpq predict --net`), from step profiles measured on this machine
# (`mpq bench --timeline`, one rank using THREADS threads, quantizers on) and the CPU sum rate
# measured here (tests/bench/bench_net on one rank). Each SPEEDUP is a node that many times
# faster than this one at compute (e.g. 16: 32 cores at this machine's per-core speed, if the
# batch keeps them busy); the network does not get faster with it.
#   bash jobs/predict-cluster.sh [OUT_DIR]        (default runs/predict)
# Writes OUT_DIR/predictions.md: per model and speedup a table of images/s and efficiency as
# mpq runs now, and per model a what-if table (asynchronous progress; a separate send buffer,
# which lets Open MPI use Rabenseifner's algorithm instead of a binomial tree); and
# OUT_DIR/predict-*.csv and the profiles. What a user edits: the environment variables below (defaults in brackets).
#   MODELS [resnet20 resnet18 mobilenetv2]  NETS [25gbe 100gbe hdr200]  SPEEDUPS [1 16]
#   WHATIF_NET [100gbe] (the network of the what-if table)
#   NODES [8,16,32,64,128,256,512,1024]  THREADS [all cores]  BUCKET_MBYTES [4]
#   QUANT [parametric_fp_d_xmax]  IMAGE_M, BATCH_M per model (batch per node; see below)
set -euo pipefail
# the value of KEY_MODEL (per-model settings below): of KEY MODEL
of() { local v="$1_$2"; echo "${!v}"; }
cd "$(dirname "$0")/.."
. jobs/env.sh
out=${1:-runs/predict}
models=${MODELS:-resnet20 resnet18 mobilenetv2}
nets=${NETS:-25gbe 100gbe hdr200}
speedups=${SPEEDUPS:-1 16}
whatif=${WHATIF_NET:-100gbe}
node_list=${NODES:-8,16,32,64,128,256,512,1024}
threads=${THREADS:-$cores}
bucket=${BUCKET_MBYTES:-4}
quant=${QUANT:-parametric_fp_d_xmax}
: "${IMAGE_resnet20:=32}" "${BATCH_resnet20:=128}"
: "${IMAGE_resnet18:=224}" "${BATCH_resnet18:=32}"
: "${IMAGE_mobilenetv2:=224}" "${BATCH_mobilenetv2:=32}"
[ -x build/tests/bench/bench_net ] || { echo "predict-cluster.sh: build first (bash jobs/build.sh)" >&2; exit 1; }
mkdir -p "$out"
qargs=()
[ "$quant" = none ] || qargs=(--quant "$quant")

# One markdown row per node count from `mpq predict` CSV files: with IMAGES=1, images/s and
# efficiency of each file, else efficiency only. join_tables IMAGES FILE...
join_tables() {
    local images=$1
    shift
    awk -F, -v images="$images" '
        FNR == 1 { f++; next }
        { nodes[FNR] = $2; if (FNR > last) last = FNR
          v[FNR, f] = images ? sprintf(" %.0f | %.1f%% |", $16, 100 * $17) : sprintf(" %.1f%% |", 100 * $17) }
        END { for (i = 2; i <= last; i++) { printf "| %s |", nodes[i]
              for (j = 1; j <= f; j++) printf "%s", v[i, j]; print "" } }' "$@"
}

mpirun -np 1 build/tests/bench/bench_net > "$out/sum-rate.csv"
sum=$(awk '$1 == "#" && $2 == "reduce_gbytes_s" { print $3 }' "$out/sum-rate.csv")
md="$out/predictions.md"
{
    echo "Predicted by \`bash jobs/predict-cluster.sh\` on $(date -u +%Y-%m-%d) from profiles measured"
    echo "here ($threads threads, quantizer $quant), CPU sum rate $sum GB/s; one rank per node,"
    echo "bucket $bucket MB, MPI_Iallreduce into a second buffer (mpq's default; Open MPI 4.1 libnbc:"
    echo "Rabenseifner's reduce-scatter + allgather from 4 ranks and 64 KiB), progress at layer boundaries."
} > "$md"
for m in $models; do
    img=$(of IMAGE "$m") b=$(of BATCH "$m")
    p="$out/profile-$m-b$b.txt"
    "$mpq" bench --model "$m" --batch "$b" --size "$img" --threads "$threads" "${qargs[@]}" \
        --steps 3 --timeline "$p" > "$p.log" 2>&1 || { cat "$p.log"; exit 1; }
    floats=$(awk '$1 == "params_floats" { print $2 }' "$p")
    rss=$(awk '$1 == "memory" { print $3 }' "$p.log")
    for s in $speedups; do
        for n in $nets; do
            for variant in in-place as-is async; do
                case $variant in
                    in-place) extra=(--in-place) ;;
                    as-is) extra=() ;;
                    async) extra=(--async-progress) ;;
                esac
                "$mpq" predict --timeline "$p" --net "$n" --reduce-gbytes-s "$sum" \
                    --nodes "$node_list" --bucket-mbytes "$bucket" --speedup "$s" "${extra[@]}" \
                    > "$out/predict-$m-x$s-$n-$variant.csv"
            done
        done
        {
            echo
            echo "**$m** (${img}x$img, batch $b per node, $floats floats = $((floats * 4)) bytes" \
                "allreduced per step, $rss MB peak resident per rank), node speedup $s:"
            echo
            printf '| nodes |'; for n in $nets; do printf ' %s images/s | eff. |' "$n"; done; echo
            printf '|---|'; for n in $nets; do printf -- '---|---|'; done; echo
            files=()
            for n in $nets; do files+=("$out/predict-$m-x$s-$n-as-is.csv"); done
            join_tables 1 "${files[@]}"
        } >> "$md"
    done
    # what progress and the algorithm cost: the last speedup on the what-if network
    files=()
    for v in in-place as-is async; do files+=("$out/predict-$m-x$s-$whatif-$v.csv"); done
    {
        echo
        echo "$m on $whatif, node speedup $s: efficiency with \`allreduce_in_place = true\`" \
            "(Open MPI's binomial tree), as mpq runs by default (sums into a second buffer:" \
            "Rabenseifner; progress at layer boundaries), and with asynchronous progress too:"
        echo
        echo "| nodes | in place | as is | as is + async progress |"
        echo "|---|---|---|---|"
        join_tables 0 "${files[@]}"
    } >> "$md"
done
cat "$md"

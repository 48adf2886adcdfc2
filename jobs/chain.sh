#!/usr/bin/env bash
# Runs an experiment of a .cfg file and then, as the reference's experiment files intend, every
# experiment whose weightfile is its result, and theirs, depth first in file order
# (DEFAULT -> *_INIT -> *_FT ...). "Its result" is <output_dir>/params_best.h5 of that experiment
# (output_dir defaults to the experiment name), or params_<EXPERIMENT>/params_best.h5 (the
# directory name the reference's published files use); each child is started with
# `--set weightfile=` its parent's actual result. An experiment whose weightfile is its own result
# is not chained to itself.
#
# Usage: jobs/chain.sh [OPTIONS] CFG EXPERIMENT [TRAIN ARGS...]
#        jobs/chain.sh [OPTIONS] --all CFG [TRAIN ARGS...]
#   --dry-run        list the chain (one experiment per line, indented under its parent, with
#                    the weightfile it will start from) and run nothing
#   --all            every experiment of CFG: the chain of each one that starts from no other's
#                    result, in file order ([DEFAULT] only when another starts from it)
#   --root DIR       write each experiment into DIR/<its output_dir> (default: as configured)
#   --external FILE  start a chain from FILE when its weightfile is not a result of the file
#   --result PATH    what a child starts from, relative to its parent's output_dir (default
#                    params_best.h5; e.g. checkpoints/ckpt-000000100.h5); `final`: the parent's
#                    newest checkpoint (its final state, not one chosen by validation), found
#                    when the child starts
#   TRAIN ARGS       passed to every `mpq train` (e.g. --set epochs=8); do not set output_dir here
# What a user edits: LAUNCH (how mpq is started, e.g. LAUNCH="mpirun -np 2 --bind-to none") and
# MPQ (the binary; default build/mpq).
set -euo pipefail

mpq=${MPQ:-build/mpq}
read -r -a launch <<< "${LAUNCH:-}"
dry=0 all=0 root="" external="" result=params_best.h5
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry=1; shift ;;
        --root) root=$2; shift 2 ;;
        --external) external=$2; shift 2 ;;
        --result) result=$2; shift 2 ;;
        --all) all=1; shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
if [ $# -lt $((2 - all)) ]; then
    echo "usage: jobs/chain.sh [--dry-run] [--root DIR] [--external FILE] [--result PATH]" \
        "CFG EXPERIMENT|--all CFG [TRAIN ARGS...]" >&2
    exit 2
fi
cfg=$1
start=DEFAULT
[ "$all" -eq 1 ] || start=$2
shift $((2 - all))
extra=("$@")

# name -> output_dir, weightfile ('-': none), in file order (DEFAULT first)
declare -A out wf
order=()
table=$("$mpq" train --cfg "$cfg" --list-paths "${extra[@]}")
while IFS=$'\t' read -r name dir file _method; do
    out[$name]=$dir
    wf[$name]=$file
    order+=("$name")
done <<< "$table"
[ -n "${out[$start]+x}" ] || { echo "chain.sh: no experiment [$start] in $cfg" >&2; exit 2; }

# The experiment whose result the weightfile of $1 is, or nothing.
parent_of() {
    local w=${wf[$1]} d e
    [ "$w" != "-" ] && [ "$(basename "$w")" = params_best.h5 ] || return 0
    d=$(dirname "$w")
    d=${d#./}
    for e in "${order[@]}"; do
        if [ "$e" != "$1" ] && { [ "$d" = "${out[$e]}" ] || [ "$d" = "params_$e" ]; }; then
            echo "$e"
            return 0
        fi
    done
}

result_of() {
    if [ "$result" = final ]; then
        echo "${root:+$root/}${out[$1]}/checkpoints/<final>"
    else
        echo "${root:+$root/}${out[$1]}/$result"
    fi
}

# The file behind a result_of path: with --result final the newest checkpoint of that directory.
resolve() {
    local dir newest
    case "$1" in
        */checkpoints/\<final\>) ;;
        *) echo "$1"; return 0 ;;
    esac
    dir=${1%/<final>}
    newest=$(find "$dir" -maxdepth 1 -name 'ckpt-*.h5' 2>/dev/null | sort | tail -n 1)
    if [ -z "$newest" ]; then
        echo "chain.sh: no checkpoint in $dir (the parent's final state) ---> HINT: the parent" \
            "writes one at its end unless checkpoint_every_steps and _minutes are both 0" >&2
        return 1
    fi
    echo "$newest"
}

declare -A par
for s in "${order[@]}"; do par[$s]=$(parent_of "$s"); done

# runs: "depth name weightfile" in chain order
declare -A seen
runs=()
visit() {
    local name=$1 depth=$2 from=$3 s
    [ -z "${seen[$name]+x}" ] || return 0
    seen[$name]=1
    runs+=("$depth $name $from")
    for s in "${order[@]}"; do
        if [ "${par[$s]}" = "$name" ]; then visit "$s" $((depth + 1)) "$(result_of "$name")"; fi
    done
}
# A chain from $1: it starts from its parent's result, from --external for a weightfile from
# outside the file, or ('-') as configured.
chain_from() {
    local from=-
    if [ -n "${par[$1]}" ]; then
        from=$(result_of "${par[$1]}")
    elif [ "${wf[$1]}" != "-" ] && [ -n "$external" ]; then
        from=$external
    fi
    visit "$1" 0 "$from"
}
if [ "$all" -eq 0 ]; then
    chain_from "$start"
else
    for s in "${order[@]}"; do # DEFAULT only as a parent; parents before their children
        if [ -z "${par[$s]}" ] && { [ "$s" != DEFAULT ] || printf '%s\n' "${par[@]}" | grep -qx DEFAULT; }; then
            chain_from "$s"
        fi
    done
    for s in "${order[@]}"; do # experiments in a cycle of weightfiles
        if [ "$s" != DEFAULT ]; then chain_from "$s"; fi
    done
fi

if [ "$dry" -eq 1 ]; then
    [ "$all" -eq 1 ] && start="all"
    echo "chain of [$start] in $cfg: ${#runs[@]} run(s)"
    for r in "${runs[@]}"; do
        read -r depth name from <<< "$r"
        printf '%*s%s' $((2 * depth)) "" "$name"
        if [ "$from" != "-" ]; then printf '  <- %s' "$from"; fi
        printf '\n'
    done
    exit 0
fi

for r in "${runs[@]}"; do
    read -r depth name from <<< "$r"
    args=(train --cfg "$cfg" "$name" "${extra[@]}")
    [ -n "$root" ] && args+=(--set "output_dir=$root/${out[$name]}")
    if [ "$from" != "-" ]; then
        from=$(resolve "$from") || exit 1
        args+=(--set "weightfile=$from")
    fi
    echo "chain: [$name] ${launch[*]} $mpq ${args[*]}"
    if ! "${launch[@]}" "$mpq" "${args[@]}"; then
        echo "chain: [$name] FAILED" >&2
        exit 1
    fi
    echo "chain: [$name] done"
done

#!/usr/bin/env bash
# Several nodes over TCP on one machine (jobs/nodes.sh: network namespaces on a private bridge),
# training the deterministic fixture tests/mpi/tiny.cfg [DET] with the real `mpq` binary:
#  - 2 nodes x 1 rank (8 steps) and 2 nodes x 2 ranks (4 steps: 4 oversubscribed ranks over TCP
#    are slow on 2 cores), TCP only (btl self,tcp), train with steps.csv byte-identical to (the
#    first rows of) one node under plain mpirun (shared memory); each rank's log line names
#    its node's hostname, and node 2's network interface received at least the gradient bytes of
#    every step (so the traffic between nodes crossed the bridge, over TCP);
#  - 2 nodes x 2 ranks with shared memory inside a node (btl self,vader,tcp): every mpq process
#    of node 2 killed mid-run ends the whole job within $BOUND_S seconds with a nonzero status,
#    nothing left running in either node;
#  - that job resumes from its last checkpoint on 1 node with steps.csv identical to the
#    uninterrupted run (so the steps before the kill were identical too).
# Skips (77) where network namespaces cannot be made (not root, no iproute2, no permission).
# Oversubscribed: up to 4 ranks on however many cores there are. Nothing to edit.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi # automake may run it with sh
set -euo pipefail
top_builddir=${top_builddir:-$(pwd)}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
mpq="$top_builddir/mpq"
nodes="$top_srcdir/jobs/nodes.sh"
BOUND_S=60
steps=8
prefix="mt$(($$ % 100000))" # unique per test process, at most 8 characters
tmp=$(mktemp -d)
job=
cleanup() {
    if [ -n "$job" ]; then kill -KILL "$job" 2>/dev/null || true; fi
    bash "$nodes" down --prefix "$prefix" || true
    rm -rf "$tmp"
}
trap cleanup EXIT

skip() {
    echo "SKIP: $*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
command -v ip > /dev/null || skip "no ip (iproute2)"
command -v unshare > /dev/null || skip "no unshare (util-linux)"
if ! ip netns add "$prefix-probe" 2> "$tmp/probe.log"; then
    skip "cannot make a network namespace: $(cat "$tmp/probe.log")"
fi
ip netns del "$prefix-probe"
if ! unshare --uts true 2> "$tmp/probe.log"; then
    skip "cannot make a UTS namespace: $(cat "$tmp/probe.log")"
fi

# 10.201.X for tests; another test run may hold one X: take the next free one
for x in $(seq $(($$ % 200 + 1)) 254) $(seq 1 254); do
    if bash "$nodes" up 2 --prefix "$prefix" --subnet "10.201.$x" > "$tmp/up.log" 2>&1; then
        break
    fi
    grep -q "is in use" "$tmp/up.log" || { cat "$tmp/up.log"; exit 1; }
done
cat "$tmp/up.log"
cp "$top_srcdir/tests/mpi/tiny.cfg" "$tmp/t.cfg"
fail=0
pass() { echo "PASS $*"; }
bad() {
    echo "FAIL $*"
    fail=1
}
# mpq_train DIR [ARGS...]: sets cmd to `mpq train` of $steps deterministic steps (checkpoints
# every 2) into $tmp/DIR
mpq_train() {
    local d=$1
    shift
    cmd=("$mpq" train --cfg "$tmp/t.cfg" DET --set "output_dir=$tmp/$d" --set "max_steps=$steps" \
        --set checkpoint_every_steps=2 "$@")
}
rx_bytes() { ip netns exec "$prefix-2" cat /sys/class/net/eth0/statistics/rx_bytes; }
# crossed WHAT STEPS RX0: node 2 must have received every step's summed gradients (or the
# gradients of node 1's ranks) over its eth0 since its counter read RX0: STEPS x parameters x 4
crossed() {
    local rx=$(($(rx_bytes) - $3)) need=$(($2 * params * 4))
    if [ "$rx" -ge "$need" ]; then
        pass "$1: node 2 received $rx bytes over the bridge (>= $2 steps x $params floats)"
    else bad "$1: node 2 received only $rx bytes over the bridge, < $need"; fi
}

# ---- the reference: one node, plain mpirun, shared memory
mpq_train ref
if ! MPQ_TEST_RANKS=2 sh "$top_srcdir/tests/mpirun.sh" --mca btl self,vader "${cmd[@]}" \
    > "$tmp/ref.log" 2>&1; then
    cat "$tmp/ref.log"
    exit 1
fi
params=$(sed -n 's/^model .* \([0-9]*\) parameters,.*/\1/p' "$tmp/ref.log")
[ -n "$params" ] || { echo "FAIL no parameter count in the log"; cat "$tmp/ref.log"; exit 1; }

# ---- 2 nodes, TCP only: RANKS PER_NODE STEPS
transport=tcp
for run in "2 1 $steps" "4 2 4"; do
    read -r n per k <<< "$run"
    d="n2x${per}$transport"
    rx0=$(rx_bytes)
    t=$SECONDS
    mpq_train "$d" --set "max_steps=$k" --set checkpoint_every_steps=0 # only the final one
    if ! timeout 300 bash "$nodes" mpirun --prefix "$prefix" -n "$n" -N "$per" \
        --transport "$transport" -- "${cmd[@]}" > "$tmp/$d.log" 2>&1; then
        bad "2 nodes x $per rank(s) ($transport): the run failed"
        tail -20 "$tmp/$d.log"
        continue
    fi
    what="2 nodes x $per rank(s), transport $transport"
    echo "$what: trained $k steps in $((SECONDS - t)) s"
    head -n $((k + 1)) "$tmp/ref/steps.csv" > "$tmp/ref$k.csv"
    if cmp -s "$tmp/ref$k.csv" "$tmp/$d/steps.csv"; then
        pass "$what: steps.csv of $k steps identical to one node (shared memory)"
    else
        bad "$what: steps.csv differs from one node"
        diff "$tmp/ref$k.csv" "$tmp/$d/steps.csv" | head
    fi
    # rank r runs on node r / per + 1 and says so
    hosts=$(sed -n 's/^rank \([0-9]*\) host \([^ ]*\) .*/\1 \2/p' "$tmp/$d.log" | sort -n |
        awk -v p="$prefix" -v per="$per" '{ printf "%s", ($2 == p "-" int($1 / per) + 1) }')
    if [ "$hosts" = "$(printf '1%.0s' $(seq "$n"))" ]; then
        pass "$what: each rank reports its node's hostname ($prefix-1, $prefix-2)"
    else
        bad "$what: rank hostnames"
        grep '^rank .* host' "$tmp/$d.log"
    fi
    crossed "$what" "$k" "$rx0"
done

# ---- kill every mpq process of node 2 mid-run
d=killed
mpq_train "$d" --set max_steps=100000
rx0=$(rx_bytes)
timeout 300 bash "$nodes" mpirun --prefix "$prefix" -n 4 -N 2 --transport shm -- "${cmd[@]}" \
    > "$tmp/$d.log" 2>&1 &
job=$!
i=0
until [ -f "$tmp/$d/checkpoints/ckpt-000000002.h5" ]; do
    i=$((i + 1))
    if [ $i -gt 1200 ] || ! kill -0 "$job" 2> /dev/null; then
        echo "FAIL no checkpoint of step 2 within 120 s"; cat "$tmp/$d.log"; exit 1
    fi
    sleep 0.1
done
victims=""
for p in $(ip netns pids "$prefix-2"); do
    if [ "$(ps -o comm= -p "$p" 2> /dev/null)" = mpq ]; then victims="$victims $p"; fi
done
if [ "$(echo "$victims" | wc -w)" -ne 2 ]; then
    echo "FAIL expected 2 mpq processes on node 2: '$victims'"
    exit 1
fi
t0=$(date +%s.%N)
# shellcheck disable=SC2086
kill -KILL $victims
status=0
wait "$job" || status=$?
t1=$(date +%s.%N)
job=
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
left="$(ip netns pids "$prefix-1")$(ip netns pids "$prefix-2")"
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ -z "$left" ] &&
    awk -v s="$secs" -v b="$BOUND_S" 'BEGIN { exit !(s <= b) }'; then
    pass "2 nodes x 2 ranks (shm): node 2's ranks killed: the whole job ended in $secs s" \
        "(bound $BOUND_S s), status $status"
else
    bad "after killing node 2's ranks: status $status after $secs s, still running: '$left'"
    tail -20 "$tmp/$d.log"
fi
crossed "2 nodes x 2 ranks, transport shm, until the kill" 2 "$rx0"

# ---- resume on fewer nodes: 1 node, 2 ranks
last=""
for f in "$tmp/$d"/checkpoints/ckpt-*[0-9].h5; do last=$(basename "$f"); done
s=${last#ckpt-}
s=$((10#${s%.h5}))
if [ "$s" -ge "$steps" ]; then
    echo "FAIL the job ran to step $s before the kill took effect; nothing left to resume"; exit 1
fi
mpq_train "$d" --resume auto
if timeout 300 bash "$nodes" mpirun --prefix "$prefix" -n 2 -N 2 -- "${cmd[@]}" \
    >> "$tmp/$d.log" 2>&1 &&
    grep -q "resuming from .*$last" "$tmp/$d.log" &&
    cmp -s "$tmp/ref/steps.csv" "$tmp/$d/steps.csv"; then
    pass "resumed from $last on 1 node x 2 ranks: steps.csv identical to the uninterrupted run"
else
    bad "resume on 1 node from $last"
    tail -20 "$tmp/$d.log"
    diff "$tmp/ref/steps.csv" "$tmp/$d/steps.csv" | head
fi
exit $fail

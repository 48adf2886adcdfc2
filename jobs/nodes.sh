#!/usr/bin/env bash
# Several "nodes" on one machine: Linux network namespaces, each with its own network stack and
# hostname, joined by veth pairs on a bridge on a private /24, and Open MPI launched into them so
# that only TCP carries traffic between nodes. For tests and scaling studies of the TCP transport
# on a single box (needs root, iproute2 and util-linux's unshare). Usage:
#
#   nodes.sh up N [--prefix P] [--subnet A.B.C]   make nodes P-1 .. P-N at A.B.C.1 .. A.B.C.N
#   nodes.sh down [--prefix P]                    kill their processes, remove all `up` made
#   nodes.sh list [--prefix P]                    one line per node: name address
#   nodes.sh exec [--prefix P] I CMD...           run CMD in node I, under that node's hostname
#   nodes.sh mpirun [--prefix P] -n RANKS [-N PER_NODE] [--transport tcp|shm] [--bind-to B]
#                   [--] [MPIRUN_ARGS...] PROGRAM [ARGS...]
#       runs mpirun inside node 1 over the first ceil(RANKS / PER_NODE) nodes (PER_NODE
#       defaults to spreading RANKS over all nodes). --transport tcp (default): btl self,tcp,
#       every message between ranks goes over TCP, even inside a node; shm: btl self,vader,tcp,
#       shared memory inside a node and TCP between nodes, as on a real cluster. --bind-to
#       defaults to none (the nodes share this machine's cores). The rest goes to mpirun as is.
#   nodes.sh agent HOST CMD...                    the rsh agent Open MPI calls (set by `mpirun`)
# NODES_PREFIX in the environment is the default prefix; `mpirun` exports it for the agent.
#
# Everything `up` makes is named after the prefix (default mpqn; at most 8 of [a-z0-9], starting
# with a letter): namespaces and hostnames P-1 .. P-N, bridge P-br, host-side veth ends P-v1 ..
# P-vN (eth0 inside each node). So several users of this script on one machine do not collide
# as long as they pick different prefixes and subnets (`up` refuses a prefix or subnet in use).
# The bridge has no address and no uplink: the nodes reach each other and nothing else.
# The user edits nothing here; pick --prefix and --subnet per use.
set -euo pipefail

self=$(readlink -f "${BASH_SOURCE[0]}")
prefix=${NODES_PREFIX:-mpqn}
subnet=10.200.0

die() {
    echo "nodes.sh: $*" >&2
    exit 1
}

check_prefix() {
    [[ $prefix =~ ^[a-z][a-z0-9]{0,7}$ ]] ||
        die "prefix '$prefix' must be 1-8 characters of [a-z0-9], starting with a letter"
}

# The nodes of $prefix, in index order (P-1 P-2 ...).
nodes() {
    ip netns list 2>/dev/null | awk -v p="$prefix" '$1 ~ "^" p "-[0-9]+$" { print $1 }' |
        sort -t- -k2 -n
}

# in_ns NS CMD...: runs CMD in network namespace NS. nsenter, not `ip -n` or `ip netns exec`:
# those also remount / and /sys, which fails where / is not a mount point (chroots, fresh-box).
netns_dir=/var/run/netns # where `ip netns add` puts them
in_ns() {
    local ns=$1
    shift
    nsenter --net="$netns_dir/$ns" "$@"
}

# The IPv4 address of node NS (on its eth0).
node_addr() {
    in_ns "$1" ip -4 -o addr show dev eth0 2>/dev/null | awk '{ split($4, a, "/"); print a[1] }'
}

# Run CMD... in namespace NS with hostname NS (its own UTS namespace); exec'd, argv kept.
enter() {
    local ns=$1
    shift
    # shellcheck disable=SC2016 # $0 and $@ belong to the inner shell
    exec nsenter --net="$netns_dir/$ns" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' \
        "$ns" "$@"
}

cmd_up() {
    local n=${1:-}
    shift || true
    while [ $# -gt 0 ]; do
        case $1 in
            --prefix) prefix=$2; shift 2 ;;
            --subnet) subnet=$2; shift 2 ;;
            *) die "up: unknown argument '$1'" ;;
        esac
    done
    check_prefix
    if ! [[ $n =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt 254 ]; then
        die "up: N must be 1..254, not '$n'"
    fi
    [[ $subnet =~ ^(10\.[0-9]+\.[0-9]+|172\.(1[6-9]|2[0-9]|3[01])\.[0-9]+|192\.168\.[0-9]+)$ ]] ||
        die "up: --subnet '$subnet' must be the first three octets of a private /24 (10.X.Y)"
    if [ -n "$(nodes)" ] || ip -o link show | grep -q "^[0-9]*: $prefix-"; then
        die "up: nodes of prefix '$prefix' exist; run: nodes.sh down --prefix $prefix"
    fi
    # the subnet must be free, on the host and in every other namespace
    local ns used=" inet ${subnet//./\\.}\."
    if ip -4 -o addr show | grep -q "$used"; then
        die "up: subnet $subnet.0/24 is in use on this machine; pick another --subnet"
    fi
    for ns in $(ip netns list | awk '{ print $1 }'); do
        if in_ns "$ns" ip -4 -o addr show 2>/dev/null | grep -q "$used"; then
            die "up: subnet $subnet.0/24 is in use in namespace $ns; pick another --subnet"
        fi
    done
    # from here on, a failure removes what was made so far
    trap 'echo "nodes.sh: up failed; removing what it made" >&2; cmd_down_now' EXIT
    ip link add "$prefix-br" type bridge
    no_ipv6 "$prefix-br"
    ip link set "$prefix-br" up
    local i
    for i in $(seq 1 "$n"); do
        ns=$prefix-$i
        ip netns add "$ns"
        ip link add "$prefix-v$i" type veth peer name "$prefix-e$i"
        no_ipv6 "$prefix-v$i"
        ip link set "$prefix-e$i" netns "$ns"
        in_ns "$ns" ip link set "$prefix-e$i" name eth0
        in_ns "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6' 2>/dev/null || true
        in_ns "$ns" ip addr add "$subnet.$i/24" dev eth0
        in_ns "$ns" ip link set lo up
        in_ns "$ns" ip link set eth0 up
        ip link set "$prefix-v$i" master "$prefix-br"
        ip link set "$prefix-v$i" up
    done
    trap - EXIT
    echo "nodes.sh: $n node(s) $prefix-1..$prefix-$n at $subnet.1..$subnet.$n on bridge $prefix-br"
}

# Keeps the host out of the private network: no IPv6 link-local address on its side.
no_ipv6() {
    local f=/proc/sys/net/ipv6/conf/$1/disable_ipv6
    if [ -w "$f" ]; then echo 1 > "$f"; fi
}

# The only option of `down` and `list`: [--prefix P]. parse_prefix VERB ARGS...
parse_prefix() {
    local verb=$1
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --prefix) prefix=$2; shift 2 ;;
            *) die "$verb: unknown argument '$1'" ;;
        esac
    done
    check_prefix
}

cmd_down() {
    parse_prefix down "$@"
    cmd_down_now
}

# Kills what runs in the nodes, deletes the namespaces, veth pairs and bridge of $prefix.
cmd_down_now() {
    local ns i pids
    for ns in $(nodes); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    done
    for ns in $(nodes); do
        i=${ns##*-}
        # a namespace lives on while one of its processes does: wait until they are gone
        for _ in $(seq 50); do
            [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
            sleep 0.1
        done
        ip netns del "$ns"
        ip link del "$prefix-v$i" 2>/dev/null || true
    done
    for i in $(ip -o link show 2>/dev/null | awk -F': ' -v p="$prefix" \
                   '{ sub(/@.*/, "", $2) } $2 ~ "^" p "-v[0-9]+$" { print $2 }'); do
        ip link del "$i" 2>/dev/null || true
    done
    if ip link show "$prefix-br" >/dev/null 2>&1; then ip link del "$prefix-br"; fi
}

cmd_list() {
    parse_prefix list "$@"
    local ns
    for ns in $(nodes); do echo "$ns $(node_addr "$ns")"; done
}

cmd_exec() {
    if [ "${1:-}" = --prefix ]; then prefix=$2; shift 2; fi
    check_prefix
    local i=${1:-}
    shift || true
    [ $# -gt 0 ] || die "exec: usage: nodes.sh exec [--prefix P] I CMD..."
    ip netns list | grep -q "^$prefix-$i\( \|$\)" || die "exec: no node $prefix-$i"
    enter "$prefix-$i" "$@"
}

# Open MPI's rsh agent: `AGENT HOST CMD...`, HOST an address of a node of $NODES_PREFIX. Like
# rsh, the words of CMD are joined and run by a shell (Open MPI quotes them for that).
cmd_agent() {
    check_prefix
    local host=${1:-} ns
    shift || true
    for ns in $(nodes); do
        if [ "$(node_addr "$ns")" = "$host" ]; then
            exec nsenter --net="$netns_dir/$ns" unshare --uts -- sh -c "hostname $ns && $*"
        fi
    done
    die "agent: no node of prefix '$prefix' has address '$host'"
}

cmd_mpirun() {
    local ranks="" per="" transport=tcp bind=none
    while [ $# -gt 0 ]; do
        case $1 in
            --prefix) prefix=$2; shift 2 ;;
            -n | -np) ranks=$2; shift 2 ;;
            -N) per=$2; shift 2 ;;
            --transport) transport=$2; shift 2 ;;
            --bind-to) bind=$2; shift 2 ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    check_prefix
    [ $# -gt 0 ] || die "mpirun: no program given"
    [[ $ranks =~ ^[1-9][0-9]*$ ]] || die "mpirun: -n RANKS is required (a positive number)"
    local all
    mapfile -t all < <(nodes)
    [ ${#all[@]} -gt 0 ] ||
        die "mpirun: no nodes of prefix '$prefix'; run: nodes.sh up N --prefix $prefix"
    [ -n "$per" ] || per=$(((ranks + ${#all[@]} - 1) / ${#all[@]}))
    [[ $per =~ ^[1-9][0-9]*$ ]] || die "mpirun: -N PER_NODE must be a positive number"
    local k=$(((ranks + per - 1) / per))
    [ "$k" -le ${#all[@]} ] ||
        die "mpirun: $ranks ranks at $per per node need $k nodes; prefix '$prefix' has ${#all[@]}"
    local btl
    case $transport in
        tcp) btl=self,tcp ;;
        shm) btl=self,vader,tcp ;;
        *) die "mpirun: --transport must be tcp or shm, not '$transport'" ;;
    esac
    local hosts="" i addr net
    for i in $(seq 0 $((k - 1))); do
        addr=$(node_addr "${all[$i]}")
        [ -n "$addr" ] || die "mpirun: node ${all[$i]} has no address"
        hosts="$hosts${hosts:+,}$addr:$per"
    done
    net="${addr%.*}.0/24"
    local extra=()
    # more ranks than cores: ranks yield when they wait instead of spinning
    if [ "$ranks" -gt "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" ]; then
        extra+=(--mca mpi_yield_when_idle 1)
    fi
    if [ -n "${LD_LIBRARY_PATH:-}" ]; then extra+=(-x LD_LIBRARY_PATH); fi
    export NODES_PREFIX=$prefix OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    enter "${all[0]}" mpirun -n "$ranks" --host "$hosts" --bind-to "$bind" \
        --mca plm_rsh_agent "$self agent" --mca plm_rsh_no_tree_spawn 1 \
        --mca pml ob1 --mca btl "$btl" \
        --mca btl_tcp_if_include "$net" --mca oob_tcp_if_include "$net" \
        -x PATH -x NODES_PREFIX \
        -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM "${extra[@]}" "$@"
}

verb=${1:-}
shift || true
case $verb in
    up | down | list | exec | agent | mpirun)
        [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
        command -v ip >/dev/null || die "needs iproute2 (ip); run jobs/install-deps.sh"
        command -v nsenter >/dev/null && command -v unshare >/dev/null ||
            die "needs util-linux (nsenter, unshare)"
        ;;
esac
case $verb in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    list) cmd_list "$@" ;;
    exec) cmd_exec "$@" ;;
    agent) cmd_agent "$@" ;;
    mpirun) cmd_mpirun "$@" ;;
    *) sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# jobs/train.sbatch and jobs/train-srun.sbatch under a real SLURM started by this test: munged
# with its own key, slurmctld and two slurmd "nodes" (n1, n2) on this machine, on free ports,
# everything under a temporary directory and torn down by the PIDs started here. Two ranks, one
# per node, deterministic training (tests/mpi/tiny.cfg [DET]):
#  (a) train.sbatch trains to the end;
#  (b) SIGUSR1 to the batch shell (scancel --signal=USR1 --batch, as --signal=B:USR1@T does):
#      checkpoint, status 75, requeue, resume; steps.csv byte-identical to (a);
#  (c) SIGTERM to every process of the job (scancel --signal=TERM --full, as a preemption or
#      the time limit): the same chain;
#  (d) train-srun.sbatch (srun --mpi=pmix) with SIGTERM to the batch shell (scancel
#      --signal=TERM --batch): the same chain. (srun turns a SIGTERM it gets itself into SIGKILL
#      for the ranks, so SIGTERM to every process cannot checkpoint with srun: docs/clusters.md.)
# MPQ_TEST_KEEP=1 keeps the temporary directory (logs, job outputs, runs) for a look afterwards.
# Skips (77) only where slurmd cannot run at all: no cgroup filesystem at /sys/fs/cgroup, or
# slurmd stopping on a cgroup error.
set -euo pipefail
mpq="$top_builddir/mpq"
jobs="$top_srcdir/jobs"
. "$top_srcdir/tests/testlib.sh" # wait_for
steps=150 # long enough that every signal finds its job running, on any machine

if ! mountpoint -q /sys/fs/cgroup; then
    echo "SKIP: no cgroup filesystem at /sys/fs/cgroup: slurmd 22.05 cannot start here"
    exit 77
fi
for c in mungekey munged slurmctld slurmd sbatch scontrol squeue scancel sinfo; do
    command -v "$c" > /dev/null ||
        { echo "FAIL: $c is missing ---> HINT: bash jobs/install-deps.sh"; exit 1; }
done

tmp=$(mktemp -d)
chmod 755 "$tmp" # munged wants every directory above its socket searchable by all
pidfiles=()
no_jobs() { [ -z "$(squeue -h -o %i 2> /dev/null)" ]; }
gone() { ! kill -0 "$1" 2> /dev/null; }
cleanup() { # the jobs, then the daemons started here, by their PIDs
    set +e
    if [ -f "$tmp/slurmctld.pid" ] && ! no_jobs; then
        squeue -h -o %i | xargs scancel --quiet
        wait_for 15 no_jobs
    fi
    local pids=() p f
    for f in "${pidfiles[@]}"; do
        p=$(cat "$f" 2> /dev/null) && [ -n "$p" ] && pids+=("$p")
    done
    [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2> /dev/null
    for p in "${pids[@]}"; do wait_for 5 gone "$p" || kill -KILL "$p"; done
    if [ -n "${MPQ_TEST_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# below the kernel's ephemeral range, where the outgoing connections of the other tests that run
# beside this one (Open MPI's, SLURM's own) cannot take a port between its pick and the bind
read -r ephemeral_low _ < /proc/sys/net/ipv4/ip_local_port_range
port_low=10000 port_span=$((ephemeral_low - 10000))
[ "$port_span" -ge 1000 ] || { port_low=$((ephemeral_low - 9000)); port_span=1000; }
free_port() { # free_port [TAKEN...]: an unused TCP port on 127.0.0.1, none of TAKEN
    local p
    while :; do
        p=$((port_low + RANDOM % port_span))
        [[ " $* " == *" $p "* ]] && continue
        (exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null || { echo "$p"; return; }
    done
}
daemon() { # daemon PIDFILE COMMAND...: starts a daemon that writes PIDFILE
    pidfiles+=("$1")
    local f=$1
    shift
    # 30 s: make check runs other tests beside this one, and a loaded machine starts slowly
    if "$@" && wait_for 30 test -s "$f"; then return; fi
    # slurmd 22.05 needs cgroups even with proctrack/linuxproc: no usable cgroup, no SLURM here
    if grep -s "error" "$tmp"/slurmd-*.log | grep -i cgroup; then
        echo "SKIP: slurmd cannot start on this machine's cgroups (its log above)"; exit 77
    fi
    echo "FAIL: $* did not start (no $f)"; tail -n 20 "$tmp"/*.log; exit 1
}

# ---- munge: own key, socket, pid and log
mkdir "$tmp/munge"
mungekey --create --keyfile="$tmp/munge/key"
daemon "$tmp/munge/pid" munged --socket="$tmp/munge/sock" --key-file="$tmp/munge/key" \
    --pid-file="$tmp/munge/pid" --log-file="$tmp/munge.log" --seed-file="$tmp/munge/seed" \
    --origin=127.0.0.1

# ---- slurm.conf: two nodes on this machine, each slurmd on its own port; accounting off; a
# requeued job may start again cred_expire seconds after its requeue (default 120), at the next
# pass of the scheduler (every sched_interval seconds, default 60)
cpus=$(slurmd -C | sed -n 's/^NodeName=[^ ]* \(CPUs=.*\) RealMemory=.*/\1/p')
# three distinct ports (two random picks could coincide, and the second daemon would not bind)
port_ctl=$(free_port)
port_n1=$(free_port "$port_ctl")
port_n2=$(free_port "$port_ctl" "$port_n1")
mkdir "$tmp/state"
cat > "$tmp/slurm.conf" << CONF
ClusterName=mpqtest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port_ctl
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/sock,cred_expire=5
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool-%n
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd-%n.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog=$tmp/task-prolog.sh
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
NodeName=n1 NodeAddr=127.0.0.1 Port=$port_n1 $cpus
NodeName=n2 NodeAddr=127.0.0.1 Port=$port_n2 $cpus
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$tmp/slurm.conf"
daemon "$tmp/slurmctld.pid" slurmctld
# each job's tasks on each node get their own TMPDIR: Open MPI's session directory (ompi.HOST.UID
# under TMPDIR) is named after the host, which the two nodes share; mpirun on one node and its
# orted on the other made it at once and one failed ("mkdir ... File exists", a fresh-box run),
# and two jobs start at once on the same node
cat > "$tmp/task-prolog.sh" << PROLOG
#!/bin/sh
d="$tmp/tmp-\$SLURMD_NODENAME-\$SLURM_JOB_ID"
mkdir -p "\$d" && echo "export TMPDIR=\$d"
PROLOG
chmod +x "$tmp/task-prolog.sh"
for n in n1 n2; do
    # each node's slurmstepd makes its PMIx directory under PMIxCliTmpDirBase of the mpi.conf
    # beside the slurm.conf it was started with: one directory per node, or the two collide
    mkdir "$tmp/spool-$n" "$tmp/etc-$n" "$tmp/pmix-$n"
    ln -s "$tmp/slurm.conf" "$tmp/etc-$n/slurm.conf"
    echo "PMIxCliTmpDirBase=$tmp/pmix-$n" > "$tmp/etc-$n/mpi.conf"
    SLURM_CONF="$tmp/etc-$n/slurm.conf" daemon "$tmp/slurmd-$n.pid" slurmd -N "$n"
done
idle() { [ "$(sinfo -h -o '%D %T' 2> /dev/null)" = "2 idle" ]; }
wait_for 30 idle || { echo "FAIL: the nodes are not idle"; sinfo; tail "$tmp"/*.log; exit 1; }
echo "SLURM up: $(sinfo -h -o '%D nodes %N %T, %c CPUs each')"

# ---- the jobs: 2 nodes x 1 rank, TCP between the "nodes", the binary from $MPQ
cp "$top_srcdir/tests/mpi/tiny.cfg" "$tmp/t.cfg"
export MPQ="$mpq" OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo \
    OMPI_MCA_oob_tcp_if_include=lo
fail=0
submit() { # submit NAME SCRIPT: the job id
    (cd "$tmp" && sbatch --parsable -J "$1" -o "$tmp/$1.out" -N 2 --ntasks-per-node=1 \
        --cpus-per-task=1 "$jobs/$2" t.cfg DET --set max_steps=$steps --set epochs=1000 \
        --set checkpoint_every_steps=0)
}
state() { scontrol show job "$1" 2> /dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
ended() { case "$(state "$1")" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL) ;; *) return 1 ;; esac; }
finish() { # finish NAME ID: waits for the end; the job must have completed with status 0
    if ! wait_for 240 ended "$2"; then
        echo "FAIL $1: job $2 still $(state "$2")"; cat "$tmp/$1.out"; exit 1
    fi
    if [ "$(state "$2")" != COMPLETED ] || ! grep -q "^done: $steps steps" "$tmp/$1.out"; then
        echo "FAIL $1: job $2 $(scontrol show job "$2" | grep -o 'JobState=[^ ]* Reason=[^ ]*')"
        cat "$tmp/$1.out"; fail=1; return 1
    fi
}
steps_of() { echo "$tmp/runs/$1-$2/steps.csv"; }

# all four at once: two jobs fit on the nodes at a time, the others wait in the queue
declare -A id how
for j in full:train.sbatch usr1:train.sbatch term:train.sbatch srun-term:train-srun.sbatch; do
    id[${j%%:*}]=$(submit "${j%%:*}" "${j#*:}")
done
# each job gets its signal as soon as its ranks have their signal handlers, whatever order the
# scheduler starts the queued jobs in (signalling them one after the other let a job that started
# before the one waited for run to its end unsignalled)
how[usr1]="--signal=USR1 --batch"       # (b)
how[term]="--signal=TERM --full"        # (c)
how[srun-term]="--signal=TERM --batch"  # (d)
waiting=(usr1 term srun-term)
started=$SECONDS
while [ ${#waiting[@]} -gt 0 ] && [ $((SECONDS - started)) -lt 240 ]; do
    left=()
    for name in "${waiting[@]}"; do
        if grep -qs "signal handlers installed on 2 rank" "$tmp/$name.out"; then
            # shellcheck disable=SC2086 # the options are words
            scancel ${how[$name]} "${id[$name]}"
        else left+=("$name"); fi
    done
    waiting=("${left[@]}")
    sleep 0.1
done
for name in "${waiting[@]}"; do
    echo "FAIL $name: the ranks did not start"; cat "$tmp/$name.out" 2> /dev/null; fail=1
done

a=${id[full]}
if finish full "$a" && [ "$(wc -l < "$(steps_of full "$a")")" -eq $((steps + 1)) ]; then
    echo "PASS (a) (${SECONDS}s) train.sbatch: $steps steps on 2 nodes ($(grep -m1 'train.sbatch: job' "$tmp/full.out" |
        sed 's/.*: \([0-9]* rank(s)[^;]*\);.*/\1/'))"
else echo "FAIL (a)"; cat "$tmp/full.out"; exit 1; fi

# chain NAME: the signal -> checkpoint -> 75 -> requeue -> resume chain, and steps.csv == (a)
chain() {
    local name=$1 out="$tmp/$1.out" st
    local job=${id[$name]}
    finish "$name" "$job" || return 0
    st=$(sed -n 's/.*exit status 75: checkpoint complete (signal [A-Z0-9]* step \([0-9]*\) .*/\1/p' "$out" | head -1)
    if [ -n "$st" ] && grep -q "stopped by SIG[A-Z0-9]* after step $st " "$out" &&
        grep -q "requeueing job $job" "$out" && grep -q "job $job (restart 1)" "$out" &&
        grep -q "resuming from .*ckpt-0*$st.h5" "$out"; then
        echo "PASS $name (${SECONDS}s): scancel ${how[$name]}: complete checkpoint at step $st, status 75," \
             "requeued, resumed"
    else
        echo "FAIL $name: the signal -> checkpoint -> 75 -> requeue -> resume chain"; cat "$out"
        fail=1; return
    fi
    if cmp -s "$(steps_of full "$a")" "$(steps_of "$name" "$job")"; then
        echo "PASS $name: steps.csv == the uninterrupted run (a)"
    else
        echo "FAIL $name: steps.csv differs from (a)"
        diff "$(steps_of full "$a")" "$(steps_of "$name" "$job")" | head; fail=1
    fi
}
chain usr1
chain term
chain srun-term
exit $fail

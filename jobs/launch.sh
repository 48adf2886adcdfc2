#!/usr/bin/env bash
# Runs an MPI launcher (mpirun or srun) with `mpq train` so that a stop signal always ends in a
# complete checkpoint and exit status 75 (requeue and resume with --resume auto):
#   bash jobs/launch.sh RUN_DIR mpirun -np 4 --bind-to none build/mpq train --cfg F E \
#        --set output_dir=RUN_DIR --resume auto
# RUN_DIR is the run's output_dir. Nothing here needs editing; jobs/train*.sbatch call it.
#
# Why: Open MPI 4.1's mpirun treats SIGTERM as "abort the job": it stops relaying the ranks'
# output, sends SIGCONT, SIGTERM and SIGKILL to the ranks odls_base_sigkill_timeout seconds apart
# and exits with status 1, so ranks killed while they checkpoint leave no checkpoint and the job
# does not requeue. SIGUSR1 instead is forwarded to the ranks, which checkpoint at the next step
# boundary and exit with 75. So this script
#  - starts the launcher with SIGTERM blocked (the ranks mpirun starts get a clean signal mask):
#    a SIGTERM that SLURM sends to every process of the job (scancel, preemption, time limit)
#    reaches the ranks directly and no longer aborts mpirun;
#  - turns SIGTERM, SIGINT and SIGUSR1 that it receives itself into SIGUSR1 for the launcher;
#  - watches the launcher for a pending (blocked) SIGTERM sent to it alone and forwards SIGUSR1;
#  - ends with 75 when the ranks wrote the stop record <RUN_DIR>/stopped (src/stop.h) after a
#    complete checkpoint, whatever status the launcher reports; otherwise with its status.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: launch.sh RUN_DIR LAUNCHER [ARGS...]" >&2
    exit 2
fi
run_dir=$1
launcher=$(basename "$2")
shift
record="$run_dir/stopped"
mkdir -p "$run_dir"
rm -f "$record" # a record counts only when this launch wrote it

env --block-signal=TERM "$@" &
pid=$!
forwarded=0
forward() { # SIGUSR1 for the launcher (mpirun and srun forward it to every rank)
    echo "launch.sh: $1 -> SIGUSR1 to $launcher (pid $pid): checkpoint and stop" >&2
    kill -USR1 "$pid" 2>/dev/null || true
    forwarded=1
}
trap 'forward SIGTERM' TERM
trap 'forward SIGINT' INT
trap 'forward SIGUSR1' USR1

# SIGTERM sent to the launcher itself stays pending there (blocked): bit 15 of its pending sets
term_pending() {
    local sets
    sets=$(sed -n 's/^\(ShdPnd\|SigPnd\):[[:space:]]*/0x/p' "/proc/$pid/status" 2>/dev/null) ||
        return 1
    for s in $sets; do [ $((s & 0x4000)) -ne 0 ] && return 0; done
    return 1
}
while kill -0 "$pid" 2>/dev/null; do
    if [ "$forwarded" -eq 0 ] && term_pending; then forward "SIGTERM to $launcher"; fi
    sleep 0.5 || true
done
status=0
wait "$pid" || status=$?
trap - TERM INT USR1
if [ -f "$record" ]; then
    [ "$status" -eq 75 ] ||
        echo "launch.sh: $launcher exited with status $status, but the ranks recorded a" \
             "complete checkpoint ($(tr '\n' ' ' < "$record")): status 75" >&2
    exit 75
fi
exit "$status"

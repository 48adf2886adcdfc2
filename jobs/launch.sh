#!/usr/bin/env bash
# Runs an MPI launcher (mpirun or srun) with `mpq train` so that a stop signal always ends in a
# complete checkpoint and exit status 75 (requeue, then resume with --resume auto):
#   bash jobs/launch.sh RUN_DIR mpirun -np 4 --bind-to none build/mpq train --cfg F E \
#        --set output_dir=RUN_DIR --resume auto
# RUN_DIR is the run's output_dir. Nothing here needs editing. jobs/slurm-job.sh sources this
# file and calls mpq_launch inside the batch shell, so the signals SLURM sends to that shell
# (--signal=B:USR1@T, scancel --batch) are handled here too.
#
# Why: Open MPI 4.1's mpirun treats SIGTERM as "abort the job": it stops relaying the ranks'
# output, sends SIGCONT, SIGTERM and SIGKILL to the ranks odls_base_sigkill_timeout seconds apart
# and exits with status 1, so ranks killed while they checkpoint leave no checkpoint and the job
# does not requeue. SIGUSR1 instead is forwarded to the ranks, which checkpoint at the next step
# boundary and exit with 75. So mpq_launch
#  - starts the launcher with SIGTERM blocked (mpirun unblocks every signal in the ranks it
#    starts): a SIGTERM that SLURM sends to every process of the job (scancel, preemption, the
#    time limit) reaches the ranks directly and no longer aborts mpirun;
#  - turns SIGTERM, SIGINT and SIGUSR1 that it receives itself into SIGUSR1 for the launcher;
#  - watches the launcher for a pending (blocked) SIGTERM sent to it alone, and forwards SIGUSR1;
#  - returns 75 when the ranks wrote the stop record <RUN_DIR>/stopped (src/train/stop.h) after a
#    complete checkpoint, whatever status the launcher reports; otherwise the launcher's status.

# mpq_launch RUN_DIR LAUNCHER [ARGS...]: returns the status described above.
mpq_launch() {
    local run_dir=$1
    MPQ_LAUNCH_NAME=$(basename "$2")
    shift
    mkdir -p "$run_dir"
    rm -f "$run_dir/stopped" # a record counts only when this launch wrote it
    env --block-signal=TERM "$@" &
    MPQ_LAUNCH_PID=$!
    MPQ_LAUNCH_FORWARDED=0
    trap 'mpq_launch_forward SIGTERM' TERM
    trap 'mpq_launch_forward SIGINT' INT
    trap 'mpq_launch_forward SIGUSR1' USR1
    while kill -0 "$MPQ_LAUNCH_PID" 2>/dev/null; do
        if [ "$MPQ_LAUNCH_FORWARDED" -eq 0 ] && mpq_launch_term_pending "$MPQ_LAUNCH_PID"; then
            mpq_launch_forward "SIGTERM to $MPQ_LAUNCH_NAME"
        fi
        sleep 0.5 || true
    done
    local status=0
    wait "$MPQ_LAUNCH_PID" || status=$?
    trap - TERM INT USR1
    if [ -f "$run_dir/stopped" ]; then
        [ "$status" -eq 75 ] ||
            echo "launch.sh: $MPQ_LAUNCH_NAME exited with status $status, but the ranks recorded a" \
                 "complete checkpoint ($(tr '\n' ' ' < "$run_dir/stopped")): status 75" >&2
        return 75
    fi
    return "$status"
}

# mpq_launch_forward WHAT: SIGUSR1 for the launcher (mpirun and srun forward it to the ranks)
mpq_launch_forward() {
    echo "launch.sh: $1 -> SIGUSR1 to $MPQ_LAUNCH_NAME (pid $MPQ_LAUNCH_PID): checkpoint and stop" >&2
    kill -USR1 "$MPQ_LAUNCH_PID" 2>/dev/null || true
    MPQ_LAUNCH_FORWARDED=1
}

# Whether SIGTERM (bit 15) is pending in process $1, per thread or for the whole process.
mpq_launch_term_pending() {
    local sets s
    sets=$(sed -n 's/^\(ShdPnd\|SigPnd\):[[:space:]]*/0x/p' "/proc/$1/status" 2>/dev/null) ||
        return 1
    for s in $sets; do [ $((s & 0x4000)) -ne 0 ] && return 0; done
    return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then # run, not sourced
    set -euo pipefail
    if [ $# -lt 2 ]; then
        echo "usage: launch.sh RUN_DIR LAUNCHER [ARGS...]" >&2
        exit 2
    fi
    status=0
    mpq_launch "$@" || status=$?
    exit "$status"
fi

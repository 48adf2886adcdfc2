# The body of jobs/train.sbatch and jobs/train-srun.sbatch, sourced by them (not run alone):
# derives the job's layout from the SLURM allocation, finds the mpq binary and the run directory,
# runs the ranks through mpq_launch (jobs/launch.sh) and requeues the job when they stopped on a
# signal after a complete checkpoint (status 75). What a user sets, all optional, in the
# environment of sbatch:
#   MPQ=/path/to/mpq   the binary (default: $SLURM_SUBMIT_DIR/build/mpq, else `mpq` on PATH)
#   MPQ_RUN_DIR=DIR    the run's output_dir (default: $SLURM_SUBMIT_DIR/runs/<job name>-<job id>;
#                      a `--set output_dir=DIR` among the arguments wins over both)
# shellcheck shell=bash

mpq_job_die() {
    echo "${MPQ_JOB_SCRIPT:-sbatch}: $*" >&2
    exit 2
}

# The first count of a SLURM per-node list ("16(x2),8" -> 16).
mpq_job_first_count() { echo "${1%%[(,]*}"; }

# mpq_job_init CFG EXPERIMENT [mpq train options]...: sets MPQ_BIN, MPQ_NTASKS, MPQ_NODES,
# MPQ_RANKS_PER_NODE, MPQ_THREADS, MPQ_RUN_DIR and the array MPQ_TRAIN_ARGS; exports the
# environment of the ranks.
mpq_job_init() {
    [ -n "${SLURM_JOB_ID:-}" ] || mpq_job_die "not inside a SLURM job ---> HINT: submit it with sbatch"
    [ $# -ge 2 ] || mpq_job_die "usage: sbatch [options] $MPQ_JOB_SCRIPT CFG EXPERIMENT [--set key=value]..."
    [ -f "$1" ] || mpq_job_die "no configuration file '$1' (relative to $(pwd))"

    # the binary: under sbatch $0 is SLURM's copy of the script, so nothing is found relative to it
    if [ -n "${MPQ:-}" ]; then
        MPQ_BIN=$MPQ
    elif [ -x "$SLURM_SUBMIT_DIR/build/mpq" ]; then
        MPQ_BIN=$SLURM_SUBMIT_DIR/build/mpq
    else
        MPQ_BIN=$(command -v mpq) || mpq_job_die "no mpq binary: not in \$MPQ, not at" \
            "$SLURM_SUBMIT_DIR/build/mpq, not on PATH ---> HINT: build it (bash jobs/build.sh)" \
            "and submit from the source directory, or set MPQ=/path/to/mpq"
    fi
    [ -x "$MPQ_BIN" ] || mpq_job_die "MPQ=$MPQ_BIN is not an executable file"

    # layout: ranks from the allocation, threads per rank from --cpus-per-task (else the node's
    # CPUs divided among its ranks); mpq binds each rank to its share of cores with hwloc
    MPQ_NODES=${SLURM_JOB_NUM_NODES:-1}
    MPQ_NTASKS=${SLURM_NTASKS:-$MPQ_NODES}
    MPQ_RANKS_PER_NODE=${SLURM_NTASKS_PER_NODE:-$(mpq_job_first_count "${SLURM_TASKS_PER_NODE:-1}")}
    local cpus
    cpus=$(mpq_job_first_count "${SLURM_JOB_CPUS_PER_NODE:-1}")
    MPQ_THREADS=${SLURM_CPUS_PER_TASK:-$((cpus / MPQ_RANKS_PER_NODE > 0 ? cpus / MPQ_RANKS_PER_NODE : 1))}
    export OMP_NUM_THREADS=$MPQ_THREADS
    if [ $((MPQ_RANKS_PER_NODE * MPQ_THREADS)) -gt "$cpus" ]; then
        export OMPI_MCA_mpi_yield_when_idle=1 # oversubscribed: idle ranks yield their core
    fi
    if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

    # one run directory per job: a requeued job keeps its id, so it resumes in the same place
    MPQ_TRAIN_ARGS=(train --cfg "$1" "$2")
    local a prev="" resume=0
    MPQ_RUN_DIR=${MPQ_RUN_DIR:-$SLURM_SUBMIT_DIR/runs/${SLURM_JOB_NAME:-mpq}-$SLURM_JOB_ID}
    local set_dir=0
    for a in "${@:3}"; do
        if [ "$prev" = --set ] && [ "${a%%=*}" = output_dir ]; then
            MPQ_RUN_DIR=${a#*=}
            set_dir=1
        fi
        [ "$a" = --resume ] && resume=1
        prev=$a
    done
    MPQ_TRAIN_ARGS+=("${@:3}")
    [ "$set_dir" -eq 1 ] || MPQ_TRAIN_ARGS+=(--set "output_dir=$MPQ_RUN_DIR")
    [ "$resume" -eq 1 ] || MPQ_TRAIN_ARGS+=(--resume auto)
}

# shellcheck source=jobs/launch.sh
. "$(dirname "${BASH_SOURCE[0]}")/launch.sh"

# mpq_job_run LAUNCHER [ARGS...]: runs the ranks in this shell's care (it gets SLURM's signals),
# requeues the job on status 75 and exits with the status.
mpq_job_run() {
    local status=0
    echo "$MPQ_JOB_SCRIPT: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0})" \
         "on $MPQ_NODES node(s) [${SLURM_JOB_NODELIST:-?}]: $MPQ_NTASKS rank(s)," \
         "$MPQ_RANKS_PER_NODE per node, x $MPQ_THREADS thread(s); $MPQ_BIN; run directory" \
         "$MPQ_RUN_DIR; launcher: $*"
    mpq_launch "$MPQ_RUN_DIR" "$@" "$MPQ_BIN" "${MPQ_TRAIN_ARGS[@]}" || status=$?
    if [ "$status" -eq 75 ]; then
        echo "$MPQ_JOB_SCRIPT: exit status 75: checkpoint complete ($(tr '\n' ' ' \
             < "$MPQ_RUN_DIR/stopped" 2>/dev/null | sed 's/ $//')); requeueing job $SLURM_JOB_ID"
        scontrol requeue "$SLURM_JOB_ID" ||
            echo "$MPQ_JOB_SCRIPT: scontrol requeue failed: resubmit the same" \
                 "command (it resumes from $MPQ_RUN_DIR)" >&2
    fi
    exit "$status"
}

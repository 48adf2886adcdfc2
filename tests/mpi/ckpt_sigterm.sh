#!/bin/sh
# SIGTERM under jobs/launch.sh (the launcher of jobs/train*.sbatch), 2 ranks, deterministic mode
# (tests/mpi/tiny.cfg [DET]). Open MPI's mpirun aborts the job on SIGTERM (status 1, ranks
# killed); through launch.sh each of these must end with status 75 after a complete checkpoint,
# the stop record <output_dir>/stopped naming it, and --resume auto must then finish with
# steps.csv byte-identical to an uninterrupted run:
#  - SIGTERM to mpirun itself;
#  - SIGTERM to every process at once (launch.sh, mpirun, the ranks), as scancel, a preemption
#    or the time limit send it under SLURM;
#  - SIGTERM to launch.sh alone (the batch shell's case).
set -eu
mpq="$top_builddir/mpq"
launch="$top_srcdir/jobs/launch.sh"
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && pkill -KILL -P "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
. "$top_srcdir/tests/testlib.sh" # wait_for, launcher
cp "$top_srcdir/tests/mpi/tiny.cfg" "$tmp/t.cfg"
steps=12
# train DIR: launch.sh with 2 ranks in the background ($pid), output in DIR.log
train() {
    timeout 300 bash "$launch" "$tmp/$1" mpiexec -n 2 --oversubscribe --bind-to none \
        "$mpq" train --cfg "$tmp/t.cfg" DET --set "output_dir=$tmp/$1" \
        --set max_steps=$steps --resume auto >> "$tmp/$1.log" 2>&1 &
    pid=$!
}
ranks_of() { pgrep -P "$1" | tr '\n' ' '; }

train full
wait "$pid" || { cat "$tmp/full.log"; exit 1; }
pid=

for who in mpirun all launch.sh; do
    d=term-$who
    train "$d"
    if ! wait_for 120 grep -q "signal handlers installed on 2 rank" "$tmp/$d.log"; then
        echo "FAIL $who: the ranks did not start"; cat "$tmp/$d.log"; exit 1
    fi
    m=$(launcher "$pid")
    sh_pid=$(pgrep -P "$pid") # bash launch.sh, below timeout
    case $who in
        mpirun) kill -TERM "$m" ;;
        all) kill -TERM "$sh_pid" "$m" $(ranks_of "$m") ;;
        launch.sh) kill -TERM "$sh_pid" ;;
    esac
    status=0
    wait "$pid" || status=$?
    pid=
    rec="$tmp/$d/stopped"
    ck=$(sed -n 's/^checkpoint //p' "$rec" 2>/dev/null || true)
    st=$(sed -n 's/^step //p' "$rec" 2>/dev/null || true)
    if [ "$status" -eq 75 ] && [ -n "$ck" ] && [ -f "$ck" ] &&
        "$mpq" inspect "$ck" 2>&1 | grep -q "^step $st:"; then
        echo "PASS SIGTERM to $who: status 75, complete checkpoint at step $st ($(head -1 "$rec"))"
    else
        echo "FAIL SIGTERM to $who: status $status, record '$(cat "$rec" 2>/dev/null)'"
        tail -20 "$tmp/$d.log"; fail=1; continue
    fi
    train "$d"
    status=0
    wait "$pid" || status=$?
    pid=
    if [ "$status" -eq 0 ] && grep -q "resuming from .*ckpt-0*$st.h5" "$tmp/$d.log" &&
        cmp -s "$tmp/full/steps.csv" "$tmp/$d/steps.csv"; then
        echo "PASS SIGTERM to $who: resumed at step $st, steps.csv == uninterrupted"
    else
        echo "FAIL SIGTERM to $who: resume (status $status)"; tail -5 "$tmp/$d.log"
        diff "$tmp/full/steps.csv" "$tmp/$d/steps.csv" | head; fail=1
    fi
done
exit $fail

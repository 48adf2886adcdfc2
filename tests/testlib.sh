# Helpers of the shell tests (sourced by tests/mpi/*.sh, tests/system/*.sh, jobs/test-sanitizers.sh;
# POSIX sh; they expect $top_srcdir).

# wait_for SECONDS COMMAND...: polls every 0.1 s until COMMAND succeeds; 1 if it never did.
wait_for() {
    wf_s=$1
    shift
    wf_i=0
    while ! "$@"; do
        wf_i=$((wf_i + 1))
        [ $wf_i -gt $((wf_s * 10)) ] && return 1
        sleep 0.1
    done
}

# launcher PID: the mpiexec/mpirun process at or below process PID (breadth first, 5 levels).
launcher() {
    l_level=$1
    for l_i in 1 2 3 4 5 6; do
        l_next=""
        for l_p in $l_level; do
            case "$(ps -o comm= -p "$l_p")" in
                mpiexec | mpirun | orterun) echo "$l_p"; return ;;
            esac
            l_next="$l_next $(pgrep -P "$l_p" | tr '\n' ' ')"
        done
        l_level=$l_next
    done
    echo "no mpiexec below $1" >&2
    return 1
}

# tiny_cfg FILE SECTION [KEY=VALUE...]: the training fixture tests/mpi/tiny.cfg (ResNet-20 on
# 128 synthetic 8x8 images, quantized, 8 steps; written to FILE unless FILE exists), then a
# section [SECTION] that sets the keys given on top of its [DEFAULT] (VALUE None: empty).
tiny_cfg() {
    tc_file=$1
    tc_section=$2
    shift 2
    [ -e "$tc_file" ] || cat "$top_srcdir/tests/mpi/tiny.cfg" > "$tc_file"
    printf '[%s]\n' "$tc_section" >> "$tc_file"
    for tc_kv in "$@"; do
        printf '%s = %s\n' "${tc_kv%%=*}" "${tc_kv#*=}" >> "$tc_file"
    done
}

# Shell helpers shared by the multi-rank test scripts (POSIX sh; sourced, not run):
#   launcher PID   prints the mpiexec process below background job PID (signals go to it)
#   wait_for S T.. polls every 0.1 s until the test command T succeeds; fails after S seconds
launcher() {
    _p=$1
    for _i in 1 2 3 4 5; do
        case "$(ps -o comm= -p "$_p")" in mpiexec | mpirun | orterun) echo "$_p"; return ;; esac
        _p=$(pgrep -P "$_p" | head -1)
        [ -n "$_p" ] || break
    done
    echo "no mpiexec below $1" >&2
    exit 1
}
wait_for() {
    _s=$1
    shift
    _i=0
    while ! "$@"; do
        _i=$((_i + 1))
        [ $_i -gt $((_s * 10)) ] && return 1
        sleep 0.1
    done
}

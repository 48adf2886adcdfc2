#!/usr/bin/env bash
# Builds mpq with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/ (./configure
# --enable-sanitizers: every UBSan report is fatal) and runs under it: the Check test programs
# (single-process ones, and the 2-rank ones under mpirun), then a 2-rank training with
# checkpoints that is stopped and resumed with --resume auto. Open MPI's and HDF5's own leak
# reports are suppressed by tests/sanitizers/lsan.supp and asan.supp (HDF5's own over-reads of
# crafted files), not by turning the sanitizers off.
# A user edits: SAN_TESTS (the test programs to run; default: all Check programs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p build-asan
if [ ! -f build-asan/Makefile ]; then
    (cd build-asan && ../configure -q --enable-sanitizers --disable-native)
fi
nice -n 5 make -C build-asan -j"$(nproc)" >/dev/null

# allocator_may_return_null: HDF5 allocates sizes read from crafted metadata (the regression
# inputs of tests/fuzz/regressions/); as in production it must get NULL and fail cleanly
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:allocator_may_return_null=1:check_initialization_order=1:strict_string_checks=1:suppressions=$root/tests/sanitizers/asan.supp"
export CK_TIMEOUT_MULTIPLIER=10 # Check's per-test timeouts, for the slower instrumented code
export OMPI_MCA_mca_base_component_disable_dlclose=1 # with full stacks, MPI leaks match lsan.supp
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

tests=${SAN_TESTS:-$(make -C build-asan -pn 2>/dev/null | sed -n 's/^check_PROGRAMS = //p' |
    head -1 | sed 's/\$(EXEEXT)//g')}
echo "sanitizer build: running $tests"
nice -n 5 make -C build-asan check TESTS="$tests" >/dev/null || {
    grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error' build-asan/tests/*/*.log || true
    # the log of every program that did not pass: the sanitizer's report, or Check's failed
    # assertions and timeouts (":F:", ":E:" lines, which name no FAIL)
    find build-asan/tests -name '*.trs' -exec grep -L '^:test-result: \(PASS\|SKIP\)' {} + |
        while IFS= read -r trs; do
            echo "=== did not pass (sanitizer build): ${trs%.trs}.log (its last 80 lines)"
            tail -n 80 "${trs%.trs}.log"
        done
    exit 1
}
echo "sanitizer build: $(echo "$tests" | wc -w) test programs passed"

# A 2-rank training with checkpoints every 2 steps, stopped after 4 steps, resumed to the end (8).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
top_srcdir=$root
. tests/testlib.sh # tiny_cfg
tiny_cfg "$tmp/t.cfg" T synthetic_samples=64 batch_size=16 val_batch_size=16 epochs=2 max_steps=0 \
    checkpoint_every_steps=2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
export OMPI_MCA_pml=ob1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
train() { # train LOG ARGS...
    local log=$1
    shift
    if ! MPQ_TEST_RANKS=2 sh tests/mpirun.sh build-asan/mpq train --cfg "$tmp/t.cfg" T \
        --set "output_dir=$tmp/out" "$@" > "$tmp/$log" 2>&1; then
        cat "$tmp/$log"
        echo "sanitizer build: 2-rank training ($log) failed"
        exit 1
    fi
    if grep -E 'Sanitizer|runtime error' "$tmp/$log"; then exit 1; fi
}
train first.log --set max_steps=4
ls "$tmp/out/checkpoints/"ckpt-*.h5 > /dev/null
train resumed.log --resume auto
grep -q -i 'resum' "$tmp/resumed.log" || { cat "$tmp/resumed.log"; echo "no resume"; exit 1; }
echo "sanitizer build: 2-rank training with resume passed"

#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (the .cfg parser, IDX, CIFAR, JPEG, HDF5 shard,
# checkpoint and export loaders) and runs each for SECONDS (default 60) from its committed seed
# corpus tests/fuzz/corpus/<target>/. Prints the executions per target and fails if any target
# crashed; crashing inputs are kept in build-fuzz/crashes/<target>/ (commit each as a regression
# input under tests/fuzz/regressions/<target>/ once fixed: this script replays those first).
#   jobs/fuzz.sh [SECONDS] [TARGET...]     e.g. jobs/fuzz.sh 30 cfg idx
#   jobs/fuzz.sh --seeds                   regenerates the seed corpora (make_seeds.c)
# Build: build-fuzz/ is a clang build of the library with ASan + UBSan (./configure CC=clang
# --enable-sanitizers, plus -fsanitize=fuzzer-no-link); the targets are linked here with
# -fsanitize=fuzzer against build-fuzz/.libs/libmpq.a (libtool does not pass libFuzzer's main
# through, and the targets are neither installed nor part of make check).
# A user edits: SECONDS, and FUZZ_RSS_MB (memory limit per target, default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=60
mode=run
if [ "${1:-}" = "--seeds" ]; then mode=seeds; shift; elif [ -n "${1:-}" ]; then seconds=$1; shift; fi
targets=${*:-cfg idx cifar jpeg shard ckpt export}
rss_mb=${FUZZ_RSS_MB:-2048}
bf=$root/build-fuzz
supp=$root/tests/sanitizers

command -v clang >/dev/null || { echo "fuzz.sh: clang missing (jobs/install-deps.sh)" >&2; exit 1; }
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p "$bf"
if [ ! -f "$bf/Makefile" ]; then
    (cd "$bf" && ../configure -q CC=clang --enable-sanitizers --disable-native \
        CFLAGS="-O1 -g -fsanitize=fuzzer-no-link")
fi
nice -n 5 make -C "$bf" -j"$(nproc)" libmpq.la > "$bf/build.log" 2>&1 ||
    { tail -30 "$bf/build.log"; exit 1; }

pc="ompi-c hdf5-openmpi hwloc inih libturbojpeg zlib"
cflags="-std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer -I$root/src -I$root -I$root/tests -I$root/tests/fuzz
    $(pkg-config --cflags $pc)"
openmp=$(sed -n 's/^OPENMP_CFLAGS = //p' "$bf/Makefile")
libs="$bf/.libs/libmpq.a $(pkg-config --libs $pc) -lblis $openmp -lm -lpthread"
build() { # build NAME SOURCE...: links one program into build-fuzz/bin (fuzz_*: with libFuzzer)
    local name=$1 fuzzer=""
    shift
    case $name in fuzz_*) fuzzer="-fsanitize=fuzzer" ;; esac
    mkdir -p "$bf/bin"
    if [ ! "$bf/bin/$name" -nt "$bf/.libs/libmpq.a" ] || [ -n "$(find "$@" -newer "$bf/bin/$name")" ]; then
        # shellcheck disable=SC2086
        nice -n 5 clang $cflags $fuzzer "$@" -o "$bf/bin/$name" $libs
    fi
}

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1
export OMP_NUM_THREADS=1 OMPI_MCA_mca_base_component_disable_dlclose=1 # symbolized leak stacks
# allocator_may_return_null: HDF5 allocates sizes read from crafted metadata (seen: 6e18 bytes in
# H5C_protect); as in production it must get NULL and fail cleanly, not stop the fuzzer
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:suppressions=$supp/asan.supp:${ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

if [ "$mode" = seeds ]; then
    build make_seeds tests/fuzz/make_seeds.c tests/fuzz/fuzzutil.c
    out=$root/tests/fuzz/corpus
    ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" "$bf/bin/make_seeds" "$out"
    mkdir -p "$out/cfg"
    cp configs/*.cfg "$out/cfg/"
    echo "seeds written to $out"
    exit 0
fi

mkdir -p "$bf/tmp"
export TMPDIR="$bf/tmp" # the targets' scratch files (left behind only by a crashing run)
crashed=0
for t in $targets; do
    build "fuzz_$t" "tests/fuzz/fuzz_$t.c" tests/fuzz/fuzzutil.c
    work=$bf/corpus/$t
    crashes=$bf/crashes/$t
    rm -rf "$crashes" # count this run's findings only
    mkdir -p "$work" "$crashes"
    # inputs that once crashed must now run cleanly
    reg=tests/fuzz/regressions/$t
    if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
        if ! ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" "$bf/bin/fuzz_$t" \
            -rss_limit_mb="$rss_mb" -malloc_limit_mb=1048576 "$reg"/* > "$bf/$t.regress.log" 2>&1; then
            echo "fuzz_$t: a regression input crashes again (see $bf/$t.regress.log)"
            crashed=1
        fi
    fi
    log=$bf/$t.log
    # the MPI targets: full (slow) stacks at malloc, so that Open MPI's leaks match lsan.supp
    unwind=1
    case $t in ckpt | export) unwind=0 ;; esac
    set +e
    ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=$unwind" "$bf/bin/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout=20 \
        -malloc_limit_mb=1048576 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$t" \
        > "$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    n_crash=$(find "$crashes" -type f | wc -l)
    echo "fuzz_$t: ${runs:-?} executions in ${seconds} s, exit $rc, $n_crash crash file(s)"
    if [ "$rc" -ne 0 ] || [ "$n_crash" -ne 0 ]; then
        crashed=1
        grep -m1 -E 'ERROR|runtime error|SUMMARY' "$log" || tail -5 "$log"
    fi
done
exit "$crashed"

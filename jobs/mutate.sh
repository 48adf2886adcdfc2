#!/usr/bin/env bash
# Mutation testing: plants the small bugs of a catalogue (tests/mutation/catalogue.txt by default)
# one at a time into a scratch copy of this tree, rebuilds it, and runs the mutant's relevant
# tests and, when they all pass, the whole suite; a mutant is killed when a test fails. Prints
# one line per mutant, the survivors and the score (killed / mutants that built). The source
# tree is never modified: the copy (tracked and untracked, not ignored, files) lives in a scratch
# directory, removed at the end unless --workdir names one to keep (and reuse: its build is
# updated incrementally). Run it before a change to the trainer lands (README, "Tests").
#
# Usage: bash jobs/mutate.sh [--catalogue FILE] [--only ID[,ID...]] [--skip-full] [--check]
#                            [--workdir DIR] [--results FILE] [--timeout SECONDS]
#   --skip-full   a mutant that passes its relevant tests is reported as surviving without the
#                 whole suite (fast); default: the whole suite confirms every such survivor
#   --check       only checks that every snippet of the catalogue occurs exactly once
#   --timeout     limit for each test run of a mutant (default 900 s; a timeout kills it)
#   --jobs N      N mutants at a time, each in its own scratch copy (default 1)
# What a user edits: the catalogue (format in its header), not this script.
set -euo pipefail
cd "$(dirname "$0")/.."

catalogue=tests/mutation/catalogue.txt
only=""
skip_full=0
check_only=0
workdir=""
results=""
limit=900
jobs=1
while [ $# -gt 0 ]; do
    case "$1" in
        --catalogue) catalogue=$2; shift 2 ;;
        --only) only=",$2,"; shift 2 ;;
        --skip-full) skip_full=1; shift ;;
        --check) check_only=1; shift ;;
        --workdir) workdir=$2; shift 2 ;;
        --results) results=$2; shift 2 ;;
        --timeout) limit=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "mutate.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ -f "$catalogue" ] || { echo "mutate.sh: no catalogue '$catalogue'" >&2; exit 2; }
catalogue=$(cd "$(dirname "$catalogue")" && pwd)/$(basename "$catalogue")

# One mutant per line: ID @@ FILE @@ ORIGINAL @@ REPLACEMENT @@ TESTS [@@ NOTE]
ids=() files=() froms=() tos=() tests=() notes=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case "$line" in '' | '#'*) continue ;; esac
    rest=$line
    fields=()
    while [[ "$rest" == *" @@ "* ]]; do
        fields+=("${rest%% @@ *}")
        rest=${rest#* @@ }
    done
    fields+=("$rest")
    if [ "${#fields[@]}" -lt 5 ] || [ "${#fields[@]}" -gt 6 ]; then
        echo "mutate.sh: $catalogue:$lineno: expected 'ID @@ FILE @@ ORIGINAL @@ REPLACEMENT @@" \
             "TESTS [@@ NOTE]', got ${#fields[@]} fields" >&2
        exit 2
    fi
    if [ -n "$only" ] && [[ "$only" != *",${fields[0]},"* ]]; then continue; fi
    ids+=("${fields[0]}") files+=("${fields[1]}") froms+=("${fields[2]}") tos+=("${fields[3]}")
    tests+=("${fields[4]}") notes+=("${fields[5]:-}")
done < "$catalogue"
[ "${#ids[@]}" -gt 0 ] || { echo "mutate.sh: no mutant selected" >&2; exit 2; }

# Replaces the only occurrence of $MUT_FROM by $MUT_TO in file $1 (exit 3 unless exactly one).
apply_snippet() {
    perl -e '
        my ($f) = @ARGV;
        open(my $h, "<", $f) or die "mutate.sh: cannot read $f: $!\n";
        local $/; my $s = <$h>; close $h;
        my ($from, $to) = ($ENV{MUT_FROM}, $ENV{MUT_TO});
        my $n = () = $s =~ /\Q$from\E/g;
        if ($n != 1) { print STDERR "mutate.sh: \"$from\" occurs $n times in $f, not once\n"; exit 3 }
        $s =~ s/\Q$from\E/$to/;
        open($h, ">", $f) or die "mutate.sh: cannot write $f: $!\n";
        print $h $s; close $h;' "$1"
}

# Every snippet must occur exactly once (checked on a copy of each file in the source tree).
probe=$(mktemp)
trap 'rm -f "$probe"' EXIT
bad=0
for i in "${!ids[@]}"; do
    f=${files[$i]}
    if [ ! -f "$f" ]; then echo "mutate.sh: ${ids[$i]}: no file $f" >&2; bad=1; continue; fi
    cp "$f" "$probe"
    MUT_FROM=${froms[$i]} MUT_TO=${tos[$i]} apply_snippet "$probe" 2>&1 |
        sed "s|$probe|$f|; s|^|${ids[$i]}: |" >&2 || true
    cmp -s "$f" "$probe" && bad=1
done
[ "$bad" -eq 0 ] || { echo "mutate.sh: fix the catalogue lines above" >&2; exit 3; }
echo "catalogue: ${#ids[@]} mutants, every snippet found exactly once"
[ "$check_only" -eq 0 ] || exit 0

# The scratch copies (one per job) and their builds.
keep=1
if [ -z "$workdir" ]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/mpq-mutate.XXXXXX")
    keep=0
fi
rm -rf "$workdir/orig"
mkdir -p "$workdir/logs" "$workdir/status" "$workdir/orig"
workdir=$(cd "$workdir" && pwd)
trap 'rm -f "$probe"; [ "$keep" -eq 1 ] || rm -rf "$workdir"' EXIT
results=${results:-$workdir/results.txt}
tree_of() { if [ "$1" -eq 0 ]; then echo "$workdir/tree"; else echo "$workdir/tree$(($1 + 1))"; fi; }
# The files as they are now: mutants are undone from this copy, so that editing the tree while
# a campaign runs cannot mix versions in a scratch copy.
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
    [ -f "$f" ] || continue
    mkdir -p "$workdir/orig/$(dirname "$f")"
    cp "$f" "$workdir/orig/$f"
done
for ((k = 0; k < jobs; k++)); do
    t=$(tree_of "$k")
    mkdir -p "$t"
    (cd "$workdir/orig" && find . -type f -printf '%P\0') | while IFS= read -r -d '' f; do
        if ! cmp -s "$workdir/orig/$f" "$t/$f"; then
            mkdir -p "$t/$(dirname "$f")"
            cp "$workdir/orig/$f" "$t/$f" # a new mtime: make rebuilds what a killed run left
        fi
    done
    echo "building the scratch copy in $t"
    (cd "$t" && nice -n 5 bash jobs/build.sh) >"$workdir/logs/build$k.log" 2>&1 &
done
for ((k = 0; k < jobs; k++)); do
    wait -n || { echo "mutate.sh: an unmutated copy does not build (see $workdir/logs)" >&2; exit 1; }
done

# The programs a list of tests needs: the Check programs named, and those a test script runs.
programs_of() {
    local t p out=""
    for t in $1; do
        case "$t" in
            *=*) ;;
            *.sh) for p in $(grep -o 'tests/[A-Za-z0-9_/]*\(check\|bench\)_[A-Za-z0-9_]*\(\.mpi\)\?' \
                                 "$tree/$t" | sort -u); do out="$out $p"; done ;;
            *) out="$out $t" ;;
        esac
    done
    echo "$out"
}

# Runs tests (a list, or "" for the whole suite) in the scratch build; 0 when all pass. A list
# builds only what it needs: its programs, and mpq when a test script is among them. Words
# NAME=VALUE in a list are set in the tests' environment (e.g. CK_RUN_CASE=resume runs one test
# case of the Check programs).
run_tests() {
    local list=$1 log=$2
    if [ -z "$list" ]; then
        timeout --kill-after=20 "$limit" nice -n 5 make -C "$tree/build" -j2 check >"$log" 2>&1
        return
    fi
    local progs extra="" tests="" envs=() t
    for t in $list; do
        case "$t" in *=*) envs+=("$t") ;; *) tests="$tests $t" ;; esac
    done
    progs=$(programs_of "$tests")
    [[ "$tests " != *.sh\ * ]] || extra=mpq
    nice -n 5 make -C "$tree/build" -j2 $extra $progs >"$log" 2>&1 &&
        env "${envs[@]}" timeout --kill-after=20 "$limit" nice -n 5 make -C "$tree/build" \
            check-TESTS TESTS="$tests" check_PROGRAMS="$progs" >>"$log" 2>&1
}

# The test names that failed in a make check log.
failed_in() { grep -oE '^(FAIL|ERROR): [^ ]+' "$1" | sed 's/^[A-Z]*: //' | tr '\n' ' '; }

# Applies mutant $1 to the scratch copy $tree, runs its tests and writes the outcome, a line
# starting "killed", "SURVIVED" or "build-failed", to $workdir/status/<index>.
try_mutant() {
    local i=$1 id=${ids[$1]} f=${files[$1]} log status
    MUT_FROM=${froms[$i]} MUT_TO=${tos[$i]} apply_snippet "$tree/$f"
    log=$workdir/logs/$id
    if ! nice -n 5 make -C "$tree/build" -j2 libmpq.la >"$log.build" 2>&1; then
        status="build-failed"
    elif ! run_tests "${tests[$i]}" "$log.relevant"; then
        status="killed by $(failed_in "$log.relevant")"
        grep -q '^FAIL\|^ERROR' "$log.relevant" ||
            status="killed (timeout or build error, see $log.relevant)"
    elif [ "$skip_full" -eq 1 ]; then
        status="SURVIVED relevant tests (whole suite skipped)"
    elif ! run_tests "" "$log.full"; then
        status="killed by the whole suite: $(failed_in "$log.full")"
    else
        status="SURVIVED the whole suite"
    fi
    cp "$workdir/orig/$f" "$tree/$f" # a new mtime: the next build recompiles it
    echo "$status" >"$workdir/status/$i"
    printf '%-32s %-24s %s\n' "$id" "$f" "$status"
}

rm -f "$workdir"/status/*
for ((k = 0; k < jobs; k++)); do
    (
        tree=$(tree_of "$k")
        for i in "${!ids[@]}"; do
            [ $((i % jobs)) -eq "$k" ] && try_mutant "$i"
        done
        nice -n 5 make -C "$tree/build" -j2 all >/dev/null 2>&1 || true # leave it unmutated
    ) &
done
wait

: >"$results"
killed=0 survived=0 stillborn=0
survivors=()
for i in "${!ids[@]}"; do
    status=$(cat "$workdir/status/$i" 2>/dev/null || echo "not run")
    case "$status" in
        killed*) killed=$((killed + 1)) ;;
        SURVIVED*) survived=$((survived + 1)); survivors+=("${ids[$i]}") ;;
        *) stillborn=$((stillborn + 1)) ;;
    esac
    printf '%-32s %-24s %s\n' "${ids[$i]}" "${files[$i]}" "$status" >>"$results"
done
total=$((killed + survived))
{
    echo
    cat "$results"
    echo
    echo "mutants: ${#ids[@]}; built and run: $total; killed: $killed; survived: $survived;" \
         "did not build or run: $stillborn"
    if [ "$total" -gt 0 ]; then
        echo "score: $killed / $total = $(( (1000 * killed / total + 5) / 10 ))%"
    fi
    for id in "${survivors[@]}"; do
        for i in "${!ids[@]}"; do
            [ "${ids[$i]}" = "$id" ] || continue
            echo "survivor $id (${files[$i]}): '${froms[$i]}' -> '${tos[$i]}'" \
                 "${notes[$i]:+-- ${notes[$i]}}"
        done
    done
} | tee "$results.tmp"
mv "$results.tmp" "$results"
echo "results: $results"

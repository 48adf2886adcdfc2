#!/bin/sh
# The layering rules of the source tree (README "Architecture"), checked on every test run:
#  - src/ never includes mpi.h or hdf5.h (MPI lives in mpi/, HDF5 in io/);
#  - io/ includes nothing from src/models/ and not config.h: it sees a model through
#    src/model_view.h (the tensor-role table) and data through src/data.h;
#  - src/optim/ does not include config.h (schedules come as an mpq_schedule);
#  - no function in src/, mpi/ or io/ is longer than 120 lines (a function opens with '{' in
#    column 0 and closes with '}' in column 0, as clang-format lays them out here).
set -eu
top="${top_srcdir:-$(dirname "$0")/..}"
fail=0
bad() { echo "FAIL $1"; fail=1; }

hits=$(grep -rnE '#include[[:space:]]*[<"](mpi|hdf5|H5[A-Za-z]*)\.h[>"]' "$top/src" || true)
[ -z "$hits" ] || bad "src/ includes MPI or HDF5: $hits"
hits=$(grep -rnE '#include[[:space:]]*"(models/[^"]*|config\.h)"' "$top/io" || true)
[ -z "$hits" ] || bad "io/ includes the model graph or the configuration: $hits"
hits=$(grep -rnE '#include[[:space:]]*"config\.h"' "$top/src/optim" || true)
[ -z "$hits" ] || bad "src/optim/ includes config.h: $hits"

long=$(for f in $(find "$top/src" "$top/mpi" "$top/io" -name '*.c' | sort); do
    awk -v f="$f" '/^\{/ { start = FNR; name = prev }
                   /^\}/ && start { if (FNR - start > 120) printf "%s:%d: %s (%d lines)\n", f, start, name, FNR - start; start = 0 }
                   { prev = $0 }' "$f"
done)
[ -z "$long" ] || bad "functions longer than 120 lines:
$long"

[ "$fail" -eq 0 ] && echo "PASS layering: includes and function lengths"
exit "$fail"

#!/usr/bin/env bash
# jobs/chain.sh --dry-run on tests/reference_style.cfg (a file written as the reference's are):
# the chain of [DEFAULT] lists every experiment that starts from its result (the reference's
# params_DEFAULT/ directory name included), and theirs (*_FT), depth first in file order, each
# with the file it will start from; --root moves every result; one experiment's chain and --all;
# an unknown experiment is an error.
set -euo pipefail
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
export MPQ="${top_builddir:?set by make check}/mpq" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cfg="${top_srcdir:?set by make check}/tests/reference_style.cfg"
chain="$top_srcdir/jobs/chain.sh"
fail() { echo "FAIL: $*"; exit 1; }

got=$(bash "$chain" --dry-run --root out "$cfg" DEFAULT)
want="chain of [DEFAULT] in $cfg: 9 run(s)
DEFAULT
  DEFAULT_INIT_RLR  <- out/DEFAULT/params_best.h5
  FP_W2A4Q_INIT  <- out/DEFAULT/params_best.h5
  POW2_W2Q_INIT  <- out/DEFAULT/params_best.h5
    PARAMETRIC_POW2_W2A4Q_B_XMAX_CON_INIT_RRLR  <- out/POW2_W2Q_INIT/params_best.h5
  PARAMETRIC_FP_WAQ_DELTA_XMAX_INIT  <- out/DEFAULT/params_best.h5
    PARAMETRIC_FP_WAQ_DELTA_XMAX_INIT_FT  <- out/PARAMETRIC_FP_WAQ_DELTA_XMAX_INIT/params_best.h5
  PARAMETRIC_POW2_WASQ_XMIN_XMAX_CON_INIT_RRLR  <- out/DEFAULT/params_best.h5
    PARAMETRIC_POW2_WASQ_XMIN_XMAX_CON_INIT_FT  <- out/PARAMETRIC_POW2_WASQ_XMIN_XMAX_CON_INIT_RRLR/params_best.h5"
[ "$got" = "$want" ] || fail "chain of DEFAULT:
$got
--- expected:
$want"

got=$(bash "$chain" --dry-run "$cfg" PARAMETRIC_FP_WAQ_DELTA_XMAX_INIT)
want="chain of [PARAMETRIC_FP_WAQ_DELTA_XMAX_INIT] in $cfg: 2 run(s)
PARAMETRIC_FP_WAQ_DELTA_XMAX_INIT  <- DEFAULT/params_best.h5
  PARAMETRIC_FP_WAQ_DELTA_XMAX_INIT_FT  <- PARAMETRIC_FP_WAQ_DELTA_XMAX_INIT/params_best.h5"
[ "$got" = "$want" ] || fail "chain of one *_INIT: $got"

# --all: the [DEFAULT] chain, then the experiments that start from no other's result; an
# external weightfile is replaced by --external
got=$(bash "$chain" --dry-run --all --external float.h5 "$cfg" | tail -2)
want="PARAMETRIC_POW2_WQ_B_XMIN
PARAMETRIC_POW2_WASQ_XMIN_XMAX_CON_INIT_RLR_FT  <- float.h5"
[ "$got" = "$want" ] || fail "--all: $got"
got=$(bash "$chain" --dry-run --all "$cfg")
[ "${got%%$'\n'*}" = "chain of [all] in $cfg: 11 run(s)" ] || fail "--all: ${got%%$'\n'*}"

if bash "$chain" --dry-run "$cfg" NO_SUCH > /dev/null 2>&1; then fail "unknown experiment accepted"; fi
echo "chain: dry runs as expected"

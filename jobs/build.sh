#!/usr/bin/env bash
# Configures and builds mpq in build/ (out of tree).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p build
cd build
[ -f Makefile ] || ../configure -q ${MPQ_CONFIGURE_FLAGS:-}
make -j"$(nproc)" >/dev/null

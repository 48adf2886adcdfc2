#!/usr/bin/env bash
# The README's second command: installs the dependencies, builds, runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash jobs/install-deps.sh
bash jobs/build.sh
cd build
make -j"$(nproc)" check

#!/usr/bin/env bash
# Installs mpq's build and run dependencies from Debian 12 packages (as root); slurm-wlm and munge
# for jobs/train*.sbatch and the SLURM test (tests/system/slurm.sh starts its own daemons).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then echo "install-deps.sh: run as root (apt-get)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends build-essential autoconf automake libtool pkgconf \
    openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools libblis-openmp-dev libhwloc-dev \
    hwloc-nox check libturbojpeg0-dev zlib1g-dev libinih-dev dataset-fashion-mnist procps \
    slurm-wlm munge iproute2 clang libclang-rt-14-dev libomp-dev >/dev/null # clang: jobs/fuzz.sh

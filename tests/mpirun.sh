#!/bin/sh
# Runs a `.mpi` test program under mpiexec. MPQ_TEST_RANKS (default 2) ranks, oversubscribed,
# with a hard time limit so a hung rank fails the test instead of the whole suite. Ranks that
# outnumber the cores yield when idle instead of spinning.
ranks="${MPQ_TEST_RANKS:-2}"
if [ "$ranks" -gt "$(nproc 2>/dev/null || echo 1)" ]; then
    OMPI_MCA_mpi_yield_when_idle=1
    export OMPI_MCA_mpi_yield_when_idle
fi
exec timeout 300 mpiexec -n "$ranks" --oversubscribe --bind-to none "$@"

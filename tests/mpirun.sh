#!/bin/sh
# Runs a `.mpi` test program under mpiexec. MPQ_TEST_RANKS (default 2) ranks, oversubscribed,
# with a hard time limit so a hung rank fails the test instead of the whole suite.
exec timeout 300 mpiexec -n "${MPQ_TEST_RANKS:-2}" --oversubscribe --bind-to none "$@"

#!/bin/sh
# tests/mpi/check_comm.mpi on 3 ranks (make check runs it on 2 through the .mpi wrapper).
MPQ_TEST_RANKS=3 exec sh "$top_srcdir/tests/mpirun.sh" "$top_builddir/tests/mpi/check_comm.mpi"

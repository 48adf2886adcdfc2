#!/bin/sh
# tests/mpi/check_comm.mpi on 4 ranks (make check runs it on 2 through the .mpi wrapper).
MPQ_TEST_RANKS=4 exec sh "$top_srcdir/tests/mpirun.sh" "$top_builddir/tests/mpi/check_comm.mpi"

/* The inside of mpq_comm, shared by the files of mpi/ only (includes mpi.h). */
#ifndef MPQ_MPI_COMM_IMPL_H
#define MPQ_MPI_COMM_IMPL_H

#include <mpi.h>

#include "mpi/comm.h"

struct mpq_comm {
    MPI_Comm world, node;
    int rank, size, local_rank, local_size;
    mpq_reducer reducer;
};

/* Records "<what>: <MPI_Error_string(err)>" at file:line as an MPQ_E_MPI failure; returns it. */
int mpq_comm_mpi_fail(int err, const char *what, const char *file, int line);
#define MPQ_MPI_FAIL(err, what) mpq_comm_mpi_fail((err), (what), __FILE__, __LINE__)

#endif

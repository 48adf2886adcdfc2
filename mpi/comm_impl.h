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

int mpq_comm_reducer_sum(void *ctx, double *buf, size_t n);

#endif

/* World setup, agreement on errors, broadcasts and reductions. Owns the mpq_comm handle and the
 * node-local communicator. MPI is initialised with MPI_THREAD_FUNNELED: only the main thread
 * calls MPI (the data reader's thread never does). */
#include "mpi/comm.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "mpi/comm_impl.h"

static void abort_world(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int mpq_comm_mpi_fail(int err, const char *what, const char *file, int line)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", err);
    return mpq_fail(MPQ_E_MPI, file, line, "%s: %s", what, msg);
}

/* The sync-BN reducer of a communicator (mpq_comm_reducer): sums over all ranks. */
static int reducer_sum(void *ctx, double *buf, size_t n)
{
    return mpq_comm_allreduce_sum_double(ctx, buf, n);
}

int mpq_comm_init(int *argc, char ***argv, mpq_comm **out)
{
    int provided = 0, err;
    mpq_comm *c = calloc(1, sizeof *c);
    if (!c) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    err = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (err != MPI_SUCCESS) {
        free(c);
        return MPQ_MPI_FAIL(err, "MPI_Init_thread");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    c->world = MPI_COMM_WORLD;
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &c->node);
    MPI_Comm_rank(c->node, &c->local_rank);
    MPI_Comm_size(c->node, &c->local_size);
    mpq_log_set_rank(c->rank);
    mpq_set_abort_hook(abort_world);
    c->reducer.ctx = c;
    c->reducer.sum = reducer_sum;
    *out = c;
    return MPQ_OK;
}

void mpq_comm_finalize(mpq_comm *c)
{
    if (!c) return;
    MPI_Comm_free(&c->node);
    mpq_set_abort_hook(NULL);
    MPI_Finalize();
    free(c);
}

int mpq_comm_rank(const mpq_comm *c) { return c->rank; }
int mpq_comm_size(const mpq_comm *c) { return c->size; }
double mpq_comm_wtime(void) { return MPI_Wtime(); }
void mpq_comm_get_mpi(const mpq_comm *c, void *mpi_comm_out) { *(MPI_Comm *)mpi_comm_out = c->world; }

int mpq_comm_agree(mpq_comm *c, int rc)
{
    /* Agree on the minimum code; then the lowest rank that failed with it broadcasts its
     * message, so code and message always belong together. */
    int agreed, mine, first;
    MPI_Allreduce(&rc, &agreed, 1, MPI_INT, MPI_MIN, c->world);
    if (agreed >= 0) return agreed;
    mine = rc == agreed ? c->rank : c->size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->world);
    char msg[2048];
    if (c->rank == first) snprintf(msg, sizeof msg, "%s", mpq_errmsg());
    MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, c->world);
    if (rc >= 0) mpq_fail(agreed, "rank", first, "%s", msg);
    return agreed;
}

void mpq_comm_barrier(mpq_comm *c) { MPI_Barrier(c->world); }

int mpq_comm_bcast(mpq_comm *c, void *buf, size_t bytes, int root)
{
    char *p = buf;
    while (bytes > 0) { /* counts are int: go in 1 GiB pieces */
        int k = bytes > (1u << 30) ? (1 << 30) : (int)bytes;
        int err = MPI_Bcast(p, k, MPI_BYTE, root, c->world);
        if (err != MPI_SUCCESS) return MPQ_MPI_FAIL(err, "MPI_Bcast");
        p += k;
        bytes -= (size_t)k;
    }
    return MPQ_OK;
}

int mpq_comm_bcast_string(mpq_comm *c, char **s, int root)
{
    long len = c->rank == root ? (long)strlen(*s) : 0;
    MPQ_TRY(mpq_comm_bcast(c, &len, sizeof len, root));
    if (c->rank != root) {
        *s = malloc((size_t)len + 1);
        if (!*s) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
        (*s)[len] = '\0';
    }
    return mpq_comm_bcast(c, *s, (size_t)len, root);
}

static int allreduce(mpq_comm *c, void *buf, size_t n, MPI_Datatype t, MPI_Op op)
{
    int err = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, t, op, c->world);
    return err == MPI_SUCCESS ? MPQ_OK : MPQ_MPI_FAIL(err, "MPI_Allreduce");
}

int mpq_comm_allreduce_sum_double(mpq_comm *c, double *buf, size_t n)
{
    return allreduce(c, buf, n, MPI_DOUBLE, MPI_SUM);
}

int mpq_comm_allreduce_max_double(mpq_comm *c, double *buf, size_t n)
{
    return allreduce(c, buf, n, MPI_DOUBLE, MPI_MAX);
}

int mpq_comm_allreduce_sum_long(mpq_comm *c, long *buf, size_t n)
{
    return allreduce(c, buf, n, MPI_LONG, MPI_SUM);
}

const mpq_reducer *mpq_comm_reducer(mpq_comm *c) { return &c->reducer; }

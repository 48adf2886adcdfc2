/* Bucketed, overlapped gradient averaging over one flat gradient buffer. The caller owns the
 * buffer; mpq_gradsync owns its bucket table, a duplicate of the world communicator, so its
 * nonblocking allreduces never interleave with other collectives (sync-BN runs during backward),
 * and, unless in place, the buffer the sums land in (Open MPI's MPI_Iallreduce picks a binomial
 * tree for every in-place call, Rabenseifner's reduce-scatter + allgather otherwise from 4 ranks
 * and 64 KiB: the sums go to `sum`, and finish copies them back scaled by 1/R, in the pass that
 * scales them anyway).
 * Main thread only (MPI_THREAD_FUNNELED). Each bucket moves cleared -> ready -> started -> done
 * within a step (lbann's gradient sync states); finish returns every bucket to cleared. */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>

#include "core/buckets.h"
#include "core/err.h"
#include "mpi/comm.h"
#include "mpi/comm_impl.h"

typedef enum bucket_state {
    BUCKET_CLEARED, /* backward may still add into it */
    BUCKET_READY,   /* final on this rank, allreduce not started */
    BUCKET_STARTED, /* MPI_Iallreduce in flight */
    BUCKET_DONE,    /* summed over ranks (or nothing to do: one rank) */
} bucket_state;

typedef struct bucket {
    size_t off, n;
    bucket_state state;
} bucket;

struct mpq_gradsync {
    MPI_Comm comm; /* duplicate of world: own ordering of collectives */
    int size;
    float *grad;
    float *sum; /* NULL: in place; else where the allreduces put the sums (n floats) */
    size_t n;
    int nb;   /* buckets; bucket 0 ends the buffer, bucket nb-1 starts it */
    int next; /* first bucket not yet ready */
    bucket *b;
    MPI_Request *req; /* one per bucket; MPI_REQUEST_NULL unless started */
    int *idx;         /* scratch for MPI_Testsome */
    int err;          /* first MPI failure of this step (ready/progress return nothing) */
    double wait_s, bytes;
};

/* The largest bucket: MPI counts are int. */
#define MAX_BUCKET_FLOATS ((size_t)1 << 30)

int mpq_gradsync_create(mpq_comm *c, float *grad, size_t n_floats, size_t bucket_floats,
                        int in_place, mpq_gradsync **out)
{
    if (n_floats == 0 || bucket_floats == 0)
        return MPQ_FAIL(MPQ_E_ARG, "gradsync: empty buffer (%zu floats) or bucket (%zu floats)",
                        n_floats, bucket_floats);
    if (bucket_floats > MAX_BUCKET_FLOATS) bucket_floats = MAX_BUCKET_FLOATS;
    mpq_gradsync *g = calloc(1, sizeof *g);
    if (!g) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    g->comm = MPI_COMM_NULL;
    size_t nb = mpq_buckets_count(n_floats, bucket_floats, MAX_BUCKET_FLOATS);
    if (nb > INT_MAX) {
        free(g);
        return MPQ_FAIL(MPQ_E_ARG, "gradsync: %zu buckets, too many", nb);
    }
    g->nb = (int)nb;
    g->b = calloc(nb, sizeof *g->b);
    g->req = malloc(nb * sizeof *g->req);
    g->idx = malloc(nb * sizeof *g->idx);
    if (!in_place && c->size > 1) g->sum = malloc(n_floats * sizeof *g->sum);
    if (!g->b || !g->req || !g->idx || (!in_place && c->size > 1 && !g->sum)) {
        mpq_gradsync_free(g);
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < g->nb; i++) {
        mpq_buckets_range(n_floats, bucket_floats, nb, (size_t)i, &g->b[i].off, &g->b[i].n);
        g->b[i].state = BUCKET_CLEARED;
        g->req[i] = MPI_REQUEST_NULL;
    }
    g->grad = grad;
    g->n = n_floats;
    g->size = c->size;
    int err = MPI_Comm_dup(c->world, &g->comm);
    if (err != MPI_SUCCESS) {
        g->comm = MPI_COMM_NULL;
        mpq_gradsync_free(g);
        return MPQ_MPI_FAIL(err, "gradsync: MPI_Comm_dup");
    }
    MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN);
    *out = g;
    return MPQ_OK;
}

static void record(mpq_gradsync *g, int err, const char *what)
{
    if (err != MPI_SUCCESS && g->err == MPQ_OK) g->err = MPQ_MPI_FAIL(err, what);
}

/* Buckets become ready strictly in index order, so every rank starts the same allreduces in the
 * same order whatever offsets it passes. */
void mpq_gradsync_ready(mpq_gradsync *g, size_t off)
{
    while (g->next < g->nb && g->b[g->next].off >= off) {
        bucket *b = &g->b[g->next];
        b->state = BUCKET_READY;
        if (g->size == 1) {
            b->state = BUCKET_DONE;
        } else {
            float *in = g->grad + b->off, *to = g->sum ? g->sum + b->off : in;
            int err = MPI_Iallreduce(g->sum ? in : MPI_IN_PLACE, to, (int)b->n, MPI_FLOAT,
                                     MPI_SUM, g->comm, &g->req[g->next]);
            if (err == MPI_SUCCESS) {
                b->state = BUCKET_STARTED;
                g->bytes += (double)b->n * sizeof(float);
            } else { /* finish reports it; the bucket is left unreduced */
                record(g, err, "gradsync: MPI_Iallreduce");
                g->req[g->next] = MPI_REQUEST_NULL;
                b->state = BUCKET_DONE;
            }
        }
        g->next++;
    }
}

void mpq_gradsync_progress(mpq_gradsync *g)
{
    int done = 0;
    if (g->size == 1 || g->next == 0) return;
    int err = MPI_Testsome(g->next, g->req, &done, g->idx, MPI_STATUSES_IGNORE);
    record(g, err, "gradsync: MPI_Testsome");
    if (err != MPI_SUCCESS || done == MPI_UNDEFINED) return;
    for (int i = 0; i < done; i++)
        g->b[g->idx[i]].state = BUCKET_DONE;
}

int mpq_gradsync_finish(mpq_gradsync *g)
{
    double t0 = MPI_Wtime();
    mpq_gradsync_ready(g, 0);
    if (g->size > 1) {
        int err = MPI_Waitall(g->nb, g->req, MPI_STATUSES_IGNORE);
        record(g, err, "gradsync: MPI_Waitall");
        const float scale = 1.0f / (float)g->size;
        const float *sum = g->sum ? g->sum : g->grad;
        for (size_t i = 0; i < g->n; i++)
            g->grad[i] = sum[i] * scale;
    }
    g->wait_s += MPI_Wtime() - t0;
    for (int i = 0; i < g->nb; i++) {
        if (g->b[i].state == BUCKET_STARTED && g->req[i] == MPI_REQUEST_NULL)
            g->b[i].state = BUCKET_DONE;
        MPQ_ASSERT(g->b[i].state == BUCKET_DONE || g->err != MPQ_OK,
                   "gradsync: bucket %d not done after MPI_Waitall", i);
        g->b[i].state = BUCKET_CLEARED;
    }
    g->next = 0;
    int rc = g->err;
    g->err = MPQ_OK;
    return rc;
}

void mpq_gradsync_stats(mpq_gradsync *g, double *wait_s, double *bytes)
{
    if (wait_s) *wait_s = g->wait_s;
    if (bytes) *bytes = g->bytes;
    g->wait_s = 0.0;
    g->bytes = 0.0;
}

void mpq_gradsync_free(mpq_gradsync *g)
{
    if (!g) return;
    if (g->comm != MPI_COMM_NULL) MPI_Comm_free(&g->comm);
    free(g->b);
    free(g->req);
    free(g->idx);
    free(g->sum);
    free(g);
}

/* Deterministic sums over virtual shards (deterministic = true, virtual_shards = V): V vectors are
 * added in one fixed binary tree over the shard index, whatever the rank count R, so the result
 * has the same bits for every power-of-two R dividing V. The caller owns all buffers; scratch is
 * allocated per call. Main thread only. The tree splits a run of m shards into its first m/2 and
 * its last m - m/2 (left operand first), so its top log2(R) levels fall on rank boundaries. */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "mpi/comm.h"
#include "mpi/comm_impl.h"

/* Elements combined per pass of the local tree, and per message between ranks. */
#define BLOCK 4096
#define MSG_ELEMS ((size_t)1 << 20)
#define TREE_TAG 7301

typedef struct elem_type {
    size_t bytes;
    MPI_Datatype mpi;
    void (*add)(void *dst, const void *a, const void *b, size_t n); /* dst = a + b */
} elem_type;

static void add_float(void *dst, const void *a, const void *b, size_t n)
{
    float *d = dst;
    const float *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        d[i] = x[i] + y[i];
}

static void add_double(void *dst, const void *a, const void *b, size_t n)
{
    double *d = dst;
    const double *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        d[i] = x[i] + y[i];
}

static int tree_depth(int m)
{
    int d = 0;
    while ((1 << d) < m)
        d++;
    return d;
}

/* Writes the tree sum of elements [at, at + k) of shards [lo, lo + m) into level[0]; level[j]
 * are scratch rows of k or more elements, row j+1 holding the right subtree while row j holds
 * the left. */
static void local_tree(const elem_type *t, const void *const *shards, int lo, int m, size_t at,
                       size_t k, char *const *level)
{
    if (m == 1) {
        memcpy(level[0], (const char *)shards[lo] + at * t->bytes, k * t->bytes);
        return;
    }
    int left = m / 2;
    local_tree(t, shards, lo, left, at, k, level);
    local_tree(t, shards, lo + left, m - left, at, k, level + 1);
    t->add(level[0], level[0], level[1], k);
}

static int tree_sum(mpq_comm *c, const elem_type *t, const void *const *shards, int m, int v,
                    size_t n, void *out)
{
    const int r = c->rank, size = c->size;
    if (v < 1 || size & (size - 1) || v % size != 0)
        return MPQ_FAIL(MPQ_E_ARG,
                        "tree sum: %d ranks must be a power of two dividing virtual_shards = %d",
                        size, v);
    MPQ_ASSERT(m == v / size, "tree sum: rank %d passed %d shards, owns %d of %d", r, m, v / size,
               v);
    if (n == 0) return MPQ_OK;
    const size_t rows = (size_t)tree_depth(m) + 1;
    const size_t blk = n < BLOCK ? n : BLOCK, msg = n < MSG_ELEMS ? n : MSG_ELEMS;
    const size_t scratch = rows * blk > msg ? rows * blk : msg;
    char *buf = malloc(scratch * t->bytes);
    char **level = malloc(rows * sizeof *level);
    if (!buf || !level) {
        free(buf);
        free(level);
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    }
    for (size_t j = 0; j < rows; j++)
        level[j] = buf + j * blk * t->bytes;
    /* This rank's subtree, BLOCK elements at a time (addition is elementwise: same bits). */
    for (size_t at = 0; at < n; at += blk) {
        size_t k = n - at < blk ? n - at : blk;
        local_tree(t, shards, 0, m, at, k, level);
        memcpy((char *)out + at * t->bytes, level[0], k * t->bytes);
    }
    /* Recursive doubling: at level k the partners differ in bit k and join the two subtrees of
     * one node of the same tree, the lower rank's partial on the left. */
    int rc = MPQ_OK;
    for (int bit = 1; bit < size && rc == MPQ_OK; bit <<= 1) {
        const int peer = r ^ bit;
        for (size_t at = 0; at < n; at += MSG_ELEMS) {
            size_t k = n - at < MSG_ELEMS ? n - at : MSG_ELEMS;
            char *mine = (char *)out + at * t->bytes;
            int err = MPI_Sendrecv(mine, (int)k, t->mpi, peer, TREE_TAG, buf, (int)k, t->mpi, peer,
                                   TREE_TAG, c->world, MPI_STATUS_IGNORE);
            if (err != MPI_SUCCESS) {
                rc = MPQ_MPI_FAIL(err, "tree sum: MPI_Sendrecv");
                break;
            }
            if (r < peer)
                t->add(mine, mine, buf, k);
            else
                t->add(mine, buf, mine, k);
        }
    }
    free(buf);
    free(level);
    return rc;
}

int mpq_comm_tree_sum(mpq_comm *c, float *const *shard_bufs, int n_local_shards, int v, size_t n,
                      float *out)
{
    static const elem_type t = {sizeof(float), MPI_FLOAT, add_float};
    return tree_sum(c, &t, (const void *const *)shard_bufs, n_local_shards, v, n, out);
}

int mpq_comm_tree_sum_double(mpq_comm *c, double *const *shard_bufs, int n_local_shards, int v,
                             size_t n, double *out)
{
    static const elem_type t = {sizeof(double), MPI_DOUBLE, add_double};
    return tree_sum(c, &t, (const void *const *)shard_bufs, n_local_shards, v, n, out);
}

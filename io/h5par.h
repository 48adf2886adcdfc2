/* Parallel HDF5 plumbing shared by io/ckpt.c and io/export.c (internal to io/): a file opened
 * collectively over the world communicator through MPI-IO (collective metadata, collective data
 * transfers), datasets whose rows are divided among the ranks, whole reads on every rank, string
 * datasets, and the atomic finish of a written file (temporary name, then rename by rank 0).
 * Every dataset written here carries attribute mpq_fnv1a64, the FNV-1a hash of its bytes, which
 * every whole read verifies (a mismatch names the tensor; files without it still load). A stored
 * hash rather than HDF5's Fletcher32 filter (which parallel HDF5 1.10.8 does write collectively):
 * the filter needs chunked datasets, so the layout h5py users see would change and every save
 * would go through the filtered collective path; its failures surface as a bare read error; and
 * rank 0's hash also exposes replicas whose rows differ.
 * Every function is collective (every rank makes the same calls in the same order) unless it
 * says otherwise, and is called with io/h5.h's lock held. Messages name the file. */
#ifndef MPQ_IO_H5PAR_H
#define MPQ_IO_H5PAR_H

#include <stddef.h>

#include "io/h5.h"
#include "mpi/comm.h"

#define MPQ_PF_PATH_BYTES 256 /* object paths: a prefix and a registry name */

typedef struct mpq_pf {
    hid_t f, dxpl, lcpl, dcpl; /* file, collective transfers, intermediate groups, no fill */
    int rank, size;
    int created;      /* written by us: closing flushes first and agrees on the outcome */
    mpq_comm *comm;
    const char *path; /* for messages */
} mpq_pf;

/* Creates path (create = 1, truncating) or opens it read-only. Returns 0 or MPQ_E_IO saying
 * whether the file is missing, a directory, or not HDF5 / truncated. On failure p holds nothing. */
int mpq_pf_open(mpq_comm *c, const char *path, int create, mpq_pf *p);
/* Collective, before creating path: rank 0 reserves `bytes` on its file system (posix_fallocate
 * of path + ".reserve", removed at once; where the file system cannot, statvfs's free space), so a
 * full disk is found before HDF5 writes anything: inside parallel HDF5 a failed write can leave
 * the ranks in different collectives. Returns 0 or an agreed MPQ_E_IO naming the file and the
 * space it needs. MPQ_TEST_SKIP_RESERVE=1 (tests) skips the check, to exercise mpq_pf_close's
 * recovery. On success it arms the save watchdog (SIGALRM), which mpq_pf_commit disarms: a save
 * that takes longer than MPQ_SAVE_TIMEOUT_S seconds (default 120 + 1 per 5 MB) prints a message
 * and exits the rank with status 1 (parallel HDF5 can hang after a failed write), so a job never
 * hangs in a save. Every successful reserve must be followed by mpq_pf_commit. */
int mpq_pf_reserve(mpq_comm *c, const char *path, size_t bytes);
/* About how many bytes a file of raw_bytes of tensor data in n_objects datasets, groups and
 * attribute sets takes, with room to spare (for mpq_pf_reserve). */
size_t mpq_pf_estimate_bytes(size_t raw_bytes, size_t n_objects);
/* Closes everything; a failed close sets *rc when it is still 0. Collective for a created file:
 * it is flushed first and the outcome agreed; after a failed flush (disk full) rank 0 truncates
 * the file, which frees its space, so that the close that follows succeeds on every rank (the
 * caller then removes the file). A created file that still cannot be closed ends the job through
 * mpq_abort: HDF5 would otherwise crash or hang in MPI_Finalize trying to close it again. */
void mpq_pf_close(mpq_pf *p, int *rc);
/* Collective, after every rank closed the written file tmp with result rc: on success waits
 * MPQ_TEST_SAVE_DELAY_MS milliseconds if that environment variable is set (tests widen the
 * window of an interrupted save with it), then rank 0 syncs tmp, renames it to path and syncs the
 * directory; on failure rank 0 removes tmp. Returns the agreed rc. */
int mpq_pf_commit(mpq_comm *c, const char *tmp, const char *path, int rc);

/* Not collective: whether the absolute object path exists (walking its groups: mpq_h5_exists). */
int mpq_pf_exists(hid_t f, const char *path);
/* Creates dataset name (file type ft, shape dims; intermediate groups made) and writes this
 * rank's rows [r*d0/R, (r+1)*d0/R) of data (memory type mt, esize bytes per element), or with
 * rank0_only everything from rank 0. Returns 0 or MPQ_E_IO. */
int mpq_pf_write_array(mpq_pf *p, const char *name, int ndim, const hsize_t *dims, hid_t ft,
                       hid_t mt, size_t esize, const void *data, int rank0_only);
/* float32 of a registry shape, rows divided among the ranks. */
int mpq_pf_write_floats(mpq_pf *p, const char *name, int ndim, const int *shape, const float *data);
/* A scalar fixed-length string dataset written by rank 0, and its reader (malloc'ed result of
 * at most max_bytes bytes; longer is MPQ_E_FORMAT). */
int mpq_pf_write_string(mpq_pf *p, const char *name, const char *text);
int mpq_pf_read_string(mpq_pf *p, const char *name, size_t max_bytes, char **out);
/* The rank and dimensions (at most max_dims) of dataset name; MPQ_E_FORMAT when it is missing. */
int mpq_pf_dims(mpq_pf *p, const char *name, int *ndim, hsize_t *dims, int max_dims);
/* Reads all of dataset name, converted to memory type mt, into out (bytes) on every rank, after
 * checking its element class, rank ndim and extents dims (NULL: any extents that fit in bytes)
 * with mpq_h5_read_checked. */
int mpq_pf_read(mpq_pf *p, const char *name, hid_t mt, int ndim, const hsize_t *dims, void *out,
                size_t bytes);

/* Not collective (any open file, e.g. serial): reads every dataset that carries a checksum and
 * compares. Returns 0 or MPQ_E_FORMAT naming the file and the first damaged tensor. */
int mpq_pf_verify_file(hid_t f, const char *path);

/* The datasets below a group, as paths relative to it; none if the group is missing. */
typedef struct mpq_pf_names {
    char (*names)[128];
    int n, too_long; /* too_long: names of 128 bytes or more, not listed */
    size_t cap;
} mpq_pf_names;
int mpq_pf_list_datasets(mpq_pf *p, const char *group, mpq_pf_names *l);

#endif

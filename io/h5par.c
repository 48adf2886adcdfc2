/* Parallel HDF5 plumbing (see h5par.h). Every hid_t is closed on every path; nothing is kept
 * between calls. */
#include "io/h5par.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/grow.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/params.h"
#include "core/path.h"

#define CHECKSUM_ATTR "mpq_fnv1a64" /* on every dataset mpq writes: FNV-1a of its bytes */

void mpq_pf_close(mpq_pf *p, int *rc)
{
    if (p->dcpl >= 0) H5Pclose(p->dcpl);
    if (p->lcpl >= 0) H5Pclose(p->lcpl);
    if (p->dxpl >= 0) H5Pclose(p->dxpl);
    if (p->created) { /* every rank that created the file comes here, even if its create failed */
        int ok = p->f >= 0 && H5Fflush(p->f, H5F_SCOPE_GLOBAL) >= 0;
        int frc = ok        ? MPQ_OK
                  : *rc < 0 ? *rc /* keep the first message */
                  : p->f < 0
                      ? MPQ_E_IO
                      : MPQ_FAIL(MPQ_E_IO, "%s: cannot write the file (disk full or over quota?)",
                                 p->path);
        frc = mpq_comm_agree(p->comm, frc);
        if (frc < 0) {
            if (p->rank == 0 && p->f >= 0 && truncate(p->path, 0) != 0)
                mpq_log_warn("cannot truncate '%s' to free its space: %s", p->path,
                             strerror(errno));
            mpq_comm_barrier(p->comm);
            if (*rc == MPQ_OK) *rc = frc;
        }
    }
    if (p->f >= 0 && H5Fclose(p->f) < 0) {
        if (p->created)
            mpq_abort(__FILE__, __LINE__,
                      "%s: cannot close the file even after freeing its space; parallel HDF5 "
                      "cannot shut down cleanly with it open, so the job ends here (the earlier "
                      "files are intact)",
                      p->path);
        if (*rc == MPQ_OK) *rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot close the file", p->path);
    }
    p->f = p->dxpl = p->lcpl = p->dcpl = H5I_INVALID_HID;
    p->created = 0;
}

/* Rank 0: whether `bytes` fit on the file system of path (see mpq_pf_reserve). */
static int reserve_space(const char *path, size_t bytes)
{
    char r[MPQ_PATH_MAX];
    struct statvfs vfs;
    if (snprintf(r, sizeof r, "%s.reserve", path) >= (int)sizeof r)
        return MPQ_FAIL(MPQ_E_ARG, "path too long: '%s'", path);
    int fd = open(r, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0)
        return MPQ_FAIL(MPQ_E_IO,
                        "cannot create '%s': %s ---> HINT: check that the directory "
                        "exists and is writable",
                        r, strerror(errno));
    int err = posix_fallocate(fd, 0, (off_t)bytes);
    close(fd);
    unlink(r);
    if ((err == EOPNOTSUPP || err == EINVAL) && statvfs(r, &vfs) == 0) /* e.g. some NFS */
        err = (double)vfs.f_bavail * (double)vfs.f_frsize >= (double)bytes ? 0 : ENOSPC;
    else if (err == EOPNOTSUPP || err == EINVAL)
        err = 0; /* cannot tell: let the write try */
    if (err)
        return MPQ_FAIL(MPQ_E_IO,
                        "not enough space for '%s': it needs about %.1f MB (%s) ---> HINT: free "
                        "space there or set another output_dir; the earlier files are intact",
                        path, (double)bytes / 1e6, strerror(err));
    return MPQ_OK;
}

/* ---- the save watchdog ------------------------------------------------------------------------
 * Parallel HDF5 1.10 can leave the ranks in different collectives after a failed write (one rank
 * in a barrier of its metadata cache, another in the broadcast of a truncate: seen with a full
 * disk). Nothing can be agreed from outside then, so an alarm bounds every save: when it fires,
 * the rank prints the message prepared when it was armed and exits with status 1, and mpirun
 * ends the others. One save runs at a time per process; the message buffer is its only state. */
static char watchdog_msg[MPQ_PATH_MAX + 320];
static struct sigaction watchdog_old;

static void on_watchdog(int sig)
{
    (void)sig;
    ssize_t k = write(STDERR_FILENO, watchdog_msg, strlen(watchdog_msg));
    (void)k;
    _exit(1);
}

/* Seconds a save of `bytes` may take: MPQ_SAVE_TIMEOUT_S, else 120 s plus 1 s per 5 MB. */
static unsigned watchdog_seconds(size_t bytes)
{
    const char *e = getenv("MPQ_SAVE_TIMEOUT_S");
    long s = e ? strtol(e, NULL, 10) : 0;
    return s > 0 ? (unsigned)s : 120u + (unsigned)(bytes / 5000000u);
}

static void watchdog_arm(int rank, const char *path, size_t bytes)
{
    struct sigaction sa;
    unsigned secs = watchdog_seconds(bytes);
    snprintf(watchdog_msg, sizeof watchdog_msg,
             "mpq[rank %d] error: writing '%s' has not finished after %u s: a write failed inside "
             "parallel HDF5 and the ranks wait in different collectives (disk full?); ending the "
             "job, the earlier files are intact ---> HINT: check the free space and quota of the "
             "output_dir (MPQ_SAVE_TIMEOUT_S sets this limit)\n",
             rank, path, secs);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &watchdog_old);
    alarm(secs);
}

static void watchdog_disarm(void)
{
    alarm(0);
    sigaction(SIGALRM, &watchdog_old, NULL);
}

int mpq_pf_reserve(mpq_comm *c, const char *path, size_t bytes)
{
    const char *skip = getenv("MPQ_TEST_SKIP_RESERVE");
    int rc = MPQ_OK;
    if (!(skip && !strcmp(skip, "1")) && mpq_comm_rank(c) == 0) rc = reserve_space(path, bytes);
    rc = mpq_comm_agree(c, rc);
    if (rc == 0) watchdog_arm(mpq_comm_rank(c), path, bytes);
    return rc;
}

size_t mpq_pf_estimate_bytes(size_t raw_bytes, size_t n_objects)
{
    /* measured: about 1.7 KB of metadata per object (headers, attributes, group entries) */
    return raw_bytes + raw_bytes / 16 + n_objects * 3072 + (256u << 10);
}

/* Collective: creates path (create = 1) or opens it read-only, through MPI-IO with collective
 * metadata operations and collective data transfers. Lock held. */
int mpq_pf_open(mpq_comm *c, const char *path, int create, mpq_pf *p)
{
    MPI_Comm mc;
    hid_t fapl = H5I_INVALID_HID;
    int rc = MPQ_OK;
    struct stat st;
    *p = (mpq_pf){.f = H5I_INVALID_HID,
                  .dxpl = H5I_INVALID_HID,
                  .lcpl = H5I_INVALID_HID,
                  .dcpl = H5I_INVALID_HID,
                  .rank = mpq_comm_rank(c),
                  .size = mpq_comm_size(c),
                  .created = create, /* mpq_pf_close agrees over every rank that tried */
                  .comm = c,
                  .path = path};
    if (!create && stat(path, &st) != 0)
        return MPQ_FAIL(MPQ_E_IO, "cannot open '%s': %s", path, strerror(errno));
    if (!create && S_ISDIR(st.st_mode))
        return MPQ_FAIL(MPQ_E_IO, "'%s' is a directory, not a checkpoint file", path);
    if (!create) { /* rank 0 probes the file (io/h5.h); every rank learns the verdict */
        int probed = p->rank == 0 ? mpq_h5_probe_file(path) : MPQ_OK;
        if (mpq_comm_bcast(c, &probed, sizeof probed, 0) < 0)
            return MPQ_FAIL(MPQ_E_IO, "%s: cannot agree on the file across ranks", path);
        if (probed < 0)
            return p->rank == 0 ? probed
                                : MPQ_FAIL(probed,
                                           "'%s' is damaged or crafted: HDF5 crashed on rank 0 "
                                           "reading its metadata",
                                           path);
    }
    mpq_comm_get_mpi(c, &mc);
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    p->dxpl = H5Pcreate(H5P_DATASET_XFER);
    p->lcpl = H5Pcreate(H5P_LINK_CREATE);
    p->dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (fapl < 0 || p->dxpl < 0 || p->lcpl < 0 || p->dcpl < 0 ||
        H5Pset_fapl_mpio(fapl, mc, MPI_INFO_NULL) < 0 ||
        H5Pset_all_coll_metadata_ops(fapl, 1) < 0 || H5Pset_coll_metadata_write(fapl, 1) < 0 ||
        H5Pset_dxpl_mpio(p->dxpl, H5FD_MPIO_COLLECTIVE) < 0 ||
        H5Pset_create_intermediate_group(p->lcpl, 1) < 0 ||
        H5Pset_alloc_time(p->dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
        H5Pset_fill_time(p->dcpl, H5D_FILL_TIME_NEVER) < 0) {
        rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot set up parallel HDF5 (MPI-IO)", path);
        goto out;
    }
    p->f = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                  : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (p->f < 0)
        rc = create ? MPQ_FAIL(MPQ_E_IO,
                               "cannot create '%s' ---> HINT: check that the directory "
                               "exists and is writable",
                               path)
                    : MPQ_FAIL(MPQ_E_IO,
                               "cannot open '%s': not an HDF5 file, or truncated or "
                               "damaged (an interrupted copy?)",
                               path);
out:
    if (fapl >= 0) H5Pclose(fapl);
    if (rc < 0 && !create) mpq_pf_close(p, &(int){0});
    return rc; /* a failed create: the caller's mpq_pf_close agrees on it */
}

int mpq_pf_exists(hid_t f, const char *path) { return mpq_h5_exists(f, path); }

/* ---- checksums ---------------------------------------------------------------------------- */

/* Rank 0's FNV-1a of a dataset's bytes in memory, on every rank (attributes are collective and
 * must carry the same value everywhere; a replica that differs is then caught when reading). */
static int data_checksum(mpq_pf *p, const void *data, size_t bytes, uint64_t *h)
{
    *h = p->rank == 0 ? mpq_hash_bytes(MPQ_HASH_INIT, data, data ? bytes : 0) : 0;
    return mpq_comm_bcast(p->comm, h, sizeof *h, 0);
}

/* Collective: attribute CHECKSUM_ATTR (uint64) on dataset d. */
static int write_checksum(mpq_pf *p, hid_t d, const char *name, uint64_t h)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    int rc = MPQ_OK;
    if (sp < 0 ||
        (a = H5Acreate2(d, CHECKSUM_ATTR, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, H5T_NATIVE_UINT64, &h) < 0)
        rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot write the checksum of '%s'", p->path, name);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

/* After a whole read of d into out (memory type mt): compares the bytes with the dataset's stored
 * checksum. Files written before checksums existed have none and pass. */
static int verify_checksum(const char *where, hid_t d, const char *name, hid_t mt, const void *out)
{
    uint64_t want = 0;
    hid_t a = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    int rc = MPQ_OK;
    if (H5Aexists(d, CHECKSUM_ATTR) <= 0) return MPQ_OK;
    a = H5Aopen(d, CHECKSUM_ATTR, H5P_DEFAULT);
    sp = H5Dget_space(d);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (a < 0 || n < 0 || H5Aread(a, H5T_NATIVE_UINT64, &want) < 0)
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot read the checksum of '%s'", where, name);
    else if (mpq_hash_bytes(MPQ_HASH_INIT, out, (size_t)n * H5Tget_size(mt)) != want)
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "%s: tensor '%s' does not match its stored checksum: the file is damaged "
                      "(bit rot, a bad copy) ---> HINT: use an earlier checkpoint",
                      where, name);
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* Collective: creates dataset `name` of file type ft and shape dims, and writes this rank's share
 * of data (memory type mt, esize bytes per element): rows [r*d0/R, (r+1)*d0/R) of the first
 * dimension. With rank0_only, rank 0 writes everything. */
int mpq_pf_write_array(mpq_pf *p, const char *name, int ndim, const hsize_t *dims, hid_t ft,
                       hid_t mt, size_t esize, const void *data, int rank0_only)
{
    hid_t sp = H5I_INVALID_HID, mem = H5I_INVALID_HID, d = H5I_INVALID_HID;
    hsize_t start[MPQ_MAX_DIMS + 1] = {0}, count[MPQ_MAX_DIMS + 1], row = 1, n_mem;
    int rc = MPQ_OK;
    for (int i = 1; i < ndim; i++)
        row *= dims[i];
    hsize_t r0 = dims[0] * (hsize_t)p->rank / (hsize_t)p->size;
    hsize_t r1 = dims[0] * (hsize_t)(p->rank + 1) / (hsize_t)p->size;
    if (rank0_only) {
        r0 = 0;
        r1 = p->rank == 0 ? dims[0] : 0;
    }
    sp = H5Screate_simple(ndim, dims, NULL);
    d = sp < 0 ? H5I_INVALID_HID : H5Dcreate2(p->f, name, ft, sp, p->lcpl, p->dcpl, H5P_DEFAULT);
    if (d < 0) {
        rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot create dataset '%s'", p->path, name);
        goto out;
    }
    n_mem = (r1 - r0) * row;
    mem = H5Screate_simple(1, (hsize_t[]){n_mem ? n_mem : 1}, NULL);
    if (mem < 0) {
        rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot make a dataspace for '%s'", p->path, name);
        goto out;
    }
    if (n_mem) {
        memcpy(count, dims, sizeof(hsize_t) * (size_t)ndim);
        start[0] = r0;
        count[0] = r1 - r0;
        rc = H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ? -1 : 0;
    } else {
        rc = H5Sselect_none(sp) < 0 || H5Sselect_none(mem) < 0 ? -1 : 0;
    }
    if (rc == 0 && dims[0] > 0 &&
        H5Dwrite(d, mt, mem, sp, p->dxpl, (const char *)data + r0 * row * esize) < 0)
        rc = -1;
    if (rc < 0) rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot write dataset '%s'", p->path, name);
    uint64_t h;
    if (rc == 0) rc = data_checksum(p, data, (size_t)(dims[0] * row) * esize, &h);
    if (rc == 0) rc = write_checksum(p, d, name, h);
out:
    if (mem >= 0) H5Sclose(mem);
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int mpq_pf_write_floats(mpq_pf *p, const char *name, int ndim, const int *shape, const float *data)
{
    hsize_t dims[MPQ_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        dims[i] = (hsize_t)shape[i];
    return mpq_pf_write_array(p, name, ndim, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, sizeof(float),
                              data, 0);
}

/* Collective: a scalar fixed-length string dataset, written by rank 0. */
int mpq_pf_write_string(mpq_pf *p, const char *name, const char *text)
{
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), d = H5I_INVALID_HID;
    int rc = MPQ_OK;
    if (t < 0 || sp < 0 || H5Tset_size(t, strlen(text) + 1) < 0 ||
        H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 ||
        (d = H5Dcreate2(p->f, name, t, sp, p->lcpl, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        (p->rank != 0 && H5Sselect_none(sp) < 0) || H5Dwrite(d, t, sp, sp, p->dxpl, text) < 0)
        rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot write '%s'", p->path, name);
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return rc;
}

/* Collective: reads a scalar string dataset (at most max_bytes) into a malloc'ed string. */
int mpq_pf_read_string(mpq_pf *p, const char *name, size_t max_bytes, char **out)
{
    return mpq_h5_read_string_alloc(p->f, name, MPQ_H5_DATASET, p->path, p->dxpl, max_bytes, out);
}

/* The shape of dataset name; MPQ_E_FORMAT naming it when it is missing. */
int mpq_pf_dims(mpq_pf *p, const char *name, int *ndim, hsize_t *dims, int max_dims)
{
    mpq_h5_shape s;
    *ndim = -1;
    if (!mpq_pf_exists(p->f, name))
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: tensor '%s' is missing", p->path, name);
    MPQ_TRY(mpq_h5_shape_of(p->f, name, MPQ_H5_DATASET, p->path, &s));
    if (s.rank > max_dims)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: '%s' is not a dataset of at most %d dimensions", p->path,
                        name, max_dims);
    *ndim = s.rank;
    memcpy(dims, s.dims, sizeof *dims * (size_t)s.rank);
    return MPQ_OK;
}

/* Collective: reads all of dataset name (converted to memory type mt) on every rank, after
 * checking it against the expected rank and extents and the buffer (io/h5.h). */
int mpq_pf_read(mpq_pf *p, const char *name, hid_t mt, int ndim, const hsize_t *dims, void *out,
                size_t bytes)
{
    int rc = mpq_h5_read_checked(p->f, name, MPQ_H5_DATASET, p->path, p->dxpl, mt, ndim, dims, out,
                                 bytes);
    if (rc < 0) return rc;
    hid_t d = H5Dopen2(p->f, name, H5P_DEFAULT); /* the stored checksum, where there is one */
    if (d < 0) return MPQ_FAIL(MPQ_E_IO, "%s: cannot open '%s'", p->path, name);
    rc = verify_checksum(p->path, d, name, mt, out);
    H5Dclose(d);
    return rc;
}

/* ---- names in a group ------------------------------------------------------------------------ */

static int collect_dataset(hid_t g, const char *name, const char *path, void *ctx)
{
    mpq_pf_names *l = ctx;
    (void)g, (void)name;
    if (strlen(path) >= sizeof *l->names) {
        l->too_long++;
        return 0;
    }
    if (mpq_grow((void **)&l->names, &l->cap, (size_t)l->n + 1, sizeof *l->names) < 0)
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory listing tensor names");
    strcpy(l->names[l->n++], path);
    return 0;
}

/* The datasets below group (relative paths, e.g. "res1/layer1/.../W"); none if it is missing. */
int mpq_pf_list_datasets(mpq_pf *p, const char *group, mpq_pf_names *l)
{
    memset(l, 0, sizeof *l);
    if (strcmp(group, "/") && !mpq_pf_exists(p->f, group)) return MPQ_OK;
    hid_t g = H5Gopen2(p->f, group, H5P_DEFAULT);
    if (g < 0) return MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot list the group '%s'", p->path, group);
    const int rc = mpq_h5_walk_datasets(g, p->path, collect_dataset, l);
    H5Gclose(g);
    return rc;
}

static void test_delay(void)
{
    const char *e = getenv("MPQ_TEST_SAVE_DELAY_MS");
    long ms = e ? strtol(e, NULL, 10) : 0;
    if (ms > 0) nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* Rank 0: fsync the file, rename it into place, fsync the directory. */
static int commit_file(const char *tmp, const char *path)
{
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        if (fd >= 0) close(fd);
        return MPQ_FAIL(MPQ_E_IO, "cannot sync '%s': %s", tmp, strerror(errno));
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return MPQ_FAIL(MPQ_E_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    char dir[MPQ_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return MPQ_OK;
}

int mpq_pf_commit(mpq_comm *c, const char *tmp, const char *path, int rc)
{
    rc = mpq_comm_agree(c, rc);
    watchdog_disarm(); /* the HDF5 part is over; test_delay may exceed it */
    if (rc == 0) test_delay();
    if (rc == 0 && mpq_comm_rank(c) == 0) rc = commit_file(tmp, path);
    if (rc < 0 && mpq_comm_rank(c) == 0) unlink(tmp);
    return mpq_comm_agree(c, rc);
}

/* ---- whole-file verification (serial) ------------------------------------------------------- */

/* Reads one dataset in its native type and checks it against its stored checksum (the walk
 * stops at the first damaged one). */
static int verify_one(hid_t g, const char *name, const char *path, void *arg)
{
    const char *file = arg;
    hid_t o = H5Dopen2(g, name, H5P_DEFAULT);
    if (o < 0) return MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot open '%s'", file, path);
    if (H5Aexists(o, CHECKSUM_ATTR) <= 0) {
        H5Dclose(o);
        return 0;
    }
    const int ok = mpq_h5_storage_ok(o, path, file);
    if (ok < 0) {
        H5Dclose(o);
        return ok;
    }
    hid_t ft = H5Dget_type(o), sp = H5Dget_space(o);
    hid_t mt = ft < 0 ? H5I_INVALID_HID : H5Tget_native_type(ft, H5T_DIR_ASCEND);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    size_t bytes = mt < 0 || n < 0 ? 0 : (size_t)n * H5Tget_size(mt);
    void *buf = bytes ? malloc(bytes) : NULL;
    int rc;
    if (mt < 0 || n < 0 || (bytes && !buf))
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot read '%s'", file, path);
    else if (bytes && H5Dread(o, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot read '%s' (truncated or damaged)", file, path);
    else
        rc = verify_checksum(file, o, path, mt, buf);
    free(buf);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(o);
    return rc;
}

int mpq_pf_verify_file(hid_t f, const char *path)
{
    return mpq_h5_walk_datasets(f, path, verify_one, (void *)path);
}

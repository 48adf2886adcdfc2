/* HDF5 plumbing shared by the io/ files. The Debian parallel HDF5 is built without thread safety,
 * so every HDF5 call in the process must hold one lock (mpq_h5_lock): the data reader's thread
 * and the main thread (checkpoints) may otherwise enter the library together. Also: HDF5's own
 * error printing is switched off (we report errors ourselves, naming the file); the one bounded,
 * checked way to read attributes and datasets; and small attribute helpers. Include only from io/
 * (and tests/io/). */
#ifndef MPQ_IO_H5_H
#define MPQ_IO_H5_H

#include <hdf5.h>

/* Takes / releases the process-wide HDF5 lock (recursive: nested takes are fine). The first take
 * also silences HDF5's automatic error-stack printing. */
void mpq_h5_lock(void);
void mpq_h5_unlock(void);

/* ---- bounded, checked reads --------------------------------------------------------------
 * Every attribute and dataset mpq reads from a file goes through mpq_h5_read_checked or
 * mpq_h5_read_string: the object's element class, rank and extents are compared with what the
 * caller expects, and the bytes the read would write (element count times memory element size,
 * overflow-checked) with the caller's buffer, BEFORE anything is read. A crafted file therefore
 * gets MPQ_E_FORMAT naming the file (where) and the key, never a write past a buffer. */

#define MPQ_H5_MAX_RANK 8
#define MPQ_H5_ANY_RANK (-1)

typedef enum mpq_h5_kind { MPQ_H5_DATASET, MPQ_H5_ATTRIBUTE } mpq_h5_kind;

/* What an object holds, read from its type and dataspace (nothing of its data). */
typedef struct mpq_h5_shape {
    int rank; /* 0 for a scalar */
    hsize_t dims[MPQ_H5_MAX_RANK];
    hsize_t n;        /* elements: the product of dims (1 for a scalar), overflow-checked */
    H5T_class_t cls;  /* element class in the file */
    size_t type_size; /* bytes of one element in the file */
    H5T_sign_t sign;  /* integers: signed or not (H5T_SGN_ERROR for other classes) */
    int var_string;   /* a variable-length string (not read by mpq) */
    hsize_t storage;  /* datasets: bytes allocated in the file (H5Dget_storage_size) */
} mpq_h5_shape;

/* Whether the absolute or relative path name exists below loc, walking its groups one by one
 * (so a missing intermediate group is "no", not an HDF5 error). */
int mpq_h5_exists(hid_t loc, const char *name);
/* Whether dataset d stores the bytes its dataspace needs: a compact or contiguous layout must
 * store every element (or, contiguous, none yet: read as the fill value); chunked ones may leave
 * chunks unwritten. HDF5 1.10 reads a compact dataset's elements from its stored bytes without
 * comparing the two (a crafted file with an empty compact store crashed it). Returns MPQ_OK or
 * MPQ_E_FORMAT naming where and name. Every dataset the readers here open is checked. */
int mpq_h5_storage_ok(hid_t d, const char *name, const char *where);
/* Opens the file read-only in a child process and, there, its root's and every dataset's
 * attributes and every dataset (checked as above; read whole up to 16 MB, so that chunk indexes
 * and filters are parsed): HDF5 1.10 crashes inside its own calls on
 * some crafted metadata (a chunk dimension of zero divides by zero in H5Dopen2), which no check
 * before the call can see. A child killed by a signal makes the file refused: MPQ_E_FORMAT,
 * naming it. Anything else returns MPQ_OK (an HDF5 error in the child is reported by the
 * caller's own open, in its words; no fork: no probe). Call it before the first open of a file
 * that comes from outside; no MPI in the child. */
int mpq_h5_probe_file(const char *path);
/* Describes attribute or dataset name of loc (where: the file name, for messages): MPQ_E_FORMAT
 * when it is missing, cannot be opened, has a rank above MPQ_H5_MAX_RANK or more elements than
 * size_t can count. */
int mpq_h5_shape_of(hid_t loc, const char *name, mpq_h5_kind kind, const char *where,
                    mpq_h5_shape *s);
/* Reads all of attribute or dataset name into buf (bytes) as mem_type (dxpl: the transfer
 * property list for datasets, H5P_DEFAULT or a collective one; ignored for attributes), after
 * checking: the element class equals mem_type's; the rank equals rank (MPQ_H5_ANY_RANK: any;
 * a scalar also passes as rank 1 with one element and the other way round); the extents equal
 * dims[0..rank) when dims is not NULL; element count x H5Tget_size(mem_type) fits in bytes.
 * Returns 0 or MPQ_E_FORMAT naming where and name (MPQ_E_IO when a checked read fails). */
int mpq_h5_read_checked(hid_t loc, const char *name, mpq_h5_kind kind, const char *where,
                        hid_t dxpl, hid_t mem_type, int rank, const hsize_t *dims, void *buf,
                        size_t bytes);
/* Reads a fixed-length string (a scalar, or one element) into buf (NUL-terminated); a value of
 * bytes or more characters is MPQ_E_FORMAT ("too long"), as is any other class or shape. */
int mpq_h5_read_string(hid_t loc, const char *name, mpq_h5_kind kind, const char *where, hid_t dxpl,
                       char *buf, size_t bytes);
/* The same into a malloc'ed string of at most max_bytes bytes (NUL included). */
int mpq_h5_read_string_alloc(hid_t loc, const char *name, mpq_h5_kind kind, const char *where,
                             hid_t dxpl, size_t max_bytes, char **out);

/* ---- walking a file's groups ---------------------------------------------------------------
 * H5Lvisit is not safe on a crafted file: it skips a group it has seen only when the group's
 * header counts more than one link to it, so a link back to an ancestor whose count says 1 makes
 * it walk the same groups for ever (seen: the export fuzzer, 34 KB, 29 s and counting). */

enum {
    MPQ_H5_WALK_DEPTH = 32,      /* groups below the start */
    MPQ_H5_WALK_LINKS = 1 << 20, /* links in all */
    MPQ_H5_WALK_PATH = 1024,     /* bytes of a dataset's path, NUL included */
};

/* Called for every dataset: its parent group, its link name there, and its path relative to the
 * start group ("a/b/W"). Returns 0 to go on, > 0 to stop the walk, < 0 for an error. */
typedef int (*mpq_h5_walk_fn)(hid_t group, const char *name, const char *path, void *ctx);

/* Calls fn for every dataset below group g, depth first in name order (as H5Lvisit), bounded:
 * only hard links are followed (soft and external ones, which could name other files, are
 * skipped), each group is entered once (by its address: cycles and repeated links end there),
 * at most MPQ_H5_WALK_DEPTH deep, over at most MPQ_H5_WALK_LINKS links, paths below
 * MPQ_H5_WALK_PATH bytes. Returns MPQ_OK (also when fn stopped it), fn's error, or MPQ_E_FORMAT
 * naming where when the file breaks a bound or a group cannot be read. Lock held. */
int mpq_h5_walk_datasets(hid_t g, const char *where, mpq_h5_walk_fn fn, void *ctx);

/* "(a, b, c)" into buf, for messages. */
const char *mpq_h5_shape_str(int rank, const hsize_t *dims, char *buf, size_t bytes);

/* Attribute helpers on an open object (lock held). Return 0 or MPQ_E_FORMAT naming what and where
 * (where: the file name for messages). The readers are mpq_h5_read_checked of one element (or n).
 */
int mpq_h5_attr_write_int(hid_t obj, const char *name, int v);
int mpq_h5_attr_write_floats(hid_t obj, const char *name, const float *v, int n);
int mpq_h5_attr_write_ints(hid_t obj, const char *name, const int *v, int n);
int mpq_h5_attr_read_int(hid_t obj, const char *name, const char *where, int *v);
/* Reads a float array attribute of exactly n elements. */
int mpq_h5_attr_read_floats(hid_t obj, const char *name, const char *where, float *v, int n);
/* Scalar 64-bit integers and doubles, and fixed-length strings (NUL-terminated, C_S1). */
int mpq_h5_attr_write_long(hid_t obj, const char *name, long v);
int mpq_h5_attr_write_double(hid_t obj, const char *name, double v);
int mpq_h5_attr_write_string(hid_t obj, const char *name, const char *v);
int mpq_h5_attr_read_long(hid_t obj, const char *name, const char *where, long *v);
int mpq_h5_attr_read_double(hid_t obj, const char *name, const char *where, double *v);
/* Reads a string attribute into out (bytes, NUL-terminated; longer values are an error). */
int mpq_h5_attr_read_string(hid_t obj, const char *name, const char *where, char *out,
                            size_t bytes);

#endif

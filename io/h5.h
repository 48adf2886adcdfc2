/* HDF5 plumbing shared by the io/ files. The Debian parallel HDF5 is built without thread safety,
 * so every HDF5 call in the process must hold one lock (mpq_h5_lock): the data reader's thread
 * and the main thread (checkpoints) may otherwise enter the library together. Also: HDF5's own
 * error printing is switched off (we report errors ourselves, naming the file), and small
 * attribute helpers. Include only from io/ (and tests/io/). */
#ifndef MPQ_IO_H5_H
#define MPQ_IO_H5_H

#include <hdf5.h>

/* Takes / releases the process-wide HDF5 lock (recursive: nested takes are fine). The first take
 * also silences HDF5's automatic error-stack printing. */
void mpq_h5_lock(void);
void mpq_h5_unlock(void);

/* Attribute helpers on an open object (lock held). Return 0 or MPQ_E_FORMAT naming what and where
 * (where: the file name for messages). */
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

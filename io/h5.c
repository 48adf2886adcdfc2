/* The process-wide HDF5 lock and attribute helpers (see h5.h). The lock is a recursive pthread
 * mutex so helpers can be called with the lock already held. No memory is owned. */
#include "io/h5.h"

#include <pthread.h>
#include <string.h>

#include "core/err.h"

static pthread_mutex_t h5_mutex = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static int h5_quiet;

void mpq_h5_lock(void)
{
    pthread_mutex_lock(&h5_mutex);
    if (!h5_quiet) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        h5_quiet = 1;
    }
}

void mpq_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }

static int attr_write(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, int n,
                      const void *v)
{
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = n > 0 ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t a =
        sp < 0 ? H5I_INVALID_HID : H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = MPQ_OK;
    if (a < 0 || H5Awrite(a, mem_type, v) < 0)
        rc = MPQ_FAIL(MPQ_E_IO, "cannot write attribute '%s'", name);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int mpq_h5_attr_write_int(hid_t obj, const char *name, int v)
{
    return attr_write(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT, 0, &v);
}

int mpq_h5_attr_write_floats(hid_t obj, const char *name, const float *v, int n)
{
    return attr_write(obj, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, n, v);
}

int mpq_h5_attr_write_ints(hid_t obj, const char *name, const int *v, int n)
{
    return attr_write(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT, n, v);
}

int mpq_h5_attr_write_long(hid_t obj, const char *name, long v)
{
    long long w = v;
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, &w);
}

int mpq_h5_attr_write_double(hid_t obj, const char *name, double v)
{
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &v);
}

int mpq_h5_attr_write_string(hid_t obj, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    int rc = MPQ_OK;
    if (t < 0 || H5Tset_size(t, strlen(v) + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0)
        rc = MPQ_FAIL(MPQ_E_IO, "cannot make the type of string attribute '%s'", name);
    if (rc == MPQ_OK) rc = attr_write(obj, name, t, t, 0, v);
    if (t >= 0) H5Tclose(t);
    return rc;
}

/* Opens attribute name and checks that it is numeric with n_want elements (0: scalar or 1). */
static int attr_read(hid_t obj, const char *name, const char *where, hid_t mem_type,
                     H5T_class_t cls, int n_want, void *v)
{
    int rc = MPQ_OK;
    hid_t a = H5I_INVALID_HID, sp = H5I_INVALID_HID, t = H5I_INVALID_HID;
    hssize_t n;
    if (H5Aexists(obj, name) <= 0) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: missing attribute '%s'", where, name);
        goto out;
    }
    a = H5Aopen(obj, name, H5P_DEFAULT);
    sp = a < 0 ? H5I_INVALID_HID : H5Aget_space(a);
    t = a < 0 ? H5I_INVALID_HID : H5Aget_type(a);
    if (a < 0 || sp < 0 || t < 0) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot open attribute '%s'", where, name);
        goto out;
    }
    n = H5Sget_simple_extent_npoints(sp);
    if (H5Tget_class(t) != cls || n != (n_want > 0 ? n_want : 1)) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: attribute '%s' must be %d %s value(s), found %lld", where,
                      name, n_want > 0 ? n_want : 1, cls == H5T_INTEGER ? "integer" : "float",
                      (long long)n);
        goto out;
    }
    if (H5Aread(a, mem_type, v) < 0)
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot read attribute '%s'", where, name);
out:
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    return rc;
}

int mpq_h5_attr_read_int(hid_t obj, const char *name, const char *where, int *v)
{
    return attr_read(obj, name, where, H5T_NATIVE_INT, H5T_INTEGER, 0, v);
}

int mpq_h5_attr_read_floats(hid_t obj, const char *name, const char *where, float *v, int n)
{
    return attr_read(obj, name, where, H5T_NATIVE_FLOAT, H5T_FLOAT, n, v);
}

int mpq_h5_attr_read_long(hid_t obj, const char *name, const char *where, long *v)
{
    long long w = 0;
    int rc = attr_read(obj, name, where, H5T_NATIVE_LLONG, H5T_INTEGER, 0, &w);
    *v = (long)w;
    return rc;
}

int mpq_h5_attr_read_double(hid_t obj, const char *name, const char *where, double *v)
{
    return attr_read(obj, name, where, H5T_NATIVE_DOUBLE, H5T_FLOAT, 0, v);
}

int mpq_h5_attr_read_string(hid_t obj, const char *name, const char *where, char *out, size_t bytes)
{
    int rc = MPQ_OK;
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    size_t len;
    out[0] = '\0';
    if (H5Aexists(obj, name) <= 0)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: missing attribute '%s'", where, name);
    a = H5Aopen(obj, name, H5P_DEFAULT);
    t = a < 0 ? H5I_INVALID_HID : H5Aget_type(a);
    if (t < 0 || H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) != 0) {
        rc =
            MPQ_FAIL(MPQ_E_FORMAT, "%s: attribute '%s' must be a fixed-length string", where, name);
        goto out;
    }
    len = H5Tget_size(t);
    if (len + 1 > bytes) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: attribute '%s' is too long (%zu bytes)", where, name, len);
        goto out;
    }
    mt = H5Tcopy(t);
    if (mt < 0 || H5Tset_size(mt, len + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
        H5Aread(a, mt, out) < 0)
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot read attribute '%s'", where, name);
    out[bytes - 1] = '\0';
out:
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

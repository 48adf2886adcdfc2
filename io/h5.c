/* The process-wide HDF5 lock, the checked readers and the attribute helpers (see h5.h). The lock is
 * a recursive pthread mutex so helpers can be called with the lock already held. No memory is
 * owned. */
#include "io/h5.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/checked_size.h"
#include "core/err.h"
#include "core/grow.h"

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

/* ---- bounded, checked reads ----------------------------------------------------------------- */

int mpq_h5_exists(hid_t loc, const char *name)
{
    char buf[1024];
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, name, len + 1);
    for (char *s = buf + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char saved = *s;
        *s = '\0';
        if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) return 0;
        if (saved == '\0') return 1;
        *s = saved;
    }
}

static const char *kind_name(mpq_h5_kind kind)
{
    return kind == MPQ_H5_ATTRIBUTE ? "attribute" : "dataset";
}

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER:
        return "integer";
    case H5T_FLOAT:
        return "float";
    case H5T_STRING:
        return "string";
    case H5T_NO_CLASS:
    case H5T_TIME:
    case H5T_BITFIELD:
    case H5T_OPAQUE:
    case H5T_COMPOUND:
    case H5T_REFERENCE:
    case H5T_ENUM:
    case H5T_VLEN:
    case H5T_ARRAY:
    case H5T_NCLASSES:
        break;
    }
    return "other";
}

int mpq_h5_storage_ok(hid_t d, const char *name, const char *where)
{
    hid_t dcpl = H5Dget_create_plist(d), type = H5Dget_type(d), space = H5Dget_space(d);
    const H5D_layout_t layout = dcpl < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(dcpl);
    const hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    const size_t size = type < 0 ? 0 : H5Tget_size(type);
    const hsize_t have = H5Dget_storage_size(d);
    size_t need = 0;
    int rc = MPQ_OK;
    if (layout < 0 || n < 0 || size == 0 || mpq_size_mul(&need, (size_t)n, size) < 0)
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: dataset '%s' has an unreadable layout, type or shape",
                      where, name);
    else if ((layout == H5D_COMPACT && have != need) ||
             (layout == H5D_CONTIGUOUS && have != 0 && have < need))
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "%s: dataset '%s' stores %llu bytes where its %lld elements need %zu (a "
                      "damaged or crafted file)",
                      where, name, (unsigned long long)have, (long long)n, need);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (dcpl >= 0) H5Pclose(dcpl);
    return rc;
}

/* Opens the object (attribute or dataset) and its type and dataspace; *obj, *type, *space are
 * H5I_INVALID_HID on failure. A dataset's stored bytes are checked (mpq_h5_storage_ok). */
static int open_object(hid_t loc, const char *name, mpq_h5_kind kind, const char *where, hid_t *obj,
                       hid_t *type, hid_t *space)
{
    int attr = kind == MPQ_H5_ATTRIBUTE;
    *obj = *type = *space = H5I_INVALID_HID;
    if (attr ? H5Aexists(loc, name) <= 0 : !mpq_h5_exists(loc, name))
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: missing %s '%s'", where, kind_name(kind), name);
    *obj = attr ? H5Aopen(loc, name, H5P_DEFAULT) : H5Dopen2(loc, name, H5P_DEFAULT);
    if (*obj >= 0) {
        *type = attr ? H5Aget_type(*obj) : H5Dget_type(*obj);
        *space = attr ? H5Aget_space(*obj) : H5Dget_space(*obj);
    }
    if (*obj < 0 || *type < 0 || *space < 0)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot open %s '%s' (not a %s, or corrupt)", where,
                        kind_name(kind), name, kind_name(kind));
    return attr ? MPQ_OK : mpq_h5_storage_ok(*obj, name, where);
}

static void close_object(mpq_h5_kind kind, hid_t obj, hid_t type, hid_t space)
{
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (obj >= 0) kind == MPQ_H5_ATTRIBUTE ? H5Aclose(obj) : H5Dclose(obj);
}

/* Fills s from an open type and dataspace. */
static int describe(hid_t type, hid_t space, const char *name, const char *where, mpq_h5_shape *s)
{
    H5S_class_t sc = H5Sget_simple_extent_type(space);
    int rank = H5Sget_simple_extent_ndims(space);
    size_t n = 1;
    memset(s, 0, sizeof *s);
    s->cls = H5Tget_class(type);
    s->type_size = H5Tget_size(type);
    s->sign = s->cls == H5T_INTEGER ? H5Tget_sign(type) : H5T_SGN_ERROR;
    s->var_string = s->cls == H5T_STRING && H5Tis_variable_str(type) > 0;
    if (sc == H5S_NULL) { /* an empty dataspace: no elements */
        s->rank = 0;
        s->n = 0;
        return MPQ_OK;
    }
    if (sc < 0 || rank < 0 || rank > MPQ_H5_MAX_RANK || s->cls < 0 || s->type_size == 0)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: '%s' has an unreadable type or a rank above %d", where,
                        name, MPQ_H5_MAX_RANK);
    s->rank = rank;
    if (rank > 0 && H5Sget_simple_extent_dims(space, s->dims, NULL) != rank)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot read the extents of '%s'", where, name);
    if (mpq_size_product(&n, s->dims, rank, SIZE_MAX) < 0)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: '%s' has more elements than can be counted", where,
                        name);
    s->n = n;
    return MPQ_OK;
}

int mpq_h5_shape_of(hid_t loc, const char *name, mpq_h5_kind kind, const char *where,
                    mpq_h5_shape *s)
{
    hid_t obj, type, space;
    int rc = open_object(loc, name, kind, where, &obj, &type, &space);
    if (rc == MPQ_OK) rc = describe(type, space, name, where, s);
    if (rc == MPQ_OK && kind == MPQ_H5_DATASET) s->storage = H5Dget_storage_size(obj);
    close_object(kind, obj, type, space);
    return rc;
}

const char *mpq_h5_shape_str(int rank, const hsize_t *dims, char *buf, size_t bytes)
{
    size_t k = (size_t)snprintf(buf, bytes, "(");
    for (int i = 0; i < rank && k < bytes; i++)
        k += (size_t)snprintf(buf + k, bytes - k, "%s%llu", i ? ", " : "",
                              (unsigned long long)dims[i]);
    if (k < bytes) snprintf(buf + k, bytes - k, ")");
    return buf;
}

/* Whether the object's shape is what the caller wants (rank, extents); a scalar and a
 * one-element rank-1 object stand for each other. */
static int shape_matches(const mpq_h5_shape *s, int rank, const hsize_t *dims)
{
    int r = s->rank;
    if (rank == MPQ_H5_ANY_RANK) return 1;
    if ((r == 0 && rank == 1 && s->n == 1) || (r == 1 && rank == 0 && s->n == 1))
        return !dims || rank == 0 || dims[0] == 1;
    if (r != rank) return 0;
    for (int i = 0; dims && i < r; i++)
        if (s->dims[i] != dims[i]) return 0;
    return 1;
}

int mpq_h5_read_checked(hid_t loc, const char *name, mpq_h5_kind kind, const char *where,
                        hid_t dxpl, hid_t mem_type, int rank, const hsize_t *dims, void *buf,
                        size_t bytes)
{
    hid_t obj, type, space;
    mpq_h5_shape s;
    size_t need = 0;
    char a[128], b[128];
    H5T_class_t want_cls = H5Tget_class(mem_type);
    int rc = open_object(loc, name, kind, where, &obj, &type, &space);
    if (rc == MPQ_OK) rc = describe(type, space, name, where, &s);
    if (rc < 0) goto out;
    if (s.cls != want_cls || s.var_string) {
        rc = MPQ_FAIL(
            MPQ_E_FORMAT, "%s: %s '%s' holds %s values, expected %s", where, kind_name(kind), name,
            s.var_string ? "variable-length string" : class_name(s.cls), class_name(want_cls));
        goto out;
    }
    if (!shape_matches(&s, rank, dims)) {
        if (dims && rank >= 0)
            rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: %s '%s' has shape %s, expected %s", where,
                          kind_name(kind), name, mpq_h5_shape_str(s.rank, s.dims, a, sizeof a),
                          mpq_h5_shape_str(rank, dims, b, sizeof b));
        else
            rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: %s '%s' has rank %d, expected %d", where,
                          kind_name(kind), name, s.rank, rank);
        goto out;
    }
    if (mpq_size_mul(&need, (size_t)s.n, H5Tget_size(mem_type)) < 0 || need > bytes) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "%s: %s '%s' has shape %s: %llu elements, more than the %zu bytes expected",
                      where, kind_name(kind), name, mpq_h5_shape_str(s.rank, s.dims, a, sizeof a),
                      (unsigned long long)s.n, bytes);
        goto out;
    }
    if (s.n > 0 &&
        (kind == MPQ_H5_ATTRIBUTE ? H5Aread(obj, mem_type, buf)
                                  : H5Dread(obj, mem_type, H5S_ALL, H5S_ALL, dxpl, buf)) < 0)
        rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot read %s '%s' (truncated or corrupt?)", where,
                      kind_name(kind), name);
out:
    close_object(kind, obj, type, space);
    return rc;
}

/* Checks that name is one fixed-length string of at most max_len bytes and reads it into *buf,
 * which has room for max_len + 1 bytes, or is NULL: then it is malloc'ed (len + 1 bytes). */
static int read_string(hid_t loc, const char *name, mpq_h5_kind kind, const char *where, hid_t dxpl,
                       size_t max_len, char **buf)
{
    hid_t obj, type, space, mt = H5I_INVALID_HID;
    mpq_h5_shape s;
    size_t len;
    int rc = open_object(loc, name, kind, where, &obj, &type, &space);
    if (rc == MPQ_OK) rc = describe(type, space, name, where, &s);
    if (rc < 0) goto out;
    if (s.cls != H5T_STRING || s.var_string || s.n != 1) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: %s '%s' must be one fixed-length string", where,
                      kind_name(kind), name);
        goto out;
    }
    len = s.type_size;
    if (len > max_len) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: %s '%s' is too long (%zu bytes; at most %zu)", where,
                      kind_name(kind), name, len, max_len);
        goto out;
    }
    if (!*buf && !(*buf = malloc(len + 1))) {
        rc = MPQ_FAIL(MPQ_E_NOMEM, "%s: out of memory reading '%s'", where, name);
        goto out;
    }
    mt = H5Tcopy(type);
    if (mt < 0 || H5Tset_size(mt, len + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
        (kind == MPQ_H5_ATTRIBUTE ? H5Aread(obj, mt, *buf)
                                  : H5Dread(obj, mt, H5S_ALL, H5S_ALL, dxpl, *buf)) < 0)
        rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot read %s '%s' (truncated or corrupt?)", where,
                      kind_name(kind), name);
    else
        (*buf)[len] = '\0';
out:
    if (mt >= 0) H5Tclose(mt);
    close_object(kind, obj, type, space);
    return rc;
}

int mpq_h5_read_string(hid_t loc, const char *name, mpq_h5_kind kind, const char *where, hid_t dxpl,
                       char *buf, size_t bytes)
{
    buf[0] = '\0';
    return read_string(loc, name, kind, where, dxpl, bytes - 1, &buf);
}

int mpq_h5_read_string_alloc(hid_t loc, const char *name, mpq_h5_kind kind, const char *where,
                             hid_t dxpl, size_t max_bytes, char **out)
{
    *out = NULL;
    int rc = read_string(loc, name, kind, where, dxpl, max_bytes - 1, out);
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- attribute readers ------------------------------------------------------------------------
 */

static int attr_read(hid_t obj, const char *name, const char *where, hid_t mem_type, int n, void *v,
                     size_t bytes)
{
    hsize_t dims[1] = {(hsize_t)n};
    return mpq_h5_read_checked(obj, name, MPQ_H5_ATTRIBUTE, where, H5P_DEFAULT, mem_type,
                               n > 0 ? 1 : 0, dims, v, bytes);
}

int mpq_h5_attr_read_int(hid_t obj, const char *name, const char *where, int *v)
{
    return attr_read(obj, name, where, H5T_NATIVE_INT, 0, v, sizeof *v);
}

int mpq_h5_attr_read_floats(hid_t obj, const char *name, const char *where, float *v, int n)
{
    return attr_read(obj, name, where, H5T_NATIVE_FLOAT, n, v, sizeof *v * (size_t)n);
}

int mpq_h5_attr_read_long(hid_t obj, const char *name, const char *where, long *v)
{
    long long w = 0;
    int rc = attr_read(obj, name, where, H5T_NATIVE_LLONG, 0, &w, sizeof w);
    *v = (long)w;
    return rc;
}

int mpq_h5_attr_read_double(hid_t obj, const char *name, const char *where, double *v)
{
    return attr_read(obj, name, where, H5T_NATIVE_DOUBLE, 0, v, sizeof *v);
}

int mpq_h5_attr_read_string(hid_t obj, const char *name, const char *where, char *out, size_t bytes)
{
    return mpq_h5_read_string(obj, name, MPQ_H5_ATTRIBUTE, where, H5P_DEFAULT, out, bytes);
}

/* ---- walking a file's groups ------------------------------------------------------------------
 */

typedef struct walk {
    const char *where;
    mpq_h5_walk_fn fn;
    void *ctx;
    haddr_t *seen; /* addresses of the groups entered */
    size_t n_seen, cap_seen;
    long links;
    int depth;
    size_t len; /* of path: the current group's path, "" at the start */
    char path[MPQ_H5_WALK_PATH];
    int rc; /* < 0: an error; > 0: fn stopped the walk */
} walk;

static herr_t walk_link(hid_t g, const char *name, const H5L_info_t *info, void *arg);

/* Walks the links of group g (at w->path); sets w->rc when the walk must end. */
static void walk_group(hid_t g, walk *w)
{
    hsize_t idx = 0;
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, walk_link, w) < 0 && w->rc == 0)
        w->rc =
            MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot read the group '/%s' (damaged?)", w->where, w->path);
}

/* Records group address a as entered: 1, or 0 if it was already; < 0 out of memory. */
static int enter(walk *w, haddr_t a)
{
    for (size_t i = 0; i < w->n_seen; i++)
        if (w->seen[i] == a) return 0;
    if (mpq_grow((void **)&w->seen, &w->cap_seen, w->n_seen + 1, sizeof *w->seen) < 0)
        return MPQ_FAIL(MPQ_E_NOMEM, "%s: out of memory walking its groups", w->where);
    w->seen[w->n_seen++] = a;
    return 1;
}

/* Enters group `name` of g (its address a) unless it was entered before. */
static void walk_subgroup(hid_t g, const char *name, haddr_t a, walk *w)
{
    const int fresh = enter(w, a);
    if (fresh <= 0) {
        w->rc = fresh;
        return;
    }
    if (w->depth >= MPQ_H5_WALK_DEPTH) {
        w->rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: groups nested deeper than %d at '/%s'", w->where,
                         MPQ_H5_WALK_DEPTH, w->path);
        return;
    }
    hid_t sub = H5Gopen2(g, name, H5P_DEFAULT);
    if (sub < 0) {
        w->rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot open the group '/%s'", w->where, w->path);
        return;
    }
    w->depth++;
    walk_group(sub, w);
    w->depth--;
    H5Gclose(sub);
}

static herr_t walk_link(hid_t g, const char *name, const H5L_info_t *info, void *arg)
{
    walk *w = arg;
    if (++w->links > MPQ_H5_WALK_LINKS) {
        w->rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: more than %d links in its groups", w->where,
                         MPQ_H5_WALK_LINKS);
        return -1;
    }
    H5O_info_t oi;
    if (info->type != H5L_TYPE_HARD ||
        H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
        (oi.type != H5O_TYPE_GROUP && oi.type != H5O_TYPE_DATASET))
        return 0;
    const size_t n = strlen(name), len = w->len;
    if (len + (len > 0) + n >= sizeof w->path) {
        w->rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: a path longer than %d bytes below '/%s'", w->where,
                         MPQ_H5_WALK_PATH - 1, w->path);
        return -1;
    }
    if (len) w->path[w->len++] = '/';
    memcpy(w->path + w->len, name, n + 1);
    w->len += n;
    if (oi.type == H5O_TYPE_DATASET)
        w->rc = w->fn(g, name, w->path, w->ctx);
    else
        walk_subgroup(g, name, oi.addr, w);
    w->len = len;
    w->path[len] = '\0';
    return w->rc ? -1 : 0;
}

int mpq_h5_walk_datasets(hid_t g, const char *where, mpq_h5_walk_fn fn, void *ctx)
{
    walk w = {.where = where, .fn = fn, .ctx = ctx};
    H5O_info_t oi;
    if (H5Oget_info2(g, &oi, H5O_INFO_BASIC) < 0)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot read a group's header", where);
    int rc = enter(&w, oi.addr);
    if (rc >= 0) {
        walk_group(g, &w);
        rc = w.rc < 0 ? w.rc : MPQ_OK;
    }
    free(w.seen);
    return rc;
}

/* ---- probing a file from outside in a child process ------------------------------------------ */

enum {
    PROBE_ATTR_BYTES = 1 << 20,  /* attributes read whole up to this size, */
    PROBE_READ_BYTES = 16 << 20, /* datasets too */
};

/* Reads attribute or dataset obj whole in its native type when it holds at most max bytes of
 * fixed-size elements (a dataset's chunk index and filters are parsed only then); 0, or -1 on an
 * HDF5 error. */
static int probe_read(hid_t obj, mpq_h5_kind kind, size_t max)
{
    const int attr = kind == MPQ_H5_ATTRIBUTE;
    hid_t t = attr ? H5Aget_type(obj) : H5Dget_type(obj);
    hid_t sp = attr ? H5Aget_space(obj) : H5Dget_space(obj);
    hid_t mt = t < 0 ? H5I_INVALID_HID : H5Tget_native_type(t, H5T_DIR_ASCEND);
    const hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    const size_t size = mt < 0 ? 0 : H5Tget_size(mt);
    int rc = mt < 0 || n < 0 || size == 0 ? -1 : 0;
    if (rc == 0 && n > 0 && (size_t)n <= max / size && H5Tis_variable_str(t) == 0 &&
        H5Tget_class(t) != H5T_VLEN) {
        void *buf = malloc((size_t)n * size);
        if (buf && (attr ? H5Aread(obj, mt, buf)
                         : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)) < 0)
            rc = -1;
        free(buf);
    }
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return rc;
}

/* Opens and reads (probe_read) attribute name of loc. */
static herr_t probe_attr(hid_t loc, const char *name, const H5A_info_t *info, void *arg)
{
    (void)info, (void)arg;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    const herr_t r = a < 0 || probe_read(a, MPQ_H5_ATTRIBUTE, PROBE_ATTR_BYTES) < 0 ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    return r;
}

static int probe_attrs(hid_t obj)
{
    hsize_t idx = 0;
    return H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, probe_attr, NULL) < 0 ? -1 : 0;
}

/* A dataset of the walk: opened, its storage checked, its attributes probed, read when small. */
static int probe_dataset(hid_t g, const char *name, const char *path, void *ctx)
{
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    int rc = d < 0 || mpq_h5_storage_ok(d, path, (const char *)ctx) < 0 || probe_attrs(d) < 0 ||
             probe_read(d, MPQ_H5_DATASET, PROBE_READ_BYTES) < 0;
    if (d >= 0) H5Dclose(d);
    return rc ? MPQ_E_FORMAT : 0;
}

/* The child's work: 0 when every object opened, 1 on an HDF5 error (the parent's own open then
 * reports it in its words). */
static int probe_child(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int bad = f < 0 || probe_attrs(f) < 0 ||
              mpq_h5_walk_datasets(f, path, probe_dataset, (void *)path) < 0;
    if (f >= 0) H5Fclose(f);
    return bad;
}

int mpq_h5_probe_file(const char *path)
{
    mpq_h5_lock(); /* no other thread is inside HDF5 while the child is forked */
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) { /* a crash kills the child plainly, past any handler of the parent's */
        static const int fatal[] = {SIGSEGV, SIGFPE, SIGBUS, SIGILL, SIGABRT, SIGPIPE};
        for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++)
            signal(fatal[i], SIG_DFL);
        _exit(probe_child(path));
    }
    mpq_h5_unlock();
    if (pid < 0) return MPQ_OK; /* no child: the file is opened unprobed */
    int status = 0;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w == pid && WIFSIGNALED(status))
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "'%s': the HDF5 library crashed (signal %d, %s) reading its metadata: the "
                        "file is damaged or crafted ---> HINT: recreate it (mpq prep) or use an "
                        "earlier copy",
                        path, WTERMSIG(status), strsignal(WTERMSIG(status)));
    return MPQ_OK;
}

/* Shards: writing (atomic, temporary name then rename) and the read side of a split (validation
 * at open, labels in memory, a bounded LRU cache of open shard files for image reads).
 * The split owns its shard paths, labels and open HDF5 handles; mpq_split_close releases all.
 * Every HDF5 call holds mpq_h5_lock; one split is used by one thread at a time. */
#include "io/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checked_size.h"
#include "core/dir.h"
#include "core/err.h"
#include "core/grow.h"
#include "core/hash.h"
#include "io/h5.h"

enum { MAX_OPEN_SHARDS = 32 };

typedef struct shard {
    char *path;
    long first, n;             /* global index of the first sample, number of samples */
    struct stat st;            /* the file as it was validated (device, inode, size, mtime) */
    hid_t file, images, space; /* open handles, or H5I_INVALID_HID */
    unsigned long last_use;
} shard;

struct mpq_split {
    mpq_data_info info;
    int n_shards;
    shard *shards;
    int32_t *labels;
    int n_open;
    unsigned long clock;
    hid_t mem_space; /* one image, [1,H,W,C] */
};

static char *path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/%s", dir, name);
    return p;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int keep_shard(const char *dir, const char *name, void *ctx)
{
    (void)dir;
    (void)ctx;
    return ends_with(name, ".h5");
}

/* The sorted *.h5 paths of dir. */
static int list_shards(const char *dir, char ***out, int *n_out)
{
    struct stat st;
    char **names = NULL, *marker;
    int n = 0, rc = MPQ_OK;
    if (stat(dir, &st) != 0)
        return MPQ_FAIL(MPQ_E_IO,
                        "split directory '%s': %s ---> HINT: convert the data with "
                        "`mpq prep` first",
                        dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return MPQ_FAIL(MPQ_E_IO, "split '%s' is not a directory of shards", dir);
    marker = path_join(dir, MPQ_SPLIT_INCOMPLETE);
    if (!marker) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    if (access(marker, F_OK) == 0) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "split '%s' is an interrupted conversion (found %s) "
                      "---> HINT: rerun `mpq prep`",
                      dir, marker);
        free(marker);
        return rc;
    }
    free(marker);
    mpq_dir_list l;
    MPQ_TRY(mpq_dir_list_read(dir, keep_shard, NULL, 0, &l));
    if (l.n == 0)
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "split directory '%s' holds no shards (*.h5) ---> HINT: "
                      "convert the data with `mpq prep`",
                      dir);
    if (rc == 0 && !(names = calloc((size_t)l.n, sizeof *names)))
        rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    for (; rc == 0 && n < l.n; n++)
        if (!(names[n] = path_join(dir, l.names[n]))) rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    mpq_dir_list_free(&l);
    if (rc < 0) {
        free_names(names, n);
        return rc;
    }
    *out = names;
    *n_out = n;
    return MPQ_OK;
}

/* Checks that dataset name of f holds integers of size bytes and sign, with rank `rank`;
 * writes its extents to dims. */
static int check_dataset(hid_t f, const char *path, const char *name, size_t size, H5T_sign_t sign,
                         int rank, hsize_t *dims)
{
    mpq_h5_shape sh;
    MPQ_TRY(mpq_h5_shape_of(f, name, MPQ_H5_DATASET, path, &sh));
    if (sh.cls != H5T_INTEGER || sh.type_size != size || sh.sign != sign)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: dataset %s must hold %s%zu-bit integers", path, name,
                        sign == H5T_SGN_NONE ? "unsigned " : "signed ", 8 * size);
    if (sh.rank != rank)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: dataset %s must have rank %d, found %d", path, name,
                        rank, sh.rank);
    memcpy(dims, sh.dims, sizeof *dims * (size_t)rank);
    return MPQ_OK;
}

/* The normalization statistics of a shard: finite means, finite non-negative standard
 * deviations. A zero std is a constant channel, which `mpq prep` writes for such data and the
 * reader normalizes with 1 (io/augment.c); a NaN, infinite or negative one is damage. */
static int check_stats(const char *path, const float *mean, const float *std, int c)
{
    for (int ch = 0; ch < c; ch++) {
        if (!isfinite(mean[ch]))
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "%s: attribute mean[%d] is %g, not a finite number ---> HINT: "
                            "rerun `mpq prep`",
                            path, ch, (double)mean[ch]);
        if (!isfinite(std[ch]) || !(std[ch] >= 0.0f))
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "%s: attribute std[%d] is %g; a standard deviation must be finite "
                            "and not negative ---> HINT: rerun `mpq prep`",
                            path, ch, (double)std[ch]);
    }
    return MPQ_OK;
}

/* Validates one shard (lock held). The first shard (info->n_samples == 0 on entry) sets the
 * split's geometry, the others must agree. Appends its labels at labels + sh->first. */
static int probe_shard(shard *sh, mpq_data_info *info, int32_t **labels, size_t *cap)
{
    const char *path = sh->path;
    int rc = MPQ_OK, nc = 0, ah = 0, aw = 0, ac = 0;
    hid_t f = H5I_INVALID_HID;
    hsize_t dims[4] = {0}, ldims[1] = {0};
    size_t image_bytes = 0, label_bytes = 0, total = 0;
    struct stat st;
    float mean[4], std[4];
    if (access(path, R_OK) != 0 || stat(path, &sh->st) != 0) {
        rc = MPQ_FAIL(MPQ_E_IO, "cannot read shard '%s': %s", path, strerror(errno));
        goto out;
    }
    if ((rc = mpq_h5_probe_file(path)) < 0) goto out;
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "cannot open shard '%s': not an HDF5 file, or truncated or "
                      "corrupt ---> HINT: rerun `mpq prep`",
                      path);
        goto out;
    }
    if ((rc = check_dataset(f, path, "/images", 1, H5T_SGN_NONE, 4, dims)) < 0) goto out;
    if ((rc = check_dataset(f, path, "/labels", 4, H5T_SGN_2, 1, ldims)) < 0) goto out;
    if (dims[0] < 1 || dims[1] < 1 || dims[2] < 1 || dims[3] < 1 || dims[3] > 4 ||
        mpq_size_product(&image_bytes, dims + 1, 3, MPQ_SHARD_MAX_IMAGE_BYTES) < 0 ||
        dims[0] > MPQ_SPLIT_MAX_SAMPLES ||
        mpq_size_add(&total, (size_t)info->n_samples, (size_t)dims[0]) < 0 ||
        total > MPQ_SPLIT_MAX_SAMPLES) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "%s: /images has shape [%llu,%llu,%llu,%llu]; want [n>=1,H,W,C<=4] with "
                      "H*W*C <= %llu bytes and at most %llu samples in the split",
                      path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                      (unsigned long long)dims[2], (unsigned long long)dims[3],
                      (unsigned long long)MPQ_SHARD_MAX_IMAGE_BYTES,
                      (unsigned long long)MPQ_SPLIT_MAX_SAMPLES);
        goto out;
    }
    /* every sample takes at least a byte of the file (unless its chunks were never written): a
     * header that claims more samples than the file has bytes would only make us allocate for
     * labels that are not there */
    if (stat(path, &st) == 0 && dims[0] > (hsize_t)st.st_size) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "%s: /images claims %llu samples but the file has only %lld bytes "
                      "(truncated or crafted)",
                      path, (unsigned long long)dims[0], (long long)st.st_size);
        goto out;
    }
    if (ldims[0] != dims[0]) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: /labels has %llu entries but /images %llu", path,
                      (unsigned long long)ldims[0], (unsigned long long)dims[0]);
        goto out;
    }
    if ((rc = mpq_h5_attr_read_int(f, "num_classes", path, &nc)) < 0 ||
        (rc = mpq_h5_attr_read_int(f, "height", path, &ah)) < 0 ||
        (rc = mpq_h5_attr_read_int(f, "width", path, &aw)) < 0 ||
        (rc = mpq_h5_attr_read_int(f, "channels", path, &ac)) < 0)
        goto out;
    if (nc < 1 || (hsize_t)ah != dims[1] || (hsize_t)aw != dims[2] || (hsize_t)ac != dims[3]) {
        rc =
            MPQ_FAIL(MPQ_E_FORMAT,
                     "%s: attributes num_classes %d, height %d, width %d, channels "
                     "%d do not match /images [%llu,%llu,%llu,%llu]",
                     path, nc, ah, aw, ac, (unsigned long long)dims[0], (unsigned long long)dims[1],
                     (unsigned long long)dims[2], (unsigned long long)dims[3]);
        goto out;
    }
    if ((rc = mpq_h5_attr_read_floats(f, "mean", path, mean, ac)) < 0 ||
        (rc = mpq_h5_attr_read_floats(f, "std", path, std, ac)) < 0 ||
        (rc = check_stats(path, mean, std, ac)) < 0)
        goto out;
    if (info->n_samples == 0) {
        info->h = ah;
        info->w = aw;
        info->c = ac;
        info->num_classes = nc;
        for (int ch = 0; ch < ac; ch++) {
            info->mean[ch] = mean[ch];
            info->std[ch] = std[ch];
        }
    } else if (info->h != ah || info->w != aw || info->c != ac || info->num_classes != nc) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "%s: images %dx%dx%d with %d classes, but earlier shards of "
                      "the split hold %dx%dx%d with %d classes",
                      path, ah, aw, ac, nc, info->h, info->w, info->c, info->num_classes);
        goto out;
    }
    sh->first = info->n_samples;
    sh->n = (long)dims[0];
    /* both bounded by MPQ_SPLIT_MAX_SAMPLES: no overflow */
    if ((rc = mpq_grow((void **)labels, cap, (size_t)(sh->first + sh->n), sizeof **labels)) < 0) {
        rc = mpq_err_push(rc, "the labels of '%s'", path);
        goto out;
    }
    label_bytes = sizeof **labels * (size_t)sh->n;
    if ((rc = mpq_h5_read_checked(f, "/labels", MPQ_H5_DATASET, path, H5P_DEFAULT, H5T_NATIVE_INT32,
                                  1, ldims, *labels + sh->first, label_bytes)) < 0)
        goto out;
    for (long i = 0; i < sh->n; i++) {
        int32_t y = (*labels)[sh->first + i];
        if (y < 0 || y >= nc) {
            rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: label %d of sample %ld is outside [0, %d)", path,
                          (int)y, i, nc);
            goto out;
        }
    }
    info->n_samples += sh->n;
out:
    if (f >= 0) H5Fclose(f);
    return rc;
}

static void shard_close_handles(shard *sh)
{
    if (sh->space >= 0) H5Sclose(sh->space);
    if (sh->images >= 0) H5Dclose(sh->images);
    if (sh->file >= 0) H5Fclose(sh->file);
    sh->space = sh->images = sh->file = H5I_INVALID_HID;
}

void mpq_split_close(mpq_split *s)
{
    if (!s) return;
    mpq_h5_lock();
    for (int i = 0; i < s->n_shards; i++) {
        shard_close_handles(&s->shards[i]);
        free(s->shards[i].path);
    }
    if (s->mem_space >= 0) H5Sclose(s->mem_space);
    mpq_h5_unlock();
    free(s->shards);
    free(s->labels);
    free(s);
}

/* The split's layout as one hash (see shard.h): what ranks compare before training. */
static uint64_t fingerprint(const mpq_split *s)
{
    const mpq_data_info *in = &s->info;
    uint64_t h = MPQ_HASH_INIT;
    for (int i = 0; i < s->n_shards; i++) {
        const char *slash = strrchr(s->shards[i].path, '/');
        const char *name = slash ? slash + 1 : s->shards[i].path;
        h = mpq_hash_bytes(h, name, strlen(name) + 1);
        h = mpq_hash_u64(h, (uint64_t)s->shards[i].n);
    }
    h = mpq_hash_u64(h, (uint64_t)in->n_samples);
    const int geometry[4] = {in->h, in->w, in->c, in->num_classes};
    for (int k = 0; k < 4; k++)
        h = mpq_hash_u64(h, (uint64_t)geometry[k]);
    h = mpq_hash_bytes(h, in->mean, sizeof(float) * (size_t)in->c);
    h = mpq_hash_bytes(h, in->std, sizeof(float) * (size_t)in->c);
    return mpq_hash_bytes(h, s->labels, sizeof *s->labels * (size_t)in->n_samples);
}

int mpq_split_check_labels(const mpq_split *s, int num_classes)
{
    for (int i = 0; i < s->n_shards; i++) {
        const shard *sh = &s->shards[i];
        for (long k = 0; k < sh->n; k++) {
            int32_t y = s->labels[sh->first + k];
            if (y >= num_classes)
                return MPQ_FAIL(MPQ_E_CONFIG,
                                "num_classes = %d, but shard '%s' holds label %d (sample %ld; "
                                "the data has %d classes) ---> HINT: set num_classes = 0 to "
                                "take it from the data, or at least %d",
                                num_classes, sh->path, (int)y, k, s->info.num_classes,
                                s->info.num_classes);
        }
    }
    return MPQ_OK;
}

int mpq_split_open(const char *dir, mpq_split **out)
{
    char **names = NULL;
    int n = 0, rc;
    size_t cap = 0;
    mpq_split *s;
    *out = NULL;
    MPQ_TRY(list_shards(dir, &names, &n));
    s = calloc(1, sizeof *s);
    if (!s || !(s->shards = calloc((size_t)n, sizeof *s->shards))) {
        free(s);
        free_names(names, n);
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    }
    s->mem_space = H5I_INVALID_HID;
    for (int i = 0; i < n; i++) {
        s->shards[i].path = names[i];
        s->shards[i].file = s->shards[i].images = s->shards[i].space = H5I_INVALID_HID;
    }
    s->n_shards = n;
    free(names);
    rc = MPQ_OK;
    mpq_h5_lock();
    for (int i = 0; i < n && rc == MPQ_OK; i++)
        rc = probe_shard(&s->shards[i], &s->info, &s->labels, &cap);
    if (rc == MPQ_OK) s->info.fingerprint = fingerprint(s);
    if (rc == MPQ_OK) {
        hsize_t m[4] = {1, (hsize_t)s->info.h, (hsize_t)s->info.w, (hsize_t)s->info.c};
        s->mem_space = H5Screate_simple(4, m, NULL);
        if (s->mem_space < 0) rc = MPQ_FAIL(MPQ_E_IO, "HDF5: cannot create a dataspace");
    }
    mpq_h5_unlock();
    if (rc < 0) {
        mpq_split_close(s);
        return rc;
    }
    *out = s;
    return MPQ_OK;
}

const mpq_data_info *mpq_split_info(const mpq_split *s) { return &s->info; }

const int32_t *mpq_split_labels(const mpq_split *s) { return s->labels; }

/* Opens the image dataset of sh, closing the least recently used shard if too many are open
 * (lock held). The chunk cache is off: every chunk (image) is read once per epoch. */
static int shard_ensure_open(mpq_split *s, shard *sh)
{
    hid_t dapl;
    if (sh->file >= 0) return MPQ_OK;
    if (s->n_open >= MAX_OPEN_SHARDS) {
        shard *lru = NULL;
        for (int i = 0; i < s->n_shards; i++)
            if (s->shards[i].file >= 0 && (!lru || s->shards[i].last_use < lru->last_use))
                lru = &s->shards[i];
        shard_close_handles(lru);
        s->n_open--;
    }
    sh->file = H5Fopen(sh->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (sh->file < 0) return MPQ_FAIL(MPQ_E_IO, "cannot open shard '%s'", sh->path);
    /* the file may have been replaced since the split was opened: same shape, or an error */
    hsize_t want[4] = {(hsize_t)sh->n, (hsize_t)s->info.h, (hsize_t)s->info.w, (hsize_t)s->info.c};
    mpq_h5_shape shape;
    int rc = mpq_h5_shape_of(sh->file, "/images", MPQ_H5_DATASET, sh->path, &shape);
    if (rc == MPQ_OK && (shape.rank != 4 || memcmp(shape.dims, want, sizeof want)))
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: /images changed shape since the split was opened",
                      sh->path);
    if (rc < 0) {
        shard_close_handles(sh);
        return rc;
    }
    dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, H5D_CHUNK_CACHE_W0_DEFAULT);
    sh->images = H5Dopen2(sh->file, "/images", dapl);
    H5Pclose(dapl);
    sh->space = sh->images < 0 ? H5I_INVALID_HID : H5Dget_space(sh->images);
    if (sh->space < 0) {
        shard_close_handles(sh);
        return MPQ_FAIL(MPQ_E_IO, "%s: cannot open /images", sh->path);
    }
    s->n_open++;
    return MPQ_OK;
}

/* A shard removed, replaced or truncated while training would otherwise be read through the open
 * handle (a removed file) or as zeros past its new end (a truncated one): one stat per image. */
static int check_unchanged(const shard *sh)
{
    struct stat now;
    if (stat(sh->path, &now) != 0)
        return MPQ_FAIL(MPQ_E_IO,
                        "shard '%s' disappeared while training: %s ---> HINT: restore it "
                        "and resume with --resume auto",
                        sh->path, strerror(errno));
    if (now.st_dev != sh->st.st_dev || now.st_ino != sh->st.st_ino ||
        now.st_size != sh->st.st_size || now.st_mtime != sh->st.st_mtime)
        return MPQ_FAIL(MPQ_E_IO,
                        "shard '%s' changed while training (size %lld -> %lld bytes) "
                        "---> HINT: do not rewrite a split a run reads; restore it and resume "
                        "with --resume auto",
                        sh->path, (long long)sh->st.st_size, (long long)now.st_size);
    return MPQ_OK;
}

int mpq_split_read(mpq_split *s, long i, uint8_t *pixels, int *label)
{
    int lo = 0, hi = s->n_shards - 1, rc;
    shard *sh;
    hsize_t start[4] = {0}, count[4];
    if (i < 0 || i >= s->info.n_samples)
        return MPQ_FAIL(MPQ_E_ARG, "sample %ld outside the split's %ld", i, s->info.n_samples);
    while (lo < hi) { /* the last shard whose first sample is <= i */
        int mid = (lo + hi + 1) / 2;
        if (s->shards[mid].first <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    sh = &s->shards[lo];
    MPQ_TRY(check_unchanged(sh));
    start[0] = (hsize_t)(i - sh->first);
    count[0] = 1;
    count[1] = (hsize_t)s->info.h;
    count[2] = (hsize_t)s->info.w;
    count[3] = (hsize_t)s->info.c;
    mpq_h5_lock();
    rc = shard_ensure_open(s, sh);
    if (rc == MPQ_OK) {
        sh->last_use = ++s->clock;
        /* a hyperslab of one image into s->mem_space ([1,H,W,C], the caller's pixels): HDF5
         * refuses selections of different sizes, and /images was checked at open and reopen */
        if (H5Sselect_hyperslab(sh->space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(sh->images, H5T_NATIVE_UINT8, s->mem_space, sh->space, H5P_DEFAULT, pixels) < 0)
            rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot read image %llu (truncated or corrupt?)", sh->path,
                          (unsigned long long)start[0]);
    }
    mpq_h5_unlock();
    if (rc == MPQ_OK && label) *label = s->labels[i];
    return rc;
}

/* ---- writing ---------------------------------------------------------------------------- */

static char *tmp_path(const char *path)
{
    size_t len = strlen(path) + 5;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s.tmp", path);
    return p;
}

static int write_dataset(hid_t f, const char *path, const char *name, hid_t file_type,
                         hid_t mem_type, int rank, const hsize_t *dims, const hsize_t *chunk,
                         const void *data)
{
    int rc = MPQ_OK;
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), d;
    if (chunk) H5Pset_chunk(dcpl, rank, chunk);
    d = sp < 0 ? H5I_INVALID_HID
               : H5Dcreate2(f, name, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = MPQ_FAIL(MPQ_E_IO, "%s: cannot write dataset %s (disk full?)", path, name);
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int mpq_shard_write_data(const char *path, long n, int h, int w, int c, const uint8_t *images,
                         const int32_t *labels, int num_classes)
{
    char *tmp = tmp_path(path);
    int rc = MPQ_OK;
    hid_t f;
    hsize_t dims[4] = {(hsize_t)n, (hsize_t)h, (hsize_t)w, (hsize_t)c};
    hsize_t chunk[4] = {1, (hsize_t)h, (hsize_t)w, (hsize_t)c};
    if (!tmp) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    if (n < 1 || h < 1 || w < 1 || c < 1 || c > 4 || num_classes < 1) {
        free(tmp);
        return MPQ_FAIL(MPQ_E_ARG, "%s: cannot write a shard of %ld images %dx%dx%d, %d classes",
                        path, n, h, w, c, num_classes);
    }
    mpq_h5_lock();
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        rc = MPQ_FAIL(MPQ_E_IO, "cannot create '%s' (directory missing or not writable?)", tmp);
    } else {
        if ((rc = write_dataset(f, tmp, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, dims, chunk,
                                images)) == MPQ_OK &&
            (rc = write_dataset(f, tmp, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dims, NULL,
                                labels)) == MPQ_OK &&
            (rc = mpq_h5_attr_write_int(f, "num_classes", num_classes)) == MPQ_OK &&
            (rc = mpq_h5_attr_write_int(f, "height", h)) == MPQ_OK &&
            (rc = mpq_h5_attr_write_int(f, "width", w)) == MPQ_OK)
            rc = mpq_h5_attr_write_int(f, "channels", c);
        if (H5Fclose(f) < 0 && rc == MPQ_OK)
            rc = MPQ_FAIL(MPQ_E_IO, "cannot close '%s' (disk full?)", tmp);
    }
    mpq_h5_unlock();
    if (rc < 0) remove(tmp);
    free(tmp);
    return rc;
}

int mpq_shard_commit(const char *path, int c, const float *mean, const float *std)
{
    char *tmp = tmp_path(path);
    int rc = MPQ_OK, fd;
    hid_t f;
    if (!tmp) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    mpq_h5_lock();
    f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) {
        rc = MPQ_FAIL(MPQ_E_IO, "cannot reopen '%s' to finish it", tmp);
    } else {
        if ((rc = mpq_h5_attr_write_floats(f, "mean", mean, c)) == MPQ_OK)
            rc = mpq_h5_attr_write_floats(f, "std", std, c);
        if (H5Fclose(f) < 0 && rc == MPQ_OK)
            rc = MPQ_FAIL(MPQ_E_IO, "cannot close '%s' (disk full?)", tmp);
    }
    mpq_h5_unlock();
    if (rc == MPQ_OK && (fd = open(tmp, O_RDONLY)) >= 0) { /* data on disk before the rename */
        if (fsync(fd) != 0) rc = MPQ_FAIL(MPQ_E_IO, "fsync '%s': %s", tmp, strerror(errno));
        close(fd);
    }
    if (rc == MPQ_OK && rename(tmp, path) != 0)
        rc = MPQ_FAIL(MPQ_E_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (rc < 0) remove(tmp);
    free(tmp);
    return rc;
}

int mpq_shard_write(const char *path, long n, int h, int w, int c, const uint8_t *images,
                    const int32_t *labels, int num_classes, const float *mean, const float *std)
{
    MPQ_TRY(mpq_shard_write_data(path, n, h, w, c, images, labels, num_classes));
    return mpq_shard_commit(path, c, mean, std);
}

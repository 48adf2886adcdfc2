/* `mpq prep imagefolder`: class folders of JPEG files -> one split of size x size RGB images.
 * The plan (class names, file paths, labels) is built identically on every rank; each rank decodes
 * its shards (r, r + R, ...) with its OpenMP threads (one turbojpeg handle per thread), writes them
 * under temporary names, and renames them only after the ranks have summed the exact pixel
 * statistics and the mean/std are written into every shard. The plan and per-shard buffers are
 * owned here and freed before returning. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/dir.h"
#include "core/err.h"
#include "core/grow.h"
#include "core/log.h"
#include "core/path.h"
#include "io/image.h"
#include "io/jpeg.h"
#include "io/prep.h"
#include "io/prep_util.h"
#include "io/shard.h"
#include "mpi/comm.h"

enum { DEFAULT_SHARD_IMAGES = 1000, MAX_SIZE = 4096 };

typedef struct plan {
    int n_classes;
    char **classes;
    long n;
    char **files; /* full paths, (class, name) order */
    int32_t *labels;
    size_t cap_files, cap_labels; /* the room of each (core/grow.h) */
} plan;

static void plan_free(plan *p)
{
    for (int i = 0; i < p->n_classes; i++)
        free(p->classes[i]);
    for (long i = 0; i < p->n; i++)
        free(p->files[i]);
    free(p->classes);
    free(p->files);
    free(p->labels);
    memset(p, 0, sizeof *p);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_jpeg_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return name[0] != '.' && dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int keep_entry(const char *dir, const char *name, void *want_dirs)
{
    char path[MPQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return *(const int *)want_dirs ? is_dir(path) : is_jpeg_name(name) && !is_dir(path);
}

/* Sorted names of the entries of dir that are directories (want_dirs) or JPEG files. */
static int list_dir(const char *dir, int want_dirs, char ***out, int *n_out)
{
    mpq_dir_list l;
    int rc = mpq_dir_list_read(dir, keep_entry, &want_dirs, 0, &l);
    *out = l.names;
    *n_out = l.n;
    return rc;
}

/* Class names from the lines of file (blank lines skipped), each a folder of dir. */
static int read_classes(const char *file, const char *dir, plan *p)
{
    FILE *f = fopen(file, "r");
    char line[1024], path[MPQ_PATH_MAX];
    int lineno = 0, rc = MPQ_OK;
    size_t cap = 0;
    if (!f) return MPQ_FAIL(MPQ_E_IO, "cannot open classes file '%s': %s", file, strerror(errno));
    while (rc == MPQ_OK && fgets(line, sizeof line, f)) {
        char *s = line, *end;
        lineno++;
        while (isspace((unsigned char)*s))
            s++;
        end = s + strlen(s);
        while (end > s && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (!*s) continue;
        snprintf(path, sizeof path, "%s/%s", dir, s);
        for (int i = 0; i < p->n_classes && rc == MPQ_OK; i++)
            if (!strcmp(p->classes[i], s))
                rc = MPQ_FAIL(MPQ_E_FORMAT, "%s:%d: class '%s' listed twice", file, lineno, s);
        if (rc == MPQ_OK && !is_dir(path))
            rc = MPQ_FAIL(MPQ_E_FORMAT, "%s:%d: class '%s' has no folder '%s'", file, lineno, s,
                          path);
        if (rc < 0) break;
        if (mpq_grow((void **)&p->classes, &cap, (size_t)p->n_classes + 1, sizeof *p->classes) <
            0) {
            rc = mpq_err_push(MPQ_E_NOMEM, "%s:%d", file, lineno);
            break;
        }
        if (!(p->classes[p->n_classes] = strdup(s))) {
            rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
            break;
        }
        p->n_classes++;
    }
    fclose(f);
    if (rc == MPQ_OK && p->n_classes == 0)
        rc = MPQ_FAIL(MPQ_E_FORMAT, "classes file '%s' lists no classes", file);
    return rc;
}

static int plan_build(const mpq_prep_imagefolder_opts *o, plan *p)
{
    char path[MPQ_PATH_MAX];
    memset(p, 0, sizeof *p);
    if (!is_dir(o->dir))
        return MPQ_FAIL(MPQ_E_IO, "image folder '%s' does not exist or is not a directory", o->dir);
    if (o->classes_file)
        MPQ_TRY(read_classes(o->classes_file, o->dir, p));
    else
        MPQ_TRY(list_dir(o->dir, 1, &p->classes, &p->n_classes));
    if (p->n_classes == 0)
        return MPQ_FAIL(MPQ_E_FORMAT, "image folder '%s' has no class sub-folders", o->dir);
    for (int k = 0; k < p->n_classes; k++) {
        char **names;
        int n;
        snprintf(path, sizeof path, "%s/%s", o->dir, p->classes[k]);
        MPQ_TRY(list_dir(path, 0, &names, &n));
        const size_t need = (size_t)(p->n + n);
        if (mpq_grow((void **)&p->files, &p->cap_files, need, sizeof *p->files) < 0 ||
            mpq_grow((void **)&p->labels, &p->cap_labels, need, sizeof *p->labels) < 0) {
            for (int i = 0; i < n; i++)
                free(names[i]);
            free(names);
            return mpq_err_push(MPQ_E_NOMEM, "listing '%s'", path);
        }
        for (int i = 0; i < n; i++) {
            size_t len = strlen(path) + strlen(names[i]) + 2;
            char *full = malloc(len);
            if (full) snprintf(full, len, "%s/%s", path, names[i]);
            free(names[i]);
            if (!full) {
                for (int j = i + 1; j < n; j++)
                    free(names[j]);
                free(names);
                return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
            }
            p->files[p->n] = full;
            p->labels[p->n++] = k;
        }
        free(names);
    }
    if (p->n == 0)
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "image folder '%s': no JPEG files (*.jpg, *.jpeg) in its "
                        "%d class folders",
                        o->dir, p->n_classes);
    return MPQ_OK;
}

/* Decodes shard k's files [lo, hi) into a buffer and writes it as a temporary shard. Writes the
 * number kept (bad files skipped with skip_bad) to *kept and adds its pixels to st. */
static int convert_shard(const mpq_prep_imagefolder_opts *o, const plan *p, int k, long lo, long hi,
                         long *kept, mpq_pixel_stats *st)
{
    const size_t img = (size_t)o->size * o->size * 3;
    const long n = hi - lo;
    const long max_pixels = o->max_pixels ? o->max_pixels : MPQ_JPEG_DEFAULT_MAX_PIXELS;
    uint8_t *buf = malloc(img * (size_t)n);
    int32_t *labels = malloc(sizeof *labels * (size_t)n);
    int *rcs = malloc(sizeof *rcs * (size_t)n);
    long m = 0;
    int rc = MPQ_OK;
    char path[MPQ_PATH_MAX];
    if (!buf || !labels || !rcs) {
        rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory for a shard of %ld images", n);
        goto out;
    }
#pragma omp parallel
    {
        tjhandle tj = tjInitDecompress();
#pragma omp for schedule(dynamic, 4)
        for (long i = 0; i < n; i++)
            rcs[i] = tj ? mpq_jpeg_decode_file(tj, p->files[lo + i], o->size, max_pixels,
                                               buf + img * (size_t)i)
                        : MPQ_E_NOMEM;
        if (tj) tjDestroy(tj);
    }
    for (long i = 0; i < n && rc == MPQ_OK; i++) {
        if (rcs[i] < 0) { /* decode again on this thread for the message */
            tjhandle tj = tjInitDecompress();
            int r = tj ? mpq_jpeg_decode_file(tj, p->files[lo + i], o->size, max_pixels,
                                              buf + img * (size_t)i)
                       : MPQ_FAIL(MPQ_E_NOMEM, "turbojpeg: cannot make a decompressor");
            if (tj) tjDestroy(tj);
            if (r < 0 && !o->skip_bad) {
                rc = mpq_err_push(r, "prep imagefolder");
                break;
            }
            if (r < 0) {
                mpq_log_warn("prep imagefolder: left out: %s", mpq_errmsg());
                continue;
            }
        }
        if (m != i) memmove(buf + img * (size_t)m, buf + img * (size_t)i, img);
        labels[m++] = p->labels[lo + i];
    }
    if (rc == MPQ_OK && m > 0) {
        mpq_pixel_stats_add(st, buf, (size_t)m * o->size * o->size);
        mpq_prep_shard_path(o->out_dir, k, path, sizeof path);
        rc = mpq_shard_write_data(path, m, o->size, o->size, 3, buf, labels, p->n_classes);
    }
    *kept = m;
out:
    free(buf);
    free(labels);
    free(rcs);
    return rc;
}

static int agree(mpq_comm *c, int rc) { return c ? mpq_comm_agree(c, rc) : rc; }

int mpq_prep_imagefolder(const mpq_prep_imagefolder_opts *o, mpq_comm *c)
{
    const int rank = c ? mpq_comm_rank(c) : 0, n_ranks = c ? mpq_comm_size(c) : 1;
    plan p = {0};
    mpq_pixel_stats st;
    mpq_progress pr;
    float mean[3], std[3];
    long *kept = NULL, done = 0, total = 0, sums[8];
    int n_shards = 0, rc;
    char path[MPQ_PATH_MAX];
    if (!o->dir || !o->out_dir || o->size < 1 || o->size > MAX_SIZE || o->shards < 0)
        return agree(c, MPQ_FAIL(MPQ_E_ARG,
                                 "prep imagefolder: dir, output and a size in 1..%d "
                                 "are needed",
                                 MAX_SIZE));
    mpq_pixel_stats_init(&st, 3);
    rc = agree(c, rank == 0 ? mpq_prep_begin(o->out_dir) : MPQ_OK);
    if (rc == MPQ_OK) rc = agree(c, plan_build(o, &p));
    if (rc == MPQ_OK && o->stats_from) {
        int from_classes = 0;
        rc = mpq_prep_stats_from(o->stats_from, 3, mean, std, &from_classes);
        if (rc == MPQ_OK && from_classes != p.n_classes)
            rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s' has %d classes but --stats-from %s has %d", o->dir,
                          p.n_classes, o->stats_from, from_classes);
        rc = agree(c, rc);
    }
    if (rc == MPQ_OK) {
        n_shards =
            o->shards ? o->shards : (int)((p.n + DEFAULT_SHARD_IMAGES - 1) / DEFAULT_SHARD_IMAGES);
        if (n_shards > p.n) n_shards = (int)p.n;
        if (!(kept = calloc((size_t)n_shards, sizeof *kept)))
            rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
        for (int k = rank; k < n_shards; k += n_ranks)
            total +=
                mpq_prep_shard_start(p.n, n_shards, k + 1) - mpq_prep_shard_start(p.n, n_shards, k);
        mpq_progress_init(&pr, "prep imagefolder (rank 0)", "files", total);
        mpq_log_info("prep imagefolder: %ld files, %d classes, %d shards, %d rank(s) -> %s", p.n,
                     p.n_classes, n_shards, n_ranks, o->out_dir);
        for (int k = rank; k < n_shards && rc == MPQ_OK; k += n_ranks) {
            long lo = mpq_prep_shard_start(p.n, n_shards, k);
            long hi = mpq_prep_shard_start(p.n, n_shards, k + 1);
            rc = convert_shard(o, &p, k, lo, hi, &kept[k], &st);
            done += hi - lo;
            mpq_progress_update(&pr, done);
        }
        rc = agree(c, rc);
    }
    if (rc == MPQ_OK) { /* exact integer sums: the same statistics for any rank count */
        sums[0] = (long)st.n_pixels;
        for (int ch = 0; ch < 3; ch++) {
            sums[1 + ch] = (long)st.sum[ch];
            sums[4 + ch] = (long)st.sum_sq[ch];
        }
        sums[7] = done;
        rc = c ? mpq_comm_allreduce_sum_long(c, sums, 8) : MPQ_OK;
        st.n_pixels = (uint64_t)sums[0];
        for (int ch = 0; ch < 3; ch++) {
            st.sum[ch] = (uint64_t)sums[1 + ch];
            st.sum_sq[ch] = (uint64_t)sums[4 + ch];
        }
        if (rc == MPQ_OK && st.n_pixels == 0)
            rc = MPQ_FAIL(MPQ_E_FORMAT, "image folder '%s': no file could be decoded", o->dir);
        if (!o->stats_from) mpq_pixel_stats_finish(&st, mean, std);
        for (int k = rank; k < n_shards && rc == MPQ_OK; k += n_ranks) {
            if (kept[k] == 0) continue;
            mpq_prep_shard_path(o->out_dir, k, path, sizeof path);
            rc = mpq_shard_commit(path, 3, mean, std);
        }
        rc = agree(c, rc);
    }
    if (rc == MPQ_OK) rc = agree(c, rank == 0 ? mpq_prep_end(o->out_dir) : MPQ_OK);
    if (rc == MPQ_OK) {
        mpq_progress_done(&pr, done);
        mpq_log_info("prep imagefolder: %s: %ld images %dx%dx3 (%ld skipped), mean %.3f %.3f %.3f, "
                     "std %.3f %.3f %.3f",
                     o->out_dir, (long)(st.n_pixels / ((uint64_t)o->size * o->size)), o->size,
                     o->size, p.n - (long)(st.n_pixels / ((uint64_t)o->size * o->size)), mean[0],
                     mean[1], mean[2], std[0], std[1], std[2]);
    }
    free(kept);
    plan_free(&p);
    return rc;
}

static const char imagefolder_usage[] =
    "usage: mpq prep imagefolder --dir D -o DIR --size S [--shards K] [--classes FILE]\n"
    "                            [--stats-from TRAIN_DIR] [--skip-bad] [--max-pixels N]\n"
    "  Converts D/CLASS/*.jpg (JPEG) into the split DIR: each image's short side resized to S and\n"
    "  the centre S x S cut. Labels follow the lines of FILE, else the sorted folder names.\n"
    "  K shards (default: one per 1000 images); under mpirun the ranks share the shards.\n"
    "  --stats-from: take mean/std from the training split (for validation folders).\n"
    "  --skip-bad: warn about files that do not decode (damaged, truncated, too large) and leave\n"
    "  them out, counted in the summary (default: fail naming the file).\n"
    "  --max-pixels N: refuse JPEGs of more than N pixels (width x height) before decoding them\n"
    "  (default 67108864, 64 Mpixel).\n";

int mpq_prep_imagefolder_main(struct mpq_comm *c, int argc, char **argv)
{
    mpq_prep_imagefolder_opts o = {0};
    const mpq_opt opts[] = {
        {"dir", MPQ_OPT_STR, &o.dir, 0, 0},
        {"o", MPQ_OPT_STR, &o.out_dir, 0, 0},
        {"size", MPQ_OPT_INT, &o.size, 0, 0},
        {"shards", MPQ_OPT_INT, &o.shards, 0, 0},
        {"classes", MPQ_OPT_STR, &o.classes_file, 0, 0},
        {"stats-from", MPQ_OPT_STR, &o.stats_from, 0, 0},
        {"skip-bad", MPQ_OPT_FLAG, &o.skip_bad, 0, 0},
        {"max-pixels", MPQ_OPT_LONG, &o.max_pixels, 0, 0},
    };
    int rc =
        mpq_prep_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), imagefolder_usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (!o.dir || !o.out_dir || !o.size)
        return mpq_prep_usage_error(imagefolder_usage, "--dir, -o and --size are required");
    if (o.size > MAX_SIZE) return mpq_prep_usage_error(imagefolder_usage, "--size is too large");
    return mpq_prep_imagefolder(&o, c);
}

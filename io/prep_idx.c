/* `mpq prep idx`: an IDX image file and an IDX label file (gzip or plain, read through zlib's
 * gzread, which passes plain files through) -> one split. Everything is held in memory (MNIST
 * size); the arrays are owned here and freed before returning. Runs on one thread. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/checked_size.h"
#include "core/err.h"
#include "core/grow.h"
#include "core/log.h"
#include "io/image.h"
#include "io/prep.h"
#include "io/prep_util.h"
#include "io/shard.h"
#include "mpi/comm.h"

/* Reads exactly n bytes; MPQ_E_FORMAT naming path when the file ends early or is corrupt. */
static int gz_read_all(gzFile g, const char *path, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        unsigned k = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(g, p, k), err;
        if (got < 0) {
            const char *m = gzerror(g, &err);
            return MPQ_FAIL(MPQ_E_FORMAT, "'%s': %s (corrupt gzip?)", path, m);
        }
        if (got == 0)
            return MPQ_FAIL(MPQ_E_FORMAT, "'%s' is truncated (%zu bytes missing)", path, n);
        p += got;
        n -= (size_t)got;
    }
    return MPQ_OK;
}

/* Reads n_bytes of g into a malloc'ed buffer that grows with the data actually read (doubling
 * from 1 MiB), so a header that claims more than the file holds costs no more memory than the
 * file: it ends in "truncated". */
static int gz_read_grow(gzFile g, const char *path, size_t n_bytes, uint8_t **out)
{
    const size_t first = n_bytes < ((size_t)1 << 20) ? n_bytes : (size_t)1 << 20;
    size_t cap = 0, have = 0;
    uint8_t *buf = NULL;
    int rc = MPQ_OK;
    while (rc == MPQ_OK && have < n_bytes) {
        /* 1 MiB (or all, if less) at first, then doubled, never beyond n_bytes */
        rc = mpq_grow_to((void **)&buf, &cap, have ? have + 1 : first, n_bytes, 1);
        if (rc < 0) {
            rc = mpq_err_push(rc, "'%s'", path);
            break;
        }
        rc = gz_read_all(g, path, buf + have, cap - have);
        if (rc < 0)
            rc = mpq_err_push(rc, "'%s' holds fewer bytes than its header's %zu", path, n_bytes);
        have = cap;
    }
    if (rc < 0) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    return rc;
}

/* Reads an IDX file of unsigned bytes with 1..4 dimensions: dims[0..*nd), the data (at most
 * `limit` items along the first dimension when limit > 0) into a malloc'ed *data. Every
 * dimension is checked (1..2^30), and the item size (the product of the others) against
 * MPQ_SHARD_MAX_IMAGE_BYTES and the total with overflow checks. */
static int idx_read(const char *path, long limit, int dims[4], int *nd, uint8_t **data)
{
    uint8_t head[4], d[16];
    size_t n_bytes = 1, item = 1;
    unsigned long long ud[4];
    int rc;
    gzFile g = gzopen(path, "rb");
    *data = NULL;
    if (!g) return MPQ_FAIL(MPQ_E_IO, "cannot open '%s': %s", path, strerror(errno));
    if ((rc = gz_read_all(g, path, head, 4)) < 0) goto out;
    if (head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] < 1 || head[3] > 4) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "'%s' is not an IDX file of unsigned bytes (header %02x %02x "
                      "%02x %02x)",
                      path, head[0], head[1], head[2], head[3]);
        goto out;
    }
    *nd = head[3];
    if ((rc = gz_read_all(g, path, d, 4 * (size_t)*nd)) < 0) goto out;
    for (int i = 0; i < *nd; i++) {
        uint32_t v = (uint32_t)d[4 * i] << 24 | (uint32_t)d[4 * i + 1] << 16 |
                     (uint32_t)d[4 * i + 2] << 8 | d[4 * i + 3];
        if (v == 0 || v > (1u << 30)) {
            rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s': dimension %d is %u (want 1..2^30)", path, i, v);
            goto out;
        }
        dims[i] = (int)v;
    }
    if (limit > 0 && limit < dims[0]) dims[0] = (int)limit;
    for (int i = 0; i < *nd; i++)
        ud[i] = (unsigned long long)dims[i];
    if (mpq_size_product(&item, ud + 1, *nd - 1, MPQ_SHARD_MAX_IMAGE_BYTES) < 0 ||
        mpq_size_mul(&n_bytes, item, (size_t)dims[0]) < 0) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "'%s': dimensions %d x %d x %d x %d are too large (at most %zu bytes per "
                      "item)",
                      path, dims[0], *nd > 1 ? dims[1] : 1, *nd > 2 ? dims[2] : 1,
                      *nd > 3 ? dims[3] : 1, (size_t)MPQ_SHARD_MAX_IMAGE_BYTES);
        goto out;
    }
    rc = gz_read_grow(g, path, n_bytes, data);
out:
    gzclose_r(g);
    if (rc < 0) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

void mpq_idx_data_free(mpq_idx_data *d)
{
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

int mpq_idx_load(const char *images, const char *labels, long limit, mpq_idx_data *out)
{
    int di[4] = {0}, dl[4] = {0}, ndi = 0, ndl = 0, rc;
    memset(out, 0, sizeof *out);
    if ((rc = idx_read(images, limit, di, &ndi, &out->images)) < 0) goto out;
    if ((rc = idx_read(labels, limit, dl, &ndl, &out->labels)) < 0) goto out;
    if (ndi != 3 && ndi != 4) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "'%s': images must be IDX3 [n,H,W] or IDX4 [n,H,W,C], found "
                      "%d dimensions",
                      images, ndi);
        goto out;
    }
    if (ndl != 1 || dl[0] != di[0]) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "'%s': labels must be IDX1 with one entry per image of '%s' "
                      "(%d), found %d dimension(s), %d entries",
                      labels, images, di[0], ndl, dl[0]);
        goto out;
    }
    out->n = di[0];
    out->h = di[1];
    out->w = di[2];
    out->c = ndi == 4 ? di[3] : 1;
    if (out->c > 4) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s': %d channels; at most 4 are supported", images, out->c);
        goto out;
    }
out:
    if (rc < 0) mpq_idx_data_free(out);
    return rc;
}

int mpq_prep_idx(const mpq_prep_idx_opts *o)
{
    int rc, h, w, c, num_classes = 0;
    mpq_idx_data d = {0};
    int32_t *labels = NULL;
    uint8_t *images;
    float mean[4], std[4];
    long n;
    mpq_progress pr;
    if (!o->images || !o->labels || !o->out_dir || o->shards < 1)
        return MPQ_FAIL(MPQ_E_ARG, "prep idx: images, labels, output and shards >= 1 are needed");
    const long skip = o->skip > 0 ? o->skip : 0, read_n = o->limit > 0 ? skip + o->limit : 0;
    mpq_progress_init(&pr, "prep idx", "images", 0);
    if ((rc = mpq_idx_load(o->images, o->labels, read_n, &d)) < 0) goto out;
    if (skip >= d.n) {
        rc = MPQ_FAIL(MPQ_E_ARG, "prep idx: --skip %ld leaves none of the %ld samples of '%s'",
                      skip, d.n, o->images);
        goto out;
    }
    n = d.n - skip;
    h = d.h;
    w = d.w;
    c = d.c;
    images = d.images + (size_t)skip * h * w * c; /* the samples converted */
    if (!(labels = malloc(sizeof *labels * (size_t)n))) {
        rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
        goto out;
    }
    for (long i = 0; i < n; i++) {
        labels[i] = d.labels[skip + i];
        if (labels[i] + 1 > num_classes) num_classes = labels[i] + 1;
    }
    if (o->stats_from) {
        int from_classes;
        if ((rc = mpq_prep_stats_from(o->stats_from, c, mean, std, &from_classes)) < 0) goto out;
        if (num_classes > from_classes) {
            rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s': label %d, but --stats-from %s has %d classes",
                          o->labels, num_classes - 1, o->stats_from, from_classes);
            goto out;
        }
        num_classes = from_classes;
    } else {
        mpq_pixel_stats st;
        mpq_pixel_stats_init(&st, c);
        mpq_pixel_stats_add(&st, images, (size_t)n * h * w);
        mpq_pixel_stats_finish(&st, mean, std);
    }
    if ((rc = mpq_prep_begin(o->out_dir)) < 0) goto out;
    if ((rc = mpq_prep_write_shards(o->out_dir, o->shards, n, h, w, c, images, labels, num_classes,
                                    mean, std)) < 0)
        goto out;
    if ((rc = mpq_prep_end(o->out_dir)) < 0) goto out;
    mpq_progress_done(&pr, n);
    mpq_log_info("prep idx: %s: %ld images %dx%dx%d, %d classes, mean %.3f std %.3f%s", o->out_dir,
                 n, h, w, c, num_classes, mean[0], std[0], c > 1 ? " (channel 0)" : "");
out:
    mpq_idx_data_free(&d);
    free(labels);
    return rc;
}

static const char idx_usage[] =
    "usage: mpq prep idx --images FILE --labels FILE -o DIR [--shards K] [--skip N] [--limit N]\n"
    "                    [--stats-from TRAIN_DIR]\n"
    "  Converts one IDX pair (gzip or plain; images IDX3 [n,H,W] or IDX4 [n,H,W,C], labels IDX1)\n"
    "  into the split directory DIR (DIR/shard-00000.h5 ...). Convert the training split first,\n"
    "  then the test split with --stats-from TRAIN_DIR so it is normalized with the training\n"
    "  mean/std. --skip N leaves out the first N samples, --limit N keeps the first N (after\n"
    "  --skip): a validation split held out from the training images is e.g. --limit 55000 for\n"
    "  the training split and --skip 55000 --stats-from TRAIN_DIR for the validation one.\n"
    "  Runs on rank 0.\n";

int mpq_prep_idx_main(struct mpq_comm *c, int argc, char **argv)
{
    mpq_prep_idx_opts o = {.shards = 1};
    const mpq_opt opts[] = {
        {"images", MPQ_OPT_STR, &o.images, 0, 0}, {"labels", MPQ_OPT_STR, &o.labels, 0, 0},
        {"o", MPQ_OPT_STR, &o.out_dir, 0, 0},     {"shards", MPQ_OPT_INT, &o.shards, 1, INT_MAX},
        {"limit", MPQ_OPT_LONG, &o.limit, 0, 0},  {"stats-from", MPQ_OPT_STR, &o.stats_from, 0, 0},
        {"skip", MPQ_OPT_LONG, &o.skip, 0, 0},
    };
    int rc = mpq_prep_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), idx_usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (!o.images || !o.labels || !o.out_dir)
        return mpq_prep_usage_error(idx_usage, "--images, --labels and -o are required");
    /* --shards >= 1, --skip and --limit >= 0: checked by the parser */
    rc = mpq_comm_rank(c) == 0 ? mpq_prep_idx(&o) : MPQ_OK;
    return mpq_comm_agree(c, rc);
}

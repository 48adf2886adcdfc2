/* `mpq prep idx`: an IDX image file and an IDX label file (gzip or plain, read through zlib's
 * gzread, which passes plain files through) -> one split. Everything is held in memory (MNIST
 * size); the arrays are owned here and freed before returning. Runs on one thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/err.h"
#include "core/log.h"
#include "io/image.h"
#include "io/prep.h"
#include "io/prep_util.h"
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

/* Reads an IDX file of unsigned bytes with 1..4 dimensions: dims[0..*nd), the data (at most
 * `limit` items along the first dimension when limit > 0) into a malloc'ed *data. */
static int idx_read(const char *path, long limit, int dims[4], int *nd, uint8_t **data)
{
    uint8_t head[4], d[16];
    size_t n_bytes = 1;
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
            rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s': dimension %d is %u", path, i, v);
            goto out;
        }
        dims[i] = (int)v;
    }
    if (limit > 0 && limit < dims[0]) dims[0] = (int)limit;
    for (int i = 0; i < *nd; i++)
        n_bytes *= (size_t)dims[i];
    if (!(*data = malloc(n_bytes))) {
        rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory for '%s' (%zu bytes)", path, n_bytes);
        goto out;
    }
    rc = gz_read_all(g, path, *data, n_bytes);
out:
    gzclose_r(g);
    if (rc < 0) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

int mpq_prep_idx(const mpq_prep_idx_opts *o)
{
    int di[4] = {0}, dl[4] = {0}, ndi = 0, ndl = 0, rc, h, w, c, num_classes = 0;
    uint8_t *images = NULL, *lab = NULL;
    int32_t *labels = NULL;
    float mean[4], std[4];
    long n;
    mpq_progress pr;
    if (!o->images || !o->labels || !o->out_dir || o->shards < 1)
        return MPQ_FAIL(MPQ_E_ARG, "prep idx: images, labels, output and shards >= 1 are needed");
    const long skip = o->skip > 0 ? o->skip : 0, read_n = o->limit > 0 ? skip + o->limit : 0;
    mpq_progress_init(&pr, "prep idx", "images", 0);
    if ((rc = idx_read(o->images, read_n, di, &ndi, &images)) < 0) goto out;
    if ((rc = idx_read(o->labels, read_n, dl, &ndl, &lab)) < 0) goto out;
    if (ndi != 3 && ndi != 4) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "'%s': images must be IDX3 [n,H,W] or IDX4 [n,H,W,C], found "
                      "%d dimensions",
                      o->images, ndi);
        goto out;
    }
    if (ndl != 1 || dl[0] != di[0]) {
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "'%s': labels must be IDX1 with one entry per image of '%s' "
                      "(%d), found %d dimension(s), %d entries",
                      o->labels, o->images, di[0], ndl, dl[0]);
        goto out;
    }
    if (skip >= di[0]) {
        rc = MPQ_FAIL(MPQ_E_ARG, "prep idx: --skip %ld leaves none of the %d samples of '%s'", skip,
                      di[0], o->images);
        goto out;
    }
    n = di[0] - skip;
    h = di[1];
    w = di[2];
    c = ndi == 4 ? di[3] : 1;
    const uint8_t *kept = images + (size_t)skip * h * w * c; /* the samples converted */
    if (c > 4) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s': %d channels; at most 4 are supported", o->images, c);
        goto out;
    }
    if (!(labels = malloc(sizeof *labels * (size_t)n))) {
        rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
        goto out;
    }
    for (long i = 0; i < n; i++) {
        labels[i] = lab[skip + i];
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
        mpq_pixel_stats_add(&st, kept, (size_t)n * h * w);
        mpq_pixel_stats_finish(&st, mean, std);
    }
    if ((rc = mpq_prep_begin(o->out_dir)) < 0) goto out;
    if ((rc = mpq_prep_write_shards(o->out_dir, o->shards, n, h, w, c, kept, labels, num_classes,
                                    mean, std)) < 0)
        goto out;
    if ((rc = mpq_prep_end(o->out_dir)) < 0) goto out;
    mpq_progress_done(&pr, n);
    mpq_log_info("prep idx: %s: %ld images %dx%dx%d, %d classes, mean %.3f std %.3f%s", o->out_dir,
                 n, h, w, c, num_classes, mean[0], std[0], c > 1 ? " (channel 0)" : "");
out:
    free(images);
    free(lab);
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
    const mpq_prep_opt opts[] = {
        {"images", MPQ_PREP_OPT_STR, &o.images}, {"labels", MPQ_PREP_OPT_STR, &o.labels},
        {"o", MPQ_PREP_OPT_STR, &o.out_dir},     {"shards", MPQ_PREP_OPT_INT, &o.shards},
        {"limit", MPQ_PREP_OPT_LONG, &o.limit},  {"stats-from", MPQ_PREP_OPT_STR, &o.stats_from},
        {"skip", MPQ_PREP_OPT_LONG, &o.skip},
    };
    int rc = mpq_prep_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), idx_usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (!o.images || !o.labels || !o.out_dir)
        return mpq_prep_usage_error(idx_usage, "--images, --labels and -o are required");
    if (o.shards < 1) return mpq_prep_usage_error(idx_usage, "--shards must be at least 1");
    if (o.skip < 0 || o.limit < 0)
        return mpq_prep_usage_error(idx_usage, "--skip and --limit must not be negative");
    rc = mpq_comm_rank(c) == 0 ? mpq_prep_idx(&o) : MPQ_OK;
    return mpq_comm_agree(c, rc);
}

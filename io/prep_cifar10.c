/* `mpq prep cifar10`: the binary CIFAR-10 batches -> DIR/train and DIR/val. Each record is one
 * label byte and 3072 bytes of 32x32 R, G, B planes (CHW), stored as HWC. The splits are held in
 * memory (180 MB), owned here and freed before returning. Runs on one thread. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked_size.h"
#include "core/err.h"
#include "core/grow.h"
#include "core/log.h"
#include "core/path.h"
#include "io/image.h"
#include "io/prep.h"
#include "io/prep_util.h"
#include "mpi/comm.h"

enum { SIDE = 32, PLANE = SIDE * SIDE, RECORD = 1 + 3 * PLANE, N_CLASSES = 10, N_TRAIN_FILES = 5 };

void mpq_cifar_buf_free(mpq_cifar_buf *b)
{
    free(b->images);
    free(b->labels);
    memset(b, 0, sizeof *b);
}

/* Appends the records of one batch file to b. */
int mpq_cifar_read_batch(const char *path, mpq_cifar_buf *b)
{
    FILE *f = fopen(path, "rb");
    uint8_t rec[RECORD];
    long size, n;
    int rc = MPQ_OK;
    if (!f)
        return MPQ_FAIL(MPQ_E_IO,
                        "cannot open '%s': %s ---> HINT: --dir is the folder of the "
                        "binary version (cifar-10-batches-bin)",
                        path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return MPQ_FAIL(MPQ_E_IO, "cannot read '%s': %s", path, strerror(errno));
    }
    if (size == 0 || size % RECORD != 0) {
        fclose(f);
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "'%s': %ld bytes is not a whole number of %d-byte records "
                        "(truncated?)",
                        path, size, RECORD);
    }
    n = size / RECORD;
    size_t cap_s = 0, im_bytes = 0, lb_bytes = 0;
    if (mpq_size_add(&cap_s, (size_t)b->n, (size_t)n) < 0 ||
        mpq_size_mul(&im_bytes, cap_s, 3 * PLANE) < 0 ||
        mpq_size_mul(&lb_bytes, cap_s, sizeof *b->labels) < 0 || cap_s > LONG_MAX) {
        fclose(f);
        return MPQ_FAIL(MPQ_E_FORMAT, "'%s': %ld records are too many", path, n);
    }
    if (mpq_grow((void **)&b->images, &b->cap_images, cap_s, 3 * PLANE) < 0 ||
        mpq_grow((void **)&b->labels, &b->cap_labels, cap_s, sizeof *b->labels) < 0) {
        fclose(f);
        return mpq_err_push(MPQ_E_NOMEM, "reading '%s'", path);
    }
    for (long i = 0; i < n && rc == MPQ_OK; i++) {
        uint8_t *img = b->images + (size_t)(b->n + i) * 3 * PLANE;
        if (fread(rec, RECORD, 1, f) != 1) {
            rc = MPQ_FAIL(MPQ_E_IO, "'%s': read error at record %ld", path, i);
            break;
        }
        if (rec[0] >= N_CLASSES) {
            rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s': record %ld has label %d, outside [0, %d)", path, i,
                          rec[0], N_CLASSES);
            break;
        }
        b->labels[b->n + i] = rec[0];
        for (int p = 0; p < PLANE; p++) /* CHW planes -> HWC */
            for (int ch = 0; ch < 3; ch++)
                img[3 * p + ch] = rec[1 + ch * PLANE + p];
    }
    fclose(f);
    if (rc == MPQ_OK) b->n += n;
    return rc;
}

static int write_split(const char *out_dir, const char *name, int shards, const mpq_cifar_buf *b,
                       const float *mean, const float *std)
{
    char dir[MPQ_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", out_dir, name);
    MPQ_TRY(mpq_prep_begin(dir));
    MPQ_TRY(mpq_prep_write_shards(dir, shards, b->n, SIDE, SIDE, 3, b->images, b->labels, N_CLASSES,
                                  mean, std));
    MPQ_TRY(mpq_prep_end(dir));
    mpq_log_info("prep cifar10: %s: %ld images", dir, b->n);
    return MPQ_OK;
}

int mpq_prep_cifar10(const mpq_prep_cifar10_opts *o)
{
    mpq_cifar_buf train = {0}, val = {0};
    char path[MPQ_PATH_MAX];
    float mean[3], std[3];
    mpq_pixel_stats st;
    mpq_progress pr;
    int rc = MPQ_OK;
    if (!o->dir || !o->out_dir || o->shards < 1)
        return MPQ_FAIL(MPQ_E_ARG, "prep cifar10: dir, output and shards >= 1 are needed");
    mpq_progress_init(&pr, "prep cifar10", "images", 0);
    for (int i = 1; i <= N_TRAIN_FILES && rc == MPQ_OK; i++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", o->dir, i);
        rc = mpq_cifar_read_batch(path, &train);
    }
    if (rc == MPQ_OK) {
        snprintf(path, sizeof path, "%s/test_batch.bin", o->dir);
        rc = mpq_cifar_read_batch(path, &val);
    }
    if (rc == MPQ_OK) {
        mpq_pixel_stats_init(&st, 3);
        mpq_pixel_stats_add(&st, train.images, (size_t)train.n * PLANE);
        mpq_pixel_stats_finish(&st, mean, std);
        if ((rc = write_split(o->out_dir, "train", o->shards, &train, mean, std)) == MPQ_OK)
            rc = write_split(o->out_dir, "val", o->shards, &val, mean, std);
    }
    if (rc == MPQ_OK) {
        mpq_progress_done(&pr, train.n + val.n);
        mpq_log_info("prep cifar10: mean %.3f %.3f %.3f, std %.3f %.3f %.3f", mean[0], mean[1],
                     mean[2], std[0], std[1], std[2]);
    }
    mpq_cifar_buf_free(&train);
    mpq_cifar_buf_free(&val);
    return rc;
}

static const char cifar_usage[] =
    "usage: mpq prep cifar10 --dir D -o DIR [--shards K]\n"
    "  Converts the binary CIFAR-10 (D/data_batch_1..5.bin, D/test_batch.bin) into DIR/train and\n"
    "  DIR/val, K shards each (default 1), both with the training mean/std. Runs on rank 0.\n";

int mpq_prep_cifar10_main(struct mpq_comm *c, int argc, char **argv)
{
    mpq_prep_cifar10_opts o = {.shards = 1};
    const mpq_opt opts[] = {
        {"dir", MPQ_OPT_STR, &o.dir, 0, 0},
        {"o", MPQ_OPT_STR, &o.out_dir, 0, 0},
        {"shards", MPQ_OPT_INT, &o.shards, 1, INT_MAX},
    };
    int rc = mpq_prep_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), cifar_usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (!o.dir || !o.out_dir) return mpq_prep_usage_error(cifar_usage, "--dir and -o are required");
    rc = mpq_comm_rank(c) == 0 ? mpq_prep_cifar10(&o) : MPQ_OK;
    return mpq_comm_agree(c, rc);
}

/* Writes the seed corpora of the fuzz targets into DIR/<target>/ (jobs/fuzz.sh --seeds DIR):
 * small valid files of every format, so that mutations start from inputs that pass the first
 * checks and reach the deeper ones. The .cfg seeds are copies of configs/ made by the script. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "core/err.h"
#include "fuzzutil.h"
#include "io/ckpt.h"
#include "io/export.h"
#include "io/shard.h"
#include "models/graph.h"

static const char *out;

static const char *seed(const char *target, const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", out, target);
    mkdir(buf, 0777);
    snprintf(buf, sizeof buf, "%s/%s/%s", out, target, name);
    return buf;
}

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "make_seeds: %s: %s\n", what, mpq_errmsg());
        exit(1);
    }
}

static void idx_seeds(void)
{
    /* byte 0 cuts the input: images IDX3 2x4x4 (48 bytes), then labels IDX1 2 (10 bytes) */
    uint8_t b[1 + 48 + 10] = {0};
    static const uint8_t im_head[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4};
    static const uint8_t lb[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 0};
    b[0] = (uint8_t)(48 * 256 / 58 + 1);
    memcpy(b + 1, im_head, sizeof im_head);
    for (int i = 0; i < 32; i++)
        b[1 + 16 + i] = (uint8_t)(i * 8);
    memcpy(b + 49, lb, sizeof lb);
    fuzz_write(seed("idx", "two-4x4"), b, sizeof b);
}

static void cifar_seeds(void)
{
    uint8_t *rec = calloc(2, 3073);
    for (int i = 0; i < 2 * 3073; i++)
        rec[i] = (uint8_t)(i % 251);
    rec[0] = 3;
    rec[3073] = 9;
    fuzz_write(seed("cifar", "two-records"), rec, 2 * 3073);
    free(rec);
}

static void jpeg_seeds(void)
{
    uint8_t px[16 * 12 * 3];
    for (int i = 0; i < (int)sizeof px; i++)
        px[i] = (uint8_t)(i * 5);
    tjhandle tj = tjInitCompress();
    for (int gray = 0; gray < 2; gray++) {
        unsigned char *buf = NULL;
        unsigned long size = 0;
        if (tjCompress2(tj, px, 16, 0, 12, gray ? TJPF_GRAY : TJPF_RGB, &buf, &size,
                        gray ? TJSAMP_GRAY : TJSAMP_420, 75, 0) < 0) {
            fprintf(stderr, "make_seeds: %s\n", tjGetErrorStr2(tj));
            exit(1);
        }
        fuzz_write(seed("jpeg", gray ? "gray-16x12.jpg" : "rgb-16x12.jpg"), buf, size);
        tjFree(buf);
    }
    tjDestroy(tj);
}

static void shard_seeds(void)
{
    uint8_t px[3 * 4 * 4];
    int32_t labels[3] = {0, 1, 1};
    float mean[1] = {100}, std[1] = {50};
    for (int i = 0; i < (int)sizeof px; i++)
        px[i] = (uint8_t)(i * 5);
    check(mpq_shard_write(seed("shard", "three-4x4x1.h5"), 3, 4, 4, 1, px, labels, 2, mean, std),
          "shard");
}

static void fill_info(mpq_ckpt_info *in)
{
    static double hist[3] = {1, 0.5, 0.25};
    memset(in, 0, sizeof *in);
    snprintf(in->experiment, sizeof in->experiment, "T");
    snprintf(in->model, sizeof in->model, "tiny");
    snprintf(in->optimizer, sizeof in->optimizer, "adam");
    in->step = 4;
    in->steps_per_epoch = 2;
    in->epoch = 2;
    in->n_ranks = 1;
    in->in_h = in->in_w = 4;
    in->in_c = 1;
    in->num_classes = 2;
    in->config = (char *)"[T]\nmodel = tiny\n";
    in->history = hist;
    in->history_rows = 1;
    in->history_cols = 3;
    snprintf(in->history_columns, sizeof in->history_columns, "iter,a,b");
}

static void ckpt_and_export_seeds(void)
{
    mpq_model m;
    mpq_ckpt_info in;
    double kb;
    fuzz_tiny_model(&m, 1);
    fill_info(&in);
    check(mpq_ckpt_save(fuzz_comm(), seed("ckpt", "tiny-ckpt.h5"), &m.view, &in, 1), "checkpoint");
    check(mpq_ckpt_save(fuzz_comm(), seed("ckpt", "tiny-params.h5"), &m.view, &in, 0), "params");
    for (int pack = 0; pack < 2; pack++) {
        mpq_export_opts o = {.pack = pack, .fold_bn = !pack};
        check(mpq_export_write(fuzz_comm(), seed("export", pack ? "packed.h5" : "codes-folded.h5"),
                               &m.view, &in, &o, &kb),
              "export");
    }
    mpq_model_free(&m);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    out = argv[1];
    mkdir(out, 0777);
    idx_seeds();
    cifar_seeds();
    jpeg_seeds();
    shard_seeds();
    ckpt_and_export_seeds();
    return 0;
}

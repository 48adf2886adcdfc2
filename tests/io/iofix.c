/* Fixture helpers for tests/io (see iofix.h). */
#include "iofix.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/rng.h"
#include "io/shard.h"

void iofix_pixels(long i, int h, int w, int c, uint8_t *out)
{
    size_t n = (size_t)h * w * c;
    for (size_t p = 0; p < n; p++)
        out[p] = (uint8_t)(mpq_rng_hash(77, (uint64_t)i, p) >> 56);
    out[0] = (uint8_t)(i % 256);
}

int iofix_label(long i, int num_classes) { return (int)((i * 7 + 3) % num_classes); }

int iofix_make_split(const char *dir, long n, int h, int w, int c, int n_shards, int num_classes)
{
    const size_t img = (size_t)h * w * c;
    uint8_t *images = malloc(img * (size_t)n);
    int32_t *labels = malloc(sizeof *labels * (size_t)n);
    float mean[4] = {100, 100, 100, 100}, std[4] = {50, 50, 50, 50};
    char path[4096];
    int rc = MPQ_OK;
    mkdir(dir, 0777);
    if (!images || !labels) rc = MPQ_E_NOMEM;
    for (long i = 0; i < n && rc == MPQ_OK; i++) {
        iofix_pixels(i, h, w, c, images + img * (size_t)i);
        labels[i] = iofix_label(i, num_classes);
    }
    for (int k = 0; k < n_shards && rc == MPQ_OK; k++) {
        long lo = k * n / n_shards, hi = (k + 1) * n / n_shards;
        snprintf(path, sizeof path, "%s/shard-%05d.h5", dir, k);
        rc = mpq_shard_write(path, hi - lo, h, w, c, images + img * (size_t)lo, labels + lo,
                             num_classes, mean, std);
    }
    free(images);
    free(labels);
    return rc;
}

int iofix_copy_file(const char *src, const char *dst, long bytes)
{
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    int ch, rc = 0;
    long k = 0;
    if (!in || !out) rc = -1;
    while (rc == 0 && (bytes < 0 || k < bytes) && (ch = fgetc(in)) != EOF) {
        fputc(ch, out);
        k++;
    }
    if (in) fclose(in);
    if (out && fclose(out) != 0) rc = -1;
    return rc;
}

int iofix_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

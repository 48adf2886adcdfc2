/* Test helper for the end-to-end ImageNet test: writes a class-folder JPEG data set from
 * Fashion-MNIST (Debian's dataset-fashion-mnist). Image i of the IDX files becomes
 * OUT/class_<label>/img_<i>.jpg: the 28x28 picture upscaled (antialiased bilinear, io/image.h)
 * to an ImageNet-like size (short side 180..340, aspect ratio 0.6..1.7, both varying with i),
 * tinted per class so the three channels differ, and encoded by libturbojpeg (quality 90, 4:2:0).
 *   make_jpegs IMAGES.gz LABELS.gz OUT FIRST COUNT
 * takes images FIRST .. FIRST+COUNT-1. Deterministic. Exit 0, or 1 with a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <zlib.h>

#include "io/image.h"

enum { SIDE = 28, HEADER_IMAGES = 16, HEADER_LABELS = 8, N_CLASSES = 10 };

/* Bytes [offset, offset + n) of a gzip (or plain) file into buf. Returns 0 or -1. */
static int read_gz(const char *path, long offset, uint8_t *buf, size_t n)
{
    gzFile g = gzopen(path, "rb");
    int ok = g && gzseek(g, offset, SEEK_SET) == offset && gzread(g, buf, (unsigned)n) == (int)n;
    if (g) gzclose(g);
    if (!ok) fprintf(stderr, "make_jpegs: cannot read %zu bytes at %ld of '%s'\n", n, offset, path);
    return ok ? 0 : -1;
}

/* Writes one image; returns 0 or -1. */
static int write_jpeg(tjhandle tj, const char *path, const uint8_t *rgb, int h, int w)
{
    unsigned char *jpeg = NULL;
    unsigned long size = 0;
    FILE *f;
    int ok;
    if (tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpeg, &size, TJSAMP_420, 90, 0) < 0) {
        fprintf(stderr, "make_jpegs: %s: %s\n", path, tjGetErrorStr2(tj));
        return -1;
    }
    f = fopen(path, "wb");
    ok = f && fwrite(jpeg, 1, size, f) == size;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "make_jpegs: cannot write '%s'\n", path);
    tjFree(jpeg);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: make_jpegs IMAGES.gz LABELS.gz OUT FIRST COUNT\n");
        return 1;
    }
    const char *out = argv[3];
    const long first = atol(argv[4]), count = atol(argv[5]);
    const int max_side = 340 * 17 / 10 + 1;
    uint8_t pic[SIDE * SIDE], label;
    uint8_t *rgb = malloc((size_t)max_side * max_side * 3);
    float *f = malloc(sizeof(float) * (size_t)max_side * max_side);
    void *ws = malloc(mpq_image_resample_ws_bytes(SIDE, SIDE, 1, max_side, max_side));
    tjhandle tj = tjInitCompress();
    char path[4096];
    int rc = 0;
    if (!rgb || !f || !ws || !tj || first < 0 || count < 1) {
        fprintf(stderr, "make_jpegs: bad arguments or out of memory\n");
        return 1;
    }
    mkdir(out, 0755);
    for (long i = first; i < first + count && rc == 0; i++) {
        /* short side 180..340 and aspect 0.6..1.7, spread over i by coprime strides */
        const int short_side = 180 + (int)(i * 37 % 161);
        const double aspect = 0.6 + 1.1 * (double)(i * 53 % 101) / 100.0;
        const int h = aspect >= 1.0 ? short_side : (int)(short_side / aspect);
        const int w = aspect >= 1.0 ? (int)(short_side * aspect) : short_side;
        if (read_gz(argv[1], HEADER_IMAGES + i * SIDE * SIDE, pic, sizeof pic) < 0 ||
            read_gz(argv[2], HEADER_LABELS + i, &label, 1) < 0 || label >= N_CLASSES) {
            rc = -1;
            break;
        }
        mpq_image_resample(pic, SIDE, SIDE, 1, 0, 0, SIDE, SIDE, h, w, f, ws);
        for (size_t p = 0; p < (size_t)h * w; p++) { /* a tint per class: channels differ */
            const float v = f[p];
            const float tint[3] = {1.0f - 0.05f * label, 0.6f + 0.04f * label, 0.8f};
            for (int ch = 0; ch < 3; ch++) {
                float t = v * tint[ch] + 0.5f;
                rgb[3 * p + ch] = t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
            }
        }
        snprintf(path, sizeof path, "%s/class_%d", out, label);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/class_%d/img_%06ld.jpg", out, label, i);
        rc = write_jpeg(tj, path, rgb, h, w);
    }
    tjDestroy(tj);
    free(rgb);
    free(f);
    free(ws);
    return rc == 0 ? 0 : 1;
}

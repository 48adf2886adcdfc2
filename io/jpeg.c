/* Checked JPEG decoding (see jpeg.h). Scratch (the file's bytes, the decoded image, the
 * resampler's buffers) is allocated per call and freed before returning. */
#include "io/jpeg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked_size.h"
#include "core/err.h"
#include "io/image.h"

enum { MAX_OUT_SIZE = 4096 };

int mpq_jpeg_decode_square(tjhandle tj, const uint8_t *data, size_t bytes, const char *name,
                           int size, long max_pixels, uint8_t *out)
{
    unsigned char *rgb = NULL;
    float *f = NULL;
    void *ws = NULL;
    int w, h, subsamp, cs, cmyk, rc = MPQ_OK;
    size_t pixels = 0, rgb_bytes = 0;
    if (size < 1 || size > MAX_OUT_SIZE || max_pixels < 1)
        return MPQ_FAIL(MPQ_E_ARG, "'%s': output size %d (1..%d), pixel limit %ld", name, size,
                        MAX_OUT_SIZE, max_pixels);
    if (bytes == 0 || bytes > (size_t)(unsigned long)-1)
        return MPQ_FAIL(MPQ_E_FORMAT, "'%s' is empty or too large to be a JPEG file", name);
    if (tjDecompressHeader3(tj, data, (unsigned long)bytes, &w, &h, &subsamp, &cs) < 0)
        return MPQ_FAIL(MPQ_E_FORMAT, "'%s' is not a readable JPEG file: %s", name,
                        tjGetErrorStr2(tj));
    if (w < 1 || h < 1 || mpq_size_mul(&pixels, (size_t)w, (size_t)h) < 0 ||
        pixels > (size_t)max_pixels)
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "'%s' is %dx%d pixels, more than the limit of %ld ---> HINT: raise it "
                        "with --max-pixels if the file is genuine",
                        name, w, h, max_pixels);
    cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    if (mpq_size_mul(&rgb_bytes, pixels, cmyk ? 4 : 3) < 0)
        return MPQ_FAIL(MPQ_E_FORMAT, "'%s': %dx%d pixels overflow a buffer size", name, w, h);
    rgb = malloc(rgb_bytes);
    f = malloc(sizeof *f * (size_t)size * size * 3);
    ws = malloc(mpq_image_resample_ws_bytes(h, w, 3, size, size));
    if (!rgb || !f || !ws) {
        rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory decoding '%s' (%dx%d)", name, w, h);
        goto out;
    }
    /* a warning (a truncated or damaged stream that libjpeg patched up) is an error too */
    if (tjDecompress2(tj, data, (unsigned long)bytes, rgb, w, 0, h, cmyk ? TJPF_CMYK : TJPF_RGB,
                      0) < 0) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "cannot decode JPEG '%s'%s: %s", name,
                      tjGetErrorCode(tj) == TJERR_WARNING ? " (damaged or truncated)" : "",
                      tjGetErrorStr2(tj));
        goto out;
    }
    if (cmyk) /* Adobe (inverted) CMYK: channel * K / 255, in place, front to back */
        for (size_t i = 0; i < pixels; i++) {
            unsigned k = rgb[4 * i + 3];
            for (int ch = 0; ch < 3; ch++)
                rgb[3 * i + ch] = (uint8_t)((rgb[4 * i + ch] * k + 127) / 255);
        }
    {
        int m = w < h ? w : h;
        mpq_image_resample(rgb, h, w, 3, (h - m) / 2.0, (w - m) / 2.0, m, m, size, size, f, ws);
    }
    mpq_image_to_u8(f, (size_t)size * size * 3, out);
out:
    free(rgb);
    free(f);
    free(ws);
    return rc;
}

/* Reads the whole file at path into a malloc'ed buffer. */
static int read_file(const char *path, uint8_t **buf, size_t *size)
{
    FILE *f = fopen(path, "rb");
    long n;
    *buf = NULL;
    if (!f) return MPQ_FAIL(MPQ_E_IO, "cannot open '%s': %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        !(*buf = malloc(n > 0 ? (size_t)n : 1)) || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(*buf);
        *buf = NULL;
        return MPQ_FAIL(MPQ_E_IO, "cannot read '%s'", path);
    }
    fclose(f);
    *size = (size_t)n;
    return MPQ_OK;
}

int mpq_jpeg_decode_file(tjhandle tj, const char *path, int size, long max_pixels, uint8_t *out)
{
    uint8_t *data = NULL;
    size_t bytes = 0;
    MPQ_TRY(read_file(path, &data, &bytes));
    int rc = mpq_jpeg_decode_square(tj, data, bytes, path, size, max_pixels, out);
    free(data);
    return rc;
}

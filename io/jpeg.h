/* Checked JPEG decoding for the converters (libturbojpeg): the header's size is checked against a
 * pixel limit before anything is allocated, every buffer size is overflow-checked, and a damaged
 * or truncated file (libjpeg's warnings, e.g. "Premature end of JPEG file", included) is an error
 * naming the file, never a silently grey image. Pure functions over caller-owned buffers apart
 * from per-call scratch; one tjhandle per thread. Include only from io/ (and tests, fuzzers). */
#ifndef MPQ_IO_JPEG_H
#define MPQ_IO_JPEG_H

#include <stddef.h>
#include <stdint.h>
#include <turbojpeg.h>

/* Default limit on width x height of a decoded JPEG (`mpq prep imagefolder --max-pixels`). */
#define MPQ_JPEG_DEFAULT_MAX_PIXELS (64L * 1024 * 1024)

/* Decodes the JPEG in data (bytes) to RGB (grayscale and CMYK become RGB), cuts its centre square
 * and resamples it to out (size, size, 3) with io/image.h's antialiased filter. name is the file
 * for messages. Returns 0, MPQ_E_FORMAT (not a JPEG, damaged or truncated, larger than
 * max_pixels), MPQ_E_ARG (size outside 1..4096, max_pixels < 1) or MPQ_E_NOMEM. */
int mpq_jpeg_decode_square(tjhandle tj, const uint8_t *data, size_t bytes, const char *name,
                           int size, long max_pixels, uint8_t *out);

/* The same for the file at path, read whole. MPQ_E_IO when it cannot be read. */
int mpq_jpeg_decode_file(tjhandle tj, const char *path, int size, long max_pixels, uint8_t *out);

#endif

/* Pixel operations shared by the converters and the reader's augmentations: an antialiased
 * resampler (triangle filter, widened by the shrink factor, as PIL's BILINEAR) from a region of an
 * 8-bit HWC image to float HWC, and exact per-channel pixel statistics. Pure functions over
 * caller-owned buffers (no allocation, no global state): safe from any thread. */
#ifndef MPQ_IO_IMAGE_H
#define MPQ_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of workspace mpq_image_resample needs for any region of an image of at most
 * in_h x in_w x c pixels resampled to out_h x out_w. */
size_t mpq_image_resample_ws_bytes(int in_h, int in_w, int c, int out_h, int out_w);

/* Writes dst (out_h, out_w, c) float on the 0..255 scale: the region of src (h, w, c) uint8 that
 * starts at (y0, x0) and spans rh x rw source pixels (fractional allowed; the region must lie in
 * the image), resampled. The same size at integer offsets copies pixels exactly.
 * ws: mpq_image_resample_ws_bytes(h, w, c, out_h, out_w) bytes, 8-byte aligned. */
void mpq_image_resample(const uint8_t *src, int h, int w, int c, double y0, double x0, double rh,
                        double rw, int out_h, int out_w, float *dst, void *ws);

/* Rounds and clamps float pixels to uint8 (n values). */
void mpq_image_to_u8(const float *x, size_t n, uint8_t *y);

/* Exact pixel statistics: integer sums, so results do not depend on the order of accumulation
 * (the number of ranks). Up to 4 channels. */
typedef struct mpq_pixel_stats {
    int c;
    uint64_t n_pixels; /* per channel */
    uint64_t sum[4], sum_sq[4];
} mpq_pixel_stats;

void mpq_pixel_stats_init(mpq_pixel_stats *s, int c);
/* Adds n_pixels pixels of c channels (HWC or NHWC bytes). */
void mpq_pixel_stats_add(mpq_pixel_stats *s, const uint8_t *x, size_t n_pixels);
/* Writes the per-channel mean and (population) standard deviation, 0..255 scale. */
void mpq_pixel_stats_finish(const mpq_pixel_stats *s, float *mean, float *std);

#endif

/* Per-sample augmentation and normalization of the reader. Every random choice comes from the
 * stream (seed, MPQ_RNG_STREAM_AUGMENT, epoch << 32 | global sample index), so a sample's crop
 * and flip do not depend on the rank count, the batch it falls in or the thread that makes it.
 *   cifar    train: zero-pad 4 (black pixels), random crop back to H x W, flip p = 0.5;
 *            always: (x/255 - 0.5) * 2.
 *   imagenet train: torchvision's RandomResizedCrop of the stored image (mpq_random_resized_crop)
 *            resampled (antialiased bilinear, io/image.h) to crop size x size, flip p = 0.5;
 *            validation: torchvision's Resize(val_resize) + CenterCrop(size), i.e. the centre
 *            square of side short * size / val_resize resampled to size x size;
 *            always: (x - mean) / std per channel.
 *   none     (x - mean) / std per channel.
 * An mpq_augmenter is a plain struct (no memory); mpq_augment_apply is pure. */
#ifndef MPQ_IO_AUGMENT_H
#define MPQ_IO_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "data.h"

typedef struct mpq_augmenter {
    mpq_augment kind;
    int train;
    int h, w, c;      /* stored image size */
    int out_h, out_w; /* delivered size */
    mpq_crop crop;    /* imagenet: the views (data.h) */
    float mean[4], inv_std[4];
    size_t ws_bytes; /* workspace mpq_augment_apply needs */
} mpq_augmenter;

/* Sets up a for images of h x w x c. crop: the imagenet views (NULL or crop->size == 0: delivered
 * at the stored size; the other augmentations ignore it). mean, std: per channel, 0..255.
 * Returns 0 or MPQ_E_ARG (bad sizes or ranges). */
int mpq_augmenter_init(mpq_augmenter *a, mpq_augment kind, int train, int h, int w, int c,
                       const mpq_crop *crop, const float *mean, const float *std);

/* A crop of an image: rows [y0, y0 + h), columns [x0, x0 + w); fallback: the 10 tries failed. */
typedef struct mpq_crop_box {
    int y0, x0, h, w, fallback;
} mpq_crop_box;

/* torchvision's RandomResizedCrop.get_params on an img_h x img_w image, draws from r in its order:
 * up to 10 tries of (area = img_h * img_w * U[scale_min, scale_max), aspect = exp(U[log ratio_min,
 * log ratio_max))), w = round(sqrt(area * aspect)), h = round(sqrt(area / aspect)) (round half to
 * even, as Python), accepted when 0 < w <= img_w and 0 < h <= img_h, then y0 = U{0..img_h - h},
 * x0 = U{0..img_w - w}; else the centre crop of the whole image clamped to the ratio range. */
void mpq_random_resized_crop(const mpq_crop *crop, int img_h, int img_w, mpq_rng *r,
                             mpq_crop_box *box);

/* Writes dst (out_h, out_w, c) float from src (h, w, c) uint8: sample `index` of `epoch`.
 * ws: a->ws_bytes bytes (8-byte aligned). */
void mpq_augment_apply(const mpq_augmenter *a, const uint8_t *src, uint64_t seed, long epoch,
                       long index, float *dst, void *ws);

#endif

/* Per-sample augmentation and normalization of the reader. Every random choice comes from the
 * stream (seed, MPQ_RNG_STREAM_AUGMENT, epoch << 32 | global sample index), so a sample's crop
 * and flip do not depend on the rank count, the batch it falls in or the thread that makes it.
 *   cifar    train: zero-pad 4 (black pixels), random crop back to H x W, flip p = 0.5;
 *            always: (x/255 - 0.5) * 2.
 *   imagenet train: random-resized crop (area 8..100%, aspect 3/4..4/3 log-uniform, 10 tries,
 *            then the centre) resampled to out_h x out_w, flip p = 0.5; validation: short side
 *            resized to min(out_h, out_w) / 0.875 and the centre cut (as stored when the output
 *            size is the stored size); always: (x - mean) / std per channel.
 *   none     (x - mean) / std per channel.
 * An mpq_augmenter is a plain struct (no memory); mpq_augment_apply is pure. */
#ifndef MPQ_IO_AUGMENT_H
#define MPQ_IO_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"

typedef struct mpq_augmenter {
    mpq_augment kind;
    int train;
    int h, w, c;      /* stored image size */
    int out_h, out_w; /* delivered size */
    float mean[4], inv_std[4];
    size_t ws_bytes; /* workspace mpq_augment_apply needs */
} mpq_augmenter;

/* Sets up a for images of h x w x c; out_h, out_w: delivered size (0: as stored; only imagenet may
 * change it). mean, std: per channel, 0..255. Returns 0 or MPQ_E_ARG. */
int mpq_augmenter_init(mpq_augmenter *a, mpq_augment kind, int train, int h, int w, int c,
                       int out_h, int out_w, const float *mean, const float *std);

/* Writes dst (out_h, out_w, c) float from src (h, w, c) uint8: sample `index` of `epoch`.
 * ws: a->ws_bytes bytes (8-byte aligned). */
void mpq_augment_apply(const mpq_augmenter *a, const uint8_t *src, uint64_t seed, long epoch,
                       long index, float *dst, void *ws);

#endif

/* Augmentations (see augment.h). The random draws of one sample happen in a fixed order from its
 * own stream: cifar (crop y, crop x, flip), imagenet (up to 10 x (area, log-aspect, y, x), flip).
 */
#include "io/augment.h"

#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "io/image.h"

enum { CIFAR_PAD = 4 };
static const double VAL_CROP_FRACTION = 0.875; /* 224 of 256 */

int mpq_augmenter_init(mpq_augmenter *a, mpq_augment kind, int train, int h, int w, int c,
                       int out_h, int out_w, const float *mean, const float *std)
{
    memset(a, 0, sizeof *a);
    if (h < 1 || w < 1 || c < 1 || c > 4 || out_h < 0 || out_w < 0)
        return MPQ_FAIL(MPQ_E_ARG, "augment: bad image size %dx%dx%d -> %dx%d", h, w, c, out_h,
                        out_w);
    a->kind = kind;
    a->train = train;
    a->h = h;
    a->w = w;
    a->c = c;
    a->out_h = out_h ? out_h : h;
    a->out_w = out_w ? out_w : w;
    if (kind != MPQ_AUGMENT_IMAGENET && (a->out_h != h || a->out_w != w))
        return MPQ_FAIL(MPQ_E_ARG,
                        "augment: only 'imagenet' resizes; images are %dx%d, asked for %dx%d", h, w,
                        a->out_h, a->out_w);
    for (int ch = 0; ch < c; ch++) {
        a->mean[ch] = mean[ch];
        a->inv_std[ch] = std[ch] > 1e-6f ? 1.0f / std[ch] : 1.0f;
    }
    if (kind == MPQ_AUGMENT_IMAGENET)
        a->ws_bytes = mpq_image_resample_ws_bytes(h, w, c, a->out_h, a->out_w);
    return MPQ_OK;
}

/* cifar: padded random crop and flip straight from the bytes, then (x/255 - 0.5) * 2; padding
 * is 0 after that scaling (mid-grey), as in the reference. */
static void apply_cifar(const mpq_augmenter *a, const uint8_t *src, mpq_rng *r, float *dst)
{
    const int h = a->h, w = a->w, c = a->c;
    int oy = CIFAR_PAD, ox = CIFAR_PAD, flip = 0;
    if (a->train) {
        oy = (int)mpq_rng_below(r, 2 * CIFAR_PAD + 1);
        ox = (int)mpq_rng_below(r, 2 * CIFAR_PAD + 1);
        flip = mpq_rng_uniform(r) < 0.5f;
    }
    for (int y = 0; y < h; y++) {
        const int sy = y + oy - CIFAR_PAD;
        for (int x = 0; x < w; x++) {
            const int sx = (flip ? w - 1 - x : x) + ox - CIFAR_PAD;
            float *d = dst + ((size_t)y * w + x) * c;
            const int inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
            const uint8_t *s = src + ((size_t)sy * w + sx) * c;
            for (int ch = 0; ch < c; ch++) /* the reference pads the normalised image with 0 */
                d[ch] = inside ? ((float)s[ch] / 255.0f - 0.5f) * 2.0f : 0.0f;
        }
    }
}

/* torchvision's RandomResizedCrop parameters (scale 0.08..1, ratio 3/4..4/3). */
static void random_resized_region(const mpq_augmenter *a, mpq_rng *r, double *y0, double *x0,
                                  double *rh, double *rw)
{
    const double area = (double)a->h * a->w, lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    double ratio = (double)a->w / a->h;
    long cw, ch;
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (0.08 + 0.92 * mpq_rng_uniform(r));
        double ar = exp(lr0 + (lr1 - lr0) * mpq_rng_uniform(r));
        cw = lround(sqrt(target * ar));
        ch = lround(sqrt(target / ar));
        if (cw > 0 && cw <= a->w && ch > 0 && ch <= a->h) {
            *y0 = (double)mpq_rng_below(r, (uint64_t)(a->h - ch + 1));
            *x0 = (double)mpq_rng_below(r, (uint64_t)(a->w - cw + 1));
            *rh = (double)ch;
            *rw = (double)cw;
            return;
        }
    }
    if (ratio < 3.0 / 4.0) { /* fallback: the centre at the nearest allowed aspect */
        cw = a->w;
        ch = lround(cw / (3.0 / 4.0));
    } else if (ratio > 4.0 / 3.0) {
        ch = a->h;
        cw = lround(ch * (4.0 / 3.0));
    } else {
        cw = a->w;
        ch = a->h;
    }
    if (ch > a->h) ch = a->h;
    if (cw > a->w) cw = a->w;
    *y0 = (double)((a->h - ch) / 2);
    *x0 = (double)((a->w - cw) / 2);
    *rh = (double)ch;
    *rw = (double)cw;
}

/* Validation: the short side scaled to min(out) / 0.875, the centre out_h x out_w cut. */
static void centre_region(const mpq_augmenter *a, double *y0, double *x0, double *rh, double *rw)
{
    int in_short = a->h < a->w ? a->h : a->w, out_short = a->out_h < a->out_w ? a->out_h : a->out_w;
    double s = in_short * VAL_CROP_FRACTION / out_short; /* source pixels per output pixel */
    *rh = a->out_h * s;
    *rw = a->out_w * s;
    if (*rh > a->h) *rh = a->h;
    if (*rw > a->w) *rw = a->w;
    *y0 = (a->h - *rh) / 2.0;
    *x0 = (a->w - *rw) / 2.0;
}

/* dst (out_h, out_w, c) in place: optional horizontal flip, then (x - mean) / std. */
static void flip_normalize(const mpq_augmenter *a, int flip, float *dst)
{
    const int w = a->out_w, c = a->c;
    for (int y = 0; y < a->out_h; y++) {
        float *row = dst + (size_t)y * w * c;
        if (flip)
            for (int x = 0; x < w / 2; x++)
                for (int ch = 0; ch < c; ch++) {
                    float t = row[(size_t)x * c + ch];
                    row[(size_t)x * c + ch] = row[(size_t)(w - 1 - x) * c + ch];
                    row[(size_t)(w - 1 - x) * c + ch] = t;
                }
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++)
                row[(size_t)x * c + ch] = (row[(size_t)x * c + ch] - a->mean[ch]) * a->inv_std[ch];
    }
}

void mpq_augment_apply(const mpq_augmenter *a, const uint8_t *src, uint64_t seed, long epoch,
                       long index, float *dst, void *ws)
{
    mpq_rng r;
    double y0, x0, rh, rw;
    int flip = 0;
    mpq_rng_seed(&r, seed, MPQ_RNG_STREAM_AUGMENT, ((uint64_t)epoch << 32) | (uint64_t)index);
    switch (a->kind) {
    case MPQ_AUGMENT_CIFAR:
        apply_cifar(a, src, &r, dst);
        return;
    case MPQ_AUGMENT_IMAGENET:
        if (a->train) {
            random_resized_region(a, &r, &y0, &x0, &rh, &rw);
            flip = mpq_rng_uniform(&r) < 0.5f;
        } else if (a->out_h == a->h && a->out_w == a->w) {
            break; /* validation at the stored size: as stored */
        } else {
            centre_region(a, &y0, &x0, &rh, &rw);
        }
        mpq_image_resample(src, a->h, a->w, a->c, y0, x0, rh, rw, a->out_h, a->out_w, dst, ws);
        flip_normalize(a, flip, dst);
        return;
    case MPQ_AUGMENT_NONE:
        break;
    }
    for (size_t i = 0; i < (size_t)a->h * a->w * a->c; i++)
        dst[i] = (float)src[i];
    flip_normalize(a, 0, dst);
}

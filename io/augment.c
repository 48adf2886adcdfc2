/* Augmentations (see augment.h). The random draws of one sample happen in a fixed order from its
 * own stream: cifar (crop y, crop x, flip), imagenet (up to 10 x (area, log-aspect), then y, x
 * of the accepted try, flip). */
#include "io/augment.h"

#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "io/image.h"

enum { CIFAR_PAD = 4, CROP_TRIES = 10 };
/* torchvision's defaults, used where no ranges are given */
static const mpq_crop DEFAULT_RANGES = {0, 0, 0.08f, 1.0f, 3.0f / 4.0f, 4.0f / 3.0f};

int mpq_augmenter_init(mpq_augmenter *a, mpq_augment kind, int train, int h, int w, int c,
                       const mpq_crop *crop, const float *mean, const float *std)
{
    mpq_crop v = DEFAULT_RANGES;
    memset(a, 0, sizeof *a);
    if (crop) {
        v.size = crop->size;
        v.val_resize = crop->val_resize;
        if (crop->scale_max > 0.0f) { /* ranges given */
            v.scale_min = crop->scale_min;
            v.scale_max = crop->scale_max;
            v.ratio_min = crop->ratio_min;
            v.ratio_max = crop->ratio_max;
        }
    }
    if (h < 1 || w < 1 || c < 1 || c > 4 || v.size < 0 || v.val_resize < 0)
        return MPQ_FAIL(MPQ_E_ARG, "augment: bad image size %dx%dx%d -> %d (val_resize %d)", h, w,
                        c, v.size, v.val_resize);
    if (!(v.scale_min > 0.0f && v.scale_min <= v.scale_max && v.scale_max <= 1.0f &&
          v.ratio_min > 0.0f && v.ratio_min <= v.ratio_max))
        return MPQ_FAIL(MPQ_E_ARG, "augment: bad crop ranges: scale %g..%g, ratio %g..%g",
                        (double)v.scale_min, (double)v.scale_max, (double)v.ratio_min,
                        (double)v.ratio_max);
    a->kind = kind;
    a->train = train;
    a->h = h;
    a->w = w;
    a->c = c;
    a->crop = v;
    a->out_h = kind == MPQ_AUGMENT_IMAGENET && v.size ? v.size : h;
    a->out_w = kind == MPQ_AUGMENT_IMAGENET && v.size ? v.size : w;
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

void mpq_random_resized_crop(const mpq_crop *crop, int img_h, int img_w, mpq_rng *r,
                             mpq_crop_box *box)
{
    const double area = (double)img_h * img_w, in_ratio = (double)img_w / img_h;
    const double lr0 = log(crop->ratio_min), lr1 = log(crop->ratio_max);
    const double s0 = crop->scale_min, s1 = crop->scale_max;
    for (int attempt = 0; attempt < CROP_TRIES; attempt++) {
        const double target = area * (s0 + (s1 - s0) * mpq_rng_uniform(r));
        const double aspect = exp(lr0 + (lr1 - lr0) * mpq_rng_uniform(r));
        const double cw = rint(sqrt(target * aspect)), ch = rint(sqrt(target / aspect));
        if (cw > 0 && cw <= img_w && ch > 0 && ch <= img_h) {
            box->h = (int)ch;
            box->w = (int)cw;
            box->y0 = (int)mpq_rng_below(r, (uint64_t)(img_h - box->h + 1));
            box->x0 = (int)mpq_rng_below(r, (uint64_t)(img_w - box->w + 1));
            box->fallback = 0;
            return;
        }
    }
    box->h = img_h; /* the whole image, or its centre at the nearest allowed aspect */
    box->w = img_w;
    if (in_ratio < crop->ratio_min)
        box->h = (int)rint(img_w / (double)crop->ratio_min);
    else if (in_ratio > crop->ratio_max)
        box->w = (int)rint(img_h * (double)crop->ratio_max);
    box->h = box->h < 1 ? 1 : box->h > img_h ? img_h : box->h;
    box->w = box->w < 1 ? 1 : box->w > img_w ? img_w : box->w;
    box->y0 = (img_h - box->h) / 2;
    box->x0 = (img_w - box->w) / 2;
    box->fallback = 1;
}

/* Validation: Resize(val_resize) of the short side, then the centre out_h x out_w: in stored
 * pixels the centre region of out * short / val_resize (val_resize 0: of the whole short side). */
static void centre_region(const mpq_augmenter *a, double *y0, double *x0, double *rh, double *rw)
{
    const int in_short = a->h < a->w ? a->h : a->w;
    const int resize =
        a->crop.val_resize ? a->crop.val_resize : (a->out_h < a->out_w ? a->out_h : a->out_w);
    const double s = (double)in_short / resize; /* stored pixels per resized pixel */
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
            mpq_crop_box b;
            mpq_random_resized_crop(&a->crop, a->h, a->w, &r, &b);
            y0 = b.y0;
            x0 = b.x0;
            rh = b.h;
            rw = b.w;
            flip = mpq_rng_uniform(&r) < 0.5f;
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

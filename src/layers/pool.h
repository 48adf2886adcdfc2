/* Max and average pooling in NHWC, and global average pooling.
 * x: (N, H, W, C)  y: (N, Ho, Wo, C). Average pooling counts padded cells (nnabla's
 * including_pad = True); max pooling ignores them. Global average: y (N, 1, 1, C). */
#ifndef MPQ_LAYERS_POOL_H
#define MPQ_LAYERS_POOL_H

#include "core/step.h"

typedef enum mpq_pool_kind { MPQ_POOL_MAX, MPQ_POOL_AVG } mpq_pool_kind;

typedef struct mpq_pool {
    mpq_pool_kind kind;
    int h, w, c, ho, wo;
    int kh, kw, sh, sw, ph, pw;
} mpq_pool;

int mpq_pool_init(mpq_pool *l, mpq_pool_kind kind, int h, int w, int c, int kh, int kw, int sh,
                  int sw, int ph, int pw);
/* A global average pooling: kernel = whole image. */
int mpq_pool_init_global(mpq_pool *l, int h, int w, int c);
void mpq_pool_forward(const mpq_pool *l, const mpq_step *s, const float *x, float *y);
/* Writes dx (max pooling routes dy to the first maximum of each window, recomputed from x). */
void mpq_pool_backward(const mpq_pool *l, const mpq_step *s, const float *x, const float *dy,
                       float *dx);

#endif

/* Batch normalization over the channels of NHWC tensors (see bn.h).
 * Training: per group of n / n_groups samples, mean then sum of squared deviations (two passes,
 * double accumulation, each sum reduced across ranks with s->reduce in between), xhat and the
 * group's mean / inverse std cached in the arena slice l->cache; backward reads only the cache.
 * Scratch: s->ws holds the reduce buffer (doubles) and per-group float coefficients.
 * Threading: OpenMP over rows; channel sums via kernels/colsum (fixed-order, deterministic). */
#include "layers/bn.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "kernels/colsum.h"

void mpq_bn_init(mpq_bn *l, int hw, int c)
{
    memset(l, 0, sizeof *l);
    l->hw = hw;
    l->c = c;
    l->eps = 1e-5f;
    l->momentum = 0.9f;
}

size_t mpq_bn_cache_floats(const mpq_bn *l, int n, int n_groups)
{
    return (size_t)n * l->hw * l->c + 2 * (size_t)n_groups * l->c; /* xhat, mean, invstd */
}

/* Doubles of the reduce buffer: two (groups, C) blocks and a count. */
static size_t red_len(const mpq_bn *l, int n_groups) { return 2 * (size_t)n_groups * l->c + 1; }

size_t mpq_bn_ws_floats(const mpq_bn *l, int n, int n_groups)
{
    return 2 * red_len(l, n_groups) + 3 * (size_t)n_groups * l->c + 2 * (size_t)l->c;
}

/* Views of the scratch: the doubles first (s->ws is 64-byte aligned), then floats. */
typedef struct bn_ws {
    double *red; /* red_len doubles */
    float *coef; /* 3 * groups * C (training) or 2 * C (eval) floats */
} bn_ws;

static bn_ws ws_views(const mpq_bn *l, const mpq_step *s)
{
    bn_ws v;
    MPQ_ASSERT(s->ws_floats >= mpq_bn_ws_floats(l, s->n, s->n_groups), "bn: workspace too small");
    MPQ_ASSERT((uintptr_t)s->ws % sizeof(double) == 0, "bn: workspace not 8-byte aligned");
    v.red = (double *)(void *)s->ws;
    v.coef = s->ws + 2 * red_len(l, s->n_groups);
    return v;
}

static void reduce(const mpq_step *s, double *buf, size_t len)
{
    if (!s->reduce) return;
    const int rc = s->reduce->sum(s->reduce->ctx, buf, len);
    MPQ_ASSERT(rc == 0, "bn: cross-rank reduction failed (%d)", rc);
}

/* Rows (pixels) per statistics group. */
static size_t group_rows(const mpq_bn *l, const mpq_step *s)
{
    MPQ_ASSERT(s->n_groups >= 1 && s->n % s->n_groups == 0, "bn: %d groups do not divide n = %d",
               s->n_groups, s->n);
    return (size_t)(s->n / s->n_groups) * l->hw;
}

/* Eval: y = x * scale + shift with the running statistics. */
static void forward_eval(const mpq_bn *l, const mpq_step *s, const float *x, float *y)
{
    const int c = l->c;
    const float *gamma = mpq_cat(s->val, l->gamma), *beta = mpq_cat(s->val, l->beta);
    const float *rm = mpq_cat(s->state, l->mean), *rv = mpq_cat(s->state, l->var);
    float *scale = ws_views(l, s).coef, *shift = scale + c;
    for (int i = 0; i < c; i++) {
        scale[i] = gamma[i] / sqrtf(rv[i] + l->eps);
        shift[i] = beta[i] - rm[i] * scale[i];
    }
    const size_t rows = (size_t)s->n * l->hw;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *yr = y + r * c;
#pragma omp simd
        for (int i = 0; i < c; i++)
            yr[i] = xr[i] * scale[i] + shift[i];
    }
}

void mpq_bn_forward(const mpq_bn *l, const mpq_step *s, const float *x, float *y)
{
    if (!s->training) {
        forward_eval(l, s, x, y);
        return;
    }
    const int c = l->c, ng = s->n_groups;
    const size_t rows = group_rows(l, s), gc = (size_t)ng * c;
    const float *gamma = mpq_cat(s->val, l->gamma), *beta = mpq_cat(s->val, l->beta);
    float *rm = mpq_at(s->state, l->mean), *rv = mpq_at(s->state, l->var);
    float *xhat = mpq_at(s->arena, l->cache), *cmean = xhat + (size_t)s->n * l->hw * c;
    float *cinv = cmean + gc;
    double *mean = ws_views(l, s).red, *cnt = mean + gc, *sq = cnt + 1;

    for (int g = 0; g < ng; g++)
        mpq_colsum(MPQ_COLSUM_SUM, rows, c, x + g * rows * c, NULL, c, NULL, mean + g * c);
    *cnt = (double)rows;
    reduce(s, mean, gc + 1); /* sums and the group size */
    for (size_t i = 0; i < gc; i++)
        mean[i] /= *cnt;
    for (int g = 0; g < ng; g++)
        mpq_colsum(MPQ_COLSUM_SQDEV, rows, c, x + g * rows * c, NULL, c, mean + g * c, sq + g * c);
    reduce(s, sq, gc);

    const double m = *cnt, unbias = m > 1.0 ? m / (m - 1.0) : 1.0, mom = l->momentum;
    for (int i = 0; i < c; i++) {
        double bm = 0.0, bv = 0.0;
        for (int g = 0; g < ng; g++) {
            bm += mean[g * c + i];
            bv += sq[g * c + i] / m;
        }
        rm[i] = (float)(mom * rm[i] + (1.0 - mom) * bm / ng);
        rv[i] = (float)(mom * rv[i] + (1.0 - mom) * unbias * bv / ng);
    }
    for (size_t i = 0; i < gc; i++) {
        cmean[i] = (float)mean[i];
        cinv[i] = (float)(1.0 / sqrt(sq[i] / m + l->eps));
    }
    const size_t all = (size_t)s->n * l->hw;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < all; r++) {
        const size_t o = (r / rows) * c;
        const float *xr = x + r * c, *mu = cmean + o, *iv = cinv + o;
        float *hr = xhat + r * c, *yr = y + r * c;
#pragma omp simd
        for (int i = 0; i < c; i++) {
            const float h = (xr[i] - mu[i]) * iv[i];
            hr[i] = h;
            yr[i] = gamma[i] * h + beta[i];
        }
    }
}

/* Eval backward (frozen statistics): reads x, dx = dy * gamma / sqrt(var + eps). */
static void backward_eval(const mpq_bn *l, const mpq_step *s, const float *x, const float *dy,
                          float *dx)
{
    const int c = l->c;
    const size_t rows = (size_t)s->n * l->hw;
    const float *gamma = mpq_cat(s->val, l->gamma);
    const float *rm = mpq_cat(s->state, l->mean), *rv = mpq_cat(s->state, l->var);
    bn_ws v = ws_views(l, s);
    double *sdy = v.red, *sdyx = sdy + c;
    float *scale = v.coef;
    float *dgamma = mpq_at(s->grad, l->gamma), *dbeta = mpq_at(s->grad, l->beta);
    mpq_colsum(MPQ_COLSUM_SUM, rows, c, dy, NULL, c, NULL, sdy);
    mpq_colsum(MPQ_COLSUM_DOT, rows, c, dy, x, c, NULL, sdyx);
    for (int i = 0; i < c; i++) {
        const double inv = 1.0 / sqrt((double)rv[i] + l->eps);
        dgamma[i] += (float)(inv * (sdyx[i] - rm[i] * sdy[i]));
        dbeta[i] += (float)sdy[i];
        scale[i] = (float)(gamma[i] * inv);
    }
    if (!dx) return;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *g = dy + r * c;
        float *d = dx + r * c;
#pragma omp simd
        for (int i = 0; i < c; i++)
            d[i] = g[i] * scale[i];
    }
}

void mpq_bn_backward(const mpq_bn *l, const mpq_step *s, const float *x, const float *dy, float *dx)
{
    if (!s->training) {
        backward_eval(l, s, x, dy, dx);
        return;
    }
    const int c = l->c, ng = s->n_groups;
    const size_t rows = group_rows(l, s), gc = (size_t)ng * c;
    const float *gamma = mpq_cat(s->val, l->gamma);
    const float *xhat = mpq_cat(s->arena, l->cache);
    const float *cinv = xhat + (size_t)s->n * l->hw * c + gc;
    float *dgamma = mpq_at(s->grad, l->gamma), *dbeta = mpq_at(s->grad, l->beta);
    bn_ws v = ws_views(l, s);
    double *sdy = v.red, *sdyx = sdy + gc, *cnt = sdyx + gc;
    float *ka = v.coef, *kb = ka + gc, *kc = kb + gc;

    for (int g = 0; g < ng; g++) {
        const size_t o = g * rows * c;
        mpq_colsum(MPQ_COLSUM_SUM, rows, c, dy + o, NULL, c, NULL, sdy + g * c);
        mpq_colsum(MPQ_COLSUM_DOT, rows, c, dy + o, xhat + o, c, NULL, sdyx + g * c);
    }
    for (int g = 0; g < ng; g++) /* parameter gradients: local sums (ranks allreduce them) */
        for (int i = 0; i < c; i++) {
            dgamma[i] += (float)sdyx[g * c + i];
            dbeta[i] += (float)sdy[g * c + i];
        }
    if (!dx) return;
    *cnt = (double)rows;
    reduce(s, sdy, red_len(l, ng));
    for (size_t i = 0; i < gc; i++) {
        ka[i] = gamma[i % c] * cinv[i];
        kb[i] = (float)(sdy[i] / *cnt);
        kc[i] = (float)(sdyx[i] / *cnt);
    }
    const size_t all = (size_t)s->n * l->hw;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < all; r++) {
        const size_t o = (r / rows) * c;
        const float *g = dy + r * c, *h = xhat + r * c, *a = ka + o, *b = kb + o, *k = kc + o;
        float *d = dx + r * c;
#pragma omp simd
        for (int i = 0; i < c; i++)
            d[i] = a[i] * (g[i] - b[i] - h[i] * k[i]);
    }
}

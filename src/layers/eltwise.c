/* Elementwise layers (see eltwise.h): residual add, channel zero-padding, learnable scalar scale.
 * No allocation. Threading: OpenMP over elements/pixels; the scale gradient is summed over
 * SCALE_PARTS fixed ranges combined in order (deterministic for any thread count). */
#include "layers/eltwise.h"

#include <string.h>

enum { SCALE_PARTS = 16 };

void mpq_add_forward(size_t n, const float *a, const float *b, float *y)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void mpq_chanpad_forward(int n, int hw, int cin, int cout, const float *x, float *y)
{
    const size_t pixels = (size_t)n * hw;
#pragma omp parallel for schedule(static)
    for (size_t p = 0; p < pixels; p++) {
        memcpy(y + p * cout, x + p * cin, (size_t)cin * sizeof *y);
        memset(y + p * cout + cin, 0, (size_t)(cout - cin) * sizeof *y);
    }
}

void mpq_chanpad_backward(int n, int hw, int cin, int cout, const float *dy, float *dx)
{
    const size_t pixels = (size_t)n * hw;
#pragma omp parallel for schedule(static)
    for (size_t p = 0; p < pixels; p++)
        memcpy(dx + p * cin, dy + p * cout, (size_t)cin * sizeof *dx);
}

void mpq_scale_forward(mpq_slice sc, const mpq_step *st, size_t len, const float *x, float *y)
{
    const float a = *mpq_cat(st->val, sc);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < len; i++)
        y[i] = a * x[i];
}

void mpq_scale_backward(mpq_slice sc, const mpq_step *st, size_t len, const float *x,
                        const float *dy, float *dx)
{
    const float a = *mpq_cat(st->val, sc);
    double part[SCALE_PARTS], sum = 0.0;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < SCALE_PARTS; p++) {
        const size_t i0 = len * p / SCALE_PARTS, i1 = len * (p + 1) / SCALE_PARTS;
        double acc = 0.0;
        for (size_t i = i0; i < i1; i++)
            acc += (double)dy[i] * x[i];
        part[p] = acc;
    }
    for (int p = 0; p < SCALE_PARTS; p++)
        sum += part[p];
    *mpq_at(st->grad, sc) += (float)sum;
    if (!dx) return;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < len; i++)
        dx[i] = a * dy[i];
}

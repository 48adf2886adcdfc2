/* Helpers shared by the layer tests (check_conv, check_bn, ...): central-difference gradient
 * checks of a scalar loss, the probe loss L = sum(y * r), a counting row source, and guarded
 * scratch buffers that catch reads of stale scratch (filled with NaN) and writes past their
 * declared size. */
#ifndef MPQ_TESTS_LAYERTEST_H
#define MPQ_TESTS_LAYERTEST_H

#include <stddef.h>

/* L = sum_i y[i] * r[i], accumulated in double. */
double mpq_test_dot(const float *y, const float *r, size_t n);

/* For every i < n: perturbs v[i] by +-eps, evaluates loss(ctx) and compares the central
 * difference with g[i]: |num - g| <= atol + rtol * |num|. Restores v. Prints the first few
 * mismatches (with label) and returns their count (0: all match). */
int mpq_test_gradcheck(double (*loss)(void *ctx), void *ctx, float *v, size_t n, const float *g,
                       float eps, double atol, double rtol, const char *label);

/* A row source (core/step.h, mpq_dy_src) over a stored tensor t of c floats per pixel, counting
 * in asked[p] (one int per pixel, zeroed by the caller) how often pixel p is asked for. */
typedef struct mpq_test_rows {
    const float *t;
    int c;
    int *asked;
} mpq_test_rows;
void mpq_test_rows_fill(const void *ctx, size_t p0, size_t p1, float *out);

/* A 64-byte-aligned buffer of n floats set to NaN, followed by a guard band of sentinels. */
float *mpq_test_guarded_alloc(size_t n);
/* 1 if the guard band after the n floats is intact, else prints and returns 0. */
int mpq_test_guard_ok(const float *buf, size_t n, const char *label);

#endif

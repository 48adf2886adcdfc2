/* Layer-test helpers; see layertest.h. */
#include "layertest.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/params.h"

enum { GUARD = 64 };
static const float SENTINEL = 12345.0f;

double mpq_test_dot(const float *y, const float *r, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++)
        acc += (double)y[i] * r[i];
    return acc;
}

void mpq_test_rows_fill(const void *ctx, size_t p0, size_t p1, float *out)
{
    const mpq_test_rows *d = ctx;
    memcpy(out, d->t + p0 * d->c, (p1 - p0) * d->c * sizeof *out);
    for (size_t p = p0; p < p1; p++)
#pragma omp atomic
        d->asked[p]++;
}

int mpq_test_gradcheck(double (*loss)(void *ctx), void *ctx, float *v, size_t n, const float *g,
                       float eps, double atol, double rtol, const char *label)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const float v0 = v[i];
        v[i] = v0 + eps;
        const double up = loss(ctx);
        v[i] = v0 - eps;
        const double dn = loss(ctx);
        v[i] = v0;
        const double num = (up - dn) / (2.0 * (double)eps);
        if (!(fabs(num - g[i]) <= atol + rtol * fabs(num))) {
            if (bad < 5)
                fprintf(stderr, "%s[%zu]: analytic %.7g, central difference %.7g\n", label, i, g[i],
                        num);
            bad++;
        }
    }
    return bad;
}

float *mpq_test_guarded_alloc(size_t n)
{
    float *b = mpq_alloc_floats(n + GUARD);
    if (!b) return NULL;
    for (size_t i = 0; i < n; i++)
        b[i] = NAN;
    for (size_t i = n; i < n + GUARD; i++)
        b[i] = SENTINEL;
    return b;
}

int mpq_test_guard_ok(const float *buf, size_t n, const char *label)
{
    for (size_t i = n; i < n + GUARD; i++)
        if (buf[i] != SENTINEL) {
            fprintf(stderr, "%s: write past the %zu declared floats (at +%zu)\n", label, n, i - n);
            return 0;
        }
    return 1;
}

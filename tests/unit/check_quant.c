/* Quantizers (src/quant/ and the public API of mpq.h): every method, both signs, with and without
 * zero, against an independent float32 reference transcribed from shared/spec/quantizers.md;
 * hand-computed literal cases; the boundary cases of spec section 10; the bit tricks behind the
 * exact Q2; bitwidths, initial values, find_delta, the update-time clipping and projections;
 * independence of the thread count; error returns. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "mpq.h"
#include "qsettings.h"
#include "quant/codes.h"
#include "quant/qcore.h"
#include "quant/quant.h"
#include "quant/uniform.h"
#include "testutil.h"

/* Check's ck_assert records every passing assertion through a pipe; loops over millions of
 * elements use this instead, which only reports failures. */
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

/* ===================== the reference: spec formulas, no library code ===================== */

#define RC ((float)(1.0 / M_LN2)) /* C  */
#define RL2 ((float)M_LN2)        /* L2 */
#define RS ((float)M_SQRT1_2)     /* S  */

static float r_q2(float v) { return powf(2.0f, roundf((float)log((double)v) * RC)); }
static float r_clip(float v, float lo, float hi)
{
    float t = v > lo ? v : lo;
    return t < hi ? t : hi;
}
static int r_in(float v, float lo, float hi) { return v > lo && v < hi; }
/* The STE derivative of Q2 in exact math: Q2(v) / v. */
static double r_q2d(float v) { return (double)r_q2(v) / (double)v; }

enum { R_UNIFORM, R_POW2, R_FIXED_FP, R_FIXED_POW2 };

/* A quantizer as the spec describes it: the core's scalars, and the chain to the learnable
 * values as gp[i] = ca[i] * A + cb[i] * B, where A, B are the core's two sums
 * (uniform: sum e_d, sum e_xmax; pow2: sum e_xmin, sum e_xmax). */
typedef struct ref {
    int kind, sign, wz;
    float d, xmax;            /* uniform: xmin = -xmax (sign) or 0 */
    float xn, xq, thr;        /* pow2 */
    float fmax, fmin, delta;  /* fixed fp */
    float pmax, pmin, pthr;   /* fixed pow2 */
    double ca[2], cb[2];
} ref;

static ref r_setup(const mpq_qspec *s)
{
    ref k;
    const char *m = s->method;
    const float nb_u = roundf(r_clip(s->p[0], s->n_min, s->n_max)) - (s->sign ? 1.0f : 0.0f);
    const float nb_p = nb_u - (s->with_zero ? 1.0f : 0.0f);
    const int pn = r_in(s->p[0], s->n_min, s->n_max);
    memset(&k, 0, sizeof k);
    k.sign = s->sign;
    k.wz = s->with_zero;
    k.kind = R_UNIFORM;
    if (strncmp(m, "parametric_fp_d_b", 17) == 0) { /* U1: (n, d), xmax = d_q (2^nb - 1) */
        float pw = powf(2.0f, nb_u), den = pw - 1.0f, dc = r_clip(s->p[1], s->d_min, s->d_max);
        int pd = r_in(s->p[1], s->d_min, s->d_max);
        k.d = r_q2(dc);
        k.xmax = k.d * den;
        k.cb[0] = pn ? (double)k.d * pw * M_LN2 : 0.0;          /* dn = G_x d_q 2^nb ln2 */
        k.ca[1] = pd ? r_q2d(dc) : 0.0;                         /* dd = Q2' (G_d + G_x den) */
        k.cb[1] = pd ? r_q2d(dc) * den : 0.0;
    } else if (strncmp(m, "parametric_fp_b_xmax", 20) == 0) { /* U2: d = Q2(xmax / den) */
        float pw = powf(2.0f, nb_u), den = pw - 1.0f;
        float xc = r_clip(s->p[1], s->xmax_min, s->xmax_max), ratio = xc / den;
        int px = r_in(s->p[1], s->xmax_min, s->xmax_max);
        double q2d = r_q2d(ratio);
        k.d = r_q2(ratio);
        k.xmax = xc;
        k.ca[0] = pn ? q2d * (-(double)xc / ((double)den * den)) * pw * M_LN2 : 0.0;
        k.ca[1] = px ? q2d / den : 0.0;                         /* dxmax = G_x + G_ratio / den */
        k.cb[1] = px ? 1.0 : 0.0;
    } else if (strncmp(m, "parametric_fp_d_xmax", 20) == 0) { /* U3 */
        float dc = r_clip(s->p[0], s->d_min, s->d_max);
        k.d = r_q2(dc);
        k.xmax = r_clip(s->p[1], s->xmax_min, s->xmax_max);
        k.ca[0] = r_in(s->p[0], s->d_min, s->d_max) ? r_q2d(dc) : 0.0;
        k.cb[1] = r_in(s->p[1], s->xmax_min, s->xmax_max) ? 1.0 : 0.0;
    } else if (strncmp(m, "parametric_pow2_b_xmax", 22) == 0) { /* P1: xmin = xmax 2^(1-2^nb) */
        float pw = powf(2.0f, nb_p), xc = r_clip(s->p[1], s->xmax_min, s->xmax_max);
        float f = powf(2.0f, 1.0f - pw);
        int px = r_in(s->p[1], s->xmax_min, s->xmax_max);
        k.kind = R_POW2;
        k.xq = r_q2(xc);
        k.xn = f * k.xq;
        k.ca[0] = pn ? -(double)k.xn * M_LN2 * M_LN2 * pw : 0.0; /* -G_n x_n ln^2 2 2^nb */
        k.ca[1] = px ? r_q2d(xc) * f : 0.0;                      /* Q2' (G_x + G_n f) */
        k.cb[1] = px ? r_q2d(xc) : 0.0;
    } else if (strncmp(m, "parametric_pow2_b_xmin", 22) == 0) { /* P2: xmax = xmin 2^(2^nb-1) */
        float pw = powf(2.0f, nb_p), xc = r_clip(s->p[1], s->xmin_min, s->xmin_max);
        float f = powf(2.0f, pw - 1.0f);
        int pm = r_in(s->p[1], s->xmin_min, s->xmin_max);
        k.kind = R_POW2;
        k.xn = r_q2(xc);
        k.xq = k.xn * f;
        k.cb[0] = pn ? (double)k.xq * M_LN2 * M_LN2 * pw : 0.0;  /* G_x x_q ln^2 2 2^nb */
        k.ca[1] = pm ? r_q2d(xc) : 0.0;                          /* Q2' (G_n + G_x f) */
        k.cb[1] = pm ? r_q2d(xc) * f : 0.0;
    } else if (strncmp(m, "parametric_pow2_xmin_xmax", 25) == 0) { /* P3 */
        float c0 = r_clip(s->p[0], s->xmin_min, s->xmin_max);
        float c1 = r_clip(s->p[1], s->xmax_min, s->xmax_max);
        k.kind = R_POW2;
        k.xn = r_q2(c0);
        k.xq = r_q2(c1);
        k.ca[0] = r_in(s->p[0], s->xmin_min, s->xmin_max) ? r_q2d(c0) : 0.0;
        k.cb[1] = r_in(s->p[1], s->xmax_min, s->xmax_max) ? r_q2d(c1) : 0.0;
    } else if (strncmp(m, "fp", 2) == 0) { /* F.fixed_point_quantize */
        int nb = (int)s->p[0] - (s->sign ? 1 : 0);
        k.kind = R_FIXED_FP;
        k.delta = s->p[1];
        k.fmax = (float)((pow(2.0, nb) - 1.0) * (double)k.delta);
        k.fmin = s->sign ? -k.fmax : 0.0f;
    } else { /* F.pow2_quantize */
        int nb = (int)s->p[0] - (s->sign ? 1 : 0) - (s->with_zero ? 1 : 0), mm = (int)s->p[1];
        k.kind = R_FIXED_POW2;
        k.pmax = (float)ldexp(1.0, mm);
        k.pmin = (float)ldexp(1.0, mm - ((1 << nb) - 1));
        k.pthr = (float)((double)k.pmin * M_SQRT1_2);
    }
    k.thr = k.xn * RS;
    return k;
}

/* One element: q, dq/dx * g, and the contributions *ea, *eb to the core's two sums. */
static void r_elem(const ref *k, float x, float g, float *q, float *dx, double *ea, double *eb)
{
    *ea = *eb = 0.0;
    *dx = 0.0f;
    if (k->kind == R_UNIFORM) {
        float xmin = k->sign ? -k->xmax : 0.0f;
        float c1 = x > xmin ? x : xmin, c2 = c1 < k->xmax ? c1 : k->xmax;
        float r = roundf(c2 / k->d), g_r = g * k->d;
        *q = k->d * r;
        *ea = (g * r) + (g_r * ((-c2) / (k->d * k->d)));
        if (x > xmin && x < k->xmax) *dx = g; /* inside: open interval */
        if (x >= k->xmax) *eb = g;
        else if (k->sign && x <= xmin) *eb = -g;
    } else if (k->kind == R_POW2) {
        float xp = k->sign ? x : (x > 0.0f ? x : 0.0f), a = fabsf(xp);
        float sg = xp > 0.0f ? 1.0f : (xp < 0.0f ? -1.0f : 1.0f);
        int i1 = k->wz ? (a >= k->thr && a < k->xn) : a < k->xn;
        int i2 = a >= k->xn && a < k->xq, i3 = a >= k->xq;
        float qp = a == 0.0f ? 0.0f : r_q2(a);
        *q = sg * ((k->xn * (float)i1 + qp * (float)i2) + k->xq * (float)i3);
        if (a != 0.0f) { /* literal: 0 * qp is NaN where qp = 2^128 overflows (|x| > 2^127.5) */
            float t = (((((g * sg) * (float)i2) * qp) * RL2) * RC) / a;
            if (xp < 0.0f) t = -t;
            if (!k->sign && !(x > 0.0f)) t = 0.0f;
            *dx = t;
        }
        if (i1) *ea = g * sg;
        if (i3) *eb = g * sg;
    } else if (k->kind == R_FIXED_FP) {
        if (x > k->fmax) {
            *q = k->fmax;
        } else if (x < k->fmin) {
            *q = k->fmin;
        } else {
            float y = (float)floor((double)(fabsf(x) / k->delta) + 0.5) * k->delta;
            *q = x < 0.0f ? -y : y;
        }
        *dx = (x >= k->fmin && x <= k->fmax) ? g : 0.0f;
    } else {
        float a = fabsf(x), qu = (float)pow(2.0, roundf(log2f(a))), y = qu;
        if (qu > k->pmax) y = k->pmax;
        else if (qu < k->pmin) y = (k->wz && a < k->pthr) ? 0.0f : k->pmin;
        if (x < 0.0f) y = k->sign ? -y : (k->wz ? 0.0f : k->pmin);
        *q = y;
        *dx = (qu > k->pmax || (!k->sign && x < 0.0f)) ? 0.0f : g;
    }
}

/* Runs the library on x (n elements) and compares with the reference: q bit-equal (0 == -0),
 * dq/dx within rtol 1e-6, parameter gradients within 1e-5 * gp_mag. */
static void check_spec(const char *label, const mpq_qspec *s, const float *x, size_t n,
                       uint64_t seed)
{
    const ref k = r_setup(s);
    float *q = malloc(n * sizeof *q), *gx = malloc(n * sizeof *gx), *g = malloc(n * sizeof *g);
    float gp[2] = {NAN, NAN};
    double sa = 0.0, sb = 0.0, aa = 0.0, ab = 0.0;
    ck_assert(q && gx && g);
    mpq_test_fill_uniform(g, n, -1.0f, 1.0f, seed);
    if (n) g[0] = 1.0f;
    EXPECT(mpq_quantize(s, n, x, q) == 0, "%s: %s", label, mpq_last_error());
    EXPECT(mpq_quantize_backward(s, n, x, g, gx, gp) == 0, "%s: %s", label,
                  mpq_last_error());
    for (size_t i = 0; i < n; i++) {
        float rq, rdx;
        double ea, eb;
        r_elem(&k, x[i], g[i], &rq, &rdx, &ea, &eb);
        sa += ea, sb += eb, aa += fabs(ea), ab += fabs(eb);
        EXPECT(q[i] == rq || (isnan(q[i]) && isnan(rq)),
                      "%s p=(%a, %a): q(%a) = %a, expected %a", label, (double)s->p[0],
                      (double)s->p[1], (double)x[i], (double)q[i], (double)rq);
        EXPECT(fabsf(gx[i] - rdx) <= 1e-6f * fabsf(rdx) || (isnan(gx[i]) && isnan(rdx)),
                      "%s p=(%a, %a): dq/dx(%a) * %a = %a, expected %a", label,
                      (double)s->p[0], (double)s->p[1], (double)x[i], (double)g[i],
                      (double)gx[i], (double)rdx);
    }
    for (int j = 0; j < 2; j++) {
        double exp = k.ca[j] * sa + k.cb[j] * sb;
        double mag = fabs(k.ca[j]) * aa + fabs(k.cb[j]) * ab;
        if (mag > 1e37 && isinf(gp[j]) && (gp[j] > 0) == (exp > 0))
            continue; /* the float32 chain overflows (P2 with nb = 7: f = 2^127) */
        EXPECT(fabs(gp[j] - exp) <= 1e-5 * mag + 1e-30,
                      "%s p=(%a, %a): gp[%d] = %.9g, expected %.9g (gp_mag %.3g)", label,
                      (double)s->p[0], (double)s->p[1], j, (double)gp[j], exp, mag);
    }
    free(q);
    free(gx);
    free(g);
}

/* ===================== inputs: boundary cases of section 10 plus random ===================== */

static void push_pm(float *x, size_t *n, float v)
{
    x[(*n)++] = v;
    x[(*n)++] = -v;
}

/* Around v: v and its neighbours one ulp below and above, both signs. */
static void push_ulps(float *x, size_t *n, float v)
{
    push_pm(x, n, v);
    push_pm(x, n, nextafterf(v, 0.0f));
    push_pm(x, n, nextafterf(v, INFINITY));
}

enum { MAX_INPUTS = 512, N_RANDOM = 160 };

static size_t make_inputs(const ref *k, float *x, uint64_t seed)
{
    size_t n = 0;
    mpq_rng r;
    mpq_rng_seed(&r, seed, 0, 0);
    x[n++] = 0.0f;
    x[n++] = -0.0f;
    if (k->kind == R_UNIFORM || k->kind == R_FIXED_FP) {
        float d = k->kind == R_UNIFORM ? k->d : k->delta;
        float top = k->kind == R_UNIFORM ? k->xmax : k->fmax;
        push_ulps(x, &n, top);                       /* +-xmax, +-xmax +- 1 ulp */
        push_pm(x, &n, d * roundf(top / d));         /* the clipped output level */
        for (int j = 0; j < 5; j++) {
            push_pm(x, &n, ((float)j + 0.5f) * d);   /* half steps */
            push_pm(x, &n, nextafterf(((float)j + 0.5f) * d, 0.0f));
            push_pm(x, &n, (float)(j + 1) * d);
        }
        for (int j = 0; j < N_RANDOM; j++)
            x[n++] = (2.0f * mpq_rng_uniform(&r) - 1.0f) * (1.5f * top + 2.0f * d);
    } else {
        float lo = k->kind == R_POW2 ? k->xn : k->pmin, hi = k->kind == R_POW2 ? k->xq : k->pmax;
        float thr = k->kind == R_POW2 ? k->thr : k->pthr;
        push_ulps(x, &n, lo);                        /* xmin */
        push_ulps(x, &n, thr);                       /* the pruning threshold */
        push_ulps(x, &n, hi);                        /* xmax */
        push_ulps(x, &n, hi * 1.41421354f);          /* where 2^round(log2 a) passes xmax */
        push_pm(x, &n, hi * 1.5f);
        push_pm(x, &n, lo * 1.5f);
        push_pm(x, &n, lo * 1.4f);
        push_pm(x, &n, lo * 1.43f);
        push_pm(x, &n, lo * 3.0f);
        push_pm(x, &n, hi * 0.75f);
        push_pm(x, &n, lo * 0.5f);
        float rlo = lo > 0.0f ? lo : hi * 0x1p-20f; /* p_min may underflow to 0 */
        double span = log2((double)hi / rlo) + 4.0;
        for (int j = 0; j < N_RANDOM; j++) {
            double e = mpq_rng_uniform(&r) * span - 2.0;
            float v = (float)((double)rlo * exp2(e));
            x[n++] = mpq_rng_uniform(&r) < 0.5f ? -v : v;
        }
    }
    ck_assert_uint_le(n, MAX_INPUTS);
    return n;
}

/* ===================== parameter grids ===================== */

typedef struct bounds {
    float n_min, n_max, d_min, d_max, xmin_min, xmin_max, xmax_min, xmax_max;
} bounds;
static const bounds BW = {2, 8, 0x1p-8f, 1, 0x1p-16f, 127, 0x1p-8f, 127};  /* w_* defaults */
static const bounds BA = {1, 8, 0x1p-8f, 1, 0x1p-14f, 255, 0x1p-8f, 255};  /* a_* defaults */

static const float N_VALS[] = {1, 2, 2.5f, 3, 3.5f, 4, 4.49f, 7.5f, 8, 9};
static const float D_VALS[] = {0x1p-9f, 0x1p-8f, 0.01f, 0.1f, 0.125f, 0.3f, 0.7f, 1, 1.3f};
static const float XMAX_VALS[] = {0x1p-9f, 0x1p-8f, 0.05f, 0.3f, 0.6f, 1, 1.7f, 127, 255, 300};
static const float XMIN_VALS[] = {0x1p-17f, 0x1p-16f, 0x1p-14f, 0.001f, 0.02f, 0.1f, 0.5f, 3};
#define LEN(a) (sizeof(a) / sizeof(a)[0])

static mpq_qspec make_spec(const char *method, int sign, int wz, const bounds *b)
{
    mpq_qspec s = {.method = method, .sign = sign, .with_zero = wz, .n_min = b->n_min,
                   .n_max = b->n_max, .d_min = b->d_min, .d_max = b->d_max,
                   .xmin_min = b->xmin_min, .xmin_max = b->xmin_max, .xmax_min = b->xmax_min,
                   .xmax_max = b->xmax_max};
    return s;
}

/* All (p0, p1) from the two value lists, for one method / sign / with_zero. */
static int run_grid(const char *method, int sign, int wz, const float *v0, size_t n0,
                    const float *v1, size_t n1)
{
    bounds b = sign ? BW : BA;
    float x[MAX_INPUTS];
    int cases = 0;
    /* nb <= 7 keeps P1's xmin and P2's xmax finite and nonzero (the formulas' range; bounds
     * [1, 8] are accepted too: test_quant_pow2_bitwidth_bounds_only_clip) */
    if (!sign && !wz && strstr(method, "pow2")) b.n_max = 7;
    for (size_t i = 0; i < n0; i++)
        for (size_t j = 0; j < n1; j++) {
            mpq_qspec s = make_spec(method, sign, wz, &b);
            char label[128];
            s.p[0] = v0[i];
            s.p[1] = v1[j];
            ref k = r_setup(&s);
            if (k.kind == R_POW2 && !(isfinite(k.xq) && k.xn > 0.0f)) continue; /* spec: avoid */
            size_t n = make_inputs(&k, x, 1000 + 37 * i + j);
            snprintf(label, sizeof label, "%s sign=%d zero=%d", method, sign, wz);
            check_spec(label, &s, x, n, 7 * i + j);
            cases++;
        }
    return cases;
}

START_TEST(test_quant_uniform_methods_match_reference)
{
    for (int sign = 0; sign < 2; sign++) {
        ck_assert_int_gt(run_grid("parametric_fp_d_b", sign, 0, N_VALS, LEN(N_VALS), D_VALS,
                                  LEN(D_VALS)), 80);
        ck_assert_int_gt(run_grid("parametric_fp_b_xmax", sign, 0, N_VALS, LEN(N_VALS),
                                  XMAX_VALS, LEN(XMAX_VALS)), 80);
        ck_assert_int_gt(run_grid(sign ? "parametric_fp_d_xmax" : "parametric_fp_d_xmax_relu",
                                  sign, 0, D_VALS, LEN(D_VALS), XMAX_VALS, LEN(XMAX_VALS)), 80);
    }
}
END_TEST

START_TEST(test_quant_pow2_methods_match_reference)
{
    for (int sign = 0; sign < 2; sign++)
        for (int wz = 0; wz < 2; wz++) {
            ck_assert_int_gt(run_grid("parametric_pow2_b_xmax", sign, wz, N_VALS, LEN(N_VALS),
                                      XMAX_VALS, LEN(XMAX_VALS)), 80);
            ck_assert_int_gt(run_grid("parametric_pow2_b_xmin", sign, wz, N_VALS, LEN(N_VALS),
                                      XMIN_VALS, LEN(XMIN_VALS) - 1), 50);
            ck_assert_int_gt(run_grid("parametric_pow2_xmin_xmax", sign, wz, XMIN_VALS,
                                      LEN(XMIN_VALS), XMAX_VALS, LEN(XMAX_VALS)), 70);
        }
}
END_TEST

START_TEST(test_quant_fixed_methods_match_reference)
{
    static const float fp_n[] = {2, 3, 4, 8}, fp_delta[] = {0.25f, 0.1f, 0x1p-7f, 0.3f};
    static const float p2_n[] = {3, 4, 5, 8}, p2_m[] = {-3, 0, 2};
    for (int sign = 0; sign < 2; sign++) {
        ck_assert_int_eq(run_grid(sign ? "fp" : "fp_relu", sign, 0, fp_n, LEN(fp_n), fp_delta,
                                  LEN(fp_delta)), 16);
        for (int wz = 0; wz < 2; wz++)
            ck_assert_int_eq(run_grid(sign ? "pow2" : "pow2_relu", sign, wz, p2_n, LEN(p2_n),
                                      p2_m, LEN(p2_m)), 12);
    }
}
END_TEST

/* ===================== hand-computed cases (g = 1 everywhere) ===================== */

typedef struct hand {
    const char *method;
    int sign, wz;
    float p0, p1;
    int n;
    float x[10], q[10], dx[10];
    double gp[2];
} hand;

#define LN2 0.69314718055994531
static const hand HAND[] = {
    /* U3: d = 1/8, xmax = 1/2; half steps round away from zero; +-xmax go to xmax */
    {"parametric_fp_d_xmax", 1, 0, 0.125f, 0.5f, 9,
     {0.1f, -0.3f, 0.7f, 0.0f, 0.5f, -0.5f, 0.0625f, -0.0625f, 0.1875f},
     {0.125f, -0.25f, 0.5f, 0.0f, 0.5f, -0.5f, 0.125f, -0.125f, 0.25f},
     {1, 1, 0, 1, 0, 0, 1, 1, 1}, {1.1, 1.0}},
    /* U3: d = 0.1 is not a power of two (d_q = 1/8, dQ2 = 1.25); xmax = 0.3 is off the grid */
    {"parametric_fp_d_xmax", 1, 0, 0.1f, 0.3f, 3, {1.0f, 0.2f, 0.3f}, {0.25f, 0.25f, 0.25f},
     {0, 1, 0}, {-0.5, 2.0}},
    /* U3: d = 0.5 > xmax = 0.3: outputs exceed xmax */
    {"parametric_fp_d_xmax", 1, 0, 0.5f, 0.3f, 5, {0.25f, 0.2f, -0.25f, 0.3f, 0.24f},
     {0.5f, 0.0f, -0.5f, 0.5f, 0.0f}, {1, 1, 1, 0, 1}, {-0.48, 1.0}},
    /* U3 unsigned: x <= 0 is clipped (dx = 0 at x = 0) */
    {"parametric_fp_d_xmax_relu", 0, 0, 0.125f, 0.5f, 5, {-1.0f, 0.0f, 0.3f, 0.5f, 0.0625f},
     {0.0f, 0.0f, 0.25f, 0.5f, 0.125f}, {0, 0, 1, 0, 1}, {0.1, 1.0}},
    /* U2: n = 4, xmax = 0.6 -> d = Q2(0.6 / 7) = 1/16, top level 10 d = 0.625 */
    {"parametric_fp_b_xmax", 1, 0, 4.0f, 0.6f, 4, {0.6f, 0.59375f, 0.1f, -0.7f},
     {0.625f, 0.625f, 0.125f, -0.625f}, {0, 1, 1, 0},
     {-0.65625 * 0.6 / 49.0 * 8.0 * LN2, 0.65625 / 7.0}},
    /* U1: n = 3, d = 1/4 -> xmax = 3/4 on the grid */
    {"parametric_fp_d_b", 1, 0, 3.0f, 0.25f, 5, {1.0f, 0.375f, -0.375f, 0.75f, 0.1f},
     {0.75f, 0.5f, -0.5f, 0.75f, 0.0f}, {0, 1, 1, 0, 1}, {2.0 * LN2, 5.6}},
    /* U1: half-integer n = 2.5 rounds to 3 */
    {"parametric_fp_d_b", 1, 0, 2.5f, 0.25f, 5, {1.0f, 0.375f, -0.375f, 0.75f, 0.1f},
     {0.75f, 0.5f, -0.5f, 0.75f, 0.0f}, {0, 1, 1, 0, 1}, {2.0 * LN2, 5.6}},
    /* U1 unsigned: n = 2, d = 1/4 -> xmax = 3/4 */
    {"parametric_fp_d_b_relu", 0, 0, 2.0f, 0.25f, 4, {-0.5f, 0.2f, 0.9f, 0.0f},
     {0.0f, 0.25f, 0.75f, 0.0f}, {0, 1, 0, 0}, {LN2, 3.2}},
    /* P3 signed without zero: x = +-0 -> +xmin (dx 0, mpq's deviation), |x| >= xmax -> xmax */
    {"parametric_pow2_xmin_xmax", 1, 0, 0.0625f, 1.0f, 9,
     {0.0f, -0.0f, 0.3f, -0.3f, 0.7f, 1.0f, 0.99f, 0.05f, 2.0f},
     {0.0625f, 0.0625f, 0.25f, -0.25f, 0.5f, 1.0f, 1.0f, 0.0625f, 1.0f},
     {0, 0, (float)(0.25 / 0.3), (float)(0.25 / 0.3), (float)(0.5 / 0.7), 0,
      (float)(1.0 / 0.99), 0, 0},
     {3.0, 2.0}},
    /* P3 unsigned with zero: pruned below xmin/sqrt(2) = 0x1.6a09e6p-5 */
    {"parametric_pow2_xmin_xmax_relu", 0, 1, 0.0625f, 1.0f, 8,
     {0.04f, 0.05f, -0.3f, 0.0f, 0.3f, 1.5f, 0x1.6a09e6p-5f, 0x1.6a09e4p-5f},
     {0.0f, 0.0625f, 0.0f, 0.0f, 0.25f, 1.0f, 0.0625f, 0.0f},
     {0, 0, 0, 0, (float)(0.25 / 0.3), 0, 0, 0}, {2.0, 1.0}},
    /* P1: n = 4, xmax = 1 -> xmin = 2^-7 */
    {"parametric_pow2_b_xmax", 1, 0, 4.0f, 1.0f, 4, {0.005f, 0.3f, 1.5f, 0.001f},
     {0.0078125f, 0.25f, 1.0f, 0.0078125f}, {0, (float)(0.25 / 0.3), 0, 0},
     {-2.0 * 0.0078125 * LN2 * LN2 * 8.0, 1.015625}},
    /* P2 unsigned with zero: n = 3, xmin = 1/8 -> nb = 2, xmax = 1 */
    {"parametric_pow2_b_xmin_relu", 0, 1, 3.0f, 0.125f, 5, {0.1f, 0.08f, 0.6f, 2.0f, -1.0f},
     {0.125f, 0.0f, 0.5f, 1.0f, 0.0f}, {0, 0, (float)(0.5 / 0.6), 0, 0},
     {LN2 * LN2 * 4.0, 9.0}},
    /* fixed point: closed interval for dx */
    {"fp", 1, 0, 4.0f, 0.25f, 6, {1.8f, 1.75f, 0.375f, -0.375f, -2.0f, 0.1f},
     {1.75f, 1.75f, 0.5f, -0.5f, -1.75f, 0.0f}, {0, 1, 1, 1, 0, 1}, {0, 0}},
    {"fp_relu", 0, 0, 4.0f, 0.25f, 5, {-0.1f, 0.0f, 3.75f, 4.0f, 0.125f},
     {0.0f, 0.0f, 3.75f, 3.75f, 0.25f}, {0, 1, 1, 0, 1}, {0, 0}},
    /* pow2 fixed: dx = 0 only once 2^round(log2|x|) > 2^m */
    {"pow2", 1, 0, 4.0f, 0.0f, 6, {1.2f, 1.5f, 0.0f, -0.001f, 0.3f, -3.0f},
     {1.0f, 1.0f, 0.0078125f, -0.0078125f, 0.25f, -1.0f}, {1, 0, 1, 1, 1, 0}, {0, 0}},
    {"pow2_relu", 0, 1, 4.0f, 0.0f, 6, {-1.0f, 0.1f, 0.005f, 0.3f, 1.45f, 0.0f},
     {0.0f, 0.125f, 0.0f, 0.25f, 1.0f, 0.0f}, {0, 1, 1, 1, 0, 1}, {0, 0}},
};

START_TEST(test_quant_hand_computed_cases)
{
    for (size_t c = 0; c < LEN(HAND); c++) {
        const hand *h = &HAND[c];
        mpq_qspec s = make_spec(h->method, h->sign, h->wz, h->sign ? &BW : &BA);
        float q[10], gx[10], g[10], gp[2];
        s.p[0] = h->p0;
        s.p[1] = h->p1;
        for (int i = 0; i < h->n; i++) g[i] = 1.0f;
        ck_assert_int_eq(mpq_quantize(&s, (size_t)h->n, h->x, q), 0);
        ck_assert_int_eq(mpq_quantize_backward(&s, (size_t)h->n, h->x, g, gx, gp), 0);
        for (int i = 0; i < h->n; i++) {
            ck_assert_msg(q[i] == h->q[i], "case %zu (%s): q(%a) = %a, expected %a", c,
                          h->method, (double)h->x[i], (double)q[i], (double)h->q[i]);
            ck_assert_msg(fabsf(gx[i] - h->dx[i]) <= 1e-6f * fabsf(h->dx[i]),
                          "case %zu (%s): dx(%a) = %.9g, expected %.9g", c, h->method,
                          (double)h->x[i], (double)gx[i], (double)h->dx[i]);
        }
        for (int j = 0; j < 2; j++)
            ck_assert_msg(fabs(gp[j] - h->gp[j]) <= 1e-5 * (10.0 + fabs(h->gp[j])),
                          "case %zu (%s): gp[%d] = %.9g, expected %.9g", c, h->method, j,
                          (double)gp[j], h->gp[j]);
        check_spec(h->method, &s, h->x, (size_t)h->n, c); /* the reference agrees too */
    }
}
END_TEST

START_TEST(test_quant_param_on_bound_gets_zero_gradient)
{
    /* U3 with d and xmax exactly on their lower bounds, then just inside */
    mpq_qspec s = make_spec("parametric_fp_d_xmax", 1, 0, &BW);
    float x[4] = {0.001f, 0.5f, 0.7f, 0.0123f}, gx[4], g[4] = {1, 1, 1, 1}, gp[2];
    s.p[0] = BW.d_min;
    s.p[1] = BW.xmax_min;
    ck_assert_int_eq(mpq_quantize_backward(&s, 4, x, g, gx, gp), 0);
    ck_assert(gp[0] == 0.0f && gp[1] == 0.0f);
    s.p[0] = nextafterf(BW.d_min, 1.0f);
    s.p[1] = nextafterf(BW.xmax_min, 1.0f);
    ck_assert_int_eq(mpq_quantize_backward(&s, 4, x, g, gx, gp), 0);
    ck_assert(gp[0] != 0.0f && gp[1] != 0.0f);
    /* P1 with n on its upper bound: no gradient for n, xmax still gets one */
    s = make_spec("parametric_pow2_b_xmax", 1, 0, &BW);
    s.p[0] = BW.n_max;
    s.p[1] = 0.5f;
    ck_assert_int_eq(mpq_quantize_backward(&s, 4, x, g, gx, gp), 0);
    ck_assert(gp[0] == 0.0f && gp[1] != 0.0f);
}
END_TEST

START_TEST(test_quant_backward_may_alias_and_is_thread_independent)
{
    enum { N = 1 << 20 };
    static const char *methods[] = {"parametric_fp_d_xmax", "parametric_fp_b_xmax_relu",
                                    "parametric_pow2_xmin_xmax_relu", "parametric_pow2_b_xmin",
                                    "fp", "pow2_relu"};
    static const float p[][2] = {{0.02f, 0.9f}, {5.0f, 2.5f}, {0.01f, 4.0f}, {4.0f, 0.001f},
                                 {4.0f, 0.125f}, {4.0f, 1.0f}};
    float *x = malloc(N * sizeof *x), *g = malloc(N * sizeof *g), *gx1 = malloc(N * sizeof *x);
    float *gx2 = malloc(N * sizeof *x);
    ck_assert(x && g && gx1 && gx2);
    mpq_test_fill_uniform(x, N, -3.0f, 3.0f, 11);
    mpq_test_fill_uniform(g, N, -1.0f, 1.0f, 12);
    for (size_t k = 0; k < LEN(methods); k++) {
        int sign = strstr(methods[k], "relu") == NULL;
        mpq_qspec s = make_spec(methods[k], sign, !sign && strstr(methods[k], "pow2"),
                                sign ? &BW : &BA);
        float gp1[2], gp2[2];
        s.p[0] = p[k][0];
        s.p[1] = p[k][1];
        omp_set_num_threads(1);
        ck_assert_int_eq(mpq_quantize_backward(&s, N, x, g, gx1, gp1), 0);
        omp_set_num_threads(2);
        memcpy(gx2, g, N * sizeof *g); /* gx aliases gq */
        ck_assert_int_eq(mpq_quantize_backward(&s, N, x, gx2, gx2, gp2), 0);
        omp_set_num_threads(1);
        ck_assert_msg(memcmp(gx1, gx2, N * sizeof *gx1) == 0, "%s: dx differs", methods[k]);
        ck_assert_msg(memcmp(gp1, gp2, sizeof gp1) == 0, "%s: gp differs across threads",
                      methods[k]);
        check_spec(methods[k], &s, x, N, 12);
    }
    free(x);
    free(g);
    free(gx1);
    free(gx2);
}
END_TEST

START_TEST(test_quant_extreme_step_takes_division_path)
{
    /* d = 2^-70 leaves the reciprocal shortcut (1/d^2 overflows): same results as the spec */
    bounds b = BW;
    float x[MAX_INPUTS];
    b.d_min = 0x1p-80f;
    b.xmax_min = 0x1p-80f;
    mpq_qspec s = make_spec("parametric_fp_d_xmax", 1, 0, &b);
    s.p[0] = 0x1p-70f;
    s.p[1] = 0x1.8p-67f;
    ref k = r_setup(&s);
    check_spec("tiny d", &s, x, make_inputs(&k, x, 5), 5);
}
END_TEST

/* ===================== primitives ===================== */

START_TEST(test_quant_constants_and_round)
{
    uint32_t u;
    float c = MPQ_QC, l2 = MPQ_QL2, sq = MPQ_QS;
    memcpy(&u, &c, 4);
    ck_assert_uint_eq(u, 0x3FB8AA3Bu);
    memcpy(&u, &l2, 4);
    ck_assert_uint_eq(u, 0x3F317218u);
    memcpy(&u, &sq, 4);
    ck_assert_uint_eq(u, 0x3F3504F3u);
    ck_assert(MPQ_QC == RC && MPQ_QL2 == logf(2.0f) && MPQ_QS == RS);
    ck_assert_float_eq(mpq_qround(2.5f), 3.0f);
    ck_assert_float_eq(mpq_qround(-2.5f), -3.0f);
    ck_assert_float_eq(mpq_qround(-0.5f), -1.0f);
    ck_assert_float_eq(mpq_qround(0.49999997f), 0.0f);
    ck_assert(signbit(mpq_qround(-0.3f)) && isinf(mpq_qround(-INFINITY)));
    ck_assert(isnan(mpq_qround(NAN)));
    mpq_rng r;
    mpq_rng_seed(&r, 3, 0, 0);
    for (int i = 0; i < 1000000; i++) {
        uint32_t bits = (uint32_t)(mpq_rng_uniform(&r) * 4294967296.0);
        float v;
        memcpy(&v, &bits, 4);
        if (isnan(v)) continue;
        EXPECT(mpq_qround(v) == roundf(v), "round(%a)", (double)v);
    }
}
END_TEST

/* mpq_qround_nonneg gives the bits of mpq_qround on +0, every integer and half below 2^24 and
 * their neighbours, a million random non-negative floats, inf and NaN. */
static int same_round_bits(float v)
{
    const float a = mpq_qround(v), b = mpq_qround_nonneg(v);
    return memcmp(&a, &b, sizeof a) == 0;
}

START_TEST(test_quant_round_nonneg_matches_round)
{
    int bad = 0;
    for (uint32_t i = 0; i < (1u << 25); i++) {
        const float v = (float)i * 0.5f;
        bad += !same_round_bits(v) + !same_round_bits(nextafterf(v, INFINITY)) +
               !same_round_bits(nextafterf(v, 0.0f));
    }
    mpq_rng r;
    mpq_rng_seed(&r, 5, 0, 0);
    for (int i = 0; i < 1000000; i++) {
        const uint32_t bits = (uint32_t)(mpq_rng_uniform(&r) * 2147483648.0); /* sign bit clear */
        float v;
        memcpy(&v, &bits, 4);
        bad += !same_round_bits(v);
    }
    bad += !same_round_bits(INFINITY) + !same_round_bits(NAN) + !same_round_bits(0.0f);
    ck_assert_int_eq(bad, 0);
    ck_assert_float_eq(mpq_qround_nonneg(2.5f), 3.0f);
    ck_assert_float_eq(mpq_qround_nonneg(3.5f), 4.0f);
    ck_assert_float_eq(mpq_qround_nonneg(0.49999997f), 0.0f);
}
END_TEST

/* Whether the power-of-two backward gives the bits of the general one for the value and e_x,
 * and for e_d the once-rounded g * (r - v) (the general form's g * r - g * v rounds twice), here
 * from an exact product in double. */
static int same_pow2_bits(const mpq_ucore k, float x, float g)
{
    float d1, x1, d2, x2;
    const float a = mpq_ucore_backward(k, x, g, 0, 1, &d1, &x1);
    const float b = mpq_ucore_backward_pow2(k, x, g, &d2, &x2);
    const float v = mpq_qclip(x, 0.0f, k.xmax) * k.inv_d, r = mpq_qround_nonneg(v);
    const float ed = (float)((double)g * ((double)r - (double)v));
    return !memcmp(&a, &b, 4) && !memcmp(&ed, &d2, 4) && !memcmp(&x1, &x2, 4);
}

/* mpq_ucore_backward_pow2 gives the bits of mpq_ucore_backward (unsigned, exact reciprocal) for
 * steps 2^-10..2^3, inputs on both sides of 0 and xmax, on the grid, halfway between grid points
 * and at xmax itself, and gradients of either sign from 2^-40 to 2^40, zero, inf and NaN among
 * them (e_d: rounded once, same_pow2_bits); and it differs where the product would be. */
START_TEST(test_quant_ucore_pow2_backward_matches_general)
{
    mpq_rng r;
    mpq_rng_seed(&r, 9, 0, 0);
    int bad = 0;
    for (int e = -10; e <= 3; e++) {
        const float d = ldexpf(1.0f, e);
        const mpq_ucore k = {.d = d,
                             .xmax = d * (float)(1 + e + 12) + d * 0.37f,
                             .inv_d = 1.0f / d,
                             .inv_dd = 1.0f / (d * d)};
        for (int i = 0; i < 20000; i++) {
            const float x = (float)(mpq_rng_uniform(&r) * 3.0 - 1.0) * k.xmax;
            const float g = (mpq_rng_uniform(&r) < 0.5 ? -1.0f : 1.0f) *
                            ldexpf((float)(1.0 + mpq_rng_uniform(&r)),
                                   (int)(mpq_rng_uniform(&r) * 80.0) - 40);
            bad += !same_pow2_bits(k, x, g) + !same_pow2_bits(k, d * (float)(i % 40), g) +
                   !same_pow2_bits(k, (float)(i % 40) * d + 0.5f * d, -g);
        }
        static const float gs[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f};
        static const float xs[] = {0.0f, -0.0f, -1.0f, 1e30f, NAN, INFINITY, -INFINITY};
        for (int i = 0; i < 6; i++) {
            bad += !same_pow2_bits(k, k.xmax, gs[i]);
            for (int j = 0; j < 7; j++)
                bad += !same_pow2_bits(k, xs[j], gs[i]);
        }
    }
    ck_assert_int_eq(bad, 0);
    /* where g * d underflows the general form loses bits that the short one keeps */
    const mpq_ucore k = {.d = 0x1p-8f, .xmax = 1.0f, .inv_d = 0x1p8f, .inv_dd = 0x1p16f};
    ck_assert(!same_pow2_bits(k, 0.5f, 0x1.234568p-125f));
}
END_TEST

/* Q2 over n floats through the block routine of the library. */
static void q2_lib(const float *a, float *q, size_t n)
{
    for (size_t b = 0; b < n; b += MPQ_QBLOCK)
        mpq_q2_block(a + b, q + b, n - b < MPQ_QBLOCK ? n - b : MPQ_QBLOCK);
}

START_TEST(test_quant_q2_bits_match_exact_logs)
{
    /* Every float whose mantissa lies near the rounding tie at sqrt(2), for every exponent, and
     * random floats: the bit shortcut equals both exact formulas wherever it decides, and the
     * block routine equals Q2 everywhere. */
    enum { W = 2 * MPQ_QTIE_WINDOW + 129, R = 1 << 20 };
    float *a = malloc(R * sizeof *a), *q = malloc(R * sizeof *q);
    ck_assert(a && q);
    for (uint32_t e = 0; e < 255; e++) {
        for (uint32_t j = 0; j < W; j++) {
            uint32_t bits = e << 23 | (MPQ_QSQRT2_MANT - MPQ_QTIE_WINDOW - 64 + j);
            memcpy(&a[j], &bits, 4);
        }
        q2_lib(a, q, W);
        for (uint32_t j = 0; j < W; j++) {
            float fast = mpq_qpow2_round_bits(a[j]);
            EXPECT(q[j] == r_q2(a[j]), "Q2(%a) = %a", (double)a[j], (double)q[j]);
            if (fast >= 0.0f)
                EXPECT(fast == (float)pow(2.0, roundf(log2f(a[j]))), "pow2(%a)", (double)a[j]);
        }
    }
    mpq_rng r;
    mpq_rng_seed(&r, 4, 0, 0);
    for (int i = 0; i < R; i++) {
        uint32_t bits = (uint32_t)(mpq_rng_uniform(&r) * 2139095040.0); /* below +inf */
        memcpy(&a[i], &bits, 4);
    }
    a[0] = 0.0f;
    a[1] = 0x1p-149f;
    q2_lib(a, q, R);
    for (int i = 0; i < R; i++) {
        float fast = mpq_qpow2_round_bits(a[i]);
        EXPECT(q[i] == (a[i] == 0.0f ? 0.0f : r_q2(a[i])), "Q2(%a)", (double)a[i]);
        if (fast >= 0.0f)
            EXPECT(fast == (float)pow(2.0, roundf(log2f(a[i]))), "pow2(%a)", (double)a[i]);
    }
    ck_assert(q[0] == 0.0f && q[1] == 0x1p-149f);
    free(a);
    free(q);
}
END_TEST

/* ===================== bitwidth ===================== */

static int bitlen(long k)
{
    int n = 0;
    while (k > 0) k >>= 1, n++;
    return n;
}

START_TEST(test_quant_bitwidth_formulas)
{
    mpq_qspec s = make_spec("parametric_fp_d_xmax", 1, 0, &BW);
    /* d = 2^-8, xmax = 127: k = 32512 levels per side, ceil(log2(32513) + 1) = 16 bits (spec
     * section 6 says 17, which is the count for xmax = 255), not clipped to bitwidth_max */
    s.p[0] = 0x1p-8f;
    s.p[1] = 127.0f;
    ck_assert_float_eq(mpq_qspec_bitwidth(&s), 16.0f);
    s.xmax_max = 255.0f;
    s.p[1] = 255.0f;
    ck_assert_float_eq(mpq_qspec_bitwidth(&s), 17.0f);
    /* the example of mpq.h: levels 0..4 plus sign */
    mpq_qspec ex = {.method = "parametric_fp_d_xmax", .sign = 1, .p = {0.125f, 0.5f},
                    .d_min = 0x1p-8f, .d_max = 1.0f, .xmax_min = 0x1p-8f, .xmax_max = 127.0f};
    float ex_x[4] = {0.1f, -0.3f, 0.7f, 0.0f}, ex_q[4];
    ck_assert_float_eq(mpq_qspec_bitwidth(&ex), 4.0f);
    ck_assert_int_eq(mpq_quantize(&ex, 4, ex_x, ex_q), 0);
    ck_assert(ex_q[0] == 0.125f && ex_q[1] == -0.25f && ex_q[2] == 0.5f && ex_q[3] == 0.0f);
    /* d_xmax: n = max(bitlen(k) + 1, bmin) signed, max(bitlen(k), bmin) unsigned, for every
     * k = round(xmax / d) up to 32512 */
    for (int sign = 0; sign < 2; sign++) {
        s = make_spec("parametric_fp_d_xmax", sign, 0, sign ? &BW : &BA);
        s.p[0] = 0x1p-8f;
        for (long k = 1; k <= 32512; k++) {
            int want = bitlen(k) + sign;
            s.p[1] = (float)k * 0x1p-8f;
            if (want < (int)s.n_min) want = (int)s.n_min;
            EXPECT(mpq_qspec_bitwidth(&s) == (float)want, "k = %ld sign %d", k, sign);
        }
        s.p[0] = 0.25f; /* k = round(0.6 / 0.25) = 2 */
        s.p[1] = 0.6f;
        ck_assert_float_eq(mpq_qspec_bitwidth(&s), (float)(bitlen(2) + sign > s.n_min
                                                               ? bitlen(2) + sign : s.n_min));
    }
    /* xmin_xmax: n = max(bitlen(m) + 1, bmin), m = log2(xmax / xmin), both signs alike */
    for (int sign = 0; sign < 2; sign++) {
        s = make_spec("parametric_pow2_xmin_xmax", sign, !sign, sign ? &BW : &BA);
        for (int i = 0; i <= 14; i++)
            for (int j = -8; j <= 6; j++) {
                int m = j + i, want = bitlen(m) + 1;
                if (m < 0) continue;
                s.p[0] = ldexpf(1.0f, -i);
                s.p[1] = ldexpf(1.0f, j) * 1.2f; /* pow2-rounded to 2^j */
                if (want < (int)s.n_min) want = (int)s.n_min;
                EXPECT(mpq_qspec_bitwidth(&s) == (float)want, "xmin 2^-%d xmax 2^%d", i,
                              j);
            }
    }
    /* the size model's xmin bound is the caller's xmin_max */
    s = make_spec("parametric_pow2_xmin_xmax", 1, 0, &BW);
    s.p[0] = 0x1p-7f;
    s.p[1] = 1.0f;
    ck_assert_float_eq(mpq_qbits(MPQ_QMETHOD_POW2_XMIN_XMAX, &s, 127.0f, 0.0f, NULL), 4.0f);
    ck_assert_float_eq(mpq_qbits(MPQ_QMETHOD_POW2_XMIN_XMAX, &s, 0x1p-9f, 0.0f, NULL), 5.0f);
    /* b methods: round(clip(n)) including the sign bit; half-integers round up */
    s = make_spec("parametric_fp_b_xmax", 1, 0, &BW);
    s.p[1] = 1.0f;
    s.p[0] = 3.5f;
    ck_assert_float_eq(mpq_qspec_bitwidth(&s), 4.0f);
    s.p[0] = 1.0f;
    ck_assert_float_eq(mpq_qspec_bitwidth(&s), 2.0f);
    s.p[0] = 12.0f;
    ck_assert_float_eq(mpq_qspec_bitwidth(&s), 8.0f);
    s = make_spec("fp", 1, 0, &BW);
    s.p[0] = 5.0f;
    s.p[1] = 0.1f;
    ck_assert_float_eq(mpq_qspec_bitwidth(&s), 5.0f);
    s.method = "none";
    ck_assert_float_eq(mpq_qspec_bitwidth(&s), 32.0f);
}
END_TEST

/* ===================== setup, initial values, update-time plumbing ===================== */

START_TEST(test_quant_parse_and_setup)
{
    mpq_qmethod m;
    mpq_quant q;
    ck_assert_int_eq(mpq_qmethod_parse("fp_relu", &m), 0);
    ck_assert_int_eq(m, MPQ_QMETHOD_FP);
    ck_assert_int_eq(mpq_qmethod_parse("parametric_pow2_xmin_xmax_relu", &m), 0);
    ck_assert_int_eq(m, MPQ_QMETHOD_POW2_XMIN_XMAX);
    ck_assert_int_eq(mpq_qmethod_parse("", &m), 0);
    ck_assert_int_eq(m, MPQ_QMETHOD_NONE);
    ck_assert_int_eq(mpq_qmethod_parse("none", &m), 0);
    ck_assert_int_eq(m, MPQ_QMETHOD_NONE);
    ck_assert_int_eq(mpq_qmethod_parse("parametric_fp", &m), MPQ_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "'parametric_fp'"));
    ck_assert_str_eq(mpq_qmethod_param_name(MPQ_QMETHOD_FP_D_XMAX, 0), "d");
    ck_assert_str_eq(mpq_qmethod_param_name(MPQ_QMETHOD_POW2_B_XMIN, 1), "xmin");
    ck_assert_ptr_null(mpq_qmethod_param_name(MPQ_QMETHOD_FP, 0));
    ck_assert_int_eq(mpq_qmethod_n_params(MPQ_QMETHOD_POW2), 0);
    ck_assert_int_eq(mpq_qmethod_n_params(MPQ_QMETHOD_FP_D_B), 2);

    mpq_qsettings st = mpq_test_qsettings("parametric_pow2_xmin_xmax_relu", 1);
    st.xmin_max = 100.0f;
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 1, 1024), 0);
    ck_assert_int_eq(q.method, MPQ_QMETHOD_POW2_XMIN_XMAX);
    ck_assert(q.spec.sign == 0 && q.spec.with_zero == 1 && q.is_act == 1 && q.count == 1024);
    ck_assert_float_eq(q.spec.xmin_max, 255.0f); /* activations: a_xmax_max */
    ck_assert_float_eq(q.xmin_max_cfg, 100.0f);
    st = mpq_test_qsettings("parametric_pow2_b_xmax", 0);
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, 10), 0);
    ck_assert(q.spec.sign == 1 && q.spec.with_zero == 0 && q.n_min == 2 && q.n_max == 8);
    ck_assert_float_eq(q.spec.xmin_max, 127.0f);
    st = mpq_test_qsettings("parametric_fp_dxmax", 0);
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, 10), MPQ_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "w_quantize"));
    st = mpq_test_qsettings("parametric_fp_d_b", 0);
    st.bitwidth_min = 1; /* no value bits left with the sign */
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, 10), MPQ_E_CONFIG);
    st = mpq_test_qsettings("parametric_fp_d_xmax_relu", 1);
    st.stepsize_min = 0.0f;
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 1, 10), MPQ_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "a_quantize"));
}
END_TEST

START_TEST(test_quant_init_values_and_their_bitwidth)
{
    static const struct {
        const char *method;
        int is_act;
        float p0, p1;
    } want[] = {
        {"parametric_fp_d_xmax", 0, 0.125f, 0.875f},
        {"parametric_fp_b_xmax", 0, 4.0f, 0.875f},
        {"parametric_fp_d_b", 0, 4.0f, 0.125f},
        {"parametric_pow2_b_xmax", 0, 4.0f, 1.0f},
        {"parametric_pow2_b_xmin", 0, 4.0f, 0x1p-7f},
        {"parametric_pow2_xmin_xmax", 0, 0x1p-7f, 1.0f},
        {"fp", 0, 4.0f, 0.125f},
        {"pow2", 0, 4.0f, 0.0f},
        {"parametric_fp_d_xmax_relu", 1, 0.125f, 1.875f},
        {"parametric_fp_b_xmax_relu", 1, 4.0f, 1.875f},
        {"parametric_fp_d_b_relu", 1, 4.0f, 0.125f},
        {"parametric_pow2_b_xmax_relu", 1, 4.0f, 2.0f},
        {"parametric_pow2_b_xmin_relu", 1, 4.0f, 0x1p-6f},
        {"parametric_pow2_xmin_xmax_relu", 1, 0x1p-6f, 2.0f},
        {"fp_relu", 1, 4.0f, 0.125f},
        {"pow2_relu", 1, 4.0f, 1.0f},
    };
    for (size_t i = 0; i < LEN(want); i++) {
        mpq_qsettings st = mpq_test_qsettings(want[i].method, want[i].is_act);
        mpq_quant q;
        float val[4] = {0, 0, 0, 0};
        ck_assert_int_eq(mpq_quant_setup(&q, &st, want[i].is_act, 100), 0);
        q.p = (mpq_slice){1, (size_t)mpq_qmethod_n_params(q.method)};
        mpq_quant_init_values(&q, &st, 0.125f, val);
        mpq_qspec s = mpq_quant_spec(&q, val);
        ck_assert_msg(s.p[0] == want[i].p0 && s.p[1] == want[i].p1,
                      "%s: init (%a, %a), expected (%a, %a)", want[i].method, (double)s.p[0],
                      (double)s.p[1], (double)want[i].p0, (double)want[i].p1);
        ck_assert_msg(mpq_quant_bitwidth(&q, val) == 4.0f, "%s: %g bits at init", want[i].method,
                      (double)mpq_quant_bitwidth(&q, val));
    }
    /* an 8-bit pow2 start at delta = 1: xmax = 2^round(log2 127) = 128 is clipped to 127 - 1e-5 */
    mpq_qsettings st = mpq_test_qsettings("parametric_pow2_xmin_xmax", 0);
    mpq_quant q;
    float val[2];
    st.bitwidth = 8;
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, 10), 0);
    q.p = (mpq_slice){0, 2};
    mpq_quant_init_values(&q, &st, 1.0f, val);
    ck_assert_float_eq(val[1], (float)(127.0 - 1e-5));
    ck_assert_float_eq(val[0], (float)(0x1p-16 + 1e-5)); /* 2^7 / 2^127, clipped */
    st = mpq_test_qsettings("pow2", 0);
    st.bitwidth = 8;
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, 10), 0);
    mpq_quant_init_values(&q, &st, 1.0f, val);
    ck_assert_float_eq(q.spec.p[1], 7.0f);
}
END_TEST

START_TEST(test_quant_find_delta)
{
    float w[3] = {0.3f, -0.9f, 0.1f}, w2[2] = {0.875f, -0.5f};
    ck_assert_float_eq(mpq_find_delta(w, 3, 4), 0.125f);    /* floor(log2(0.9 / 7)) = -3 */
    ck_assert_float_eq(mpq_find_delta(w, 3, 5), 0.0625f);   /* ceil(log2(0.9 / 15)) = -4 */
    ck_assert_float_eq(mpq_find_delta(w, 3, 8), 0x1p-7f);   /* ceil(log2(0.9 / 127)) = -7 */
    ck_assert_float_eq(mpq_find_delta(w2, 2, 4), 0.125f);   /* 0.875 + eps over 7: floor -> 2^-3 */
    ck_assert_float_eq(mpq_find_delta(w2, 2, 6), 0x1p-5f);  /* (0.875 + eps) / 31: ceil -> 2^-5 */
}
END_TEST

START_TEST(test_quant_clip_grads)
{
    mpq_qsettings st = mpq_test_qsettings("parametric_fp_d_xmax", 0);
    mpq_quant q;
    float val[2] = {0.125f, 0.5f}, grad[2] = {NAN, 5.0f};
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, 10), 0);
    q.p = (mpq_slice){0, 2};
    mpq_quant_clip_grads(&q, val, grad);
    ck_assert(grad[0] == -0.125f && grad[1] == 0.125f); /* NaN -> -lim; xmax's bound is d */
    grad[0] = -0.01f;
    grad[1] = -3.0f;
    mpq_quant_clip_grads(&q, val, grad);
    ck_assert(grad[0] == -0.01f && grad[1] == -0.125f);
    st = mpq_test_qsettings("parametric_pow2_xmin_xmax_relu", 1);
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 1, 10), 0);
    q.p = (mpq_slice){0, 2};
    val[0] = 0.01f;
    grad[0] = 1.0f;
    grad[1] = -1.0f;
    mpq_quant_clip_grads(&q, val, grad);
    ck_assert(grad[0] == 0.01f && grad[1] == -0.01f);
    st = mpq_test_qsettings("parametric_fp_b_xmax", 0); /* not clipped */
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, 10), 0);
    q.p = (mpq_slice){0, 2};
    grad[0] = 7.0f;
    mpq_quant_clip_grads(&q, val, grad);
    ck_assert_float_eq(grad[0], 7.0f);
}
END_TEST

START_TEST(test_quant_project)
{
    mpq_quant q;
    float v[2];
    /* n_min == n_max == 2: n -> clipS(n; 2.00001, 1.99999) = 1.99999 */
    mpq_qsettings st = mpq_test_qsettings("parametric_fp_b_xmax", 0);
    st.bitwidth_max = 2;
    st.bitwidth = 2;
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, 10), 0);
    q.p = (mpq_slice){0, 2};
    v[0] = 3.0f;
    v[1] = 500.0f;
    mpq_quant_project(&q, v);
    ck_assert_float_eq(v[0], (float)(2.0 - 1e-5));
    ck_assert_float_eq(v[1], (float)(127.0 - 1e-5));
    v[0] = 1.0f;
    mpq_quant_project(&q, v);
    ck_assert_float_eq(v[0], (float)(2.0 - 1e-5));
    /* d >= xmax - 1e-5 moves both */
    st = mpq_test_qsettings("parametric_fp_d_xmax", 0);
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, 10), 0);
    q.p = (mpq_slice){0, 2};
    v[0] = 0.5f;
    v[1] = 0.5f;
    mpq_quant_project(&q, v);
    ck_assert(v[0] == 0.5f + -1e-5f && v[1] == 0.5f + 1e-5f);
    v[0] = 0.7f;
    v[1] = 0.3f;
    mpq_quant_project(&q, v);
    ck_assert(v[0] == 0.3f + -1e-5f && v[1] == 0.7f + 1e-5f);
    v[0] = 0.001f; /* below the step bound, below xmax: only the clip */
    v[1] = 0.3f;
    mpq_quant_project(&q, v);
    ck_assert(v[0] == (float)(0x1p-8 + 1e-5) && v[1] == 0.3f);
    /* activations: xmin is clipped at the cfg's a_xmin_max, not a_xmax_max */
    st = mpq_test_qsettings("parametric_pow2_xmin_xmax_relu", 1);
    st.xmin_max = 0.5f;
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 1, 10), 0);
    q.p = (mpq_slice){0, 2};
    v[0] = 0.9f;
    v[1] = 2.0f;
    mpq_quant_project(&q, v);
    ck_assert(v[0] == (float)(0.5 - 1e-5) && v[1] == 2.0f);
    v[0] = 3.0f; /* xmin above xmax: coupled first */
    v[1] = 2.0f;
    mpq_quant_project(&q, v);
    ck_assert(v[0] == (float)(0.5 - 1e-5) && v[1] == 3.0f + 1e-5f);
}
END_TEST

START_TEST(test_quant_model_wrappers_use_flat_buffers)
{
    enum { N = 300 };
    mpq_qsettings st = mpq_test_qsettings("parametric_fp_d_b", 0);
    mpq_quant q;
    float val[5] = {0, 0, 0, 0, 0}, grad[5] = {0, 0, 0.5f, -0.25f, 0}, x[N], y[N], yr[N];
    float dy[N], dx[N], dxr[N], gp[2];
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, N), 0);
    q.p = (mpq_slice){2, 2};
    mpq_quant_init_values(&q, &st, 0.0625f, val);
    ck_assert(val[2] == 4.0f && val[3] == 0.0625f);
    mpq_test_fill_uniform(x, N, -1, 1, 21);
    mpq_test_fill_uniform(dy, N, -1, 1, 22);
    mpq_quant_forward(&q, val, x, y, N);
    mpq_quant_backward(&q, val, grad, x, dy, dx, N);
    mpq_qspec s = mpq_quant_spec(&q, val);
    ck_assert_int_eq(mpq_quantize(&s, N, x, yr), 0);
    ck_assert_int_eq(mpq_quantize_backward(&s, N, x, dy, dxr, gp), 0);
    ck_assert_mem_eq(y, yr, sizeof y);
    ck_assert_mem_eq(dx, dxr, sizeof dx);
    ck_assert(grad[2] == 0.5f + gp[0] && grad[3] == -0.25f + gp[1]);
    ck_assert(grad[0] == 0.0f && grad[1] == 0.0f && grad[4] == 0.0f);
    /* no quantizer: identity */
    st = mpq_test_qsettings("", 0);
    ck_assert_int_eq(mpq_quant_setup(&q, &st, 0, N), 0);
    mpq_quant_forward(&q, val, x, y, N);
    ck_assert_mem_eq(y, x, sizeof y);
    ck_assert_float_eq(mpq_quant_bitwidth(&q, val), 32.0f);
}
END_TEST

/* Integer codes (quant/codes.h): uniform and power-of-two values encode exactly and decode back,
 * the bit count is the fewest signed bits, packing round-trips at every width, and a value off
 * the grid is refused. */
START_TEST(test_quant_codes_round_trip)
{
    const float step = 0.125f;
    float u[6] = {0.0f, 0.125f, -0.25f, 0.875f, -1.0f, 0.5f};
    float p[6] = {0.0f, 0.25f, -0.5f, 1.0f, -0.0625f, 0.125f};
    int32_t c[6], back[6];
    uint8_t packed[32];
    int emin = 99;
    ck_assert_int_eq(mpq_codes_encode(MPQ_CODE_UNIFORM, u, 6, step, c, &emin, "u"), 0);
    ck_assert_int_eq(c[3], 7);
    ck_assert_int_eq(c[4], -8);
    ck_assert_int_eq(mpq_codes_bits(c, 6), 4); /* -8..7 */
    for (int i = 0; i < 6; i++)
        ck_assert(mpq_code_value(MPQ_CODE_UNIFORM, c[i], step, 0) == u[i]);
    ck_assert_int_eq(mpq_codes_encode(MPQ_CODE_POW2, p, 6, 0.0f, c, &emin, "p"), 0);
    ck_assert_int_eq(emin, -4); /* 2^-4 = 0.0625 is the smallest magnitude */
    ck_assert_int_eq(c[4], -1);
    ck_assert_int_eq(c[3], 5);
    for (int i = 0; i < 6; i++)
        ck_assert(mpq_code_value(MPQ_CODE_POW2, c[i], 0.0f, emin) == p[i]);
    for (int bits = mpq_codes_bits(c, 6); bits <= 32; bits++) {
        size_t nb = mpq_codes_packed_bytes(6, bits);
        ck_assert_uint_eq(nb, (6 * (size_t)bits + 7) / 8);
        mpq_codes_pack(c, 6, bits, packed, nb);
        mpq_codes_unpack(packed, 6, bits, back);
        ck_assert(!memcmp(c, back, sizeof c));
    }
    u[2] = 0.3f; /* not a multiple of the step */
    ck_assert_int_eq(mpq_codes_encode(MPQ_CODE_UNIFORM, u, 6, step, c, &emin, "w"), MPQ_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "element 2"));
}
END_TEST

START_TEST(test_quant_errors)
{
    mpq_qspec s = make_spec("parametric_foo", 1, 0, &BW);
    float x[2] = {0.1f, 0.2f}, q[2], gp[2];
    ck_assert_int_lt(mpq_quantize(&s, 2, x, q), 0);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "parametric_foo"));
    ck_assert_int_lt(mpq_quantize_backward(&s, 2, x, x, q, gp), 0);
    ck_assert_float_lt(mpq_qspec_bitwidth(&s), 0.0f);
    s = make_spec("parametric_fp_d_xmax", 1, 0, &BW);
    s.p[0] = 0.1f;
    s.p[1] = NAN;
    ck_assert_int_lt(mpq_quantize(&s, 2, x, q), 0);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "finite"));
    s.p[1] = 1.0f;
    s.d_min = 0.0f;
    ck_assert_int_lt(mpq_quantize(&s, 2, x, q), 0);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "stepsize"));
    s = make_spec("fp", 1, 0, &BW);
    s.p[0] = 1.0f; /* no bits left after the sign */
    s.p[1] = 0.1f;
    ck_assert_int_lt(mpq_quantize(&s, 2, x, q), 0);
    s = make_spec("pow2", 0, 1, &BA);
    s.p[0] = 4.0f;
    s.p[1] = 0.5f; /* m must be an integer */
    ck_assert_int_lt(mpq_quantize(&s, 2, x, q), 0);
    ck_assert_int_lt(mpq_quantize(NULL, 2, x, q), 0);
    s.p[1] = 1.0f;
    ck_assert_int_eq(mpq_quantize(&s, 2, x, q), 0);
    ck_assert_int_lt(mpq_quantize(&s, 2, NULL, q), 0);
}
END_TEST

/* nnabla accepts any bitwidth bounds for the power-of-two parametrizations; they only clip n:
 * unsigned P1/P2 without zero with bounds [1, 8] quantize, n inside gives what the same n gives
 * with bounds [1, 7], n = 9 gives what n = 8 gives; unordered or infinite bounds are refused. */
START_TEST(test_quant_pow2_bitwidth_bounds_only_clip)
{
    static const char *const methods[] = {"parametric_pow2_b_xmax", "parametric_pow2_b_xmin"};
    static const float x[] = {-0.3f, 0.0f, 0.001f, 0.02f, 0.1f, 0.26f, 0.5f, 0.9f, 1.7f};
    enum { N = sizeof x / sizeof x[0] };
    for (int mi = 0; mi < 2; mi++) {
        bounds b18 = BA, b17 = BA;
        b18.n_min = b17.n_min = 1.0f;
        b18.n_max = 8.0f;
        b17.n_max = 7.0f;
        mpq_qspec s = make_spec(methods[mi], 0, 0, &b18), t = make_spec(methods[mi], 0, 0, &b17);
        float q[N], r[N], g[N], h[N], gp[2], hp[2], ones[N];
        for (int i = 0; i < N; i++)
            ones[i] = 1.0f;
        s.p[0] = t.p[0] = 3.3f; /* inside both: the same quantizer */
        s.p[1] = t.p[1] = mi ? 0.015625f : 1.0f;
        ck_assert_msg(mpq_quantize(&s, N, x, q) == 0, "%s: %s", methods[mi], mpq_last_error());
        ck_assert_int_eq(mpq_quantize(&t, N, x, r), 0);
        ck_assert_int_eq(mpq_quantize_backward(&s, N, x, ones, g, gp), 0);
        ck_assert_int_eq(mpq_quantize_backward(&t, N, x, ones, h, hp), 0);
        ck_assert(!memcmp(q, r, sizeof q) && !memcmp(g, h, sizeof g) && !memcmp(gp, hp, sizeof gp));
        ck_assert_float_eq(mpq_qspec_bitwidth(&s), 3.0f);
        s.p[0] = 9.0f; /* clipped to 8 */
        t = s;
        t.p[0] = 8.0f;
        ck_assert_int_eq(mpq_quantize(&s, N, x, q), 0);
        ck_assert_int_eq(mpq_quantize(&t, N, x, r), 0);
        ck_assert(!memcmp(q, r, sizeof q));
        ck_assert_float_eq(mpq_qspec_bitwidth(&s), 8.0f);
        s.n_min = 9.0f; /* unordered */
        ck_assert_int_lt(mpq_quantize(&s, N, x, q), 0);
        ck_assert_ptr_nonnull(strstr(mpq_last_error(), "ordered"));
    }
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_quant_constants_and_round);
    tcase_add_test(tc, test_quant_round_nonneg_matches_round);
    tcase_add_test(tc, test_quant_ucore_pow2_backward_matches_general);
    tcase_add_test(tc, test_quant_q2_bits_match_exact_logs);
    tcase_add_test(tc, test_quant_hand_computed_cases);
    tcase_add_test(tc, test_quant_uniform_methods_match_reference);
    tcase_add_test(tc, test_quant_pow2_methods_match_reference);
    tcase_add_test(tc, test_quant_fixed_methods_match_reference);
    tcase_add_test(tc, test_quant_param_on_bound_gets_zero_gradient);
    tcase_add_test(tc, test_quant_backward_may_alias_and_is_thread_independent);
    tcase_add_test(tc, test_quant_extreme_step_takes_division_path);
    tcase_add_test(tc, test_quant_bitwidth_formulas);
    tcase_add_test(tc, test_quant_parse_and_setup);
    tcase_add_test(tc, test_quant_init_values_and_their_bitwidth);
    tcase_add_test(tc, test_quant_find_delta);
    tcase_add_test(tc, test_quant_clip_grads);
    tcase_add_test(tc, test_quant_project);
    tcase_add_test(tc, test_quant_model_wrappers_use_flat_buffers);
    tcase_add_test(tc, test_quant_errors);
    tcase_add_test(tc, test_quant_codes_round_trip);
    tcase_add_test(tc, test_quant_pow2_bitwidth_bounds_only_clip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(quant_suite); }

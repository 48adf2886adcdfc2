/* The size model (src/quant/size.c, spec section 6): kbytes of weights (sum) and activations (max
 * with the gradient to the first maximum, or to every tensor above the target with
 * activation_max_penalty = each, or sum), the penalties and their gradients. ceil and
 * round make the bitwidth piecewise constant, so gradients are checked against the spec's STE
 * formulas and those against central differences of the smooth pre-ceil quantity; finally plain
 * gradient descent on the penalty alone, with the reference's clipping and projections, must
 * bring an over-budget set of quantizers under budget. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/qcore.h"
#include "quant/size.h"
#include "qsettings.h"
#include "testutil.h"

#define LN2 0.69314718055994531
#define C_F MPQ_QC

/* A quantizer of the given method whose two values sit at val[off], val[off + 1]. */
static mpq_quant make_q(const char *method, int is_act, size_t count, size_t off)
{
    mpq_qsettings st = mpq_test_qsettings(method, is_act);
    mpq_quant q;
    ck_assert_int_eq(mpq_quant_setup(&q, &st, is_act, count), 0);
    q.p = (mpq_slice){off, (size_t)mpq_qmethod_n_params(q.method)};
    if (q.p.n == 0) mpq_quant_init_values(&q, &st, st.stepsize, NULL);
    return q;
}

static float kb_of(float n, size_t count) { return ((n * (float)count) * 0.125f) * (1.0f / 1024); }

START_TEST(test_size_kbytes_sum_max_and_first_argmax)
{
    float val[8] = {0.125f, 0.875f, 0.125f, 1.875f, 0.125f, 1.875f, 0.03125f, 1.875f};
    mpq_quant qs[7];
    qs[0] = make_q("parametric_fp_d_xmax", 0, 1000, 0);      /* 4 bits */
    qs[1] = make_q("fp", 0, 300, 0);                          /* 4 bits (w_bitwidth) */
    qs[2] = make_q("", 0, 10, 0);                             /* float: 32 bits */
    qs[3] = make_q("parametric_fp_d_xmax_relu", 1, 4096, 2);  /* 4 bits: 2 KB */
    qs[4] = make_q("parametric_fp_d_xmax_relu", 1, 4096, 4);  /* 4 bits: 2 KB, tie */
    qs[5] = make_q("parametric_fp_d_xmax_relu", 1, 2048, 6);  /* k = 60: 6 bits, 1.5 KB */
    qs[6] = make_q("fp_relu", 1, 100, 0);                     /* 4 bits */
    mpq_budget b = {.target_w_kbytes = -1, .target_a_kbytes = -1, .lambda2 = 0.1f,
                    .lambda3 = 0.1f};
    mpq_size_terms t;
    mpq_size_eval(qs, 7, val, &b, NULL, &t);
    float kw = kb_of(4, 1000);
    kw = kw + kb_of(4, 300);
    kw = kw + kb_of(32, 10);
    ck_assert_float_eq(t.kbytes_w, kw);
    ck_assert_float_eq(t.kbytes_a, 2.0f);
    ck_assert_int_eq(t.argmax_a, 3);
    ck_assert(t.loss2 == 0.0f && t.loss3 == 0.0f);
    ck_assert(mpq_size_within_budget(&t, &b));
    b.act_sum = 1;
    mpq_size_eval(qs, 7, val, &b, NULL, &t);
    float ka = kb_of(4, 4096);
    ka = ka + kb_of(4, 4096);
    ka = ka + kb_of(6, 2048);
    ka = ka + kb_of(4, 100);
    ck_assert_float_eq(t.kbytes_a, ka);
    b.target_w_kbytes = 0.5f;
    b.target_a_kbytes = 100.0f;
    mpq_size_eval(qs, 7, val, &b, NULL, &t);
    ck_assert_float_eq(t.loss2, (kw - 0.5f) * (kw - 0.5f));
    ck_assert_float_eq(t.loss3, 0.0f);
    ck_assert(!mpq_size_within_budget(&t, &b));
    b.target_w_kbytes = 100.0f;
    mpq_size_eval(qs, 7, val, &b, NULL, &t);
    ck_assert(mpq_size_within_budget(&t, &b));
}
END_TEST

/* dn/dp of one quantizer through mpq_qbits with dn_in = 1. */
static float bits_grad(const mpq_quant *q, const float *val, float gp[2])
{
    mpq_qspec s = mpq_quant_spec(q, val);
    return mpq_qbits(q->method, &s, q->xmin_max_cfg, 1.0f, gp);
}

/* Central difference of f at v with step h, in double. */
#define CDIFF(f, v, h) (((f)((v) + (h)) - (f)((v) - (h))) / (2.0 * (h)))

static double g_xc, g_dq, g_extra; /* the point of the smooth functions below */
static double phi_dxmax_x(double xc) { return log2(xc / g_dq + 1.0) + g_extra; }
static double phi_dxmax_d(double dq) { return log2(g_xc / dq + 1.0) + g_extra; }
static double g_xn, g_xq;
static double phi_pow2_q(double xq) { return log2(log2(xq / g_xn) + 1.0) + 1.0; }
static double phi_pow2_n(double xn) { return log2(log2(g_xq / xn) + 1.0) + 1.0; }

START_TEST(test_size_bitwidth_gradient_is_the_ste_of_the_smooth_quantity)
{
    /* d_xmax: xmax on the grid (xmax = k d_q) so the smooth log2(xmax/d + 1) [+ 1] and the
     * inferred n share u = k + 1; d not a power of two exercises Q2' = d_q / d. */
    static const float d_vals[] = {0.125f, 0.1f, 0.02f, 0.3f};
    static const int k_vals[] = {3, 7, 12, 100, 1000};
    for (int is_act = 0; is_act < 2; is_act++)
        for (size_t i = 0; i < sizeof d_vals / sizeof *d_vals; i++)
            for (size_t j = 0; j < sizeof k_vals / sizeof *k_vals; j++) {
                mpq_quant q = make_q(is_act ? "parametric_fp_d_xmax_relu" : "parametric_fp_d_xmax",
                                     is_act, 1, 0);
                float dq = mpq_q2(d_vals[i]), val[2] = {d_vals[i], (float)k_vals[j] * dq};
                float gp[2], n = bits_grad(&q, val, gp);
                double u = k_vals[j] + 1.0, q2d = (double)(dq / d_vals[i]) * (MPQ_QL2 * C_F);
                if (val[1] >= 127.0f) continue;
                ck_assert_float_eq(n, ceilf(log2f((float)u)) + (is_act ? 0.0f : 1.0f));
                /* the spec's formulas: dn/dx_c = C/(u d_q), dn/dd_q = -C x_c / (u d_q^2) */
                double want_x = C_F / (u * dq), want_d = -C_F * (double)val[1] / (u * dq * dq);
                ck_assert_double_eq_tol(gp[1], want_x, 1e-5 * fabs(want_x));
                ck_assert_double_eq_tol(gp[0], q2d * want_d, 1e-5 * fabs(q2d * want_d));
                /* ... are the derivatives of the smooth quantity (in log2 units) */
                g_xc = val[1], g_dq = dq, g_extra = is_act ? 0.0 : 1.0;
                ck_assert_double_eq_tol(gp[1], CDIFF(phi_dxmax_x, g_xc, 1e-4 * g_xc),
                                        1e-4 * fabs(want_x));
                ck_assert_double_eq_tol(gp[0] / q2d, CDIFF(phi_dxmax_d, g_dq, 1e-4 * g_dq),
                                        1e-4 * fabs(want_d));
            }
    /* xmin_xmax: n = ceil(log2(log2(xmax/xmin) + 1) + 1) */
    for (int lx = -6; lx <= 2; lx += 2)
        for (int m = 3; m <= 9; m += 2) { /* m = 1 gives n = bmin: no gradient */
            mpq_quant q = make_q("parametric_pow2_xmin_xmax", 0, 1, 0);
            float val[2] = {ldexpf(1.3f, lx - m), ldexpf(0.8f, lx)}, gp[2];
            float xn = mpq_q2(val[0]), xq = mpq_q2(val[1]);
            bits_grad(&q, val, gp);
            g_xn = xn, g_xq = xq;
            double qn = (double)(xn / val[0]) * (MPQ_QL2 * C_F);
            double qq = (double)(xq / val[1]) * (MPQ_QL2 * C_F);
            double fq = CDIFF(phi_pow2_q, g_xq, 1e-5 * g_xq);
            double fn = CDIFF(phi_pow2_n, g_xn, 1e-5 * g_xn);
            ck_assert_double_eq_tol(gp[1] / qq, fq, 1e-4 * fabs(fq));
            ck_assert_double_eq_tol(gp[0] / qn, fn, 1e-4 * fabs(fn));
        }
    /* max(ceil(...), bmin) passes no gradient when ceil(...) <= bmin: k = 1 gives 2 = bmin */
    mpq_quant q = make_q("parametric_fp_d_xmax", 0, 1, 0);
    float val[2] = {0.125f, 0.125f}, gp[2];
    ck_assert_float_eq(bits_grad(&q, val, gp), 2.0f);
    ck_assert(gp[0] == 0.0f && gp[1] == 0.0f);
    /* b methods: dn/dn = 1 strictly inside the bounds, 0 on them */
    q = make_q("parametric_pow2_b_xmax", 0, 1, 0);
    val[0] = 5.3f;
    val[1] = 1.0f;
    ck_assert_float_eq(bits_grad(&q, val, gp), 5.0f);
    ck_assert(gp[0] == 1.0f && gp[1] == 0.0f);
    val[0] = 8.0f;
    bits_grad(&q, val, gp);
    ck_assert(gp[0] == 0.0f && gp[1] == 0.0f);
}
END_TEST

/* lambda * (sum_i n_i c_i / 8192 - target)^2 for continuous n (the smooth penalty). */
static float pen_n[3];
static const size_t pen_c[3] = {1000, 3000, 500};
static double penalty_smooth(double n0)
{
    double kb = (n0 * pen_c[0] + (double)pen_n[1] * pen_c[1] + (double)pen_n[2] * pen_c[2]) /
                8192.0;
    double r = kb - 1.0;
    return r > 0 ? 0.1 * r * r : 0.0;
}

START_TEST(test_size_penalty_gradient_matches_finite_differences)
{
    /* b-method weights: n enters kbytes linearly, so the penalty's gradient is exact calculus */
    float val[6] = {5.2f, 1.0f, 4.0f + 0.3f, 1.0f, 7.4f, 1.0f}, grad[6] = {0};
    mpq_quant qs[3];
    for (int i = 0; i < 3; i++) {
        qs[i] = make_q("parametric_fp_b_xmax", 0, pen_c[i], 2 * (size_t)i);
        pen_n[i] = roundf(val[2 * i]);
    }
    mpq_budget b = {.target_w_kbytes = 1.0f, .target_a_kbytes = -1, .lambda2 = 0.1f,
                    .lambda3 = 0.1f};
    mpq_size_terms t;
    mpq_size_eval(qs, 3, val, &b, grad, &t);
    double r = t.kbytes_w - 1.0;
    ck_assert(r > 0);
    ck_assert_double_eq_tol(t.loss2, r * r, 1e-6 * r * r);
    for (int i = 0; i < 3; i++) {
        double want = 0.1 * 2.0 * r * (double)pen_c[i] / 8192.0;
        ck_assert_double_eq_tol(grad[2 * i], want, 1e-6 * want);
        ck_assert_float_eq(grad[2 * i + 1], 0.0f);
    }
    double fd = CDIFF(penalty_smooth, (double)pen_n[0], 1e-3);
    ck_assert_double_eq_tol(grad[0], fd, 1e-5 * fabs(fd));
    /* the gradient adds to what is there, and is absent under budget */
    mpq_size_eval(qs, 3, val, &b, grad, &t);
    ck_assert_double_eq_tol(grad[0], 2.0 * fd, 2e-5 * fabs(fd));
    memset(grad, 0, sizeof grad);
    b.target_w_kbytes = 100.0f;
    mpq_size_eval(qs, 3, val, &b, grad, &t);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(grad[i], 0.0f);
}
END_TEST

START_TEST(test_size_activation_max_sends_gradient_to_first_max_only)
{
    float val[6] = {0.125f, 1.875f, 0.125f, 1.875f, 0.0625f, 1.875f}, grad[6] = {0};
    mpq_quant qs[3] = {make_q("parametric_fp_d_xmax_relu", 1, 1024, 0),
                       make_q("parametric_fp_d_xmax_relu", 1, 1024, 2),
                       make_q("parametric_fp_d_xmax_relu", 1, 512, 4)};
    mpq_budget b = {.target_w_kbytes = -1, .target_a_kbytes = 0.25f, .lambda2 = 0.1f,
                    .lambda3 = 0.5f};
    mpq_size_terms t;
    mpq_size_eval(qs, 3, val, &b, grad, &t); /* 0.5, 0.5, 0.3125 KB */
    ck_assert_int_eq(t.argmax_a, 0);
    ck_assert_float_eq(t.kbytes_a, 0.5f);
    ck_assert(grad[0] < 0.0f && grad[1] > 0.0f);
    ck_assert(grad[2] == 0.0f && grad[3] == 0.0f && grad[4] == 0.0f && grad[5] == 0.0f);
    /* dL/dxmax = lambda 2 r count/8192 * C/(u d_q) with u = 16 */
    double want = 0.5 * 2.0 * 0.25 * 1024.0 / 8192.0 * C_F / (16.0 * 0.125);
    ck_assert_double_eq_tol(grad[1], want, 1e-5 * want);
    memset(grad, 0, sizeof grad);
    b.act_sum = 1;
    mpq_size_eval(qs, 3, val, &b, grad, &t);
    for (int i = 0; i < 6; i++) ck_assert(grad[i] != 0.0f);
}
END_TEST

/* activation_max_penalty = each: lambda3 * sum_i relu(kb_i - target)^2 (continuous n). */
static float each_n[3];
static const size_t each_c[3] = {1024, 1024, 2048};
static double each_smooth(double n0)
{
    double sum = 0.0;
    for (int i = 0; i < 3; i++) {
        double r = (i == 0 ? n0 : (double)each_n[i]) * (double)each_c[i] / 8192.0 - 0.55;
        if (r > 0) sum += r * r;
    }
    return 0.5 * sum;
}
static double each_smooth_n1(double n1)
{
    float keep = each_n[1];
    each_n[1] = (float)n1;
    double v = each_smooth((double)each_n[0]);
    each_n[1] = keep;
    return v;
}

START_TEST(test_size_activation_max_each_penalty_value_and_gradient)
{
    /* b-method activations: 6, 5 and 2 bits: 0.75, 0.625 and 0.5 KB against a 0.55 KB target */
    float val[6] = {6.2f, 1.0f, 5.3f, 1.0f, 2.4f, 1.0f}, grad[6] = {0};
    mpq_quant qs[3];
    for (int i = 0; i < 3; i++) {
        qs[i] = make_q("parametric_fp_b_xmax_relu", 1, each_c[i], 2 * (size_t)i);
        each_n[i] = roundf(val[2 * i]);
    }
    mpq_budget b = {.target_w_kbytes = -1, .target_a_kbytes = 0.55f, .lambda2 = 0.1f,
                    .lambda3 = 0.5f, .act_max_each = 1};
    mpq_size_terms t;
    mpq_size_eval(qs, 3, val, &b, grad, &t);
    ck_assert_float_eq(t.kbytes_a, 0.75f); /* still the max */
    ck_assert_int_eq(t.argmax_a, 0);
    double r0 = 0.75 - 0.55, r1 = 0.625 - 0.55;
    ck_assert_double_eq_tol(t.loss3, r0 * r0 + r1 * r1, 1e-6);
    double want0 = 0.5 * 2.0 * r0 * 1024.0 / 8192.0, want1 = 0.5 * 2.0 * r1 * 1024.0 / 8192.0;
    ck_assert_double_eq_tol(grad[0], want0, 1e-5 * want0);
    ck_assert_double_eq_tol(grad[2], want1, 1e-5 * want1);
    ck_assert_float_eq(grad[4], 0.0f); /* under the target: no gradient */
    ck_assert_double_eq_tol(grad[0], CDIFF(each_smooth, (double)each_n[0], 1e-3), 1e-5);
    ck_assert_double_eq_tol(grad[2], CDIFF(each_smooth_n1, (double)each_n[1], 1e-3), 1e-5);
    /* the reference's penalty on the same state: only the first largest tensor */
    memset(grad, 0, sizeof grad);
    b.act_max_each = 0;
    mpq_size_eval(qs, 3, val, &b, grad, &t);
    ck_assert_double_eq_tol(t.loss3, r0 * r0, 1e-6);
    ck_assert(grad[0] > 0.0f && grad[2] == 0.0f && grad[4] == 0.0f);
    /* within the budget both are zero, with no gradient */
    memset(grad, 0, sizeof grad);
    b.act_max_each = 1;
    b.target_a_kbytes = 0.75f;
    mpq_size_eval(qs, 3, val, &b, grad, &t);
    ck_assert_float_eq(t.loss3, 0.0f);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(grad[i], 0.0f);
    /* ignored for the sum type */
    b.act_sum = 1;
    b.target_a_kbytes = 1.0f;
    mpq_size_eval(qs, 3, val, &b, grad, &t);
    double rs = (0.75 + 0.625 + 0.5) - 1.0;
    ck_assert_double_eq_tol(t.loss3, rs * rs, 1e-5);
}
END_TEST

/* Plain gradient descent on the size penalty alone (lr * grad), with the reference's gradient
 * clipping and projections, until the budget is met. Returns the number of steps taken. */
static int descend(mpq_quant *qs, int n_q, float *val, size_t n_val, const mpq_budget *b,
                   float lr, int max_steps, mpq_size_terms *t)
{
    float *grad = calloc(n_val, sizeof *grad);
    int step = 0;
    ck_assert_ptr_nonnull(grad);
    for (;; step++) {
        memset(grad, 0, n_val * sizeof *grad);
        mpq_size_eval(qs, n_q, val, b, grad, t);
        if (mpq_size_within_budget(t, b) || step == max_steps) break;
        for (int i = 0; i < n_q; i++) mpq_quant_clip_grads(&qs[i], val, grad);
        for (size_t i = 0; i < n_val; i++) val[i] -= lr * grad[i];
        for (int i = 0; i < n_q; i++) mpq_quant_project(&qs[i], val);
    }
    free(grad);
    return step;
}

START_TEST(test_size_descent_meets_weight_budget)
{
    static const char *methods[] = {"parametric_fp_d_xmax", "parametric_pow2_xmin_xmax",
                                    "parametric_fp_b_xmax"};
    static const float init[][2] = {{0x1p-6f, 1.0f}, {0x1p-12f, 1.0f}, {8.0f - 1e-5f, 1.0f}};
    static const float lr[] = {0.2f, 0.2f, 0.5f};
    for (int mth = 0; mth < 3; mth++) {
        static const size_t counts[3] = {2000, 5000, 800};
        float val[6];
        mpq_quant qs[3];
        mpq_size_terms t0, t;
        for (int i = 0; i < 3; i++) {
            qs[i] = make_q(methods[mth], 0, counts[i], 2 * (size_t)i);
            val[2 * i] = init[mth][0];
            val[2 * i + 1] = init[mth][1];
        }
        mpq_budget b = {.target_w_kbytes = -1, .target_a_kbytes = -1, .lambda2 = 0.1f,
                        .lambda3 = 0.1f};
        mpq_size_eval(qs, 3, val, &b, NULL, &t0);
        b.target_w_kbytes = 0.5f * t0.kbytes_w;
        int steps = descend(qs, 3, val, 6, &b, lr[mth], 500, &t);
        ck_assert_msg(t.kbytes_w <= b.target_w_kbytes, "%s: %g KB after %d steps (target %g)",
                      methods[mth], (double)t.kbytes_w, steps, (double)b.target_w_kbytes);
        ck_assert_int_gt(steps, 0);
    }
}
END_TEST

START_TEST(test_size_descent_meets_activation_budget_max_and_sum)
{
    static const size_t counts[3] = {16384, 8192, 4096};
    for (int sum = 0; sum < 2; sum++) {
        float val[6];
        mpq_quant qs[4];
        mpq_size_terms t0, t;
        for (int i = 0; i < 3; i++) {
            qs[i] = make_q("parametric_fp_d_xmax_relu", 1, counts[i], 2 * (size_t)i);
            val[2 * i] = 0x1p-6f;
            val[2 * i + 1] = 4.0f; /* k = 256: 9 bits */
        }
        qs[3] = make_q("parametric_fp_d_xmax", 0, 1000, 0); /* a weight: ignored here */
        mpq_budget b = {.target_w_kbytes = -1, .target_a_kbytes = -1, .act_sum = sum,
                        .lambda2 = 0.1f, .lambda3 = 0.1f};
        mpq_size_eval(qs, 3, val, &b, NULL, &t0);
        b.target_a_kbytes = 0.55f * t0.kbytes_a;
        int steps = descend(qs, 3, val, 6, &b, 0.2f, 500, &t);
        ck_assert_msg(t.kbytes_a <= b.target_a_kbytes, "%s: %g KB after %d steps (target %g)",
                      sum ? "sum" : "max", (double)t.kbytes_a, steps, (double)b.target_a_kbytes);
        ck_assert_int_gt(steps, 0);
    }
}
END_TEST

START_TEST(test_size_descent_max_budget_each_is_faster_with_equal_largest_tensors)
{
    /* seven equal largest tensors (as in ResNet-20's first stage): the reference's penalty moves
     * one tensor at a time, `each` all seven together */
    int steps[2];
    for (int each = 0; each < 2; each++) {
        float val[16];
        mpq_quant qs[8];
        mpq_size_terms t0, t;
        for (int i = 0; i < 8; i++) {
            qs[i] = make_q("parametric_fp_d_xmax_relu", 1, i < 7 ? 12544 : 6272, 2 * (size_t)i);
            val[2 * i] = 0x1p-4f;
            val[2 * i + 1] = 1.0f; /* k = 16: 5 bits */
        }
        mpq_budget b = {.target_w_kbytes = -1, .target_a_kbytes = -1, .lambda2 = 0.1f,
                        .lambda3 = 0.1f, .act_max_each = each};
        mpq_size_eval(qs, 8, val, &b, NULL, &t0);
        b.target_a_kbytes = t0.kbytes_a * 0.8f; /* 4 bits */
        steps[each] = descend(qs, 8, val, 16, &b, 0.2f, 5000, &t);
        ck_assert_msg(t.kbytes_a <= b.target_a_kbytes, "%s: %g KB after %d steps (target %g)",
                      each ? "each" : "first", (double)t.kbytes_a, steps[each],
                      (double)b.target_a_kbytes);
        for (int i = 0; i < 7; i++) ck_assert_float_le(mpq_quant_bitwidth(&qs[i], val), 4.0f);
    }
    ck_assert_msg(steps[1] * 3 < steps[0], "each: %d steps, first: %d", steps[1], steps[0]);
}
END_TEST

static Suite *size_suite(void)
{
    Suite *s = suite_create("size");
    TCase *tc = tcase_create("size");
    tcase_add_test(tc, test_size_kbytes_sum_max_and_first_argmax);
    tcase_add_test(tc, test_size_bitwidth_gradient_is_the_ste_of_the_smooth_quantity);
    tcase_add_test(tc, test_size_penalty_gradient_matches_finite_differences);
    tcase_add_test(tc, test_size_activation_max_sends_gradient_to_first_max_only);
    tcase_add_test(tc, test_size_descent_meets_weight_budget);
    tcase_add_test(tc, test_size_descent_meets_activation_budget_max_and_sum);
    tcase_add_test(tc, test_size_activation_max_each_penalty_value_and_gradient);
    tcase_add_test(tc, test_size_descent_max_budget_each_is_faster_with_equal_largest_tensors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(size_suite); }

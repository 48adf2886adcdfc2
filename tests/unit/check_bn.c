/* bn: training and eval against a double-precision reference (ghost groups 1 and 2, running
 * statistics with the unbiased variance), central-difference gradients of x, gamma and beta in
 * both modes, the fused activations (ReLU, ReLU6, the activation quantizer) against BN followed
 * by layers/act in both modes (every quantizer method, channel counts taking each row-loop path),
 * with and without a residual added before the activation, dx aliasing
 * dy, a cache of statistics only, independence of the thread count over many row chunks, ghost
 * groups equal separate batches, and sync-BN: two half-batch replicas in two threads whose reducer
 * sums across them reproduce the full batch's outputs, gradients and running statistics. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/params.h"
#include "kernels/gemm.h"
#include "layers/bn.h"
#include "quant/uniform.h"
#include "layertest.h"
#include "testutil.h"

enum { HW = 6, C = 5 };
static const float GRAD0 = 0.125f;

typedef struct fixture {
    mpq_bn l;
    mpq_step s;
    int n, groups;
    size_t nx, ncache, nws;
    float *x, *y, *r, *dx, *val, *grad, *state, *arena, *ws;
    mpq_quant aq; /* the activation quantizer an mpq_act of the fixture points at */
} fixture;

/* c channels. val: gamma (c) then beta (c), a quantizer's pair; state: running mean (c) then
 * running var (c). */
static void fixture_init_c(fixture *f, int n, int groups, int c, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    mpq_bn_init(&f->l, HW, c);
    f->l.gamma = (mpq_slice){0, c};
    f->l.beta = (mpq_slice){c, c};
    f->l.mean = (mpq_slice){0, c};
    f->l.var = (mpq_slice){c, c};
    f->n = n, f->groups = groups;
    f->nx = (size_t)n * HW * c;
    f->ncache = mpq_bn_cache_floats(&f->l, n, groups);
    f->l.cache = (mpq_slice){0, f->ncache};
    f->nws = mpq_bn_ws_floats(&f->l, n, groups);
    f->x = malloc(f->nx * sizeof(float));
    f->y = aligned_alloc(64, (f->nx * sizeof(float) + 63) / 64 * 64); /* streamable */
    f->r = malloc(f->nx * sizeof(float));
    f->dx = aligned_alloc(64, (f->nx * sizeof(float) + 63) / 64 * 64);
    f->val = malloc((2 * c + 2) * sizeof(float)); /* gamma, beta, a quantizer's pair */
    f->grad = malloc((2 * c + 2) * sizeof(float));
    f->state = malloc(2 * c * sizeof(float));
    f->arena = mpq_test_guarded_alloc(f->ncache);
    f->ws = mpq_test_guarded_alloc(f->nws);
    mpq_test_fill_uniform(f->x, f->nx, -2, 2, seed);
    mpq_test_fill_uniform(f->r, f->nx, -1, 1, seed + 1);
    mpq_test_fill_uniform(f->val, c, 0.5f, 1.5f, seed + 2);
    mpq_test_fill_uniform(f->val + c, c, -1, 1, seed + 3);
    mpq_test_fill_uniform(f->state, c, -0.5f, 0.5f, seed + 4);
    mpq_test_fill_uniform(f->state + c, c, 0.5f, 2.0f, seed + 5);
    for (int i = 0; i < 2 * c + 2; i++)
        f->grad[i] = GRAD0;
    f->val[2 * c] = f->val[2 * c + 1] = 0.0f;
    f->s = (mpq_step){.val = f->val,
                      .wq = f->val,
                      .grad = f->grad,
                      .state = f->state,
                      .arena = f->arena,
                      .ws = f->ws,
                      .ws_floats = f->nws,
                      .n = n,
                      .n_groups = groups,
                      .training = 1};
}

static void fixture_init(fixture *f, int n, int groups, uint64_t seed)
{
    fixture_init_c(f, n, groups, C, seed);
}

/* Copies x, r, gamma, beta and state of samples [n0, n0 + g->n) of `from` into g. */
static void fixture_take(fixture *g, const fixture *from, int n0)
{
    memcpy(g->x, from->x + (size_t)n0 * HW * C, g->nx * sizeof(float));
    memcpy(g->r, from->r + (size_t)n0 * HW * C, g->nx * sizeof(float));
    memcpy(g->val, from->val, 2 * C * sizeof(float));
    memcpy(g->state, from->state, 2 * C * sizeof(float));
}

static void fixture_free(fixture *f)
{
    ck_assert(mpq_test_guard_ok(f->arena, f->ncache, "bn cache"));
    ck_assert(mpq_test_guard_ok(f->ws, f->nws, "bn ws"));
    free(f->x), free(f->y), free(f->r), free(f->dx), free(f->val), free(f->grad);
    free(f->state), free(f->arena), free(f->ws);
}

/* Reference training step in double: y, dx, dgamma/dbeta (added to GRAD0), new running stats. */
static void bn_ref_train(const fixture *f, float *y, float *dx, float *grad, float *state)
{
    const int per = f->n / f->groups, nc = f->l.c;
    const double m = (double)per * HW;
    const float *gamma = f->val, *beta = f->val + nc;
    for (int i = 0; i < 2 * nc; i++)
        grad[i] = GRAD0;
    for (int c = 0; c < nc; c++) {
        double mean_acc = 0.0, var_acc = 0.0;
        for (int g = 0; g < f->groups; g++) {
            const size_t i0 = (size_t)g * per * HW, i1 = i0 + (size_t)per * HW;
            double mean = 0.0, var = 0.0, sdy = 0.0, sdyh = 0.0;
            for (size_t i = i0; i < i1; i++)
                mean += f->x[i * nc + c];
            mean /= m;
            for (size_t i = i0; i < i1; i++)
                var += pow(f->x[i * nc + c] - mean, 2);
            var /= m;
            const double inv = 1.0 / sqrt(var + 1e-5);
            for (size_t i = i0; i < i1; i++) {
                const double h = (f->x[i * nc + c] - mean) * inv;
                y[i * nc + c] = (float)(gamma[c] * h + beta[c]);
                sdy += f->r[i * nc + c];
                sdyh += f->r[i * nc + c] * h;
            }
            for (size_t i = i0; i < i1; i++) {
                const double h = (f->x[i * nc + c] - mean) * inv;
                dx[i * nc + c] =
                    (float)(gamma[c] * inv / m * (m * f->r[i * nc + c] - sdy - h * sdyh));
            }
            grad[c] += (float)sdyh;
            grad[nc + c] += (float)sdy;
            mean_acc += mean;
            var_acc += var * m / (m - 1.0);
        }
        state[c] = (float)(0.9 * f->state[c] + 0.1 * mean_acc / f->groups);
        state[nc + c] = (float)(0.9 * f->state[nc + c] + 0.1 * var_acc / f->groups);
    }
}

/* The row loops' paths: see test_bn_gradients_match_central_differences. */
START_TEST(test_bn_training_matches_reference)
{
    static const int cs[] = {C, 16, 32, 48, 64, 72};
    for (int i = 0; i < 6; i++)
        for (int groups = 1; groups <= 2; groups++) {
            const int c = cs[i];
            fixture f;
            fixture_init_c(&f, 4, groups, c, 10 + groups + (c != C) * c);
            float *y = malloc(f.nx * sizeof *y), *dx = malloc(f.nx * sizeof *dx);
            float *grad = malloc(2 * (size_t)c * sizeof *grad);
            float *state = malloc(2 * (size_t)c * sizeof *state);
            bn_ref_train(&f, y, dx, grad, state);
            mpq_bn_forward(&f.l, NULL, &f.s, f.x, f.y);
            ck_assert(mpq_ck_allclose(f.y, y, f.nx, 1e-5f, 1e-5f, "bn y"));
            ck_assert(
                mpq_ck_allclose(f.state, state, 2 * (size_t)c, 1e-5f, 1e-6f, "bn running stats"));
            mpq_bn_backward(&f.l, NULL, &f.s, f.x, f.r, f.dx);
            ck_assert(mpq_ck_allclose(f.dx, dx, f.nx, 1e-4f, 1e-5f, "bn dx"));
            ck_assert(
                mpq_ck_allclose(f.grad, grad, 2 * (size_t)c, 1e-5f, 1e-5f, "bn dgamma,dbeta"));
            free(y), free(dx), free(grad), free(state);
            fixture_free(&f);
        }
}
END_TEST

START_TEST(test_bn_eval_uses_running_statistics)
{
    fixture f;
    fixture_init(&f, 3, 1, 20);
    f.s.training = 0;
    float state0[2 * C], *y = malloc(f.nx * sizeof *y);
    memcpy(state0, f.state, sizeof state0);
    for (size_t i = 0; i < f.nx; i++) {
        const int c = (int)(i % C);
        y[i] =
            (float)(f.val[c] * (f.x[i] - f.state[c]) / sqrt(f.state[C + c] + 1e-5) + f.val[C + c]);
    }
    mpq_bn_forward(&f.l, NULL, &f.s, f.x, f.y);
    ck_assert(mpq_ck_allclose(f.y, y, f.nx, 1e-5f, 1e-5f, "bn eval y"));
    ck_assert_mem_eq(f.state, state0, sizeof state0); /* eval leaves the statistics alone */
    free(y);
    fixture_free(&f);
}
END_TEST

static double probe_loss(void *ctx)
{
    fixture *f = ctx;
    mpq_bn_forward(&f->l, NULL, &f->s, f->x, f->y);
    return mpq_test_dot(f->y, f->r, f->nx);
}

static void check_fd(int c, int groups, int training, float eps, double atol)
{
    fixture f;
    fixture_init_c(&f, 4, groups, c, 30 + groups + 2 * training + (c != C) * c);
    f.s.training = training;
    for (int i = 0; i < 2 * c; i++)
        f.grad[i] = 0.0f;
    probe_loss(&f);
    mpq_bn_backward(&f.l, NULL, &f.s, f.x, f.r, f.dx);
    ck_assert_int_eq(mpq_test_gradcheck(probe_loss, &f, f.x, f.nx, f.dx, eps, atol, 1e-2, "dx"), 0);
    ck_assert_int_eq(mpq_test_gradcheck(probe_loss, &f, f.val, 2 * (size_t)c, f.grad, eps, atol,
                                        1e-2, "dgamma,dbeta"),
                     0);
    fixture_free(&f);
}

/* A tail slice (C), slices compiled for their width (16, 32, both: 48, two: 64), whole rows
 * (72). */
START_TEST(test_bn_gradients_match_central_differences)
{
    static const int cs[] = {C, 16, 32, 48, 64, 72};
    for (int i = 0; i < 6; i++) {
        check_fd(cs[i], 1, 1, 1e-3f, 2e-3);
        check_fd(cs[i], 2, 1, 1e-3f, 2e-3);
        check_fd(cs[i], 1, 0, 0.25f, 1e-4); /* eval: affine in x, gamma and beta */
    }
}
END_TEST

START_TEST(test_bn_cache_holds_statistics_and_dx_may_alias_dy)
{
    fixture f;
    fixture_init(&f, 4, 2, 40);
    ck_assert_uint_eq(f.ncache, 6 * 2 * C); /* mean, inverse std and backward's 4 per group */
    float *g = malloc(f.nx * sizeof *g);
    float grad[2 * C];
    mpq_bn_forward(&f.l, NULL, &f.s, f.x, f.y);
    mpq_bn_backward(&f.l, NULL, &f.s, f.x, f.r, f.dx);
    memcpy(grad, f.grad, sizeof grad);
    for (int i = 0; i < 2 * C; i++)
        f.grad[i] = GRAD0;
    memcpy(g, f.r, f.nx * sizeof *g);
    mpq_bn_backward(&f.l, NULL, &f.s, f.x, g, g); /* dx aliases dy */
    ck_assert_mem_eq(g, f.dx, f.nx * sizeof *g);
    ck_assert_mem_eq(f.grad, grad, sizeof grad);
    free(g);
    fixture_free(&f);
}
END_TEST

/* An activation over the fixture's per-sample tensor; QUANT uses the default activation
 * settings with the given method, its pair at val[2c], val[2c + 1]. */
static mpq_act make_act_q(fixture *f, mpq_act_kind kind, const char *method)
{
    const int c = f->l.c;
    mpq_act a = {.kind = kind, .len = (size_t)HW * c};
    if (kind == MPQ_ACT_QUANT) {
        mpq_cfg cfg;
        mpq_cfg_defaults(&cfg);
        strcpy(cfg.aq.method, method);
        ck_assert_int_eq(mpq_quant_setup(&f->aq, &cfg.aq, 1, a.len), 0);
        f->aq.p = (mpq_slice){2 * (size_t)c, 2};
        mpq_quant_init_values(&f->aq, &cfg.aq, cfg.aq.stepsize, f->val);
        a.q = &f->aq;
    }
    return a;
}

static mpq_act make_act(fixture *f, mpq_act_kind kind)
{
    return make_act_q(f, kind, "parametric_fp_d_xmax_relu");
}

/* The quantizer's two gradients (added to GRAD0) where BN fuses it element by element (a
 * power-of-two uniform core, mpq_ucore_pow2), from its terms over the quantizer's input t and
 * incoming gradient dy summed exactly in double: e_d = g * (r - v), e_x = [t >= xmax] * g.
 * Returns 0 (out untouched) for any other quantizer. */
static int exact_uq_grads(const mpq_act *a, const float *val, const float *t, const float *dy,
                          size_t n, int c, float out[2])
{
    mpq_ucore k;
    if (a->kind != MPQ_ACT_QUANT || !mpq_quant_ucore(a->q, val, &k) || !mpq_ucore_pow2(&k))
        return 0;
    double sum_ed = 0.0, sum_ex = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float q = mpq_qclip(t[i], 0.0f, k.xmax), v = q * k.inv_d, r = mpq_qround_nonneg(v);
        sum_ed += (double)dy[i] * ((double)r - (double)v);
        sum_ex += q == k.xmax ? (double)dy[i] : 0.0;
    }
    float *grad = malloc((2 * (size_t)c + 2) * sizeof *grad);
    for (int i = 0; i < 2 * c + 2; i++)
        grad[i] = GRAD0;
    mpq_quant_ucore_grads(a->q, &k, sum_ed, sum_ex, grad);
    out[0] = grad[2 * c], out[1] = grad[2 * c + 1];
    free(grad);
    return 1;
}

/* The fused backward's parameter gradients (f) against the separate layers' (u): BN's to
 * rounding; a fused quantizer's (exact_uq_grads) against the exact sums, since its terms are
 * rounded once where the quantizer layer applied apart forms g * r - g * v as the reference's
 * graph does, whose rounding the sum's cancellation magnifies (measured on 400k elements: 1e-8 to
 * 5e-8 relative error against 3e-7 to 2e-5): the separate layers only within 1e-3. t and dy: the
 * quantizer's input and incoming gradient. */
static void check_fused_grads(const fixture *f, const fixture *u, const mpq_act *a, const float *t,
                              int c)
{
    float exact[2];
    if (!exact_uq_grads(a, f->val, t, u->r, f->nx, c, exact)) {
        ck_assert(
            mpq_ck_allclose(f->grad, u->grad, 2 * (size_t)c + 2, 1e-5f, 1e-5f, "fused grads"));
        return;
    }
    ck_assert(mpq_ck_allclose(f->grad, u->grad, 2 * (size_t)c, 1e-5f, 1e-5f, "fused BN grads"));
    ck_assert(mpq_ck_allclose(f->grad + 2 * c, exact, 2, 1e-5f, 1e-5f, "fused quantizer grads"));
    ck_assert(mpq_ck_allclose(u->grad + 2 * c, exact, 2, 1e-3f, 1e-3f, "apart quantizer grads"));
}

/* BN with a fused activation equals BN followed by the activation layer: forward bitwise,
 * backward (dx, dgamma, dbeta, the quantizer's gradients) to rounding. c channels; method names
 * the quantizer of QUANT. */
static void check_fused(mpq_act_kind kind, const char *method, int c, int training, int groups,
                        uint64_t seed)
{
    fixture f, u;
    fixture_init_c(&f, 4, groups, c, seed);
    fixture_init_c(&u, 4, groups, c, seed);
    f.s.training = u.s.training = training;
    if (kind == MPQ_ACT_RELU6) f.val[0] = u.val[0] = 5.0f; /* some outputs above 6 */
    mpq_act a = make_act_q(&f, kind, method);
    make_act_q(&u, kind, method);
    float *t = malloc(f.nx * sizeof *t), *g = malloc(f.nx * sizeof *g);
    mpq_bn_forward(&f.l, &a, &f.s, f.x, f.y);
    mpq_bn_forward(&u.l, NULL, &u.s, u.x, t);
    mpq_act_forward(&a, &u.s, t, u.y);
    ck_assert_mem_eq(f.y, u.y, f.nx * sizeof(float));
    ck_assert_mem_eq(f.state, u.state, 2 * (size_t)c * sizeof(float));
    mpq_bn_backward(&f.l, &a, &f.s, f.x, f.r, f.dx);
    mpq_act_backward(&a, &u.s, t, u.r, g);
    mpq_bn_backward(&u.l, NULL, &u.s, u.x, g, u.dx);
    ck_assert(mpq_ck_allclose(f.dx, u.dx, f.nx, 1e-5f, 1e-6f, "fused dx"));
    check_fused_grads(&f, &u, &a, t, c);
    if (kind == MPQ_ACT_QUANT && mpq_qmethod_n_params(a.q->method) == 2) {
        /* the second value got a gradient; both did for the uniform (fused) methods */
        ck_assert_msg(f.grad[2 * c + 1] != GRAD0, "%s c=%d training=%d", method, c, training);
        if (!strncmp(method, "parametric_fp_", 14))
            ck_assert_msg(f.grad[2 * c] != GRAD0, "%s c=%d training=%d", method, c, training);
    }
    free(t), free(g);
    fixture_free(&f), fixture_free(&u);
}

START_TEST(test_bn_fused_activation_matches_separate_layers)
{
    static const mpq_act_kind kinds[3] = {MPQ_ACT_RELU, MPQ_ACT_RELU6, MPQ_ACT_QUANT};
    static const int cs[] = {C, 16, 32, 48, 72}; /* the row loops' paths */
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 5; i++)
            for (int training = 0; training < 2; training++)
                check_fused(kinds[k], "parametric_fp_d_xmax_relu", cs[i], training, 1 + training,
                            70 + 4 * k + training + 16 * i);
}
END_TEST

/* Every activation quantizer, fused element by element (U1-U3) or called per chunk (the others),
 * for channel counts that take each row-loop path: a tail slice alone (5), slices compiled for
 * their width (16, 32), with a tail (40), of both widths (48), two of 32 (64), whole rows in
 * several row blocks (200: 10 rows each), rows wider than the staged gradient (8200). */
START_TEST(test_bn_fused_quantizers_match_separate_layers)
{
    static const char *const methods[] = {
        "parametric_fp_d_xmax_relu",      "parametric_fp_d_b_relu",
        "parametric_fp_b_xmax_relu",      "parametric_pow2_b_xmax_relu",
        "parametric_pow2_xmin_xmax_relu", "fp_relu"};
    static const int cs[] = {5, 16, 32, 40, 48, 64, 200, 8200};
    for (int m = 0; m < 6; m++)
        for (int i = 0; i < 8; i++)
            for (int training = 0; training < 2; training++)
                check_fused(MPQ_ACT_QUANT, methods[m], cs[i], training, 1 + training,
                            200 + 16 * m + 2 * i + training);
}
END_TEST

/* Backward in two halves (the parameter gradients, then dx in row pieces of uneven sizes that
 * cross the group boundaries, last piece first) gives the bits of mpq_bn_backward: for each
 * activation kind, power-of-two and other quantizer steps, row-loop paths (5, 16, 40, 72, 200
 * channels), one and two statistics groups. Where pass 2 cannot be deferred (a quantizer applied
 * apart, eval) mpq_bn_dx_rows_ok says so. */
static void check_deferred(int kind, const char *method, int c, int groups, uint64_t seed)
{
    fixture f, u;
    fixture_init_c(&f, 4, groups, c, seed);
    fixture_init_c(&u, 4, groups, c, seed);
    if (kind == MPQ_ACT_RELU6) f.val[0] = u.val[0] = 5.0f; /* some outputs above 6 */
    mpq_act a = {0}, b = {0};
    if (kind >= 0) a = make_act_q(&f, kind, method), b = make_act_q(&u, kind, method);
    mpq_act *fa = kind < 0 ? NULL : &a, *ua = kind < 0 ? NULL : &b; /* -1: no activation */
    mpq_bn_forward(&f.l, fa, &f.s, f.x, f.y);
    mpq_bn_forward(&u.l, ua, &u.s, u.x, u.y);
    const int ok = mpq_bn_dx_rows_ok(fa, &f.s);
    mpq_ucore k;
    const int uq =
        fa && fa->kind == MPQ_ACT_QUANT && mpq_quant_ucore(fa->q, f.val, &k) && mpq_ucore_pow2(&k);
    ck_assert_int_eq(ok, !fa || fa->kind != MPQ_ACT_QUANT || uq);
    mpq_bn_backward(&u.l, ua, &u.s, u.x, u.r, u.dx);
    if (ok) {
        mpq_bn_backward_sums(&f.l, fa, &f.s, f.x, f.r);
        const size_t rows = (size_t)f.n * HW, cut[4] = {0, 7, rows / 2 + 1, rows};
        for (int p = 3; p > 0; p--)
            mpq_bn_dx_rows(&f.l, fa, &f.s, f.x, f.r, cut[p - 1], cut[p], f.dx + cut[p - 1] * c);
        ck_assert_mem_eq(f.dx, u.dx, f.nx * sizeof(float));
        ck_assert_mem_eq(f.grad, u.grad, (2 * (size_t)c + 2) * sizeof(float));
    }
    f.s.training = 0;
    ck_assert(!mpq_bn_dx_rows_ok(fa, &f.s));
    fixture_free(&f), fixture_free(&u);
}

START_TEST(test_bn_deferred_dx_rows_match_backward)
{
    static const int kinds[4] = {-1, MPQ_ACT_RELU, MPQ_ACT_RELU6, MPQ_ACT_QUANT};
    static const char *const methods[] = {"parametric_fp_d_xmax_relu", "parametric_fp_b_xmax_relu"};
    static const int cs[] = {5, 16, 40, 72, 200};
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < 5; i++)
            for (int groups = 1; groups <= 2; groups++)
                check_deferred(kinds[k < 4 ? k : 3], methods[k == 4], cs[i], groups,
                               900 + 10 * k + 2 * i + groups);
}
END_TEST

/* BN -> add -> activation fused equals the three layers in a row (ReLU and the quantizer,
 * training and eval), including the residual's gradient. */
static void check_fused_res(mpq_act_kind kind, const char *method, int c, int training,
                            uint64_t seed)
{
    fixture f, u;
    fixture_init_c(&f, 4, 1, c, seed);
    fixture_init_c(&u, 4, 1, c, seed);
    f.s.training = u.s.training = training;
    mpq_act a = make_act_q(&f, kind, method);
    make_act_q(&u, kind, method);
    float *res = malloc(f.nx * sizeof *res), *t = malloc(f.nx * sizeof *t);
    float *g = malloc(f.nx * sizeof *g), *dres = malloc(f.nx * sizeof *dres);
    mpq_test_fill_uniform(res, f.nx, -1, 1, seed + 9);
    mpq_bn_forward_res(&f.l, &a, &f.s, f.x, res, f.y);
    mpq_bn_forward(&u.l, NULL, &u.s, u.x, t);
    for (size_t i = 0; i < f.nx; i++)
        t[i] += res[i];
    mpq_act_forward(&a, &u.s, t, u.y);
    ck_assert_mem_eq(f.y, u.y, f.nx * sizeof(float));
    mpq_bn_backward_res(&f.l, &a, &f.s, f.x, res, f.r, f.dx, dres);
    mpq_act_backward(&a, &u.s, t, u.r, g);
    mpq_bn_backward(&u.l, NULL, &u.s, u.x, g, u.dx);
    ck_assert(mpq_ck_allclose(dres, g, f.nx, 1e-6f, 1e-6f, "fused residual gradient"));
    ck_assert(mpq_ck_allclose(f.dx, u.dx, f.nx, 1e-5f, 1e-6f, "fused dx"));
    check_fused_grads(&f, &u, &a, t, c);
    free(res), free(t), free(g), free(dres);
    fixture_free(&f), fixture_free(&u);
}

START_TEST(test_bn_fused_residual_matches_separate_layers)
{
    for (int training = 0; training < 2; training++) {
        check_fused_res(MPQ_ACT_RELU, "", C, training, 90 + training);
        check_fused_res(MPQ_ACT_QUANT, "parametric_fp_d_xmax_relu", C, training, 94 + training);
        check_fused_res(MPQ_ACT_QUANT, "parametric_fp_d_xmax_relu", 40, training, 96 + training);
        check_fused_res(MPQ_ACT_RELU, "", 200, training, 100 + training);
        check_fused_res(MPQ_ACT_QUANT, "parametric_fp_d_xmax_relu", 8200, training, 102 + training);
        check_fused_res(MPQ_ACT_QUANT, "parametric_pow2_xmin_xmax_relu", 16, training,
                        98 + training);
        check_fused_res(MPQ_ACT_RELU, "", 16, training, 104 + training);
        check_fused_res(MPQ_ACT_RELU, "", 32, training, 106 + training);
        check_fused_res(MPQ_ACT_QUANT, "parametric_fp_d_xmax_relu", 32, training, 108 + training);
    }
}
END_TEST

/* Training statistics from per-sample sums (what a direct convolution writes) equal the pass
 * over x: outputs, running statistics and the cached statistics to float rounding (the sums are added in
 * another order), with a residual and a fused activation, for 1 and 2 ghost groups; and eval
 * ignores the sums. */
START_TEST(test_bn_forward_from_sums_matches_the_pass)
{
    for (int groups = 1; groups <= 2; groups++) {
        fixture f, u;
        fixture_init_c(&f, 4, groups, 24, 130 + groups);
        fixture_init_c(&u, 4, groups, 24, 130 + groups);
        mpq_act a = make_act_q(&f, MPQ_ACT_QUANT, "parametric_fp_d_xmax_relu");
        make_act_q(&u, MPQ_ACT_QUANT, "parametric_fp_d_xmax_relu");
        const int c = 24;
        double *sums = malloc((size_t)f.n * 2 * c * sizeof *sums);
        /* shifted by the running mean, as the convolution sums them */
        mpq_test_sample_sums(f.x, f.n, HW, c, f.state, sums);
        float st0[2 * 24];
        memcpy(st0, f.state, sizeof st0);
        mpq_bn_forward_sums(&f.l, &a, &f.s, f.x, f.r, f.y, sums);
        mpq_bn_forward_res(&u.l, &a, &u.s, u.x, u.r, u.y);
        ck_assert(mpq_ck_allclose(f.y, u.y, f.nx, 1e-5f, 1e-5f, "y from sums"));
        ck_assert(mpq_ck_allclose(f.state, u.state, 2 * (size_t)c, 1e-6f, 1e-6f, "running stats"));
        ck_assert(mpq_ck_allclose(f.arena, u.arena, 2 * (size_t)groups * c, 1e-6f, 1e-6f,
                                  "cached mean and inverse std"));
        sums[0] += 0.5 * HW; /* the statistics come from the sums: channel 0's mean moves */
        memcpy(f.state, st0, sizeof st0);
        const float cache0 = f.arena[0];
        mpq_bn_forward_sums(&f.l, &a, &f.s, f.x, f.r, f.y, sums);
        ck_assert_msg(f.arena[0] != cache0, "the batch mean ignores the sums");
        memcpy(f.state, u.state, 2 * (size_t)c * sizeof *f.state);
        f.s.training = u.s.training = 0;
        for (size_t i = 0; i < (size_t)f.n * 2 * c; i++)
            sums[i] = 1e30; /* eval must not read them */
        mpq_bn_forward_sums(&f.l, &a, &f.s, f.x, f.r, f.y, sums);
        mpq_bn_forward_res(&u.l, &a, &u.s, u.x, u.r, u.y);
        ck_assert(mpq_ck_allclose(f.y, u.y, f.nx, 1e-5f, 1e-5f, "eval y"));
        free(sums);
        fixture_free(&f), fixture_free(&u);
    }
}
END_TEST

/* Wide rows streamed past the caches (stream_bytes 0) give the bits of the cached path: y, dx,
 * the parameter gradients and the running statistics, for ReLU6, no activation, the fused
 * quantizer, a quantizer applied apart (its output is not streamed; dx holds g between the
 * passes) and a residual input; c = 80 (one piece) and 1040 (a piece of 1024 and one of 16). */
static void check_streamed(int kind, const char *method, int c, int res, uint64_t seed)
{
    fixture f;
    fixture_init_c(&f, 3, 1, c, seed);
    ck_assert_uint_eq(f.l.stream_bytes, MPQ_STREAM_BYTES);
    mpq_act act = make_act_q(&f, kind < 0 ? MPQ_ACT_RELU : (mpq_act_kind)kind, method);
    const mpq_act *a = kind < 0 ? NULL : &act; /* kind -1: no activation */
    float *rin = malloc(f.nx * sizeof *rin), *dres = malloc(f.nx * sizeof *dres);
    float *y = malloc(f.nx * sizeof *y), *dx = malloc(f.nx * sizeof *dx);
    float *grad = malloc((2 * (size_t)c + 2) * sizeof *grad), *st0 = malloc(2 * c * sizeof *st0);
    mpq_test_fill_uniform(rin, f.nx, -1, 1, seed + 9);
    memcpy(st0, f.state, 2 * c * sizeof *st0);
    for (int streamed = 0; streamed < 2; streamed++) {
        f.l.stream_bytes = streamed ? 0 : MPQ_STREAM_BYTES;
        memcpy(f.state, st0, 2 * c * sizeof *st0);
        for (int i = 0; i < 2 * c + 2; i++)
            f.grad[i] = GRAD0;
        mpq_bn_forward_res(&f.l, a, &f.s, f.x, res ? rin : NULL, f.y);
        if (res)
            mpq_bn_backward_res(&f.l, a, &f.s, f.x, rin, f.r, f.dx, dres);
        else
            mpq_bn_backward(&f.l, a, &f.s, f.x, f.r, f.dx);
        if (!streamed) {
            memcpy(y, f.y, f.nx * sizeof *y);
            memcpy(dx, f.dx, f.nx * sizeof *dx);
            memcpy(grad, f.grad, (2 * (size_t)c + 2) * sizeof *grad);
        }
    }
    ck_assert_mem_eq(y, f.y, f.nx * sizeof *y);
    ck_assert_mem_eq(dx, f.dx, f.nx * sizeof *dx);
    ck_assert_mem_eq(grad, f.grad, (2 * (size_t)c + 2) * sizeof *grad);
    free(rin), free(dres), free(y), free(dx), free(grad), free(st0);
    fixture_free(&f);
}

START_TEST(test_bn_streamed_outputs_are_bitwise_the_same)
{
    static const int cs[2] = {80, 1040};
    for (int i = 0; i < 2; i++) {
        check_streamed(MPQ_ACT_RELU6, "", cs[i], 0, 600 + 10 * i);
        check_streamed(-1, "", cs[i], 1, 601 + 10 * i);
        check_streamed(MPQ_ACT_QUANT, "parametric_fp_d_xmax_relu", cs[i], 0, 602 + 10 * i);
        check_streamed(MPQ_ACT_QUANT, "parametric_pow2_b_xmax_relu", cs[i], 0, 603 + 10 * i);
        check_streamed(MPQ_ACT_RELU, "", cs[i], 1, 604 + 10 * i);
    }
}
END_TEST

/* Many row chunks (more rows than one chunk holds): 1 and 2 threads give identical bits. */
START_TEST(test_bn_is_independent_of_threads)
{
    fixture f;
    fixture_init(&f, 1200, 2, 80);
    mpq_act a = make_act(&f, MPQ_ACT_QUANT);
    float *y1 = malloc(f.nx * sizeof *y1), *dx1 = malloc(f.nx * sizeof *dx1);
    float g1[2 * C + 2], st1[2 * C], st0[2 * C];
    memcpy(st0, f.state, sizeof st0);
    for (int t = 1; t <= 2; t++) {
        mpq_gemm_set_threads(t);
        memcpy(f.state, st0, sizeof st0);
        for (int i = 0; i < 2 * C + 2; i++)
            f.grad[i] = 0.0f;
        mpq_bn_forward(&f.l, &a, &f.s, f.x, f.y);
        mpq_bn_backward(&f.l, &a, &f.s, f.x, f.r, f.dx);
        if (t == 1) {
            memcpy(y1, f.y, f.nx * sizeof *y1);
            memcpy(dx1, f.dx, f.nx * sizeof *dx1);
            memcpy(g1, f.grad, sizeof g1);
            memcpy(st1, f.state, sizeof st1);
        }
    }
    mpq_gemm_set_threads(1);
    ck_assert_mem_eq(y1, f.y, f.nx * sizeof *y1);
    ck_assert_mem_eq(dx1, f.dx, f.nx * sizeof *dx1);
    ck_assert_mem_eq(g1, f.grad, sizeof g1);
    ck_assert_mem_eq(st1, f.state, sizeof st1);
    free(y1), free(dx1);
    fixture_free(&f);
}
END_TEST

START_TEST(test_bn_ghost_groups_equal_separate_batches)
{
    fixture f, h[2];
    fixture_init(&f, 4, 2, 50);
    for (int k = 0; k < 2; k++) {
        fixture_init(&h[k], 2, 1, 0);
        fixture_take(&h[k], &f, 2 * k);
        for (int i = 0; i < 2 * C; i++)
            h[k].grad[i] = 0.0f;
    }
    mpq_bn_forward(&f.l, NULL, &f.s, f.x, f.y);
    mpq_bn_backward(&f.l, NULL, &f.s, f.x, f.r, f.dx);
    float grad[2 * C];
    for (int i = 0; i < 2 * C; i++)
        grad[i] = GRAD0;
    for (int k = 0; k < 2; k++) {
        const size_t off = (size_t)k * h[0].nx;
        mpq_bn_forward(&h[k].l, NULL, &h[k].s, h[k].x, h[k].y);
        mpq_bn_backward(&h[k].l, NULL, &h[k].s, h[k].x, h[k].r, h[k].dx);
        ck_assert(mpq_ck_allclose(f.y + off, h[k].y, h[k].nx, 1e-6f, 1e-6f, "ghost y"));
        ck_assert(mpq_ck_allclose(f.dx + off, h[k].dx, h[k].nx, 1e-5f, 1e-6f, "ghost dx"));
        for (int i = 0; i < 2 * C; i++)
            grad[i] += h[k].grad[i];
    }
    ck_assert(mpq_ck_allclose(f.grad, grad, 2 * C, 1e-5f, 1e-5f, "ghost dgamma,dbeta"));
    for (int i = 0; i < 2 * C; i++) /* running stats: the mean of the two groups' updates */
        ck_assert_float_eq_tol(f.state[i], 0.5f * (h[0].state[i] + h[1].state[i]), 1e-6f);
    fixture_free(&f), fixture_free(&h[0]), fixture_free(&h[1]);
}
END_TEST

/* A reducer over two "ranks" that are threads of this process: each deposits its buffer, both
 * receive the elementwise sum. */
typedef struct xsum {
    pthread_barrier_t bar;
    double *slot[2];
    int calls[2];
} xsum;

typedef struct rank_ctx {
    xsum *shared;
    int rank;
    fixture *f;
} rank_ctx;

static int xsum_sum(void *ctx, double *buf, size_t n)
{
    rank_ctx *rc = ctx;
    xsum *x = rc->shared;
    x->slot[rc->rank] = buf;
    x->calls[rc->rank]++;
    pthread_barrier_wait(&x->bar);
    if (rc->rank == 0)
        for (size_t i = 0; i < n; i++)
            x->slot[0][i] = x->slot[1][i] = x->slot[0][i] + x->slot[1][i];
    pthread_barrier_wait(&x->bar);
    return 0;
}

static void *rank_step(void *arg)
{
    rank_ctx *rc = arg;
    fixture *f = rc->f;
    mpq_bn_forward(&f->l, NULL, &f->s, f->x, f->y);
    mpq_bn_backward(&f->l, NULL, &f->s, f->x, f->r, f->dx);
    return NULL;
}

START_TEST(test_bn_sync_two_replicas_match_full_batch)
{
    fixture full, half[2];
    xsum shared = {.calls = {0, 0}};
    rank_ctx ctx[2];
    mpq_reducer red[2];
    pthread_t th[2];
    fixture_init(&full, 4, 1, 60);
    for (int i = 0; i < 2 * C; i++)
        full.grad[i] = 0.0f;
    pthread_barrier_init(&shared.bar, NULL, 2);
    for (int k = 0; k < 2; k++) {
        fixture_init(&half[k], 2, 1, 0);
        fixture_take(&half[k], &full, 2 * k);
        for (int i = 0; i < 2 * C; i++)
            half[k].grad[i] = 0.0f;
        ctx[k] = (rank_ctx){&shared, k, &half[k]};
        red[k] = (mpq_reducer){&ctx[k], xsum_sum};
        half[k].s.reduce = &red[k];
    }
    mpq_bn_forward(&full.l, NULL, &full.s, full.x, full.y);
    mpq_bn_backward(&full.l, NULL, &full.s, full.x, full.r, full.dx);
    for (int k = 0; k < 2; k++)
        pthread_create(&th[k], NULL, rank_step, &ctx[k]);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    pthread_barrier_destroy(&shared.bar);
    ck_assert_int_eq(shared.calls[0], shared.calls[1]);
    ck_assert_int_gt(shared.calls[0], 0);

    float grad[2 * C] = {0};
    for (int k = 0; k < 2; k++) {
        const size_t off = (size_t)k * half[0].nx;
        ck_assert(mpq_ck_allclose(half[k].y, full.y + off, half[k].nx, 1e-5f, 1e-5f, "sync y"));
        ck_assert(mpq_ck_allclose(half[k].dx, full.dx + off, half[k].nx, 1e-5f, 1e-5f, "sync dx"));
        ck_assert(mpq_ck_allclose(half[k].state, full.state, 2 * C, 1e-5f, 1e-6f, "sync stats"));
        for (int i = 0; i < 2 * C; i++)
            grad[i] += half[k].grad[i]; /* what the allreduce sums */
    }
    ck_assert(mpq_ck_allclose(grad, full.grad, 2 * C, 1e-5f, 1e-5f, "sync dgamma,dbeta"));
    fixture_free(&full), fixture_free(&half[0]), fixture_free(&half[1]);
}
END_TEST

static Suite *bn_suite(void)
{
    Suite *s = suite_create("bn");
    TCase *tc = tcase_create("bn");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_bn_training_matches_reference);
    tcase_add_test(tc, test_bn_forward_from_sums_matches_the_pass);
    tcase_add_test(tc, test_bn_eval_uses_running_statistics);
    tcase_add_test(tc, test_bn_gradients_match_central_differences);
    tcase_add_test(tc, test_bn_cache_holds_statistics_and_dx_may_alias_dy);
    tcase_add_test(tc, test_bn_fused_activation_matches_separate_layers);
    tcase_add_test(tc, test_bn_fused_quantizers_match_separate_layers);
    tcase_add_test(tc, test_bn_deferred_dx_rows_match_backward);
    tcase_add_test(tc, test_bn_fused_residual_matches_separate_layers);
    tcase_add_test(tc, test_bn_streamed_outputs_are_bitwise_the_same);
    tcase_add_test(tc, test_bn_is_independent_of_threads);
    tcase_add_test(tc, test_bn_ghost_groups_equal_separate_batches);
    tcase_add_test(tc, test_bn_sync_two_replicas_match_full_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(bn_suite); }

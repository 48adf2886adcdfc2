/* Optimizers and schedules: SGD-momentum and Adam steps against values worked out by hand (in
 * double precision) for two steps, weight decay, OpenMP-sized buffers against a scalar loop, and
 * every schedule at its boundary steps. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "optim/optim.h"
#include "testutil.h"

static const float g_steps[2][3] = {{0.5f, -1.0f, 0.0f}, {0.25f, 0.5f, -2.0f}};

START_TEST(test_optim_sgd_momentum_two_steps)
{
    float w[3] = {1.0f, -2.0f, 0.5f}, v[3] = {0};
    const float w1[3] = {0.95f, -1.9f, 0.5f}, v1[3] = {0.05f, -0.1f, 0.0f};
    const float w2[3] = {0.88f, -1.86f, 0.7f}, v2[3] = {0.07f, -0.04f, -0.2f};
    mpq_sgd_step(3, 0.1f, 0.9f, w, g_steps[0], v);
    ck_assert(mpq_ck_allclose(v, v1, 3, 1e-6f, 1e-7f, "sgd v after step 1"));
    ck_assert(mpq_ck_allclose(w, w1, 3, 1e-6f, 1e-7f, "sgd w after step 1"));
    mpq_sgd_step(3, 0.1f, 0.9f, w, g_steps[1], v);
    ck_assert(mpq_ck_allclose(v, v2, 3, 1e-6f, 1e-7f, "sgd v after step 2"));
    ck_assert(mpq_ck_allclose(w, w2, 3, 1e-6f, 1e-7f, "sgd w after step 2"));
}
END_TEST

START_TEST(test_optim_adam_two_steps)
{
    float w[3] = {1.0f, -2.0f, 0.5f}, m[3] = {0}, v[3] = {0};
    /* t = 1: alpha_1 = 0.01 * sqrt(0.001) / 0.1, so each weight moves by ~lr against its sign */
    const float w1[3] = {0.9900000063f, -1.9900000032f, 0.5f};
    const float m2[3] = {0.07f, -0.04f, -0.2f}, v2[3] = {0.00031225f, 0.001249f, 0.004f};
    const float w2[3] = {0.9806782152f, -1.9873366335f, 0.5074413671f};
    mpq_adam_step(3, 0.01f, 0.9f, 0.999f, 1e-8f, 1, w, g_steps[0], m, v);
    ck_assert(mpq_ck_allclose(w, w1, 3, 1e-6f, 1e-7f, "adam w after step 1"));
    mpq_adam_step(3, 0.01f, 0.9f, 0.999f, 1e-8f, 2, w, g_steps[1], m, v);
    ck_assert(mpq_ck_allclose(m, m2, 3, 1e-5f, 1e-8f, "adam m after step 2"));
    /* 1 - 0.999f is 1.3e-5 off 0.001 in float, as in nnabla: v carries that relative error */
    ck_assert(mpq_ck_allclose(v, v2, 3, 3e-5f, 1e-9f, "adam v after step 2"));
    ck_assert(mpq_ck_allclose(w, w2, 3, 1e-6f, 1e-7f, "adam w after step 2"));
}
END_TEST

START_TEST(test_optim_weight_decay_adds)
{
    const float w[4] = {1.0f, -2.0f, 0.0f, 4.0f};
    float g[4] = {0.5f, 0.5f, 0.5f, -1.0f};
    const float want[4] = {0.5002f, 0.4996f, 0.5f, -0.9992f};
    mpq_weight_decay(4, 2e-4f, w, g);
    ck_assert(mpq_ck_allclose(g, want, 4, 1e-6f, 0.0f, "g += 2e-4 w"));
}
END_TEST

/* Buffers past MPQ_OPTIM_OMP_MIN take the threaded path: the same bits as scalar loops. */
START_TEST(test_optim_large_buffers_match_scalar_loops)
{
    enum { N_BUF = 10 };
    const size_t n = 3 * MPQ_OPTIM_OMP_MIN + 7;
    const float a3 =
        0.01f * (float)(sqrt(1.0 - pow((double)0.999f, 3.0)) / (1.0 - pow((double)0.9f, 3.0)));
    float *b[N_BUF];
    for (int i = 0; i < N_BUF; i++)
        b[i] = calloc(n, sizeof(float));
    float *w = b[0], *g = b[1], *vel = b[2], *m = b[3], *v = b[4];
    float *rw = b[5], *rg = b[6], *rvel = b[7], *rm = b[8], *rv = b[9];
    omp_set_num_threads(2); /* make check exports OMP_NUM_THREADS=1 */
    mpq_test_fill_uniform(w, n, -1, 1, 11);
    mpq_test_fill_uniform(g, n, -1, 1, 12);
    memcpy(rw, w, n * sizeof *w);
    memcpy(rg, g, n * sizeof *g);
    mpq_weight_decay(n, 1e-3f, w, g);
    mpq_sgd_step(n, 0.05f, 0.9f, w, g, vel);
    mpq_adam_step(n, 0.01f, 0.9f, 0.999f, 1e-8f, 3, w, g, m, v);
    for (size_t i = 0; i < n; i++) {
        rg[i] += 1e-3f * rw[i];
        rvel[i] = 0.9f * rvel[i] + 0.05f * rg[i];
        rw[i] -= rvel[i];
    }
    for (size_t i = 0; i < n; i++) {
        rm[i] = 0.9f * rm[i] + (1.0f - 0.9f) * rg[i];
        rv[i] = 0.999f * rv[i] + (1.0f - 0.999f) * rg[i] * rg[i];
        rw[i] -= a3 * rm[i] / (sqrtf(rv[i]) + 1e-8f);
    }
    ck_assert_mem_eq(g, rg, n * sizeof *g);
    ck_assert_mem_eq(vel, rvel, n * sizeof *vel);
    ck_assert_mem_eq(m, rm, n * sizeof *m);
    ck_assert_mem_eq(v, rv, n * sizeof *v);
    ck_assert_mem_eq(w, rw, n * sizeof *w);
    for (int i = 0; i < N_BUF; i++)
        free(b[i]);
}
END_TEST

static mpq_cfg sched_cfg(mpq_lr_schedule s, float epochs, float warmup)
{
    mpq_cfg c;
    mpq_cfg_defaults(&c);
    c.initial_learning_rate = 0.1f;
    c.lr_schedule = s;
    c.epochs = epochs;
    c.warmup_epochs = warmup;
    return c;
}

#define LR_EQ(c, step, want)                                                                       \
    do {                                                                                           \
        mpq_schedule s_ = mpq_cfg_schedule(&(c));                                                  \
        ck_assert_float_eq_tol(mpq_lr_at(&s_, (step), 390), (want), 1e-8f);                        \
    } while (0)

START_TEST(test_optim_reference_schedule_80_40_40)
{
    mpq_cfg c = sched_cfg(MPQ_LR_REFERENCE, 160, 0);
    LR_EQ(c, 0, 0.1f);
    LR_EQ(c, 79 * 390, 0.1f);
    LR_EQ(c, 80 * 390 - 1, 0.1f);
    LR_EQ(c, 80 * 390, 0.01f);
    LR_EQ(c, 119 * 390, 0.01f);
    LR_EQ(c, 120 * 390 - 1, 0.01f);
    LR_EQ(c, 120 * 390, 0.001f);
    LR_EQ(c, 159 * 390 + 389, 0.001f);
    c.epochs = 8; /* scales: lr/10 from epoch 4, lr/100 from epoch 6 */
    LR_EQ(c, 4 * 390 - 1, 0.1f);
    LR_EQ(c, 4 * 390, 0.01f);
    LR_EQ(c, 6 * 390, 0.001f);
}
END_TEST

START_TEST(test_optim_step_schedule_counts_passed_epochs)
{
    mpq_cfg c = sched_cfg(MPQ_LR_STEP, 90, 0);
    c.lr_decay_epochs[0] = 30;
    c.lr_decay_epochs[1] = 60;
    c.n_lr_decay_epochs = 2;
    c.lr_decay_factor = 0.5f;
    LR_EQ(c, 0, 0.1f);
    LR_EQ(c, 30 * 390 - 1, 0.1f);
    LR_EQ(c, 30 * 390, 0.05f);
    LR_EQ(c, 60 * 390, 0.025f);
    LR_EQ(c, 89 * 390, 0.025f);
    c.n_lr_decay_epochs = 0; /* no decay epochs: constant */
    LR_EQ(c, 89 * 390, 0.1f);
    c = sched_cfg(MPQ_LR_CONSTANT, 10, 0);
    LR_EQ(c, 0, 0.1f);
    LR_EQ(c, 9 * 390, 0.1f);
}
END_TEST

START_TEST(test_optim_cosine_end_points_and_warmup)
{
    mpq_cfg c = sched_cfg(MPQ_LR_COSINE, 10, 0);
    LR_EQ(c, 0, 0.1f);
    LR_EQ(c, 5 * 390, 0.05f);
    LR_EQ(c, 10 * 390, 0.0f);
    LR_EQ(c, 12 * 390, 0.0f);
    mpq_schedule sc = mpq_cfg_schedule(&c);
    ck_assert_float_gt(mpq_lr_at(&sc, 10 * 390 - 1, 390), 0.0f);
    c.warmup_epochs = 2; /* W = 780 warmup steps, then cosine over the remaining 3120 */
    LR_EQ(c, 0, 0.1f / 780);
    LR_EQ(c, 389, 0.1f * 390 / 780);
    LR_EQ(c, 779, 0.1f);
    LR_EQ(c, 780, 0.1f);
    LR_EQ(c, 780 + 1560, 0.05f);
    LR_EQ(c, 3900, 0.0f);
    c = sched_cfg(MPQ_LR_REFERENCE, 160, 1); /* warmup ends in the first schedule phase */
    LR_EQ(c, 0, 0.1f / 390);
    LR_EQ(c, 194, 0.1f * 195 / 390);
    LR_EQ(c, 390, 0.1f);
    LR_EQ(c, 80 * 390, 0.01f);
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *step = tcase_create("step"), *sched = tcase_create("schedule");
    tcase_add_test(step, test_optim_sgd_momentum_two_steps);
    tcase_add_test(step, test_optim_adam_two_steps);
    tcase_add_test(step, test_optim_weight_decay_adds);
    tcase_add_test(step, test_optim_large_buffers_match_scalar_loops);
    tcase_add_test(sched, test_optim_reference_schedule_80_40_40);
    tcase_add_test(sched, test_optim_step_schedule_counts_passed_epochs);
    tcase_add_test(sched, test_optim_cosine_end_points_and_warmup);
    suite_add_tcase(s, step);
    suite_add_tcase(s, sched);
    return s;
}

int main(void) { return mpq_test_main(optim_suite); }

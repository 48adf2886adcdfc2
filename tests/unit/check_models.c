/* Models: the graph builders give the documented shapes and names, and the whole-model backward
 * (every layer, the residual fan-out, the shortcut types, the weight and activation quantizers'
 * plumbing) agrees with central finite differences on a small ResNet and a MobileNetV2 block. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "kernels/dconv.h"
#include "models/graph.h"
#include "models/models.h"
#include "testutil.h"

enum { N = 3 };

/* L = sum(logits * r): dL/dlogits = r. */
static double loss_of(mpq_model *m, const mpq_step *s, const float *x, const float *r)
{
    size_t in = (size_t)N * m->in_h * m->in_w * m->in_c, k = (size_t)N * m->num_classes;
    double acc = 0.0;
    memcpy(mpq_model_input(m), x, in * sizeof(float));
    mpq_model_forward(m, s);
    const float *y = mpq_model_logits(m);
    for (size_t i = 0; i < k; i++)
        acc += (double)y[i] * r[i];
    return acc;
}

/* Compares the backward gradient of `count` sampled trainable values (at least one per tensor)
 * with central differences; returns the relative error norm ||g - fd|| / ||fd||. */
static double model_fd_error(mpq_model *m, int per_tensor)
{
    size_t in = (size_t)N * m->in_h * m->in_w * m->in_c, k = (size_t)N * m->num_classes;
    float *x = malloc(in * sizeof(float)), *r = malloc(k * sizeof(float));
    float *state0 = malloc((m->state.n_floats + 1) * sizeof(float));
    mpq_test_fill_uniform(x, in, -1.0f, 1.0f, 11);
    mpq_test_fill_uniform(r, k, -1.0f, 1.0f, 12);
    memcpy(state0, m->state.val, m->state.n_floats * sizeof(float));
    mpq_step s = mpq_model_step(m, N, 1);
    memset(m->params.grad, 0, m->params.n_floats * sizeof(float));
    loss_of(m, &s, x, r);
    memcpy(mpq_model_dlogits(m), r, k * sizeof(float));
    mpq_model_backward(m, &s, NULL, NULL);
    double num = 0.0, den = 0.0;
    mpq_rng rng;
    mpq_rng_seed(&rng, 5, 0, 0);
    for (int t = 0; t < m->params.n_info; t++) {
        const mpq_param_info *p = &m->params.info[t];
        if (p->kind == MPQ_PKIND_QUANT) continue; /* piecewise constant: checked in quant tests */
        for (int j = 0; j < per_tensor; j++) {
            size_t i = p->s.off + (size_t)mpq_rng_below(&rng, p->s.n);
            float v0 = m->params.val[i], eps = 1e-4f * fmaxf(1.0f, fabsf(v0));
            m->params.val[i] = v0 + eps;
            double up = loss_of(m, &s, x, r);
            m->params.val[i] = v0 - eps;
            double dn = loss_of(m, &s, x, r);
            m->params.val[i] = v0;
            double fd = (up - dn) / (2.0 * eps), g = m->params.grad[i];
            num += (g - fd) * (g - fd);
            den += fd * fd;
            if (getenv("MPQ_FD_VERBOSE"))
                fprintf(stderr, "%s[%zu]: %g vs fd %g\n", p->name, i - p->s.off, g, fd);
        }
    }
    memcpy(m->state.val, state0, m->state.n_floats * sizeof(float));
    free(x);
    free(r);
    free(state0);
    return sqrt(num / (den > 0 ? den : 1.0));
}

static void settings(mpq_qsettings *w, mpq_qsettings *a)
{
    mpq_cfg c;
    mpq_cfg_defaults(&c);
    *w = c.wq;
    *a = c.aq;
}

START_TEST(test_models_resnet20_shapes_and_names)
{
    mpq_qsettings w, a;
    mpq_model m;
    settings(&w, &a);
    mpq_model_init(&m, 32, 32, 3, 10, &w, &a, 0.9f);
    ck_assert_int_eq(mpq_resnet_cifar_build(&m, 20, "b", 0), 0);
    ck_assert_int_eq(mpq_model_alloc(&m), 0);
    ck_assert_int_ge(mpq_params_find(&m.params, "conv1/quantized_conv/W"), 0);
    ck_assert_int_ge(mpq_params_find(&m.params, "res1/layer1/basicblock1/quantized_conv/W"), 0);
    ck_assert_int_ge(mpq_params_find(&m.params, "res3/layer3/basicblock2/bn/gamma"), 0);
    ck_assert_int_ge(mpq_params_find(&m.params, "res2/layer1/basicblock_s/shortcut_conv/"
                                                "quantized_conv/W"),
                     0);
    ck_assert_int_ge(mpq_params_find(&m.params, "fc/quantized_affine/b"), 0);
    ck_assert_int_ge(mpq_params_find(&m.state, "conv1/bn/mean"), 0);
    const mpq_node *out = &m.nodes[m.out];
    ck_assert_int_eq(out->c, 10);
    /* 19 convolutions + 2 shortcut convs + fc: the classic ~0.27M parameters */
    size_t w_count = 0;
    for (int i = 0; i < m.params.n_info; i++)
        if (m.params.info[i].kind == MPQ_PKIND_WEIGHT) w_count += m.params.info[i].s.n;
    ck_assert_uint_eq(w_count,
                      432 + 6 * 2304 + 4608 + 5 * 9216 + 18432 + 5 * 36864 + 512 + 2048 + 640);
    /* ~41 MFLOP (multiply-adds) per 32x32 image */
    ck_assert(mpq_model_macs(&m) > 40e6 && mpq_model_macs(&m) < 42e6);
    mpq_model_free(&m);
}
END_TEST

/* The tensor-role table (model_view.h) against the graph, independently: every registered
 * tensor has one role; conv/fc weights and biases carry their node's quantizer; a convolution
 * followed only by a BN folds into that BN; the BN table points at the BN's own four tensors; and
 * the fold gives gamma / sqrt(var + eps), beta - mean * scale, after which the identity BN maps
 * x to x + bias exactly. */
START_TEST(test_models_tensor_roles_and_bn_fold)
{
    static const char *names[] = {"resnet20", "resnet18", "mobilenetv2"};
    mpq_qsettings w, a;
    settings(&w, &a);
    strcpy(w.method, "parametric_fp_d_xmax");
    strcpy(a.method, "parametric_fp_d_xmax_relu");
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        mpq_model m;
        mpq_model_desc d = {names[k], "b", 1};
        mpq_model_init(&m, 16, 16, 3, 10, &w, &a, 0.9f);
        ck_assert_msg(mpq_model_build(&m, &d) == 0, "%s: %s", names[k], mpq_errmsg());
        const mpq_model_view *v = &m.view;
        ck_assert_int_eq(v->n_tensors, m.params.n_info + m.state.n_info);
        int weights = 0, folds = 0;
        for (int i = 0; i < m.n_nodes; i++) {
            const mpq_node *n = &m.nodes[i];
            const mpq_slice *ws = mpq_node_weights(n, 0);
            if (!ws) continue;
            const mpq_tensor *t = NULL;
            for (int j = 0; j < v->n_tensors; j++)
                if (!v->tensors[j].in_state && v->tensors[j].info->s.off == ws->off)
                    t = &v->tensors[j];
            ck_assert_ptr_nonnull(t);
            weights++;
            ck_assert_int_eq(t->role, n->kind == MPQ_NODE_FC       ? MPQ_ROLE_FC_W
                                      : n->kind == MPQ_NODE_DWCONV ? MPQ_ROLE_DWCONV_W
                                                                   : MPQ_ROLE_CONV_W);
            ck_assert_int_eq(t->quant, n->quant[0]);
            ck_assert(t->quant >= 0 && !m.quants[t->quant].is_act);
            int next = -1; /* the only consumer of node i, if it is a BN reading it */
            for (int j = i + 1; j < m.n_nodes && next < 0; j++)
                if (m.nodes[j].in[0] == i || m.nodes[j].in[1] == i) next = j;
            int folds_here = n->kind != MPQ_NODE_FC && n->n_consumers == 1 && next >= 0 &&
                             m.nodes[next].kind == MPQ_NODE_BN;
            ck_assert_int_eq(t->bn >= 0, folds_here);
            if (!folds_here) continue;
            folds++;
            const mpq_bn_ref *b = &v->bns[t->bn];
            const mpq_bn *l = &m.nodes[next].u.bn;
            ck_assert_str_eq(b->name, m.nodes[next].name);
            ck_assert(v->tensors[b->gamma].info->s.off == l->gamma.off &&
                      !v->tensors[b->gamma].in_state);
            ck_assert(v->tensors[b->var].info->s.off == l->var.off && v->tensors[b->var].in_state);
            ck_assert_int_eq(v->tensors[b->mean].role, MPQ_ROLE_BN_MEAN);
            ck_assert_int_eq(b->c, l->c);
        }
        ck_assert_int_gt(weights, 3);
        ck_assert_int_gt(folds, 2);
        for (int j = 0; j < v->n_tensors; j++) {
            const mpq_tensor *t = &v->tensors[j];
            if (t->info->kind == MPQ_PKIND_QUANT) ck_assert_int_eq(t->role, MPQ_ROLE_QUANT);
            if (t->info->kind == MPQ_PKIND_STATE)
                ck_assert(t->role == MPQ_ROLE_BN_MEAN || t->role == MPQ_ROLE_BN_VAR);
        }
        /* the fold, by hand, on BN 0 with made-up statistics */
        mpq_model_init_values(&m, 1, 0);
        const mpq_bn_ref *b = &v->bns[0];
        float *g = mpq_view_values(v, &v->tensors[b->gamma]);
        float *be = mpq_view_values(v, &v->tensors[b->beta]);
        float *mu = mpq_view_values(v, &v->tensors[b->mean]);
        float *var = mpq_view_values(v, &v->tensors[b->var]);
        for (int o = 0; o < b->c; o++) {
            g[o] = 0.5f + 0.1f * o;
            be[o] = -0.25f * o;
            mu[o] = 0.125f * o;
            var[o] = 2.0f + o;
        }
        float *scale = malloc(sizeof(float) * b->c), *bias = malloc(sizeof(float) * b->c);
        mpq_bn_fold(v, 0, scale, bias);
        for (int o = 0; o < b->c; o++) {
            float sc = (0.5f + 0.1f * o) / sqrtf(2.0f + o + b->eps);
            ck_assert_float_eq_tol(scale[o], sc, 1e-6f);
            ck_assert_float_eq_tol(bias[o], -0.25f * o - 0.125f * o * sc, 1e-6f);
        }
        float *bias2 = malloc(sizeof(float) * b->c);
        mpq_bn_set_identity(v, 0, bias);
        mpq_bn_fold(v, 0, scale, bias2); /* the identity BN: scale exactly 1, the same bias */
        for (int o = 0; o < b->c; o++) {
            ck_assert(scale[o] == 1.0f);
            ck_assert(bias2[o] == bias[o]);
        }
        free(scale);
        free(bias);
        free(bias2);
        mpq_model_free(&m);
    }
}
END_TEST

START_TEST(test_models_every_family_builds)
{
    static const char *names[] = {"resnet20",  "resnet32", "resnet44",   "resnet56",
                                  "resnet110", "resnet18", "mobilenetv2"};
    mpq_qsettings w, a;
    settings(&w, &a);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        mpq_model m;
        mpq_model_desc d = {names[i], "a", 1};
        mpq_model_init(&m, 28, 28, 1, 10, &w, &a, 0.9f);
        ck_assert_msg(mpq_model_build(&m, &d) == 0, "%s: %s", names[i], mpq_errmsg());
        ck_assert_int_eq(m.nodes[m.out].c, 10);
        mpq_model_free(&m);
    }
    mpq_model m;
    mpq_model_desc bad = {"resnet21", "", 0};
    mpq_model_init(&m, 28, 28, 1, 10, &w, &a, 0.9f);
    ck_assert_int_eq(mpq_model_build(&m, &bad), MPQ_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "resnet21"));
    mpq_model_free(&m);
}
END_TEST

START_TEST(test_models_resnet_backward_matches_central_differences)
{
    static const char *shortcuts[] = {"a", "b", "c"};
    mpq_qsettings w, a;
    settings(&w, &a);
    for (int i = 0; i < 3; i++) {
        mpq_model m;
        mpq_model_init(&m, 8, 8, 2, 5, &w, &a, 0.9f);
        ck_assert_int_eq(mpq_resnet_cifar_build(&m, 20, shortcuts[i], 1), 0);
        ck_assert_int_eq(mpq_model_alloc(&m), 0);
        ck_assert_int_eq(mpq_model_plan(&m, N), 0);
        int summing = 0; /* convolutions that sum their BN's statistics: this test covers them */
        for (int k = 0; k < m.n_nodes; k++)
            summing += m.nodes[k].sums_bn != 0;
        ck_assert_msg(summing > 0 || !mpq_dconv_vec(), "shortcut %s: no fused statistics",
                      shortcuts[i]);
        mpq_model_init_values(&m, 3, 0);
        double err = model_fd_error(&m, 3);
        if (getenv("MPQ_FD_VERBOSE")) fprintf(stderr, "shortcut %s: %g\n", shortcuts[i], err);
        ck_assert_msg(err < 2e-2, "shortcut %s: relative gradient error %g", shortcuts[i], err);
        mpq_model_free(&m);
    }
}
END_TEST

/* A MobileNetV2 block (1x1 expand, depthwise, 1x1 project, residual) and a classifier over 6x6x8
 * inputs, activations quantized by amethod ("": ReLU6), planned for N. */
static void mobilenetv2_block(mpq_model *m, const char *amethod)
{
    mpq_qsettings w, a;
    settings(&w, &a);
    strcpy(a.method, amethod);
    mpq_model_init(m, 6, 6, 8, 4, &w, &a, 0.9f);
    int x = mpq_g_input(m);
    int h = mpq_g_act(m, "b/expand",
                      mpq_g_bn(m, "b/expand", mpq_g_conv(m, "b/expand", x, 48, 1, 1, 0, 0)), 1);
    h = mpq_g_act(m, "b/dw", mpq_g_bn(m, "b/dw", mpq_g_dwconv(m, "b/dw", h, 3, 1, 1)), 1);
    h = mpq_g_bn(m, "b/project", mpq_g_conv(m, "b/project", h, 8, 1, 1, 0, 0));
    h = mpq_g_add(m, h, x);
    mpq_g_fc(m, "fc", mpq_g_gap(m, h), 4);
    ck_assert_int_eq(m->err, 0);
    ck_assert_int_eq(mpq_model_alloc(m), 0);
    ck_assert_int_eq(mpq_model_plan(m, N), 0);
}

/* The convolutions whose output gradient their BN computes band by band (mpq_node.dy_bn). */
static int dy_rows_convs(const mpq_model *m)
{
    int k = 0;
    for (int i = 0; i < m->n_nodes; i++)
        k += m->nodes[i].dy_bn != 0;
    return k;
}

START_TEST(test_models_mobilenetv2_block_backward_matches_central_differences)
{
    mpq_model m;
    mobilenetv2_block(&m, "");
    /* covered here: the depthwise and (with direct kernels) the expand */
    ck_assert_int_eq(dy_rows_convs(&m), mpq_dconv_vec() ? 2 : 1);
    mpq_model_init_values(&m, 4, 0);
    double err = model_fd_error(&m, 6);
    ck_assert_msg(err < 2e-2, "relative gradient error %g", err);
    mpq_model_free(&m);
}
END_TEST

/* The expand and depthwise convolutions taking their output gradient from their BN band by band
 * (dy_bn) give the bits of the BNs writing it whole: every gradient and the BN statistics, with
 * ReLU6, with the activation quantizer computed in BN's passes (a power-of-two step) and with one
 * applied apart (at each step the BN falls back to writing dx). */
START_TEST(test_models_bn_dx_inside_the_convolution_changes_no_bit)
{
    static const char *const methods[] = {"", "parametric_fp_d_xmax_relu",
                                          "parametric_fp_b_xmax_relu"};
    for (int k = 0; k < 3; k++) {
        mpq_model m;
        float *grad[2], *state[2];
        for (int fused = 1; fused >= 0; fused--) {
            mobilenetv2_block(&m, methods[k]);
            ck_assert_int_eq(dy_rows_convs(&m), mpq_dconv_vec() ? 2 : 1); /* + the expand */
            if (!fused)
                for (int i = 0; i < m.n_nodes; i++)
                    m.nodes[i].dy_bn = 0;
            mpq_model_init_values(&m, 7, 0);
            size_t in = (size_t)N * 6 * 6 * 8, nk = (size_t)N * 4;
            float *x = malloc(in * sizeof *x), *r = malloc(nk * sizeof *r);
            mpq_test_fill_uniform(x, in, -1.0f, 1.0f, 21);
            mpq_test_fill_uniform(r, nk, -1.0f, 1.0f, 22);
            mpq_step s = mpq_model_step(&m, N, 1);
            memset(m.params.grad, 0, m.params.n_floats * sizeof(float));
            loss_of(&m, &s, x, r);
            memcpy(mpq_model_dlogits(&m), r, nk * sizeof(float));
            mpq_model_backward(&m, &s, NULL, NULL);
            grad[fused] = malloc(m.params.n_floats * sizeof(float));
            state[fused] = malloc(m.state.n_floats * sizeof(float));
            memcpy(grad[fused], m.params.grad, m.params.n_floats * sizeof(float));
            memcpy(state[fused], m.state.val, m.state.n_floats * sizeof(float));
            free(x), free(r);
            if (fused) mpq_model_free(&m);
        }
        ck_assert_mem_eq(grad[0], grad[1], m.params.n_floats * sizeof(float));
        ck_assert_mem_eq(state[0], state[1], m.state.n_floats * sizeof(float));
        float gmax = 0.0f; /* the gradients are not all zero */
        for (size_t i = 0; i < m.params.n_floats; i++)
            gmax = fmaxf(gmax, fabsf(grad[1][i]));
        ck_assert(gmax > 0.0f);
        free(grad[0]), free(grad[1]), free(state[0]), free(state[1]);
        mpq_model_free(&m);
    }
}
END_TEST

START_TEST(test_models_quantized_backward_passes_ste_to_weights)
{
    /* With weight quantizers, dL/dW = STE(dL/dWq): zero where the weight is clipped. */
    mpq_qsettings w, a;
    mpq_model m;
    settings(&w, &a);
    strcpy(w.method, "parametric_fp_d_xmax");
    w.stepsize = 0.015625f; /* xmax = 7 * 2^-6 */
    mpq_model_init(&m, 6, 6, 2, 3, &w, &a, 0.9f);
    int x = mpq_g_input(&m);
    mpq_g_fc(&m, "fc", mpq_g_act(&m, "c", mpq_g_conv(&m, "c", x, 4, 3, 1, 1, 0), 0), 3);
    ck_assert_int_eq(mpq_model_alloc(&m), 0);
    ck_assert_int_eq(mpq_model_plan(&m, N), 0);
    mpq_model_init_values(&m, 9, 0);
    ck_assert_ptr_nonnull(m.wq);
    const mpq_node *c = &m.nodes[1];
    float *wv = mpq_at(m.params.val, c->u.conv.weight);
    wv[0] = 10.0f; /* far beyond xmax: clipped */
    size_t in = (size_t)N * 6 * 6 * 2, k = (size_t)N * 3;
    float xin[N * 6 * 6 * 2], r[N * 3];
    mpq_test_fill_uniform(xin, in, -1, 1, 1);
    mpq_test_fill_uniform(r, k, -1, 1, 2);
    mpq_step s = mpq_model_step(&m, N, 1);
    memset(m.params.grad, 0, m.params.n_floats * sizeof(float));
    loss_of(&m, &s, xin, r);
    ck_assert_float_eq(m.wq[c->u.conv.weight.off], 0.109375f);
    memcpy(mpq_model_dlogits(&m), r, k * sizeof(float));
    mpq_model_backward(&m, &s, NULL, NULL);
    ck_assert_float_eq(m.params.grad[c->u.conv.weight.off], 0.0f);
    /* the clipped weight's gradient went to the quantizer's xmax */
    const mpq_quant *q = &m.quants[c->quant[0]];
    ck_assert(m.params.grad[q->p.off + 1] != 0.0f);
    mpq_model_free(&m);
}
END_TEST

static Suite *models_suite(void)
{
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("models");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_models_resnet20_shapes_and_names);
    tcase_add_test(tc, test_models_every_family_builds);
    tcase_add_test(tc, test_models_tensor_roles_and_bn_fold);
    tcase_add_test(tc, test_models_resnet_backward_matches_central_differences);
    tcase_add_test(tc, test_models_mobilenetv2_block_backward_matches_central_differences);
    tcase_add_test(tc, test_models_bn_dx_inside_the_convolution_changes_no_bit);
    tcase_add_test(tc, test_models_quantized_backward_passes_ste_to_weights);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    mpq_log_set_quiet(1);
    return mpq_test_main(models_suite);
}

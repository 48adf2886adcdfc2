/* Checkpoints, weight files and exports on one rank: save then load gives bitwise-equal flat
 * buffers (values, BN state, optimizer state) and fixed quantizer values, with no HDF5 handle
 * left open; truncated files, dataset shards, other models, other shapes and other quantizer
 * methods are refused with messages saying so; the checkpoint directory finds the newest
 * complete checkpoint, prunes, refuses a fresh start over an earlier run unless told to restart;
 * every tensor's stored checksum names a damaged tensor, and NaN/Inf tensors are refused; nnabla
 * parameter files (NCHW, (Cin, Cout)) load with their layouts converted; exported codes dequantize
 * to the quantized weights exactly. */
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "core/err.h"
#include "core/log.h"
#include "health.h"
#include "io/ckpt.h"
#include "io/export.h"
#include "iofix.h"
#include "mpi/comm.h"
#include "testutil.h"
#include "train.h"

static mpq_comm *comm;
static char *tmp;

/* A CIFAR ResNet (resnet20 or resnet32) on 8x8x3 inputs, with the scale layer when scale. */
static void build_scaled(mpq_model *m, const char *model, const char *wq, const char *aq,
                         int classes, int scale)
{
    mpq_cfg c;
    mpq_cfg_defaults(&c);
    c.scale_layer = scale;
    snprintf(c.model, sizeof c.model, "%s", model);
    snprintf(c.shortcut_type, sizeof c.shortcut_type, "b");
    snprintf(c.wq.method, sizeof c.wq.method, "%s", wq);
    snprintf(c.aq.method, sizeof c.aq.method, "%s", aq);
    int rc = mpq_train_model_build(&c, 8, 8, 3, classes, 2, m);
    ck_assert_msg(rc == 0, "%s", mpq_errmsg());
    mpq_model_init_values(m, 5, 1);
}

static void build(mpq_model *m, const char *model, const char *wq, const char *aq, int classes)
{
    build_scaled(m, model, wq, aq, classes, 0);
}

/* Every buffer random (quantizer values stay valid: small perturbations of their init). */
static void scramble(mpq_model *m, uint64_t seed)
{
    size_t n = m->params.n_floats;
    float *noise = malloc(n * sizeof *noise);
    mpq_test_fill_uniform(noise, n, -0.01f, 0.01f, seed);
    for (int i = 0; i < m->params.n_info; i++) {
        const mpq_param_info *t = &m->params.info[i];
        for (size_t k = 0; k < t->s.n; k++)
            m->params.val[t->s.off + k] +=
                t->kind == MPQ_PKIND_QUANT ? 0.0f : 50 * noise[t->s.off + k];
    }
    mpq_test_fill_uniform(m->params.opt[0], n, -1, 1, seed + 1);
    mpq_test_fill_uniform(m->params.opt[1], n, 0, 1, seed + 2);
    mpq_test_fill_uniform(m->state.val, m->state.n_floats, 0.1f, 2, seed + 3);
    free(noise);
}

static void fill_info(mpq_ckpt_info *in, const char *model, const char *config)
{
    static double hist[2 * 3] = {8, 0.5, 0.25, 16, 0.125, 0.0625};
    memset(in, 0, sizeof *in);
    snprintf(in->experiment, sizeof in->experiment, "T");
    snprintf(in->model, sizeof in->model, "%s", model);
    snprintf(in->optimizer, sizeof in->optimizer, "sgd");
    in->step = 16;
    in->epoch = 2;
    in->steps_per_epoch = 8;
    in->seed = 7;
    in->n_ranks = 1;
    in->in_h = in->in_w = 8;
    in->in_c = 3;
    in->num_classes = 10;
    in->lr = 0.05;
    in->first_loss = 2.5;
    in->best_val_err = NAN;
    in->epoch_err = 1.25;
    in->epoch_n = 3;
    in->last_budget_val = 13;
    in->config = (char *)config;
    in->history = hist;
    in->history_rows = 2;
    in->history_cols = 3;
    snprintf(in->history_columns, sizeof in->history_columns, "iter,a,b");
}

static void path_in_tmp(char *out, size_t bytes, const char *name)
{
    snprintf(out, bytes, "%s/%s", tmp, name);
}

static void assert_no_open_handles(void)
{
    ck_assert_int_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* Saves m (resnet20, parametric d_xmax) at path and returns 0 or the code. */
static int save(const mpq_model *m, const char *path, int with_opt)
{
    mpq_ckpt_info in;
    fill_info(&in, "resnet20", "[T]\nmodel = resnet20\n");
    return mpq_ckpt_save(comm, path, &m->view, &in, with_opt);
}

START_TEST(test_ckpt_save_load_bitwise)
{
    static const char *const methods[][2] = {{"parametric_fp_d_xmax", "parametric_fp_d_xmax_relu"},
                                             {"fp", "pow2_relu"}};
    for (int k = 0; k < 2; k++) {
        mpq_model a, b;
        char path[4096];
        path_in_tmp(path, sizeof path, "rt.h5");
        build(&a, "resnet20", methods[k][0], methods[k][1], 10);
        build(&b, "resnet20", methods[k][0], methods[k][1], 10);
        scramble(&a, 11 + (uint64_t)k);
        for (int i = 0; i < a.n_quants; i++) /* fixed quantizers: values only in the spec */
            if (a.quants[i].method == MPQ_QMETHOD_FP) a.quants[i].spec.p[1] = 0x1p-5f;
        ck_assert_int_eq(save(&a, path, 1), 0);
        ck_assert_int_eq(access(path, F_OK), 0);
        char tmpname[4200];
        snprintf(tmpname, sizeof tmpname, "%s.tmp", path);
        ck_assert_int_ne(access(tmpname, F_OK), 0);
        assert_no_open_handles();
        int rc = mpq_ckpt_load(comm, path, &b.view, "resnet20", MPQ_CKPT_LOAD_OPTIMIZER);
        ck_assert_msg(rc == 0, "%s", mpq_errmsg());
        assert_no_open_handles();
        size_t n = a.params.n_floats;
        ck_assert(!memcmp(a.params.val, b.params.val, n * sizeof(float)));
        ck_assert(!memcmp(a.params.opt[0], b.params.opt[0], n * sizeof(float)));
        ck_assert(!memcmp(a.params.opt[1], b.params.opt[1], n * sizeof(float)));
        ck_assert(!memcmp(a.state.val, b.state.val, a.state.n_floats * sizeof(float)));
        for (int i = 0; i < a.n_quants; i++)
            ck_assert(!memcmp(a.quants[i].spec.p, b.quants[i].spec.p, sizeof a.quants[i].spec.p));
        for (int i = 0; i < b.n_nodes; i++) /* activations use the loaded quantizer itself */
            if (b.nodes[i].kind == MPQ_NODE_ACT)
                ck_assert(b.nodes[i].u.act.q == &b.quants[b.nodes[i].quant[0]]);
        mpq_model_free(&a);
        mpq_model_free(&b);
    }
}
END_TEST

START_TEST(test_ckpt_info_round_trip)
{
    mpq_model a;
    mpq_ckpt_info in, out;
    char path[4096];
    path_in_tmp(path, sizeof path, "info.h5");
    build(&a, "resnet20", "parametric_fp_d_xmax", "", 10);
    fill_info(&in, "resnet20", "[T]\nmodel = resnet20\nseed = 7\n");
    ck_assert_int_eq(mpq_ckpt_save(comm, path, &a.view, &in, 0), 0);
    int rc = mpq_ckpt_read_info(comm, path, &out);
    ck_assert_msg(rc == 0, "%s", mpq_errmsg());
    ck_assert_str_eq(out.kind, "params");
    ck_assert_str_eq(out.model, "resnet20");
    ck_assert_str_eq(out.config, in.config);
    ck_assert_int_eq(out.step, 16);
    ck_assert_int_eq(out.epoch, 2);
    ck_assert_int_eq(out.seed, 7);
    ck_assert_int_eq(out.epoch_n, 3);
    ck_assert_int_eq(out.last_budget_val, 13);
    ck_assert(out.epoch_err == 1.25 && out.first_loss == 2.5 && isnan(out.best_val_err));
    ck_assert_int_eq(out.history_rows, 2);
    ck_assert_int_eq(out.history_cols, 3);
    ck_assert(!memcmp(out.history, in.history, 6 * sizeof(double)));
    ck_assert_str_eq(out.history_columns, "iter,a,b");
    mpq_ckpt_info_free(&out);
    /* a parameter file cannot be resumed from */
    rc = mpq_ckpt_load(comm, path, &a.view, "resnet20", MPQ_CKPT_LOAD_OPTIMIZER);
    ck_assert_int_eq(rc, MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), "without optimizer state"), "%s", mpq_errmsg());
    ck_assert_int_eq(mpq_ckpt_load(comm, path, &a.view, "resnet20", 0), 0);
    assert_no_open_handles();
    mpq_model_free(&a);
}
END_TEST

START_TEST(test_ckpt_refuses_damaged_and_foreign_files)
{
    mpq_model a;
    char path[4096], cut[4096], shard[4096], dir[4096];
    path_in_tmp(path, sizeof path, "good.h5");
    path_in_tmp(cut, sizeof cut, "cut.h5");
    path_in_tmp(dir, sizeof dir, "split");
    build(&a, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
    ck_assert_int_eq(save(&a, path, 1), 0);
    ck_assert_int_eq(iofix_copy_file(path, cut, 100000), 0);
    float before = a.params.val[0];
    int rc = mpq_ckpt_load(comm, cut, &a.view, "resnet20", 0);
    ck_assert_int_eq(rc, MPQ_E_IO);
    ck_assert_msg(strstr(mpq_errmsg(), "truncated") && strstr(mpq_errmsg(), "cut.h5"), "%s",
                  mpq_errmsg());
    mpq_ckpt_info info;
    ck_assert_int_eq(mpq_ckpt_read_info(comm, cut, &info), MPQ_E_IO);
    ck_assert_int_eq(mpq_ckpt_load(comm, dir, &a.view, NULL, 0), MPQ_E_IO); /* does not exist */
    ck_assert_msg(strstr(mpq_errmsg(), "No such file"), "%s", mpq_errmsg());
    ck_assert_int_eq(iofix_make_split(dir, 4, 8, 8, 3, 1, 10), 0);
    snprintf(shard, sizeof shard, "%s/shard-00000.h5", dir);
    rc = mpq_ckpt_load(comm, shard, &a.view, NULL, 0);
    ck_assert_int_eq(rc, MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), "dataset shard"), "%s", mpq_errmsg());
    ck_assert_int_eq(mpq_ckpt_load_weights(comm, shard, &a.view, NULL), MPQ_E_FORMAT);
    ck_assert_int_eq(mpq_ckpt_read_info(comm, shard, &info), MPQ_E_FORMAT);
    ck_assert(a.params.val[0] == before); /* nothing was loaded */
    assert_no_open_handles();
    mpq_model_free(&a);
}
END_TEST

/* Loads the resnet20 checkpoint at path into another model; returns the code. */
static int load_into(const char *path, const char *model, const char *wq, int classes,
                     const char *expect_name)
{
    mpq_model b;
    build(&b, model, wq, "parametric_fp_d_xmax_relu", classes);
    int rc = mpq_ckpt_load(comm, path, &b.view, expect_name, 0);
    mpq_model_free(&b);
    return rc;
}

START_TEST(test_ckpt_refuses_other_models)
{
    mpq_model a;
    char path[4096];
    path_in_tmp(path, sizeof path, "r20.h5");
    build(&a, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
    ck_assert_int_eq(save(&a, path, 1), 0);
    mpq_model_free(&a);
    ck_assert_int_eq(load_into(path, "resnet32", "parametric_fp_d_xmax", 10, "resnet32"),
                     MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), "holds model 'resnet20', not 'resnet32'"), "%s",
                  mpq_errmsg());
    ck_assert_int_eq(load_into(path, "resnet32", "parametric_fp_d_xmax", 10, NULL), MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), "res1/layer4") && strstr(mpq_errmsg(), "missing"), "%s",
                  mpq_errmsg());
    ck_assert_int_eq(load_into(path, "resnet20", "parametric_fp_d_xmax", 7, NULL), MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), "fc/quantized_affine/W") &&
                      strstr(mpq_errmsg(), "shape (10, 64)") && strstr(mpq_errmsg(), "(7, 64)"),
                  "%s", mpq_errmsg());
    ck_assert_int_eq(load_into(path, "resnet20", "parametric_fp_b_xmax", 10, NULL), MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), "Wquant/n"), "%s", mpq_errmsg()); /* U2 has (n, xmax) */
    ck_assert_int_eq(load_into(path, "resnet20", "fp", 10, NULL), MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), "not in the model"), "%s", mpq_errmsg());
    ck_assert_int_eq(load_into(path, "resnet20", "parametric_fp_d_xmax", 10, "resnet20"), 0);
    assert_no_open_handles();
}
END_TEST

START_TEST(test_ckpt_refuses_other_quantizer_method)
{
    mpq_model a;
    char path[4096];
    path_in_tmp(path, sizeof path, "fp.h5");
    build(&a, "resnet20", "fp", "parametric_fp_d_xmax_relu", 10);
    ck_assert_int_eq(save(&a, path, 1), 0);
    mpq_model_free(&a);
    ck_assert_int_eq(load_into(path, "resnet20", "pow2", 10, NULL), MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), "method 'fp' in the checkpoint but 'pow2'"), "%s",
                  mpq_errmsg());
    assert_no_open_handles();
}
END_TEST

START_TEST(test_ckpt_directory_newest_and_prune)
{
    mpq_model a;
    char dir[4096], p[4200], found[4200];
    path_in_tmp(dir, sizeof dir, "run");
    snprintf(p, sizeof p, "%s/%s", dir, MPQ_CKPT_SUBDIR);
    ck_assert_int_eq(mkdir(dir, 0755) || mkdir(p, 0755), 0);
    ck_assert_int_eq(mpq_ckpt_find_latest(dir, found, sizeof found), 0);
    build(&a, "resnet20", "", "", 10);
    for (long s = 1; s <= 4; s++) {
        mpq_ckpt_path(dir, s, p, sizeof p);
        ck_assert_int_eq(save(&a, p, 1), 0);
    }
    mpq_ckpt_path(dir, 5, p, sizeof p); /* a save that was killed before its rename */
    strcat(p, ".tmp");
    ck_assert_int_eq(iofix_write_text(p, "partial"), 0);
    ck_assert_int_eq(mpq_ckpt_find_latest(dir, found, sizeof found), 1);
    mpq_ckpt_path(dir, 4, p, sizeof p);
    ck_assert_str_eq(found, p);
    char good[4200]; /* the newest one damaged: the one before is used */
    snprintf(good, sizeof good, "%s.copy", p);
    ck_assert_int_eq(iofix_copy_file(p, good, -1), 0);
    ck_assert_int_eq(iofix_copy_file(good, p, 5000), 0);
    mpq_log_set_quiet(1);
    ck_assert_int_eq(mpq_ckpt_find_latest(dir, found, sizeof found), 1);
    mpq_ckpt_path(dir, 3, p, sizeof p);
    ck_assert_str_eq(found, p);
    ck_assert_int_eq(mpq_ckpt_prune(dir, 2), 0);
    for (long s = 1; s <= 5; s++) {
        mpq_ckpt_path(dir, s, p, sizeof p);
        ck_assert_int_eq(access(p, F_OK) == 0, s >= 3 && s <= 4);
    }
    strcat(p, ".tmp");
    ck_assert_int_ne(access(p, F_OK), 0);
    /* a run starting at step 0 refuses an earlier run's checkpoints and best parameters, naming
     * the ways on; it removes them only with --restart */
    snprintf(p, sizeof p, "%s/%s", dir, MPQ_CKPT_BEST);
    ck_assert_int_eq(iofix_write_text(p, "old"), 0);
    ck_assert_int_eq(mpq_ckpt_start_fresh(dir, MPQ_CKPT_START_FRESH), MPQ_E_CONFIG);
    ck_assert_msg(strstr(mpq_errmsg(), "2 checkpoint(s) and params_best.h5") &&
                      strstr(mpq_errmsg(), "ckpt-000000004.h5") &&
                      strstr(mpq_errmsg(), "--resume auto") && strstr(mpq_errmsg(), "--restart"),
                  "%s", mpq_errmsg());
    ck_assert_int_eq(mpq_ckpt_start_fresh(dir, MPQ_CKPT_START_NONE), MPQ_E_CONFIG);
    ck_assert_int_eq(mpq_ckpt_find_latest(dir, found, sizeof found), 1); /* nothing removed */
    ck_assert_int_eq(access(p, F_OK), 0);
    ck_assert_int_eq(mpq_ckpt_start_fresh(dir, MPQ_CKPT_START_RESTART), 0);
    ck_assert_int_ne(access(p, F_OK), 0);
    ck_assert_int_eq(mpq_ckpt_find_latest(dir, found, sizeof found), 0);
    ck_assert_int_eq(mpq_ckpt_start_fresh(dir, MPQ_CKPT_START_FRESH), 0);
    /* --resume auto over no checkpoint but an earlier params_best.h5: starts (with a warning) */
    ck_assert_int_eq(iofix_write_text(p, "old"), 0);
    ck_assert_int_eq(mpq_ckpt_start_fresh(dir, MPQ_CKPT_START_NONE), 0);
    ck_assert_int_eq(mpq_ckpt_start_fresh(dir, MPQ_CKPT_START_FRESH), MPQ_E_CONFIG);
    assert_no_open_handles();
    mpq_model_free(&a);
}
END_TEST

/* ---- nnabla parameter files ------------------------------------------------------------------ */

/* The reference's name of a parametric quantizer's value: <quantizer>/<method>/<value>; 0 if t
 * is no quantizer value. */
static int nnabla_quant_name(const mpq_model *m, const mpq_param_info *t, char *out, size_t size)
{
    for (int i = 0; i < m->n_quants; i++)
        for (int k = 0; k < (int)m->quants[i].p.n; k++)
            if (m->quants[i].p.off + (size_t)k == t->s.off) {
                snprintf(out, size, "%s/%s/%s", m->qinfo[i].name,
                         mpq_qmethod_name(m->quants[i].method),
                         mpq_qmethod_param_name(m->quants[i].method, k));
                return 1;
            }
    return 0;
}

/* Writes every tensor of m in nnabla's layout (values from ref, ours) into path: conv W (O, I,
 * KH, KW), affine W (Cin, Cout), BN vectors (1, C, 1, 1), with quant the quantizer values under
 * the reference's names; skip: a name left out. */
static void write_nnabla_q(const char *path, const mpq_model *m, const char *skip, int quant)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    ck_assert(f >= 0);
    for (int reg = 0, index = 0; reg < 2; reg++) {
        const mpq_params *r = reg ? &m->state : &m->params;
        for (int i = 0; i < r->n_info; i++) {
            const mpq_param_info *t = &r->info[i];
            char name[MPQ_NAME_MAX + 64];
            snprintf(name, sizeof name, "%s", t->name);
            if ((t->kind == MPQ_PKIND_QUANT &&
                 (!quant || !nnabla_quant_name(m, t, name, sizeof name))) ||
                (skip && !strcmp(skip, t->name)))
                continue;
            const float *v = r->val + t->s.off;
            const int *s = t->shape;
            float *buf = malloc(t->s.n * sizeof *buf);
            hsize_t dims[4];
            int nd;
            if (t->kind == MPQ_PKIND_WEIGHT && t->ndim == 4) { /* ours (O,KH,KW,I) -> (O,I,KH,KW) */
                nd = 4;
                dims[0] = (hsize_t)s[0], dims[1] = (hsize_t)s[3], dims[2] = (hsize_t)s[1];
                dims[3] = (hsize_t)s[2];
                for (int o = 0; o < s[0]; o++)
                    for (int kh = 0; kh < s[1]; kh++)
                        for (int kw = 0; kw < s[2]; kw++)
                            for (int c = 0; c < s[3]; c++)
                                buf[((o * s[3] + c) * s[1] + kh) * s[2] + kw] =
                                    v[((o * s[1] + kh) * s[2] + kw) * s[3] + c];
            } else if (t->kind == MPQ_PKIND_WEIGHT && t->ndim == 2) { /* (Cout,Cin) -> (Cin,Cout) */
                nd = 2;
                dims[0] = (hsize_t)s[1], dims[1] = (hsize_t)s[0];
                for (int o = 0; o < s[0]; o++)
                    for (int c = 0; c < s[1]; c++)
                        buf[c * s[0] + o] = v[o * s[1] + c];
            } else if (strstr(t->name, "bn/")) {
                nd = 4;
                dims[0] = dims[2] = dims[3] = 1, dims[1] = (hsize_t)s[0];
                memcpy(buf, v, t->s.n * sizeof *buf);
            } else {
                nd = t->ndim;
                for (int k = 0; k < nd; k++)
                    dims[k] = (hsize_t)s[k];
                memcpy(buf, v, t->s.n * sizeof *buf);
            }
            hid_t sp = H5Screate_simple(nd, dims, NULL);
            hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            ck_assert(d >= 0);
            ck_assert(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
            hid_t as = H5Screate(H5S_SCALAR);
            int need_grad = reg == 0;
            hid_t a = H5Acreate2(d, "need_grad", H5T_STD_I32LE, as, H5P_DEFAULT, H5P_DEFAULT);
            H5Awrite(a, H5T_NATIVE_INT, &need_grad);
            H5Aclose(a);
            a = H5Acreate2(d, "index", H5T_STD_I32LE, as, H5P_DEFAULT, H5P_DEFAULT);
            H5Awrite(a, H5T_NATIVE_INT, &index);
            index++;
            H5Aclose(a);
            H5Sclose(as);
            H5Dclose(d);
            H5Sclose(sp);
            free(buf);
        }
    }
    H5Pclose(lcpl);
    H5Fclose(f);
}

static void write_nnabla(const char *path, const mpq_model *m, const char *skip)
{
    write_nnabla_q(path, m, skip, 0);
}

/* dst's tensors (both registries) from src's tensors of the same names, which must exist. */
static void copy_by_name(mpq_model *dst, const mpq_model *src)
{
    for (int reg = 0; reg < 2; reg++) {
        mpq_params *d = reg ? &dst->state : &dst->params;
        const mpq_params *s = reg ? &src->state : &src->params;
        for (int i = 0; i < d->n_info; i++) {
            int j = mpq_params_find(s, d->info[i].name);
            ck_assert_msg(j >= 0 && s->info[j].s.n == d->info[i].s.n, "%s", d->info[i].name);
            memcpy(d->val + d->info[i].s.off, s->val + s->info[j].s.off,
                   d->info[i].s.n * sizeof(float));
        }
    }
}

/* Quantizer values no initialisation gives: d = 2^-5 (1 + i/64), xmax = 0.5 + i/128, ... */
static void set_known_quant_values(mpq_model *m)
{
    for (int i = 0; i < m->n_quants; i++)
        if (m->quants[i].p.n == 2) {
            m->params.val[m->quants[i].p.off] = 0.03125f * (1.0f + (float)i / 64.0f);
            m->params.val[m->quants[i].p.off + 1] = 0.5f + (float)i / 128.0f;
        }
}

/* The reference keeps every parameter its weightfile holds: quantizer values of the model's
 * method are kept (mpq and nnabla files), the others start from find_delta of the loaded weights;
 * a scale layer missing in the file starts at 1. */
START_TEST(test_ckpt_weightfile_keeps_quantizer_values)
{
    static const char *const wq[] = {"parametric_fp_d_xmax", "parametric_pow2_xmin_xmax"};
    mpq_model ref, b, want;
    char path[4096], nn_path[4096], skip[MPQ_NAME_MAX];
    path_in_tmp(path, sizeof path, "known.h5");
    path_in_tmp(nn_path, sizeof nn_path, "known-nnabla.h5");
    build(&ref, "resnet20", wq[0], "parametric_fp_d_xmax_relu", 10);
    scramble(&ref, 41);
    set_known_quant_values(&ref);
    ck_assert_int_eq(save(&ref, path, 0), 0);
    write_nnabla_q(nn_path, &ref, NULL, 1);
    for (int f = 0; f < 2; f++) { /* mpq file, nnabla file: every value as in ref */
        build(&b, "resnet20", wq[0], "parametric_fp_d_xmax_relu", 10);
        int rc = mpq_train_start_from_weightfile(comm, f ? nn_path : path, &b);
        ck_assert_msg(rc == 0, "%s", mpq_errmsg());
        for (int i = 0; i < ref.n_quants; i++)
            for (size_t k = 0; k < ref.quants[i].p.n; k++)
                ck_assert_msg(b.params.val[b.quants[i].p.off + k] ==
                                  ref.params.val[ref.quants[i].p.off + k],
                              "file %d: %s value %zu", f, ref.qinfo[i].name, k);
        ck_assert(!memcmp(ref.params.val, b.params.val, b.params.n_floats * sizeof(float)));
        assert_no_open_handles();
        mpq_model_free(&b);
    }
    /* a quantizer with one value missing, and another method: initialised from the weights */
    snprintf(skip, sizeof skip, "%s/%s", ref.qinfo[0].name,
             mpq_qmethod_param_name(ref.quants[0].method, 0));
    write_nnabla_q(nn_path, &ref, skip, 1);
    build(&b, "resnet20", wq[0], "parametric_fp_d_xmax_relu", 10);
    ck_assert_int_eq(mpq_train_start_from_weightfile(comm, nn_path, &b), 0);
    build(&want, "resnet20", wq[0], "parametric_fp_d_xmax_relu", 10);
    memcpy(want.params.val, ref.params.val, ref.params.n_floats * sizeof(float));
    unsigned char keep[256];
    ck_assert_int_lt(ref.n_quants, 256);
    memset(keep, 1, sizeof keep);
    keep[0] = 0;
    mpq_model_init_quantizers(&want, 1, keep);
    ck_assert(want.params.val[want.quants[0].p.off] != ref.params.val[ref.quants[0].p.off]);
    ck_assert(!memcmp(want.params.val, b.params.val, b.params.n_floats * sizeof(float)));
    mpq_model_free(&b);
    mpq_model_free(&want);
    build(&b, "resnet20", wq[1], "parametric_fp_d_xmax_relu", 10);
    ck_assert_int_eq(mpq_train_start_from_weightfile(comm, path, &b), 0);
    build(&want, "resnet20", wq[1], "parametric_fp_d_xmax_relu", 10);
    for (int i = 0; i < want.params.n_info; i++) { /* weights, BN, act quantizers from ref */
        const mpq_param_info *t = &want.params.info[i];
        int j = mpq_params_find(&ref.params, t->name);
        if (j >= 0 && !strstr(t->name, "Wquant") && !strstr(t->name, "bquant"))
            memcpy(want.params.val + t->s.off, ref.params.val + ref.params.info[j].s.off,
                   t->s.n * sizeof(float));
    }
    memcpy(want.state.val, ref.state.val, ref.state.n_floats * sizeof(float));
    memset(keep, 0, sizeof keep);
    for (int i = 0; i < want.n_quants; i++)
        keep[i] = (unsigned char)want.quants[i].is_act; /* same method there */
    mpq_model_init_quantizers(&want, 1, keep);
    ck_assert(!memcmp(want.params.val, b.params.val, b.params.n_floats * sizeof(float)));
    mpq_model_free(&b);
    mpq_model_free(&want);
    /* a float run's file into a model with the scale layer: the scale starts at 1 */
    mpq_model flt;
    build(&flt, "resnet20", "", "", 10);
    copy_by_name(&flt, &ref);
    ck_assert_int_eq(save(&flt, path, 0), 0);
    write_nnabla(nn_path, &flt, NULL);
    for (int f = 0; f < 2; f++) {
        build_scaled(&b, "resnet20", wq[1], "parametric_pow2_xmin_xmax_relu", 10, 1);
        int j = mpq_params_find(&b.params, "fc/scale_layer");
        ck_assert_int_ge(j, 0);
        b.params.val[b.params.info[j].s.off] = 7.0f;
        int rc = mpq_train_start_from_weightfile(comm, f ? nn_path : path, &b);
        ck_assert_msg(rc == 0, "%s", mpq_errmsg());
        ck_assert(b.params.val[b.params.info[j].s.off] == 1.0f);
        mpq_model_free(&b);
    }
    assert_no_open_handles();
    mpq_model_free(&flt);
    mpq_model_free(&ref);
}
END_TEST

START_TEST(test_ckpt_nnabla_weightfile)
{
    mpq_model ref, b, want;
    char path[4096];
    path_in_tmp(path, sizeof path, "nnabla.h5");
    build(&ref, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
    scramble(&ref, 21);
    write_nnabla(path, &ref, NULL);
    build(&b, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
    int rc = mpq_train_start_from_weightfile(comm, path, &b);
    ck_assert_msg(rc == 0, "%s", mpq_errmsg());
    assert_no_open_handles();
    /* expected: ref's weights and state, quantizers from find_delta of those weights */
    build(&want, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
    memcpy(want.params.val, ref.params.val, ref.params.n_floats * sizeof(float));
    memcpy(want.state.val, ref.state.val, ref.state.n_floats * sizeof(float));
    mpq_model_init_quantizers(&want, 1, NULL);
    ck_assert(!memcmp(want.params.val, b.params.val, b.params.n_floats * sizeof(float)));
    ck_assert(!memcmp(want.state.val, b.state.val, b.state.n_floats * sizeof(float)));
    /* a tensor missing in the file is named */
    write_nnabla(path, &ref, "res2/layer1/basicblock2/bn/var");
    ck_assert_int_eq(mpq_train_start_from_weightfile(comm, path, &b), MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), "res2/layer1/basicblock2/bn/var") &&
                      strstr(mpq_errmsg(), "1 missing"),
                  "%s", mpq_errmsg());
    /* an mpq file of a float run (no quantizer values) as weightfile: weights, BN and state,
     * quantizers from find_delta */
    path_in_tmp(path, sizeof path, "w.h5");
    mpq_model c, flt;
    build(&flt, "resnet20", "", "", 10);
    copy_by_name(&flt, &ref);
    ck_assert_int_eq(save(&flt, path, 0), 0);
    build(&c, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
    ck_assert_int_eq(mpq_train_start_from_weightfile(comm, path, &c), 0);
    ck_assert(!memcmp(want.params.val, c.params.val, c.params.n_floats * sizeof(float)));
    ck_assert(!memcmp(want.state.val, c.state.val, c.state.n_floats * sizeof(float)));
    assert_no_open_handles();
    mpq_model_free(&flt);
    mpq_model_free(&ref);
    mpq_model_free(&b);
    mpq_model_free(&c);
    mpq_model_free(&want);
}
END_TEST

/* ---- exports --------------------------------------------------------------------------------- */

START_TEST(test_export_codes_dequantize_exactly)
{
    static const char *const methods[] = {"parametric_fp_d_xmax", "parametric_pow2_b_xmax",
                                          "parametric_fp_d_b", "fp"};
    for (int k = 0; k < 8; k++) {
        const char *wq = methods[k / 2];
        mpq_export_opts o = {.pack = k % 2, .fold_bn = 0};
        mpq_model a, b;
        mpq_ckpt_info in;
        char path[4096];
        double kb;
        path_in_tmp(path, sizeof path, "export.h5");
        build(&a, "resnet20", wq, "parametric_fp_d_xmax_relu", 10);
        scramble(&a, 31 + (uint64_t)k);
        mpq_model_init_quantizers(&a, 1, NULL);
        fill_info(&in, "resnet20", "");
        int rc = mpq_export_write(comm, path, &a.view, &in, &o, &kb);
        ck_assert_msg(rc == 0, "%s: %s", wq, mpq_errmsg());
        assert_no_open_handles();
        mpq_size_terms size;
        mpq_model_size(&a, &(mpq_budget){0}, NULL, &size);
        ck_assert_msg(fabs(kb - size.kbytes_w) < 1e-6 * kb, "%g KB vs %g", kb, size.kbytes_w);
        build(&b, "resnet20", "", "parametric_fp_d_xmax_relu", 10);
        rc = mpq_export_load(comm, path, &b.view);
        ck_assert_msg(rc == 0, "%s", mpq_errmsg());
        assert_no_open_handles();
        /* weights equal Q(W) of the source model; everything else equal */
        mpq_step s = mpq_model_step(&a, 1, 0);
        mpq_model_forward(&a, &s); /* fills a.wq */
        for (int i = 0; i < b.params.n_info; i++) {
            const mpq_param_info *t = &b.params.info[i];
            int j = mpq_params_find(&a.params, t->name);
            ck_assert_int_ge(j, 0);
            const mpq_param_info *u = &a.params.info[j];
            const float *want = (t->kind == MPQ_PKIND_WEIGHT || t->kind == MPQ_PKIND_BIAS)
                                    ? a.wq + u->s.off
                                    : a.params.val + u->s.off;
            for (size_t e = 0; e < t->s.n; e++)
                ck_assert_msg(b.params.val[t->s.off + e] == want[e], "%s %s[%zu]: %a vs %a", wq,
                              t->name, e, (double)b.params.val[t->s.off + e], (double)want[e]);
        }
        ck_assert(!memcmp(a.state.val, b.state.val, a.state.n_floats * sizeof(float)));
        /* the table */
        mpq_export_entry *e;
        int n, packed, fold;
        ck_assert_int_eq(mpq_export_table(comm, path, &e, &n, &packed, &fold), 0);
        ck_assert_int_eq(packed, o.pack);
        ck_assert_int_eq(n, 21 + 2); /* 19 convolutions, 2 shortcut projections, fc W and b */
        for (int i = 0; i < n; i++) {
            ck_assert_msg(e[i].stored_bits >= e[i].bits, "%s", e[i].name);
            if (!o.pack) ck_assert(e[i].stored_bits == 8 || e[i].stored_bits == 16);
        }
        free(e);
        assert_no_open_handles();
        mpq_model_free(&a);
        mpq_model_free(&b);
    }
}
END_TEST

/* Flips bytes inside dataset name of the closed file path (at its raw data). */
static void damage(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    haddr_t off = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    ck_assert(off != HADDR_UNDEF);
    FILE *fp = fopen(path, "r+b");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fseek(fp, (long)off + 8, SEEK_SET), 0);
    ck_assert_int_eq(fwrite("\xff\xff\xff\xff", 1, 4, fp), 4);
    ck_assert_int_eq(fclose(fp), 0);
}

START_TEST(test_ckpt_checksums_name_the_damaged_tensor)
{
    static const char w[] = "/params/res1/layer1/basicblock1/quantized_conv/W";
    mpq_model a;
    char path[4096], dir[4096], found[4096];
    build(&a, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
    scramble(&a, 3);
    snprintf(dir, sizeof dir, "%s/sums", tmp);
    snprintf(path, sizeof path, "%s/%s", dir, MPQ_CKPT_SUBDIR);
    ck_assert_int_eq(mkdir(dir, 0755) || mkdir(path, 0755), 0);
    mpq_ckpt_path(dir, 2, path, sizeof path);
    ck_assert_int_eq(save(&a, path, 1), 0);
    mpq_ckpt_path(dir, 4, path, sizeof path);
    ck_assert_int_eq(save(&a, path, 1), 0);
    /* every dataset carries the hash of its bytes */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_gt(H5Aexists_by_name(f, w, "mpq_fnv1a64", H5P_DEFAULT), 0);
    ck_assert_int_gt(H5Aexists_by_name(f, "/optimizer/v", "mpq_fnv1a64", H5P_DEFAULT), 0);
    H5Fclose(f);
    damage(path, w);
    ck_assert_int_eq(mpq_ckpt_load(comm, path, &a.view, "resnet20", MPQ_CKPT_LOAD_OPTIMIZER),
                     MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), w) && strstr(mpq_errmsg(), "does not match its stored "
                                                                  "checksum"),
                  "%s", mpq_errmsg());
    /* --resume auto falls back to the previous complete checkpoint */
    ck_assert_int_eq(mpq_ckpt_find_latest(dir, found, sizeof found), 1);
    mpq_ckpt_path(dir, 2, path, sizeof path);
    ck_assert_str_eq(found, path);
    /* a file written before checksums existed loads */
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(H5Adelete_by_name(f, w, "mpq_fnv1a64", H5P_DEFAULT), 0);
    H5Fclose(f);
    ck_assert_int_eq(mpq_ckpt_load(comm, path, &a.view, "resnet20", MPQ_CKPT_LOAD_OPTIMIZER), 0);
    mpq_model_free(&a);
    assert_no_open_handles();
}
END_TEST

START_TEST(test_ckpt_refuses_non_finite_values)
{
    mpq_model a;
    char path[4096];
    path_in_tmp(path, sizeof path, "nan.h5");
    build(&a, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
    int i = mpq_params_find(&a.params, "fc/quantized_affine/W");
    ck_assert_int_ge(i, 0);
    a.params.val[a.params.info[i].s.off + 5] = NAN;
    a.params.val[a.params.info[i].s.off + 6] = INFINITY;
    ck_assert_int_eq(save(&a, path, 1), 0); /* the trainer checks before it saves; io does not */
    ck_assert_int_eq(mpq_view_check_finite(&a.view, 0, "here", NULL), MPQ_E_NUMERIC);
    ck_assert_msg(strstr(mpq_errmsg(), "here: parameter tensor 'fc/quantized_affine/W' holds nan "
                                       "at element 5 of 640 (2 non-finite value(s) in all)"),
                  "%s", mpq_errmsg());
    mpq_model_free(&a);
    for (int k = 0; k < 2; k++) { /* resume and eval (weights only) */
        build(&a, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
        ck_assert_int_eq(mpq_ckpt_load(comm, path, &a.view, "resnet20", k ? 0 : MPQ_CKPT_LOAD_OPTIMIZER),
                         MPQ_E_NUMERIC);
        ck_assert_msg(strstr(mpq_errmsg(), "fc/quantized_affine/W") && strstr(mpq_errmsg(), path) &&
                          strstr(mpq_errmsg(), "earlier checkpoint"),
                      "%s", mpq_errmsg());
        mpq_model_free(&a);
    }
    build(&a, "resnet20", "parametric_fp_d_xmax", "parametric_fp_d_xmax_relu", 10);
    ck_assert_int_eq(mpq_ckpt_load_weights(comm, path, &a.view, NULL), MPQ_E_NUMERIC);
    mpq_model_free(&a);
    assert_no_open_handles();
}
END_TEST

static Suite *ckpt_suite(void)
{
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ckpt_save_load_bitwise);
    tcase_add_test(tc, test_ckpt_info_round_trip);
    tcase_add_test(tc, test_ckpt_directory_newest_and_prune);
    suite_add_tcase(s, tc);
    tc = tcase_create("refusals");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ckpt_refuses_damaged_and_foreign_files);
    tcase_add_test(tc, test_ckpt_refuses_other_models);
    tcase_add_test(tc, test_ckpt_refuses_other_quantizer_method);
    tcase_add_test(tc, test_ckpt_checksums_name_the_damaged_tensor);
    tcase_add_test(tc, test_ckpt_refuses_non_finite_values);
    suite_add_tcase(s, tc);
    tc = tcase_create("weights");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ckpt_nnabla_weightfile);
    tcase_add_test(tc, test_ckpt_weightfile_keeps_quantizer_values);
    tcase_add_test(tc, test_export_codes_dequantize_exactly);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    return mpq_test_main_mpi(&argc, &argv, ckpt_suite, &comm, &tmp);
}

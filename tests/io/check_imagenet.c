/* ImageNet as the paper trains it: shards stored at 256 are delivered as 224 x 224 training and
 * validation tensors by the configuration's default views, ResNet-18 then has its 112x112x64
 * first activation and 1814.1 M multiply-adds per sample, and every budgeted experiment of
 * configs/imagenet_{resnet18,mobilenetv2}.cfg admits the homogeneous 4-bit network that the
 * paper's table reports at those budgets (the size model computes the sizes). Needs top_srcdir
 * (set by `make check`) to find configs/. */
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/err.h"
#include "core/log.h"
#include "iofix.h"
#include "models/models.h"
#include "quant/size.h"
#include "testutil.h"
#include "train.h"

static char *tmp;

static void setup(void)
{
    mpq_log_set_quiet(1);
    tmp = mpq_test_tmpdir();
    ck_assert_ptr_nonnull(tmp);
}

static void teardown(void)
{
    ck_assert_int_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
    mpq_test_rmtree(tmp);
    free(tmp);
}

/* Index of the first node of a kind, or -1. */
static int first_node(const mpq_model *m, mpq_node_kind kind)
{
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].kind == kind) return i;
    return -1;
}

START_TEST(test_imagenet_views_are_224_and_resnet18_matches_the_paper)
{
    char dir[4096];
    mpq_cfg c;
    mpq_source *train = NULL, *val = NULL;
    mpq_model m;
    mpq_cfg_defaults(&c);
    ck_assert_int_eq(mpq_cfg_set(&c, "augment", "imagenet", "test"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "model", "resnet18", "test"), 0);
    c.batch_size = c.val_batch_size = 4;
    snprintf(dir, sizeof dir, "%s/s256", tmp);
    ck_assert_int_eq(iofix_make_split(dir, 8, 256, 256, 3, 1, 10), 0);
    ck_assert_int_eq(mpq_train_source_open(&c, dir, 1, 0, 1, &train), 0);
    ck_assert_int_eq(mpq_train_source_open(&c, dir, 0, 0, 1, &val), 0);
    ck_assert_int_eq(train->info.h * 1000 + train->info.w, 224 * 1000 + 224);
    ck_assert_int_eq(val->info.h * 1000 + val->info.w, 224 * 1000 + 224);
    {
        float *x = malloc(sizeof(float) * 4 * 224 * 224 * 3);
        int y[4], n = 0;
        ck_assert_int_eq(train->ops->next(train, x, y, &n), 0); /* it delivers what it says */
        ck_assert_int_eq(n, 4);
        ck_assert_int_eq(val->ops->next(val, x, y, &n), 0);
        ck_assert_int_eq(n, 4);
        free(x);
    }
    ck_assert_int_eq(
        mpq_train_model_build(&c, train->info.h, train->info.w, train->info.c, 1000, 1, &m), 0);
    const int conv = first_node(&m, MPQ_NODE_CONV), act = first_node(&m, MPQ_NODE_ACT);
    ck_assert_int_ge(conv, 0);
    ck_assert_int_ge(act, 0);
    ck_assert_int_eq(m.nodes[conv].h * 1000000 + m.nodes[conv].w * 1000 + m.nodes[conv].c,
                     112 * 1000000 + 112 * 1000 + 64);
    ck_assert_int_eq(m.nodes[act].h * 1000000 + m.nodes[act].w * 1000 + m.nodes[act].c,
                     112 * 1000000 + 112 * 1000 + 64);
    /* what the model line of `mpq train` prints: "%.1f M multiply-adds per sample" */
    char line[64];
    snprintf(line, sizeof line, "%.1f", mpq_model_macs(&m) / 1e6);
    ck_assert_str_eq(line, "1814.1");
    mpq_model_free(&m);
    mpq_source_free(train);
    mpq_source_free(val);
}
END_TEST

/* The paper's table (Uhlich et al. 2020, "Mixed Precision ResNet-18 / MobileNetV2 on ImageNet",
 * MB = 2^20 bytes): the homogeneous 4-bit networks' weight size and largest activation, and the
 * sizes of the learned mixed-precision networks trained under those budgets. */
typedef struct paper_row {
    const char *cfg, *model;
    double w4_mb, a4_mb;           /* "Fixed" / "Homogenous" rows, 4bit/4bit */
    double w_mixed_mb, a_mixed_mb; /* "Heterogeneous (w/ constr.)" row */
} paper_row;

static const paper_row paper[] = {
    {"imagenet_resnet18.cfg", "resnet18", 5.57, 0.38, 5.40, 0.38},
    {"imagenet_mobilenetv2.cfg", "mobilenetv2", 1.65, 0.57, 1.55, 0.57},
};

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *t = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (t = malloc((size_t)n + 1)) && fread(t, 1, (size_t)n, f) == (size_t)n)
        t[n] = '\0';
    else {
        free(t);
        t = NULL;
    }
    fclose(f);
    return t;
}

/* Weight KB and largest-activation KB of cfg's model at 4 bits everywhere (learned ranges, the
 * bitwidth pinned: the paper's "Homogenous" network), from the size model. */
static void homogeneous_4bit_kbytes(const mpq_cfg *cfg, double *kw, double *ka)
{
    mpq_cfg c = *cfg;
    mpq_model m;
    mpq_size_terms t;
    ck_assert_int_eq(mpq_cfg_set(&c, "w_quantize", "parametric_fp_b_xmax", "test"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "a_quantize", "parametric_fp_b_xmax_relu", "test"), 0);
    c.wq.bitwidth = c.aq.bitwidth = 4;
    ck_assert_int_eq(mpq_train_model_build(&c, c.crop_size, c.crop_size, 3, 1000, 1, &m), 0);
    mpq_model_init_values(&m, 1, 0);
    mpq_budget b = mpq_train_budget(&c);
    mpq_model_size(&m, &b, NULL, &t);
    *kw = t.kbytes_w;
    *ka = t.kbytes_a;
    ck_assert_msg(mpq_size_within_budget(&t, &b),
                  "[%s] 4-bit weights %.4f KB, activations %.4f KB over the budgets %.2f / %.2f",
                  c.experiment, *kw, *ka, (double)b.target_w_kbytes, (double)b.target_a_kbytes);
    mpq_model_free(&m);
}

START_TEST(test_imagenet_budgets_admit_the_papers_sizes)
{
    const char *top = getenv("top_srcdir");
    ck_assert_msg(top != NULL, "top_srcdir is not set (run through `make check`)");
    for (size_t i = 0; i < sizeof paper / sizeof paper[0]; i++) {
        const paper_row *p = &paper[i];
        char path[4096];
        snprintf(path, sizeof path, "%s/configs/%s", top, p->cfg);
        char *text = read_text(path), *list;
        ck_assert_msg(text != NULL, "cannot read %s", path);
        list = mpq_cfg_list_experiments(text);
        ck_assert_ptr_nonnull(list);
        int n_budgeted = 0, n_unconstrained = 0;
        double kw4 = -1.0, ka4 = -1.0;
        for (char *e = strtok(list, "\n"); e; e = strtok(NULL, "\n")) {
            mpq_cfg c;
            ck_assert_msg(mpq_cfg_parse_text(text, path, e, &c) == 0, "%s", mpq_errmsg());
            ck_assert_str_eq(c.model, p->model);
            ck_assert_int_eq(c.crop_size, 224);
            if (!strcmp(c.aq.method, "parametric_fp_d_xmax_relu") && c.target_weight_kbytes < 0 &&
                c.target_activation_kbytes < 0)
                n_unconstrained++;
            if (c.target_weight_kbytes < 0 && c.target_activation_kbytes < 0) continue;
            ck_assert_msg(c.target_weight_kbytes > 0 && c.target_activation_kbytes > 0 &&
                              !strcmp(c.target_activation_type, "max"),
                          "%s [%s]: the paper constrains both sizes, the activations by the max",
                          p->cfg, e);
            n_budgeted++;
            homogeneous_4bit_kbytes(&c, &kw4, &ka4);
            /* the 4-bit network fits, and the budget is its size to 0.01 KB */
            ck_assert_msg(c.target_weight_kbytes - kw4 >= 0 && c.target_weight_kbytes - kw4 < 0.01,
                          "%s [%s]: weight budget %.2f KB, 4-bit weights %.4f KB", p->cfg, e,
                          (double)c.target_weight_kbytes, kw4);
            ck_assert_msg(c.target_activation_kbytes - ka4 >= 0 &&
                              c.target_activation_kbytes - ka4 < 0.01,
                          "%s [%s]: activation budget %.2f KB, 4-bit activation %.4f KB", p->cfg, e,
                          (double)c.target_activation_kbytes, ka4);
            /* ... which is what the paper's table prints, in MB to 2 decimals */
            ck_assert_double_eq_tol(round(c.target_weight_kbytes / 1024.0 * 100) / 100, p->w4_mb,
                                    1e-9);
            ck_assert_double_eq_tol(round(c.target_activation_kbytes / 1024.0 * 100) / 100,
                                    p->a4_mb, 1e-9);
            /* and the learned result the paper reports under these budgets is within them, as
             * far as its rounding tells (its value minus half the last digit) */
            ck_assert(p->w_mixed_mb - 0.005 <= c.target_weight_kbytes / 1024.0);
            ck_assert(p->a_mixed_mb - 0.005 <= c.target_activation_kbytes / 1024.0);
        }
        ck_assert_msg(n_budgeted >= 1, "%s: no experiment under the paper's budgets", p->cfg);
        ck_assert_msg(n_unconstrained >= 1, "%s: no unconstrained learned mixed precision", p->cfg);
        free(list);
        free(text);
    }
}
END_TEST

static Suite *imagenet_suite(void)
{
    Suite *s = suite_create("imagenet");
    TCase *tc = tcase_create("imagenet");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_imagenet_views_are_224_and_resnet18_matches_the_paper);
    tcase_add_test(tc, test_imagenet_budgets_admit_the_papers_sizes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(imagenet_suite); }

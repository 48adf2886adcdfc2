/* Config: a file in the style of the reference's train_resnet_quant_fp.cfg ([DEFAULT] inheritance,
 * commented section lines, Python booleans, None), the reference defaults, every error case
 * (message names file:line, section and key), --set, validation, and dump -> parse round trips. */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/err.h"
#include "testutil.h"

static const char *const ref_cfg =
    "# ResNet-20 on CIFAR-10: the float baseline and a quantized run\n"
    "[DEFAULT]\n"
    "num_layers = 20\n"
    "shortcut_type = b\n"
    "initial_learning_rate = 0.1\n"
    "optimizer = None\n"
    "weightfile = None\n"
    "w_quantize = None\n"
    "a_quantize = None\n"
    "scale_layer = False\n"
    "target_weight_kbytes = -1\n"
    "target_activation_kbytes = -1\n"
    "\n"
    "[FP32] # float baseline\n"
    "\n"
    "[PARAMETRIC_FP_W4A4_D_XMAX]\n"
    "weightfile = FP32/params_best.h5\n"
    "w_quantize = parametric_fp_d_xmax\n"
    "a_quantize = parametric_fp_d_xmax_relu\n"
    "w_stepsize = 0.0078125\n"
    "w_bitwidth = 4\n"
    "a_bitwidth = 4\n"
    "initial_learning_rate = 0.01\n"
    "scale_layer = True\n"
    "target_weight_kbytes = 70.0  # 70 KB of weights\n"
    "target_activation_kbytes = 8 ; inih strips this comment\n"
    "target_activation_type = sum\n"
    "optimizer = Adam\n";

static int msg_has(const char *s)
{
    if (strstr(mpq_errmsg(), s)) return 1;
    fprintf(stderr, "message '%s' lacks '%s'\n", mpq_errmsg(), s);
    return 0;
}

START_TEST(test_config_reference_defaults)
{
    mpq_cfg c;
    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "FP32", &c), 0);
    ck_assert_str_eq(c.experiment, "FP32");
    ck_assert_float_eq(c.wq.stepsize, 0x1p-3f);
    ck_assert_float_eq(c.wq.stepsize_min, 0x1p-8f);
    ck_assert_float_eq(c.wq.stepsize_max, 1.0f);
    ck_assert_float_eq(c.wq.xmin_min, 0x1p-16f);
    ck_assert_float_eq(c.wq.xmin_max, 127.0f);
    ck_assert_float_eq(c.wq.xmax_min, 0x1p-8f);
    ck_assert_float_eq(c.wq.xmax_max, 127.0f);
    ck_assert_int_eq(c.wq.bitwidth, 4);
    ck_assert_int_eq(c.wq.bitwidth_min, 2);
    ck_assert_int_eq(c.wq.bitwidth_max, 8);
    ck_assert_float_eq(c.aq.stepsize, 0x1p-3f);
    ck_assert_float_eq(c.aq.stepsize_min, 0x1p-8f);
    ck_assert_float_eq(c.aq.stepsize_max, 1.0f);
    ck_assert_float_eq(c.aq.xmin_min, 0x1p-14f);
    ck_assert_float_eq(c.aq.xmin_max, 255.0f);
    ck_assert_float_eq(c.aq.xmax_min, 0x1p-8f);
    ck_assert_float_eq(c.aq.xmax_max, 255.0f);
    ck_assert_int_eq(c.aq.bitwidth, 4);
    ck_assert_int_eq(c.aq.bitwidth_min, 1);
    ck_assert_int_eq(c.aq.bitwidth_max, 8);
    ck_assert_str_eq(c.target_activation_type, "max");
    ck_assert_float_eq(c.initial_cost_lambda2, 0.1f);
    ck_assert_float_eq(c.initial_cost_lambda3, 0.1f);
    ck_assert_int_eq(c.batch_size, 128);
    ck_assert_int_eq(c.val_batch_size, 100);
    ck_assert_float_eq(c.epochs, 160.0f);
    ck_assert_int_eq(c.max_steps, 0);
    ck_assert_float_eq(c.momentum, 0.9f);
    ck_assert_float_eq(c.weight_decay, 2e-4f);
    ck_assert_int_eq(c.decay_quant_params, 1);
    ck_assert_float_eq(c.adam_beta1, 0.9f);
    ck_assert_float_eq(c.adam_beta2, 0.999f);
    ck_assert_float_eq(c.adam_eps, 1e-8f);
    ck_assert_int_eq(c.lr_schedule, MPQ_LR_REFERENCE);
    ck_assert_int_eq(c.n_lr_decay_epochs, 0);
    ck_assert_float_eq(c.lr_decay_factor, 0.1f);
    ck_assert_float_eq(c.warmup_epochs, 0.0f);
    ck_assert_float_eq(c.bn_momentum, 0.9f);
    ck_assert_int_eq(c.augment, MPQ_AUGMENT_CIFAR);
    ck_assert_int_eq(c.synthetic_samples, 512);
    ck_assert_int_eq(c.synthetic_height, 32);
    ck_assert_int_eq(c.synthetic_width, 32);
    ck_assert_int_eq(c.synthetic_channels, 3);
    ck_assert_int_eq(c.num_classes, 0);
    ck_assert_int_eq(c.threads, 0);
    ck_assert_float_eq(c.bucket_mbytes, 4.0f);
    ck_assert_int_eq(c.progress, 1);
    ck_assert_int_eq(c.sync_bn, 0);
    ck_assert_int_eq(c.deterministic, 0);
    ck_assert_str_eq(c.output_dir, "FP32"); /* the reference's run directory */
    ck_assert_int_eq(mpq_cfg_validate(&c), 0);
}
END_TEST

START_TEST(test_config_default_section_is_inherited_and_overridden)
{
    mpq_cfg c;
    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "FP32", &c), 0);
    ck_assert_int_eq(c.num_layers, 20);
    ck_assert_str_eq(c.model, "resnet20"); /* from num_layers */
    ck_assert_str_eq(c.shortcut_type, "b");
    ck_assert_float_eq(c.initial_learning_rate, 0.1f);
    ck_assert_int_eq(c.optimizer, MPQ_OPTIMIZER_SGD);
    ck_assert_str_eq(c.weightfile, "");
    ck_assert_str_eq(c.wq.method, "");
    ck_assert_str_eq(c.aq.method, "");
    ck_assert_int_eq(c.scale_layer, MPQ_CFG_TRUE_AS_REFERENCE); /* bool('False') is True */
    ck_assert_float_eq(c.target_weight_kbytes, -1.0f);

    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "PARAMETRIC_FP_W4A4_D_XMAX", &c), 0);
    ck_assert_str_eq(c.model, "resnet20");
    ck_assert_str_eq(c.shortcut_type, "b");
    ck_assert_str_eq(c.weightfile, "FP32/params_best.h5");
    ck_assert_str_eq(c.wq.method, "parametric_fp_d_xmax");
    ck_assert_str_eq(c.aq.method, "parametric_fp_d_xmax_relu");
    ck_assert_float_eq(c.wq.stepsize, 0x1p-7f);
    ck_assert_float_eq(c.aq.stepsize, 0x1p-3f);
    ck_assert_float_eq(c.initial_learning_rate, 0.01f);
    ck_assert_int_eq(c.scale_layer, 1);
    ck_assert_float_eq(c.target_weight_kbytes, 70.0f);
    ck_assert_float_eq(c.target_activation_kbytes, 8.0f);
    ck_assert_str_eq(c.target_activation_type, "sum");
    ck_assert_int_eq(c.optimizer, MPQ_OPTIMIZER_ADAM);
    ck_assert_str_eq(c.output_dir, "PARAMETRIC_FP_W4A4_D_XMAX");
    ck_assert_int_eq(mpq_cfg_validate(&c), 0);
}
END_TEST

START_TEST(test_config_values_booleans_and_aliases)
{
    static const struct {
        const char *v;
        int want;
    } bools[] = {{"True", 1}, {"False", 0}, {"true", 1}, {"FALSE", 0}, {"yes", 1},
                 {"no", 0},   {"on", 1},    {"off", 0},  {"1", 1},     {"0", 0}};
    static const struct {
        const char *v;
        mpq_optimizer want;
    } opts[] = {{"None", MPQ_OPTIMIZER_SGD},     {"", MPQ_OPTIMIZER_SGD},
                {"momentum", MPQ_OPTIMIZER_SGD}, {"sgd", MPQ_OPTIMIZER_SGD},
                {"adam", MPQ_OPTIMIZER_ADAM},    {"Adam", MPQ_OPTIMIZER_ADAM}};
    mpq_cfg c;
    mpq_cfg_defaults(&c);
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        c.sync_bn = !bools[i].want;
        ck_assert_int_eq(mpq_cfg_set(&c, "sync_bn", bools[i].v, "--set"), 0);
        ck_assert_int_eq(c.sync_bn, bools[i].want);
    }
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        c.optimizer = opts[i].want == MPQ_OPTIMIZER_SGD ? MPQ_OPTIMIZER_ADAM : MPQ_OPTIMIZER_SGD;
        ck_assert_int_eq(mpq_cfg_set(&c, "optimizer", opts[i].v, "--set"), 0);
        ck_assert_int_eq(c.optimizer, opts[i].want);
    }
    ck_assert_int_eq(mpq_cfg_set(&c, "w_quantize", "parametric_pow2_xmin_xmax", "--set"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "w_quantize", "none", "--set"), 0);
    ck_assert_str_eq(c.wq.method, "");
    ck_assert_int_eq(mpq_cfg_set(&c, "W_BITWIDTH", " 5 ", "--set"), 0); /* keys are case-blind */
    ck_assert_int_eq(c.wq.bitwidth, 5);
    ck_assert_int_eq(mpq_cfg_set(&c, "max_steps", "1e4", "--set"), 0);
    ck_assert_int_eq(c.max_steps, 10000);
    ck_assert_int_eq(mpq_cfg_set(&c, "lr_decay_epochs", "[80, 120.5]", "--set"), 0);
    ck_assert_int_eq(c.n_lr_decay_epochs, 2);
    ck_assert_float_eq(c.lr_decay_epochs[1], 120.5f);
    ck_assert_int_eq(mpq_cfg_set(&c, "lr_decay_epochs", "", "--set"), 0);
    ck_assert_int_eq(c.n_lr_decay_epochs, 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "lr_decay_epochs", "1,2,3,4,5,6,7,8,9", "--set"),
                     MPQ_E_CONFIG);
    ck_assert_int_eq(mpq_cfg_set(&c, "output_dir", "run #1", "--set"), 0); /* no comments here */
    ck_assert_str_eq(c.output_dir, "run #1");
    /* model and num_layers: the last one set wins */
    ck_assert_int_eq(mpq_cfg_set(&c, "num_layers", "56", "--set"), 0);
    ck_assert_str_eq(c.model, "resnet56");
    ck_assert_int_eq(mpq_cfg_set(&c, "model", "mobilenetv2", "--set"), 0);
    ck_assert_int_eq(c.num_layers, 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "model", "ResNet110", "--set"), 0);
    ck_assert_str_eq(c.model, "resnet110");
    ck_assert_int_eq(c.num_layers, 110);
}
END_TEST

START_TEST(test_config_lexing_tolerates_reference_files)
{
    mpq_cfg c;
    /* BOM, CRLF, keys indented alike (configparser accepts them), ':' separators, quotes */
    const char *text = "\xEF\xBB\xBF[DEFAULT]\r\n  num_layers: 32\r\n  shortcut_type = 'a'\r\n"
                       "# comment\r\n; comment\r\n[A]   ; note\r\nw_bitwidth=3\r\n";
    ck_assert_int_eq(mpq_cfg_parse_text(text, "crlf.cfg", "A", &c), 0);
    ck_assert_str_eq(c.model, "resnet32");
    ck_assert_str_eq(c.shortcut_type, "a");
    ck_assert_int_eq(c.wq.bitwidth, 3);
    /* errors in a section that is not run do not matter */
    ck_assert_int_eq(mpq_cfg_parse_text("[A]\nbogus = 1\n[B]\nnum_layers = 44\n", "x.cfg", "B", &c),
                     0);
    ck_assert_int_eq(c.num_layers, 44);
}
END_TEST

START_TEST(test_config_nul_byte_is_an_error_naming_the_line)
{
    static const char text[] = "[A]\nw_bitwidth = 3\nw_quant\0ize = x\n[B]\n";
    mpq_err_clear();
    ck_assert_int_eq(mpq_cfg_check_bytes(text, sizeof text - 1, "nul.cfg"), MPQ_E_CONFIG);
    ck_assert(msg_has("nul.cfg:3:") && msg_has("NUL"));
    /* the text up to the NUL byte passes the check */
    ck_assert_int_eq(mpq_cfg_check_bytes(text, 26, "nul.cfg"), 0);
}
END_TEST

START_TEST(test_config_errors_name_file_line_section_key)
{
    char long_line[400];
    static const struct {
        const char *text, *exp, *want[4];
    } bad[] = {
        {"[DEFAULT]\nnum_layers = 20\n[A]\nw_bitwdth = 4\n",
         "A",
         {"bad.cfg:4:", "[A]", "'w_bitwdth'", "did you mean 'w_bitwidth'"}},
        {"[DEFAULT]\nw_stepsize = 0.1x\n[A]\n",
         "A",
         {"bad.cfg:2:", "[DEFAULT]", "'w_stepsize'", "not a number"}},
        {"[A]\nbatch_size = 12.5\n", "A", {"bad.cfg:2:", "[A]", "'batch_size'", "not an integer"}},
        {"[A]\n\nw_bitwidth = 40\n", "A", {"bad.cfg:3:", "[A]", "'w_bitwidth'", "[1, 32]"}},
        {"[A]\nw_stepsize = 0\n", "A", {"bad.cfg:2:", "[A]", "'w_stepsize'", "must be > 0"}},
        {"[A]\noptimizer = rmsprop\n", "A", {"bad.cfg:2:", "[A]", "'optimizer'", "adam"}},
        {"[A]\nw_quantize = parametric_fp_dxmax\n",
         "A",
         {"bad.cfg:2:", "[A]", "'w_quantize'", "parametric_fp_d_xmax,"}},
        {"[A]\nnum_layers = 18\n", "A", {"bad.cfg:2:", "[A]", "'num_layers'", "110"}},
        {"[A]\nscale_layer = maybe\n", "A", {"bad.cfg:2:", "[A]", "'scale_layer'", "True/False"}},
        {"[A]\nw_bitwidth = 4\nw_bitwidth = 5\n",
         "A",
         {"bad.cfg:3:", "[A]", "'w_bitwidth'", "first on line 2"}},
        {"[A]\nw_bitwidth = 4\n    a_bitwidth = 5\n", "A", {"bad.cfg:3:", "indented", "", ""}},
        {"[A]\nthis line has no value\n", "A", {"bad.cfg:2:", "key = value", "", ""}},
        {"[A\nw_bitwidth = 4\n", "A", {"bad.cfg:1:", "[section]", "", ""}},
        {"w_bitwidth = 4\n[A]\n", "A", {"bad.cfg:1:", "outside", "", ""}},
        {"[DEFAULT]\n[FP32] # float\n[W4A4]\n", "W8A8", {"bad.cfg", "[W8A8]", "FP32, W4A4", ""}},
        {"[A]\nw_bitwidth = 3\n[B]\n[A]\na_bitwidth = 5\n",
         "A",
         {"bad.cfg:4:", "[A] appears again", "first on line 1", ""}},
        {"[DEFAULT]\n[DEFAULT]\n[A]\n", "A", {"bad.cfg:2:", "[DEFAULT]", "line 1", ""}},
        {NULL, "A", {"bad.cfg:2:", "longer than", "", ""}},
    };
    mpq_cfg c;
    snprintf(long_line, sizeof long_line, "[A]\nweightfile = /%0300d\n", 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *text = bad[i].text ? bad[i].text : long_line;
        mpq_err_clear();
        ck_assert_msg(mpq_cfg_parse_text(text, "bad.cfg", bad[i].exp, &c) == MPQ_E_CONFIG,
                      "case %zu parsed", i);
        for (int j = 0; j < 4; j++)
            ck_assert_msg(msg_has(bad[i].want[j]), "case %zu", i);
    }
}
END_TEST

START_TEST(test_config_set_overrides_and_names_origin)
{
    mpq_cfg c;
    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "PARAMETRIC_FP_W4A4_D_XMAX", &c), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "w_bitwidth", "3", "--set"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "initial_learning_rate", "0.05", "--set"), 0);
    ck_assert_int_eq(c.wq.bitwidth, 3);
    ck_assert_float_eq(c.initial_learning_rate, 0.05f);
    ck_assert_int_eq(mpq_cfg_set(&c, "w_bitwidth", "three", "--set"), MPQ_E_CONFIG);
    ck_assert(msg_has("--set") && msg_has("'w_bitwidth'") && msg_has("'three'"));
    ck_assert_int_eq(c.wq.bitwidth, 3);
    ck_assert_int_eq(mpq_cfg_set(&c, "a_bitwidht", "3", "--set"), MPQ_E_CONFIG);
    ck_assert(msg_has("--set") && msg_has("a_bitwidht") && msg_has("'a_bitwidth'"));
    ck_assert_int_eq(mpq_cfg_set(&c, "completely_different", "3", "--set"), MPQ_E_CONFIG);
    ck_assert(msg_has("--help-keys"));
    ck_assert_int_eq(mpq_cfg_set(&c, "augment", "random", "--set"), MPQ_E_CONFIG);
    ck_assert(msg_has("cifar, imagenet, none"));
}
END_TEST

START_TEST(test_config_validate_cross_key_checks)
{
    mpq_cfg c;
    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "PARAMETRIC_FP_W4A4_D_XMAX", &c), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "w_bitwidth", "9", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert(msg_has("PARAMETRIC_FP_W4A4_D_XMAX") && msg_has("w_bitwidth 9"));
    ck_assert_int_eq(mpq_cfg_set(&c, "w_bitwidth", "8", "t"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "a_stepsize_min", "2", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert(msg_has("a_stepsize_min"));
    ck_assert_int_eq(mpq_cfg_set(&c, "a_stepsize_min", "0.00390625", "t"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "deterministic", "True", "t"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "virtual_shards", "3", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert(msg_has("virtual_shards"));
    ck_assert_int_eq(mpq_cfg_set(&c, "virtual_shards", "4", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "warmup_epochs", "160", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert(msg_has("warmup_epochs"));
    ck_assert_int_eq(mpq_cfg_set(&c, "warmup_epochs", "5", "t"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "lr_decay_epochs", "120, 80", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert_int_eq(mpq_cfg_set(&c, "lr_decay_epochs", "80, 120", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), 0);
    /* the ImageNet views: ordered ranges, validation resize not below the crop */
    ck_assert_int_eq(mpq_cfg_set(&c, "crop_scale_min", "0.5", "t"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "crop_scale_max", "0.25", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert(msg_has("crop_scale_min 0.5") && msg_has("crop_scale_max 0.25"));
    ck_assert_int_eq(mpq_cfg_set(&c, "crop_scale_max", "1", "t"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "crop_ratio_min", "2", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert(msg_has("crop_ratio_min 2"));
    ck_assert_int_eq(mpq_cfg_set(&c, "crop_ratio_min", "0.75", "t"), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "val_resize", "200", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert(msg_has("val_resize 200") && msg_has("crop_size 224"));
    ck_assert_int_eq(mpq_cfg_set(&c, "crop_scale_max", "1.5", "t"), MPQ_E_CONFIG);
    ck_assert(msg_has("crop_scale_max"));
    /* float weights: the w_* bounds are not checked */
    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "FP32", &c), 0);
    ck_assert_int_eq(mpq_cfg_set(&c, "w_bitwidth", "32", "t"), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), 0);
    /* no model */
    ck_assert_int_eq(mpq_cfg_parse_text("[A]\n", "m.cfg", "A", &c), 0);
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert(msg_has("num_layers"));
    /* a struct edited by hand */
    ck_assert_int_eq(mpq_cfg_set(&c, "model", "resnet20", "t"), 0);
    c.num_layers = 32;
    ck_assert_int_eq(mpq_cfg_validate(&c), MPQ_E_CONFIG);
    ck_assert(msg_has("disagree"));
}
END_TEST

/* Every key's accepted range is what the code can take: threads beyond 1024 (libgomp crashed at
 * 65536), virtual_shards beyond the trainer's per-shard metric table, negative check intervals. */
START_TEST(test_config_ranges_match_the_code)
{
    mpq_cfg c;
    ck_assert_int_eq(mpq_cfg_parse_text("[A]\nmodel = resnet20\n", "r.cfg", "A", &c), 0);
    ck_assert_int_eq(c.check_finite_every_steps, 10);
    static const struct {
        const char *key, *ok, *bad;
    } cases[] = {
        {"threads", "1024", "1025"},
        {"threads", "0", "65536"},
        {"virtual_shards", "1024", "1025"},
        {"check_finite_every_steps", "0", "-1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(mpq_cfg_set(&c, cases[i].key, cases[i].ok, "--set"), 0);
        ck_assert_int_eq(mpq_cfg_set(&c, cases[i].key, cases[i].bad, "--set"), MPQ_E_CONFIG);
        ck_assert_msg(msg_has(cases[i].key) && msg_has(cases[i].bad), "%s", mpq_errmsg());
    }
    ck_assert_int_eq(MPQ_MAX_VIRTUAL_SHARDS, 1024);
    ck_assert_int_eq(
        mpq_cfg_parse_text("[A]\nmodel = resnet20\nthreads = 100000\n", "r.cfg", "A", &c),
        MPQ_E_CONFIG);
    ck_assert(msg_has("r.cfg:3") && msg_has("threads"));
}
END_TEST

static void assert_round_trip(const mpq_cfg *c)
{
    mpq_cfg d;
    char *text = mpq_cfg_dump_string(c), *again;
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(mpq_cfg_parse_text(text, "dump.cfg", c->experiment, &d) == 0, "%s\n%s",
                  mpq_errmsg(), text);
    again = mpq_cfg_dump_string(&d);
    ck_assert_str_eq(again, text);
    ck_assert_int_eq(memcmp(c, &d, sizeof d), 0);
    free(again);
    free(text);
}

START_TEST(test_config_dump_parse_round_trip)
{
    static const char *const sets[][2] = {{"initial_learning_rate", "0.0123"},
                                          {"weight_decay", "1e-4"},
                                          {"lr_schedule", "cosine"},
                                          {"lr_decay_epochs", "80, 120.5, 150"},
                                          {"optimizer", "adam"},
                                          {"seed", "123456789012"},
                                          {"max_steps", "1000"},
                                          {"output_dir", "  my run #1"},
                                          {"train_data", "/data/cifar10/train"},
                                          {"augment", "none"},
                                          {"model", "mobilenetv2"},
                                          {"deterministic", "yes"},
                                          {"checkpoint_every_minutes", "7.5"},
                                          {"a_xmin_min", "3e-7"},
                                          {"shortcut_type", "c"},
                                          {"target_activation_kbytes", "0.3333333"}};
    mpq_cfg c;
    char *text;
    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "FP32", &c), 0);
    assert_round_trip(&c);
    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "PARAMETRIC_FP_W4A4_D_XMAX", &c), 0);
    assert_round_trip(&c);
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        ck_assert_int_eq(mpq_cfg_set(&c, sets[i][0], sets[i][1], "t"), 0);
    assert_round_trip(&c);
    text = mpq_cfg_dump_string(&c);
    ck_assert_ptr_nonnull(strstr(text, "[PARAMETRIC_FP_W4A4_D_XMAX]\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nw_stepsize = 0.0078125\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nweight_decay = 0.0001\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nlr_decay_epochs = 80, 120.5, 150\n"));
    free(text);
}
END_TEST

/* A boolean in a file is read as the reference reads its scale_layer (Python's bool() of the
 * string): every non-empty value is true, 'False' too (stored as MPQ_CFG_TRUE_AS_REFERENCE,
 * truthy, with a warning from validation); strict_bools = true, wherever it is set (before or
 * after, in [DEFAULT], the section or by --set), reads False/no/off/0 as false; --set values
 * are always read so; the empty value is false; the dump reads back the same either way. */
START_TEST(test_config_booleans_read_as_the_reference)
{
    static const struct {
        const char *name;
        size_t off;
    } keys[] = {{"scale_layer", offsetof(mpq_cfg, scale_layer)},
                {"sync_bn", offsetof(mpq_cfg, sync_bn)},
                {"decay_quant_params", offsetof(mpq_cfg, decay_quant_params)},
                {"deterministic", offsetof(mpq_cfg, deterministic)},
                {"progress", offsetof(mpq_cfg, progress)},
                {"check_replicas", offsetof(mpq_cfg, check_replicas)}};
    static const struct {
        const char *v;
        int loose, strict;
    } vals[] = {{"False", MPQ_CFG_TRUE_AS_REFERENCE, 0},
                {"false", MPQ_CFG_TRUE_AS_REFERENCE, 0},
                {"0", MPQ_CFG_TRUE_AS_REFERENCE, 0},
                {"no", MPQ_CFG_TRUE_AS_REFERENCE, 0},
                {"off", MPQ_CFG_TRUE_AS_REFERENCE, 0},
                {"True", 1, 1},
                {"yes", 1, 1},
                {"", 0, 0}};
    char text[512];
    mpq_cfg c;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
            for (int where = 0; where < 4; where++) { /* none, before, after, in DEFAULT */
                int strict = where > 0;
                snprintf(text, sizeof text, "[DEFAULT]\nmodel = resnet20\n%s[A]\n%s%s = %s\n%s",
                         where == 3 ? "strict_bools = true\n" : "",
                         where == 1 ? "strict_bools = True\n" : "", keys[k].name, vals[i].v,
                         where == 2 ? "strict_bools = yes\n" : "");
                ck_assert_msg(mpq_cfg_parse_text(text, "b.cfg", "A", &c) == 0, "%s", mpq_errmsg());
                const int *f = (const int *)((const char *)&c + keys[k].off);
                ck_assert_msg(*f == (strict ? vals[i].strict : vals[i].loose), "%s = '%s' (%d): %d",
                              keys[k].name, vals[i].v, where, *f);
                ck_assert_int_eq(mpq_cfg_validate(&c), 0);
                assert_round_trip(&c);
                if (!strict) { /* --set strict_bools afterwards */
                    ck_assert_int_eq(mpq_cfg_set(&c, "strict_bools", "true", "--set"), 0);
                    ck_assert_int_eq(*f, vals[i].strict);
                }
            }
    /* --set: always strict; strict_bools itself is read strictly */
    mpq_cfg_defaults(&c);
    ck_assert_int_eq(mpq_cfg_set(&c, "sync_bn", "False", "--set"), 0);
    ck_assert_int_eq(c.sync_bn, 0);
    ck_assert_int_eq(
        mpq_cfg_parse_text("[A]\nstrict_bools = False\nsync_bn = off\n", "b.cfg", "A", &c), 0);
    ck_assert_int_eq(c.strict_bools, 0);
    ck_assert_int_eq(c.sync_bn, MPQ_CFG_TRUE_AS_REFERENCE);
    ck_assert_int_eq(mpq_cfg_parse_text("[A]\nsync_bn = maybe\n", "b.cfg", "A", &c), MPQ_E_CONFIG);
    /* a configuration stored by an mpq without strict_bools was read strictly; its retired key
     * val_every_steps is ignored with a warning in files (--set refuses it) */
    static const char old_dump[] = "[A]\nmodel = resnet20\nscale_layer = false\nsync_bn = true\n"
                                   "val_every_steps = 0\n";
    ck_assert_int_eq(mpq_cfg_set(&c, "val_every_steps", "0", "--set"), MPQ_E_CONFIG);
    ck_assert_int_eq(mpq_cfg_parse_stored(old_dump, "ckpt.h5", "A", &c), 0);
    ck_assert(c.scale_layer == 0 && c.sync_bn == 1);
    ck_assert_int_eq(mpq_cfg_parse_text(old_dump, "ckpt.h5", "A", &c), 0);
    ck_assert(c.scale_layer == MPQ_CFG_TRUE_AS_REFERENCE && c.sync_bn == 1);
    char *dump = mpq_cfg_dump_string(&c); /* a new one reads back as it was */
    mpq_cfg d;
    ck_assert_int_eq(mpq_cfg_parse_stored(dump, "ckpt.h5", "A", &d), 0);
    ck_assert_int_eq(memcmp(&c, &d, sizeof d), 0);
    free(dump);
}
END_TEST

START_TEST(test_config_help_lists_every_dumped_key)
{
    mpq_cfg c;
    char *help = NULL, *text, *line, *save = NULL;
    size_t len = 0;
    int n = 0;
    FILE *f = open_memstream(&help, &len);
    mpq_cfg_print_keys(f);
    fclose(f);
    mpq_cfg_defaults(&c);
    text = mpq_cfg_dump_string(&c);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64], pat[80];
        if (line[0] == '[' || sscanf(line, "%63s =", name) != 1) continue;
        snprintf(pat, sizeof pat, "  %s ", name);
        ck_assert_msg(strstr(help, pat), "--help-keys lacks %s", name);
        n++;
    }
    ck_assert_int_gt(n, 60); /* the reference's 32 keys and mpq's */
    ck_assert_ptr_nonnull(strstr(help, "one of: reference, step, cosine, constant"));
    free(text);
    free(help);
}
END_TEST

START_TEST(test_config_list_experiments)
{
    char *list = mpq_cfg_list_experiments(ref_cfg);
    ck_assert_str_eq(list, "FP32\nPARAMETRIC_FP_W4A4_D_XMAX");
    free(list);
    list = mpq_cfg_list_experiments("[DEFAULT]\n[B]\n[A]\n[B]\nx = 1\n");
    ck_assert_str_eq(list, "B\nA");
    free(list);
    list = mpq_cfg_list_experiments("");
    ck_assert_str_eq(list, "");
    free(list);
}
END_TEST

/* The keys that decide the model, the data order or the optimizer state are marked in the key
 * table: changing any one of them is a mismatch naming it with both values; the other keys
 * (learning rate, epochs, outputs, ...) may change on resume; a file's False read as true (the
 * reference's way) equals true. */
START_TEST(test_config_resume_mismatch_names_marked_keys)
{
    static const char *const marked[][2] = {
        {"model", "resnet32"},       {"shortcut_type", "c"},
        {"w_quantize", "pow2"},      {"a_quantize", "fp_relu"},
        {"optimizer", "adam"},       {"train_data", "elsewhere"},
        {"batch_size", "64"},        {"seed", "7"},
        {"scale_layer", "false"},    {"num_classes", "100"},
        {"augment", "none"},         {"crop_size", "112"},
        {"synthetic_samples", "64"}, {"synthetic_height", "16"},
        {"synthetic_width", "16"},   {"synthetic_channels", "1"},
        {"num_layers", "56"}, /* sets model */
    };
    static const char *const free_keys[][2] = {
        {"initial_learning_rate", "0.5"},
        {"epochs", "3"},
        {"max_steps", "10"},
        {"val_data", "other"},
        {"output_dir", "run2"},
        {"keep_checkpoints", "1"},
        {"lr_schedule", "cosine"},
        {"lr_decay_epochs", "1, 2"},
        {"weight_decay", "0.1"},
        {"val_batch_size", "7"},
        {"w_bitwidth", "3"},
        {"checkpoint_every_steps", "5"},
    };
    mpq_cfg was, now;
    char key[64], a[64], b[64];
    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "FP32", &was), 0);
    ck_assert_int_eq(mpq_cfg_set(&was, "batch_size", "32", "t"), 0);
    ck_assert_int_eq(mpq_cfg_set(&was, "train_data", "synthetic", "t"), 0);
    now = was;
    ck_assert_int_eq(mpq_cfg_resume_mismatch(&was, &now, key, sizeof key, a, b, sizeof a), 0);
    for (size_t i = 0; i < sizeof marked / sizeof marked[0]; i++) {
        now = was;
        ck_assert_int_eq(mpq_cfg_set(&now, marked[i][0], marked[i][1], "t"), 0);
        ck_assert_msg(mpq_cfg_resume_mismatch(&was, &now, key, sizeof key, a, b, sizeof a) == 1,
                      "changing %s on resume is not refused", marked[i][0]);
        ck_assert_str_eq(key, strcmp(marked[i][0], "num_layers") ? marked[i][0] : "model");
        ck_assert_str_ne(a, b);
    }
    for (size_t i = 0; i < sizeof free_keys / sizeof free_keys[0]; i++) {
        now = was;
        ck_assert_int_eq(mpq_cfg_set(&now, free_keys[i][0], free_keys[i][1], "t"), 0);
        ck_assert_msg(mpq_cfg_resume_mismatch(&was, &now, key, sizeof key, a, b, sizeof a) == 0,
                      "changing %s on resume is refused (%s)", free_keys[i][0], key);
    }
    now = was; /* the texts the message shows */
    ck_assert_int_eq(mpq_cfg_set(&now, "batch_size", "64", "t"), 0);
    ck_assert_int_eq(mpq_cfg_resume_mismatch(&was, &now, key, sizeof key, a, b, sizeof a), 1);
    ck_assert_str_eq(a, "32");
    ck_assert_str_eq(b, "64");
    now = was;
    ck_assert_int_eq(mpq_cfg_set(&now, "model", "resnet56", "t"), 0);
    ck_assert_int_eq(mpq_cfg_resume_mismatch(&was, &now, key, sizeof key, a, b, sizeof a), 1);
    ck_assert_str_eq(a, "'resnet20'");
    ck_assert_str_eq(b, "'resnet56'");
    ck_assert_int_eq(mpq_cfg_parse_text(ref_cfg, "quant.cfg", "FP32", &was), 0);
    ck_assert_int_eq(was.scale_layer, MPQ_CFG_TRUE_AS_REFERENCE); /* "False" in [DEFAULT] */
    now = was;
    ck_assert_int_eq(mpq_cfg_set(&now, "scale_layer", "true", "t"), 0);
    ck_assert_int_eq(mpq_cfg_resume_mismatch(&was, &now, key, sizeof key, a, b, sizeof a), 0);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *parse = tcase_create("parse"), *edge = tcase_create("edge");
    tcase_add_test(parse, test_config_reference_defaults);
    tcase_add_test(parse, test_config_default_section_is_inherited_and_overridden);
    tcase_add_test(parse, test_config_values_booleans_and_aliases);
    tcase_add_test(parse, test_config_booleans_read_as_the_reference);
    tcase_add_test(parse, test_config_lexing_tolerates_reference_files);
    tcase_add_test(parse, test_config_dump_parse_round_trip);
    tcase_add_test(parse, test_config_help_lists_every_dumped_key);
    tcase_add_test(parse, test_config_list_experiments);
    tcase_add_test(edge, test_config_errors_name_file_line_section_key);
    tcase_add_test(edge, test_config_nul_byte_is_an_error_naming_the_line);
    tcase_add_test(edge, test_config_set_overrides_and_names_origin);
    tcase_add_test(edge, test_config_validate_cross_key_checks);
    tcase_add_test(edge, test_config_ranges_match_the_code);
    tcase_add_test(edge, test_config_resume_mismatch_names_marked_keys);
    suite_add_tcase(s, parse);
    suite_add_tcase(s, edge);
    return s;
}

int main(void) { return mpq_test_main(config_suite); }

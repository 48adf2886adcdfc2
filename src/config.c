/* Experiment configuration: ONE static key table (name, type, field offset, default, range, help)
 * drives defaults, parsing of the reference's .cfg text, [DEFAULT] inheritance, `--set`, range and
 * enum errors, validation, the effective dump and `--help-keys`. libinih lexes the text through a
 * line reader that counts lines (errors name file:line, section, key) and applies Python
 * configparser's indentation rule. Memory: parsing keeps a temporary entry list, freed before
 * returning; mpq_cfg owns no heap memory. No global state; callable from any thread. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/grow.h"
#include "core/log.h"

/* ---------------------------------------------------------------------------------------------
 * The key table */

typedef enum ktype {
    KTYPE_INT,    /* int */
    KTYPE_LONG,   /* long */
    KTYPE_FLOAT,  /* float */
    KTYPE_BOOL,   /* int: see parse_bool */
    KTYPE_STR,    /* char[size]; "None"/"none" mean "" */
    KTYPE_CHOICE, /* char[size] restricted to a list of names (stored as spelled in the list) */
    KTYPE_ENUM,   /* int from a list of (name, value) */
    KTYPE_FLIST,  /* float[] with its count at n_off: "80, 120" */
} ktype;

typedef struct enum_name {
    const char *name;
    int val;
} enum_name;

/* flags: KEY_MIN_EXCL, the minimum itself is not allowed; KEY_RESUME, the key decides the model,
 * the data order or the optimizer state, so a run resumes only from a checkpoint that agrees */
enum { KEY_MIN_EXCL = 1, KEY_RESUME = 2 };

typedef struct key {
    const char *name;
    ktype type;
    size_t off, size; /* the field in mpq_cfg and its size in bytes */
    size_t n_off;     /* KTYPE_FLIST: the int count */
    const char *def;  /* the default, as cfg text */
    double min, max;  /* numbers: the allowed range */
    int flags;
    const enum_name *names;     /* KTYPE_ENUM, {NULL}-terminated; the first name of a value is
                                   the one dumped */
    const char *const *choices; /* KTYPE_CHOICE, NULL-terminated */
    const char *help;
} key;

static const char *const qmethods_w[] = {"",
                                         "fp",
                                         "pow2",
                                         "parametric_fp_b_xmax",
                                         "parametric_fp_d_xmax",
                                         "parametric_fp_d_b",
                                         "parametric_pow2_b_xmax",
                                         "parametric_pow2_b_xmin",
                                         "parametric_pow2_xmin_xmax",
                                         NULL};
static const char *const qmethods_a[] = {"",
                                         "fp_relu",
                                         "pow2_relu",
                                         "parametric_fp_b_xmax_relu",
                                         "parametric_fp_d_xmax_relu",
                                         "parametric_fp_d_b_relu",
                                         "parametric_pow2_b_xmax_relu",
                                         "parametric_pow2_b_xmin_relu",
                                         "parametric_pow2_xmin_xmax_relu",
                                         NULL};
static const char *const models[] = {"",          "resnet20", "resnet32",    "resnet44", "resnet56",
                                     "resnet110", "resnet18", "mobilenetv2", NULL};
static const char *const shortcuts[] = {"", "a", "b", "c", NULL};
static const char *const act_types[] = {"max", "sum", NULL};
static const char *const max_penalties[] = {"first", "each", NULL};

static const enum_name depths[] = {{"0", 0},   {"20", 20},   {"32", 32}, {"44", 44},
                                   {"56", 56}, {"110", 110}, {NULL, 0}};
static const enum_name optimizers[] = {{"momentum", MPQ_OPTIMIZER_SGD}, {"sgd", MPQ_OPTIMIZER_SGD},
                                       {"none", MPQ_OPTIMIZER_SGD},     {"", MPQ_OPTIMIZER_SGD},
                                       {"adam", MPQ_OPTIMIZER_ADAM},    {NULL, 0}};
static const enum_name schedules[] = {{"reference", MPQ_LR_REFERENCE},
                                      {"step", MPQ_LR_STEP},
                                      {"cosine", MPQ_LR_COSINE},
                                      {"constant", MPQ_LR_CONSTANT},
                                      {NULL, 0}};
static const enum_name augments[] = {{"cifar", MPQ_AUGMENT_CIFAR},
                                     {"imagenet", MPQ_AUGMENT_IMAGENET},
                                     {"none", MPQ_AUGMENT_NONE},
                                     {NULL, 0}};

/* clang-format off */
#define FIELD(m) offsetof(mpq_cfg, m), sizeof(((mpq_cfg *)0)->m)
/* Each K<type>F takes the key's flags first; K<type> is the same with no flags. */
#define KINTF(fl, nm, m, def, lo, hi, help) {nm, KTYPE_INT, FIELD(m), 0, def, lo, hi, fl, NULL, NULL, help}
#define KINT(...) KINTF(0, __VA_ARGS__)
#define KLONGF(fl, nm, m, def, lo, hi, help) \
    {nm, KTYPE_LONG, FIELD(m), 0, def, lo, hi, fl, NULL, NULL, help}
#define KLONG(...) KLONGF(0, __VA_ARGS__)
#define KFLT(nm, m, def, lo, hi, fl, help) \
    {nm, KTYPE_FLOAT, FIELD(m), 0, def, lo, hi, fl, NULL, NULL, help}
#define KBOOLF(fl, nm, m, def, help) {nm, KTYPE_BOOL, FIELD(m), 0, def, 0, 1, fl, NULL, NULL, help}
#define KBOOL(...) KBOOLF(0, __VA_ARGS__)
#define KSTRF(fl, nm, m, def, help) {nm, KTYPE_STR, FIELD(m), 0, def, 0, 0, fl, NULL, NULL, help}
#define KSTR(...) KSTRF(0, __VA_ARGS__)
#define KCHOICEF(fl, nm, m, def, list, help) \
    {nm, KTYPE_CHOICE, FIELD(m), 0, def, 0, 0, fl, NULL, list, help}
#define KCHOICE(...) KCHOICEF(0, __VA_ARGS__)
#define KENUMF(fl, nm, m, def, list, help) {nm, KTYPE_ENUM, FIELD(m), 0, def, 0, 0, fl, list, NULL, help}
#define KENUM(...) KENUMF(0, __VA_ARGS__)
#define KFLIST(nm, m, n, def, lo, hi, help) \
    {nm, KTYPE_FLIST, FIELD(m), offsetof(mpq_cfg, n), def, lo, hi, 0, NULL, NULL, help}
/* clang-format on */

#define POS KEY_MIN_EXCL
#define RESUME KEY_RESUME
#define BIG 1e30

/* Reference keys first (shared/spec/config.md, same names and defaults), then the keys mpq adds.
 * The dump writes them in this order; num_layers precedes model (both set each other). */
static const key keys[] = {
    KENUM("num_layers", num_layers, "0", depths,
          "CIFAR ResNet depth; setting it sets model = resnet<depth> (0: from model)"),
    KCHOICEF(RESUME, "shortcut_type", shortcut_type, "", shortcuts,
             "'' or a: identity + subsampling + zero channels; b: 1x1 conv+BN where channels "
             "change; c: always 1x1 conv+BN"),
    KFLT("initial_learning_rate", initial_learning_rate, "0.1", 0, BIG, 0,
         "learning rate at the start of the schedule (required by the reference)"),
    KENUMF(RESUME, "optimizer", optimizer, "momentum", optimizers,
           "momentum (also sgd, None, empty): SGD with momentum; adam: nnabla's Adam"),
    KSTR("weightfile", weightfile, "",
         "parameters to start from (a float run's params_best.h5); also sets the quantizer init"),
    KCHOICEF(RESUME, "w_quantize", wq.method, "", qmethods_w,
             "weight quantizer (None: float weights)"),
    KCHOICEF(RESUME, "a_quantize", aq.method, "", qmethods_a,
             "activation quantizer (None: plain ReLU)"),
    KFLT("w_stepsize", wq.stepsize, "0.125", 0, BIG, POS, "initial weight step size, 2^-3"),
    KFLT("w_stepsize_min", wq.stepsize_min, "0.00390625", 0, BIG, POS,
         "smallest weight step size, 2^-8"),
    KFLT("w_stepsize_max", wq.stepsize_max, "1", 0, BIG, POS, "largest weight step size"),
    KFLT("w_xmin_min", wq.xmin_min, "1.52587890625e-05", 0, BIG, POS,
         "smallest weight xmin, 2^-16"),
    KFLT("w_xmin_max", wq.xmin_max, "127", 0, BIG, POS, "largest weight xmin"),
    KFLT("w_xmax_min", wq.xmax_min, "0.00390625", 0, BIG, POS, "smallest weight xmax, 2^-8"),
    KFLT("w_xmax_max", wq.xmax_max, "127", 0, BIG, POS, "largest weight xmax"),
    KINT("w_bitwidth", wq.bitwidth, "4", 1, 32,
         "initial (or fixed) weight bitwidth, sign included"),
    KINT("w_bitwidth_min", wq.bitwidth_min, "2", 1, 32, "smallest weight bitwidth"),
    KINT("w_bitwidth_max", wq.bitwidth_max, "8", 1, 32, "largest weight bitwidth"),
    KFLT("a_stepsize", aq.stepsize, "0.125", 0, BIG, POS, "initial activation step size, 2^-3"),
    KFLT("a_stepsize_min", aq.stepsize_min, "0.00390625", 0, BIG, POS,
         "smallest activation step size, 2^-8"),
    KFLT("a_stepsize_max", aq.stepsize_max, "1", 0, BIG, POS, "largest activation step size"),
    KFLT("a_xmin_min", aq.xmin_min, "6.103515625e-05", 0, BIG, POS,
         "smallest activation xmin, 2^-14"),
    KFLT("a_xmin_max", aq.xmin_max, "255", 0, BIG, POS, "largest activation xmin"),
    KFLT("a_xmax_min", aq.xmax_min, "0.00390625", 0, BIG, POS, "smallest activation xmax, 2^-8"),
    KFLT("a_xmax_max", aq.xmax_max, "255", 0, BIG, POS, "largest activation xmax"),
    KINT("a_bitwidth", aq.bitwidth, "4", 1, 32, "initial (or fixed) activation bitwidth"),
    KINT("a_bitwidth_min", aq.bitwidth_min, "1", 1, 32, "smallest activation bitwidth"),
    KINT("a_bitwidth_max", aq.bitwidth_max, "8", 1, 32, "largest activation bitwidth"),
    KFLT("target_weight_kbytes", target_weight_kbytes, "-1", -1, BIG, 0,
         "budget for the weights' memory in KB (-1: none)"),
    KFLT("target_activation_kbytes", target_activation_kbytes, "-1", -1, BIG, 0,
         "budget for the activations' memory in KB (-1: none)"),
    KCHOICE("target_activation_type", target_activation_type, "max", act_types,
            "max: the largest activation tensor; sum: all of them"),
    KLONG("budget_validate_every_steps", budget_validate_every_steps, "1", 0, 1e15,
          "with a weight budget, validate at a step within the budgets at most once per this "
          "many steps (1: every such step, as the reference; 0: at epoch ends only)"),
    KCHOICE("activation_max_penalty", activation_max_penalty, "first", max_penalties,
            "with target_activation_type = max: first: lambda3 * relu(max_i kb_i - target)^2, "
            "the gradient reaching the first largest tensor only (the reference); each: "
            "lambda3 * sum_i relu(kb_i - target)^2, every tensor above the target pushed down"),
    KFLT("initial_cost_lambda2", initial_cost_lambda2, "0.1", 0, BIG, 0,
         "weight of the weight-size penalty"),
    KFLT("initial_cost_lambda3", initial_cost_lambda3, "0.1", 0, BIG, 0,
         "weight of the activation-size penalty"),
    KBOOLF(RESUME, "scale_layer", scale_layer, "false", "a learnable scalar multiplies the logits"),
    KBOOL("strict_bools", strict_bools, "false",
          "false: a boolean in a .cfg file is true unless empty, as the reference reads it "
          "(Python's bool() of the string: 'scale_layer = False' is TRUE, with a warning); "
          "true: True/False, yes/no, on/off, 1/0 (--set values are always read so)"),

    KCHOICEF(RESUME, "model", model, "", models,
             "resnet20/32/44/56/110 (CIFAR), resnet18, mobilenetv2 (ImageNet)"),
    KINTF(RESUME, "num_classes", num_classes, "0", 0, 1 << 20, "classes (0: from the data)"),
    KSTRF(RESUME, "train_data", train_data, "",
          "directory of training shards (mpq prep), or synthetic"),
    KSTR("val_data", val_data, "", "directory of validation shards, or synthetic"),
    KENUMF(RESUME, "augment", augment, "cifar", augments,
           "cifar: pad 4 + random 32x32 crop + flip (the reference's); imagenet: random-resized "
           "crop_size crops + flip, validation val_resize then the centre crop_size; none"),
    KINTF(RESUME, "crop_size", crop_size, "224", 0, 4096,
          "augment = imagenet: side of the training and validation crops (0: the stored size)"),
    KINT("val_resize", val_resize, "256", 0, 4096,
         "augment = imagenet: validation resizes the short side to this, then cuts the centre "
         "crop_size (0: crop_size, i.e. the whole short side)"),
    KFLT("crop_scale_min", crop_scale_min, "0.08", 0, 1, POS,
         "augment = imagenet: smallest area fraction of a training crop (torchvision's scale)"),
    KFLT("crop_scale_max", crop_scale_max, "1", 0, 1, POS,
         "augment = imagenet: largest area fraction of a training crop"),
    KFLT("crop_ratio_min", crop_ratio_min, "0.75", 0, BIG, POS,
         "augment = imagenet: smallest aspect ratio (width / height) of a training crop, 3/4"),
    KFLT("crop_ratio_max", crop_ratio_max, "1.33333333", 0, BIG, POS,
         "augment = imagenet: largest aspect ratio of a training crop, 4/3 (drawn log-uniform)"),
    KINTF(RESUME, "batch_size", batch_size, "128", 1, 1 << 24,
          "global training batch (split over ranks)"),
    KINT("val_batch_size", val_batch_size, "100", 1, 1 << 24, "global validation batch"),
    KFLT("epochs", epochs, "160", 0, 1e9, POS,
         "epochs to train (the reference's 80+40+40; the reference schedule scales with it)"),
    KLONG("max_steps", max_steps, "0", 0, 1e15, "stop after this many global steps (0: no limit)"),
    KLONGF(RESUME, "seed", seed, "1", 0, 9e18, "the seed every random stream derives from"),
    KFLT("momentum", momentum, "0.9", 0, 1, 0, "SGD momentum"),
    KFLT("weight_decay", weight_decay, "0.0002", 0, BIG, 0, "g += weight_decay * w"),
    KBOOL("decay_quant_params", decay_quant_params, "true",
          "true: weight decay on every parameter, quantizer parameters included (the "
          "reference's); false: not on the quantizer parameters (BN affine and the scale layer "
          "are decayed either way)"),
    KFLT("adam_beta1", adam_beta1, "0.9", 0, 1, 0, "Adam beta1"),
    KFLT("adam_beta2", adam_beta2, "0.999", 0, 1, 0, "Adam beta2"),
    KFLT("adam_eps", adam_eps, "1e-08", 0, BIG, POS, "Adam epsilon"),
    KENUM("lr_schedule", lr_schedule, "reference", schedules,
          "reference: lr, lr/10, lr/100 over 1/2, 1/4, 1/4 of the epochs; step: lr * "
          "lr_decay_factor^(lr_decay_epochs passed); cosine; constant"),
    KFLIST("lr_decay_epochs", lr_decay_epochs, n_lr_decay_epochs, "", 0, BIG,
           "epochs at which the step schedule multiplies lr by lr_decay_factor (e.g. 80, 120)"),
    KFLT("lr_decay_factor", lr_decay_factor, "0.1", 0, BIG, POS, "factor of the step schedule"),
    KFLT("warmup_epochs", warmup_epochs, "0", 0, BIG, 0,
         "linear warmup from lr/W to lr over this many epochs (W steps)"),
    KFLT("bn_momentum", bn_momentum, "0.9", 0, 1, 0, "running = m * running + (1 - m) * batch"),
    KINTF(RESUME, "synthetic_samples", synthetic_samples, "512", 1, 1 << 30,
          "samples of synthetic data"),
    KINTF(RESUME, "synthetic_height", synthetic_height, "32", 1, 1 << 14, "synthetic image height"),
    KINTF(RESUME, "synthetic_width", synthetic_width, "32", 1, 1 << 14, "synthetic image width"),
    KINTF(RESUME, "synthetic_channels", synthetic_channels, "3", 1, 1 << 14,
          "synthetic image channels"),
    KBOOL("sync_bn", sync_bn, "false", "BN statistics over the global batch"),
    KBOOL("deterministic", deterministic, "false",
          "bit-identical trajectories for any rank count dividing virtual_shards"),
    KINT("virtual_shards", virtual_shards, "8", 1, MPQ_MAX_VIRTUAL_SHARDS,
         "fixed split of each batch for deterministic runs (must divide batch_size)"),
    KINT("threads", threads, "0", 0, MPQ_MAX_THREADS,
         "threads per rank (0: from the binding; more than the rank's cores: a warning)"),
    KBOOL("threads_adapt", threads_adapt, "true",
          "run fewer threads while fewer run faster (cores shared with other processes)"),
    KFLT("bucket_mbytes", bucket_mbytes, "4", 0, BIG, POS, "gradient allreduce bucket size in MB"),
    KBOOL("allreduce_in_place", allreduce_in_place, "false",
          "true: the gradient allreduce sums in place (no second buffer; Open MPI then always uses "
          "a binomial tree); false: into a second buffer the size of the gradient, so Open MPI "
          "can use Rabenseifner's reduce-scatter + allgather from 4 ranks (bandwidth-optimal)"),
    KSTR("output_dir", output_dir, "", "run directory (default: the experiment name)"),
    KLONG("checkpoint_every_steps", checkpoint_every_steps, "0", 0, 1e15,
          "checkpoint every this many steps (0: off)"),
    KFLT("checkpoint_every_minutes", checkpoint_every_minutes, "30", 0, BIG, 0,
         "checkpoint every this many minutes (0: off)"),
    KINT("keep_checkpoints", keep_checkpoints, "3", 0, 1 << 20, "checkpoints kept (0: all)"),
    KBOOL("progress", progress, "true", "live progress line on a terminal"),
    KBOOL("check_replicas", check_replicas, "false",
          "verify after every step that all ranks hold bit-identical parameters"),
    KLONG("check_finite_every_steps", check_finite_every_steps, "10", 0, 1e15,
          "stop when a parameter or BN statistic is NaN or infinite, checked every this many "
          "steps (one pass over the parameters; 0: only before saves and at the end)"),
    KLONG("quant_log_every_steps", quant_log_every_steps, "0", 0, 1e15,
          "every this many steps (and after the last), each quantizer's two values, the gradient "
          "the update used for each, and its bitwidth, to quant.csv in the run directory (0: off)"),
};
enum { N_KEYS = sizeof keys / sizeof keys[0] };

/* ---------------------------------------------------------------------------------------------
 * Values: cleaning, typed parsing, storing */

static void *field(mpq_cfg *c, const key *k) { return (char *)c + k->off; }
static const void *cfield(const mpq_cfg *c, const key *k) { return (const char *)c + k->off; }

/* Copies s (len bytes) into dst[size], zero-filled so that equal configs compare equal bytewise.
 * Returns -1 if it does not fit. */
static int copy_str(char *dst, size_t size, const char *s, size_t len)
{
    if (len >= size) return -1;
    memset(dst, 0, size);
    memcpy(dst, s, len);
    return 0;
}

/* Trims whitespace, drops an inline " # comment" (file values only) and one pair of surrounding
 * quotes ('x' or "x", when nothing but a comment follows the closing quote). Writes into
 * out[size]; returns -1 if the value does not fit. */
static int clean_value(const char *v, int strip_comment, char *out, size_t size)
{
    const char *end;
    while (isspace((unsigned char)*v))
        v++;
    end = v + strlen(v);
    if (*v == '"' || *v == '\'') {
        const char *close = strchr(v + 1, *v), *rest = close ? close + 1 : NULL;
        while (rest && isspace((unsigned char)*rest))
            rest++;
        if (rest && (!*rest || (strip_comment && *rest == '#' && isspace((unsigned char)rest[-1]))))
            return copy_str(out, size, v + 1, (size_t)(close - v - 1));
    }
    if (strip_comment)
        for (const char *p = v + 1; p < end; p++)
            if (*p == '#' && isspace((unsigned char)p[-1])) {
                end = p;
                break;
            }
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    return copy_str(out, size, v, (size_t)(end - v));
}

static int is_none(const char *v) { return !strcasecmp(v, "none"); }

/* A number: the whole string must be consumed, finite. */
static int parse_double(const char *s, double *out)
{
    char *end;
    if (!*s) return -1;
    errno = 0;
    *out = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(*out)) return -1;
    return 0;
}

/* An integer, also written as an integral number ("1e4"). */
static int parse_long(const char *s, long *out)
{
    char *end;
    double d;
    if (!*s) return -1;
    errno = 0;
    *out = strtol(s, &end, 10);
    if (!*end && errno != ERANGE) return 0;
    if (parse_double(s, &d) < 0 || d != floor(d) || fabs(d) > 9e18) return -1;
    *out = (long)d;
    return 0;
}

/* A boolean: empty is false; True/yes/on/1 are true; False/no/off/0 are false when strict, else
 * true as the reference reads them (its converter is Python's bool() of the string: every
 * non-empty value is true), stored as MPQ_CFG_TRUE_AS_REFERENCE so that strict_bools set later
 * can still make it false and validation warns. Other words are refused. */
static int parse_bool(const char *s, int strict, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};
    if (!*s) return *out = 0, 0;
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 0;
        if (!strcasecmp(s, no[i])) return *out = strict ? 0 : MPQ_CFG_TRUE_AS_REFERENCE, 0;
    }
    return -1;
}

/* strict_bools turned on: the false words read as true before become false. */
static void read_bools_strictly(mpq_cfg *c)
{
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].type == KTYPE_BOOL && *(int *)field(c, &keys[i]) == MPQ_CFG_TRUE_AS_REFERENCE)
            *(int *)field(c, &keys[i]) = 0;
}

/* "must be in [1, 32]" / "must be > 0" / "must be >= -1" */
static const char *range_text(const key *k, char *buf, size_t size)
{
    if (k->max >= BIG)
        snprintf(buf, size, "must be %s %.10g", k->flags & KEY_MIN_EXCL ? ">" : ">=", k->min);
    else
        snprintf(buf, size, "must be in %c%.10g, %.10g]", k->flags & KEY_MIN_EXCL ? '(' : '[',
                 k->min, k->max);
    return buf;
}

static int in_range(const key *k, double x)
{
    return (k->flags & KEY_MIN_EXCL ? x > k->min : x >= k->min) && x <= k->max;
}

/* "a, b, c" of an enum or choice list ('' for the empty name). */
static const char *names_text(const key *k, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0;; i++) {
        const char *nm = k->type == KTYPE_ENUM ? k->names[i].name : k->choices[i];
        if (!nm) break;
        if (len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", *nm ? nm : "''");
    }
    return buf;
}

static int cifar_depth(const char *model)
{
    for (int i = 1; depths[i].name; i++)
        if (!strncmp(model, "resnet", 6) && !strcmp(model + 6, depths[i].name))
            return depths[i].val;
    return 0;
}

/* model and num_layers are two views of one choice for CIFAR: the last one set wins. */
static void couple(mpq_cfg *c, const key *k)
{
    if (k->off == offsetof(mpq_cfg, num_layers) && c->num_layers > 0) {
        char m[sizeof c->model];
        int len = snprintf(m, sizeof m, "resnet%d", c->num_layers);
        copy_str(c->model, sizeof c->model, m, (size_t)len);
    } else if (k->off == offsetof(mpq_cfg, model)) {
        c->num_layers = cifar_depth(c->model);
    }
}

/* Parses and stores one value; `where` ("file:7: [SEC] key 'k'" or "--set: key 'k'") prefixes
 * every message. */
static int set_value(mpq_cfg *c, const key *k, const char *raw, int from_file, const char *where)
{
    char v[MPQ_PATH_MAX + 64], buf[512];
    long l;
    double d;
    int b;
    if (clean_value(raw, from_file, v, sizeof v) < 0)
        return MPQ_FAIL(MPQ_E_CONFIG, "%s: value too long", where);
    switch (k->type) {
    case KTYPE_INT:
    case KTYPE_LONG:
        if (parse_long(v, &l) < 0)
            return MPQ_FAIL(MPQ_E_CONFIG, "%s: '%s' is not an integer", where, v);
        if (!in_range(k, (double)l))
            return MPQ_FAIL(MPQ_E_CONFIG, "%s: %ld is out of range: %s", where, l,
                            range_text(k, buf, sizeof buf));
        if (k->type == KTYPE_INT)
            *(int *)field(c, k) = (int)l;
        else
            *(long *)field(c, k) = l;
        break;
    case KTYPE_FLOAT:
        if (parse_double(v, &d) < 0)
            return MPQ_FAIL(MPQ_E_CONFIG, "%s: '%s' is not a number", where, v);
        if (!in_range(k, d))
            return MPQ_FAIL(MPQ_E_CONFIG, "%s: %s is out of range: %s", where, v,
                            range_text(k, buf, sizeof buf));
        *(float *)field(c, k) = (float)d;
        break;
    case KTYPE_BOOL: {
        const int is_strict_key = k->off == offsetof(mpq_cfg, strict_bools);
        if (parse_bool(v, !from_file || c->strict_bools || is_strict_key, &b) < 0)
            return MPQ_FAIL(MPQ_E_CONFIG, "%s: '%s' is not a boolean (True/False, 1/0, yes/no)",
                            where, v);
        *(int *)field(c, k) = b;
        if (is_strict_key && b) read_bools_strictly(c);
        break;
    }
    case KTYPE_STR:
        if (is_none(v)) v[0] = '\0';
        if (copy_str(field(c, k), k->size, v, strlen(v)) < 0)
            return MPQ_FAIL(MPQ_E_CONFIG, "%s: value longer than %zu characters", where,
                            k->size - 1);
        break;
    case KTYPE_CHOICE: {
        int i = 0;
        if (is_none(v)) v[0] = '\0';
        while (k->choices[i] && strcasecmp(v, k->choices[i]))
            i++;
        if (!k->choices[i])
            return MPQ_FAIL(MPQ_E_CONFIG, "%s: '%s' is not one of: %s", where, v,
                            names_text(k, buf, sizeof buf));
        copy_str(field(c, k), k->size, k->choices[i], strlen(k->choices[i]));
        break;
    }
    case KTYPE_ENUM: {
        int i = 0;
        while (k->names[i].name && strcasecmp(v, k->names[i].name))
            i++;
        if (!k->names[i].name)
            return MPQ_FAIL(MPQ_E_CONFIG, "%s: '%s' is not one of: %s", where, v,
                            names_text(k, buf, sizeof buf));
        *(int *)field(c, k) = k->names[i].val;
        break;
    }
    case KTYPE_FLIST: {
        float *dst = field(c, k), vals[MPQ_MAX_DECAY_EPOCHS];
        int n = 0;
        char *s = v, *tok, *save = NULL;
        size_t len = strlen(s);
        if (len >= 2 && strchr("[(", s[0]) && strchr("])", s[len - 1])) { /* Python's [80, 120] */
            s[len - 1] = '\0';
            s++;
        }
        for (tok = strtok_r(s, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
            if (n == (int)(k->size / sizeof *dst))
                return MPQ_FAIL(MPQ_E_CONFIG, "%s: more than %zu values", where,
                                k->size / sizeof *dst);
            if (parse_double(tok, &d) < 0)
                return MPQ_FAIL(MPQ_E_CONFIG, "%s: '%s' is not a number", where, tok);
            if (!in_range(k, d))
                return MPQ_FAIL(MPQ_E_CONFIG, "%s: %s is out of range: %s", where, tok,
                                range_text(k, buf, sizeof buf));
            vals[n++] = (float)d;
        }
        memset(dst, 0, k->size);
        memcpy(dst, vals, (size_t)n * sizeof *dst);
        *(int *)((char *)c + k->n_off) = n;
        break;
    }
    }
    couple(c, k);
    return 0;
}

/* The value as cfg text, written so that parsing it gives the same value back. */
static void format_value(const mpq_cfg *c, const key *k, char *out, size_t size)
{
    switch (k->type) {
    case KTYPE_INT:
        snprintf(out, size, "%d", *(const int *)cfield(c, k));
        break;
    case KTYPE_LONG:
        snprintf(out, size, "%ld", *(const long *)cfield(c, k));
        break;
    case KTYPE_FLOAT:
    case KTYPE_FLIST: {
        int n = k->type == KTYPE_FLOAT ? 1 : *(const int *)((const char *)c + k->n_off);
        size_t len = 0;
        out[0] = '\0';
        for (int i = 0; i < n && len < size; i++) {
            float x = ((const float *)cfield(c, k))[i];
            char t[32];
            int prec = 6; /* the shortest text that reads back as the same float */
            for (; prec < 9; prec++) {
                snprintf(t, sizeof t, "%.*g", prec, (double)x);
                if ((float)strtod(t, NULL) == x) break;
            }
            len +=
                (size_t)snprintf(out + len, size - len, "%s%.*g", i ? ", " : "", prec, (double)x);
        }
        break;
    }
    case KTYPE_BOOL: /* false is empty: false under both readings */
        snprintf(out, size, "%s",
                 *(const int *)cfield(c, k) == MPQ_CFG_TRUE_AS_REFERENCE
                     ? "False  # read as TRUE, as the reference does (strict_bools = false)"
                 : *(const int *)cfield(c, k) ? "true"
                                              : "");
        break;
    case KTYPE_STR:
    case KTYPE_CHOICE: {
        const char *s = cfield(c, k);
        size_t len = strlen(s);
        int quote = len && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[len - 1]) ||
                            strchr(s, '#') || s[0] == '"' || s[0] == '\'');
        snprintf(out, size, quote ? "\"%s\"" : "%s", s);
        break;
    }
    case KTYPE_ENUM: {
        int val = *(const int *)cfield(c, k), i = 0;
        while (k->names[i].name && k->names[i].val != val)
            i++;
        snprintf(out, size, "%s", k->names[i].name ? k->names[i].name : "?");
        break;
    }
    }
}

/* A KEY_RESUME key's value as the resume check shows it: strings and names quoted, booleans as
 * true or false (a file's False read the reference's way is true), numbers as cfg text. Equal
 * texts mean equal values: numbers are written so that they read back as the same value. */
static void resume_text(const mpq_cfg *c, const key *k, char *out, size_t size)
{
    char v[MPQ_PATH_MAX + 64];
    switch (k->type) {
    case KTYPE_BOOL:
        snprintf(out, size, "%s", *(const int *)cfield(c, k) ? "true" : "false");
        break;
    case KTYPE_STR:
    case KTYPE_CHOICE:
        snprintf(out, size, "'%s'", (const char *)cfield(c, k));
        break;
    case KTYPE_ENUM:
        format_value(c, k, v, sizeof v);
        snprintf(out, size, "'%s'", v);
        break;
    case KTYPE_INT:
    case KTYPE_LONG:
    case KTYPE_FLOAT:
    case KTYPE_FLIST:
        format_value(c, k, out, size);
        break;
    }
}

/* Keys mpq no longer has, accepted and ignored (with a warning) so that the configurations stored
 * in older checkpoints still parse. */
static int is_retired(const char *name, const char *where)
{
    static const char *const retired[] = {"val_every_steps", NULL};
    for (int i = 0; retired[i]; i++)
        if (!strcasecmp(name, retired[i])) {
            if (mpq_log_rank() == 0) mpq_log_warn("%s: no longer used; ignored", where);
            return 1;
        }
    return 0;
}

/* The key of that name (case-insensitive, as configparser lowercases keys), or NULL. */
static const key *find_key(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcasecmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 63 || lb >= 63) return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (tolower((unsigned char)a[i - 1]) !=
                                               tolower((unsigned char)b[j - 1]));
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            if (up + 1 < best) best = up + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* " (did you mean 'x'?)" for the closest key within a few edits, or "". */
static const char *suggest(const char *name, char *buf, size_t size)
{
    const key *best = NULL;
    size_t dist = 99, limit = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2;
    for (int i = 0; i < N_KEYS; i++) {
        size_t d = edit_distance(name, keys[i].name);
        if (d < dist) dist = d, best = &keys[i];
    }
    if (best && dist <= limit)
        snprintf(buf, size, " (did you mean '%s'?)", best->name);
    else
        snprintf(buf, size, " (mpq train --help-keys lists the keys)");
    return buf;
}

/* ---------------------------------------------------------------------------------------------
 * Lexing: libinih through a reader that hands it one physical line at a time */

typedef struct entry {
    char *section, *name, *value;
    int line;
} entry;

typedef struct lexer {
    const char *p;          /* next unread character of the text */
    int lineno;             /* the line last handed to inih (1-based) */
    int in_key, key_indent; /* configparser: a deeper-indented line continues the value */
    int err_line;           /* first error: its line and what it is, or 0 */
    const char *err_what;
    char too_long[96];  /* err_what of an over-long line */
    char repeated[128]; /* err_what of a repeated section */
    int nomem;
    entry *e;
    size_t n, cap;
    char **sections;    /* distinct section names, in file order */
    int *section_lines; /* the line of each */
    size_t n_sections, cap_sections, cap_section_lines;
} lexer;

static void lex_error(lexer *lx, int line, const char *what)
{
    if (!lx->err_line || line < lx->err_line) lx->err_line = line, lx->err_what = what;
}

/* Records section name (len bytes) of the current line; a section seen before is an error naming
 * both lines (configparser refuses it too; merging silently hides an edit in the wrong place). */
static void add_section(lexer *lx, const char *name, size_t len)
{
    char *s;
    for (size_t i = 0; i < lx->n_sections; i++)
        if (strlen(lx->sections[i]) == len && !strncmp(lx->sections[i], name, len)) {
            snprintf(lx->repeated, sizeof lx->repeated,
                     "section [%.*s] appears again (first on line %d); merge the two", (int)len,
                     name, lx->section_lines[i]);
            lex_error(lx, lx->lineno, lx->repeated);
            return;
        }
    if (mpq_grow((void **)&lx->sections, &lx->cap_sections, lx->n_sections + 1,
                 sizeof *lx->sections) < 0 ||
        mpq_grow((void **)&lx->section_lines, &lx->cap_section_lines, lx->n_sections + 1,
                 sizeof *lx->section_lines) < 0 ||
        !(s = strndup(name, len))) {
        lx->nomem = 1;
        return;
    }
    lx->section_lines[lx->n_sections] = lx->lineno;
    lx->sections[lx->n_sections++] = s;
}

/* ini_reader: one physical line per call, leading whitespace removed (so inih's own continuation
 * rule never applies); records sections (also those without keys), which inih does not report. */
static char *read_line(char *buf, int num, void *stream)
{
    lexer *lx = stream;
    const char *s = lx->p, *t;
    size_t len, indent = 0;
    if (!*s) return NULL;
    len = strchr(s, '\n') ? (size_t)(strchr(s, '\n') - s) + 1 : strlen(s);
    lx->p = s + len;
    lx->lineno++;
    if (lx->lineno == 1 && !strncmp(s, "\xEF\xBB\xBF", 3)) s += 3, len -= 3; /* UTF-8 BOM */
    while (indent < len && s[indent] != '\n' && isspace((unsigned char)s[indent]))
        indent++;
    t = s + indent;
    len -= indent;
    if (len + 1 > (size_t)num) { /* inih would split it: stop here */
        snprintf(lx->too_long, sizeof lx->too_long,
                 "line longer than %d characters after its indentation (libinih's limit)", num - 2);
        lex_error(lx, lx->lineno, lx->too_long);
        return NULL;
    }
    if (len && !strchr(";#\r\n", *t)) {
        if (lx->in_key && (int)indent > lx->key_indent) {
            lex_error(lx, lx->lineno,
                      "an indented line continues the previous value (multi-line values are not "
                      "supported; remove the indentation)");
            len = 0;
        } else if (*t == '[') {
            const char *close = t + 1;
            lx->in_key = 0;
            while (close < t + len && *close != ']' &&
                   !(*close == ';' && isspace((unsigned char)close[-1])))
                close++;
            if (close < t + len && *close == ']') {
                if (close - t - 1 >= 50) lex_error(lx, lx->lineno, "section name too long");
                add_section(lx, t + 1, (size_t)(close - t - 1));
            }
        } else {
            lx->in_key = 1;
            lx->key_indent = (int)indent;
        }
    }
    memcpy(buf, t, len);
    buf[len] = '\0';
    return buf;
}

static int on_value(void *user, const char *section, const char *name, const char *value)
{
    lexer *lx = user;
    entry *e;
    if (!*section) {
        lex_error(lx, lx->lineno, "a key outside of any [section]");
        return 1;
    }
    if (mpq_grow((void **)&lx->e, &lx->cap, lx->n + 1, sizeof *lx->e) < 0) {
        lx->nomem = 1;
        return 1;
    }
    e = &lx->e[lx->n];
    e->section = strdup(section);
    e->name = strdup(name);
    e->value = strdup(value);
    e->line = lx->lineno;
    if (!e->section || !e->name || !e->value) {
        free(e->section), free(e->name), free(e->value);
        lx->nomem = 1;
        return 1;
    }
    lx->n++;
    return 1;
}

static void lex_free(lexer *lx)
{
    for (size_t i = 0; i < lx->n; i++)
        free(lx->e[i].section), free(lx->e[i].name), free(lx->e[i].value);
    for (size_t i = 0; i < lx->n_sections; i++)
        free(lx->sections[i]);
    free(lx->e);
    free(lx->sections);
    free(lx->section_lines);
}

/* Lexes the whole text; syntax errors are recorded in lx (err_line), not returned. Returns 0 or
 * MPQ_E_NOMEM. */
static int lex(const char *text, lexer *lx)
{
    int bad;
    memset(lx, 0, sizeof *lx);
    lx->p = text;
    bad = ini_parse_stream(read_line, lx, on_value, lx);
    if (bad > 0) lex_error(lx, bad, "expected `key = value` or `[section]`");
    if (lx->nomem || bad < 0) {
        lex_free(lx);
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory while reading the configuration");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Public functions */

int mpq_cfg_check_bytes(const char *buf, size_t len, const char *filename)
{
    const char *nul = memchr(buf, '\0', len);
    int line = 1;
    if (!nul) return 0;
    for (const char *p = buf; p < nul; p++)
        line += *p == '\n';
    return MPQ_FAIL(MPQ_E_CONFIG, "%s:%d: a NUL byte in the text (a binary or damaged file?)",
                    filename ? filename : "<config>", line);
}

void mpq_cfg_defaults(mpq_cfg *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        int rc = set_value(c, &keys[i], keys[i].def, 0, keys[i].name);
        MPQ_ASSERT(rc == 0, "bad default of key '%s': %s", keys[i].name, mpq_errmsg());
    }
}

/* Applies the entries of one section in file order. */
static int apply_section(mpq_cfg *c, const lexer *lx, const char *section, const char *file)
{
    char where[MPQ_PATH_MAX + 256], hint[128];
    for (size_t i = 0; i < lx->n; i++) {
        const entry *e = &lx->e[i];
        const key *k;
        if (strcmp(e->section, section)) continue;
        snprintf(where, sizeof where, "%s:%d: [%s] key '%s'", file, e->line, section, e->name);
        if (is_retired(e->name, where)) continue;
        if (!(k = find_key(e->name)))
            return MPQ_FAIL(MPQ_E_CONFIG, "%s: unknown key%s", where,
                            suggest(e->name, hint, sizeof hint));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(lx->e[j].section, section) && !strcasecmp(lx->e[j].name, e->name))
                return MPQ_FAIL(MPQ_E_CONFIG, "%s: set twice in the section (first on line %d)",
                                where, lx->e[j].line);
        MPQ_TRY(set_value(c, k, e->value, 1, where));
    }
    return 0;
}

/* stored: a configuration mpq wrote (mpq_cfg_dump); without a strict_bools key it was written
 * when booleans were read strictly. */
static int parse_text(const char *text, const char *filename, const char *experiment, int stored,
                      mpq_cfg *c)
{
    const char *file = filename ? filename : "<config>";
    lexer lx;
    int rc = 0, found = !strcmp(experiment, "DEFAULT"), has_strict = 0;
    mpq_cfg_defaults(c);
    if (!*experiment || strlen(experiment) >= sizeof c->experiment)
        return MPQ_FAIL(MPQ_E_CONFIG, "%s: experiment name '%s' is empty or too long", file,
                        experiment);
    copy_str(c->experiment, sizeof c->experiment, experiment, strlen(experiment));
    MPQ_TRY(lex(text, &lx));
    if (lx.err_line) {
        rc = MPQ_FAIL(MPQ_E_CONFIG, "%s:%d: %s", file, lx.err_line, lx.err_what);
        goto out;
    }
    for (size_t i = 0; i < lx.n_sections; i++)
        found |= !strcmp(lx.sections[i], experiment);
    if (!found) {
        char list[1024];
        size_t len = 0;
        list[0] = '\0';
        for (size_t i = 0; i < lx.n_sections; i++)
            if (lx.sections[i][0] && strcmp(lx.sections[i], "DEFAULT") && len < sizeof list)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                        lx.sections[i]);
        rc = MPQ_FAIL(MPQ_E_CONFIG, "%s: no experiment [%s]; the file has: %s", file, experiment,
                      len ? list : "(no sections)");
        goto out;
    }
    for (size_t i = 0; i < lx.n; i++)
        has_strict |= !strcasecmp(lx.e[i].name, "strict_bools");
    if (stored && !has_strict) c->strict_bools = 1;
    rc = apply_section(c, &lx, "DEFAULT", file);
    if (!rc && strcmp(experiment, "DEFAULT")) rc = apply_section(c, &lx, experiment, file);
    if (!rc && !c->output_dir[0]) /* the reference writes into a directory named so */
        copy_str(c->output_dir, sizeof c->output_dir, experiment, strlen(experiment));
out:
    lex_free(&lx);
    return rc;
}

int mpq_cfg_parse_text(const char *text, const char *filename, const char *experiment, mpq_cfg *c)
{
    return parse_text(text, filename, experiment, 0, c);
}

int mpq_cfg_parse_stored(const char *text, const char *filename, const char *experiment, mpq_cfg *c)
{
    return parse_text(text, filename, experiment, 1, c);
}

int mpq_cfg_set(mpq_cfg *c, const char *name, const char *value, const char *origin)
{
    char where[MPQ_PATH_MAX + 256], hint[128];
    const key *k = find_key(name);
    if (!k)
        return MPQ_FAIL(MPQ_E_CONFIG, "%s: unknown key '%s'%s", origin, name,
                        suggest(name, hint, sizeof hint));
    snprintf(where, sizeof where, "%s: key '%s'", origin, k->name);
    return set_value(c, k, value, 0, where);
}

static int check_qsettings(const mpq_qsettings *s, char side, const char *x)
{
    if (!s->method[0]) return 0; /* float: the quantizer keys are unused */
    if (s->bitwidth < s->bitwidth_min || s->bitwidth > s->bitwidth_max)
        return MPQ_FAIL(MPQ_E_CONFIG,
                        "[%s]: %c_bitwidth %d is outside [%c_bitwidth_min %d, %c_bitwidth_max %d]",
                        x, side, s->bitwidth, side, s->bitwidth_min, side, s->bitwidth_max);
    if (!(s->stepsize_min < s->stepsize_max))
        return MPQ_FAIL(MPQ_E_CONFIG, "[%s]: %c_stepsize_min %g must be below %c_stepsize_max %g",
                        x, side, (double)s->stepsize_min, side, (double)s->stepsize_max);
    if (!(s->xmin_min < s->xmin_max))
        return MPQ_FAIL(MPQ_E_CONFIG, "[%s]: %c_xmin_min %g must be below %c_xmin_max %g", x, side,
                        (double)s->xmin_min, side, (double)s->xmin_max);
    if (!(s->xmax_min < s->xmax_max))
        return MPQ_FAIL(MPQ_E_CONFIG, "[%s]: %c_xmax_min %g must be below %c_xmax_max %g", x, side,
                        (double)s->xmax_min, side, (double)s->xmax_max);
    return 0;
}

int mpq_cfg_validate(const mpq_cfg *c)
{
    const char *x = c->experiment[0] ? c->experiment : "DEFAULT";
    int known = 0, depth = cifar_depth(c->model);
    for (int i = 1; models[i]; i++)
        known |= !strcmp(c->model, models[i]);
    if (!c->model[0])
        return MPQ_FAIL(MPQ_E_CONFIG,
                        "[%s]: no model: set `model` (resnet20/32/44/56/110, "
                        "resnet18, mobilenetv2) or `num_layers`",
                        x);
    if (!known) return MPQ_FAIL(MPQ_E_CONFIG, "[%s]: unknown model '%s'", x, c->model);
    if (c->num_layers && depth != c->num_layers)
        return MPQ_FAIL(MPQ_E_CONFIG, "[%s]: model %s and num_layers %d disagree", x, c->model,
                        c->num_layers);
    for (int i = 0; i < N_KEYS && mpq_log_rank() == 0; i++)
        if (keys[i].type == KTYPE_BOOL &&
            *(const int *)cfield(c, &keys[i]) == MPQ_CFG_TRUE_AS_REFERENCE)
            mpq_log_warn("[%s]: %s is read as TRUE, as the reference reads it (Python's bool() of "
                         "a non-empty string); set strict_bools = true to read False/no/off/0 as "
                         "false",
                         x, keys[i].name);
    MPQ_TRY(check_qsettings(&c->wq, 'w', x));
    MPQ_TRY(check_qsettings(&c->aq, 'a', x));
    if (c->batch_size <= 0 || c->val_batch_size <= 0)
        return MPQ_FAIL(MPQ_E_CONFIG, "[%s]: batch sizes must be positive", x);
    if (c->deterministic && (c->virtual_shards <= 0 || c->batch_size % c->virtual_shards))
        return MPQ_FAIL(MPQ_E_CONFIG,
                        "[%s]: deterministic runs need virtual_shards (%d) to divide batch_size "
                        "(%d)",
                        x, c->virtual_shards, c->batch_size);
    if (!(c->epochs > 0) || c->warmup_epochs >= c->epochs)
        return MPQ_FAIL(MPQ_E_CONFIG, "[%s]: warmup_epochs %g must be below epochs %g", x,
                        (double)c->warmup_epochs, (double)c->epochs);
    if (c->crop_scale_min > c->crop_scale_max || c->crop_ratio_min > c->crop_ratio_max)
        return MPQ_FAIL(MPQ_E_CONFIG,
                        "[%s]: crop_scale_min %g / crop_scale_max %g and crop_ratio_min %g / "
                        "crop_ratio_max %g must be ordered ranges",
                        x, (double)c->crop_scale_min, (double)c->crop_scale_max,
                        (double)c->crop_ratio_min, (double)c->crop_ratio_max);
    if (c->crop_size > 0 && c->val_resize > 0 && c->val_resize < c->crop_size)
        return MPQ_FAIL(MPQ_E_CONFIG, "[%s]: val_resize %d is smaller than crop_size %d", x,
                        c->val_resize, c->crop_size);
    for (int i = 1; i < c->n_lr_decay_epochs; i++)
        if (c->lr_decay_epochs[i] <= c->lr_decay_epochs[i - 1])
            return MPQ_FAIL(MPQ_E_CONFIG, "[%s]: lr_decay_epochs must increase", x);
    return 0;
}

char *mpq_cfg_list_experiments(const char *text)
{
    lexer lx;
    size_t len = 1, at = 0;
    char *out;
    if (lex(text, &lx) < 0) return NULL;
    for (size_t i = 0; i < lx.n_sections; i++)
        len += strlen(lx.sections[i]) + 1;
    if ((out = malloc(len))) {
        out[0] = '\0';
        for (size_t i = 0; i < lx.n_sections; i++)
            if (lx.sections[i][0] && strcmp(lx.sections[i], "DEFAULT"))
                at += (size_t)sprintf(out + at, "%s%s", at ? "\n" : "", lx.sections[i]);
    }
    lex_free(&lx);
    return out;
}

void mpq_cfg_dump(const mpq_cfg *c, FILE *f)
{
    char v[MPQ_PATH_MAX + 64];
    fprintf(f, "[%s]\n", c->experiment[0] ? c->experiment : "DEFAULT");
    for (int i = 0; i < N_KEYS; i++) {
        format_value(c, &keys[i], v, sizeof v);
        fprintf(f, "%s = %s\n", keys[i].name, v);
    }
}

char *mpq_cfg_dump_string(const mpq_cfg *c)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    if (!f) return NULL;
    mpq_cfg_dump(c, f);
    if (fclose(f)) {
        free(s);
        return NULL;
    }
    return s;
}

int mpq_cfg_resume_mismatch(const mpq_cfg *was, const mpq_cfg *now, char *name, size_t name_size,
                            char *was_text, char *now_text, size_t text_size)
{
    char a[MPQ_PATH_MAX + 64], b[MPQ_PATH_MAX + 64];
    for (int i = 0; i < N_KEYS; i++) {
        if (!(keys[i].flags & KEY_RESUME)) continue;
        resume_text(was, &keys[i], a, sizeof a);
        resume_text(now, &keys[i], b, sizeof b);
        if (strcmp(a, b)) {
            snprintf(name, name_size, "%s", keys[i].name);
            snprintf(was_text, text_size, "%s", a);
            snprintf(now_text, text_size, "%s", b);
            return 1;
        }
    }
    return 0;
}

void mpq_cfg_print_keys(FILE *f)
{
    static const char *const tnames[] = {"int",    "int",    "float",  "bool",
                                         "string", "choice", "choice", "floats"};
    char buf[512];
    for (int i = 0; i < N_KEYS; i++) {
        const key *k = &keys[i];
        fprintf(f, "  %-26s %-6s default %s\n      %s", k->name, tnames[k->type],
                k->def[0] ? k->def : "''", k->help);
        switch (k->type) {
        case KTYPE_INT:
        case KTYPE_LONG:
        case KTYPE_FLOAT:
        case KTYPE_FLIST:
            fprintf(f, "; %s", range_text(k, buf, sizeof buf));
            break;
        case KTYPE_CHOICE:
        case KTYPE_ENUM:
            fprintf(f, "; one of: %s", names_text(k, buf, sizeof buf));
            break;
        case KTYPE_BOOL:
        case KTYPE_STR:
            break;
        }
        fputc('\n', f);
    }
}

mpq_schedule mpq_cfg_schedule(const mpq_cfg *c)
{
    return (mpq_schedule){
        .kind = c->lr_schedule,
        .lr = c->initial_learning_rate,
        .epochs = c->epochs,
        .warmup_epochs = c->warmup_epochs,
        .decay_factor = c->lr_decay_factor,
        .decay_epochs = c->lr_decay_epochs,
        .n_decay_epochs = c->n_lr_decay_epochs,
    };
}

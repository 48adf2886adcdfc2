/* Experiment configuration: the reference's .cfg format (INI sections named after experiments,
 * keys inherited from [DEFAULT]; shared/spec/config.md) plus the keys mpq adds. One static key
 * table in config.c (name, type, offset, default, range, help) drives parsing, inheritance,
 * `--set key=value`, range errors, `mpq train --help-keys` and the effective dump stored in
 * checkpoints. The parser takes text, not a file: rank 0 reads the file and broadcasts it. */
#ifndef MPQ_CONFIG_H
#define MPQ_CONFIG_H

#include <stdio.h>

#include "core/path.h"
#include "data.h"
#include "optim/optim.h"
#include "quant/quant.h"


typedef enum mpq_optimizer { MPQ_OPTIMIZER_SGD, MPQ_OPTIMIZER_ADAM } mpq_optimizer;

#define MPQ_MAX_DECAY_EPOCHS 8
/* The largest virtual_shards the trainer supports: it sums per-shard metrics in a fixed array of
 * that many shards (src/train.c), and every shard is one micro-batch of at least one sample. */
#define MPQ_MAX_VIRTUAL_SHARDS 1024
/* The largest threads value: OpenMP and BLIS take more, but libgomp crashes creating tens of
 * thousands of threads; no node has more than this many cores per rank. */
#define MPQ_MAX_THREADS 1024

/* A boolean key whose file value is a false word (False, no, off, 0) read as true, as the
 * reference reads it (Python's bool() of a non-empty string); truthy like 1. */
#define MPQ_CFG_TRUE_AS_REFERENCE 2

typedef struct mpq_cfg {
    char experiment[128];

    /* model */
    char model[32];         /* resnet20/32/44/56/110, resnet18, mobilenetv2 */
    int num_layers;         /* CIFAR ResNet depth (0: from model) */
    char shortcut_type[4];  /* "", "a", "b", "c" */
    int scale_layer;
    int strict_bools;       /* 0: file booleans read as the reference (non-empty = true) */
    int num_classes;        /* 0: from the data */

    /* quantization (reference keys) */
    mpq_qsettings wq, aq;   /* w_* and a_* keys */
    char weightfile[MPQ_PATH_MAX];
    float target_weight_kbytes, target_activation_kbytes;
    char target_activation_type[8]; /* "max" or "sum" */
    float initial_cost_lambda2, initial_cost_lambda3;
    long budget_validate_every_steps; /* validation between epoch ends, within the budgets */
    char activation_max_penalty[8];   /* max type: "first" (the reference) or "each" */

    /* optimisation */
    mpq_optimizer optimizer;
    float initial_learning_rate;
    float momentum, weight_decay;
    int decay_quant_params;          /* also on quantizer parameters (reference: 1); BN always */
    float adam_beta1, adam_beta2, adam_eps;
    mpq_lr_schedule lr_schedule;
    float lr_decay_epochs[MPQ_MAX_DECAY_EPOCHS];
    int n_lr_decay_epochs;
    float lr_decay_factor;
    float warmup_epochs;
    float bn_momentum;

    /* data and schedule */
    char train_data[MPQ_PATH_MAX], val_data[MPQ_PATH_MAX]; /* shard dirs, or "synthetic" */
    mpq_augment augment;
    int crop_size, val_resize;            /* augment = imagenet: the delivered views */
    float crop_scale_min, crop_scale_max; /* training crop: area fraction range */
    float crop_ratio_min, crop_ratio_max; /* training crop: aspect (w/h) range */
    int batch_size, val_batch_size; /* global */
    float epochs;
    long max_steps;
    long seed;
    int synthetic_samples, synthetic_height, synthetic_width, synthetic_channels;

    /* distribution, performance */
    int sync_bn, deterministic, virtual_shards;
    int threads;            /* per rank; 0: from the binding (or OMP_NUM_THREADS) */
    int threads_adapt;      /* fewer threads while fewer run faster (train/threadtune.h) */
    float bucket_mbytes;
    int allreduce_in_place; /* 1: in-place gradient allreduce (binomial in Open MPI) */

    /* outputs, checkpoints */
    char output_dir[MPQ_PATH_MAX]; /* default: the experiment name */
    long checkpoint_every_steps;
    float checkpoint_every_minutes;
    int keep_checkpoints;
    int progress;           /* 1: live progress line on a terminal */
    int check_replicas;     /* 1: compare a parameter checksum over the ranks every step */
    long check_finite_every_steps; /* NaN/Inf scan of the parameters every N steps (0: off) */
    long quant_log_every_steps;    /* quant.csv: quantizer values and gradients (0: off) */
} mpq_cfg;

/* Every key at its default (the reference's for its keys; see `mpq train --help-keys`). */
void mpq_cfg_defaults(mpq_cfg *c);
/* Parses INI text (file name used in messages) and fills c with the defaults, overlaid by the
 * keys of [DEFAULT], overlaid by those of [experiment] ("DEFAULT" itself is accepted). Keys are
 * case-blind; values may carry a trailing " # comment" or " ; comment" and surrounding quotes;
 * "None" means empty/none; booleans: empty is false, True/yes/on/1 true, and False/no/off/0 are
 * TRUE as in the reference (MPQ_CFG_TRUE_AS_REFERENCE) unless strict_bools is set (in the file,
 * before or after them, or by --set), then false. Keys of other sections
 * are not checked. output_dir defaults to the experiment name. Errors (unknown experiment: the
 * message lists the available ones; unknown key, with the nearest key name; bad number, out of
 * range, bad choice, a key set twice in a section, a section that appears twice (both lines
 * named), syntax, lines over libinih's 200 characters, indented continuation lines) name the
 * file, the line, the section and the key. Returns 0 or MPQ_E_CONFIG (MPQ_E_NOMEM). */
int mpq_cfg_parse_text(const char *text, const char *filename, const char *experiment,
                       mpq_cfg *c);
/* The configuration stored in an mpq checkpoint (mpq_cfg_dump): as mpq_cfg_parse_text, except
 * that a text without a strict_bools key (written before the key existed, when booleans were read
 * strictly) reads its booleans strictly. */
int mpq_cfg_parse_stored(const char *text, const char *filename, const char *experiment,
                         mpq_cfg *c);
/* Checks raw file bytes (len of them) before mpq_cfg_parse_text: a NUL byte would end the text
 * early, so it is MPQ_E_CONFIG naming the file and its line. Returns 0 or MPQ_E_CONFIG. */
int mpq_cfg_check_bytes(const char *buf, size_t len, const char *filename);
/* Applies one key = value (from --set; origin, e.g. "--set", names it in messages), with the
 * checks of the parser; booleans are read strictly (True/False, yes/no, on/off, 1/0). num_layers
 * and model are one choice for CIFAR: setting num_layers = N sets model = resnetN; setting model
 * sets num_layers (0 for resnet18, mobilenetv2). Returns 0 or MPQ_E_CONFIG; c is unchanged on
 * error. */
int mpq_cfg_set(mpq_cfg *c, const char *key, const char *value, const char *origin);
/* Checks cross-key consistency after all settings: a known model (or num_layers) that agrees
 * with num_layers; for a quantized side (w_/a_quantize set) bitwidth_min <= bitwidth <=
 * bitwidth_max, stepsize_min < stepsize_max, xmin_min < xmin_max, xmax_min < xmax_max;
 * virtual_shards divides batch_size when deterministic; warmup_epochs < epochs; increasing
 * lr_decay_epochs; ordered crop_scale_* and crop_ratio_* ranges, val_resize >= crop_size.
 * (Batch divisible by ranks is checked by the trainer.) Warns (rank 0) for every boolean read as
 * true the reference's way. Returns 0 or MPQ_E_CONFIG naming the
 * experiment and the keys. */
int mpq_cfg_validate(const mpq_cfg *c);
/* Experiment section names in the text (excluding DEFAULT), newline-separated, malloc'ed. */
char *mpq_cfg_list_experiments(const char *text);
/* Writes the effective configuration as an INI section "[experiment]" with every key, in a form
 * mpq_cfg_parse_text reads back to the same struct (bytewise). */
void mpq_cfg_dump(const mpq_cfg *c, FILE *f);
/* The learning-rate schedule of c (points into c). */
mpq_schedule mpq_cfg_schedule(const mpq_cfg *c);
/* Same into a malloc'ed string (for checkpoints). */
char *mpq_cfg_dump_string(const mpq_cfg *c);
/* Compares the keys that must match when a run resumes from a checkpoint (marked in the key
 * table: those that decide the model, the data order or the optimizer state): returns 1 for the
 * first that differs, with its name and both values as text (strings quoted, e.g. "'resnet20'",
 * numbers bare, "128"), each cut to its buffer's size; 0 when all agree. */
int mpq_cfg_resume_mismatch(const mpq_cfg *was, const mpq_cfg *now, char *name, size_t name_size,
                            char *was_text, char *now_text, size_t text_size);
/* Prints the key table (name, default, help) for `mpq train --help-keys`. */
void mpq_cfg_print_keys(FILE *f);

#endif

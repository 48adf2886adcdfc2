/* Checkpoints (DESIGN.md "Formats", a contract): one HDF5 file per save, written collectively by
 * every rank through parallel HDF5 (MPI-IO, collective transfers: every rank creates every object,
 * and writes its share of the rows of each tensor and of the flat optimizer state). Layout, for
 * h5dump / h5ls / h5py:
 *   /                  attributes mpq_format = "mpq-checkpoint", mpq_format_version, kind
 *                      ("checkpoint", or "params" without optimizer state), experiment, model,
 *                      optimizer, step, epoch, step_in_epoch, steps_per_epoch, seed, rng,
 *                      n_ranks, input_height, input_width, input_channels, num_classes, lr,
 *                      first_loss, best_val_err, epoch_err, epoch_n, last_budget_val
 *   /config            the effective configuration text (string)
 *   /params/<name>     every trainable tensor under its registry name and shape (float32; the
 *                      '/' of the names are HDF5 groups)
 *   /state/<name>      BN running statistics (float32)
 *   /quantizers/<name> one group per quantizer with attributes method, is_act, elements,
 *                      bitwidth, kbytes, step, params[2], param_names
 *   /optimizer/m, /v   the optimizer state, flat float32 [n] in registry order (SGD: m holds the
 *                      velocity, v is zero); attribute optimizer
 *   /history/results   the metric history so far: float64 [rows, cols], attribute columns
 * Saves are atomic: PATH.tmp is written and closed by all ranks, then rank 0 renames it to PATH,
 * so a crash during a save leaves earlier files intact. Weight files (cfg weightfile) are mpq
 * checkpoints or nnabla parameter files (nn.save_parameters: one dataset per parameter under the
 * reference's names, NCHW convolution weights, (Cin, Cout) affine weights).
 * Threading: main thread; every HDF5 call holds io/h5.h's lock. Memory: the caller's buffers;
 * strings and history read from a file are malloc'ed (mpq_ckpt_info_free). */
#ifndef MPQ_IO_CKPT_H
#define MPQ_IO_CKPT_H

#include <stddef.h>

#include "model_view.h"
#include "mpi/comm.h"

#define MPQ_CKPT_FORMAT "mpq-checkpoint"
#define MPQ_EXPORT_FORMAT "mpq-export" /* io/export.h; same root attributes and /config */
#define MPQ_CKPT_VERSION 1
#define MPQ_CKPT_SUBDIR "checkpoints"
#define MPQ_CKPT_BEST "params_best.h5"

/* What a checkpoint records besides the tensors. On save every rank passes the same values,
 * except config and history, which are taken from rank 0 (rows and cols must agree). */
typedef struct mpq_ckpt_info {
    char kind[16]; /* "checkpoint" or "params" (set by save) */
    char experiment[128], model[32], optimizer[8];
    long step;                 /* global steps done */
    long epoch, step_in_epoch; /* the data position of the next step */
    long steps_per_epoch, seed;
    int n_ranks; /* of the run that wrote it */
    int in_h, in_w, in_c, num_classes;
    double lr; /* of the last step */
    double first_loss, best_val_err;
    double epoch_err; /* the running train-error sum of the current epoch, and its steps */
    long epoch_n;
    long last_budget_val; /* the last step validated within the budgets, -1 if none (a file
                             written before this attribute existed reads as -1) */
    char *config;    /* the configuration text (mpq_cfg_dump); malloc'ed when read */
    double *history; /* history_rows x history_cols; malloc'ed when read (NULL if empty) */
    int history_rows, history_cols;
    char history_columns[256]; /* comma-separated names */
} mpq_ckpt_info;

/* Collective. Writes path + ".tmp" with the model's tensors, quantizers, BN state and, with
 * with_optimizer, the optimizer state (kind "checkpoint"; else "params"); closes it on every
 * rank; then rank 0 syncs it and renames it to path. The directory must exist. The environment
 * variable MPQ_TEST_SAVE_DELAY_MS (tests) delays the rename. Returns 0 or an agreed MPQ_E_*. */
int mpq_ckpt_save(mpq_comm *c, const char *path, const mpq_model_view *m, const mpq_ckpt_info *info,
                  int with_optimizer);

/* Collective. Reads the attributes, the configuration text and the history of an mpq checkpoint,
 * parameter file or exported model (kind "export") into *out (free with mpq_ckpt_info_free).
 * Refuses, naming the file: a missing or unreadable file, a truncated or non-HDF5 file
 * (MPQ_E_IO), a file without mpq's root attributes (a dataset shard, an nnabla parameter file:
 * MPQ_E_FORMAT). Returns 0 or MPQ_E_*. */
int mpq_ckpt_read_info(mpq_comm *c, const char *path, mpq_ckpt_info *out);
void mpq_ckpt_info_free(mpq_ckpt_info *i);

/* Collective. Loads an mpq checkpoint into m (built and allocated): the trainable values, the BN
 * state, the fixed quantizers' (n, delta | m) and, with MPQ_CKPT_LOAD_OPTIMIZER, opt[0..1].
 * Everything is checked before anything is written into m; refusals say what differs: another
 * model name (when model_name != NULL), a tensor missing in the file or not in the model, a shape,
 * a quantizer's method, a parameter file where optimizer state is required. After reading, a NaN
 * or infinite value in what was read is refused naming the tensor (MPQ_E_NUMERIC; m then holds
 * the file's values). Returns 0 or an agreed MPQ_E_FORMAT / MPQ_E_IO / MPQ_E_NUMERIC. */
#define MPQ_CKPT_LOAD_OPTIMIZER 1
/* (Exported models are refused: io/export.h loads them.) */
int mpq_ckpt_load(mpq_comm *c, const char *path, const mpq_model_view *m, const char *model_name,
                  int flags);

/* Collective. The cfg key weightfile: loads weights, biases, BN affine and BN state by tensor
 * name from an mpq checkpoint / parameter file (recognised by its root attributes) or else from
 * an nnabla parameter file, converting its layouts: convolution W (O, I, KH, KW) -> (O, KH, KW,
 * I), depthwise W (C, KH, KW) -> (C, KH, KW, 1), affine W (Cin, Cout) -> (Cout, Cin) (after a 1x1
 * spatial input only), BN vectors (1, C, 1, 1) -> (C). A tensor of the model missing in the file
 * is an error naming it (and how many are missing), except the scale layer, which then starts at
 * 1 (the reference creates it). With quant_loaded (m->n_quants entries), the parametric
 * quantizers' values the file holds for the model's method are loaded too, as the reference keeps
 * every parameter of its weightfile (mpq: /params/<quantizer>/<value> with a matching method
 * attribute on /quantizers/<quantizer>; nnabla: <quantizer>/<method>/<value>), and
 * quant_loaded[i] says which; the caller initialises the others (mpq_train_start_from_weightfile
 * in train.h does both). Returns 0 or MPQ_E_*. */
int mpq_ckpt_load_weights(mpq_comm *c, const char *path, const mpq_model_view *m,
                          unsigned char *quant_loaded);

/* <output_dir>/checkpoints/ckpt-<step, 9 digits>.h5 into out. */
void mpq_ckpt_path(const char *output_dir, long step, char *out, size_t bytes);
/* Not collective (rank 0): the newest complete checkpoint of output_dir (by step), skipping files
 * that do not open as checkpoints or hold a tensor that fails its checksum (with a warning naming
 * it: --resume auto then falls back to the previous checkpoint) and temporaries. Returns 1 and writes its path,
 * 0 if there is none, or MPQ_E_IO for an unreadable directory. */
int mpq_ckpt_find_latest(const char *output_dir, char *out, size_t bytes);
/* Not collective (rank 0): removes all but the newest keep checkpoints (keep 0: none) and every
 * temporary left by an interrupted save. Returns 0 or MPQ_E_IO. */
int mpq_ckpt_prune(const char *output_dir, int keep);
/* Not collective (rank 0): removes every checkpoint, temporary and the params_best.h5 of
 * output_dir, writing how many checkpoints went to *n_removed. Returns 0 or MPQ_E_IO. */
int mpq_ckpt_clear(const char *output_dir, int *n_removed);

/* How a run that starts at step 0 treats an earlier run's files in its output_dir. */
typedef enum mpq_ckpt_start {
    MPQ_CKPT_START_FRESH,   /* no --resume: refuse if checkpoints or params_best.h5 exist */
    MPQ_CKPT_START_NONE,    /* --resume auto found no loadable checkpoint: refuse if checkpoint
                               files exist (damaged ones are never removed silently); an earlier
                               params_best.h5 is kept until this run writes its own (warning) */
    MPQ_CKPT_START_RESTART, /* --restart: remove them (mpq_ckpt_clear), with a warning */
} mpq_ckpt_start;
/* Not collective (rank 0), before a run at step 0 writes anything into output_dir. Refusals are
 * MPQ_E_CONFIG naming the directory, the newest file and the ways on (--resume auto, --restart,
 * another output_dir); nothing is deleted unless `how` is MPQ_CKPT_START_RESTART. Returns 0 or
 * MPQ_E_*. */
int mpq_ckpt_start_fresh(const char *output_dir, mpq_ckpt_start how);

#endif

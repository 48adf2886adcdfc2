/* The trainer's interface (its parts live in src/train/; train/trainer.h says which file owns
 * what). The training loop: data-parallel replicas over MPI (mpi/comm.h), batches from a source
 * (data.h), the model (models/), the optimizer (optim/), the size model and the reference's
 * quantizer plumbing, validation, run outputs (steps.csv, results.csv, timing.csv, histories,
 * tables, the bitwidth picture), checkpoints and exact resume (io/ckpt.h), weight files, and
 * stopping on SIGUSR1/SIGTERM. Every rank calls mpq_train with the same configuration. */
#ifndef MPQ_TRAIN_H
#define MPQ_TRAIN_H

#include <stdint.h>

#include "config.h"
#include "data.h"
#include "models/graph.h"
#include "mpi/comm.h"
#include "quant/size.h"

typedef struct mpq_train_opts {
    const char *resume; /* NULL, "auto" or a checkpoint path */
    int quiet;          /* no progress lines */
    int restart;        /* start at step 0 even over an earlier run's checkpoints (removed) */
} mpq_train_opts;

typedef struct mpq_train_result {
    long steps;             /* global steps done */
    double train_err;       /* of the last epoch (fraction) */
    double val_err;         /* last validation (fraction), NaN without validation data */
    double best_val_err;    /* best validation among states within budget */
    double first_loss, last_loss;
    mpq_size_terms size;    /* at the end */
    int within_budget;      /* whether the final state meets the budgets (1 without budgets) */
    double seconds;
    double images_per_s;
    uint64_t checksum;      /* of the final parameters and BN state (FNV-1a of their bytes) */
} mpq_train_result;

/* Runs the experiment: from step 0 (initial values, or the weightfile's weights with quantizers
 * initialised from them; refused while output_dir holds an earlier run's checkpoints or
 * params_best.h5, unless o->restart, which removes them), or with
 * o->resume from a checkpoint ("auto": the newest complete one under <output_dir>/checkpoints,
 * or step 0 if there is none), continuing the csv files without duplicate or missing rows.
 * Checkpoints every checkpoint_every_steps steps and every checkpoint_every_minutes (rank 0's
 * clock), at the end when either is on, and on SIGUSR1 or SIGTERM (any rank, agreed at the next
 * step boundary): then returns MPQ_E_INTERRUPTED (main exits with 75). The best validation error
 * within budget is kept as <output_dir>/params_best.h5. A NaN/Inf loss stops the run with
 * MPQ_E_NUMERIC and no checkpoint of that state. Returns 0, or a negative MPQ_E_* agreed by all
 * ranks (the message is set on every rank). */
int mpq_train(mpq_comm *comm, const mpq_cfg *cfg, const mpq_train_opts *o, mpq_train_result *res);

/* The batch source named by spec ("synthetic", from the synthetic_* keys, or a shard directory)
 * with the configuration's batch sizes, seed and augmentation, as rank `rank` of n_ranks sees it:
 * train = 1 for training (shuffled per epoch), 0 for validation (in order, every sample; the
 * synthetic validation set draws other samples of the same distribution). Returns 0 or MPQ_E_*. */
int mpq_train_source_open(const mpq_cfg *c, const char *spec, int train, int rank, int n_ranks,
                          mpq_source **out);
/* Builds the configuration's model (model, shortcut_type, scale_layer, quantizer settings,
 * bn_momentum) for inputs (h, w, ch) and `classes` classes and plans it for local batches up to
 * plan_n. Values are not initialised. Returns 0 or MPQ_E_* (free m with mpq_model_free). */
int mpq_train_model_build(const mpq_cfg *c, int h, int w, int ch, int classes, int plan_n,
                          mpq_model *m);
/* Collective. Starts m (built, allocated) from a weightfile as the reference does: weights, BN
 * and the quantizer values the file holds (io/ckpt.h mpq_ckpt_load_weights), then the quantizers
 * it does not hold start from the loaded weights (find_delta). Returns 0 or MPQ_E_*. */
int mpq_train_start_from_weightfile(mpq_comm *c, const char *path, mpq_model *m);
/* The size budgets and penalty weights of the configuration. */
mpq_budget mpq_train_budget(const mpq_cfg *c);

#endif

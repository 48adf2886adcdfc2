/* The training loop: data-parallel replicas over MPI (mpi/comm.h), batches from a source
 * (data.h), the model (models/), the optimizer (optim/), the size model and the reference's
 * quantizer plumbing, validation, run outputs (steps.csv, results.csv, timing.csv, histories,
 * tables, the bitwidth picture). Every rank calls mpq_train with the same configuration. */
#ifndef MPQ_TRAIN_H
#define MPQ_TRAIN_H

#include <stdint.h>

#include "config.h"
#include "mpi/comm.h"
#include "quant/size.h"

typedef struct mpq_train_opts {
    const char *resume; /* NULL, "auto" or a checkpoint path */
    int quiet;          /* no progress lines */
} mpq_train_opts;

typedef struct mpq_train_result {
    long steps;             /* global steps done */
    double train_err;       /* of the last epoch (fraction) */
    double val_err;         /* last validation (fraction), NaN without validation data */
    double best_val_err;    /* best validation among states within budget */
    double first_loss, last_loss;
    mpq_size_terms size;    /* at the end */
    double seconds;
    double images_per_s;
    uint64_t checksum;      /* of the final parameters and BN state (FNV-1a of their bytes) */
} mpq_train_result;

/* Runs the experiment. Returns 0, or a negative MPQ_E_* agreed by all ranks (the message is set
 * on every rank). */
int mpq_train(mpq_comm *comm, const mpq_cfg *cfg, const char *cfg_text, const mpq_train_opts *o,
              mpq_train_result *res);

#endif

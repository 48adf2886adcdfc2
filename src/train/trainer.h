/* The trainer's state and the functions its files share (private to src/train/):
 *   setup.c       data sources, the model, the batching, initial values;
 *   step.c        one training step (step.h; also what `mpq bench` runs);
 *   runlog.c      steps.csv, timing.csv, validation.csv, results.csv, quant.csv and the metric
 *                 history, cut back on resume; progress lines;
 *   checkpoint.c  checkpoint save, resume (the configuration keys that must match are marked in
 *                 the key table), weight files, the parameter checksum;
 *   loop.c        mpq_train: the epochs, validation and the best state, signals, the end.
 * Every function that takes a trainer is collective unless it says "rank 0". */
#ifndef MPQ_TRAIN_TRAINER_H
#define MPQ_TRAIN_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "io/ckpt.h"
#include "train.h"
#include "train/step.h"

#define MPQ_HIST_COLS 12 /* a results.csv row: see results_header in runlog.c */

typedef struct trainer {
    const mpq_cfg *cfg;
    mpq_comm *comm;
    int rank, n_ranks;
    mpq_source *train, *val;
    mpq_model m;
    mpq_batching b;
    mpq_trainstep step; /* the step and its buffers (xb, yb serve validation too) */
    long spe, total_steps;
    long start_step;  /* 0, or the step a resumed run starts from */
    double epoch_err; /* train error summed over the steps of the current epoch so far */
    long epoch_n;
    double *hist; /* results.csv rows so far (MPQ_HIST_COLS each), for checkpoints */
    int hist_rows;
    size_t hist_cap;
    double epoch_start; /* wall time the current epoch started */
    int quiet;
    int quantized;        /* some weight or activation quantizer is not float */
    char *cfg_dump;       /* the effective configuration (checkpoints) */
    double last_save;     /* rank 0: wall time of the last checkpoint (or the start) */
    long last_budget_val; /* the last step validated within the budgets (-1: none yet) */
    FILE *steps_csv, *results_csv, *timing_csv, *val_csv;
    FILE *quant_csv; /* NULL unless quant_log_every_steps > 0 */
    char dir[MPQ_PATH_MAX + 64];
} trainer;

/* setup.c */
int trainer_setup(trainer *t); /* batching, data, model, step; agreed */

/* runlog.c */
extern const char mpq_results_header[];
int trainer_append_hist(trainer *t, const double *row);
/* rank 0 writes; others return 0. fresh: what a start at step 0 does with an earlier run's files */
int trainer_open_outputs(trainer *t, int resumed, mpq_ckpt_start fresh);
void trainer_log_step(trainer *t, long step, float lr, const mpq_step_stats *st,
                      const double *stimes, double step_seconds);
void trainer_log_quant(trainer *t, long step); /* rank 0 */
void trainer_log_validation(trainer *t, long step, double verr, double vce,
                            const mpq_size_terms *now, int within, int best);
int trainer_log_results(trainer *t, const double *row); /* rank 0; flushes every csv */
int trainer_flush_logs(trainer *t); /* rank 0: checked flushes (0 or MPQ_E_IO naming the file) */
void trainer_progress(const trainer *t, long step, const mpq_step_stats *st, double elapsed,
                      long done, int live);
void trainer_close_logs(trainer *t);

/* checkpoint.c */
uint64_t trainer_checksum(const mpq_model *m);
int trainer_save(trainer *t, const char *path, long steps_done, double lr,
                 const mpq_train_result *res, int with_optimizer);
int trainer_resume_path(trainer *t, const char *spec, char *path, size_t bytes);
int trainer_resume(trainer *t, const char *path, mpq_train_result *res);
int trainer_load_weightfile(trainer *t);

#endif

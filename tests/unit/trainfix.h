/* Fixtures shared by the trainer suites (check_train, check_train_glue): run an experiment given
 * as .cfg text into a directory under the suite's temporary directory, and read back the files a
 * run writes (whole text, csv rows as numbers, checkpoints into a freshly built model). */
#ifndef MPQ_TESTS_UNIT_TRAINFIX_H
#define MPQ_TESTS_UNIT_TRAINFIX_H

#include "config.h"
#include "models/graph.h"
#include "mpi/comm.h"
#include "train.h"

/* Parses experiment of the .cfg text into *c with output_dir = <tmp>/<outdir> and no progress
 * line. Returns 0 or MPQ_E_*. */
int trainfix_cfg(const char *text, const char *experiment, const char *tmp, const char *outdir,
                 mpq_cfg *c);
/* Trains experiment of the .cfg text quietly into <tmp>/<outdir>; resume: NULL, "auto" or a
 * checkpoint path. Returns mpq_train's code. */
int trainfix_run(mpq_comm *comm, const char *tmp, const char *text, const char *experiment,
                 const char *outdir, const char *resume, mpq_train_result *r);
/* The whole file (up to 1 MB), malloc'ed and NUL-terminated, or NULL if it does not open. */
char *trainfix_slurp(const char *path);
/* The data lines of <tmp>/<outdir>/<name> (the header skipped) as up to max_rows rows of cols
 * numbers each into v (row-major); fails the test on a malformed line. Returns the row count. */
int trainfix_read_csv(const char *tmp, const char *outdir, const char *name, int cols, double *v,
                      int max_rows);
/* Builds c's model for the synthetic data of c (num_classes or 10 classes), planned for local
 * batches up to plan_n, with the trainer's initial values (seed). Fails the test on error. */
void trainfix_initial_model(const mpq_cfg *c, int plan_n, mpq_model *m);
/* trainfix_initial_model, then the values, BN state and optimizer state of checkpoint
 * <output_dir of c>/checkpoints at global step `step` (mpq_ckpt_path). */
void trainfix_checkpoint_model(mpq_comm *comm, const mpq_cfg *c, long step, int plan_n,
                               mpq_model *m);

#endif

/* The verbs of the `mpq` command, one file each in src/cli/. Each parses its own argv (argv[0] is
 * the verb), prints its usage on --help, and returns 0 on success, 2 on a usage error, or a
 * negative MPQ_E_* after printing the message (on the rank that has it); MPQ_E_INTERRUPTED (train
 * stopped by a signal after a checkpoint) makes main exit with 75. */
#ifndef MPQ_CLI_CLI_H
#define MPQ_CLI_CLI_H

#include "config.h"
#include "io/ckpt.h"
#include "models/graph.h"
#include "mpi/comm.h"

int mpq_cli_prep(mpq_comm *c, int argc, char **argv);
int mpq_cli_train(mpq_comm *c, int argc, char **argv);
int mpq_cli_eval(mpq_comm *c, int argc, char **argv);
int mpq_cli_export(mpq_comm *c, int argc, char **argv);
int mpq_cli_inspect(mpq_comm *c, int argc, char **argv);
int mpq_cli_bench(mpq_comm *c, int argc, char **argv);
int mpq_cli_predict(mpq_comm *c, int argc, char **argv);

/* Collective: rank 0 reads the file at path, every rank receives its text (malloc'ed). Returns 0
 * or an agreed MPQ_E_*. */
int mpq_cli_read_text(mpq_comm *c, const char *path, char **text);
/* Collective: parses experiment of text (path names it in messages), applies the "key=value"
 * overrides and validates. Returns 0 or an agreed MPQ_E_CONFIG. */
int mpq_cli_parse_cfg(mpq_comm *c, const char *text, const char *path, const char *experiment,
                      const char *const *sets, int n_sets, mpq_cfg *cfg);

/* A model loaded from a weight file, with the configuration it was built from. */
typedef struct mpq_cli_model {
    mpq_cfg cfg;
    mpq_ckpt_info info; /* of the file (zeroed for an nnabla parameter file) */
    mpq_model m;
    int is_export;      /* an exported model: weights unquantized in m, equal to the codes' */
} mpq_cli_model;
/* Collective: builds a model planned for local batches up to plan_n and loads path into it.
 * cfg == NULL: path is a checkpoint, parameter file or exported model and brings its own
 * configuration and input shape. Otherwise the model is cfg's for inputs (h, w, ch) and `classes`
 * classes, and path may also be an nnabla parameter file (weights loaded, quantizers initialised
 * from them). Returns 0 or an agreed MPQ_E_* (free out with mpq_cli_model_free either way). */
int mpq_cli_model_load(mpq_comm *c, const char *path, const mpq_cfg *cfg, int h, int w, int ch,
                       int classes, int plan_n, mpq_cli_model *out);
void mpq_cli_model_free(mpq_cli_model *x);

/* A verb of `mpq` or a format of `mpq prep`: its name and what runs it (argv[0] is the name). */
typedef struct mpq_cli_cmd {
    const char *name;
    int (*run)(mpq_comm *c, int argc, char **argv);
} mpq_cli_cmd;
/* The command of table (n of them) named name, or NULL. */
const mpq_cli_cmd *mpq_cli_find(const mpq_cli_cmd *table, size_t n, const char *name);

/* Prints "mpq VERB: <message>" for a failure code on stderr (rank prefix where useful) and
 * passes rc through. */
int mpq_cli_report(const char *verb, int rc);

#endif

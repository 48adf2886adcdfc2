/* The verbs of the `mpq` command, one file each in src/cli/. Each parses its own argv (argv[0] is
 * the verb), prints its usage on --help, and returns 0 on success, 2 on a usage error, or a
 * negative MPQ_E_* after printing the message (on the rank that has it); MPQ_E_INTERRUPTED (train
 * stopped by a signal after a checkpoint) makes main exit with 75. */
#ifndef MPQ_CLI_CLI_H
#define MPQ_CLI_CLI_H

#include "mpi/comm.h"

int mpq_cli_prep(mpq_comm *c, int argc, char **argv);
int mpq_cli_train(mpq_comm *c, int argc, char **argv);
int mpq_cli_eval(mpq_comm *c, int argc, char **argv);
int mpq_cli_export(mpq_comm *c, int argc, char **argv);
int mpq_cli_inspect(mpq_comm *c, int argc, char **argv);
int mpq_cli_bench(mpq_comm *c, int argc, char **argv);

/* Prints "mpq VERB: <message>" for a failure code on stderr (rank prefix where useful) and
 * passes rc through. */
int mpq_cli_report(const char *verb, int rc);

#endif

/* Failure reporting shared by the verbs. */
#include <stdio.h>

#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"

int mpq_cli_report(const char *verb, int rc)
{
    if (rc < 0) fprintf(stderr, "mpq %s: error (rank %d): %s\n", verb, mpq_log_rank(), mpq_errmsg());
    return rc;
}

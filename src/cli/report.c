/* Failure reporting shared by the verbs. Errors are agreed over the ranks before they get here,
 * so rank 0 prints the one message. */
#include <stdio.h>

#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"

int mpq_cli_report(const char *verb, int rc)
{
    if (rc < 0 && mpq_log_rank() == 0) fprintf(stderr, "mpq %s: error: %s\n", verb, mpq_errmsg());
    return rc;
}

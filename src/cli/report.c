/* What the verbs share besides parsing: the lookup of a command by name, and failure reporting
 * (errors are agreed over the ranks before they get here, so rank 0 prints the one message). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"

int mpq_cli_report(const char *verb, int rc)
{
    if (rc < 0 && mpq_log_rank() == 0) fprintf(stderr, "mpq %s: error: %s\n", verb, mpq_errmsg());
    return rc;
}

const mpq_cli_cmd *mpq_cli_find(const mpq_cli_cmd *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(table[i].name, name)) return &table[i];
    return NULL;
}

/* `mpq export`: not implemented yet (see the open issues). */
#include "cli/cli.h"
#include "core/err.h"

int mpq_cli_export(mpq_comm *c, int argc, char **argv)
{
    return mpq_cli_report("export", MPQ_FAIL(MPQ_E_NOTYET, "'mpq export' is not implemented yet"));
}

/* `mpq inspect`: not implemented yet (see the open issues). */
#include "cli/cli.h"
#include "core/err.h"

int mpq_cli_inspect(mpq_comm *c, int argc, char **argv)
{
    return mpq_cli_report("inspect", MPQ_FAIL(MPQ_E_NOTYET, "'mpq inspect' is not implemented yet"));
}

/* `mpq prep`: not implemented yet (see the open issues). */
#include "cli/cli.h"
#include "core/err.h"

int mpq_cli_prep(mpq_comm *c, int argc, char **argv)
{
    return mpq_cli_report("prep", MPQ_FAIL(MPQ_E_NOTYET, "'mpq prep' is not implemented yet"));
}

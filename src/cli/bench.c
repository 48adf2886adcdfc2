/* `mpq bench`: not implemented yet (see the open issues). */
#include "cli/cli.h"
#include "core/err.h"

int mpq_cli_bench(mpq_comm *c, int argc, char **argv)
{
    return mpq_cli_report("bench", MPQ_FAIL(MPQ_E_NOTYET, "'mpq bench' is not implemented yet"));
}

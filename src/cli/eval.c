/* `mpq eval`: not implemented yet (see the open issues). */
#include "cli/cli.h"
#include "core/err.h"

int mpq_cli_eval(mpq_comm *c, int argc, char **argv)
{
    return mpq_cli_report("eval", MPQ_FAIL(MPQ_E_NOTYET, "'mpq eval' is not implemented yet"));
}

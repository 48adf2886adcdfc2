/* `mpq train`: not implemented yet (see the open issues). */
#include "cli/cli.h"
#include "core/err.h"

int mpq_cli_train(mpq_comm *c, int argc, char **argv)
{
    return mpq_cli_report("train", MPQ_FAIL(MPQ_E_NOTYET, "'mpq train' is not implemented yet"));
}

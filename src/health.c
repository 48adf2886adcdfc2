/* NaN/Inf detection over a model's flat buffers, naming the first bad tensor (see health.h). */
#include "health.h"

#include <stdio.h>

#include "core/err.h"

int mpq_health_check_step(mpq_comm *c, const mpq_cfg *cfg, const mpq_model *m, long steps_done,
                          int final)
{
    long every = cfg->check_finite_every_steps;
    char context[192];
    if (!final && (every <= 0 || steps_done % every)) return MPQ_OK;
    snprintf(context, sizeof context, "[%s] after step %ld", cfg->experiment, steps_done);
    return mpq_comm_agree(c, mpq_view_check_finite(&m->view, 0, context, MPQ_HEALTH_DIVERGED_HINT));
}

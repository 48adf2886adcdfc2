/* NaN/Inf detection over a model's flat buffers, naming the first bad tensor (see health.h). */
#include "health.h"

#include <math.h>
#include <stdio.h>

#include "core/err.h"

typedef struct finding {
    const mpq_param_info *t; /* the first tensor holding a non-finite value */
    size_t at;               /* its element */
    float v;
    size_t count; /* non-finite values in the whole buffer */
} finding;

/* Scans buffer buf laid out like registry r. */
static void scan(const mpq_params *r, const float *buf, finding *f)
{
    if (!buf) return;
    for (int i = 0; i < r->n_info; i++) {
        const mpq_param_info *t = &r->info[i];
        const float *x = mpq_cat(buf, t->s);
        for (size_t k = 0; k < t->s.n; k++) {
            if (isfinite(x[k])) continue;
            if (!f->t) {
                f->t = t;
                f->at = k;
                f->v = x[k];
            }
            f->count++;
        }
    }
}

int mpq_health_check(const mpq_model *m, int flags, const char *context, const char *hint)
{
    static const char *const what[] = {"parameter", "BN state", "optimizer state (m)",
                                       "optimizer state (v)"};
    const mpq_params *reg[] = {&m->params, &m->state, &m->params, &m->params};
    const float *buf[] = {m->params.val, m->state.val, m->params.opt[0], m->params.opt[1]};
    int n_buf = flags & MPQ_HEALTH_OPTIMIZER ? 4 : 2;
    for (int b = 0; b < n_buf; b++) {
        finding f = {0};
        scan(reg[b], buf[b], &f);
        if (!f.t) continue;
        return MPQ_FAIL(MPQ_E_NUMERIC,
                        "%s: %s tensor '%s' holds %g at element %zu of %zu (%zu non-finite "
                        "value(s) in all)%s%s",
                        context, what[b], f.t->name, (double)f.v, f.at, f.t->s.n, f.count,
                        hint ? " " : "", hint ? hint : "");
    }
    return MPQ_OK;
}

int mpq_health_check_step(mpq_comm *c, const mpq_cfg *cfg, const mpq_model *m, long steps_done,
                          int final)
{
    long every = cfg->check_finite_every_steps;
    char context[192];
    if (!final && (every <= 0 || steps_done % every)) return MPQ_OK;
    snprintf(context, sizeof context, "[%s] after step %ld", cfg->experiment, steps_done);
    return mpq_comm_agree(c, mpq_health_check(m, 0, context, MPQ_HEALTH_DIVERGED_HINT));
}

/* The view io/ reads (model_view.h): lookups and the BN folding over the tensor table. */
#include "model_view.h"

#include <math.h>
#include <stdio.h>

#include "core/err.h"

const mpq_tensor *mpq_view_tensor(const mpq_model_view *v, const mpq_param_info *info)
{
    for (int i = 0; i < v->n_tensors; i++)
        if (v->tensors[i].info == info) return &v->tensors[i];
    return NULL;
}

float *mpq_view_values(const mpq_model_view *v, const mpq_tensor *t)
{
    return mpq_at(t->in_state ? v->state->val : v->params->val, t->info->s);
}

void mpq_bn_fold(const mpq_model_view *v, int b, float *scale, float *bias)
{
    const mpq_bn_ref *r = &v->bns[b];
    const float *g = mpq_view_values(v, &v->tensors[r->gamma]);
    const float *beta = mpq_view_values(v, &v->tensors[r->beta]);
    const float *mean = mpq_view_values(v, &v->tensors[r->mean]);
    const float *var = mpq_view_values(v, &v->tensors[r->var]);
    for (int o = 0; o < r->c; o++) {
        scale[o] = g[o] / sqrtf(var[o] + r->eps);
        bias[o] = beta[o] - mean[o] * scale[o];
    }
}

void mpq_bn_set_identity(const mpq_model_view *v, int b, const float *bias)
{
    const mpq_bn_ref *r = &v->bns[b];
    float *g = mpq_view_values(v, &v->tensors[r->gamma]);
    float *beta = mpq_view_values(v, &v->tensors[r->beta]);
    float *mean = mpq_view_values(v, &v->tensors[r->mean]);
    float *var = mpq_view_values(v, &v->tensors[r->var]);
    for (int o = 0; o < r->c; o++) {
        var[o] = 1.0f;
        g[o] = sqrtf(var[o] + r->eps);
        mean[o] = 0.0f;
        beta[o] = bias[o];
    }
}

/* ---- NaN/Inf detection, naming the first bad tensor ---- */

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

int mpq_view_check_finite(const mpq_model_view *m, int flags, const char *context,
                          const char *hint)
{
    static const char *const what[] = {"parameter", "BN state", "optimizer state (m)",
                                       "optimizer state (v)"};
    const mpq_params *reg[] = {m->params, m->state, m->params, m->params};
    const float *buf[] = {m->params->val, m->state->val, m->params->opt[0], m->params->opt[1]};
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

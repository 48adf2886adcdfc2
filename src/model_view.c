/* The view io/ reads (model_view.h): lookups and the BN folding over the tensor table. */
#include "model_view.h"

#include <math.h>

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

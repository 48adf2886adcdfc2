/* Initial values of a model (graph.h): the flat buffers allocated, weights drawn from the
 * counter-based generator per tensor (the same values for any rank count or build), BN and scale
 * constants, and quantizer parameters initialised from the weights or from the settings. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "models/graph_impl.h"

int mpq_model_alloc(mpq_model *m)
{
    if (m->err) return m->err;
    MPQ_TRY(mpq_params_alloc(&m->params, 1));
    MPQ_TRY(mpq_params_alloc(&m->state, 0));
    for (int i = 0; i < m->n_quants; i++)
        if (!m->quants[i].is_act && m->quants[i].method != MPQ_QMETHOD_NONE && !m->wq) {
            m->wq = mpq_alloc_floats(m->params.n_floats);
            if (!m->wq) return MPQ_FAIL(MPQ_E_NOMEM, "cannot allocate quantized weights");
        }
    for (int i = 0; i < m->n_nodes; i++) /* the node array and the quantizers are final now */
        if (m->nodes[i].kind == MPQ_NODE_ACT && m->nodes[i].quant[0] >= 0)
            m->nodes[i].u.act.q = &m->quants[m->nodes[i].quant[0]];
    return mpq_model_tensors_build(m);
}

static void fill_uniform(float *x, size_t n, float lim, unsigned long seed, size_t tensor)
{
    mpq_rng r;
    mpq_rng_seed(&r, seed, MPQ_RNG_STREAM_INIT, tensor);
    for (size_t i = 0; i < n; i++)
        x[i] = lim * (2.0f * mpq_rng_uniform(&r) - 1.0f);
}

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

void mpq_model_init_values(mpq_model *m, unsigned long seed, int from_weights)
{
    float *v = m->params.val;
    for (int i = 0; i < m->n_nodes; i++) {
        mpq_node *n = &m->nodes[i];
        switch (n->kind) {
        case MPQ_NODE_CONV: {
            const mpq_conv *l = &n->u.conv;
            float fan = (float)l->kh * l->kw * (l->cin / l->groups + l->cout);
            fill_uniform(mpq_at(v, l->weight), l->weight.n, sqrtf(6.0f / fan), seed, l->weight.off);
            if (l->bias.n) fill_const(mpq_at(v, l->bias), l->bias.n, 0.0f);
            break;
        }
        case MPQ_NODE_DWCONV: {
            const mpq_dwconv *l = &n->u.dw;
            fill_uniform(mpq_at(v, l->weight), l->weight.n, sqrtf(6.0f / (2.0f * l->kh * l->kw)),
                         seed, l->weight.off);
            break;
        }
        case MPQ_NODE_FC: {
            const mpq_fc *l = &n->u.fc;
            float lim = 1.0f / sqrtf((float)l->cin);
            fill_uniform(mpq_at(v, l->weight), l->weight.n, lim, seed, l->weight.off);
            fill_uniform(mpq_at(v, l->bias), l->bias.n, lim, seed, l->bias.off);
            break;
        }
        case MPQ_NODE_BN:
            fill_const(mpq_at(v, n->u.bn.gamma), n->u.bn.gamma.n, 1.0f);
            fill_const(mpq_at(v, n->u.bn.beta), n->u.bn.beta.n, 0.0f);
            fill_const(mpq_at(m->state.val, n->u.bn.mean), n->u.bn.mean.n, 0.0f);
            fill_const(mpq_at(m->state.val, n->u.bn.var), n->u.bn.var.n, 1.0f);
            break;
        case MPQ_NODE_SCALE:
            v[n->u.scale.off] = 1.0f;
            break;
        case MPQ_NODE_INPUT:
        case MPQ_NODE_ACT:
        case MPQ_NODE_POOL:
        case MPQ_NODE_ADD:
        case MPQ_NODE_CHANPAD:
            break;
        }
    }
    mpq_model_init_quantizers(m, from_weights, NULL);
}

const mpq_slice *mpq_node_weights(const mpq_node *n, int which)
{
    switch (n->kind) {
    case MPQ_NODE_CONV:
        return which ? &n->u.conv.bias : &n->u.conv.weight;
    case MPQ_NODE_DWCONV:
        return which ? &n->u.dw.bias : &n->u.dw.weight;
    case MPQ_NODE_FC:
        return which ? &n->u.fc.bias : &n->u.fc.weight;
    case MPQ_NODE_INPUT:
    case MPQ_NODE_BN:
    case MPQ_NODE_ACT:
    case MPQ_NODE_POOL:
    case MPQ_NODE_ADD:
    case MPQ_NODE_CHANPAD:
    case MPQ_NODE_SCALE:
        break;
    }
    return NULL;
}

void mpq_model_init_quantizers(mpq_model *m, int from_weights, const unsigned char *keep)
{
    float *v = m->params.val;
    for (int i = 0; i < m->n_nodes; i++) {
        mpq_node *n = &m->nodes[i];
        if (n->kind == MPQ_NODE_ACT) {
            mpq_quant *q = &m->quants[n->quant[0]];
            if (!keep || !keep[n->quant[0]])
                mpq_quant_init_values(q, &m->aset, m->aset.stepsize, v);
            continue;
        }
        const mpq_slice *w = mpq_node_weights(n, 0);
        if (!w || n->quant[0] < 0) continue;
        /* The bias quantizer starts from the weight's delta (reference get_quantizers). */
        float delta = from_weights ? mpq_find_delta(mpq_cat(v, *w), w->n, m->wset.bitwidth)
                                   : m->wset.stepsize;
        for (int k = 0; k < 2; k++)
            if (n->quant[k] >= 0 && (!keep || !keep[n->quant[k]]))
                mpq_quant_init_values(&m->quants[n->quant[k]], &m->wset, delta, v);
    }
}

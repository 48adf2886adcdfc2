/* The graph driver's construction: a model's node list built layer by layer, each layer's
 * parameters registered under its name in the flat buffers, and its quantizers. Owns the node
 * and quantizer arrays, both registries, the quantized-weight buffer, the arena and the scratch;
 * mpq_model_free releases them. Initial values are in values.c, the arena plan in plan.c, the
 * passes in passes.c. Threads: layers parallelize inside; the driver itself is sequential. */
#include "models/graph.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/grow.h"

void mpq_model_init(mpq_model *m, int h, int w, int c, int num_classes, const mpq_qsettings *wset,
                    const mpq_qsettings *aset, float bn_momentum)
{
    memset(m, 0, sizeof *m);
    mpq_params_init(&m->params);
    mpq_params_init(&m->state);
    m->in_h = h;
    m->in_w = w;
    m->in_c = c;
    m->num_classes = num_classes;
    m->wset = *wset;
    m->aset = *aset;
    m->bn_momentum = bn_momentum;
    m->out = -1;
}

void mpq_model_free(mpq_model *m)
{
    if (!m) return;
    free(m->nodes);
    free(m->quants);
    free(m->qinfo);
    free(m->wq);
    free(m->arena);
    free(m->ws);
    free(m->written);
    free(m->tensors);
    free(m->bns);
    free(m->qnames);
    mpq_params_free(&m->params);
    mpq_params_free(&m->state);
    memset(m, 0, sizeof *m);
}

/* ---- building ------------------------------------------------------------------------------ */

static int fail(mpq_model *m, int rc)
{
    if (!m->err) m->err = rc;
    return -1;
}

static int node_add(mpq_model *m, mpq_node_kind kind, mpq_layer_class cls, const char *scope,
                    int in0, int in1, int h, int w, int c)
{
    if (m->err) return -1;
    if ((in0 >= m->n_nodes) || (in1 >= m->n_nodes) || (kind != MPQ_NODE_INPUT && in0 < 0))
        return fail(m, MPQ_FAIL(MPQ_E_ARG, "node '%s': bad input node", scope ? scope : ""));
    if (mpq_grow((void **)&m->nodes, &m->cap_nodes, (size_t)m->n_nodes + 1, sizeof *m->nodes) < 0)
        return fail(m, mpq_err_push(MPQ_E_NOMEM, "building the model"));
    mpq_node *n = &m->nodes[m->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->cls = cls;
    snprintf(n->name, sizeof n->name, "%s", scope ? scope : "");
    n->in[0] = in0;
    n->in[1] = in1;
    n->h = h;
    n->w = w;
    n->c = c;
    n->quant[0] = n->quant[1] = -1;
    n->param_lo = SIZE_MAX;
    if (in0 >= 0) m->nodes[in0].n_consumers++;
    if (in1 >= 0) m->nodes[in1].n_consumers++;
    m->out = m->n_nodes;
    return m->n_nodes++;
}

/* Registers "scope/suffix" in the trainable or state registry. */
static int reg(mpq_model *m, mpq_params *p, const char *scope, const char *suffix, mpq_pkind kind,
               int ndim, const int *shape, mpq_slice *out)
{
    char name[MPQ_NAME_MAX];
    int k = snprintf(name, sizeof name, "%s%s%s", scope, *scope ? "/" : "", suffix);
    if (k < 0 || (size_t)k >= sizeof name)
        return fail(m, MPQ_FAIL(MPQ_E_ARG, "tensor name too long: %s/%s", scope, suffix));
    int rc = mpq_params_add(p, name, kind, ndim, shape, out);
    return rc < 0 ? fail(m, rc) : 0;
}

/* Adds a quantizer for a tensor of `count` elements ("Wquant", "bquant" or "Aquant"), with its
 * learnable pair registered as scope/qname/<p0>, scope/qname/<p1>. Returns its id or -1. */
static int quant_add(mpq_model *m, const char *scope, const char *qname, int is_act, size_t count)
{
    mpq_quant q;
    int rc, one = 1;
    if (m->err) return -1;
    rc = mpq_quant_setup(&q, is_act ? &m->aset : &m->wset, is_act, count);
    if (rc < 0) return fail(m, rc);
    if (mpq_qmethod_n_params(q.method) == 2) {
        char sub[MPQ_NAME_MAX];
        mpq_slice s0, s1;
        snprintf(sub, sizeof sub, "%s/%s", qname, mpq_qmethod_param_name(q.method, 0));
        reg(m, &m->params, scope, sub, MPQ_PKIND_QUANT, 1, &one, &s0);
        snprintf(sub, sizeof sub, "%s/%s", qname, mpq_qmethod_param_name(q.method, 1));
        reg(m, &m->params, scope, sub, MPQ_PKIND_QUANT, 1, &one, &s1);
        if (m->err) return -1;
        q.p.off = s0.off;
        q.p.n = 2;
    }
    const size_t need = (size_t)m->n_quants + 1;
    if (mpq_grow((void **)&m->quants, &m->cap_quants, need, sizeof *m->quants) < 0 ||
        mpq_grow((void **)&m->qinfo, &m->cap_qinfo, need, sizeof *m->qinfo) < 0)
        return fail(m, mpq_err_push(MPQ_E_NOMEM, "building the model"));
    m->quants[m->n_quants] = q;
    snprintf(m->qinfo[m->n_quants].name, MPQ_NAME_MAX, "%s%s%s", scope, *scope ? "/" : "", qname);
    m->qinfo[m->n_quants].node = m->n_nodes - 1;
    return m->n_quants++;
}

int mpq_g_input(mpq_model *m)
{
    return node_add(m, MPQ_NODE_INPUT, MPQ_CLASS_OTHER, "input", -1, -1, m->in_h, m->in_w, m->in_c);
}

/* Registers W (and b) with their quantizers for a conv/dwconv/fc node. */
static void weights_add(mpq_model *m, mpq_node *n, const char *scope, const char *layer, int ndim,
                        const int *wshape, int nb, mpq_slice *w, mpq_slice *b)
{
    char sub[MPQ_NAME_MAX];
    size_t count = 1, lo = m->params.n_floats;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)wshape[i];
    snprintf(sub, sizeof sub, "%s/W", layer);
    reg(m, &m->params, scope, sub, MPQ_PKIND_WEIGHT, ndim, wshape, w);
    n->quant[0] = quant_add(m, scope, "Wquant", 0, count);
    b->n = 0;
    if (nb > 0) {
        snprintf(sub, sizeof sub, "%s/b", layer);
        reg(m, &m->params, scope, sub, MPQ_PKIND_BIAS, 1, &nb, b);
        n->quant[1] = quant_add(m, scope, "bquant", 0, (size_t)nb);
    }
    n->param_lo = lo;
}

int mpq_g_conv(mpq_model *m, const char *scope, int in, int cout, int k, int stride, int pad,
               int with_bias)
{
    if (m->err || in < 0 || in >= m->n_nodes) return in < 0 || m->err ? -1 : fail(m, MPQ_E_ARG);
    const mpq_node *x = &m->nodes[in];
    mpq_conv l;
    int rc = mpq_conv_init(&l, x->h, x->w, x->c, cout, k, k, stride, stride, pad, pad, 1);
    if (rc < 0) return fail(m, mpq_err_push(rc, "layer '%s'", scope));
    int id = node_add(m, MPQ_NODE_CONV, k == 1 ? MPQ_CLASS_POINTWISE : MPQ_CLASS_CONV, scope, in,
                      -1, l.ho, l.wo, cout);
    if (id < 0) return -1;
    mpq_node *n = &m->nodes[id];
    int shape[4] = {cout, k, k, l.cin}; /* x is stale: node_add may move the nodes */
    weights_add(m, n, scope, "quantized_conv", 4, shape, with_bias ? cout : 0, &l.weight, &l.bias);
    n->u.conv = l;
    n->macs = mpq_conv_macs(&l);
    return m->err ? -1 : id;
}

int mpq_g_dwconv(mpq_model *m, const char *scope, int in, int k, int stride, int pad)
{
    if (m->err || in < 0) return -1;
    const mpq_node *x = &m->nodes[in];
    mpq_dwconv l;
    int rc = mpq_dwconv_init(&l, x->h, x->w, x->c, k, k, stride, stride, pad, pad);
    if (rc < 0) return fail(m, mpq_err_push(rc, "layer '%s'", scope));
    int id = node_add(m, MPQ_NODE_DWCONV, MPQ_CLASS_DEPTHWISE, scope, in, -1, l.ho, l.wo, x->c);
    if (id < 0) return -1;
    mpq_node *n = &m->nodes[id];
    int shape[4] = {l.c, k, k, 1}; /* x is stale: node_add may move the nodes */
    weights_add(m, n, scope, "quantized_depthwise_conv", 4, shape, 0, &l.weight, &l.bias);
    n->u.dw = l;
    n->macs = mpq_dwconv_macs(&l);
    return m->err ? -1 : id;
}

int mpq_g_bn(mpq_model *m, const char *scope, int in)
{
    if (m->err || in < 0) return -1;
    const mpq_node *x = &m->nodes[in];
    int c = x->c, id = node_add(m, MPQ_NODE_BN, MPQ_CLASS_BN, scope, in, -1, x->h, x->w, x->c);
    if (id < 0) return -1;
    mpq_node *n = &m->nodes[id];
    mpq_bn l;
    mpq_bn_init(&l, n->h * n->w, c);
    l.momentum = m->bn_momentum;
    n->param_lo = m->params.n_floats;
    reg(m, &m->params, scope, "bn/gamma", MPQ_PKIND_BN, 1, &c, &l.gamma);
    reg(m, &m->params, scope, "bn/beta", MPQ_PKIND_BN, 1, &c, &l.beta);
    reg(m, &m->state, scope, "bn/mean", MPQ_PKIND_STATE, 1, &c, &l.mean);
    reg(m, &m->state, scope, "bn/var", MPQ_PKIND_STATE, 1, &c, &l.var);
    n->u.bn = l;
    return m->err ? -1 : id;
}

int mpq_g_act(mpq_model *m, const char *scope, int in, int relu6)
{
    if (m->err || in < 0) return -1;
    const mpq_node *x = &m->nodes[in];
    int id = node_add(m, MPQ_NODE_ACT, MPQ_CLASS_ACT, scope, in, -1, x->h, x->w, x->c);
    if (id < 0) return -1;
    mpq_node *n = &m->nodes[id];
    size_t len = (size_t)n->h * n->w * n->c, lo = m->params.n_floats;
    n->u.act.len = len;
    n->u.act.kind = relu6 ? MPQ_ACT_RELU6 : MPQ_ACT_RELU;
    /* Every nonlinearity gets a quantizer entry: float ones count 32 bits in the size model. */
    n->quant[0] = quant_add(m, scope, "Aquant", 1, len);
    if (m->err) return -1;
    if (m->quants[n->quant[0]].method != MPQ_QMETHOD_NONE) n->u.act.kind = MPQ_ACT_QUANT;
    if (m->params.n_floats > lo) n->param_lo = lo;
    return id;
}

static int pool_add(mpq_model *m, mpq_pool_kind kind, int in, int k, int stride, int pad,
                    int global)
{
    if (m->err || in < 0) return -1;
    const mpq_node *x = &m->nodes[in];
    mpq_pool l;
    int rc = global ? mpq_pool_init_global(&l, x->h, x->w, x->c)
                    : mpq_pool_init(&l, kind, x->h, x->w, x->c, k, k, stride, stride, pad, pad);
    if (rc < 0) return fail(m, rc);
    int id = node_add(m, MPQ_NODE_POOL, MPQ_CLASS_OTHER, global ? "gap" : "pool", in, -1, l.ho,
                      l.wo, x->c);
    if (id >= 0) m->nodes[id].u.pool = l;
    return id;
}

int mpq_g_maxpool(mpq_model *m, int in, int k, int stride, int pad)
{
    return pool_add(m, MPQ_POOL_MAX, in, k, stride, pad, 0);
}

int mpq_g_avgpool(mpq_model *m, int in, int k, int stride, int pad)
{
    return pool_add(m, MPQ_POOL_AVG, in, k, stride, pad, 0);
}

int mpq_g_gap(mpq_model *m, int in) { return pool_add(m, MPQ_POOL_AVG, in, 0, 0, 0, 1); }

int mpq_g_fc(mpq_model *m, const char *scope, int in, int cout)
{
    if (m->err || in < 0) return -1;
    const mpq_node *x = &m->nodes[in];
    int cin = x->h * x->w * x->c;
    int id = node_add(m, MPQ_NODE_FC, MPQ_CLASS_FC, scope, in, -1, 1, 1, cout);
    if (id < 0) return -1;
    mpq_node *n = &m->nodes[id];
    mpq_fc l;
    mpq_fc_init(&l, cin, cout);
    int shape[2] = {cout, cin};
    weights_add(m, n, scope, "quantized_affine", 2, shape, cout, &l.weight, &l.bias);
    n->u.fc = l;
    n->macs = (double)cin * cout;
    return m->err ? -1 : id;
}

int mpq_g_add(mpq_model *m, int a, int b)
{
    if (m->err || a < 0 || b < 0) return -1;
    const mpq_node *x = &m->nodes[a], *y = &m->nodes[b];
    if (x->h != y->h || x->w != y->w || x->c != y->c)
        return fail(m, MPQ_FAIL(MPQ_E_ARG, "add: shapes %dx%dx%d and %dx%dx%d differ", x->h, x->w,
                                x->c, y->h, y->w, y->c));
    return node_add(m, MPQ_NODE_ADD, MPQ_CLASS_OTHER, "add", a, b, x->h, x->w, x->c);
}

int mpq_g_chanpad(mpq_model *m, int in, int cout)
{
    if (m->err || in < 0) return -1;
    const mpq_node *x = &m->nodes[in];
    int cin = x->c;
    if (cout < cin) return fail(m, MPQ_FAIL(MPQ_E_ARG, "channel padding %d -> %d", cin, cout));
    int id = node_add(m, MPQ_NODE_CHANPAD, MPQ_CLASS_OTHER, "chanpad", in, -1, x->h, x->w, cout);
    if (id >= 0) m->nodes[id].u.cin = cin;
    return id;
}

int mpq_g_scale(mpq_model *m, const char *scope, int in)
{
    if (m->err || in < 0) return -1;
    const mpq_node *x = &m->nodes[in];
    int one = 1, id = node_add(m, MPQ_NODE_SCALE, MPQ_CLASS_OTHER, scope, in, -1, x->h, x->w, x->c);
    if (id < 0) return -1;
    m->nodes[id].param_lo = m->params.n_floats;
    reg(m, &m->params, scope, "scale_layer", MPQ_PKIND_SCALE, 1, &one, &m->nodes[id].u.scale);
    return m->err ? -1 : id;
}

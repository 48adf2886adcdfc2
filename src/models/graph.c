/* The graph driver: node list construction with named parameter registration, initial values,
 * the arena plan, and the forward/backward passes. Owns the node and quantizer arrays, both
 * registries, the quantized-weight buffer, the arena and the scratch; mpq_model_free releases
 * them. Threads: layers parallelize inside; the driver itself is sequential. */
#include "models/graph.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "layers/eltwise.h"

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
    if (m->n_nodes == m->cap_nodes) {
        int cap = m->cap_nodes ? 2 * m->cap_nodes : 64;
        mpq_node *nodes = realloc(m->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) return fail(m, MPQ_FAIL(MPQ_E_NOMEM, "out of memory building the model"));
        m->nodes = nodes;
        m->cap_nodes = cap;
    }
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
    if (m->n_quants == m->cap_quants) {
        int cap = m->cap_quants ? 2 * m->cap_quants : 64;
        mpq_quant *qs = realloc(m->quants, (size_t)cap * sizeof *qs);
        if (qs) m->quants = qs;
        mpq_qinfo *qi = realloc(m->qinfo, (size_t)cap * sizeof *qi);
        if (qi) m->qinfo = qi;
        if (!qs || !qi) return fail(m, MPQ_FAIL(MPQ_E_NOMEM, "out of memory building the model"));
        m->cap_quants = cap;
    }
    m->quants[m->n_quants] = q;
    snprintf(m->qinfo[m->n_quants].name, MPQ_NAME_MAX, "%s%s%s", scope, *scope ? "/" : "", qname);
    m->qinfo[m->n_quants].node = m->n_nodes - 1;
    return m->n_quants++;
}

int mpq_g_input(mpq_model *m)
{
    return node_add(m, MPQ_NODE_INPUT, MPQ_CLASS_OTHER, "input", -1, -1, m->in_h, m->in_w,
                    m->in_c);
}

/* Registers W (and b) with their quantizers for a conv/dwconv/fc node. */
static void weights_add(mpq_model *m, mpq_node *n, const char *scope, const char *layer,
                        int ndim, const int *wshape, int nb, mpq_slice *w, mpq_slice *b)
{
    char sub[MPQ_NAME_MAX];
    size_t count = 1, lo = m->params.n_floats;
    for (int i = 0; i < ndim; i++) count *= (size_t)wshape[i];
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

/* ---- values -------------------------------------------------------------------------------- */

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
    return MPQ_OK;
}

static void fill_uniform(float *x, size_t n, float lim, unsigned long seed, size_t tensor)
{
    mpq_rng r;
    mpq_rng_seed(&r, seed, MPQ_RNG_STREAM_INIT, tensor);
    for (size_t i = 0; i < n; i++) x[i] = lim * (2.0f * mpq_rng_uniform(&r) - 1.0f);
}

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) x[i] = v;
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
            fill_uniform(mpq_at(v, l->weight), l->weight.n, sqrtf(6.0f / (2.0f * l->kh * l->kw)), seed,
                         l->weight.off);
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
    mpq_model_init_quantizers(m, from_weights);
}

const mpq_slice *mpq_node_weights(const mpq_node *n, int which)
{
    switch (n->kind) {
    case MPQ_NODE_CONV: return which ? &n->u.conv.bias : &n->u.conv.weight;
    case MPQ_NODE_DWCONV: return which ? &n->u.dw.bias : &n->u.dw.weight;
    case MPQ_NODE_FC: return which ? &n->u.fc.bias : &n->u.fc.weight;
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

void mpq_model_init_quantizers(mpq_model *m, int from_weights)
{
    float *v = m->params.val;
    for (int i = 0; i < m->n_nodes; i++) {
        mpq_node *n = &m->nodes[i];
        if (n->kind == MPQ_NODE_ACT) {
            mpq_quant *q = &m->quants[n->quant[0]];
            mpq_quant_init_values(q, &m->aset, m->aset.stepsize, v);
            n->u.act.q = *q;
            continue;
        }
        const mpq_slice *w = mpq_node_weights(n, 0);
        if (!w || n->quant[0] < 0) continue;
        /* The bias quantizer starts from the weight's delta (reference get_quantizers). */
        float delta = from_weights ? mpq_find_delta(mpq_cat(v, *w), w->n, m->wset.bitwidth)
                                   : m->wset.stepsize;
        for (int k = 0; k < 2; k++)
            if (n->quant[k] >= 0) mpq_quant_init_values(&m->quants[n->quant[k]], &m->wset, delta, v);
    }
}

/* ---- plan and passes ----------------------------------------------------------------------- */

static size_t node_len(const mpq_node *n) { return (size_t)n->h * n->w * n->c; }

/* Whether a node's backward reads its (first) input's forward output. */
static int backward_reads_input(const mpq_node *n)
{
    switch (n->kind) {
    case MPQ_NODE_CONV:
    case MPQ_NODE_DWCONV:
    case MPQ_NODE_BN:
    case MPQ_NODE_ACT:
    case MPQ_NODE_FC:
    case MPQ_NODE_SCALE: return 1;
    case MPQ_NODE_POOL: return n->u.pool.kind == MPQ_POOL_MAX;
    case MPQ_NODE_INPUT:
    case MPQ_NODE_ADD:
    case MPQ_NODE_CHANPAD: return 0;
    }
    return 1;
}

/* BN -> activation pairs computed in one pass, at the activation's place: the BN's only consumer
 * is the activation, or an add whose only consumer is the activation (the add's other input
 * becomes the residual; the BN's input must have no other consumer, so its gradient never needs
 * the temporary). */
static void fuse_nodes(mpq_model *m)
{
    for (int i = 0; i < m->n_nodes; i++)
        m->nodes[i].fused = m->nodes[i].res = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        mpq_node *z = &m->nodes[i], *p = &m->nodes[z->in[0]];
        if (z->kind != MPQ_NODE_ACT) continue;
        if (p->kind == MPQ_NODE_BN && p->n_consumers == 1) {
            p->fused = i;
            z->fused = z->in[0];
            continue;
        }
        if (p->kind != MPQ_NODE_ADD || p->n_consumers != 1) continue;
        for (int k = 0; k < 2; k++) {
            const int q = p->in[k], r = p->in[1 - k];
            mpq_node *b = &m->nodes[q];
            if (b->kind != MPQ_NODE_BN || b->n_consumers != 1 || b->fused || r <= 0 || r == q ||
                m->nodes[b->in[0]].n_consumers != 1)
                continue;
            b->fused = p->fused = i;
            z->fused = q;
            z->res = r;
            break;
        }
    }
}

/* Nodes whose work runs inside a fused activation. */
static int skipped(const mpq_node *n)
{
    return n->fused && (n->kind == MPQ_NODE_BN || n->kind == MPQ_NODE_ADD);
}

/* What a node reads: its first input, and its second (or the residual of a fused activation;
 * a fused activation reads its BN's input first). -1: none. */
static int input_of(const mpq_model *m, const mpq_node *n, int k)
{
    if (n->kind == MPQ_NODE_ACT && n->fused)
        return k == 0 ? m->nodes[n->fused].in[0] : n->res ? n->res : -1;
    return n->in[k];
}

/* The step at which a node runs: forward i, backward 2 * n_nodes - i; the loss runs at n_nodes. */
static int fwd_t(int i) { return i; }
static int loss_t(const mpq_model *m) { return m->n_nodes; }
static int bwd_t(const mpq_model *m, int i) { return 2 * m->n_nodes - i; }
/* The node whose backward runs a node's work (a fused activation runs inside its BN). */
static int runner(const mpq_model *m, int i)
{
    const mpq_node *n = &m->nodes[i];
    return skipped(n) ? n->fused : i;
}

/* One arena block: its size, lifetime [t0, t1] in steps, and the slice it sets. */
typedef struct block {
    size_t len, off;
    int t0, t1;
    mpq_slice *dst;
} block;

static int block_by_size(const void *a, const void *b)
{
    const block *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->t0 - y->t0;
}

/* Greedy placement: largest blocks first, each at the lowest offset clear of every placed block
 * whose lifetime overlaps. Returns the arena size. */
static size_t place_blocks(block *bl, int nb)
{
    size_t top = 0;
    qsort(bl, (size_t)nb, sizeof *bl, block_by_size);
    for (int i = 0; i < nb; i++) {
        size_t off = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < i; j++) {
                const block *o = &bl[j];
                if (o->t1 < bl[i].t0 || bl[i].t1 < o->t0) continue;
                if (off + bl[i].len <= o->off || o->off + o->len <= off) continue;
                off = o->off + o->len;
                moved = 1;
            }
        }
        bl[i].off = off;
        if (off + bl[i].len > top) top = off + bl[i].len;
    }
    for (int i = 0; i < nb; i++)
        *bl[i].dst = (mpq_slice){bl[i].off, bl[i].dst->n};
    return top;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

int mpq_model_plan(mpq_model *m, int n)
{
    size_t ws = 0, tmp = 0;
    const int nn = m->n_nodes;
    if (m->err) return m->err;
    fuse_nodes(m);
    int *last_y = malloc((size_t)nn * sizeof *last_y), *first_d = malloc((size_t)nn * sizeof *first_d);
    int *alias = malloc((size_t)nn * sizeof *alias), *dend = malloc((size_t)nn * sizeof *dend);
    block *bl = malloc((size_t)(3 * nn + 1) * sizeof *bl);
    if (!last_y || !first_d || !alias || !dend || !bl) {
        free(last_y), free(first_d), free(alias), free(dend), free(bl);
        return MPQ_FAIL(MPQ_E_NOMEM, "cannot plan the model");
    }
    /* lifetimes: an output lives until its last reader (forward, or a backward that reads x);
     * a gradient from its first writer (the latest consumer's backward) to its owner's backward */
    for (int i = 0; i < nn; i++)
        last_y[i] = first_d[i] = -1;
    last_y[m->out] = 2 * nn; /* the loss reads the logits; the caller may too */
    first_d[m->out] = loss_t(m); /* the loss writes dlogits before backward */
    for (int c = 1; c < nn; c++) {
        const mpq_node *nc = &m->nodes[c];
        if (skipped(nc)) continue; /* its activation reads the inputs */
        const int fused = nc->kind == MPQ_NODE_ACT && nc->fused; /* BN: reads both in backward */
        for (int k = 0; k < 2; k++) {
            const int p = input_of(m, nc, k);
            if (p < 0) continue;
            const int reads = (k == 0 && backward_reads_input(nc)) || fused;
            const int t = reads ? bwd_t(m, c) : fwd_t(c);
            if (t > last_y[p]) last_y[p] = t;
            const int tw = bwd_t(m, c);
            if (first_d[p] < 0 || tw < first_d[p]) first_d[p] = tw;
        }
    }
    /* an add passes its gradient unchanged: an input with no other consumer reads the add's
     * gradient in place (alias: the node whose gradient buffer it shares; dend: when the shared
     * buffer is last read) */
    for (int i = 0; i < nn; i++) {
        alias[i] = -1;
        dend[i] = bwd_t(m, runner(m, i));
    }
    for (int a = nn - 1; a > 0; a--) {
        if (m->nodes[a].kind != MPQ_NODE_ADD || m->nodes[a].fused) continue;
        const int root = alias[a] >= 0 ? alias[a] : a;
        for (int k = 0; k < 2; k++) {
            const int p = m->nodes[a].in[k];
            const mpq_node *np = &m->nodes[p];
            if (p <= 0 || np->n_consumers != 1 || np->kind == MPQ_NODE_INPUT) continue;
            alias[p] = root;
            if (dend[p] > dend[root]) dend[root] = dend[p];
        }
    }
    int nb = 0;
    for (int i = 0; i < nn; i++) {
        mpq_node *nd = &m->nodes[i];
        const size_t len = (size_t)n * node_len(nd);
        const int skip = skipped(nd), t0 = fwd_t(i); /* fused BN, add: never materialized */
        nd->y = (mpq_slice){0, skip ? 0 : len};
        nd->dy = (mpq_slice){0, skip || nd->kind == MPQ_NODE_INPUT ? 0 : len};
        if (!skip) {
            const int t1 = last_y[i] >= t0 ? last_y[i] : t0;
            bl[nb++] = (block){round16(len), 0, t0, t1, &nd->y};
        }
        if (nd->dy.n && alias[i] < 0)
            bl[nb++] = (block){round16(len), 0, first_d[i] >= 0 ? first_d[i] : bwd_t(m, i),
                               dend[i], &nd->dy};
        if (nd->n_consumers > 1 && len > tmp) tmp = len;
        size_t need = 0;
        switch (nd->kind) {
        case MPQ_NODE_CONV: need = mpq_conv_ws_floats(&nd->u.conv, n); break;
        case MPQ_NODE_DWCONV: need = mpq_dwconv_ws_floats(&nd->u.dw, n); break;
        case MPQ_NODE_BN: {
            const size_t c = mpq_bn_cache_floats(&nd->u.bn, n, 1);
            const int at = runner(m, i);
            nd->u.bn.cache = (mpq_slice){0, c};
            bl[nb++] = (block){round16(c), 0, fwd_t(at), bwd_t(m, at), &nd->u.bn.cache};
            need = mpq_bn_ws_floats(&nd->u.bn, n, 1);
            break;
        }
        case MPQ_NODE_INPUT:
        case MPQ_NODE_ACT:
        case MPQ_NODE_POOL:
        case MPQ_NODE_FC:
        case MPQ_NODE_ADD:
        case MPQ_NODE_CHANPAD:
        case MPQ_NODE_SCALE:
            break;
        }
        if (need > ws) ws = need;
    }
    /* the temporary gradient of nodes with two consumers, live through backward */
    mpq_slice dtmp = {0, tmp};
    if (tmp) bl[nb++] = (block){round16(tmp), 0, loss_t(m), 2 * nn, &dtmp};
    m->arena_floats = place_blocks(bl, nb);
    m->dtmp_off = dtmp.off;
    for (int i = 0; i < nn; i++)
        if (alias[i] >= 0) m->nodes[i].dy.off = m->nodes[alias[i]].dy.off;
    free(last_y), free(first_d), free(alias), free(dend), free(bl);
    m->ws_floats = ws;
    free(m->arena);
    free(m->ws);
    m->arena = mpq_alloc_floats(m->arena_floats);
    m->ws = mpq_alloc_floats(ws);
    if (!m->arena || !m->ws)
        return MPQ_FAIL(MPQ_E_NOMEM, "cannot allocate the activation arena (%.1f MB for batch %d)",
                        m->arena_floats * 4.0 / 1e6, n);
    m->plan_n = n;
    return MPQ_OK;
}

mpq_step mpq_model_step(mpq_model *m, int n, int training)
{
    MPQ_ASSERT(n > 0 && n <= m->plan_n, "batch %d exceeds the planned %d", n, m->plan_n);
    mpq_step s = {
        .val = m->params.val,
        .wq = m->wq ? m->wq : m->params.val,
        .grad = m->params.grad,
        .state = m->state.val,
        .arena = m->arena,
        .ws = m->ws,
        .ws_floats = m->ws_floats,
        .n = n,
        .n_groups = 1,
        .training = training,
        .reduce = NULL,
    };
    return s;
}

float *mpq_model_input(mpq_model *m) { return mpq_at(m->arena, m->nodes[0].y); }
const float *mpq_model_logits(const mpq_model *m) { return mpq_cat(m->arena, m->nodes[m->out].y); }
float *mpq_model_dlogits(mpq_model *m) { return mpq_at(m->arena, m->nodes[m->out].dy); }

static void quantize_weights(mpq_model *m)
{
    if (!m->wq) return;
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < 2; k++) {
            const mpq_node *n = &m->nodes[i];
            const mpq_slice *w = mpq_node_weights(n, k);
            if (!w || !w->n || n->quant[k] < 0) continue;
            mpq_quant_forward(&m->quants[n->quant[k]], m->params.val, mpq_cat(m->params.val, *w),
                              mpq_at(m->wq, *w), w->n);
        }
}

void mpq_model_forward(mpq_model *m, const mpq_step *s)
{
    double t0 = omp_get_wtime();
    quantize_weights(m);
    m->t_fwd[MPQ_CLASS_WQUANT] += omp_get_wtime() - t0;
    for (int i = 1; i < m->n_nodes; i++) {
        mpq_node *n = &m->nodes[i];
        const float *x = mpq_cat(s->arena, m->nodes[n->in[0]].y);
        float *y = mpq_at(s->arena, n->y);
        size_t len = (size_t)s->n * node_len(n);
        t0 = omp_get_wtime();
        switch (n->kind) {
        case MPQ_NODE_CONV: mpq_conv_forward(&n->u.conv, s, x, y); break;
        case MPQ_NODE_DWCONV: mpq_dwconv_forward(&n->u.dw, s, x, y); break;
        case MPQ_NODE_BN:
            if (!n->fused) mpq_bn_forward(&n->u.bn, NULL, s, x, y);
            break;
        case MPQ_NODE_ACT:
            if (n->fused) { /* act(BN(x) (+ res)) */
                const mpq_node *b = &m->nodes[n->fused];
                const float *res = n->res ? mpq_cat(s->arena, m->nodes[n->res].y) : NULL;
                mpq_bn_forward_res(&b->u.bn, &n->u.act, s, mpq_cat(s->arena, m->nodes[b->in[0]].y),
                                   res, y);
            } else {
                mpq_act_forward(&n->u.act, s, x, y);
            }
            break;
        case MPQ_NODE_POOL: mpq_pool_forward(&n->u.pool, s, x, y); break;
        case MPQ_NODE_FC: mpq_fc_forward(&n->u.fc, s, x, y); break;
        case MPQ_NODE_ADD:
            if (!n->fused) mpq_add_forward(len, x, mpq_cat(s->arena, m->nodes[n->in[1]].y), y);
            break;
        case MPQ_NODE_CHANPAD:
            mpq_chanpad_forward(s->n, n->h * n->w, n->u.cin, n->c, x, y);
            break;
        case MPQ_NODE_SCALE: mpq_scale_forward(n->u.scale, s, len, x, y); break;
        case MPQ_NODE_INPUT: break;
        }
        m->t_fwd[n->fused ? MPQ_CLASS_BN : n->cls] += omp_get_wtime() - t0;
    }
}

/* Where a node's backward writes the gradient of its input p: straight into p's dy the first
 * time (in backward order), else into the temporary block, added to p's dy afterwards. */
static float *grad_target(const mpq_model *m, const mpq_step *s, int p, unsigned char *written)
{
    if (p < 0 || m->nodes[p].kind == MPQ_NODE_INPUT) return NULL;
    if (!written[p]) {
        written[p] = 1;
        return mpq_at(s->arena, m->nodes[p].dy);
    }
    return s->arena + m->dtmp_off;
}

static void copy_par(float *d, const float *x, size_t len)
{
#pragma omp parallel for simd schedule(static) if (len > 65536)
    for (size_t i = 0; i < len; i++)
        d[i] = x[i];
}

static void grad_settle(const mpq_model *m, const mpq_step *s, int p, const float *dx)
{
    if (!dx || dx != s->arena + m->dtmp_off) return;
    float *dy = mpq_at(s->arena, m->nodes[p].dy);
    size_t len = (size_t)s->n * node_len(&m->nodes[p]);
#pragma omp parallel for schedule(static) if (len > 65536)
    for (size_t i = 0; i < len; i++) dy[i] += dx[i];
}

/* The straight-through backward of a node's weight quantizers, in place on grad[W], grad[b]. */
static void weights_backward(mpq_model *m, const mpq_node *n, const mpq_step *s)
{
    if (!m->wq) return;
    for (int k = 0; k < 2; k++) {
        const mpq_slice *w = mpq_node_weights(n, k);
        if (!w || !w->n || n->quant[k] < 0) continue;
        float *g = mpq_at(s->grad, *w);
        mpq_quant_backward(&m->quants[n->quant[k]], s->val, s->grad, mpq_cat(s->val, *w), g, g,
                           w->n);
    }
}

void mpq_model_backward(mpq_model *m, const mpq_step *s, mpq_ready_fn ready, void *ctx)
{
    unsigned char written[m->n_nodes];
    size_t lo = SIZE_MAX;
    memset(written, 0, sizeof written);
    written[m->out] = 1;
    for (int i = m->n_nodes - 1; i > 0; i--) {
        mpq_node *n = &m->nodes[i];
        if (skipped(n)) continue; /* runs inside its activation */
        MPQ_ASSERT(written[i], "node %d (%s) has no gradient", i, n->name);
        /* a fused activation runs its BN: x is the BN's input, the parameters its and the BN's */
        const mpq_node *b = n->kind == MPQ_NODE_ACT && n->fused ? &m->nodes[n->fused] : n;
        const float *x = mpq_cat(s->arena, m->nodes[b->in[0]].y);
        const float *dy = mpq_cat(s->arena, n->dy);
        size_t len = (size_t)s->n * node_len(n);
        double t0 = omp_get_wtime();
        const int p = b->in[0];
        /* a conv adds into an input gradient that is already written (no temporary) */
        const int add = n->kind == MPQ_NODE_CONV && written[p] && m->nodes[p].kind != MPQ_NODE_INPUT;
        float *dx = add ? mpq_at(s->arena, m->nodes[p].dy) : grad_target(m, s, p, written);
        switch (n->kind) {
        case MPQ_NODE_CONV:
            if (add)
                mpq_conv_backward_add(&n->u.conv, s, x, dy, dx);
            else
                mpq_conv_backward(&n->u.conv, s, x, dy, dx);
            break;
        case MPQ_NODE_DWCONV: mpq_dwconv_backward(&n->u.dw, s, x, dy, dx); break;
        case MPQ_NODE_BN: mpq_bn_backward(&n->u.bn, NULL, s, x, dy, dx); break;
        case MPQ_NODE_ACT:
            if (n->res) {
                float *dres = grad_target(m, s, n->res, written);
                mpq_bn_backward_res(&b->u.bn, &n->u.act, s, x,
                                    mpq_cat(s->arena, m->nodes[n->res].y), dy, dx, dres);
                grad_settle(m, s, n->res, dres);
            } else if (n->fused) {
                mpq_bn_backward(&b->u.bn, &n->u.act, s, x, dy, dx);
            } else {
                mpq_act_backward(&n->u.act, s, x, dy, dx);
            }
            break;
        case MPQ_NODE_POOL: mpq_pool_backward(&n->u.pool, s, x, dy, dx); break;
        case MPQ_NODE_FC: mpq_fc_backward(&n->u.fc, s, x, dy, dx); break;
        case MPQ_NODE_ADD: /* inputs with no other consumer share dy (see the plan) */
            if (dx && dx != dy) copy_par(dx, dy, len);
            grad_settle(m, s, n->in[0], dx);
            dx = grad_target(m, s, n->in[1], written);
            if (dx && dx != dy) copy_par(dx, dy, len);
            grad_settle(m, s, n->in[1], dx);
            dx = NULL;
            break;
        case MPQ_NODE_CHANPAD:
            if (dx) mpq_chanpad_backward(s->n, n->h * n->w, n->u.cin, n->c, dy, dx);
            break;
        case MPQ_NODE_SCALE: mpq_scale_backward(n->u.scale, s, len, x, dy, dx); break;
        case MPQ_NODE_INPUT: break;
        }
        if (n->kind != MPQ_NODE_ADD) grad_settle(m, s, b->in[0], dx);
        m->t_bwd[n->fused ? MPQ_CLASS_BN : n->cls] += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        weights_backward(m, n, s);
        m->t_bwd[MPQ_CLASS_WQUANT] += omp_get_wtime() - t0;
        const size_t plo = b->param_lo < n->param_lo ? b->param_lo : n->param_lo;
        if (plo < lo) {
            lo = plo;
            if (ready) ready(ctx, lo);
        }
    }
}

void mpq_model_class_times(const mpq_model *m, double fwd[MPQ_CLASSES], double bwd[MPQ_CLASSES])
{
    memcpy(fwd, m->t_fwd, sizeof m->t_fwd);
    memcpy(bwd, m->t_bwd, sizeof m->t_bwd);
}

void mpq_model_reset_times(mpq_model *m)
{
    memset(m->t_fwd, 0, sizeof m->t_fwd);
    memset(m->t_bwd, 0, sizeof m->t_bwd);
}

const char *mpq_layer_class_name(mpq_layer_class c)
{
    switch (c) {
    case MPQ_CLASS_CONV: return "conv";
    case MPQ_CLASS_DEPTHWISE: return "depthwise";
    case MPQ_CLASS_POINTWISE: return "pointwise";
    case MPQ_CLASS_FC: return "fc";
    case MPQ_CLASS_BN: return "bn";
    case MPQ_CLASS_ACT: return "act/aquant";
    case MPQ_CLASS_WQUANT: return "wquant";
    case MPQ_CLASS_OTHER: return "other";
    }
    return "?";
}

double mpq_model_macs(const mpq_model *m)
{
    double f = 0.0;
    for (int i = 0; i < m->n_nodes; i++) f += m->nodes[i].macs;
    return f;
}

void mpq_model_size(const mpq_model *m, const mpq_budget *b, float *grad, mpq_size_terms *t)
{
    mpq_size_eval(m->quants, m->n_quants, m->params.val, b, grad, t);
}

void mpq_model_clip_quant_grads(mpq_model *m)
{
    for (int i = 0; i < m->n_quants; i++)
        mpq_quant_clip_grads(&m->quants[i], m->params.val, m->params.grad);
}

void mpq_model_project(mpq_model *m)
{
    for (int i = 0; i < m->n_quants; i++) mpq_quant_project(&m->quants[i], m->params.val);
}

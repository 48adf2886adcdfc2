/* The tensor-role table of a model (model_view.h), built from the node graph once the buffers
 * are allocated. Every registered tensor gets exactly one role; a tensor that no node or
 * quantizer claims is a builder bug and fails the build. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "models/graph_impl.h"

/* The table entry of the registered tensor at slice s (of params, or of state), or -1. */
static int entry_at(const mpq_model *m, int in_state, mpq_slice s)
{
    if (!s.n) return -1;
    for (int i = 0; i < m->n_tensors; i++) {
        const mpq_tensor *t = &m->tensors[i];
        if (t->in_state == in_state && t->info->s.off == s.off && t->info->s.n == s.n) return i;
    }
    return -1;
}

static void claim(mpq_model *m, int in_state, mpq_slice s, mpq_trole role, int quant)
{
    int i = entry_at(m, in_state, s);
    if (i < 0) return;
    m->tensors[i].role = role;
    m->tensors[i].quant = quant;
}

/* The BN node that is the only consumer of convolution node i, or -1. */
static int bn_after(const mpq_model *m, int i)
{
    const mpq_node *n = &m->nodes[i];
    if ((n->kind != MPQ_NODE_CONV && n->kind != MPQ_NODE_DWCONV) || n->n_consumers != 1) return -1;
    for (int j = i + 1; j < m->n_nodes; j++)
        if (m->nodes[j].in[0] == i || m->nodes[j].in[1] == i)
            return m->nodes[j].kind == MPQ_NODE_BN && m->nodes[j].in[0] == i ? j : -1;
    return -1;
}

static int quant_of(const mpq_model *m, const mpq_node *n, int k)
{
    return n->quant[k] >= 0 && m->quants[n->quant[k]].method != MPQ_QMETHOD_NONE ? n->quant[k] : -1;
}

/* Roles of a layer's weight and bias; BN entries; the scale. bn_of_node maps BN nodes to their
 * index in the BN table (filled for BN nodes as they are met). */
static void claim_node(mpq_model *m, int i, const int *bn_of_node)
{
    const mpq_node *n = &m->nodes[i];
    if (n->kind == MPQ_NODE_BN) {
        const mpq_bn *l = &n->u.bn;
        mpq_bn_ref *r = &m->bns[bn_of_node[i]];
        claim(m, 0, l->gamma, MPQ_ROLE_BN_GAMMA, -1);
        claim(m, 0, l->beta, MPQ_ROLE_BN_BETA, -1);
        claim(m, 1, l->mean, MPQ_ROLE_BN_MEAN, -1);
        claim(m, 1, l->var, MPQ_ROLE_BN_VAR, -1);
        *r = (mpq_bn_ref){n->name,
                          entry_at(m, 0, l->gamma),
                          entry_at(m, 0, l->beta),
                          entry_at(m, 1, l->mean),
                          entry_at(m, 1, l->var),
                          l->c,
                          l->eps};
        return;
    }
    if (n->kind == MPQ_NODE_SCALE) {
        claim(m, 0, n->u.scale, MPQ_ROLE_SCALE, -1);
        return;
    }
    const mpq_slice *w = mpq_node_weights(n, 0), *b = mpq_node_weights(n, 1);
    if (!w) return;
    mpq_trole role = n->kind == MPQ_NODE_FC       ? MPQ_ROLE_FC_W
                     : n->kind == MPQ_NODE_DWCONV ? MPQ_ROLE_DWCONV_W
                                                  : MPQ_ROLE_CONV_W;
    int wi = entry_at(m, 0, *w), bn = bn_after(m, i);
    claim(m, 0, *w, role, quant_of(m, n, 0));
    if (wi >= 0) {
        m->tensors[wi].bn = bn >= 0 ? bn_of_node[bn] : -1;
        m->tensors[wi].input_hw = m->nodes[n->in[0]].h * m->nodes[n->in[0]].w;
    }
    if (b) claim(m, 0, *b, MPQ_ROLE_BIAS, quant_of(m, n, 1));
}

static void fill_view(mpq_model *m)
{
    m->view = (mpq_model_view){&m->params, &m->state,    m->quants, m->qnames, m->n_quants,
                               m->tensors, m->n_tensors, m->bns,    m->n_bns};
}

int mpq_model_tensors_build(mpq_model *m)
{
    int n = m->params.n_info + m->state.n_info, n_bn = 0;
    int *bn_of_node = calloc((size_t)m->n_nodes + 1, sizeof *bn_of_node);
    m->tensors = calloc((size_t)n + 1, sizeof *m->tensors);
    m->qnames = calloc((size_t)m->n_quants + 1, sizeof *m->qnames);
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].kind == MPQ_NODE_BN) bn_of_node[i] = n_bn++;
    m->bns = calloc((size_t)n_bn + 1, sizeof *m->bns);
    if (!bn_of_node || !m->tensors || !m->qnames || !m->bns) {
        free(bn_of_node);
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory for the tensor table");
    }
    m->n_tensors = n;
    m->n_bns = n_bn;
    for (int i = 0; i < n; i++) {
        int st = i >= m->params.n_info;
        m->tensors[i] = (mpq_tensor){st ? &m->state.info[i - m->params.n_info] : &m->params.info[i],
                                     st,
                                     (mpq_trole)-1,
                                     -1,
                                     -1,
                                     1};
    }
    for (int q = 0; q < m->n_quants; q++) {
        m->qnames[q] = m->qinfo[q].name;
        const mpq_slice p = m->quants[q].p;
        for (size_t k = 0; k < p.n; k++)
            claim(m, 0, (mpq_slice){p.off + k, 1}, MPQ_ROLE_QUANT, q);
    }
    for (int i = 0; i < m->n_nodes; i++)
        claim_node(m, i, bn_of_node);
    free(bn_of_node);
    fill_view(m);
    for (int i = 0; i < n; i++)
        if ((int)m->tensors[i].role < 0)
            return MPQ_FAIL(MPQ_E_FORMAT, "tensor '%s' has no role in the model",
                            m->tensors[i].info->name);
    return MPQ_OK;
}

/* The passes of a model (graph.h): weights quantized once per step, forward in node order with
 * fused groups run at their activation's place, backward in reverse order with each input
 * gradient written in place the first time and through the temporary block after (or, for a
 * fused BN over a 1x1 or depthwise convolution, inside the convolution's backward band by band:
 * dy_bn), the weight quantizers' straight-through backward, and the ready callback as a
 * parameter range becomes final (for the overlapped allreduce). Also per-layer-kind times (the
 * BN's input gradient computed inside a convolution counts as the convolution's), multiply-adds,
 * the size model, clipping and projections over every quantizer. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "layers/eltwise.h"
#include "models/graph_impl.h"

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

/* The per-sample statistics sums of a BN that its convolution writes (training), or NULL. */
static double *bn_sums(const mpq_step *s, const mpq_bn *bn)
{
    return bn->sums.n && s->training ? (double *)(void *)mpq_at(s->arena, bn->sums) : NULL;
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
        size_t len = (size_t)s->n * mpq_node_len(n);
        /* a convolution summing its BN's statistics: the BN's shift and sums */
        const mpq_bn *sbn = n->sums_bn ? &m->nodes[n->sums_bn].u.bn : NULL;
        double *sums = sbn ? bn_sums(s, sbn) : NULL;
        const float *shift = sbn ? mpq_cat(s->state, sbn->mean) : NULL;
        t0 = omp_get_wtime();
        switch (n->kind) {
        case MPQ_NODE_CONV:
            if (sums)
                mpq_conv_forward_sums(&n->u.conv, s, x, y, shift, sums);
            else
                mpq_conv_forward(&n->u.conv, s, x, y);
            break;
        case MPQ_NODE_DWCONV:
            if (sums)
                mpq_dwconv_forward_sums(&n->u.dw, s, x, y, shift, sums);
            else
                mpq_dwconv_forward(&n->u.dw, s, x, y);
            break;
        case MPQ_NODE_BN:
            if (!n->fused) mpq_bn_forward_sums(&n->u.bn, NULL, s, x, NULL, y, bn_sums(s, &n->u.bn));
            break;
        case MPQ_NODE_ACT:
            if (n->fused) { /* act(BN(x) (+ res)) */
                const mpq_node *b = &m->nodes[n->fused];
                const float *res = n->res ? mpq_cat(s->arena, m->nodes[n->res].y) : NULL;
                mpq_bn_forward_sums(&b->u.bn, &n->u.act, s, mpq_cat(s->arena, m->nodes[b->in[0]].y),
                                    res, y, bn_sums(s, &b->u.bn));
            } else {
                mpq_act_forward(&n->u.act, s, x, y);
            }
            break;
        case MPQ_NODE_POOL:
            mpq_pool_forward(&n->u.pool, s, x, y);
            break;
        case MPQ_NODE_FC:
            mpq_fc_forward(&n->u.fc, s, x, y);
            break;
        case MPQ_NODE_ADD:
            if (!n->fused) mpq_add_forward(len, x, mpq_cat(s->arena, m->nodes[n->in[1]].y), y);
            break;
        case MPQ_NODE_CHANPAD:
            mpq_chanpad_forward(s->n, n->h * n->w, n->u.cin, n->c, x, y);
            break;
        case MPQ_NODE_SCALE:
            mpq_scale_forward(n->u.scale, s, len, x, y);
            break;
        case MPQ_NODE_INPUT:
            break;
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
    size_t len = (size_t)s->n * mpq_node_len(&m->nodes[p]);
#pragma omp parallel for schedule(static) if (len > 65536)
    for (size_t i = 0; i < len; i++)
        dy[i] += dx[i];
}

/* The input gradient of a fused BN as a convolution's row source (mpq_node.dy_bn). */
typedef struct bn_rows_ctx {
    const mpq_bn *bn;
    const mpq_act *act;
    const mpq_step *s;
    const float *x, *dy;
} bn_rows_ctx;

static void bn_rows(const void *ctx, size_t p0, size_t p1, float *out)
{
    const bn_rows_ctx *c = ctx;
    mpq_bn_dx_rows(c->bn, c->act, c->s, c->x, c->dy, p0, p1, out);
}

/* The row source of node n's output gradient: the BN fused with activation a, which left it. */
static bn_rows_ctx deferred_bn(const mpq_model *m, const mpq_step *s, const mpq_node *n, int a)
{
    const mpq_node *act = &m->nodes[a];
    return (bn_rows_ctx){&m->nodes[act->fused].u.bn, &act->u.act, s, mpq_cat(s->arena, n->y),
                         mpq_cat(s->arena, act->dy)};
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
    unsigned char *written = m->written;
    size_t lo = SIZE_MAX;
    int deferred = 0; /* the activation whose BN left dx to its convolution (dy_bn) */
    memset(written, 0, (size_t)m->n_nodes);
    written[m->out] = 1;
    for (int i = m->n_nodes - 1; i > 0; i--) {
        mpq_node *n = &m->nodes[i];
        if (mpq_node_skipped(n)) continue; /* runs inside its activation */
        MPQ_ASSERT(written[i], "node %d (%s) has no gradient", i, n->name);
        /* a fused activation runs its BN: x is the BN's input, the parameters its and the BN's */
        const mpq_node *b = n->kind == MPQ_NODE_ACT && n->fused ? &m->nodes[n->fused] : n;
        const float *x = mpq_cat(s->arena, m->nodes[b->in[0]].y);
        const float *dy = mpq_cat(s->arena, n->dy);
        size_t len = (size_t)s->n * mpq_node_len(n);
        double t0 = omp_get_wtime();
        const int p = b->in[0];
        /* a conv adds into an input gradient that is already written (no temporary) */
        const int add =
            n->kind == MPQ_NODE_CONV && written[p] && m->nodes[p].kind != MPQ_NODE_INPUT;
        float *dx = add ? mpq_at(s->arena, m->nodes[p].dy) : grad_target(m, s, p, written);
        switch (n->kind) {
        case MPQ_NODE_CONV:
            if (deferred && n->dy_bn == deferred) { /* dy from the BN, band by band */
                const bn_rows_ctx c = deferred_bn(m, s, n, deferred);
                const mpq_dy_src src = {bn_rows, &c};
                mpq_conv_backward_rows(&n->u.conv, s, x, &src, dx, add);
                deferred = 0;
            } else if (add) {
                mpq_conv_backward_add(&n->u.conv, s, x, dy, dx);
            } else {
                mpq_conv_backward(&n->u.conv, s, x, dy, dx);
            }
            break;
        case MPQ_NODE_DWCONV:
            if (deferred && n->dy_bn == deferred) {
                const bn_rows_ctx c = deferred_bn(m, s, n, deferred);
                const mpq_dy_src src = {bn_rows, &c};
                mpq_dwconv_backward_rows(&n->u.dw, s, x, &src, dx);
                deferred = 0;
            } else {
                mpq_dwconv_backward(&n->u.dw, s, x, dy, dx);
            }
            break;
        case MPQ_NODE_BN:
            mpq_bn_backward(&n->u.bn, NULL, s, x, dy, dx);
            break;
        case MPQ_NODE_ACT:
            if (n->res) {
                float *dres = grad_target(m, s, n->res, written);
                mpq_bn_backward_res(&b->u.bn, &n->u.act, s, x,
                                    mpq_cat(s->arena, m->nodes[n->res].y), dy, dx, dres);
                grad_settle(m, s, n->res, dres);
            } else if (n->fused && m->nodes[p].dy_bn == i && dx &&
                       mpq_bn_dx_rows_ok(&n->u.act, s)) {
                mpq_bn_backward_sums(&b->u.bn, &n->u.act, s, x, dy); /* dx: the conv's */
                deferred = i;
                dx = NULL;
            } else if (n->fused) {
                mpq_bn_backward(&b->u.bn, &n->u.act, s, x, dy, dx);
            } else {
                mpq_act_backward(&n->u.act, s, x, dy, dx);
            }
            break;
        case MPQ_NODE_POOL:
            mpq_pool_backward(&n->u.pool, s, x, dy, dx);
            break;
        case MPQ_NODE_FC:
            mpq_fc_backward(&n->u.fc, s, x, dy, dx);
            break;
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
        case MPQ_NODE_SCALE:
            mpq_scale_backward(n->u.scale, s, len, x, dy, dx);
            break;
        case MPQ_NODE_INPUT:
            break;
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
    case MPQ_CLASS_CONV:
        return "conv";
    case MPQ_CLASS_DEPTHWISE:
        return "depthwise";
    case MPQ_CLASS_POINTWISE:
        return "pointwise";
    case MPQ_CLASS_FC:
        return "fc";
    case MPQ_CLASS_BN:
        return "bn";
    case MPQ_CLASS_ACT:
        return "act/aquant";
    case MPQ_CLASS_WQUANT:
        return "wquant";
    case MPQ_CLASS_OTHER:
        return "other";
    }
    return "?";
}

double mpq_model_macs(const mpq_model *m)
{
    double f = 0.0;
    for (int i = 0; i < m->n_nodes; i++)
        f += m->nodes[i].macs;
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
    for (int i = 0; i < m->n_quants; i++)
        mpq_quant_project(&m->quants[i], m->params.val);
}

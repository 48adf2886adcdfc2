/* The plan of a model for a batch size (graph.h): BN -> (add ->) activation groups fused into
 * one pass, BN statistics summed by the (direct or depthwise) convolution that feeds the BN, the
 * BN's input gradient computed inside the backward of the 1x1 convolution that feeds it, the
 * lifetime of every output, gradient, BN cache and statistics block in steps (forward i, backward
 * 2 * n_nodes - i), gradients of an add's sole-consumer inputs aliased onto the add's, and every
 * block placed greedily in one arena (largest first, at the lowest offset clear of the blocks
 * whose lifetimes overlap). Also the step descriptor and the arena's input and logits. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "models/graph_impl.h"

/* Whether a node's backward reads its (first) input's forward output. */
static int backward_reads_input(const mpq_node *n)
{
    switch (n->kind) {
    case MPQ_NODE_CONV:
    case MPQ_NODE_DWCONV:
    case MPQ_NODE_BN:
    case MPQ_NODE_ACT:
    case MPQ_NODE_FC:
    case MPQ_NODE_SCALE:
        return 1;
    case MPQ_NODE_POOL:
        return n->u.pool.kind == MPQ_POOL_MAX;
    case MPQ_NODE_INPUT:
    case MPQ_NODE_ADD:
    case MPQ_NODE_CHANPAD:
        return 0;
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

/* The convolutions whose output gradient their BN computes band by band inside their backward:
 * a 1x1 stride-1 direct convolution (mpq_conv_dy_rows_ok) or a depthwise one whose only consumer
 * is a BN fused with its activation (no residual). Its output, the activation's gradient and the
 * BN's cache then live until the convolution's backward. */
static void mark_dy_rows(mpq_model *m)
{
    for (int i = 0; i < m->n_nodes; i++)
        m->nodes[i].dy_bn = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        const mpq_node *a = &m->nodes[i];
        if (a->kind != MPQ_NODE_ACT || !a->fused || a->res) continue;
        mpq_node *p = &m->nodes[m->nodes[a->fused].in[0]];
        if (p->n_consumers == 1 && (p->kind == MPQ_NODE_DWCONV ||
                                    (p->kind == MPQ_NODE_CONV && mpq_conv_dy_rows_ok(&p->u.conv))))
            p->dy_bn = i;
    }
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
    return mpq_node_skipped(n) ? n->fused : i;
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

/* The arena blocks of BN node i (its cache, and the statistics its convolution, full or
 * depthwise, sums when it can and has no other consumer) appended to bl; returns its scratch
 * floats. */
static size_t bn_blocks(mpq_model *m, int i, int n, block *bl, int *nb)
{
    mpq_node *nd = &m->nodes[i], *src = &m->nodes[nd->in[0]];
    const size_t c = mpq_bn_cache_floats(&nd->u.bn, n, 1);
    const int at = runner(m, i);
    nd->u.bn.cache = (mpq_slice){0, c};
    const int until = src->dy_bn ? bwd_t(m, nd->in[0]) : bwd_t(m, at); /* mark_dy_rows */
    bl[(*nb)++] = (block){round16(c), 0, fwd_t(at), until, &nd->u.bn.cache};
    nd->u.bn.sums = (mpq_slice){0, 0};
    if (src->n_consumers == 1 && ((src->kind == MPQ_NODE_CONV && mpq_conv_sums_ok(&src->u.conv)) ||
                                  src->kind == MPQ_NODE_DWCONV)) {
        src->sums_bn = i; /* from the convolution's forward to the BN's */
        nd->u.bn.sums.n = mpq_bn_sums_floats(&nd->u.bn, n);
        bl[(*nb)++] =
            (block){round16(nd->u.bn.sums.n), 0, fwd_t(nd->in[0]), fwd_t(at), &nd->u.bn.sums};
    }
    return mpq_bn_ws_floats(&nd->u.bn, n, 1);
}

int mpq_model_plan(mpq_model *m, int n)
{
    size_t ws = 0, tmp = 0;
    const int nn = m->n_nodes;
    if (m->err) return m->err;
    fuse_nodes(m);
    mark_dy_rows(m);
    int *last_y = malloc((size_t)nn * sizeof *last_y),
        *first_d = malloc((size_t)nn * sizeof *first_d);
    int *alias = malloc((size_t)nn * sizeof *alias), *dend = malloc((size_t)nn * sizeof *dend);
    block *bl = malloc((size_t)(4 * nn + 1) * sizeof *bl);
    if (!last_y || !first_d || !alias || !dend || !bl) {
        free(last_y), free(first_d), free(alias), free(dend), free(bl);
        return MPQ_FAIL(MPQ_E_NOMEM, "cannot plan the model");
    }
    /* lifetimes: an output lives until its last reader (forward, or a backward that reads x);
     * a gradient from its first writer (the latest consumer's backward) to its owner's backward */
    for (int i = 0; i < nn; i++)
        last_y[i] = first_d[i] = -1;
    last_y[m->out] = 2 * nn;     /* the loss reads the logits; the caller may too */
    first_d[m->out] = loss_t(m); /* the loss writes dlogits before backward */
    for (int c = 1; c < nn; c++) {
        const mpq_node *nc = &m->nodes[c];
        if (mpq_node_skipped(nc)) continue; /* its activation reads the inputs */
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
    for (int p = 1; p < nn; p++) { /* read again by the convolution's backward */
        const int a = m->nodes[p].dy_bn, root = a && alias[a] >= 0 ? alias[a] : a;
        if (!a) continue;
        if (bwd_t(m, p) > last_y[p]) last_y[p] = bwd_t(m, p);
        if (bwd_t(m, p) > dend[root]) dend[root] = bwd_t(m, p);
    }
    int nb = 0;
    for (int i = 0; i < nn; i++)
        m->nodes[i].sums_bn = 0;
    for (int i = 0; i < nn; i++) {
        mpq_node *nd = &m->nodes[i];
        const size_t len = (size_t)n * mpq_node_len(nd);
        const int skip = mpq_node_skipped(nd),
                  t0 = fwd_t(i); /* fused BN, add: never materialized */
        nd->y = (mpq_slice){0, skip ? 0 : len};
        nd->dy = (mpq_slice){0, skip || nd->kind == MPQ_NODE_INPUT ? 0 : len};
        if (!skip) {
            const int t1 = last_y[i] >= t0 ? last_y[i] : t0;
            bl[nb++] = (block){round16(len), 0, t0, t1, &nd->y};
        }
        if (nd->dy.n && alias[i] < 0)
            bl[nb++] = (block){round16(len), 0, first_d[i] >= 0 ? first_d[i] : bwd_t(m, i), dend[i],
                               &nd->dy};
        if (nd->n_consumers > 1 && len > tmp) tmp = len;
        size_t need = 0;
        switch (nd->kind) {
        case MPQ_NODE_CONV:
            need = mpq_conv_ws_floats(&nd->u.conv, n);
            break;
        case MPQ_NODE_DWCONV:
            need = mpq_dwconv_ws_floats(&nd->u.dw, n);
            break;
        case MPQ_NODE_BN:
            need = bn_blocks(m, i, n, bl, &nb);
            break;
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
    free(m->written);
    m->arena = mpq_alloc_floats(m->arena_floats);
    m->ws = mpq_alloc_floats(ws);
    m->written = malloc((size_t)nn);
    if (!m->arena || !m->ws || !m->written)
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

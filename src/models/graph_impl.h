/* What the graph driver's files share (private to src/models/): graph.c builds the node list,
 * values.c sets initial values, plan.c fuses nodes and plans the activation arena, passes.c runs
 * forward and backward. */
#ifndef MPQ_MODELS_GRAPH_IMPL_H
#define MPQ_MODELS_GRAPH_IMPL_H

#include "models/graph.h"

/* Elements of a node's output per sample. */
static inline size_t mpq_node_len(const mpq_node *n) { return (size_t)n->h * n->w * n->c; }

/* Nodes whose work runs inside a fused activation (plan.c decides the fusion). */
static inline int mpq_node_skipped(const mpq_node *n)
{
    return n->fused && (n->kind == MPQ_NODE_BN || n->kind == MPQ_NODE_ADD);
}

/* Builds m's tensor-role table and view (tensors.c). Returns 0 or MPQ_E_*. */
int mpq_model_tensors_build(mpq_model *m);

#endif

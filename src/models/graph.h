/* A model is a list of nodes in topological order (a tagged union over the closed set of layer
 * kinds), the two parameter registries (trainable values, non-trainable state), and every
 * quantizer in creation order. Builders append nodes and register their tensors under stable,
 * hierarchical names (the reference's: "res1/layer1/basicblock1/quantized_conv/W",
 * ".../Wquant/d", ".../bn/gamma", ".../Aquant/xmax"), so checkpoints, reports and quantizer
 * parameters are keyed by them. The plan sizes one activation arena for a maximum local batch;
 * forward and backward never allocate. Backward runs the node list in reverse and reports the
 * lowest parameter offset whose gradient is final after each node (for overlapped allreduce). */
#ifndef MPQ_MODELS_GRAPH_H
#define MPQ_MODELS_GRAPH_H

#include <stddef.h>

#include "core/params.h"
#include "core/step.h"
#include "layers/act.h"
#include "layers/bn.h"
#include "layers/conv.h"
#include "layers/dwconv.h"
#include "layers/fc.h"
#include "layers/pool.h"
#include "model_view.h"
#include "quant/quant.h"
#include "quant/size.h"

typedef enum mpq_node_kind {
    MPQ_NODE_INPUT,
    MPQ_NODE_CONV,
    MPQ_NODE_DWCONV,
    MPQ_NODE_BN,
    MPQ_NODE_ACT,
    MPQ_NODE_POOL,
    MPQ_NODE_FC,
    MPQ_NODE_ADD,
    MPQ_NODE_CHANPAD,
    MPQ_NODE_SCALE,
} mpq_node_kind;
#define MPQ_NODE_KINDS 10

/* What a node counts as in reports and timing tables (the paper's figure colours layers so). */
typedef enum mpq_layer_class {
    MPQ_CLASS_CONV,      /* full convolution */
    MPQ_CLASS_DEPTHWISE, /* depthwise convolution */
    MPQ_CLASS_POINTWISE, /* 1x1 convolution */
    MPQ_CLASS_FC,        /* fully connected */
    MPQ_CLASS_BN,
    MPQ_CLASS_ACT,       /* nonlinearity / activation quantizer */
    MPQ_CLASS_WQUANT,    /* weight quantizers (timing only) */
    MPQ_CLASS_OTHER,     /* pooling, add, padding, scale, input */
} mpq_layer_class;
#define MPQ_CLASSES 8

typedef struct mpq_node {
    mpq_node_kind kind;
    mpq_layer_class cls;
    char name[MPQ_NAME_MAX]; /* scope of the node, e.g. "res1/layer1/basicblock1" */
    int in[2];               /* producer node ids; -1: none */
    int h, w, c;             /* output shape per sample */
    union {
        mpq_conv conv;
        mpq_dwconv dw;
        mpq_bn bn;
        mpq_act act;
        mpq_pool pool;
        mpq_fc fc;
        int cin;             /* CHANPAD: input channels */
        mpq_slice scale;     /* SCALE: the scalar */
    } u;
    int quant[2];            /* CONV/DWCONV/FC: quantizer ids of W and b (-1: none);
                                ACT: quant[0] is the activation quantizer id (-1: plain) */
    mpq_slice y, dy;         /* arena: output and its gradient, for the planned batch (n == 0:
                                never materialized); slices of different nodes share memory
                                when their lifetimes do not overlap (see mpq_model_plan) */
    int fused;               /* ACT: the BN it runs with in one pass, at the ACT's place in
                                both directions; BN and ADD (when the BN feeds an add that feeds
                                the ACT): that ACT (the node is then skipped); 0: not fused */
    int res;                 /* ACT fused through an add: the add's other input; 0: none */
    int sums_bn;             /* CONV, DWCONV: the BN (its only consumer) whose training
                                statistics the convolution sums as it writes its output; 0: none
                                (the plan) */
    int dy_bn;               /* CONV, DWCONV: the activation fused with the BN that is its only
                                consumer, when that BN may compute the convolution's output
                                gradient band by band inside its backward (mpq_bn_dx_rows into
                                mpq_conv_backward_rows or mpq_dwconv_backward_rows: the activation
                                allows it at that step); 0: none (the plan) */
    int n_consumers;
    size_t param_lo;         /* lowest trainable offset registered by this node (or SIZE_MAX) */
    double macs;             /* multiply-adds per sample, forward */
} mpq_node;

/* Where a quantizer sits: "res1/layer1/basicblock1/Wquant" and its node. */
typedef struct mpq_qinfo {
    char name[MPQ_NAME_MAX];
    int node;
} mpq_qinfo;

typedef struct mpq_model {
    mpq_node *nodes;
    int n_nodes;
    size_t cap_nodes;
    mpq_params params; /* trainable */
    mpq_params state;  /* BN running statistics */
    mpq_quant *quants; /* every weight, bias and activation quantizer, creation order */
    mpq_qinfo *qinfo;  /* parallel to quants */
    int n_quants;
    size_t cap_quants, cap_qinfo;
    mpq_qsettings wset, aset;
    float bn_momentum;
    int in_h, in_w, in_c, num_classes;
    int out;           /* node id of the logits */
    int err;           /* first builder failure (sticky), 0 if none */

    /* after mpq_model_plan */
    float *wq;         /* quantized weights (layout of params.val), or NULL if none quantized */
    float *arena;
    size_t arena_floats;
    size_t dtmp_off;   /* arena offset of the temporary gradient block */
    float *ws;
    size_t ws_floats;
    int plan_n;        /* largest local batch the arena holds */
    unsigned char *written; /* mpq_model_backward's scratch: which input gradients hold a value */
    /* after mpq_model_alloc: the tensor-role table and the view io/ reads (model_view.h) */
    mpq_tensor *tensors;
    int n_tensors;
    mpq_bn_ref *bns;
    int n_bns;
    const char **qnames; /* parallel to quants: qinfo[i].name */
    mpq_model_view view;
    double t_fwd[MPQ_CLASSES], t_bwd[MPQ_CLASSES]; /* seconds, accumulated */
} mpq_model;

/* Input (h, w, c), classes; weight/activation quantizer settings (method "" = float). */
void mpq_model_init(mpq_model *m, int h, int w, int c, int num_classes, const mpq_qsettings *wset,
                    const mpq_qsettings *aset, float bn_momentum);
void mpq_model_free(mpq_model *m);

/* Builders: return the new node id, or -1 after recording the first failure in m->err (later
 * calls are no-ops, so a builder checks m->err once at the end). `scope` names the node. */
int mpq_g_input(mpq_model *m);
int mpq_g_conv(mpq_model *m, const char *scope, int in, int cout, int k, int stride, int pad,
               int with_bias);
int mpq_g_dwconv(mpq_model *m, const char *scope, int in, int k, int stride, int pad);
int mpq_g_bn(mpq_model *m, const char *scope, int in);
/* ReLU (relu6 = 0) or ReLU6, replaced by the activation quantizer when aset.method is set. */
int mpq_g_act(mpq_model *m, const char *scope, int in, int relu6);
int mpq_g_maxpool(mpq_model *m, int in, int k, int stride, int pad);
int mpq_g_avgpool(mpq_model *m, int in, int k, int stride, int pad);
int mpq_g_gap(mpq_model *m, int in);
int mpq_g_fc(mpq_model *m, const char *scope, int in, int cout);
int mpq_g_add(mpq_model *m, int a, int b);
int mpq_g_chanpad(mpq_model *m, int in, int cout);
int mpq_g_scale(mpq_model *m, const char *scope, int in);

/* The weight (which = 0) or bias (1) slice of a conv, depthwise or fc node; NULL for other
 * kinds (a bias slice may be empty: n == 0). */
const mpq_slice *mpq_node_weights(const mpq_node *n, int which);

/* Allocates the parameter buffers (after building), builds the tensor-role table (m->view) and
 * points every activation node at its quantizer. Returns 0 or MPQ_E_*. */
int mpq_model_alloc(mpq_model *m);
/* Initial values: conv weights Glorot-uniform, fc W and b uniform +-1/sqrt(fan_in), BN gamma 1,
 * beta 0, running var 1, quantizers from their settings (delta = find_delta of the current
 * weights when from_weights, else the cfg stepsize). Randomness keyed by (seed, tensor index). */
void mpq_model_init_values(mpq_model *m, unsigned long seed, int from_weights);
/* Re-initialises only the quantizer values (after weights were loaded from a weightfile), except
 * quantizer i where keep && keep[i] (values loaded from that file). */
void mpq_model_init_quantizers(mpq_model *m, int from_weights, const unsigned char *keep);
/* Sizes the arena and scratch for local batches up to n (one BN group). Fuses each BN whose only
 * consumer is an activation (or an add whose only consumer is an activation: act(BN(x) + res))
 * into one node pass, marks the 1x1 convolutions whose output gradient such a BN computes
 * inside their backward (mpq_node.dy_bn), then places every materialized output, gradient
 * and BN cache in the arena by lifetime (forward step of the producer to the last forward or
 * backward step that reads it; gradients from the first consumer's backward to the owner's), so
 * buffers with disjoint lifetimes share memory: after forward only the input, the logits and the
 * outputs backward needs are intact. Returns 0 or MPQ_E_*. */
int mpq_model_plan(mpq_model *m, int n);

/* A step context over the model's buffers for a local batch of n (<= plan_n). */
mpq_step mpq_model_step(mpq_model *m, int n, int training);
/* Where the caller writes the input batch (n, H, W, C). */
float *mpq_model_input(mpq_model *m);
/* The logits (n, classes) after forward, and where the caller writes dL/dlogits. */
const float *mpq_model_logits(const mpq_model *m);
float *mpq_model_dlogits(mpq_model *m);

/* Quantizes the weights (W -> Wq) once, then runs every node. */
void mpq_model_forward(mpq_model *m, const mpq_step *s);
/* Zeroes nothing: the caller zeroes s->grad once per step. Runs the nodes in reverse, applying
 * each weight quantizer's straight-through backward right after its layer; after each node that
 * owns parameters calls ready(ctx, off) with the lowest offset whose gradient is now final. */
typedef void (*mpq_ready_fn)(void *ctx, size_t off);
void mpq_model_backward(mpq_model *m, const mpq_step *s, mpq_ready_fn ready, void *ctx);
/* Per-class forward/backward seconds of the last calls (timing table of `mpq bench`), and the
 * reset of those counters. */
void mpq_model_class_times(const mpq_model *m, double fwd[MPQ_CLASSES], double bwd[MPQ_CLASSES]);
void mpq_model_reset_times(mpq_model *m);
const char *mpq_layer_class_name(mpq_layer_class c);

/* Multiply-adds per sample of one forward pass. */
double mpq_model_macs(const mpq_model *m);
/* The size model over the model's quantizers. */
void mpq_model_size(const mpq_model *m, const mpq_budget *b, float *grad, mpq_size_terms *t);
/* Applies the reference's post-backward quantizer plumbing: clip_quant_grads (when clip) and,
 * after the update, clip_quant_vals (mpq_model_project). */
void mpq_model_clip_quant_grads(mpq_model *m);
void mpq_model_project(mpq_model *m);

#endif

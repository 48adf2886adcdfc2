/* The tensor-role table: the narrow view of a model that io/ (checkpoints, weight files, exports)
 * reads instead of the node graph. src/models/tensors.c builds it when the model's buffers are
 * allocated (after building):
 * for every registered tensor (trainable or BN statistic) its role, its registry entry (name,
 * shape, stored layout, slice), the quantizer applied to it and, for a convolution weight, the BN
 * that folds into it. Also the BN folding itself (testable without HDF5). Stored layouts (NHWC
 * compute): convolution (Cout, KH, KW, Cin), depthwise (C, KH, KW, 1), fully connected
 * (Cout, Cin) over NHWC-flattened inputs, everything else 1-D. */
#ifndef MPQ_MODEL_VIEW_H
#define MPQ_MODEL_VIEW_H

#include "core/params.h"
#include "quant/quant.h"

typedef enum mpq_trole {
    MPQ_ROLE_CONV_W,   /* convolution weight (1x1 included) */
    MPQ_ROLE_DWCONV_W, /* depthwise convolution weight */
    MPQ_ROLE_FC_W,     /* fully connected weight */
    MPQ_ROLE_BIAS,     /* bias of a convolution, depthwise or fully connected layer */
    MPQ_ROLE_BN_GAMMA,
    MPQ_ROLE_BN_BETA,
    MPQ_ROLE_BN_MEAN, /* running statistics (state registry) */
    MPQ_ROLE_BN_VAR,
    MPQ_ROLE_QUANT, /* a quantizer's learnable parameter (d, xmax, n, ...) */
    MPQ_ROLE_SCALE, /* the scale layer's scalar */
} mpq_trole;

typedef struct mpq_tensor {
    const mpq_param_info *info; /* name, shape and slice in its registry */
    int in_state;               /* 1: a BN statistic (state registry), 0: trainable */
    mpq_trole role;
    int quant;    /* weights, biases: the quantizer applied (-1: float); MPQ_ROLE_QUANT: its own */
    int bn;       /* convolution weights: the BN (index in the model's BN table) that is the
                     layer's only consumer and folds into it; -1: none */
    int input_hw; /* fully connected weights: spatial elements of the layer's input (1: NCHW
                     and NHWC flattenings agree) */
} mpq_tensor;

/* A BN layer: its name (the node's scope), its four tensors (indices in the tensor table), its
 * channel count and epsilon. */
typedef struct mpq_bn_ref {
    const char *name;
    int gamma, beta, mean, var;
    int c;
    float eps;
} mpq_bn_ref;

/* What io/ sees of a model: the registries and their buffers, the quantizers with their names,
 * the tensor table and the BN table. Pointers into the model (valid while it lives). */
typedef struct mpq_model_view {
    mpq_params *params, *state;
    mpq_quant *quants;
    const char *const *qnames;
    int n_quants;
    const mpq_tensor *tensors;
    int n_tensors;
    const mpq_bn_ref *bns;
    int n_bns;
} mpq_model_view;

/* The tensor of the view whose registry entry is info, or NULL. */
const mpq_tensor *mpq_view_tensor(const mpq_model_view *v, const mpq_param_info *info);
/* Values of tensor t (in params or state). */
float *mpq_view_values(const mpq_model_view *v, const mpq_tensor *t);
/* The per-channel scale gamma / sqrt(var + eps) and bias beta - mean * scale of BN b. */
void mpq_bn_fold(const mpq_model_view *v, int b, float *scale, float *bias);
/* Makes BN b the map y = x + bias (after its scale was folded into the preceding weights):
 * var = 1, gamma = sqrt(1 + eps) (so gamma / sqrt(var + eps) is exactly 1), mean = 0. */
void mpq_bn_set_identity(const mpq_model_view *v, int b, const float *bias);

#endif

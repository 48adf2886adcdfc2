/* Batch normalization over the channel axis of NHWC tensors (x viewed as (N, HW, C)), optionally
 * fused with the nonlinearity that consumes its output (ReLU, ReLU6 or the activation quantizer of
 * layers/act.h), so the normalized tensor never goes to memory.
 * Training: statistics of each group of n / n_groups consecutive samples (or, with s->reduce,
 * of the whole global batch across ranks), running statistics updated as
 * running = momentum * running + (1 - momentum) * batch (momentum 0.9, like nnabla; the running
 * variance takes the unbiased batch variance). Eval: running statistics.
 * gamma, beta in s->val/s->grad; running mean/var in s->state; the per-group mean and inverse
 * std are cached in the arena slice `cache` (and backward's coefficients, for a deferred pass 2);
 * backward recomputes the normalized input from x. */
#ifndef MPQ_LAYERS_BN_H
#define MPQ_LAYERS_BN_H

#include "core/params.h"
#include "core/step.h"
#include "layers/act.h"

typedef struct mpq_bn {
    int hw, c;
    float eps, momentum;
    mpq_slice gamma, beta; /* (C) trainable */
    mpq_slice mean, var;   /* (C) running statistics, in the state buffer */
    mpq_slice cache;       /* arena, mpq_bn_cache_floats(l, n, groups) floats; set by the plan */
    mpq_slice sums;        /* arena, mpq_bn_sums_floats(l, n) floats, or empty: per-sample
                              statistics sums written by the producing convolution (see
                              mpq_bn_forward_sums); set by the plan */
    size_t stream_bytes;   /* y and dx of wide rows written past the caches from this many bytes
                              per step (MPQ_STREAM_BYTES, core/step.h) */
} mpq_bn;

/* Sets the geometry, eps = 1e-5 and momentum = 0.9; the slices are set by the model builder. */
void mpq_bn_init(mpq_bn *l, int hw, int c);
size_t mpq_bn_cache_floats(const mpq_bn *l, int n, int n_groups);
size_t mpq_bn_ws_floats(const mpq_bn *l, int n, int n_groups);
/* Floats of the per-sample sums of n samples: n x 2C doubles. */
size_t mpq_bn_sums_floats(const mpq_bn *l, int n);

/* Writes y = act(BN(x)) (act NULL: y = BN(x)); y must not alias x. Training also updates the
 * running statistics in s->state. With act, act->len must equal hw * c. */
void mpq_bn_forward(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                    float *y);
/* From dy = dL/dy of the forward above: writes dx (NULL: not needed; may alias dy); adds
 * dL/dgamma, dL/dbeta (this rank's share) and the quantizer's parameter gradients into s->grad.
 * Reads x (the forward's input) and the cache. With s->reduce the two per-channel sums of the
 * input gradient are reduced across ranks too (sync-BN; with n_groups > 1, group g of every rank
 * forms one statistics group). Sums run over fixed row chunks added in chunk order: results do
 * not depend on the thread count. */
void mpq_bn_backward(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                     const float *dy, float *dx);

/* The same with a residual input added before the activation (a BN -> add -> activation chain):
 * y = act(BN(x) + res), res (N, HW, C); backward writes dres = dL/dres (never NULL here; it may
 * not alias dx or dy) besides dx. */
void mpq_bn_forward_res(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                        const float *res, float *y);
/* mpq_bn_forward_res with the training statistics taken from sums instead of a pass over x:
 * sums[i * 2C + j] and sums[i * 2C + C + j] are, for sample i, the sums over its HW pixels of
 * d = x - running mean[j] (the subtraction in float) and of d * d, as the producing layer
 * computed them while writing x (layers/conv.h, mpq_conv_forward_sums: in double;
 * layers/dwconv.h, mpq_dwconv_forward_sums: a few pixels in float, then in double). sums NULL,
 * or eval: mpq_bn_forward_res. Samples are added in order: results do not depend on the thread
 * count. */
void mpq_bn_forward_sums(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                         const float *res, float *y, const double *sums);
void mpq_bn_backward_res(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                         const float *res, const float *dy, float *dx, float *dres);

/* Backward in two halves, so that the layer that produced x can take dx a band of rows at a
 * time while the band is in its caches (layers/conv.h, mpq_conv_backward_rows) and dx never goes
 * to memory: mpq_bn_backward_sums does all of mpq_bn_backward but writing dx (the parameter
 * gradients, the cross-rank reduction) and keeps dx's coefficients in the cache; then
 * mpq_bn_dx_rows writes rows [r0, r1) of dx (rows: pixels, r = i * hw + p) into out, the bits
 * mpq_bn_backward writes there, from any thread, until the cache is reused. Training only, with
 * no quantizer applied apart from the BN's passes (mpq_bn_dx_rows_ok: for the activation
 * quantizer that depends on its current step, a power of two or not). */
int mpq_bn_dx_rows_ok(const mpq_act *act, const mpq_step *s);
void mpq_bn_backward_sums(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                          const float *dy);
void mpq_bn_dx_rows(const mpq_bn *l, const mpq_act *act, const mpq_step *s, const float *x,
                    const float *dy, size_t r0, size_t r1, float *out);

#endif

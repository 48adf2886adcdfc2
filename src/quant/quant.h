/* Quantizers as the layers and the trainer use them: one mpq_quant per quantized tensor, with its
 * two learnable values in the flat parameter buffer (slice p), so they are allreduced, optimized
 * and checkpointed like weights. The math is src/quant/ per method, following
 * shared/spec/quantizers.md (Uhlich et al. 2020, eqs. for U1-U3, P1-P3) bit for bit. */
#ifndef MPQ_QUANT_QUANT_H
#define MPQ_QUANT_QUANT_H

#include <stddef.h>

#include "core/params.h"
#include "mpq.h"

typedef enum mpq_qmethod {
    MPQ_QMETHOD_NONE,           /* float: no quantizer (32 bits in the size model) */
    MPQ_QMETHOD_FP,             /* F.fixed_point_quantize, fixed (n, delta) */
    MPQ_QMETHOD_POW2,           /* F.pow2_quantize, fixed (n, m) */
    MPQ_QMETHOD_FP_D_B,         /* U1 (n, d) */
    MPQ_QMETHOD_FP_B_XMAX,      /* U2 (n, xmax) */
    MPQ_QMETHOD_FP_D_XMAX,      /* U3 (d, xmax) */
    MPQ_QMETHOD_POW2_B_XMAX,    /* P1 (n, xmax) */
    MPQ_QMETHOD_POW2_B_XMIN,    /* P2 (n, xmin) */
    MPQ_QMETHOD_POW2_XMIN_XMAX, /* P3 (xmin, xmax) */
} mpq_qmethod;

/* The cfg keys of one side: w_* for weights/biases, a_* for activations. */
typedef struct mpq_qsettings {
    char method[48]; /* cfg value of w_quantize / a_quantize; "" = none */
    float stepsize, stepsize_min, stepsize_max;
    float xmin_min, xmin_max, xmax_min, xmax_max;
    int bitwidth, bitwidth_min, bitwidth_max;
} mpq_qsettings;

typedef struct mpq_quant {
    mpq_qmethod method;
    mpq_qspec spec;   /* sign, with_zero, bounds; spec.p holds fixed methods' (n, delta|m) */
    mpq_slice p;      /* the two learnable values (parametric methods), n == 0 otherwise */
    size_t count;     /* elements (weights) or elements per sample (activations) */
    int is_act;
    int n_min, n_max; /* bitwidth bounds of the size model (w_/a_bitwidth_min/max) */
    float xmin_max_cfg; /* the cfg's w_/a_xmin_max: the size model and the projection clip xmin
                           there, while activation quantizers clip it at a_xmax_max (spec.xmin_max),
                           as the reference does */
} mpq_quant;

/* Method from a cfg name ("parametric_fp_d_xmax", "..._relu", "fp_relu", "" / "none" -> NONE).
 * Returns 0 or MPQ_E_CONFIG naming the value. */
int mpq_qmethod_parse(const char *name, mpq_qmethod *out);
const char *mpq_qmethod_name(mpq_qmethod m);
/* Number of learnable values (2 for parametric methods, else 0). */
int mpq_qmethod_n_params(mpq_qmethod m);
/* Names of the learnable values in checkpoints ("d", "xmax", "n", "xmin"). */
const char *mpq_qmethod_param_name(mpq_qmethod m, int i);

/* Sets up a quantizer of the given side from cfg settings: method, sign (weights 1,
 * activations 0), with_zero (activations with pow2: 1), bounds. q->p is left empty: the caller
 * registers mpq_qmethod_n_params(q->method) floats (named by mpq_qmethod_param_name) and stores
 * the slice in q->p. Returns 0 or MPQ_E_CONFIG naming the setting. */
int mpq_quant_setup(mpq_quant *q, const mpq_qsettings *st, int is_act, size_t count);
/* The reference's find_delta(w, bw) (spec section 8). */
float mpq_find_delta(const float *w, size_t n, int bw);
/* Initial values of a quantizer (spec section 8) given the initial step `delta` (weights:
 * find_delta of loaded weights, or w_stepsize; activations: a_stepsize): writes the parametric
 * pair to val[q->p] or the fixed (n, delta|m) into q->spec.p. */
void mpq_quant_init_values(mpq_quant *q, const mpq_qsettings *st, float delta, float *val);

/* y = Q(x) over len floats with the parameters read from val (NONE: copy). */
void mpq_quant_forward(const mpq_quant *q, const float *val, const float *x, float *y, size_t len);
/* dx = STE(dy) (dx may alias dy); adds the parameter gradients into grad[q->p]. */
void mpq_quant_backward(const mpq_quant *q, const float *val, float *grad, const float *x,
                        const float *dy, float *dx, size_t len);
/* The bitwidth the size model infers now (32 for NONE). */
float mpq_quant_bitwidth(const mpq_quant *q, const float *val);
/* The step size of a uniform quantizer (fp: delta; U1-U3: the d of the core q = d * round(x / d)
 * after clipping and Q2), read from val; 0 for power-of-two methods and NONE. Exporters write
 * integer codes c with Q(x) = c * step. */
float mpq_quant_step(const mpq_quant *q, const float *val);
/* Current spec with p read from val (for reports and external use). */
mpq_qspec mpq_quant_spec(const mpq_quant *q, const float *val);

/* clip_quant_grads of the reference (d_xmax and xmin_xmax only; spec section 7): both gradients
 * clipped to +-(raw d, resp. xmin). The reference calls it only when a size budget is set. */
void mpq_quant_clip_grads(const mpq_quant *q, const float *val, float *grad);
/* clip_quant_vals of the reference (all parametric methods; spec section 7): every value into
 * its bounds +-1e-5, d (resp. xmin) kept below xmax. Call after every update. */
void mpq_quant_project(const mpq_quant *q, float *val);

#endif

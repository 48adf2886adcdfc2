/* Nonlinearities: ReLU, ReLU6, or an unsigned activation quantizer that replaces them (the
 * reference's `nonl`: with a_quantize set, the quantizer clips at 0 and at its learned xmax).
 * x, y: (N, len) where len is the per-sample element count (also the activation-size model's
 * count for this tensor). */
#ifndef MPQ_LAYERS_ACT_H
#define MPQ_LAYERS_ACT_H

#include <stddef.h>

#include "core/step.h"
#include "quant/quant.h"

typedef enum mpq_act_kind { MPQ_ACT_RELU, MPQ_ACT_RELU6, MPQ_ACT_QUANT } mpq_act_kind;

typedef struct mpq_act {
    mpq_act_kind kind;
    size_t len;   /* elements per sample */
    const mpq_quant *q; /* kind == MPQ_ACT_QUANT: the model's quantizer (never a copy) */
} mpq_act;

/* Writes y (may alias x). */
void mpq_act_forward(const mpq_act *l, const mpq_step *s, const float *x, float *y);
/* Writes dx (may alias dy); with a quantizer, adds its parameter gradients into s->grad. */
void mpq_act_backward(const mpq_act *l, const mpq_step *s, const float *x, const float *dy,
                      float *dx);

#endif

/* Elementwise layers without parameters of their own beyond a scalar:
 * - add (residual): y = a + b, both (N, ...) of len floats per sample;
 * - channel zero-padding (shortcut type a): x (N, HW, Cin) -> y (N, HW, Cout), Cout >= Cin,
 *   extra channels zero;
 * - scale layer: y = s * x with one learnable scalar s (the reference's `scale_layer`). */
#ifndef MPQ_LAYERS_ELTWISE_H
#define MPQ_LAYERS_ELTWISE_H

#include <stddef.h>

#include "core/params.h"
#include "core/step.h"

/* y = a + b over n floats (y may alias a or b). Backward is the identity to both inputs. */
void mpq_add_forward(size_t n, const float *a, const float *b, float *y);

void mpq_chanpad_forward(int n, int hw, int cin, int cout, const float *x, float *y);
/* Writes dx: the first cin channels of dy. */
void mpq_chanpad_backward(int n, int hw, int cin, int cout, const float *dy, float *dx);

/* y = val[s] * x over len floats. */
void mpq_scale_forward(mpq_slice sc, const mpq_step *st, size_t len, const float *x, float *y);
/* Writes dx = s * dy; adds sum(dy * x) into grad[s]. */
void mpq_scale_backward(mpq_slice sc, const mpq_step *st, size_t len, const float *x,
                        const float *dy, float *dx);

#endif

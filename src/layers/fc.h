/* Fully connected: y = x W^T + b.
 * x: (N, Cin) (any per-sample shape, flattened)  W: (Cout, Cin) and b: (Cout) read from s->wq
 * y: (N, Cout). */
#ifndef MPQ_LAYERS_FC_H
#define MPQ_LAYERS_FC_H

#include "core/params.h"
#include "core/step.h"

typedef struct mpq_fc {
    int cin, cout;
    mpq_slice weight, bias; /* (Cout, Cin), (Cout) */
} mpq_fc;

void mpq_fc_init(mpq_fc *l, int cin, int cout);
void mpq_fc_forward(const mpq_fc *l, const mpq_step *s, const float *x, float *y);
/* Writes dx (NULL: not needed); adds dL/dW and dL/db into s->grad. */
void mpq_fc_backward(const mpq_fc *l, const mpq_step *s, const float *x, const float *dy,
                     float *dx);

#endif

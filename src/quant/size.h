/* The memory-size model of the reference (spec section 6): weight KB summed over all quantized
 * weights and biases, activation KB as the max or sum over activation tensors (per sample), the
 * penalties lambda * relu(kbytes - target)^2, and their gradients into the quantizer parameters. */
#ifndef MPQ_QUANT_SIZE_H
#define MPQ_QUANT_SIZE_H

#include "quant/quant.h"

typedef struct mpq_budget {
    float target_w_kbytes; /* <= 0: off */
    float target_a_kbytes; /* <= 0: off */
    int act_sum;           /* 0: max over activation tensors, 1: sum */
    int act_max_each;      /* max only: penalise every tensor above the target (mpq's opt-in),
                              not only the first largest one (the reference) */
    float lambda2, lambda3;
} mpq_budget;

typedef struct mpq_size_terms {
    float kbytes_w, kbytes_a;
    float loss2, loss3; /* relu(kbytes - target)^2 (unweighted), 0 when off */
    int argmax_a;       /* index (into qs) of the activation tensor attaining the max, or -1 */
} mpq_size_terms;

/* Evaluates the size model over n_q quantizers (weights: q->is_act == 0). With grad != NULL adds
 * lambda2 * d(loss2) + lambda3 * d(loss3) into the quantizer parameters' gradients. loss3 is
 * relu(kbytes_a - target)^2, or with act_max_each (max type) sum_i relu(kb_i - target)^2 over
 * the activation tensors: zero exactly when the max budget is met, with a gradient for each
 * tensor above the target. */
void mpq_size_eval(const mpq_quant *qs, int n_q, const float *val, const mpq_budget *b,
                   float *grad, mpq_size_terms *out);
/* Whether the budgets are met (a budget that is off is always met). */
int mpq_size_within_budget(const mpq_size_terms *t, const mpq_budget *b);

#endif

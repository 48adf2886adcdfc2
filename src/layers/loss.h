/* Softmax cross-entropy over logits (N, K) with integer labels (N).
 * The caller chooses the normalisation: the loss is the SUM over the local samples; the
 * gradient is (softmax - onehot) * scale, with scale = 1 / (global batch) for a mean loss. */
#ifndef MPQ_LAYERS_LOSS_H
#define MPQ_LAYERS_LOSS_H

/* Returns the sum of -log softmax(logits)[label] over n samples (double accumulation) and
 * counts the samples whose arg-max logit is not the label into *n_wrong (first max wins).
 * prob (N, K) receives the softmax (may be NULL in eval). */
double mpq_softmax_ce_forward(int n, int k, const float *logits, const int *labels, float *prob,
                              int *n_wrong);
/* Writes dlogits = (prob - onehot(label)) * scale. */
void mpq_softmax_ce_backward(int n, int k, const float *prob, const int *labels, float scale,
                             float *dlogits);

#endif

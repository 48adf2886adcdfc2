/* Softmax cross-entropy (see loss.h): per sample a numerically stable log-sum-exp (shifted by the
 * row maximum, accumulated in double), the loss summed in double, errors counted with the first
 * arg-max. No allocation; serial (n x k is small next to any layer). */
#include "layers/loss.h"

#include <math.h>
#include <stddef.h>

#include "core/err.h"

double mpq_softmax_ce_forward(int n, int k, const float *logits, const int *labels, float *prob,
                              int *n_wrong)
{
    double loss = 0.0;
    int wrong = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        const int y = labels[i];
        MPQ_ASSERT(y >= 0 && y < k, "softmax_ce: label %d of sample %d outside [0, %d)", y, i, k);
        int arg = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[arg]) arg = j;
        const double zmax = z[arg];
        double sum = 0.0;
        for (int j = 0; j < k; j++)
            sum += exp((double)z[j] - zmax);
        loss += log(sum) + zmax - (double)z[y];
        wrong += arg != y;
        if (prob)
            for (int j = 0; j < k; j++)
                prob[(size_t)i * k + j] = (float)(exp(z[j] - zmax) / sum);
    }
    if (n_wrong) *n_wrong = wrong;
    return loss;
}

void mpq_softmax_ce_backward(int n, int k, const float *prob, const int *labels, float scale,
                             float *dlogits)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            const size_t o = (size_t)i * k + j;
            dlogits[o] = (prob[o] - (j == labels[i] ? 1.0f : 0.0f)) * scale;
        }
}

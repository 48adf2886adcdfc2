/* Fully connected layer (see fc.h): y = x W^T + b with W, b from s->wq; row-major (N, Cin) and
 * (N, Cout). No allocation, no scratch. Threading: BLIS inside sgemm; the bias gradient uses
 * kernels/colsum (fixed order). */
#include "layers/fc.h"

#include <string.h>

#include "kernels/colsum.h"
#include "kernels/gemm.h"

void mpq_fc_init(mpq_fc *l, int cin, int cout)
{
    memset(l, 0, sizeof *l);
    l->cin = cin;
    l->cout = cout;
}

void mpq_fc_forward(const mpq_fc *l, const mpq_step *s, const float *x, float *y)
{
    const float *w = mpq_cat(s->wq, l->weight);
    if (l->bias.n) {
        const float *b = mpq_cat(s->wq, l->bias);
        for (int i = 0; i < s->n; i++)
            memcpy(y + (size_t)i * l->cout, b, l->cout * sizeof *y);
    }
    mpq_sgemm(MPQ_N, MPQ_T, s->n, l->cout, l->cin, 1.0f, x, l->cin, w, l->cin,
              l->bias.n ? 1.0f : 0.0f, y, l->cout);
}

void mpq_fc_backward(const mpq_fc *l, const mpq_step *s, const float *x, const float *dy, float *dx)
{
    if (l->bias.n)
        mpq_colsum_add((size_t)s->n, l->cout, dy, (size_t)l->cout, mpq_at(s->grad, l->bias));
    mpq_sgemm(MPQ_T, MPQ_N, l->cout, l->cin, s->n, 1.0f, dy, l->cout, x, l->cin, 1.0f,
              mpq_at(s->grad, l->weight), l->cin); /* dW += dy^T x */
    if (dx)                                        /* dx = dy W */
        mpq_sgemm(MPQ_N, MPQ_N, s->n, l->cin, l->cout, 1.0f, dy, l->cout, mpq_cat(s->wq, l->weight),
                  l->cin, 0.0f, dx, l->cin);
}

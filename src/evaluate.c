/* Distributed evaluation over a whole split (see evaluate.h). Allocates nothing: the caller's
 * batch buffers and the model's planned arena are used (batches larger than the plan are run in
 * pieces). */
#include "evaluate.h"

#include <string.h>

#include "core/err.h"
#include "layers/loss.h"

int mpq_evaluate(mpq_comm *c, mpq_model *m, mpq_source *src, float *x, int *y, double *err,
                 double *ce)
{
    size_t len = (size_t)m->in_h * m->in_w * m->in_c;
    double sums[2] = {0.0, 0.0};
    int rc = src->ops->seek(src, 0, 0);
    for (long b = 0; rc == 0 && b < src->steps_per_epoch; b++) {
        int n = 0, wrong = 0;
        rc = src->ops->next(src, x, y, &n);
        for (int off = 0; rc == 0 && off < n; off += m->plan_n) {
            int k = n - off < m->plan_n ? n - off : m->plan_n;
            mpq_step s = mpq_model_step(m, k, 0);
            memcpy(mpq_model_input(m), x + (size_t)off * len, (size_t)k * len * sizeof(float));
            mpq_model_forward(m, &s);
            sums[0] += mpq_softmax_ce_forward(k, m->num_classes, mpq_model_logits(m), y + off,
                                              NULL, &wrong);
            sums[1] += wrong;
        }
    }
    rc = mpq_comm_agree(c, rc);
    if (rc < 0) return rc;
    MPQ_TRY(mpq_comm_allreduce_sum_double(c, sums, 2));
    double n = (double)src->info.n_samples;
    *ce = sums[0] / n;
    *err = sums[1] / n;
    return MPQ_OK;
}

/* Learning-rate schedules (reference 80/40/40, step, cosine, constant) with linear warmup, as a
 * pure function of the global step, so a resumed or re-sharded run gets the same rates. No
 * memory, no threads. */
#include <math.h>

#include "core/err.h"
#include "optim/optim.h"

float mpq_lr_at(const mpq_schedule *c, long step, long steps_per_epoch)
{
    const double lr = c->lr;
    const double epoch = (double)step / (double)steps_per_epoch;
    const long warm = lround((double)c->warmup_epochs * (double)steps_per_epoch);
    MPQ_ASSERT(step >= 0 && steps_per_epoch > 0, "mpq_lr_at: step %ld, steps_per_epoch %ld", step,
               steps_per_epoch);
    if (step < warm) return (float)(lr * (double)(step + 1) / (double)warm);
    switch (c->kind) {
    case MPQ_LR_REFERENCE:
        if (epoch < 0.5 * (double)c->epochs) return (float)lr;
        if (epoch < 0.75 * (double)c->epochs) return (float)(lr * 0.1);
        return (float)(lr * 0.01);
    case MPQ_LR_STEP: {
        double rate = lr;
        for (int i = 0; i < c->n_decay_epochs; i++)
            if ((double)c->decay_epochs[i] <= epoch) rate *= c->decay_factor;
        return (float)rate;
    }
    case MPQ_LR_COSINE: {
        const long span = lround((double)c->epochs * (double)steps_per_epoch) - warm;
        const long t = step - warm;
        if (span <= 0 || t >= span) return 0.0f;
        return (float)(0.5 * lr * (1.0 + cos(M_PI * (double)t / (double)span)));
    }
    case MPQ_LR_CONSTANT:
        return (float)lr;
    }
    return (float)lr;
}

/* Numeric health of a training run: every check_finite_every_steps steps (and before every save)
 * the trainer looks for NaN and infinite values in the parameters and BN state
 * (mpq_view_check_finite in model_view.h, which the checkpoint and weight-file loaders use on what
 * they read too) and stops with the tensor named. No state. */
#ifndef MPQ_HEALTH_H
#define MPQ_HEALTH_H

#include <stddef.h>

#include "config.h"
#include "models/graph.h"
#include "mpi/comm.h"

/* What a non-finite state during training means and what to try (the trainer's messages). */
#define MPQ_HEALTH_DIVERGED_HINT                                                                   \
    "the training diverged (no checkpoint of this state is written) ---> HINT: lower "             \
    "initial_learning_rate, or resume from an earlier checkpoint with other settings"

/* Collective, after a training step: when steps_done is a multiple of check_finite_every_steps, or
 * final is set, checks m (parameters and BN state; equal on every rank) and agrees on the result.
 * The message names the experiment, the step and the tensor. Returns 0 or MPQ_E_NUMERIC. */
int mpq_health_check_step(mpq_comm *c, const mpq_cfg *cfg, const mpq_model *m, long steps_done,
                          int final);

#endif

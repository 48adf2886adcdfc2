/* Numeric health of a model: finds NaN and infinite values in the trainable tensors, the BN state
 * and (optionally) the optimizer state, and names the tensor. The trainer checks every
 * check_finite_every_steps steps and before every save; checkpoint and weight-file loaders check
 * what they read. One pass over the flat buffers (about n_floats comparisons). No state. */
#ifndef MPQ_HEALTH_H
#define MPQ_HEALTH_H

#include <stddef.h>

#include "config.h"
#include "models/graph.h"
#include "mpi/comm.h"

/* Buffers to scan. */
#define MPQ_HEALTH_OPTIMIZER 1 /* also the optimizer state (opt[0], opt[1]) */

/* Returns 0 if every value of m's parameters and BN state (and with MPQ_HEALTH_OPTIMIZER its
 * optimizer state) is finite; else MPQ_E_NUMERIC with the message "<context>: <buffer> tensor
 * '<name>' holds <value> at element <i> of <n> (<k> non-finite values in all)". context names
 * where (e.g. "after step 12", "checkpoint 'x.h5'"); hint is appended when non-NULL. */
int mpq_health_check(const mpq_model *m, int flags, const char *context, const char *hint);

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

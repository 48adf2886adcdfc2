/* Checkpoints of a run (trainer.h): a collective save of the whole training state (or, for the
 * best state, of the parameters), the choice of the checkpoint to resume from, the check that a
 * checkpoint fits this configuration, the exact restore of model, optimizer, data position,
 * history and running sums, weight files, and the checksum that compares replicas. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/ckpt.h"
#include "health.h"
#include "models/models.h"
#include "train/trainer.h"

/* FNV-1a over the bytes of the trainable values and the BN state: equal on every rank iff the
 * replicas are bit-identical. */
uint64_t trainer_checksum(const mpq_model *m)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p[2] = {(const void *)m->params.val, (const void *)m->state.val};
    size_t n[2] = {m->params.n_floats * sizeof(float), m->state.n_floats * sizeof(float)};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < n[k]; i++)
            h = (h ^ p[k][i]) * 1099511628211ull;
    return h;
}

static const char *optimizer_name(mpq_optimizer o)
{
    return o == MPQ_OPTIMIZER_ADAM ? "adam" : "sgd";
}

static void fill_info(const trainer *t, long steps_done, double lr, const mpq_train_result *res,
                      mpq_ckpt_info *in)
{
    const mpq_cfg *c = t->cfg;
    memset(in, 0, sizeof *in);
    snprintf(in->experiment, sizeof in->experiment, "%s", c->experiment);
    snprintf(in->model, sizeof in->model, "%s", c->model);
    snprintf(in->optimizer, sizeof in->optimizer, "%s", optimizer_name(c->optimizer));
    in->step = steps_done;
    in->epoch = steps_done / t->spe;
    in->step_in_epoch = steps_done % t->spe;
    in->steps_per_epoch = t->spe;
    in->seed = c->seed;
    in->n_ranks = t->n_ranks;
    in->in_h = t->m.in_h;
    in->in_w = t->m.in_w;
    in->in_c = t->m.in_c;
    in->num_classes = t->m.num_classes;
    in->lr = lr;
    in->first_loss = res->first_loss;
    in->best_val_err = res->best_val_err;
    in->epoch_err = t->epoch_err;
    in->epoch_n = t->epoch_n;
    in->last_budget_val = t->last_budget_val;
    in->config = t->cfg_dump;
    in->history = t->hist;
    in->history_rows = t->hist_rows;
    in->history_cols = MPQ_HIST_COLS;
    snprintf(in->history_columns, sizeof in->history_columns, "%s", mpq_results_header);
}

/* Collective: writes a checkpoint (with_optimizer; then the directory is pruned to
 * keep_checkpoints) or a parameter file. A state with a non-finite value is never written. */
int trainer_save(trainer *t, const char *path, long steps_done, double lr,
                 const mpq_train_result *res, int with_optimizer)
{
    char context[sizeof t->dir + 192];
    snprintf(context, sizeof context, "[%s] after step %ld, not writing '%s'", t->cfg->experiment,
             steps_done, path);
    int rc = mpq_view_check_finite(&t->m.view, MPQ_HEALTH_OPTIMIZER, context,
                                   MPQ_HEALTH_DIVERGED_HINT);
    if (rc == 0) rc = trainer_flush_logs(t); /* what a crash after it must not lose */
    mpq_ckpt_info in;
    fill_info(t, steps_done, lr, res, &in);
    double t0 = mpq_comm_wtime();
    rc = mpq_comm_agree(t->comm, rc);
    if (rc == 0) rc = mpq_ckpt_save(t->comm, path, &t->m.view, &in, with_optimizer);
    if (rc == 0 && with_optimizer && t->rank == 0)
        rc = mpq_ckpt_prune(t->dir, t->cfg->keep_checkpoints);
    rc = mpq_comm_agree(t->comm, rc);
    if (rc == 0 && !t->quiet)
        mpq_log_info("%s %s after step %ld (%.2f s)", with_optimizer ? "checkpoint" : "best params",
                     path, steps_done, mpq_comm_wtime() - t0);
    t->last_save = mpq_comm_wtime();
    return rc;
}

/* Collective: the checkpoint to resume from into path ("" to start fresh): spec "auto" is the
 * newest complete checkpoint of the output directory, if any; anything else is a file. */
int trainer_resume_path(trainer *t, const char *spec, char *path, size_t bytes)
{
    char *found = NULL;
    int rc = MPQ_OK;
    path[0] = '\0';
    if (!spec) return MPQ_OK;
    if (strcmp(spec, "auto")) {
        snprintf(path, bytes, "%s", spec);
        return MPQ_OK;
    }
    if (t->rank == 0) {
        found = calloc(bytes, 1);
        rc = found ? mpq_ckpt_find_latest(t->dir, found, bytes)
                   : MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    }
    rc = mpq_comm_agree(t->comm, rc < 0 ? rc : MPQ_OK);
    if (rc == 0) rc = mpq_comm_bcast_string(t->comm, &found, 0);
    if (rc == 0) snprintf(path, bytes, "%s", found);
    free(found);
    if (rc == 0 && !path[0] && !t->quiet)
        mpq_log_info("--resume auto: no checkpoint in %s/%s, starting at step 0", t->dir,
                     MPQ_CKPT_SUBDIR);
    return rc;
}

/* Refuses a checkpoint whose configuration differs from this one in a key that decides the
 * model, the data order or the optimizer state (the message names the key and both values). */
static int check_config(const trainer *t, const mpq_ckpt_info *in, const char *path)
{
    const mpq_cfg *c = t->cfg;
    mpq_cfg old;
    int rc = mpq_cfg_parse_stored(in->config, path, in->experiment, &old);
    if (rc < 0) return mpq_err_push(rc, "the configuration stored in checkpoint '%s'", path);
    char key[64], was[MPQ_PATH_MAX + 8], now[MPQ_PATH_MAX + 8];
    static const char hint[] = "---> HINT: resume with the checkpoint's configuration (`mpq "
                               "inspect` prints it) or train into another output_dir";
    if (mpq_cfg_resume_mismatch(&old, c, key, sizeof key, was, now, sizeof now))
        return MPQ_FAIL(MPQ_E_CONFIG,
                        "checkpoint '%s' does not fit the configuration: %s is %s there and %s "
                        "here %s",
                        path, key, was, now, hint);
    if (in->steps_per_epoch != t->spe) /* not a key: follows from the data and the batch */
        return MPQ_FAIL(MPQ_E_CONFIG,
                        "checkpoint '%s' does not fit the configuration: steps per epoch is "
                        "%ld there and %ld here %s",
                        path, in->steps_per_epoch, t->spe, hint);
    if (in->history_cols != MPQ_HIST_COLS)
        return MPQ_FAIL(MPQ_E_FORMAT, "checkpoint '%s': its history has %d columns, not %d", path,
                        in->history_cols, MPQ_HIST_COLS);
    return MPQ_OK;
}

/* Collective: restores the model, the optimizer, the data position, the metric history and the
 * running sums from the checkpoint at path. */
int trainer_resume(trainer *t, const char *path, mpq_train_result *res)
{
    mpq_ckpt_info in;
    double t0 = mpq_comm_wtime();
    int rc = mpq_ckpt_read_info(t->comm, path, &in);
    if (rc < 0) return rc;
    rc = mpq_comm_agree(t->comm, check_config(t, &in, path));
    if (rc == 0)
        rc = mpq_ckpt_load(t->comm, path, &t->m.view, t->cfg->model, MPQ_CKPT_LOAD_OPTIMIZER);
    for (int i = 0; rc == 0 && i < in.history_rows; i++)
        rc = trainer_append_hist(t, in.history + (size_t)MPQ_HIST_COLS * i);
    if (rc == 0) {
        t->start_step = in.step;
        t->epoch_err = in.epoch_err;
        t->epoch_n = in.epoch_n;
        t->last_budget_val = in.last_budget_val;
        res->first_loss = in.first_loss;
        res->best_val_err = in.best_val_err;
        if (!t->quiet)
            mpq_log_info("resuming from %s: step %ld (epoch %ld, step %ld of it), written by %d "
                         "rank(s); loaded in %.2f s",
                         path, in.step, in.epoch, in.step_in_epoch, in.n_ranks,
                         mpq_comm_wtime() - t0);
    }
    mpq_ckpt_info_free(&in);
    return mpq_comm_agree(t->comm, rc);
}

/* Collective: the cfg's weightfile (mpq or nnabla) with the quantizer values it holds; the other
 * quantizers start from the loaded weights. */
int trainer_load_weightfile(trainer *t)
{
    return mpq_train_start_from_weightfile(t->comm, t->cfg->weightfile, &t->m);
}

int mpq_train_start_from_weightfile(mpq_comm *c, const char *path, mpq_model *m)
{
    unsigned char *loaded = calloc((size_t)m->n_quants + 1, 1);
    int rc = mpq_comm_agree(c, loaded ? MPQ_OK : MPQ_FAIL(MPQ_E_NOMEM, "out of memory"));
    if (rc == 0) rc = mpq_ckpt_load_weights(c, path, &m->view, loaded);
    if (rc == 0) mpq_model_init_quantizers(m, 1, loaded);
    free(loaded);
    return rc;
}

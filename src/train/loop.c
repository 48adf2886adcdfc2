/* mpq_train (train.h): the loop over the steps of every epoch, the step's rows in the run logs,
 * validation at epoch ends and at steps within the budgets with the best such state kept,
 * checkpoints on a schedule or on SIGUSR1/SIGTERM (agreed over the ranks at the next step
 * boundary), and the report at the end. The set-up, the step, the logs and the checkpoints live
 * beside it in src/train/ (trainer.h says which file owns what). Owns every buffer it allocates
 * (freed on every path through trainer_free). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "evaluate.h"
#include "health.h"
#include "io/ckpt.h"
#include "kernels/gemm.h"
#include "models/models.h"
#include "optim/optim.h"
#include "report.h"
#include "train/stop.h"
#include "train/trainer.h"

/* The signal that asked for a checkpoint and exit (SIGUSR1 from SLURM before the time limit,
 * SIGTERM), or 0. Set by the handler; read at step boundaries. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

static void signals_install(struct sigaction old[2])
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    stop_signal = 0;
    sigaction(SIGUSR1, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
}

static void signals_restore(const struct sigaction old[2])
{
    sigaction(SIGUSR1, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
}

static void trainer_free(trainer *t)
{
    mpq_trainstep_free(&t->step);
    mpq_model_free(&t->m);
    mpq_source_free(t->train);
    mpq_source_free(t->val);
    free(t->hist);
    free(t->cfg_dump);
    trainer_close_logs(t);
}

/* Every rank starts from rank 0's values (initialisation is deterministic anyway). */
static int broadcast_values(trainer *t)
{
    MPQ_TRY(mpq_comm_bcast(t->comm, t->m.params.val, t->m.params.n_floats * sizeof(float), 0));
    return mpq_comm_bcast(t->comm, t->m.state.val, t->m.state.n_floats * sizeof(float), 0);
}

/* Fails (on every rank) unless every rank holds the same parameters. */
static int check_replicas(trainer *t, long step)
{
    uint64_t h = trainer_checksum(&t->m);
    double v[4] = {(double)(h >> 32), (double)(h & 0xffffffffu), -(double)(h >> 32),
                   -(double)(h & 0xffffffffu)};
    MPQ_TRY(mpq_comm_allreduce_max_double(t->comm, v, 4));
    if (v[0] != -v[2] || v[1] != -v[3])
        return MPQ_FAIL(MPQ_E_NUMERIC, "after step %ld the ranks hold different parameters", step);
    return MPQ_OK;
}

/* Rank 0: whether checkpoint_every_minutes have passed since the last checkpoint. */
static int due_by_time(const trainer *t)
{
    double minutes = t->cfg->checkpoint_every_minutes;
    return minutes > 0 && mpq_comm_wtime() - t->last_save >= 60.0 * minutes;
}

/* ---- validation ---------------------------------------------------------------------------- */

/* Validation of the state after `step`, a validation.csv row, and whether it is the best state
 * within the budgets so far (*best; res->best_val_err is updated). */
static int validate(trainer *t, long step, mpq_train_result *res, double *verr, int *best)
{
    double vce;
    mpq_size_terms now;
    MPQ_TRY(mpq_evaluate(t->comm, &t->m, t->val, t->step.xb, t->step.yb, verr, &vce));
    mpq_model_size(&t->m, &t->step.budget, NULL, &now);
    int within = mpq_size_within_budget(&now, &t->step.budget);
    *best = within && (isnan(res->best_val_err) || *verr < res->best_val_err);
    if (*best) res->best_val_err = *verr;
    if (within) t->last_budget_val = step;
    trainer_log_validation(t, step, *verr, vce, &now, within, *best);
    return MPQ_OK;
}

static int save_best(trainer *t, long step, float lr, const mpq_train_result *res)
{
    char path[sizeof t->dir + 32];
    snprintf(path, sizeof path, "%s/%s", t->dir, MPQ_CKPT_BEST);
    return trainer_save(t, path, step + 1, lr, res, 0);
}

/* After a step that is not the last of an epoch: when a weight budget is set, the reference
 * validates after every step whose state meets the budgets and keeps the best such state (which
 * catches the states within budget that quantizers moving across a bitwidth boundary pass
 * through between epoch ends); with an activation budget alone it validates at epoch ends only.
 * budget_validate_every_steps = N: at most once per N steps. */
static int validate_within_budget(trainer *t, long step, float lr, mpq_train_result *res, int live)
{
    const mpq_budget *budget = &t->step.budget;
    const long every = t->cfg->budget_validate_every_steps;
    int budgeted = budget->target_w_kbytes > 0.0f; /* the reference's condition */
    if (!t->val || !budgeted || every <= 0) return MPQ_OK;
    if (t->last_budget_val >= 0 && step - t->last_budget_val < every) return MPQ_OK;
    mpq_size_terms now; /* the parameters, hence the sizes, are equal on every rank */
    mpq_model_size(&t->m, budget, NULL, &now);
    if (!mpq_size_within_budget(&now, budget)) return MPQ_OK;
    double verr;
    int best;
    MPQ_TRY(validate(t, step, res, &verr, &best));
    if (!best) return MPQ_OK;
    if (t->rank == 0 && !t->quiet) {
        if (live) printf("\n");
        mpq_log_info("step %ld: within the budgets (W %.2f KB, A %.2f KB): val err %.2f%%, the "
                     "best so far -> %s/%s",
                     step + 1, now.kbytes_w, now.kbytes_a, 100.0 * verr, t->dir, MPQ_CKPT_BEST);
    }
    return save_best(t, step, lr, res);
}

/* After the last step of an epoch (or of the run): validation, the best parameters within
 * budget, the results row and the quantizer histories. */
static int end_epoch(trainer *t, long step, float lr, const mpq_step_stats *st,
                     mpq_train_result *res, int live)
{
    double verr = NAN;
    long epoch = step / t->spe;
    int rc, best = 0;
    if (t->val) {
        MPQ_TRY(validate(t, step, res, &verr, &best));
        res->val_err = verr;
    }
    res->train_err = t->epoch_err / (double)t->epoch_n;
    double row[MPQ_HIST_COLS] = {(double)(step + 1),
                                 res->train_err,
                                 verr,
                                 st->loss,
                                 st->ce,
                                 st->size.loss2,
                                 st->size.loss3,
                                 st->size.kbytes_w,
                                 st->size.kbytes_a,
                                 (double)(epoch + 1),
                                 lr,
                                 mpq_comm_wtime() - t->epoch_start};
    rc = trainer_append_hist(t, row);
    if (t->rank == 0 && rc == 0) {
        if (live) printf("\n");
        rc = trainer_log_results(t, row);
    }
    if (t->rank == 0 && rc == 0) {
        if (!t->quiet)
            mpq_log_info("epoch %ld: train err %.2f%%  val err %.2f%%  loss %.4f  "
                         "W %.2f KB  A %.2f KB  (%.1f s)",
                         epoch + 1, 100.0 * res->train_err, 100.0 * verr, st->loss,
                         st->size.kbytes_w, st->size.kbytes_a, row[11]);
        if (!t->quiet && t->quantized) mpq_report_table(stdout, &t->m, &t->step.budget);
        rc = mpq_report_histories(t->dir, &t->m, epoch + 1);
    }
    rc = mpq_comm_agree(t->comm, rc);
    if (rc == 0 && best) rc = save_best(t, step, lr, res);
    t->epoch_err = 0.0;
    t->epoch_n = 0;
    t->epoch_start = mpq_comm_wtime();
    return rc;
}

/* ---- the run ------------------------------------------------------------------------------- */

/* Set-up, initial values (fresh, weight file or checkpoint), the run's files, the model line. */
static int start(trainer *t, const mpq_train_opts *o, int threads, mpq_train_result *res)
{
    const mpq_cfg *cfg = t->cfg;
    char ckpt[sizeof t->dir + 64];
    MPQ_TRY(trainer_setup(t));
    MPQ_TRY(trainer_resume_path(t, o->resume, ckpt, sizeof ckpt));
    if (!ckpt[0] && *cfg->weightfile) MPQ_TRY(trainer_load_weightfile(t));
    MPQ_TRY(mpq_comm_agree(t->comm, broadcast_values(t)));
    if (ckpt[0]) MPQ_TRY(trainer_resume(t, ckpt, res));
    mpq_ckpt_start fresh = o->restart  ? MPQ_CKPT_START_RESTART
                           : o->resume ? MPQ_CKPT_START_NONE
                                       : MPQ_CKPT_START_FRESH;
    MPQ_TRY(mpq_comm_agree(t->comm, trainer_open_outputs(t, ckpt[0] != '\0', fresh)));
    if (!o->quiet)
        mpq_log_info("signal handlers installed on %d rank(s): SIGUSR1 or SIGTERM checkpoints and "
                     "stops with exit status 75",
                     t->n_ranks);
    int rc = MPQ_OK;
    if (t->rank == 0 && !o->quiet) {
        printf("model %s: %dx%dx%d input, %d nodes, %zu parameters, %.1f M multiply-adds per "
               "sample; %d rank(s) x %d thread(s), global batch %d (%d micro-batch(es) of %d per "
               "rank), %ld steps/epoch, %ld steps\n",
               cfg->model, t->m.in_h, t->m.in_w, t->m.in_c, t->m.n_nodes, t->m.params.n_floats,
               mpq_model_macs(&t->m) / 1e6, t->n_ranks, threads, cfg->batch_size, t->b.micro,
               t->b.micro_n, t->spe, t->total_steps);
        mpq_report_table(stdout, &t->m, &t->step.budget);
    }
    if (t->rank == 0 && !ckpt[0]) rc = mpq_report_histories(t->dir, &t->m, 0);
    MPQ_TRY(mpq_comm_agree(t->comm, rc));
    return mpq_comm_agree(
        t->comm, t->train->ops->seek(t->train, t->start_step / t->spe, t->start_step % t->spe));
}

/* After the step: whether to checkpoint (a schedule, rank 0's clock, a signal on any rank, the
 * end) and whether to stop for a signal. */
static int after_step(trainer *t, long step, float lr, const double *stimes, mpq_train_result *res)
{
    const mpq_cfg *cfg = t->cfg;
    char ckpt[sizeof t->dir + 64];
    int last = step + 1 == t->total_steps, sig = stimes[5] > 0 && !last;
    int ckpt_on = cfg->checkpoint_every_steps > 0 || cfg->checkpoint_every_minutes > 0;
    if (sig || stimes[6] > 0 || (last && ckpt_on) ||
        (cfg->checkpoint_every_steps > 0 && (step + 1) % cfg->checkpoint_every_steps == 0)) {
        mpq_ckpt_path(t->dir, step + 1, ckpt, sizeof ckpt);
        MPQ_TRY(trainer_save(t, ckpt, step + 1, lr, res, 1));
    }
    if (!sig) return MPQ_OK;
    const char *name = (int)stimes[5] == SIGTERM ? "SIGTERM" : "SIGUSR1";
    /* the launcher (jobs/launch.sh) turns this record of a complete checkpoint into status 75 */
    if (t->rank == 0 && mpq_stop_record_write(t->dir, name, step + 1, ckpt) < 0)
        mpq_log_warn("%s", mpq_errmsg()); /* the checkpoint itself is complete */
    return MPQ_FAIL(MPQ_E_INTERRUPTED,
                    "stopped by %s after step %ld of %ld; checkpoint '%s' "
                    "---> HINT: run the same command with --resume auto to continue",
                    name, step + 1, t->total_steps, ckpt);
}

/* The steps from start_step to total_steps. */
static int run_steps(trainer *t, const mpq_train_opts *o, mpq_train_result *res)
{
    const mpq_cfg *cfg = t->cfg;
    int live = t->rank == 0 && !o->quiet && cfg->progress && isatty(STDOUT_FILENO);
    long report_every = t->spe / 4 > 0 ? t->spe / 4 : 1;
    double start = mpq_comm_wtime();
    t->epoch_start = t->last_save = start;
    mpq_step_stats st;
    const mpq_schedule schedule = mpq_cfg_schedule(cfg);
    for (long step = t->start_step; step < t->total_steps; step++) {
        float lr = mpq_lr_at(&schedule, step, t->spe);
        double ts = mpq_comm_wtime();
        /* a diverged state is never checkpointed */
        MPQ_TRY(mpq_comm_agree(t->comm, mpq_trainstep_run(&t->step, t->train, lr, step, &st)));
        if (cfg->check_replicas) MPQ_TRY(check_replicas(t, step));
        MPQ_TRY(mpq_health_check_step(t->comm, cfg, &t->m, step + 1, step + 1 == t->total_steps));
        if (step == 0) res->first_loss = st.loss;
        res->last_loss = st.loss;
        t->epoch_err += st.err;
        t->epoch_n++;
        /* step times (max over ranks), the communication wait of the rank that arrived last
         * (min over ranks, as the max of its negation: what overlap did not hide, without the
         * other ranks' wait for it), then: a stop signal on any rank, rank 0's clock */
        double stimes[7] = {st.t_compute,
                            st.t_data,
                            st.t_comm,
                            -st.t_comm,
                            st.bytes,
                            stop_signal,
                            t->rank == 0 && due_by_time(t)};
        MPQ_TRY(mpq_comm_allreduce_max_double(t->comm, stimes, 7));
        if (t->rank == 0) {
            trainer_log_step(t, step, lr, &st, stimes, mpq_comm_wtime() - ts);
            trainer_log_quant(t, step);
            if (!o->quiet && (live || (step + 1) % report_every == 0 || step == t->start_step))
                trainer_progress(t, step, &st, mpq_comm_wtime() - start, step + 1 - t->start_step,
                                 live);
        }
        if ((step + 1) % t->spe == 0 || step + 1 == t->total_steps)
            MPQ_TRY(end_epoch(t, step, lr, &st, res, live));
        else
            MPQ_TRY(validate_within_budget(t, step, lr, res, live));
        MPQ_TRY(after_step(t, step, lr, stimes, res));
    }
    res->steps = t->total_steps;
    res->seconds = mpq_comm_wtime() - start;
    res->images_per_s =
        res->seconds > 0 ? (double)(t->total_steps - t->start_step) * cfg->batch_size / res->seconds
                         : 0;
    return MPQ_OK;
}

/* The final sizes and checksum, the bitwidth picture and the learned-quantizer table. */
static int finish(trainer *t, const mpq_train_opts *o, mpq_train_result *res)
{
    int rc = MPQ_OK;
    mpq_model_size(&t->m, &t->step.budget, NULL, &res->size);
    res->within_budget = mpq_size_within_budget(&res->size, &t->step.budget);
    res->checksum = trainer_checksum(&t->m);
    if (t->rank == 0) {
        char svg[sizeof t->dir + 32];
        snprintf(svg, sizeof svg, "%s/bitwidth.svg", t->dir);
        rc = mpq_report_bitwidth_svg(svg, &t->m, t->cfg->experiment);
        if (!o->quiet && rc == 0) {
            printf("\nlearned quantizers after %ld steps (%.1f s, %.0f img/s):\n", res->steps,
                   res->seconds, res->images_per_s);
            mpq_report_table(stdout, &t->m, &t->step.budget);
            printf("bitwidth picture: %s\n", svg);
            printf("parameter checksum: %016llx\n", (unsigned long long)res->checksum);
        }
        if (rc == 0) rc = trainer_flush_logs(t);
    }
    return mpq_comm_agree(t->comm, rc);
}

int mpq_train(mpq_comm *comm, const mpq_cfg *cfg, const mpq_train_opts *o, mpq_train_result *res)
{
    trainer t;
    struct sigaction old_actions[2];
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    res->val_err = res->best_val_err = NAN;
    t.cfg = cfg;
    t.comm = comm;
    t.rank = mpq_comm_rank(comm);
    t.n_ranks = mpq_comm_size(comm);
    t.quiet = o->quiet;
    t.last_budget_val = -1;
    t.quantized = *cfg->wq.method || *cfg->aq.method;
    snprintf(t.dir, sizeof t.dir, "%s", *cfg->output_dir ? cfg->output_dir : cfg->experiment);
    signals_install(old_actions);

    char bind[256];
    int threads = mpq_comm_bind(comm, cfg->threads, bind, sizeof bind);
    mpq_gemm_set_threads(threads);
    if (!o->quiet) printf("%s\n", bind);

    int rc = start(&t, o, threads, res);
    if (rc == 0) rc = run_steps(&t, o, res);
    if (rc == 0) rc = finish(&t, o, res);
    signals_restore(old_actions);
    trainer_free(&t);
    return rc;
}

/* The run's log files (trainer.h), written by rank 0: steps.csv and timing.csv (a row per step),
 * validation.csv (a row per validation), results.csv (a row per epoch, the reference's columns
 * first), quant.csv (with quant_log_every_steps: the quantizers' values and gradients) and the
 * metric history that checkpoints carry. On resume every file is cut back to the
 * rows that belong before the checkpoint, so the continued run adds no duplicate and misses no
 * row; results.csv is rewritten from the checkpoint's history. Also the progress lines. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dir.h"
#include "core/grow.h"
#include "core/log.h"
#include "io/ckpt.h"
#include "outfile.h"
#include "train/trainer.h"

const char mpq_results_header[] =
    "iter,train_err,val_err,loss,loss1,loss2,loss3,kbytes_w,kbytes_a,epoch,lr,seconds";
static const char steps_header[] =
    "step,epoch,lr,loss,loss1,loss2,loss3,train_err,kbytes_w,kbytes_a";
static const char timing_header[] =
    "step,compute_s,data_wait_s,comm_wait_s,comm_exposed_s,comm_bytes,images_per_s";
static const char val_header[] = "step,epoch,val_err,val_loss,kbytes_w,kbytes_a,within_budget,best";
static const char quant_header[] = "step,quantizer,side,param,value,grad";

/* Rewrites path keeping its header and the complete data lines that belong before the
 * checkpoint (by_step: whose first field is below limit; else the first limit lines), so nothing
 * is duplicated or missing when the run appends. A missing file gets the header. A line without
 * its newline (a crash mid-write) and everything after it is dropped. */
static int truncate_csv(const char *path, const char *header, long limit, int by_step)
{
    char tmp[MPQ_PATH_MAX + 128], *line = NULL;
    size_t cap = 0;
    long kept = 0;
    int rc = MPQ_OK;
    FILE *in = fopen(path, "r");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        if (in) fclose(in);
        return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", tmp, strerror(errno));
    }
    ssize_t k = in ? getline(&line, &cap, in) : -1;
    if (k > 0 && line[k - 1] == '\n')
        fputs(line, out);
    else if (header)
        fprintf(out, "%s\n", header);
    while (in && (k = getline(&line, &cap, in)) > 0 && line[k - 1] == '\n') {
        int keep = by_step ? strtol(line, NULL, 10) < limit : kept < limit;
        if (!keep) break;
        fputs(line, out);
        kept++;
    }
    free(line);
    if (in) fclose(in);
    rc = mpq_outfile_close(&out, NULL, tmp);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = MPQ_FAIL(MPQ_E_IO, "cannot rewrite '%s': %s", path, strerror(errno));
    return rc;
}

static void write_results_row(FILE *f, const double *r)
{
    fprintf(f, "%ld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%ld,%.9g,%.3f\n", (long)r[0], r[1],
            r[2], r[3], r[4], r[5], r[6], r[7], r[8], (long)r[9], r[10], r[11]);
}

int trainer_append_hist(trainer *t, const double *row)
{
    if (mpq_grow((void **)&t->hist, &t->hist_cap, (size_t)t->hist_rows + 1,
                 sizeof(double) * MPQ_HIST_COLS) < 0)
        return mpq_err_push(MPQ_E_NOMEM, "the metric history");
    memcpy(t->hist + (size_t)MPQ_HIST_COLS * t->hist_rows++, row, sizeof(double) * MPQ_HIST_COLS);
    return MPQ_OK;
}

/* On resume: every per-step and per-epoch file cut back to the checkpoint. */
static int cut_back(trainer *t)
{
    static const char *const hist_files[] = {"n", "d", "max", "min"};
    char path[sizeof t->dir + 32];
    snprintf(path, sizeof path, "%s/steps.csv", t->dir);
    MPQ_TRY(truncate_csv(path, steps_header, t->start_step, 1));
    snprintf(path, sizeof path, "%s/timing.csv", t->dir);
    MPQ_TRY(truncate_csv(path, timing_header, t->start_step, 1));
    snprintf(path, sizeof path, "%s/validation.csv", t->dir);
    MPQ_TRY(truncate_csv(path, val_header, t->start_step, 1));
    if (t->cfg->quant_log_every_steps > 0) {
        snprintf(path, sizeof path, "%s/quant.csv", t->dir);
        MPQ_TRY(truncate_csv(path, quant_header, t->start_step, 1));
    }
    for (int h = 0; h < 8; h++) { /* the epoch-0 row and one per results row */
        snprintf(path, sizeof path, "%s/res_%s_%c.csv", t->dir, hist_files[h / 2],
                 h % 2 ? 'a' : 'w');
        MPQ_TRY(truncate_csv(path, NULL, 1 + t->hist_rows, 0));
    }
    return MPQ_OK;
}

static FILE *open_in_dir(const trainer *t, const char *name, const char *mode)
{
    char path[sizeof t->dir + 32];
    snprintf(path, sizeof path, "%s/%s", t->dir, name);
    return fopen(path, mode);
}

int trainer_open_outputs(trainer *t, int resumed, mpq_ckpt_start fresh)
{
    char path[sizeof t->dir + 32];
    if (t->rank != 0) return MPQ_OK;
    snprintf(path, sizeof path, "%s/%s", t->dir, MPQ_CKPT_SUBDIR);
    MPQ_TRY(mpq_dir_make(path, 0755));
    if (!resumed) MPQ_TRY(mpq_ckpt_start_fresh(t->dir, fresh)); /* refuses to overwrite a run */
    if (resumed) MPQ_TRY(cut_back(t));
    const char *mode = resumed ? "a" : "w";
    t->steps_csv = open_in_dir(t, "steps.csv", mode);
    t->results_csv = open_in_dir(t, "results.csv", "w");
    t->timing_csv = open_in_dir(t, "timing.csv", mode);
    t->val_csv = open_in_dir(t, "validation.csv", mode);
    if (t->cfg->quant_log_every_steps > 0) t->quant_csv = open_in_dir(t, "quant.csv", mode);
    if (!t->steps_csv || !t->results_csv || !t->timing_csv || !t->val_csv ||
        (t->cfg->quant_log_every_steps > 0 && !t->quant_csv))
        return MPQ_FAIL(MPQ_E_IO, "cannot write into '%s': %s", t->dir, strerror(errno));
    if (!resumed && t->quant_csv) fprintf(t->quant_csv, "%s\n", quant_header);
    if (!resumed) {
        fprintf(t->steps_csv, "%s\n", steps_header);
        fprintf(t->timing_csv, "%s\n", timing_header);
        fprintf(t->val_csv, "%s\n", val_header);
    }
    fprintf(t->results_csv, "%s\n", mpq_results_header);
    for (int i = 0; i < t->hist_rows; i++)
        write_results_row(t->results_csv, t->hist + (size_t)MPQ_HIST_COLS * i);
    fflush(t->results_csv);
    FILE *f = open_in_dir(t, "config.cfg", "w");
    if (!f) return MPQ_FAIL(MPQ_E_IO, "cannot write '%s/config.cfg': %s", t->dir, strerror(errno));
    mpq_cfg_dump(t->cfg, f);
    return mpq_outfile_close(&f, t->dir, "config.cfg");
}

/* Rank 0: the step's rows; stimes are the step's times agreed over the ranks (loop.c). */
void trainer_log_step(trainer *t, long step, float lr, const mpq_step_stats *st,
                      const double *stimes, double step_seconds)
{
    fprintf(t->steps_csv, "%ld,%ld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", step, step / t->spe,
            lr, st->loss, st->ce, st->size.loss2, st->size.loss3, st->err, st->size.kbytes_w,
            st->size.kbytes_a);
    fprintf(t->timing_csv, "%ld,%.6f,%.6f,%.6f,%.6f,%.0f,%.1f\n", step, stimes[0], stimes[1],
            stimes[2], -stimes[3], stimes[4], t->cfg->batch_size / step_seconds);
}

/* Rank 0, with quant_log_every_steps = N: after step 0, every N-th step and the last, a row per
 * learnable quantizer value (its value after the update and the gradient the update used: after
 * weight decay and, with a budget, clip_quant_grads) and one with each quantizer's bitwidth. */
void trainer_log_quant(trainer *t, long step)
{
    const long every = t->cfg->quant_log_every_steps;
    if (!t->quant_csv || (step % every != 0 && step + 1 != t->total_steps)) return;
    const mpq_model *m = &t->m;
    for (int i = 0; i < m->n_quants; i++) {
        const mpq_quant *q = &m->quants[i];
        if (q->method == MPQ_QMETHOD_NONE) continue;
        char side = q->is_act ? 'a' : 'w';
        for (int k = 0; k < mpq_qmethod_n_params(q->method); k++)
            fprintf(t->quant_csv, "%ld,%s,%c,%s,%.9g,%.9g\n", step, m->qinfo[i].name, side,
                    mpq_qmethod_param_name(q->method, k), m->params.val[q->p.off + (size_t)k],
                    m->params.grad[q->p.off + (size_t)k]);
        fprintf(t->quant_csv, "%ld,%s,%c,bits,%.9g,\n", step, m->qinfo[i].name, side,
                mpq_quant_bitwidth(q, m->params.val));
    }
}

void trainer_log_validation(trainer *t, long step, double verr, double vce,
                            const mpq_size_terms *now, int within, int best)
{
    if (t->rank != 0) return;
    fprintf(t->val_csv, "%ld,%ld,%.9g,%.9g,%.9g,%.9g,%d,%d\n", step, step / t->spe + 1, verr, vce,
            now->kbytes_w, now->kbytes_a, within, best);
}

int trainer_flush_logs(trainer *t)
{
    if (t->rank != 0) return MPQ_OK;
    MPQ_TRY(mpq_outfile_flush(t->steps_csv, t->dir, "steps.csv"));
    MPQ_TRY(mpq_outfile_flush(t->timing_csv, t->dir, "timing.csv"));
    MPQ_TRY(mpq_outfile_flush(t->results_csv, t->dir, "results.csv"));
    if (t->quant_csv) MPQ_TRY(mpq_outfile_flush(t->quant_csv, t->dir, "quant.csv"));
    return mpq_outfile_flush(t->val_csv, t->dir, "validation.csv");
}

int trainer_log_results(trainer *t, const double *row)
{
    write_results_row(t->results_csv, row);
    return trainer_flush_logs(t);
}

void trainer_progress(const trainer *t, long step, const mpq_step_stats *st, double elapsed,
                      long done, int live)
{
    double ips = elapsed > 0 ? done * (double)t->cfg->batch_size / elapsed : 0.0;
    double eta = done > 0 ? elapsed / done * (double)(t->total_steps - step - 1) : 0.0;
    char line[256];
    snprintf(line, sizeof line,
             "step %ld/%ld  epoch %ld  loss %.4f  err %.2f%%  W %.1f KB  A %.1f KB  "
             "%.0f img/s  ETA %02d:%02d",
             step + 1, t->total_steps, step / t->spe + 1, st->loss, 100.0 * st->err,
             st->size.kbytes_w, st->size.kbytes_a, ips, (int)(eta / 60), (int)eta % 60);
    if (live) {
        printf("\r%-110s", line);
        fflush(stdout);
    } else {
        mpq_log_info("%s", line);
    }
}

void trainer_close_logs(trainer *t)
{
    FILE **f[] = {&t->steps_csv, &t->results_csv, &t->timing_csv, &t->val_csv, &t->quant_csv};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (*f[i]) {
            fclose(*f[i]);
            *f[i] = NULL;
        }
}

/* The training loop of one rank. A step: read this rank's slice of the global batch; for each of
 * its micro-batches (one normally; V/R virtual shards in deterministic mode) forward, loss and
 * backward, with buckets of the gradient allreduced while backward goes on; then the size
 * penalties (identical on every rank, so added after the averaging), weight decay, the
 * reference's quantizer-gradient clipping, the optimizer, the quantizer projections. BN running
 * statistics are averaged over replicas every step, so every rank holds the same state.
 * Checkpoints (io/ckpt.h) are taken at step boundaries, on a schedule or on SIGUSR1/SIGTERM
 * (agreed over the ranks), and a run resumes from one exactly where it stopped.
 * Owns every buffer it allocates (freed on every path through trainer_free). */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "data.h"
#include "evaluate.h"
#include "io/ckpt.h"
#include "io/shard.h"
#include "kernels/gemm.h"
#include "layers/loss.h"
#include "models/models.h"
#include "optim/optim.h"
#include "report.h"

typedef struct trainer {
    const mpq_cfg *cfg;
    mpq_comm *comm;
    int rank, n_ranks;
    mpq_source *train, *val;
    mpq_model m;
    int micro, micro_n;  /* micro-batches per rank per step, samples in each */
    int n_shards;        /* micro * n_ranks: the units metrics are summed over */
    float *xb;           /* the local batch (micro * micro_n samples) */
    int *yb;
    float *prob;         /* softmax of one micro-batch */
    float **gbuf;        /* deterministic mode: one gradient buffer per micro-batch */
    float **sbuf;        /* deterministic mode: one BN-state buffer per micro-batch */
    float *state0;       /* deterministic mode: the BN state at the start of the step */
    double *state_d;     /* BN state as doubles for the replica average */
    mpq_gradsync *gs;
    mpq_budget budget;
    long spe, total_steps;
    long start_step;     /* 0, or the step a resumed run starts from */
    double epoch_err;    /* train error summed over the steps of the current epoch so far */
    long epoch_n;
    double *hist;        /* results.csv rows so far (HIST_COLS each), for checkpoints */
    double epoch_start;  /* wall time the current epoch started */
    int quiet;
    int quantized;       /* some weight or activation quantizer is not float */
    int hist_rows, hist_cap;
    char *cfg_dump;      /* the effective configuration (checkpoints) */
    double last_save;    /* rank 0: wall time of the last checkpoint (or the start) */
    long last_budget_val; /* the last step validated within the budgets (-1: none yet) */
    FILE *steps_csv, *results_csv, *timing_csv, *val_csv;
    char dir[MPQ_PATH_MAX + 64];
} trainer;

#define HIST_COLS 12
static const char results_header[] =
    "iter,train_err,val_err,loss,loss1,loss2,loss3,kbytes_w,kbytes_a,epoch,lr,seconds";
static const char steps_header[] =
    "step,epoch,lr,loss,loss1,loss2,loss3,train_err,kbytes_w,kbytes_a";
static const char timing_header[] =
    "step,compute_s,data_wait_s,comm_wait_s,comm_exposed_s,comm_bytes,images_per_s";
static const char val_header[] = "step,epoch,val_err,val_loss,kbytes_w,kbytes_a,within_budget,best";

/* The signal that asked for a checkpoint and exit (SIGUSR1 from SLURM before the time limit,
 * SIGTERM), or 0. Set by the handler; read at step boundaries. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

/* ---- set-up -------------------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
    char tmp[MPQ_PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return MPQ_FAIL(MPQ_E_IO, "cannot create directory '%s': %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return MPQ_FAIL(MPQ_E_IO, "cannot create directory '%s': %s", tmp, strerror(errno));
    return MPQ_OK;
}

int mpq_train_source_open(const mpq_cfg *c, const char *spec, int train, int rank, int n_ranks,
                          mpq_source **out)
{
    mpq_source_opts o = {
        .global_batch = train ? c->batch_size : c->val_batch_size,
        .rank = rank,
        .n_ranks = n_ranks,
        .seed = (uint64_t)c->seed,
        .train = train,
        .augment = c->augment, /* validation: the same normalization, no random transforms */
        .crop = {c->crop_size, c->val_resize, c->crop_scale_min, c->crop_scale_max,
                 c->crop_ratio_min, c->crop_ratio_max},
        .prefetch = 1,
    };
    if (!strcmp(spec, "synthetic")) {
        long n = train ? c->synthetic_samples : c->synthetic_samples / 4;
        if (n < o.global_batch && !train) n = o.global_batch;
        int k = c->num_classes > 0 ? c->num_classes : 10;
        /* validation draws other samples around the same class prototypes (data_synth.c) */
        return mpq_source_synthetic_create(&o, n, c->synthetic_height, c->synthetic_width,
                                           c->synthetic_channels, k,
                                           (uint64_t)c->seed * 2654435761u, out);
    }
    return mpq_source_shards_create(spec, &o, out);
}

static int setup_data(trainer *t)
{
    const mpq_cfg *c = t->cfg;
    int rc = MPQ_OK;
    if (!*c->train_data)
        rc = MPQ_FAIL(MPQ_E_CONFIG, "[%s] train_data is not set ---> HINT: make shards with "
                      "`mpq prep`, or use train_data = synthetic", c->experiment);
    if (rc == 0) rc = mpq_train_source_open(c, c->train_data, 1, t->rank, t->n_ranks, &t->train);
    if (rc == 0 && *c->val_data)
        rc = mpq_train_source_open(c, c->val_data, 0, t->rank, t->n_ranks, &t->val);
    if (rc == 0 && t->val) {
        const mpq_data_info *a = &t->train->info, *b = &t->val->info;
        if (a->h != b->h || a->w != b->w || a->c != b->c)
            rc = MPQ_FAIL(MPQ_E_FORMAT, "train_data images are %dx%dx%d but val_data's are %dx%dx%d",
                          a->h, a->w, a->c, b->h, b->w, b->c);
    }
    if (rc == 0 && t->train->steps_per_epoch < 1)
        rc = MPQ_FAIL(MPQ_E_CONFIG, "[%s] batch_size %d exceeds the %ld training samples",
                      c->experiment, c->batch_size, t->train->info.n_samples);
    return rc;
}

static int setup_batching(trainer *t)
{
    const mpq_cfg *c = t->cfg;
    int B = c->batch_size, R = t->n_ranks;
    if (c->deterministic) {
        int V = c->virtual_shards;
        if (V < 1 || B % V || V % R)
            return MPQ_FAIL(MPQ_E_CONFIG,
                            "[%s] deterministic mode needs virtual_shards (%d) to divide batch_size "
                            "(%d) and the rank count (%d) to divide virtual_shards",
                            c->experiment, V, B, R);
        t->micro = V / R;
        t->micro_n = B / V;
    } else {
        if (B % R)
            return MPQ_FAIL(MPQ_E_CONFIG, "[%s] batch_size %d is not divisible by %d ranks",
                            c->experiment, B, R);
        t->micro = 1;
        t->micro_n = B / R;
    }
    t->n_shards = t->micro * R;
    return MPQ_OK;
}

mpq_budget mpq_train_budget(const mpq_cfg *c)
{
    return (mpq_budget){
        .target_w_kbytes = c->target_weight_kbytes,
        .target_a_kbytes = c->target_activation_kbytes,
        .act_sum = !strcmp(c->target_activation_type, "sum"),
        .lambda2 = c->initial_cost_lambda2,
        .lambda3 = c->initial_cost_lambda3,
    };
}

int mpq_train_model_build(const mpq_cfg *c, int h, int w, int ch, int classes, int plan_n,
                          mpq_model *m)
{
    mpq_model_desc d = {c->model, c->shortcut_type, c->scale_layer};
    mpq_model_init(m, h, w, ch, classes, &c->wq, &c->aq, c->bn_momentum);
    MPQ_TRY(mpq_model_build(m, &d));
    return mpq_model_plan(m, plan_n);
}

static int setup_model(trainer *t)
{
    const mpq_cfg *c = t->cfg;
    const mpq_data_info *in = &t->train->info;
    int classes = c->num_classes > 0 ? c->num_classes : in->num_classes;
    int plan = t->micro_n;
    if (t->val && t->val->max_local_batch > plan) plan = t->val->max_local_batch;
    MPQ_TRY(mpq_train_model_build(c, in->h, in->w, in->c, classes, plan, &t->m));
    mpq_model_init_values(&t->m, (unsigned long)c->seed, 0);

    size_t len = (size_t)in->h * in->w * in->c, nf = t->m.params.n_floats;
    size_t local = (size_t)t->micro * t->micro_n;
    if (t->train->max_local_batch > (int)local) local = (size_t)t->train->max_local_batch;
    if (t->val && t->val->max_local_batch > (int)local) local = (size_t)t->val->max_local_batch;
    t->xb = mpq_alloc_floats(local * len);
    t->yb = calloc(local, sizeof *t->yb);
    t->prob = mpq_alloc_floats((size_t)plan * classes);
    t->state_d = calloc(t->m.state.n_floats + 1, sizeof *t->state_d);
    if (!t->xb || !t->yb || !t->prob || !t->state_d)
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory for the batch buffers");
    if (c->deterministic) {
        t->gbuf = calloc((size_t)t->micro, sizeof *t->gbuf);
        t->sbuf = calloc((size_t)t->micro, sizeof *t->sbuf);
        t->state0 = mpq_alloc_floats(t->m.state.n_floats);
        if (!t->gbuf || !t->sbuf || !t->state0) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
        for (int k = 0; k < t->micro; k++) {
            t->gbuf[k] = mpq_alloc_floats(nf);
            t->sbuf[k] = mpq_alloc_floats(t->m.state.n_floats);
            if (!t->gbuf[k] || !t->sbuf[k])
                return MPQ_FAIL(MPQ_E_NOMEM, "out of memory for %d gradient buffers", t->micro);
        }
    } else if (t->n_ranks > 1) {
        size_t bucket = (size_t)(c->bucket_mbytes * 1e6 / sizeof(float));
        MPQ_TRY(mpq_gradsync_create(t->comm, t->m.params.grad, nf, bucket ? bucket : nf, &t->gs));
    }
    t->budget = mpq_train_budget(c);
    return MPQ_OK;
}

/* Every rank starts from rank 0's values (initialisation is deterministic anyway). */
static int broadcast_values(trainer *t)
{
    MPQ_TRY(mpq_comm_bcast(t->comm, t->m.params.val, t->m.params.n_floats * sizeof(float), 0));
    return mpq_comm_bcast(t->comm, t->m.state.val, t->m.state.n_floats * sizeof(float), 0);
}

/* Rank 0, on resume: rewrites path keeping its header and the complete data lines that belong
 * before the checkpoint (by_step: whose first field is below limit; else the first limit lines),
 * so nothing is duplicated or missing when the run appends. A missing file gets the header. */
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
    if (k > 0 && line[k - 1] == '\n') fputs(line, out);
    else if (header) fprintf(out, "%s\n", header);
    while (in && (k = getline(&line, &cap, in)) > 0 && line[k - 1] == '\n') {
        int keep = by_step ? strtol(line, NULL, 10) < limit : kept < limit;
        if (!keep) break;
        fputs(line, out);
        kept++;
    }
    free(line);
    if (in) fclose(in);
    if (fclose(out) != 0 || rename(tmp, path) != 0)
        rc = MPQ_FAIL(MPQ_E_IO, "cannot rewrite '%s': %s", path, strerror(errno));
    return rc;
}

static void write_results_row(FILE *f, const double *r)
{
    fprintf(f, "%ld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%ld,%.9g,%.3f\n", (long)r[0], r[1],
            r[2], r[3], r[4], r[5], r[6], r[7], r[8], (long)r[9], r[10], r[11]);
}

static int append_hist(trainer *t, const double *row)
{
    if (t->hist_rows == t->hist_cap) {
        int cap = t->hist_cap ? 2 * t->hist_cap : 64;
        double *h = realloc(t->hist, sizeof(double) * HIST_COLS * (size_t)cap);
        if (!h) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory for the metric history");
        t->hist = h;
        t->hist_cap = cap;
    }
    memcpy(t->hist + (size_t)HIST_COLS * t->hist_rows++, row, sizeof(double) * HIST_COLS);
    return MPQ_OK;
}

/* Rank 0 writes the run's csv files: fresh ones, or on resume the files cut back to the
 * checkpoint (results.csv is rewritten from the checkpoint's history). */
static int open_outputs(trainer *t, int resumed)
{
    const mpq_cfg *c = t->cfg;
    char path[sizeof t->dir + 32];
    static const char *const hist_files[] = {"n", "d", "max", "min"};
    if (t->rank != 0) return MPQ_OK;
    snprintf(path, sizeof path, "%s/%s", t->dir, MPQ_CKPT_SUBDIR);
    MPQ_TRY(mkdirs(path));
    if (!resumed) { /* like the csv files, an earlier run's checkpoints do not belong to this one */
        int n = 0;
        MPQ_TRY(mpq_ckpt_clear(t->dir, &n));
        if (n > 0)
            mpq_log_warn("starting at step 0: removed %d checkpoint(s) of an earlier run in %s/%s "
                         "(--resume auto continues a run)",
                         n, t->dir, MPQ_CKPT_SUBDIR);
    }
    if (resumed) {
        snprintf(path, sizeof path, "%s/steps.csv", t->dir);
        MPQ_TRY(truncate_csv(path, steps_header, t->start_step, 1));
        snprintf(path, sizeof path, "%s/timing.csv", t->dir);
        MPQ_TRY(truncate_csv(path, timing_header, t->start_step, 1));
        snprintf(path, sizeof path, "%s/validation.csv", t->dir);
        MPQ_TRY(truncate_csv(path, val_header, t->start_step, 1));
        for (int h = 0; h < 8; h++) { /* the epoch-0 row and one per results row */
            snprintf(path, sizeof path, "%s/res_%s_%c.csv", t->dir, hist_files[h / 2],
                     h % 2 ? 'a' : 'w');
            MPQ_TRY(truncate_csv(path, NULL, 1 + t->hist_rows, 0));
        }
    }
    const char *mode = resumed ? "a" : "w";
    snprintf(path, sizeof path, "%s/steps.csv", t->dir);
    t->steps_csv = fopen(path, mode);
    snprintf(path, sizeof path, "%s/results.csv", t->dir);
    t->results_csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/timing.csv", t->dir);
    t->timing_csv = fopen(path, mode);
    snprintf(path, sizeof path, "%s/validation.csv", t->dir);
    t->val_csv = fopen(path, mode);
    if (!t->steps_csv || !t->results_csv || !t->timing_csv || !t->val_csv)
        return MPQ_FAIL(MPQ_E_IO, "cannot write into '%s': %s", t->dir, strerror(errno));
    if (!resumed) {
        fprintf(t->steps_csv, "%s\n", steps_header);
        fprintf(t->timing_csv, "%s\n", timing_header);
        fprintf(t->val_csv, "%s\n", val_header);
    }
    fprintf(t->results_csv, "%s\n", results_header);
    for (int i = 0; i < t->hist_rows; i++)
        write_results_row(t->results_csv, t->hist + (size_t)HIST_COLS * i);
    fflush(t->results_csv);
    snprintf(path, sizeof path, "%s/config.cfg", t->dir);
    FILE *f = fopen(path, "w");
    if (!f) return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", path, strerror(errno));
    mpq_cfg_dump(c, f);
    fclose(f);
    return MPQ_OK;
}

static void trainer_free(trainer *t)
{
    if (t->gbuf)
        for (int k = 0; k < t->micro; k++) free(t->gbuf[k]);
    if (t->sbuf)
        for (int k = 0; k < t->micro; k++) free(t->sbuf[k]);
    free(t->gbuf);
    free(t->sbuf);
    free(t->state0);
    free(t->xb);
    free(t->yb);
    free(t->prob);
    free(t->state_d);
    mpq_gradsync_free(t->gs);
    mpq_model_free(&t->m);
    mpq_source_free(t->train);
    mpq_source_free(t->val);
    free(t->hist);
    free(t->cfg_dump);
    if (t->steps_csv) fclose(t->steps_csv);
    if (t->results_csv) fclose(t->results_csv);
    if (t->timing_csv) fclose(t->timing_csv);
    if (t->val_csv) fclose(t->val_csv);
}

/* FNV-1a over the bytes of the trainable values and the BN state: equal on every rank iff the
 * replicas are bit-identical. */
static uint64_t params_checksum(const mpq_model *m)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p[2] = {(const void *)m->params.val, (const void *)m->state.val};
    size_t n[2] = {m->params.n_floats * sizeof(float), m->state.n_floats * sizeof(float)};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < n[k]; i++) h = (h ^ p[k][i]) * 1099511628211ull;
    return h;
}

/* Fails (on every rank) unless every rank holds the same parameters. */
static int check_replicas(trainer *t, long step)
{
    uint64_t h = params_checksum(&t->m);
    double v[4] = {(double)(h >> 32), (double)(h & 0xffffffffu), -(double)(h >> 32),
                   -(double)(h & 0xffffffffu)};
    MPQ_TRY(mpq_comm_allreduce_max_double(t->comm, v, 4));
    if (v[0] != -v[2] || v[1] != -v[3])
        return MPQ_FAIL(MPQ_E_NUMERIC, "after step %ld the ranks hold different parameters", step);
    return MPQ_OK;
}

/* ---- one step ------------------------------------------------------------------------------ */

typedef struct step_stats {
    double ce, err;             /* mean cross-entropy and error over the global batch */
    mpq_size_terms size;
    double loss;
    double t_compute, t_data, t_comm, bytes;
} step_stats;

static void on_ready(void *ctx, size_t off)
{
    mpq_gradsync *gs = ctx;
    mpq_gradsync_ready(gs, off);
    mpq_gradsync_progress(gs);
}

/* Replaces the BN state by its average over the ranks (non-deterministic mode). */
static int average_state(trainer *t)
{
    size_t n = t->m.state.n_floats;
    float *s = t->m.state.val;
    if (t->n_ranks == 1 || n == 0) return MPQ_OK;
    for (size_t i = 0; i < n; i++) t->state_d[i] = s[i];
    MPQ_TRY(mpq_comm_allreduce_sum_double(t->comm, t->state_d, n));
    for (size_t i = 0; i < n; i++) s[i] = (float)(t->state_d[i] / t->n_ranks);
    return MPQ_OK;
}

/* Sums per-shard metrics (each rank fills its own shards; the others are 0, so the sum over
 * ranks is exact) and adds them up in shard order: the same bits for any rank count. */
static int shard_sums(trainer *t, double *v, int per, double *out)
{
    MPQ_TRY(mpq_comm_allreduce_sum_double(t->comm, v, (size_t)t->n_shards * per));
    for (int j = 0; j < per; j++) {
        out[j] = 0.0;
        for (int k = 0; k < t->n_shards; k++) out[j] += v[(size_t)k * per + j];
    }
    return MPQ_OK;
}

/* Test hook: MPQ_TEST_FAIL_RANK=r and MPQ_TEST_FAIL_STEP=s make rank r's batch of step s fail
 * like an unreadable shard, so tests can show that one rank's error ends every rank. */
static int injected_failure(const trainer *t, long step)
{
    const char *r = getenv("MPQ_TEST_FAIL_RANK"), *s = getenv("MPQ_TEST_FAIL_STEP");
    if (!r || atoi(r) != t->rank || (s ? atol(s) : 0) != step) return MPQ_OK;
    return MPQ_FAIL(MPQ_E_IO, "rank %d: cannot read its batch of step %ld (injected by "
                    "MPQ_TEST_FAIL_RANK)", t->rank, step);
}

static int train_step(trainer *t, float lr, long step, step_stats *st)
{
    const mpq_cfg *c = t->cfg;
    mpq_model *m = &t->m;
    size_t nf = m->params.n_floats, ns = m->state.n_floats;
    size_t len = (size_t)m->in_h * m->in_w * m->in_c;
    int n = 0, rc;
    double metrics[2 * 64 * 16];
    double t0 = mpq_comm_wtime();

    memset(st, 0, sizeof *st);
    rc = t->train->ops->next(t->train, t->xb, t->yb, &n);
    st->t_data = t->train->ops->wait_seconds(t->train);
    if (rc == 0) rc = injected_failure(t, step);
    rc = mpq_comm_agree(t->comm, rc);
    if (rc < 0) return rc;
    MPQ_ASSERT(n == t->micro * t->micro_n, "got %d samples, expected %d", n,
               t->micro * t->micro_n);
    MPQ_ASSERT((size_t)t->n_shards * 2 <= sizeof metrics / sizeof metrics[0],
               "too many shards (%d)", t->n_shards);
    memset(metrics, 0, sizeof(double) * 2 * (size_t)t->n_shards);
    memset(m->params.grad, 0, nf * sizeof(float));
    if (c->deterministic) /* every micro-batch starts from the same running statistics */
        memcpy(t->state0, m->state.val, ns * sizeof(float));

    for (int k = 0; k < t->micro; k++) {
        mpq_step s = mpq_model_step(m, t->micro_n, 1);
        int shard = t->rank * t->micro + k;
        if (c->deterministic) {
            s.grad = t->gbuf[k];
            s.state = t->sbuf[k];
            memset(s.grad, 0, nf * sizeof(float));
            memcpy(s.state, t->state0, ns * sizeof(float));
        }
        if (c->sync_bn && t->n_ranks > 1 && !c->deterministic) s.reduce = mpq_comm_reducer(t->comm);
        memcpy(mpq_model_input(m), t->xb + (size_t)k * t->micro_n * len,
               (size_t)t->micro_n * len * sizeof(float));
        const int *y = t->yb + (size_t)k * t->micro_n;
        mpq_model_forward(m, &s);
        int wrong = 0;
        double ce = mpq_softmax_ce_forward(t->micro_n, m->num_classes, mpq_model_logits(m), y,
                                           t->prob, &wrong);
        metrics[2 * shard] = ce;
        metrics[2 * shard + 1] = wrong;
        mpq_softmax_ce_backward(t->micro_n, m->num_classes, t->prob, y, 1.0f / t->micro_n,
                                mpq_model_dlogits(m));
        mpq_model_backward(m, &s, t->gs ? on_ready : NULL, t->gs);
    }
    st->t_compute = mpq_comm_wtime() - t0 - st->t_data;

    double tc = mpq_comm_wtime();
    if (c->deterministic) {
        /* one fixed tree over the virtual shards, then the mean */
        rc = mpq_comm_tree_sum(t->comm, t->gbuf, t->micro, c->virtual_shards, nf, m->params.grad);
        if (rc == 0 && ns)
            rc = mpq_comm_tree_sum(t->comm, t->sbuf, t->micro, c->virtual_shards, ns,
                                   m->state.val);
        if (rc < 0) return rc;
        float inv = 1.0f / (float)c->virtual_shards;
        for (size_t i = 0; i < nf; i++) m->params.grad[i] *= inv;
        for (size_t i = 0; i < ns; i++) m->state.val[i] *= inv;
        st->bytes = 4.0 * (double)(nf + ns);
    } else {
        if (t->gs) {
            MPQ_TRY(mpq_gradsync_finish(t->gs));
            double wait;
            mpq_gradsync_stats(t->gs, &wait, &st->bytes);
        }
        MPQ_TRY(average_state(t));
    }
    double sums[2];
    MPQ_TRY(shard_sums(t, metrics, 2, sums));
    st->t_comm = mpq_comm_wtime() - tc;
    double B = (double)c->batch_size;
    st->ce = sums[0] / B;
    st->err = sums[1] / B;

    /* terms identical on every rank: after the averaging */
    mpq_model_size(m, &t->budget, m->params.grad, &st->size);
    st->loss = st->ce + t->budget.lambda2 * st->size.loss2 + t->budget.lambda3 * st->size.loss3;
    if (!isfinite(st->loss))
        return MPQ_FAIL(MPQ_E_NUMERIC,
                        "[%s] the loss is %g at step %ld: training diverged (no checkpoint of "
                        "this state is written) ---> HINT: lower initial_learning_rate",
                        c->experiment, st->loss, step);

    if (c->weight_decay > 0) {
        if (c->decay_quant_params) {
            mpq_weight_decay(nf, c->weight_decay, m->params.val, m->params.grad);
        } else {
            for (int i = 0; i < m->params.n_info; i++) {
                const mpq_param_info *p = &m->params.info[i];
                if (p->kind != MPQ_PKIND_QUANT)
                    mpq_weight_decay(p->s.n, c->weight_decay, mpq_at(m->params.val, p->s),
                                     mpq_at(m->params.grad, p->s));
            }
        }
    }
    if (t->budget.target_w_kbytes > 0 || t->budget.target_a_kbytes > 0)
        mpq_model_clip_quant_grads(m);
    if (c->optimizer == MPQ_OPTIMIZER_ADAM)
        mpq_adam_step(nf, lr, c->adam_beta1, c->adam_beta2, c->adam_eps, step + 1, m->params.val,
                      m->params.grad, m->params.opt[0], m->params.opt[1]);
    else
        mpq_sgd_step(nf, lr, c->momentum, m->params.val, m->params.grad, m->params.opt[0]);
    mpq_model_project(m);
    return MPQ_OK;
}

/* ---- checkpoints --------------------------------------------------------------------------- */

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
    in->config = t->cfg_dump;
    in->history = t->hist;
    in->history_rows = t->hist_rows;
    in->history_cols = HIST_COLS;
    snprintf(in->history_columns, sizeof in->history_columns, "%s", results_header);
}

/* Collective: writes a checkpoint (with_optimizer; then the directory is pruned to
 * keep_checkpoints) or a parameter file. A state with a non-finite value is never written. */
static int save(trainer *t, const char *path, long steps_done, double lr,
                const mpq_train_result *res, int with_optimizer)
{
    int rc = MPQ_OK;
    for (int k = 0; k < 2 && rc == 0; k++) {
        const mpq_params *r = k ? &t->m.state : &t->m.params;
        for (size_t i = 0; i < r->n_floats; i++)
            if (!isfinite(r->val[i])) {
                rc = MPQ_FAIL(MPQ_E_NUMERIC, "[%s] %s %zu is %g after step %ld: not writing '%s'",
                              t->cfg->experiment, k ? "BN statistic" : "parameter", i,
                              r->val[i], steps_done, path);
                break;
            }
    }
    if (t->rank == 0) { /* what a crash after this checkpoint must not lose */
        fflush(t->steps_csv);
        fflush(t->timing_csv);
        fflush(t->results_csv);
        fflush(t->val_csv);
    }
    mpq_ckpt_info in;
    fill_info(t, steps_done, lr, res, &in);
    double t0 = mpq_comm_wtime();
    rc = mpq_comm_agree(t->comm, rc);
    if (rc == 0) rc = mpq_ckpt_save(t->comm, path, &t->m, &in, with_optimizer);
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
static int resume_path(trainer *t, const char *spec, char *path, size_t bytes)
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
    int rc = mpq_cfg_parse_text(in->config, path, in->experiment, &old);
    if (rc < 0) return mpq_err_push(rc, "the configuration stored in checkpoint '%s'", path);
    const struct {
        const char *key, *was, *now;
    } str[] = {
        {"model", old.model, c->model},
        {"shortcut_type", old.shortcut_type, c->shortcut_type},
        {"w_quantize", old.wq.method, c->wq.method},
        {"a_quantize", old.aq.method, c->aq.method},
        {"optimizer", optimizer_name(old.optimizer), optimizer_name(c->optimizer)},
        {"train_data", old.train_data, c->train_data},
    };
    const struct {
        const char *key;
        double was, now;
    } num[] = {
        {"batch_size", old.batch_size, c->batch_size},
        {"seed", (double)old.seed, (double)c->seed},
        {"scale_layer", old.scale_layer, c->scale_layer},
        {"num_classes", old.num_classes, c->num_classes},
        {"augment", old.augment, c->augment},
        {"crop_size", old.crop_size, c->crop_size},
        {"synthetic_samples", old.synthetic_samples, c->synthetic_samples},
        {"synthetic_height", old.synthetic_height, c->synthetic_height},
        {"synthetic_width", old.synthetic_width, c->synthetic_width},
        {"synthetic_channels", old.synthetic_channels, c->synthetic_channels},
        {"steps per epoch", (double)in->steps_per_epoch, (double)t->spe},
    };
    static const char hint[] = "---> HINT: resume with the checkpoint's configuration (`mpq "
                               "inspect` prints it) or train into another output_dir";
    for (size_t i = 0; i < sizeof str / sizeof str[0]; i++)
        if (strcmp(str[i].was, str[i].now))
            return MPQ_FAIL(MPQ_E_CONFIG, "checkpoint '%s' does not fit the configuration: %s is "
                            "'%s' there and '%s' here %s", path, str[i].key, str[i].was,
                            str[i].now, hint);
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++)
        if (num[i].was != num[i].now)
            return MPQ_FAIL(MPQ_E_CONFIG, "checkpoint '%s' does not fit the configuration: %s is "
                            "%g there and %g here %s", path, num[i].key, num[i].was, num[i].now,
                            hint);
    if (in->history_cols != HIST_COLS)
        return MPQ_FAIL(MPQ_E_FORMAT, "checkpoint '%s': its history has %d columns, not %d", path,
                        in->history_cols, HIST_COLS);
    return MPQ_OK;
}

/* Collective: restores the model, the optimizer, the data position, the metric history and the
 * running sums from the checkpoint at path. */
static int resume(trainer *t, const char *path, mpq_train_result *res)
{
    mpq_ckpt_info in;
    double t0 = mpq_comm_wtime();
    int rc = mpq_ckpt_read_info(t->comm, path, &in);
    if (rc < 0) return rc;
    rc = mpq_comm_agree(t->comm, check_config(t, &in, path));
    if (rc == 0)
        rc = mpq_ckpt_load(t->comm, path, &t->m, t->cfg->model, MPQ_CKPT_LOAD_OPTIMIZER);
    for (int i = 0; rc == 0 && i < in.history_rows; i++)
        rc = append_hist(t, in.history + (size_t)HIST_COLS * i);
    if (rc == 0) {
        t->start_step = in.step;
        t->epoch_err = in.epoch_err;
        t->epoch_n = in.epoch_n;
        res->first_loss = in.first_loss;
        res->best_val_err = in.best_val_err;
        if (!t->quiet)
            mpq_log_info("resuming from %s: step %ld (epoch %ld, step %ld of it), written by %d "
                         "rank(s); loaded in %.2f s", path, in.step, in.epoch, in.step_in_epoch,
                         in.n_ranks, mpq_comm_wtime() - t0);
    }
    mpq_ckpt_info_free(&in);
    return mpq_comm_agree(t->comm, rc);
}

/* Collective: the cfg's weightfile (mpq or nnabla); quantizers start from the loaded weights. */
static int load_weightfile(trainer *t)
{
    MPQ_TRY(mpq_ckpt_load_weights(t->comm, t->cfg->weightfile, &t->m));
    mpq_model_init_quantizers(&t->m, 1);
    return MPQ_OK;
}

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

/* Rank 0: whether checkpoint_every_minutes have passed since the last checkpoint. */
static int due_by_time(const trainer *t)
{
    double minutes = t->cfg->checkpoint_every_minutes;
    return minutes > 0 && mpq_comm_wtime() - t->last_save >= 60.0 * minutes;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void progress(const trainer *t, long step, const step_stats *st, double elapsed,
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

/* Collective: validation of the state after `step`, a validation.csv row, and whether it is the
 * best state within the budgets so far (*best; res->best_val_err is updated). */
static int validate(trainer *t, long step, mpq_train_result *res, double *verr, int *best)
{
    double vce;
    mpq_size_terms now;
    MPQ_TRY(mpq_evaluate(t->comm, &t->m, t->val, t->xb, t->yb, verr, &vce));
    mpq_model_size(&t->m, &t->budget, NULL, &now);
    int within = mpq_size_within_budget(&now, &t->budget);
    *best = within && (isnan(res->best_val_err) || *verr < res->best_val_err);
    if (*best) res->best_val_err = *verr;
    if (within) t->last_budget_val = step;
    if (t->rank == 0)
        fprintf(t->val_csv, "%ld,%ld,%.9g,%.9g,%.9g,%.9g,%d,%d\n", step, step / t->spe + 1, *verr,
                vce, now.kbytes_w, now.kbytes_a, within, *best);
    return MPQ_OK;
}

static int save_best(trainer *t, long step, float lr, const mpq_train_result *res)
{
    char path[sizeof t->dir + 32];
    snprintf(path, sizeof path, "%s/%s", t->dir, MPQ_CKPT_BEST);
    return save(t, path, step + 1, lr, res, 0);
}

/* Collective, after a step that is not the last of an epoch: when a budget is set, the reference
 * validates after every step whose state meets the budgets and keeps the best such state (which
 * catches the states within budget that quantizers moving across a bitwidth boundary pass
 * through between epoch ends). budget_validate_every_steps = N: at most once per N steps. */
static int validate_within_budget(trainer *t, long step, float lr, mpq_train_result *res,
                                  int live)
{
    const long every = t->cfg->budget_validate_every_steps;
    int budgeted = t->budget.target_w_kbytes > 0.0f || t->budget.target_a_kbytes > 0.0f;
    if (!t->val || !budgeted || every <= 0) return MPQ_OK;
    if (t->last_budget_val >= 0 && step - t->last_budget_val < every) return MPQ_OK;
    mpq_size_terms now; /* the parameters, hence the sizes, are equal on every rank */
    mpq_model_size(&t->m, &t->budget, NULL, &now);
    if (!mpq_size_within_budget(&now, &t->budget)) return MPQ_OK;
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

/* Collective, after the last step of an epoch (or of the run): validation, the best parameters
 * within budget, the results row and the quantizer histories. */
static int end_epoch(trainer *t, long step, float lr, const step_stats *st, mpq_train_result *res,
                     int live)
{
    double verr = NAN;
    long epoch = step / t->spe;
    int rc, best = 0;
    if (t->val) {
        MPQ_TRY(validate(t, step, res, &verr, &best));
        res->val_err = verr;
    }
    res->train_err = t->epoch_err / (double)t->epoch_n;
    double row[HIST_COLS] = {(double)(step + 1), res->train_err, verr, st->loss, st->ce,
                             st->size.loss2, st->size.loss3, st->size.kbytes_w,
                             st->size.kbytes_a, (double)(epoch + 1), lr,
                             mpq_comm_wtime() - t->epoch_start};
    rc = append_hist(t, row);
    if (t->rank == 0 && rc == 0) {
        if (live) printf("\n");
        write_results_row(t->results_csv, row);
        fflush(t->results_csv);
        fflush(t->steps_csv);
        fflush(t->timing_csv);
        fflush(t->val_csv);
        if (!t->quiet)
            mpq_log_info("epoch %ld: train err %.2f%%  val err %.2f%%  loss %.4f  "
                         "W %.2f KB  A %.2f KB  (%.1f s)",
                         epoch + 1, 100.0 * res->train_err, 100.0 * verr, st->loss,
                         st->size.kbytes_w, st->size.kbytes_a, row[11]);
        if (!t->quiet && t->quantized) mpq_report_table(stdout, &t->m, &t->budget);
        rc = mpq_report_histories(t->dir, &t->m, epoch + 1);
    }
    rc = mpq_comm_agree(t->comm, rc);
    if (rc == 0 && best) rc = save_best(t, step, lr, res);
    t->epoch_err = 0.0;
    t->epoch_n = 0;
    t->epoch_start = mpq_comm_wtime();
    return rc;
}

int mpq_train(mpq_comm *comm, const mpq_cfg *cfg, const char *cfg_text, const mpq_train_opts *o,
              mpq_train_result *res)
{
    trainer t;
    struct sigaction old_actions[2];
    char ckpt[sizeof t.dir + 64];
    int rc;
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
    (void)cfg_text;
    signals_install(old_actions);

    char bind[256];
    int threads = mpq_comm_bind(comm, cfg->threads, bind, sizeof bind);
    mpq_gemm_set_threads(threads);
    if (!o->quiet) printf("%s\n", bind);

    rc = setup_batching(&t);
    if (rc == 0) rc = setup_data(&t);
    rc = mpq_comm_agree(comm, rc);
    if (rc == 0) rc = mpq_comm_agree(comm, setup_model(&t));
    if (rc == 0) {
        t.spe = t.train->steps_per_epoch;
        t.total_steps = (long)floor(cfg->epochs * (double)t.spe);
        if (cfg->max_steps > 0 && cfg->max_steps < t.total_steps) t.total_steps = cfg->max_steps;
        if (t.total_steps < 1) t.total_steps = 1;
        t.cfg_dump = mpq_cfg_dump_string(cfg);
        rc = mpq_comm_agree(comm, t.cfg_dump ? MPQ_OK : MPQ_FAIL(MPQ_E_NOMEM, "out of memory"));
    }
    if (rc == 0) rc = resume_path(&t, o->resume, ckpt, sizeof ckpt);
    if (rc == 0 && !ckpt[0] && *cfg->weightfile) rc = load_weightfile(&t);
    if (rc == 0) rc = mpq_comm_agree(comm, broadcast_values(&t));
    if (rc == 0 && ckpt[0]) rc = resume(&t, ckpt, res);
    if (rc == 0) rc = mpq_comm_agree(comm, open_outputs(&t, ckpt[0] != '\0'));
    if (rc < 0) goto out;
    if (!o->quiet)
        mpq_log_info("signal handlers installed on %d rank(s): SIGUSR1 or SIGTERM checkpoints and "
                     "stops with exit status 75", t.n_ranks);

    mpq_size_terms size0;
    mpq_model_size(&t.m, &t.budget, NULL, &size0);
    if (t.rank == 0 && !o->quiet) {
        printf("model %s: %dx%dx%d input, %d nodes, %zu parameters, %.1f M multiply-adds per "
               "sample; %d rank(s) x %d thread(s), global batch %d (%d micro-batch(es) of %d per "
               "rank), %ld steps/epoch, %ld steps\n",
               cfg->model, t.m.in_h, t.m.in_w, t.m.in_c, t.m.n_nodes, t.m.params.n_floats,
               mpq_model_macs(&t.m) / 1e6, t.n_ranks, threads, cfg->batch_size, t.micro, t.micro_n,
               t.spe, t.total_steps);
        mpq_report_table(stdout, &t.m, &t.budget);
    }
    if (t.rank == 0 && !ckpt[0]) rc = mpq_report_histories(t.dir, &t.m, 0);
    rc = mpq_comm_agree(comm, rc);
    if (rc < 0) goto out;
    rc = mpq_comm_agree(comm, t.train->ops->seek(t.train, t.start_step / t.spe,
                                                 t.start_step % t.spe));
    if (rc < 0) goto out;

    int live = t.rank == 0 && !o->quiet && cfg->progress && isatty(STDOUT_FILENO);
    int ckpt_on = cfg->checkpoint_every_steps > 0 || cfg->checkpoint_every_minutes > 0;
    long report_every = t.spe / 4 > 0 ? t.spe / 4 : 1;
    double start = mpq_comm_wtime();
    t.epoch_start = t.last_save = start;
    step_stats st;
    for (long step = t.start_step; step < t.total_steps; step++) {
        long epoch = step / t.spe;
        float lr = mpq_lr_at(cfg, step, t.spe);
        double ts = mpq_comm_wtime();
        rc = mpq_comm_agree(comm, train_step(&t, lr, step, &st));
        if (rc < 0) goto out; /* a diverged state is never checkpointed */
        if (cfg->check_replicas) {
            rc = check_replicas(&t, step);
            if (rc < 0) goto out;
        }
        if (step == 0) res->first_loss = st.loss;
        res->last_loss = st.loss;
        t.epoch_err += st.err;
        t.epoch_n++;
        /* step times (max over ranks), the communication wait of the rank that arrived last
         * (min over ranks, as the max of its negation: what overlap did not hide, without the
         * other ranks' wait for it), then: a stop signal on any rank, rank 0's clock */
        double stimes[7] = {st.t_compute,        st.t_data,
                            st.t_comm,           -st.t_comm,
                            st.bytes,            (double)stop_signal,
                            t.rank == 0 && due_by_time(&t) ? 1.0 : 0.0};
        rc = mpq_comm_allreduce_max_double(comm, stimes, 7);
        if (rc < 0) goto out;
        if (t.rank == 0) {
            fprintf(t.steps_csv, "%ld,%ld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", step, epoch,
                    lr, st.loss, st.ce, st.size.loss2, st.size.loss3, st.err, st.size.kbytes_w,
                    st.size.kbytes_a);
            fprintf(t.timing_csv, "%ld,%.6f,%.6f,%.6f,%.6f,%.0f,%.1f\n", step, stimes[0],
                    stimes[1], stimes[2], -stimes[3], stimes[4],
                    cfg->batch_size / (mpq_comm_wtime() - ts));
            if (!o->quiet && (live || (step + 1) % report_every == 0 || step == t.start_step))
                progress(&t, step, &st, mpq_comm_wtime() - start, step + 1 - t.start_step, live);
        }
        int last = step + 1 == t.total_steps;
        if ((step + 1) % t.spe == 0 || last) rc = end_epoch(&t, step, lr, &st, res, live);
        else rc = validate_within_budget(&t, step, lr, res, live);
        if (rc < 0) goto out;
        int sig = stimes[5] > 0 && !last;
        if (sig || stimes[6] > 0 || (last && ckpt_on) ||
            (cfg->checkpoint_every_steps > 0 && (step + 1) % cfg->checkpoint_every_steps == 0)) {
            mpq_ckpt_path(t.dir, step + 1, ckpt, sizeof ckpt);
            rc = save(&t, ckpt, step + 1, lr, res, 1);
            if (rc < 0) goto out;
        }
        if (sig) {
            rc = MPQ_FAIL(MPQ_E_INTERRUPTED, "stopped by %s after step %ld of %ld; checkpoint "
                          "'%s' ---> HINT: run the same command with --resume auto to continue",
                          (int)stimes[5] == SIGTERM ? "SIGTERM" : "SIGUSR1", step + 1,
                          t.total_steps, ckpt);
            goto out;
        }
    }
    res->steps = t.total_steps;
    res->seconds = mpq_comm_wtime() - start;
    res->images_per_s = res->seconds > 0 ? (double)(t.total_steps - t.start_step) *
                                               cfg->batch_size / res->seconds
                                         : 0;
    mpq_model_size(&t.m, &t.budget, NULL, &res->size);
    res->checksum = params_checksum(&t.m);
    if (t.rank == 0) {
        char svg[sizeof t.dir + 32];
        snprintf(svg, sizeof svg, "%s/bitwidth.svg", t.dir);
        rc = mpq_report_bitwidth_svg(svg, &t.m, cfg->experiment);
        if (!o->quiet && rc == 0) {
            printf("\nlearned quantizers after %ld steps (%.1f s, %.0f img/s):\n", res->steps,
                   res->seconds, res->images_per_s);
            mpq_report_table(stdout, &t.m, &t.budget);
            printf("bitwidth picture: %s\n", svg);
            printf("parameter checksum: %016llx\n", (unsigned long long)res->checksum);
        }
    }
    rc = mpq_comm_agree(comm, rc);
out:
    signals_restore(old_actions);
    trainer_free(&t);
    return rc;
}

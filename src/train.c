/* The training loop of one rank. A step: read this rank's slice of the global batch; for each of
 * its micro-batches (one normally; V/R virtual shards in deterministic mode) forward, loss and
 * backward, with buckets of the gradient allreduced while backward goes on; then the size
 * penalties (identical on every rank, so added after the averaging), weight decay, the
 * reference's quantizer-gradient clipping, the optimizer, the quantizer projections. BN running
 * statistics are averaged over replicas every step, so every rank holds the same state.
 * Owns every buffer it allocates (freed on every path through trainer_free). */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "data.h"
#include "evaluate.h"
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
    FILE *steps_csv, *results_csv, *timing_csv;
    char dir[MPQ_PATH_MAX + 64];
} trainer;

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

static int open_source(const trainer *t, const char *spec, int train, mpq_source **out)
{
    const mpq_cfg *c = t->cfg;
    mpq_source_opts o = {
        .global_batch = train ? c->batch_size : c->val_batch_size,
        .rank = t->rank,
        .n_ranks = t->n_ranks,
        .seed = (uint64_t)c->seed,
        .train = train,
        .augment = c->augment, /* validation: the same normalization, no random transforms */
        .prefetch = 1,
    };
    if (!strcmp(spec, "synthetic")) {
        long n = train ? c->synthetic_samples : c->synthetic_samples / 4;
        if (n < o.global_batch && !train) n = o.global_batch;
        int k = c->num_classes > 0 ? c->num_classes : 10;
        /* validation draws other samples of the same distribution */
        return mpq_source_synthetic_create(&o, n, c->synthetic_height, c->synthetic_width,
                                           c->synthetic_channels, k,
                                           (uint64_t)c->seed * 2654435761u + (train ? 0 : 1), out);
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
    if (rc == 0) rc = open_source(t, c->train_data, 1, &t->train);
    if (rc == 0 && *c->val_data) rc = open_source(t, c->val_data, 0, &t->val);
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

static int setup_model(trainer *t)
{
    const mpq_cfg *c = t->cfg;
    const mpq_data_info *in = &t->train->info;
    int classes = c->num_classes > 0 ? c->num_classes : in->num_classes;
    mpq_model_desc d = {c->model, c->shortcut_type, c->scale_layer};
    mpq_model_init(&t->m, in->h, in->w, in->c, classes, &c->wq, &c->aq, c->bn_momentum);
    MPQ_TRY(mpq_model_build(&t->m, &d));
    int plan = t->micro_n;
    if (t->val && t->val->max_local_batch > plan) plan = t->val->max_local_batch;
    MPQ_TRY(mpq_model_plan(&t->m, plan));
    if (*c->weightfile)
        return MPQ_FAIL(MPQ_E_NOTYET, "[%s] weightfile: loading checkpoints is not implemented yet "
                        "(issue 6)", c->experiment);
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
    t->budget = (mpq_budget){
        .target_w_kbytes = c->target_weight_kbytes,
        .target_a_kbytes = c->target_activation_kbytes,
        .act_sum = !strcmp(c->target_activation_type, "sum"),
        .lambda2 = c->initial_cost_lambda2,
        .lambda3 = c->initial_cost_lambda3,
    };
    return MPQ_OK;
}

/* Every rank starts from rank 0's values (initialisation is deterministic anyway). */
static int broadcast_values(trainer *t)
{
    MPQ_TRY(mpq_comm_bcast(t->comm, t->m.params.val, t->m.params.n_floats * sizeof(float), 0));
    return mpq_comm_bcast(t->comm, t->m.state.val, t->m.state.n_floats * sizeof(float), 0);
}

static int open_outputs(trainer *t)
{
    const mpq_cfg *c = t->cfg;
    char path[sizeof t->dir + 32];
    snprintf(t->dir, sizeof t->dir, "%s", *c->output_dir ? c->output_dir : c->experiment);
    if (t->rank != 0) return MPQ_OK;
    MPQ_TRY(mkdirs(t->dir));
    snprintf(path, sizeof path, "%s/steps.csv", t->dir);
    t->steps_csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/results.csv", t->dir);
    t->results_csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/timing.csv", t->dir);
    t->timing_csv = fopen(path, "w");
    if (!t->steps_csv || !t->results_csv || !t->timing_csv)
        return MPQ_FAIL(MPQ_E_IO, "cannot write into '%s': %s", t->dir, strerror(errno));
    fprintf(t->steps_csv, "step,epoch,lr,loss,loss1,loss2,loss3,train_err,kbytes_w,kbytes_a\n");
    fprintf(t->results_csv,
            "iter,train_err,val_err,loss,loss1,loss2,loss3,kbytes_w,kbytes_a,epoch,lr,seconds\n");
    fprintf(t->timing_csv,
            "step,compute_s,data_wait_s,comm_wait_s,comm_bytes,images_per_s\n");
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
    if (t->steps_csv) fclose(t->steps_csv);
    if (t->results_csv) fclose(t->results_csv);
    if (t->timing_csv) fclose(t->timing_csv);
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

int mpq_train(mpq_comm *comm, const mpq_cfg *cfg, const char *cfg_text, const mpq_train_opts *o,
              mpq_train_result *res)
{
    trainer t;
    int rc;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    res->val_err = res->best_val_err = NAN;
    t.cfg = cfg;
    t.comm = comm;
    t.rank = mpq_comm_rank(comm);
    t.n_ranks = mpq_comm_size(comm);
    (void)cfg_text;

    char bind[256];
    int threads = mpq_comm_bind(comm, cfg->threads, bind, sizeof bind);
    mpq_gemm_set_threads(threads);
    if (!o->quiet) printf("%s\n", bind);

    rc = setup_batching(&t);
    if (rc == 0) rc = setup_data(&t);
    rc = mpq_comm_agree(comm, rc);
    if (rc == 0) rc = mpq_comm_agree(comm, setup_model(&t));
    if (rc == 0) rc = mpq_comm_agree(comm, broadcast_values(&t));
    if (rc == 0) rc = mpq_comm_agree(comm, open_outputs(&t));
    if (rc < 0) goto out;

    t.spe = t.train->steps_per_epoch;
    t.total_steps = (long)floor(cfg->epochs * (double)t.spe);
    if (cfg->max_steps > 0 && cfg->max_steps < t.total_steps) t.total_steps = cfg->max_steps;
    if (t.total_steps < 1) t.total_steps = 1;
    if (o->resume) {
        rc = mpq_comm_agree(comm, MPQ_FAIL(MPQ_E_NOTYET, "--resume: checkpoints are not "
                                           "implemented yet (issue 6)"));
        goto out;
    }
    mpq_size_terms size0;
    mpq_model_size(&t.m, &t.budget, NULL, &size0);
    if (t.rank == 0 && !o->quiet) {
        printf("model %s: %d nodes, %zu parameters, %.1f MFLOP/sample; %d rank(s) x %d thread(s), "
               "global batch %d (%d micro-batch(es) of %d per rank), %ld steps/epoch, %ld steps\n",
               cfg->model, t.m.n_nodes, t.m.params.n_floats, mpq_model_flops(&t.m) / 1e6,
               t.n_ranks, threads, cfg->batch_size, t.micro, t.micro_n, t.spe, t.total_steps);
        mpq_report_table(stdout, &t.m, &t.budget);
    }
    if (t.rank == 0) rc = mpq_report_histories(t.dir, &t.m, 0);
    rc = mpq_comm_agree(comm, rc);
    if (rc < 0) goto out;
    rc = mpq_comm_agree(comm, t.train->ops->seek(t.train, 0, 0));
    if (rc < 0) goto out;

    int live = t.rank == 0 && !o->quiet && cfg->progress && isatty(STDOUT_FILENO);
    long report_every = t.spe / 4 > 0 ? t.spe / 4 : 1;
    double start = mpq_comm_wtime(), epoch_err = 0.0, epoch_start = start;
    long epoch_n = 0;
    step_stats st;
    for (long step = 0; step < t.total_steps; step++) {
        long epoch = step / t.spe;
        float lr = mpq_lr_at(cfg, step, t.spe);
        double ts = mpq_comm_wtime();
        rc = mpq_comm_agree(comm, train_step(&t, lr, step, &st));
        if (rc < 0) goto out;
        if (cfg->check_replicas) {
            rc = check_replicas(&t, step);
            if (rc < 0) goto out;
        }
        if (step == 0) res->first_loss = st.loss;
        res->last_loss = st.loss;
        epoch_err += st.err;
        epoch_n++;
        double stimes[4] = {st.t_compute, st.t_data, st.t_comm, st.bytes};
        MPQ_TRY(mpq_comm_allreduce_max_double(comm, stimes, 4));
        if (t.rank == 0) {
            fprintf(t.steps_csv, "%ld,%ld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", step, epoch,
                    lr, st.loss, st.ce, st.size.loss2, st.size.loss3, st.err, st.size.kbytes_w,
                    st.size.kbytes_a);
            fprintf(t.timing_csv, "%ld,%.6f,%.6f,%.6f,%.0f,%.1f\n", step, stimes[0], stimes[1],
                    stimes[2], stimes[3], cfg->batch_size / (mpq_comm_wtime() - ts));
            if (!o->quiet && (live || (step + 1) % report_every == 0 || step == 0))
                progress(&t, step, &st, mpq_comm_wtime() - start, step + 1, live);
        }
        int epoch_end = (step + 1) % t.spe == 0 || step + 1 == t.total_steps;
        if (!epoch_end) continue;

        double verr = NAN, vce = NAN;
        if (t.val) {
            rc = mpq_evaluate(comm, &t.m, t.val, t.xb, t.yb, &verr, &vce);
            if (rc < 0) goto out;
            res->val_err = verr;
            mpq_size_terms now;
            mpq_model_size(&t.m, &t.budget, NULL, &now);
            if (mpq_size_within_budget(&now, &t.budget) &&
                (isnan(res->best_val_err) || verr < res->best_val_err))
                res->best_val_err = verr;
        }
        res->train_err = epoch_err / epoch_n;
        if (t.rank == 0) {
            if (live) printf("\n");
            fprintf(t.results_csv, "%ld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%ld,%.9g,%.3f\n",
                    step + 1, res->train_err, verr, st.loss, st.ce, st.size.loss2, st.size.loss3,
                    st.size.kbytes_w, st.size.kbytes_a, epoch + 1, lr,
                    mpq_comm_wtime() - epoch_start);
            fflush(t.results_csv);
            fflush(t.steps_csv);
            fflush(t.timing_csv);
            if (!o->quiet)
                mpq_log_info("epoch %ld: train err %.2f%%  val err %.2f%%  loss %.4f  "
                             "W %.2f KB  A %.2f KB  (%.1f s)",
                             epoch + 1, 100.0 * res->train_err, 100.0 * verr, st.loss,
                             st.size.kbytes_w, st.size.kbytes_a, mpq_comm_wtime() - epoch_start);
            rc = mpq_report_histories(t.dir, &t.m, epoch + 1);
        }
        rc = mpq_comm_agree(comm, rc);
        if (rc < 0) goto out;
        epoch_err = 0.0;
        epoch_n = 0;
        epoch_start = mpq_comm_wtime();
    }
    res->steps = t.total_steps;
    res->seconds = mpq_comm_wtime() - start;
    res->images_per_s = res->seconds > 0 ? t.total_steps * (double)cfg->batch_size / res->seconds : 0;
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
    trainer_free(&t);
    return rc;
}

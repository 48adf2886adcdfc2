/* One training step of one rank (step.h): batch, forward/loss/backward per micro-batch with the
 * gradient buckets allreduced during backward, the replica average of the BN statistics, the
 * metric sums, then the update (penalties, decay, clipping, optimizer, projections). Shared by
 * `mpq train` (train/loop.c) and `mpq bench`, so the benchmark measures the trainer's step. */
#include "train/step.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "kernels/gemm.h"
#include "layers/loss.h"
#include "optim/optim.h"
#include "train.h"

enum { THREAD_CHANGES_LOGGED = 3 }; /* thread-count changes logged per run */

int mpq_batching_of(const mpq_cfg *c, int n_ranks, mpq_batching *b)
{
    int B = c->batch_size, R = n_ranks;
    if (c->deterministic) {
        int V = c->virtual_shards;
        if (V < 1 || B % V || V % R)
            return MPQ_FAIL(
                MPQ_E_CONFIG,
                "[%s] deterministic mode needs virtual_shards (%d) to divide batch_size "
                "(%d) and the rank count (%d) to divide virtual_shards",
                c->experiment, V, B, R);
        b->micro = V / R;
        b->micro_n = B / V;
    } else {
        if (B % R)
            return MPQ_FAIL(MPQ_E_CONFIG, "[%s] batch_size %d is not divisible by %d ranks",
                            c->experiment, B, R);
        b->micro = 1;
        b->micro_n = B / R;
    }
    b->n_shards = b->micro * R;
    return MPQ_OK;
}

/* The deterministic mode's per-micro-batch gradient and statistics buffers. */
static int alloc_shard_buffers(mpq_trainstep *s)
{
    size_t nf = s->m->params.n_floats, ns = s->m->state.n_floats;
    s->gbuf = calloc((size_t)s->b.micro, sizeof *s->gbuf);
    s->sbuf = calloc((size_t)s->b.micro, sizeof *s->sbuf);
    s->state0 = mpq_alloc_floats(ns);
    if (!s->gbuf || !s->sbuf || !s->state0) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    for (int k = 0; k < s->b.micro; k++) {
        s->gbuf[k] = mpq_alloc_floats(nf);
        s->sbuf[k] = mpq_alloc_floats(ns);
        if (!s->gbuf[k] || !s->sbuf[k])
            return MPQ_FAIL(MPQ_E_NOMEM, "out of memory for %d gradient buffers", s->b.micro);
    }
    return MPQ_OK;
}

int mpq_trainstep_init(mpq_trainstep *s, const mpq_cfg *c, mpq_comm *comm, mpq_model *m,
                       const mpq_batching *b, int max_local)
{
    memset(s, 0, sizeof *s);
    s->cfg = c;
    s->comm = comm;
    s->m = m;
    s->b = *b;
    s->rank = mpq_comm_rank(comm);
    s->n_ranks = mpq_comm_size(comm);
    s->budget = mpq_train_budget(c);
    s->threads_now = omp_get_max_threads();
    mpq_threadtune_init(&s->threads, s->threads_now, c->threads_adapt);
    size_t len = (size_t)m->in_h * m->in_w * m->in_c, nf = m->params.n_floats;
    size_t local = (size_t)b->micro * b->micro_n;
    if (max_local > (int)local) local = (size_t)max_local;
    int plan = max_local > b->micro_n ? max_local : b->micro_n;
    s->xb = mpq_alloc_floats(local * len);
    s->yb = calloc(local, sizeof *s->yb);
    s->prob = mpq_alloc_floats((size_t)plan * m->num_classes);
    s->state_d = calloc(m->state.n_floats + 1, sizeof *s->state_d);
    if (!s->xb || !s->yb || !s->prob || !s->state_d)
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory for the batch buffers");
    if (c->deterministic) return alloc_shard_buffers(s);
    if (s->n_ranks > 1) {
        size_t bucket = (size_t)(c->bucket_mbytes * 1e6 / sizeof(float));
        return mpq_gradsync_create(comm, m->params.grad, nf, bucket ? bucket : nf,
                                   c->allreduce_in_place, &s->gs);
    }
    return MPQ_OK;
}

void mpq_trainstep_free(mpq_trainstep *s)
{
    if (s->gbuf)
        for (int k = 0; k < s->b.micro; k++)
            free(s->gbuf[k]);
    if (s->sbuf)
        for (int k = 0; k < s->b.micro; k++)
            free(s->sbuf[k]);
    free(s->gbuf);
    free(s->sbuf);
    free(s->state0);
    free(s->xb);
    free(s->yb);
    free(s->prob);
    free(s->state_d);
    mpq_gradsync_free(s->gs);
    memset(s, 0, sizeof *s);
}

/* Backward's ready callback: the bucket allreduce, and the timeline when one is recorded. */
static void on_ready(void *ctx, size_t off)
{
    mpq_trainstep *s = ctx;
    if (s->gs) {
        mpq_gradsync_ready(s->gs, off);
        mpq_gradsync_progress(s->gs);
    }
    if (s->timeline) mpq_timeline_ready(s->timeline, off);
}

/* Replaces the BN state by its average over the ranks (non-deterministic mode). */
static int average_state(mpq_trainstep *s)
{
    size_t n = s->m->state.n_floats;
    float *v = s->m->state.val;
    if (s->n_ranks == 1 || n == 0) return MPQ_OK;
    for (size_t i = 0; i < n; i++)
        s->state_d[i] = v[i];
    MPQ_TRY(mpq_comm_allreduce_sum_double(s->comm, s->state_d, n));
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(s->state_d[i] / s->n_ranks);
    return MPQ_OK;
}

/* Sums per-shard metrics (each rank fills its own shards; the others are 0, so the sum over
 * ranks is exact) and adds them up in shard order: the same bits for any rank count. */
static int shard_sums(mpq_trainstep *s, double *v, int per, double *out)
{
    MPQ_TRY(mpq_comm_allreduce_sum_double(s->comm, v, (size_t)s->b.n_shards * per));
    for (int j = 0; j < per; j++) {
        out[j] = 0.0;
        for (int k = 0; k < s->b.n_shards; k++)
            out[j] += v[(size_t)k * per + j];
    }
    return MPQ_OK;
}

/* Test hook: MPQ_TEST_FAIL_RANK=r and MPQ_TEST_FAIL_STEP=s make rank r's batch of step s fail
 * like an unreadable shard, so tests can show that one rank's error ends every rank. */
static int injected_failure(const mpq_trainstep *s, long step)
{
    const char *r = getenv("MPQ_TEST_FAIL_RANK"), *k = getenv("MPQ_TEST_FAIL_STEP");
    if (!r || atoi(r) != s->rank || (k ? atol(k) : 0) != step) return MPQ_OK;
    return MPQ_FAIL(MPQ_E_IO,
                    "rank %d: cannot read its batch of step %ld (injected by "
                    "MPQ_TEST_FAIL_RANK)",
                    s->rank, step);
}

/* Forward, loss and backward of every micro-batch of this rank; per-shard (cross-entropy sum,
 * wrong count) pairs into metrics. Gradients go to params.grad (buckets handed to the allreduce
 * as they become final) or, deterministic, to one buffer per micro-batch. */
static void run_micro_batches(mpq_trainstep *s, double *metrics, mpq_step_stats *stats)
{
    const mpq_cfg *c = s->cfg;
    mpq_model *m = s->m;
    size_t nf = m->params.n_floats, ns = m->state.n_floats;
    size_t len = (size_t)m->in_h * m->in_w * m->in_c;
    int n = s->b.micro_n;
    memset(m->params.grad, 0, nf * sizeof(float));
    if (c->deterministic) /* every micro-batch starts from the same running statistics */
        memcpy(s->state0, m->state.val, ns * sizeof(float));
    for (int k = 0; k < s->b.micro; k++) {
        mpq_step st = mpq_model_step(m, n, 1);
        int shard = s->rank * s->b.micro + k;
        if (c->deterministic) {
            st.grad = s->gbuf[k];
            st.state = s->sbuf[k];
            memset(st.grad, 0, nf * sizeof(float));
            memcpy(st.state, s->state0, ns * sizeof(float));
        }
        if (c->sync_bn && s->n_ranks > 1 && !c->deterministic)
            st.reduce = mpq_comm_reducer(s->comm);
        memcpy(mpq_model_input(m), s->xb + (size_t)k * n * len, (size_t)n * len * sizeof(float));
        const int *y = s->yb + (size_t)k * n;
        double t0 = mpq_comm_wtime();
        mpq_model_forward(m, &st);
        int wrong = 0;
        metrics[2 * shard] =
            mpq_softmax_ce_forward(n, m->num_classes, mpq_model_logits(m), y, s->prob, &wrong);
        metrics[2 * shard + 1] = wrong;
        double t1 = mpq_comm_wtime();
        mpq_softmax_ce_backward(n, m->num_classes, s->prob, y, 1.0f / n, mpq_model_dlogits(m));
        if (s->timeline) mpq_timeline_begin(s->timeline);
        mpq_model_backward(m, &st, s->gs || s->timeline ? on_ready : NULL, s);
        if (s->timeline) mpq_timeline_end(s->timeline);
        stats->t_forward += t1 - t0;
        stats->t_backward += mpq_comm_wtime() - t1;
    }
}

/* The mean gradient (and, deterministic, BN state) over the replicas; *bytes: allreduced. */
static int reduce_gradients(mpq_trainstep *s, double *bytes)
{
    const mpq_cfg *c = s->cfg;
    mpq_model *m = s->m;
    size_t nf = m->params.n_floats, ns = m->state.n_floats;
    if (c->deterministic) {
        /* one fixed tree over the virtual shards, then the mean */
        MPQ_TRY(
            mpq_comm_tree_sum(s->comm, s->gbuf, s->b.micro, c->virtual_shards, nf, m->params.grad));
        if (ns)
            MPQ_TRY(mpq_comm_tree_sum(s->comm, s->sbuf, s->b.micro, c->virtual_shards, ns,
                                      m->state.val));
        float inv = 1.0f / (float)c->virtual_shards;
        for (size_t i = 0; i < nf; i++)
            m->params.grad[i] *= inv;
        for (size_t i = 0; i < ns; i++)
            m->state.val[i] *= inv;
        *bytes = 4.0 * (double)(nf + ns);
        return MPQ_OK;
    }
    if (s->gs) {
        double wait;
        MPQ_TRY(mpq_gradsync_finish(s->gs));
        mpq_gradsync_stats(s->gs, &wait, bytes);
    }
    return average_state(s);
}

/* Weight decay (on every trainable value, or all but the quantizer parameters), the reference's
 * quantizer-gradient clipping under a budget, the optimizer step and the projections. */
static void update(mpq_trainstep *s, float lr, long step)
{
    const mpq_cfg *c = s->cfg;
    mpq_model *m = s->m;
    size_t nf = m->params.n_floats;
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
    if (s->budget.target_w_kbytes > 0 || s->budget.target_a_kbytes > 0)
        mpq_model_clip_quant_grads(m);
    if (c->optimizer == MPQ_OPTIMIZER_ADAM)
        mpq_adam_step(nf, lr, c->adam_beta1, c->adam_beta2, c->adam_eps, step + 1, m->params.val,
                      m->params.grad, m->params.opt[0], m->params.opt[1]);
    else
        mpq_sgd_step(nf, lr, c->momentum, m->params.val, m->params.grad, m->params.opt[0]);
    mpq_model_project(m);
}

int mpq_trainstep_run(mpq_trainstep *s, mpq_source *src, float lr, long step, mpq_step_stats *st)
{
    const mpq_cfg *c = s->cfg;
    double metrics[2 * MPQ_MAX_VIRTUAL_SHARDS];
    double t0 = mpq_comm_wtime();
    int n = 0;

    memset(st, 0, sizeof *st);
    const int threads = mpq_threadtune_next(&s->threads);
    if (threads != s->threads_now) {
        mpq_gemm_set_threads(threads);
        s->threads_now = threads;
    }
    int rc = src->ops->next(src, s->xb, s->yb, &n);
    st->t_data = src->ops->wait_seconds(src);
    if (rc == 0) rc = injected_failure(s, step);
    MPQ_TRY(mpq_comm_agree(s->comm, rc));
    MPQ_ASSERT(n == s->b.micro * s->b.micro_n, "got %d samples, expected %d", n,
               s->b.micro * s->b.micro_n);
    MPQ_ASSERT((size_t)s->b.n_shards * 2 <= sizeof metrics / sizeof metrics[0],
               "too many shards (%d)", s->b.n_shards);
    memset(metrics, 0, sizeof(double) * 2 * (size_t)s->b.n_shards);
    run_micro_batches(s, metrics, st);
    st->t_compute = mpq_comm_wtime() - t0 - st->t_data;

    double tc = mpq_comm_wtime(), sums[2];
    MPQ_TRY(reduce_gradients(s, &st->bytes));
    MPQ_TRY(shard_sums(s, metrics, 2, sums));
    st->t_comm = mpq_comm_wtime() - tc;
    st->ce = sums[0] / (double)c->batch_size;
    st->err = sums[1] / (double)c->batch_size;

    /* terms identical on every rank: after the averaging */
    mpq_model_size(s->m, &s->budget, s->m->params.grad, &st->size);
    st->loss = st->ce + s->budget.lambda2 * st->size.loss2 + s->budget.lambda3 * st->size.loss3;
    if (!isfinite(st->loss))
        return MPQ_FAIL(MPQ_E_NUMERIC,
                        "[%s] the loss is %g at step %ld: training diverged (no checkpoint of "
                        "this state is written) ---> HINT: lower initial_learning_rate",
                        c->experiment, st->loss, step);
    double tu = mpq_comm_wtime();
    update(s, lr, step);
    st->t_update = mpq_comm_wtime() - tu;
    const int before = s->threads.cur;
    mpq_threadtune_record(&s->threads, st->t_compute + st->t_update);
    if (s->threads.cur != before && s->threads.switches <= THREAD_CHANGES_LOGGED)
        mpq_log_warn("step %ld: %d thread(s) ran faster than %d (cores shared with other "
                     "processes?): going on with %d (threads_adapt = true)%s",
                     step, s->threads.cur, before, s->threads.cur,
                     s->threads.switches == THREAD_CHANGES_LOGGED ? "; later changes not logged"
                                                                  : "");
    return MPQ_OK;
}

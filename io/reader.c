/* The shard batch source (semantics in shard.h and data.h). One producer makes batches: the
 * background thread when prefetching (then it is the only thread calling HDF5 for this source),
 * else the caller inside next(). The producer owns the permutation cache, the raw-pixel buffer
 * and the augmentation workspace; two slots carry finished batches to next(), which copies one
 * out. The source owns everything it allocates; free() stops and joins the thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/rng.h"
#include "io/augment.h"
#include "io/shard.h"

enum { SLOT_EMPTY, SLOT_BUSY, SLOT_READY };

typedef struct slot {
    float *x;
    int *y;
    int n, state, rc;
    long epoch, step;
    unsigned long gen; /* the seek generation it was made for */
    char err[1024];
} slot;

typedef struct pick { /* one local sample: global index and position in the batch */
    long index;
    int pos;
} pick;

typedef struct shard_source {
    mpq_source base; /* first: the public part */
    mpq_split *split;
    mpq_augmenter aug;
    size_t in_bytes, out_floats;
    /* producer-owned */
    int64_t *perm;
    long perm_epoch;
    uint8_t *raw;
    pick *picks;
    void *ws;
    /* shared with the thread, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int has_thread, stop;
    slot slots[2];
    unsigned long gen;
    long pe, ps; /* next batch to produce */
    long ce, cs; /* next batch to deliver */
    double wait_s;
} shard_source;

static void advance(const shard_source *s, long *epoch, long *step)
{
    if (++*step >= s->base.steps_per_epoch) {
        *step = 0;
        ++*epoch;
    }
}

static int cmp_pick(const void *a, const void *b)
{
    long x = ((const pick *)a)->index, y = ((const pick *)b)->index;
    return (x > y) - (x < y);
}

/* Makes this rank's slice of global batch (epoch, step) into x, y; writes *n. */
static int produce(shard_source *s, long epoch, long step, float *x, int *y, int *n)
{
    const mpq_source_opts *o = &s->base.opts;
    const long n_all = s->base.info.n_samples, big_b = o->global_batch;
    const long start = step * big_b;
    const long b = start + big_b <= n_all ? big_b : n_all - start;
    const long lo = start + (long)o->rank * b / o->n_ranks;
    const long hi = start + (long)(o->rank + 1) * b / o->n_ranks;
    const int k = (int)(hi - lo);
    if (o->train && s->perm_epoch != epoch) {
        mpq_rng_permutation(o->seed, MPQ_RNG_STREAM_PERM, (uint64_t)epoch, (size_t)n_all, s->perm);
        s->perm_epoch = epoch;
    }
    for (int j = 0; j < k; j++) {
        s->picks[j].index = o->train ? (long)s->perm[lo + j] : lo + j;
        s->picks[j].pos = j;
    }
    qsort(s->picks, (size_t)k, sizeof *s->picks, cmp_pick); /* read in file order */
    for (int j = 0; j < k; j++) {
        const pick *p = &s->picks[j];
        MPQ_TRY(
            mpq_split_read(s->split, p->index, s->raw + (size_t)p->pos * s->in_bytes, &y[p->pos]));
    }
    for (int j = 0; j < k; j++) {
        const pick *p = &s->picks[j];
        mpq_augment_apply(&s->aug, s->raw + (size_t)p->pos * s->in_bytes, o->seed, epoch, p->index,
                          x + (size_t)p->pos * s->out_floats, s->ws);
    }
    *n = k;
    return MPQ_OK;
}

static void *producer_main(void *arg)
{
    shard_source *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        slot *sl = NULL;
        for (int i = 0; i < 2; i++)
            if (s->slots[i].state == SLOT_EMPTY) {
                sl = &s->slots[i];
                break;
            }
        if (!sl) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        sl->state = SLOT_BUSY;
        sl->epoch = s->pe;
        sl->step = s->ps;
        sl->gen = s->gen;
        advance(s, &s->pe, &s->ps);
        pthread_mutex_unlock(&s->mu);
        mpq_err_clear();
        sl->rc = produce(s, sl->epoch, sl->step, sl->x, sl->y, &sl->n);
        if (sl->rc < 0) snprintf(sl->err, sizeof sl->err, "%s", mpq_errmsg());
        pthread_mutex_lock(&s->mu);
        sl->state = sl->gen == s->gen ? SLOT_READY : SLOT_EMPTY;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int src_seek(mpq_source *base, long epoch, long step)
{
    shard_source *s = (shard_source *)base;
    if (epoch < 0 || epoch >= (1L << 31) || step < 0 || step >= base->steps_per_epoch)
        return MPQ_FAIL(MPQ_E_ARG,
                        "data reader: cannot seek to epoch %ld step %ld (%ld steps "
                        "per epoch)",
                        epoch, step, base->steps_per_epoch);
    pthread_mutex_lock(&s->mu);
    s->gen++;
    s->pe = s->ce = epoch;
    s->ps = s->cs = step;
    for (int i = 0; i < 2; i++)
        if (s->slots[i].state == SLOT_READY) s->slots[i].state = SLOT_EMPTY;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return MPQ_OK;
}

static int src_next(mpq_source *base, float *x, int *y, int *n)
{
    shard_source *s = (shard_source *)base;
    slot *sl = NULL;
    int rc;
    double t0;
    if (!s->has_thread) { /* all of it is waiting for data */
        t0 = mpq_clock_s(CLOCK_MONOTONIC);
        rc = produce(s, s->ce, s->cs, x, y, n);
        s->wait_s += mpq_clock_s(CLOCK_MONOTONIC) - t0;
        if (rc == MPQ_OK) advance(s, &s->ce, &s->cs);
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    t0 = mpq_clock_s(CLOCK_MONOTONIC);
    for (;;) {
        for (int i = 0; i < 2 && !sl; i++)
            if (s->slots[i].state == SLOT_READY && s->slots[i].gen == s->gen &&
                s->slots[i].epoch == s->ce && s->slots[i].step == s->cs)
                sl = &s->slots[i];
        if (sl) break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    s->wait_s += mpq_clock_s(CLOCK_MONOTONIC) - t0;
    pthread_mutex_unlock(&s->mu);
    /* a READY slot belongs to this thread until it is marked EMPTY */
    rc = sl->rc;
    if (rc == MPQ_OK) {
        *n = sl->n;
        memcpy(x, sl->x, sizeof(float) * s->out_floats * (size_t)sl->n);
        memcpy(y, sl->y, sizeof(int) * (size_t)sl->n);
    } else {
        rc = MPQ_FAIL(rc, "data reader: %s", sl->err);
    }
    pthread_mutex_lock(&s->mu);
    sl->state = SLOT_EMPTY;
    if (rc == MPQ_OK)
        advance(s, &s->ce, &s->cs);
    else { /* produce the failed batch again if asked again */
        s->gen++;
        s->pe = s->ce;
        s->ps = s->cs;
        for (int i = 0; i < 2; i++)
            if (s->slots[i].state == SLOT_READY) s->slots[i].state = SLOT_EMPTY;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static double src_wait_seconds(mpq_source *base)
{
    shard_source *s = (shard_source *)base;
    double w;
    pthread_mutex_lock(&s->mu);
    w = s->wait_s;
    s->wait_s = 0.0;
    pthread_mutex_unlock(&s->mu);
    return w;
}

static void src_free(mpq_source *base)
{
    shard_source *s = (shard_source *)base;
    if (!s) return;
    if (s->has_thread) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    for (int i = 0; i < 2; i++) {
        free(s->slots[i].x);
        free(s->slots[i].y);
    }
    free(s->perm);
    free(s->raw);
    free(s->picks);
    free(s->ws);
    mpq_split_close(s->split);
    free(s);
}

static const mpq_source_ops shard_ops = {src_seek, src_next, src_wait_seconds, src_free};

int mpq_source_shards_create(const char *dir, const mpq_source_opts *o, mpq_source **out)
{
    shard_source *s;
    const mpq_data_info *in;
    int rc, max_local, n_slots;
    long n_all;
    *out = NULL;
    if (o->global_batch < 1 || o->n_ranks < 1 || o->rank < 0 || o->rank >= o->n_ranks)
        return MPQ_FAIL(MPQ_E_ARG, "data reader: bad batch %d / rank %d of %d", o->global_batch,
                        o->rank, o->n_ranks);
    if (!(s = calloc(1, sizeof *s))) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->base.ops = &shard_ops;
    s->base.opts = *o;
    s->perm_epoch = -1;
    if ((rc = mpq_split_open(dir, &s->split)) < 0) goto fail;
    if (o->num_classes > 0 && (rc = mpq_split_check_labels(s->split, o->num_classes)) < 0)
        goto fail;
    in = mpq_split_info(s->split);
    n_all = in->n_samples;
    if (n_all >= (1L << 32)) {
        rc = MPQ_FAIL(MPQ_E_ARG, "%s: %ld samples; at most 2^32 are supported", dir, n_all);
        goto fail;
    }
    if (o->train && n_all < o->global_batch) {
        rc = MPQ_FAIL(MPQ_E_ARG, "%s: %ld samples, fewer than one global batch of %d", dir, n_all,
                      o->global_batch);
        goto fail;
    }
    rc = mpq_augmenter_init(&s->aug, o->augment, o->train, in->h, in->w, in->c, &o->crop, in->mean,
                            in->std);
    if (rc < 0) {
        rc = mpq_err_push(rc, "%s", dir);
        goto fail;
    }
    s->base.info = *in;
    s->base.info.h = s->aug.out_h;
    s->base.info.w = s->aug.out_w;
    s->base.steps_per_epoch =
        o->train ? n_all / o->global_batch : (n_all + o->global_batch - 1) / o->global_batch;
    max_local = (o->global_batch + o->n_ranks - 1) / o->n_ranks;
    s->base.max_local_batch = max_local;
    s->in_bytes = (size_t)in->h * in->w * in->c;
    s->out_floats = (size_t)s->aug.out_h * s->aug.out_w * in->c;
    n_slots = o->prefetch ? 2 : 0;
    for (int i = 0; i < n_slots; i++) {
        s->slots[i].x = malloc(sizeof(float) * s->out_floats * (size_t)max_local);
        s->slots[i].y = malloc(sizeof(int) * (size_t)max_local);
        if (!s->slots[i].x || !s->slots[i].y) goto nomem;
    }
    s->raw = malloc(s->in_bytes * (size_t)max_local);
    s->picks = malloc(sizeof *s->picks * (size_t)max_local);
    s->ws = s->aug.ws_bytes ? malloc(s->aug.ws_bytes) : NULL;
    s->perm = o->train ? malloc(sizeof *s->perm * (size_t)n_all) : NULL;
    if (!s->raw || !s->picks || (s->aug.ws_bytes && !s->ws) || (o->train && !s->perm)) goto nomem;
    if (o->prefetch) {
        if (pthread_create(&s->thread, NULL, producer_main, s) != 0) {
            rc = MPQ_FAIL(MPQ_E_NOMEM, "data reader: cannot start the prefetch thread");
            goto fail;
        }
        s->has_thread = 1;
    }
    *out = &s->base;
    return MPQ_OK;
nomem:
    rc = MPQ_FAIL(MPQ_E_NOMEM, "data reader: out of memory for batches of %d images", max_local);
fail:
    src_free(&s->base);
    return rc;
}

int mpq_bench_reader(const char *dir, mpq_augment aug, const mpq_crop *crop, int batch, int steps,
                     double *images_per_s, double *images_per_cpu_s)
{
    mpq_source_opts o = {.global_batch = batch,
                         .rank = 0,
                         .n_ranks = 1,
                         .seed = 1,
                         .train = 1,
                         .augment = aug,
                         .crop = crop ? *crop : (mpq_crop){0},
                         .prefetch = 0};
    mpq_source *src;
    float *x = NULL;
    int *y = NULL, n = 0, rc;
    long images = 0;
    double t0, c0;
    MPQ_TRY(mpq_source_shards_create(dir, &o, &src));
    x = malloc(sizeof(float) * (size_t)src->info.h * src->info.w * src->info.c *
               (size_t)src->max_local_batch);
    y = malloc(sizeof(int) * (size_t)src->max_local_batch);
    if (!x || !y) {
        rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = src->ops->next(src, x, y, &n)) < 0) goto out; /* warm-up: opens the files */
    t0 = mpq_clock_s(CLOCK_MONOTONIC);
    c0 = mpq_clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < steps && rc == MPQ_OK; i++) {
        rc = src->ops->next(src, x, y, &n);
        images += n;
    }
    *images_per_s = images / (mpq_clock_s(CLOCK_MONOTONIC) - t0);
    *images_per_cpu_s = images / (mpq_clock_s(CLOCK_THREAD_CPUTIME_ID) - c0);
out:
    free(x);
    free(y);
    mpq_source_free(src);
    return rc;
}

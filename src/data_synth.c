/* An in-memory synthetic classification set: class prototypes plus per-sample noise, generated on
 * demand from (seed, sample index), so it needs no storage and is identical on every rank. Used
 * by tests and `mpq bench`. Prototype j is the uniform [-1, 1) stream (seed, SYNTHETIC, 2^62 + j),
 * redrawn inside each sample rather than stored: k prototypes of an ImageNet-sized image would
 * hold k * h * w * c floats (574 MiB for 1000 classes at 224x224x3). Positions follow the same
 * epoch order and rank slicing as the HDF5 reader (data.h). Not thread-safe; no prefetching
 * (generation is cheap). */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/rng.h"
#include "data.h"

typedef struct synth {
    mpq_source base;
    uint64_t data_seed;
    int64_t *perm; /* the current epoch's order */
    long epoch, step;
} synth;

static void order(synth *s, long epoch)
{
    long n = s->base.info.n_samples;
    if (s->base.opts.train)
        mpq_rng_permutation(s->base.opts.seed, MPQ_RNG_STREAM_PERM, (uint64_t)epoch, (size_t)n,
                            s->perm);
    else
        for (long i = 0; i < n; i++) s->perm[i] = i;
    s->epoch = epoch;
}

static int synth_seek(mpq_source *src, long epoch, long step)
{
    synth *s = (synth *)src;
    order(s, epoch);
    s->step = step;
    return MPQ_OK;
}

static void sample(const synth *s, long idx, float *x, int *y)
{
    const mpq_data_info *in = &s->base.info;
    size_t len = (size_t)in->h * in->w * in->c;
    mpq_rng r, proto;
    /* validation samples are other draws around the same class prototypes */
    uint64_t key = (uint64_t)idx | (s->base.opts.train ? 0 : (uint64_t)1 << 61);
    mpq_rng_seed(&r, s->data_seed, MPQ_RNG_STREAM_SYNTHETIC, key);
    int label = (int)mpq_rng_below(&r, (uint64_t)in->num_classes);
    mpq_rng_seed(&proto, s->data_seed, MPQ_RNG_STREAM_SYNTHETIC,
                 (uint64_t)1 << 62 | (uint64_t)label);
    /* x[i] = p + 0.5 * (2 u - 1), p = 2 v - 1 with v the prototype's draw i, u the sample's:
     * the draws a block at a time, the same values as one call per draw (a batch of 32
     * 224x224x3 images, one thread: 35.6-36.1 -> 12.0-15.2 ms, in every MobileNetV2 or
     * ResNet-18 step of `mpq bench`) */
    enum { BLOCK = 256 };
    float u[BLOCK];
    mpq_rng_uniform_fill(&proto, x, len);
    for (size_t i0 = 0; i0 < len; i0 += BLOCK) {
        const size_t m = len - i0 < BLOCK ? len - i0 : BLOCK;
        mpq_rng_uniform_fill(&r, u, m);
        for (size_t i = 0; i < m; i++) {
            const float p = 2.0f * x[i0 + i] - 1.0f;
            x[i0 + i] = p + 0.5f * (2.0f * u[i] - 1.0f);
        }
    }
    *y = label;
}

static int synth_next(mpq_source *src, float *x, int *y, int *n_out)
{
    synth *s = (synth *)src;
    const mpq_source_opts *o = &src->opts;
    long n = src->info.n_samples, B = o->global_batch;
    size_t len = (size_t)src->info.h * src->info.w * src->info.c;
    if (s->step >= src->steps_per_epoch) {
        order(s, s->epoch + 1);
        s->step = 0;
    }
    long first = s->step * B, count = B;
    if (first + count > n) count = n - first;
    long lo = first + (long)o->rank * count / o->n_ranks;
    long hi = first + (long)(o->rank + 1) * count / o->n_ranks;
    for (long i = lo; i < hi; i++) sample(s, s->perm[i], x + (size_t)(i - lo) * len, &y[i - lo]);
    *n_out = (int)(hi - lo);
    s->step++;
    return MPQ_OK;
}

static double synth_wait(mpq_source *src) { return 0.0; }

static void synth_free(mpq_source *src)
{
    synth *s = (synth *)src;
    if (!s) return;
    free(s->perm);
    free(s);
}

static const mpq_source_ops synth_ops = {synth_seek, synth_next, synth_wait, synth_free};

int mpq_source_synthetic_create(const mpq_source_opts *o, long n, int h, int w, int c, int k,
                                uint64_t data_seed, mpq_source **out)
{
    if (n <= 0 || h <= 0 || w <= 0 || c <= 0 || k < 2 || o->global_batch <= 0 ||
        o->n_ranks <= 0 || (o->train && n < o->global_batch))
        return MPQ_FAIL(MPQ_E_ARG, "synthetic data: %ld samples of %dx%dx%d, %d classes, batch %d",
                        n, h, w, c, k, o->global_batch);
    synth *s = calloc(1, sizeof *s);
    if (!s) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    s->perm = malloc(sizeof(int64_t) * (size_t)n);
    if (!s->perm) {
        synth_free(&s->base);
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory for synthetic data");
    }
    s->base.ops = &synth_ops;
    s->base.opts = *o;
    s->base.info = (mpq_data_info){.n_samples = n, .h = h, .w = w, .c = c, .num_classes = k};
    for (int i = 0; i < c && i < 4; i++) s->base.info.std[i] = 1.0f;
    const uint64_t layout[6] = {(uint64_t)n, (uint64_t)h, (uint64_t)w,
                                (uint64_t)c, (uint64_t)k, data_seed};
    s->base.info.fingerprint = MPQ_HASH_INIT;
    for (int i = 0; i < 6; i++)
        s->base.info.fingerprint = mpq_hash_u64(s->base.info.fingerprint, layout[i]);
    s->base.steps_per_epoch = o->train ? n / o->global_batch : (n + o->global_batch - 1) / o->global_batch;
    s->base.max_local_batch = (o->global_batch + o->n_ranks - 1) / o->n_ranks;
    s->data_seed = data_seed;
    order(s, 0);
    *out = &s->base;
    return MPQ_OK;
}

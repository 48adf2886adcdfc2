/* io reader: shards read back across files, the epoch order and the rank slicing, augmentations
 * that do not depend on the rank count or the prefetch thread, the resampler, and every kind of
 * bad split returning its code with the file name. Splits are written to a mkdtemp directory. */
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "io/augment.h"
#include "io/image.h"
#include "io/shard.h"
#include "iofix.h"
#include "testutil.h"

enum { MAX_PATHS = 512 };
static char *tmp, *paths[MAX_PATHS];
static int n_paths;

static void setup(void)
{
    mpq_log_set_quiet(1);
    tmp = mpq_test_tmpdir();
    ck_assert_ptr_nonnull(tmp);
}

/* Every HDF5 object the io code opened is closed again (error paths included). */
static void teardown(void)
{
    ck_assert_int_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
    mpq_test_rmtree(tmp);
    free(tmp);
    for (int i = 0; i < n_paths; i++)
        free(paths[i]);
    n_paths = 0;
}

/* tmp/name, a string that lives until the end of the test (freed by teardown). */
static const char *sub(const char *name)
{
    char *p = malloc(strlen(tmp) + strlen(name) + 2);
    ck_assert_ptr_nonnull(p);
    sprintf(p, "%s/%s", tmp, name);
    ck_assert_int_lt(n_paths, MAX_PATHS);
    paths[n_paths++] = p;
    return p;
}

/* Concatenation over ranks of n_steps batches (from (0, 0) on), for R sources of one split. */
typedef struct run {
    float *x;
    int *y;
    long n;
} run;

static run collect(const char *dir, const mpq_source_opts *base, int n_ranks, long n_steps)
{
    mpq_source *src[8];
    run r = {0};
    size_t img = 0;
    long cap = 0;
    ck_assert_int_le(n_ranks, 8);
    for (int k = 0; k < n_ranks; k++) {
        mpq_source_opts o = *base;
        o.rank = k;
        o.n_ranks = n_ranks;
        o.prefetch = k % 2; /* mix both paths */
        ck_assert_msg(mpq_source_shards_create(dir, &o, &src[k]) == 0, "%s", mpq_errmsg());
        img = (size_t)src[k]->info.h * src[k]->info.w * src[k]->info.c;
        ck_assert_int_eq(src[k]->max_local_batch, (base->global_batch + n_ranks - 1) / n_ranks);
    }
    cap = n_steps * base->global_batch;
    r.x = malloc(sizeof(float) * img * (size_t)cap);
    r.y = malloc(sizeof(int) * (size_t)cap);
    for (long s = 0; s < n_steps; s++)
        for (int k = 0; k < n_ranks; k++) {
            int n = -1;
            ck_assert_msg(src[k]->ops->next(src[k], r.x + img * (size_t)r.n, r.y + r.n, &n) == 0,
                          "%s", mpq_errmsg());
            ck_assert_int_ge(n, 0);
            ck_assert_int_le(n, src[k]->max_local_batch);
            r.n += n;
        }
    for (int k = 0; k < n_ranks; k++) {
        ck_assert_double_ge(src[k]->ops->wait_seconds(src[k]), 0.0);
        mpq_source_free(src[k]);
    }
    return r;
}

static void run_free(run *r)
{
    free(r->x);
    free(r->y);
}

START_TEST(test_reader_split_reads_back_across_shards)
{
    enum { N = 23, H = 5, W = 6, C = 3 };
    mpq_split *s;
    uint8_t got[H * W * C], want[H * W * C];
    int label;
    ck_assert_int_eq(iofix_make_split(sub("a"), N, H, W, C, 4, 5), 0);
    ck_assert_msg(mpq_split_open(sub("a"), &s) == 0, "%s", mpq_errmsg());
    ck_assert_int_eq(mpq_split_info(s)->n_samples, N);
    ck_assert_int_eq(mpq_split_info(s)->h, H);
    ck_assert_int_eq(mpq_split_info(s)->w, W);
    ck_assert_int_eq(mpq_split_info(s)->c, C);
    ck_assert_int_eq(mpq_split_info(s)->num_classes, 5);
    ck_assert_float_eq(mpq_split_info(s)->mean[2], 100.0f);
    for (long i = N - 1; i >= 0; i--) { /* backwards: crosses shards in both directions */
        ck_assert_int_eq(mpq_split_read(s, i, got, &label), 0);
        iofix_pixels(i, H, W, C, want);
        ck_assert_mem_eq(got, want, sizeof got);
        ck_assert_int_eq(label, iofix_label(i, 5));
        ck_assert_int_eq(mpq_split_labels(s)[i], label);
    }
    ck_assert_int_eq(mpq_split_read(s, N, got, &label), MPQ_E_ARG);
    mpq_split_close(s);
}
END_TEST

/* The sample index of an un-augmented ('none') output: pixel 0 is (i % 256 - 100) / 50. */
static long index_of(const float *x) { return lroundf(x[0] * 50.0f + 100.0f); }

START_TEST(test_reader_train_epoch_is_the_seeded_permutation)
{
    enum { N = 43, B = 8, H = 3, W = 3 };
    mpq_source_opts o = {
        .global_batch = B, .n_ranks = 1, .seed = 5, .train = 1, .augment = MPQ_AUGMENT_NONE};
    int64_t perm[N];
    run r;
    ck_assert_int_eq(iofix_make_split(sub("a"), N, H, W, 1, 3, 4), 0);
    r = collect(sub("a"), &o, 1, 2 * (N / B)); /* two epochs of floor(43/8) = 5 steps */
    ck_assert_int_eq(r.n, 2 * 5 * B);
    for (int e = 0; e < 2; e++) {
        mpq_rng_permutation(5, MPQ_RNG_STREAM_PERM, (uint64_t)e, N, perm);
        for (int j = 0; j < 5 * B; j++) {
            long k = e * 5 * B + j, i = index_of(r.x + (size_t)k * H * W);
            ck_assert_int_eq(i, perm[j]);
            ck_assert_int_eq(r.y[k], iofix_label(i, 4));
        }
    }
    ck_assert_int_ne(index_of(r.x), index_of(r.x + (size_t)5 * B * H * W) + 1000);
    run_free(&r);
}
END_TEST

START_TEST(test_reader_validation_reads_all_in_order_last_batch_short)
{
    enum { N = 30, B = 7, H = 4, W = 2 };
    mpq_source_opts o = {.global_batch = B, .seed = 1, .train = 0, .augment = MPQ_AUGMENT_NONE};
    mpq_source *src;
    for (int n_ranks = 1; n_ranks <= 3; n_ranks++) {
        run r;
        ck_assert_int_eq(iofix_make_split(sub("v"), N, H, W, 1, 2, 3), 0);
        o.n_ranks = 1;
        ck_assert_int_eq(mpq_source_shards_create(sub("v"), &o, &src), 0);
        ck_assert_int_eq(src->steps_per_epoch, 5); /* ceil(30 / 7) */
        mpq_source_free(src);
        r = collect(sub("v"), &o, n_ranks, 5);
        ck_assert_int_eq(r.n, N);
        for (long i = 0; i < N; i++) {
            uint8_t px[H * W];
            iofix_pixels(i, H, W, 1, px);
            ck_assert_int_eq(index_of(r.x + (size_t)i * H * W), i);
            ck_assert_int_eq(r.y[i], iofix_label(i, 3));
            for (int p = 0; p < H * W; p++)
                ck_assert_float_eq_tol(r.x[(size_t)i * H * W + p], (px[p] - 100.0f) / 50.0f, 1e-6f);
        }
        run_free(&r);
    }
}
END_TEST

/* Batches of R = 1 equal the concatenated slices of R = 2 and 4, bit for bit: same samples, same
 * augmentation, for every augmentation, train and validation, even batch sizes not divisible. */
START_TEST(test_reader_batches_do_not_depend_on_rank_count)
{
    static const struct {
        mpq_augment aug;
        int h, w, c, out, train, batch;
    } cases[] = {
        {MPQ_AUGMENT_CIFAR, 8, 8, 3, 0, 1, 8},       {MPQ_AUGMENT_CIFAR, 28, 28, 1, 0, 1, 6},
        {MPQ_AUGMENT_IMAGENET, 20, 24, 3, 16, 1, 8}, {MPQ_AUGMENT_IMAGENET, 20, 24, 3, 16, 0, 8},
        {MPQ_AUGMENT_NONE, 6, 5, 2, 0, 1, 10},       {MPQ_AUGMENT_CIFAR, 8, 8, 3, 0, 0, 8},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        mpq_source_opts o = {.global_batch = cases[t].batch,
                             .seed = 11,
                             .train = cases[t].train,
                             .augment = cases[t].aug,
                             .crop = {.size = cases[t].out}};
        const int out_h = cases[t].out ? cases[t].out : cases[t].h;
        const int out_w = cases[t].out ? cases[t].out : cases[t].w;
        const size_t img = (size_t)out_h * out_w * cases[t].c;
        char name[32];
        run one;
        snprintf(name, sizeof name, "s%zu", t);
        ck_assert_int_eq(iofix_make_split(sub(name), 45, cases[t].h, cases[t].w, cases[t].c, 3, 7),
                         0);
        one = collect(sub(name), &o, 1, 12); /* more than an epoch */
        ck_assert_int_gt(one.n, 0);
        for (int n_ranks = 2; n_ranks <= 4; n_ranks *= 2) {
            run many = collect(sub(name), &o, n_ranks, 12);
            ck_assert_int_eq(many.n, one.n);
            ck_assert_mem_eq(many.y, one.y, sizeof(int) * (size_t)one.n);
            ck_assert_msg(memcmp(many.x, one.x, sizeof(float) * img * (size_t)one.n) == 0,
                          "case %zu, %d ranks: pixels differ", t, n_ranks);
            run_free(&many);
        }
        run_free(&one);
    }
}
END_TEST

START_TEST(test_reader_prefetch_and_seek_match_sequential_reading)
{
    enum { N = 50, B = 6, H = 8, W = 8, C = 3 };
    mpq_source_opts o = {
        .global_batch = B, .n_ranks = 1, .seed = 3, .train = 1, .augment = MPQ_AUGMENT_CIFAR};
    const size_t img = (size_t)H * W * C;
    mpq_source *seq, *pre;
    float *xs = malloc(sizeof(float) * img * B * 20), x[B * H * W * C];
    int ys[B * 20], y[B], n;
    ck_assert_int_eq(iofix_make_split(sub("p"), N, H, W, C, 2, 3), 0);
    ck_assert_int_eq(mpq_source_shards_create(sub("p"), &o, &seq), 0);
    o.prefetch = 1;
    ck_assert_int_eq(mpq_source_shards_create(sub("p"), &o, &pre), 0);
    ck_assert_int_eq(seq->steps_per_epoch, N / B);
    for (int s = 0; s < 20; s++) { /* 2.5 epochs: crosses epoch boundaries */
        ck_assert_int_eq(seq->ops->next(seq, xs + img * B * s, ys + B * s, &n), 0);
        ck_assert_int_eq(n, B);
        ck_assert_int_eq(pre->ops->next(pre, x, y, &n), 0);
        ck_assert_mem_eq(x, xs + img * B * s, sizeof x);
        ck_assert_mem_eq(y, ys + B * s, sizeof y);
    }
    for (int s = 19; s >= 0; s -= 3) { /* seek anywhere, in any order */
        ck_assert_int_eq(pre->ops->seek(pre, s / 8, s % 8), 0);
        ck_assert_int_eq(pre->ops->next(pre, x, y, &n), 0);
        ck_assert_mem_eq(x, xs + img * B * s, sizeof x);
        ck_assert_mem_eq(y, ys + B * s, sizeof y);
    }
    ck_assert_int_eq(pre->ops->seek(pre, 0, 8), MPQ_E_ARG); /* 8 steps per epoch */
    ck_assert_double_ge(pre->ops->wait_seconds(pre), 0.0);
    mpq_source_free(seq);
    mpq_source_free(pre);
    free(xs);
}
END_TEST

/* cifar: each output is the padded input shifted by (oy, ox) in [0, 8] and maybe flipped; the
 * padding is 0 after the scaling (x/255 - 0.5) * 2 (mid-grey), as the reference pads. */
START_TEST(test_reader_cifar_augment_is_pad_crop_flip)
{
    enum { H = 6, W = 7, C = 2, N = 200 };
    mpq_augmenter a;
    float mean[2] = {0, 0}, std[2] = {1, 1}, out[H * W * C], want[H * W * C];
    uint8_t src[H * W * C];
    int seen_flip[2] = {0}, seen_shift[9] = {0}, padded = 0;
    ck_assert_int_eq(mpq_augmenter_init(&a, MPQ_AUGMENT_CIFAR, 1, H, W, C, NULL, mean, std), 0);
    for (long i = 0; i < N; i++) {
        int found = 0;
        iofix_pixels(i, H, W, C, src);
        mpq_augment_apply(&a, src, 9, 2, i, out, NULL);
        for (int oy = 0; oy <= 8 && !found; oy++)
            for (int ox = 0; ox <= 8 && !found; ox++)
                for (int flip = 0; flip < 2 && !found; flip++) {
                    for (int y = 0; y < H; y++)
                        for (int x = 0; x < W; x++)
                            for (int ch = 0; ch < C; ch++) {
                                int sy = y + oy - 4, sx = (flip ? W - 1 - x : x) + ox - 4;
                                int in = sy >= 0 && sy < H && sx >= 0 && sx < W;
                                want[(y * W + x) * C + ch] =
                                    in ? (src[(sy * W + sx) * C + ch] / 255.0f - 0.5f) * 2.0f
                                       : 0.0f;
                            }
                    if (!memcmp(out, want, sizeof out)) {
                        found = 1;
                        for (int y = 0; y < H; y++) /* the padded pixels: exactly 0 */
                            for (int x = 0; x < W; x++) {
                                int sy = y + oy - 4, sx = (flip ? W - 1 - x : x) + ox - 4;
                                if (sy >= 0 && sy < H && sx >= 0 && sx < W) continue;
                                for (int ch = 0; ch < C; ch++)
                                    ck_assert_float_eq(out[(y * W + x) * C + ch], 0.0f);
                                padded++;
                            }
                        seen_flip[flip] = 1;
                        seen_shift[oy] = 1;
                    }
                }
        ck_assert_msg(found, "sample %ld is no padded crop of its input", i);
    }
    ck_assert(seen_flip[0] && seen_flip[1]);
    ck_assert_int_gt(padded, N);
    for (int k = 0; k <= 8; k++)
        ck_assert_msg(seen_shift[k], "offset %d never drawn", k);
    /* validation: the identity, normalized */
    ck_assert_int_eq(mpq_augmenter_init(&a, MPQ_AUGMENT_CIFAR, 0, H, W, C, NULL, mean, std), 0);
    mpq_augment_apply(&a, src, 9, 2, 0, out, NULL);
    for (int p = 0; p < H * W * C; p++)
        ck_assert_float_eq(out[p], (src[p] / 255.0f - 0.5f) * 2.0f);
}
END_TEST

START_TEST(test_reader_imagenet_augment_crops_resamples_and_centres)
{
    enum { H = 32, W = 32, C = 3, OUT = 28 };
    const mpq_crop crop = {.size = OUT, .val_resize = 32}; /* ranges: torchvision's */
    mpq_augmenter a;
    float mean[3] = {10, 20, 30}, std[3] = {2, 4, 8}, out[OUT * OUT * C], out2[OUT * OUT * C];
    uint8_t src[H * W * C];
    void *ws;
    iofix_pixels(4, H, W, C, src);
    ck_assert_int_eq(mpq_augmenter_init(&a, MPQ_AUGMENT_IMAGENET, 1, H, W, C, &crop, mean, std), 0);
    ws = malloc(a.ws_bytes);
    mpq_augment_apply(&a, src, 1, 0, 4, out, ws);
    mpq_augment_apply(&a, src, 1, 1, 4, out2, ws);
    ck_assert_int_ne(memcmp(out, out2, sizeof out), 0); /* another epoch, another crop */
    for (int p = 0; p < OUT * OUT * C; p++) { /* a convex combination of pixels, normalized */
        int ch = p % C;
        ck_assert(out[p] >= (0 - mean[ch]) / std[ch] - 1e-4f);
        ck_assert(out[p] <= (255 - mean[ch]) / std[ch] + 1e-4f);
    }
    free(ws);
    /* validation: resize 32 -> 32, centre 28: exactly the stored centre 28 x 28 */
    ck_assert_int_eq(mpq_augmenter_init(&a, MPQ_AUGMENT_IMAGENET, 0, H, W, C, &crop, mean, std), 0);
    ws = malloc(a.ws_bytes);
    mpq_augment_apply(&a, src, 1, 0, 4, out, ws);
    for (int y = 0; y < OUT; y++)
        for (int x = 0; x < OUT; x++)
            for (int ch = 0; ch < C; ch++) {
                float v = src[((y + 2) * W + x + 2) * C + ch];
                ck_assert_float_eq_tol(out[(y * OUT + x) * C + ch], (v - mean[ch]) / std[ch],
                                       1e-5f);
            }
    free(ws);
    /* cifar ignores the views; bad ranges are refused */
    ck_assert_int_eq(mpq_augmenter_init(&a, MPQ_AUGMENT_CIFAR, 1, H, W, C, &crop, mean, std), 0);
    ck_assert_int_eq(a.out_h * 1000 + a.out_w, H * 1000 + W);
    const mpq_crop bad = {
        .size = OUT, .scale_min = 0.5f, .scale_max = 0.25f, .ratio_min = 1.0f, .ratio_max = 2.0f};
    ck_assert_int_eq(mpq_augmenter_init(&a, MPQ_AUGMENT_IMAGENET, 1, H, W, C, &bad, mean, std),
                     MPQ_E_ARG);
}
END_TEST

/* The ImageNet views at their defaults: a 256 x 256 stored image gives 224 x 224 training and
 * validation tensors; the training tensor is the random-resized box of the sample's own stream
 * (mpq_random_resized_crop, then the flip draw) resampled, the validation tensor the stored
 * centre 224 x 224 (Resize(256) is the identity, CenterCrop(224) starts at 16). */
START_TEST(test_reader_imagenet_views_at_224)
{
    enum { S = 256, OUT = 224, C = 3 };
    const mpq_crop crop = {224, 256, 0.08f, 1.0f, 3.0f / 4.0f, 4.0f / 3.0f};
    const float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    uint8_t *src = malloc((size_t)S * S * C);
    float *out = malloc(sizeof(float) * OUT * OUT * C),
          *want = malloc(sizeof(float) * OUT * OUT * C);
    mpq_augmenter a;
    void *ws;
    iofix_pixels(9, S, S, C, src);
    ck_assert_int_eq(mpq_augmenter_init(&a, MPQ_AUGMENT_IMAGENET, 1, S, S, C, &crop, mean, std), 0);
    ck_assert_int_eq(a.out_h, OUT);
    ck_assert_int_eq(a.out_w, OUT);
    ws = malloc(a.ws_bytes);
    for (long i = 0; i < 6; i++) {
        mpq_rng r;
        mpq_crop_box b;
        mpq_augment_apply(&a, src, 5, 3, i, out, ws);
        mpq_rng_seed(&r, 5, MPQ_RNG_STREAM_AUGMENT, (3ull << 32) | (uint64_t)i);
        mpq_random_resized_crop(&crop, S, S, &r, &b);
        const int flip = mpq_rng_uniform(&r) < 0.5f;
        mpq_image_resample(src, S, S, C, b.y0, b.x0, b.h, b.w, OUT, OUT, want, ws);
        for (int y = 0; y < OUT; y++)
            for (int x = 0; x < OUT; x++)
                for (int ch = 0; ch < C; ch++)
                    ck_assert_float_eq(out[((size_t)y * OUT + x) * C + ch],
                                       want[((size_t)y * OUT + (flip ? OUT - 1 - x : x)) * C + ch]);
    }
    free(ws);
    ck_assert_int_eq(mpq_augmenter_init(&a, MPQ_AUGMENT_IMAGENET, 0, S, S, C, &crop, mean, std), 0);
    ck_assert_int_eq(a.out_h * 1000 + a.out_w, OUT * 1000 + OUT);
    ws = malloc(a.ws_bytes);
    mpq_augment_apply(&a, src, 5, 0, 0, out, ws);
    for (int y = 0; y < OUT; y++)
        for (int x = 0; x < OUT; x++)
            for (int ch = 0; ch < C; ch++)
                ck_assert_float_eq(out[((size_t)y * OUT + x) * C + ch],
                                   src[((size_t)(y + 16) * S + x + 16) * C + ch]);
    free(ws);
    free(src);
    free(out);
    free(want);
}
END_TEST

/* For an img_h x img_w image: the probability q that one try of mpq_random_resized_crop is
 * accepted and the mean area fraction s of accepted tries. A try draws s ~ U[smin, smax) and
 * log r ~ U[log rmin, log rmax); it is accepted when round(sqrt(sA/r)) <= img_h and
 * round(sqrt(sAr)) <= img_w, i.e. s <= u(r) = min((img_h + 1/2)^2 r, (img_w + 1/2)^2 / r) / A
 * (A = img_h img_w; s >= 0.08 keeps both sides >= 1 here). Midpoint rule over log r. */
static void crop_theory(const mpq_crop *c, int img_h, int img_w, double *q, double *mean_s)
{
    enum { K = 100000 };
    const double area = (double)img_h * img_w, lr0 = log(c->ratio_min), lr1 = log(c->ratio_max);
    double acc = 0.0, sum_s = 0.0;
    for (int k = 0; k < K; k++) {
        const double r = exp(lr0 + (k + 0.5) * (lr1 - lr0) / K);
        const double hh = img_h + 0.5, ww = img_w + 0.5;
        const double u = fmin(hh * hh * r, ww * ww / r) / area, hi = fmin(u, c->scale_max);
        if (hi <= c->scale_min) continue;
        acc += hi - c->scale_min;
        sum_s += 0.5 * (hi * hi - (double)c->scale_min * c->scale_min);
    }
    *q = acc / K / (c->scale_max - c->scale_min);
    *mean_s = acc > 0.0 ? sum_s / acc : 0.0;
}

typedef struct crop_stats {
    long n, n_fallback;
    double sum_lr, sum_lr2, sum_s, sum_s2, round_s; /* of accepted tries; round_s: max bound */
} crop_stats;

/* n draws on an img_h x img_w image (stream (seed 17, stream 0, i)); every box must lie in the
 * image, and an accepted box must be one that some (s, r) in the ranges rounds to:
 * w = round(sqrt(sAr)) and h = round(sqrt(sA/r)) give (w - 1/2)(h - 1/2) <= sA <= (w + 1/2)(h +
 * 1/2) and (w - 1/2)/(h + 1/2) <= r <= (w + 1/2)/(h - 1/2). A fallback box is the centred crop. */
static crop_stats crop_draws(const mpq_crop *c, int img_h, int img_w, long n)
{
    const double area = (double)img_h * img_w, eps = 1e-6;
    crop_stats st = {0};
    for (long i = 0; i < n; i++) {
        mpq_rng r;
        mpq_crop_box b;
        mpq_rng_seed(&r, 17, 0, (uint64_t)i);
        mpq_random_resized_crop(c, img_h, img_w, &r, &b);
        ck_assert(b.h >= 1 && b.w >= 1 && b.y0 >= 0 && b.x0 >= 0);
        ck_assert(b.y0 + b.h <= img_h && b.x0 + b.w <= img_w);
        if (b.fallback) {
            const double in_ratio = (double)img_w / img_h;
            const int fw =
                in_ratio > c->ratio_max ? (int)rint(img_h * (double)c->ratio_max) : img_w;
            const int fh =
                in_ratio < c->ratio_min ? (int)rint(img_w / (double)c->ratio_min) : img_h;
            ck_assert_int_eq(b.w, fw);
            ck_assert_int_eq(b.h, fh);
            ck_assert_int_eq(b.x0, (img_w - fw) / 2);
            ck_assert_int_eq(b.y0, (img_h - fh) / 2);
            st.n_fallback++;
            continue;
        }
        const double w = b.w, h = b.h, s = w * h / area, lr = log(w / h);
        ck_assert_msg((w + 0.5) * (h + 0.5) >= c->scale_min * area * (1 - eps) &&
                          (w - 0.5) * (h - 0.5) <= c->scale_max * area * (1 + eps),
                      "box %gx%g: area fraction %g outside [%g, %g]", w, h, s, (double)c->scale_min,
                      (double)c->scale_max);
        ck_assert_msg((w + 0.5) / (h - 0.5) >= c->ratio_min * (1 - eps) &&
                          (w - 0.5) / (h + 0.5) <= c->ratio_max * (1 + eps),
                      "box %gx%g: aspect %g outside [%g, %g]", w, h, w / h, (double)c->ratio_min,
                      (double)c->ratio_max);
        st.n++;
        st.sum_lr += lr;
        st.sum_lr2 += lr * lr;
        st.sum_s += s;
        st.sum_s2 += s * s;
        /* |wh - sA| <= (w + h + 1) / 2 + 1/4 for the s that rounds to this box */
        st.round_s = fmax(st.round_s, (0.5 * (w + h + 1) + 0.25) / area);
    }
    return st;
}

/* Crop statistics against the algorithm's distribution; tolerances are 5 standard errors of the
 * sample (plus the rounding bound for the mean area), so a correct sampler fails with a
 * probability below 1e-6 and the seeds are fixed. */
START_TEST(test_reader_random_resized_crop_statistics)
{
    enum { N = 20000 };
    const mpq_crop c = {224, 256, 0.08f, 1.0f, 3.0f / 4.0f, 4.0f / 3.0f};
    double q, mean_s;
    /* a large square image: log-aspect symmetric about 0, mean area as the theory says */
    crop_stats st = crop_draws(&c, 2048, 2048, N);
    crop_theory(&c, 2048, 2048, &q, &mean_s);
    ck_assert_int_eq(st.n + st.n_fallback, N);
    ck_assert_double_lt(N * pow(1.0 - q, 10), 1e-3); /* no fallback expected */
    ck_assert_int_eq(st.n_fallback, 0);
    const double m_lr = st.sum_lr / st.n, sd_lr = sqrt(st.sum_lr2 / st.n - m_lr * m_lr);
    const double m_s = st.sum_s / st.n, sd_s = sqrt(st.sum_s2 / st.n - m_s * m_s);
    ck_assert_msg(fabs(m_lr) <= 5 * sd_lr / sqrt(st.n), "mean log-aspect %g (sd %g, n %ld)", m_lr,
                  sd_lr, st.n);
    ck_assert_msg(fabs(m_s - mean_s) <= 5 * sd_s / sqrt(st.n) + st.round_s,
                  "mean area fraction %g, expected %g (sd %g)", m_s, mean_s, sd_s);
    /* a 100 x 1000 strip: few tries fit, the fallback rate is (1 - q)^10 */
    st = crop_draws(&c, 100, 1000, N);
    crop_theory(&c, 100, 1000, &q, &mean_s);
    const double p_fb = pow(1.0 - q, 10), sd_fb = sqrt(N * p_fb * (1.0 - p_fb));
    ck_assert_msg(fabs(st.n_fallback - N * p_fb) <= 5 * sd_fb,
                  "fallbacks %ld of %d, expected %.1f (sd %.1f)", st.n_fallback, N, N * p_fb,
                  sd_fb);
    ck_assert_int_gt(st.n, 0);
    /* other ranges: a tall image with scale [0.25, 0.5], ratio [1/2, 2] */
    const mpq_crop c2 = {224, 256, 0.25f, 0.5f, 0.5f, 2.0f};
    st = crop_draws(&c2, 900, 300, N);
    crop_theory(&c2, 900, 300, &q, &mean_s);
    const double p2 = pow(1.0 - q, 10), sd2 = sqrt(N * p2 * (1.0 - p2));
    ck_assert_msg(fabs(st.n_fallback - N * p2) <= 5 * sd2 + 1e-9, "fallbacks %ld, expected %.2f",
                  st.n_fallback, N * p2);
    const double m2 = st.sum_s / st.n, sd_s2 = sqrt(st.sum_s2 / st.n - m2 * m2);
    ck_assert_msg(fabs(m2 - mean_s) <= 5 * sd_s2 / sqrt(st.n) + st.round_s,
                  "mean area fraction %g, expected %g", m2, mean_s);
}
END_TEST

/* The triangle filter reproduces a linear ramp away from the edges and copies at scale 1. */
START_TEST(test_reader_resample_keeps_ramps_and_copies_at_scale_one)
{
    enum { H = 6, W = 16 };
    uint8_t src[H * W];
    float out[H * 8], same[H * W];
    void *ws = malloc(mpq_image_resample_ws_bytes(H, W, 1, H, 8));
    void *ws1 = malloc(mpq_image_resample_ws_bytes(H, W, 1, H, W));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            src[y * W + x] = (uint8_t)(4 * x + 10 + y);
    mpq_image_resample(src, H, W, 1, 0, 0, H, W, H, 8, out, ws);
    for (int y = 0; y < H; y++)
        for (int i = 1; i < 7; i++) /* value at source position t: 4 (t - 0.5) + 10 + y */
            ck_assert_float_eq_tol(out[y * 8 + i], 4.0f * (2.0f * i + 0.5f) + 10.0f + y, 1e-3f);
    mpq_image_resample(src, H, W, 1, 0, 0, H, W, H, W, same, ws1);
    for (int p = 0; p < H * W; p++)
        ck_assert_float_eq(same[p], (float)src[p]);
    mpq_image_resample(src, H, W, 1, 1, 3, 4, 8, 4, 8, same, ws1); /* integer window: a copy */
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++)
            ck_assert_float_eq(same[y * 8 + x], (float)src[(y + 1) * W + x + 3]);
    free(ws);
    free(ws1);
}
END_TEST

/* ---- bad inputs -------------------------------------------------------------------------- */

typedef struct bad {
    int rank;         /* of /images */
    int float_images; /* /images as float */
    int no_labels;
    int label; /* value of every label (num_classes is 2) */
    int no_mean;
    int h;
} bad;

static void write_bad_shard(const char *path, const bad *b)
{
    hsize_t dims[4] = {3, (hsize_t)b->h, 4, 1}, ldims[1] = {3};
    float mean[1] = {1}, std[1] = {1};
    int nc = 2, w = 4, c = 1, labels[3] = {b->label, b->label, b->label};
    float zeros[3 * 8 * 4] = {0};
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), sp, d, a;
    ck_assert_int_ge(f, 0);
    sp = H5Screate_simple(b->rank, dims, NULL);
    d = H5Dcreate2(f, "images", b->float_images ? H5T_IEEE_F32LE : H5T_STD_U8LE, sp, H5P_DEFAULT,
                   H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    H5Dclose(d);
    H5Sclose(sp);
    if (!b->no_labels) {
        sp = H5Screate_simple(1, ldims, NULL);
        d = H5Dcreate2(f, "labels", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels);
        H5Dclose(d);
        H5Sclose(sp);
    }
    sp = H5Screate(H5S_SCALAR);
    const char *names[4] = {"num_classes", "height", "width", "channels"};
    const int vals[4] = {nc, b->h, w, c};
    for (int i = 0; i < 4; i++) {
        a = H5Acreate2(f, names[i], H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, &vals[i]);
        H5Aclose(a);
    }
    H5Sclose(sp);
    sp = H5Screate_simple(1, (hsize_t[]){1}, NULL);
    for (int i = b->no_mean; i < 2; i++) {
        a = H5Acreate2(f, i ? "std" : "mean", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_FLOAT, i ? std : mean);
        H5Aclose(a);
    }
    H5Sclose(sp);
    H5Fclose(f);
}

/* Opening the split in dir fails with rc and a message naming `names` (and `also`). */
static void expect_open_error(const char *dir, int rc, const char *names, const char *also)
{
    mpq_split *s = NULL;
    int got = mpq_split_open(dir, &s);
    ck_assert_msg(got == rc, "%s: got %d, want %d (%s)", dir, got, rc, mpq_errmsg());
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(mpq_errmsg(), names), "message '%s' does not name '%s'", mpq_errmsg(),
                  names);
    if (also)
        ck_assert_msg(strstr(mpq_errmsg(), also), "message '%s' lacks '%s'", mpq_errmsg(), also);
}

START_TEST(test_reader_bad_splits_fail_naming_the_file)
{
    static const struct {
        const char *name, *also;
        bad b;
    } cases[] = {
        {"no_labels", "labels", {.rank = 4, .no_labels = 1, .h = 5}},
        {"rank3", "rank", {.rank = 3, .h = 5}},
        {"float", "integers", {.rank = 4, .float_images = 1, .h = 5}},
        {"label", "outside", {.rank = 4, .label = 2, .h = 5}},
        {"negative_label", "outside", {.rank = 4, .label = -1, .h = 5}},
        {"no_mean", "mean", {.rank = 4, .no_mean = 1, .h = 5}},
    };
    char dir[2048], path[4096];
    mpq_source *src;
    mpq_source_opts o = {.global_batch = 100, .n_ranks = 1, .train = 1};
    expect_open_error(sub("missing"), MPQ_E_IO, sub("missing"), NULL);
    mkdir(sub("empty"), 0777);
    expect_open_error(sub("empty"), MPQ_E_FORMAT, sub("empty"), "no shards");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(dir, sizeof dir, "%s", sub(cases[i].name));
        mkdir(dir, 0777);
        snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
        write_bad_shard(path, &cases[i].b);
        expect_open_error(dir, MPQ_E_FORMAT, path, cases[i].also);
    }
    /* not HDF5 at all; a truncated good shard */
    mkdir(sub("text"), 0777);
    ck_assert_int_eq(iofix_write_text(sub("text/a.h5"), "not an HDF5 file\n"), 0);
    expect_open_error(sub("text"), MPQ_E_FORMAT, sub("text/a.h5"), NULL);
    ck_assert_int_eq(iofix_make_split(sub("good"), 20, 8, 8, 3, 1, 3), 0);
    mkdir(sub("cut"), 0777);
    ck_assert_int_eq(iofix_copy_file(sub("good/shard-00000.h5"), sub("cut/shard-00000.h5"), 3000),
                     0);
    expect_open_error(sub("cut"), MPQ_E_FORMAT, sub("cut/shard-00000.h5"), NULL);
    /* shards of different image sizes */
    mkdir(sub("mixed"), 0777);
    write_bad_shard(sub("mixed/a.h5"), &(bad){.rank = 4, .h = 5});
    write_bad_shard(sub("mixed/b.h5"), &(bad){.rank = 4, .h = 6});
    expect_open_error(sub("mixed"), MPQ_E_FORMAT, sub("mixed/b.h5"), NULL);
    /* fewer samples than one training batch; bad options */
    ck_assert_int_eq(mpq_source_shards_create(sub("good"), &o, &src), MPQ_E_ARG);
    ck_assert_ptr_null(src);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), sub("good")));
    o.global_batch = 4;
    o.rank = 1;
    ck_assert_int_eq(mpq_source_shards_create(sub("good"), &o, &src), MPQ_E_ARG);
    ck_assert_int_eq(mpq_source_shards_create(sub("missing"), &o, &src), MPQ_E_ARG);
    o.rank = 0;
    ck_assert_int_eq(mpq_source_shards_create(sub("missing"), &o, &src), MPQ_E_IO);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), sub("missing")));
}
END_TEST

/* A leftover temporary is not a shard; the incomplete-marker makes the split refused. */
START_TEST(test_reader_ignores_temporaries_and_refuses_incomplete_splits)
{
    mpq_split *s;
    char marker[4096 + 32];
    ck_assert_int_eq(iofix_make_split(sub("t"), 12, 4, 4, 1, 2, 3), 0);
    ck_assert_int_eq(iofix_copy_file(sub("t/shard-00001.h5"), sub("t/shard-00002.h5.tmp"), -1), 0);
    ck_assert_int_eq(iofix_copy_file(sub("t/shard-00001.h5"), sub("t/shard-00003.h5.tmp"), 500), 0);
    ck_assert_int_eq(mpq_split_open(sub("t"), &s), 0);
    ck_assert_int_eq(mpq_split_info(s)->n_samples, 12);
    mpq_split_close(s);
    snprintf(marker, sizeof marker, "%s/%s", sub("t"), MPQ_SPLIT_INCOMPLETE);
    ck_assert_int_eq(iofix_write_text(marker, "x"), 0);
    expect_open_error(sub("t"), MPQ_E_FORMAT, marker, "interrupted");
}
END_TEST

/* Statistics a reader cannot normalize with (NaN, infinite, negative) are refused naming the shard
 * and the attribute; a
 * num_classes key below the data's labels is a configuration error naming the key and the shard;
 * the layout fingerprint is the same for the same data and differs for other labels; a shard
 * that changes under a running reader is an error naming it. */
START_TEST(test_reader_stats_classes_fingerprint_and_changed_shards)
{
    static const float bad_std[] = {NAN, INFINITY, -INFINITY, -1.0f};
    uint8_t px[2 * 4 * 4];
    int32_t labels[2] = {0, 1};
    char dir[2048], path[4096];
    const float mean = 100.0f;
    iofix_pixels(0, 4, 4, 1, px);
    iofix_pixels(1, 4, 4, 1, px + 16);
    for (size_t i = 0; i < sizeof bad_std / sizeof bad_std[0]; i++) {
        snprintf(dir, sizeof dir, "%s/std%zu", tmp, i);
        mkdir(dir, 0777);
        snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
        ck_assert_int_eq(mpq_shard_write(path, 2, 4, 4, 1, px, labels, 2, &mean, &bad_std[i]), 0);
        expect_open_error(dir, MPQ_E_FORMAT, path, "attribute std[0]");
    }
    /* a constant channel (std 0, as `mpq prep` writes it) is fine */
    mpq_split *z;
    snprintf(dir, sizeof dir, "%s/std0", tmp);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    ck_assert_int_eq(mpq_shard_write(path, 2, 4, 4, 1, px, labels, 2, &mean, &(float){0.0f}), 0);
    ck_assert_int_eq(mpq_split_open(dir, &z), 0);
    mpq_split_close(z);
    snprintf(dir, sizeof dir, "%s/nanmean", tmp);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    ck_assert_int_eq(mpq_shard_write(path, 2, 4, 4, 1, px, labels, 2, &bad_std[0], &mean), 0);
    expect_open_error(dir, MPQ_E_FORMAT, path, "attribute mean[0]");

    /* num_classes below the labels (7 classes: labels 0..6) */
    mpq_source *src = NULL;
    mpq_source_opts o = {.global_batch = 4, .n_ranks = 1, .train = 1, .num_classes = 3};
    ck_assert_int_eq(iofix_make_split(sub("k7"), 24, 4, 4, 1, 2, 7), 0);
    ck_assert_int_eq(mpq_source_shards_create(sub("k7"), &o, &src), MPQ_E_CONFIG);
    ck_assert_ptr_null(src);
    ck_assert_msg(strstr(mpq_errmsg(), "num_classes = 3") && strstr(mpq_errmsg(), sub("k7")) &&
                      strstr(mpq_errmsg(), "shard-0000"),
                  "%s", mpq_errmsg());
    o.num_classes = 7;
    ck_assert_int_eq(mpq_source_shards_create(sub("k7"), &o, &src), 0);
    mpq_source_free(src);

    /* fingerprints */
    mpq_split *a, *b;
    ck_assert_int_eq(iofix_make_split(sub("k7b"), 24, 4, 4, 1, 2, 7), 0);
    ck_assert_int_eq(iofix_make_split(sub("k5"), 24, 4, 4, 1, 2, 5), 0);
    ck_assert_int_eq(mpq_split_open(sub("k7"), &a), 0);
    ck_assert_int_eq(mpq_split_open(sub("k7b"), &b), 0);
    ck_assert(mpq_split_info(a)->fingerprint == mpq_split_info(b)->fingerprint);
    mpq_split_close(b);
    ck_assert_int_eq(mpq_split_open(sub("k5"), &b), 0);
    ck_assert(mpq_split_info(a)->fingerprint != mpq_split_info(b)->fingerprint);
    mpq_split_close(b);

    /* a shard rewritten (here: truncated) while the split is open */
    uint8_t img[16];
    ck_assert_int_eq(mpq_split_read(a, 20, img, NULL), 0);
    ck_assert_int_eq(truncate(sub("k7/shard-00001.h5"), 100), 0);
    ck_assert_int_eq(mpq_split_read(a, 20, img, NULL), MPQ_E_IO);
    ck_assert_msg(strstr(mpq_errmsg(), sub("k7/shard-00001.h5")) &&
                      strstr(mpq_errmsg(), "changed while training"),
                  "%s", mpq_errmsg());
    ck_assert_int_eq(unlink(sub("k7/shard-00001.h5")), 0);
    ck_assert_int_eq(mpq_split_read(a, 20, img, NULL), MPQ_E_IO);
    ck_assert_msg(strstr(mpq_errmsg(), "disappeared"), "%s", mpq_errmsg());
    mpq_split_close(a);
}
END_TEST

static Suite *reader_suite(void)
{
    Suite *s = suite_create("reader");
    TCase *tc = tcase_create("reader");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reader_split_reads_back_across_shards);
    tcase_add_test(tc, test_reader_train_epoch_is_the_seeded_permutation);
    tcase_add_test(tc, test_reader_validation_reads_all_in_order_last_batch_short);
    tcase_add_test(tc, test_reader_batches_do_not_depend_on_rank_count);
    tcase_add_test(tc, test_reader_prefetch_and_seek_match_sequential_reading);
    tcase_add_test(tc, test_reader_cifar_augment_is_pad_crop_flip);
    tcase_add_test(tc, test_reader_imagenet_augment_crops_resamples_and_centres);
    tcase_add_test(tc, test_reader_imagenet_views_at_224);
    tcase_add_test(tc, test_reader_random_resized_crop_statistics);
    tcase_add_test(tc, test_reader_resample_keeps_ramps_and_copies_at_scale_one);
    tcase_add_test(tc, test_reader_bad_splits_fail_naming_the_file);
    tcase_add_test(tc, test_reader_ignores_temporaries_and_refuses_incomplete_splits);
    tcase_add_test(tc, test_reader_stats_classes_fingerprint_and_changed_shards);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(reader_suite); }

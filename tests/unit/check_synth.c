/* The synthetic data source (src/data_synth.c): every sample is its class prototype, the uniform
 * [-1, 1) stream (seed, SYNTHETIC, 2^62 + class), plus half-amplitude noise from the sample's own
 * stream, recomputed here from those streams; and a 1000-class 224x224x3 set (mpq bench's
 * ImageNet models) stores no prototypes: creating it and drawing a batch raises the peak resident
 * memory by far less than the 574 MiB that 1000 stored prototypes take. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "core/err.h"
#include "core/rng.h"
#include "data.h"
#include "testutil.h"

static long peak_rss_kib(void)
{
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

static mpq_source_opts opts(int batch, int train)
{
    return (mpq_source_opts){
        .global_batch = batch, .rank = 0, .n_ranks = 1, .seed = 3, .train = train};
}

START_TEST(test_synth_sample_is_its_prototype_plus_noise)
{
    enum { H = 5, W = 4, C = 3, K = 7, N = 12, B = 6 };
    const uint64_t seed = 11;
    const size_t len = (size_t)H * W * C;
    mpq_source_opts o = opts(B, 0); /* validation order: sample i at position i */
    mpq_source *src;
    ck_assert_msg(mpq_source_synthetic_create(&o, N, H, W, C, K, seed, &src) == 0, "%s",
                  mpq_errmsg());
    float *x = malloc(sizeof(float) * len * B);
    int y[B], n = 0, seen[K] = {0};
    ck_assert_ptr_nonnull(x);
    for (int batch = 0; batch < N / B; batch++) {
        ck_assert_int_eq(src->ops->next(src, x, y, &n), 0);
        ck_assert_int_eq(n, B);
        for (int j = 0; j < B; j++) {
            const long idx = (long)batch * B + j;
            mpq_rng r, proto;
            mpq_rng_seed(&r, seed, MPQ_RNG_STREAM_SYNTHETIC, (uint64_t)idx | (uint64_t)1 << 61);
            const int label = (int)mpq_rng_below(&r, K);
            ck_assert_int_eq(y[j], label);
            seen[label]++;
            mpq_rng_seed(&proto, seed, MPQ_RNG_STREAM_SYNTHETIC, (uint64_t)1 << 62 | label);
            for (size_t i = 0; i < len; i++) {
                const float p = 2.0f * mpq_rng_uniform(&proto) - 1.0f;
                const float want = p + 0.5f * (2.0f * mpq_rng_uniform(&r) - 1.0f);
                ck_assert_msg(x[(size_t)j * len + i] == want,
                              "sample %ld pixel %zu: %.9g, expected %.9g", idx, i,
                              (double)x[(size_t)j * len + i], (double)want);
            }
        }
    }
    int classes = 0;
    for (int k = 0; k < K; k++)
        classes += seen[k] > 0;
    ck_assert_msg(classes > 1, "all %d samples in one class", N);
    free(x);
    mpq_source_free(src);
}
END_TEST

START_TEST(test_synth_imagenet_sized_set_stores_no_prototypes)
{
    enum { H = 224, W = 224, C = 3, K = 1000, B = 2 };
    const size_t len = (size_t)H * W * C;
    const double protos_mib = (double)len * K * sizeof(float) / (1 << 20); /* 574.2 */
    float *x = calloc(len * B, sizeof(float));
    int y[B], n = 0;
    ck_assert_ptr_nonnull(x);
    const long before = peak_rss_kib();
    mpq_source_opts o = opts(B, 1);
    mpq_source *src;
    ck_assert_msg(mpq_source_synthetic_create(&o, 4 * B, H, W, C, K, 1, &src) == 0, "%s",
                  mpq_errmsg());
    ck_assert_int_eq(src->ops->next(src, x, y, &n), 0);
    ck_assert_int_eq(n, B);
    const double grown_mib = (peak_rss_kib() - before) / 1024.0;
    ck_assert_msg(grown_mib < 64.0,
                  "the source raised the peak resident memory by %.1f MiB (%d prototypes of "
                  "%dx%dx%d: %.1f MiB)",
                  grown_mib, K, H, W, C, protos_mib);
    for (int j = 0; j < B; j++)
        ck_assert(y[j] >= 0 && y[j] < K);
    free(x);
    mpq_source_free(src);
}
END_TEST

static Suite *synth_suite(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_synth_sample_is_its_prototype_plus_noise);
    tcase_add_test(tc, test_synth_imagenet_sized_set_stores_no_prototypes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(synth_suite); }

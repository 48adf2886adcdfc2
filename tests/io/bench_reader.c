/* Reader throughput (images/s on one thread, no prefetch): `bench_reader` makes synthetic splits
 * of 32x32x3 and 256x256x3 images in a temporary directory and reads them with each
 * augmentation (imagenet: 224x224 random-resized crops, the default views); `bench_reader DIR
 * {cifar|imagenet|none} [BATCH STEPS [CROP]]` measures an existing split (CROP: the imagenet
 * crop size, default 224; 0: the stored size); `bench_reader --make DIR N SIZE SHARDS CLASSES`
 * writes a synthetic split of N SIZExSIZEx3 images for a training run to read
 * (jobs/bench-reader.sh). Not a test: it prints numbers and asserts nothing about them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "io/shard.h"
#include "iofix.h"
#include "testutil.h"

static const char *aug_name(mpq_augment a)
{
    return a == MPQ_AUGMENT_CIFAR ? "cifar" : a == MPQ_AUGMENT_IMAGENET ? "imagenet" : "none";
}

static int bench(const char *dir, const char *label, mpq_augment aug, int crop_size, int batch,
                 int steps)
{
    const mpq_crop crop = {crop_size, 256, 0.08f, 1.0f, 3.0f / 4.0f, 4.0f / 3.0f};
    double rate = 0.0, cpu_rate = 0.0;
    int rc = mpq_bench_reader(dir, aug, &crop, batch, steps, &rate, &cpu_rate);
    if (rc < 0) {
        fprintf(stderr, "bench_reader: %s\n", mpq_errmsg());
        return rc;
    }
    printf("%-12s augment %-8s", label, aug_name(aug));
    if (aug == MPQ_AUGMENT_IMAGENET) printf(" -> %dx%d", crop_size, crop_size);
    printf(" batch %4d: %9.0f images/s per thread (%9.0f per CPU second)\n", batch, rate, cpu_rate);
    return 0;
}

int main(int argc, char **argv)
{
    char path[4096];
    char *tmp;
    int rc = 0;
    mpq_log_set_quiet(1);
    if (argc == 7 && !strcmp(argv[1], "--make")) {
        int size = atoi(argv[4]);
        rc = iofix_make_split(argv[2], atol(argv[3]), size, size, 3, atoi(argv[5]), atoi(argv[6]));
        if (rc < 0) fprintf(stderr, "bench_reader: %s\n", mpq_errmsg());
        return rc < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
    }
    if (argc >= 3) {
        mpq_augment aug = !strcmp(argv[2], "cifar")      ? MPQ_AUGMENT_CIFAR
                          : !strcmp(argv[2], "imagenet") ? MPQ_AUGMENT_IMAGENET
                                                         : MPQ_AUGMENT_NONE;
        int batch = argc > 3 ? atoi(argv[3]) : 128, steps = argc > 4 ? atoi(argv[4]) : 20;
        int crop_size = argc > 5 ? atoi(argv[5]) : 224;
        return bench(argv[1], argv[1], aug, crop_size, batch, steps) < 0 ? EXIT_FAILURE
                                                                         : EXIT_SUCCESS;
    }
    if (!(tmp = mpq_test_tmpdir())) return EXIT_FAILURE;
    snprintf(path, sizeof path, "%s/s32", tmp);
    rc = iofix_make_split(path, 8192, 32, 32, 3, 4, 10);
    if (rc == 0) rc = bench(path, "32x32x3", MPQ_AUGMENT_CIFAR, 0, 256, 30);
    if (rc == 0) rc = bench(path, "32x32x3", MPQ_AUGMENT_NONE, 0, 256, 30);
    snprintf(path, sizeof path, "%s/s256", tmp);
    if (rc == 0) rc = iofix_make_split(path, 640, 256, 256, 3, 2, 10);
    if (rc == 0) rc = bench(path, "256x256x3", MPQ_AUGMENT_IMAGENET, 224, 64, 9);
    if (rc == 0) rc = bench(path, "256x256x3", MPQ_AUGMENT_NONE, 0, 64, 9);
    if (rc < 0) fprintf(stderr, "bench_reader: %s\n", mpq_errmsg());
    mpq_test_rmtree(tmp);
    free(tmp);
    return rc < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

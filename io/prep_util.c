/* Shared converter plumbing (see prep_util.h). */
#include "io/prep_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/args.h"
#include "core/clock.h"
#include "core/dir.h"
#include "core/err.h"
#include "core/log.h"
#include "core/path.h"
#include "io/shard.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int mpq_prep_begin(const char *dir)
{
    char path[MPQ_PATH_MAX];
    DIR *d;
    struct dirent *e;
    FILE *f;
    int rc = MPQ_OK;
    MPQ_TRY(mpq_dir_make(dir, 0777));
    if (!(d = opendir(dir)))
        return MPQ_FAIL(MPQ_E_IO, "cannot read directory '%s': %s", dir, strerror(errno));
    while ((e = readdir(d)) && rc == MPQ_OK)
        if (ends_with(e->d_name, ".h5") && strncmp(e->d_name, "shard-", 6) != 0)
            rc = MPQ_FAIL(MPQ_E_ARG,
                          "output directory '%s' holds other HDF5 files (%s) "
                          "---> HINT: choose an empty directory",
                          dir, e->d_name);
    closedir(d);
    MPQ_TRY(rc);
    snprintf(path, sizeof path, "%s/%s", dir, MPQ_SPLIT_INCOMPLETE);
    if (!(f = fopen(path, "w")))
        return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "mpq prep is writing this split; it is not usable until this file is gone\n");
    if (fclose(f) != 0) return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", path, strerror(errno));
    if (!(d = opendir(dir)))
        return MPQ_FAIL(MPQ_E_IO, "cannot read directory '%s': %s", dir, strerror(errno));
    while ((e = readdir(d)) && rc == MPQ_OK) {
        if (!(strncmp(e->d_name, "shard-", 6) == 0 && ends_with(e->d_name, ".h5")) &&
            !ends_with(e->d_name, ".h5.tmp"))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0)
            rc = MPQ_FAIL(MPQ_E_IO, "cannot remove the earlier shard '%s': %s", path,
                          strerror(errno));
    }
    closedir(d);
    return rc;
}

int mpq_prep_end(const char *dir)
{
    char path[MPQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, MPQ_SPLIT_INCOMPLETE);
    if (unlink(path) != 0)
        return MPQ_FAIL(MPQ_E_IO, "cannot remove '%s': %s", path, strerror(errno));
    return MPQ_OK;
}

void mpq_prep_shard_path(const char *dir, int k, char *buf, size_t n_bytes)
{
    snprintf(buf, n_bytes, "%s/shard-%05d.h5", dir, k);
}

long mpq_prep_shard_start(long n, int n_shards, int k) { return k * n / n_shards; }

int mpq_prep_write_shards(const char *dir, int n_shards, long n, int h, int w, int c,
                          const uint8_t *images, const int32_t *labels, int num_classes,
                          const float *mean, const float *std)
{
    char path[MPQ_PATH_MAX];
    const size_t img = (size_t)h * w * c;
    if (n_shards > n) n_shards = (int)n;
    for (int k = 0; k < n_shards; k++) {
        long lo = mpq_prep_shard_start(n, n_shards, k),
             hi = mpq_prep_shard_start(n, n_shards, k + 1);
        mpq_prep_shard_path(dir, k, path, sizeof path);
        MPQ_TRY(mpq_shard_write(path, hi - lo, h, w, c, images + (size_t)lo * img, labels + lo,
                                num_classes, mean, std));
    }
    return MPQ_OK;
}

int mpq_prep_stats_from(const char *dir, int c, float *mean, float *std, int *num_classes)
{
    mpq_split *s;
    const mpq_data_info *in;
    int rc = MPQ_OK;
    MPQ_TRY(mpq_err_push(mpq_split_open(dir, &s), "--stats-from"));
    in = mpq_split_info(s);
    if (in->c != c) {
        rc = MPQ_FAIL(MPQ_E_FORMAT, "--stats-from %s: %d channels, the data here have %d", dir,
                      in->c, c);
    } else {
        for (int ch = 0; ch < c; ch++) {
            mean[ch] = in->mean[ch];
            std[ch] = in->std[ch];
        }
        *num_classes = in->num_classes;
    }
    mpq_split_close(s);
    return rc;
}

void mpq_progress_init(mpq_progress *p, const char *what, const char *units, long total)
{
    p->what = what;
    p->units = units;
    p->total = total;
    p->t0 = p->last = mpq_clock_s(CLOCK_MONOTONIC);
}

void mpq_progress_update(mpq_progress *p, long done)
{
    double t = mpq_clock_s(CLOCK_MONOTONIC), rate;
    if (t - p->last < 5.0 || done <= 0) return;
    p->last = t;
    rate = done / (t - p->t0);
    mpq_log_info("%s: %ld/%ld %s (%.0f%%), %.0f %s/s, ETA %.0f s", p->what, done, p->total,
                 p->units, 100.0 * done / (p->total > 0 ? p->total : 1), rate, p->units,
                 (p->total - done) / (rate > 0 ? rate : 1));
}

void mpq_progress_done(mpq_progress *p, long done)
{
    double t = mpq_clock_s(CLOCK_MONOTONIC) - p->t0;
    mpq_log_info("%s: %ld %s in %.1f s (%.0f %s/s)", p->what, done, p->units, t,
                 done / (t > 0 ? t : 1e-9), p->units);
}

int mpq_prep_usage_error(const char *usage, const char *message)
{
    const mpq_argspec spec = {"mpq prep", usage, NULL, 0, NULL, 0};
    return mpq_args_usage_error(&spec, message);
}

int mpq_prep_parse(int argc, char **argv, const mpq_opt *opts, int n_opts, const char *usage)
{
    const mpq_argspec spec = {"mpq prep", usage, opts, n_opts, NULL, 0};
    int n_pos;
    return mpq_args_parse(&spec, argc, argv, &n_pos);
}

/* What the converters share: the output directory life cycle (marker, cleanup), cutting a set of
 * images into shards, statistics from an existing split, progress lines, and option parsing for
 * the `mpq prep` mains. Internal to io/. No global state; progress prints on rank 0 (log). */
#ifndef MPQ_IO_PREP_UTIL_H
#define MPQ_IO_PREP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/args.h"

/* Creates dir (and parents), puts the MPQ_SPLIT_INCOMPLETE marker in it and removes earlier
 * shards (shard-*.h5) and temporaries (*.h5.tmp). Refuses (MPQ_E_ARG) a directory with other
 * *.h5 files. Returns 0 or MPQ_E_*. */
int mpq_prep_begin(const char *dir);
/* Removes the marker: the split is complete. */
int mpq_prep_end(const char *dir);
/* dir/shard-%05d.h5 into buf. */
void mpq_prep_shard_path(const char *dir, int k, char *buf, size_t n_bytes);
/* First sample of shard k when n samples are cut into n_shards contiguous shards. */
long mpq_prep_shard_start(long n, int n_shards, int k);
/* Writes n images (h, w, c) with labels as min(n_shards, n) complete shards of dir. */
int mpq_prep_write_shards(const char *dir, int n_shards, long n, int h, int w, int c,
                          const uint8_t *images, const int32_t *labels, int num_classes,
                          const float *mean, const float *std);
/* Reads mean and std (c floats) and num_classes of the split in dir; MPQ_E_FORMAT if it has a
 * different channel count. */
int mpq_prep_stats_from(const char *dir, int c, float *mean, float *std, int *num_classes);

/* Progress lines "what: done/total (p%), r units/s, ETA t s", at most every few seconds. */
typedef struct mpq_progress {
    const char *what, *units;
    long total;
    double t0, last;
} mpq_progress;
void mpq_progress_init(mpq_progress *p, const char *what, const char *units, long total);
void mpq_progress_update(mpq_progress *p, long done);
/* The closing line: "what: n units in t s (r units/s)". */
void mpq_progress_done(mpq_progress *p, long done);

/* Option parsing for the mains: the one strict parser (core/args.h) under the verb "mpq prep".
 * Returns 0, 1 for --help (usage printed on stdout), 2 for a usage error (message and usage on
 * stderr). Prints on rank 0 only. Required options are checked by the caller with
 * mpq_prep_usage_error. */
int mpq_prep_parse(int argc, char **argv, const mpq_opt *opts, int n_opts, const char *usage);
/* Prints "mpq prep: <message>" and the usage on stderr (rank 0); returns 2. */
int mpq_prep_usage_error(const char *usage, const char *message);

#endif

/* HDF5 dataset shards (DESIGN.md "Formats", a contract): one split is a directory of *.h5 shards,
 * each with /images uint8 [n,H,W,C] chunked one image per chunk, /labels int32 [n], and root
 * attributes num_classes, height, width, channels, mean[C], std[C] (training statistics, 0..255
 * scale). Sample indices are global across shards in sorted file-name order. Files whose names do
 * not end in ".h5" are ignored (temporaries end in ".h5.tmp"); a directory holding the marker
 * MPQ_SPLIT_INCOMPLETE is a conversion that did not finish and is refused.
 * Threading: an mpq_split is used by one thread at a time; every HDF5 call takes io/h5.h's lock. */
#ifndef MPQ_IO_SHARD_H
#define MPQ_IO_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"

#define MPQ_SPLIT_INCOMPLETE "PREP_INCOMPLETE"
/* Limits checked when a split is opened (a crafted shard gets a clean error, never a wrapped
 * size): bytes of one image H*W*C, and samples of a whole split. */
#define MPQ_SHARD_MAX_IMAGE_BYTES ((size_t)1 << 28)
#define MPQ_SPLIT_MAX_SAMPLES ((size_t)1 << 40)

typedef struct mpq_split mpq_split; /* opaque: the shards of one split, opened read-only */

/* Opens every shard of dir, checks datasets, types, shapes, attributes, the label range and
 * agreement between shards, and keeps all labels in memory. Errors name the file: MPQ_E_IO
 * (missing or unreadable directory or file), MPQ_E_FORMAT (no shards, not HDF5 / truncated,
 * missing or malformed datasets or attributes, labels outside [0, num_classes), shards that
 * disagree, a mean or std attribute that is not finite or a negative std, interrupted conversion).
 * info.fingerprint hashes the shard file names (not their directory), row counts, shapes, class
 * counts, statistics and labels. Returns 0 or MPQ_E_*. */
int mpq_split_open(const char *dir, mpq_split **out);
/* NULL is a no-op. */
void mpq_split_close(mpq_split *s);
/* Checks that every label lies below num_classes (the configuration's key, when it is set below
 * the data's). Returns 0 or MPQ_E_CONFIG naming the key, the shard, the sample and the label. */
int mpq_split_check_labels(const mpq_split *s, int num_classes);
const mpq_data_info *mpq_split_info(const mpq_split *s);
/* The labels of all samples (n_samples, global order), checked at open. */
const int32_t *mpq_split_labels(const mpq_split *s);
/* Writes the pixels (H*W*C uint8) and the label of sample i (global index); label may be NULL.
 * Keeps a bounded cache of open shard files. Returns 0 or MPQ_E_IO / MPQ_E_ARG. */
int mpq_split_read(mpq_split *s, long i, uint8_t *pixels, int *label);

/* Writes one complete shard atomically: mpq_shard_write_data, then mpq_shard_commit.
 * images: n*H*W*C uint8 (n >= 1), labels: n, mean/std: c floats each. Returns 0 or MPQ_E_*. */
int mpq_shard_write(const char *path, long n, int h, int w, int c, const uint8_t *images,
                    const int32_t *labels, int num_classes, const float *mean, const float *std);
/* Two phases, for converters that know the statistics only after every shard is written:
 * write_data creates path + ".tmp" with the datasets and the size attributes; commit adds mean
 * and std (c floats each), syncs, and renames it to path. On failure the temporary is removed. */
int mpq_shard_write_data(const char *path, long n, int h, int w, int c, const uint8_t *images,
                         const int32_t *labels, int num_classes);
int mpq_shard_commit(const char *path, int c, const float *mean, const float *std);

/* A batch source over a split (the trainer's reader; semantics in data.h): the epoch's order is
 * mpq_rng_permutation(seed, MPQ_RNG_STREAM_PERM, epoch) of the global indices (train) or the
 * identity (validation); global batch s holds positions [s*B, s*B + b) with b = B, or the
 * remainder for the last validation batch; rank r of R takes positions [s*B + r*b/R,
 * s*B + (r+1)*b/R) (integer division), so max_local_batch = ceil(B/R). With o->prefetch a
 * background thread reads and augments the next batch (two buffers); it is the only thread that
 * calls HDF5 for this source. next() moves on to (epoch + 1, 0) after the last step.
 * wait_seconds() counts the time next() blocked on the thread (without prefetch: all of next()).
 * Returns 0 or MPQ_E_* (split errors above; MPQ_E_ARG for bad options or fewer samples than one
 * training batch). */
int mpq_source_shards_create(const char *dir, const mpq_source_opts *o, mpq_source **out);

/* Reader throughput on one thread (no prefetch): `steps` training batches of `batch` images of
 * the split in dir with augmentation aug and the imagenet views crop (NULL: the stored size),
 * after one warm-up batch. Writes the rate per second of wall time to *images_per_s and per
 * second of the thread's CPU time (what a busy, shared machine does not inflate) to
 * *images_per_cpu_s. Returns 0 or MPQ_E_*. */
int mpq_bench_reader(const char *dir, mpq_augment aug, const mpq_crop *crop, int batch, int steps,
                     double *images_per_s, double *images_per_cpu_s);

#endif

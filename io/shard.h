/* HDF5 dataset shards (DESIGN.md "Formats", a contract): one split is a directory of *.h5 shards,
 * each with /images uint8 [n,H,W,C] chunked one image per chunk, /labels int32 [n], and root
 * attributes num_classes, height, width, channels, mean[C], std[C] (training statistics, 0..255
 * scale). Sample indices are global across shards in sorted file-name order. */
#ifndef MPQ_IO_SHARD_H
#define MPQ_IO_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"

typedef struct mpq_split mpq_split; /* opaque: the shards of one split, opened read-only */

/* Opens every shard of dir, checks datasets, shapes, attributes and agreement between shards.
 * Errors name the file. Returns 0 or MPQ_E_*. */
int mpq_split_open(const char *dir, mpq_split **out);
void mpq_split_close(mpq_split *s);
const mpq_data_info *mpq_split_info(const mpq_split *s);
/* Reads sample i (global index): pixels (H*W*C uint8) and label. Checks the label range. */
int mpq_split_read(mpq_split *s, long i, uint8_t *pixels, int *label);

/* Writes one shard atomically (temporary name, then rename). images: n*H*W*C uint8. */
int mpq_shard_write(const char *path, long n, int h, int w, int c, const uint8_t *images,
                    const int32_t *labels, int num_classes, const float *mean, const float *std);

/* A batch source over a split (the trainer's reader): prefetching thread, augmentation keyed by
 * (seed, epoch, global sample index). */
int mpq_source_shards_create(const char *dir, const mpq_source_opts *o, mpq_source **out);

#endif

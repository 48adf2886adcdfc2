/* Converters from raw data sets to HDF5 shards (`mpq prep`): IDX (MNIST-like, gzip or plain),
 * CIFAR-10 binary batches, and JPEG class folders (ImageNet layout). Each computes the training
 * statistics, writes shards atomically, reports progress and never leaves a shard that looks
 * complete after an interruption: while a split directory is being written it holds the marker
 * MPQ_SPLIT_INCOMPLETE (io/shard.h), which the reader refuses; shards are written under a
 * temporary name and renamed when complete. Re-running a conversion replaces the split's earlier
 * shards (shard-NNNNN.h5); an output directory holding other *.h5 files is refused.
 * The mpq_prep_* functions take explicit options (used by tests and by the mains). */
#ifndef MPQ_IO_PREP_H
#define MPQ_IO_PREP_H

#include <stdint.h>

struct mpq_comm;

/* One IDX pair -> one split directory (shards out_dir/shard-NNNNN.h5). Images: IDX3 [n,H,W]
 * (C = 1) or IDX4 [n,H,W,C] unsigned bytes; labels: IDX1 [n] unsigned bytes. num_classes is the
 * largest label + 1, or that of stats_from. */
typedef struct mpq_prep_idx_opts {
    const char *images, *labels; /* file names; gzip or plain */
    const char *out_dir;
    int shards;             /* >= 1 (clamped to the sample count) */
    long skip;              /* leave out the first `skip` samples (a held-out split) */
    long limit;             /* then convert only the next `limit` samples; 0: all */
    const char *stats_from; /* NULL, or a split (the training one) whose mean, std and
                               num_classes this split gets: for test splits */
} mpq_prep_idx_opts;
int mpq_prep_idx(const mpq_prep_idx_opts *o);
/* The checked IDX loader mpq_prep_idx uses (also for tests and fuzz targets): reads and checks
 * both files (magic, 1..2^30 per dimension, at most MPQ_SHARD_MAX_IMAGE_BYTES per image, sizes
 * overflow-checked, memory growing with the bytes actually present, so a header that claims more
 * than the file holds is "truncated", not a huge allocation). Errors name the file. */
typedef struct mpq_idx_data {
    long n;
    int h, w, c;
    uint8_t *images; /* n*h*w*c */
    uint8_t *labels; /* n */
} mpq_idx_data;
int mpq_idx_load(const char *images, const char *labels, long limit, mpq_idx_data *out);
void mpq_idx_data_free(mpq_idx_data *d);

/* dir/data_batch_1..5.bin -> out_dir/train, dir/test_batch.bin -> out_dir/val (binary version:
 * records of 1 label byte + 3072 bytes of 32x32 R, G, B planes; stored HWC). Both splits carry
 * the training statistics. */
typedef struct mpq_prep_cifar10_opts {
    const char *dir, *out_dir;
    int shards; /* per split, >= 1 */
} mpq_prep_cifar10_opts;
int mpq_prep_cifar10(const mpq_prep_cifar10_opts *o);
/* The checked batch reader mpq_prep_cifar10 uses (also for tests and fuzz targets): appends the
 * records of one binary batch file to b (images HWC 32x32x3, labels); a size that is not a whole
 * number of 3073-byte records (truncated) or a label outside 0..9 is MPQ_E_FORMAT naming the file
 * (and the record); sizes are overflow-checked. */
typedef struct mpq_cifar_buf {
    long n;
    uint8_t *images;
    int32_t *labels;
    size_t cap_images, cap_labels; /* the room of each, in samples (core/grow.h) */
} mpq_cifar_buf;
int mpq_cifar_read_batch(const char *path, mpq_cifar_buf *b);
void mpq_cifar_buf_free(mpq_cifar_buf *b);

/* dir/CLASS/ *.jpg|*.jpeg (any case) -> out_dir: each image decoded (libturbojpeg; grayscale and
 * CMYK become RGB), its centre square (the short side) resampled to size x size with the
 * antialiased filter of io/image.h: the same as resizing the short side to `size` and cutting the
 * centre. Labels follow the lines of classes_file, else the sorted folder names. The files, in
 * (class, file name) order, are cut into `shards` contiguous shards; rank r of R converts shards
 * r, r + R, ... (decoding with the rank's OpenMP threads), so the output does not depend on R. */
typedef struct mpq_prep_imagefolder_opts {
    const char *dir, *out_dir;
    int size;                 /* output height = width */
    int shards;               /* 0: one per 1000 images */
    const char *classes_file; /* NULL: sorted sub-folder names */
    const char *stats_from;   /* as for idx (validation folders) */
    int skip_bad;             /* 1: warn about and skip files that do not decode; 0: fail */
    long max_pixels;          /* refuse JPEGs of more pixels; 0: MPQ_JPEG_DEFAULT_MAX_PIXELS */
} mpq_prep_imagefolder_opts;
/* c: the ranks sharing the work (collective: every rank calls it), or NULL for one process. */
int mpq_prep_imagefolder(const mpq_prep_imagefolder_opts *o, struct mpq_comm *c);

/* Entry points of `mpq prep idx|cifar10|imagefolder`: parse their own argv (argv[0] is the
 * format name), print usage on --help. imagefolder divides the files among the ranks of c;
 * the others run on rank 0 while the other ranks wait. Every rank returns the same code:
 * 0, 2 on usage errors, or a negative MPQ_E_* (the message in mpq_errmsg() on every rank). */
int mpq_prep_idx_main(struct mpq_comm *c, int argc, char **argv);
int mpq_prep_cifar10_main(struct mpq_comm *c, int argc, char **argv);
int mpq_prep_imagefolder_main(struct mpq_comm *c, int argc, char **argv);

#endif

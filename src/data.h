/* The batch-source interface the trainer reads from. io/ implements it over HDF5 shards
 * (io/shard.h, implemented in io/reader.c); src/data_synth.c implements an in-memory synthetic set for tests and benchmarks.
 * A source delivers, for each step of an epoch, this rank's slice of the global batch: samples
 * [s*B, (s+1)*B) of the epoch's order, rank r of R taking positions [r*B/R, (r+1)*B/R), already
 * augmented and normalized, as float NHWC. */
#ifndef MPQ_DATA_H
#define MPQ_DATA_H

#include <stdint.h>

typedef enum mpq_augment { MPQ_AUGMENT_NONE, MPQ_AUGMENT_CIFAR, MPQ_AUGMENT_IMAGENET } mpq_augment;

typedef struct mpq_data_info {
    long n_samples;        /* in the whole split */
    int h, w, c;           /* of the delivered (augmented) images */
    int num_classes;
    float mean[4], std[4]; /* per channel, of the training split */
    uint64_t fingerprint;  /* hash of the split's layout: shard names, rows, shapes, statistics,
                              labels (synthetic data: its parameters); equal on every rank that
                              reads the same data */
} mpq_data_info;

/* The ImageNet views (augment = imagenet; the other augmentations deliver the stored size):
 * training takes torchvision's RandomResizedCrop of the stored image (area fraction in
 * [scale_min, scale_max], aspect w/h log-uniform in [ratio_min, ratio_max], 10 tries, then the
 * centre fallback) resampled to size x size, plus a horizontal flip; validation resizes the short
 * side to val_resize and cuts the centre size x size. size == 0: the stored size, no crop. */
typedef struct mpq_crop {
    int size, val_resize;
    float scale_min, scale_max, ratio_min, ratio_max;
} mpq_crop;

typedef struct mpq_source_opts {
    int global_batch;
    int rank, n_ranks;
    uint64_t seed;
    int train;             /* 1: shuffled per epoch, drop last partial batch; 0: in order, all */
    mpq_augment augment;   /* train only; validation uses none / centre crop */
    mpq_crop crop;         /* imagenet augment only; all zero: delivered as stored */
    int prefetch;          /* 1: background thread prepares the next batch */
    int num_classes;       /* > 0: labels must lie below it (the num_classes key); 0: the data's */
} mpq_source_opts;

typedef struct mpq_source mpq_source;
typedef struct mpq_source_ops {
    /* Positions the source so that the next batch is (epoch, step). Returns 0 or MPQ_E_*. */
    int (*seek)(mpq_source *s, long epoch, long step);
    /* Delivers the local slice of the next global batch: x (n, H, W, C), y (n); *n is the number
     * of local samples (the last validation batch may be short). Returns 0 or MPQ_E_* with a
     * message naming the file. */
    int (*next)(mpq_source *s, float *x, int *y, int *n);
    /* Seconds spent waiting for data inside next() since the last call (prefetch stalls). */
    double (*wait_seconds)(mpq_source *s);
    void (*free)(mpq_source *s);
} mpq_source_ops;

struct mpq_source {
    const mpq_source_ops *ops;
    mpq_data_info info;
    mpq_source_opts opts;
    long steps_per_epoch;  /* train: floor(N / B); validation: ceil(N / B) */
    int max_local_batch;   /* upper bound on *n */
};

/* A deterministic synthetic classification set of n samples (h, w, c) with k classes, whose
 * labels are learnable from the pixels. Returns 0 or MPQ_E_*. */
int mpq_source_synthetic_create(const mpq_source_opts *o, long n, int h, int w, int c, int k,
                                uint64_t data_seed, mpq_source **out);
static inline void mpq_source_free(mpq_source *s)
{
    if (s) s->ops->free(s);
}

#endif

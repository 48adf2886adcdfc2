/* Named tensors in flat float buffers. A registry (mpq_params) hands out slices (offset, count)
 * at model-build time; one aligned allocation per buffer follows. Layers keep slices, never
 * pointers, so buffers can be broadcast, allreduced, checkpointed and optimized as one array.
 * Registration order is memory order: a layer's W, b, BN affine and quantizer parameters form
 * one contiguous run, and backward finishes runs from the end of the buffer to its start.
 * The model holds two registries: trainable values (val, grad, two optimizer-state buffers) and
 * non-trainable state (BN running statistics; only val is used). */
#ifndef MPQ_CORE_PARAMS_H
#define MPQ_CORE_PARAMS_H

#include <stddef.h>

/* A run of floats inside a flat buffer; n == 0 means absent (no bias). */
typedef struct mpq_slice {
    size_t off, n;
} mpq_slice;

typedef enum mpq_pkind {
    MPQ_PKIND_WEIGHT, /* conv/fc weights: quantized, decayed */
    MPQ_PKIND_BIAS,   /* fc bias: quantized, decayed */
    MPQ_PKIND_BN,     /* BN gamma, beta */
    MPQ_PKIND_QUANT,  /* quantizer parameters (d, xmax, n, xmin) */
    MPQ_PKIND_SCALE,  /* the optional scale layer */
    MPQ_PKIND_STATE,  /* non-trainable: BN running mean/var */
} mpq_pkind;

#define MPQ_NAME_MAX 128
#define MPQ_MAX_DIMS 4

typedef struct mpq_param_info {
    char name[MPQ_NAME_MAX]; /* hierarchical, e.g. "res1/layer1/basicblock1/quantized_conv/W" */
    mpq_pkind kind;
    mpq_slice s;
    int ndim;
    int shape[MPQ_MAX_DIMS]; /* logical shape; conv W is (Cout, KH, KW, Cin/groups) */
} mpq_param_info;

typedef struct mpq_params {
    mpq_param_info *info; /* owned */
    int n_info;
    size_t cap_info;
    size_t n_floats;      /* total floats registered */
    float *val;           /* owned, 64-byte aligned, zeroed; NULL before mpq_params_alloc */
    float *grad;          /* owned (trainable registry only) */
    float *opt[2];        /* owned optimizer state: momentum / Adam m, v */
} mpq_params;

void mpq_params_init(mpq_params *p);
/* Reserves a named slice of prod(shape) floats. Names must be unique. Returns 0 or MPQ_E_*. */
int mpq_params_add(mpq_params *p, const char *name, mpq_pkind kind, int ndim, const int *shape,
                   mpq_slice *out);
/* Allocates val (and, with with_grad, grad and opt[0..1]), zero-filled. Returns 0 or MPQ_E_NOMEM. */
int mpq_params_alloc(mpq_params *p, int with_grad);
void mpq_params_free(mpq_params *p);
/* Index of the tensor called name, or -1. */
int mpq_params_find(const mpq_params *p, const char *name);
/* A 64-byte-aligned zeroed allocation of n floats (NULL on failure); release with free(). From
 * 4 MB, 2 MB-aligned and on transparent huge pages where the system gives them (params.c). */
float *mpq_alloc_floats(size_t n);

static inline float *mpq_at(float *base, mpq_slice s) { return base + s.off; }
static inline const float *mpq_cat(const float *base, mpq_slice s) { return base + s.off; }

#endif

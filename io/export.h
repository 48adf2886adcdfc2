/* Exported models (DESIGN.md "Formats", a contract): every quantized weight and bias as integer
 * codes at its learned bitwidth, with what dequantizes them exactly, evaluable by `mpq eval`.
 *   /                   the checkpoint's root attributes with mpq_format = "mpq-export", kind
 *                       "export", plus weights_kbytes (sum over weight and bias tensors of
 *                       bits * elements / 8 / 1024: the true packed size), stored_kbytes (what the
 *                       code arrays take in this file), fold_bn, packed
 *   /config, /history   as in checkpoints (the model is rebuilt from /config)
 *   /tensors/<name>     one group per weight or bias tensor (registry name) with attributes kind,
 *                       method, bits (inferred bitwidth), stored_bits, elements, kbytes, shape and
 *                         kind "uniform": step;    q = code * step
 *                         kind "pow2":    exp_min; q = sign(code) * 2^(exp_min + |code| - 1), q = 0
 *                                         for code 0
 *                         kind "float":   dataset values (float32; unquantized layers)
 *                       and the dataset codes (int8 / int16 / int32, the smallest that holds
 *                       stored_bits, in the tensor's shape) or, packed, packed (uint8: stored_bits
 *                       per code, two's complement, least significant bit first). With fold_bn a
 *                       convolution followed by BN also has datasets scale and bias [Cout]
 *                       (q * scale[o] + bias[o] replaces conv + BN) and attribute folded_bn.
 *   /float/<name>       the other trainable tensors (BN affine, activation quantizers' values)
 *   /state/<name>       BN running statistics (kept BN only)
 *   /quantizers/<name>  every quantizer, as in checkpoints
 * With BN kept (the default) the dequantized weights equal the quantized weights of training
 * exactly, so evaluation gives the same accuracy as the checkpoint's.
 * Collective functions; every HDF5 call holds io/h5.h's lock. */
#ifndef MPQ_IO_EXPORT_H
#define MPQ_IO_EXPORT_H

#include "io/ckpt.h"

typedef struct mpq_export_opts {
    int pack;    /* bit-pack the codes at stored_bits instead of int8/16/32 arrays */
    int fold_bn; /* fold each BN that follows a convolution into per-channel scale and bias */
} mpq_export_opts;

/* One row of an export's tensor table. */
typedef struct mpq_export_entry {
    char name[128];
    char kind[16]; /* "uniform", "pow2", "float" */
    char method[48];
    int bits;        /* inferred bitwidth (32 for float) */
    int stored_bits; /* per code in the file */
    long elements;
    double kbytes; /* bits * elements / 8 / 1024 */
    double step;   /* uniform (0 otherwise) */
    int exp_min;   /* pow2 */
    int folded;    /* a BN was folded into it */
} mpq_export_entry;

/* Collective: writes model m (its values and fixed quantizers) with info's attributes and
 * history into path (atomically: a temporary, then rename). Fails with MPQ_E_NUMERIC naming the
 * tensor if a code does not reproduce a quantized weight exactly. Writes the weights' packed size
 * to *kbytes (may be NULL). Returns 0 or an agreed MPQ_E_*. */
int mpq_export_write(mpq_comm *c, const char *path, const mpq_model_view *m,
                     const mpq_ckpt_info *info, const mpq_export_opts *o, double *kbytes);
/* Collective: loads an exported model into m, which was built from the export's configuration
 * with unquantized weights (w_quantize = none): the dequantized weights (scaled, with the BN
 * replaced by the bias, where folded), the other tensors, the BN state and the activation
 * quantizers. Refusals name the missing or mismatched tensor. Returns 0 or an agreed MPQ_E_*. */
int mpq_export_load(mpq_comm *c, const char *path, const mpq_model_view *m);
/* Collective: the tensor table of an export (malloc'ed, *n rows, sorted by name) and its packed /
 * fold_bn flags. Returns 0 or an agreed MPQ_E_*. */
int mpq_export_table(mpq_comm *c, const char *path, mpq_export_entry **out, int *n, int *packed,
                     int *fold_bn);

#endif

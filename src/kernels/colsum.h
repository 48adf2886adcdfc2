/* Per-column (per-channel) reductions of row-major float matrices, accumulated in double.
 * Rows are split into a fixed number of parts whose partial sums are combined in a fixed order,
 * so results are bitwise identical for any OpenMP thread count. No scratch: partials live on the
 * caller's stack, one block of columns at a time. */
#ifndef MPQ_KERNELS_COLSUM_H
#define MPQ_KERNELS_COLSUM_H

#include <stddef.h>

typedef enum mpq_colsum_op {
    MPQ_COLSUM_SUM,   /* sum_i a[i][j] */
    MPQ_COLSUM_SQDEV, /* sum_i (a[i][j] - shift[j])^2 */
    MPQ_COLSUM_DOT,   /* sum_i a[i][j] * b[i][j] */
} mpq_colsum_op;

/* Writes out[j] (j < cols) = the reduction `op` over rows of a (and b, same stride ld).
 * b is read by MPQ_COLSUM_DOT only, shift by MPQ_COLSUM_SQDEV only (else may be NULL). */
void mpq_colsum(mpq_colsum_op op, size_t rows, int cols, const float *a, const float *b, size_t ld,
                const double *shift, double *out);
/* Adds the column sums of a (rows, cols; row stride ld) into out[0..cols): bias gradients. */
void mpq_colsum_add(size_t rows, int cols, const float *a, size_t ld, float *out);
/* out[i * cols + q] = the sum over k < per of rows[(i * per + k) * cols + q], k in order, for
 * i < n, q < cols (doubles; OpenMP over i): per-sample totals of per-row sums, such as the BN
 * statistics a layer sums row by row as it writes its output. */
void mpq_colsum_blocks(int n, int per, size_t cols, const double *rows, double *out);

#endif

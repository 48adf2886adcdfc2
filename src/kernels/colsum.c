/* Column reductions (see colsum.h). Columns are processed in blocks of COLSUM_BLOCK; for each
 * block, COLSUM_PARTS fixed row ranges are reduced in parallel (OpenMP) into a stack array and
 * then summed in part order, so the thread count never changes the result. */
#include "kernels/colsum.h"

#include <string.h>

enum { COLSUM_BLOCK = 64, COLSUM_PARTS = 16 };

/* tot[0..w) = reduction over all rows of columns [j0, j0 + w). */
static void reduce_block(mpq_colsum_op op, size_t rows, int j0, int w, const float *a,
                         const float *b, size_t ld, const double *shift, double *tot)
{
    double part[COLSUM_PARTS][COLSUM_BLOCK];

#pragma omp parallel for schedule(static) if (rows >= 4 * COLSUM_PARTS)
    for (int p = 0; p < COLSUM_PARTS; p++) {
        double acc[COLSUM_BLOCK] = {0.0};
        double sh[COLSUM_BLOCK] = {0.0};
        const size_t i0 = rows * p / COLSUM_PARTS, i1 = rows * (p + 1) / COLSUM_PARTS;
        if (op == MPQ_COLSUM_SQDEV) memcpy(sh, shift + j0, (size_t)w * sizeof *sh);
        for (size_t i = i0; i < i1; i++) {
            const float *ra = a + i * ld + j0;
            switch (op) {
            case MPQ_COLSUM_SUM:
#pragma omp simd
                for (int j = 0; j < w; j++)
                    acc[j] += (double)ra[j];
                break;
            case MPQ_COLSUM_SQDEV:
#pragma omp simd
                for (int j = 0; j < w; j++) {
                    const double d = (double)ra[j] - sh[j];
                    acc[j] += d * d;
                }
                break;
            case MPQ_COLSUM_DOT: {
                const float *rb = b + i * ld + j0;
#pragma omp simd
                for (int j = 0; j < w; j++)
                    acc[j] += (double)ra[j] * (double)rb[j];
                break;
            }
            }
        }
        memcpy(part[p], acc, sizeof acc);
    }
    for (int j = 0; j < w; j++)
        tot[j] = 0.0;
    for (int p = 0; p < COLSUM_PARTS; p++)
        for (int j = 0; j < w; j++)
            tot[j] += part[p][j];
}

void mpq_colsum(mpq_colsum_op op, size_t rows, int cols, const float *a, const float *b, size_t ld,
                const double *shift, double *out)
{
    for (int j0 = 0; j0 < cols; j0 += COLSUM_BLOCK) {
        const int w = cols - j0 < COLSUM_BLOCK ? cols - j0 : COLSUM_BLOCK;
        reduce_block(op, rows, j0, w, a, b, ld, shift, out + j0);
    }
}

void mpq_colsum_add(size_t rows, int cols, const float *a, size_t ld, float *out)
{
    double tot[COLSUM_BLOCK];
    for (int j0 = 0; j0 < cols; j0 += COLSUM_BLOCK) {
        const int w = cols - j0 < COLSUM_BLOCK ? cols - j0 : COLSUM_BLOCK;
        reduce_block(MPQ_COLSUM_SUM, rows, j0, w, a, NULL, ld, NULL, tot);
        for (int j = 0; j < w; j++)
            out[j0 + j] += (float)tot[j];
    }
}

void mpq_colsum_blocks(int n, int per, size_t cols, const double *rows, double *out)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        double *oi = out + (size_t)i * cols;
        memcpy(oi, rows + (size_t)i * per * cols, cols * sizeof *oi);
        for (int k = 1; k < per; k++) {
            const double *r = rows + ((size_t)i * per + k) * cols;
#pragma omp simd
            for (size_t q = 0; q < cols; q++)
                oi[q] += r[q];
        }
    }
}

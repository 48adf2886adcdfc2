/* mpq: mixed-precision quantized DNN training on CPU clusters.
 *
 * The installed public header. It exposes the quantizers of Uhlich et al., "Mixed Precision DNNs:
 * All you need is a good parametrization" (ICLR 2020), with the exact forward values and
 * straight-through gradients of the reference implementation (nnabla 1.7.0), so that external
 * tools can quantize tensors and infer bitwidths exactly as training does.
 *
 * Example: quantize 4 weights with a learned step size d = 2^-3 and range xmax = 0.5
 *
 *     mpq_qspec s = { .method = "parametric_fp_d_xmax", .sign = 1, .p = {0.125f, 0.5f},
 *                     .d_min = 0x1p-8f, .d_max = 1.0f, .xmax_min = 0x1p-8f, .xmax_max = 127.0f };
 *     float x[4] = {0.1f, -0.3f, 0.7f, 0.0f}, q[4];
 *     if (mpq_quantize(&s, 4, x, q) != 0) fprintf(stderr, "%s\n", mpq_last_error());
 *     // q = {0.125, -0.25, 0.5, 0}; mpq_qspec_bitwidth(&s) == 4 (sign + 3 bits for levels 0..4)
 *
 * Return codes: 0 on success, a negative code with a message (mpq_last_error) otherwise.
 */
#ifndef MPQ_H
#define MPQ_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *method; /* a cfg name: "fp", "pow2", "parametric_fp_d_xmax", ...; a trailing
                           "_relu" is accepted and ignored (sign decides) */
    int sign;           /* 1 weights/biases, 0 activations (the _relu variants) */
    int with_zero;      /* power-of-two only */
    float p[2];         /* the method's two values, in this order:
                           fp {n, delta}; pow2 {n, m}; fp_b_xmax {n, xmax}; fp_d_xmax {d, xmax};
                           fp_d_b {n, d}; pow2_b_xmax {n, xmax}; pow2_b_xmin {n, xmin};
                           pow2_xmin_xmax {xmin, xmax} */
    float n_min, n_max, d_min, d_max, xmin_min, xmin_max, xmax_min, xmax_max;
    /* bounds: the power-of-two methods accept any finite n_min <= n_max (they only clip n, as
       in nnabla); the uniform ones need 1 to 31 value bits (n minus the sign bit) */
} mpq_qspec;

/* q[i] = Q(x[i]) for i < len. */
int mpq_quantize(const mpq_qspec *s, size_t len, const float *x, float *q);
/* gx[i] = dQ/dx(x[i]) * gq[i] (gx may alias gq); gp[0..1] = sum over i of the gradients of
 * Q(x[i]) * gq[i] with respect to p[0], p[1] (0 for fixed methods). */
int mpq_quantize_backward(const mpq_qspec *s, size_t len, const float *x, const float *gq,
                          float *gx, float gp[2]);
/* The bitwidth the size model infers for the quantizer (sign bit included for sign = 1);
 * a negative value for an invalid spec. */
float mpq_qspec_bitwidth(const mpq_qspec *s);
/* The message of the calling thread's last failure. */
const char *mpq_last_error(void);

#ifdef __cplusplus
}
#endif

#endif

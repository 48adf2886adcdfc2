/* Integer codes of quantized values, as exports store them: a uniform quantizer's value is
 * code * step; a power-of-two quantizer's nonzero value is sign * 2^(exp_min + |code| - 1).
 * Encoding is exact or fails; codes are stored in the fewest signed bits that hold them,
 * optionally bit-packed (two's complement, least significant bit first). */
#ifndef MPQ_QUANT_CODES_H
#define MPQ_QUANT_CODES_H

#include <stddef.h>
#include <stdint.h>

typedef enum mpq_code_kind { MPQ_CODE_FLOAT, MPQ_CODE_UNIFORM, MPQ_CODE_POW2 } mpq_code_kind;

/* "float", "uniform", "pow2". */
const char *mpq_code_kind_name(mpq_code_kind k);
/* Signed bits that hold every code of c (n), at least 1. */
int mpq_codes_bits(const int32_t *c, size_t n);
/* The value of code c. */
float mpq_code_value(mpq_code_kind k, int32_t c, float step, int exp_min);
/* Codes of the quantized values wq (n) for kind k (uniform: wq / step; pow2: the signed exponent
 * index above *exp_min, which it sets). Fails (MPQ_E_NUMERIC, naming `name` and the element)
 * unless every code gives back wq exactly. */
int mpq_codes_encode(mpq_code_kind k, const float *wq, size_t n, float step, int32_t *codes,
                     int *exp_min, const char *name);
/* Bytes of n codes packed at bits each. */
size_t mpq_codes_packed_bytes(size_t n, int bits);
void mpq_codes_pack(const int32_t *c, size_t n, int bits, uint8_t *out, size_t n_bytes);
void mpq_codes_unpack(const uint8_t *in, size_t n, int bits, int32_t *c);

#endif

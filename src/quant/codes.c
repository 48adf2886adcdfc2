/* Integer codes of quantized values (codes.h). */
#include "quant/codes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

const char *mpq_code_kind_name(mpq_code_kind k)
{
    static const char *const names[] = {"float", "uniform", "pow2"};
    return names[k];
}

size_t mpq_codes_packed_bytes(size_t n, int bits) { return (n * (size_t)bits + 7) / 8; }

int mpq_codes_bits(const int32_t *c, size_t n)
{
    int64_t lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i] < lo) lo = c[i];
        if (c[i] > hi) hi = c[i];
    }
    int b = 1;
    while (b < 32 && (hi > ((int64_t)1 << (b - 1)) - 1 || lo < -((int64_t)1 << (b - 1))))
        b++;
    return b;
}

float mpq_code_value(mpq_code_kind k, int32_t c, float step, int exp_min)
{
    if (k == MPQ_CODE_UNIFORM) return (float)c * step;
    if (c == 0) return 0.0f;
    float a = ldexpf(1.0f, exp_min + abs(c) - 1);
    return c < 0 ? -a : a;
}

int mpq_codes_encode(mpq_code_kind k, const float *wq, size_t n, float step, int32_t *codes,
                     int *exp_min, const char *name)
{
    int emin = INT32_MAX;
    if (k == MPQ_CODE_POW2) {
        for (size_t i = 0; i < n; i++)
            if (wq[i] != 0.0f && ilogbf(wq[i]) < emin) emin = ilogbf(wq[i]);
        if (emin == INT32_MAX) emin = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (k == MPQ_CODE_UNIFORM) {
            codes[i] = (int32_t)lrintf(wq[i] / step);
        } else {
            int32_t c = wq[i] == 0.0f ? 0 : ilogbf(wq[i]) - emin + 1;
            codes[i] = wq[i] < 0.0f ? -c : c;
        }
        if (mpq_code_value(k, codes[i], step, emin) != wq[i])
            return MPQ_FAIL(MPQ_E_NUMERIC,
                            "export: quantized value %a of '%s' (element %zu) is not "
                            "%s code %d exactly",
                            (double)wq[i], name, i, mpq_code_kind_name(k), (int)codes[i]);
    }
    *exp_min = emin;
    return MPQ_OK;
}

void mpq_codes_pack(const int32_t *c, size_t n, int bits, uint8_t *out, size_t n_bytes)
{
    memset(out, 0, n_bytes);
    for (size_t i = 0, pos = 0; i < n; i++)
        for (int b = 0; b < bits; b++, pos++)
            if (((uint32_t)c[i] >> b) & 1u) out[pos / 8] |= (uint8_t)(1u << (pos % 8));
}

void mpq_codes_unpack(const uint8_t *in, size_t n, int bits, int32_t *c)
{
    for (size_t i = 0, pos = 0; i < n; i++) {
        uint32_t u = 0;
        for (int b = 0; b < bits; b++, pos++)
            u |= (uint32_t)((in[pos / 8] >> (pos % 8)) & 1u) << b;
        if (bits < 32 && (u >> (bits - 1)) & 1u) u |= ~0u << bits; /* sign extension */
        c[i] = (int32_t)u;
    }
}

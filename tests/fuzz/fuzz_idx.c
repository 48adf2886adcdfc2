/* libFuzzer target: the IDX loader (io/prep_idx.c: mpq_idx_load) on two files cut from the input:
 * the first byte b says where (images: bytes [1, 1 + n), labels: the rest, with n = b * size /
 * 256), so the fuzzer mutates headers and data of both. Must end in 0 or a clean MPQ_E_*. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/log.h"
#include "fuzzutil.h"
#include "io/prep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mpq_idx_data d;
    if (size < 1) return 0;
    size_t n = (size_t)data[0] * (size - 1) / 256;
    const char *im = fuzz_path(0, "images.idx"), *lb = fuzz_path(1, "labels.idx");
    mpq_log_set_quiet(1);
    fuzz_write(im, data + 1, n);
    fuzz_write(lb, data + 1 + n, size - 1 - n);
    if (mpq_idx_load(im, lb, 0, &d) == 0) mpq_idx_data_free(&d);
    if (mpq_idx_load(im, lb, 1, &d) == 0) mpq_idx_data_free(&d);
    return 0;
}

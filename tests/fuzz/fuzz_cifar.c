/* libFuzzer target: the CIFAR-10 batch reader (io/prep_cifar10.c: mpq_cifar_read_batch), the
 * input written as one batch file and read twice into one buffer (the append path). */
#include "core/log.h"
#include "fuzzutil.h"
#include "io/prep.h"
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mpq_cifar_buf b = {0};
    const char *path = fuzz_path(0, "batch.bin");
    mpq_log_set_quiet(1);
    fuzz_write(path, data, size);
    if (mpq_cifar_read_batch(path, &b) == 0) mpq_cifar_read_batch(path, &b);
    mpq_cifar_buf_free(&b);
    return 0;
}

/* libFuzzer target: a split of one shard (io/shard.c) from mutated HDF5 bytes: open (all the
 * checks of datasets, attributes, sizes and labels), then read the first and last sample. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/log.h"
#include "fuzzutil.h"
#include "io/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_path(0, "split");
    mpq_split *s = NULL;
    mpq_log_set_quiet(1);
    mkdir(dir, 0777);
    fuzz_write(fuzz_path(1, "split/shard-00000.h5"), data, size);
    if (mpq_split_open(dir, &s) == 0) {
        const mpq_data_info *in = mpq_split_info(s);
        uint8_t *px = malloc((size_t)in->h * in->w * in->c);
        int label;
        if (px) {
            mpq_split_read(s, 0, px, &label);
            mpq_split_read(s, in->n_samples - 1, px, &label);
        }
        free(px);
        mpq_split_close(s);
    }
    return 0;
}

/* libFuzzer target: checkpoint loading (io/ckpt.c) from mutated HDF5 bytes on one MPI rank:
 * the info reader (root attributes, /config, history), the checking loader with optimizer state
 * into the tiny model of the seeds, the weight-file loader, and the probe of `--resume auto`
 * (the input is the only checkpoint of the scratch output directory). */
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/log.h"
#include "fuzzutil.h"
#include "io/ckpt.h"
#include "models/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mpq_model m;
    static int built;
    mpq_ckpt_info info;
    char found[512];
    const char *path = fuzz_path(0, MPQ_CKPT_SUBDIR "/ckpt-000000001.h5");
    mpq_comm *c = fuzz_comm();
    mkdir(fuzz_path(1, MPQ_CKPT_SUBDIR), 0777);
    if (!built) fuzz_tiny_model(&m, 1), built = 1;
    fuzz_write(path, data, size);
    if (mpq_ckpt_read_info(c, path, &info) == 0) mpq_ckpt_info_free(&info);
    mpq_ckpt_load(c, path, &m.view, "tiny", MPQ_CKPT_LOAD_OPTIMIZER);
    mpq_ckpt_load_weights(c, path, &m.view, NULL);
    mpq_ckpt_find_latest(fuzz_dir(), found, sizeof found);
    return 0;
}

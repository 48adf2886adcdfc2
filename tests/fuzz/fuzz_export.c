/* libFuzzer target: exported models (io/export.c) from mutated HDF5 bytes on one MPI rank: the
 * loader into the float version of the seeds' tiny model, and the tensor table of `mpq inspect`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/log.h"
#include "fuzzutil.h"
#include "io/export.h"
#include "models/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mpq_model m;
    static int built;
    mpq_export_entry *e = NULL;
    int n, packed, fold;
    const char *path = fuzz_path(0, "export.h5");
    mpq_comm *c = fuzz_comm();
    if (!built) fuzz_tiny_model(&m, 0), built = 1;
    fuzz_write(path, data, size);
    mpq_export_load(c, path, &m.view);
    if (mpq_export_table(c, path, &e, &n, &packed, &fold) == 0) free(e);
    return 0;
}

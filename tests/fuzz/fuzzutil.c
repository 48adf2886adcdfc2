/* Shared helpers of the fuzz targets (see fuzzutil.h). The scratch directory and the MPI world
 * live for the whole fuzzing process; they are released by an atexit handler. */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "models/graph.h"
#include "mpi/comm.h"
#include "unit/qsettings.h"

static char dir[256];
static struct mpq_comm *comm;

static void cleanup(void)
{
    char cmd[512];
    if (dir[0] && strstr(dir, "mpq-fuzz-")) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", dir);
    }
    if (comm) mpq_comm_finalize(comm);
}

const char *fuzz_dir(void)
{
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/mpq-fuzz-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(cleanup);
    }
    return dir;
}

const char *fuzz_path(int slot, const char *name)
{
    static char buf[4][512];
    snprintf(buf[slot & 3], sizeof buf[0], "%s/%s", fuzz_dir(), name);
    return buf[slot & 3];
}

void fuzz_write(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

struct mpq_comm *fuzz_comm(void)
{
    if (!comm) {
        int argc = 0;
        char **argv = NULL;
        fuzz_dir(); /* its atexit handler runs after MPI's, ending MPI */
        if (mpq_comm_init(&argc, &argv, &comm) < 0) {
            fprintf(stderr, "fuzz: %s\n", mpq_errmsg());
            abort();
        }
        mpq_log_set_quiet(1);
    }
    return comm;
}

void fuzz_tiny_model(mpq_model *m, int quantized)
{
    mpq_qsettings w = mpq_test_qsettings(quantized ? "parametric_fp_d_xmax" : "", 0);
    mpq_qsettings a = mpq_test_qsettings("parametric_fp_d_xmax_relu", 1);
    mpq_model_init(m, 4, 4, 1, 2, &w, &a, 0.9f);
    int x = mpq_g_input(m);
    int h = mpq_g_act(m, "c", mpq_g_bn(m, "c", mpq_g_conv(m, "c", x, 4, 3, 1, 1, 0)), 0);
    mpq_g_fc(m, "fc", mpq_g_gap(m, h), 2);
    if (m->err || mpq_model_alloc(m) < 0) {
        fprintf(stderr, "fuzz: tiny model: %s\n", mpq_errmsg());
        abort();
    }
    mpq_model_init_values(m, 3, 0);
}

/* Checkpoint save and load times of a model (default ResNet-18 with parametric quantizers, 32x32
 * input so that only parameters matter): median of K collective saves and loads, with the file
 * size. Run as `mpiexec -n R tests/io/bench_ckpt [--model M] [--reps K] [--dir D]`. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "core/err.h"
#include "io/ckpt.h"
#include "mpi/comm.h"
#include "train.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    mpq_comm *c;
    const char *model = "resnet18", *dir = "/tmp";
    int reps = 5, rc;
    if (mpq_comm_init(&argc, &argv, &c) < 0) return 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
    }
    mpq_cfg cfg;
    mpq_cfg_defaults(&cfg);
    snprintf(cfg.model, sizeof cfg.model, "%s", model);
    snprintf(cfg.wq.method, sizeof cfg.wq.method, "parametric_fp_d_xmax");
    snprintf(cfg.aq.method, sizeof cfg.aq.method, "parametric_fp_d_xmax_relu");
    mpq_model m;
    rc = mpq_train_model_build(&cfg, 32, 32, 3, 1000, 1, &m);
    if (rc == 0) mpq_model_init_values(&m, 1, 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_ckpt.h5", dir);
    mpq_ckpt_info in;
    memset(&in, 0, sizeof in);
    snprintf(in.model, sizeof in.model, "%s", model);
    snprintf(in.optimizer, sizeof in.optimizer, "sgd");
    in.config = "";
    in.history_cols = 1;
    double *ts = calloc(2 * (size_t)reps, sizeof *ts);
    for (int k = 0; rc == 0 && k < reps; k++) {
        mpq_comm_barrier(c);
        double t0 = mpq_comm_wtime();
        rc = mpq_ckpt_save(c, path, &m.view, &in, 1);
        ts[k] = mpq_comm_wtime() - t0;
        mpq_comm_barrier(c);
        t0 = mpq_comm_wtime();
        if (rc == 0) rc = mpq_ckpt_load(c, path, &m.view, model, MPQ_CKPT_LOAD_OPTIMIZER);
        ts[reps + k] = mpq_comm_wtime() - t0;
    }
    struct stat st;
    if (rc == 0 && mpq_comm_rank(c) == 0 && stat(path, &st) == 0) {
        qsort(ts, (size_t)reps, sizeof *ts, cmp);
        qsort(ts + reps, (size_t)reps, sizeof *ts, cmp);
        printf("%s: %zu parameters, %d ranks: save %.3f s, load %.3f s (medians of %d), file %.1f "
               "MB\n",
               model, m.params.n_floats, mpq_comm_size(c), ts[reps / 2], ts[reps + reps / 2], reps,
               st.st_size / 1e6);
        unlink(path);
    }
    if (rc < 0 && mpq_comm_rank(c) == 0) fprintf(stderr, "bench_ckpt: %s\n", mpq_errmsg());
    free(ts);
    mpq_model_free(&m);
    mpq_comm_finalize(c);
    return rc < 0;
}

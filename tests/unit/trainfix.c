/* Fixtures shared by the trainer suites (see trainfix.h). */
#include "trainfix.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "io/ckpt.h"

int trainfix_cfg(const char *text, const char *experiment, const char *tmp, const char *outdir,
                 mpq_cfg *c)
{
    int rc = mpq_cfg_parse_text(text, "test.cfg", experiment, c);
    if (rc < 0) return rc;
    snprintf(c->output_dir, sizeof c->output_dir, "%s/%s", tmp, outdir);
    c->progress = 0;
    return MPQ_OK;
}

int trainfix_run(mpq_comm *comm, const char *tmp, const char *text, const char *experiment,
                 const char *outdir, const char *resume, mpq_train_result *r)
{
    mpq_cfg c;
    int rc = trainfix_cfg(text, experiment, tmp, outdir, &c);
    if (rc < 0) return rc;
    mpq_train_opts o = {.resume = resume, .quiet = 1};
    return mpq_train(comm, &c, &o, r);
}

char *trainfix_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

int trainfix_read_csv(const char *tmp, const char *outdir, const char *name, int cols, double *v,
                      int max_rows)
{
    char path[4200], line[1024];
    snprintf(path, sizeof path, "%s/%s/%s", tmp, outdir, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    ck_assert_msg(fgets(line, sizeof line, f) != NULL, "%s has no header", path);
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        ck_assert_msg(rows < max_rows, "%s has more than %d rows", path, max_rows);
        char *p = line;
        for (int j = 0; j < cols; j++) {
            char *end;
            v[(size_t)rows * cols + j] = strtod(p, &end);
            ck_assert_msg(end != p && (*end == ',' || *end == '\n'),
                          "%s: row %d, column %d unreadable: %s", path, rows + 1, j + 1, line);
            p = end + 1;
        }
        rows++;
    }
    fclose(f);
    return rows;
}

void trainfix_initial_model(const mpq_cfg *c, int plan_n, mpq_model *m)
{
    int classes = c->num_classes > 0 ? c->num_classes : 10;
    int rc = mpq_train_model_build(c, c->synthetic_height, c->synthetic_width,
                                   c->synthetic_channels, classes, plan_n, m);
    ck_assert_msg(rc == 0, "%s", mpq_errmsg());
    mpq_model_init_values(m, (unsigned long)c->seed, 0);
}

void trainfix_checkpoint_model(mpq_comm *comm, const mpq_cfg *c, long step, int plan_n,
                               mpq_model *m)
{
    char path[4200];
    trainfix_initial_model(c, plan_n, m);
    mpq_ckpt_path(c->output_dir, step, path, sizeof path);
    int rc = mpq_ckpt_load(comm, path, &m->view, c->model, MPQ_CKPT_LOAD_OPTIMIZER);
    ck_assert_msg(rc == 0, "%s: %s", path, mpq_errmsg());
}

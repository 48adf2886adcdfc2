/* What the verbs share: reading a .cfg file on rank 0 for every rank, parsing it with --set
 * overrides, and loading a model from a weight file (checkpoint, parameter file, exported model,
 * or with a configuration also an nnabla parameter file). Errors are agreed over the ranks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/err.h"
#include "core/grow.h"
#include "io/export.h"
#include "train.h"

/* Reads a whole file into a malloc'ed NUL-terminated string. */
static int read_file(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return MPQ_FAIL(MPQ_E_IO, "cannot open config file '%s': %s", path, strerror(errno));
    size_t cap = 0, len = 0, k;
    char *buf = NULL;
    int rc;
    /* room for what was read, one more byte to read and the closing NUL */
    while ((rc = mpq_grow((void **)&buf, &cap, len + 2, 1)) == MPQ_OK &&
           (k = fread(buf + len, 1, cap - len - 1, f)) > 0)
        len += k;
    int bad = ferror(f);
    fclose(f);
    if (rc < 0) {
        free(buf);
        return mpq_err_push(rc, "reading '%s'", path);
    }
    if (bad) {
        free(buf);
        return MPQ_FAIL(MPQ_E_IO, "cannot read config file '%s'", path);
    }
    buf[len] = '\0';
    rc = mpq_cfg_check_bytes(buf, len, path);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return MPQ_OK;
}

int mpq_cli_read_text(mpq_comm *c, const char *path, char **text)
{
    int rc = MPQ_OK;
    *text = NULL;
    if (mpq_comm_rank(c) == 0) rc = read_file(path, text);
    rc = mpq_comm_agree(c, rc);
    if (rc == 0) rc = mpq_comm_bcast_string(c, text, 0);
    if (rc < 0) {
        free(*text);
        *text = NULL;
    }
    return rc;
}

int mpq_cli_parse_cfg(mpq_comm *c, const char *text, const char *path, const char *experiment,
                      const char *const *sets, int n_sets, mpq_cfg *cfg)
{
    int rc = mpq_cfg_parse_text(text, path, experiment, cfg);
    for (int i = 0; rc == 0 && i < n_sets; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i] || (size_t)(eq - sets[i]) >= sizeof key) {
            rc = MPQ_FAIL(MPQ_E_CONFIG, "--set '%s': expected key=value", sets[i]);
            break;
        }
        memcpy(key, sets[i], (size_t)(eq - sets[i]));
        key[eq - sets[i]] = '\0';
        rc = mpq_cfg_set(cfg, key, eq + 1, "--set");
    }
    if (rc == 0) rc = mpq_cfg_validate(cfg);
    return mpq_comm_agree(c, rc);
}

int mpq_cli_model_load(mpq_comm *c, const char *path, const mpq_cfg *cfg, int h, int w, int ch,
                       int classes, int plan_n, mpq_cli_model *out)
{
    int rc, nnabla = 0;
    memset(out, 0, sizeof *out);
    rc = mpq_ckpt_read_info(c, path, &out->info);
    if (rc == MPQ_E_FORMAT && cfg) { /* not an mpq file: an nnabla parameter file? */
        nnabla = 1;
        rc = MPQ_OK;
    }
    if (rc < 0) return rc;
    if (cfg) {
        out->cfg = *cfg;
    } else {
        rc = mpq_comm_agree(
            c, mpq_cfg_parse_stored(out->info.config, path, out->info.experiment, &out->cfg));
        if (rc < 0) return mpq_err_push(rc, "the configuration stored in '%s'", path);
        h = out->info.in_h;
        w = out->info.in_w;
        ch = out->info.in_c;
        classes = out->info.num_classes;
    }
    out->is_export = !nnabla && !strcmp(out->info.kind, "export");
    mpq_cfg build = out->cfg;
    if (out->is_export) build.wq.method[0] = '\0'; /* the export holds the quantized weights */
    rc = mpq_comm_agree(c, mpq_train_model_build(&build, h, w, ch, classes, plan_n, &out->m));
    if (rc < 0) return rc;
    if (nnabla) {
        mpq_model_init_values(&out->m, (unsigned long)out->cfg.seed, 0);
        rc = mpq_train_start_from_weightfile(c, path, &out->m);
    } else if (out->is_export) {
        rc = mpq_export_load(c, path, &out->m.view);
    } else {
        rc = mpq_ckpt_load(c, path, &out->m.view, out->cfg.model, 0);
    }
    return rc;
}

void mpq_cli_model_free(mpq_cli_model *x)
{
    if (!x) return;
    mpq_model_free(&x->m);
    mpq_ckpt_info_free(&x->info);
}

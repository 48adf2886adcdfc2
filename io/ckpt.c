/* Checkpoint files (see ckpt.h): the collective writer, the checking loader, weight files in mpq
 * or nnabla layout, and the checkpoint directory (newest complete file, pruning). Every rank
 * makes the same sequence of HDF5 calls (collective metadata), errors are agreed after each
 * object so that all ranks stop at the same place, and every hid_t is closed on every path.
 * Every HDF5 call holds io/h5.h's lock. Memory: scratch for one call only. */
#include "io/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/checked_size.h"
#include "core/dir.h"
#include "core/err.h"
#include "core/log.h"
#include "core/path.h"
#include "io/ckpt_impl.h"
#include "io/h5.h"
#include "io/h5par.h"

#define PATH_BYTES MPQ_PF_PATH_BYTES
#define CONFIG_MAX_BYTES ((size_t)1 << 24) /* the /config text of a checkpoint: 16 MiB at most */

void mpq_ckpt_info_dims(const mpq_param_info *t, hsize_t *dims)
{
    for (int i = 0; i < t->ndim; i++)
        dims[i] = (hsize_t)t->shape[i];
}

/* ---- saving ---------------------------------------------------------------------------------- */

int mpq_ckpt_write_root(mpq_pf *p, const mpq_ckpt_info *in, const char *format, const char *kind)
{
    hid_t f = p->f;
    MPQ_TRY(mpq_h5_attr_write_string(f, "mpq_format", format));
    MPQ_TRY(mpq_h5_attr_write_int(f, "mpq_format_version", MPQ_CKPT_VERSION));
    MPQ_TRY(mpq_h5_attr_write_string(f, "kind", kind));
    MPQ_TRY(mpq_h5_attr_write_string(f, "experiment", in->experiment));
    MPQ_TRY(mpq_h5_attr_write_string(f, "model", in->model));
    MPQ_TRY(mpq_h5_attr_write_string(f, "optimizer", in->optimizer));
    MPQ_TRY(mpq_h5_attr_write_long(f, "step", in->step));
    MPQ_TRY(mpq_h5_attr_write_long(f, "epoch", in->epoch));
    MPQ_TRY(mpq_h5_attr_write_long(f, "step_in_epoch", in->step_in_epoch));
    MPQ_TRY(mpq_h5_attr_write_long(f, "steps_per_epoch", in->steps_per_epoch));
    MPQ_TRY(mpq_h5_attr_write_long(f, "seed", in->seed));
    MPQ_TRY(mpq_h5_attr_write_string(f, "rng",
                                     "counter-based: the data order and augmentation are pure "
                                     "functions of (seed, epoch, sample index); the next step is "
                                     "(epoch, step_in_epoch)"));
    MPQ_TRY(mpq_h5_attr_write_int(f, "n_ranks", in->n_ranks));
    MPQ_TRY(mpq_h5_attr_write_int(f, "input_height", in->in_h));
    MPQ_TRY(mpq_h5_attr_write_int(f, "input_width", in->in_w));
    MPQ_TRY(mpq_h5_attr_write_int(f, "input_channels", in->in_c));
    MPQ_TRY(mpq_h5_attr_write_int(f, "num_classes", in->num_classes));
    MPQ_TRY(mpq_h5_attr_write_double(f, "lr", in->lr));
    MPQ_TRY(mpq_h5_attr_write_double(f, "first_loss", in->first_loss));
    MPQ_TRY(mpq_h5_attr_write_double(f, "best_val_err", in->best_val_err));
    MPQ_TRY(mpq_h5_attr_write_double(f, "epoch_err", in->epoch_err));
    MPQ_TRY(mpq_h5_attr_write_long(f, "epoch_n", in->epoch_n));
    return mpq_h5_attr_write_long(f, "last_budget_val", in->last_budget_val);
}

/* "d,xmax" for parametric methods, "n,delta" / "n,m" for the fixed ones, "" for none. */
static void param_names(mpq_qmethod m, char *buf, size_t bytes)
{
    if (mpq_qmethod_n_params(m) == 2)
        snprintf(buf, bytes, "%s,%s", mpq_qmethod_param_name(m, 0), mpq_qmethod_param_name(m, 1));
    else
        snprintf(buf, bytes, "%s",
                 m == MPQ_QMETHOD_FP     ? "n,delta"
                 : m == MPQ_QMETHOD_POW2 ? "n,m"
                                         : "");
}

int mpq_ckpt_write_quantizer(mpq_pf *p, const mpq_model_view *m, int i)
{
    const mpq_quant *q = &m->quants[i];
    const float *v = m->params->val;
    char path[PATH_BYTES], names[32];
    float bits = mpq_quant_bitwidth(q, v), pv[2] = {q->spec.p[0], q->spec.p[1]};
    int rc = MPQ_OK;
    if (q->p.n == 2) {
        pv[0] = v[q->p.off];
        pv[1] = v[q->p.off + 1];
    }
    snprintf(path, sizeof path, "/quantizers/%s", m->qnames[i]);
    hid_t g = H5Gcreate2(p->f, path, p->lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return MPQ_FAIL(MPQ_E_IO, "%s: cannot create group '%s'", p->path, path);
    param_names(q->method, names, sizeof names);
    rc = mpq_h5_attr_write_string(g, "method", mpq_qmethod_name(q->method));
    if (rc == 0) rc = mpq_h5_attr_write_int(g, "is_act", q->is_act);
    if (rc == 0) rc = mpq_h5_attr_write_long(g, "elements", (long)q->count);
    if (rc == 0) rc = mpq_h5_attr_write_double(g, "bitwidth", bits);
    if (rc == 0) rc = mpq_h5_attr_write_double(g, "kbytes", bits * (double)q->count / 8.0 / 1024.0);
    if (rc == 0) rc = mpq_h5_attr_write_double(g, "step", mpq_quant_step(q, v));
    if (rc == 0) rc = mpq_h5_attr_write_floats(g, "params", pv, 2);
    if (rc == 0) rc = mpq_h5_attr_write_string(g, "param_names", names);
    H5Gclose(g);
    return rc < 0 ? mpq_err_push(rc, "%s: quantizer '%s'", p->path, m->qnames[i]) : rc;
}

/* Every tensor of a registry under prefix ("/params", "/state"), each agreed. */
static int write_registry(mpq_comm *c, mpq_pf *p, const mpq_params *r, const char *prefix)
{
    char path[PATH_BYTES];
    for (int i = 0; i < r->n_info; i++) {
        const mpq_param_info *t = &r->info[i];
        snprintf(path, sizeof path, "%s/%s", prefix, t->name);
        int rc = mpq_comm_agree(
            c, mpq_pf_write_floats(p, path, t->ndim, t->shape, mpq_cat(r->val, t->s)));
        if (rc < 0) return rc;
    }
    return MPQ_OK;
}

int mpq_ckpt_write_history(mpq_pf *p, const mpq_ckpt_info *in)
{
    hsize_t dims[2] = {(hsize_t)in->history_rows, (hsize_t)in->history_cols};
    int rc = mpq_pf_write_array(p, "/history/results", 2, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                sizeof(double), in->history, 1);
    if (rc < 0) return rc;
    hid_t d = H5Dopen2(p->f, "/history/results", H5P_DEFAULT);
    if (d < 0) return MPQ_FAIL(MPQ_E_IO, "%s: cannot reopen /history/results", p->path);
    rc = mpq_h5_attr_write_string(d, "columns", in->history_columns);
    H5Dclose(d);
    return rc;
}

static int write_optimizer(mpq_comm *c, mpq_pf *p, const mpq_model_view *m, const char *optimizer)
{
    hsize_t n = (hsize_t)m->params->n_floats;
    static const char *const names[2] = {"/optimizer/m", "/optimizer/v"};
    for (int k = 0; k < 2; k++) {
        int rc = mpq_pf_write_array(p, names[k], 1, &n, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                                    sizeof(float), m->params->opt[k], 0);
        MPQ_TRY(mpq_comm_agree(c, rc));
    }
    hid_t g = H5Gopen2(p->f, "/optimizer", H5P_DEFAULT);
    int rc = g < 0 ? MPQ_FAIL(MPQ_E_IO, "%s: cannot open /optimizer", p->path)
                   : mpq_h5_attr_write_string(g, "optimizer", optimizer);
    if (g >= 0) H5Gclose(g);
    return mpq_comm_agree(c, rc);
}

/* About the size of the file mpq_ckpt_save writes (for the free-space check). */
static size_t save_bytes(const mpq_model_view *m, const mpq_ckpt_info *in, int with_optimizer)
{
    size_t floats = m->params->n_floats * (with_optimizer ? 3 : 1) + m->state->n_floats;
    size_t raw = floats * sizeof(float) + (in->config ? strlen(in->config) : 0) +
                 sizeof(double) * (size_t)in->history_rows * (size_t)in->history_cols;
    return mpq_pf_estimate_bytes(raw, (size_t)(m->params->n_info + m->state->n_info) +
                                          2 * (size_t)m->n_quants + 16);
}

int mpq_ckpt_save(mpq_comm *c, const char *path, const mpq_model_view *m, const mpq_ckpt_info *info,
                  int with_optimizer)
{
    char tmp[MPQ_PATH_MAX];
    mpq_pf p;
    int rc, close_rc = MPQ_OK;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return mpq_comm_agree(c, MPQ_FAIL(MPQ_E_ARG, "checkpoint path too long: '%s'", path));
    rc = mpq_pf_reserve(c, tmp, save_bytes(m, info, with_optimizer));
    if (rc < 0) return mpq_err_push(rc, "saving checkpoint '%s'", path);
    mpq_h5_lock();
    rc = mpq_comm_agree(c, mpq_pf_open(c, tmp, 1, &p));
    if (rc == 0)
        rc = mpq_ckpt_write_root(&p, info, MPQ_CKPT_FORMAT,
                                 with_optimizer ? "checkpoint" : "params");
    if (rc == 0) rc = mpq_pf_write_string(&p, "/config", info->config ? info->config : "");
    rc = mpq_comm_agree(c, rc);
    if (rc == 0) rc = write_registry(c, &p, m->params, "/params");
    if (rc == 0) rc = write_registry(c, &p, m->state, "/state");
    for (int i = 0; rc == 0 && i < m->n_quants; i++)
        rc = mpq_comm_agree(c, mpq_ckpt_write_quantizer(&p, m, i));
    if (rc == 0 && with_optimizer) rc = write_optimizer(c, &p, m, info->optimizer);
    if (rc == 0) rc = mpq_comm_agree(c, mpq_ckpt_write_history(&p, info));
    mpq_pf_close(&p, &close_rc);
    mpq_h5_unlock();
    rc = mpq_pf_commit(c, tmp, path, rc < 0 ? rc : close_rc);
    return rc < 0 ? mpq_err_push(rc, "saving checkpoint '%s'", path) : rc;
}

/* ---- reading --------------------------------------------------------------------------------- */

/* Checks the root attributes of an mpq checkpoint (or, with allow_export, of an exported model);
 * names what the file looks like otherwise. */
static int check_format(mpq_pf *p, int allow_export)
{
    int version = 0;
    char fmt[64];
    if (H5Aexists(p->f, "mpq_format") <= 0) {
        if (mpq_pf_exists(p->f, "/images"))
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "'%s' is a dataset shard (it has /images), not an mpq "
                            "checkpoint",
                            p->path);
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "'%s' is not an mpq checkpoint (no mpq_format attribute "
                        "on /; an nnabla parameter file can be a weightfile)",
                        p->path);
    }
    MPQ_TRY(mpq_h5_attr_read_string(p->f, "mpq_format", p->path, fmt, sizeof fmt));
    if (!strcmp(fmt, MPQ_EXPORT_FORMAT) && !allow_export)
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "'%s' is an exported model, not a checkpoint ---> HINT: "
                        "evaluate it with `mpq eval`",
                        p->path);
    if (strcmp(fmt, MPQ_CKPT_FORMAT) && strcmp(fmt, MPQ_EXPORT_FORMAT))
        return MPQ_FAIL(MPQ_E_FORMAT, "'%s' is an mpq file of unknown format '%s'", p->path, fmt);
    MPQ_TRY(mpq_h5_attr_read_int(p->f, "mpq_format_version", p->path, &version));
    if (version < 1 || version > MPQ_CKPT_VERSION)
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "'%s' has checkpoint format version %d; this mpq reads "
                        "1..%d ---> HINT: use a newer mpq",
                        p->path, version, MPQ_CKPT_VERSION);
    return MPQ_OK;
}

static int read_root(mpq_pf *p, mpq_ckpt_info *o)
{
    hid_t f = p->f;
    const char *w = p->path;
    long v;
    MPQ_TRY(check_format(p, 1));
    MPQ_TRY(mpq_h5_attr_read_string(f, "kind", w, o->kind, sizeof o->kind));
    MPQ_TRY(mpq_h5_attr_read_string(f, "experiment", w, o->experiment, sizeof o->experiment));
    MPQ_TRY(mpq_h5_attr_read_string(f, "model", w, o->model, sizeof o->model));
    MPQ_TRY(mpq_h5_attr_read_string(f, "optimizer", w, o->optimizer, sizeof o->optimizer));
    MPQ_TRY(mpq_h5_attr_read_long(f, "step", w, &o->step));
    MPQ_TRY(mpq_h5_attr_read_long(f, "epoch", w, &o->epoch));
    MPQ_TRY(mpq_h5_attr_read_long(f, "step_in_epoch", w, &o->step_in_epoch));
    MPQ_TRY(mpq_h5_attr_read_long(f, "steps_per_epoch", w, &o->steps_per_epoch));
    MPQ_TRY(mpq_h5_attr_read_long(f, "seed", w, &o->seed));
    MPQ_TRY(mpq_h5_attr_read_int(f, "n_ranks", w, &o->n_ranks));
    MPQ_TRY(mpq_h5_attr_read_int(f, "input_height", w, &o->in_h));
    MPQ_TRY(mpq_h5_attr_read_int(f, "input_width", w, &o->in_w));
    MPQ_TRY(mpq_h5_attr_read_int(f, "input_channels", w, &o->in_c));
    MPQ_TRY(mpq_h5_attr_read_int(f, "num_classes", w, &o->num_classes));
    MPQ_TRY(mpq_h5_attr_read_double(f, "lr", w, &o->lr));
    MPQ_TRY(mpq_h5_attr_read_double(f, "first_loss", w, &o->first_loss));
    MPQ_TRY(mpq_h5_attr_read_double(f, "best_val_err", w, &o->best_val_err));
    MPQ_TRY(mpq_h5_attr_read_double(f, "epoch_err", w, &o->epoch_err));
    MPQ_TRY(mpq_h5_attr_read_long(f, "epoch_n", w, &v));
    o->epoch_n = v;
    o->last_budget_val = -1;
    if (H5Aexists(f, "last_budget_val") > 0)
        MPQ_TRY(mpq_h5_attr_read_long(f, "last_budget_val", w, &o->last_budget_val));
    return MPQ_OK;
}

static int read_history(mpq_pf *p, mpq_ckpt_info *o)
{
    hsize_t dims[2];
    int ndim;
    MPQ_TRY(mpq_pf_dims(p, "/history/results", &ndim, dims, 2));
    if (ndim != 2 || dims[1] < 1 || dims[1] > 64 || dims[0] > 10000000)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: /history/results must be [rows, columns]", p->path);
    o->history_rows = (int)dims[0];
    o->history_cols = (int)dims[1];
    hid_t d = H5Dopen2(p->f, "/history/results", H5P_DEFAULT);
    int rc = d < 0 ? MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot open /history/results", p->path)
                   : mpq_h5_attr_read_string(d, "columns", p->path, o->history_columns,
                                             sizeof o->history_columns);
    if (d >= 0) H5Dclose(d);
    if (rc < 0 || dims[0] == 0) return rc;
    size_t bytes = sizeof(double) * (size_t)dims[0] * (size_t)dims[1]; /* bounded above */
    mpq_h5_shape sh; /* the writer stores the history whole: do not allocate for rows not there */
    MPQ_TRY(mpq_h5_shape_of(p->f, "/history/results", MPQ_H5_DATASET, p->path, &sh));
    if (sh.storage < bytes)
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "%s: /history/results claims %llu rows but stores only %llu bytes", p->path,
                        (unsigned long long)dims[0], (unsigned long long)sh.storage);
    o->history = malloc(bytes);
    if (!o->history) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory for the history");
    return mpq_pf_read(p, "/history/results", H5T_NATIVE_DOUBLE, 2, dims, o->history, bytes);
}

void mpq_ckpt_info_free(mpq_ckpt_info *i)
{
    if (!i) return;
    free(i->config);
    free(i->history);
    i->config = NULL;
    i->history = NULL;
}

int mpq_ckpt_read_info(mpq_comm *c, const char *path, mpq_ckpt_info *out)
{
    mpq_pf p;
    int rc, close_rc = MPQ_OK;
    memset(out, 0, sizeof *out);
    mpq_h5_lock();
    rc = mpq_comm_agree(c, mpq_pf_open(c, path, 0, &p));
    if (rc == 0) rc = read_root(&p, out);
    if (rc == 0) rc = mpq_pf_read_string(&p, "/config", CONFIG_MAX_BYTES, &out->config);
    if (rc == 0) rc = read_history(&p, out);
    mpq_pf_close(&p, &close_rc);
    mpq_h5_unlock();
    rc = mpq_comm_agree(c, rc);
    if (rc < 0) mpq_ckpt_info_free(out);
    return rc;
}

/* ---- loading into a model -------------------------------------------------------------------- */

/* Checks that the file's group `prefix` holds exactly the registry's tensors with their shapes. */
static int check_registry(mpq_pf *p, const mpq_params *r, const char *prefix)
{
    char path[PATH_BYTES], a[96], b[96];
    hsize_t dims[MPQ_MAX_DIMS], want[MPQ_MAX_DIMS];
    int ndim, missing = 0, first = -1, rc = MPQ_OK;
    for (int i = 0; i < r->n_info; i++) {
        snprintf(path, sizeof path, "%s/%s", prefix, r->info[i].name);
        if (!mpq_pf_exists(p->f, path)) {
            if (first < 0) first = i;
            missing++;
        }
    }
    if (missing)
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "%s: tensor '%s%s' of the model is missing in the checkpoint "
                        "(%d missing): another model or configuration?",
                        p->path, prefix + 1, r->info[first].name, missing);
    for (int i = 0; i < r->n_info; i++) {
        const mpq_param_info *t = &r->info[i];
        snprintf(path, sizeof path, "%s/%s", prefix, t->name);
        MPQ_TRY(mpq_pf_dims(p, path, &ndim, dims, MPQ_MAX_DIMS));
        mpq_ckpt_info_dims(t, want);
        if (ndim != t->ndim || memcmp(dims, want, sizeof(hsize_t) * (size_t)ndim))
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "%s: tensor '%s' has shape %s in the checkpoint but %s "
                            "in the model",
                            p->path, path + 1, mpq_h5_shape_str(ndim, dims, a, sizeof a),
                            mpq_h5_shape_str(t->ndim, want, b, sizeof b));
    }
    mpq_pf_names l;
    rc = mpq_pf_list_datasets(p, prefix, &l);
    for (int i = 0; rc == 0 && i < l.n; i++)
        if (mpq_params_find(r, l.names[i]) < 0)
            rc = MPQ_FAIL(MPQ_E_FORMAT,
                          "%s: tensor '%s/%s' of the checkpoint is not in the model: "
                          "another model or configuration?",
                          p->path, prefix + 1, l.names[i]);
    if (rc == 0 && l.too_long)
        rc =
            MPQ_FAIL(MPQ_E_FORMAT, "%s: %s holds tensors the model does not have", p->path, prefix);
    free(l.names);
    return rc;
}

static int check_quantizers(mpq_pf *p, const mpq_model_view *m)
{
    char path[PATH_BYTES], method[64];
    for (int i = 0; i < m->n_quants; i++) {
        snprintf(path, sizeof path, "/quantizers/%s", m->qnames[i]);
        if (!mpq_pf_exists(p->f, path))
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "%s: quantizer '%s' of the model is missing in the "
                            "checkpoint",
                            p->path, m->qnames[i]);
        hid_t g = H5Gopen2(p->f, path, H5P_DEFAULT);
        int rc = g < 0 ? MPQ_FAIL(MPQ_E_FORMAT, "%s: '%s' is not a group", p->path, path)
                       : mpq_h5_attr_read_string(g, "method", p->path, method, sizeof method);
        if (g >= 0) H5Gclose(g);
        MPQ_TRY(rc);
        const char *want = mpq_qmethod_name(m->quants[i].method);
        if (strcmp(method, want))
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "%s: quantizer '%s' uses method '%s' in the checkpoint "
                            "but '%s' in the model (w_quantize / a_quantize differ)",
                            p->path, m->qnames[i], method, want);
    }
    return MPQ_OK;
}

/* The fixed methods' (n, delta | m) live in the quantizer, not in the parameter buffer. */
int mpq_ckpt_read_fixed_specs(mpq_pf *p, const mpq_model_view *m)
{
    char path[PATH_BYTES];
    for (int i = 0; i < m->n_quants; i++) {
        mpq_quant *q = &m->quants[i];
        if (q->method != MPQ_QMETHOD_FP && q->method != MPQ_QMETHOD_POW2) continue;
        snprintf(path, sizeof path, "/quantizers/%s", m->qnames[i]);
        hid_t g = H5Gopen2(p->f, path, H5P_DEFAULT);
        int rc = g < 0 ? MPQ_FAIL(MPQ_E_FORMAT, "%s: cannot open '%s'", p->path, path)
                       : mpq_h5_attr_read_floats(g, "params", p->path, q->spec.p, 2);
        if (g >= 0) H5Gclose(g);
        MPQ_TRY(rc);
    }
    return MPQ_OK;
}

static int read_registry(mpq_comm *c, mpq_pf *p, mpq_params *r, const char *prefix)
{
    char path[PATH_BYTES];
    hsize_t dims[MPQ_MAX_DIMS];
    for (int i = 0; i < r->n_info; i++) {
        const mpq_param_info *t = &r->info[i];
        snprintf(path, sizeof path, "%s/%s", prefix, t->name);
        mpq_ckpt_info_dims(t, dims);
        int rc = mpq_pf_read(p, path, H5T_NATIVE_FLOAT, t->ndim, dims, mpq_at(r->val, t->s),
                             sizeof(float) * t->s.n);
        MPQ_TRY(mpq_comm_agree(c, rc));
    }
    return MPQ_OK;
}

static int check_optimizer(mpq_pf *p, const mpq_model_view *m)
{
    char kind[16];
    hsize_t dims[1];
    int ndim;
    MPQ_TRY(mpq_h5_attr_read_string(p->f, "kind", p->path, kind, sizeof kind));
    if (strcmp(kind, "checkpoint"))
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "'%s' is a parameter file without optimizer state; resuming "
                        "needs a checkpoint ---> HINT: use it as weightfile to start a new run",
                        p->path);
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "/optimizer/v" : "/optimizer/m";
        MPQ_TRY(mpq_pf_dims(p, name, &ndim, dims, 1));
        if (ndim != 1 || dims[0] != (hsize_t)m->params->n_floats)
            return MPQ_FAIL(MPQ_E_FORMAT, "%s: %s holds %llu values, the model has %zu parameters",
                            p->path, name, (unsigned long long)dims[0], m->params->n_floats);
    }
    return MPQ_OK;
}

/* A file whose tensors hold NaN or Inf (a diverged run saved by an older mpq, bit rot) is refused,
 * naming the tensor. */
static int check_finite(const char *path, const mpq_model_view *m, int with_optimizer)
{
    char context[MPQ_PATH_MAX + 32];
    snprintf(context, sizeof context, "'%s'", path);
    return mpq_view_check_finite(m, with_optimizer ? MPQ_HEALTH_OPTIMIZER : 0, context,
                            "---> HINT: the file is damaged or comes from a diverged run; use "
                            "an earlier checkpoint");
}

int mpq_ckpt_load(mpq_comm *c, const char *path, const mpq_model_view *m, const char *model_name, int flags)
{
    mpq_pf p;
    int rc, close_rc = MPQ_OK;
    char model[64];
    mpq_h5_lock();
    rc = mpq_comm_agree(c, mpq_pf_open(c, path, 0, &p));
    if (rc == 0) rc = check_format(&p, 0);
    if (rc == 0 && model_name) {
        rc = mpq_h5_attr_read_string(p.f, "model", path, model, sizeof model);
        if (rc == 0 && strcmp(model, model_name))
            rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s' holds model '%s', not '%s' (the configuration's)",
                          path, model, model_name);
    }
    if (rc == 0) rc = check_registry(&p, m->params, "/params");
    if (rc == 0) rc = check_registry(&p, m->state, "/state");
    if (rc == 0) rc = check_quantizers(&p, m);
    if (rc == 0 && (flags & MPQ_CKPT_LOAD_OPTIMIZER)) rc = check_optimizer(&p, m);
    rc = mpq_comm_agree(c, rc);
    if (rc == 0) rc = read_registry(c, &p, m->params, "/params");
    if (rc == 0) rc = read_registry(c, &p, m->state, "/state");
    if (rc == 0) rc = mpq_comm_agree(c, mpq_ckpt_read_fixed_specs(&p, m));
    hsize_t n_opt[1] = {(hsize_t)m->params->n_floats};
    for (int k = 0; rc == 0 && (flags & MPQ_CKPT_LOAD_OPTIMIZER) && k < 2; k++)
        rc = mpq_comm_agree(c, mpq_pf_read(&p, k ? "/optimizer/v" : "/optimizer/m",
                                           H5T_NATIVE_FLOAT, 1, n_opt, m->params->opt[k],
                                           sizeof(float) * m->params->n_floats));
    if (rc == 0) rc = mpq_comm_agree(c, check_finite(path, m, flags & MPQ_CKPT_LOAD_OPTIMIZER));
    mpq_pf_close(&p, &close_rc);
    mpq_h5_unlock();
    return mpq_comm_agree(c, rc < 0 ? rc : close_rc);
}

/* ---- weight files ---------------------------------------------------------------------------- */

/* How a tensor is read from a weight file. */
typedef enum conv_kind { CONV_COPY, CONV_NCHW, CONV_AFFINE } conv_kind;

typedef struct wplan {
    char path[PATH_BYTES];
    const mpq_param_info *t;
    float *dst;
    conv_kind conv;
    int ndim; /* the dataset's shape in the file, checked against t by the plan */
    hsize_t dims[MPQ_MAX_DIMS + 1];
} wplan;

/* Decides how tensor t is read from an nnabla file whose dataset has shape dims. */
static int nnabla_plan(mpq_pf *p, const mpq_model_view *m, wplan *w, int ndim, const hsize_t *dims)
{
    const mpq_param_info *t = w->t;
    const int *s = t->shape;
    char a[96], b[96];
    hsize_t want[MPQ_MAX_DIMS];
    size_t n = 0;
    if (mpq_size_product(&n, dims, ndim, SIZE_MAX / sizeof(float)) < 0)
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: tensor '%s' has shape %s: too many elements", p->path,
                        t->name, mpq_h5_shape_str(ndim, dims, a, sizeof a));
    mpq_ckpt_info_dims(t, want);
    if (t->kind == MPQ_PKIND_WEIGHT && t->ndim == 4) {
        hsize_t nchw[4] = {(hsize_t)s[0], (hsize_t)s[3], (hsize_t)s[1], (hsize_t)s[2]};
        hsize_t dw[3] = {(hsize_t)s[0], (hsize_t)s[1], (hsize_t)s[2]};
        if (ndim == 4 && !memcmp(dims, nchw, sizeof nchw)) {
            w->conv = CONV_NCHW;
            return MPQ_OK;
        }
        if (ndim == 3 && s[3] == 1 && !memcmp(dims, dw, sizeof dw)) {
            w->conv = CONV_COPY;
            return MPQ_OK;
        }
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "%s: convolution weight '%s' has shape %s; expected nnabla's "
                        "(O, I, KH, KW) = %s",
                        p->path, t->name, mpq_h5_shape_str(ndim, dims, a, sizeof a),
                        mpq_h5_shape_str(4, nchw, b, sizeof b));
    }
    if (t->kind == MPQ_PKIND_WEIGHT && t->ndim == 2) {
        hsize_t io[2] = {(hsize_t)s[1], (hsize_t)s[0]};
        const mpq_tensor *tt = mpq_view_tensor(m, t);
        if (ndim != 2 || memcmp(dims, io, sizeof io))
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "%s: affine weight '%s' has shape %s; expected nnabla's "
                            "(Cin, Cout) = %s",
                            p->path, t->name, mpq_h5_shape_str(ndim, dims, a, sizeof a),
                            mpq_h5_shape_str(2, io, b, sizeof b));
        if (tt && tt->input_hw != 1)
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "%s: '%s' follows a spatial input of %d elements per channel, whose "
                            "NCHW and NHWC flattenings differ: not supported",
                            p->path, t->name, tt->input_hw);
        w->conv = CONV_AFFINE;
        return MPQ_OK;
    }
    if (n != t->s.n) /* BN (1, C, 1, 1) -> (C), biases, scalars */
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "%s: tensor '%s' has shape %s in the file but %s in the model", p->path,
                        t->name, mpq_h5_shape_str(ndim, dims, a, sizeof a),
                        mpq_h5_shape_str(t->ndim, want, b, sizeof b));
    w->conv = CONV_COPY;
    return MPQ_OK;
}

/* Reads one planned tensor (converting the layout). */
static int read_planned(mpq_pf *p, const wplan *w)
{
    const int *s = w->t->shape;
    size_t n = w->t->s.n;
    if (w->conv == CONV_COPY)
        return mpq_pf_read(p, w->path, H5T_NATIVE_FLOAT, w->ndim, w->dims, w->dst,
                           n * sizeof(float));
    float *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory reading '%s'", w->path);
    int rc = mpq_pf_read(p, w->path, H5T_NATIVE_FLOAT, w->ndim, w->dims, tmp, n * sizeof *tmp);
    if (rc == 0 && w->conv == CONV_NCHW) {
        int o_n = s[0], kh_n = s[1], kw_n = s[2], i_n = s[3];
        for (int o = 0; o < o_n; o++)
            for (int i = 0; i < i_n; i++)
                for (int kh = 0; kh < kh_n; kh++)
                    for (int kw = 0; kw < kw_n; kw++)
                        w->dst[(((size_t)o * kh_n + kh) * kw_n + kw) * i_n + i] =
                            tmp[(((size_t)o * i_n + i) * kh_n + kh) * kw_n + kw];
    } else if (rc == 0) { /* (Cin, Cout) -> (Cout, Cin) */
        int cout = s[0], cin = s[1];
        for (int i = 0; i < cin; i++)
            for (int o = 0; o < cout; o++)
                w->dst[(size_t)o * cin + i] = tmp[(size_t)i * cout + o];
    }
    free(tmp);
    return rc;
}

/* Plans every non-quantizer tensor of both registries; the first missing one and the count of
 * missing ones are reported together. */
static int plan_weights(mpq_pf *p, const mpq_model_view *m, int nnabla, wplan *plan, int *n_plan)
{
    int missing = 0, k = 0;
    const char *first = NULL;
    for (int reg = 0; reg < 2; reg++) {
        mpq_params *r = reg ? m->state : m->params;
        for (int i = 0; i < r->n_info; i++) {
            const mpq_param_info *t = &r->info[i];
            if (t->kind == MPQ_PKIND_QUANT) continue; /* read_quantizer_values */
            wplan *w = &plan[k];
            w->t = t;
            w->dst = mpq_at(r->val, t->s);
            w->conv = CONV_COPY;
            snprintf(w->path, sizeof w->path, "%s/%s",
                     nnabla ? ""
                     : reg  ? "/state"
                            : "/params",
                     t->name);
            if (!mpq_pf_exists(p->f, w->path)) {
                if (t->kind == MPQ_PKIND_SCALE) { /* the reference creates it (value 1) */
                    w->dst[0] = 1.0f;
                    mpq_log_info("weightfile %s has no '%s': it starts at 1", p->path, t->name);
                    continue;
                }
                if (!first) first = t->name;
                missing++;
                continue;
            }
            k++;
        }
    }
    *n_plan = k;
    if (missing)
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "weightfile '%s' lacks tensor '%s' of the model (%d missing; "
                        "only quantizer parameters and the scale layer may be absent)",
                        p->path, first, missing);
    for (int i = 0; i < k; i++) {
        hsize_t dims[MPQ_MAX_DIMS + 1], want[MPQ_MAX_DIMS];
        char a[96], b[96];
        int ndim;
        MPQ_TRY(mpq_pf_dims(p, plan[i].path, &ndim, dims, MPQ_MAX_DIMS + 1));
        plan[i].ndim = ndim;
        memcpy(plan[i].dims, dims, sizeof(hsize_t) * (size_t)ndim);
        if (nnabla) {
            MPQ_TRY(nnabla_plan(p, m, &plan[i], ndim, dims));
            continue;
        }
        mpq_ckpt_info_dims(plan[i].t, want);
        if (ndim != plan[i].t->ndim || memcmp(dims, want, sizeof(hsize_t) * (size_t)ndim))
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "%s: tensor '%s' has shape %s in the file but %s in the "
                            "model",
                            p->path, plan[i].t->name, mpq_h5_shape_str(ndim, dims, a, sizeof a),
                            mpq_h5_shape_str(plan[i].t->ndim, want, b, sizeof b));
    }
    return MPQ_OK;
}

/* The tensors of group (recursively) that m has in neither registry: their count, and the first. */
static int count_foreign(mpq_pf *p, const mpq_model_view *m, const char *group, char *first,
                         size_t bytes)
{
    mpq_pf_names l;
    int n = 0;
    if (mpq_pf_list_datasets(p, group, &l) < 0) return 0;
    for (int i = 0; i < l.n; i++) {
        if (mpq_params_find(m->params, l.names[i]) >= 0 ||
            mpq_params_find(m->state, l.names[i]) >= 0 ||
            strstr(l.names[i], "quant/")) /* quantizer parameters are never loaded from it */
            continue;
        if (n++ == 0) snprintf(first, bytes, "%s", l.names[i]);
    }
    free(l.names);
    return n + l.too_long;
}

/* Collective (metadata reads are): warns on rank 0 when a weight file comes from another model:
 * tensors the model does not have (a ResNet-32 file for a ResNet-20 loads by name, silently
 * dropping layers), or, for an mpq file, another input shape or class count. Loading goes on. */
static void warn_foreign(mpq_pf *p, const mpq_model_view *m, int nnabla)
{
    char first[128] = "", model[32] = "?";
    char in_state[128] = "";
    int n = count_foreign(p, m, nnabla ? "/" : "/params", first, sizeof first);
    int n_state = nnabla ? 0 : count_foreign(p, m, "/state", in_state, sizeof in_state);
    if (n == 0 && n_state > 0) snprintf(first, sizeof first, "%s", in_state);
    n += n_state;
    int h = m->in_h, w = m->in_w, ch = m->in_c, k = m->num_classes;
    if (!nnabla && (mpq_h5_attr_read_string(p->f, "model", p->path, model, sizeof model) < 0 ||
                    mpq_h5_attr_read_int(p->f, "input_height", p->path, &h) < 0 ||
                    mpq_h5_attr_read_int(p->f, "input_width", p->path, &w) < 0 ||
                    mpq_h5_attr_read_int(p->f, "input_channels", p->path, &ch) < 0 ||
                    mpq_h5_attr_read_int(p->f, "num_classes", p->path, &k) < 0))
        mpq_err_clear();
    int shape = h != m->in_h || w != m->in_w || ch != m->in_c || k != m->num_classes;
    if (p->rank != 0 || (n == 0 && !shape)) return;
    if (n > 0)
        mpq_log_warn("weightfile '%s' comes from another model (its model: '%s'): it holds %d "
                     "tensor(s) this model does not have, e.g. '%s'; loading the tensors that "
                     "match by name",
                     p->path, model, n, first);
    if (shape)
        mpq_log_warn("weightfile '%s' was trained on %dx%dx%d inputs with %d classes; this model "
                     "takes %dx%dx%d inputs with %d classes",
                     p->path, h, w, ch, k, m->in_h, m->in_w, m->in_c, m->num_classes);
}

/* Where the file keeps value k of parametric quantizer i, or "" when it does not hold that
 * quantizer with the model's method: mpq files /params/<quantizer>/<name>, with the method on
 * /quantizers/<quantizer>; nnabla files <quantizer>/<method>/<name> (the reference's naming). */
static int quantizer_path(mpq_pf *p, const mpq_model_view *m, int nnabla, int i, int k, char *out)
{
    const mpq_quant *q = &m->quants[i];
    const char *method = mpq_qmethod_name(q->method), *pname = mpq_qmethod_param_name(q->method, k);
    out[0] = '\0';
    if (nnabla) {
        snprintf(out, PATH_BYTES, "/%s/%s/%s", m->qnames[i], method, pname);
    } else {
        char group[PATH_BYTES], file_method[64];
        snprintf(group, sizeof group, "/quantizers/%s", m->qnames[i]);
        if (!mpq_pf_exists(p->f, group)) return MPQ_OK;
        hid_t g = H5Gopen2(p->f, group, H5P_DEFAULT);
        int rc =
            g < 0 ? MPQ_FAIL(MPQ_E_FORMAT, "%s: '%s' is not a group", p->path, group)
                  : mpq_h5_attr_read_string(g, "method", p->path, file_method, sizeof file_method);
        if (g >= 0) H5Gclose(g);
        MPQ_TRY(rc);
        if (strcmp(file_method, method)) return MPQ_OK;
        snprintf(out, PATH_BYTES, "/params/%s/%s", m->qnames[i], pname);
    }
    if (!mpq_pf_exists(p->f, out)) out[0] = '\0';
    return MPQ_OK;
}

/* The values of the parametric quantizers the file holds (both values, the model's method), as
 * the reference keeps every parameter its weightfile holds; loaded[i] says which were read. */
static int read_quantizer_values(mpq_comm *c, mpq_pf *p, const mpq_model_view *m, int nnabla,
                                 unsigned char *loaded, int *n_loaded)
{
    *n_loaded = 0;
    for (int i = 0; i < m->n_quants; i++) {
        const mpq_quant *q = &m->quants[i];
        char path[2][PATH_BYTES];
        hsize_t dims[2][MPQ_MAX_DIMS + 1];
        int rc = MPQ_OK, have = q->p.n == 2, ndim[2] = {0, 0};
        loaded[i] = 0;
        for (int k = 0; have && rc == 0 && k < 2; k++) {
            hsize_t n = 1;
            rc = quantizer_path(p, m, nnabla, i, k, path[k]);
            have = rc == 0 && path[k][0];
            if (have) rc = mpq_pf_dims(p, path[k], &ndim[k], dims[k], MPQ_MAX_DIMS + 1);
            for (int d = 0; have && rc == 0 && d < ndim[k]; d++)
                n *= dims[k][d];
            if (have && rc == 0 && n != 1)
                rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: quantizer value '%s' holds %llu values, not 1",
                              p->path, path[k], (unsigned long long)n);
        }
        MPQ_TRY(mpq_comm_agree(c, rc));
        if (!have) continue;
        for (int k = 0; k < 2; k++)
            MPQ_TRY(mpq_comm_agree(
                c, mpq_pf_read(p, path[k], H5T_NATIVE_FLOAT, ndim[k], dims[k],
                               m->params->val + q->p.off + k, sizeof(float))));
        loaded[i] = 1;
        (*n_loaded)++;
    }
    return MPQ_OK;
}

int mpq_ckpt_load_weights(mpq_comm *c, const char *path, const mpq_model_view *m, unsigned char *quant_loaded)
{
    mpq_pf p;
    int rc, close_rc = MPQ_OK, n_plan = 0, nnabla = 0, n_quant = 0;
    wplan *plan = calloc((size_t)(m->params->n_info + m->state->n_info + 1), sizeof *plan);
    if (!plan) return mpq_comm_agree(c, MPQ_FAIL(MPQ_E_NOMEM, "out of memory"));
    mpq_h5_lock();
    rc = mpq_comm_agree(c, mpq_pf_open(c, path, 0, &p));
    if (rc == 0) {
        nnabla = H5Aexists(p.f, "mpq_format") <= 0;
        if (!nnabla)
            rc = check_format(&p, 0);
        else if (mpq_pf_exists(p.f, "/images"))
            rc =
                MPQ_FAIL(MPQ_E_FORMAT, "weightfile '%s' is a dataset shard (it has /images)", path);
    }
    if (rc == 0) rc = plan_weights(&p, m, nnabla, plan, &n_plan);
    if (rc == 0) warn_foreign(&p, m, nnabla);
    rc = mpq_comm_agree(c, rc);
    for (int i = 0; rc == 0 && i < n_plan; i++)
        rc = mpq_comm_agree(c, read_planned(&p, &plan[i]));
    if (rc == 0) rc = mpq_comm_agree(c, check_finite(path, m, 0));
    if (rc == 0 && quant_loaded)
        rc = read_quantizer_values(c, &p, m, nnabla, quant_loaded, &n_quant);
    mpq_pf_close(&p, &close_rc);
    mpq_h5_unlock();
    free(plan);
    if (rc == 0) rc = close_rc;
    rc = mpq_comm_agree(c, rc);
    if (rc == 0)
        mpq_log_info("weightfile %s: loaded %d tensors and %d quantizers' values (%s layout)", path,
                     n_plan, n_quant, nnabla ? "nnabla" : "mpq");
    return rc;
}


/* ---- the checkpoint directory ---------------------------------------------------------------- */

void mpq_ckpt_path(const char *output_dir, long step, char *out, size_t bytes)
{
    snprintf(out, bytes, "%s/%s/ckpt-%09ld.h5", output_dir, MPQ_CKPT_SUBDIR, step);
}

/* "ckpt-<9 digits>.h5" (tmp = 0) or the same + ".tmp" (tmp = 1). */
static int is_ckpt_name(const char *name, int tmp)
{
    size_t n = strlen(name);
    if (n != (tmp ? 21 : 17) || strncmp(name, "ckpt-", 5) || strncmp(name + 14, ".h5", 3)) return 0;
    for (int i = 5; i < 14; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    return tmp ? !strcmp(name + 17, ".tmp") : 1;
}

static int keep_ckpt(const char *dir, const char *name, void *tmp)
{
    (void)dir;
    return is_ckpt_name(name, *(const int *)tmp);
}

/* The names of complete (tmp = 0) or temporary (tmp = 1) checkpoints in dir, newest first (the
 * step has a fixed width, so the name order is the step order); all of them or an error. */
static int list_ckpts(const char *dir, int tmp, char ***out, int *n_out)
{
    mpq_dir_list l;
    int rc = mpq_dir_list_read(dir, keep_ckpt, &tmp, 1, &l);
    for (int i = 0; i < l.n / 2; i++) {
        char *t = l.names[i];
        l.names[i] = l.names[l.n - 1 - i];
        l.names[l.n - 1 - i] = t;
    }
    *out = l.names;
    *n_out = l.n;
    return rc;
}

static void free_list(char **v, int n)
{
    mpq_dir_list l = {v, n};
    mpq_dir_list_free(&l);
}

/* Serial: whether path opens as an mpq checkpoint (kind "checkpoint") whose tensors match their
 * checksums (one read of the file). */
static int probe(const char *path)
{
    char fmt[64] = "", kind[16] = "";
    int rc = mpq_h5_probe_file(path); /* says why when it refuses the file */
    if (rc < 0) return rc;
    mpq_h5_lock();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        rc = MPQ_FAIL(MPQ_E_IO, "cannot open '%s' (truncated or damaged)", path);
    else if (mpq_h5_attr_read_string(f, "mpq_format", path, fmt, sizeof fmt) < 0 ||
             mpq_h5_attr_read_string(f, "kind", path, kind, sizeof kind) < 0 ||
             strcmp(fmt, MPQ_CKPT_FORMAT) || strcmp(kind, "checkpoint"))
        rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s' is not a complete mpq checkpoint", path);
    else
        rc = mpq_pf_verify_file(f, path);
    if (f >= 0) H5Fclose(f);
    mpq_h5_unlock();
    return rc;
}

int mpq_ckpt_find_latest(const char *output_dir, char *out, size_t bytes)
{
    char dir[MPQ_PATH_MAX], path[MPQ_PATH_MAX + 32];
    char **v;
    int n, found = 0;
    snprintf(dir, sizeof dir, "%s/%s", output_dir, MPQ_CKPT_SUBDIR);
    MPQ_TRY(list_ckpts(dir, 0, &v, &n));
    for (int i = 0; i < n && !found; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, v[i]);
        if (probe(path) < 0) {
            mpq_log_warn("skipping checkpoint: %s", mpq_errmsg());
            continue;
        }
        snprintf(out, bytes, "%s", path);
        found = 1;
    }
    free_list(v, n);
    return found;
}

/* Removes the complete checkpoints after the newest `keep` (keep < 0: all of them) and every
 * temporary; counts the removed checkpoints into *n_removed. */
static int remove_ckpts(const char *output_dir, int keep, int *n_removed)
{
    char dir[MPQ_PATH_MAX], path[MPQ_PATH_MAX + 32];
    char **v;
    int n, rc = MPQ_OK;
    snprintf(dir, sizeof dir, "%s/%s", output_dir, MPQ_CKPT_SUBDIR);
    for (int tmp = 0; tmp < 2; tmp++) {
        MPQ_TRY(list_ckpts(dir, tmp, &v, &n));
        for (int i = tmp || keep < 0 ? 0 : keep; i < n && (tmp || keep != 0); i++) {
            snprintf(path, sizeof path, "%s/%s", dir, v[i]);
            if (unlink(path) != 0 && rc == MPQ_OK)
                rc = MPQ_FAIL(MPQ_E_IO, "cannot remove '%s': %s", path, strerror(errno));
            else if (!tmp)
                ++*n_removed;
        }
        free_list(v, n);
    }
    return rc;
}

int mpq_ckpt_prune(const char *output_dir, int keep)
{
    int n = 0;
    return remove_ckpts(output_dir, keep, &n);
}

int mpq_ckpt_clear(const char *output_dir, int *n_removed)
{
    char path[MPQ_PATH_MAX + 32];
    *n_removed = 0;
    MPQ_TRY(remove_ckpts(output_dir, -1, n_removed));
    snprintf(path, sizeof path, "%s/%s", output_dir, MPQ_CKPT_BEST);
    if (unlink(path) != 0 && errno != ENOENT)
        return MPQ_FAIL(MPQ_E_IO, "cannot remove '%s': %s", path, strerror(errno));
    return MPQ_OK;
}

int mpq_ckpt_start_fresh(const char *output_dir, mpq_ckpt_start how)
{
    char dir[MPQ_PATH_MAX], best[MPQ_PATH_MAX + 32];
    char **v;
    int n, removed = 0;
    if (how == MPQ_CKPT_START_RESTART) {
        MPQ_TRY(mpq_ckpt_clear(output_dir, &removed));
        if (removed > 0)
            mpq_log_warn("--restart: removed %d checkpoint(s) and the params_best.h5 of an "
                         "earlier run in %s",
                         removed, output_dir);
        return MPQ_OK;
    }
    snprintf(dir, sizeof dir, "%s/%s", output_dir, MPQ_CKPT_SUBDIR);
    snprintf(best, sizeof best, "%s/%s", output_dir, MPQ_CKPT_BEST);
    MPQ_TRY(list_ckpts(dir, 0, &v, &n));
    int has_best = access(best, F_OK) == 0;
    char newest[MPQ_PATH_MAX + 32];
    snprintf(newest, sizeof newest, "%s%s%s", n ? dir : best, n ? "/" : "", n ? v[0] : "");
    free_list(v, n);
    if (how == MPQ_CKPT_START_NONE && n == 0) {
        if (has_best)
            mpq_log_warn("--resume auto: no checkpoint in %s; the %s of an earlier run stays "
                         "until this run validates a better state",
                         dir, best);
        return MPQ_OK;
    }
    if (n == 0 && !has_best) return MPQ_OK;
    return MPQ_FAIL(MPQ_E_CONFIG,
                    "%s already holds %d checkpoint(s)%s of an earlier run (newest: %s); a run "
                    "starting at step 0 would overwrite them ---> HINT: %s, add --restart to "
                    "start over (removes them), or set another output_dir",
                    output_dir, n, has_best ? " and params_best.h5" : "", newest,
                    how == MPQ_CKPT_START_NONE
                        ? "none of the checkpoints loads (see the warnings above): move them away"
                        : "continue that run with --resume auto");
}

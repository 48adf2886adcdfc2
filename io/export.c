/* Exported models (see export.h): codes from the quantizers' own forward values (every code is
 * checked to dequantize to the quantized weight exactly), optional bit packing and BN folding,
 * the loader for evaluation and the tensor table for `mpq inspect`. Every rank computes the same
 * codes and writes its rows of each code array (io/h5par.h). Scratch per tensor, freed before
 * returning; every HDF5 call holds io/h5.h's lock. */
#include "io/export.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "io/ckpt_impl.h"
#include "io/h5par.h"
#include "quant/codes.h"

#define PATH_BYTES MPQ_PF_PATH_BYTES

/* One weight or bias tensor of a layer. */
typedef struct etensor {
    const mpq_param_info *t;
    const mpq_quant *q; /* NULL: unquantized */
    int bn;             /* the BN (index in the view's BN table) folded into it, or -1 */
} etensor;

/* Every weight and bias tensor, in the tensor table's (build) order. Returns the count; out
 * holds room for n_tensors. */
static int list_tensors(const mpq_model_view *m, int fold_bn, etensor *out)
{
    int k = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const mpq_tensor *t = &m->tensors[i];
        if (t->role > MPQ_ROLE_BIAS || !t->info->s.n) continue;
        out[k++] = (etensor){t->info, t->quant >= 0 ? &m->quants[t->quant] : NULL,
                             fold_bn && t->role != MPQ_ROLE_BIAS ? t->bn : -1};
    }
    return k;
}

/* ---- writing --------------------------------------------------------------------------------- */

typedef struct ebuf {
    float *wq, *scale, *bias;
    int32_t *codes;
    uint8_t *packed;
} ebuf;

static int write_tensor(mpq_pf *p, const mpq_model_view *m, const etensor *e,
                        const mpq_export_opts *o, ebuf *eb, double *kbytes, double *stored)
{
    const mpq_param_info *t = e->t;
    const float *w = mpq_cat(m->params->val, t->s);
    char path[PATH_BYTES], sub[PATH_BYTES + 16];
    size_t n = t->s.n;
    mpq_code_kind k = !e->q                                      ? MPQ_CODE_FLOAT
                      : mpq_quant_step(e->q, m->params->val) > 0 ? MPQ_CODE_UNIFORM
                                                                 : MPQ_CODE_POW2;
    float step = k == MPQ_CODE_UNIFORM ? mpq_quant_step(e->q, m->params->val) : 0.0f;
    int exp_min = 0, bits = 32, stored_bits = 32, rc = MPQ_OK;
    hsize_t dims[MPQ_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        dims[i] = (hsize_t)t->shape[i];
    snprintf(path, sizeof path, "/tensors/%s", t->name);
    if (k != MPQ_CODE_FLOAT) {
        mpq_quant_forward(e->q, m->params->val, w, eb->wq, n);
        MPQ_TRY(mpq_codes_encode(k, eb->wq, n, step, eb->codes, &exp_min, t->name));
        bits = (int)lrintf(mpq_quant_bitwidth(e->q, m->params->val));
        stored_bits = mpq_codes_bits(eb->codes, n);
        if (stored_bits < bits) stored_bits = bits;
        if (!o->pack) stored_bits = stored_bits <= 8 ? 8 : stored_bits <= 16 ? 16 : 32;
    }
    snprintf(sub, sizeof sub, "%s/%s", path,
             k == MPQ_CODE_FLOAT ? "values"
             : o->pack           ? "packed"
                                 : "codes");
    if (k == MPQ_CODE_FLOAT) {
        rc = mpq_pf_write_floats(p, sub, t->ndim, t->shape, w);
    } else if (o->pack) {
        hsize_t nb = (hsize_t)mpq_codes_packed_bytes(n, stored_bits);
        mpq_codes_pack(eb->codes, n, stored_bits, eb->packed, (size_t)nb);
        rc = mpq_pf_write_array(p, sub, 1, &nb, H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, eb->packed, 0);
    } else {
        hid_t ft = stored_bits == 8    ? H5T_STD_I8LE
                   : stored_bits == 16 ? H5T_STD_I16LE
                                       : H5T_STD_I32LE;
        rc = mpq_pf_write_array(p, sub, t->ndim, dims, ft, H5T_NATIVE_INT32, sizeof(int32_t),
                                eb->codes, 0);
    }
    if (rc == 0 && e->bn >= 0) {
        int c = t->shape[0];
        mpq_bn_fold(m, e->bn, eb->scale, eb->bias);
        snprintf(sub, sizeof sub, "%s/scale", path);
        rc = mpq_pf_write_floats(p, sub, 1, &c, eb->scale);
        snprintf(sub, sizeof sub, "%s/bias", path);
        if (rc == 0) rc = mpq_pf_write_floats(p, sub, 1, &c, eb->bias);
    }
    MPQ_TRY(rc);
    hid_t g = H5Gopen2(p->f, path, H5P_DEFAULT);
    if (g < 0) return MPQ_FAIL(MPQ_E_IO, "%s: cannot open '%s'", p->path, path);
    double kb = bits * (double)n / 8.0 / 1024.0;
    rc = mpq_h5_attr_write_string(g, "kind", mpq_code_kind_name(k));
    if (rc == 0)
        rc = mpq_h5_attr_write_string(g, "method", e->q ? mpq_qmethod_name(e->q->method) : "none");
    if (rc == 0) rc = mpq_h5_attr_write_int(g, "bits", bits);
    if (rc == 0) rc = mpq_h5_attr_write_int(g, "stored_bits", stored_bits);
    if (rc == 0) rc = mpq_h5_attr_write_long(g, "elements", (long)n);
    if (rc == 0) rc = mpq_h5_attr_write_double(g, "kbytes", kb);
    if (rc == 0) rc = mpq_h5_attr_write_ints(g, "shape", t->shape, t->ndim);
    if (rc == 0 && k == MPQ_CODE_UNIFORM) rc = mpq_h5_attr_write_double(g, "step", step);
    if (rc == 0 && k == MPQ_CODE_POW2) rc = mpq_h5_attr_write_int(g, "exp_min", exp_min);
    if (rc == 0 && e->bn >= 0) rc = mpq_h5_attr_write_string(g, "folded_bn", m->bns[e->bn].name);
    H5Gclose(g);
    if (k != MPQ_CODE_FLOAT) *kbytes += kb;
    *stored +=
        (o->pack ? (double)mpq_codes_packed_bytes(n, stored_bits) : n * (stored_bits / 8.0)) /
        1024.0;
    return rc;
}

/* Whether tensor t (index in the tensor table) has role r0 or r1 in a folded BN. */
static int of_folded_bn(const mpq_model_view *m, const etensor *es, int n_es, int t, int r0, int r1)
{
    int role = (int)m->tensors[t].role;
    if (role != r0 && role != r1) return 0;
    for (int j = 0; j < n_es; j++)
        if (es[j].bn >= 0) {
            const mpq_bn_ref *b = &m->bns[es[j].bn];
            if (t == b->gamma || t == b->beta || t == b->mean || t == b->var) return 1;
        }
    return 0;
}

/* Whether trainable tensor t is written under /tensors, or belongs to a weight quantizer or a
 * folded BN (and is therefore not written under /float). */
static int covered(const mpq_model_view *m, const etensor *es, int n_es, const mpq_param_info *t)
{
    const mpq_tensor *x = mpq_view_tensor(m, t);
    for (int j = 0; j < n_es; j++)
        if (es[j].t == t) return 1;
    if (x->role == MPQ_ROLE_QUANT && !m->quants[x->quant].is_act) return 1;
    return of_folded_bn(m, es, n_es, (int)(x - m->tensors), MPQ_ROLE_BN_GAMMA, MPQ_ROLE_BN_BETA);
}

static int folded_state(const mpq_model_view *m, const etensor *es, int n_es,
                        const mpq_param_info *t)
{
    const mpq_tensor *x = mpq_view_tensor(m, t);
    return of_folded_bn(m, es, n_es, (int)(x - m->tensors), MPQ_ROLE_BN_MEAN, MPQ_ROLE_BN_VAR);
}

static int write_contents(mpq_comm *c, mpq_pf *p, const mpq_model_view *m,
                          const mpq_ckpt_info *info, const mpq_export_opts *o, etensor *es,
                          int n_es, ebuf *eb, double *kbytes)
{
    char path[PATH_BYTES];
    double stored = 0.0;
    int rc = mpq_ckpt_write_root(p, info, MPQ_EXPORT_FORMAT, "export");
    if (rc == 0) rc = mpq_pf_write_string(p, "/config", info->config ? info->config : "");
    if (rc == 0) rc = mpq_ckpt_write_history(p, info);
    MPQ_TRY(mpq_comm_agree(c, rc));
    for (int j = 0; j < n_es; j++)
        MPQ_TRY(mpq_comm_agree(c, write_tensor(p, m, &es[j], o, eb, kbytes, &stored)));
    for (int i = 0; i < m->params->n_info; i++) {
        const mpq_param_info *t = &m->params->info[i];
        if (covered(m, es, n_es, t)) continue;
        snprintf(path, sizeof path, "/float/%s", t->name);
        MPQ_TRY(mpq_comm_agree(
            c, mpq_pf_write_floats(p, path, t->ndim, t->shape, mpq_cat(m->params->val, t->s))));
    }
    for (int i = 0; i < m->state->n_info; i++) {
        const mpq_param_info *t = &m->state->info[i];
        if (folded_state(m, es, n_es, t)) continue;
        snprintf(path, sizeof path, "/state/%s", t->name);
        MPQ_TRY(mpq_comm_agree(
            c, mpq_pf_write_floats(p, path, t->ndim, t->shape, mpq_cat(m->state->val, t->s))));
    }
    for (int i = 0; i < m->n_quants; i++)
        MPQ_TRY(mpq_comm_agree(c, mpq_ckpt_write_quantizer(p, m, i)));
    rc = mpq_h5_attr_write_double(p->f, "weights_kbytes", *kbytes);
    if (rc == 0) rc = mpq_h5_attr_write_double(p->f, "stored_kbytes", stored);
    if (rc == 0) rc = mpq_h5_attr_write_int(p->f, "fold_bn", o->fold_bn);
    if (rc == 0) rc = mpq_h5_attr_write_int(p->f, "packed", o->pack);
    return mpq_comm_agree(c, rc);
}

int mpq_export_write(mpq_comm *c, const char *path, const mpq_model_view *m,
                     const mpq_ckpt_info *info, const mpq_export_opts *o, double *kbytes)
{
    char tmp[PATH_BYTES * 8];
    mpq_pf p;
    double kb = 0.0;
    int rc, close_rc = MPQ_OK, n_es;
    size_t n_max = 1;
    etensor *es = calloc((size_t)m->n_tensors + 1, sizeof *es);
    ebuf eb = {0};
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(es);
        return mpq_comm_agree(c, MPQ_FAIL(MPQ_E_ARG, "export path too long: '%s'", path));
    }
    n_es = es ? list_tensors(m, o->fold_bn, es) : 0;
    for (int j = 0; j < n_es; j++)
        if (es[j].t->s.n > n_max) n_max = es[j].t->s.n;
    eb.wq = malloc(n_max * sizeof *eb.wq);
    eb.scale = malloc(n_max * sizeof *eb.scale);
    eb.bias = malloc(n_max * sizeof *eb.bias);
    eb.codes = malloc(n_max * sizeof *eb.codes);
    eb.packed = malloc(n_max * sizeof(int32_t));
    rc = es && eb.wq && eb.scale && eb.bias && eb.codes && eb.packed
             ? MPQ_OK
             : MPQ_FAIL(MPQ_E_NOMEM, "out of memory exporting");
    rc = mpq_comm_agree(c, rc);
    if (rc == 0) {
        mpq_h5_lock();
        rc = mpq_comm_agree(c, mpq_pf_open(c, tmp, 1, &p));
        if (rc == 0) rc = write_contents(c, &p, m, info, o, es, n_es, &eb, &kb);
        mpq_pf_close(&p, &close_rc);
        mpq_h5_unlock();
        rc = mpq_pf_commit(c, tmp, path, rc < 0 ? rc : close_rc);
    }
    free(es);
    free(eb.wq);
    free(eb.scale);
    free(eb.bias);
    free(eb.codes);
    free(eb.packed);
    if (kbytes) *kbytes = kb;
    return rc < 0 ? mpq_err_push(rc, "exporting '%s'", path) : rc;
}

/* ---- reading --------------------------------------------------------------------------------- */

static int read_entry(mpq_pf *p, const char *name, mpq_export_entry *e)
{
    char path[PATH_BYTES];
    snprintf(path, sizeof path, "/tensors/%s", name);
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    if (!mpq_pf_exists(p->f, path))
        return MPQ_FAIL(MPQ_E_FORMAT, "%s: tensor '%s' of the model is missing in the export",
                        p->path, name);
    hid_t g = H5Gopen2(p->f, path, H5P_DEFAULT);
    if (g < 0) return MPQ_FAIL(MPQ_E_FORMAT, "%s: '%s' is not a group", p->path, path);
    int rc = mpq_h5_attr_read_string(g, "kind", p->path, e->kind, sizeof e->kind);
    if (rc == 0) rc = mpq_h5_attr_read_string(g, "method", p->path, e->method, sizeof e->method);
    if (rc == 0) rc = mpq_h5_attr_read_int(g, "bits", p->path, &e->bits);
    if (rc == 0) rc = mpq_h5_attr_read_int(g, "stored_bits", p->path, &e->stored_bits);
    if (rc == 0) rc = mpq_h5_attr_read_long(g, "elements", p->path, &e->elements);
    if (rc == 0) rc = mpq_h5_attr_read_double(g, "kbytes", p->path, &e->kbytes);
    if (rc == 0 && !strcmp(e->kind, "uniform"))
        rc = mpq_h5_attr_read_double(g, "step", p->path, &e->step);
    if (rc == 0 && !strcmp(e->kind, "pow2"))
        rc = mpq_h5_attr_read_int(g, "exp_min", p->path, &e->exp_min);
    e->folded = rc == 0 && H5Aexists(g, "folded_bn") > 0;
    H5Gclose(g);
    if (rc == 0 && strcmp(e->kind, "uniform") && strcmp(e->kind, "pow2") &&
        strcmp(e->kind, "float"))
        rc =
            MPQ_FAIL(MPQ_E_FORMAT, "%s: tensor '%s' has unknown kind '%s'", p->path, name, e->kind);
    if (rc == 0 && (e->stored_bits < 1 || e->stored_bits > 32))
        rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: tensor '%s': stored_bits %d", p->path, name,
                      e->stored_bits);
    return rc;
}

/* Reads and dequantizes tensor e into w (n elements); a folded BN's scale is applied per output
 * channel and its bias written to bias (C). */
static int read_tensor(mpq_pf *p, const mpq_export_entry *e, const mpq_param_info *t, float *w,
                       float *bias, int packed, ebuf *eb)
{
    char path[PATH_BYTES + 16];
    size_t n = t->s.n;
    int rc;
    if ((size_t)e->elements != n)
        return MPQ_FAIL(MPQ_E_FORMAT,
                        "%s: tensor '%s' has %ld elements in the export but %zu in "
                        "the model",
                        p->path, t->name, e->elements, n);
    if (!strcmp(e->kind, "float")) {
        snprintf(path, sizeof path, "/tensors/%s/values", t->name);
        rc = mpq_pf_read(p, path, H5T_NATIVE_FLOAT, w);
    } else {
        mpq_code_kind k = strcmp(e->kind, "pow2") ? MPQ_CODE_UNIFORM : MPQ_CODE_POW2;
        snprintf(path, sizeof path, "/tensors/%s/%s", t->name, packed ? "packed" : "codes");
        rc = mpq_pf_read(p, path, packed ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT32,
                         packed ? (void *)eb->packed : (void *)eb->codes);
        if (rc == 0 && packed) mpq_codes_unpack(eb->packed, n, e->stored_bits, eb->codes);
        for (size_t i = 0; rc == 0 && i < n; i++)
            w[i] = mpq_code_value(k, eb->codes[i], (float)e->step, e->exp_min);
    }
    if (rc < 0 || !e->folded) return rc;
    snprintf(path, sizeof path, "/tensors/%s/scale", t->name);
    MPQ_TRY(mpq_pf_read(p, path, H5T_NATIVE_FLOAT, eb->scale));
    snprintf(path, sizeof path, "/tensors/%s/bias", t->name);
    MPQ_TRY(mpq_pf_read(p, path, H5T_NATIVE_FLOAT, bias));
    size_t per = n / (size_t)t->shape[0];
    for (size_t i = 0; i < n; i++)
        w[i] *= eb->scale[i / per];
    return MPQ_OK;
}

static int load_contents(mpq_comm *c, mpq_pf *p, const mpq_model_view *m, etensor *es, int n_es,
                         ebuf *eb)
{
    char path[PATH_BYTES];
    int packed = 0, fold_bn = 0, rc;
    rc = mpq_h5_attr_read_int(p->f, "packed", p->path, &packed);
    if (rc == 0) rc = mpq_h5_attr_read_int(p->f, "fold_bn", p->path, &fold_bn);
    MPQ_TRY(mpq_comm_agree(c, rc));
    n_es = list_tensors(m, fold_bn, es);
    for (int j = 0; j < n_es; j++) {
        mpq_export_entry e;
        rc = read_entry(p, es[j].t->name, &e);
        if (rc == 0 && e.folded != (es[j].bn >= 0))
            rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: BN folding of '%s' does not match the model", p->path,
                          es[j].t->name);
        if (rc == 0)
            rc = read_tensor(p, &e, es[j].t, mpq_at(m->params->val, es[j].t->s), eb->bias, packed,
                             eb);
        if (rc == 0 && es[j].bn >= 0) mpq_bn_set_identity(m, es[j].bn, eb->bias);
        MPQ_TRY(mpq_comm_agree(c, rc));
    }
    for (int reg = 0; reg < 2; reg++) {
        mpq_params *r = reg ? m->state : m->params;
        for (int i = 0; i < r->n_info; i++) {
            const mpq_param_info *t = &r->info[i];
            if (reg ? folded_state(m, es, n_es, t) : covered(m, es, n_es, t)) continue;
            snprintf(path, sizeof path, "%s/%s", reg ? "/state" : "/float", t->name);
            int ndim;
            hsize_t dims[MPQ_MAX_DIMS + 1];
            size_t count = 1;
            rc = mpq_pf_dims(p, path, &ndim, dims, MPQ_MAX_DIMS + 1);
            for (int d = 0; rc == 0 && d < ndim; d++)
                count *= (size_t)dims[d];
            if (rc == 0 && count != t->s.n)
                rc = MPQ_FAIL(MPQ_E_FORMAT, "%s: '%s' has %zu elements, the model %zu", p->path,
                              path, count, t->s.n);
            if (rc == 0) rc = mpq_pf_read(p, path, H5T_NATIVE_FLOAT, mpq_at(r->val, t->s));
            MPQ_TRY(mpq_comm_agree(c, rc));
        }
    }
    return mpq_comm_agree(c, mpq_ckpt_read_fixed_specs(p, m));
}

/* Opens an export and checks its format attribute. */
static int open_export(mpq_comm *c, const char *path, mpq_pf *p)
{
    char fmt[64] = "";
    int rc = mpq_comm_agree(c, mpq_pf_open(c, path, 0, p));
    if (rc < 0) return rc;
    if (H5Aexists(p->f, "mpq_format") <= 0 ||
        mpq_h5_attr_read_string(p->f, "mpq_format", path, fmt, sizeof fmt) < 0 ||
        strcmp(fmt, MPQ_EXPORT_FORMAT))
        rc = MPQ_FAIL(MPQ_E_FORMAT, "'%s' is not an exported model (mpq_format '%s')", path, fmt);
    return mpq_comm_agree(c, rc);
}

int mpq_export_load(mpq_comm *c, const char *path, const mpq_model_view *m)
{
    mpq_pf p;
    size_t n_max = 1;
    int rc, close_rc = MPQ_OK;
    etensor *es = calloc((size_t)m->n_tensors + 1, sizeof *es);
    for (int i = 0; i < m->params->n_info; i++)
        if (m->params->info[i].s.n > n_max) n_max = m->params->info[i].s.n;
    ebuf eb = {.scale = malloc(n_max * sizeof(float)),
               .bias = malloc(n_max * sizeof(float)),
               .codes = malloc(n_max * sizeof(int32_t)),
               .packed = malloc(n_max * sizeof(int32_t))};
    rc = es && eb.scale && eb.bias && eb.codes && eb.packed
             ? MPQ_OK
             : MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    rc = mpq_comm_agree(c, rc);
    if (rc == 0) {
        mpq_h5_lock();
        rc = open_export(c, path, &p);
        if (rc == 0) rc = load_contents(c, &p, m, es, 0, &eb);
        mpq_pf_close(&p, &close_rc);
        mpq_h5_unlock();
        rc = mpq_comm_agree(c, rc < 0 ? rc : close_rc);
    }
    free(es);
    free(eb.scale);
    free(eb.bias);
    free(eb.codes);
    free(eb.packed);
    return rc;
}

int mpq_export_table(mpq_comm *c, const char *path, mpq_export_entry **out, int *n, int *packed,
                     int *fold_bn)
{
    mpq_pf p;
    mpq_pf_names names = {0};
    int rc, close_rc = MPQ_OK;
    *out = NULL;
    *n = 0;
    mpq_h5_lock();
    rc = open_export(c, path, &p);
    if (rc == 0) rc = mpq_h5_attr_read_int(p.f, "packed", path, packed);
    if (rc == 0) rc = mpq_h5_attr_read_int(p.f, "fold_bn", path, fold_bn);
    if (rc == 0) rc = mpq_pf_list_datasets(&p, "/tensors", &names);
    /* one group per tensor holds its codes, packed codes or values (plus scale and bias) */
    mpq_export_entry *e = rc == 0 ? calloc((size_t)names.n + 1, sizeof *e) : NULL;
    if (rc == 0 && !e) rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < names.n; i++) {
        char *slash = strrchr(names.names[i], '/');
        if (!slash ||
            (strcmp(slash, "/codes") && strcmp(slash, "/packed") && strcmp(slash, "/values")))
            continue;
        *slash = '\0';
        rc = read_entry(&p, names.names[i], &e[(*n)++]);
    }
    free(names.names);
    mpq_pf_close(&p, &close_rc);
    mpq_h5_unlock();
    rc = mpq_comm_agree(c, rc < 0 ? rc : close_rc);
    if (rc < 0) {
        free(e);
        *n = 0;
        return rc;
    }
    *out = e;
    return MPQ_OK;
}

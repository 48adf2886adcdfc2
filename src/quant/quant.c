/* Quantizer plumbing: cfg method names, the public API of mpq.h (validation, then dispatch to the
 * families in uniform.c, pow2.c, fixed.c), the mpq_quant wrappers that layers and the trainer call
 * with values read from the flat parameter buffer, setup from cfg settings, initial values
 * (shared/spec/quantizers.md section 8), and the update-time gradient clipping and projections
 * (section 7). Nothing is allocated; the only state is the caller's. Thread-safe: errors go to
 * the calling thread's message slot. */
#include "quant/quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "quant/qcore.h"

/* What each learnable value is; decides its bounds and its projection. */
typedef enum pkind { PK_NONE, PK_N, PK_D, PK_XMIN, PK_XMAX } pkind;

static const struct {
    const char *name;
    pkind p0, p1;
} methods[] = {
    [MPQ_QMETHOD_NONE] = {"none", PK_NONE, PK_NONE},
    [MPQ_QMETHOD_FP] = {"fp", PK_NONE, PK_NONE},
    [MPQ_QMETHOD_POW2] = {"pow2", PK_NONE, PK_NONE},
    [MPQ_QMETHOD_FP_D_B] = {"parametric_fp_d_b", PK_N, PK_D},
    [MPQ_QMETHOD_FP_B_XMAX] = {"parametric_fp_b_xmax", PK_N, PK_XMAX},
    [MPQ_QMETHOD_FP_D_XMAX] = {"parametric_fp_d_xmax", PK_D, PK_XMAX},
    [MPQ_QMETHOD_POW2_B_XMAX] = {"parametric_pow2_b_xmax", PK_N, PK_XMAX},
    [MPQ_QMETHOD_POW2_B_XMIN] = {"parametric_pow2_b_xmin", PK_N, PK_XMIN},
    [MPQ_QMETHOD_POW2_XMIN_XMAX] = {"parametric_pow2_xmin_xmax", PK_XMIN, PK_XMAX},
};
#define N_METHODS ((int)(sizeof methods / sizeof methods[0]))

static const char *const pkind_names[] = {[PK_NONE] = NULL, [PK_N] = "n", [PK_D] = "d",
                                          [PK_XMIN] = "xmin", [PK_XMAX] = "xmax"};

static int is_pow2_family(mpq_qmethod m)
{
    return m == MPQ_QMETHOD_POW2 || m == MPQ_QMETHOD_POW2_B_XMAX ||
           m == MPQ_QMETHOD_POW2_B_XMIN || m == MPQ_QMETHOD_POW2_XMIN_XMAX;
}

static int uses(mpq_qmethod m, pkind k) { return methods[m].p0 == k || methods[m].p1 == k; }

int mpq_qmethod_parse(const char *name, mpq_qmethod *out)
{
    static const char suffix[] = "_relu";
    char base[64];
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || strcmp(name, "none") == 0) {
        *out = MPQ_QMETHOD_NONE;
        return 0;
    }
    if (len >= sizeof base) return MPQ_FAIL(MPQ_E_CONFIG, "unknown quantization method '%s'", name);
    memcpy(base, name, len + 1);
    if (len > sizeof suffix - 1 && strcmp(base + len - (sizeof suffix - 1), suffix) == 0)
        base[len - (sizeof suffix - 1)] = '\0';
    for (int i = 1; i < N_METHODS; i++) {
        if (strcmp(base, methods[i].name) == 0) {
            *out = (mpq_qmethod)i;
            return 0;
        }
    }
    return MPQ_FAIL(MPQ_E_CONFIG,
                    "unknown quantization method '%s' (known: fp, pow2, parametric_fp_b_xmax, "
                    "parametric_fp_d_xmax, parametric_fp_d_b, parametric_pow2_b_xmax, "
                    "parametric_pow2_b_xmin, parametric_pow2_xmin_xmax, each optionally with "
                    "_relu; none)",
                    name);
}

const char *mpq_qmethod_name(mpq_qmethod m)
{
    return (int)m >= 0 && (int)m < N_METHODS ? methods[m].name : "invalid";
}

int mpq_qmethod_n_params(mpq_qmethod m) { return methods[m].p0 != PK_NONE ? 2 : 0; }

const char *mpq_qmethod_param_name(mpq_qmethod m, int i)
{
    if (i < 0 || i > 1) return NULL;
    return pkind_names[i == 0 ? methods[m].p0 : methods[m].p1];
}

/* ---- validation ---- */

static int check_range(int rc, const char *method, const char *what, float lo, float hi)
{
    if (!(isfinite(lo) && isfinite(hi) && lo > 0.0f && lo <= hi))
        return MPQ_FAIL(rc, "%s: %s bounds [%g, %g] must be positive, finite and ordered", method,
                        what, (double)lo, (double)hi);
    return 0;
}

static int is_int(float v) { return isfinite(v) && v == truncf(v); }

/* The bounds the method uses, the fixed methods' (n, delta | m), and with values != 0 also the
 * two learnable values (finite). Returns 0 or rc with a message. */
static int check_spec(mpq_qmethod m, const mpq_qspec *s, int values, int rc)
{
    const char *name = methods[m].name;
    int pow2 = is_pow2_family(m);
    int extra = (s->sign != 0) + (pow2 && s->with_zero != 0);
    /* Power-of-two bitwidth bounds only clip n, as in nnabla: any finite ordered pair (value bits
     * nb >= 8 make P1's xmin underflow to 0 and P2's xmax overflow, as they do there). The
     * uniform ones need 1 to 31 value bits (0 would divide by 2^0 - 1). */
    if (uses(m, PK_N) && pow2 &&
        !(isfinite(s->n_min) && isfinite(s->n_max) && s->n_min <= s->n_max))
        return MPQ_FAIL(rc, "%s: bitwidth bounds [%g, %g] must be finite and ordered", name,
                        (double)s->n_min, (double)s->n_max);
    if (uses(m, PK_N) && !pow2) {
        float lo = s->n_min - (float)extra, hi = s->n_max - (float)extra;
        if (!(s->n_min <= s->n_max && lo >= 1.0f && hi <= 31.0f))
            return MPQ_FAIL(rc,
                            "%s: bitwidth bounds [%g, %g] with sign %d leave %g to %g value "
                            "bits (allowed: 1 to 31)",
                            name, (double)s->n_min, (double)s->n_max, s->sign != 0, (double)lo,
                            (double)hi);
    }
    if (uses(m, PK_D)) MPQ_TRY(check_range(rc, name, "stepsize", s->d_min, s->d_max));
    if (uses(m, PK_XMIN)) MPQ_TRY(check_range(rc, name, "xmin", s->xmin_min, s->xmin_max));
    if (uses(m, PK_XMAX)) MPQ_TRY(check_range(rc, name, "xmax", s->xmax_min, s->xmax_max));
    if (m == MPQ_QMETHOD_FP) {
        float nb = s->p[0] - (float)(s->sign != 0);
        if (!is_int(s->p[0]) || nb < 1.0f || nb > 31.0f)
            return MPQ_FAIL(rc, "fp: bitwidth %g must be an integer leaving 1 to 31 value bits",
                            (double)s->p[0]);
        if (!(isfinite(s->p[1]) && s->p[1] > 0.0f))
            return MPQ_FAIL(rc, "fp: step size %g must be positive", (double)s->p[1]);
    }
    if (m == MPQ_QMETHOD_POW2) {
        float nb = s->p[0] - (float)extra;
        if (!is_int(s->p[0]) || nb < 1.0f || nb > 30.0f)
            return MPQ_FAIL(rc, "pow2: bitwidth %g must be an integer leaving 1 to 30 value bits",
                            (double)s->p[0]);
        if (!is_int(s->p[1]) || fabsf(s->p[1]) > 127.0f)
            return MPQ_FAIL(rc, "pow2: range exponent m = %g must be an integer in [-127, 127]",
                            (double)s->p[1]);
    }
    if (values && mpq_qmethod_n_params(m) == 2 && !(isfinite(s->p[0]) && isfinite(s->p[1])))
        return MPQ_FAIL(rc, "%s: values (%g, %g) must be finite", name, (double)s->p[0],
                        (double)s->p[1]);
    return 0;
}

/* ---- dispatch ---- */

static void forward(mpq_qmethod m, const mpq_qspec *s, const float *x, float *y, size_t len)
{
    switch (m) {
    case MPQ_QMETHOD_NONE:
        if (y != x) memmove(y, x, len * sizeof *y);
        break;
    case MPQ_QMETHOD_FP:
    case MPQ_QMETHOD_POW2:
        mpq_fixed_forward(m, s, x, y, len);
        break;
    case MPQ_QMETHOD_FP_D_B:
    case MPQ_QMETHOD_FP_B_XMAX:
    case MPQ_QMETHOD_FP_D_XMAX:
        mpq_uniform_forward(m, s, x, y, len);
        break;
    case MPQ_QMETHOD_POW2_B_XMAX:
    case MPQ_QMETHOD_POW2_B_XMIN:
    case MPQ_QMETHOD_POW2_XMIN_XMAX:
        mpq_pow2_forward(m, s, x, y, len);
        break;
    }
}

static void backward(mpq_qmethod m, const mpq_qspec *s, const float *x, const float *g, float *gx,
                     size_t len, float gp[2])
{
    gp[0] = gp[1] = 0.0f;
    switch (m) {
    case MPQ_QMETHOD_NONE:
        if (gx != g) memmove(gx, g, len * sizeof *gx);
        break;
    case MPQ_QMETHOD_FP:
    case MPQ_QMETHOD_POW2:
        mpq_fixed_backward(m, s, x, g, gx, len);
        break;
    case MPQ_QMETHOD_FP_D_B:
    case MPQ_QMETHOD_FP_B_XMAX:
    case MPQ_QMETHOD_FP_D_XMAX:
        mpq_uniform_backward(m, s, x, g, gx, len, gp);
        break;
    case MPQ_QMETHOD_POW2_B_XMAX:
    case MPQ_QMETHOD_POW2_B_XMIN:
    case MPQ_QMETHOD_POW2_XMIN_XMAX:
        mpq_pow2_backward(m, s, x, g, gx, len, gp);
        break;
    }
}

/* ---- public API (mpq.h) ---- */

static int public_spec(const mpq_qspec *s, mpq_qmethod *m)
{
    if (!s) return MPQ_FAIL(MPQ_E_ARG, "NULL quantizer spec");
    if (mpq_qmethod_parse(s->method, m) < 0) return MPQ_E_ARG;
    return check_spec(*m, s, 1, MPQ_E_ARG);
}

int mpq_quantize(const mpq_qspec *s, size_t len, const float *x, float *q)
{
    mpq_qmethod m;
    MPQ_TRY(public_spec(s, &m));
    if (len && (!x || !q)) return MPQ_FAIL(MPQ_E_ARG, "NULL input or output array");
    forward(m, s, x, q, len);
    return 0;
}

int mpq_quantize_backward(const mpq_qspec *s, size_t len, const float *x, const float *gq,
                          float *gx, float gp[2])
{
    mpq_qmethod m;
    float gp_local[2];
    MPQ_TRY(public_spec(s, &m));
    if (len && (!x || !gq || !gx)) return MPQ_FAIL(MPQ_E_ARG, "NULL input or gradient array");
    backward(m, s, x, gq, gx, len, gp ? gp : gp_local);
    return 0;
}

float mpq_qspec_bitwidth(const mpq_qspec *s)
{
    mpq_qmethod m;
    int rc = public_spec(s, &m);
    if (rc < 0) return (float)rc;
    return mpq_qbits(m, s, s->xmin_max, 0.0f, NULL);
}

const char *mpq_last_error(void) { return mpq_errmsg(); }

/* ---- quantizers of a model ---- */

int mpq_quant_setup(mpq_quant *q, const mpq_qsettings *st, int is_act, size_t count)
{
    mpq_qmethod m;
    mpq_qspec *s = &q->spec;
    const char *key = is_act ? "a_quantize" : "w_quantize";
    memset(q, 0, sizeof *q);
    if (mpq_qmethod_parse(st->method, &m) < 0) return mpq_err_push(MPQ_E_CONFIG, "%s", key);
    q->method = m;
    q->count = count;
    q->is_act = is_act;
    q->n_min = st->bitwidth_min;
    q->n_max = st->bitwidth_max;
    q->xmin_max_cfg = st->xmin_max;
    s->method = methods[m].name;
    s->sign = !is_act;
    s->with_zero = is_act && is_pow2_family(m);
    s->n_min = (float)st->bitwidth_min;
    s->n_max = (float)st->bitwidth_max;
    s->d_min = st->stepsize_min;
    s->d_max = st->stepsize_max;
    s->xmin_min = st->xmin_min;
    s->xmin_max = is_act ? st->xmax_max : st->xmin_max; /* the reference's activation quantizers */
    s->xmax_min = st->xmax_min;
    s->xmax_max = st->xmax_max;
    s->p[0] = (float)st->bitwidth;                     /* fixed methods until init_values */
    s->p[1] = m == MPQ_QMETHOD_FP ? st->stepsize : 0.0f;
    if (check_spec(m, s, 0, MPQ_E_CONFIG) < 0)
        return mpq_err_push(MPQ_E_CONFIG, "%s = %s (%s bounds)", key, st->method,
                            is_act ? "a_*" : "w_*");
    if (uses(m, PK_XMIN) && check_range(MPQ_E_CONFIG, methods[m].name, "xmin (cfg)",
                                        st->xmin_min, st->xmin_max) < 0)
        return mpq_err_push(MPQ_E_CONFIG, "%s = %s", key, st->method);
    return 0;
}

float mpq_find_delta(const float *w, size_t n, int bw)
{
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(w[i]);
        if (a > mx || isnan(a)) mx = a;
        if (isnan(mx)) break;
    }
    double r = (double)(mx + FLT_EPSILON) / (pow(2.0, bw - 1) - 1.0);
    return (float)pow(2.0, bw > 4 ? ceil(log2(r)) : floor(log2(r)));
}

static double clip_d(double v, double lo, double hi) { return fmin(fmax(v, lo), hi); }

void mpq_quant_init_values(mpq_quant *q, const mpq_qsettings *st, float delta, float *val)
{
    const double b = st->bitwidth;
    double xmax = (double)delta * (pow(2.0, q->is_act ? b : b - 1.0) - 1.0), xmin = 0.0;
    float v[2] = {0.0f, 0.0f};
    if (is_pow2_family(q->method)) {
        xmax = pow(2.0, nearbyint(log2(xmax))); /* NumPy round: half to even */
        xmin = xmax / pow(2.0, pow(2.0, b - 1.0) - 1.0);
        xmin = clip_d(xmin, (double)st->xmin_min + 1e-5, (double)st->xmin_max - 1e-5);
        xmax = clip_d(xmax, (double)st->xmax_min + 1e-5, (double)st->xmax_max - 1e-5);
    }
    switch (q->method) {
    case MPQ_QMETHOD_NONE:
        return;
    case MPQ_QMETHOD_FP:
        q->spec.p[0] = (float)b;
        q->spec.p[1] = delta;
        return;
    case MPQ_QMETHOD_POW2:
        q->spec.p[0] = (float)b;
        q->spec.p[1] = (float)nearbyint(log2(xmax));
        return;
    case MPQ_QMETHOD_FP_D_B:
        v[0] = (float)b, v[1] = delta;
        break;
    case MPQ_QMETHOD_FP_B_XMAX:
    case MPQ_QMETHOD_POW2_B_XMAX:
        v[0] = (float)b, v[1] = (float)xmax;
        break;
    case MPQ_QMETHOD_FP_D_XMAX:
        v[0] = delta, v[1] = (float)xmax;
        break;
    case MPQ_QMETHOD_POW2_B_XMIN:
        v[0] = (float)b, v[1] = (float)xmin;
        break;
    case MPQ_QMETHOD_POW2_XMIN_XMAX:
        v[0] = (float)xmin, v[1] = (float)xmax;
        break;
    }
    MPQ_ASSERT(q->p.n == 2, "quantizer values not registered (slice of %zu floats)", q->p.n);
    val[q->p.off] = v[0];
    val[q->p.off + 1] = v[1];
}

mpq_qspec mpq_quant_spec(const mpq_quant *q, const float *val)
{
    mpq_qspec s = q->spec;
    if (mpq_qmethod_n_params(q->method) == 2) {
        s.p[0] = val[q->p.off];
        s.p[1] = val[q->p.off + 1];
    }
    return s;
}

void mpq_quant_forward(const mpq_quant *q, const float *val, const float *x, float *y, size_t len)
{
    mpq_qspec s = mpq_quant_spec(q, val);
    forward(q->method, &s, x, y, len);
}

void mpq_quant_backward(const mpq_quant *q, const float *val, float *grad, const float *x,
                        const float *dy, float *dx, size_t len)
{
    mpq_qspec s = mpq_quant_spec(q, val);
    float gp[2];
    backward(q->method, &s, x, dy, dx, len, gp);
    if (mpq_qmethod_n_params(q->method) == 2) {
        grad[q->p.off] += gp[0];
        grad[q->p.off + 1] += gp[1];
    }
}

float mpq_quant_step(const mpq_quant *q, const float *val)
{
    mpq_qspec s = mpq_quant_spec(q, val);
    switch (q->method) {
    case MPQ_QMETHOD_FP: return s.p[1];
    case MPQ_QMETHOD_FP_D_B:
    case MPQ_QMETHOD_FP_B_XMAX:
    case MPQ_QMETHOD_FP_D_XMAX: return mpq_uniform_step(q->method, &s);
    case MPQ_QMETHOD_NONE:
    case MPQ_QMETHOD_POW2:
    case MPQ_QMETHOD_POW2_B_XMAX:
    case MPQ_QMETHOD_POW2_B_XMIN:
    case MPQ_QMETHOD_POW2_XMIN_XMAX: break;
    }
    return 0.0f;
}

float mpq_quant_bitwidth(const mpq_quant *q, const float *val)
{
    mpq_qspec s = mpq_quant_spec(q, val);
    return mpq_qbits(q->method, &s, q->xmin_max_cfg, 0.0f, NULL);
}

/* ---- update-time plumbing (train_resnet.py clip_quant_grads, clip_quant_vals) ---- */

void mpq_quant_clip_grads(const mpq_quant *q, const float *val, float *grad)
{
    if (q->method != MPQ_QMETHOD_FP_D_XMAX && q->method != MPQ_QMETHOD_POW2_XMIN_XMAX) return;
    const float lim = val[q->p.off]; /* raw d (resp. xmin) bounds both gradients */
    for (size_t i = 0; i < 2; i++) {
        float g = grad[q->p.off + i];
        g = g > -lim ? g : -lim; /* maximum2: a NaN gradient becomes -lim */
        grad[q->p.off + i] = g < lim ? g : lim;
    }
}

/* The cfg bound plus or minus 1e-5 in double, cast to float as minimum/maximum_scalar do. */
static float lo_bound(float b) { return (float)((double)b + 1e-5); }
static float hi_bound(float b) { return (float)((double)b - 1e-5); }

/* d (resp. xmin) must stay below xmax: d' = min(d, xmax - 1e-5), xmax' = max(d + 1e-5, xmax). */
static void couple_below_xmax(float *lo, float *xmax)
{
    float a = *xmax + -1e-5f, b = *lo + 1e-5f;
    float lo2 = *lo < a ? *lo : a, xmax2 = b > *xmax ? b : *xmax;
    *lo = lo2;
    *xmax = xmax2;
}

void mpq_quant_project(const mpq_quant *q, float *val)
{
    if (mpq_qmethod_n_params(q->method) != 2) return;
    const mpq_qspec *s = &q->spec;
    float *v = val + q->p.off;
    const int coupled = q->method == MPQ_QMETHOD_FP_D_XMAX ||
                        q->method == MPQ_QMETHOD_POW2_XMIN_XMAX;
    for (int i = 0; i < 2; i++) { /* creation order: p0, then p1 */
        switch (i == 0 ? methods[q->method].p0 : methods[q->method].p1) {
        case PK_N:
            v[i] = mpq_qclip(v[i], lo_bound(s->n_min), hi_bound(s->n_max));
            break;
        case PK_D:
            if (coupled) couple_below_xmax(&v[0], &v[1]);
            v[i] = mpq_qclip(v[i], lo_bound(s->d_min), hi_bound(s->d_max));
            break;
        case PK_XMIN:
            if (coupled) couple_below_xmax(&v[0], &v[1]);
            v[i] = mpq_qclip(v[i], lo_bound(s->xmin_min), hi_bound(q->xmin_max_cfg));
            break;
        case PK_XMAX:
            v[i] = mpq_qclip(v[i], lo_bound(s->xmax_min), hi_bound(s->xmax_max));
            break;
        case PK_NONE:
            break;
        }
    }
}

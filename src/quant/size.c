/* The memory-size model of the reference (shared/spec/quantizers.md section 6; train_resnet.py
 * network_size_weights / network_size_activations): each quantizer's inferred bitwidth n, kbytes
 * ((n * count) / 8) / 1024 per tensor, summed over weights and max- or sum-reduced over
 * activations, the penalties relu(kbytes - target)^2 and their gradients into the quantizer
 * parameters (ceil and round pass gradients as identity). Scalar work over a few dozen
 * quantizers: float32 in the reference's order, single-threaded, no allocation. */
#include "quant/size.h"

#include "quant/qcore.h"

/* n = max(ceil(v), bmin) with maximum_scalar's gate; *gate = whether the gradient passes. */
static float max_bmin(float v, float bmin, int *gate)
{
    float ce = ceilf(v);
    *gate = ce > bmin;
    return ce > bmin ? ce : bmin;
}

/* parametric_fp_d_xmax: n = max(ceil(log2(k + 1) [+ 1]), bmin), k = round(x_c / d_q). */
static float bits_d_xmax(const mpq_qspec *s, float dn, float gp[2])
{
    float dc = mpq_qclip(s->p[0], s->d_min, s->d_max), dq = mpq_q2(dc);
    float xc = mpq_qclip(s->p[1], s->xmax_min, s->xmax_max);
    float ra = mpq_qround(xc / dq), xr = ra * dq, k = xr / dq, u = k + 1.0f;
    float l = mpq_qlogf(u) * MPQ_QC;
    int gate;
    if (s->sign) l = l + 1.0f;
    float n = max_bmin(l, s->n_min, &gate);
    if (gp) {
        float g = gate ? dn : 0.0f;
        g = (g * MPQ_QC) / u;                             /* log2 backward */
        float g_xr = g / dq;                              /* k = x_r / d_q */
        float g_dq = g * ((-xr) / (dq * dq));
        float g_ra = g_xr * dq;                           /* x_r = ra * d_q */
        g_dq += g_xr * ra;
        float g_xc = g_ra / dq;                           /* ra = round(x_c / d_q) */
        g_dq += g_ra * ((-xc) / (dq * dq));
        gp[0] = mpq_qclip_passes(s->p[0], s->d_min, s->d_max) ? mpq_q2_grad(g_dq, dc, dq) : 0.0f;
        gp[1] = mpq_qclip_passes(s->p[1], s->xmax_min, s->xmax_max) ? g_xc : 0.0f;
    }
    return n;
}

/* parametric_pow2_xmin_xmax: n = max(ceil(log2(log2(x_q / x_n) + 1) + 1), bmin). */
static float bits_xmin_xmax(const mpq_qspec *s, float xmin_max, float dn, float gp[2])
{
    float nc = mpq_qclip(s->p[0], s->xmin_min, xmin_max), xn = mpq_q2(nc);
    float qc = mpq_qclip(s->p[1], s->xmax_min, s->xmax_max), xq = mpq_q2(qc);
    float rr = xq / xn, u = mpq_qlogf(rr) * MPQ_QC + 1.0f;
    int gate;
    float n = max_bmin(mpq_qlogf(u) * MPQ_QC + 1.0f, s->n_min, &gate);
    if (gp) {
        float g = gate ? dn : 0.0f;
        g = (((g * MPQ_QC) / u) * MPQ_QC) / rr;
        float g_xq = g / xn;                              /* rr = x_q / x_n: d/dx0 */
        float g_xn = g * ((-xq) / (xn * xn));             /* d/dx1 */
        gp[0] = mpq_qclip_passes(s->p[0], s->xmin_min, xmin_max) ? mpq_q2_grad(g_xn, nc, xn)
                                                                 : 0.0f;
        gp[1] = mpq_qclip_passes(s->p[1], s->xmax_min, s->xmax_max) ? mpq_q2_grad(g_xq, qc, xq)
                                                                    : 0.0f;
    }
    return n;
}

float mpq_qbits(mpq_qmethod m, const mpq_qspec *s, float xmin_max, float dn_in, float gp[2])
{
    switch (m) {
    case MPQ_QMETHOD_NONE:
        if (gp) gp[0] = gp[1] = 0.0f;
        return 32.0f;
    case MPQ_QMETHOD_FP:
    case MPQ_QMETHOD_POW2:
        if (gp) gp[0] = gp[1] = 0.0f;
        return s->p[0];
    case MPQ_QMETHOD_FP_D_B:
    case MPQ_QMETHOD_FP_B_XMAX:
    case MPQ_QMETHOD_POW2_B_XMAX:
    case MPQ_QMETHOD_POW2_B_XMIN:
        if (gp) {
            gp[0] = mpq_qclip_passes(s->p[0], s->n_min, s->n_max) ? dn_in : 0.0f;
            gp[1] = 0.0f;
        }
        return mpq_qround(mpq_qclip(s->p[0], s->n_min, s->n_max));
    case MPQ_QMETHOD_FP_D_XMAX:
        return bits_d_xmax(s, dn_in, gp);
    case MPQ_QMETHOD_POW2_XMIN_XMAX:
        return bits_xmin_xmax(s, xmin_max, dn_in, gp);
    }
    return 32.0f;
}

/* kbytes of one tensor: n * count / 8. / 1024. as three mul_scalars. */
static float kbytes(float n, size_t count)
{
    return ((n * (float)count) * 0.125f) * (1.0f / 1024.0f);
}

/* Adds dL/dkbytes of one tensor through its bitwidth into its quantizer's parameter gradients. */
static void add_tensor_grad(const mpq_quant *q, const float *val, float dkb, float *grad)
{
    float dn = ((dkb * (1.0f / 1024.0f)) * 0.125f) * (float)q->count, gp[2];
    if (mpq_qmethod_n_params(q->method) == 0) return;
    mpq_qspec s = mpq_quant_spec(q, val);
    mpq_qbits(q->method, &s, q->xmin_max_cfg, dn, gp);
    grad[q->p.off] += gp[0];
    grad[q->p.off + 1] += gp[1];
}

/* relu(kbytes - target)^2 and, through lambda * that, dL/dkbytes. */
static float penalty(float kb, float target, float lambda, float *dkb)
{
    float diff = kb + (-target), r = diff > 0.0f ? diff : 0.0f;
    *dkb = diff > 0.0f ? (lambda * 2.0f) * r : 0.0f;
    return r * r;
}

/* act_max_each: sum over the activation tensors of relu(kb_i - target)^2, each tensor's
 * gradient into its own quantizer. */
static float penalty_each(const mpq_quant *qs, int n_q, const float *val, const mpq_budget *b,
                          float *grad)
{
    float loss = 0.0f;
    for (int i = 0; i < n_q; i++) {
        if (!qs[i].is_act) continue;
        float dkb, kb = kbytes(mpq_quant_bitwidth(&qs[i], val), qs[i].count);
        loss += penalty(kb, b->target_a_kbytes, b->lambda3, &dkb);
        if (grad && dkb != 0.0f) add_tensor_grad(&qs[i], val, dkb, grad);
    }
    return loss;
}

void mpq_size_eval(const mpq_quant *qs, int n_q, const float *val, const mpq_budget *b,
                   float *grad, mpq_size_terms *out)
{
    mpq_size_terms t = {0.0f, 0.0f, 0.0f, 0.0f, -1};
    float amax = 0.0f, asum = 0.0f, dkw = 0.0f, dka = 0.0f;
    int first_w = 1, first_a = 1;
    for (int i = 0; i < n_q; i++) {
        float kb = kbytes(mpq_quant_bitwidth(&qs[i], val), qs[i].count);
        if (!qs[i].is_act) {
            t.kbytes_w = first_w ? kb : t.kbytes_w + kb;
            first_w = 0;
        } else {
            if (first_a || kb > amax) { /* F.max keeps the first maximum */
                amax = kb;
                t.argmax_a = i;
            }
            asum = first_a ? kb : asum + kb;
            first_a = 0;
        }
    }
    t.kbytes_a = b->act_sum ? asum : amax;
    if (b->target_w_kbytes > 0.0f)
        t.loss2 = penalty(t.kbytes_w, b->target_w_kbytes, b->lambda2, &dkw);
    if (b->target_a_kbytes > 0.0f && !b->act_sum && b->act_max_each)
        t.loss3 = penalty_each(qs, n_q, val, b, grad); /* dka stays 0 */
    else if (b->target_a_kbytes > 0.0f)
        t.loss3 = penalty(t.kbytes_a, b->target_a_kbytes, b->lambda3, &dka);
    if (grad) {
        for (int i = 0; i < n_q; i++) {
            if (!qs[i].is_act && dkw != 0.0f) add_tensor_grad(&qs[i], val, dkw, grad);
            if (qs[i].is_act && dka != 0.0f && (b->act_sum || i == t.argmax_a))
                add_tensor_grad(&qs[i], val, dka, grad);
        }
    }
    *out = t;
}

int mpq_size_within_budget(const mpq_size_terms *t, const mpq_budget *b)
{
    return (b->target_w_kbytes <= 0.0f || t->kbytes_w <= b->target_w_kbytes) &&
           (b->target_a_kbytes <= 0.0f || t->kbytes_a <= b->target_a_kbytes);
}

/* Tables, histories and the SVG bitwidth picture. Writes files only; owns nothing. */
#include "report.h"

#include <errno.h>
#include <string.h>

#include "core/err.h"
#include "core/path.h"
#include "outfile.h"

static const char *class_color(mpq_layer_class c)
{
    switch (c) {
    case MPQ_CLASS_CONV: return "#1f77b4";
    case MPQ_CLASS_DEPTHWISE: return "#2ca02c";
    case MPQ_CLASS_POINTWISE: return "#ff7f0e";
    case MPQ_CLASS_FC: return "#d62728";
    case MPQ_CLASS_BN:
    case MPQ_CLASS_ACT:
    case MPQ_CLASS_WQUANT:
    case MPQ_CLASS_OTHER: break;
    }
    return "#7f7f7f";
}

/* The layer class a quantizer is drawn with: its layer's, or for an activation, the class of
 * the layer that produced the quantized tensor. */
static mpq_layer_class quant_class(const mpq_model *m, int q)
{
    int node = m->qinfo[q].node;
    /* Walk back through BN / add / padding to the layer that produced the tensor. */
    for (int hops = 0; node > 0 && hops < 8; hops++) {
        const mpq_node *n = &m->nodes[node];
        if (n->kind == MPQ_NODE_CONV || n->kind == MPQ_NODE_DWCONV || n->kind == MPQ_NODE_FC)
            return n->cls;
        node = n->in[0];
    }
    return MPQ_CLASS_OTHER;
}

static double kbytes(float bits, size_t count) { return bits * (double)count / 8.0 / 1024.0; }

void mpq_report_table(FILE *f, const mpq_model *m, const mpq_budget *b)
{
    const float *v = m->params.val;
    double kw = 0.0, ka_max = 0.0, ka_sum = 0.0;
    fprintf(f, "%-52s %-26s %-24s %5s %10s %9s\n", "tensor", "method", "parameters", "bits",
            "elements", "KB");
    for (int i = 0; i < m->n_quants; i++) {
        const mpq_quant *q = &m->quants[i];
        char params[64] = "";
        float bits = mpq_quant_bitwidth(q, v);
        double kb = kbytes(bits, q->count);
        if (q->p.n == 2)
            snprintf(params, sizeof params, "%s=%.4g %s=%.4g", mpq_qmethod_param_name(q->method, 0),
                     v[q->p.off], mpq_qmethod_param_name(q->method, 1), v[q->p.off + 1]);
        else if (q->method != MPQ_QMETHOD_NONE)
            snprintf(params, sizeof params, "%.4g %.4g", q->spec.p[0], q->spec.p[1]);
        fprintf(f, "%-52s %-26s %-24s %5.0f %10zu %9.2f\n", m->qinfo[i].name,
                mpq_qmethod_name(q->method), params, bits, q->count, kb);
        if (q->is_act) {
            ka_sum += kb;
            if (kb > ka_max) ka_max = kb;
        } else {
            kw += kb;
        }
    }
    double ka = b && b->act_sum ? ka_sum : ka_max;
    fprintf(f, "weights: %.2f KB", kw);
    if (b && b->target_w_kbytes > 0) fprintf(f, " (budget %.2f KB)", b->target_w_kbytes);
    fprintf(f, "   activations (%s): %.2f KB", b && b->act_sum ? "sum" : "max", ka);
    if (b && b->target_a_kbytes > 0) fprintf(f, " (budget %.2f KB)", b->target_a_kbytes);
    fprintf(f, "\n");
}

/* The value a history file records for quantizer q, or NaN when it has none. */
static float history_value(const mpq_model *m, int q, char what)
{
    const mpq_quant *qu = &m->quants[q];
    if (what == 'n') return mpq_quant_bitwidth(qu, m->params.val);
    for (int k = 0; k < mpq_qmethod_n_params(qu->method); k++) {
        const char *name = mpq_qmethod_param_name(qu->method, k);
        if ((what == 'd' && !strcmp(name, "d")) || (what == 'x' && !strcmp(name, "xmax")) ||
            (what == 'm' && !strcmp(name, "xmin")))
            return m->params.val[qu->p.off + (size_t)k];
    }
    return __builtin_nanf("");
}

int mpq_report_histories(const char *dir, const mpq_model *m, long epoch)
{
    static const struct {
        const char *file;
        char what;
    } hist[] = {{"n", 'n'}, {"d", 'd'}, {"max", 'x'}, {"min", 'm'}};
    for (size_t h = 0; h < sizeof hist / sizeof hist[0]; h++)
        for (int act = 0; act < 2; act++) {
            char path[MPQ_PATH_MAX];
            snprintf(path, sizeof path, "%s/res_%s_%c.csv", dir, hist[h].file, act ? 'a' : 'w');
            FILE *f = fopen(path, epoch == 0 ? "w" : "a");
            if (!f) return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", path, strerror(errno));
            if (epoch == 0) {
                fprintf(f, "epoch");
                for (int i = 0; i < m->n_quants; i++)
                    if (m->quants[i].is_act == act) fprintf(f, ",%s", m->qinfo[i].name);
                fprintf(f, "\n");
            }
            fprintf(f, "%ld", epoch);
            for (int i = 0; i < m->n_quants; i++)
                if (m->quants[i].is_act == act) {
                    float v = history_value(m, i, hist[h].what);
                    if (v == v) fprintf(f, ",%.9g", v);
                    else fprintf(f, ",");
                }
            fprintf(f, "\n");
            MPQ_TRY(mpq_outfile_close(&f, NULL, path));
        }
    return MPQ_OK;
}

/* One panel of bars: the weight (is_act 0) or activation (1) quantizers, left to right. */
static void svg_panel(FILE *f, const mpq_model *m, int is_act, double y0, double height,
                      double x0, double width, int max_bits)
{
    int n = 0, k = 0;
    for (int i = 0; i < m->n_quants; i++)
        if (m->quants[i].is_act == is_act && strcmp(m->qinfo[i].name + strlen(m->qinfo[i].name) - 6,
                                                    "bquant"))
            n++;
    double bw = n ? width / n : width;
    fprintf(f, "<text x='%g' y='%g' font-size='14'>%s</text>\n", x0, y0 - 8,
            is_act ? "activations" : "weights");
    for (int b = 0; b <= max_bits; b += 2) {
        double y = y0 + height - height * b / max_bits;
        fprintf(f, "<line x1='%g' x2='%g' y1='%g' y2='%g' stroke='#ddd'/>", x0, x0 + width, y, y);
        fprintf(f, "<text x='%g' y='%g' font-size='10' text-anchor='end'>%d</text>\n", x0 - 4,
                y + 3, b);
    }
    for (int i = 0; i < m->n_quants; i++) {
        const char *name = m->qinfo[i].name;
        if (m->quants[i].is_act != is_act || !strcmp(name + strlen(name) - 6, "bquant")) continue;
        float bits = mpq_quant_bitwidth(&m->quants[i], m->params.val);
        double h = height * (bits > max_bits ? max_bits : bits) / max_bits;
        fprintf(f,
                "<rect x='%g' y='%g' width='%g' height='%g' fill='%s'><title>%s: %.0f bits"
                "</title></rect>\n",
                x0 + k * bw + 0.1 * bw, y0 + height - h, 0.8 * bw, h,
                class_color(quant_class(m, i)), name, bits);
        k++;
    }
    fprintf(f, "<line x1='%g' x2='%g' y1='%g' y2='%g' stroke='black'/>\n", x0, x0 + width,
            y0 + height, y0 + height);
}

int mpq_report_bitwidth_svg(const char *path, const mpq_model *m, const char *title)
{
    FILE *f = fopen(path, "w");
    if (!f) return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", path, strerror(errno));
    int max_bits = 2;
    for (int i = 0; i < m->n_quants; i++) {
        float b = mpq_quant_bitwidth(&m->quants[i], m->params.val);
        if (b > max_bits && b <= 32) max_bits = (int)b;
    }
    if (max_bits % 2) max_bits++;
    const double W = 900, H = 560;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%g' height='%g' "
               "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n",
            W, H);
    fprintf(f, "<text x='%g' y='22' font-size='16' text-anchor='middle'>%s</text>\n", W / 2,
            title ? title : "learned bitwidths");
    svg_panel(f, m, 0, 60, 180, 50, W - 70, max_bits);
    svg_panel(f, m, 1, 300, 180, 50, W - 70, max_bits);
    static const mpq_layer_class legend[] = {MPQ_CLASS_CONV, MPQ_CLASS_DEPTHWISE,
                                             MPQ_CLASS_POINTWISE, MPQ_CLASS_FC, MPQ_CLASS_OTHER};
    for (int i = 0; i < 5; i++) {
        double x = 50 + i * 150;
        fprintf(f, "<rect x='%g' y='%g' width='12' height='12' fill='%s'/>", x, H - 35,
                class_color(legend[i]));
        fprintf(f, "<text x='%g' y='%g' font-size='12'>%s</text>\n", x + 16, H - 25,
                legend[i] == MPQ_CLASS_OTHER ? "residual/input" : mpq_layer_class_name(legend[i]));
    }
    fprintf(f, "</svg>\n");
    return mpq_outfile_close(&f, NULL, path);
}

/* MobileNetV2 (Sandler et al. 2018), width 1.0: a 3x3 stem, 17 inverted-residual blocks
 * (1x1 expansion -> BN -> ReLU6 -> 3x3 depthwise -> BN -> ReLU6 -> 1x1 linear projection -> BN,
 * residual when the shape is kept), a 1x1 conv to 1280 channels, global pooling and fc. ReLU6
 * becomes the unsigned activation quantizer when activations are quantized. */
#include <stdio.h>

#include "core/err.h"
#include "models/models.h"

static int conv_bn(mpq_model *m, const char *scope, int x, int cout, int k, int stride, int act)
{
    x = mpq_g_bn(m, scope, mpq_g_conv(m, scope, x, cout, k, stride, k / 2, 0));
    return act ? mpq_g_act(m, scope, x, 1) : x;
}

static int inverted_residual(mpq_model *m, const char *scope, int in, int expand, int cout,
                             int stride)
{
    char s[MPQ_NAME_MAX];
    int cin = in >= 0 ? m->nodes[in].c : 0, x = in;
    if (expand != 1) {
        snprintf(s, sizeof s, "%s/expand", scope);
        x = conv_bn(m, s, x, cin * expand, 1, 1, 1);
    }
    snprintf(s, sizeof s, "%s/depthwise", scope);
    x = mpq_g_act(m, s, mpq_g_bn(m, s, mpq_g_dwconv(m, s, x, 3, stride, 1)), 1);
    snprintf(s, sizeof s, "%s/project", scope);
    x = conv_bn(m, s, x, cout, 1, 1, 0);
    return stride == 1 && cin == cout ? mpq_g_add(m, x, in) : x;
}

int mpq_mobilenetv2_build(mpq_model *m, int scale_layer)
{
    /* (expansion t, channels c, repeats n, stride s) of the paper's Table 2 */
    static const int cfg[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
    int small = m->in_h < 64 || m->in_w < 64;
    char scope[MPQ_NAME_MAX];
    int x = conv_bn(m, "conv1", mpq_g_input(m), 32, 3, small ? 1 : 2, 1);
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < cfg[i][2]; j++) {
            int stride = j == 0 ? cfg[i][3] : 1;
            if (small && i == 1) stride = 1;
            snprintf(scope, sizeof scope, "stage%d/block%d", i + 1, j + 1);
            x = inverted_residual(m, scope, x, cfg[i][0], cfg[i][1], stride);
        }
    x = conv_bn(m, "conv_last", x, 1280, 1, 1, 1);
    x = mpq_g_fc(m, "fc", mpq_g_gap(m, x), m->num_classes);
    if (scale_layer) mpq_g_scale(m, "fc", x);
    return m->err;
}

/* ResNets: the reference's CIFAR family (model_resnet.py: conv1 -> 3 stages of basic blocks of
 * 16/32/64 channels -> global average pooling -> fc) and ImageNet ResNet-18, sharing the basic
 * block. Scopes follow the reference's parameter names. Builds into a caller-owned model. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "models/models.h"

/* Shortcut of a block: identity, 1x1 average pooling with stride plus zero channel padding
 * (type "" / "a"), or 1x1 conv + BN (type "c" always, "b" where the channels change). */
static int shortcut(mpq_model *m, const char *scope, int in, int cout, int stride,
                    const char *type)
{
    int cin = in >= 0 ? m->nodes[in].c : 0;
    int use_conv = !strcmp(type, "c") || (!strcmp(type, "b") && cin != cout);
    char s[MPQ_NAME_MAX];
    if (use_conv) {
        snprintf(s, sizeof s, "%s/shortcut_conv", scope);
        return mpq_g_bn(m, s, mpq_g_conv(m, s, in, cout, 1, stride, 0, 0));
    }
    int x = in;
    if (stride != 1) x = mpq_g_avgpool(m, x, 1, stride, 0);
    if (cin != cout) x = mpq_g_chanpad(m, x, cout);
    return x;
}

/* conv3x3 -> BN -> act -> conv3x3 -> BN, + shortcut, -> act (reference `basicblock`). */
static int basicblock(mpq_model *m, const char *scope, int in, int cout, int stride,
                      const char *type)
{
    char s1[MPQ_NAME_MAX], s2[MPQ_NAME_MAX], ss[MPQ_NAME_MAX];
    snprintf(s1, sizeof s1, "%s/basicblock1", scope);
    snprintf(s2, sizeof s2, "%s/basicblock2", scope);
    snprintf(ss, sizeof ss, "%s/basicblock_s", scope);
    int h = mpq_g_act(m, s1, mpq_g_bn(m, s1, mpq_g_conv(m, s1, in, cout, 3, stride, 1, 0)), 0);
    h = mpq_g_bn(m, s2, mpq_g_conv(m, s2, h, cout, 3, 1, 1, 0));
    int sc = shortcut(m, ss, in, cout, stride, type);
    return mpq_g_act(m, scope, mpq_g_add(m, h, sc), 0);
}

/* Stages of basic blocks; returns the last node. */
static int stages(mpq_model *m, int x, int n_stages, const int *counts, const int *channels,
                  const int *strides, const char *type)
{
    char scope[MPQ_NAME_MAX];
    for (int i = 0; i < n_stages; i++)
        for (int j = 0; j < counts[i]; j++) {
            snprintf(scope, sizeof scope, "res%d/layer%d", i + 1, j + 1);
            x = basicblock(m, scope, x, channels[i], j == 0 ? strides[i] : 1, type);
        }
    return x;
}

static int head(mpq_model *m, int x, int scale_layer)
{
    x = mpq_g_fc(m, "fc", mpq_g_gap(m, x), m->num_classes);
    if (scale_layer) x = mpq_g_scale(m, "fc", x);
    return x;
}

int mpq_resnet_cifar_build(mpq_model *m, int depth, const char *shortcut_type, int scale_layer)
{
    static const int channels[3] = {16, 32, 64}, strides[3] = {1, 2, 2};
    int per_stage;
    switch (depth) {
    case 20: per_stage = 3; break;
    case 32: per_stage = 5; break;
    case 44: per_stage = 7; break;
    case 56: per_stage = 9; break;
    case 110: per_stage = 18; break;
    default:
        return MPQ_FAIL(MPQ_E_CONFIG, "CIFAR ResNet depth %d: use 20, 32, 44, 56 or 110", depth);
    }
    const char *type = shortcut_type ? shortcut_type : "";
    if (*type && strcmp(type, "a") && strcmp(type, "b") && strcmp(type, "c"))
        return MPQ_FAIL(MPQ_E_CONFIG, "shortcut_type '%s': use '', a, b or c", type);
    int counts[3] = {per_stage, per_stage, per_stage};
    int x = mpq_g_input(m);
    x = mpq_g_act(m, "conv1", mpq_g_bn(m, "conv1", mpq_g_conv(m, "conv1", x, 16, 3, 1, 1, 0)), 0);
    x = stages(m, x, 3, counts, channels, strides, type);
    head(m, x, scale_layer);
    return m->err;
}

int mpq_resnet18_build(mpq_model *m, int scale_layer)
{
    static const int counts[4] = {2, 2, 2, 2}, channels[4] = {64, 128, 256, 512};
    static const int strides[4] = {1, 2, 2, 2};
    int small = m->in_h < 64 || m->in_w < 64;
    int x = mpq_g_input(m);
    if (small) {
        x = mpq_g_conv(m, "conv1", x, 64, 3, 1, 1, 0);
    } else {
        x = mpq_g_conv(m, "conv1", x, 64, 7, 2, 3, 0);
    }
    x = mpq_g_act(m, "conv1", mpq_g_bn(m, "conv1", x), 0);
    if (!small) x = mpq_g_maxpool(m, x, 3, 2, 1);
    x = stages(m, x, 4, counts, channels, strides, "b");
    head(m, x, scale_layer);
    return m->err;
}

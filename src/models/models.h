/* The model families: the reference's CIFAR ResNets (20/32/44/56/110, shortcut types a/b/c),
 * ImageNet ResNet-18 and MobileNetV2 (width 1.0), for any input size and channel count. */
#ifndef MPQ_MODELS_MODELS_H
#define MPQ_MODELS_MODELS_H

#include "models/graph.h"

typedef struct mpq_model_desc {
    const char *name;      /* resnet20 ... resnet110, resnet18, mobilenetv2 */
    const char *shortcut;  /* CIFAR ResNets: "", "a", "b", "c" */
    int scale_layer;       /* a learnable scalar multiplies the logits */
} mpq_model_desc;

/* Builds the named model into m (initialised with mpq_model_init) and allocates its buffers.
 * Returns 0 or MPQ_E_CONFIG for an unknown name (the message lists the known ones). */
int mpq_model_build(mpq_model *m, const mpq_model_desc *d);

/* The families (called by mpq_model_build; exposed for tests). depth: 20, 32, 44, 56, 110. */
int mpq_resnet_cifar_build(mpq_model *m, int depth, const char *shortcut, int scale_layer);
/* ImageNet ResNet-18; inputs smaller than 64 pixels get a CIFAR-style stem (3x3 stride 1, no
 * max pooling) so the feature maps do not vanish. */
int mpq_resnet18_build(mpq_model *m, int scale_layer);
/* MobileNetV2 (width 1.0, inverted residuals, ReLU6); inputs smaller than 64 pixels use stride 1
 * in the stem and the first strided stage. */
int mpq_mobilenetv2_build(mpq_model *m, int scale_layer);

#endif

/* Model construction by name. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "models/models.h"

int mpq_model_build(mpq_model *m, const mpq_model_desc *d)
{
    static const int cifar[] = {20, 32, 44, 56, 110};
    int rc = MPQ_E_CONFIG, known = 0;
    for (size_t i = 0; i < sizeof cifar / sizeof cifar[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "resnet%d", cifar[i]);
        if (!strcmp(d->name, name)) {
            rc = mpq_resnet_cifar_build(m, cifar[i], d->shortcut, d->scale_layer);
            known = 1;
        }
    }
    if (!strcmp(d->name, "resnet18")) {
        rc = mpq_resnet18_build(m, d->scale_layer);
        known = 1;
    } else if (!strcmp(d->name, "mobilenetv2")) {
        rc = mpq_mobilenetv2_build(m, d->scale_layer);
        known = 1;
    }
    if (!known)
        return MPQ_FAIL(MPQ_E_CONFIG,
                        "unknown model '%s': use resnet20, resnet32, resnet44, resnet56, "
                        "resnet110, resnet18 or mobilenetv2",
                        d->name);
    if (rc < 0) return rc;
    return mpq_model_alloc(m);
}

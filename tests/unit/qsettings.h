/* Shared by the quantizer test programs: cfg settings of one side at the reference's defaults
 * (shared/spec/config.md: w_* for weights, a_* for activations, bitwidth 4, stepsize 2^-3). */
#ifndef MPQ_TESTS_QSETTINGS_H
#define MPQ_TESTS_QSETTINGS_H

#include <stdio.h>

#include "quant/quant.h"

static inline mpq_qsettings mpq_test_qsettings(const char *method, int is_act)
{
    mpq_qsettings st = {.stepsize = 0.125f, .stepsize_min = 0x1p-8f, .stepsize_max = 1.0f,
                        .xmax_min = 0x1p-8f, .bitwidth = 4, .bitwidth_max = 8};
    snprintf(st.method, sizeof st.method, "%s", method);
    st.xmin_min = is_act ? 0x1p-14f : 0x1p-16f;
    st.xmin_max = is_act ? 255.0f : 127.0f;
    st.xmax_max = is_act ? 255.0f : 127.0f;
    st.bitwidth_min = is_act ? 1 : 2;
    return st;
}

#endif

/* libFuzzer target: the .cfg parser (src/config.c through libinih) on arbitrary bytes: the NUL
 * check, parsing experiment "A" and DEFAULT, validation, the experiment list, and `--set` of the
 * first value. Any input must give 0 or MPQ_E_CONFIG, never a crash or a sanitizer report. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/err.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mpq_cfg c;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    mpq_log_set_quiet(1);
    if (mpq_cfg_check_bytes(text, size, "fuzz.cfg") == 0) {
        if (mpq_cfg_parse_text(text, "fuzz.cfg", "A", &c) == 0) mpq_cfg_validate(&c);
        if (mpq_cfg_parse_text(text, "fuzz.cfg", "DEFAULT", &c) == 0) {
            mpq_cfg_validate(&c);
            char *eq = strchr(text, '=');
            if (eq) mpq_cfg_set(&c, "w_bitwidth", eq + 1, "--set");
        }
        free(mpq_cfg_list_experiments(text));
    }
    free(text);
    return 0;
}

/* libFuzzer target: checked JPEG decoding (io/jpeg.c) from memory, to a 16x16 square with a
 * 4-Mpixel limit (headers claiming more are refused before any allocation). */
#include <stddef.h>
#include <stdint.h>
#include <turbojpeg.h>

#include "core/log.h"
#include "io/jpeg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tjhandle tj;
    uint8_t out[16 * 16 * 3];
    if (!tj) tj = tjInitDecompress();
    mpq_log_set_quiet(1);
    if (tj) mpq_jpeg_decode_square(tj, data, size, "fuzz.jpg", 16, 1L << 22, out);
    return 0;
}

/* The stop record of a run (train/stop.h): one small text file, written atomically by rank 0. */
#include "train/stop.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/path.h"

int mpq_stop_record_write(const char *dir, const char *signal_name, long step, const char *ckpt)
{
    char path[MPQ_PATH_MAX], tmp[MPQ_PATH_MAX + 8];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, MPQ_STOP_RECORD) >= sizeof path)
        return MPQ_FAIL(MPQ_E_IO, "stop record: path too long in '%s'", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", tmp, strerror(errno));
    int bad = fprintf(f, "signal %s\nstep %ld\ncheckpoint %s\n", signal_name, step, ckpt) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", path, strerror(e));
    }
    return MPQ_OK;
}

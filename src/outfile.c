/* Checked flush and close of output streams (see outfile.h). */
#include "outfile.h"

#include <errno.h>
#include <string.h>

#include "core/err.h"

static int fail(const char *dir, const char *name, int err)
{
    return MPQ_FAIL(MPQ_E_IO, "cannot write '%s%s%s': %s ---> HINT: is the disk full?",
                    dir ? dir : "", dir ? "/" : "", name, err ? strerror(err) : "write error");
}

int mpq_outfile_flush(FILE *f, const char *dir, const char *name)
{
    if (!f) return MPQ_OK;
    errno = 0;
    if (fflush(f) != 0 || ferror(f)) return fail(dir, name, errno);
    return MPQ_OK;
}

int mpq_outfile_close(FILE **f, const char *dir, const char *name)
{
    if (!*f) return MPQ_OK;
    errno = 0;
    int bad = fflush(*f) != 0 || ferror(*f);
    int err = errno;
    if (fclose(*f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    *f = NULL;
    return bad ? fail(dir, name, err) : MPQ_OK;
}

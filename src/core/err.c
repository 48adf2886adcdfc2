/* Error recording (thread-local message slot) and the abort hook. The hook and the log rank are
 * the only process-wide mutable state: both are set once at start-up by mpi/comm.c. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static _Thread_local char errmsg[2048];
static mpq_abort_hook abort_hook;

int mpq_fail(int rc, const char *file, int line, const char *fmt, ...)
{
    const char *base = strrchr(file, '/');
    int k = snprintf(errmsg, sizeof errmsg, "%s:%d: ", base ? base + 1 : file, line);
    va_list ap;
    va_start(ap, fmt);
    if (k > 0 && (size_t)k < sizeof errmsg) vsnprintf(errmsg + k, sizeof errmsg - (size_t)k, fmt, ap);
    va_end(ap);
    return rc;
}

int mpq_err_push(int rc, const char *fmt, ...)
{
    char old[sizeof errmsg], pre[512];
    va_list ap;
    memcpy(old, errmsg, sizeof old);
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    snprintf(errmsg, sizeof errmsg, "%s: %s", pre, old);
    return rc;
}

const char *mpq_errmsg(void) { return errmsg; }

void mpq_err_clear(void) { errmsg[0] = '\0'; }

void mpq_set_abort_hook(mpq_abort_hook hook) { abort_hook = hook; }

_Noreturn void mpq_abort(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[rank %d] %s:%d: fatal: %s\n", mpq_log_rank(), file, line, msg);
    fflush(stderr);
    if (abort_hook) abort_hook(1);
    abort();
}

/* Logging to stdout (info, rank 0) and stderr (warnings/errors, every rank, prefixed). */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

static int log_rank;
static int log_quiet;

void mpq_log_set_rank(int rank) { log_rank = rank; }
int mpq_log_rank(void) { return log_rank; }
void mpq_log_set_quiet(int quiet) { log_quiet = quiet; }

void mpq_log_info(const char *fmt, ...)
{
    va_list ap;
    if (log_rank != 0 || log_quiet) return;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void log_prefixed(const char *what, const char *fmt, va_list ap)
{
    fprintf(stderr, "mpq[rank %d] %s: ", log_rank, what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void mpq_log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_prefixed("warning", fmt, ap);
    va_end(ap);
}

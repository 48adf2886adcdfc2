/* Errors: recoverable failures return a negative MPQ_E_* code and record "file:line: message"
 * in a thread-local slot (mpq_errmsg); broken invariants abort through a replaceable hook
 * (mpi/ points it at MPI_Abort so no rank is left hanging). Only main() exits. */
#ifndef MPQ_CORE_ERR_H
#define MPQ_CORE_ERR_H

typedef enum mpq_status {
    MPQ_OK = 0,
    MPQ_E_NOMEM = -1,
    MPQ_E_IO = -2,
    MPQ_E_FORMAT = -3,
    MPQ_E_CONFIG = -4,
    MPQ_E_MPI = -5,
    MPQ_E_ARG = -6,
    MPQ_E_NUMERIC = -8, /* NaN/Inf loss, diverged state */
    MPQ_E_INTERRUPTED = -9,
} mpq_status;

/* Records "file:line: message" as the current thread's error and returns rc.
 * A later failure replaces the message; mpq_err_push() prepends context instead. */
int mpq_fail(int rc, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds context in front of the recorded message ("loading 'x.h5': <old message>"); returns rc. */
int mpq_err_push(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The current thread's last message ("" if none). Valid until the next failure. */
const char *mpq_errmsg(void);
void mpq_err_clear(void);

#define MPQ_FAIL(rc, ...) mpq_fail((rc), __FILE__, __LINE__, __VA_ARGS__)
#define MPQ_TRY(expr)                                                                              \
    do {                                                                                           \
        int mpq_rc_ = (expr);                                                                      \
        if (mpq_rc_ < 0) return mpq_rc_;                                                           \
    } while (0)

/* Prints "[rank r] file:line: message" to stderr and calls the abort hook (default: abort()). */
_Noreturn void mpq_abort(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
typedef void (*mpq_abort_hook)(int code);
/* Installs the hook mpq_abort calls after printing (must not return). NULL restores abort(). */
void mpq_set_abort_hook(mpq_abort_hook hook);
#define MPQ_ASSERT(c, ...)                                                                         \
    do {                                                                                           \
        if (!(c)) mpq_abort(__FILE__, __LINE__, __VA_ARGS__);                                      \
    } while (0)

#endif

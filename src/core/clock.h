/* Seconds on a POSIX clock, as a double: CLOCK_MONOTONIC for elapsed time, CLOCK_PROCESS_CPUTIME_ID
 * or CLOCK_THREAD_CPUTIME_ID for CPU time. The one reading of a clock for progress lines, reader
 * waits, profiles and benchmarks (MPI code uses MPI_Wtime). Header only; no state. */
#ifndef MPQ_CORE_CLOCK_H
#define MPQ_CORE_CLOCK_H

#include <time.h>

static inline double mpq_clock_s(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif

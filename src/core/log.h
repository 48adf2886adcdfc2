/* Logging: info lines on rank 0 only, warnings and errors on any rank with a rank prefix.
 * The rank is set once by mpi/comm.c (0 in single-process tools and tests). */
#ifndef MPQ_CORE_LOG_H
#define MPQ_CORE_LOG_H

void mpq_log_set_rank(int rank);
int mpq_log_rank(void);
/* Silences info lines (tests). */
void mpq_log_set_quiet(int quiet);

void mpq_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mpq_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

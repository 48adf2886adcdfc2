/* Checked writes of the run's text outputs (csv files, config.cfg, histories, the bitwidth
 * picture): a stream's sticky error flag and the result of flushing or closing it become one
 * MPQ_E_IO naming the file, so a full disk or a vanished directory stops the run with a message
 * instead of silently losing rows. No state. */
#ifndef MPQ_OUTFILE_H
#define MPQ_OUTFILE_H

#include <stdio.h>

/* Flushes f (NULL: nothing to do) and checks that no write to it failed since it was opened.
 * Returns 0 or MPQ_E_IO "cannot write '<dir>/<name>': <reason> (disk full?)". */
int mpq_outfile_flush(FILE *f, const char *dir, const char *name);
/* The same, then closes f (always); *f becomes NULL. */
int mpq_outfile_close(FILE **f, const char *dir, const char *name);

#endif

/* The one size of a path buffer in mpq (file and directory names in the configuration, the run
 * directory, checkpoints, shards, logs): Linux's PATH_MAX, the terminating NUL included. A path
 * that does not fit is an error naming it, never silently cut. Header only. */
#ifndef MPQ_CORE_PATH_H
#define MPQ_CORE_PATH_H

#define MPQ_PATH_MAX 4096

#endif

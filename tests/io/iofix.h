/* Fixtures shared by the io test programs: deterministic sample pixels and small splits written
 * through the shard writer. Files go under a test's mkdtemp directory. */
#ifndef MPQ_TESTS_IO_IOFIX_H
#define MPQ_TESTS_IO_IOFIX_H

#include <stddef.h>
#include <stdint.h>

/* The pixels of sample i (h, w, c): pixel 0 channel 0 is i % 256, the rest a hash of (i, p). */
void iofix_pixels(long i, int h, int w, int c, uint8_t *out);
/* Label of sample i. */
int iofix_label(long i, int num_classes);
/* Writes dir (created) as n samples in n_shards contiguous shards shard-NNNNN.h5, with mean 100
 * and std 50 per channel. Returns 0 or MPQ_E_*. */
int iofix_make_split(const char *dir, long n, int h, int w, int c, int n_shards, int num_classes);
/* Copies the first `bytes` bytes of src to dst (all when bytes < 0). Returns 0 or -1. */
int iofix_copy_file(const char *src, const char *dst, long bytes);
/* Writes text to path. Returns 0 or -1. */
int iofix_write_text(const char *path, const char *text);

#endif

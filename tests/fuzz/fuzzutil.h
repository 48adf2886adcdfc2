/* What the libFuzzer targets share (tests/fuzz/fuzz_*.c, built by jobs/fuzz.sh): a per-process
 * scratch directory, writing the input bytes to a file there (the loaders take paths), MPI for
 * the parallel-HDF5 loaders, and the tiny model the checkpoint and export seeds were made from. */
#ifndef MPQ_TESTS_FUZZ_FUZZUTIL_H
#define MPQ_TESTS_FUZZ_FUZZUTIL_H

#include <stddef.h>
#include <stdint.h>

struct mpq_comm;
struct mpq_model;

/* The scratch directory (made on first use, removed at exit). */
const char *fuzz_dir(void);
/* fuzz_dir()/name, in a static buffer per slot (0..3). */
const char *fuzz_path(int slot, const char *name);
/* Writes bytes to path; aborts on failure (a broken harness, not a finding). */
void fuzz_write(const char *path, const uint8_t *data, size_t size);
/* MPI (one rank, started once) for the checkpoint and export loaders; quiet logs. */
struct mpq_comm *fuzz_comm(void);
/* A model of 4x4x1 inputs: conv 3x3 (4) + BN + act + global pool + fc (2), with quantized weights
 * (parametric_fp_d_xmax; float weights when quantized = 0) and activations
 * (parametric_fp_d_xmax_relu); the caller frees it. */
void fuzz_tiny_model(struct mpq_model *m, int quantized);

#endif

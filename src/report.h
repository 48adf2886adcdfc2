/* What a user sees of the learned quantizers: the per-tensor table (layer, method, parameters,
 * inferred bitwidth, elements, KB) with totals against the budgets, the per-epoch parameter
 * histories (res_n_w.csv, res_d_w.csv, res_max_w.csv, res_min_w.csv and the _a twins, like the
 * reference's), and the bitwidth picture (SVG bars per layer for weights and activations,
 * coloured by layer kind, like the paper's figure). Rank 0 calls these; they only write files. */
#ifndef MPQ_REPORT_H
#define MPQ_REPORT_H

#include <stdio.h>

#include "models/graph.h"

/* Prints the table and the totals. */
void mpq_report_table(FILE *f, const mpq_model *m, const mpq_budget *b);
/* Appends one row per history file in dir (creating them with a header at epoch 0). */
int mpq_report_histories(const char *dir, const mpq_model *m, long epoch);
/* Writes the bitwidth bars. Returns 0 or MPQ_E_IO naming the path. */
int mpq_report_bitwidth_svg(const char *path, const mpq_model *m, const char *title);

#endif

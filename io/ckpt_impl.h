/* What io/export.c shares with io/ckpt.c (internal to io/): the root attributes, the quantizer
 * table, the history and the fixed quantizers' values, in the checkpoint's layout. Collective,
 * with io/h5.h's lock held, like io/h5par.h. */
#ifndef MPQ_IO_CKPT_IMPL_H
#define MPQ_IO_CKPT_IMPL_H

#include "io/ckpt.h"
#include "io/h5par.h"

/* Root attributes (mpq_format = format, kind, and the fields of in). */
int mpq_ckpt_write_root(mpq_pf *p, const mpq_ckpt_info *in, const char *format, const char *kind);
/* /quantizers/<name of quantizer i>: method, is_act, elements, bitwidth, kbytes, step, params,
 * param_names. */
int mpq_ckpt_write_quantizer(mpq_pf *p, const mpq_model_view *m, int i);
/* /history/results from in (rank 0's rows). */
int mpq_ckpt_write_history(mpq_pf *p, const mpq_ckpt_info *in);
/* The fixed quantizers' (n, delta | m) of m from /quantizers (and the activation nodes' copies). */
int mpq_ckpt_read_fixed_specs(mpq_pf *p, const mpq_model_view *m);

#endif

/* The named-slice registry: grows an info array while a model is built, then allocates the flat
 * buffers once. Owns info and every buffer; mpq_params_free releases them. Not thread-safe. */
#include "core/params.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/err.h"
#include "core/grow.h"

void mpq_params_init(mpq_params *p) { memset(p, 0, sizeof *p); }

/* Buffers of at least MPQ_HUGE_MIN bytes (the arena, the scratch, the flat buffers of large models)
 * are 2 MB-aligned and asked for transparent huge pages (where the kernel gives them on request:
 * THP "madvise" or "always"), so that the passes that stream them miss the TLB 512 times less
 * often. Measured on MobileNetV2, batch 32, the quantized training step (three interleaved
 * pairs, Zen 4): one thread 30.5-30.6 -> 31.1-31.8 images/s, two threads 55.3-55.7 ->
 * 55.8-56.6. */
enum { MPQ_HUGE_PAGE = 2 << 20, MPQ_HUGE_MIN = 2 * MPQ_HUGE_PAGE };

float *mpq_alloc_floats(size_t n)
{
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
    float *f;
    if (bytes >= MPQ_HUGE_MIN) {
        bytes = (bytes + MPQ_HUGE_PAGE - 1) & ~((size_t)MPQ_HUGE_PAGE - 1);
        f = aligned_alloc(MPQ_HUGE_PAGE, bytes);
#ifdef MADV_HUGEPAGE
        if (f) (void)madvise(f, bytes, MADV_HUGEPAGE); /* a hint: without it, plain pages */
#endif
    } else {
        f = aligned_alloc(64, bytes);
    }
    if (f) memset(f, 0, bytes);
    return f;
}

int mpq_params_add(mpq_params *p, const char *name, mpq_pkind kind, int ndim, const int *shape,
                   mpq_slice *out)
{
    size_t n = 1;
    if (p->val) return MPQ_FAIL(MPQ_E_ARG, "tensor '%s' added after allocation", name);
    if (ndim < 0 || ndim > MPQ_MAX_DIMS)
        return MPQ_FAIL(MPQ_E_ARG, "tensor '%s': %d dimensions (at most %d)", name, ndim,
                        MPQ_MAX_DIMS);
    if (strlen(name) >= MPQ_NAME_MAX)
        return MPQ_FAIL(MPQ_E_ARG, "tensor name too long: '%s'", name);
    if (mpq_params_find(p, name) >= 0)
        return MPQ_FAIL(MPQ_E_ARG, "tensor '%s' registered twice", name);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) return MPQ_FAIL(MPQ_E_ARG, "tensor '%s': empty dimension %d", name, i);
        n *= (size_t)shape[i];
    }
    if (mpq_grow((void **)&p->info, &p->cap_info, (size_t)p->n_info + 1, sizeof *p->info) < 0)
        return mpq_err_push(MPQ_E_NOMEM, "registering '%s'", name);
    mpq_param_info *t = &p->info[p->n_info++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->kind = kind;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->s.off = p->n_floats;
    t->s.n = n;
    p->n_floats += n;
    if (out) *out = t->s;
    return MPQ_OK;
}

int mpq_params_alloc(mpq_params *p, int with_grad)
{
    p->val = mpq_alloc_floats(p->n_floats);
    if (!p->val) goto nomem;
    if (with_grad) {
        p->grad = mpq_alloc_floats(p->n_floats);
        p->opt[0] = mpq_alloc_floats(p->n_floats);
        p->opt[1] = mpq_alloc_floats(p->n_floats);
        if (!p->grad || !p->opt[0] || !p->opt[1]) goto nomem;
    }
    return MPQ_OK;
nomem:
    return MPQ_FAIL(MPQ_E_NOMEM, "cannot allocate %zu parameters", p->n_floats);
}

void mpq_params_free(mpq_params *p)
{
    if (!p) return;
    free(p->info);
    free(p->val);
    free(p->grad);
    free(p->opt[0]);
    free(p->opt[1]);
    memset(p, 0, sizeof *p);
}

int mpq_params_find(const mpq_params *p, const char *name)
{
    for (int i = 0; i < p->n_info; i++)
        if (strcmp(p->info[i].name, name) == 0) return i;
    return -1;
}

/* Growable arrays: the one rule by which every malloc'ed array of mpq grows (node lists,
 * parameter registries, histories, directory listings, label and file lists, read buffers).
 * The room doubles, from MPQ_GROW_MIN elements, until it holds what is needed; sizes are
 * overflow-checked (core/checked_size.h). No state. */
#ifndef MPQ_CORE_GROW_H
#define MPQ_CORE_GROW_H

#include <stddef.h>
#include <stdint.h>

#define MPQ_GROW_MIN 16

/* Makes room for need elements of elem bytes in the malloc'ed (or NULL) array *p whose room is
 * *cap elements: nothing when *cap >= need; else the room doubles (from MPQ_GROW_MIN) until it
 * holds need, but stops at limit when limit >= need (a buffer that never needs more than limit).
 * On failure *p and *cap are unchanged and the array stays valid. Returns 0 or MPQ_E_NOMEM (the
 * message gives the element count and size; callers add what the array is with mpq_err_push). */
int mpq_grow_to(void **p, size_t *cap, size_t need, size_t limit, size_t elem);

/* mpq_grow_to without a limit. */
static inline int mpq_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    return mpq_grow_to(p, cap, need, SIZE_MAX, elem);
}

#endif

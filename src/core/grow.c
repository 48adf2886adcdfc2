/* Growable arrays (grow.h): the doubling rule and its overflow checks. */
#include "core/grow.h"

#include <stdlib.h>

#include "core/checked_size.h"
#include "core/err.h"

int mpq_grow_to(void **p, size_t *cap, size_t need, size_t limit, size_t elem)
{
    size_t room = *cap ? *cap : MPQ_GROW_MIN, bytes;
    void *q;
    if (need <= *cap) return MPQ_OK;
    while (room < need)
        room = room > SIZE_MAX / 2 ? need : 2 * room;
    if (limit >= need && room > limit) room = limit;
    MPQ_ASSERT(elem > 0, "mpq_grow: elements of 0 bytes");
    if (mpq_size_mul(&bytes, room, elem) < 0) room = need; /* doubling overshot: just enough */
    if (mpq_size_mul(&bytes, room, elem) < 0)
        return MPQ_FAIL(MPQ_E_NOMEM, "an array of %zu elements of %zu bytes does not fit in memory",
                        need, elem);
    if (!(q = realloc(*p, bytes)))
        return MPQ_FAIL(MPQ_E_NOMEM, "out of memory growing an array to %zu elements of %zu bytes",
                        room, elem);
    *p = q;
    *cap = room;
    return MPQ_OK;
}

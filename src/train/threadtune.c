/* The thread-count tuner (threadtune.h): probes, switches and backs off on measured step times. */
#include "train/threadtune.h"

#include <limits.h>
#include <string.h>

void mpq_threadtune_init(mpq_threadtune *t, int max, int enabled)
{
    memset(t, 0, sizeof *t);
    t->max = max < 1 ? 1 : max;
    t->cur = t->max;
    t->interval = MPQ_THREADTUNE_MIN_INTERVAL;
    /* the warm-up step, then RECENT steps to compare the first probe with */
    t->next_probe = enabled && t->max > 1 ? 1 + MPQ_THREADTUNE_RECENT : LONG_MAX;
}

int mpq_threadtune_next(mpq_threadtune *t)
{
    t->probe = 0;
    if (t->steps < t->next_probe) return t->cur;
    if (t->cur == t->max)
        t->probe = t->cur - 1;
    else if (t->cur == 1)
        t->probe = t->cur + 1;
    else {
        t->probe = t->up_next ? t->cur + 1 : t->cur - 1;
        t->up_next = !t->up_next;
    }
    return t->probe;
}

/* Median of the recent times at cur (0 when none). */
static double recent_median(const mpq_threadtune *t)
{
    double v[MPQ_THREADTUNE_RECENT];
    const int n = t->n_recent;
    memcpy(v, t->recent, sizeof v);
    for (int i = 1; i < n; i++) /* insertion sort of at most RECENT values */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double s = v[j];
            v[j] = v[j - 1];
            v[j - 1] = s;
        }
    return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void push_recent(mpq_threadtune *t, double seconds)
{
    if (t->n_recent == MPQ_THREADTUNE_RECENT) {
        memmove(t->recent, t->recent + 1, sizeof t->recent - sizeof t->recent[0]);
        t->n_recent--;
    }
    t->recent[t->n_recent++] = seconds;
}

void mpq_threadtune_record(mpq_threadtune *t, double seconds)
{
    const long step = t->steps++;
    const double base = recent_median(t);
    if (step == 0) return; /* warm-up */
    if (t->probe) {
        if (base > 0.0 && seconds < base * (1.0 - MPQ_THREADTUNE_MARGIN)) {
            t->cur = t->probe;
            t->switches++;
            t->n_recent = 0;
            push_recent(t, seconds);
            t->interval = MPQ_THREADTUNE_MIN_INTERVAL;
        } else if (t->interval < MPQ_THREADTUNE_MAX_INTERVAL) {
            t->interval *= 2;
        }
        t->next_probe = t->steps + t->interval;
        t->probe = 0;
        return;
    }
    if (t->next_probe != LONG_MAX && t->n_recent == MPQ_THREADTUNE_RECENT &&
        seconds > base * MPQ_THREADTUNE_SLOWDOWN) {
        /* probe once most of the recent steps are under the new conditions */
        const long soon = t->steps + MPQ_THREADTUNE_RECENT / 2;
        t->interval = MPQ_THREADTUNE_MIN_INTERVAL;
        if (t->next_probe > soon) t->next_probe = soon;
    }
    push_recent(t, seconds);
}

/* Thread counts that follow the cores a rank actually gets. Another process busy on one of the
 * rank's cores makes every OpenMP/BLIS region wait for the thread that shares that core, and a
 * step on all threads can then run slower than on fewer (on 2 cores: below a third of its quiet
 * rate, where one thread alone keeps more than half). The tuner compares step times: every
 * `interval` steps it runs one probe step at one thread fewer (or more, when below the bound) and
 * switches when the probe beat the median of the latest steps by MPQ_THREADTUNE_MARGIN; a step
 * MPQ_THREADTUNE_SLOWDOWN times slower than that median brings the next probe forward (to when
 * most of the latest steps ran under the new conditions). The interval doubles (up to
 * MPQ_THREADTUNE_MAX_INTERVAL) while the count holds, so a quiet machine pays about one probe in
 * 64 steps. Pure decisions on the times given: the caller applies the counts (the kernels give
 * the same bits for every thread count, so results do not change). */
#ifndef MPQ_TRAIN_THREADTUNE_H
#define MPQ_TRAIN_THREADTUNE_H

#define MPQ_THREADTUNE_RECENT 3        /* steps whose median is the current count's time */
#define MPQ_THREADTUNE_MIN_INTERVAL 4  /* steps between probes after a change */
#define MPQ_THREADTUNE_MAX_INTERVAL 64 /* ... at most, while the count holds */
#define MPQ_THREADTUNE_MARGIN 0.10     /* a probe must be this much faster to switch */
#define MPQ_THREADTUNE_SLOWDOWN 1.5    /* a step this much slower probes at once */

typedef struct mpq_threadtune {
    int max;         /* the rank's thread count (its binding or `threads`): never more */
    int cur;         /* the count outside probes */
    int probe;       /* the count of the step in progress when it is a probe, else 0 */
    int up_next;     /* between 1 and max: probe upwards next (alternates) */
    long steps;      /* steps recorded */
    long next_probe; /* the step (index among recorded ones) that probes */
    int interval;
    double recent[MPQ_THREADTUNE_RECENT]; /* seconds of the latest steps at cur */
    int n_recent;
    int switches; /* changes of cur so far */
} mpq_threadtune;

/* Starts at max threads; enabled = 0 (or max = 1) keeps max for good. */
void mpq_threadtune_init(mpq_threadtune *t, int max, int enabled);
/* The thread count for the next step. */
int mpq_threadtune_next(mpq_threadtune *t);
/* Records the compute seconds of the step run with the count that next returned (the first
 * step, a warm-up, is not compared). */
void mpq_threadtune_record(mpq_threadtune *t, double seconds);

#endif

/* A measured profile of one training step on one rank, the input of the performance model
 * (perf/model.h): forward, backward and update seconds at one local batch and thread count, and
 * the backward timeline: when (seconds after backward starts) each run of the flat gradient
 * buffer became final, as the model's ready callback reports it. Recorded by `mpq bench
 * --timeline FILE` (mpq_timeline_*), written and read as a small text file (mpq_profile_*).
 * Owns its arrays; single-threaded. */
#ifndef MPQ_PERF_PROFILE_H
#define MPQ_PERF_PROFILE_H

#include <stddef.h>

typedef struct mpq_profile {
    char model[32];
    int image, batch, threads; /* input height = width, local batch, threads of the rank */
    size_t params_floats;      /* the flat gradient buffer: everything allreduced */
    size_t state_floats;       /* BN running statistics: averaged over ranks every step */
    double forward_s, backward_s, update_s;
    int n_ready;       /* ready events of one backward, in the order backward reports them */
    size_t *ready_off; /* lowest offset whose gradient is final after event j (decreasing) */
    double *ready_s;   /* seconds after backward started (increasing) */
    size_t cap_ready_off, cap_ready_s; /* the room of each (core/grow.h) */
} mpq_profile;

/* Writes p to path ("key value" lines, then one "ready OFF SECONDS" line per event).
 * Returns 0 or MPQ_E_IO. */
int mpq_profile_write(const mpq_profile *p, const char *path);
/* Reads a file written by mpq_profile_write into out (free with mpq_profile_free). Errors name
 * the file and line. Returns 0, MPQ_E_IO, MPQ_E_FORMAT or MPQ_E_NOMEM. */
int mpq_profile_read(const char *path, mpq_profile *out);
void mpq_profile_free(mpq_profile *p);

/* The median of v[0..n) (n >= 1); sorts v in place. */
double mpq_median(double *v, int n);

/* Records ready events of several backward passes and reduces them to medians. */
typedef struct mpq_timeline {
    int max_events, max_steps;
    int step, n;  /* current step; events of the current step so far */
    int n_events; /* events per step (of the first recorded step) */
    double t0;    /* backward start of the current step */
    size_t *off;  /* [max_events]: offsets of the first recorded step */
    double *t;    /* [max_steps * max_events] */
} mpq_timeline;

/* Room for max_steps backward passes of at most max_events ready calls. Returns 0 or
 * MPQ_E_NOMEM (free with mpq_timeline_free either way). */
int mpq_timeline_init(mpq_timeline *tl, int max_events, int max_steps);
void mpq_timeline_free(mpq_timeline *tl);
/* Marks the start of a recorded backward pass (at most max_steps of them). */
void mpq_timeline_begin(mpq_timeline *tl);
/* An mpq_ready_fn (models/graph.h): ctx is the mpq_timeline; records (off, now - start). */
void mpq_timeline_ready(void *ctx, size_t off);
/* Marks the end of the recorded pass. */
void mpq_timeline_end(mpq_timeline *tl);
/* Fills p->n_ready, p->ready_off and p->ready_s (medians over the recorded passes; malloc'ed,
 * freed by mpq_profile_free). Returns 0, MPQ_E_NOMEM, or MPQ_E_ARG if no pass was recorded or
 * the passes reported different offsets. */
int mpq_timeline_to_profile(const mpq_timeline *tl, mpq_profile *p);

#endif

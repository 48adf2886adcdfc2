/* A measured step profile and the backward timeline recorder (see profile.h). The file format is
 * "key value" lines and "ready OFF SECONDS" lines; '#' starts a comment line. */
#include "perf/profile.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/grow.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mpq_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int mpq_profile_write(const mpq_profile *p, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "# mpq step profile: one rank, medians of timed steps, seconds; ready OFF T: the\n"
               "# gradient from float OFF to the end of the buffer is final T s into backward\n");
    fprintf(f, "model %s\nimage %d\nbatch %d\nthreads %d\nparams_floats %zu\nstate_floats %zu\n",
            p->model, p->image, p->batch, p->threads, p->params_floats, p->state_floats);
    fprintf(f, "forward_s %.9g\nbackward_s %.9g\nupdate_s %.9g\n", p->forward_s, p->backward_s,
            p->update_s);
    for (int j = 0; j < p->n_ready; j++)
        fprintf(f, "ready %zu %.9g\n", p->ready_off[j], p->ready_s[j]);
    if (fclose(f) != 0) return MPQ_FAIL(MPQ_E_IO, "cannot write '%s': %s", path, strerror(errno));
    return MPQ_OK;
}

void mpq_profile_free(mpq_profile *p)
{
    if (!p) return;
    free(p->ready_off);
    free(p->ready_s);
    p->ready_off = NULL;
    p->ready_s = NULL;
    p->n_ready = 0;
    p->cap_ready_off = p->cap_ready_s = 0;
}

/* Appends one ready event, growing the arrays. */
static int push_ready(mpq_profile *p, size_t off, double t)
{
    const size_t need = (size_t)p->n_ready + 1;
    if (mpq_grow((void **)&p->ready_off, &p->cap_ready_off, need, sizeof *p->ready_off) < 0 ||
        mpq_grow((void **)&p->ready_s, &p->cap_ready_s, need, sizeof *p->ready_s) < 0)
        return mpq_err_push(MPQ_E_NOMEM, "the ready events of the profile");
    p->ready_off[p->n_ready] = off;
    p->ready_s[p->n_ready++] = t;
    return MPQ_OK;
}

/* One "key value" line into p; returns 0, 1 (unknown key) or -1 (bad value). */
static int parse_line(mpq_profile *p, const char *key, const char *rest)
{
    enum { INT, SIZE, SECONDS };
    static const struct {
        const char *key;
        int type;
        size_t off;
    } keys[] = {
        {"image", INT, offsetof(mpq_profile, image)},
        {"batch", INT, offsetof(mpq_profile, batch)},
        {"threads", INT, offsetof(mpq_profile, threads)},
        {"params_floats", SIZE, offsetof(mpq_profile, params_floats)},
        {"state_floats", SIZE, offsetof(mpq_profile, state_floats)},
        {"forward_s", SECONDS, offsetof(mpq_profile, forward_s)},
        {"backward_s", SECONDS, offsetof(mpq_profile, backward_s)},
        {"update_s", SECONDS, offsetof(mpq_profile, update_s)},
    };
    char extra[2];
    if (!strcmp(key, "model")) return sscanf(rest, "%31s %1s", p->model, extra) == 1 ? 0 : -1;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        if (strcmp(key, keys[k].key)) continue;
        void *field = (char *)p + keys[k].off;
        switch (keys[k].type) {
        case INT:
            return sscanf(rest, "%d %1s", (int *)field, extra) == 1 && *(int *)field > 0 ? 0 : -1;
        case SIZE:
            return sscanf(rest, "%zu %1s", (size_t *)field, extra) == 1 ? 0 : -1;
        default:
            return sscanf(rest, "%lf %1s", (double *)field, extra) == 1 && *(double *)field >= 0.0
                       ? 0
                       : -1;
        }
    }
    return 1;
}

int mpq_profile_read(const char *path, mpq_profile *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f)
        return MPQ_FAIL(MPQ_E_IO,
                        "cannot open profile '%s': %s ---> HINT: write one with `mpq "
                        "bench --model M --batch N --timeline FILE`",
                        path, strerror(errno));
    char line[512], key[32], extra[2];
    int rc = MPQ_OK, lineno = 0;
    while (rc == MPQ_OK && fgets(line, sizeof line, f)) {
        lineno++;
        int used = 0;
        if (line[0] == '#' || sscanf(line, "%31s%n", key, &used) != 1) continue;
        const char *rest = line + used;
        if (!strcmp(key, "ready")) {
            size_t off;
            double t;
            if (sscanf(rest, "%zu %lf %1s", &off, &t, extra) != 2 || !(t >= 0.0))
                rc = MPQ_FAIL(MPQ_E_FORMAT, "%s:%d: expected 'ready OFFSET SECONDS'", path, lineno);
            else
                rc = push_ready(out, off, t);
            continue;
        }
        int r = parse_line(out, key, rest);
        if (r < 0) rc = MPQ_FAIL(MPQ_E_FORMAT, "%s:%d: bad value for '%s'", path, lineno, key);
        if (r > 0) rc = MPQ_FAIL(MPQ_E_FORMAT, "%s:%d: unknown key '%s'", path, lineno, key);
    }
    fclose(f);
    if (rc == MPQ_OK && (!out->model[0] || !out->batch || !out->threads || !out->params_floats ||
                         !(out->backward_s > 0.0) || !out->n_ready))
        rc = MPQ_FAIL(MPQ_E_FORMAT,
                      "%s: incomplete profile (needs model, batch, threads, "
                      "params_floats, backward_s > 0 and ready lines)",
                      path);
    for (int j = 1; rc == MPQ_OK && j < out->n_ready; j++)
        if (out->ready_off[j] > out->ready_off[j - 1] || out->ready_s[j] < out->ready_s[j - 1])
            rc = MPQ_FAIL(MPQ_E_FORMAT,
                          "%s: ready event %d goes backwards (offsets must "
                          "decrease and times increase)",
                          path, j);
    if (rc != MPQ_OK) mpq_profile_free(out);
    return rc;
}

int mpq_timeline_init(mpq_timeline *tl, int max_events, int max_steps)
{
    memset(tl, 0, sizeof *tl);
    tl->max_events = max_events;
    tl->max_steps = max_steps;
    tl->n_events = -1;
    tl->off = calloc((size_t)max_events, sizeof *tl->off);
    tl->t = calloc((size_t)max_events * (size_t)max_steps, sizeof *tl->t);
    if (!tl->off || !tl->t) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory for the timeline");
    return MPQ_OK;
}

void mpq_timeline_free(mpq_timeline *tl)
{
    free(tl->off);
    free(tl->t);
    tl->off = NULL;
    tl->t = NULL;
}

void mpq_timeline_begin(mpq_timeline *tl)
{
    tl->n = 0;
    tl->t0 = mpq_clock_s(CLOCK_MONOTONIC);
}

void mpq_timeline_ready(void *ctx, size_t off)
{
    mpq_timeline *tl = ctx;
    double t = mpq_clock_s(CLOCK_MONOTONIC) - tl->t0;
    if (tl->step >= tl->max_steps || tl->n >= tl->max_events) return;
    if (tl->step == 0)
        tl->off[tl->n] = off;
    else if (tl->off[tl->n] != off)
        tl->n_events = -2; /* passes disagree: reported later */
    tl->t[(size_t)tl->step * (size_t)tl->max_events + (size_t)tl->n++] = t;
}

void mpq_timeline_end(mpq_timeline *tl)
{
    if (tl->step >= tl->max_steps) return;
    if (tl->step == 0)
        tl->n_events = tl->n;
    else if (tl->n != tl->n_events && tl->n_events != -2)
        tl->n_events = -2;
    tl->step++;
}

int mpq_timeline_to_profile(const mpq_timeline *tl, mpq_profile *p)
{
    if (tl->step == 0 || tl->n_events <= 0)
        return MPQ_FAIL(MPQ_E_ARG, tl->n_events == -2 ? "timeline: backward passes reported "
                                                        "different ready offsets"
                                                      : "timeline: no ready events recorded");
    double *v = malloc((size_t)tl->step * sizeof *v);
    if (!v) return MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    mpq_profile_free(p);
    int rc = MPQ_OK;
    for (int j = 0; rc == MPQ_OK && j < tl->n_events; j++) {
        for (int k = 0; k < tl->step; k++)
            v[k] = tl->t[(size_t)k * (size_t)tl->max_events + j];
        double t = mpq_median(v, tl->step);
        if (j > 0 && t < p->ready_s[j - 1]) t = p->ready_s[j - 1]; /* medians stay ordered */
        rc = push_ready(p, tl->off[j], t);
    }
    free(v);
    return rc;
}

/* The strict command-line parser (args.h). */
#include "core/args.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int mpq_args_usage_error(const mpq_argspec *spec, const char *message)
{
    if (mpq_log_rank() == 0) fprintf(stderr, "%s: %s\n%s", spec->verb, message, spec->usage);
    return 2;
}

static int parse_number(const mpq_argspec *spec, const mpq_opt *o, const char *v)
{
    char *end, msg[320];
    long lo = o->lo, hi = o->hi;
    if (lo == 0 && hi == 0) hi = o->kind == MPQ_OPT_INT ? INT_MAX : LONG_MAX;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        snprintf(msg, sizeof msg, "--%s wants an integer from %ld to %ld, not '%s'", o->name, lo,
                 hi, v);
        return mpq_args_usage_error(spec, msg);
    }
    if (o->kind == MPQ_OPT_INT)
        *(int *)o->dst = (int)x;
    else
        *(long *)o->dst = x;
    return 0;
}

/* Stores the value(s) of option o found at argv[*i]; advances *i past them. */
static int take_value(const mpq_argspec *spec, const mpq_opt *o, const char *eq, int argc,
                      char **argv, int *i)
{
    char msg[320];
    const char *v = eq;
    int needed = o->kind == MPQ_OPT_PAIR ? 2 : 1;
    if (eq && needed == 2) {
        snprintf(msg, sizeof msg, "--%s takes two values: --%s A B", o->name, o->name);
        return mpq_args_usage_error(spec, msg);
    }
    if (!eq) {
        if (*i + needed >= argc) {
            snprintf(msg, sizeof msg, "%s needs %s", argv[*i],
                     needed == 2 ? "two values" : "a value");
            return mpq_args_usage_error(spec, msg);
        }
        v = argv[++*i];
    }
    switch (o->kind) {
    case MPQ_OPT_STR:
        *(const char **)o->dst = v;
        return 0;
    case MPQ_OPT_INT:
    case MPQ_OPT_LONG:
        return parse_number(spec, o, v);
    case MPQ_OPT_LIST: {
        mpq_strlist *l = o->dst;
        if (l->n == l->cap) {
            snprintf(msg, sizeof msg, "too many --%s options (at most %d)", o->name, l->cap);
            return mpq_args_usage_error(spec, msg);
        }
        l->v[l->n++] = v;
        return 0;
    }
    case MPQ_OPT_PAIR:
        ((const char **)o->dst)[0] = v;
        ((const char **)o->dst)[1] = argv[++*i];
        return 0;
    case MPQ_OPT_FLAG:
        break;
    }
    return 2;
}

static const mpq_opt *find_option(const mpq_argspec *spec, const char *a, const char **eq)
{
    const char *name = a[1] == '-' ? a + 2 : a + 1;
    const char *e = strchr(name, '=');
    size_t len = e ? (size_t)(e - name) : strlen(name);
    *eq = e ? e + 1 : NULL;
    for (int k = 0; k < spec->n_opts; k++) {
        const mpq_opt *o = &spec->opts[k];
        if (strlen(o->name) == len && !strncmp(o->name, name, len) && (a[1] == '-') == (len > 1))
            return o;
    }
    return NULL;
}

int mpq_args_parse(const mpq_argspec *spec, int argc, char **argv, int *n_pos)
{
    char msg[320];
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (mpq_log_rank() == 0) fputs(spec->usage, stdout);
            return 1;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (*n_pos >= spec->max_pos) {
                snprintf(msg, sizeof msg, "unexpected argument '%s'", a);
                return mpq_args_usage_error(spec, msg);
            }
            spec->pos[(*n_pos)++] = a;
            continue;
        }
        const mpq_opt *o = find_option(spec, a, &eq);
        if (!o) {
            snprintf(msg, sizeof msg, "unknown option '%s'", a);
            return mpq_args_usage_error(spec, msg);
        }
        if (o->kind == MPQ_OPT_FLAG) {
            if (eq) {
                snprintf(msg, sizeof msg, "option '--%s' takes no value", o->name);
                return mpq_args_usage_error(spec, msg);
            }
            *(int *)o->dst = 1;
        } else if (take_value(spec, o, eq, argc, argv, &i) != 0) {
            return 2;
        }
    }
    return 0;
}

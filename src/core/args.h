/* The one strict command-line parser of every verb (`mpq train`, `eval`, `export`, `inspect`,
 * `bench`, `prep ...`): options "--name value", "--name=value" or "-x value", flags without a
 * value, repeatable options, options that take two values, and positional arguments. Numbers are
 * parsed whole (no trailing characters) and range-checked; anything unknown or malformed is a
 * usage error that names the argument. Messages and usage go to stderr (stdout for --help) on
 * rank 0 only. */
#ifndef MPQ_CORE_ARGS_H
#define MPQ_CORE_ARGS_H

typedef enum mpq_optkind {
    MPQ_OPT_STR,  /* const char ** */
    MPQ_OPT_INT,  /* int *, within [lo, hi] */
    MPQ_OPT_LONG, /* long *, within [lo, hi] */
    MPQ_OPT_FLAG, /* int *, set to 1 */
    MPQ_OPT_LIST, /* mpq_strlist *: every occurrence appended */
    MPQ_OPT_PAIR, /* const char *[2]: two values ("--cfg FILE EXPERIMENT") */
} mpq_optkind;

typedef struct mpq_strlist {
    const char **v; /* caller's array of cap entries */
    int n, cap;
} mpq_strlist;

typedef struct mpq_opt {
    const char *name; /* without the dashes; a one-letter name is written -x */
    mpq_optkind kind;
    void *dst;
    long lo, hi; /* numbers only; lo == hi == 0 means [0, INT_MAX or LONG_MAX] */
} mpq_opt;

/* What a verb is called in messages ("mpq bench"), its usage text and its options. Positional
 * arguments go to pos (up to max_pos; more is a usage error); *n_pos counts them. */
typedef struct mpq_argspec {
    const char *verb, *usage;
    const mpq_opt *opts;
    int n_opts;
    const char **pos;
    int max_pos;
} mpq_argspec;

/* Parses argv[1..argc). Returns 0, 1 for --help/-h (usage printed on stdout), or 2 for a usage
 * error (message and usage printed on stderr). */
int mpq_args_parse(const mpq_argspec *spec, int argc, char **argv, int *n_pos);
/* Prints "<verb>: <message>" and the usage on stderr (rank 0); returns 2. */
int mpq_args_usage_error(const mpq_argspec *spec, const char *message);

#endif

/* Directories: the one listing of mpq (shards of a split, checkpoints of a run, class folders and
 * images of an image folder): the names of a directory's entries that a filter keeps, sorted by
 * strcmp, all or nothing (an error frees what was read; never a partial list). */
#ifndef MPQ_CORE_DIR_H
#define MPQ_CORE_DIR_H

/* Decides whether entry `name` of directory dir is listed (1) or not (0). */
typedef int (*mpq_dir_filter)(const char *dir, const char *name, void *ctx);

typedef struct mpq_dir_list {
    char **names; /* malloc'ed entry names (not paths), sorted ascending by strcmp */
    int n;
} mpq_dir_list;

/* Lists dir (entries starting with '.' never). A missing directory is an empty list when
 * missing_ok, else MPQ_E_IO naming it. Returns 0, MPQ_E_IO or MPQ_E_NOMEM (out is then empty);
 * free with mpq_dir_list_free either way. */
int mpq_dir_list_read(const char *dir, mpq_dir_filter keep, void *ctx, int missing_ok,
                      mpq_dir_list *out);
void mpq_dir_list_free(mpq_dir_list *l);

/* Creates directory path and its missing parents (mkdir -p) with mode (before the umask).
 * Returns 0, MPQ_E_ARG for an empty or over-long path, or MPQ_E_IO naming the directory that
 * could not be made. */
int mpq_dir_make(const char *path, unsigned mode);

#endif

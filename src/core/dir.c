/* The one directory listing and mkdir -p (dir.h). */
#include "core/dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/grow.h"
#include "core/path.h"

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void mpq_dir_list_free(mpq_dir_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

int mpq_dir_list_read(const char *dir, mpq_dir_filter keep, void *ctx, int missing_ok,
                      mpq_dir_list *out)
{
    size_t cap = 0;
    int rc = MPQ_OK;
    struct dirent *e;
    DIR *d = opendir(dir);
    out->names = NULL;
    out->n = 0;
    if (!d) {
        if (missing_ok && errno == ENOENT) return MPQ_OK;
        return MPQ_FAIL(MPQ_E_IO, "cannot read directory '%s': %s", dir, strerror(errno));
    }
    while (rc == MPQ_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.' || (keep && !keep(dir, e->d_name, ctx))) continue;
        if (mpq_grow((void **)&out->names, &cap, (size_t)out->n + 1, sizeof *out->names) < 0) {
            rc = mpq_err_push(MPQ_E_NOMEM, "listing '%s'", dir);
            break;
        }
        if (!(out->names[out->n] = strdup(e->d_name)))
            rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory listing '%s'", dir);
        else
            out->n++;
    }
    closedir(d);
    if (rc < 0) {
        mpq_dir_list_free(out);
        return rc;
    }
    if (out->n > 1) qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_name);
    return MPQ_OK;
}

int mpq_dir_make(const char *path, unsigned mode)
{
    char buf[MPQ_PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) return MPQ_FAIL(MPQ_E_ARG, "bad directory '%s'", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char keep = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return MPQ_FAIL(MPQ_E_IO, "cannot create directory '%s': %s", buf, strerror(errno));
        buf[i] = keep;
    }
    return MPQ_OK;
}

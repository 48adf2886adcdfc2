/* Agreement of the ranks on the configuration, the data and the model before training (see
 * run_agree.h): a fixed list of named 64-bit facts, rank 0's broadcast to all. */
#include "run_agree.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"

enum { MAX_FACTS = 24 };

typedef struct fact {
    char name[96]; /* what it is, for the message */
    int rc;        /* the code a difference fails with */
    int hex;       /* a hash: printed in hex */
    uint64_t v;
} fact;

typedef struct facts {
    fact f[MAX_FACTS];
    int n;
} facts;

static void add(facts *l, int rc, uint64_t v, const char *fmt, const char *what, const char *spec)
{
    if (l->n == MAX_FACTS) return;
    fact *f = &l->f[l->n++];
    snprintf(f->name, sizeof f->name, fmt, what, spec);
    f->rc = rc;
    f->hex = strstr(fmt, "hash") || strstr(fmt, "fingerprint");
    f->v = v;
}

static void add_source(facts *l, const char *what, const char *spec, const mpq_source *s)
{
    const mpq_data_info *in = &s->info;
    add(l, MPQ_E_FORMAT, (uint64_t)in->n_samples, "the sample count of %s '%s'", what, spec);
    add(l, MPQ_E_FORMAT, (uint64_t)s->steps_per_epoch, "the steps per epoch of %s '%s'", what,
        spec);
    add(l, MPQ_E_FORMAT, (uint64_t)s->max_local_batch, "the local batch of %s '%s'", what, spec);
    add(l, MPQ_E_FORMAT, (uint64_t)in->h, "the image height of %s '%s'", what, spec);
    add(l, MPQ_E_FORMAT, (uint64_t)in->w, "the image width of %s '%s'", what, spec);
    add(l, MPQ_E_FORMAT, (uint64_t)in->c, "the image channels of %s '%s'", what, spec);
    add(l, MPQ_E_FORMAT, (uint64_t)in->num_classes, "the class count of %s '%s'", what, spec);
    add(l, MPQ_E_FORMAT, in->fingerprint,
        "the layout fingerprint (shard names, rows, shapes, mean/std, labels) of %s '%s'", what,
        spec);
}

int mpq_run_agree(mpq_comm *c, const mpq_cfg *cfg, const mpq_source *train, const mpq_source *val,
                  const mpq_model *m)
{
    facts mine = {0};
    uint64_t root[MAX_FACTS] = {0};
    int rank = mpq_comm_rank(c), rc = MPQ_OK;
    char *dump = mpq_cfg_dump_string(cfg);
    if (!dump) rc = MPQ_FAIL(MPQ_E_NOMEM, "out of memory");
    rc = mpq_comm_agree(c, rc);
    if (rc < 0) {
        free(dump);
        return rc;
    }
    add(&mine, MPQ_E_CONFIG, mpq_hash_bytes(MPQ_HASH_INIT, dump, strlen(dump)),
        "the hash of the effective configuration%s%s", "", "");
    free(dump);
    add_source(&mine, "train_data", cfg->train_data, train);
    if (val) add_source(&mine, "val_data", cfg->val_data, val);
    add(&mine, MPQ_E_FORMAT, (uint64_t)m->params.n_floats, "the model's parameter count%s%s", "",
        "");
    add(&mine, MPQ_E_FORMAT, (uint64_t)m->state.n_floats, "the model's state count%s%s", "", "");
    for (int i = 0; i < mine.n; i++)
        root[i] = mine.f[i].v;
    rc = mpq_comm_bcast(c, root, sizeof root, 0); /* fixed size: lists may differ */
    for (int i = 0; rc == 0 && i < mine.n; i++) {
        const fact *f = &mine.f[i];
        char was[24], now[24];
        if (f->v == root[i]) continue;
        snprintf(was, sizeof was, f->hex ? "%#llx" : "%llu", (unsigned long long)root[i]);
        snprintf(now, sizeof now, f->hex ? "%#llx" : "%llu", (unsigned long long)f->v);
        rc = MPQ_FAIL(f->rc,
                      "[%s] rank %d sees other data or settings than rank 0: %s is %s there and "
                      "%s here ---> HINT: every rank must read the same files (stale node-local "
                      "copies?) with the same command line",
                      cfg->experiment, rank, f->name, was, now);
    }
    return mpq_comm_agree(c, rc);
}

/* The trainer's set-up (trainer.h): the training and validation sources, the batching, the model
 * built and planned for the largest local batch, its initial values, the step's buffers, the
 * number of steps; also the helpers `mpq eval`, `inspect` and `bench` share with the trainer
 * (train.h: the source of a configuration, its model, its budget). */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "io/shard.h"
#include "models/models.h"
#include "run_agree.h"
#include "train/trainer.h"

int mpq_train_source_open(const mpq_cfg *c, const char *spec, int train, int rank, int n_ranks,
                          mpq_source **out)
{
    mpq_source_opts o = {
        .global_batch = train ? c->batch_size : c->val_batch_size,
        .rank = rank,
        .n_ranks = n_ranks,
        .seed = (uint64_t)c->seed,
        .train = train,
        .augment = c->augment, /* validation: the same normalization, no random transforms */
        .crop = {c->crop_size, c->val_resize, c->crop_scale_min, c->crop_scale_max,
                 c->crop_ratio_min, c->crop_ratio_max},
        .prefetch = 1,
        .num_classes = c->num_classes,
    };
    if (!strcmp(spec, "synthetic")) {
        long n = train ? c->synthetic_samples : c->synthetic_samples / 4;
        if (n < o.global_batch && !train) n = o.global_batch;
        int k = c->num_classes > 0 ? c->num_classes : 10;
        /* validation draws other samples around the same class prototypes (data_synth.c) */
        return mpq_source_synthetic_create(&o, n, c->synthetic_height, c->synthetic_width,
                                           c->synthetic_channels, k,
                                           (uint64_t)c->seed * 2654435761u, out);
    }
    return mpq_source_shards_create(spec, &o, out);
}

mpq_budget mpq_train_budget(const mpq_cfg *c)
{
    return (mpq_budget){
        .target_w_kbytes = c->target_weight_kbytes,
        .target_a_kbytes = c->target_activation_kbytes,
        .act_sum = !strcmp(c->target_activation_type, "sum"),
        .act_max_each = !strcmp(c->activation_max_penalty, "each"),
        .lambda2 = c->initial_cost_lambda2,
        .lambda3 = c->initial_cost_lambda3,
    };
}

int mpq_train_model_build(const mpq_cfg *c, int h, int w, int ch, int classes, int plan_n,
                          mpq_model *m)
{
    mpq_model_desc d = {c->model, c->shortcut_type, c->scale_layer};
    mpq_model_init(m, h, w, ch, classes, &c->wq, &c->aq, c->bn_momentum);
    MPQ_TRY(mpq_model_build(m, &d));
    return mpq_model_plan(m, plan_n);
}

static int setup_data(trainer *t)
{
    const mpq_cfg *c = t->cfg;
    if (!*c->train_data)
        return MPQ_FAIL(MPQ_E_CONFIG,
                        "[%s] train_data is not set ---> HINT: make shards with "
                        "`mpq prep`, or use train_data = synthetic",
                        c->experiment);
    MPQ_TRY(mpq_train_source_open(c, c->train_data, 1, t->rank, t->n_ranks, &t->train));
    if (*c->val_data)
        MPQ_TRY(mpq_train_source_open(c, c->val_data, 0, t->rank, t->n_ranks, &t->val));
    if (t->val) {
        const mpq_data_info *a = &t->train->info, *b = &t->val->info;
        if (a->h != b->h || a->w != b->w || a->c != b->c)
            return MPQ_FAIL(MPQ_E_FORMAT,
                            "train_data images are %dx%dx%d but val_data's are "
                            "%dx%dx%d",
                            a->h, a->w, a->c, b->h, b->w, b->c);
    }
    if (t->train->steps_per_epoch < 1)
        return MPQ_FAIL(MPQ_E_CONFIG, "[%s] batch_size %d exceeds the %ld training samples",
                        c->experiment, c->batch_size, t->train->info.n_samples);
    return MPQ_OK;
}

/* The model planned for the largest local batch (training micro-batch or validation batch),
 * its initial values, and the step's buffers. */
static int setup_model(trainer *t)
{
    const mpq_cfg *c = t->cfg;
    const mpq_data_info *in = &t->train->info;
    int classes = c->num_classes > 0 ? c->num_classes : in->num_classes;
    int plan = t->b.micro_n, local = t->train->max_local_batch;
    if (t->val && t->val->max_local_batch > plan) plan = t->val->max_local_batch;
    if (t->val && t->val->max_local_batch > local) local = t->val->max_local_batch;
    MPQ_TRY(mpq_train_model_build(c, in->h, in->w, in->c, classes, plan, &t->m));
    mpq_model_init_values(&t->m, (unsigned long)c->seed, 0);
    return mpq_trainstep_init(&t->step, c, t->comm, &t->m, &t->b, local > plan ? local : plan);
}

int trainer_setup(trainer *t)
{
    const mpq_cfg *c = t->cfg;
    int rc = mpq_batching_of(c, t->n_ranks, &t->b);
    if (rc == 0) rc = setup_data(t);
    MPQ_TRY(mpq_comm_agree(t->comm, rc));
    MPQ_TRY(mpq_comm_agree(t->comm, setup_model(t)));
    MPQ_TRY(mpq_run_agree(t->comm, c, t->train, t->val, &t->m)); /* the same data everywhere */
    t->spe = t->train->steps_per_epoch;
    t->total_steps = (long)floor(c->epochs * (double)t->spe);
    if (c->max_steps > 0 && c->max_steps < t->total_steps) t->total_steps = c->max_steps;
    if (t->total_steps < 1) t->total_steps = 1;
    t->cfg_dump = mpq_cfg_dump_string(c);
    return mpq_comm_agree(t->comm, t->cfg_dump ? MPQ_OK : MPQ_FAIL(MPQ_E_NOMEM, "out of memory"));
}

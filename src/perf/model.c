/* The performance model of a data-parallel training step (see model.h). */
#include "perf/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buckets.h"
#include "core/err.h"

const char *mpq_allreduce_alg_name(mpq_allreduce_alg a)
{
    switch (a) {
    case MPQ_ALLREDUCE_BINOMIAL:
        return "binomial";
    case MPQ_ALLREDUCE_RECURSIVE_DOUBLING:
        return "recursive_doubling";
    case MPQ_ALLREDUCE_RING:
        return "ring";
    case MPQ_ALLREDUCE_RABENSEIFNER:
        return "rabenseifner";
    }
    return "?";
}

/* ceil(log2 p) for p >= 1 */
static int ceil_log2(int p)
{
    int l = 0;
    while ((1L << l) < p)
        l++;
    return l;
}

mpq_allreduce_alg mpq_perf_iallreduce_alg(int p, double bytes, int in_place)
{
    /* ompi/mca/coll/libnbc/nbc_iallreduce.c (4.1): binomial unless p >= 4, >= 64 KiB, a
     * commutative op and not in place; then reduce-scatter/allgather if count >= 2^floor(log2 p) */
    if (p < 4 || bytes < 65536.0 || in_place) return MPQ_ALLREDUCE_BINOMIAL;
    int pof2 = 1 << (ceil_log2(p + 1) - 1);
    return bytes / 4.0 >= pof2 ? MPQ_ALLREDUCE_RABENSEIFNER : MPQ_ALLREDUCE_RING;
}

/* Splits the time into latency, wire and reduction parts. */
static void allreduce_parts(mpq_allreduce_alg a, int p, double n, const mpq_net *net, double *lat,
                            double *wire, double *red)
{
    *lat = *wire = *red = 0.0;
    if (p <= 1) return;
    const double l = ceil_log2(p), f = (double)(p - 1) / p;
    switch (a) {
    case MPQ_ALLREDUCE_BINOMIAL:
        *lat = 2.0 * l * net->alpha_s;
        *wire = 2.0 * l * n * net->byte_s;
        *red = l * n * net->reduce_byte_s;
        break;
    case MPQ_ALLREDUCE_RECURSIVE_DOUBLING:
        *lat = l * net->alpha_s;
        *wire = l * n * net->byte_s;
        *red = l * n * net->reduce_byte_s;
        break;
    case MPQ_ALLREDUCE_RING:
        *lat = 2.0 * (p - 1) * net->alpha_s;
        *wire = 2.0 * f * n * net->byte_s;
        *red = f * n * net->reduce_byte_s;
        break;
    case MPQ_ALLREDUCE_RABENSEIFNER:
        *lat = 2.0 * l * net->alpha_s;
        *wire = 2.0 * f * n * net->byte_s;
        *red = f * n * net->reduce_byte_s;
        break;
    }
}

double mpq_perf_allreduce_s(mpq_allreduce_alg a, int p, double bytes, const mpq_net *net)
{
    double lat, wire, red;
    allreduce_parts(a, p, bytes, net, &lat, &wire, &red);
    return lat + wire + red;
}

int mpq_perf_allreduce_rounds(mpq_allreduce_alg a, int p)
{
    if (p <= 1) return 0;
    switch (a) {
    case MPQ_ALLREDUCE_BINOMIAL:
    case MPQ_ALLREDUCE_RABENSEIFNER:
        return 2 * ceil_log2(p);
    case MPQ_ALLREDUCE_RECURSIVE_DOUBLING:
        return ceil_log2(p);
    case MPQ_ALLREDUCE_RING:
        return 2 * (p - 1);
    }
    return 1;
}

double mpq_perf_allreduce_cpu_s(mpq_allreduce_alg a, int p, double bytes, const mpq_net *net)
{
    double lat, wire, red;
    allreduce_parts(a, p, bytes, net, &lat, &wire, &red);
    return net->cpu_copies ? lat + wire + red : red;
}

/* Linear through (b0, y0), (b1, y1) at b. */
static double lerp(double b0, double y0, double b1, double y1, double b)
{
    return b1 == b0 ? y0 : y0 + (y1 - y0) * (b - b0) / (b1 - b0);
}

/* The profile with the nearest batch above (dir = +1) or below (dir = -1) `from`, exclusive;
 * -1 if none. */
static int next_batch(const mpq_profile *prof, int n_prof, int from, int dir)
{
    int best = -1;
    for (int i = 0; i < n_prof; i++)
        if ((prof[i].batch - from) * dir > 0 &&
            (best < 0 || (prof[i].batch - prof[best].batch) * dir < 0))
            best = i;
    return best;
}

void mpq_perf_compute(const mpq_profile *prof, int n_prof, int batch, double *forward_s,
                      double *backward_s, double *update_s)
{
    /* the segment around batch: lo <= batch <= hi, or the two nearest on one side */
    int lo = next_batch(prof, n_prof, batch + 1, -1), hi = next_batch(prof, n_prof, batch - 1, 1);
    if (lo >= 0 && prof[lo].batch == batch) { /* measured at this batch */
        hi = lo;
    } else if (lo < 0) { /* below every profile: the two smallest */
        lo = hi;
        hi = next_batch(prof, n_prof, prof[lo].batch, 1);
    } else if (hi < 0) { /* above every profile: the two largest */
        hi = lo;
        lo = next_batch(prof, n_prof, prof[hi].batch, -1);
    }
    const mpq_profile *a = &prof[lo >= 0 ? lo : hi], *b = lo >= 0 && hi >= 0 ? &prof[hi] : NULL;
    double f, bw, up;
    if (!b || b->batch == a->batch) { /* one batch size: forward/backward in proportion */
        f = a->forward_s * batch / a->batch;
        bw = a->backward_s * batch / a->batch;
        up = a->update_s;
    } else {
        f = lerp(a->batch, a->forward_s, b->batch, b->forward_s, batch);
        bw = lerp(a->batch, a->backward_s, b->batch, b->backward_s, batch);
        up = lerp(a->batch, a->update_s, b->batch, b->update_s, batch);
    }
    const mpq_profile *near = abs(a->batch - batch) <= abs((b ? b : a)->batch - batch) ? a : b;
    *forward_s = fmax(f, 0.01 * near->forward_s);
    *backward_s = fmax(bw, 0.01 * near->backward_s);
    *update_s = fmax(up, 0.01 * near->update_s);
}

/* Fraction of backward after which the gradient from float `off` on is final (the first event
 * whose offset is at or below off, as mpi/gradsync starts a bucket). */
static double ready_fraction(const mpq_profile *p, size_t off)
{
    for (int j = 0; j < p->n_ready; j++)
        if (p->ready_off[j] <= off) return fmin(1.0, p->ready_s[j] / p->backward_s);
    return 1.0;
}

/* The time of the first MPI call at or after t: during backward (t < backward_s) the progress
 * call after the next ready event (times scaled from p's timeline), afterwards t itself (the
 * final wait calls MPI continuously). */
static double next_progress(const mpq_profile *p, double backward_s, double t)
{
    if (t >= backward_s) return t;
    for (int j = 0; j < p->n_ready; j++) {
        double e = p->ready_s[j] / p->backward_s * backward_s;
        if (e >= t) return fmin(e, backward_s);
    }
    return backward_s;
}

/* A blocking MPI_Allreduce of a few bytes (Open MPI's tuned component takes recursive doubling
 * for small vectors). */
static double small_allreduce_s(int p, double bytes, const mpq_net *net)
{
    return mpq_perf_allreduce_s(MPQ_ALLREDUCE_RECURSIVE_DOUBLING, p, bytes, net);
}

int mpq_perf_predict(const mpq_profile *prof, int n_prof, const mpq_net *net,
                     const mpq_perf_job *job, mpq_perf_step *out)
{
    memset(out, 0, sizeof *out);
    if (n_prof < 1) return MPQ_FAIL(MPQ_E_ARG, "perf model: no profile");
    for (int i = 0; i < n_prof; i++) {
        if (strcmp(prof[i].model, prof[0].model) || prof[i].params_floats != prof[0].params_floats)
            return MPQ_FAIL(MPQ_E_ARG, "perf model: profiles of different models (%s, %s)",
                            prof[0].model, prof[i].model);
        if (prof[i].threads != job->threads)
            return MPQ_FAIL(MPQ_E_ARG,
                            "perf model: a profile measured with %d threads for a job "
                            "with %d threads per rank ---> HINT: profile with `mpq bench "
                            "--threads %d`",
                            prof[i].threads, job->threads, job->threads);
    }
    if (job->nodes < 1 || job->ranks_per_node < 1 || job->threads < 1 || job->cores_per_node < 1 ||
        job->batch_per_rank < 1 || job->bucket_bytes < 0 || !(job->compute_speedup > 0))
        return MPQ_FAIL(MPQ_E_ARG, "perf model: nodes, ranks per node, threads, cores, batch "
                                   "and speedup must be positive");
    const int p = job->nodes * job->ranks_per_node;
    const double share = (double)job->ranks_per_node * job->threads / job->cores_per_node;
    const double slow = (share > 1.0 ? share : 1.0) / job->compute_speedup;
    double f, b, u;
    mpq_perf_compute(prof, n_prof, job->batch_per_rank, &f, &b, &u);
    const double single = job->batch_per_rank / ((f + b + u) / job->compute_speedup);
    out->ranks = p;
    out->oversubscription = share > 1.0 ? share : 1.0;
    out->forward_s = f * slow;
    out->backward_s = b * slow;
    out->update_s = u * slow;
    out->compute_s = out->forward_s + out->backward_s;

    /* the profile nearest in batch gives the shape of the backward timeline */
    const mpq_profile *near = &prof[0];
    for (int i = 1; i < n_prof; i++)
        if (abs(prof[i].batch - job->batch_per_rank) < abs(near->batch - job->batch_per_rank))
            near = &prof[i];
    const size_t n = near->params_floats;
    size_t bucket = job->bucket_bytes > 0 ? (size_t)(job->bucket_bytes / sizeof(float)) : n;
    if (bucket == 0) bucket = 1;
    const size_t nb = mpq_buckets_count(n, bucket, (size_t)1 << 30);
    out->buckets = (int)nb;
    out->bytes = p > 1 ? 4.0 * (double)n : 0.0;
    double end = 0.0, cpu = 0.0, largest = 0.0;
    for (size_t i = 0; i < nb && p > 1; i++) { /* issued in order, one after another */
        size_t off, len;
        mpq_buckets_range(n, bucket, nb, i, &off, &len);
        const double bytes = 4.0 * (double)len;
        const mpq_allreduce_alg a = mpq_perf_iallreduce_alg(p, bytes, job->in_place);
        const double t = mpq_perf_allreduce_s(a, p, bytes, net);
        const double ready = ready_fraction(near, off) * out->backward_s;
        const int rounds = mpq_perf_allreduce_rounds(a, p);
        end = fmax(end, ready); /* started at ready; its first round waits for the wire */
        for (int r = 0; r < rounds; r++) {
            if (r > 0 && !job->async_progress) end = next_progress(near, out->backward_s, end);
            end += t / rounds;
        }
        cpu += mpq_perf_allreduce_cpu_s(a, p, bytes, net);
        out->allreduce_s += t;
        if (bytes > largest) {
            largest = bytes;
            out->alg = a;
        }
    }
    if (p > 1) {
        /* what ends after backward; CPU-bound parts hold the rank whatever the overlap */
        const double wire_tail = fmax(0.0, end - out->backward_s);
        out->exposed_s = net->cpu_copies ? out->allreduce_s : fmax(wire_tail, cpu);
        /* per step (src/train.c): two error agreements (an int), the BN running statistics
         * (doubles), the per-shard loss/error sums (2 doubles per rank), the timing row (7
         * doubles); and the 1/R scaling pass over the gradient buffer */
        out->sync_s = 2.0 * small_allreduce_s(p, 4.0, net) +
                      small_allreduce_s(p, 8.0 * (double)near->state_floats, net) +
                      small_allreduce_s(p, 16.0 * p, net) + small_allreduce_s(p, 56.0, net) +
                      4.0 * (double)n * net->reduce_byte_s * slow;
    }
    out->step_s = out->compute_s + out->exposed_s + out->sync_s + out->update_s;
    out->images_s = (double)p * job->batch_per_rank / out->step_s;
    out->efficiency = out->images_s / (p * single);
    return MPQ_OK;
}

int mpq_net_preset(const char *name, double reduce_byte_s, mpq_net *out)
{
    /* published figures, not measured here (docs/clusters.md, "Predicting a cluster"):
     * 25 GbE with MPI over TCP; 100 GbE with RoCE (UCX); InfiniBand HDR 200 Gb/s */
    static const struct {
        const char *name;
        double alpha_us, gbytes_s;
    } nets[] = {
        {"25gbe", 20.0, 2.9},
        {"100gbe", 3.0, 11.5},
        {"hdr200", 1.5, 24.0},
    };
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
        if (strcmp(name, nets[i].name)) continue;
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", name);
        out->alpha_s = nets[i].alpha_us * 1e-6;
        out->byte_s = 1.0 / (nets[i].gbytes_s * 1e9);
        out->reduce_byte_s = reduce_byte_s;
        return MPQ_OK;
    }
    return MPQ_FAIL(MPQ_E_ARG, "unknown network '%s' (25gbe, 100gbe, hdr200)", name);
}

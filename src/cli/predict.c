/* `mpq predict`: the performance model (perf/model.h) from step profiles (`mpq bench --timeline`)
 * and a network: images/s, efficiency and where a step's time goes, for a list of node counts.
 * Prints CSV (default) or a markdown table on rank 0. No MPI traffic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/err.h"
#include "perf/model.h"

#define MAX_PROFILES 8
#define MAX_NODES 64

static void usage(FILE *f)
{
    fprintf(
        f, "usage: mpq predict --timeline FILE [--timeline FILE]... NETWORK [JOB] [--markdown]\n"
           "  --timeline FILE    a step profile from `mpq bench --timeline` (one per local batch;\n"
           "                     compute is interpolated between them)\n"
           "NETWORK: --net 25gbe|100gbe|hdr200 (published figures), or measured:\n"
           "  --alpha-us A --gbytes-s B [--cpu-copies]   latency, bandwidth; --cpu-copies when\n"
           "                     the CPU moves the bytes (shared memory, TCP inside one host)\n"
           "  --reduce-gbytes-s G   CPU sum rate of MPI_Reduce_local (default 8)\n"
           "JOB: --nodes LIST (8,16,32,64,128,256,512,1024)  --ranks-per-node R (1)\n"
           "     --threads T (the profiles')  --cores C (cores per node; default R x T)\n"
           "     --batch-per-rank N (the largest profiled batch)  --bucket-mbytes M (4)\n"
           "     --speedup S (nodes S x faster than the profiled one; 1)\n"
           "     --in-place (allreduce_in_place = true: Open MPI's binomial tree; default: the\n"
           "                     sums go to a second buffer, Rabenseifner from 4 ranks)\n"
           "     --async-progress (rounds advance without MPI calls: a progress thread)\n");
}

/* strtod/strtol that must consume the whole argument; report naming the option */
static int num(const char *opt, const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo))
        return MPQ_FAIL(MPQ_E_ARG, "%s: '%s' is not a number >= %g", opt, s, lo);
    *out = v;
    return MPQ_OK;
}

static int int_arg(const char *opt, const char *s, int *out)
{
    double v;
    MPQ_TRY(num(opt, s, 1, &v));
    if (v != (int)v) return MPQ_FAIL(MPQ_E_ARG, "%s: '%s' is not an integer", opt, s);
    *out = (int)v;
    return MPQ_OK;
}

static int list_arg(const char *s, int *out, int *n)
{
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_NODES) return MPQ_FAIL(MPQ_E_ARG, "--nodes: more than %d values", MAX_NODES);
        MPQ_TRY(int_arg("--nodes", t, &out[(*n)++]));
    }
    return *n ? MPQ_OK : MPQ_FAIL(MPQ_E_ARG, "--nodes: empty list");
}

static void print_row(const mpq_perf_job *job, const mpq_perf_step *st, const mpq_net *net,
                      int markdown)
{
    if (markdown)
        printf("| %d | %d | %.1f | %.1f%% | %.4f | %.4f | %.4f | %.4f | %s |\n", job->nodes,
               st->ranks, st->images_s, 100.0 * st->efficiency, st->compute_s + st->update_s,
               st->allreduce_s, st->exposed_s, st->sync_s, mpq_allreduce_alg_name(st->alg));
    else
        printf("%s,%d,%d,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.0f,%d,%s,%.6g,%.2f,%.4f\n",
               net->name, job->nodes, st->ranks, job->threads, job->batch_per_rank, st->compute_s,
               st->update_s, st->allreduce_s, st->exposed_s, st->sync_s, st->step_s, st->bytes,
               st->buckets, mpq_allreduce_alg_name(st->alg), st->oversubscription, st->images_s,
               st->efficiency);
}

int mpq_cli_predict(mpq_comm *c, int argc, char **argv)
{
    mpq_profile prof[MAX_PROFILES];
    int n_prof = 0, nodes[MAX_NODES] = {8, 16, 32, 64, 128, 256, 512, 1024}, n_nodes = 8;
    int markdown = 0, rc = MPQ_OK;
    const char *preset = NULL;
    double alpha_us = -1, gbytes_s = -1, reduce_gbytes_s = 8, mbytes = 4;
    mpq_net net = {.name = "custom"};
    mpq_perf_job job = {.ranks_per_node = 1, .in_place = 0, .compute_speedup = 1};
    for (int i = 1; i < argc && rc == MPQ_OK; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            rc = 1;
        } else if (!strcmp(a, "--markdown")) {
            markdown = 1;
        } else if (!strcmp(a, "--cpu-copies")) {
            net.cpu_copies = 1;
        } else if (!strcmp(a, "--in-place")) {
            job.in_place = 1;
        } else if (!strcmp(a, "--async-progress")) {
            job.async_progress = 1;
        } else if (!v) {
            fprintf(stderr, "mpq predict: unexpected argument '%s'\n", a);
            rc = 2;
        } else {
            i++;
            if (!strcmp(a, "--timeline")) {
                if (n_prof == MAX_PROFILES)
                    rc = MPQ_FAIL(MPQ_E_ARG, "--timeline: more than %d profiles", MAX_PROFILES);
                else if ((rc = mpq_profile_read(v, &prof[n_prof])) == MPQ_OK)
                    n_prof++;
            } else if (!strcmp(a, "--net"))
                preset = v;
            else if (!strcmp(a, "--alpha-us"))
                rc = num(a, v, 0, &alpha_us);
            else if (!strcmp(a, "--gbytes-s"))
                rc = num(a, v, 1e-6, &gbytes_s);
            else if (!strcmp(a, "--reduce-gbytes-s"))
                rc = num(a, v, 1e-6, &reduce_gbytes_s);
            else if (!strcmp(a, "--nodes"))
                rc = list_arg(v, nodes, &n_nodes);
            else if (!strcmp(a, "--ranks-per-node"))
                rc = int_arg(a, v, &job.ranks_per_node);
            else if (!strcmp(a, "--threads"))
                rc = int_arg(a, v, &job.threads);
            else if (!strcmp(a, "--cores"))
                rc = int_arg(a, v, &job.cores_per_node);
            else if (!strcmp(a, "--batch-per-rank"))
                rc = int_arg(a, v, &job.batch_per_rank);
            else if (!strcmp(a, "--bucket-mbytes"))
                rc = num(a, v, 0, &mbytes);
            else if (!strcmp(a, "--speedup"))
                rc = num(a, v, 1e-6, &job.compute_speedup);
            else {
                fprintf(stderr, "mpq predict: unexpected argument '%s'\n", a);
                rc = 2;
            }
        }
    }
    if (rc == MPQ_OK && (!n_prof || (!preset && (alpha_us < 0 || gbytes_s < 0)))) {
        fprintf(stderr, "mpq predict: needs --timeline and a network (--net, or --alpha-us and "
                        "--gbytes-s)\n");
        rc = 2;
    }
    if (rc == MPQ_OK && preset) rc = mpq_net_preset(preset, 1e-9 / reduce_gbytes_s, &net);
    if (rc == MPQ_OK && !preset) {
        net.alpha_s = alpha_us * 1e-6;
        net.byte_s = 1e-9 / gbytes_s;
        net.reduce_byte_s = 1e-9 / reduce_gbytes_s;
        snprintf(net.name, sizeof net.name, "%s", net.cpu_copies ? "measured-cpu" : "measured");
    }
    if (rc == MPQ_OK) {
        if (!job.threads) job.threads = prof[0].threads;
        if (!job.cores_per_node) job.cores_per_node = job.ranks_per_node * job.threads;
        for (int i = 0; i < n_prof && !job.batch_per_rank; i++)
            if (prof[i].batch > job.batch_per_rank) job.batch_per_rank = prof[i].batch;
        job.bucket_bytes = mbytes * 1e6;
        if (mpq_comm_rank(c) == 0) {
            if (markdown)
                printf(
                    "| nodes | ranks | images/s | efficiency | compute+update s | allreduce s "
                    "| exposed s | syncs s | algorithm |\n|---|---|---|---|---|---|---|---|---|\n");
            else
                printf("network,nodes,ranks,threads,batch_per_rank,compute_s,update_s,"
                       "allreduce_s,exposed_comm_s,sync_s,step_s,bytes_per_step,buckets,"
                       "algorithm,oversubscription,images_s,efficiency\n");
        }
    }
    for (int k = 0; rc == MPQ_OK && k < n_nodes; k++) {
        mpq_perf_step st;
        job.nodes = nodes[k];
        rc = mpq_perf_predict(prof, n_prof, &net, &job, &st);
        if (rc == MPQ_OK && mpq_comm_rank(c) == 0) print_row(&job, &st, &net, markdown);
    }
    for (int i = 0; i < n_prof; i++)
        mpq_profile_free(&prof[i]);
    if (rc == 1) return 0; /* --help */
    if (rc == 2) usage(stderr);
    return rc < 0 ? mpq_cli_report("predict", rc) : rc;
}

/* Rank binding with hwloc: divides the node's cores among its ranks, binds this process to its
 * share and chooses the compute thread count. Call from the main thread before any OpenMP or
 * BLIS thread starts (the binding is process-wide). The topology lives only during the call. */
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/comm_impl.h"

/* OMP_NUM_THREADS as a positive count (the first entry of a nested list), else 0. */
static int env_threads(void)
{
    const char *s = getenv("OMP_NUM_THREADS");
    char *end;
    if (!s || !*s) return 0;
    long v = strtol(s, &end, 10);
    if (end == s || (*end != '\0' && *end != ',') || v < 1 || v > 4096) return 0;
    return (int)v;
}

static int choose_threads(int requested, int share_cores)
{
    if (requested > 0) return requested;
    int env = env_threads();
    if (env > 0) return env;
    return share_cores > 0 ? share_cores : 1;
}

int mpq_comm_bind(mpq_comm *c, int requested, char *line, size_t line_bytes)
{
    char host[256] = "?", cpus[256] = "?", why[160] = "";
    int share = 0, threads, node_cores = 0;
    hwloc_topology_t topo;
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    if (hwloc_topology_init(&topo) != 0) {
        snprintf(why, sizeof why, " (not bound: hwloc_topology_init failed)");
    } else if (hwloc_topology_load(topo) != 0) {
        snprintf(why, sizeof why, " (not bound: hwloc_topology_load failed)");
        hwloc_topology_destroy(topo);
    } else {
        int ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        hwloc_obj_type_t unit = HWLOC_OBJ_CORE;
        if (ncores <= 0) { /* no core level reported: count processing units */
            unit = HWLOC_OBJ_PU;
            ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
        }
        node_cores = ncores;
        const int local = c->local_size, me = c->local_rank;
        hwloc_bitmap_t set = hwloc_bitmap_alloc();
        if (!set) {
            snprintf(why, sizeof why, " (not bound: out of memory)");
        } else if (ncores < local) {
            hwloc_bitmap_copy(set, hwloc_topology_get_allowed_cpuset(topo));
            snprintf(why, sizeof why, " (not bound: %d ranks share %d cores)", local, ncores);
        } else {
            const int first = (int)((long)me * ncores / local);
            const int last = (int)((long)(me + 1) * ncores / local);
            for (int i = first; i < last; i++)
                hwloc_bitmap_or(set, set, hwloc_get_obj_by_type(topo, unit, (unsigned)i)->cpuset);
            share = last - first;
            if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) != 0) {
                snprintf(why, sizeof why, " (not bound: hwloc_set_cpubind failed)");
                share = 0;
            }
        }
        if (set) {
            hwloc_bitmap_list_snprintf(cpus, sizeof cpus, set);
            hwloc_bitmap_free(set);
        }
        hwloc_topology_destroy(topo);
    }
    threads = choose_threads(requested, share);
    char text[768];
    snprintf(text, sizeof text, "rank %d host %s cores [%s] threads %d%s", c->rank, host, cpus,
             threads, why);
    if (why[0]) mpq_log_warn("%s", text);
    int cores = share > 0 ? share : node_cores; /* this rank's share, or the whole node */
    if (requested > 0 && cores > 0 && requested > cores)
        mpq_log_warn("threads = %d is more than the %d core(s) %s: the threads will share "
                     "cores ---> HINT: set threads = 0 to take the binding's count",
                     requested, cores, share > 0 ? "bound to this rank" : "of this node");
    if (line && line_bytes > 0) snprintf(line, line_bytes, "%s", text);
    return threads;
}

# Sourced by the job scripts (from the repository root): the mpq binary (MPQ, default
# build/mpq), the core count (MPQ_CORES, default all), and Open MPI as root in a container, over
# shared memory, with more ranks than cores allowed.
mpq=${MPQ:-build/mpq}
# (GNU nproc lowers its answer to OMP_NUM_THREADS when that is set: ask it without)
cores=${MPQ_CORES:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 OMPI_MCA_rmaps_base_oversubscribe=1
# The newest checkpoint in directory $1 (ckpt-<step>.h5 names sort by step); nothing when none.
newest_ckpt() { find "$1" -maxdepth 1 -name 'ckpt-*.h5' 2> /dev/null | sort | tail -n 1; }

/* The stop record of a run: `<output_dir>/stopped`, written by rank 0 once the checkpoint that a
 * stop signal (SIGUSR1, SIGTERM) asked for is complete on disk. A launcher (jobs/launch.sh) reads
 * it to tell "checkpointed, requeue and resume" (exit status 75) from a failure even where the
 * MPI launcher reports another status for the ranks' exit. Three lines:
 *     signal SIGTERM
 *     step 17
 *     checkpoint runs/x/checkpoints/ckpt-000000017.h5                                          */
#ifndef MPQ_TRAIN_STOP_H
#define MPQ_TRAIN_STOP_H

#define MPQ_STOP_RECORD "stopped"

/* Writes the record into dir through a temporary name and a rename, so a reader never sees half
 * a record. Returns 0, or MPQ_E_IO naming the path. */
int mpq_stop_record_write(const char *dir, const char *signal_name, long step, const char *ckpt);

#endif

/* Converters from raw data sets to HDF5 shards (`mpq prep`): IDX (MNIST-like, gzip or plain),
 * CIFAR-10 binary batches, and JPEG class folders (ImageNet layout). Each computes the training
 * statistics, writes shards atomically, reports progress and never leaves a shard that looks
 * complete after an interruption. */
#ifndef MPQ_IO_PREP_H
#define MPQ_IO_PREP_H

struct mpq_comm;

/* Entry points of `mpq prep idx|cifar10|imagefolder`: parse their own argv (argv[0] is the
 * format name), print usage on --help. imagefolder divides the files among the ranks of c;
 * the others run on rank 0 while the other ranks wait. Return 0, 2 on usage errors, or a negative MPQ_E_*. */
int mpq_prep_idx_main(struct mpq_comm *c, int argc, char **argv);
int mpq_prep_cifar10_main(struct mpq_comm *c, int argc, char **argv);
int mpq_prep_imagefolder_main(struct mpq_comm *c, int argc, char **argv);

#endif

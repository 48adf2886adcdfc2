/* `mpq prep imagefolder` under MPI (run with 2 ranks): the ranks share the shards and the result
 * equals the one-process conversion bit for bit (pixels, labels, mean/std); a bad file in a shard
 * of one rank fails every rank with that file's name. Collectives come before any assertion; the
 * verdict is combined over ranks. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "core/err.h"
#include "core/log.h"
#include "io/prep.h"
#include "io/shard.h"
#include "iofix.h"
#include "mpi/comm.h"
#include "testutil.h"

static mpq_comm *comm;
static char *tmp; /* shared by the ranks: made by rank 0, broadcast */

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmp, name); }

/* tmp/name: 3 classes x 5 JPEGs of assorted sizes (rank 0 writes, all wait). */
static void write_folder(const char *name)
{
    if (mpq_comm_rank(comm) == 0) {
        tjhandle tj = tjInitCompress();
        char path[4096];
        uint8_t px[50 * 37 * 3];
        snprintf(path, sizeof path, "%s/%s", tmp, name);
        mkdir(path, 0777);
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s/class%d", tmp, name, k);
            mkdir(path, 0777);
            for (int i = 0; i < 5; i++) {
                int w = 20 + 6 * i, h = 37 - 3 * k;
                unsigned char *buf = NULL;
                unsigned long size = 0;
                FILE *f;
                iofix_pixels(10 * k + i, h, w, 3, px);
                tjCompress2(tj, px, w, 0, h, TJPF_RGB, &buf, &size, TJSAMP_420, 90, 0);
                snprintf(path, sizeof path, "%s/%s/class%d/img%d.jpg", tmp, name, k, i);
                f = fopen(path, "wb");
                fwrite(buf, 1, size, f);
                fclose(f);
                tjFree(buf);
            }
        }
        tjDestroy(tj);
    }
    mpq_comm_barrier(comm);
}

START_TEST(test_prep_ranks_share_shards_with_one_process_result)
{
    char imgs[4096], out_many[4096], out_one[4096];
    mpq_prep_imagefolder_opts o = {.size = 12, .shards = 5};
    int rc_many, rc_one = 0, same = 1;
    path_of(imgs, sizeof imgs, "imgs");
    path_of(out_many, sizeof out_many, "many");
    path_of(out_one, sizeof out_one, "one");
    write_folder("imgs");
    o.dir = imgs;
    o.out_dir = out_many;
    rc_many = mpq_prep_imagefolder(&o, comm);
    if (mpq_comm_rank(comm) == 0) {
        mpq_split *a = NULL, *b = NULL;
        uint8_t pa[12 * 12 * 3], pb[12 * 12 * 3];
        int la, lb;
        o.out_dir = out_one;
        rc_one = mpq_prep_imagefolder(&o, NULL);
        if (rc_one == 0 && rc_many == 0 && mpq_split_open(out_many, &a) == 0 &&
            mpq_split_open(out_one, &b) == 0) {
            const mpq_data_info *ia = mpq_split_info(a), *ib = mpq_split_info(b);
            same = ia->n_samples == 15 && ib->n_samples == 15 &&
                   !memcmp(ia->mean, ib->mean, sizeof ia->mean) &&
                   !memcmp(ia->std, ib->std, sizeof ia->std);
            for (long i = 0; i < 15 && same; i++)
                same = mpq_split_read(a, i, pa, &la) == 0 && mpq_split_read(b, i, pb, &lb) == 0 &&
                       la == lb && la == i / 5 && !memcmp(pa, pb, sizeof pa);
        } else {
            same = 0;
        }
        mpq_split_close(a);
        mpq_split_close(b);
    }
    mpq_comm_barrier(comm);
    ck_assert_msg(rc_many == 0, "%s", mpq_errmsg());
    ck_assert_msg(rc_one == 0, "%s", mpq_errmsg());
    ck_assert(same);
}
END_TEST

START_TEST(test_prep_ranks_agree_on_a_bad_file)
{
    char imgs[4096], out[4096], bad[4096];
    mpq_prep_imagefolder_opts o = {.size = 12, .shards = 5};
    int rc, made = 1;
    path_of(imgs, sizeof imgs, "imgs2");
    path_of(out, sizeof out, "bad_out");
    path_of(bad, sizeof bad, "imgs2/class0/img5.jpg");
    /* 16 files in 5 shards: class0/img5.jpg is file 5, in shard 1 = [3, 6), which rank 1 of 2
     * converts; rank 0 learns of it through the agreement */
    write_folder("imgs2");
    if (mpq_comm_rank(comm) == 0) made = iofix_write_text(bad, "not a jpeg") == 0;
    mpq_comm_barrier(comm);
    o.dir = imgs;
    o.out_dir = out;
    rc = mpq_prep_imagefolder(&o, comm);
    ck_assert(made);
    ck_assert_int_eq(rc, MPQ_E_FORMAT);
    ck_assert_msg(strstr(mpq_errmsg(), bad), "rank %d: '%s'", mpq_comm_rank(comm), mpq_errmsg());
}
END_TEST

static Suite *prep_ranks_suite(void)
{
    Suite *s = suite_create("prep_ranks");
    TCase *tc = tcase_create("prep_ranks");
    tcase_add_test(tc, test_prep_ranks_share_shards_with_one_process_result);
    tcase_add_test(tc, test_prep_ranks_agree_on_a_bad_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    return mpq_test_main_mpi(&argc, &argv, prep_ranks_suite, &comm, &tmp);
}

/* Crafted inputs (issue 17, memory safety): small files made to break size computations and
 * buffers. Every class must give a clean MPQ_E_* error whose message names the file and the key
 * (attribute, dataset, header field), and never write past a buffer (the sanitizer build runs
 * this program too): a shard whose row count or image size overflows, string attributes longer
 * than their buffer or with many elements, datasets of the wrong rank, extents or type, an
 * exported tensor larger than the model's, IDX headers with huge dimensions or more data claimed
 * than present, a truncated CIFAR batch, a truncated JPEG and one whose header claims
 * 20000x20000 pixels. */
#include <check.h>
#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "config.h"
#include "core/err.h"
#include "io/ckpt.h"
#include "io/export.h"
#include "io/h5.h"
#include "io/jpeg.h"
#include "io/prep.h"
#include "io/shard.h"
#include "iofix.h"
#include "mpi/comm.h"
#include "testutil.h"
#include "train.h"

static mpq_comm *comm;
static char *tmp;

/* tmp/name in one of 8 rotating buffers: keep a path that must outlive 7 more calls in a local
 * array (path()). */
static const char *sub(const char *name)
{
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, name);
    return buf[k];
}

/* The last error message contains every non-NULL needle. */
static void path(char *out, const char *name) { snprintf(out, 4096, "%s/%s", tmp, name); }

static void expect_msg(int rc, int want_rc, const char *a, const char *b, const char *c)
{
    const char *m = mpq_errmsg();
    ck_assert_msg(rc == want_rc, "rc %d, want %d: %s", rc, want_rc, m);
    const char *needles[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (needles[i]) ck_assert_msg(strstr(m, needles[i]), "'%s' lacks '%s'", m, needles[i]);
}

static void assert_no_open_handles(void)
{
    ck_assert_int_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* ---- HDF5 crafting helpers ------------------------------------------------------------------ */

/* A chunked dataset of any extents (nothing is allocated until written). */
static void make_dataset(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims)
{
    hsize_t chunk[8];
    for (int i = 0; i < rank; i++)
        chunk[i] = 1;
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    ck_assert(sp >= 0 && dcpl >= 0 && lcpl >= 0);
    ck_assert(H5Pset_chunk(dcpl, rank, chunk) >= 0);
    ck_assert(H5Pset_create_intermediate_group(lcpl, 1) >= 0);
    hid_t d = H5Dcreate2(f, name, type, sp, lcpl, dcpl, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "cannot create %s", name);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(sp);
}

/* A string attribute of n elements (n = 0: scalar) of size bytes each, filled with 'x'. */
static void make_string_attr(hid_t obj, const char *name, size_t size, hsize_t n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    hid_t sp = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    size_t total = size * (n ? n : 1);
    char *v = malloc(total);
    memset(v, 'x', total);
    ck_assert(H5Tset_size(t, size) >= 0 && H5Tset_strpad(t, H5T_STR_NULLPAD) >= 0);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(a >= 0 && H5Awrite(a, t, v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    free(v);
}

static void make_int_attr(hid_t obj, const char *name, int v)
{
    ck_assert_int_eq(mpq_h5_attr_write_int(obj, name, v), 0);
}

/* A shard with /images and /labels of the given extents (chunked, unwritten) and attributes
 * matching them as far as an int allows. */
static void make_shard(const char *path, const hsize_t img[4], hsize_t n_labels)
{
    float mean[4] = {100, 100, 100, 100}, std[4] = {50, 50, 50, 50};
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    make_dataset(f, "images", H5T_STD_U8LE, 4, img);
    make_dataset(f, "labels", H5T_STD_I32LE, 1, &n_labels);
    make_int_attr(f, "num_classes", 10);
    make_int_attr(f, "height", (int)(img[1] > 1u << 30 ? 1u << 30 : img[1]));
    make_int_attr(f, "width", (int)(img[2] > 1u << 30 ? 1u << 30 : img[2]));
    make_int_attr(f, "channels", (int)img[3]);
    ck_assert_int_eq(mpq_h5_attr_write_floats(f, "mean", mean, (int)img[3]), 0);
    ck_assert_int_eq(mpq_h5_attr_write_floats(f, "std", std, (int)img[3]), 0);
    H5Fclose(f);
}

static void expect_split_error(const char *dir, const char *file, const char *key)
{
    mpq_split *s = NULL;
    mpq_err_clear();
    int rc = mpq_split_open(dir, &s);
    expect_msg(rc, MPQ_E_FORMAT, file, key, NULL);
    ck_assert_ptr_null(s);
    assert_no_open_handles();
}

START_TEST(test_crafted_shard_row_count_and_image_size_overflow)
{
    /* 2^62 rows: labels alone would need 2^64 bytes */
    mkdir(sub("rows"), 0777);
    make_shard(sub("rows/shard-00000.h5"), (hsize_t[]){(hsize_t)1 << 62, 2, 2, 1},
               (hsize_t)1 << 62);
    expect_split_error(sub("rows"), sub("rows/shard-00000.h5"), "/images");
    /* H*W*C = 2^30 * 2^30 * 4 overflows 32 bits and exceeds the image limit */
    mkdir(sub("pixels"), 0777);
    make_shard(sub("pixels/shard-00000.h5"), (hsize_t[]){1, (hsize_t)1 << 30, (hsize_t)1 << 30, 4},
               1);
    expect_split_error(sub("pixels"), sub("pixels/shard-00000.h5"), "/images");
    /* 2^30 rows (within the limits) in a file of a few KB: labels that are not there */
    mkdir(sub("sparse"), 0777);
    make_shard(sub("sparse/a.h5"), (hsize_t[]){(hsize_t)1 << 30, 1, 1, 1}, (hsize_t)1 << 30);
    expect_split_error(sub("sparse"), sub("sparse/a.h5"), "claims 1073741824 samples");
    /* 2^41 rows: beyond the split's sample limit */
    mkdir(sub("many"), 0777);
    make_shard(sub("many/a.h5"), (hsize_t[]){(hsize_t)1 << 41, 1, 1, 1}, (hsize_t)1 << 41);
    expect_split_error(sub("many"), sub("many/a.h5"), "/images");
}
END_TEST

START_TEST(test_crafted_shard_datasets_of_wrong_rank_extents_and_type)
{
    hid_t f;
    /* labels as float */
    mkdir(sub("ftype"), 0777);
    make_shard(sub("ftype/s.h5"), (hsize_t[]){4, 2, 2, 1}, 4);
    f = H5Fopen(sub("ftype/s.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "labels", H5P_DEFAULT);
    make_dataset(f, "labels", H5T_IEEE_F32LE, 1, (hsize_t[]){4});
    H5Fclose(f);
    expect_split_error(sub("ftype"), sub("ftype/s.h5"), "/labels");
    /* labels of rank 2 */
    mkdir(sub("rank"), 0777);
    make_shard(sub("rank/s.h5"), (hsize_t[]){4, 2, 2, 1}, 4);
    f = H5Fopen(sub("rank/s.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "labels", H5P_DEFAULT);
    make_dataset(f, "labels", H5T_STD_I32LE, 2, (hsize_t[]){4, 1000});
    H5Fclose(f);
    expect_split_error(sub("rank"), sub("rank/s.h5"), "/labels");
    /* more labels than images */
    mkdir(sub("extent"), 0777);
    make_shard(sub("extent/s.h5"), (hsize_t[]){4, 2, 2, 1}, 4000);
    expect_split_error(sub("extent"), sub("extent/s.h5"), "/labels");
    /* mean with more elements than channels */
    mkdir(sub("mean"), 0777);
    make_shard(sub("mean/s.h5"), (hsize_t[]){4, 2, 2, 1}, 4);
    f = H5Fopen(sub("mean/s.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "mean");
    ck_assert_int_eq(mpq_h5_attr_write_floats(f, "mean", (float[64]){0}, 64), 0);
    H5Fclose(f);
    expect_split_error(sub("mean"), sub("mean/s.h5"), "'mean'");
}
END_TEST

/* The checked reader itself: class, rank, extents and buffer size are refused before reading. */
START_TEST(test_crafted_checked_read_refuses_before_reading)
{
    char file[4096];
    path(file, "x.h5");
    const char *path = file;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    float guard[16];
    make_dataset(f, "/g/x", H5T_IEEE_F32LE, 2, (hsize_t[]){3, 4});
    make_string_attr(f, "many", 8, 100);
    make_string_attr(f, "long", 1000, 0);
    H5Fclose(f);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    for (int i = 0; i < 16; i++)
        guard[i] = -1.0f;
    expect_msg(mpq_h5_read_checked(f, "/g/x", MPQ_H5_DATASET, path, H5P_DEFAULT, H5T_NATIVE_FLOAT,
                                   1, (hsize_t[]){12}, guard, sizeof guard),
               MPQ_E_FORMAT, path, "'/g/x'", "(3, 4), expected (12)");
    expect_msg(mpq_h5_read_checked(f, "/g/x", MPQ_H5_DATASET, path, H5P_DEFAULT, H5T_NATIVE_FLOAT,
                                   2, (hsize_t[]){4, 3}, guard, sizeof guard),
               MPQ_E_FORMAT, path, "'/g/x'", "(3, 4), expected (4, 3)");
    expect_msg(mpq_h5_read_checked(f, "/g/x", MPQ_H5_DATASET, path, H5P_DEFAULT, H5T_NATIVE_INT, 2,
                                   (hsize_t[]){3, 4}, guard, sizeof guard),
               MPQ_E_FORMAT, path, "'/g/x'", "float values, expected integer");
    expect_msg(mpq_h5_read_checked(f, "/g/x", MPQ_H5_DATASET, path, H5P_DEFAULT, H5T_NATIVE_FLOAT,
                                   MPQ_H5_ANY_RANK, NULL, guard, 8 * sizeof(float)),
               MPQ_E_FORMAT, path, "'/g/x'", "12 elements");
    expect_msg(mpq_h5_read_checked(f, "/g/missing/x", MPQ_H5_DATASET, path, H5P_DEFAULT,
                                   H5T_NATIVE_FLOAT, 1, NULL, guard, sizeof guard),
               MPQ_E_FORMAT, path, "missing dataset '/g/missing/x'", NULL);
    for (int i = 0; i < 16; i++)
        ck_assert(guard[i] == -1.0f); /* nothing was read */
    ck_assert_int_eq(mpq_h5_read_checked(f, "/g/x", MPQ_H5_DATASET, path, H5P_DEFAULT,
                                         H5T_NATIVE_FLOAT, 2, (hsize_t[]){3, 4}, guard,
                                         sizeof guard),
                     0);
    /* strings: 100 elements into a 64-byte buffer; 1000 bytes into 64 */
    char s[64];
    expect_msg(mpq_h5_attr_read_string(f, "many", path, s, sizeof s), MPQ_E_FORMAT, path, "'many'",
               "one fixed-length string");
    expect_msg(mpq_h5_attr_read_string(f, "long", path, s, sizeof s), MPQ_E_FORMAT, path, "'long'",
               "too long");
    char *a = NULL;
    ck_assert_int_eq(
        mpq_h5_read_string_alloc(f, "long", MPQ_H5_ATTRIBUTE, path, H5P_DEFAULT, 2000, &a), 0);
    ck_assert_uint_eq(strlen(a), 1000);
    free(a);
    H5Fclose(f);
    assert_no_open_handles();
}
END_TEST

/* ---- checkpoints and exports ---------------------------------------------------------------- */

static void build(mpq_model *m, const char *wq)
{
    mpq_cfg c;
    mpq_cfg_defaults(&c);
    snprintf(c.model, sizeof c.model, "resnet20");
    snprintf(c.shortcut_type, sizeof c.shortcut_type, "b");
    snprintf(c.wq.method, sizeof c.wq.method, "%s", wq);
    snprintf(c.aq.method, sizeof c.aq.method, "parametric_fp_d_xmax_relu");
    int rc = mpq_train_model_build(&c, 8, 8, 3, 10, 2, m);
    ck_assert_msg(rc == 0, "%s", mpq_errmsg());
    mpq_model_init_values(m, 5, 1);
}

static void fill_info(mpq_ckpt_info *in)
{
    static double hist[3] = {8, 0.5, 0.25};
    memset(in, 0, sizeof *in);
    snprintf(in->experiment, sizeof in->experiment, "T");
    snprintf(in->model, sizeof in->model, "resnet20");
    snprintf(in->optimizer, sizeof in->optimizer, "sgd");
    in->n_ranks = 1;
    in->in_h = in->in_w = 8;
    in->in_c = 3;
    in->num_classes = 10;
    in->config = (char *)"[T]\nmodel = resnet20\n";
    in->history = hist;
    in->history_rows = 1;
    in->history_cols = 3;
    snprintf(in->history_columns, sizeof in->history_columns, "iter,a,b");
}

/* Replaces a root string attribute of path by a crafted one. */
static void replace_root_string(const char *path, const char *name, size_t size, hsize_t n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    H5Adelete(f, name);
    make_string_attr(f, name, size, n);
    H5Fclose(f);
}

START_TEST(test_crafted_checkpoint_strings_and_config)
{
    mpq_model m;
    mpq_ckpt_info in, out;
    char good[4096], bad[4096];
    path(good, "good.h5");
    path(bad, "bad.h5");
    build(&m, "parametric_fp_d_xmax");
    fill_info(&in);
    ck_assert_int_eq(mpq_ckpt_save(comm, good, &m.view, &in, 1), 0);
    /* 'model' longer than its 64-byte field */
    ck_assert_int_eq(iofix_copy_file(good, bad, -1), 0);
    replace_root_string(bad, "model", 5000, 0);
    expect_msg(mpq_ckpt_read_info(comm, bad, &out), MPQ_E_FORMAT, bad, "'model'", "too long");
    expect_msg(mpq_ckpt_load(comm, bad, &m.view, "resnet20", 0), MPQ_E_FORMAT, bad, "'model'",
               NULL);
    /* 'kind' as 1000 strings of 15 bytes: the old reader wrote 16 KB into a 16-byte array */
    ck_assert_int_eq(iofix_copy_file(good, bad, -1), 0);
    replace_root_string(bad, "kind", 15, 1000);
    expect_msg(mpq_ckpt_read_info(comm, bad, &out), MPQ_E_FORMAT, bad, "'kind'", NULL);
    char found[4096];
    mkdir(sub("out"), 0777);
    mkdir(sub("out/checkpoints"), 0777);
    ck_assert_int_eq(iofix_copy_file(bad, sub("out/checkpoints/ckpt-000000001.h5"), -1), 0);
    ck_assert_int_eq(mpq_ckpt_find_latest(sub("out"), found, sizeof found), 0); /* skipped */
    /* /config as an array of strings */
    ck_assert_int_eq(iofix_copy_file(good, bad, -1), 0);
    hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "config", H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 32);
    make_dataset(f, "config", t, 1, (hsize_t[]){1000});
    H5Tclose(t);
    H5Fclose(f);
    expect_msg(mpq_ckpt_read_info(comm, bad, &out), MPQ_E_FORMAT, bad, "'/config'", NULL);
    /* the history with a float attribute where the column names belong */
    ck_assert_int_eq(iofix_copy_file(good, bad, -1), 0);
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/history/results", H5P_DEFAULT);
    H5Adelete(d, "columns");
    ck_assert_int_eq(mpq_h5_attr_write_floats(d, "columns", (float[3]){0}, 3), 0);
    H5Dclose(d);
    H5Fclose(f);
    expect_msg(mpq_ckpt_read_info(comm, bad, &out), MPQ_E_FORMAT, bad, "'columns'", NULL);
    /* an optimizer state tensor with the wrong extents */
    ck_assert_int_eq(iofix_copy_file(good, bad, -1), 0);
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/optimizer/v", H5P_DEFAULT);
    make_dataset(f, "/optimizer/v", H5T_IEEE_F32LE, 1, (hsize_t[]){(hsize_t)1 << 40});
    H5Fclose(f);
    expect_msg(mpq_ckpt_load(comm, bad, &m.view, "resnet20", MPQ_CKPT_LOAD_OPTIMIZER), MPQ_E_FORMAT,
               bad, "/optimizer/v", NULL);
    assert_no_open_handles();
    mpq_model_free(&m);
}
END_TEST

START_TEST(test_crafted_export_tensor_larger_than_the_model)
{
    mpq_model a, b;
    mpq_ckpt_info in;
    mpq_export_opts o = {.pack = 0, .fold_bn = 0};
    char file[4096];
    double kb;
    char name[512];
    build(&a, "parametric_fp_d_xmax");
    fill_info(&in);
    in.config = (char *)"";
    path(file, "export.h5");
    ck_assert_int_eq(mpq_export_write(comm, file, &a.view, &in, &o, &kb), 0);
    /* the first weight's codes replaced by 4096 x 4096 codes (chunked, unwritten) */
    snprintf(name, sizeof name, "/tensors/%s/codes", a.params.info[0].name);
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert_msg(H5Ldelete(f, name, H5P_DEFAULT) >= 0, "no %s", name);
    make_dataset(f, name, H5T_STD_I32LE, 2, (hsize_t[]){4096, 4096});
    H5Fclose(f);
    build(&b, "");
    expect_msg(mpq_export_load(comm, file, &b.view), MPQ_E_FORMAT, file, name, "expected");
    assert_no_open_handles();
    mpq_model_free(&a);
    mpq_model_free(&b);
}
END_TEST

/* ---- inputs that once crashed a fuzz target (tests/fuzz/regressions/TARGET/) ---------------- */

/* Copies each regression input of target to file and calls check(input name, file, ctx) on it,
 * then checks that no HDF5 handle is left open; returns the number of inputs. */
static int each_regression(const char *target, const char *file,
                           void (*check)(const char *input, const char *file, void *ctx), void *ctx)
{
    const char *src = getenv("top_srcdir");
    char list[4096];
    int n = 0;
    ck_assert_msg(src, "top_srcdir is not set (run through make check)");
    snprintf(list, sizeof list, "%s/tests/fuzz/regressions/%s", src, target);
    DIR *d = opendir(list);
    ck_assert_msg(d, "no %s", list);
    for (struct dirent *e; (e = readdir(d));) {
        char in[8192];
        if (e->d_name[0] == '.') continue;
        snprintf(in, sizeof in, "%s/%s", list, e->d_name);
        ck_assert_int_eq(iofix_copy_file(in, file, -1), 0);
        check(e->d_name, file, ctx);
        assert_no_open_handles();
        n++;
    }
    closedir(d);
    return n;
}

/* ---- group walks ----------------------------------------------------------------------------- */

typedef struct walked {
    char paths[8][64];
    int n;
} walked;

static int collect_path(hid_t g, const char *name, const char *path, void *ctx)
{
    walked *w = ctx;
    (void)g, (void)name;
    ck_assert_int_lt(w->n, 8);
    snprintf(w->paths[w->n++], sizeof w->paths[0], "%s", path);
    return 0;
}

/* mpq_h5_walk_datasets, which lists checkpoint and export tensors, enters every group once
 * (a link back to the root is a cycle), follows no soft or external link (an external one names
 * another file), and refuses groups nested deeper than its bound, naming the file. */
START_TEST(test_crafted_group_walk_is_bounded)
{
    char file[4096], other[4096];
    path(file, "groups.h5");
    path(other, "other.h5");
    hid_t o = H5Fcreate(other, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    make_dataset(o, "/X", H5T_IEEE_F32LE, 1, (hsize_t[]){2});
    H5Fclose(o);
    hid_t f = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(1, (hsize_t[]){2}, NULL);
    hid_t d = H5Dcreate2(f, "/a/b/W", H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(d >= 0);
    H5Dclose(d);
    ck_assert(H5Lcreate_hard(f, "/", f, "/a/b/up", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    ck_assert(H5Lcreate_soft("/a/b/W", f, "/a/soft", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    ck_assert(H5Lcreate_external(other, "/X", f, "/a/ext", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    walked w = {.n = 0};
    ck_assert_int_eq(mpq_h5_walk_datasets(f, file, collect_path, &w), 0);
    ck_assert_int_eq(w.n, 1);
    ck_assert_str_eq(w.paths[0], "a/b/W");
    /* one group more than the bound below the root */
    char deep[4096] = "";
    for (int i = 0; i <= MPQ_H5_WALK_DEPTH; i++)
        snprintf(deep + strlen(deep), sizeof deep - strlen(deep), "/g%d", i);
    strcat(deep, "/D");
    d = H5Dcreate2(f, deep, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(d >= 0);
    H5Dclose(d);
    w.n = 0;
    expect_msg(mpq_h5_walk_datasets(f, file, collect_path, &w), MPQ_E_FORMAT, file,
               "nested deeper than 32", NULL);
    H5Sclose(sp);
    H5Pclose(lcpl);
    H5Fclose(f);
    assert_no_open_handles();
}
END_TEST

/* An export file that once stopped the export fuzzer loads with a clean error naming the file,
 * or not at all. */
static void load_export(const char *input, const char *file, void *ctx)
{
    mpq_model *m = ctx;
    mpq_export_entry *t = NULL;
    int nt, packed, fold;
    mpq_err_clear();
    int rc = mpq_export_load(comm, file, &m->view);
    ck_assert_msg(rc == 0 || strstr(mpq_errmsg(), file), "%s: rc %d: %s", input, rc, mpq_errmsg());
    mpq_err_clear();
    rc = mpq_export_table(comm, file, &t, &nt, &packed, &fold);
    ck_assert_msg(rc == 0 || strstr(mpq_errmsg(), file), "%s: rc %d: %s", input, rc, mpq_errmsg());
    free(t);
}

/* Each export regression input (tests/fuzz/regressions/export/: an attribute over-read, a group
 * that links back to its ancestor) ends cleanly, in bounded time (the test case's timeout). */
START_TEST(test_crafted_export_regressions_end_cleanly)
{
    char file[4096];
    mpq_model m;
    path(file, "regress-export.h5");
    build(&m, "");
    ck_assert_int_ge(each_regression("export", file, load_export, &m), 2);
    mpq_model_free(&m);
}
END_TEST

/* ---- IDX and CIFAR -------------------------------------------------------------------------- */

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_crafted_idx_huge_dimensions_and_short_data)
{
    static const uint8_t labels[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 2};
    /* 2^30 x 2^30 x 2^30 bytes: overflows 64 bits */
    static const uint8_t huge[] = {0, 0, 8, 3, 0x40, 0, 0, 0, 0x40, 0, 0, 0, 0x40, 0, 0, 0};
    /* 1000 images of 2^15 x 2^15 pixels: above the per-image limit */
    static const uint8_t wide[] = {0, 0, 8, 3, 0, 0, 3, 0xe8, 0, 0, 0x80, 0, 0, 0, 0x80, 0};
    /* 2 images of 28x28 claimed, 10 bytes present */
    static const uint8_t shortd[] = {0, 0, 8,  3, 0, 0, 0, 2, 0, 0, 0, 28, 0,
                                     0, 0, 28, 1, 2, 3, 4, 5, 6, 7, 8, 9,  10};
    /* a dimension of zero */
    static const uint8_t zero[] = {0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28};
    mpq_idx_data d;
    write_bytes(sub("labels.idx"), labels, sizeof labels);
    write_bytes(sub("huge.idx"), huge, sizeof huge);
    write_bytes(sub("wide.idx"), wide, sizeof wide);
    write_bytes(sub("short.idx"), shortd, sizeof shortd);
    write_bytes(sub("zero.idx"), zero, sizeof zero);
    expect_msg(mpq_idx_load(sub("huge.idx"), sub("labels.idx"), 0, &d), MPQ_E_FORMAT,
               sub("huge.idx"), "too large", NULL);
    ck_assert_ptr_null(d.images);
    expect_msg(mpq_idx_load(sub("wide.idx"), sub("labels.idx"), 0, &d), MPQ_E_FORMAT,
               sub("wide.idx"), "too large", NULL);
    expect_msg(mpq_idx_load(sub("short.idx"), sub("labels.idx"), 0, &d), MPQ_E_FORMAT,
               sub("short.idx"), "truncated", "1568");
    expect_msg(mpq_idx_load(sub("zero.idx"), sub("labels.idx"), 0, &d), MPQ_E_FORMAT,
               sub("zero.idx"), "dimension 0 is 0", NULL);
    /* the labels file as images: IDX1 is refused by rank */
    expect_msg(mpq_idx_load(sub("labels.idx"), sub("labels.idx"), 0, &d), MPQ_E_FORMAT,
               sub("labels.idx"), "IDX3", NULL);
}
END_TEST

START_TEST(test_crafted_cifar_truncated_batch_and_bad_label)
{
    enum { RECORD = 3073 };
    uint8_t *rec = calloc(3, RECORD);
    mpq_cifar_buf b = {0};
    write_bytes(sub("cut.bin"), rec, 2 * RECORD - 5);
    expect_msg(mpq_cifar_read_batch(sub("cut.bin"), &b), MPQ_E_FORMAT, sub("cut.bin"), "truncated",
               NULL);
    ck_assert_int_eq(b.n, 0);
    rec[RECORD] = 10; /* second record's label */
    write_bytes(sub("label.bin"), rec, 3 * RECORD);
    expect_msg(mpq_cifar_read_batch(sub("label.bin"), &b), MPQ_E_FORMAT, sub("label.bin"),
               "record 1 has label 10", NULL);
    write_bytes(sub("empty.bin"), rec, 0);
    expect_msg(mpq_cifar_read_batch(sub("empty.bin"), &b), MPQ_E_FORMAT, sub("empty.bin"), NULL,
               NULL);
    rec[RECORD] = 9;
    write_bytes(sub("good.bin"), rec, 3 * RECORD);
    ck_assert_int_eq(mpq_cifar_read_batch(sub("good.bin"), &b), 0);
    ck_assert_int_eq(b.n, 3);
    ck_assert_int_eq(b.labels[1], 9);
    mpq_cifar_buf_free(&b);
    free(rec);
}
END_TEST

/* ---- JPEG ----------------------------------------------------------------------------------- */

/* A 64x48 RGB JPEG of a gradient, malloc'ed (tjFree'd by the caller through free_jpeg). */
static unsigned char *make_jpeg(unsigned long *size)
{
    enum { W = 64, H = 48 };
    static uint8_t px[W * H * 3];
    for (int i = 0; i < W * H * 3; i++)
        px[i] = (uint8_t)(i * 7);
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    ck_assert(tjCompress2(tj, px, W, 0, H, TJPF_RGB, &buf, size, TJSAMP_444, 90, 0) == 0);
    tjDestroy(tj);
    return buf;
}

/* Sets the frame header (SOF0..SOF2) of a JPEG to w x h. */
static void patch_size(unsigned char *j, unsigned long n, int w, int h)
{
    for (unsigned long i = 2; i + 9 < n; i++)
        if (j[i] == 0xFF && j[i + 1] >= 0xC0 && j[i + 1] <= 0xC2) {
            j[i + 5] = (unsigned char)(h >> 8);
            j[i + 6] = (unsigned char)h;
            j[i + 7] = (unsigned char)(w >> 8);
            j[i + 8] = (unsigned char)w;
            return;
        }
    ck_abort_msg("no SOF marker");
}

START_TEST(test_crafted_jpeg_truncated_and_huge_header)
{
    unsigned long n;
    unsigned char *j = make_jpeg(&n);
    uint8_t out[16 * 16 * 3];
    tjhandle tj = tjInitDecompress();
    ck_assert_int_eq(mpq_jpeg_decode_square(tj, j, n, "good.jpg", 16, 1L << 26, out), 0);
    /* the first 60% of the file: libjpeg patches it up with a warning; mpq refuses it */
    expect_msg(mpq_jpeg_decode_square(tj, j, n * 6 / 10, "cut.jpg", 16, 1L << 26, out),
               MPQ_E_FORMAT, "cut.jpg", "damaged or truncated", NULL);
    /* 20000 x 20000 claimed: refused from the header, before any allocation */
    patch_size(j, n, 20000, 20000);
    expect_msg(mpq_jpeg_decode_square(tj, j, n, "huge.jpg", 16, 1L << 26, out), MPQ_E_FORMAT,
               "huge.jpg", "20000x20000", "--max-pixels");
    /* not a JPEG at all */
    expect_msg(
        mpq_jpeg_decode_square(tj, (const uint8_t *)"GIF89a", 6, "gif.jpg", 16, 1L << 26, out),
        MPQ_E_FORMAT, "gif.jpg", "not a readable JPEG", NULL);
    tjDestroy(tj);
    tjFree(j);
}
END_TEST

/* mpq prep imagefolder: a truncated file fails naming it, or is skipped and counted. */
START_TEST(test_crafted_imagefolder_truncated_jpeg_fails_or_is_skipped)
{
    unsigned long n;
    unsigned char *j = make_jpeg(&n);
    char dir[4096], out[4096];
    path(dir, "imgs");
    path(out, "split");
    mpq_prep_imagefolder_opts o = {.dir = dir, .out_dir = out, .size = 8};
    mpq_split *s;
    mkdir(sub("imgs"), 0777);
    mkdir(sub("imgs/a"), 0777);
    mkdir(sub("imgs/b"), 0777);
    write_bytes(sub("imgs/a/1.jpg"), j, n);
    write_bytes(sub("imgs/b/2.jpg"), j, n);
    write_bytes(sub("imgs/b/3.jpg"), j, n / 2);
    expect_msg(mpq_prep_imagefolder(&o, NULL), MPQ_E_FORMAT, sub("imgs/b/3.jpg"), "truncated",
               NULL);
    o.skip_bad = 1;
    ck_assert_msg(mpq_prep_imagefolder(&o, NULL) == 0, "%s", mpq_errmsg());
    ck_assert_int_eq(mpq_split_open(sub("split"), &s), 0);
    ck_assert_int_eq(mpq_split_info(s)->n_samples, 2);
    mpq_split_close(s);
    /* a pixel limit below 64x48 refuses the good files too */
    o.skip_bad = 0;
    o.max_pixels = 1000;
    expect_msg(mpq_prep_imagefolder(&o, NULL), MPQ_E_FORMAT, sub("imgs/a/1.jpg"), "64x48", NULL);
    tjFree(j);
}
END_TEST

/* A shard regression input, opened as the only shard of a split (ctx: the split's directory),
 * gives a clean error naming the shard. */
static void open_shard(const char *input, const char *shard, void *ctx)
{
    mpq_split *s = NULL;
    mpq_err_clear();
    int rc = mpq_split_open(ctx, &s);
    ck_assert_msg(rc == MPQ_E_FORMAT && strstr(mpq_errmsg(), shard), "%s: rc %d: %s", input, rc,
                  mpq_errmsg());
    ck_assert_ptr_null(s);
}

START_TEST(test_crafted_fuzz_regressions_give_clean_errors)
{
    char dir[4096], shard[4096];
    path(dir, "regress");
    mkdir(dir, 0777);
    snprintf(shard, sizeof shard, "%s/shard-00000.h5", dir);
    ck_assert_int_ge(each_regression("shard", shard, open_shard, dir), 1);
}
END_TEST

static Suite *crafted_suite(void)
{
    Suite *s = suite_create("crafted");
    TCase *tc = tcase_create("hdf5");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crafted_shard_row_count_and_image_size_overflow);
    tcase_add_test(tc, test_crafted_shard_datasets_of_wrong_rank_extents_and_type);
    tcase_add_test(tc, test_crafted_checked_read_refuses_before_reading);
    tcase_add_test(tc, test_crafted_checkpoint_strings_and_config);
    tcase_add_test(tc, test_crafted_export_tensor_larger_than_the_model);
    tcase_add_test(tc, test_crafted_group_walk_is_bounded);
    tcase_add_test(tc, test_crafted_export_regressions_end_cleanly);
    suite_add_tcase(s, tc);
    tc = tcase_create("raw");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_crafted_idx_huge_dimensions_and_short_data);
    tcase_add_test(tc, test_crafted_cifar_truncated_batch_and_bad_label);
    tcase_add_test(tc, test_crafted_jpeg_truncated_and_huge_header);
    tcase_add_test(tc, test_crafted_imagefolder_truncated_jpeg_fails_or_is_skipped);
    tcase_add_test(tc, test_crafted_fuzz_regressions_give_clean_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    return mpq_test_main_mpi(&argc, &argv, crafted_suite, &comm, &tmp);
}

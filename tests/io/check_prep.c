/* io converters: IDX (gzip and plain), CIFAR-10 binary and JPEG class folders converted from
 * fixtures made here (zlib, stdio, turbojpeg at quality 100) and read back pixel by pixel and
 * label by label; statistics; --stats-from; bad inputs naming the file; interrupted conversions
 * that never look complete. */
#include <check.h>
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <zlib.h>

#include "core/err.h"
#include "core/log.h"
#include "io/prep.h"
#include "io/prep_util.h"
#include "io/shard.h"
#include "iofix.h"
#include "testutil.h"

enum { MAX_PATHS = 512 };
static char *tmp, *paths[MAX_PATHS];
static int n_paths;

static void setup(void)
{
    mpq_log_set_quiet(1);
    tmp = mpq_test_tmpdir();
    ck_assert_ptr_nonnull(tmp);
}

/* Every HDF5 object the io code opened is closed again (error paths included). */
static void teardown(void)
{
    ck_assert_int_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
    mpq_test_rmtree(tmp);
    free(tmp);
    for (int i = 0; i < n_paths; i++)
        free(paths[i]);
    n_paths = 0;
}

/* tmp/name, a string that lives until the end of the test (freed by teardown). */
static const char *sub(const char *name)
{
    char *p = malloc(strlen(tmp) + strlen(name) + 2);
    ck_assert_ptr_nonnull(p);
    sprintf(p, "%s/%s", tmp, name);
    ck_assert_int_lt(n_paths, MAX_PATHS);
    paths[n_paths++] = p;
    return p;
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d))) {
        size_t a = strlen(e->d_name), b = strlen(suffix);
        n += a > b && !strcmp(e->d_name + a - b, suffix);
    }
    closedir(d);
    return n;
}

/* Opens dir and checks mean/std against the statistics of all its pixels. */
static mpq_split *open_checked(const char *dir)
{
    mpq_split *s = NULL;
    const mpq_data_info *in;
    double sum[4] = {0}, sq[4] = {0};
    size_t img;
    uint8_t *px;
    ck_assert_msg(mpq_split_open(dir, &s) == 0, "%s", mpq_errmsg());
    in = mpq_split_info(s);
    img = (size_t)in->h * in->w * in->c;
    px = malloc(img);
    for (long i = 0; i < in->n_samples; i++) {
        ck_assert_int_eq(mpq_split_read(s, i, px, NULL), 0);
        for (size_t p = 0; p < img; p++) {
            sum[p % in->c] += px[p];
            sq[p % in->c] += (double)px[p] * px[p];
        }
    }
    for (int ch = 0; ch < in->c; ch++) {
        double n = (double)in->n_samples * in->h * in->w, m = sum[ch] / n;
        ck_assert_double_eq_tol(in->mean[ch], m, 1e-3 * (1 + m));
        ck_assert_double_eq_tol(in->std[ch], sqrt(sq[ch] / n - m * m), 1e-3 * (1 + m));
    }
    free(px);
    return s;
}

/* ---- IDX ---------------------------------------------------------------------------------- */

/* IDX file of unsigned bytes: header, big-endian dims, the first data_bytes bytes of data. */
static void write_idx(const char *path, int gz, int nd, const int *dims, const uint8_t *data,
                      size_t data_bytes)
{
    uint8_t head[4 + 16] = {0, 0, 8, (uint8_t)nd};
    for (int i = 0; i < nd; i++)
        for (int b = 0; b < 4; b++)
            head[4 + 4 * i + b] = (uint8_t)((unsigned)dims[i] >> (24 - 8 * b));
    if (gz) {
        gzFile g = gzopen(path, "wb");
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(gzwrite(g, head, 4 + 4 * (unsigned)nd), 4 + 4 * nd);
        if (data_bytes) ck_assert_int_eq(gzwrite(g, data, (unsigned)data_bytes), (int)data_bytes);
        ck_assert_int_eq(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        fwrite(head, 1, 4 + 4 * (size_t)nd, f);
        fwrite(data, 1, data_bytes, f);
        ck_assert_int_eq(fclose(f), 0);
    }
}

enum { IN = 37, IH = 5, IW = 7 };

static uint8_t idx_pixel(long i, int p) { return (uint8_t)((i * 37 + p * 11 + (i * p) % 7) & 255); }

/* images (gz or plain) and labels (the other) of IN samples, c channels (IDX4 when c > 1). */
static void write_idx_pair(const char *images, const char *labels, int images_gz, int c)
{
    uint8_t *px = malloc((size_t)IN * IH * IW * c), lab[IN];
    int di[4] = {IN, IH, IW, c}, dl[1] = {IN};
    for (long i = 0; i < IN; i++) {
        for (int p = 0; p < IH * IW * c; p++)
            px[i * IH * IW * c + p] = idx_pixel(i, p);
        lab[i] = (uint8_t)((i * 5) % 4);
    }
    write_idx(images, images_gz, c > 1 ? 4 : 3, di, px, (size_t)IN * IH * IW * c);
    write_idx(labels, !images_gz, 1, dl, lab, IN);
    free(px);
}

/* The split holds samples first .. first + n - 1 of the IDX pair; own_stats: its mean/std are
 * those of its own pixels (not --stats-from). */
static void check_idx_split_from(const char *dir, long first, long n, int c, int own_stats)
{
    mpq_split *s = NULL;
    const mpq_data_info *in;
    if (own_stats)
        s = open_checked(dir);
    else
        ck_assert_int_eq(mpq_split_open(dir, &s), 0);
    in = mpq_split_info(s);
    uint8_t px[IH * IW * 3];
    int label;
    ck_assert_int_eq(in->n_samples, n);
    ck_assert_int_eq(in->h, IH);
    ck_assert_int_eq(in->w, IW);
    ck_assert_int_eq(in->c, c);
    ck_assert_int_eq(in->num_classes, 4);
    for (long i = 0; i < n; i++) {
        ck_assert_int_eq(mpq_split_read(s, i, px, &label), 0);
        for (int p = 0; p < IH * IW * c; p++)
            ck_assert_int_eq(px[p], idx_pixel(first + i, p));
        ck_assert_int_eq(label, ((first + i) * 5) % 4);
    }
    mpq_split_close(s);
}

static void check_idx_split(const char *dir, long n, int c, int own_stats)
{
    check_idx_split_from(dir, 0, n, c, own_stats);
}

START_TEST(test_prep_idx_gzip_and_plain_round_trip)
{
    mpq_prep_idx_opts o = {.shards = 3};
    write_idx_pair(sub("img.gz"), sub("lab"), 1, 1);
    o.images = sub("img.gz");
    o.labels = sub("lab");
    o.out_dir = sub("out/train");
    ck_assert_msg(mpq_prep_idx(&o) == 0, "%s", mpq_errmsg());
    ck_assert_int_eq(count_files(sub("out/train"), ".h5"), 3);
    check_idx_split(sub("out/train"), IN, 1, 1);
    /* plain images, gzip labels, IDX4 with 3 channels, more shards than samples */
    write_idx_pair(sub("img3"), sub("lab3.gz"), 0, 3);
    o.images = sub("img3");
    o.labels = sub("lab3.gz");
    o.out_dir = sub("out3");
    o.shards = 100;
    ck_assert_msg(mpq_prep_idx(&o) == 0, "%s", mpq_errmsg());
    ck_assert_int_eq(count_files(sub("out3"), ".h5"), IN);
    check_idx_split(sub("out3"), IN, 3, 1);
}
END_TEST

START_TEST(test_prep_idx_limit_and_test_split_with_training_statistics)
{
    mpq_prep_idx_opts o = {.shards = 1};
    mpq_split *train, *test;
    write_idx_pair(sub("img.gz"), sub("lab"), 1, 1);
    o.images = sub("img.gz");
    o.labels = sub("lab");
    o.out_dir = sub("train");
    ck_assert_int_eq(mpq_prep_idx(&o), 0);
    o.out_dir = sub("test");
    o.limit = 10;
    o.stats_from = sub("train");
    ck_assert_msg(mpq_prep_idx(&o) == 0, "%s", mpq_errmsg());
    ck_assert_int_eq(mpq_split_open(sub("train"), &train), 0);
    ck_assert_int_eq(mpq_split_open(sub("test"), &test), 0);
    ck_assert_int_eq(mpq_split_info(test)->n_samples, 10);
    ck_assert_float_eq(mpq_split_info(test)->mean[0], mpq_split_info(train)->mean[0]);
    ck_assert_float_eq(mpq_split_info(test)->std[0], mpq_split_info(train)->std[0]);
    mpq_split_close(train);
    mpq_split_close(test);
    check_idx_split(sub("test"), 10, 1, 0);
    /* without --stats-from, the first 10 have statistics of their own */
    o.stats_from = NULL;
    o.out_dir = sub("own");
    ck_assert_int_eq(mpq_prep_idx(&o), 0);
    check_idx_split(sub("own"), 10, 1, 1);
    /* a split held out from the training images: --skip 5 --limit 10 is samples 5..14, --skip
     * 5 alone the rest; skipping all of them is an error naming the file */
    o.skip = 5;
    o.out_dir = sub("held");
    ck_assert_msg(mpq_prep_idx(&o) == 0, "%s", mpq_errmsg());
    check_idx_split_from(sub("held"), 5, 10, 1, 1);
    o.limit = 0;
    o.stats_from = sub("train");
    ck_assert_int_eq(mpq_prep_idx(&o), 0);
    check_idx_split_from(sub("held"), 5, IN - 5, 1, 0);
    o.skip = IN;
    ck_assert_int_eq(mpq_prep_idx(&o), MPQ_E_ARG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "img.gz"));
}
END_TEST

static void expect_idx_error(const char *images, const char *labels, int rc, const char *name)
{
    mpq_prep_idx_opts o = {
        .images = images, .labels = labels, .out_dir = sub("bad_out"), .shards = 1};
    int got = mpq_prep_idx(&o);
    ck_assert_msg(got == rc, "got %d want %d: %s", got, rc, mpq_errmsg());
    ck_assert_msg(strstr(mpq_errmsg(), name), "'%s' does not name %s", mpq_errmsg(), name);
}

START_TEST(test_prep_idx_bad_files_fail_naming_the_file)
{
    uint8_t data[100] = {0};
    int dims[3] = {IN, IH, IW}, d1[1] = {IN - 1}, d2[2] = {IN, 2};
    write_idx_pair(sub("img.gz"), sub("lab"), 1, 1);
    write_idx(sub("short.gz"), 1, 3, dims, data, sizeof data); /* header promises more */
    write_idx(sub("short"), 0, 3, dims, data, sizeof data);
    write_idx(sub("lab_n"), 0, 1, d1, data, IN - 1);
    write_idx(sub("lab_2d"), 0, 2, d2, data, 2 * IN);
    ck_assert_int_eq(iofix_write_text(sub("text"), "hello, not IDX\n"), 0);
    expect_idx_error(sub("nothere.gz"), sub("lab"), MPQ_E_IO, sub("nothere.gz"));
    expect_idx_error(sub("short.gz"), sub("lab"), MPQ_E_FORMAT, sub("short.gz"));
    expect_idx_error(sub("short"), sub("lab"), MPQ_E_FORMAT, sub("short"));
    expect_idx_error(sub("text"), sub("lab"), MPQ_E_FORMAT, sub("text"));
    expect_idx_error(sub("img.gz"), sub("lab_n"), MPQ_E_FORMAT, sub("lab_n"));
    expect_idx_error(sub("img.gz"), sub("lab_2d"), MPQ_E_FORMAT, sub("lab_2d"));
    expect_idx_error(sub("img.gz"), sub("lab"), MPQ_OK, "");
    { /* --stats-from a split that is not there */
        mpq_prep_idx_opts o = {.images = sub("img.gz"),
                               .labels = sub("lab"),
                               .out_dir = sub("o2"),
                               .shards = 1,
                               .stats_from = sub("none")};
        ck_assert_int_eq(mpq_prep_idx(&o), MPQ_E_IO);
        ck_assert_ptr_nonnull(strstr(mpq_errmsg(), sub("none")));
    }
}
END_TEST

/* ---- CIFAR-10 ----------------------------------------------------------------------------- */

enum { CREC = 3073, CPER = 3 };

static uint8_t cifar_value(long rec, int ch, int p)
{
    return (uint8_t)((rec * 13 + ch * 71 + p * 3) & 255);
}
static int cifar_label(long rec) { return (int)((rec * 3 + 1) % 10); }

/* Records first..first+n-1 into path (CHW planes). */
static void write_cifar_batch(const char *path, long first, long n, long bytes_cut)
{
    FILE *f = fopen(path, "wb");
    uint8_t rec[CREC];
    ck_assert_ptr_nonnull(f);
    for (long r = first; r < first + n; r++) {
        rec[0] = (uint8_t)cifar_label(r);
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 1024; p++)
                rec[1 + ch * 1024 + p] = cifar_value(r, ch, p);
        fwrite(rec, 1, r == first + n - 1 ? CREC - (size_t)bytes_cut : CREC, f);
    }
    ck_assert_int_eq(fclose(f), 0);
}

static void write_cifar(const char *dir, long cut)
{
    char path[4096];
    mkdir(dir, 0777);
    for (int b = 1; b <= 5; b++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, b);
        write_cifar_batch(path, (b - 1) * CPER, CPER, 0);
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    write_cifar_batch(path, 100, 2, cut);
}

START_TEST(test_prep_cifar10_round_trip_planes_to_hwc)
{
    mpq_prep_cifar10_opts o = {.dir = sub("raw"), .out_dir = sub("c10"), .shards = 2};
    mpq_split *s, *v;
    uint8_t px[32 * 32 * 3];
    int label;
    write_cifar(sub("raw"), 0);
    ck_assert_msg(mpq_prep_cifar10(&o) == 0, "%s", mpq_errmsg());
    s = open_checked(sub("c10/train"));
    ck_assert_int_eq(mpq_split_info(s)->n_samples, 5 * CPER);
    ck_assert_int_eq(mpq_split_info(s)->num_classes, 10);
    ck_assert_int_eq(count_files(sub("c10/train"), ".h5"), 2);
    for (long i = 0; i < 5 * CPER; i++) {
        ck_assert_int_eq(mpq_split_read(s, i, px, &label), 0);
        ck_assert_int_eq(label, cifar_label(i));
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int ch = 0; ch < 3; ch++)
                    ck_assert_int_eq(px[(y * 32 + x) * 3 + ch], cifar_value(i, ch, y * 32 + x));
    }
    ck_assert_int_eq(mpq_split_open(sub("c10/val"), &v), 0);
    ck_assert_int_eq(mpq_split_info(v)->n_samples, 2);
    ck_assert_int_eq(mpq_split_read(v, 1, px, &label), 0);
    ck_assert_int_eq(label, cifar_label(101));
    ck_assert_int_eq(px[(3 * 32 + 4) * 3 + 2], cifar_value(101, 2, 3 * 32 + 4));
    for (int ch = 0; ch < 3; ch++) { /* validation carries the training statistics */
        ck_assert_float_eq(mpq_split_info(v)->mean[ch], mpq_split_info(s)->mean[ch]);
        ck_assert_float_eq(mpq_split_info(v)->std[ch], mpq_split_info(s)->std[ch]);
    }
    mpq_split_close(s);
    mpq_split_close(v);
}
END_TEST

START_TEST(test_prep_cifar10_bad_batches_fail_naming_the_file)
{
    mpq_prep_cifar10_opts o = {.dir = sub("raw"), .out_dir = sub("c10"), .shards = 1};
    char path[4096];
    uint8_t rec[CREC] = {10}; /* label 10 */
    FILE *f;
    write_cifar(sub("raw"), 5); /* the test batch lost 5 bytes */
    ck_assert_int_eq(mpq_prep_cifar10(&o), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "test_batch.bin"));
    write_cifar(sub("raw"), 0);
    snprintf(path, sizeof path, "%s/data_batch_4.bin", sub("raw"));
    f = fopen(path, "wb");
    fwrite(rec, 1, sizeof rec, f);
    fclose(f);
    ck_assert_int_eq(mpq_prep_cifar10(&o), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), path));
    remove(path);
    ck_assert_int_eq(mpq_prep_cifar10(&o), MPQ_E_IO);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), path));
}
END_TEST

/* ---- JPEG class folders ------------------------------------------------------------------- */

static void write_jpeg(const char *path, const uint8_t *px, int w, int h, int gray)
{
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    unsigned long size = 0;
    FILE *f;
    ck_assert_ptr_nonnull(tj);
    ck_assert_msg(tjCompress2(tj, px, w, 0, h, gray ? TJPF_GRAY : TJPF_RGB, &buf, &size,
                              gray ? TJSAMP_GRAY : TJSAMP_444, 100, 0) == 0,
                  "%s", tjGetErrorStr2(tj));
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(buf, 1, size, f);
    ck_assert_int_eq(fclose(f), 0);
    tjFree(buf);
    tjDestroy(tj);
}

/* Decodes path to RGB (size, size, 3) directly with turbojpeg. */
static void decode_direct(const char *path, int size, uint8_t *out)
{
    FILE *f = fopen(path, "rb");
    unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    int w, h, ss, cs;
    tjhandle tj = tjInitDecompress();
    fclose(f);
    ck_assert_int_eq(tjDecompressHeader3(tj, buf, n, &w, &h, &ss, &cs), 0);
    ck_assert_int_eq(w, size);
    ck_assert_int_eq(h, size);
    ck_assert_int_eq(tjDecompress2(tj, buf, n, out, w, 0, h, TJPF_RGB, 0), 0);
    tjDestroy(tj);
}

enum { S = 16 };
static const uint8_t colour_c1[3] = {200, 30, 90}, colour_c2[3] = {10, 250, 128};

static void smooth_image(int seed, uint8_t *px, int channels)
{
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int ch = 0; ch < channels; ch++)
                px[(y * S + x) * channels + ch] = (uint8_t)(40 + 8 * x + 5 * y + 20 * ch + seed);
}

static void solid(int w, int h, const uint8_t *rgb, uint8_t *px)
{
    for (int i = 0; i < w * h; i++)
        memcpy(px + 3 * i, rgb, 3);
}

/* imgs/ant: a1.jpg, a2.JPG (S x S colour), g.jpeg (S x S gray); imgs/cat: c1.jpg (40 x 24),
 * c2.jpeg (24 x 40), solid colours; plus files and folders that must be ignored. */
static void write_folder(void)
{
    uint8_t px[40 * 24 * 3];
    mkdir(sub("imgs"), 0777);
    mkdir(sub("imgs/ant"), 0777);
    mkdir(sub("imgs/cat"), 0777);
    mkdir(sub("imgs/.hidden"), 0777);
    ck_assert_int_eq(iofix_write_text(sub("imgs/notes.txt"), "not a class\n"), 0);
    ck_assert_int_eq(iofix_write_text(sub("imgs/ant/readme.txt"), "not an image\n"), 0);
    smooth_image(0, px, 3);
    write_jpeg(sub("imgs/ant/a1.jpg"), px, S, S, 0);
    smooth_image(30, px, 3);
    write_jpeg(sub("imgs/ant/a2.JPG"), px, S, S, 0);
    smooth_image(10, px, 1);
    write_jpeg(sub("imgs/ant/g.jpeg"), px, S, S, 1);
    solid(40, 24, colour_c1, px);
    write_jpeg(sub("imgs/cat/c1.jpg"), px, 40, 24, 0);
    solid(24, 40, colour_c2, px);
    write_jpeg(sub("imgs/cat/c2.jpeg"), px, 24, 40, 0);
}

static void check_solid(const uint8_t *px, const uint8_t *rgb)
{
    for (int i = 0; i < S * S; i++)
        for (int ch = 0; ch < 3; ch++)
            ck_assert_int_le(abs(px[3 * i + ch] - rgb[ch]), 3);
}

START_TEST(test_prep_imagefolder_round_trip)
{
    mpq_prep_imagefolder_opts o = {
        .dir = sub("imgs"), .out_dir = sub("out"), .size = S, .shards = 2};
    mpq_split *s;
    uint8_t px[S * S * 3], direct[S * S * 3], orig[S * S * 3];
    int label;
    write_folder();
    ck_assert_msg(mpq_prep_imagefolder(&o, NULL) == 0, "%s", mpq_errmsg());
    ck_assert_int_eq(count_files(sub("out"), ".h5"), 2);
    s = open_checked(sub("out"));
    ck_assert_int_eq(mpq_split_info(s)->n_samples, 5);
    ck_assert_int_eq(mpq_split_info(s)->num_classes, 2);
    ck_assert_int_eq(mpq_split_info(s)->h, S);
    ck_assert_int_eq(mpq_split_info(s)->c, 3);
    for (int i = 0; i < 2; i++) { /* S x S: the decoded pixels exactly, near the originals */
        const char *file = sub(i ? "imgs/ant/a2.JPG" : "imgs/ant/a1.jpg");
        ck_assert_int_eq(mpq_split_read(s, i, px, &label), 0);
        ck_assert_int_eq(label, 0);
        decode_direct(file, S, direct);
        ck_assert_mem_eq(px, direct, sizeof px);
        smooth_image(i ? 30 : 0, orig, 3);
        for (int p = 0; p < S * S * 3; p++)
            ck_assert_int_le(abs(px[p] - orig[p]), 6);
    }
    ck_assert_int_eq(mpq_split_read(s, 2, px, &label), 0); /* gray -> R = G = B */
    ck_assert_int_eq(label, 0);
    smooth_image(10, orig, 1);
    for (int p = 0; p < S * S; p++) {
        ck_assert_int_eq(px[3 * p], px[3 * p + 1]);
        ck_assert_int_eq(px[3 * p], px[3 * p + 2]);
        ck_assert_int_le(abs(px[3 * p] - orig[p]), 4);
    }
    ck_assert_int_eq(mpq_split_read(s, 3, px, &label), 0); /* wide, resized and cut */
    ck_assert_int_eq(label, 1);
    check_solid(px, colour_c1);
    ck_assert_int_eq(mpq_split_read(s, 4, px, &label), 0); /* tall */
    ck_assert_int_eq(label, 1);
    check_solid(px, colour_c2);
    mpq_split_close(s);
    /* a class list fixes another label order; the split written again replaces the old one */
    ck_assert_int_eq(iofix_write_text(sub("classes.txt"), "cat\n\n  ant \n"), 0);
    o.classes_file = sub("classes.txt");
    o.shards = 0;
    ck_assert_msg(mpq_prep_imagefolder(&o, NULL) == 0, "%s", mpq_errmsg());
    ck_assert_int_eq(count_files(sub("out"), ".h5"), 1);
    s = open_checked(sub("out"));
    ck_assert_int_eq(mpq_split_read(s, 0, px, &label), 0);
    ck_assert_int_eq(label, 0);
    check_solid(px, colour_c1);
    ck_assert_int_eq(mpq_split_read(s, 4, px, &label), 0);
    ck_assert_int_eq(label, 1);
    mpq_split_close(s);
}
END_TEST

START_TEST(test_prep_imagefolder_bad_inputs_fail_naming_the_file)
{
    mpq_prep_imagefolder_opts o = {.dir = sub("imgs"), .out_dir = sub("out"), .size = S};
    mpq_split *s;
    write_folder();
    ck_assert_int_eq(iofix_write_text(sub("imgs/cat/broken.jpg"), "GIF89a, not a JPEG"), 0);
    ck_assert_int_eq(mpq_prep_imagefolder(&o, NULL), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), sub("imgs/cat/broken.jpg")));
    /* the failed conversion does not look like a split */
    ck_assert_int_eq(mpq_split_open(sub("out"), &s), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "interrupted"));
    o.skip_bad = 1;
    ck_assert_msg(mpq_prep_imagefolder(&o, NULL) == 0, "%s", mpq_errmsg());
    s = open_checked(sub("out"));
    ck_assert_int_eq(mpq_split_info(s)->n_samples, 5);
    mpq_split_close(s);
    ck_assert_int_eq(count_files(sub("out"), ".tmp"), 0);
    o.dir = sub("nowhere");
    ck_assert_int_eq(mpq_prep_imagefolder(&o, NULL), MPQ_E_IO);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), sub("nowhere")));
    o.dir = sub("imgs");
    ck_assert_int_eq(iofix_write_text(sub("classes.txt"), "ant\ndog\n"), 0);
    o.classes_file = sub("classes.txt");
    ck_assert_int_eq(mpq_prep_imagefolder(&o, NULL), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "classes.txt:2"));
    o.classes_file = NULL;
    mkdir(sub("empty"), 0777);
    mkdir(sub("empty/a"), 0777);
    o.dir = sub("empty");
    ck_assert_int_eq(mpq_prep_imagefolder(&o, NULL), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), sub("empty")));
}
END_TEST

/* CMYK JPEGs (stored as YCCK, Adobe-inverted as Photoshop writes them) become RGB: with K = 255
 * (no black) the RGB pixel is the stored C, M, Y. */
START_TEST(test_prep_imagefolder_cmyk_becomes_rgb)
{
    mpq_prep_imagefolder_opts o = {.dir = sub("cmyk"), .out_dir = sub("out"), .size = 8};
    static const uint8_t cmyk[4] = {200, 100, 50, 255};
    uint8_t px[8 * 8 * 4], rgb[8 * 8 * 3];
    unsigned char *buf = NULL;
    unsigned long size = 0;
    tjhandle tj = tjInitCompress();
    mpq_split *s;
    FILE *f;
    for (int i = 0; i < 8 * 8; i++)
        memcpy(px + 4 * i, cmyk, 4);
    ck_assert_int_eq(tjCompress2(tj, px, 8, 0, 8, TJPF_CMYK, &buf, &size, TJSAMP_444, 100, 0), 0);
    tjDestroy(tj);
    mkdir(sub("cmyk"), 0777);
    mkdir(sub("cmyk/only"), 0777);
    f = fopen(sub("cmyk/only/k.jpg"), "wb");
    fwrite(buf, 1, size, f);
    fclose(f);
    tjFree(buf);
    ck_assert_msg(mpq_prep_imagefolder(&o, NULL) == 0, "%s", mpq_errmsg());
    ck_assert_int_eq(mpq_split_open(sub("out"), &s), 0);
    ck_assert_int_eq(mpq_split_read(s, 0, rgb, NULL), 0);
    for (int i = 0; i < 8 * 8; i++)
        for (int ch = 0; ch < 3; ch++)
            ck_assert_int_le(abs(rgb[3 * i + ch] - cmyk[ch]), 3);
    mpq_split_close(s);
}
END_TEST

/* An interrupted rerun (marker written, old shards gone, a half-written temporary left) is
 * refused; finishing the conversion again restores a complete split with no leftovers. Other
 * HDF5 files in the output directory are never deleted. */
START_TEST(test_prep_interrupted_conversion_never_looks_complete)
{
    mpq_prep_idx_opts o = {.shards = 2};
    mpq_split *s;
    char marker[4096 + 32];
    write_idx_pair(sub("img.gz"), sub("lab"), 1, 1);
    o.images = sub("img.gz");
    o.labels = sub("lab");
    o.out_dir = sub("out");
    ck_assert_int_eq(mpq_prep_idx(&o), 0);
    ck_assert_int_eq(mpq_prep_begin(sub("out")), 0); /* a rerun that dies after starting */
    ck_assert_int_eq(iofix_write_text(sub("out/shard-00000.h5.tmp"), "half"), 0);
    ck_assert_int_eq(count_files(sub("out"), ".h5"), 0);
    snprintf(marker, sizeof marker, "%s/%s", sub("out"), MPQ_SPLIT_INCOMPLETE);
    ck_assert_int_eq(mpq_split_open(sub("out"), &s), MPQ_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), marker));
    ck_assert_int_eq(mpq_prep_idx(&o), 0);
    ck_assert_int_eq(count_files(sub("out"), ".tmp"), 0);
    ck_assert_int_eq(count_files(sub("out"), MPQ_SPLIT_INCOMPLETE), 0);
    check_idx_split(sub("out"), IN, 1, 1);
    ck_assert_int_eq(iofix_copy_file(sub("out/shard-00000.h5"), sub("out/mine.h5"), -1), 0);
    ck_assert_int_eq(mpq_prep_idx(&o), MPQ_E_ARG);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "mine.h5"));
    ck_assert_int_eq(count_files(sub("out"), ".h5"), 3);
}
END_TEST

static Suite *prep_suite(void)
{
    Suite *s = suite_create("prep");
    TCase *tc = tcase_create("prep");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_prep_idx_gzip_and_plain_round_trip);
    tcase_add_test(tc, test_prep_idx_limit_and_test_split_with_training_statistics);
    tcase_add_test(tc, test_prep_idx_bad_files_fail_naming_the_file);
    tcase_add_test(tc, test_prep_cifar10_round_trip_planes_to_hwc);
    tcase_add_test(tc, test_prep_cifar10_bad_batches_fail_naming_the_file);
    tcase_add_test(tc, test_prep_imagefolder_round_trip);
    tcase_add_test(tc, test_prep_imagefolder_bad_inputs_fail_naming_the_file);
    tcase_add_test(tc, test_prep_imagefolder_cmyk_becomes_rgb);
    tcase_add_test(tc, test_prep_interrupted_conversion_never_looks_complete);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(prep_suite); }

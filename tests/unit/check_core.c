/* Core: the parameter registry, counter-based RNG, and the BLIS sgemm wrapper against its
 * reference on odd shapes and every transpose combination. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/args.h"
#include "core/dir.h"
#include "core/err.h"
#include "core/grow.h"
#include "core/params.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "testutil.h"

/* The strict parser: values, ranges, repeated and two-value options, positionals, and every kind
 * of malformed argument refused with 2 (--help gives 1). */
static int parse(const char *line, const char **file, int *n, long *big, const char **pair,
                 mpq_strlist *sets, int *flag)
{
    static char buf[512];
    char *argv[32];
    int argc = 0, n_pos;
    static const char usage[] = "usage: test\n";
    snprintf(buf, sizeof buf, "verb %s", line);
    for (char *t = strtok(buf, " "); t && argc < 32; t = strtok(NULL, " ")) argv[argc++] = t;
    const mpq_opt opts[] = {
        {"num", MPQ_OPT_INT, n, 1, 10},       {"big", MPQ_OPT_LONG, big, 0, 0},
        {"cfg", MPQ_OPT_PAIR, pair, 0, 0},  {"set", MPQ_OPT_LIST, sets, 0, 0},
        {"flag", MPQ_OPT_FLAG, flag, 0, 0}, {"o", MPQ_OPT_STR, file, 0, 0},
    };
    mpq_argspec spec = {"verb", usage, opts, 6, file, 1};
    return mpq_args_parse(&spec, argc, argv, &n_pos);
}

START_TEST(test_args_strict_parsing)
{
    const char *file = NULL, *pair[2] = {NULL, NULL}, *v[2];
    mpq_strlist sets = {v, 0, 2};
    int n = 0, flag = 0;
    long big = 0;
    ck_assert_int_eq(parse("--num 7 --big=123456789012 --cfg a.cfg EXP --set x=1 --set y=2 --flag -o F",
                           &file, &n, &big, pair, &sets, &flag), 0);
    ck_assert_int_eq(n, 7);
    ck_assert(big == 123456789012L);
    ck_assert_str_eq(pair[0], "a.cfg");
    ck_assert_str_eq(pair[1], "EXP");
    ck_assert_int_eq(sets.n, 2);
    ck_assert_str_eq(sets.v[1], "y=2");
    ck_assert_int_eq(flag, 1);
    ck_assert_str_eq(file, "F");
    const char *bad[] = {"--num 11", "--num 0", "--num 3x", "--num", "--big -1", "--bogus",
                         "--flag=1", "A B", "--cfg=a EXP", "--cfg a", "--set a --set b --set c",
                         "-num 3", "--o F"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sets.n = 0;
        ck_assert_msg(parse(bad[i], &file, &n, &big, pair, &sets, &flag) == 2, "accepted '%s'",
                      bad[i]);
    }
    ck_assert_int_eq(parse("--num 2 --help", &file, &n, &big, pair, &sets, &flag), 1);
}
END_TEST

/* The one directory listing: sorted, filtered, hidden entries never, a missing directory empty
 * only when allowed. */
static int keep_txt(const char *dir, const char *name, void *ctx)
{
    (void)dir;
    ++*(int *)ctx;
    return strstr(name, ".txt") != NULL;
}

START_TEST(test_dir_list_sorted_and_filtered)
{
    char dir[] = "/tmp/mpq-dirtest-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *files[] = {"b.txt", "a.txt", "c.bin", ".hidden.txt", "a10.txt"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
    }
    mpq_dir_list l;
    int seen = 0;
    ck_assert_int_eq(mpq_dir_list_read(dir, keep_txt, &seen, 0, &l), 0);
    ck_assert_int_eq(seen, 4); /* the hidden file is never offered */
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.names[0], "a.txt");
    ck_assert_str_eq(l.names[1], "a10.txt");
    ck_assert_str_eq(l.names[2], "b.txt");
    mpq_dir_list_free(&l);
    ck_assert_int_eq(mpq_dir_list_read(dir, NULL, NULL, 0, &l), 0);
    ck_assert_int_eq(l.n, 4);
    mpq_dir_list_free(&l);
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    ck_assert_int_eq(mpq_dir_list_read(dir, NULL, NULL, 1, &l), 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(mpq_dir_list_read(dir, NULL, NULL, 0, &l), MPQ_E_IO);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), dir));
}
END_TEST

/* The room doubles from MPQ_GROW_MIN until it holds what is needed, keeps the values, stops at a
 * limit, and a size that overflows is refused with the array unchanged. */
START_TEST(test_grow_doubles_keeps_values_and_refuses_overflow)
{
    int *a = NULL, *before;
    size_t cap = 0;
    ck_assert_int_eq(mpq_grow((void **)&a, &cap, 1, sizeof *a), 0);
    ck_assert_uint_eq(cap, MPQ_GROW_MIN);
    for (int i = 0; i < 16; i++)
        a[i] = 3 * i + 1;
    ck_assert_int_eq(mpq_grow((void **)&a, &cap, 17, sizeof *a), 0);
    ck_assert_uint_eq(cap, 32);
    ck_assert_int_eq(mpq_grow((void **)&a, &cap, 100, sizeof *a), 0);
    ck_assert_uint_eq(cap, 128);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(a[i], 3 * i + 1);
    a[127] = 5; /* the whole room is usable (ASan/valgrind builds check it) */
    before = a;
    ck_assert_int_eq(mpq_grow((void **)&a, &cap, 128, sizeof *a), 0); /* fits: untouched */
    ck_assert_ptr_eq(a, before);
    ck_assert_uint_eq(cap, 128);
    ck_assert_int_eq(mpq_grow_to((void **)&a, &cap, 129, 200, sizeof *a), 0); /* 256 > 200 */
    ck_assert_uint_eq(cap, 200);
    ck_assert_int_eq(mpq_grow_to((void **)&a, &cap, 300, 250, sizeof *a), 0); /* limit < need */
    ck_assert_uint_eq(cap, 400);
    ck_assert_int_eq(a[127], 5);
    before = a;
    ck_assert_int_eq(mpq_grow((void **)&a, &cap, SIZE_MAX / 2, sizeof *a), MPQ_E_NOMEM);
    ck_assert_ptr_eq(a, before);
    ck_assert_uint_eq(cap, 400);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "does not fit in memory"));
    ck_assert_int_eq(a[0], 1);
    free(a);
}
END_TEST

START_TEST(test_params_registry_orders_and_names)
{
    mpq_params p;
    mpq_slice a, b;
    int sa[2] = {3, 4}, sb[1] = {5};
    mpq_params_init(&p);
    ck_assert_int_eq(mpq_params_add(&p, "l1/W", MPQ_PKIND_WEIGHT, 2, sa, &a), 0);
    ck_assert_int_eq(mpq_params_add(&p, "l1/b", MPQ_PKIND_BIAS, 1, sb, &b), 0);
    ck_assert_int_lt(mpq_params_add(&p, "l1/W", MPQ_PKIND_WEIGHT, 1, sb, NULL), 0);
    ck_assert_ptr_nonnull(strstr(mpq_errmsg(), "twice"));
    ck_assert_uint_eq(a.off, 0);
    ck_assert_uint_eq(a.n, 12);
    ck_assert_uint_eq(b.off, 12);
    ck_assert_uint_eq(p.n_floats, 17);
    ck_assert_int_eq(mpq_params_alloc(&p, 1), 0);
    ck_assert_int_eq(mpq_params_find(&p, "l1/b"), 1);
    ck_assert_int_eq(mpq_params_find(&p, "nope"), -1);
    ck_assert_uint_eq((uintptr_t)p.val % 64, 0);
    ck_assert_float_eq(p.grad[16], 0.0f);
    mpq_params_free(&p);
}
END_TEST

/* mpq_alloc_floats: zeroed and 64-byte aligned below 4 MB; from 4 MB (where it asks for huge
 * pages) 2 MB-aligned and zeroed to the end of its last huge page, every float writable. */
START_TEST(test_alloc_floats_aligned_and_zeroed)
{
    const size_t sizes[] = {1, 17, ((size_t)4 << 20) / sizeof(float) - 1,
                            ((size_t)4 << 20) / sizeof(float) + 5};
    for (int k = 0; k < 4; k++) {
        float *f = mpq_alloc_floats(sizes[k]);
        ck_assert_ptr_nonnull(f);
        const size_t align = k == 3 ? (size_t)2 << 20 : 64;
        ck_assert_uint_eq((uintptr_t)f % align, 0);
        size_t nonzero = 0;
        for (size_t i = 0; i < sizes[k]; i++)
            nonzero += f[i] != 0.0f;
        ck_assert_uint_eq(nonzero, 0);
        f[sizes[k] - 1] = 1.0f;
        free(f);
    }
}
END_TEST

START_TEST(test_rng_permutation_is_pure_and_complete)
{
    enum { N = 1000 };
    int64_t p1[N], p2[N], p3[N];
    int seen[N] = {0};
    mpq_rng_permutation(7, MPQ_RNG_STREAM_PERM, 3, N, p1);
    mpq_rng_permutation(7, MPQ_RNG_STREAM_PERM, 3, N, p2);
    mpq_rng_permutation(7, MPQ_RNG_STREAM_PERM, 4, N, p3);
    ck_assert_mem_eq(p1, p2, sizeof p1);
    ck_assert_int_ne(memcmp(p1, p3, sizeof p1), 0);
    for (int i = 0; i < N; i++) seen[p1[i]]++;
    for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
}
END_TEST

/* A uniform shuffle reaches every ordering: all 6 of 3 elements within 200 epochs (a cyclic-only
 * shuffle, Sattolo's, reaches 2; the chance that a uniform one misses one is below 1e-14). */
START_TEST(test_rng_permutation_reaches_every_ordering)
{
    int seen[3][3][3] = {{{0}}}, kinds = 0;
    for (uint64_t epoch = 0; epoch < 200; epoch++) {
        int64_t p[3];
        mpq_rng_permutation(11, MPQ_RNG_STREAM_PERM, epoch, 3, p);
        kinds += !seen[p[0]][p[1]][p[2]]++;
    }
    ck_assert_int_eq(kinds, 6);
}
END_TEST

START_TEST(test_rng_uniform_range_and_mean)
{
    mpq_rng r;
    double sum = 0.0;
    mpq_rng_seed(&r, 1, 2, 3);
    for (int i = 0; i < 100000; i++) {
        float u = mpq_rng_uniform(&r);
        ck_assert(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    ck_assert_double_eq_tol(sum / 100000, 0.5, 0.01);
}
END_TEST

START_TEST(test_rng_uniform_fill_is_the_stream)
{
    mpq_rng a, b;
    float f[1000];
    mpq_rng_seed(&a, 7, 8, 9);
    mpq_rng_seed(&b, 7, 8, 9);
    mpq_rng_uniform_fill(&a, f, 600);
    mpq_rng_uniform_fill(&a, f + 600, 400); /* continues where the first call ended */
    for (int i = 0; i < 1000; i++) {
        const float u = mpq_rng_uniform(&b);
        ck_assert_msg(memcmp(&u, &f[i], sizeof u) == 0, "draw %d: %a, want %a", i, f[i], u);
    }
    ck_assert_uint_eq(mpq_rng_u64(&a), mpq_rng_u64(&b)); /* and leaves the same state */
}
END_TEST

START_TEST(test_gemm_matches_reference_all_transposes)
{
    const int m = 37, n = 19, k = 53;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *c = malloc(sizeof(float) * m * n), *cr = malloc(sizeof(float) * m * n);
    mpq_test_fill_uniform(a, (size_t)m * k, -1, 1, 1);
    mpq_test_fill_uniform(b, (size_t)k * n, -1, 1, 2);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = ta ? m : k, ldb = tb ? k : n;
            mpq_test_fill_uniform(c, (size_t)m * n, -1, 1, 3);
            memcpy(cr, c, sizeof(float) * m * n);
            mpq_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, c, n);
            mpq_sgemm_ref(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, cr, n);
            ck_assert(mpq_ck_allclose(c, cr, (size_t)m * n, 1e-5f, 1e-5f, "sgemm"));
        }
    free(a);
    free(b);
    free(c);
    free(cr);
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_args_strict_parsing);
    tcase_add_test(tc, test_dir_list_sorted_and_filtered);
    tcase_add_test(tc, test_grow_doubles_keeps_values_and_refuses_overflow);
    tcase_add_test(tc, test_params_registry_orders_and_names);
    tcase_add_test(tc, test_alloc_floats_aligned_and_zeroed);
    tcase_add_test(tc, test_rng_permutation_is_pure_and_complete);
    tcase_add_test(tc, test_rng_permutation_reaches_every_ordering);
    tcase_add_test(tc, test_rng_uniform_range_and_mean);
    tcase_add_test(tc, test_rng_uniform_fill_is_the_stream);
    tcase_add_test(tc, test_gemm_matches_reference_all_transposes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(core_suite); }

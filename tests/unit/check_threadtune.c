/* The thread-count tuner (train/threadtune.h) on simulated step times: a quiet machine keeps the
 * bound count and probes ever more rarely; a shared core moves it to fewer threads at the first
 * probe and keeps it there; contention that comes and goes is followed both ways; four threads
 * settle on the fastest count; disabled or with one thread it never probes. */
#include <check.h>
#include <stdlib.h>

#include "train/threadtune.h"
#include "testutil.h"

/* Seconds of a step on n threads: per-count times, switched to `later` from step `change`. */
typedef struct scenario {
    double now[5], later[5];
    long change;
} scenario;

typedef struct trace {
    int probes, last_probe_step, count_at[400];
} trace;

static void run(mpq_threadtune *t, const scenario *sc, int steps, trace *tr)
{
    tr->probes = 0;
    tr->last_probe_step = -1;
    for (int k = 0; k < steps; k++) {
        const int n = mpq_threadtune_next(t);
        ck_assert_int_ge(n, 1);
        ck_assert_int_le(n, t->max);
        if (t->probe) {
            tr->probes++;
            tr->last_probe_step = k;
        }
        tr->count_at[k] = t->cur;
        mpq_threadtune_record(t, k < sc->change ? sc->now[n] : sc->later[n]);
    }
}

/* A fresh tuner of max threads (enabled or not) after `steps` steps of sc. */
static mpq_threadtune simulate(int max, int enabled, const scenario *sc, int steps, trace *tr)
{
    mpq_threadtune t;
    mpq_threadtune_init(&t, max, enabled);
    run(&t, sc, steps, tr);
    return t;
}

START_TEST(test_threadtune_quiet_keeps_all_threads_and_backs_off)
{
    const scenario sc = {{0, 1.75, 1.0}, {0}, 1000};
    trace tr;
    const mpq_threadtune t = simulate(2, 1, &sc, 300, &tr);
    ck_assert_int_eq(t.cur, 2);
    ck_assert_int_eq(t.switches, 0);
    /* probes at steps 4, 13, 30, 63, 128, 193, 258 (intervals 8, 16, 32, 64, 64, ...) */
    ck_assert_int_eq(tr.probes, 7);
    ck_assert_int_eq(t.interval, MPQ_THREADTUNE_MAX_INTERVAL);
}
END_TEST

START_TEST(test_threadtune_shared_core_moves_to_one_thread)
{
    /* 2 threads collapse to 3x the quiet time; 1 thread keeps its own core */
    const scenario sc = {{0, 1.75, 3.0}, {0}, 1000};
    trace tr;
    const mpq_threadtune t = simulate(2, 1, &sc, 200, &tr);
    ck_assert_int_eq(tr.count_at[4], 2); /* the first probe's step */
    ck_assert_int_eq(tr.count_at[5], 1);
    ck_assert_int_eq(t.cur, 1);
    ck_assert_int_eq(t.switches, 1);
    ck_assert_int_gt(tr.probes, 1); /* it kept checking whether 2 threads came back */
}
END_TEST

START_TEST(test_threadtune_follows_contention_both_ways)
{
    const double quiet[5] = {0, 1.75, 1.0}, shared[5] = {0, 1.75, 3.0};
    scenario sc = {{0}, {0}, 150};
    for (int i = 0; i < 5; i++)
        sc.now[i] = quiet[i], sc.later[i] = shared[i];
    trace tr;
    mpq_threadtune t = simulate(2, 1, &sc, 150, &tr);
    ck_assert_int_eq(t.cur, 2);
    /* the slowdown brings the probe forward: one slow step, then the median turns, then a probe */
    sc.change = 0;
    int k = 0;
    for (; k < 20 && t.cur == 2; k++) {
        mpq_threadtune_next(&t);
        mpq_threadtune_record(&t, t.probe ? shared[t.probe] : shared[t.cur]);
    }
    ck_assert_int_eq(t.cur, 1);
    ck_assert_int_le(k, 1 + MPQ_THREADTUNE_RECENT);
    /* the other process ends: back to 2 threads within one longest interval */
    for (int i = 0; i < 5; i++)
        sc.now[i] = sc.later[i] = quiet[i];
    run(&t, &sc, MPQ_THREADTUNE_MAX_INTERVAL + 1, &tr);
    ck_assert_int_eq(t.cur, 2);
    ck_assert_int_eq(t.switches, 2);
}
END_TEST

START_TEST(test_threadtune_four_threads_settle_on_the_fastest)
{
    /* three threads fastest (a fourth core is busy elsewhere) */
    const scenario sc = {{0, 4.0, 2.2, 1.5, 2.5}, {0}, 1000};
    trace tr;
    const mpq_threadtune t = simulate(4, 1, &sc, 300, &tr);
    ck_assert_int_eq(t.cur, 3);
    ck_assert_int_eq(t.switches, 1);
}
END_TEST

START_TEST(test_threadtune_disabled_or_one_thread_never_probes)
{
    const scenario sc = {{0, 1.0, 9.0}, {0}, 1000};
    trace tr;
    ck_assert_int_eq(simulate(2, 0, &sc, 300, &tr).cur, 2);
    ck_assert_int_eq(tr.probes, 0);
    ck_assert_int_eq(simulate(1, 1, &sc, 300, &tr).cur, 1);
    ck_assert_int_eq(tr.probes, 0);
}
END_TEST

START_TEST(test_threadtune_small_gain_does_not_switch)
{
    /* one thread only 5% faster: below the margin, noise would flip it back and forth */
    const scenario sc = {{0, 0.95, 1.0}, {0}, 1000};
    trace tr;
    ck_assert_int_eq(simulate(2, 1, &sc, 300, &tr).switches, 0);
}
END_TEST

static Suite *threadtune_suite(void)
{
    Suite *s = suite_create("threadtune");
    TCase *tc = tcase_create("threadtune");
    tcase_add_test(tc, test_threadtune_quiet_keeps_all_threads_and_backs_off);
    tcase_add_test(tc, test_threadtune_shared_core_moves_to_one_thread);
    tcase_add_test(tc, test_threadtune_follows_contention_both_ways);
    tcase_add_test(tc, test_threadtune_four_threads_settle_on_the_fastest);
    tcase_add_test(tc, test_threadtune_disabled_or_one_thread_never_probes);
    tcase_add_test(tc, test_threadtune_small_gain_does_not_switch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mpq_test_main(threadtune_suite); }

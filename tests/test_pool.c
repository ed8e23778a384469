/* Tests of the thread pool: every thread index runs once per job, results
 * are visible to the caller on return, sleeping workers wake up; with
 * pool_run_any(), every unit once and nothing after the call returned. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "infer/cpu/pool.h"
#include "tests/fixture.h"

#define MAX_T 8

struct count_job {
    atomic_int runs[MAX_T];   /* times each ith ran in this job */
    atomic_int bad_nth;       /* calls that saw the wrong nth or ith */
    int nth;
};

static void count_fn(void *arg, int ith, int nth)
{
    struct count_job *j = arg;
    if (nth != j->nth || ith < 0 || ith >= nth || ith >= MAX_T) {
        atomic_fetch_add(&j->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&j->runs[ith], 1);
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

static void test_pool_runs_every_index_once_per_call(void **state)
{
    (void)state;
    for (int n = 1; n <= 4; n++) {
        struct pool *p;
        assert_int_equal(pool_create(n, &p), 0);
        assert_int_equal(pool_threads(p), n);
        for (int call = 0; call < 200; call++) {
            struct count_job j;
            memset(&j, 0, sizeof j);
            j.nth = n;
            pool_run(p, count_fn, &j);
            assert_int_equal(atomic_load(&j.bad_nth), 0);
            for (int i = 0; i < MAX_T; i++) {
                int got = atomic_load(&j.runs[i]);
                if (got != (i < n ? 1 : 0))
                    fail_msg("n=%d call %d: ith %d ran %d times", n, call, i, got);
            }
        }
        pool_free(p);
    }
}

/* Plain (non-atomic) writes by the workers must be visible to the caller as
 * soon as pool_run() returns: the join is the only synchronisation. */
struct seq_job {
    int slot[MAX_T * 16];     /* each thread writes slot[ith * 16], its own line */
    int call;
};

static void seq_fn(void *arg, int ith, int nth)
{
    (void)nth;
    struct seq_job *j = arg;
    if (j->slot[ith * 16] == j->call - 1)
        j->slot[ith * 16] = j->call;
    else
        j->slot[ith * 16] = -1;   /* saw a stale value from the previous job */
}

static void test_pool_many_quick_calls_are_visible_on_return(void **state)
{
    (void)state;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    for (int n = 1; n <= 4; n++) {
        struct pool *p;
        assert_int_equal(pool_create(n, &p), 0);
        static struct seq_job j;
        memset(&j, 0, sizeof j);
        /* More threads than cores makes every call wait for the scheduler
         * (tens of microseconds): fewer calls keep the test quick. */
        int calls = n <= cores ? 100000 : 10000;
        for (int call = 1; call <= calls; call++) {
            j.call = call;
            pool_run(p, seq_fn, &j);
            for (int i = 0; i < n; i++)
                if (j.slot[i * 16] != call)
                    fail_msg("n=%d call %d: ith %d left %d", n, call, i, j.slot[i * 16]);
        }
        pool_free(p);
    }
}

/* Pauses around the spin budget: jobs posted while workers spin, while they
 * are about to sleep, and after they sleep must all run. */
static void test_pool_wakes_sleeping_workers(void **state)
{
    (void)state;
    static const long pauses_us[] = { 0, 20, 90, 100, 110, 150, 300, 2000, 10000 };
    for (int n = 2; n <= 4; n++) {
        struct pool *p;
        assert_int_equal(pool_create(n, &p), 0);
        for (int rep = 0; rep < 3; rep++) {
            for (size_t k = 0; k < sizeof pauses_us / sizeof *pauses_us; k++) {
                sleep_us(pauses_us[k]);
                struct count_job j;
                memset(&j, 0, sizeof j);
                j.nth = n;
                pool_run(p, count_fn, &j);
                for (int i = 0; i < n; i++)
                    if (atomic_load(&j.runs[i]) != 1)
                        fail_msg("n=%d pause %ld us: ith %d ran %d times", n, pauses_us[k], i,
                                 atomic_load(&j.runs[i]));
            }
        }
        pool_free(p);
    }
}

/* A job posted right after creation, before the workers have started, is
 * not missed (workers begin from generation 0, not from what they see). */
static void test_pool_first_job_right_after_create(void **state)
{
    (void)state;
    for (int rep = 0; rep < 50; rep++) {
        for (int n = 2; n <= 4; n++) {
            struct pool *p;
            assert_int_equal(pool_create(n, &p), 0);
            struct count_job j;
            memset(&j, 0, sizeof j);
            j.nth = n;
            pool_run(p, count_fn, &j);
            for (int i = 0; i < n; i++)
                assert_int_equal(atomic_load(&j.runs[i]), 1);
            pool_free(p);
        }
    }
}

static void test_pool_create_and_free_without_runs(void **state)
{
    (void)state;
    for (int rep = 0; rep < 20; rep++) {
        for (int n = 1; n <= 4; n++) {
            struct pool *p = NULL;
            assert_int_equal(pool_create(n, &p), 0);
            assert_non_null(p);
            if (rep % 2)
                sleep_us(200);   /* let the workers fall asleep first */
            pool_free(p);
        }
    }
    pool_free(NULL);
}

static void test_pool_rejects_bad_thread_counts(void **state)
{
    (void)state;
    static const int bad[] = { 0, -1, -100 };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct pool *p = (struct pool *)&p;
        assert_int_equal(pool_create(bad[i], &p), EINVAL);
        assert_null(p);
    }
}

/* The work is really split: with n threads, a sum computed in n slices by the
 * pool equals the serial sum. */
struct sum_job {
    const int64_t *v;
    int64_t len;
    int64_t part[MAX_T];
};

static void sum_fn(void *arg, int ith, int nth)
{
    struct sum_job *j = arg;
    int64_t lo = j->len * ith / nth, hi = j->len * (ith + 1) / nth, s = 0;
    for (int64_t i = lo; i < hi; i++)
        s += j->v[i];
    j->part[ith] = s;
}

static void test_pool_slices_sum_to_serial(void **state)
{
    (void)state;
    enum { LEN = 100003 };
    static int64_t v[LEN];
    int64_t want = 0;
    for (int64_t i = 0; i < LEN; i++) {
        v[i] = (i * 7919) % 1000 - 500;
        want += v[i];
    }
    for (int n = 1; n <= 4; n++) {
        struct pool *p;
        assert_int_equal(pool_create(n, &p), 0);
        for (int call = 0; call < 100; call++) {
            struct sum_job j = { .v = v, .len = LEN };
            pool_run(p, sum_fn, &j);
            int64_t got = 0;
            for (int i = 0; i < n; i++)
                got += j.part[i];
            if (got != want)
                fail_msg("n=%d: sum %lld, want %lld", n, (long long)got, (long long)want);
        }
        pool_free(p);
    }
}

/* pool_run_any(): the units of a job are shared out by a counter; every
 * unit runs once, the caller always takes part, no ith twice, no call of fn
 * starts or ends after pool_run_any() returned (each job has a flag the test
 * sets on return, and fn checks it on entry and on exit), mixed with
 * pool_run() jobs and with pauses that let the workers fall asleep, so that
 * late workers come to jobs already over (and skip them: counted). */
enum { ANY_UNITS = 64, ANY_CALLS = 400 };

struct any_job {
    atomic_int next;
    atomic_int hits[ANY_UNITS];
    atomic_int runs[MAX_T];
    atomic_bool over;
};

static atomic_int any_late;   /* calls of fn that saw their job over */

static void any_fn(void *arg, int ith, int nth)
{
    (void)nth;
    struct any_job *j = arg;
    if (atomic_load(&j->over))
        atomic_fetch_add(&any_late, 1);
    atomic_fetch_add(&j->runs[ith], 1);
    for (int u = atomic_fetch_add(&j->next, 1); u < ANY_UNITS; u = atomic_fetch_add(&j->next, 1))
        atomic_fetch_add(&j->hits[u], 1);
    if (atomic_load(&j->over))
        atomic_fetch_add(&any_late, 1);
}

static void test_pool_run_any_runs_each_unit_once_and_never_late(void **state)
{
    (void)state;
    static const long pauses_us[] = { 0, 0, 0, 5, 150, 1000 };
    static struct any_job jobs[ANY_CALLS];
    for (int n = 1; n <= 4; n++) {
        struct pool *p;
        assert_int_equal(pool_create(n, &p), 0);
        memset(jobs, 0, sizeof jobs);
        atomic_store(&any_late, 0);
        int skipped = 0;
        for (int call = 0; call < ANY_CALLS; call++) {
            struct any_job *j = &jobs[call];
            sleep_us(pauses_us[call % (sizeof pauses_us / sizeof *pauses_us)]);
            if (call % 7 == 3) {   /* a pool_run() job in between */
                struct count_job c;
                memset(&c, 0, sizeof c);
                c.nth = n;
                pool_run(p, count_fn, &c);
                for (int i = 0; i < n; i++)
                    if (atomic_load(&c.runs[i]) != 1)
                        fail_msg("n=%d call %d: pool_run ith %d ran %d times", n, call, i,
                                 atomic_load(&c.runs[i]));
            }
            pool_run_any(p, any_fn, j);
            atomic_store(&j->over, true);
            for (int u = 0; u < ANY_UNITS; u++)
                if (atomic_load(&j->hits[u]) != 1)
                    fail_msg("n=%d call %d: unit %d ran %d times", n, call, u,
                             atomic_load(&j->hits[u]));
            if (atomic_load(&j->runs[0]) != 1)
                fail_msg("n=%d call %d: the caller ran %d times", n, call,
                         atomic_load(&j->runs[0]));
            for (int i = 1; i < n; i++) {
                int r = atomic_load(&j->runs[i]);
                if (r > 1)
                    fail_msg("n=%d call %d: ith %d ran %d times", n, call, i, r);
                skipped += r == 0;
            }
        }
        pool_free(p);   /* joins the workers: a late call would have run by now */
        for (int call = 0; call < ANY_CALLS; call++)
            for (int i = 0; i < MAX_T; i++)
                if (atomic_load(&jobs[call].runs[i]) > (i < n ? 1 : 0))
                    fail_msg("n=%d call %d: ith %d ran after the call returned", n, call, i);
        if (atomic_load(&any_late))
            fail_msg("n=%d: fn ran %d times on a job that was over", n, atomic_load(&any_late));
        /* workers woken from sleep come late to a job of 64 counter steps */
        if (n > 1 && skipped == 0)
            fail_msg("n=%d: no worker ever skipped a job (the late path was not tested)", n);
    }
}

int main(void)
{
    /* A lost wakeup hangs instead of failing: let the alarm turn it into a
     * failure of the suite. */
    alarm(300);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_runs_every_index_once_per_call),
        cmocka_unit_test(test_pool_many_quick_calls_are_visible_on_return),
        cmocka_unit_test(test_pool_wakes_sleeping_workers),
        cmocka_unit_test(test_pool_first_job_right_after_create),
        cmocka_unit_test(test_pool_create_and_free_without_runs),
        cmocka_unit_test(test_pool_rejects_bad_thread_counts),
        cmocka_unit_test(test_pool_slices_sum_to_serial),
        cmocka_unit_test(test_pool_run_any_runs_each_unit_once_and_never_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

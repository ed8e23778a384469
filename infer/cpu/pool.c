/* The CPU backend's thread team: workers spin on a generation counter for a
 * short while after each job (so back-to-back jobs start in well under a
 * microsecond), then sleep on a condition variable; the caller is thread 0.
 * A job of pool_run_any() is entered through a counter that the caller
 * closes when its own share is done. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "infer/cpu/pool.h"

/* How long an idle worker spins before it sleeps, and how many pause
 * iterations pass between clock reads while it does. */
#define POOL_SPIN_NS 100000
#define POOL_SPIN_CHECK 64
/* The caller spins this many times on the done counter before it starts
 * yielding its core (the workers may have been descheduled). */
#define POOL_JOIN_SPINS 2000

/* pool.entry: the generation of the job in the high 32 bits, then flags and
 * the number of workers inside a pool_run_any() job. */
#define POOL_ENTRY_ALL (UINT64_C(1) << 31)      /* a pool_run() job: every worker runs it */
#define POOL_ENTRY_CLOSED (UINT64_C(1) << 30)   /* pool_run_any(): no more workers enter */
#define POOL_ENTRY_COUNT (POOL_ENTRY_CLOSED - 1)

struct pool_worker {
    struct pool *p;
    int ith;
    pthread_t tid;
};

/* The counters sit on their own cache lines: workers read gen in a tight
 * loop, and every worker writes done once per job. */
struct pool {
    alignas(64) atomic_uint gen;      /* bumped once per job (seq_cst) */
    atomic_int sleepers;              /* workers inside the condvar wait */
    atomic_bool quit;
    pool_fn fn;                       /* the job; published by gen */
    void *arg;
    alignas(64) atomic_int done;      /* workers finished with this job */
    alignas(64) atomic_uint_fast64_t entry;   /* POOL_ENTRY_*, see above */
    alignas(64) pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;                            /* threads, caller included */
    int started;                      /* worker threads running */
    struct pool_worker *w;            /* n - 1 of them */
};

static inline void pool_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t pool_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits until gen differs from seen (or quit), spinning first. Returns the
 * new generation. The sleeper count and gen are seq_cst on both sides, so
 * either pool_run() sees this worker in `sleepers` and broadcasts under the
 * mutex, or this worker sees the new gen before it waits: no lost wakeup. */
static unsigned pool_wait(struct pool *p, unsigned seen)
{
    unsigned g;
    int64_t start = 0;
    for (int i = 0;; i++) {
        g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&p->quit, memory_order_relaxed))
            return g;
        pool_relax();
        if (i % POOL_SPIN_CHECK == 0) {
            /* Give the core away now and then: with more threads than
             * free cores, a spinning worker would hold up a working one. */
            if (i > 0)
                sched_yield();
            int64_t now = pool_now_ns();
            if (i == 0)
                start = now;
            else if (now - start > POOL_SPIN_NS)
                break;
        }
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->quit))
        pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

/* Runs job `gen` if it still takes workers.  The caller stores entry before
 * it publishes gen, so entry is this job's or a later one's; a later one
 * means this job is over (only a pool_run_any() job ends without this
 * worker), and the caller of pool_run_any() does not return while a worker
 * that entered is inside: fn and arg are this job's whenever they are read. */
static void pool_job(struct pool *p, int ith, unsigned gen)
{
    uint64_t e = atomic_load_explicit(&p->entry, memory_order_acquire);
    for (;;) {
        if ((unsigned)(e >> 32) != gen || (e & POOL_ENTRY_CLOSED))
            return;
        if (e & POOL_ENTRY_ALL) {
            p->fn(p->arg, ith, p->n);
            atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
            return;
        }
        if (atomic_compare_exchange_weak_explicit(&p->entry, &e, e + 1, memory_order_acquire,
                                                  memory_order_acquire))
            break;
    }
    p->fn(p->arg, ith, p->n);
    atomic_fetch_sub_explicit(&p->entry, 1, memory_order_release);
}

static void *pool_main(void *v)
{
    struct pool_worker *w = v;
    struct pool *p = w->p;
    unsigned seen = 0;   /* gen at creation: a job posted before this thread ran is not missed */
    for (;;) {
        seen = pool_wait(p, seen);
        if (atomic_load(&p->quit))
            break;
        pool_job(p, w->ith, seen);
    }
    return NULL;
}

static void pool_stop(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->w[i].tid, NULL);
    p->started = 0;
}

int pool_create(int n_threads, struct pool **out)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 4096)
        return EINVAL;
    struct pool *p = aligned_alloc(alignof(struct pool), sizeof *p);
    if (!p)
        return ENOMEM;
    memset(p, 0, sizeof *p);
    atomic_init(&p->gen, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->quit, false);
    atomic_init(&p->done, 0);
    atomic_init(&p->entry, POOL_ENTRY_CLOSED);
    p->n = n_threads;
    int rc = pthread_mutex_init(&p->mu, NULL);
    if (rc) {
        free(p);
        return rc;
    }
    rc = pthread_cond_init(&p->cv, NULL);
    if (rc) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rc;
    }
    if (n_threads > 1) {
        p->w = calloc((size_t)n_threads - 1, sizeof *p->w);
        if (!p->w) {
            pool_free(p);
            return ENOMEM;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->w[i].p = p;
            p->w[i].ith = i + 1;
            rc = pthread_create(&p->w[i].tid, NULL, pool_main, &p->w[i]);
            if (rc) {
                pool_free(p);
                return rc;
            }
            p->started++;
        }
    }
    *out = p;
    return 0;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pool_stop(p);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->w);
    free(p);
}

int pool_threads(const struct pool *p)
{
    return p->n;
}

/* Publishes a job: every worker finished or skipped the previous one before
 * the last pool_run*() returned, so none reads fn, arg, done or entry until
 * gen moves. */
static void pool_post(struct pool *p, pool_fn fn, void *arg, bool all)
{
    unsigned gen = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;   /* only we write it */
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->entry, (uint64_t)gen << 32 | (all ? POOL_ENTRY_ALL : 0),
                          memory_order_relaxed);
    atomic_store(&p->gen, gen);   /* seq_cst: releases fn, arg, done, entry */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

void pool_run(struct pool *p, pool_fn fn, void *arg)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool_post(p, fn, arg, true);
    fn(arg, 0, p->n);
    int want = p->n - 1;
    for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) != want; i++) {
        if (i < POOL_JOIN_SPINS)
            pool_relax();
        else
            sched_yield();
    }
}

void pool_run_any(struct pool *p, pool_fn fn, void *arg)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool_post(p, fn, arg, false);
    fn(arg, 0, p->n);
    /* close the door, then wait for the workers already inside */
    uint64_t e = atomic_fetch_or_explicit(&p->entry, POOL_ENTRY_CLOSED, memory_order_acq_rel);
    for (int i = 0; (e & POOL_ENTRY_COUNT) != 0; i++) {
        if (i < POOL_JOIN_SPINS)
            pool_relax();
        else
            sched_yield();
        e = atomic_load_explicit(&p->entry, memory_order_acquire);
    }
}

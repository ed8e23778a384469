/* A fixed team of worker threads for the CPU backend: pool_run() calls
 * fn(arg, ith, nth) on nth threads (the caller is thread 0) and returns when
 * all have finished.  pool_run_any() is for jobs that share out their work
 * themselves (a counter): fn runs on the caller and on the workers that
 * reach the job before the caller's call is over; a worker that comes later
 * (descheduled on a busy machine, or asleep) does not run it at all, so the
 * caller never waits for a thread that has not started.  Workers spin
 * briefly between jobs, so the hundreds of small jobs of one token cost
 * microseconds, then sleep on a condition variable when idle. */
#ifndef PONDER_POOL_H
#define PONDER_POOL_H

struct pool;

typedef void (*pool_fn)(void *arg, int ith, int nth);

/* 0 or an errno; n_threads >= 1. */
int pool_create(int n_threads, struct pool **out);
void pool_free(struct pool *p);   /* NULL is a no-op */
int pool_threads(const struct pool *p);
void pool_run(struct pool *p, pool_fn fn, void *arg);
/* fn(arg, ith, nth) on the caller (ith 0) and on any of the workers (each
 * ith once at most); returns when every call that started has returned. */
void pool_run_any(struct pool *p, pool_fn fn, void *arg);

#endif

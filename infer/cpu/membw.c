/* Read-bandwidth probe (membw.h): threads sum their slices of a large buffer
 * with 16-byte vector loads and eight independent accumulators, so the loop
 * is bound by memory, not by the adds. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "infer/err.h"
#include "infer/ckd.h"
#include "infer/cpu/membw.h"

/* GCC vector extension: SSE2 on any x86-64, NEON on arm64, plain code elsewhere. */
typedef uint64_t membw_vec __attribute__((vector_size(16)));

#define MEMBW_ALIGN ((size_t)2 << 20)  /* a huge page */
#define MEMBW_UNROLL 8
/* Slices are whole multiples of one unrolled step. */
#define MEMBW_STEP (MEMBW_UNROLL * sizeof(membw_vec))

struct membw_job {
    const membw_vec *begin;
    size_t n_vec;          /* multiple of MEMBW_UNROLL */
    unsigned char *touch;  /* non-NULL on the first pass: write the slice */
    size_t touch_bytes;
    uint64_t sum;          /* result, so the loads cannot be dropped */
};


static double membw_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *membw_worker(void *arg)
{
    struct membw_job *j = arg;
    if (j->touch) {
        memset(j->touch, 1, j->touch_bytes);
        j->sum = j->touch[j->touch_bytes - 1];
        return NULL;
    }
    membw_vec a0 = { 0, 0 }, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const membw_vec *p = j->begin, *end = j->begin + j->n_vec;
    for (; p < end; p += MEMBW_UNROLL) {
        a0 += p[0];
        a1 += p[1];
        a2 += p[2];
        a3 += p[3];
        a4 += p[4];
        a5 += p[5];
        a6 += p[6];
        a7 += p[7];
    }
    membw_vec s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    j->sum = s[0] + s[1];
    return NULL;
}

/* One pass of all threads; the caller's thread does slice 0.  Returns 0 or
 * the pthread_create error (threads already started are joined). */
static int membw_pass(struct membw_job *jobs, int n_threads, uint64_t *sum)
{
    pthread_t th[MEMBW_MAX_THREADS];
    int started = 1, rc = 0;
    for (int i = 1; i < n_threads; i++) {
        rc = pthread_create(&th[i], NULL, membw_worker, &jobs[i]);
        if (rc)
            break;
        started++;
    }
    membw_worker(&jobs[0]);
    for (int i = 1; i < started; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < started; i++)
        *sum += jobs[i].sum;
    return rc;
}

int membw_read(int n_threads, size_t bytes, int reps, double *gb_per_s, char *err,
               size_t errlen)
{
    struct membw_job *jobs = NULL;
    unsigned char *buf = NULL;
    int rc = 0;

    if (n_threads < 1 || n_threads > MEMBW_MAX_THREADS)
        return err_set(err, errlen, EINVAL, "membw: %d threads (1..%d)", n_threads,
                    MEMBW_MAX_THREADS);
    if (reps < 0)
        return err_set(err, errlen, EINVAL, "membw: %d repetitions", reps);
    if (reps == 0)
        reps = 3;
    if (bytes == 0) {
        bytes = MEMBW_DEFAULT_BYTES;
#ifdef _SC_LEVEL3_CACHE_SIZE
        /* glibc: the last-level cache; the buffer should dwarf it */
        long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        if (l3 > 0 && (size_t)l3 <= SIZE_MAX / 4 && 4 * (size_t)l3 > bytes)
            bytes = 4 * (size_t)l3;
#endif
    }

    size_t slice = bytes / (size_t)n_threads / MEMBW_STEP * MEMBW_STEP;
    if (slice == 0)
        return err_set(err, errlen, EINVAL, "membw: %zu bytes is too small for %d threads",
                    bytes, n_threads);
    size_t total;
    if (ckd_mul_size(&total, slice, (size_t)n_threads))
        return err_set(err, errlen, EINVAL, "membw: %zu bytes overflows", bytes);

    jobs = calloc((size_t)n_threads, sizeof *jobs);
    if (!jobs || posix_memalign((void **)&buf, MEMBW_ALIGN, total) != 0) {
        buf = NULL;
        rc = err_set(err, errlen, ENOMEM, "membw: cannot allocate %zu bytes", total);
        goto out;
    }

#ifdef MADV_HUGEPAGE
    /* fewer page faults while touching, fewer TLB misses while reading */
    (void)madvise(buf, total, MADV_HUGEPAGE);
#endif
    uint64_t sum = 0;
    for (int i = 0; i < n_threads; i++) {
        jobs[i].touch = buf + (size_t)i * slice;
        jobs[i].touch_bytes = slice;
    }
    rc = membw_pass(jobs, n_threads, &sum);
    if (rc) {
        err_set(err, errlen, rc, "membw: cannot start thread: %s", strerror(rc));
        goto out;
    }
    for (int i = 0; i < n_threads; i++) {
        jobs[i].touch = NULL;
        jobs[i].begin = (const membw_vec *)(void *)(buf + (size_t)i * slice);
        jobs[i].n_vec = slice / sizeof(membw_vec);
    }

    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = membw_now();
        rc = membw_pass(jobs, n_threads, &sum);
        double dt = membw_now() - t0;
        if (rc) {
            err_set(err, errlen, rc, "membw: cannot start thread: %s", strerror(rc));
            goto out;
        }
        if (dt > 0 && (double)total / dt > best)
            best = (double)total / dt;
    }
    /* Every byte is 1, so the sum is known: a check that the loads happened. */
    if (best <= 0 || sum == 0) {
        rc = err_set(err, errlen, EIO, "membw: no time measured");
        goto out;
    }
    *gb_per_s = best / 1e9;
out:
    free(buf);
    free(jobs);
    return rc;
}

/* Read-bandwidth probe: how fast this machine streams memory into the cores,
 * the figure `ponder bench` prints beside its results (generation reads every
 * weight once per token, so bandwidth / bytes per token bounds tokens/s).
 *
 * membw_read() allocates a buffer of `bytes` (0: 1 GiB, or 4x the L3 cache
 * where the C library reports a larger one), has each of n_threads threads
 * write its own slice once (so the pages exist and sit near the thread that
 * reads them),
 * then `reps` times (0: 3) has the threads sum their slices with wide loads,
 * and stores the best rate in GB/s (1e9 bytes per second) in *gb_per_s.
 * The buffer is freed before it returns; nothing is kept between calls.
 * Returns 0, or EINVAL (n_threads < 1 or > MEMBW_MAX_THREADS, reps < 0,
 * bytes too small to give every thread a slice), ENOMEM, or the error of
 * pthread_create, with one line in err. */
#ifndef PONDER_MEMBW_H
#define PONDER_MEMBW_H

#include <stddef.h>

#define MEMBW_MAX_THREADS 1024
#define MEMBW_DEFAULT_BYTES ((size_t)1 << 30)

int membw_read(int n_threads, size_t bytes, int reps, double *gb_per_s, char *err,
               size_t errlen);

#endif

/* Wall time for measurements: seconds on the monotonic clock, for the
 * bandwidth probes, the fit advisor and the tools that time themselves.
 * Only differences between two readings mean anything. */
#ifndef PONDER_CLOCK_H
#define PONDER_CLOCK_H

/* Seconds since an unspecified start (CLOCK_MONOTONIC). */
double clock_now_s(void);

#endif

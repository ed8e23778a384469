/* membw: the probe returns a positive, finite rate and rejects bad arguments. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "tests/fixture.h"
#include "infer/cpu/membw.h"

static void membw_gives_positive_finite_rate(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int threads;
        size_t bytes;
        int reps;
    } cases[] = {
        { "1 thread, 8 MiB", 1, 8u << 20, 2 },
        { "2 threads, 8 MiB", 2, 8u << 20, 2 },
        { "3 threads, odd size", 3, (8u << 20) + 12345, 1 },
        { "default reps", 2, 1u << 20, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        double gbs = -1;
        int rc = membw_read(cases[i].threads, cases[i].bytes, cases[i].reps, &gbs, err,
                            sizeof err);
        if (rc != 0)
            fail_msg("case %s: rc %d (%s)", cases[i].name, rc, err);
        if (!(gbs > 0) || !isfinite(gbs))
            fail_msg("case %s: %g GB/s", cases[i].name, gbs);
    }
}

static void membw_rejects_bad_arguments(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int threads;
        size_t bytes;
        int reps;
        int want;
    } cases[] = {
        { "0 threads", 0, 1u << 20, 1, EINVAL },
        { "negative threads", -2, 1u << 20, 1, EINVAL },
        { "too many threads", MEMBW_MAX_THREADS + 1, 1u << 20, 1, EINVAL },
        { "negative reps", 1, 1u << 20, -1, EINVAL },
        { "buffer smaller than one step a thread", 4, 64, 1, EINVAL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        double gbs = -1;
        int rc = membw_read(cases[i].threads, cases[i].bytes, cases[i].reps, &gbs, err,
                            sizeof err);
        if (rc != cases[i].want)
            fail_msg("case %s: rc %d, want %d", cases[i].name, rc, cases[i].want);
        if (strncmp(err, "membw: ", 7) != 0)
            fail_msg("case %s: err '%s'", cases[i].name, err);
        if (gbs != -1)
            fail_msg("case %s: rate written on error", cases[i].name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(membw_gives_positive_finite_rate),
        cmocka_unit_test(membw_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Shared test fixtures: where the reference data is, file and JSON loading,
 * and assert_close() (cmocka 1.1.5 has no float assertions).  Include after
 * the cmocka prelude: <stdarg.h> <stddef.h> <setjmp.h> <stdint.h> <cmocka.h>. */
#ifndef PONDER_TEST_FIXTURE_H
#define PONDER_TEST_FIXTURE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* $PONDER_TESTDATA or ../shared/testdata */
const char *fx_testdata(void);
/* fx_testdata()/rel in a static buffer (valid until the next call). */
const char *fx_path(const char *rel);
/* Whole file, NUL-terminated, malloc'd; NULL on error. */
char *fx_read_file(const char *path, size_t *len);
/* A JSON file / every line of a JSONL file as an array; NULL on error (printed). */
json_t *fx_load_json(const char *path);
json_t *fx_load_jsonl(const char *path);
/* Writes len bytes to a fresh temporary file and returns its path (static
 * buffer per call site must be copied by the caller); NULL on error. */
char *fx_write_temp(const void *buf, size_t len);
/* The next value in [-1, 1) of the linear congruential sequence *state
 * (the caller's seed, then the state this call leaves). */
float fx_frand(uint32_t *state);
/* v[0..n) = n successive fx_frand(state). */
void fx_fill(float *v, size_t n, uint32_t *state);

#define assert_close(a, b, tol)                                                          \
    do {                                                                                 \
        double fx_a_ = (a), fx_b_ = (b), fx_t_ = (tol);                                  \
        if (!(fabs(fx_a_ - fx_b_) <= fx_t_))                                             \
            fail_msg("%s = %g, %s = %g: differ by %g > %g", #a, fx_a_, #b, fx_b_,        \
                     fabs(fx_a_ - fx_b_), fx_t_);                                        \
    } while (0)

#endif

/* Error lines for infer/: the innermost function that knows the facts writes
 * one line into the caller's (err, errlen) buffer and returns the POSIX code,
 * which callers pass up (STYLE.md section 4). */
#ifndef PONDER_ERR_H
#define PONDER_ERR_H

#include <stddef.h>

/* Formats one line into err (when err and errlen are set) and returns code. */
int err_set(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
